"""The outbox contract, as the consumer role sees it: per-user order, visibility timeout,
acknowledgement, and the dead-letter queue for events no consumer can handle."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from app.settings import PROJECT_DIR
from tests.conftest import LOGIN_PASSWORD
from tests.helpers import nested_plans, raises_sqlstate


@pytest.fixture
def consumer(connect_as):
    return connect_as("consumer")


def register(db, channel_id: int, phone: str) -> int:
    """register_user emits user.registered; preferences add user.preferences_updated."""
    uid = db.execute("SELECT user_id FROM whatsapp_handler.register_user(%s, %s)", (phone, channel_id)).fetchone()[
        "user_id"
    ]
    db.execute('SELECT whatsapp_handler.set_user_preferences(%s, \'{"language": "pt-BR"}\')', (uid,))
    return uid


def read(consumer, qty=10, vt=30) -> list[dict]:
    return consumer.execute("SELECT * FROM whatsapp_handler.outbox_read(%s, %s)", (qty, vt)).fetchall()


def types(events: list[dict]) -> list[tuple[int, str]]:
    return sorted((e["message"]["aggregate_id"], e["message"]["type"]) for e in events)


def test_events_come_one_per_user_in_order(db, consumer, channel_id):
    a = register(db, channel_id, "+447700900301")
    b = register(db, channel_id, "+447700900302")
    first = read(consumer)
    assert types(first) == [(a, "user.registered"), (b, "user.registered")]
    assert read(consumer) == []  # each user's next event waits for the first's acknowledgement
    assert (
        consumer.execute("SELECT whatsapp_handler.outbox_ack(%s) AS n", ([e["msg_id"] for e in first],)).fetchone()["n"]
        == 2
    )
    assert types(read(consumer)) == [(a, "user.preferences_updated"), (b, "user.preferences_updated")]
    assert db.execute("SELECT count(*) AS n FROM pgmq.a_outbox").fetchone()["n"] == 2


def test_an_unacknowledged_event_comes_back_after_its_timeout(db, consumer, channel_id):
    register(db, channel_id, "+447700900301")
    [event] = read(consumer)
    db.execute("UPDATE pgmq.q_outbox SET vt = now() WHERE msg_id = %s", (event["msg_id"],))  # the timeout passed
    [again] = read(consumer)
    assert again["msg_id"] == event["msg_id"] and again["read_ct"] == 2


def test_nack_gives_an_event_back(db, consumer, channel_id):
    register(db, channel_id, "+447700900301")
    [event] = read(consumer)
    assert consumer.execute("SELECT whatsapp_handler.outbox_nack(%s, 0) AS ok", (event["msg_id"],)).fetchone()["ok"]
    assert [e["msg_id"] for e in read(consumer)] == [event["msg_id"]]


def test_an_event_read_too_often_moves_to_the_dead_letter_queue(db, consumer, channel_id):
    uid = register(db, channel_id, "+447700900301")
    db.execute("UPDATE whatsapp_handler.settings SET value = '2' WHERE key = 'outbox.max_reads'")
    for _ in range(2):
        [poison] = read(consumer)
        db.execute("UPDATE pgmq.q_outbox SET vt = now() WHERE msg_id = %s", (poison["msg_id"],))
    # The third read moves it aside and hands out the user's next event instead.
    [after] = read(consumer)
    assert after["message"]["type"] == "user.preferences_updated"
    [dead] = db.execute("SELECT message, headers FROM pgmq.q_outbox_dlq").fetchall()
    assert dead["message"]["event"]["type"] == "user.registered" and dead["message"]["read_ct"] == 2
    assert dead["headers"]["x-pgmq-group"] == f"user:{uid}"


def test_only_events_read_before_are_looked_at_for_poison(db, channel_id):
    """The poison check can read the partial index of events read before rather than the whole outbox (a
    scan per read that grew with the backlog; the test's outbox is too small to be worth the index unless
    sequential scans are off)."""
    register(db, channel_id, "+447700900301")
    notices = nested_plans(db)
    [event] = read(db)
    assert event["message"]["type"] == "user.registered" and event["read_ct"] == 1
    [poison_check] = [n for n in notices if "DELETE FROM pgmq.q_outbox q" in n]
    assert "Index Scan on q_outbox_reread_idx" in poison_check or "Index Scan using q_outbox_reread_idx" in poison_check
    assert "Seq Scan" not in poison_check, poison_check


@pytest.mark.parametrize("value", ["0", "1001", "2.5", '"5"', "null"])
def test_a_bad_max_reads_stops_the_read_with_its_fix(db, consumer, channel_id, value):
    """Before, a value not a whole number stopped every read with a cast error, and 0 moved every
    waiting event aside, read or not."""
    register(db, channel_id, "+447700900301")
    db.execute("UPDATE whatsapp_handler.settings SET value = %s::jsonb WHERE key = 'outbox.max_reads'", (value,))
    with raises_sqlstate("WH020") as refused:
        read(consumer)
    assert "outbox.max_reads" in refused.value.diag.message_hint
    assert db.execute("SELECT count(*) AS n FROM pgmq.q_outbox_dlq").fetchone()["n"] == 0


@pytest.mark.parametrize(("qty", "vt"), [(0, 30), (1001, 30), (10, 0), (10, 50000)])
def test_bad_read_arguments_are_refused(consumer, qty, vt):
    with raises_sqlstate("WH014"):
        read(consumer, qty, vt)


@pytest.mark.parametrize("role", ["relay", "worker", "analyst"])
def test_only_the_consumer_reads_the_outbox(connect_as, role):
    with raises_sqlstate("42501"):
        connect_as(role).execute("SELECT * FROM whatsapp_handler.outbox_read(1, 30)")


def test_the_consumer_reaches_no_table(consumer):
    for table in ("pgmq.q_outbox", "whatsapp_handler.users", "pgmq.q_outbound"):
        with raises_sqlstate("42501"):
            consumer.execute(f"SELECT 1 FROM {table} LIMIT 1")


def test_the_documented_consumer_example_drains_the_outbox_in_order(db, cluster, db_name, channel_id, tmp_path):
    uids = [register(db, channel_id, f"+44770090031{n}") for n in range(3)]
    url = cluster.url(db_name, user="wh_test_consumer", password=LOGIN_PASSWORD)
    result = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "docs" / "outbox_consumer.py"), url, "--once"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    handled = [json.loads(line) for line in result.stdout.splitlines()]
    for uid in uids:
        assert [h["type"] for h in handled if h["user"] == uid] == ["user.registered", "user.preferences_updated"]
    assert db.execute("SELECT count(*) AS n FROM pgmq.q_outbox").fetchone()["n"] == 0
    assert db.execute("SELECT count(*) AS n FROM pgmq.a_outbox").fetchone()["n"] == 6
