"""POST/GET /webhooks/meta over real HTTP, the relay connected as its own login."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import psycopg
import pytest

from kit import payloads as p
from tests.relay import (
    META_OTHER_APP_REF,
    META_OTHER_SECRET,
    META_SAME_APP_REF,
    VERIFY_TOKEN,
    assert_problem,
    count,
    kept_unread,
    meta_signature,
    post_meta,
)

WA_ID = "447700900123"


def handshake(base: str, **params: str) -> httpx.Response:
    return httpx.get(f"{base}/webhooks/meta", params=params)


def test_handshake_echoes_the_challenge_for_a_channels_verify_token(relay: Callable[..., str]) -> None:
    base = relay()
    ok = handshake(base, **{"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"})
    assert (ok.status_code, ok.text) == (200, "1158201444")
    assert ok.headers["content-type"].startswith("text/plain")
    wrong = {"hub.mode": "subscribe", "hub.verify_token": "not-it", "hub.challenge": "1"}
    assert_problem(handshake(base, **wrong), 403)
    assert_problem(handshake(base, **{**wrong, "hub.verify_token": VERIFY_TOKEN, "hub.mode": "unsubscribe"}), 403)
    assert_problem(handshake(base, **{"hub.mode": "subscribe", "hub.challenge": "1"}), 403)
    assert_problem(handshake(base, **{"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN}), 400)


def test_signed_text_message_is_stored_once_even_when_posted_twice(
    relay: Callable[..., str], db: psycopg.Connection
) -> None:
    base = relay()
    body = json.dumps(p.meta_text(WA_ID, "wamid.RELAY1", body="hello relay")).encode()
    first = post_meta(base, body)
    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == "processed"
    assert (first.json()["messages"], first.json()["registrations"]) == (1, 1)
    again = post_meta(base, body)
    assert again.status_code == 200, again.text
    assert (again.json()["messages"], again.json()["duplicates"]) == (0, 1)
    rows = db.execute(
        "SELECT body, channel_id FROM whatsapp_handler.messages WHERE provider_message_id = 'wamid.RELAY1'"
    ).fetchall()
    assert [r["body"] for r in rows] == ["hello relay"]
    # Both deliveries are kept raw, exactly as sent.
    raw = db.execute("SELECT payload::text AS t FROM whatsapp_handler.webhook_events ORDER BY id").fetchall()
    assert [json.loads(r["t"]) for r in raw] == [json.loads(body)] * 2


def test_two_channels_of_one_app_in_one_body(relay: Callable[..., str], db: psycopg.Connection) -> None:
    base = relay()
    body = p.meta_body(
        p.meta_value([p.meta_message(WA_ID, "wamid.ONE")], contacts=[(WA_ID, "Ana")]),
        p.meta_value(
            [p.meta_message(WA_ID, "wamid.TWO")], contacts=[(WA_ID, "Ana")], phone_number_id=META_SAME_APP_REF
        ),
    )
    response = post_meta(base, body)
    assert response.status_code == 200, response.text
    assert count(db, "webhook_events") == 1


# The tests here whose requests are all refused, each checking that nothing was stored, share one relay
# and database (conftest's shared_relay) rather than starting one each.
@pytest.mark.parametrize(
    ("headers", "secret"),
    [
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, None),
        ({"X-Hub-Signature-256": "sha1=abc"}, None),
        ({"X-Hub-Signature-256": "sha256=ünïcode".encode("latin-1")}, None),
    ],
    ids=["wrong-hmac", "wrong-scheme", "non-ascii"],
)
def test_bad_signature_is_401_and_nothing_is_stored(
    shared_relay, headers: dict[str, str | bytes], secret: str | None
) -> None:
    base, db = shared_relay("refused")
    body = json.dumps(p.meta_text(WA_ID, "wamid.BAD")).encode()
    sent = {"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body, secret or "x"), **headers}
    response = httpx.post(f"{base}/webhooks/meta", content=body, headers=sent)
    assert_problem(response, 401)
    assert count(db, "webhook_events") == 0


def test_missing_signature_is_401_before_the_body_is_read(shared_relay) -> None:
    base, db = shared_relay("refused")
    response = httpx.post(f"{base}/webhooks/meta", content=b"not even json")
    assert_problem(response, 401)
    assert count(db, "webhook_events") == 0


def test_a_body_naming_channels_of_two_apps_is_404(shared_relay) -> None:
    base, db = shared_relay("refused")
    body = p.meta_body(
        p.meta_value([p.meta_message(WA_ID, "wamid.A")]),
        p.meta_value([p.meta_message(WA_ID, "wamid.B")], phone_number_id=META_OTHER_APP_REF),
    )
    assert_problem(post_meta(base, body), 404)
    assert count(db, "webhook_events") == 0


def test_another_apps_secret_hears_what_an_unconfigured_number_hears(shared_relay) -> None:
    """Signed by app B, a body naming app A's number and one naming no configured number: the same
    404 and the same problem (issue 11: 401 "another app" against 404 listed app A's numbers)."""
    base, db = shared_relay("refused")
    answers = []
    for ref in (p.META_PHONE_NUMBER_ID, "9999999999"):
        response = post_meta(base, p.meta_text(WA_ID, "wamid.OTHER", phone_number_id=ref), secret=META_OTHER_SECRET)
        problem = assert_problem(response, 404)
        answers.append({**problem, "detail": problem["detail"].replace(ref, "<ref>")})
    assert answers[0] == answers[1]
    assert count(db, "webhook_events") == 0


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"object": "page", "entry": []}',
        b'{"object": "whatsapp_business_account", "entry": []}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"metadata":'
        b' {"phone_number_id": 1234567890}}}]}]}',
    ],
    # A signed body that is not JSON (or not UTF-8) is kept and dead-lettered: tests/test_relay_raw_bodies.py.
    ids=["array", "other-object", "no-entries", "numeric-id"],
)
def test_a_signed_body_of_another_shape_is_kept_unread(
    relay: Callable[..., str], db: psycopg.Connection, body: bytes
) -> None:
    """Signed by the app, so Meta's: a 400 would only make Meta send the same bytes for a week."""
    base = relay()
    response = post_meta(base, body)
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "failed"
    [note] = kept_unread(db)
    assert "not a WhatsApp Business Account webhook" in note
    assert_problem(post_meta(base, body, secret="wrong" * 4), 401)
    assert count(db, "webhook_events") == 1


def test_unknown_phone_number_id_is_404(shared_relay) -> None:
    base, db = shared_relay("refused")
    body = p.meta_text(WA_ID, "wamid.X", phone_number_id="9999999999")
    problem = assert_problem(post_meta(base, body), 404)
    assert "9999999999" in problem["detail"]
    assert count(db, "webhook_events") == 0


def test_body_over_the_limit_is_413(relay: Callable[..., str], db: psycopg.Connection) -> None:
    base = relay(max_body_bytes=4096)
    body = p.meta_text(WA_ID, "wamid.BIG", body="x" * 5000)
    assert_problem(post_meta(base, body), 413)
    # Streamed without a Content-Length, the limit holds on the bytes received.
    raw = json.dumps(body).encode()
    chunks = (raw[i : i + 1000] for i in range(0, len(raw), 1000))
    headers = {"X-Hub-Signature-256": meta_signature(raw)}
    assert_problem(httpx.post(f"{base}/webhooks/meta", content=chunks, headers=headers), 413)
    small = post_meta(base, p.meta_text(WA_ID, "wamid.SMALL"))
    assert small.status_code == 200, small.text
    assert count(db, "webhook_events") == 1


def test_a_three_megabyte_body_is_accepted_by_default(relay: Callable[..., str], db: psycopg.Connection) -> None:
    base = relay()
    body = p.meta_text(WA_ID, "wamid.LARGE", body="y" * 3_000_000)
    response = post_meta(base, body)
    assert response.status_code == 200, response.text
    assert count(db, "webhook_events") == 1


def test_signed_json_postgres_cannot_store_is_cleaned_not_refused(
    relay: Callable[..., str], db: psycopg.Connection
) -> None:
    """A refusal would lose the webhook (Meta gives up after a week): kept raw, cleaned, noted, processed."""
    base = relay()
    body = json.dumps(p.meta_text(WA_ID, "wamid.NUL", body="a\u0000b")).encode()
    assert b"\\u0000" in body
    response = post_meta(base, body)
    assert response.status_code == 200, response.text
    assert response.json()["messages"] == 1
    row = db.execute("SELECT raw, note, outcome FROM whatsapp_handler.webhook_events").fetchone()
    assert (bytes(row["raw"]), row["note"], row["outcome"]) == (body, "1 \\u0000 removed", "processed")


ACCOUNT_EVENT = {
    "object": "whatsapp_business_account",
    "entry": [{"id": "102290129340398", "time": 1700000000, "changes": [{
        "field": "message_template_status_update",
        "value": {"event": "APPROVED", "message_template_id": 594425479261596, "message_template_name": "otp_code",
                  "message_template_language": "en_GB", "reason": None},
    }]}],
}  # fmt: skip


def test_account_level_event_signed_by_a_configured_app_is_stored_raw(
    relay: Callable[..., str], db: psycopg.Connection
) -> None:
    """Template and account updates name no number: stored as received, not refused (Meta would retry)."""
    base = relay()
    response = post_meta(base, ACCOUNT_EVENT, secret=META_OTHER_SECRET)
    assert response.status_code == 200, response.text
    row = db.execute("SELECT payload, outcome, channel_id FROM whatsapp_handler.webhook_events").fetchone()
    assert row == {"payload": ACCOUNT_EVENT, "outcome": "stored", "channel_id": None}


def test_account_level_event_signed_by_no_configured_app_is_401(shared_relay) -> None:
    base, db = shared_relay("refused")
    assert_problem(post_meta(base, ACCOUNT_EVENT, secret="some-other-app"), 401)
    assert count(db, "webhook_events") == 0
