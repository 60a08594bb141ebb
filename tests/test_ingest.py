"""ingest_meta / ingest_twilio / ingest_evolution: one call per webhook stores the raw
body, records messages and statuses once, and dead-letters what it cannot read."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from kit import payloads as p
from tests.helpers import outbox_events, raises_sqlstate

USER = "+447700900123"
WA_ID = USER[1:]


@pytest.fixture
def channels(db) -> dict[str, int]:
    def add(provider, ref, phone):
        return db.execute(
            "SELECT whatsapp_handler.add_channel(%s, %s, %s, 'test') AS id", (provider, ref, phone)
        ).fetchone()["id"]

    return {
        "meta": add("meta", p.META_PHONE_NUMBER_ID, "+15550001111"),
        "twilio": add("twilio", "whatsapp:+15550002222", "+15550002222"),
        "evolution": add("evolution", "shop-instance", "+15550003333"),
    }


def ingest(conn, provider: str, body: dict, correlation_id: str | None = "cid-test") -> dict:
    return conn.execute(
        f"SELECT whatsapp_handler.ingest_{provider}(%s, %s) AS r", (Jsonb(body), correlation_id)
    ).fetchone()["r"]


def inbound(db) -> list[dict]:
    return db.execute("SELECT * FROM whatsapp_handler.messages WHERE direction = 'inbound' ORDER BY id").fetchall()


def dead_letters(db) -> list[dict]:
    return [r["message"] for r in db.execute("SELECT message FROM pgmq.q_inbound_dlq ORDER BY msg_id").fetchall()]


def sent_message(db, channel_id: int, provider_id: str) -> int:
    """An outbound message the worker has handed to the provider (as issue 4's worker will record it)."""
    uid = db.execute("SELECT user_id FROM whatsapp_handler.register_user(%s, %s)", (USER, channel_id)).fetchone()[
        "user_id"
    ]
    row = db.execute(
        """INSERT INTO whatsapp_handler.messages
               (channel_id, user_id, direction, provider_message_id, message_type, body, status)
           VALUES (%s, %s, 'outbound', %s, 'text', 'hi', 'queued') RETURNING id, created_at""",
        (channel_id, uid, provider_id),
    ).fetchone()
    db.execute(
        "INSERT INTO whatsapp_handler.message_keys VALUES (%s, %s, %s, %s)",
        (channel_id, provider_id, row["id"], row["created_at"]),
    )
    return row["id"]


def test_meta_text_message_is_stored_with_its_raw_body_and_events(db, channels):
    result = ingest(db, "meta", p.meta_text(WA_ID, "wamid.A1", body="hello there"))
    assert result == {"webhook_event_id": result["webhook_event_id"], "outcome": "processed",
                      "messages": 1, "duplicates": 0, "statuses": 0, "registrations": 1}  # fmt: skip
    [msg] = inbound(db)
    assert (msg["body"], msg["message_type"], msg["status"], msg["provider_message_id"]) == (
        "hello there", "text", "received", "wamid.A1"
    )  # fmt: skip
    assert msg["webhook_event_id"] == result["webhook_event_id"] and msg["correlation_id"] == "cid-test"
    raw = db.execute("SELECT * FROM whatsapp_handler.webhook_events").fetchone()
    assert raw["payload"]["entry"][0]["changes"][0]["value"]["messages"][0]["id"] == "wamid.A1"
    assert (raw["outcome"], raw["channel_id"], raw["correlation_id"]) == ("processed", channels["meta"], "cid-test")
    user = db.execute("SELECT phone, display_name, last_active_at FROM whatsapp_handler.users").fetchone()
    assert user["phone"] == USER and user["display_name"] == "Ana" and user["last_active_at"] is not None
    types = [e["type"] for e in outbox_events(db)]
    assert types == ["user.registered", "message.received", "conversation.started"]
    received = outbox_events(db, "message.received")[0]
    assert received["payload"]["body"] == "hello there" and received["correlation_id"] == "cid-test"


def test_a_retried_webhook_is_stored_again_but_acted_on_once(db, channels):
    body = p.meta_text(WA_ID, "wamid.A1")
    ingest(db, "meta", body)
    again = ingest(db, "meta", body)
    assert (again["messages"], again["duplicates"]) == (0, 1)
    assert len(inbound(db)) == 1
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.webhook_events").fetchone()["n"] == 2
    assert len(outbox_events(db, "message.received")) == 1
    assert db.execute("SELECT count(*) AS n FROM pgmq.q_outbound").fetchone()["n"] == 2  # welcome + terms, once


def test_concurrent_duplicates_are_acted_on_once(db_url, db, channels):
    body = Jsonb(p.meta_text(WA_ID, "wamid.RACE"))
    barrier = threading.Barrier(8)
    results = []

    def post():
        with psycopg.connect(db_url, autocommit=True) as conn:
            barrier.wait()
            results.append(conn.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL)", (body,)).fetchone()[0])

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["messages"] for r in results) == [0] * 7 + [1]
    assert all(r["outcome"] == "processed" for r in results)
    assert len(inbound(db)) == 1
    assert len(outbox_events(db, "message.received")) == 1
    assert len(outbox_events(db, "user.registered")) == 1


def test_several_entries_and_changes_in_one_body(db, channels):
    body = p.meta_body(
        p.meta_value([p.meta_message(WA_ID, "wamid.M1"), p.meta_message("447700900999", "wamid.M2")]),
        p.meta_value([p.meta_message(WA_ID, "wamid.M3", body="second change")]),
    )
    body["entry"].append(
        {"id": "x", "changes": [{"field": "messages", "value": p.meta_value([p.meta_message(WA_ID, "wamid.M4")])}]}
    )
    result = ingest(db, "meta", body)
    assert (result["messages"], result["registrations"]) == (4, 2)
    assert [m["provider_message_id"] for m in inbound(db)] == ["wamid.M1", "wamid.M2", "wamid.M3", "wamid.M4"]


@pytest.mark.parametrize(
    ("type_", "content", "body", "media_key"),
    [
        ("image", {"id": "MEDIA1", "mime_type": "image/jpeg", "sha256": "abc", "caption": "a photo"}, "a photo", "id"),
        ("document", {"id": "MEDIA2", "mime_type": "application/pdf", "filename": "bill.pdf"}, None, "filename"),
        ("audio", {"id": "MEDIA3", "mime_type": "audio/ogg; codecs=opus", "voice": True}, None, "voice"),
        (
            "location",
            {"latitude": 51.5, "longitude": -0.12, "name": "Office", "address": "1 Road"},
            "Office, 1 Road",
            "latitude",
        ),
        ("button", {"payload": "accept_terms", "text": "Accept"}, "Accept", "payload"),
        ("unsupported", {}, None, None),
        ("reaction", {"message_id": "wamid.X", "emoji": "👍"}, None, "emoji"),
    ],
)
def test_meta_message_types(db, channels, type_, content, body, media_key):
    message = p.meta_message(WA_ID, f"wamid.{type_}", type_, **content)
    result = ingest(db, "meta", p.meta_body(p.meta_value([message], contacts=[(WA_ID, "Ana")])))
    assert result["outcome"] == "processed"
    [msg] = inbound(db)
    assert (msg["message_type"], msg["body"]) == (type_, body)
    if media_key:
        assert media_key in msg["media"]
    else:
        assert msg["media"][0]["code"] == 131051  # the errors Meta sends for unsupported types


def test_meta_interactive_button_reply_keeps_its_id(db, channels):
    ingest(db, "meta", p.meta_button_reply(WA_ID, "wamid.B1", "accept_terms", "I accept"))
    [msg] = inbound(db)
    assert (msg["message_type"], msg["body"], msg["media"]["button_reply"]["id"]) == (
        "interactive",
        "I accept",
        "accept_terms",
    )


def test_statuses_move_forward_only(db, channels):
    mid = sent_message(db, channels["meta"], "wamid.OUT1")
    for status, at in (("read", 300), ("sent", 100), ("delivered", 200)):
        ingest(
            db,
            "meta",
            p.meta_body(p.meta_value(statuses=[p.meta_status("wamid.OUT1", status, WA_ID, 1_700_000_000 + at)])),
        )
    msg = db.execute("SELECT status FROM whatsapp_handler.messages WHERE id = %s", (mid,)).fetchone()
    assert msg["status"] == "read"  # the late "sent" and "delivered" did not overwrite it
    reported = db.execute("SELECT status::text FROM whatsapp_handler.message_status_events ORDER BY id").fetchall()
    assert [r["status"] for r in reported] == ["read", "sent", "delivered"]
    changes = outbox_events(db, "message.status_changed")
    assert [(e["payload"]["previous_status"], e["payload"]["status"]) for e in changes] == [("queued", "read")]


def test_failed_status_keeps_the_provider_errors(db, channels):
    sent_message(db, channels["meta"], "wamid.OUT2")
    errors = [{"code": 131026, "title": "Message undeliverable"}]
    ingest(
        db, "meta", p.meta_body(p.meta_value(statuses=[p.meta_status("wamid.OUT2", "failed", WA_ID, errors=errors)]))
    )
    event = outbox_events(db, "message.status_changed")[0]
    assert event["payload"]["status"] == "failed" and event["payload"]["errors"] == errors


def test_status_of_an_unknown_message_is_kept_for_later(db, channels):
    result = ingest(
        db, "meta", p.meta_body(p.meta_value(statuses=[p.meta_status("wamid.UNKNOWN", "delivered", WA_ID)]))
    )
    assert (result["outcome"], result["statuses"]) == ("processed", 1)
    row = db.execute("SELECT message_id, status::text FROM whatsapp_handler.message_status_events").fetchone()
    assert row == {"message_id": None, "status": "delivered"}


@pytest.mark.parametrize(
    ("body", "sqlstate"),
    [
        ({"object": "page", "entry": []}, "WH012"),
        ({"hello": "world"}, "WH012"),
        ([1, 2, 3], "WH012"),
        (p.meta_text(WA_ID, "wamid.X", phone_number_id="999"), "WH003"),
        (p.meta_text("not-a-phone", "wamid.Y"), "WH001"),
        (p.meta_body(p.meta_value([{"from": WA_ID, "type": "text", "text": {"body": "no id"}}])), "23502"),
    ],
)
def test_content_that_cannot_be_read_is_kept_and_dead_lettered(db, channels, body, sqlstate):
    result = ingest(db, "meta", body, correlation_id="cid-bad")
    assert result["outcome"] == "failed"
    raw = db.execute("SELECT payload, outcome, error FROM whatsapp_handler.webhook_events").fetchone()
    assert raw["payload"] == body and raw["outcome"] == "failed" and raw["error"].startswith(sqlstate)
    [letter] = dead_letters(db)
    assert letter["webhook_event_id"] == result["webhook_event_id"] and letter["sqlstate"] == sqlstate
    assert letter["correlation_id"] == "cid-bad"
    # Nothing of the failed part is half-written.
    assert inbound(db) == [] and outbox_events(db) == []
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.users").fetchone()["n"] == 0


def test_a_rolled_back_call_leaves_nothing(db_url, db, channels):
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        ingest(conn, "meta", p.meta_text(WA_ID, "wamid.RB"))
        conn.rollback()
    for table in ("webhook_events", "messages", "message_keys", "users"):
        assert db.execute(f"SELECT count(*) AS n FROM whatsapp_handler.{table}").fetchone()["n"] == 0
    assert outbox_events(db) == []


def test_twilio_inbound_and_status_callbacks(db, channels):
    result = ingest(db, "twilio", p.twilio_inbound("SM0001", USER, "+15550002222", body="hi from twilio"))
    assert (result["outcome"], result["messages"]) == ("processed", 1)
    [msg] = inbound(db)
    assert (msg["body"], msg["provider_message_id"], msg["channel_id"]) == (
        "hi from twilio",
        "SM0001",
        channels["twilio"],
    )

    mid = sent_message(db, channels["twilio"], "SM0002")
    ingest(db, "twilio", p.twilio_status("SM0002", "undelivered", "+15550002222", USER, ErrorCode="63016"))
    status = db.execute("SELECT status::text FROM whatsapp_handler.messages WHERE id = %s", (mid,)).fetchone()["status"]
    assert status == "failed"
    assert outbox_events(db, "message.status_changed")[0]["payload"]["errors"][0]["code"] == "63016"


def test_twilio_media_and_location(db, channels):
    media = p.twilio_inbound("SM0003", USER, "+15550002222", body="", NumMedia="1",
                             MediaUrl0="https://api.twilio.com/media/ME1", MediaContentType0="image/jpeg")  # fmt: skip
    ingest(db, "twilio", media)
    location = p.twilio_inbound("SM0004", USER, "+15550002222", body="", Latitude="51.5", Longitude="-0.12")
    ingest(db, "twilio", location)
    rows = inbound(db)
    assert [r["message_type"] for r in rows] == ["image", "location"]
    assert rows[0]["media"] == [{"url": "https://api.twilio.com/media/ME1", "content_type": "image/jpeg"}]
    assert rows[1]["media"]["latitude"] == "51.5"


def test_twilio_unknown_number_is_dead_lettered(db, channels):
    result = ingest(db, "twilio", p.twilio_inbound("SM0005", USER, "+15559999999"))
    assert result["outcome"] == "failed" and dead_letters(db)[0]["sqlstate"] == "WH003"


def test_evolution_upsert_update_and_other_events(db, channels):
    result = ingest(db, "evolution", p.evolution_upsert("shop-instance", USER, "3EB0A1"))
    assert (result["outcome"], result["messages"]) == ("processed", 1)
    mid = sent_message(db, channels["evolution"], "3EB0OUT")
    ingest(db, "evolution", p.evolution_update("shop-instance", "3EB0OUT", "DELIVERY_ACK"))
    assert (
        db.execute("SELECT status::text FROM whatsapp_handler.messages WHERE id = %s", (mid,)).fetchone()["status"]
        == "delivered"
    )

    # A connection update moves the channel's standing (tests/test_channel_standing.py); a QR code is kept raw.
    connection = {"event": "connection.update", "instance": "shop-instance", "data": {"state": "open"}}
    assert ingest(db, "evolution", connection)["connection"] == "changed"
    qrcode = {"event": "qrcode.updated", "instance": "shop-instance", "data": {"qrcode": {"code": "2@x"}}}
    assert ingest(db, "evolution", qrcode)["outcome"] == "stored"
    outcomes = db.execute("SELECT outcome FROM whatsapp_handler.webhook_events ORDER BY id").fetchall()
    assert [o["outcome"] for o in outcomes] == ["processed", "processed", "processed", "stored"]


def test_evolution_skips_own_echoes_and_groups(db, channels):
    own = p.evolution_upsert("shop-instance", USER, "3EB0OWN")
    own["data"]["key"]["fromMe"] = True
    group = p.evolution_upsert("shop-instance", USER, "3EB0GRP")
    group["data"]["key"]["remoteJid"] = "120363041967849074@g.us"
    for body in (own, group):
        assert ingest(db, "evolution", body)["messages"] == 0
    assert inbound(db) == []


def test_relay_role_can_ingest(connect_as, db, channels):
    relay = connect_as("relay")
    result = relay.execute(
        "SELECT whatsapp_handler.ingest_meta(%s, 'cid') AS r", (Jsonb(p.meta_text(WA_ID, "wamid.R1")),)
    ).fetchone()["r"]
    assert result["messages"] == 1


def test_a_batch_ingests_each_webhook_on_its_own(db, channels):
    bodies = [
        p.meta_text(WA_ID, "wamid.B1"),
        {"object": "nonsense"},
        p.meta_text("447700900999", "wamid.B2"),
        p.meta_text(WA_ID, "wamid.B1"),
    ]
    results = db.execute(
        "SELECT whatsapp_handler.ingest_batch('meta', %s::jsonb[], %s) AS r",
        ([Jsonb(b) for b in bodies], ["c1", "c2", "c3", "c4"]),
    ).fetchone()["r"]
    assert [(r["outcome"], r["messages"], r["duplicates"]) for r in results] == [
        ("processed", 1, 0), ("failed", 0, 0), ("processed", 1, 0), ("processed", 0, 1)
    ]  # fmt: skip
    ids = [r["webhook_event_id"] for r in results]
    stored = db.execute("SELECT id, correlation_id FROM whatsapp_handler.webhook_events").fetchall()
    assert {(s["id"], s["correlation_id"]) for s in stored} == set(zip(ids, ["c1", "c2", "c3", "c4"], strict=True))
    assert len(dead_letters(db)) == 1 and len(inbound(db)) == 2


@pytest.mark.parametrize(
    ("provider", "payloads", "cids"),
    [("telegram", [], []), ("meta", ["{}"], []), ("meta", ["{}"] * 1001, ["c"] * 1001)],
)
def test_a_malformed_batch_is_refused_whole(db, channels, provider, payloads, cids):
    with raises_sqlstate("WH008"):
        db.execute("SELECT whatsapp_handler.ingest_batch(%s, %s::jsonb[], %s)", (provider, payloads, cids))
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.webhook_events").fetchone()["n"] == 0
