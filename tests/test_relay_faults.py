"""The relay under faults (the database stopped and restarted under it) and its request context:
X-Request-ID echoed, stored and logged; secrets never logged."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import httpx
import psycopg
import pytest

from app.cluster import LocalCluster
from kit import payloads as p
from tests.relay import (
    META_SECRET,
    OTP_KEY,
    TWILIO_TOKEN,
    VERIFY_TOKEN,
    assert_problem,
    meta_signature,
    post_meta,
    post_twilio,
)

WA_ID = "447700900123"
RECOVERY_SECONDS = 20


def test_database_stopped_is_503_then_recovers_without_restarting_the_relay(
    relay: Callable[..., str], cluster: LocalCluster, db_url: str, http_server
) -> None:
    base = relay()
    assert post_meta(base, p.meta_text(WA_ID, "wamid.BEFORE")).status_code == 200
    try:
        cluster.stop()
        down = post_meta(base, p.meta_text(WA_ID, "wamid.DURING"))
        assert_problem(down, 503)
        assert int(down.headers["retry-after"]) > 0
        assert_problem(httpx.get(f"{base}/ready", timeout=10), 503)
        assert httpx.get(f"{base}/health").status_code == 200
    finally:
        cluster.start()
    # The relay reconnects by itself, within its pool's reconnect timeout (10 s) and a few retries.
    deadline = time.monotonic() + RECOVERY_SECONDS
    after = post_meta(base, p.meta_text(WA_ID, "wamid.AFTER"))
    while after.status_code == 503 and time.monotonic() < deadline:
        assert_problem(after, 503)
        after = post_meta(base, p.meta_text(WA_ID, "wamid.AFTER"))
    assert after.status_code == 200, http_server.log_text()
    with psycopg.connect(db_url) as conn:
        ids = conn.execute(
            "SELECT provider_message_id FROM whatsapp_handler.messages WHERE direction = 'inbound' ORDER BY id"
        ).fetchall()
    assert [r[0] for r in ids] == ["wamid.BEFORE", "wamid.AFTER"]


def test_a_restart_between_requests_goes_unnoticed(relay: Callable[..., str], cluster: LocalCluster) -> None:
    base = relay()
    assert post_meta(base, p.meta_text(WA_ID, "wamid.R1")).status_code == 200
    try:
        cluster.stop()
    finally:
        cluster.start()
    # The pooled connections were closed by the server; the pool drops them instead of handing them out.
    response = post_meta(base, p.meta_text(WA_ID, "wamid.R2"))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        ("req-42.a:b_C-9", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("has space", False),
        ("semi;colon", False),
        ("", False),
    ],
)
def test_request_id_is_echoed_when_safe_and_replaced_otherwise(
    relay: Callable[..., str], db: psycopg.Connection, sent: str, echoed: bool
) -> None:
    base = relay()
    response = post_meta(base, p.meta_text(WA_ID, f"wamid.{uuid.uuid4().hex}"), **{"X-Request-ID": sent})
    assert response.status_code == 200, response.text
    returned = response.headers["x-request-id"]
    if echoed:
        assert returned == sent
    else:
        assert str(uuid.UUID(returned)) == returned
    stored = db.execute("SELECT correlation_id FROM whatsapp_handler.webhook_events").fetchone()["correlation_id"]
    assert stored == returned


def test_every_response_carries_a_request_id(relay: Callable[..., str]) -> None:
    base = relay()
    unrouted = httpx.get(f"{base}/nowhere")
    for response in (httpx.get(f"{base}/health"), unrouted, httpx.post(f"{base}/health"), post_meta(base, b"{")):
        [request_id] = response.headers.get_list("x-request-id")
        assert uuid.UUID(request_id)
    assert httpx.get(f"{base}/nowhere", headers={"X-Request-ID": "mine"}).headers["x-request-id"] == "mine"


def test_logs_are_json_with_the_request_id_and_without_secrets(relay: Callable[..., str], http_server) -> None:
    # DEBUG: answered requests are logged too (at INFO only refusals and failures are).
    base = relay(log_level="DEBUG")
    body = json.dumps(p.meta_text(WA_ID, "wamid.LOGGED", body="private words")).encode()
    signature = meta_signature(body, META_SECRET)
    post_meta(base, body, **{"X-Request-ID": "trace-me-1"})
    post_meta(base, body, secret="wrong", **{"X-Request-ID": "trace-me-2"})
    httpx.get(
        f"{base}/webhooks/meta",
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "7"},
    )
    post_twilio(base, p.twilio_inbound("SM" + "8" * 32, "+447700900126", "+15550002222"))
    httpx.post(f"{base}/v1/otp", json={"phone": "+447700900127", "channel_id": 1}, headers={"X-API-Key": OTP_KEY})
    time.sleep(0.5)
    text = http_server.log_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "whatsapp_handler.access"]
    assert {(line["correlation_id"], line["status"]) for line in access} >= {("trace-me-1", 200), ("trace-me-2", 401)}
    for secret in (META_SECRET, signature, VERIFY_TOKEN, TWILIO_TOKEN, OTP_KEY, "private words", "LOGGED"):
        assert secret not in text


def test_at_info_only_refusals_are_logged_per_request(relay: Callable[..., str], http_server) -> None:
    base = relay(log_level="INFO")
    post_meta(base, p.meta_text(WA_ID, "wamid.QUIET"), **{"X-Request-ID": "answered-1"})
    post_meta(base, p.meta_text(WA_ID, "wamid.LOUD"), secret="wrong", **{"X-Request-ID": "refused-1"})
    time.sleep(0.5)
    logged = {json.loads(line).get("correlation_id") for line in http_server.log_text().splitlines() if line[:1] == "{"}
    assert "refused-1" in logged
    assert "answered-1" not in logged
