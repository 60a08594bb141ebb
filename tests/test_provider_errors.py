"""A provider's refusal classified once, in SQL (delivery/provider_errors): the real worker sends to
the provider double answering as Meta and Twilio do, passes the code to worker_failed, and each code
refuses (a dead letter carrying the reason), retries, or paces the channel or the person, as
docs/worker.md says; nothing is sent twice. The classification is a table an operator may UPDATE."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p
from kit.provider_double import ProviderDouble, meta_error, twilio_error
from tests.test_worker import (
    TWILIO_REF,
    Workers,
    dead_letters,
    outbound_rows,
    queue_depth,
    quick_person_pace,
    wait_for,
)

META_USER = "447700900601"
TWILIO_USER = "+447700900602"


@pytest.fixture
def provider_double() -> Iterator[ProviderDouble]:
    d = ProviderDouble().start()
    yield d
    d.stop()


@pytest.fixture
def channels(db) -> dict[str, int]:
    def add(provider: str, ref: str, phone: str) -> int:
        return db.execute("SELECT whatsapp_handler.add_channel(%s, %s, %s, 'test') AS id",
                          (provider, ref, phone)).fetchone()["id"]  # fmt: skip

    found = {
        "meta": add("meta", p.META_PHONE_NUMBER_ID, "+15550001111"),
        "twilio": add("twilio", TWILIO_REF, "+15550002222"),
    }
    # Throttles short enough for a test: the pause is a setting, and so is the person's pace.
    db.execute("UPDATE whatsapp_handler.settings SET value = '\"1 second\"' WHERE key LIKE 'pacing.%.throttle_pause'")
    quick_person_pace(db)
    return found


@pytest.fixture
def worker(cluster, db_name, provider_double, tmp_path) -> Iterator[Workers]:
    w = Workers(cluster, db_name, provider_double, tmp_path)
    yield w
    w.stop_all()


def first_contact(db, provider: str) -> None:
    """A welcome and the terms queued for one person, in that order."""
    if provider == "meta":
        db.execute("SELECT whatsapp_handler.ingest_meta(%s, 'c')", (Jsonb(p.meta_text(META_USER, "wamid.in-1")),))
    else:
        db.execute("SELECT whatsapp_handler.ingest_twilio(%s, 'c')",
                   (Jsonb(p.twilio_inbound("SM1", TWILIO_USER, "+15550002222")),))  # fmt: skip


def sent_once(double: ProviderDouble) -> list:
    """What the double delivered, each message once (its channel, recipient and content)."""
    keys = Counter((r.path, str(r.body.get("to") or r.body.get("To")), str(r.body.get("text") or r.body.get("Body")))
                   for r in double.deliveries())  # fmt: skip
    assert all(n == 1 for n in keys.values()), keys
    return double.deliveries()


# (provider, the double's first answer, the reason the dead letter carries)
REFUSALS = [
    ("meta", meta_error(131047), "131047", "outside_window"),
    ("meta", meta_error(131026), "131026", "undeliverable"),
    ("meta", meta_error(131050), "131050", "marketing_opt_out"),
    ("meta", meta_error(132001, status=404), "132001", "template_error"),
    ("twilio", twilio_error(63016), "63016", "outside_window"),
    ("twilio", twilio_error(21211), "21211", "invalid_number"),
    ("twilio", twilio_error(21614), "21614", "invalid_number"),
]


@pytest.mark.parametrize(("provider", "answer", "code", "reason"), REFUSALS, ids=[r[2] for r in REFUSALS])
def test_a_refusal_is_dead_lettered_once_with_its_reason(db, channels, provider_double, worker, provider, answer,
                                                          code, reason):  # fmt: skip
    provider_double.script(answer)
    first_contact(db, provider)
    worker.start(worker_concurrency=1)
    wait_for(lambda: queue_depth(db) == 0, "the queue emptied")
    [dead] = dead_letters(db)
    assert dead["reason"] == "rejected" and dead["attempts"] == 1
    assert dead["error"]["code"] == code and dead["error"]["reason"] == reason
    assert dead["error"]["body"] == answer[2]  # the provider's own words are kept
    welcome, terms = outbound_rows(db)
    assert welcome["status"] == "failed" and terms["provider_message_id"] is not None
    assert len(provider_double.received) == 2 and len(sent_once(provider_double)) == 1
    consent = db.execute("SELECT status, source FROM whatsapp_handler.consents WHERE channel_id = %s",
                         (channels[provider],)).fetchall()  # fmt: skip
    if reason == "marketing_opt_out":
        # The person stopped marketing from this business: recorded on this channel, and an event.
        assert consent == [{"status": "opted_out", "source": "provider:131050"}]
        assert db.execute("SELECT count(*) AS n FROM pgmq.q_outbox WHERE message ->> 'type' = 'consent.changed'"
                          ).fetchone()["n"] == 1  # fmt: skip
    else:
        assert consent == []


# (provider, the double's first answer, which bucket the throttle empties)
THROTTLES = [
    ("meta", meta_error(131056), "131056", "pair"),
    ("meta", meta_error(130429), "130429", "channel"),
    ("meta", meta_error(130429, status=429), "130429", "channel"),
    ("twilio", twilio_error(63018), "63018", "channel"),
]


@pytest.mark.parametrize(
    ("provider", "answer", "code", "bucket"), THROTTLES, ids=[f"{t[2]}-{t[1][1]}" for t in THROTTLES]
)
def test_a_throttle_paces_instead_of_spending_an_attempt(db, channels, provider_double, worker, provider, answer, code,
                                                         bucket):  # fmt: skip
    provider_double.script(answer)
    first_contact(db, provider)
    worker.start(worker_concurrency=1, worker_max_attempts=1)
    wait_for(lambda: queue_depth(db) == 0, "both messages delivered after the pause")
    # One attempt allowed, and none spent: the throttled send was put back untried.
    assert dead_letters(db) == []
    assert [h["attempts"] for h in db.execute("SELECT headers FROM pgmq.a_outbound ORDER BY msg_id")
            .fetchall() for h in [h["headers"]]] == [1, 1]  # fmt: skip
    assert len(sent_once(provider_double)) == 2 and len(provider_double.received) == 3
    refused, again = provider_double.received[0], provider_double.received[1]
    assert refused.answer == answer[1] and again.answer in (200, 201)
    # Nothing went on the channel (or to the person) before the pause was over.
    assert again.at - refused.at >= 1.0
    [pacing] = db.execute("SELECT * FROM whatsapp_handler.worker_pacing() WHERE channel_id = %s",
                          (channels[provider],)).fetchall()  # fmt: skip
    assert pacing["throttled"] == 1
    throttled_until = db.execute("SELECT throttled_until FROM whatsapp_handler.pacing_channels WHERE channel_id = %s",
                                 (channels[provider],)).fetchone()["throttled_until"]  # fmt: skip
    assert (throttled_until is not None) == (bucket == "channel")


def test_5xx_is_retried_and_delivered_once(db, channels, provider_double, worker):
    provider_double.script(("status", 503), meta_error(131000, status=500), meta_error(131016))
    first_contact(db, "meta")
    worker.start(worker_concurrency=1)
    wait_for(lambda: queue_depth(db) == 0, "delivered after the retries")
    assert [r.answer for r in provider_double.received] == [503, 500, 400, 200, 200]
    assert dead_letters(db) == [] and len(sent_once(provider_double)) == 2
    welcome = db.execute("SELECT headers FROM pgmq.a_outbound ORDER BY msg_id LIMIT 1").fetchone()["headers"]
    assert welcome["attempts"] == 4 and welcome["last_error"]["reason"] == "transient"


def test_a_code_not_listed_follows_the_http_status(db, channels, provider_double, worker):
    provider_double.script(meta_error(999999))
    first_contact(db, "meta")
    worker.start(worker_concurrency=1)
    wait_for(lambda: queue_depth(db) == 0, "the queue emptied")
    [dead] = dead_letters(db)
    assert dead["reason"] == "rejected" and dead["error"]["code"] == "999999"
    assert dead["error"]["reason"] == "provider_refused"


def test_an_operator_changes_an_outcome_with_an_update(db, channels, provider_double, worker):
    db.execute(
        "UPDATE whatsapp_handler.provider_errors SET outcome = 'retry' WHERE provider = 'meta' AND code = '131026'"
    )
    provider_double.script(meta_error(131026))
    first_contact(db, "meta")
    worker.start(worker_concurrency=1)
    wait_for(lambda: queue_depth(db) == 0, "delivered on the retry")
    assert dead_letters(db) == [] and len(sent_once(provider_double)) == 2 and len(provider_double.received) == 3


def test_worker_failed_refuses_what_it_cannot_mean(connect_as, db, channels):
    from tests.helpers import raises_sqlstate

    worker = connect_as("worker")
    with raises_sqlstate("WH013"):
        worker.execute("SELECT whatsapp_handler.worker_failed(1, '131047', 'maybe', '{}', 1)")
    with raises_sqlstate("WH013"):
        worker.execute("SELECT whatsapp_handler.worker_failed(1, '131047', 'retry', '{}', -1)")
    # A message no longer queued (settled by another worker): nothing to do.
    assert worker.execute("SELECT whatsapp_handler.worker_failed(1, '131047', 'permanent', '{}', NULL) AS o"
                          ).fetchone()["o"] is None  # fmt: skip


def test_a_backend_meets_131050_over_http_and_the_next_marketing_send_is_refused(relay, db, provider_double, worker):
    """As a backend would: POST /v1/messages a marketing template, Meta answers 131050 (the person stopped
    marketing from this business), GET shows it failed with the code, and the next marketing template to them is
    refused before it is queued (WH068): the provider's signal became the person's opt-out on the channel."""
    import httpx

    base = relay()
    channel = db.execute("SELECT id FROM whatsapp_handler.channels WHERE provider_ref = %s",
                         (p.META_PHONE_NUMBER_ID,)).fetchone()["id"]  # fmt: skip
    key = db.execute("SELECT api_key FROM whatsapp_handler.api_key_create('shop', %s)", ([channel],)).fetchone()
    auth = {"Authorization": f"Bearer {key['api_key']}"}
    db.execute("SELECT whatsapp_handler.template_upsert(%s, 'spring_sale', 'en_GB', 'marketing', 'approved', "
               "'[{\"type\": \"BODY\", \"text\": \"Spring sale: {{1}} off\"}]', NULL)", (channel,))  # fmt: skip
    db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(p.meta_text(META_USER, "wamid.HI")),))
    user = db.execute("SELECT id FROM whatsapp_handler.users WHERE phone = %s", (f"+{META_USER}",)).fetchone()["id"]
    db.execute("SELECT whatsapp_handler._record_consent(%s, %s, true, 'api:signup')", (user, channel))
    body = [{"type": "body", "parameters": [{"type": "text", "text": "20%"}]}]
    sale = {"channel_id": channel, "to": f"+{META_USER}", "type": "template",
            "template": {"name": "spring_sale", "language": {"code": "en_GB"}, "components": body}}  # fmt: skip
    answer = httpx.post(f"{base}/v1/messages", json=sale, headers=auth | {"Idempotency-Key": "sale-1"})
    assert answer.status_code == 202
    message_id = answer.json()["id"]
    # The welcome and the terms of the first contact go first, then the sale meets 131050.
    provider_double.script(("ok",), ("ok",), meta_error(131050))
    worker.start(worker_concurrency=1)
    wait_for(lambda: queue_depth(db) == 0, "the queue emptied")
    view = httpx.get(f"{base}/v1/messages/{message_id}", headers=auth).json()
    assert (view["status"], view["delivery"]["state"], view["delivery"]["error"]["code"]) == (
        "failed", "dead_lettered", "131050")  # fmt: skip
    # The backend's events say why: the failure carries the provider's code and the reason.
    [failed] = db.execute(
        "SELECT message -> 'payload' AS p FROM pgmq.q_outbox WHERE message ->> 'type' = 'message.status_changed' "
        "AND message #>> '{payload,status}' = 'failed'"
    ).fetchall()
    assert failed["p"]["errors"]["code"] == "131050" and failed["p"]["errors"]["reason"] == "marketing_opt_out"
    [dead] = dead_letters(db)
    assert dead["error"]["code"] == "131050" and dead["message"]["message_id"] == message_id
    again = httpx.post(f"{base}/v1/messages", json=sale, headers=auth | {"Idempotency-Key": "sale-2"})
    assert again.status_code == 403 and again.json()["code"] == "WH068"
    assert len(provider_double.received) == 3 and len(sent_once(provider_double)) == 2
