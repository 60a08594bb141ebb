"""ingest_raw: an authenticated body jsonb refuses as received is kept (raw bytes and a note),
ingested from its cleaned text when there is one, dead-lettered with WH045 when there is none;
the re-drive and `whatsapp-handler dlq replay` park such a dead letter instead of looping."""

from __future__ import annotations

import json

import psycopg
import pytest

from kit import payloads as p
from tests.helpers import raises_sqlstate
from tests.test_cli import run_cli

WA_ID = "447700900123"
RAW_CALL = "SELECT whatsapp_handler.ingest_raw(%s, %s, %s, %s, %s) AS r"


@pytest.fixture
def meta_channel(db) -> int:
    return db.execute(
        "SELECT whatsapp_handler.add_channel('meta', %s, '+15550001111', 'test') AS id", (p.META_PHONE_NUMBER_ID,)
    ).fetchone()["id"]


def ingest_raw(conn, raw: bytes, payload: str | None, note: str, provider: str = "meta") -> dict:
    return conn.execute(RAW_CALL, (provider, raw, payload, note, "cid-raw")).fetchone()["r"]


def events(db) -> list[dict]:
    return db.execute(
        "SELECT id, payload, raw, note, outcome, error, channel_id, correlation_id"
        " FROM whatsapp_handler.webhook_events ORDER BY id"
    ).fetchall()


def dead_letters(db) -> list[dict]:
    return db.execute("SELECT msg_id, message FROM pgmq.q_inbound_dlq ORDER BY msg_id").fetchall()


def test_a_cleaned_body_is_ingested_and_keeps_its_raw_bytes_and_note(db, meta_channel):
    raw = json.dumps(p.meta_text(WA_ID, "wamid.NUL", body="a\u0000b")).encode()
    cleaned = json.dumps(p.meta_text(WA_ID, "wamid.NUL", body="ab"))
    result = ingest_raw(db, raw, cleaned, "1 \\u0000 removed")
    assert (result["outcome"], result["messages"]) == ("processed", 1)
    [event] = events(db)
    assert (bytes(event["raw"]), event["note"], event["outcome"], event["error"]) == (
        raw, "1 \\u0000 removed", "processed", None
    )  # fmt: skip
    assert (event["channel_id"], event["correlation_id"]) == (meta_channel, "cid-raw")
    assert db.execute("SELECT body FROM whatsapp_handler.messages").fetchone()["body"] == "ab"
    assert dead_letters(db) == []


@pytest.mark.parametrize(
    "text",
    [
        None,  # the relay could make no JSON of it
        '{"a": "\\u0000"}',  # cleaned text jsonb still refuses: NUL
        '{"a": "\\ud800"}',  # a lone surrogate
        '{"n": 1e999999}',  # a number out of numeric's range
        '{"a": ',  # not JSON
    ],
)
def test_a_body_with_no_json_jsonb_takes_is_stored_raw_and_dead_lettered(db, meta_channel, text):
    raw = b'\xff{"secret body": "+447700900123"'
    result = ingest_raw(db, raw, text, "not JSON: Expecting value at character 0")
    [event] = events(db)
    assert result == {"webhook_event_id": event["id"], "outcome": "failed",
                      "messages": 0, "duplicates": 0, "statuses": 0, "registrations": 0}  # fmt: skip
    assert (event["payload"], bytes(event["raw"]), event["outcome"]) == (None, raw, "failed")
    assert event["note"].startswith("not JSON: Expecting value at character 0")
    assert event["error"].startswith("WH045: not JSON")
    if text is not None:
        # Only jsonb's message is kept: its detail and context would quote the body.
        assert "jsonb refused the cleaned text (22" in event["note"] and text not in event["note"]
    [letter] = dead_letters(db)
    assert letter["message"]["sqlstate"] == "WH045"
    assert letter["message"]["webhook_event_id"] == event["id"]
    assert letter["message"]["correlation_id"] == "cid-raw"


def test_ingest_raw_refuses_what_is_no_webhook(db):
    with raises_sqlstate("WH008"):
        ingest_raw(db, b"x", None, "not JSON", provider="telegram")
    with raises_sqlstate("WH008"):
        ingest_raw(db, None, None, "not JSON")
    with raises_sqlstate("WH008"):
        ingest_raw(db, b"x", None, "  ")
    assert events(db) == []


def test_a_raw_only_event_cannot_be_made_without_its_body_or_as_processed(db):
    for columns, values in [
        ("payload, raw, note, outcome, error", "NULL, NULL, NULL, 'failed', 'x'"),  # no body at all
        ("payload, raw, note, outcome", "NULL, '\\x00', 'n', 'processed'"),  # raw only, yet processed
        ("payload, raw, note, outcome", "'{}', '\\x00', NULL, 'stored'"),  # raw without its note
    ]:
        with raises_sqlstate("23514"):
            db.execute(f"INSERT INTO whatsapp_handler.webhook_events (provider, {columns}) VALUES ('meta', {values})")


def test_only_the_relay_calls_ingest_raw(db, connect_as, meta_channel):
    raw = b"not json"
    relay = connect_as("relay")
    assert ingest_raw(relay, raw, None, "not JSON")["outcome"] == "failed"
    for role in ("worker", "analyst"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            ingest_raw(connect_as(role), raw, None, "not JSON")
    assert len(events(db)) == 1


def test_the_redrive_parks_a_raw_only_dead_letter_at_once_and_never_retries_it(db, meta_channel):
    ingest_raw(db, b"<xml>not json</xml>", None, "not JSON: Expecting value at character 0")
    [letter] = dead_letters(db)
    db.execute("UPDATE pgmq.q_inbound_dlq SET vt = now() - interval '1 minute'")
    result = db.execute("SELECT whatsapp_handler.redrive_inbound(100) AS r").fetchone()["r"]
    assert (result["parked"], result["redriven"], result["failed"]) == (1, 0, 0)
    [parked] = dead_letters(db)
    assert parked["message"]["parked"] is True and parked["message"]["attempts"] == 1
    assert parked["message"]["sqlstate"] == "WH045"
    # Skipped by the job from then on: no attempt is counted again.
    again = db.execute("SELECT whatsapp_handler.redrive_inbound(100) AS r").fetchone()["r"]
    assert again["results"] == []
    assert dead_letters(db)[0]["message"]["attempts"] == 1
    # Forced by id, it is parked again rather than processed or lost.
    forced = db.execute("SELECT whatsapp_handler.redrive_inbound(100, %s) AS r", ([letter["msg_id"]],)).fetchone()["r"]
    assert forced["parked"] == 1
    assert db.execute("SELECT outcome FROM whatsapp_handler.webhook_events").fetchone()["outcome"] == "failed"


def test_dlq_cli_lists_shows_and_replays_a_raw_only_dead_letter(db, db_url, tmp_path, meta_channel):
    ingest_raw(db, b"\x00\x01 not json", None, "not JSON: Expecting value at character 0")
    [letter] = dead_letters(db)
    listing = run_cli("dlq", "list", "inbound", url=db_url, cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "WH045" in listing.stdout
    shown = run_cli("dlq", "show", "inbound", str(letter["msg_id"]), url=db_url, cwd=tmp_path)
    assert shown.returncode == 0 and json.loads(shown.stdout)["message"]["sqlstate"] == "WH045"
    replay = run_cli("dlq", "replay", "inbound", str(letter["msg_id"]), url=db_url, cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr
    assert "parked 1" in replay.stdout
    assert dead_letters(db)[0]["message"]["parked"] is True
