"""POST /webhooks/evolution over real HTTP: the instance's apikey in the body or a header."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import psycopg
import pytest

from app.providers.evolution import BODY_KEY_MAX_BYTES as EVOLUTION_BODY_KEY_MAX_BYTES
from kit import payloads as p
from tests.relay import EVOLUTION_KEY, EVOLUTION_REF, assert_problem, count, kept_unread

USER = "+447700900123"


def post(base: str, body: object, **headers: str) -> httpx.Response:
    return httpx.post(f"{base}/webhooks/evolution", json=body, headers=headers)


@pytest.mark.parametrize(
    ("body_key", "headers"),
    [(EVOLUTION_KEY, {}), ("", {"apikey": EVOLUTION_KEY}), ("", {"Authorization": f"Bearer {EVOLUTION_KEY}"})],
    ids=["body", "apikey-header", "bearer"],
)
def test_good_apikey_is_200_and_the_key_is_not_stored(
    relay: Callable[..., str], db: psycopg.Connection, body_key: str, headers: dict[str, str]
) -> None:
    base = relay()
    response = post(
        base, p.evolution_upsert(EVOLUTION_REF, USER, "3EB0C767D71D", text="hi evo", apikey=body_key), **headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "processed"
    row = db.execute("SELECT body FROM whatsapp_handler.messages WHERE provider_message_id = '3EB0C767D71D'").fetchone()
    assert row["body"] == "hi evo"
    stored = db.execute("SELECT payload FROM whatsapp_handler.webhook_events").fetchone()["payload"]
    assert stored["instance"] == EVOLUTION_REF
    assert "apikey" not in stored


def test_other_events_are_kept_raw(relay: Callable[..., str], db: psycopg.Connection) -> None:
    base = relay()
    body = {"event": "qrcode.updated", "instance": EVOLUTION_REF, "data": {"qrcode": {"code": "2@x"}}}
    body["apikey"] = EVOLUTION_KEY
    response = post(base, body)
    assert response.status_code == 200, response.text
    assert count(db, "webhook_events") == 1


# The tests here whose requests are all refused, each checking that nothing was stored, share one relay
# and database (conftest's shared_relay) rather than starting one each.
@pytest.mark.parametrize(
    ("body_key", "headers"),
    [
        ("wrong", {}),
        ("", {}),
        ("wrong", {"apikey": "also-wrong"}),
        ("", {"Authorization": "Bearer nope"}),
        ("", {"Authorization": EVOLUTION_KEY}),
    ],
    ids=["wrong-body-key", "no-key", "wrong-everywhere", "wrong-bearer", "key-without-bearer-scheme"],
)
def test_bad_apikey_is_401_and_nothing_is_stored(shared_relay, body_key: str, headers: dict[str, str]) -> None:
    base, db = shared_relay("refused")
    assert_problem(post(base, p.evolution_upsert(EVOLUTION_REF, USER, "X1", apikey=body_key), **headers), 401)
    assert count(db, "webhook_events") == 0


def test_unknown_instance_is_404(shared_relay) -> None:
    base, db = shared_relay("refused")
    assert_problem(post(base, p.evolution_upsert("other-instance", USER, "X2", apikey=EVOLUTION_KEY)), 404)
    assert count(db, "webhook_events") == 0


@pytest.mark.parametrize(
    "content",
    # A body that is not JSON, with the apikey in a header, is kept and dead-lettered (test_relay_raw_bodies.py).
    [b'"a string"', b'{"instance": "shop-instance"}', b'{"event": "x", "instance": 7}'],
    ids=["not-an-object", "no-event", "numeric-instance"],
)
def test_a_body_of_another_shape_authenticated_by_header_is_kept_unread(
    relay: Callable[..., str], db: psycopg.Connection, content: bytes
) -> None:
    base = relay()
    response = httpx.post(f"{base}/webhooks/evolution", content=content, headers={"apikey": EVOLUTION_KEY})
    assert response.status_code == 200, response.text
    [note] = kept_unread(db)
    assert "not read: " in note


# Issue 11, finding 10: the key is looked for in headers first, and no copy of it is stored --------


def test_copies_of_the_key_anywhere_in_the_body_are_not_stored(
    relay: Callable[..., str], db: psycopg.Connection
) -> None:
    base = relay()
    body = p.evolution_upsert(EVOLUTION_REF, USER, "EVOCOPY", text="hi evo", apikey=EVOLUTION_KEY)
    body |= {
        "Apikey": EVOLUTION_KEY,
        "APIKEY": "not the key",
        "api_key": EVOLUTION_KEY,
        "destination": f"https://hooks.example.com/webhooks/evolution?apikey={EVOLUTION_KEY}",
        "sender": EVOLUTION_KEY,
        "extra": [{"ApiKey": EVOLUTION_KEY}, [EVOLUTION_KEY, 1, None]],
    }
    body["data"]["apikey"] = EVOLUTION_KEY
    body["data"]["key"]["apiKey"] = EVOLUTION_KEY
    response = post(base, body)
    assert response.status_code == 200, response.text
    assert response.json()["messages"] == 1
    stored = db.execute("SELECT payload, payload::text AS t FROM whatsapp_handler.webhook_events").fetchone()
    assert EVOLUTION_KEY not in stored["t"]
    payload = stored["payload"]
    assert "apikey" not in payload
    redacted = "[redacted]"
    assert (payload["Apikey"], payload["APIKEY"], payload["api_key"], payload["sender"]) == (redacted,) * 4
    assert payload["destination"] == f"https://hooks.example.com/webhooks/evolution?apikey={redacted}"
    assert payload["extra"] == [{"ApiKey": redacted}, [redacted, 1, None]]
    assert (payload["data"]["apikey"], payload["data"]["key"]["apiKey"]) == (redacted, redacted)
    assert payload["data"]["key"]["id"] == "EVOCOPY"
    row = db.execute("SELECT body FROM whatsapp_handler.messages WHERE provider_message_id = 'EVOCOPY'").fetchone()
    assert row["body"] == "hi evo"


def _large(key_in_body: str) -> bytes:
    body = p.evolution_upsert(
        EVOLUTION_REF, USER, "EVOLARGE", text="x" * EVOLUTION_BODY_KEY_MAX_BYTES, apikey=key_in_body
    )
    return json.dumps(body).encode()


def test_a_large_body_is_authenticated_by_a_header_key_only(relay: Callable[..., str], db: psycopg.Connection) -> None:
    """Over EVOLUTION_BODY_KEY_MAX_BYTES, a key only in the body is not looked for (the body would have
    to be parsed first): 401. The same body with the key in a header is parsed and taken."""
    base = relay()
    raw = _large(EVOLUTION_KEY)
    assert len(raw) > EVOLUTION_BODY_KEY_MAX_BYTES
    url, json_type = f"{base}/webhooks/evolution", {"Content-Type": "application/json"}
    assert_problem(httpx.post(url, content=raw, headers=json_type, timeout=10), 401)
    assert count(db, "webhook_events") == 0
    for header in ({"apikey": EVOLUTION_KEY}, {"Authorization": f"Bearer {EVOLUTION_KEY}"}):
        response = httpx.post(url, content=raw, headers=json_type | header, timeout=10)
        assert response.status_code == 200, response.text
    assert count(db, "webhook_events") == 2


def test_a_large_unauthenticated_body_is_refused_before_it_is_parsed(relay: Callable[..., str], db) -> None:
    """Not JSON at all: small, it must be parsed to look for a body key (400); large, it is refused
    unparsed (401), as is a large body with a wrong header key (before issue 11: 400, parsed first)."""
    base = relay()
    url = f"{base}/webhooks/evolution"
    broken = b'{"event": "messages.upsert", "instance": "shop-instance", "x": "' + b"y" * 100
    assert_problem(httpx.post(url, content=broken, timeout=10), 400)
    large = broken + b"y" * EVOLUTION_BODY_KEY_MAX_BYTES
    assert_problem(httpx.post(url, content=large, timeout=10), 401)
    assert_problem(httpx.post(url, content=large, headers={"apikey": "wrong"}, timeout=10), 401)
    assert_problem(httpx.post(url, content=_large(EVOLUTION_KEY), headers={"apikey": "wrong"}, timeout=10), 401)
    assert count(db, "webhook_events") == 0
    # With the key in a header it is authenticated, then read: not JSON, it is kept and dead-lettered.
    response = httpx.post(url, content=large, headers={"apikey": EVOLUTION_KEY}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "failed"
    assert count(db, "webhook_events") == 1
