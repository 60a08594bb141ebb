"""The delivery worker as operators run it (`whatsapp-handler worker`, a process of its own,
logged in as the worker role) against the provider double over loopback: shapes of the
three providers' requests, retries and backoff, the dead-letter path, the breaker, two
workers on one queue, SIGTERM and SIGKILL in the middle of a send."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p
from kit.provider_double import ProviderDouble
from kit.services import free_port
from tests.conftest import LOGIN_PASSWORD

BIN = Path(sys.executable).parent
TWILIO_SID = "AC" + "0" * 32
TWILIO_REF = "whatsapp:+15550002222"
EVOLUTION_REF = "shop-instance"
WAIT = 30.0


@pytest.fixture
def double() -> Iterator[ProviderDouble]:
    d = ProviderDouble().start()
    yield d
    d.stop()


def quick_person_pace(db) -> None:
    """A person's pace as a setting short enough for a test: WhatsApp's (a burst of 3, then one
    message every 6 s) held each retry to one person for 6 s. These tests are about retries, not
    the pace, which tests/test_pacing.py holds; the pace still applies, 0.1 s apart."""
    changed = db.execute(
        "UPDATE whatsapp_handler.settings SET value = '\"0.1 seconds\"' WHERE key = 'pacing.pair.interval'"
    )
    assert changed.rowcount == 1


@pytest.fixture
def channel_ids(db) -> dict[str, int]:
    def add(provider: str, ref: str, phone: str) -> int:
        return db.execute(
            "SELECT whatsapp_handler.add_channel(%s, %s, %s, 'test') AS id", (provider, ref, phone)
        ).fetchone()["id"]

    quick_person_pace(db)
    return {
        "meta": add("meta", p.META_PHONE_NUMBER_ID, "+15550001111"),
        "twilio": add("twilio", TWILIO_REF, "+15550002222"),
        "evolution": add("evolution", EVOLUTION_REF, "+15550003333"),
    }


def channels_config(double: ProviderDouble, **meta_extra: Any) -> list[dict[str, Any]]:
    return [
        {"provider": "meta", "ref": p.META_PHONE_NUMBER_ID, "phone": "+15550001111", "name": "Meta",
         "secret": "meta-app-secret-worker", "access_token": "meta-token", "api_base_url": double.base_url("meta"),
         **meta_extra},
        {"provider": "twilio", "ref": TWILIO_REF, "phone": "+15550002222", "name": "Twilio",
         "secret": "twilio-auth-token-worker", "account_sid": TWILIO_SID, "api_base_url": double.base_url("twilio")},
        {"provider": "evolution", "ref": EVOLUTION_REF, "phone": "+15550003333", "name": "Evo",
         "secret": "evolution-key-worker", "api_base_url": double.base_url("evolution")},
    ]  # fmt: skip


class Workers:
    """`whatsapp-handler worker` processes of one test."""

    def __init__(self, cluster, db_name: str, double: ProviderDouble, tmp_path: Path) -> None:
        self.url = cluster.url(db_name, user="wh_test_worker", password=LOGIN_PASSWORD)
        self.double = double
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen] = []

    def start(self, channels: list[dict] | None = None, **settings: Any) -> subprocess.Popen:
        values = {
            "worker_database_url": self.url, "channels": channels or channels_config(self.double),
            "public_base_url": "https://hooks.example.com", "worker_poll_interval": 0.05,
            "worker_backoff_base": 0.05, "worker_backoff_max": 0.2, "provider_timeout": 1.0,
            "worker_visibility_timeout": 3, "breaker_failures": 50, "breaker_cooldown": 1.0, **settings,
        }  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHATSAPP_HANDLER_")}
        env |= {f"WHATSAPP_HANDLER_{k.upper()}": v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
        log = (self.tmp_path / f"worker{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [str(BIN / "whatsapp-handler"), "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        self.procs.append(proc)
        return proc

    def log(self, n: int = 0) -> str:
        return (self.tmp_path / f"worker{n}.log").read_text()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


@pytest.fixture
def workers(cluster, db_name, double, tmp_path) -> Iterator[Workers]:
    w = Workers(cluster, db_name, double, tmp_path)
    yield w
    w.stop_all()


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def say_hi(db, wa_id: str, n: int = 0) -> None:
    """First contact on the Meta channel: a welcome and the terms are queued for the user."""
    db.execute("SELECT whatsapp_handler.ingest_meta(%s, 'c')", (Jsonb(p.meta_text(wa_id, f"wamid.hi{wa_id}.{n}")),))


def queue_depth(db, queue: str = "outbound") -> int:
    return db.execute(f"SELECT count(*) AS n FROM pgmq.q_{queue}").fetchone()["n"]


def outbound_rows(db) -> list[dict]:
    return db.execute(
        "SELECT id, user_id, body, status, provider_message_id FROM whatsapp_handler.messages "
        "WHERE direction = 'outbound' ORDER BY id"
    ).fetchall()


def dead_letters(db) -> list[dict]:
    return [r["message"] for r in db.execute("SELECT message FROM pgmq.q_outbound_dlq ORDER BY msg_id").fetchall()]


def test_replies_reach_each_provider_in_its_own_shape(db, channel_ids, double, workers):
    say_hi(db, "447700900401")
    db.execute("SELECT whatsapp_handler.ingest_twilio(%s, 'c')",
               (Jsonb(p.twilio_inbound("SM1", "+447700900402", "+15550002222")),))  # fmt: skip
    db.execute("SELECT whatsapp_handler.ingest_evolution(%s, 'c')",
               (Jsonb(p.evolution_upsert(EVOLUTION_REF, "447700900403", "EVO-IN-1")),))  # fmt: skip
    workers.start()
    wait_for(lambda: queue_depth(db) == 0 and len(double.deliveries()) == 6, "six replies delivered")

    by_provider = {
        prov: [r for r in double.deliveries() if r.provider == prov] for prov in ("meta", "twilio", "evolution")
    }
    meta = by_provider["meta"][0]
    assert meta.headers["Authorization"] == "Bearer meta-token" and meta.path.endswith(
        f"/{p.META_PHONE_NUMBER_ID}/messages"
    )
    assert (
        meta.body["to"] == "447700900401"
        and meta.body["type"] == "text"
        and meta.body["messaging_product"] == "whatsapp"
    )
    twilio = by_provider["twilio"][0]
    assert twilio.body["From"] == TWILIO_REF and twilio.body["To"] == "whatsapp:+447700900402"
    assert twilio.path == f"/twilio/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    evolution = by_provider["evolution"][0]
    assert evolution.headers["apikey"] == "evolution-key-worker" and evolution.body["number"] == "447700900403"
    # Each user got the welcome before the terms, and each row holds its provider's id.
    for prov in by_provider:
        bodies = [r.body.get("text", {}).get("body") if prov == "meta" else r.body.get("Body", r.body.get("text"))
                  for r in by_provider[prov]]  # fmt: skip
        assert bodies[0].startswith("Welcome") and "terms" in bodies[1].lower(), bodies
    rows = outbound_rows(db)
    assert len(rows) == 6 and all(r["provider_message_id"] for r in rows)
    assert db.execute("SELECT count(*) AS n FROM pgmq.a_outbound").fetchone()["n"] == 6


def test_an_otp_goes_as_an_authentication_template_and_leaves_no_code(db, channel_ids, double, workers):
    db.execute("SELECT * FROM whatsapp_handler.request_otp('+447700900401', %s)", (channel_ids["meta"],))
    code = db.execute("SELECT message ->> 'code' AS c FROM pgmq.q_outbound").fetchone()["c"]
    workers.start()
    [sent] = wait_for(lambda: double.deliveries(), "the OTP delivered")
    template = sent.body["template"]
    assert sent.body["type"] == "template" and template["name"] == "otp_code"
    assert template["components"][0]["parameters"][0]["text"] == code
    wait_for(lambda: queue_depth(db) == 0, "the OTP settled")
    everything = db.execute(
        "SELECT (SELECT coalesce(string_agg(message::text, ''), '') FROM pgmq.a_outbound) || "
        "(SELECT coalesce(string_agg(message::text, ''), '') FROM pgmq.q_outbox) AS s"
    ).fetchone()["s"]
    assert code not in everything


def test_429_and_5xx_are_retried_with_backoff_then_delivered_once(db, channel_ids, double, workers):
    double.script(("status", 500), ("status", 429, {"error": "slow down"}, {"Retry-After": "0"}), ("drop",))
    say_hi(db, "447700900401")
    workers.start(worker_concurrency=1)
    wait_for(lambda: queue_depth(db) == 0, "both replies delivered")
    answers = [r.answer for r in double.received]
    assert answers[:3] == [500, 429, -1] and answers[3:] == [200, 200]
    assert len(double.deliveries()) == 2 and dead_letters(db) == []
    archived = db.execute("SELECT headers FROM pgmq.a_outbound ORDER BY msg_id").fetchall()
    # The dropped connection was the last error: no HTTP status, the client's own error.
    assert archived[0]["headers"]["attempts"] == 4 and "status" not in archived[0]["headers"]["last_error"]


def test_a_stalled_provider_times_out_and_the_message_is_retried(db, channel_ids, double, workers):
    double.script(("stall", 5))
    say_hi(db, "447700900401")
    workers.start(worker_concurrency=1, provider_timeout=0.5)
    wait_for(lambda: queue_depth(db) == 0, "delivered after the stall")
    assert [r.answer for r in double.received][1:] == [200, 200] and len(double.deliveries()) == 2


def test_a_refused_message_goes_to_the_dead_letter_queue_at_once(db, channel_ids, double, workers):
    refusal = {"error": {"message": "Recipient not on WhatsApp", "code": 131026}}
    double.script(("status", 400, refusal))
    say_hi(db, "447700900401")
    workers.start(worker_concurrency=1)
    wait_for(lambda: queue_depth(db) == 0, "the queue emptied")
    [dead] = dead_letters(db)
    assert dead["reason"] == "rejected" and dead["error"]["body"] == refusal and dead["attempts"] == 1
    welcome, terms = outbound_rows(db)
    assert welcome["status"] == "failed" and terms["provider_message_id"] is not None
    assert len(double.received) == 2


def test_after_max_attempts_a_message_is_dead_lettered_for_the_re_drive(db, channel_ids, double, workers):
    double.always(("status", 503))
    say_hi(db, "447700900401")
    workers.start(worker_concurrency=1, worker_max_attempts=3)
    [dead] = wait_for(lambda: dead_letters(db), "a dead letter")
    assert dead["reason"] == "provider_down" and dead["attempts"] == 3 and dead["error"]["status"] == 503
    assert outbound_rows(db)[0]["status"] == "queued"  # not failed: the re-drive may still send it


def test_the_breaker_stops_hammering_a_provider_that_is_down(db, channel_ids, double, workers):
    double.always(("status", 500))
    for n in range(10):
        say_hi(db, f"44770090050{n}")
    workers.start(worker_concurrency=1, breaker_failures=2, breaker_cooldown=1.0, worker_max_attempts=100)
    wait_for(lambda: len(double.received) >= 2, "the first failures")
    time.sleep(2.5)  # two cool-downs: one probe after each
    assert len(double.received) <= 5, [r.answer for r in double.received]
    double.always(("ok",))
    wait_for(lambda: queue_depth(db) == 0, "everything delivered once the provider is back")
    assert len(double.deliveries()) == 20 and dead_letters(db) == []


def test_two_workers_share_the_queue_without_sending_anything_twice(db, channel_ids, double, workers):
    for n in range(40):
        say_hi(db, f"4477009006{n:02d}")
    double.always(("slow", 0.01))
    workers.start()
    workers.start()
    wait_for(lambda: queue_depth(db) == 0, "80 replies delivered", timeout=60)
    delivered = double.deliveries()
    assert len(delivered) == 80
    rows = outbound_rows(db)
    assert len({r["provider_message_id"] for r in rows}) == 80
    # Per user, the welcome reached the provider before the terms.
    for user in {r["user_id"] for r in rows}:
        mine = [r["provider_message_id"] for r in rows if r["user_id"] == user]
        order = [int(pid.removeprefix("wamid.double")) for pid in mine]
        assert order == sorted(order)


def test_sigterm_finishes_the_sends_under_way(db, channel_ids, double, workers):
    double.always(("slow", 1.0))
    for n in range(5):
        say_hi(db, f"44770090070{n}")
    proc = workers.start(provider_timeout=3.0, worker_visibility_timeout=6)
    wait_for(lambda: len(double.received) == 5, "five sends under way")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    # The five were answered and recorded as sent; the terms behind them were never claimed.
    assert len(double.deliveries()) == 5
    assert sum(1 for r in outbound_rows(db) if r["provider_message_id"]) == 5
    assert (
        queue_depth(db) == 5
        and db.execute("SELECT count(*) AS n FROM pgmq.q_outbound WHERE headers ->> 'in_flight' = 'true'").fetchone()[
            "n"
        ]
        == 0
    )


@pytest.mark.parametrize("idempotent", [False, True])
def test_sigkill_mid_send_loses_nothing_and_sends_nothing_twice(db, channel_ids, double, workers, idempotent):
    double.always(("slow", 1.0))
    for n in range(3):
        say_hi(db, f"44770090080{n}")
    channels = channels_config(double, **({"idempotency_header": "Idempotency-Key"} if idempotent else {}))
    proc = workers.start(channels)
    wait_for(lambda: len(double.received) == 3, "three sends under way")
    proc.kill()  # the provider still accepts the three: the worker never hears of it
    proc.wait(10)
    wait_for(lambda: len(double.deliveries()) == 3, "the provider's answers")
    double.always(("ok",))
    workers.start(channels)
    wait_for(lambda: queue_depth(db) == 0, "the queue settled", timeout=60)
    # Three welcomes (once each) and three terms: six deliveries, none twice.
    assert len(double.deliveries()) == 6
    keys = [r.headers.get("Idempotency-Key") for r in double.deliveries()]
    if idempotent:
        # Sent again with the same key, recognised, and recorded as sent.
        assert len(set(keys)) == 6 and sum(r.duplicate for r in double.received) == 3
        assert dead_letters(db) == []
        assert all(r["provider_message_id"] for r in outbound_rows(db))
    else:
        # Without a key the outcome is unknown: parked for a person, not sent again.
        assert [d["reason"] for d in dead_letters(db)] == ["in_doubt"] * 3


def test_a_channel_without_credentials_dead_letters_with_a_clear_error(db, channel_ids, double, workers):
    say_hi(db, "447700900401")
    config = channels_config(double)
    del config[0]["access_token"]
    workers.start(config, worker_concurrency=1)
    wait_for(lambda: len(dead_letters(db)) == 2, "two dead letters")
    assert "no sending credentials" in dead_letters(db)[0]["error"]["error"]
    assert "cannot send: a Meta channel needs access_token" in workers.log()


def test_bad_worker_settings_are_one_line_and_a_non_zero_exit(workers):
    proc = workers.start(worker_visibility_timeout=5, provider_timeout=10)
    assert proc.wait(30) == 1
    lines = workers.log().strip().splitlines()
    assert lines == ["whatsapp-handler: error: invalid settings: Value error, worker_visibility_timeout must be "
                     "longer than provider_timeout"], lines  # fmt: skip


def test_the_worker_serves_its_metrics(db, channel_ids, double, workers):
    port = free_port()
    say_hi(db, "447700900401")
    workers.start(worker_metrics_port=port)
    wait_for(lambda: queue_depth(db) == 0, "both replies delivered")
    text = wait_for(lambda: _get(f"http://127.0.0.1:{port}/metrics"), "the metrics endpoint")
    assert 'whatsapp_outbound_messages_total{outcome="sent",provider="meta"} 2.0' in text
    assert "whatsapp_provider_request_seconds_count" in text
    assert "process_resident_memory_bytes" in text  # the worker process's own


def _get(url: str) -> str | None:
    try:
        return httpx.get(url, timeout=1).text
    except httpx.TransportError:
        return None


def test_a_malformed_queued_message_is_rejected_not_left_in_doubt(db, channel_ids, double, workers):
    db.execute(
        "INSERT INTO pgmq.q_outbound (vt, message, headers) VALUES (now(), %s, %s)",
        (Jsonb({"kind": "text", "channel_id": channel_ids["meta"], "user_id": 1, "body": "no address"}),
         Jsonb({"x-pgmq-group": "user:1"})),
    )  # fmt: skip
    workers.start(worker_concurrency=1)
    [dead] = wait_for(lambda: dead_letters(db), "a dead letter")
    assert dead["reason"] == "rejected" and "malformed queue message" in dead["error"]["error"]
    assert double.received == [] and "Traceback" not in workers.log()
