"""Rules that deliberate breakage showed no other test guarded (issue 12). Each test here fails when
its rule is broken; bin/break-rules applies those breakages and checks that they are caught."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p
from kit.signing import meta_signature
from tests.relay import META_SECRET, assert_problem, count

WA_ID = "447700900123"
_ids = itertools.count()


@pytest.fixture
def say(db: psycopg.Connection) -> Callable[[str], list[str]]:
    db.execute("SELECT whatsapp_handler.add_channel('meta', %s, '+15550001111', 'Support')", (p.META_PHONE_NUMBER_ID,))

    def _say(text: str) -> list[str]:
        """One message from the user through ingest_meta; the reply keys it queued."""
        before = db.execute("SELECT coalesce(max(msg_id), 0) AS m FROM pgmq.q_outbound").fetchone()["m"]
        body = p.meta_text(WA_ID, f"wamid.RULE{next(_ids)}", body=text)
        result = db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL) AS r", (Jsonb(body),)).fetchone()["r"]
        assert result["outcome"] == "processed", result
        rows = db.execute("SELECT message FROM pgmq.q_outbound WHERE msg_id > %s ORDER BY msg_id", (before,))
        return [r["message"]["reply_key"] for r in rows.fetchall()]

    return _say


def state(db: psycopg.Connection) -> str:
    return db.execute("SELECT state FROM whatsapp_handler.conversations").fetchone()["state"]


# -- The conversation: what STOP remembers, and where a cancelled DELETE returns to ------------


def test_cancelling_delete_while_opted_out_returns_to_opted_out(db, say):
    say("hi")
    say("yes")
    say("STOP")
    assert say("DELETE") == ["delete_confirm"]
    assert say("NO") == ["delete_cancelled"]
    # Cancelling must not opt the user back in: they said STOP and never START.
    assert state(db) == "opted_out"
    assert say("anything") == []
    assert say("START") == ["started"]
    assert state(db) == "active"


def test_cancelling_delete_while_awaiting_terms_returns_to_the_terms(db, say):
    say("hi")
    say("DELETE")
    say("no")
    assert state(db) == "awaiting_terms"


def test_a_second_stop_keeps_what_the_first_remembered(db, say):
    say("hi")
    say("yes")
    assert say("STOP") == ["stopped"]
    assert say("STOP") == ["stopped"]
    assert state(db) == "opted_out"
    # START restores the state before the first STOP, not "opted_out" remembered by the second.
    assert say("START") == ["started"]
    assert state(db) == "active"


def test_a_second_stop_before_the_terms_returns_to_the_terms(db, say):
    say("hi")
    say("stop")
    say("stop")
    say("start")
    assert state(db) == "awaiting_terms"


# -- Meta's signature: every digit of it counts ------------------------------------------------


def _one_digit_changed(signature: str, position: int) -> str:
    """The signature with the hex digit at `position` (0..63, after `sha256=`) replaced by another."""
    prefix, digest = signature.split("=", 1)
    assert len(digest) == 64
    other = format((int(digest[position], 16) + 1) % 16, "x")
    return f"{prefix}={digest[:position]}{other}{digest[position + 1 :]}"


def test_a_meta_signature_with_one_digit_changed_is_refused(relay: Callable[..., str], db: psycopg.Connection) -> None:
    base = relay()
    body = p.compact(p.meta_text(WA_ID, "wamid.ONEDIGIT", body="signed once"))
    good = meta_signature(body, META_SECRET)
    for position in (0, 1, 15, 31, 32, 47, 62, 63):
        forged = _one_digit_changed(good, position)
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": forged}
        response = httpx.post(f"{base}/webhooks/meta", content=body, headers=headers, timeout=10)
        assert response.status_code in (401, 403), (position, response.status_code, response.text)
        assert_problem(response, response.status_code)
    assert count(db, "webhook_events") == 0
    # The same body with the signature as computed is taken: the refusals above were the digit's.
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": good}
    accepted = httpx.post(f"{base}/webhooks/meta", content=body, headers=headers, timeout=10)
    assert accepted.status_code == 200, accepted.text
    assert count(db, "webhook_events") == 1
