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


def nested_plans(conn: psycopg.Connection) -> list[str]:
    """The plans of every statement conn runs from now on, those inside functions included, as
    auto_explain prints them (sent to the client as NOTICEs), appended to the list returned. Sequential
    scans are off, so that a test's small table still shows whether an index can serve the statement."""
    plans: list[str] = []
    conn.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
    for statement in ("LOAD 'auto_explain'", "SET auto_explain.log_min_duration = 0",
                      "SET auto_explain.log_nested_statements = on", "SET auto_explain.log_level = notice",
                      "SET enable_seqscan = off"):  # fmt: skip
        conn.execute(statement)
    return plans


@contextmanager
def raises_sqlstate(code: str):
    """Expect a database error with this SQLSTATE and a hint (project errors always carry one)."""
    with pytest.raises(psycopg.Error) as info:
        yield info
    diag = info.value.diag
    assert diag.sqlstate == code, f"expected {code}, got {diag.sqlstate}: {diag.message_primary}"
    if code.startswith("WH"):
        assert diag.message_hint, f"{code} raised without a hint"
