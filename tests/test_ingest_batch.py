"""ingest_batch's set-based path for plain text messages in active conversations
(_ingest_meta_texts): it must write exactly what ingesting the same webhooks one by one
writes, and leave everything else to the one-by-one path."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p
from tests.helpers import outbox_events

FAST_REF = "111111111111"  # the channel that gets batches
SLOW_REF = "222222222222"  # the channel that gets the same webhooks one at a time
PHONES = ["447700900101", "447700900102", "447700900103"]


@pytest.fixture
def channels(db) -> dict[str, int]:
    def add(ref: str, phone: str) -> int:
        return db.execute("SELECT whatsapp_handler.add_channel('meta', %s, %s, 'test') AS id", (ref, phone)).fetchone()[
            "id"
        ]

    return {FAST_REF: add(FAST_REF, "+15550001111"), SLOW_REF: add(SLOW_REF, "+15550002222")}


def text(ref: str, wa_id: str, wamid: str, body: str = "hello") -> dict:
    return p.meta_body(p.meta_value([p.meta_message(wa_id, wamid, body=body)], phone_number_id=ref))


def one(db, body: dict, cid: str) -> dict:
    return db.execute("SELECT whatsapp_handler.ingest_meta(%s, %s) AS r", (Jsonb(body), cid)).fetchone()["r"]


def batch(db, bodies: list[dict], cids: list[str]) -> list[dict]:
    return db.execute(
        "SELECT whatsapp_handler.ingest_batch('meta', %s::jsonb[], %s) AS r", ([Jsonb(b) for b in bodies], cids)
    ).fetchone()["r"]


def fast_path(db, bodies: list[dict], cids: list[str]) -> list[dict | None]:
    """_ingest_meta_texts alone: its results, None for the webhooks it leaves to the loop."""
    return db.execute(
        "SELECT whatsapp_handler._ingest_meta_texts(%s::jsonb[], %s) AS r", ([Jsonb(b) for b in bodies], cids)
    ).fetchone()["r"]


def activate(db, ref: str, wa_id: str) -> None:
    """First contact, then YES: the conversation is active."""
    one(db, text(ref, wa_id, f"wamid.hi-{ref}-{wa_id}", "hi"), "setup")
    one(db, text(ref, wa_id, f"wamid.yes-{ref}-{wa_id}", "YES"), "setup")


def written(db, channel_id: int) -> dict:
    """What ingestion left for one channel, without ids and times."""
    messages = db.execute(
        """SELECT m.provider_message_id, m.message_type, m.body, m.media, m.status, m.correlation_id, u.phone,
                  w.outcome, w.correlation_id AS event_cid, w.channel_id IS NOT NULL AS routed
           FROM whatsapp_handler.messages m JOIN whatsapp_handler.users u ON u.id = m.user_id
           JOIN whatsapp_handler.webhook_events w ON w.id = m.webhook_event_id
           WHERE m.channel_id = %s AND m.direction = 'inbound' AND m.correlation_id <> 'setup' ORDER BY m.id""",
        (channel_id,),
    ).fetchall()
    events = [
        (e["type"], e["correlation_id"], e["payload"]["body"], e["payload"]["type"], e["payload"]["media"],
         e["payload"]["reply_id"], e["version"], e["aggregate_type"], e["_headers"]["x-pgmq-group"].startswith("user:"))
        for e in outbox_events(db, "message.received")
        if e["payload"]["channel_id"] == channel_id and e["correlation_id"] != "setup"
    ]  # fmt: skip
    states = db.execute(
        "SELECT state FROM whatsapp_handler.conversations WHERE channel_id = %s ORDER BY user_id", (channel_id,)
    ).fetchall()
    return {"messages": [dict(m) for m in messages], "events": events, "states": [s["state"] for s in states]}


def fast_and_slow(db, channels, make: list[tuple[str, str, str]]) -> tuple[list[dict], list[dict]]:
    """The same webhooks (wa_id, wamid, body) in one batch on one channel and one by one on the other."""
    cids = [f"c{i}" for i in range(len(make))]
    # Called directly, so that a fast path that failed (and fell back) could not pass for one that works.
    fast = fast_path(db, [text(FAST_REF, w, f"F.{m}", b) for w, m, b in make], cids)
    assert None not in fast
    slow = [one(db, text(SLOW_REF, w, f"S.{m}", b), c) for (w, m, b), c in zip(make, cids, strict=True)]
    return fast, slow


def strip_ids(results: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "webhook_event_id"} for r in results]


def test_a_batch_of_texts_writes_what_one_by_one_writes(db, channels):
    for phone in PHONES:
        activate(db, FAST_REF, phone)
        activate(db, SLOW_REF, phone)
    before = db.execute("SELECT count(*) AS n FROM pgmq.q_outbound").fetchone()["n"]
    make = [(PHONES[0], "1", "hello"), (PHONES[1], "2", "olá 👋"), (PHONES[0], "3", "again"), (PHONES[2], "4", "yes")]

    fast, slow = fast_and_slow(db, channels, make)

    assert strip_ids(fast) == strip_ids(slow) == [{"outcome": "processed", "messages": 1, "duplicates": 0,
                                                   "statuses": 0, "registrations": 0}] * 4  # fmt: skip
    fast_rows, slow_rows = written(db, channels[FAST_REF]), written(db, channels[SLOW_REF])
    for row in fast_rows["messages"]:
        row["provider_message_id"] = row["provider_message_id"].replace("F.", "S.")
    # A batch is taken in sender order, so only each sender's own order is the arrival order.
    for rows in (fast_rows, slow_rows):
        rows["messages"].sort(key=lambda m: (m["phone"], m["provider_message_id"]))
        rows["events"].sort()
    assert fast_rows == slow_rows
    # One sender's messages keep the batch's order; no message got a reply.
    assert [m["body"] for m in fast_rows["messages"] if m["phone"] == "+" + PHONES[0]] == ["hello", "again"]
    assert db.execute("SELECT count(*) AS n FROM pgmq.q_outbound").fetchone()["n"] == before


def test_the_fast_path_really_takes_plain_texts(db, channels):
    """Called directly, it answers for the plain texts of known senders and leaves the rest (NULL)."""
    activate(db, FAST_REF, PHONES[0])
    bodies = [
        text(FAST_REF, PHONES[0], "wamid.A"),
        text(FAST_REF, PHONES[1], "wamid.B"),  # unknown sender: first contact is _ingest's
        text(FAST_REF, PHONES[0], "wamid.A"),  # the same message again in the batch
    ]
    results = fast_path(db, bodies, ["a", "b", "c"])
    assert results[1] is None
    assert (results[0]["messages"], results[0]["duplicates"]) == (1, 0)
    assert (results[2]["messages"], results[2]["duplicates"]) == (0, 1)


def test_retries_and_duplicates_in_a_batch_are_acted_on_once(db, channels):
    activate(db, FAST_REF, PHONES[0])
    one(db, text(FAST_REF, PHONES[0], "wamid.seen"), "earlier")
    bodies = [text(FAST_REF, PHONES[0], w) for w in ("wamid.seen", "wamid.new", "wamid.new")]
    results = batch(db, bodies, ["r1", "r2", "r3"])
    assert [(r["messages"], r["duplicates"]) for r in results] == [(0, 1), (1, 0), (0, 1)]
    assert len({r["webhook_event_id"] for r in results}) == 3  # every raw body is kept
    assert len(outbox_events(db, "message.received")) == 2 + 2  # activation's two, "earlier" and "wamid.new"


@pytest.mark.parametrize("keyword", ["STOP", " help ", "Delete"])
def test_a_sender_with_a_keyword_in_the_batch_goes_one_by_one_in_order(db, channels, keyword):
    activate(db, FAST_REF, PHONES[0])
    activate(db, FAST_REF, PHONES[1])
    queued = db.execute("SELECT count(*) AS n FROM pgmq.q_outbound").fetchone()["n"]
    bodies = [
        text(FAST_REF, PHONES[0], "wamid.k1", "before"),
        text(FAST_REF, PHONES[1], "wamid.o1", "other"),
        text(FAST_REF, PHONES[0], "wamid.k2", keyword),
        text(FAST_REF, PHONES[0], "wamid.k3", "after"),
    ]
    fast = fast_path(db, bodies, list("abcd"))
    assert [r is None for r in fast] == [True, False, True, True]
    # The direct call above committed its one webhook (autocommit); the batch then sees it as a retry.
    results = batch(db, bodies, list("abcd"))
    assert [(r["messages"], r["duplicates"]) for r in results] == [(1, 0), (0, 1), (1, 0), (1, 0)]
    bodies_in_order = [
        r["body"]
        for r in db.execute(
            """SELECT m.body FROM whatsapp_handler.messages m JOIN whatsapp_handler.users u ON u.id = m.user_id
               WHERE u.phone = %s AND m.direction = 'inbound' AND m.correlation_id <> 'setup' ORDER BY m.id""",
            ("+" + PHONES[0],),
        )
    ]
    assert bodies_in_order == ["before", keyword, "after"]
    # The keyword was acted on: STOP opts out, HELP answers, DELETE asks and "after" cancels it.
    replies = {"STOP": 1, " help ": 1, "Delete": 2}[keyword]
    state = {"STOP": "opted_out", " help ": "active", "Delete": "active"}[keyword]
    assert db.execute("SELECT count(*) AS n FROM pgmq.q_outbound").fetchone()["n"] == queued + replies
    assert written(db, channels[FAST_REF])["states"][0] == state


def test_a_body_the_tables_refuse_falls_back_and_is_dead_lettered_alone(db, channels):
    activate(db, FAST_REF, PHONES[0])
    too_long = "wamid." + "x" * 300  # over messages.provider_message_id's 256 characters
    bodies = [text(FAST_REF, PHONES[0], "wamid.ok1"), text(FAST_REF, PHONES[0], too_long),
              text(FAST_REF, PHONES[0], "wamid.ok2")]  # fmt: skip
    results = batch(db, bodies, ["a", "b", "c"])
    assert [r["outcome"] for r in results] == ["processed", "failed", "processed"]
    dead = db.execute("SELECT message FROM pgmq.q_inbound_dlq").fetchall()
    assert [d["message"]["webhook_event_id"] for d in dead] == [results[1]["webhook_event_id"]]


def test_opted_out_and_blocked_senders_are_recorded_without_replies(db, channels):
    activate(db, FAST_REF, PHONES[0])
    activate(db, FAST_REF, PHONES[1])
    one(db, text(FAST_REF, PHONES[0], "wamid.stop", "STOP"), "setup")
    uid = db.execute("SELECT id FROM whatsapp_handler.users WHERE phone = %s", ("+" + PHONES[1],)).fetchone()["id"]
    db.execute("SELECT whatsapp_handler.block_user(%s, 'test')", (uid,))
    queued = db.execute("SELECT count(*) AS n FROM pgmq.q_outbound").fetchone()["n"]
    results = batch(db, [text(FAST_REF, PHONES[0], "wamid.x1"), text(FAST_REF, PHONES[1], "wamid.x2")], ["a", "b"])
    assert [r["messages"] for r in results] == [1, 1]
    assert db.execute("SELECT count(*) AS n FROM pgmq.q_outbound").fetchone()["n"] == queued
    assert written(db, channels[FAST_REF])["states"] == ["opted_out", "active"]


def test_concurrent_batches_of_the_same_senders_neither_deadlock_nor_lose(db_url, db, channels):
    for phone in PHONES:
        activate(db, FAST_REF, phone)
    errors: list[Exception] = []

    def send(worker: int) -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            for round_ in range(10):
                # Each worker names the senders in a different order; every batch has all three.
                order = PHONES[worker:] + PHONES[:worker]
                bodies = [Jsonb(text(FAST_REF, ph, f"wamid.{worker}.{round_}.{ph}")) for ph in order]
                try:
                    conn.execute("SELECT whatsapp_handler.ingest_batch('meta', %s::jsonb[], %s)",
                                 (bodies, ["c"] * len(bodies)))  # fmt: skip
                except psycopg.Error as exc:
                    errors.append(exc)

    threads = [threading.Thread(target=send, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stored = db.execute(
        "SELECT count(*) AS n FROM whatsapp_handler.messages WHERE provider_message_id LIKE 'wamid._._%'"
    ).fetchone()["n"]
    assert stored == 3 * 10 * 3
