"""Small helpers the tests share: reading the outbox and asserting project errors."""

from __future__ import annotations

from contextlib import contextmanager

import psycopg
import pytest


def outbox_events(conn: psycopg.Connection, type_: str | None = None) -> list[dict]:
    """Every event on the outbox (unread ones included), oldest first, optionally of one type."""
    rows = conn.execute(
        "SELECT message, headers FROM pgmq.q_outbox ORDER BY msg_id",
    ).fetchall()
    events = [dict(r["message"], _headers=r["headers"]) for r in rows]
    return [e for e in events if type_ is None or e["type"] == type_]


def outbound_messages(conn: psycopg.Connection) -> list[dict]:
    return [r["message"] for r in conn.execute("SELECT message FROM pgmq.q_outbound ORDER BY msg_id").fetchall()]


@contextmanager
def raises_sqlstate(code: str):
    """Expect a database error with this SQLSTATE and a hint (project errors always carry one)."""
    with pytest.raises(psycopg.Error) as info:
        yield info
    diag = info.value.diag
    assert diag.sqlstate == code, f"expected {code}, got {diag.sqlstate}: {diag.message_primary}"
    if code.startswith("WH"):
        assert diag.message_hint, f"{code} raised without a hint"
