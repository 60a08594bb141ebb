"""A backend's message end to end: POST /v1/messages on the relay, the worker delivers it to the provider
double over loopback, the provider's status webhook comes back, GET /v1/messages/{id} shows it delivered.
Nothing is sent twice, however often the backend retries its POST."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p
from kit.provider_double import ProviderDouble
from tests.test_worker import Workers, wait_for

PHONE = "+447700900123"
WA_ID = PHONE.lstrip("+")


@pytest.fixture
def double() -> Iterator[ProviderDouble]:
    d = ProviderDouble().start()
    yield d
    d.stop()


@pytest.fixture
def workers(cluster, db_name, double, tmp_path) -> Iterator[Workers]:
    w = Workers(cluster, db_name, double, tmp_path)
    yield w
    w.stop_all()


def business_requests(double: ProviderDouble) -> list:
    """What reached the double's Meta messages endpoint for the business (the conversation's own
    welcome and terms go there too)."""
    return [d for d in double.deliveries() if "parcel" in str(d.body)]


def test_a_message_goes_out_once_and_reads_back_delivered(
    relay: Callable[..., str], db: psycopg.Connection, double: ProviderDouble, workers: Workers
) -> None:
    base = relay()
    channel = db.execute(
        "SELECT id FROM whatsapp_handler.channels WHERE provider_ref = %s", (p.META_PHONE_NUMBER_ID,)
    ).fetchone()["id"]
    key = db.execute("SELECT api_key FROM whatsapp_handler.api_key_create('shop', %s)", ([channel],)).fetchone()
    auth = {"Authorization": f"Bearer {key['api_key']}", "Idempotency-Key": "parcel-42"}
    db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(p.meta_text(WA_ID, "wamid.HI")),))

    body = {"channel_id": channel, "to": PHONE, "type": "text", "text": {"body": "Your parcel 42 is out for delivery"}}
    answers = [httpx.post(f"{base}/v1/messages", json=body, headers=auth) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert len({a.json()["id"] for a in answers}) == 1
    message_id = answers[0].json()["id"]

    workers.start(worker_concurrency=2)
    [request] = wait_for(lambda: business_requests(double), "the provider's request")
    assert request.body["to"] == WA_ID and request.body["text"]["body"] == "Your parcel 42 is out for delivery"
    provider_id = wait_for(
        lambda: db.execute(
            "SELECT provider_message_id FROM whatsapp_handler.messages WHERE id = %s", (message_id,)
        ).fetchone()["provider_message_id"],
        "the provider's id recorded",
    )
    # A retry after delivery still answers the same message, and nothing more is sent.
    assert httpx.post(f"{base}/v1/messages", json=body, headers=auth).json()["duplicate"] is True

    delivered = p.meta_status(provider_id, "delivered", WA_ID)
    db.execute(
        "SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(p.meta_body(p.meta_value(statuses=[delivered]))),)
    )
    view = httpx.get(f"{base}/v1/messages/{message_id}", headers={"Authorization": auth["Authorization"]}).json()
    assert (view["status"], [s["status"] for s in view["statuses"]]) == ("delivered", ["delivered"])
    assert len(business_requests(double)) == 1


def test_blue_ticks_and_typing_reach_meta_in_one_request(
    relay: Callable[..., str], db: psycopg.Connection, double: ProviderDouble, workers: Workers
) -> None:
    base = relay()
    channel = db.execute(
        "SELECT id FROM whatsapp_handler.channels WHERE provider_ref = %s", (p.META_PHONE_NUMBER_ID,)
    ).fetchone()["id"]
    key = db.execute("SELECT api_key FROM whatsapp_handler.api_key_create('desk', %s)", ([channel],)).fetchone()
    db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(p.meta_text(WA_ID, "wamid.ASK")),))
    auth = {"Authorization": f"Bearer {key['api_key']}"}
    read = {"channel_id": channel, "message_id": "wamid.ASK", "typing": True}
    answer = httpx.post(f"{base}/v1/messages/read", json=read, headers=auth)
    assert (answer.status_code, answer.json()) == (202, {"status": "queued"})
    unknown = httpx.post(f"{base}/v1/messages/read", json={**read, "message_id": "wamid.NONE"}, headers=auth)
    assert unknown.status_code == 404 and unknown.json()["code"] == "WH070"

    workers.start(worker_concurrency=1)
    [receipt] = wait_for(lambda: [d for d in double.deliveries() if d.body.get("status") == "read"], "the receipt")
    assert receipt.body == {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.ASK",
                            "typing_indicator": {"type": "text"}}  # fmt: skip
    # Settled without a message row of its own, and not kept in the archive.
    wait_for(
        lambda: not db.execute("SELECT 1 FROM pgmq.q_outbound WHERE message ->> 'kind' = 'read'").fetchone(), "settled"
    )
    assert not db.execute("SELECT 1 FROM pgmq.a_outbound WHERE message ->> 'kind' = 'read'").fetchone()
    assert not db.execute("SELECT 1 FROM pgmq.q_outbound_dlq").fetchone()
