"""Authenticated webhooks whose bodies jsonb refuses as received, per provider, over real HTTP: each
is answered 200 and kept, its raw bytes with a note; what can be cleaned (a \\u0000, a lone surrogate,
bytes that are not UTF-8, a number out of numeric's range) is processed from the cleaned text, so
the other messages of the body are not lost; what is not JSON at all is dead-lettered (WH045).
Unauthenticated bad bodies are still refused and nothing is stored."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from urllib.parse import parse_qsl

import httpx
import psycopg
import pytest

from kit import payloads as p
from tests.relay import (
    EVOLUTION_KEY,
    EVOLUTION_REF,
    PUBLIC_BASE_URL,
    assert_problem,
    count,
    post_meta,
    twilio_signature,
)

WA_ID = "447700900123"
TWILIO_URL = f"{PUBLIC_BASE_URL}/webhooks/twilio"


def meta_raw(*messages: dict, name: str = "Ana") -> bytes:
    value = p.meta_value(list(messages), contacts=[(WA_ID, name)])
    return json.dumps(p.meta_body(value)).encode()


def event(db: psycopg.Connection) -> dict:
    [row] = db.execute(
        "SELECT payload, raw, note, outcome, error FROM whatsapp_handler.webhook_events ORDER BY id"
    ).fetchall()
    return row


def bodies(db: psycopg.Connection) -> dict[str, str]:
    rows = db.execute("SELECT provider_message_id, body FROM whatsapp_handler.messages WHERE direction = 'inbound'")
    return {r["provider_message_id"]: r["body"] for r in rows.fetchall()}


def dead_letter_codes(db: psycopg.Connection) -> list[str]:
    return [r["c"] for r in db.execute("SELECT message ->> 'sqlstate' AS c FROM pgmq.q_inbound_dlq").fetchall()]


def assert_cleaned(db: psycopg.Connection, raw: bytes, note: str) -> dict:
    row = event(db)
    assert bytes(row["raw"]) == raw
    assert note in row["note"], row["note"]
    assert (row["outcome"], row["error"], dead_letter_codes(db)) == ("processed", None, [])
    return row


def assert_dead_lettered(db: psycopg.Connection, raw: bytes, note: str) -> None:
    row = event(db)
    assert (row["payload"], bytes(row["raw"]), row["outcome"]) == (None, raw, "failed")
    assert note in row["note"] and row["error"].startswith("WH045")
    assert dead_letter_codes(db) == ["WH045"]


# --- Meta --------------------------------------------------------------------------------------------------------


def test_meta_nul_in_one_message_keeps_both_messages_of_the_body(relay: Callable[..., str], db) -> None:
    base = relay()
    raw = meta_raw(p.meta_message(WA_ID, "wamid.BAD", body="a\u0000b"), p.meta_message(WA_ID, "wamid.GOOD"))
    assert b"\\u0000" in raw
    response = post_meta(base, raw)
    assert response.status_code == 200, response.text
    assert response.json()["messages"] == 2
    assert bodies(db) == {"wamid.BAD": "ab", "wamid.GOOD": "hello"}
    assert_cleaned(db, raw, "1 \\u0000 removed")


def test_meta_nul_in_a_profile_name_is_removed(relay: Callable[..., str], db) -> None:
    base = relay()
    raw = meta_raw(p.meta_message(WA_ID, "wamid.N1"), name="An\u0000a")
    assert post_meta(base, raw).status_code == 200
    assert_cleaned(db, raw, "1 \\u0000 removed")
    assert db.execute("SELECT display_name FROM whatsapp_handler.users").fetchone()["display_name"] == "Ana"


def test_meta_lone_surrogate_becomes_the_replacement_character(relay: Callable[..., str], db) -> None:
    base = relay()
    raw = meta_raw(p.meta_message(WA_ID, "wamid.S1", body="x\ud800y \U0001f600"))
    assert b"\\ud800" in raw
    assert post_meta(base, raw).status_code == 200
    assert_cleaned(db, raw, "1 lone surrogates replaced with U+FFFD")
    assert bodies(db) == {"wamid.S1": "x\ufffdy \U0001f600"}


def test_meta_number_jsonb_cannot_hold_is_kept_as_a_string(relay: Callable[..., str], db) -> None:
    base = relay()
    raw = meta_raw(p.meta_message(WA_ID, "wamid.E1")).replace(b'"type": "text"', b'"type": "text", "n": 1e999999')
    assert post_meta(base, raw).status_code == 200
    row = assert_cleaned(db, raw, "1 numbers out of jsonb's range kept as strings")
    assert row["payload"]["entry"][0]["changes"][0]["value"]["messages"][0]["n"] == "1e999999"
    assert bodies(db) == {"wamid.E1": "hello"}


def test_meta_bytes_that_are_not_utf8_are_replaced(relay: Callable[..., str], db) -> None:
    base = relay()
    raw = meta_raw(p.meta_message(WA_ID, "wamid.U1", body="caf@")).replace(b"caf@", b"caf\xe9")
    assert post_meta(base, raw).status_code == 200
    assert_cleaned(db, raw, "bytes that are not UTF-8 replaced with U+FFFD")
    assert bodies(db) == {"wamid.U1": "caf\ufffd"}


@pytest.mark.parametrize("raw", [b"not json at all", b"\xff\xfe{", b'{"object": "whatsapp_business_account",'])
def test_meta_signed_body_that_is_not_json_is_kept_and_dead_lettered(relay: Callable[..., str], db, raw) -> None:
    base = relay()
    response = post_meta(base, raw)
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "failed"
    assert_dead_lettered(db, raw, "not JSON")


# The tests here whose requests are all refused, each checking that nothing was stored, share one relay
# and database (conftest's shared_relay) rather than starting one each.
def test_meta_unsigned_bad_bodies_are_refused_and_not_stored(shared_relay) -> None:
    base, db = shared_relay("refused")
    for raw in (b"not json", meta_raw(p.meta_message(WA_ID, "wamid.X", body="a\u0000b"))):
        assert_problem(post_meta(base, raw, secret="not-a-configured-secret"), 401)
    assert count(db, "webhook_events") == 0


# --- Twilio ------------------------------------------------------------------------------------------------------


def post_twilio_form(base: str, form: bytes) -> httpx.Response:
    # Signed over the parameters as any form parser reads them (bytes that are not UTF-8 as U+FFFD).
    params = dict(parse_qsl(form.decode("utf-8", "replace"), keep_blank_values=True, errors="replace"))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(TWILIO_URL, params),
    }
    return httpx.post(f"{base}/webhooks/twilio", content=form, headers=headers, timeout=10)


def post_twilio_json(base: str, raw: bytes) -> httpx.Response:
    query = "?bodySHA256=" + hashlib.sha256(raw).hexdigest()
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": twilio_signature(TWILIO_URL + query, {})}
    return httpx.post(f"{base}/webhooks/twilio{query}", content=raw, headers=headers, timeout=10)


def twilio_form(**fields: str) -> bytes:
    params = p.twilio_inbound("SM" + "a" * 32, "+" + WA_ID, "+15550002222", **fields)
    return "&".join(f"{k}={v}" for k, v in params.items()).replace("+", "%2B").replace(":", "%3A").encode()


@pytest.mark.parametrize(
    ("fields", "note", "body"),
    [
        ({"Body": "a%00b"}, "1 \\u0000 removed", "ab"),
        ({"ProfileName": "An%00a"}, "1 \\u0000 removed", "hello"),
        ({"Body": "x%ED%A0%80y"}, "bytes that are not UTF-8 replaced with U+FFFD", "x\ufffd\ufffd\ufffdy"),
    ],
)
def test_twilio_form_jsonb_refuses_is_cleaned_and_processed(
    relay: Callable[..., str], db, fields: dict[str, str], note: str, body: str
) -> None:
    base = relay()
    form = twilio_form(**fields)
    response = post_twilio_form(base, form)
    assert response.status_code == 200, response.text
    row = assert_cleaned(db, form, note)
    assert "\x00" not in json.dumps(row["payload"])
    assert bodies(db) == {"SM" + "a" * 32: body}


@pytest.mark.parametrize(
    ("raw", "note"),
    [
        (json.dumps(p.twilio_inbound("SM" + "b" * 32, "+" + WA_ID, "+15550002222", Body="a\u0000b")).encode(),
         "1 \\u0000 removed"),
        (json.dumps(p.twilio_inbound("SM" + "b" * 32, "+" + WA_ID, "+15550002222", Body="\udc00")).encode(),
         "1 lone surrogates replaced with U+FFFD"),
        (json.dumps(p.twilio_inbound("SM" + "b" * 32, "+" + WA_ID, "+15550002222")).encode()[:-1] + b', "N": 1e999999}',
         "1 numbers out of jsonb's range kept as strings"),
    ],
)  # fmt: skip
def test_twilio_json_jsonb_refuses_is_cleaned_and_processed(relay: Callable[..., str], db, raw, note) -> None:
    base = relay()
    response = post_twilio_json(base, raw)
    assert response.status_code == 200, response.text
    assert_cleaned(db, raw, note)
    assert list(bodies(db)) == ["SM" + "b" * 32]


def test_twilio_signed_json_body_that_is_not_json_is_kept_and_dead_lettered(relay: Callable[..., str], db) -> None:
    base = relay()
    raw = b"\xff not json"
    assert post_twilio_json(base, raw).status_code == 200
    assert_dead_lettered(db, raw, "not JSON")


def test_twilio_unsigned_bad_bodies_are_refused_and_not_stored(shared_relay) -> None:
    base, db = shared_relay("refused")
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "c2ln"}
    for form in (twilio_form(Body="a%00b"), b"To=%FF", b"To=\xff"):
        assert_problem(httpx.post(f"{base}/webhooks/twilio", content=form, headers=headers), 403)
    query = "?bodySHA256=" + hashlib.sha256(b"not json").hexdigest()
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": "c2ln"}
    assert_problem(httpx.post(f"{base}/webhooks/twilio{query}", content=b"not json", headers=headers), 403)
    assert count(db, "webhook_events") == 0


# --- Evolution ---------------------------------------------------------------------------------------------------


def post_evolution(base: str, raw: bytes, **headers: str) -> httpx.Response:
    sent = {"Content-Type": "application/json", **headers}
    return httpx.post(f"{base}/webhooks/evolution", content=raw, headers=sent, timeout=10)


def evolution_raw(text: str = "hello", **replace: str) -> bytes:
    raw = json.dumps(p.evolution_upsert(EVOLUTION_REF, "+" + WA_ID, "EVO1", text=text, apikey=EVOLUTION_KEY))
    for old, new in replace.items():
        raw = raw.replace(old, new)
    return raw.encode()


@pytest.mark.parametrize(
    ("raw", "note", "body"),
    [
        (evolution_raw("a\u0000b"), "1 \\u0000 removed", "ab"),
        (evolution_raw(Ana="\\ud800"), "1 lone surrogates replaced with U+FFFD", "hello"),
        (evolution_raw(**{'"fromMe"': '"n": 1e999999, "fromMe"'}), "kept as strings", "hello"),
    ],
)
def test_evolution_jsonb_refuses_is_cleaned_and_processed(relay: Callable[..., str], db, raw, note, body) -> None:
    base = relay()
    response = post_evolution(base, raw)
    assert response.status_code == 200, response.text
    row = event(db)
    assert note in row["note"] and row["outcome"] == "processed"
    # The apikey is a credential: neither the cleaned payload nor the raw bytes keep it.
    assert EVOLUTION_KEY.encode() not in bytes(row["raw"]) and EVOLUTION_KEY not in json.dumps(row["payload"])
    assert bytes(row["raw"]) == raw.replace(EVOLUTION_KEY.encode(), b"[redacted]")
    assert bodies(db) == {"EVO1": body}


def test_evolution_body_that_is_not_json_with_a_header_key_is_kept_and_dead_lettered(
    relay: Callable[..., str], db
) -> None:
    base = relay()
    raw = b'{"apikey": "' + EVOLUTION_KEY.encode() + b'", broken'
    assert post_evolution(base, raw, apikey=EVOLUTION_KEY).status_code == 200
    assert_dead_lettered(db, raw.replace(EVOLUTION_KEY.encode(), b"[redacted]"), "not JSON")


def test_evolution_unauthenticated_bad_bodies_are_refused_and_not_stored(relay: Callable[..., str], db) -> None:
    base = relay()
    assert_problem(post_evolution(base, b"not json"), 400)
    assert_problem(post_evolution(base, b"not json", apikey="wrong-key"), 400)
    bad = evolution_raw("a\u0000b").replace(EVOLUTION_KEY.encode(), b"wrong-key")
    assert_problem(post_evolution(base, bad), 401)
    assert count(db, "webhook_events") == 0
