"""/metrics: the relay's counters with their labels, and pgmq queue gauges read at scrape time."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import httpx
import psycopg

from kit import payloads as p
from kit.services import free_port
from tests.relay import EVOLUTION_REF, OTP_KEY, post_meta, post_twilio, relay_environment, scrape

WA_ID = "447700900123"


def test_counters_carry_provider_and_outcome(relay: Callable[..., str], db: psycopg.Connection) -> None:
    base = relay()
    assert post_meta(base, p.meta_text(WA_ID, "wamid.M1")).status_code == 200
    assert post_meta(base, p.meta_text(WA_ID, "wamid.M2")).status_code == 200
    assert post_meta(base, p.meta_text(WA_ID, "wamid.M3"), secret="wrong").status_code == 401
    assert post_meta(base, b"{").status_code == 200  # signed, not JSON: kept raw and dead-lettered
    assert post_twilio(base, p.twilio_inbound("SM" + "9" * 32, "+447700900124", "+15550002222")).status_code == 200
    evolution = {"event": "x", "instance": EVOLUTION_REF, "apikey": "wrong"}
    assert httpx.post(f"{base}/webhooks/evolution", json=evolution).status_code == 401
    channel_id = db.execute("SELECT id FROM whatsapp_handler.channels ORDER BY id LIMIT 1").fetchone()["id"]
    auth = {"X-API-Key": OTP_KEY}
    phone = "+447700900125"
    assert (
        httpx.post(f"{base}/v1/otp", json={"phone": phone, "channel_id": channel_id}, headers=auth).status_code == 202
    )
    verify = httpx.post(f"{base}/v1/otp/verify", json={"phone": phone, "code": "999999x"}, headers=auth)
    assert verify.json() == {"outcome": "invalid"}

    m = scrape(base)
    requests = "whatsapp_webhook_requests_total"
    assert m[(requests, (("outcome", "processed"), ("provider", "meta")))] == 2
    assert m[(requests, (("outcome", "unauthorized"), ("provider", "meta")))] == 1
    assert m[(requests, (("outcome", "failed"), ("provider", "meta")))] == 1
    assert m[(requests, (("outcome", "processed"), ("provider", "twilio")))] == 1
    assert m[(requests, (("outcome", "unauthorized"), ("provider", "evolution")))] == 1
    assert m[("whatsapp_webhook_duration_seconds_count", (("provider", "meta"),))] == 4
    # The first Meta message and the Twilio one registered two people; the OTP request registered a third
    # through request_otp, which is not a webhook.
    assert m[("whatsapp_user_registrations_total", ())] == 2
    assert m[("whatsapp_otp_sent_total", ())] == 1
    assert m[("whatsapp_otp_verified_total", (("outcome", "invalid"),))] == 1
    assert m[("whatsapp_otp_verified_total", (("outcome", "verified"),))] == 0
    assert m[("whatsapp_queue_metrics_up", ())] == 1
    # The OTP code and the welcome replies wait on the outbound queue.
    assert m[("whatsapp_queue_depth", (("queue", "outbound"),))] >= 1
    assert m[("whatsapp_queue_oldest_message_age_seconds", (("queue", "outbound"),))] >= 0
    assert ("whatsapp_queue_depth", (("queue", "outbox"),)) in m


def test_metrics_answer_without_a_database(http_server) -> None:
    unreachable = f"postgresql://postgres:x@127.0.0.1:{free_port()}/whatsapp_handler"
    base = http_server.start(relay_environment(unreachable))
    m = scrape(base)
    assert m[("whatsapp_queue_metrics_up", ())] == 0
    assert not any(name == "whatsapp_queue_depth" for name, _ in m)
    assert json.loads(httpx.get(f"{base}/health").text) == {"status": "ok"}


def test_workers_share_their_counters(http_server, relay_db_url: str, db_url: str, db: psycopg.Connection) -> None:
    env = relay_environment(relay_db_url, http_workers=2) | {"WHATSAPP_HANDLER_DATABASE_URL": db_url}
    base = http_server.start(env, via_cli=True)
    for i in range(20):
        # A connection each, so that both workers answer some.
        assert post_meta(base, p.meta_text(WA_ID, f"wamid.W{i}")).status_code == 200
    for _ in range(6):
        counted = scrape(base)[("whatsapp_webhook_requests_total", (("outcome", "processed"), ("provider", "meta")))]
        assert counted == 20


def test_the_cli_does_not_import_prometheus_client_before_serve_configures_it() -> None:
    """prometheus_client picks its multiprocess mode at import: imported by the CLI before `serve`
    sets PROMETHEUS_MULTIPROC_DIR, it would leave each granian worker counting on its own."""
    probe = "import sys, app.cli; print('prometheus_client' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
