"""The people API in SQL (people/api): consent, preferences, block, export and erasure of a person by a
key with scope manage, and above all that one brand's key can neither learn nor change what another
brand holds."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from app.doctor import _api_keys
from kit import payloads as p
from tests.fuzz_strategies import RawJson, any_json, budget, json_values, mutated, wrong_types
from tests.helpers import outbox_events, raises_sqlstate

PHONE = "+447700900123"
WA_ID = PHONE.lstrip("+")
GLOBEX_REF = "998877665544"
CALLS = ("people_preferences", "people_set_preferences", "people_block", "people_unblock", "people_export",
         "people_erase")  # fmt: skip
# What each call needs beyond channel_id and phone to get as far as the person.
EXTRA: dict[str, dict[str, Any]] = {
    "people_set_preferences": {"preferences": {"language": "pt-BR"}},
    "people_block": {"reason": "abuse"},
}


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass
class World:
    db: psycopg.Connection
    meta: int  # brand acme
    twilio: int  # brand acme too
    other: int  # brand globex
    key: str  # acme: manage on meta and twilio
    sender: str  # acme: send and read on meta, no manage
    other_key: str  # globex: manage on other

    def call(self, fn: str, key: str | None = None, channel: int | None = None, phone: Any = PHONE, **kw: Any) -> Any:
        body = {"channel_id": self.meta if channel is None else channel, "phone": phone, **kw}
        return self.db.execute(
            f"SELECT * FROM whatsapp_handler.{fn}(%s, %s, 'cid-people')", (digest(key or self.key), Jsonb(body))
        ).fetchone()

    def inbound(self, channel_ref: str = p.META_PHONE_NUMBER_ID, wamid: str = "wamid.IN1", body: str = "hello") -> None:
        payload = p.meta_text(WA_ID, wamid, body=body, phone_number_id=channel_ref)
        self.db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(payload),))

    def user(self) -> dict:
        return self.db.execute("SELECT * FROM whatsapp_handler.users WHERE phone = %s", (PHONE,)).fetchone()


@pytest.fixture
def world(db: psycopg.Connection) -> World:
    def channel(provider: str, ref: str, phone: str, brand: str) -> int:
        return db.execute("SELECT whatsapp_handler.add_channel(%s, %s, %s, %s, %s) AS id",
                          (provider, ref, phone, f"{brand} {provider}", brand)).fetchone()["id"]  # fmt: skip

    def key(name: str, channels: list[int], scopes: list[str]) -> str:
        return db.execute("SELECT api_key FROM whatsapp_handler.api_key_create(%s, %s, %s)",
                          (name, channels, scopes)).fetchone()["api_key"]  # fmt: skip

    meta = channel("meta", p.META_PHONE_NUMBER_ID, "+15550001111", "acme")
    twilio = channel("twilio", "whatsapp:+15550002222", "+15550002222", "acme")
    other = channel("meta", GLOBEX_REF, "+15550005555", "globex")
    return World(db, meta, twilio, other, key("acme", [meta, twilio], ["manage"]),
                 key("acme-sender", [meta], ["send", "read"]), key("globex", [other], ["manage"]))  # fmt: skip


# --- consent -------------------------------------------------------------------------------------------------------


def test_consent_registers_a_new_phone_and_says_what_changed(world: World) -> None:
    assert world.call("people_consent", opt_in=True, source="checkout-form") == {"status": "opted_in", "changed": True}
    assert world.call("people_consent", opt_in=True, source="checkout-form") == {"status": "opted_in", "changed": False}
    assert world.call("people_consent", opt_in=False, source="preference-centre") == {
        "status": "opted_out",
        "changed": True,
    }
    row = world.db.execute(
        "SELECT status, source FROM whatsapp_handler.consents WHERE user_id = %s AND channel_id = %s",
        (world.user()["id"], world.meta),
    ).fetchone()
    assert row == {"status": "opted_out", "source": "api:preference-centre"}
    assert [e["payload"]["status"] for e in outbox_events(world.db, "consent.changed")] == ["opted_in", "opted_out"]
    assert len(outbox_events(world.db, "user.registered")) == 1
    # Now the channel knows them: the rest of the API answers.
    assert world.call("people_preferences")["people_preferences"]["language"] == "en-GB"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"opt_in": "yes", "source": "form"}, "WH072"),
        ({"opt_in": True}, "WH072"),
        ({"opt_in": True, "source": "keyword:stop"}, "WH072"),  # cannot pass for the person's own STOP
        ({"opt_in": True, "source": "Form"}, "WH072"),
        ({"opt_in": True, "source": "form", "opt-in": True}, "WH072"),  # an unknown field
    ],
)
def test_a_malformed_consent_is_refused_and_records_nothing(world: World, fields: dict, code: str) -> None:
    with raises_sqlstate(code):
        world.call("people_consent", **fields)
    assert world.user() is None
    assert world.db.execute("SELECT count(*) FROM whatsapp_handler.consents").fetchone()["count"] == 0


def test_a_phone_not_in_e164_is_refused(world: World) -> None:
    world.inbound()
    for phone in ("447700900123", "+44 7700 900123", ""):
        with raises_sqlstate("WH001"):
            world.call("people_consent", phone=phone, opt_in=True, source="form")
        with raises_sqlstate("WH001"):
            world.call("people_preferences", phone=phone)
    with raises_sqlstate("WH001"):
        world.db.execute(
            "SELECT whatsapp_handler.people_preferences(%s, %s)",
            (digest(world.key), Jsonb({"channel_id": world.meta, "phone": 447700900123})),
        )


# --- the key: another brand's, one without manage, none ------------------------------------------------------------


@pytest.mark.parametrize("fn", [*CALLS, "people_consent"])
def test_another_brands_key_and_a_key_without_manage_are_refused(world: World, fn: str) -> None:
    world.inbound()
    world.inbound(GLOBEX_REF, "wamid.G1")  # globex knows the person too: the key is still not theirs to use here
    fields = {"opt_in": True, "source": "form"} if fn == "people_consent" else EXTRA.get(fn, {})
    with raises_sqlstate("WH061"):
        world.call(fn, key=world.other_key, **fields)  # globex's key on acme's channel
    with raises_sqlstate("WH061"):
        world.call(fn, key=world.sender, **fields)  # acme's key without manage
    with raises_sqlstate("WH060"):
        world.call(fn, key="whk_not-a-key", **fields)
    with raises_sqlstate("WH061"):
        world.call(fn, channel=999999, **fields)  # a channel that is nobody's
    with raises_sqlstate("WH060"):  # a malformed request tells a stranger nothing more
        world.db.execute(f"SELECT whatsapp_handler.{fn}(%s, %s)", (digest("whk_x"), Jsonb({"channel_id": "1"})))
    assert world.user()["blocked_at"] is None and world.user()["erased_at"] is None
    assert outbox_events(world.db, "user.preferences_updated") == []
    assert outbox_events(world.db, "consent.changed") == []


# --- whom a key may manage -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", CALLS)
def test_a_person_the_channel_does_not_know_is_unknown_whoever_else_knows_them(world: World, fn: str) -> None:
    with raises_sqlstate("WH071") as never_met:
        world.call(fn, **EXTRA.get(fn, {}))
    world.inbound(GLOBEX_REF, "wamid.G1")  # known to globex only
    with raises_sqlstate("WH071") as other_brands:
        world.call(fn, **EXTRA.get(fn, {}))
    # The same answer: a key cannot probe whom another brand knows.
    assert never_met.value.diag.message_primary == other_brands.value.diag.message_primary
    assert world.user()["blocked_at"] is None and world.user()["erased_at"] is None
    assert outbox_events(world.db, "user.brand_erased") == []


def test_an_unknown_field_is_refused_before_anything_changes(world: World) -> None:
    world.inbound()
    with raises_sqlstate("WH072"):
        world.call("people_block", reason="abuse", until="tomorrow")
    with raises_sqlstate("WH072"):
        world.call("people_erase", everything=True)
    assert world.user()["blocked_at"] is None and world.user()["erased_at"] is None


# --- preferences ---------------------------------------------------------------------------------------------------


def test_preferences_read_and_change(world: World) -> None:
    world.inbound()
    changed = world.call("people_set_preferences", preferences={"language": "pt-BR", "timezone": "Europe/Lisbon"})
    assert changed["people_set_preferences"]["language"] == "pt-BR"
    assert world.call("people_preferences")["people_preferences"]["timezone"] == "Europe/Lisbon"
    [event] = outbox_events(world.db, "user.preferences_updated")
    assert event["payload"]["changed"] == {"language": "pt-BR", "timezone": "Europe/Lisbon"}


@pytest.mark.parametrize(
    ("preferences", "code"),
    [
        ({"notifications_enabled": True}, "WH073"),  # the person's own STOP and START
        ({"language": 7}, "WH008"),
        ({"colour": "blue"}, "WH008"),
        ("pt-BR", "WH072"),
    ],
)
def test_preferences_a_brand_may_not_set(world: World, preferences: Any, code: str) -> None:
    world.inbound()
    world.db.execute(
        "SELECT whatsapp_handler.set_user_preferences(%s, '{\"notifications_enabled\": false}')", (world.user()["id"],)
    )
    with raises_sqlstate(code):
        world.call("people_set_preferences", preferences=preferences)
    assert world.call("people_preferences")["people_preferences"]["notifications_enabled"] is False


# --- block ---------------------------------------------------------------------------------------------------------


def test_a_block_is_global_and_only_its_brand_lifts_it(world: World) -> None:
    world.inbound()
    world.inbound(GLOBEX_REF, "wamid.G1")
    assert world.call("people_block", reason="  abusive messages ") == {"blocked": True, "changed": True}
    assert world.user()["blocked_reason"] == "api:acme: abusive messages"
    assert world.call("people_block", reason="again") == {"blocked": True, "changed": False}
    # Global: globex cannot send to them either.
    world.db.execute("SELECT whatsapp_handler.template_upsert(%s, 'hello', 'en_GB', 'utility', 'approved', '[]')",
                     (world.other,))  # fmt: skip
    globex_sender = world.db.execute(
        "SELECT api_key FROM whatsapp_handler.api_key_create('globex-sender', %s)", ([world.other],)
    ).fetchone()["api_key"]
    template = {"type": "template", "template": {"name": "hello", "language": {"code": "en_GB"}}}
    with raises_sqlstate("WH004"):
        world.db.execute(
            "SELECT * FROM whatsapp_handler.send_message(%s, %s, 'k1')",
            (digest(globex_sender), Jsonb({"channel_id": world.other, "to": PHONE, **template})),
        )
    # Globex did not set it, so globex cannot lift it.
    with raises_sqlstate("WH074"):
        world.call("people_unblock", key=world.other_key, channel=world.other)
    assert world.user()["blocked_at"] is not None
    assert world.call("people_unblock") == {"blocked": False, "changed": True}
    assert world.call("people_unblock") == {"blocked": False, "changed": False}
    assert [e["type"] for e in outbox_events(world.db) if e["type"] in ("user.blocked", "user.unblocked")] == [
        "user.blocked",
        "user.unblocked",
    ]


def test_an_operators_block_is_not_a_brands_to_lift(world: World) -> None:
    world.inbound()
    world.db.execute("SELECT whatsapp_handler.block_user(%s, 'fraud')", (world.user()["id"],))
    with raises_sqlstate("WH074"):
        world.call("people_unblock")
    assert world.user()["blocked_reason"] == "fraud"


@pytest.mark.parametrize("reason", ["", "   ", "x" * 401, 5])
def test_a_block_needs_a_reason(world: World, reason: Any) -> None:
    world.inbound()
    with raises_sqlstate("WH072"):
        world.call("people_block", reason=reason)
    assert world.user()["blocked_at"] is None


# --- export --------------------------------------------------------------------------------------------------------


def test_an_export_holds_what_the_brand_holds_and_nothing_of_other_brands(world: World) -> None:
    world.inbound(body="acme please")
    world.inbound(GLOBEX_REF, "wamid.G1", body="globex secret")
    world.call("people_consent", opt_in=True, source="form")
    world.call("people_consent", key=world.other_key, channel=world.other, opt_in=True, source="globex-form")
    world.call("people_block", key=world.other_key, channel=world.other, reason="globex's own reason")
    doc = world.call("people_export")["people_export"]
    assert doc["format"] == "whatsapp-handler.brand-export/1"
    assert doc["brand"] == "acme" and doc["channel_ids"] == sorted([world.meta, world.twilio])
    assert doc["person"] == {"phone": PHONE, "display_name": "Ana", "blocked": True, "blocked_at": None,
                             "blocked_reason": None}  # fmt: skip
    assert {m["channel_id"] for m in doc["messages"]} == {world.meta}
    assert "acme please" in [m["body"] for m in doc["messages"]]
    assert {c["channel_id"] for c in doc["conversations"]} == {world.meta}
    assert [c["source"] for c in doc["consents"]] == ["api:form"]
    assert "globex" not in str(doc) and str(world.other) not in [str(c) for c in doc["channel_ids"]]
    # Globex's export holds its own block, reason and all.
    theirs = world.call("people_export", key=world.other_key, channel=world.other)["people_export"]
    assert theirs["person"]["blocked_reason"] == "globex's own reason"
    assert "acme please" not in str(theirs)


# --- erase ---------------------------------------------------------------------------------------------------------


def test_erasure_reaches_only_the_brand_while_another_knows_the_person(world: World) -> None:
    world.inbound(body="acme please")
    world.inbound(GLOBEX_REF, "wamid.G1", body="globex secret")
    assert world.call("people_erase") == {"people_erase": True}
    user = world.user()
    assert user is not None and user["erased_at"] is None  # the person stays for globex
    bodies = {r["channel_id"]: r["body"] for r in world.db.execute(
        "SELECT channel_id, body FROM whatsapp_handler.messages WHERE direction = 'inbound'")}  # fmt: skip
    assert bodies == {world.meta: None, world.other: "globex secret"}
    [event] = outbox_events(world.db, "user.brand_erased")
    assert event["payload"]["brand"] == "acme"
    # The brand no longer knows them; globex still does.
    with raises_sqlstate("WH071"):
        world.call("people_erase")
    with raises_sqlstate("WH071"):
        world.call("people_export")
    assert world.call("people_export", key=world.other_key, channel=world.other)["people_export"]["messages"]
    # Met again by a consent, the conversation starts anew.
    world.call("people_consent", opt_in=True, source="form")
    assert world.call("people_export")["people_export"]["messages"] == []


def test_erasure_by_the_last_brand_that_knows_the_person_erases_them(world: World) -> None:
    world.inbound(body="acme please")
    assert world.call("people_erase") == {"people_erase": True}
    erased = world.db.execute("SELECT phone, erased_at FROM whatsapp_handler.users").fetchone()
    assert erased["phone"] is None and erased["erased_at"] is not None
    assert len(outbox_events(world.db, "user.erased")) == 1
    with raises_sqlstate("WH071"):
        world.call("people_preferences")


def test_the_people_of_an_inactive_channel_are_still_managed_but_not_registered(world: World) -> None:
    world.inbound()
    world.db.execute("UPDATE whatsapp_handler.channels SET active = false WHERE id = %s", (world.meta,))
    assert world.call("people_export")["people_export"]["person"]["phone"] == PHONE
    with raises_sqlstate("WH003"):
        world.call("people_consent", phone="+447700900999", opt_in=True, source="form")
    assert world.call("people_erase") == {"people_erase": True}


# --- who may call what ---------------------------------------------------------------------------------------------


def test_only_the_relay_may_call_the_people_api(world: World, connect_as: Callable) -> None:
    world.inbound()
    body = Jsonb({"channel_id": world.meta, "phone": PHONE})
    relay = connect_as("relay")
    assert relay.execute("SELECT whatsapp_handler.people_preferences(%s, %s)", (digest(world.key), body)).fetchone()
    for fn in ("_people_request(NULL, NULL, NULL, NULL)", "_person_on_channel(1, '+447700900123')",
               "_api_block_mark(1)"):  # fmt: skip
        with raises_sqlstate("42501"):
            relay.execute(f"SELECT whatsapp_handler.{fn}")
    calls = [f"{fn}(NULL, NULL)" for fn in (*CALLS, "people_consent")]
    for login in ("worker", "analyst", "consumer"):
        conn = connect_as(login)
        for call in calls:
            with raises_sqlstate("42501"):
                conn.execute(f"SELECT whatsapp_handler.{call}")
    world.db.execute("CREATE ROLE wh_people_nobody LOGIN")
    try:
        world.db.execute("GRANT USAGE ON SCHEMA whatsapp_handler TO wh_people_nobody")
        world.db.execute("SET ROLE wh_people_nobody")
        for call in calls:
            with raises_sqlstate("42501"):
                world.db.execute(f"SELECT whatsapp_handler.{call}")
    finally:
        world.db.execute("RESET ROLE")
        world.db.execute("REVOKE USAGE ON SCHEMA whatsapp_handler FROM wh_people_nobody")
        world.db.execute("DROP ROLE wh_people_nobody")


# --- doctor --------------------------------------------------------------------------------------------------------


def test_doctor_lists_the_keys_and_warns_of_one_naming_an_inactive_channel(world: World) -> None:
    (check,) = _api_keys(world.db)
    assert check.status == "ok" and check.found == "3 live (send 1, read 1, manage 2), 0 revoked"
    world.db.execute("SELECT whatsapp_handler.api_key_revoke('acme-sender')")
    world.db.execute("UPDATE whatsapp_handler.channels SET active = false WHERE id = %s", (world.twilio,))
    (check,) = _api_keys(world.db)
    assert check.status == "warn" and check.found.startswith("2 live (send 0, read 0, manage 2), 1 revoked")
    assert f"acme (channel {world.twilio})" in check.found and "globex" not in check.found
    assert "api_key_revoke" in check.fix


# --- hostile requests ----------------------------------------------------------------------------------------------

DOCUMENTED = set(re.findall(r"`(WH\d{3})`", (Path(__file__).parents[1] / "docs" / "errors.md").read_text()))
# A function body's error names the function in its context; a refusal of the argument itself does not.
INSIDE_A_FUNCTION = re.compile(r"(PL/pgSQL|SQL) function")


def people_bodies(world: World, fn: str) -> st.SearchStrategy[Any]:
    fields = {"opt_in": True, "source": "form"} if fn == "people_consent" else EXTRA.get(fn, {})
    base = st.fixed_dictionaries({
        "channel_id": st.sampled_from([world.meta, world.twilio, world.other]) | wrong_types(),
        "phone": st.sampled_from([PHONE, "+447700900999"]) | wrong_types(),
        **{k: st.just(v) | json_values(4) for k, v in fields.items()},
    })  # fmt: skip
    extra = st.dictionaries(st.text(max_size=8), json_values(3), max_size=2)
    return st.one_of(mutated(base), st.tuples(base, extra).map(lambda be: {**be[1], **be[0]}), any_json())


@pytest.mark.parametrize("fn", [*CALLS, "people_consent"])
def test_hostile_requests_are_refused_with_a_documented_code(world: World, fn: str) -> None:
    world.inbound()
    keys = [world.key, world.other_key, world.sender, "whk_nobody"]

    @budget(ci=40, long=500)
    @given(body=people_bodies(world, fn), key=st.sampled_from(keys))
    def run(body: Any, key: str) -> None:
        sent = Jsonb(body, dumps=str) if isinstance(body, RawJson) else Jsonb(body)
        with world.db.transaction(force_rollback=True):
            try:
                with world.db.transaction():
                    world.db.execute("SET LOCAL ROLE whatsapp_handler_relay")
                    world.db.execute(f"SELECT * FROM whatsapp_handler.{fn}(%s, %s)", (digest(key), sent)).fetchall()
            except psycopg.DataError as exc:
                assert exc.sqlstate is None or not INSIDE_A_FUNCTION.search(exc.diag.context or ""), exc
            except psycopg.Error as exc:
                diag = exc.diag
                inside = INSIDE_A_FUNCTION.search(diag.context or "")
                assert not inside or (exc.sqlstate in DOCUMENTED and diag.message_hint), (
                    f"{exc.sqlstate} {diag.message_primary} [{diag.context}]"
                )

    run()
