"""POST /webhooks/evolution over real HTTP: the instance's apikey in the body or a header."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import psycopg
import pytest

from tests import payloads as p
from tests.relay import EVOLUTION_KEY, EVOLUTION_REF, assert_problem, count

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
    body = {"event": "connection.update", "instance": EVOLUTION_REF, "data": {"state": "open"}, "apikey": EVOLUTION_KEY}
    response = post(base, body)
    assert response.status_code == 200, response.text
    assert count(db, "webhook_events") == 1


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
def test_bad_apikey_is_401_and_nothing_is_stored(
    relay: Callable[..., str], db: psycopg.Connection, body_key: str, headers: dict[str, str]
) -> None:
    base = relay()
    assert_problem(post(base, p.evolution_upsert(EVOLUTION_REF, USER, "X1", apikey=body_key), **headers), 401)
    assert count(db, "webhook_events") == 0


def test_unknown_instance_is_404(relay: Callable[..., str], db: psycopg.Connection) -> None:
    base = relay()
    assert_problem(post(base, p.evolution_upsert("other-instance", USER, "X2", apikey=EVOLUTION_KEY)), 404)
    assert count(db, "webhook_events") == 0


@pytest.mark.parametrize(
    "content",
    [b"{broken", b'"a string"', b'{"instance": "shop-instance"}', b'{"event": "x", "instance": 7}'],
    ids=["syntax", "not-an-object", "no-event", "numeric-instance"],
)
def test_malformed_body_is_400(relay: Callable[..., str], db: psycopg.Connection, content: bytes) -> None:
    base = relay()
    response = httpx.post(f"{base}/webhooks/evolution", content=content, headers={"apikey": EVOLUTION_KEY})
    assert_problem(response, 400)
    assert count(db, "webhook_events") == 0
