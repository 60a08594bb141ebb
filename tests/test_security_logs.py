"""The flows that handle secrets, at DEBUG, with their failure paths, and then every log scanned for
them: the relay's, the worker's and PostgreSQL's own (the session cluster's log file). Secrets are the
OTP code, the provider secrets, the Meta access token and verify token, the OTP API key and the
database password. tests/test_relay_faults.py checks the relay's log for the webhook secrets on the
happy path; this file adds OTP codes, the worker, the server log and the failure paths."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import psycopg
import pytest

from app.cluster import LocalCluster
from kit import payloads as p
from tests.conftest import LOGIN_PASSWORD
from tests.relay import (
    EVOLUTION_KEY,
    EVOLUTION_REF,
    META_OTHER_SECRET,
    META_SECRET,
    OTP_KEY,
    TWILIO_TOKEN,
    VERIFY_TOKEN,
    meta_signature,
    post_meta,
    post_twilio,
)
from tests.test_worker import channels_config, double, wait_for, workers  # noqa: F401 (fixtures used by name)

AUTH = {"Authorization": f"Bearer {OTP_KEY}"}
PHONE = "+447700900555"
ACCESS_TOKEN = "EAAG-meta-access-token-7f3c91d2"
WORKER_TWILIO_TOKEN = "worker-twilio-token-5b1e0c"
WORKER_EVOLUTION_KEY = "worker-evolution-key-a94d2e"
WEBHOOK_SECRETS = (META_SECRET, META_OTHER_SECRET, VERIFY_TOKEN, TWILIO_TOKEN, EVOLUTION_KEY, OTP_KEY, LOGIN_PASSWORD)
WORKER_SECRETS = (ACCESS_TOKEN, WORKER_TWILIO_TOKEN, WORKER_EVOLUTION_KEY, LOGIN_PASSWORD)


def otp_code(db: psycopg.Connection, phone: str = PHONE) -> str:
    rows = db.execute("SELECT message->>'code' AS c FROM pgmq.q_outbound WHERE message->>'to' = %s", (phone,))
    return rows.fetchall()[-1]["c"]


def server_log(cluster: LocalCluster, since: int) -> str:
    with open(cluster.log_file, "rb") as log:
        log.seek(since)
        return log.read().decode(errors="replace")


def log_size(cluster: LocalCluster) -> int:
    return cluster.log_file.stat().st_size


def assert_absent(text: str, secrets: tuple[str, ...], where: str) -> None:
    assert text, f"{where} is empty: nothing was scanned"
    for secret in secrets:
        assert secret not in text, f"a secret ({secret[:3]}...) is in {where}"


def test_relay_and_server_logs_hold_no_code_key_or_secret(
    relay: Callable[..., str], db: psycopg.Connection, http_server, cluster: LocalCluster
) -> None:
    start = log_size(cluster)
    base = relay(log_level="DEBUG")
    channel_id = db.execute("SELECT min(id) AS id FROM whatsapp_handler.channels").fetchone()["id"]
    assert (
        httpx.post(f"{base}/v1/otp", json={"phone": PHONE, "channel_id": channel_id}, headers=AUTH).status_code == 202
    )
    code = otp_code(db)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    # Failure paths first: a wrong code, a code with a malformed phone (WH001 raised in SQL, so the
    # server logs the statement), a code too long for the API, a second request inside the minute (WH005).
    verify = f"{base}/v1/otp/verify"
    assert httpx.post(verify, json={"phone": PHONE, "code": wrong}, headers=AUTH).json() == {"outcome": "invalid"}
    assert httpx.post(verify, json={"phone": "+44", "code": code}, headers=AUTH).status_code == 422
    assert httpx.post(verify, json={"phone": PHONE, "code": code * 6}, headers=AUTH).status_code in (400, 422)
    assert (
        httpx.post(verify, json={"phone": PHONE, "code": code}, headers={"X-API-Key": "x" + OTP_KEY}).status_code == 401
    )
    assert (
        httpx.post(f"{base}/v1/otp", json={"phone": PHONE, "channel_id": channel_id}, headers=AUTH).status_code == 429
    )
    assert httpx.post(verify, json={"phone": PHONE, "code": code}, headers=AUTH).json() == {"outcome": "verified"}
    # Webhooks of each provider, good and forged, and Meta's handshake with its token in the query.
    body = json.dumps(p.meta_text("447700900556", "wamid.LOGS")).encode()
    assert post_meta(base, body).status_code == 200
    # Another app's secret over this app's number: the 404 of a number configured nowhere (issue 11, 13).
    assert post_meta(base, body, secret=META_OTHER_SECRET).status_code == 404
    assert post_meta(base, body, secret="not-a-configured-secret").status_code == 401
    handshake = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"}
    assert httpx.get(f"{base}/webhooks/meta", params=handshake).status_code == 200
    assert (
        httpx.get(f"{base}/webhooks/meta", params={**handshake, "hub.verify_token": "x" + VERIFY_TOKEN}).status_code
        == 403
    )
    assert post_twilio(base, p.twilio_inbound("SM" + "f" * 32, "+447700900557", "+15550002222")).status_code == 200
    forged = {"X-Twilio-Signature": "c2ln"}
    twilio_params = p.twilio_inbound("SM" + "9" * 32, "+447700900557", "+15550002222")
    assert httpx.post(f"{base}/webhooks/twilio", data=twilio_params, headers=forged).status_code == 403
    evolution = p.evolution_upsert(EVOLUTION_REF, "+447700900558", "EVOLOGS", apikey=EVOLUTION_KEY)
    assert httpx.post(f"{base}/webhooks/evolution", json=evolution).status_code == 200
    assert httpx.post(f"{base}/webhooks/evolution", json={**evolution, "apikey": EVOLUTION_KEY[:-1]}).status_code == 401
    time.sleep(0.5)  # the relay writes its log lines after answering

    relay_log = http_server.log_text()
    assert '"level": "DEBUG"' in relay_log
    signature = meta_signature(body)
    assert_absent(relay_log, (*WEBHOOK_SECRETS, code, wrong, signature), "the relay's log")
    pg_log = server_log(cluster, start)
    assert "WH001" in pg_log or "malformed" in pg_log  # the failing statement was logged, without its values
    assert_absent(pg_log, (*WEBHOOK_SECRETS, code, signature), "the PostgreSQL log")


@pytest.mark.parametrize("answer", ["rejected", "server-error"])
def test_worker_log_and_dead_letters_hold_no_code_or_token(
    db: psycopg.Connection,
    double,  # noqa: F811
    workers,  # noqa: F811
    cluster: LocalCluster,
    answer: str,
) -> None:
    """The provider answers with an error that echoes the request it was sent, code and all."""
    start = log_size(cluster)
    channels = channels_config(double, access_token=ACCESS_TOKEN)
    channels[1]["secret"], channels[2]["secret"] = WORKER_TWILIO_TOKEN, WORKER_EVOLUTION_KEY
    meta = db.execute("SELECT whatsapp_handler.add_channel('meta', %s, '+15550001111', 'M') AS id",
                      (p.META_PHONE_NUMBER_ID,)).fetchone()["id"]  # fmt: skip
    db.execute("SELECT * FROM whatsapp_handler.request_otp(%s, %s)", (PHONE, meta))
    code = otp_code(db)
    echo = {"error": {"message": f"Invalid parameter: {code}", "request": {"text": code, "auth": ACCESS_TOKEN}}}
    if answer == "rejected":
        double.script(("status", 400, echo))
    else:
        double.always(("status", 500, echo))
    worker = workers.start(channels, log_level="DEBUG", worker_max_attempts=2)
    wait_for(lambda: db.execute("SELECT count(*) AS n FROM pgmq.q_outbound").fetchone()["n"] == 0, "the OTP settled")
    assert double.received and double.received[0].headers.get("Authorization") == f"Bearer {ACCESS_TOKEN}"
    worker.terminate()
    worker.wait(10)
    assert_absent(workers.log(), (*WORKER_SECRETS, code), "the worker's log")
    assert_absent(server_log(cluster, start) or " ", (*WORKER_SECRETS, code), "the PostgreSQL log")
    # No plaintext code outlives its delivery attempt, in a queue, an archive or a table (docs/security.md).
    everywhere = db.execute(
        """SELECT string_agg(t::text, ' ') AS s FROM (
               SELECT message::text || coalesce(headers::text, '') AS t FROM pgmq.q_outbound_dlq
               UNION ALL SELECT message::text || coalesce(headers::text, '') FROM pgmq.a_outbound
               UNION ALL SELECT message::text FROM pgmq.q_outbox
               UNION ALL SELECT m::text FROM whatsapp_handler.messages m) x"""
    ).fetchone()["s"]
    assert everywhere and code not in everywhere and ACCESS_TOKEN not in everywhere


# Issue 11, finding 12: bodies and names never reach the server log -------------------------------------------------

BODY_MARK = "bodytext-7c1e"
NAME_MARK = "Profilename-4b2a"
BAD_PHONE = "+4477009005551234567"  # 19 digits: WH001


def test_server_log_holds_no_body_name_or_phone_from_json_postgres_refuses(
    relay: Callable[..., str], db: psycopg.Connection, cluster: LocalCluster
) -> None:
    """Bodies jsonb refuses as received (its errors quote the JSON: "Token ... is invalid", CONTEXT "JSON
    data, line 1: ..."), of each provider, and a malformed phone (WH001 used to quote it): the relay
    cleans or keeps them before any cast, and SQL says a phone is malformed without repeating it."""
    start = log_size(cluster)
    base = relay()
    wa_id = "447700900561"
    meta_bodies = [
        json.dumps(p.meta_text(wa_id, "wamid.LOG1", body=f"{BODY_MARK}\u0000", name=f"{NAME_MARK}\u0000")),
        json.dumps(p.meta_text(wa_id, "wamid.LOG2", body=f"{BODY_MARK}\ud800", name=f"{NAME_MARK}\udfff")),
        json.dumps(p.meta_text(wa_id, "wamid.LOG3", body=BODY_MARK, name=NAME_MARK))[:-1] + ', "n": 1e999999}',
        f'{{"object": "whatsapp_business_account", "text": "{BODY_MARK}", "name": "{NAME_MARK}", broken',
    ]
    for body in meta_bodies:
        assert post_meta(base, body.encode()).status_code == 200
    form = p.twilio_inbound("SM" + "c" * 32, "+" + wa_id, "+15550002222", Body=f"{BODY_MARK}\u0000")
    assert post_twilio(base, {**form, "ProfileName": f"{NAME_MARK}\u0000"}).status_code == 200
    upsert = p.evolution_upsert(EVOLUTION_REF, "+" + wa_id, "EVOLOG", f"{BODY_MARK}\u0000", apikey=EVOLUTION_KEY)
    evolution = json.dumps(upsert).replace('"Ana"', f'"{NAME_MARK}\\u0000"')
    response = httpx.post(f"{base}/webhooks/evolution", content=evolution, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    verify = httpx.post(f"{base}/v1/otp/verify", json={"phone": BAD_PHONE, "code": "123456"}, headers=AUTH)
    assert verify.status_code == 422 and BAD_PHONE not in verify.text
    direct = db.execute("SELECT count(*) AS n FROM whatsapp_handler.webhook_events WHERE note IS NOT NULL")
    assert direct.fetchone()["n"] == 6, "every body above was kept with its note"
    time.sleep(0.5)

    pg_log = server_log(cluster, start)
    assert "malformed phone number" in pg_log  # the log was written, and is read here
    for personal in (BODY_MARK, NAME_MARK, BAD_PHONE, BAD_PHONE[1:], wa_id):
        assert personal not in pg_log, f"{personal} is in the PostgreSQL log"
    assert "JSON data" not in pg_log and "Token" not in pg_log
