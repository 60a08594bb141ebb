"""GDPR export and erasure."""

from __future__ import annotations

import itertools
import json

import pytest
from psycopg.types.json import Jsonb

from app.channels import register
from app.settings import ChannelConfig
from kit import payloads as p
from tests.helpers import outbound_messages, outbox_events, raises_sqlstate

PHONE = "+447700900123"


def seed_history(db, channel_id) -> int:
    """A user with preferences, an OTP challenge, an inbound message from a raw
    webhook, an outbound message with a status, and an archived event."""
    uid = db.execute(
        "SELECT user_id FROM whatsapp_handler.register_user(%s, %s, 'Ana')", (PHONE, channel_id)
    ).fetchone()["user_id"]
    db.execute('SELECT whatsapp_handler.set_user_preferences(%s, \'{"language": "pt-BR"}\')', (uid,))
    db.execute("SELECT whatsapp_handler.request_otp(%s, %s)", (PHONE, channel_id))
    wh = db.execute(
        "INSERT INTO whatsapp_handler.webhook_events (provider, channel_id, payload)"
        " VALUES ('meta', %s, %s) RETURNING id",
        (channel_id, json.dumps({"from": PHONE, "text": "hello, my secret"})),
    ).fetchone()["id"]
    for direction, pmid, body, status in (
        ("inbound", "wamid.IN1", "hello, my secret", "received"),
        ("outbound", "wamid.OUT1", "welcome", "sent"),
    ):
        mid = db.execute(
            """INSERT INTO whatsapp_handler.messages
                   (channel_id, user_id, direction, provider_message_id, message_type, body, status, webhook_event_id)
               VALUES (%s, %s, %s, %s, 'text', %s, %s, %s) RETURNING id, created_at""",
            (channel_id, uid, direction, pmid, body, status, wh if direction == "inbound" else None),
        ).fetchone()
        db.execute(
            "INSERT INTO whatsapp_handler.message_keys VALUES (%s, %s, %s, %s)",
            (channel_id, pmid, mid["id"], mid["created_at"]),
        )
    db.execute(
        """INSERT INTO whatsapp_handler.message_status_events
               (channel_id, provider_message_id, status, occurred_at, errors)
           VALUES (%s, 'wamid.OUT1', 'failed', now(),
                   '[{"code": 131026, "title": "undeliverable to +447700900123"}]')""",
        (channel_id,),
    )
    # A consumer already handled the first event: it sits in the archive.
    db.execute("SELECT pgmq.archive('outbox', (SELECT min(msg_id) FROM pgmq.q_outbox))")
    return uid


def test_export_holds_everything_but_secrets(db, channel_id):
    uid = seed_history(db, channel_id)
    doc = db.execute("SELECT whatsapp_handler.export_user(%s) AS d", (uid,)).fetchone()["d"]
    assert doc["format"] == "whatsapp-handler.user-export/1"
    assert doc["user"]["phone"] == PHONE and doc["user"]["display_name"] == "Ana"
    assert doc["preferences"]["language"] == "pt-BR"
    assert len(doc["conversations"]) == 1
    assert [m["body"] for m in doc["messages"]] == ["hello, my secret", "welcome"]
    assert [s["status"] for s in doc["message_statuses"]] == ["failed"]
    [challenge] = doc["otp_challenges"]
    assert "code_hash" not in challenge
    code = outbound_messages(db)[0]["code"]
    assert code not in json.dumps(doc)


def test_erase_removes_personal_data_and_keeps_anonymous_history(db, channel_id):
    uid = seed_history(db, channel_id)
    assert db.execute("SELECT whatsapp_handler.erase_user(%s) AS e", (uid,)).fetchone()["e"] is True

    u = db.execute("SELECT * FROM whatsapp_handler.users WHERE id = %s", (uid,)).fetchone()
    assert (u["phone"], u["display_name"]) == (None, None) and u["erased_at"] is not None
    msgs = db.execute(
        "SELECT direction, message_type, status, body, media FROM whatsapp_handler.messages ORDER BY id"
    ).fetchall()
    assert [(m["direction"], m["message_type"], m["status"]) for m in msgs] == [
        ("inbound", "text", "received"),
        ("outbound", "text", "sent"),
    ]
    assert all(m["body"] is None and m["media"] is None for m in msgs)
    for table in ("webhook_events", "otp_challenges", "user_preferences"):
        assert db.execute(f"SELECT count(*) AS n FROM whatsapp_handler.{table}").fetchone()["n"] == 0, table
    assert db.execute("SELECT errors FROM whatsapp_handler.message_status_events").fetchone()["errors"] is None
    assert outbound_messages(db) == []  # the pending OTP message is not sent to an erased user
    assert db.execute("SELECT count(*) AS n FROM pgmq.a_outbox").fetchone()["n"] == 0

    # The phone number survives nowhere in the project's tables or queues, events still
    # waiting for consumers included (they lose their personal fields; user.erased follows).
    tables = db.execute(
        """SELECT c.oid::regclass::text AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname IN ('whatsapp_handler', 'pgmq') AND c.relkind = 'r'"""
    ).fetchall()
    for row in tables:
        n = db.execute(f"SELECT count(*) AS n FROM {row['t']} x WHERE x::text LIKE %s", (f"%{PHONE[1:]}%",)).fetchone()[
            "n"
        ]
        assert n == 0, row["t"]
    assert outbox_events(db)[-1]["type"] == "user.erased"


def test_erase_is_idempotent_and_erased_users_are_frozen(db, channel_id):
    uid = seed_history(db, channel_id)
    db.execute("SELECT whatsapp_handler.erase_user(%s)", (uid,))
    assert db.execute("SELECT whatsapp_handler.erase_user(%s) AS e", (uid,)).fetchone()["e"] is False
    assert len(outbox_events(db, "user.erased")) == 1
    with raises_sqlstate("WH009"):
        db.execute("SELECT whatsapp_handler.accept_terms(%s, 'v1')", (uid,))
    with raises_sqlstate("WH002"):
        db.execute("SELECT whatsapp_handler.touch_user_activity(%s)", (uid,))
    # The same phone may come back: it is a new person as far as we know.
    again = db.execute("SELECT * FROM whatsapp_handler.register_user(%s, %s)", (PHONE, channel_id)).fetchone()
    assert again["created"] is True and again["user_id"] != uid
    doc = db.execute("SELECT whatsapp_handler.export_user(%s) AS d", (uid,)).fetchone()["d"]
    assert doc["user"]["phone"] is None and doc["preferences"] is None


def test_erase_removes_the_users_dead_letters_and_archives(db, channel_id):
    uid = seed_history(db, channel_id)
    other = db.execute(
        "SELECT user_id FROM whatsapp_handler.register_user('+447700900999', %s)", (channel_id,)
    ).fetchone()["user_id"]
    for user in (uid, other):
        group = json.dumps({"x-pgmq-group": f"user:{user}"})
        db.execute(
            'INSERT INTO pgmq.q_outbound_dlq (vt, message, headers) VALUES (now(), \'{"to": "+44"}\', %s)', (group,)
        )
        db.execute("INSERT INTO pgmq.q_outbox_dlq (vt, message, headers) VALUES (now(), '{}', %s)", (group,))
    db.execute("SELECT whatsapp_handler.erase_user(%s)", (uid,))
    for queue in ("q_outbound_dlq", "q_outbox_dlq", "a_outbound", "a_outbox"):
        groups = [r["g"] for r in db.execute(f"SELECT headers ->> 'x-pgmq-group' AS g FROM pgmq.{queue}").fetchall()]
        assert f"user:{uid}" not in groups, queue
    assert db.execute("SELECT count(*) AS n FROM pgmq.q_outbound_dlq").fetchone()["n"] == 1  # the other user's stays


# Every kind of raw row that can name a person, through the real ingestion functions.
SECRET_TEXT = "my very secret text"
TWILIO_REF = "whatsapp:+15550002222"
EVOLUTION_REF = "shop-instance"


def ingest(db, provider: str, body: dict) -> dict:
    return db.execute(f"SELECT whatsapp_handler.ingest_{provider}(%s, NULL) AS r", (Jsonb(body),)).fetchone()["r"]


def seed_raw_kinds(db) -> int:
    """The user writes on Meta, Twilio and Evolution; providers retry, report statuses, send
    account-level events; a body names a channel we do not have (dead-lettered); a body is not
    JSON at all; replies and events are queued, consumed, archived and dead-lettered."""
    meta = db.execute(
        "SELECT whatsapp_handler.add_channel('meta', %s, '+15550001111', 'Support', 'acme') AS id",
        (p.META_PHONE_NUMBER_ID,),
    ).fetchone()["id"]
    db.execute("SELECT whatsapp_handler.add_channel('twilio', %s, '+15550002222', 'Twilio', 'acme')", (TWILIO_REF,))
    db.execute("SELECT whatsapp_handler.add_channel('evolution', %s, '+15550003333', 'Shop', 'acme')", (EVOLUTION_REF,))
    wa_id = PHONE[1:]
    first = p.meta_text(wa_id, "wamid.GDPR1", body=SECRET_TEXT)
    assert ingest(db, "meta", first)["messages"] == 1
    assert ingest(db, "meta", first)["duplicates"] == 1  # Meta's retried copy
    statuses = [
        p.meta_status("wamid.OUT1", "delivered", wa_id),
        p.meta_status("wamid.OUT1", "failed", wa_id, errors=[{"code": 131026, "title": f"undeliverable to {PHONE}"}]),
    ]
    assert ingest(db, "meta", p.meta_body(p.meta_value(statuses=statuses)))["statuses"] == 2
    account = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "user_preferences", "value": {
            "metadata": {"display_phone_number": p.META_DISPLAY_PHONE, "phone_number_id": p.META_PHONE_NUMBER_ID},
            "user_preferences": [{"wa_id": wa_id, "category": "marketing_messages", "value": "stop"}]}}]}],
    }  # fmt: skip
    assert ingest(db, "meta", account)["outcome"] == "stored"
    elsewhere = p.meta_text(wa_id, "wamid.GDPR2", body=SECRET_TEXT, phone_number_id="999")
    assert ingest(db, "meta", elsewhere)["outcome"] == "failed"  # dead-lettered
    sid = "SM" + "1" * 32
    assert ingest(db, "twilio", p.twilio_inbound(sid, PHONE, "+15550002222", body=SECRET_TEXT))["messages"] == 1
    assert ingest(db, "twilio", p.twilio_status("SM" + "2" * 32, "delivered", "+15550002222", PHONE))["statuses"] == 1
    assert ingest(db, "evolution", p.evolution_upsert(EVOLUTION_REF, PHONE, "3EB0GDPR", text=SECRET_TEXT))["messages"]
    update = p.evolution_update(EVOLUTION_REF, "3EB0OUT", "DELIVERY_ACK")
    update["data"]["remoteJid"] = f"{wa_id}@s.whatsapp.net"
    ingest(db, "evolution", update)
    contacts = {"event": "contacts.upsert", "instance": EVOLUTION_REF,
                "data": [{"remoteJid": f"{wa_id}@s.whatsapp.net", "pushName": "Ana"}]}  # fmt: skip
    assert ingest(db, "evolution", contacts)["outcome"] == "stored"
    form = f"From=whatsapp%3A%2B{wa_id}&Body={SECRET_TEXT.replace(' ', '+')}%00".encode()
    db.execute("SELECT whatsapp_handler.ingest_raw('twilio', %s, NULL, 'not JSON', NULL)", (form,))
    uid = db.execute("SELECT id FROM whatsapp_handler.users WHERE phone = %s", (PHONE,)).fetchone()["id"]
    db.execute('SELECT whatsapp_handler.set_user_preferences(%s, \'{"language": "pt-BR"}\')', (uid,))
    db.execute("SELECT whatsapp_handler.request_otp(%s, %s)", (PHONE, meta))
    # Consumers and the worker took some: archived, and dead-lettered then archived.
    db.execute("SELECT pgmq.archive('outbox', (SELECT min(msg_id) FROM pgmq.q_outbox))")
    db.execute("SELECT pgmq.archive('outbound', (SELECT min(msg_id) FROM pgmq.q_outbound))")
    for queue in ("outbound", "outbox"):
        db.execute(
            f"""INSERT INTO pgmq.a_{queue}_dlq (msg_id, read_ct, enqueued_at, archived_at, vt, message, headers)
                SELECT msg_id, read_ct, enqueued_at, now(), vt, message, headers FROM pgmq.q_{queue}
                ORDER BY msg_id DESC LIMIT 1"""
        )
        db.execute(
            f"""INSERT INTO pgmq.q_{queue}_dlq (vt, message, headers)
                SELECT vt, message, headers FROM pgmq.q_{queue} ORDER BY msg_id DESC LIMIT 1"""
        )
    return uid


def rows_naming(db, needles: list[str]) -> dict[str, int]:
    """Rows of every table of the project and of pgmq (queues and archives, partitions)
    holding any needle, in their text or in a bytea column."""
    found: dict[str, int] = {}
    tables = db.execute(
        """SELECT c.oid::regclass::text AS t,
                  array(SELECT quote_ident(a.attname) FROM pg_attribute a
                        WHERE a.attrelid = c.oid AND a.atttypid = 'bytea'::regtype AND a.attnum > 0
                          AND NOT a.attisdropped) AS bytea_columns
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname IN ('whatsapp_handler', 'pgmq') AND c.relkind = 'r'"""
    ).fetchall()
    assert any(t["t"] == "pgmq.q_outbox" for t in tables)
    for row in tables:
        for needle in needles:
            checks = ["x::text LIKE %s"] + [f"position(%s::bytea IN x.{c}) > 0" for c in row["bytea_columns"]]
            args = [f"%{needle}%"] + [needle.encode()] * len(row["bytea_columns"])
            n = db.execute(f"SELECT count(*) AS n FROM {row['t']} x WHERE {' OR '.join(checks)}", args).fetchone()["n"]
            if n:
                found[f"{row['t']} {needle}"] = n
    return found


def test_erase_leaves_no_raw_row_naming_the_user_in_any_form(db):
    uid = seed_raw_kinds(db)
    needles = [PHONE[1:], SECRET_TEXT, SECRET_TEXT.replace(" ", "+")]
    assert rows_naming(db, needles)
    # The data holds every kind: inbound on three providers, the retried copy, statuses,
    # dead-lettered, account-level events, a body kept only as bytes.
    raw = db.execute(
        "SELECT count(*) AS n FROM whatsapp_handler.webhook_events WHERE payload::text LIKE %s OR raw IS NOT NULL",
        (f"%{PHONE[1:]}%",),
    ).fetchone()["n"]
    assert raw == 11
    assert db.execute("SELECT count(*) AS n FROM pgmq.q_inbound_dlq").fetchone()["n"] == 2

    assert db.execute("SELECT whatsapp_handler.erase_user(%s) AS e", (uid,)).fetchone()["e"] is True
    assert rows_naming(db, needles) == {}
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.webhook_events").fetchone()["n"] == 0
    assert db.execute("SELECT count(*) AS n FROM pgmq.q_inbound_dlq").fetchone()["n"] == 0
    # Events still waiting keep their place and say that they lost their content.
    events = outbox_events(db)
    assert events[-1]["type"] == "user.erased"
    received = [e for e in events if e["type"] == "message.received"]
    assert received and all(e["payload"]["erased"] is True and "body" not in e["payload"] for e in received)
    # Anonymous history stays.
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.messages WHERE user_id = %s", (uid,)).fetchone()["n"]


def test_erase_keeps_the_raw_webhooks_of_other_people(db):
    seed_raw_kinds(db)
    other = "+447700900999"
    ingest(db, "meta", p.meta_text(other[1:], "wamid.OTHER", body="not mine"))
    # A number that only contains the user's digits is another number.
    ingest(db, "meta", p.meta_text("1" + PHONE[1:], "wamid.LONGER", body="nor mine"))
    uid = db.execute("SELECT id FROM whatsapp_handler.users WHERE phone = %s", (PHONE,)).fetchone()["id"]
    db.execute("SELECT whatsapp_handler.erase_user(%s)", (uid,))
    kept = db.execute("SELECT payload FROM whatsapp_handler.webhook_events ORDER BY id").fetchall()
    assert [r["payload"]["entry"][0]["changes"][0]["value"]["messages"][0]["id"] for r in kept] == [
        "wamid.OTHER",
        "wamid.LONGER",
    ]


def test_erasure_finds_raw_webhooks_through_the_index(db):
    """webhook_events is large and partitioned by day: erasure must not read it whole."""
    db.execute("SET enable_seqscan = off")  # the test table is tiny; what matters is that the plan can use it
    plan = "\n".join(
        r["QUERY PLAN"]
        for r in db.execute(
            """EXPLAIN DELETE FROM whatsapp_handler.webhook_events w
               WHERE (whatsapp_handler._webhook_strings(w.provider, w.outcome, w.payload)
                         ?| whatsapp_handler._phone_forms('+447700900123')
                      OR (w.payload IS NULL AND position('447700900123'::bytea IN w.raw) > 0))"""
        ).fetchall()
    )
    assert "Bitmap Index Scan" in plan, plan
    assert "Seq Scan" not in plan, plan


# One app's credentials must not act for another app's users (docs/security.md, brands).
OTHER_APP_REF = "2222222222"
_sent = itertools.count(1)


def say_on(db, provider: str, text: str, ref: str = p.META_PHONE_NUMBER_ID) -> dict:
    """The phone says text on a channel, as that channel's provider delivers it."""
    n = next(_sent)
    if provider == "meta":
        body = p.meta_text(PHONE[1:], f"wamid.B{n}", body=text, phone_number_id=ref)
    elif provider == "twilio":
        body = p.twilio_inbound(f"SM{n:032x}", PHONE, TWILIO_REF.removeprefix("whatsapp:"), body=text)
    else:
        body = p.evolution_upsert(EVOLUTION_REF, PHONE, f"3EB0{n:08X}", text=text)
    result = ingest(db, provider, body)
    assert result["outcome"] == "processed", result
    return result


ATTACKERS = {
    "meta-other-app": ("meta", OTHER_APP_REF, "+15550004444"),
    "twilio": ("twilio", TWILIO_REF, "+15550002222"),
    "evolution": ("evolution", EVOLUTION_REF, "+15550003333"),
}


def add_channels(db, brands: dict[str, str | None] | None = None) -> dict[str, int]:
    brands = brands or {}
    ids = {
        "support": db.execute(
            "SELECT whatsapp_handler.add_channel('meta', %s, '+15550001111', 'Support', %s) AS id",
            (p.META_PHONE_NUMBER_ID, brands.get("support")),
        ).fetchone()["id"]
    }
    for name, (provider, ref, phone) in ATTACKERS.items():
        ids[name] = db.execute(
            "SELECT whatsapp_handler.add_channel(%s, %s, %s, %s, %s) AS id",
            (provider, ref, phone, name, brands.get(name)),
        ).fetchone()["id"]
    return ids


def person(db) -> dict:
    return db.execute("SELECT * FROM whatsapp_handler.users ORDER BY id LIMIT 1").fetchone()


def conversation(db, channel_id: int) -> dict:
    return db.execute("SELECT * FROM whatsapp_handler.conversations WHERE channel_id = %s", (channel_id,)).fetchone()


@pytest.mark.parametrize("attacker", sorted(ATTACKERS))
def test_another_channel_neither_erases_nor_accepts_terms_for_a_user_it_does_not_own(db, attacker):
    """Two channels configured without a brand: the second one's credentials (another Meta
    app's secret, Twilio's token, Evolution's apikey) sent "YES" then "DELETE", "YES" in
    the name of a person who only ever wrote to the first."""
    ids = add_channels(db)
    provider, ref, _ = ATTACKERS[attacker]
    say_on(db, "meta", "hi from the real person")
    assert conversation(db, ids["support"])["state"] == "awaiting_terms"

    for text in ("hello", "YES"):
        say_on(db, provider, text, ref)
    assert person(db)["terms_version"] is None
    assert outbox_events(db, "user.terms_accepted") == []
    [scoped] = outbox_events(db, "user.brand_terms_accepted")
    assert scoped["payload"] == {
        "brand": f"channel:{ids[attacker]}",
        "channel_id": ids[attacker],
        "terms_version": "2026-11",
    }

    for text in ("DELETE", "YES"):
        say_on(db, provider, text, ref)
    victim = person(db)
    assert victim["phone"] == PHONE and victim["erased_at"] is None
    assert outbox_events(db, "user.erased") == []
    [erased] = outbox_events(db, "user.brand_erased")
    assert erased["payload"] == {"brand": f"channel:{ids[attacker]}", "channel_ids": [ids[attacker]]}
    # What the first channel holds is untouched: the message, its raw webhook, the conversation.
    assert [r["body"] for r in db.execute(
        "SELECT body FROM whatsapp_handler.messages WHERE channel_id = %s AND direction = 'inbound'", (ids["support"],)
    ).fetchall()] == ["hi from the real person"]  # fmt: skip
    assert (
        db.execute(
            "SELECT count(*) AS n FROM whatsapp_handler.webhook_events WHERE channel_id = %s", (ids["support"],)
        ).fetchone()["n"]
        == 1
    )
    assert conversation(db, ids["support"])["state"] == "awaiting_terms"
    # What the second one held about the phone is gone, its messages anonymous.
    assert (
        db.execute(
            "SELECT count(*) AS n FROM whatsapp_handler.webhook_events WHERE channel_id = %s", (ids[attacker],)
        ).fetchone()["n"]
        == 0
    )
    assert (
        db.execute(
            """SELECT count(*) AS n FROM whatsapp_handler.messages
           WHERE channel_id = %s AND direction = 'inbound' AND (user_id IS NOT NULL OR body IS NOT NULL)""",
            (ids[attacker],),
        ).fetchone()["n"]
        == 0
    )
    assert conversation(db, ids[attacker])["state"] == "closed"

    # The real person still accepts their own terms, for the person, on their channel.
    say_on(db, "meta", "YES")
    assert person(db)["terms_version"] == "2026-11"
    assert len(outbox_events(db, "user.terms_accepted")) == 1
    # Writing again to the second channel starts over there: welcome, and its terms.
    say_on(db, provider, "hello again", ref)
    assert conversation(db, ids[attacker])["state"] == "awaiting_terms"


def test_a_person_known_to_two_brands_is_erased_from_the_one_asked(db):
    ids = add_channels(db)
    for text in ("hi", "YES"):
        say_on(db, "meta", text)
    say_on(db, "twilio", "hi twilio", TWILIO_REF)
    for text in ("DELETE", "YES"):
        say_on(db, "meta", text)
    assert person(db)["phone"] == PHONE
    [erased] = outbox_events(db, "user.brand_erased")
    assert erased["payload"]["channel_ids"] == [ids["support"]]
    assert (
        db.execute(
            "SELECT count(*) AS n FROM whatsapp_handler.messages WHERE body = 'hi twilio' AND user_id IS NOT NULL"
        ).fetchone()["n"]
        == 1
    )
    # Once no other brand knows them, the person is erased.
    for text in ("DELETE", "YES"):
        say_on(db, "twilio", text, TWILIO_REF)
    assert person(db)["phone"] is None and person(db)["erased_at"] is not None
    assert len(outbox_events(db, "user.erased")) == 1


def consents_and_buckets(db) -> list[tuple[int, int]]:
    """(channel, rows) of the person's consents and pacing buckets, each channel counted once per row."""
    return sorted(
        (r["channel_id"], r["n"])
        for r in db.execute(
            "SELECT channel_id, count(*) AS n FROM (SELECT channel_id FROM whatsapp_handler.consents UNION ALL "
            "SELECT channel_id FROM whatsapp_handler.pacing_pairs) x GROUP BY channel_id"
        )
    )


def test_an_erasure_forgets_consents_and_pacing_of_the_brand_then_of_every_channel(db):
    """Consents and pacing buckets name whom a person heard from: the brand's part of an erasure takes
    the brand's, the whole erasure takes the rest."""
    ids = add_channels(db)
    say_on(db, "meta", "hi")
    say_on(db, "twilio", "hi twilio", TWILIO_REF)
    user = person(db)["id"]
    for channel in (ids["support"], ids["twilio"]):
        db.execute("SELECT whatsapp_handler._record_consent(%s, %s, true, 'api:signup')", (user, channel))
        db.execute("INSERT INTO whatsapp_handler.pacing_pairs VALUES (%s, %s, now())", (channel, user))
    assert consents_and_buckets(db) == sorted([(ids["support"], 2), (ids["twilio"], 2)])
    for text in ("DELETE", "YES"):
        say_on(db, "meta", text)
    assert person(db)["phone"] == PHONE and consents_and_buckets(db) == [(ids["twilio"], 2)]
    for text in ("DELETE", "YES"):
        say_on(db, "twilio", text, TWILIO_REF)
    assert person(db)["erased_at"] is not None and consents_and_buckets(db) == []


def dead_letters_of(db, channel_id: int) -> tuple[int, int]:
    """(outbound_dlq, outbox_dlq) letters about a channel, waiting or archived."""
    return db.execute(
        """SELECT (SELECT count(*) FROM (SELECT message FROM pgmq.q_outbound_dlq UNION ALL
                                         SELECT message FROM pgmq.a_outbound_dlq) d
                   WHERE d.message #>> '{message,channel_id}' = %(c)s) AS outbound,
                  (SELECT count(*) FROM (SELECT message FROM pgmq.q_outbox_dlq UNION ALL
                                         SELECT message FROM pgmq.a_outbox_dlq) d
                   WHERE d.message #>> '{event,payload,channel_id}' = %(c)s) AS outbox""",
        {"c": str(channel_id)},
    ).fetchone().values()  # fmt: skip


def test_a_brand_erasure_takes_that_brands_dead_letters_and_leaves_the_others(db):
    ids = add_channels(db)
    for text in ("hi", "YES"):
        say_on(db, "meta", text)
    say_on(db, "twilio", "hi twilio", TWILIO_REF)
    # Every reply queued so far fails for good (one claim per user at a time), and every
    # waiting event poisons its consumer.
    while claimed := db.execute("SELECT msg_id FROM whatsapp_handler.worker_claim(100, 60)").fetchall():
        for row in claimed:
            db.execute("SELECT whatsapp_handler.worker_dead_letter(%s, 'attempts_exhausted', '{}')", (row["msg_id"],))
    # Read once and visible again: the poison check looks only at events read before.
    db.execute("UPDATE pgmq.q_outbox SET read_ct = 1")
    db.execute("SELECT whatsapp_handler._dead_letter_outbox(1)")
    db.execute("SELECT pgmq.archive('outbound_dlq', (SELECT min(msg_id) FROM pgmq.q_outbound_dlq))")
    kept = tuple(dead_letters_of(db, ids["twilio"]))
    assert all(n > 0 for n in dead_letters_of(db, ids["support"])) and all(n > 0 for n in kept)

    for text in ("DELETE", "YES"):
        say_on(db, "meta", text)
    assert outbox_events(db, "user.brand_erased")
    assert tuple(dead_letters_of(db, ids["support"])) == (0, 0)
    assert tuple(dead_letters_of(db, ids["twilio"])) == kept


def test_channels_of_one_brand_share_terms_and_erasure(db):
    """The legitimate path: an operator puts channels (two numbers, two providers) in one brand."""
    ids = add_channels(db, {"support": "acme", "twilio": "acme"})
    for text in ("hi", "YES"):
        say_on(db, "meta", text)
    assert person(db)["terms_version"] == "2026-11"
    say_on(db, "twilio", "hi", TWILIO_REF)
    assert conversation(db, ids["twilio"])["state"] == "active"  # the brand's terms are accepted
    for text in ("DELETE", "YES"):
        say_on(db, "twilio", text, TWILIO_REF)
    assert person(db)["phone"] is None
    assert len(outbox_events(db, "user.erased")) == 1 and outbox_events(db, "user.brand_erased") == []


def test_a_brand_is_a_short_lower_case_name(db):
    with raises_sqlstate("WH008"):
        db.execute("SELECT whatsapp_handler.add_channel('meta', '1', '+15550001111', 'n', 'channel:1')")
    with raises_sqlstate("WH008"):
        db.execute("SELECT whatsapp_handler.add_channel('meta', '1', '+15550001111', 'n', 'Acme')")
    with pytest.raises(ValueError, match="brand"):
        ChannelConfig(provider="meta", ref="1", phone="+15550001111", name="n", secret="s" * 32, brand="Acme Ltd")


def test_serve_registers_the_configured_brand(db, db_url):
    config = dict(provider="evolution", ref="shop", phone="+15550003333", name="Shop", secret="k" * 32)
    register(db_url, [ChannelConfig(**config, brand="acme")])
    assert db.execute("SELECT brand FROM whatsapp_handler.channels").fetchone()["brand"] == "acme"
    register(db_url, [ChannelConfig(**config)])  # unset again: a brand of its own
    assert db.execute("SELECT brand FROM whatsapp_handler.channels").fetchone()["brand"] is None


@pytest.mark.parametrize("attacker", sorted(ATTACKERS))
def test_over_http_another_apps_credentials_cannot_erase_the_first_apps_user(relay, db, attacker):
    """The attack as it came in: properly authenticated webhooks from another channel's credentials."""
    import httpx

    from tests.relay import EVOLUTION_KEY, META_OTHER_SECRET, post_meta, post_twilio

    base = relay()
    assert post_meta(base, p.meta_text(PHONE[1:], "wamid.REAL", body="hi from the real person")).status_code == 200
    provider, ref, _ = ATTACKERS[attacker]
    for n, text in enumerate(("hello", "YES", "DELETE", "YES")):
        if provider == "meta":
            r = post_meta(
                base, p.meta_text(PHONE[1:], f"wamid.X{n}", body=text, phone_number_id=ref), META_OTHER_SECRET
            )
        elif provider == "twilio":
            r = post_twilio(base, p.twilio_inbound(f"SM{n:032x}", PHONE, "+15550002222", body=text))
        else:
            body = p.evolution_upsert(EVOLUTION_REF, PHONE, f"3EB0X{n:07X}", text=text, apikey=EVOLUTION_KEY)
            r = httpx.post(f"{base}/webhooks/evolution", json=body, timeout=10)
        assert r.status_code == 200, r.text
    victim = person(db)
    assert victim["phone"] == PHONE and victim["erased_at"] is None and victim["terms_version"] is None
    assert outbox_events(db, "user.erased") == [] and outbox_events(db, "user.terms_accepted") == []
    assert len(outbox_events(db, "user.brand_erased")) == 1
    assert (
        db.execute("SELECT body FROM whatsapp_handler.messages WHERE provider_message_id = 'wamid.REAL'").fetchone()[
            "body"
        ]
        == "hi from the real person"
    )
