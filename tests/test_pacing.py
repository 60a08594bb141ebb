"""Pacing where workers claim (delivery/pacing, queue/heads): a channel's messages per second and
a person's pace hold however many workers claim at once; held messages are not attempts; OTP codes
are not held by the person's pace; the settings are checked. Times are the database's: the claim
stamps last_read_at with the time it took the tokens at."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p
from tests.helpers import nested_plans, raises_sqlstate


@pytest.fixture
def channel(db) -> int:
    return db.execute(
        "SELECT whatsapp_handler.add_channel('meta', %s, '+15550001111', 'test') AS id", (p.META_PHONE_NUMBER_ID,)
    ).fetchone()["id"]


def setting(db, key: str, value: str) -> None:
    db.execute("UPDATE whatsapp_handler.settings SET value = %s::jsonb WHERE key = %s", (value, key))


def queue(db, channel: int, user_id: int, n: int = 1, kind: str = "text") -> list[int]:
    """n messages to one person, queued as the project queues them (one line per user)."""
    found = []
    for i in range(n):
        to = f"+4477009{user_id:05d}"
        message = {"kind": kind, "channel_id": channel, "user_id": user_id, "to": to, "body": f"m{i}"}
        found.append(db.execute("SELECT whatsapp_handler._enqueue_outbound(%s, %s) AS id",
                                (Jsonb(message), f"user:{user_id}")).fetchone()["id"])  # fmt: skip
    return found


def settle(worker, msg_id: int) -> None:
    """Out of the queue, so that the person's next message is the head (these have no outbound row)."""
    worker.execute("SELECT whatsapp_handler.worker_dead_letter(%s, 'in_doubt', '{}')", (msg_id,))


def claim(worker, qty: int = 100) -> list[dict]:
    return worker.execute("SELECT * FROM whatsapp_handler.worker_claim(%s, 30, '{}')", (qty,)).fetchall()


def most_in_one_second(times: list) -> int:
    """The largest number of times in any one-second window [t, t + 1 s), t any of them."""
    times = sorted(times)
    best, j = 0, 0
    for i in range(len(times)):
        while times[i] - times[j] >= timedelta(seconds=1):
            j += 1
        best = max(best, i - j + 1)
    return best


def test_four_workers_together_hold_a_channels_messages_per_second(db, connect_as, channel):
    setting(db, "pacing.channel.per_second", "20")
    setting(db, "pacing.channel.burst", "5")
    setting(db, "pacing.pair.interval", '"0 seconds"')
    for user in range(1, 201):
        queue(db, channel, user)
    workers = [connect_as("worker") for _ in range(4)]
    claimed: list[int] = []
    deadline = time.monotonic() + 3.0

    def run(conn) -> None:
        while time.monotonic() < deadline:
            claimed.extend(r["msg_id"] for r in claim(conn, 50))
            time.sleep(0.005)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == len(set(claimed)) >= 20  # each once; the run claimed more than one second's worth
    times = [r["last_read_at"] for r in db.execute(
        "SELECT last_read_at FROM pgmq.q_outbound WHERE msg_id = ANY (%s)", (claimed,)).fetchall()]  # fmt: skip
    assert most_in_one_second(times) <= 20
    # What was held back is counted, and was no attempt.
    [row] = db.execute("SELECT held_channel FROM whatsapp_handler.worker_pacing()").fetchall()
    assert row["held_channel"] > 0
    unclaimed = db.execute(
        "SELECT count(*) AS n FROM pgmq.q_outbound WHERE NOT msg_id = ANY (%s) AND headers ? 'attempts'", (claimed,)
    ).fetchone()
    assert unclaimed["n"] == 0


def test_a_held_channel_does_not_hold_the_channels_behind_it(db, connect_as, channel):
    other = db.execute(
        "SELECT whatsapp_handler.add_channel('twilio', 'whatsapp:+15550002222', '+15550002222', 't') AS id"
    ).fetchone()["id"]
    setting(db, "pacing.channel.per_second", "5")
    setting(db, "pacing.channel.burst", "5")
    for user in range(1, 101):
        queue(db, channel, user)
    queue(db, other, 500)
    worker = connect_as("worker")
    first = claim(worker, 50)
    assert len(first) == 5  # the burst of the first channel; the rest put back to their turn
    second = claim(worker, 50)
    assert [r["message"]["channel_id"] for r in second] == [other]


def test_the_messages_behind_a_head_put_back_wait_with_it(db, connect_as, channel):
    """A backlog behind a paced channel: the heads put back to their turns take the messages behind them
    along, so that a claim walks only rows it may take (bench/RESULTS.md, "Paced backlog")."""
    setting(db, "pacing.channel.per_second", "5")
    setting(db, "pacing.channel.burst", "2")
    setting(db, "pacing.pair.interval", '"0 seconds"')
    lines = {user: queue(db, channel, user, n=3) for user in range(1, 11)}
    worker = connect_as("worker")
    taken = {r["msg_id"] for r in claim(worker, 10)}
    assert len(taken) == 2
    vt = {r["msg_id"]: r["vt"] for r in db.execute("SELECT msg_id, vt FROM pgmq.q_outbound").fetchall()}
    now = db.execute("SELECT now() AS t").fetchone()["t"]
    for head, *behind in lines.values():
        if head in taken:
            assert all(vt[m] <= now for m in behind)  # in flight: its settle frees them at once
        else:
            assert vt[head] > now and all(vt[m] == vt[head] for m in behind)
    # What a claim walks now: nothing visible but the two in flight's followers.
    visible = db.execute("SELECT count(*) AS n FROM pgmq.q_outbound WHERE vt <= clock_timestamp()").fetchone()["n"]
    assert visible == 4


def test_the_claim_and_the_next_visible_read_only_their_side_of_the_vt_index(db, channel):
    """What keeps a claim off the waiting rows, and worker_next_visible off the visible ones: the vt
    index bounded by a time taken once (a volatile clock_timestamp() there is a filter over every
    row), seen in the nested plans auto_explain prints."""
    queue(db, channel, 1, n=3)
    notices = nested_plans(db)
    assert len(claim(db)) == 1
    [heads] = [n for n in notices if "FOR UPDATE OF q SKIP LOCKED" in n and "q_outbound_vt_idx" in n]
    assert "Index Cond: (vt <= " in heads, heads
    db.execute("SELECT whatsapp_handler.worker_next_visible()")
    [after] = [n for n in notices if "min(vt)" in n and "q_outbound_vt_idx" in n]
    assert "(vt > $" in after.split("Index Cond:")[1].splitlines()[0], after


def test_a_persons_pace_holds_and_its_held_messages_are_no_attempts(db, connect_as, channel):
    setting(db, "pacing.pair.interval", '"1 second"')
    setting(db, "pacing.pair.burst", "2")
    queue(db, channel, 7, n=5)
    worker = connect_as("worker")
    times = []
    deadline = time.monotonic() + 15
    while len(times) < 5 and time.monotonic() < deadline:
        for row in claim(worker):
            times.append(db.execute("SELECT last_read_at FROM pgmq.q_outbound WHERE msg_id = %s",
                                    (row["msg_id"],)).fetchone()["last_read_at"])  # fmt: skip
            assert row["attempts"] == 1  # held before, never counted
            settle(worker, row["msg_id"])
        time.sleep(0.02)
    assert len(times) == 5
    # A burst of two, then one a second: any three are at least a second apart.
    assert all(b - a >= timedelta(seconds=1) for a, b in zip(times, times[2:], strict=False))
    assert db.execute("SELECT held_pair FROM whatsapp_handler.worker_pacing()").fetchone()["held_pair"] > 0


def test_an_otp_code_is_not_held_by_the_persons_pace_but_counts(db, connect_as, channel):
    setting(db, "pacing.pair.interval", '"1 hour"')
    setting(db, "pacing.pair.burst", "1")
    worker = connect_as("worker")
    [reply] = queue(db, channel, 9)
    assert [r["msg_id"] for r in claim(worker)] == [reply]
    settle(worker, reply)
    [code] = queue(db, channel, 9, kind="otp")
    assert [r["msg_id"] for r in claim(worker)] == [code]
    settle(worker, code)
    queue(db, channel, 9)
    assert claim(worker) == []  # the person's bucket is empty for an hour


def test_settings_that_do_not_fit_stop_the_claim_with_their_fix(db, connect_as, channel):
    setting(db, "pacing.channel.burst", "100")
    queue(db, channel, 1)
    with raises_sqlstate("WH075"):
        claim(connect_as("worker"))
    setting(db, "pacing.channel.burst", "5")
    setting(db, "pacing.pair.interval", '"soon"')
    with raises_sqlstate("WH020"):
        claim(connect_as("worker"))


def test_doctor_names_a_bad_setting_and_a_channel_paced_far_ahead(db, channel):
    from app.doctor import _pacing

    [ok] = list(_pacing(db, 60))
    assert ok.status == "ok" and ok.found == "80/s a channel (burst 5), one every 6 seconds a person (burst 3)"
    db.execute("INSERT INTO whatsapp_handler.pacing_channels (channel_id, booked_until, held_channel) "
               "VALUES (%s, now() + interval '10 minutes', 4000)", (channel,))  # fmt: skip
    [_, far] = list(_pacing(db, 60))
    assert far.status == "warn" and far.name == f"pacing channel {channel}" and "held 4000 by its cap" in far.found
    setting(db, "pacing.channel.burst", "100")
    [bad] = list(_pacing(db, 60))
    assert bad.status == "FAIL" and "(WH075)" in bad.found and "pacing.channel.burst" in bad.fix


def test_the_worker_is_told_when_the_next_held_message_comes_due(db, connect_as, channel):
    """worker_next_visible: the wait before the next claim is until a held message's turn, not the whole
    poll interval (at the default 0.5 s a paced channel got 10 a second); a message visible now but not
    claimable (behind the person's earlier one) does not count, or the worker would poll without rest."""
    worker = connect_as("worker")

    def next_visible() -> float | None:
        return worker.execute("SELECT whatsapp_handler.worker_next_visible() AS s").fetchone()["s"]

    assert next_visible() is None  # an empty queue: the poll interval
    setting(db, "pacing.channel.per_second", "2")
    setting(db, "pacing.channel.burst", "1")
    for user in range(1, 4):
        queue(db, channel, user)
    queue(db, channel, 1)  # behind person 1's first message: visible, not claimable
    [taken] = claim(worker)
    # The two held back were put back to their turns, half a second apart.
    wait = next_visible()
    assert wait is not None and 0 < wait <= 0.5 + 0.05, wait
    db.execute("UPDATE pgmq.q_outbound SET vt = now() - interval '1 second' WHERE msg_id <> %s", (taken["msg_id"],))
    # Only the claimed one (until its visibility timeout, 30 s) is ahead.
    assert 25 < next_visible() <= 30
