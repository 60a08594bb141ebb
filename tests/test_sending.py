"""The send API's rules in SQL (sending/send): keys scoped to channels, the message's shape, what each
provider carries, the 24-hour window, templates, consent, idempotency, batches, and who may call it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p
from tests.helpers import outbound_messages, outbox_events, raises_sqlstate

PHONE = "+447700900123"
WA_ID = PHONE.lstrip("+")
TEXT = {"type": "text", "text": {"body": "Your parcel is on its way"}}


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass
class World:
    db: psycopg.Connection
    meta: int  # brand "acme", Meta: the channel the Meta payloads of kit reach
    other: int  # brand "globex", Meta
    twilio: int
    evolution: int
    key: str  # acme's key: send and read on meta, twilio and evolution
    other_key: str  # globex's key

    def send(
        self, request: dict[str, Any], idem: str = "k1", key: str | None = None, channel: int | None = None
    ) -> dict:
        body = {"channel_id": self.meta if channel is None else channel, "to": PHONE, **request}
        return self.db.execute(
            "SELECT * FROM whatsapp_handler.send_message(%s, %s, %s, 'cid-1')",
            (digest(key or self.key), Jsonb(body), idem),
        ).fetchone()

    def inbound(self, wamid: str = "wamid.IN1") -> None:
        """A message from the person on the Meta channel: it opens their window there."""
        self.db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(p.meta_text(WA_ID, wamid)),))

    def template(self, name: str = "parcel_update", category: str = "utility", status: str = "approved",
                 body: str = "Hi {{1}}, parcel {{2}}", channel: int | None = None) -> None:  # fmt: skip
        self.db.execute(
            "SELECT whatsapp_handler.template_upsert(%s, %s, 'en_GB', %s, %s, %s, 'HX0123')",
            (channel or self.meta, name, category, status, Jsonb([{"type": "BODY", "text": body}])),
        )

    def user_id(self) -> int:
        return self.db.execute("SELECT id FROM whatsapp_handler.users WHERE phone = %s", (PHONE,)).fetchone()["id"]


def business(db: psycopg.Connection) -> list[dict]:
    """The business messages queued (the conversation's own replies aside)."""
    return [m for m in outbound_messages(db) if m["kind"] == "business"]


def template_message(name: str = "parcel_update", *params: str) -> dict[str, Any]:
    parameters = [{"type": "text", "text": v} for v in (params or ("Ana", "P-1"))]
    return {"type": "template", "template": {"name": name, "language": {"code": "en_GB"},
                                             "components": [{"type": "body", "parameters": parameters}]}}  # fmt: skip


@pytest.fixture
def world(db: psycopg.Connection) -> World:
    def channel(provider: str, ref: str, phone: str, brand: str) -> int:
        return db.execute("SELECT whatsapp_handler.add_channel(%s, %s, %s, %s, %s) AS id",
                          (provider, ref, phone, f"{brand} {provider}", brand)).fetchone()["id"]  # fmt: skip

    meta = channel("meta", p.META_PHONE_NUMBER_ID, "+15550001111", "acme")
    other = channel("meta", "998877665544", "+15550005555", "globex")
    twilio = channel("twilio", "whatsapp:+15550002222", "+15550002222", "acme")
    evolution = channel("evolution", "acme-shop", "+15550003333", "acme")

    def key(name: str, channels: list[int], scopes: list[str]) -> str:
        return db.execute("SELECT api_key FROM whatsapp_handler.api_key_create(%s, %s, %s)",
                          (name, channels, scopes)).fetchone()["api_key"]  # fmt: skip

    return World(db, meta, other, twilio, evolution, key("acme", [meta, twilio, evolution], ["send", "read"]),
                 key("globex", [other], ["send", "read"]))  # fmt: skip


# --- the window ------------------------------------------------------------------------------------------------


def test_free_form_outside_the_window_is_refused_and_nothing_is_queued(world: World) -> None:
    with raises_sqlstate("WH064"):
        world.send(TEXT)
    assert business(world.db) == []
    assert world.db.execute("SELECT count(*) AS n FROM whatsapp_handler.send_requests").fetchone()["n"] == 0


def test_a_message_from_the_person_opens_the_window(world: World) -> None:
    world.inbound()
    sent = world.send(TEXT)
    assert sent["duplicate"] is False
    [queued] = business(world.db)
    assert queued["content"] == TEXT and queued["to"] == PHONE and queued["message_id"] == sent["message_id"]
    assert queued["correlation_id"] == "cid-1"
    row = world.db.execute("SELECT direction, message_type, body, status FROM whatsapp_handler.messages WHERE id = %s",
                           (sent["message_id"],)).fetchone()  # fmt: skip
    assert row == {
        "direction": "outbound",
        "message_type": "text",
        "body": "Your parcel is on its way",
        "status": "queued",
    }
    [event] = outbox_events(world.db, "message.queued")
    assert event["payload"] == {"message_id": sent["message_id"], "channel_id": world.meta, "type": "text"}


def test_the_window_closes_after_the_setting(world: World) -> None:
    world.inbound()
    world.db.execute("UPDATE whatsapp_handler.messages SET created_at = created_at - interval '25 hours'"
                     " WHERE direction = 'inbound'")  # fmt: skip
    with raises_sqlstate("WH064"):
        world.send(TEXT)
    world.db.execute("UPDATE whatsapp_handler.settings SET value = '\"26 hours\"' WHERE key = 'sending.window'")
    assert world.send(TEXT)["message_id"] > 0


def test_the_window_is_per_channel(world: World) -> None:
    world.inbound()  # on the Meta channel, not the Twilio one
    with raises_sqlstate("WH064"):
        world.send(TEXT, channel=world.twilio)


def test_evolution_channels_have_no_window(world: World) -> None:
    assert world.send(TEXT, channel=world.evolution)["message_id"] > 0


# --- templates ---------------------------------------------------------------------------------------------------


def test_an_approved_utility_template_goes_outside_the_window(world: World) -> None:
    world.template()
    sent = world.send(template_message())
    [queued] = business(world.db)
    assert queued["provider_template_id"] == "HX0123" and queued["template_variables"] == {"1": "Ana", "2": "P-1"}
    [event] = outbox_events(world.db, "message.queued")
    assert event["payload"]["template"] == "parcel_update" and event["payload"]["category"] == "utility"
    assert sent["message_id"] == queued["message_id"]


@pytest.mark.parametrize(
    ("setup", "message", "code"),
    [
        (None, template_message(), "WH065"),
        ({"status": "pending"}, template_message(), "WH066"),
        ({"status": "paused"}, template_message(), "WH066"),
        ({}, template_message("parcel_update", "Ana"), "WH067"),
        ({}, template_message("parcel_update", "Ana", "P-1", "extra"), "WH067"),
        ({}, {"type": "template", "template": {"name": "parcel_update", "language": {"code": "pt_BR"}}}, "WH065"),
    ],
)
def test_templates_that_cannot_be_sent(world: World, setup: dict | None, message: dict, code: str) -> None:
    if setup is not None:
        world.template(**setup)
    with raises_sqlstate(code):
        world.send(message)
    assert business(world.db) == []


def test_a_status_update_is_reported_by_template_upsert(world: World) -> None:
    upsert = "SELECT whatsapp_handler.template_upsert(%s, 'promo', 'en', 'marketing', %s, %s) AS changed"
    button = {"type": "BUTTONS", "buttons": [{"type": "URL", "url": "https://x.example/{{1}}"}]}
    components = Jsonb([{"type": "HEADER", "text": "{{1}}"}, {"type": "BODY", "text": "Hi {{name}} {{name}}"}, button])
    assert world.db.execute(upsert, (world.meta, "PENDING", components)).fetchone()["changed"] is True
    assert world.db.execute(upsert, (world.meta, "PENDING", components)).fetchone()["changed"] is False
    assert world.db.execute(upsert, (world.meta, "APPROVED", components)).fetchone()["changed"] is True
    row = world.db.execute("SELECT status, header_parameters, body_parameters, button_parameters"
                           " FROM whatsapp_handler.message_templates WHERE name = 'promo'").fetchone()  # fmt: skip
    assert row == {"status": "approved", "header_parameters": 1, "body_parameters": 1, "button_parameters": 1}


# --- consent -----------------------------------------------------------------------------------------------------


def consent(world: World, opt_in: bool, channel: int | None = None, source: str = "api:checkout-form") -> None:
    world.db.execute("SELECT whatsapp_handler._record_consent(%s, %s, %s, %s)",
                     (world.user_id(), channel or world.meta, opt_in, source))  # fmt: skip


def test_marketing_needs_an_opt_in_that_was_not_withdrawn(world: World) -> None:
    world.template("promo", "marketing", body="Sale {{1}}")
    promo = template_message("promo", "today")
    with raises_sqlstate("WH068"):
        world.send(promo, "m1")
    world.db.execute("SELECT whatsapp_handler.register_user(%s, %s)", (PHONE, world.meta))
    consent(world, True)
    assert world.send(promo, "m2")["message_id"] > 0
    consent(world, False, source="keyword:stop")
    with raises_sqlstate("WH068"):
        world.send(promo, "m3")
    changes = [e["payload"] for e in outbox_events(world.db, "consent.changed")]
    assert [(c["status"], c["previous_status"], c["source"]) for c in changes] == [
        ("opted_in", None, "api:checkout-form"), ("opted_out", "opted_in", "keyword:stop")]  # fmt: skip


def test_an_opt_out_stops_utility_but_not_authentication_nor_answers(world: World) -> None:
    world.template("parcel_update", "utility")
    world.template("login_code", "authentication", body="{{1}} is your code")
    world.db.execute("SELECT whatsapp_handler.register_user(%s, %s)", (PHONE, world.meta))
    consent(world, False, source="keyword:stop")
    with raises_sqlstate("WH068"):
        world.send(template_message(), "u1")
    assert world.send(template_message("login_code", "123456"), "a1")["message_id"] > 0
    world.inbound()
    assert world.send(TEXT, "t1")["message_id"] > 0


def test_one_brands_opt_out_does_not_silence_another(world: World) -> None:
    world.template("promo", "marketing", body="Sale {{1}}", channel=world.other)
    world.db.execute("SELECT whatsapp_handler.register_user(%s, %s)", (PHONE, world.meta))
    consent(world, False)
    consent(world, True, channel=world.other)
    assert world.send(template_message("promo", "x"), key=world.other_key, channel=world.other)["message_id"] > 0


def test_a_repeated_consent_says_nothing_twice(world: World) -> None:
    world.db.execute("SELECT whatsapp_handler.register_user(%s, %s)", (PHONE, world.meta))
    consent(world, True)
    consent(world, True)
    assert len(outbox_events(world.db, "consent.changed")) == 1
    with raises_sqlstate("WH008"):
        consent(world, True, source="Not A Source")


# --- idempotency -------------------------------------------------------------------------------------------------


def test_the_same_key_and_body_return_the_same_message(world: World) -> None:
    world.inbound()
    first, again = world.send(TEXT, "order-7"), world.send(TEXT, "order-7")
    assert again == {"message_id": first["message_id"], "duplicate": True}
    assert len(business(world.db)) == 1
    with raises_sqlstate("WH069"):
        world.send({"type": "text", "text": {"body": "something else"}}, "order-7")
    # Keys are the caller's own: another key's "order-7" is another message.
    second = world.db.execute("SELECT api_key FROM whatsapp_handler.api_key_create('acme-2', %s, '{send}')",
                              ([world.meta],)).fetchone()["api_key"]  # fmt: skip
    assert world.send(TEXT, "order-7", key=second)["duplicate"] is False


def test_concurrent_requests_with_one_key_queue_one_message(world: World, db_url: str) -> None:
    world.inbound()
    body = Jsonb({"channel_id": world.meta, "to": PHONE, **TEXT})

    def send(_: int) -> tuple:
        with psycopg.connect(db_url, autocommit=True) as conn:
            return conn.execute(
                "SELECT * FROM whatsapp_handler.send_message(%s, %s, 'same')", (digest(world.key), body)
            ).fetchone()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(16)))
    assert len({r[0] for r in results}) == 1 and sorted(r[1] for r in results) == [False] + [True] * 15
    assert len(business(world.db)) == 1


def test_a_refused_send_does_not_use_up_its_key(world: World) -> None:
    with raises_sqlstate("WH064"):
        world.send(TEXT, "retry-me")
    world.inbound()
    assert world.send(TEXT, "retry-me")["duplicate"] is False


# --- keys and channels -------------------------------------------------------------------------------------------


def test_a_key_acts_only_on_its_own_channels_and_scopes(world: World) -> None:
    world.inbound()
    with raises_sqlstate("WH061"):
        world.send(TEXT, channel=world.other)  # acme's key on globex's number
    with raises_sqlstate("WH061"):
        world.send(TEXT, key=world.other_key)  # and the other way round
    read_only = world.db.execute("SELECT api_key FROM whatsapp_handler.api_key_create('reader', %s, '{read}')",
                                 ([world.meta],)).fetchone()["api_key"]  # fmt: skip
    with raises_sqlstate("WH061"):
        world.send(TEXT, key=read_only)
    with raises_sqlstate("WH060"):
        world.send(TEXT, key="whk_" + "0" * 64)
    assert world.db.execute("SELECT whatsapp_handler.api_key_revoke('acme') AS r").fetchone()["r"] is True
    with raises_sqlstate("WH060"):
        world.send(TEXT)
    assert business(world.db) == []


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("Bad Name", "{1}", "{send}"), "WH008"),
        (("ok", "{}", "{send}"), "WH008"),
        (("ok", "{1}", "{send,admin}"), "WH008"),
        (("ok", "{999999}", "{send}"), "WH003"),
    ],
)
def test_malformed_keys_are_refused(world: World, args: tuple, code: str) -> None:
    if args[1] == "{1}":
        args = (args[0], f"{{{world.meta}}}", args[2])
    with raises_sqlstate(code):
        world.db.execute("SELECT * FROM whatsapp_handler.api_key_create(%s, %s::bigint[], %s::text[])", args)


def test_only_a_hash_of_a_key_is_kept(world: World) -> None:
    rows = world.db.execute("SELECT key_hash FROM whatsapp_handler.api_keys WHERE name = 'acme'").fetchall()
    assert rows == [{"key_hash": digest(world.key)}] and world.key.startswith("whk_") and len(world.key) == 68


# --- shapes and providers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "fax", "fax": {}}, "type"),
        ({"type": "text"}, "text"),
        ({"type": "text", "text": {"body": ""}}, "text.body"),
        ({"type": "text", "text": {"body": "x" * 4097}}, "text.body"),
        ({"type": "text", "text": {"body": "hi", "bold": True}}, "text.bold"),
        ({"type": "text", "text": {"body": "hi"}, "image": {"link": "https://x.example/a.png"}}, "text"),
        ({"type": "image", "image": {"link": "http://x.example/a.png"}}, "image.link"),
        ({"type": "image", "image": {"link": "https://x.example/a.png", "id": "1"}}, "image"),
        ({"type": "location", "location": {"latitude": 91, "longitude": 0}}, "location.latitude"),
        ({"type": "location", "location": {"latitude": "north", "longitude": 0}}, "location.latitude"),
        (
            {
                "type": "interactive",
                "interactive": {"type": "button", "body": {"text": "Pick"}, "action": {"buttons": []}},
            },
            "interactive.action.buttons",
        ),
        (
            {
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "body": {"text": "Pick"},
                    "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "x" * 21}}]},
                },
            },
            "interactive.action.buttons[].reply.title",
        ),
        ({"type": "template", "template": {"name": "Bad-Name", "language": {"code": "en"}}}, "template.name"),
        ({"type": "template", "template": {"name": "ok", "language": {"code": "english"}}}, "template.language.code"),
        ({"type": "reaction", "reaction": {"message_id": "wamid.X"}}, "reaction.emoji"),
        ({"type": "text", "text": {"body": "hi"}, "context": {"message_id": ""}}, "context.message_id"),
        ({"type": "text", "text": {"body": "hi"}, "recipient_type": "group"}, "recipient_type"),
    ],
)
def test_a_malformed_message_names_its_field(world: World, message: dict, field: str) -> None:
    world.inbound()
    with raises_sqlstate("WH062") as info:
        world.send(message)
    assert f"malformed message: {field} " in info.value.diag.message_primary
    assert business(world.db) == []


def test_the_recipient_and_the_idempotency_key_are_checked(world: World) -> None:
    with raises_sqlstate("WH001"):
        world.db.execute("SELECT * FROM whatsapp_handler.send_message(%s, %s, 'k')",
                         (digest(world.key), Jsonb({"channel_id": world.meta, "to": "0044 7700", **TEXT})))  # fmt: skip
    with raises_sqlstate("WH062"):
        world.send(TEXT, idem="has space")
    with raises_sqlstate("WH003"):
        world.db.execute("UPDATE whatsapp_handler.channels SET active = false WHERE id = %s", (world.meta,))
        world.send(TEXT)


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        ("twilio", {"type": "reaction", "reaction": {"message_id": "SM1", "emoji": "👍"}}),
        (
            "twilio",
            {
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "body": {"text": "Pick"},
                    "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]},
                },
            },
        ),
        ("twilio", {**TEXT, "context": {"message_id": "SM1"}}),
        ("twilio", {"type": "image", "image": {"id": "1234"}}),
        ("evolution", template_message()),
        ("evolution", {"type": "document", "document": {"id": "1234"}}),
    ],
)
def test_what_a_provider_cannot_carry_is_refused_before_queueing(world: World, provider: str, message: dict) -> None:
    channel = world.twilio if provider == "twilio" else world.evolution
    world.template(channel=channel)
    with raises_sqlstate("WH063"):
        world.send(message, channel=channel)


def test_a_blocked_recipient_gets_nothing(world: World) -> None:
    world.inbound()
    world.db.execute("SELECT whatsapp_handler.block_user(%s, 'abuse')", (world.user_id(),))
    before = len(outbound_messages(world.db))
    with raises_sqlstate("WH004"):
        world.send(TEXT)
    # Not even blue ticks (the fuzz found a read receipt queued to a blocked person).
    with raises_sqlstate("WH004"):
        world.db.execute("SELECT whatsapp_handler.mark_read(%s, %s, 'wamid.IN1', true)",
                         (digest(world.key), world.meta))  # fmt: skip
    assert len(outbound_messages(world.db)) == before


# --- batches and reading back ------------------------------------------------------------------------------------


def test_a_batch_queues_each_element_on_its_own(world: World) -> None:
    world.template()
    batch = [
        {"to": "+447700900001", **template_message(), "idempotency_key": "b1"},
        {"to": "+447700900002", **TEXT, "idempotency_key": "b2"},  # outside its window
        {"to": "not a phone", **template_message(), "idempotency_key": "b3"},
        {"to": "+447700900004", **template_message(), "idempotency_key": "b4"},
        "not an object",
    ]
    rows = world.db.execute("SELECT * FROM whatsapp_handler.send_messages(%s, %s, %s)",
                            (digest(world.key), world.meta, Jsonb(batch))).fetchall()  # fmt: skip
    assert [(r["index"], r["message_id"] is not None, r["error_code"]) for r in rows] == [
        (0, True, None), (1, False, "WH064"), (2, False, "WH001"), (3, True, None), (4, False, "WH062")]  # fmt: skip
    assert len(business(world.db)) == 2
    with raises_sqlstate("WH062"):
        world.db.execute("SELECT * FROM whatsapp_handler.send_messages(%s, %s, %s)",
                         (digest(world.key), world.meta, Jsonb([batch[0]] * 1001)))  # fmt: skip


def test_a_message_reads_back_with_its_statuses(world: World) -> None:
    world.inbound()
    sent = world.send(TEXT)
    world.db.execute("SELECT whatsapp_handler.worker_sent((SELECT msg_id FROM pgmq.q_outbound"
                     " WHERE message ->> 'kind' = 'business'), 'wamid.OUT1')")  # fmt: skip
    failed = p.meta_status("wamid.OUT1", "failed", WA_ID, errors=[{"code": 131026, "title": "Message undeliverable"}])
    world.db.execute(
        "SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(p.meta_body(p.meta_value(statuses=[failed]))),)
    )
    view = world.db.execute("SELECT whatsapp_handler.message_view(%s, %s) AS v",
                            (digest(world.key), sent["message_id"])).fetchone()["v"]  # fmt: skip
    assert (view["id"], view["type"], view["provider_message_id"], view["status"]) == (
        sent["message_id"], "text", "wamid.OUT1", "failed")  # fmt: skip
    assert [s["status"] for s in view["statuses"]] == ["failed"]
    assert view["statuses"][0]["errors"][0]["code"] == 131026
    for key in (world.other_key, "whk_unknown"):
        with raises_sqlstate("WH070" if key == world.other_key else "WH060"):
            world.db.execute("SELECT whatsapp_handler.message_view(%s, %s)", (digest(key), sent["message_id"]))


def view(world: World, message_id: int) -> dict:
    return world.db.execute("SELECT whatsapp_handler.message_view(%s, %s) AS v",
                            (digest(world.key), message_id)).fetchone()["v"]  # fmt: skip


def test_a_message_reads_back_with_the_workers_side(world: World) -> None:
    """Before the provider gives it an id, GET tells what the worker knows: waiting, retrying after an
    error (attempts and the error), dead-lettered with the code and the reason; then, once delivered,
    the provider's statuses with their pricing."""
    world.inbound()
    refused, delivered = world.send(TEXT), world.send({"type": "text", "text": {"body": "second"}}, idem="k2")
    world.db.execute("DELETE FROM pgmq.q_outbound WHERE message ->> 'kind' IS DISTINCT FROM 'business'")
    business_msg = "SELECT msg_id FROM pgmq.q_outbound WHERE message ->> 'message_id' = %s::text"
    waiting = view(world, refused["message_id"])["delivery"]
    assert (waiting["state"], waiting["attempts"], "last_error" in waiting) == ("waiting", 0, False)
    world.db.execute("SELECT * FROM whatsapp_handler.worker_claim(10, 30)")
    [msg_id] = [r["msg_id"] for r in world.db.execute(business_msg, (refused["message_id"],))]
    world.db.execute("SELECT whatsapp_handler.worker_failed(%s, '131000', 'retry', %s, 30)",
                     (msg_id, Jsonb({"status": 500, "title": "Something went wrong"})))  # fmt: skip
    retrying = view(world, refused["message_id"])["delivery"]
    assert (retrying["state"], retrying["attempts"], retrying["last_error"]["code"]) == ("retrying", 1, "131000")
    assert retrying["last_error"]["reason"] == "transient" and "next_attempt_at" in retrying
    world.db.execute("SELECT whatsapp_handler.worker_failed(%s, '131047', 'permanent', %s, NULL)",
                     (msg_id, Jsonb({"status": 400, "title": "Re-engagement message"})))  # fmt: skip
    failed = view(world, refused["message_id"])
    assert (failed["status"], failed["statuses"], "provider_message_id" in failed) == ("failed", [], False)
    dead = failed["delivery"]
    assert (dead["state"], dead["reason"], dead["error"]["code"], dead["error"]["reason"]) == (
        "dead_lettered", "rejected", "131047", "outside_window")  # fmt: skip
    [msg_id] = [r["msg_id"] for r in world.db.execute(business_msg, (delivered["message_id"],))]
    world.db.execute("SELECT whatsapp_handler.worker_sent(%s, 'wamid.OUT2')", (msg_id,))
    priced = p.meta_priced_status("wamid.OUT2", "delivered", WA_ID)
    world.db.execute(
        "SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(p.meta_body(p.meta_value(statuses=[priced]))),)
    )
    sent = view(world, delivered["message_id"])
    assert (sent["status"], "delivery" in sent) == ("delivered", False)
    [status] = sent["statuses"]
    assert status["pricing"]["category"] == "utility" and status["pricing"]["billable"] is True


# --- who may call what -------------------------------------------------------------------------------------------


def test_only_the_relay_may_send_and_nobody_reads_the_tables(world: World, connect_as: Callable) -> None:
    body = Jsonb({"channel_id": world.meta, "to": PHONE, **template_message()})
    world.template()
    relay = connect_as("relay")
    assert relay.execute(
        "SELECT * FROM whatsapp_handler.send_message(%s, %s, 'r1')", (digest(world.key), body)
    ).fetchone()
    for table in ("api_keys", "send_requests", "consents", "message_templates"):
        with raises_sqlstate("42501"):
            relay.execute(f"SELECT * FROM whatsapp_handler.{table}")
    for fn in ("api_key_create('x', '{1}')", "template_upsert(1, 'a', 'en', 'utility', 'approved')",
               "_record_consent(1, 1, true, 'api:x')"):  # fmt: skip
        with raises_sqlstate("42501"):
            relay.execute(f"SELECT whatsapp_handler.{fn}")
    for login in ("worker", "analyst", "consumer"):
        with raises_sqlstate("42501"):
            connect_as(login).execute(
                "SELECT * FROM whatsapp_handler.send_message(%s, %s, 'x')", (digest(world.key), body)
            )
    world.db.execute("CREATE ROLE wh_sending_nobody LOGIN")
    try:
        world.db.execute("SET ROLE wh_sending_nobody")
        for call in ("send_message(NULL, NULL, NULL)", "send_messages(NULL, NULL, NULL)", "message_view(NULL, NULL)"):
            with raises_sqlstate("42501"):
                world.db.execute(f"SELECT whatsapp_handler.{call}")
    finally:
        world.db.execute("RESET ROLE")
        world.db.execute("DROP ROLE wh_sending_nobody")


# --- the conversation's keywords and the retention job -----------------------------------------------------------


def test_stop_and_start_record_consent_on_their_channel_only(world: World) -> None:
    world.inbound()
    world.db.execute(
        "SELECT whatsapp_handler._record_consent(%s, %s, true, 'api:form')", (world.user_id(), world.other)
    )
    world.db.execute(
        "SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(p.meta_text(WA_ID, "wamid.STOP", body="stop")),)
    )
    rows = world.db.execute(
        "SELECT channel_id, status, source FROM whatsapp_handler.consents ORDER BY channel_id"
    ).fetchall()
    assert rows == [
        {"channel_id": world.meta, "status": "opted_out", "source": "keyword:stop"},
        {"channel_id": world.other, "status": "opted_in", "source": "api:form"},
    ]
    world.db.execute(
        "SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(p.meta_text(WA_ID, "wamid.START", body="START")),)
    )
    status = "SELECT status, source FROM whatsapp_handler.consents WHERE channel_id = %s"
    assert world.db.execute(status, (world.meta,)).fetchone() == {"status": "opted_in", "source": "keyword:start"}


def test_the_retention_job_forgets_old_idempotency_keys(world: World) -> None:
    world.inbound()
    first = world.send(TEXT, "old")["message_id"]
    world.db.execute("UPDATE whatsapp_handler.send_requests SET created_at = now() - interval '8 days'")
    assert world.db.execute("SELECT whatsapp_handler.job_retention() -> 'send_requests' AS n").fetchone()["n"] == 1
    again = world.send(TEXT, "old")
    assert again["duplicate"] is False and again["message_id"] != first


# --- read receipts and the typing indicator ------------------------------------------------------------------------


def test_a_read_receipt_is_queued_for_the_persons_message(world: World) -> None:
    world.inbound("wamid.READ1")
    assert world.db.execute("SELECT whatsapp_handler.mark_read(%s, %s, 'wamid.READ1', true) AS n",
                            (digest(world.key), world.meta)).fetchone()["n"] == 1  # fmt: skip
    [receipt] = [m for m in outbound_messages(world.db) if m["kind"] == "read"]
    assert receipt["provider_message_id"] == "wamid.READ1" and receipt["typing"] is True and receipt["to"] == PHONE
    with raises_sqlstate("WH070"):
        world.db.execute("SELECT whatsapp_handler.mark_read(%s, %s, 'wamid.NOPE')", (digest(world.key), world.meta))
    with raises_sqlstate("WH061"):
        world.db.execute(
            "SELECT whatsapp_handler.mark_read(%s, %s, 'wamid.READ1')", (digest(world.other_key), world.meta)
        )


def test_read_receipts_where_the_provider_has_them(world: World) -> None:
    twilio = p.twilio_inbound("SM" + "a" * 32, PHONE, "+15550002222")
    world.db.execute("SELECT whatsapp_handler.ingest_twilio(%s, NULL)", (Jsonb(twilio),))
    with raises_sqlstate("WH063"):
        world.db.execute(
            "SELECT whatsapp_handler.mark_read(%s, %s, %s)", (digest(world.key), world.twilio, "SM" + "a" * 32)
        )
    upsert = p.evolution_upsert("acme-shop", PHONE.lstrip("+"), "EVO1")
    world.db.execute("SELECT whatsapp_handler.ingest_evolution(%s, NULL)", (Jsonb(upsert),))
    queued = world.db.execute("SELECT whatsapp_handler.mark_read(%s, %s, 'EVO1', true) AS n",
                              (digest(world.key), world.evolution)).fetchone()["n"]  # fmt: skip
    assert queued == 2
    assert [m["kind"] for m in outbound_messages(world.db) if m["kind"] in ("read", "typing")] == ["read", "typing"]


def test_read_receipts_need_an_active_channel(world: World) -> None:
    world.inbound("wamid.READ2")
    world.db.execute("UPDATE whatsapp_handler.channels SET active = false WHERE id = %s", (world.meta,))
    with raises_sqlstate("WH003"):
        world.db.execute("SELECT whatsapp_handler.mark_read(%s, %s, 'wamid.READ2')", (digest(world.key), world.meta))
