"""Ingestion's rules that hold on both lanes, the fast one (ingest_batch's set-based
_ingest_meta_texts) and the one-by-one path (_ingest, _record_inbound, _converse), and the
rules that have one home in the schema."""

from __future__ import annotations

import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p
from tests.helpers import outbox_events

REF = "333333333333"
ACTIVE = ["447700900201", "447700900202", "447700900203"]


@pytest.fixture
def channel(db) -> int:
    add = "SELECT whatsapp_handler.add_channel('meta', %s, '+15550003333', 'rules') AS id"
    return db.execute(add, (REF,)).fetchone()["id"]


def text(wa_id: str, wamid: str, body: str = "hello") -> dict:
    return p.meta_body(p.meta_value([p.meta_message(wa_id, wamid, body=body)], phone_number_id=REF))


def one(db, body: dict, cid: str = "one") -> dict:
    return db.execute("SELECT whatsapp_handler.ingest_meta(%s, %s) AS r", (Jsonb(body), cid)).fetchone()["r"]


def batch(db, bodies: list[dict], cid: str = "batch") -> list[dict]:
    return db.execute(
        "SELECT whatsapp_handler.ingest_batch('meta', %s::jsonb[], %s) AS r",
        ([Jsonb(b) for b in bodies], [cid] * len(bodies)),
    ).fetchone()["r"]


def activate(db, wa_id: str) -> None:
    """First contact, then YES: the conversation is active (where the fast lane starts)."""
    one(db, text(wa_id, f"wamid.hi-{wa_id}", "hi"), "setup")
    one(db, text(wa_id, f"wamid.yes-{wa_id}", "YES"), "setup")


def state(db, wa_id: str) -> str:
    return db.execute(
        "SELECT c.state FROM whatsapp_handler.conversations c JOIN whatsapp_handler.users u ON u.id = c.user_id"
        " WHERE u.phone = %s",
        ("+" + wa_id,),
    ).fetchone()["state"]


def an_hour_ago(db, wa_ids: list[str]) -> None:
    db.execute(
        "UPDATE whatsapp_handler.users SET last_active_at = now() - interval '1 hour' WHERE phone = ANY (%s)",
        (["+" + w for w in wa_ids],),
    )


def recently_active(db, wa_ids: list[str]) -> list[bool]:
    rows = db.execute(
        "SELECT phone, last_active_at > now() - interval '1 minute' AS recent FROM whatsapp_handler.users"
        " WHERE phone = ANY (%s) ORDER BY phone",
        (["+" + w for w in wa_ids],),
    ).fetchall()
    return [r["recent"] for r in rows]


def test_a_returning_users_activity_moves_on_the_fast_lane(db, channel):
    for wa_id in ACTIVE:
        activate(db, wa_id)
    an_hour_ago(db, ACTIVE)
    bodies = [text(wa_id, f"wamid.back-{wa_id}") for wa_id in ACTIVE]
    # The fast lane itself takes these (not the one-by-one loop behind it).
    results = db.execute(
        "SELECT whatsapp_handler._ingest_meta_texts(%s::jsonb[], %s) AS r",
        ([Jsonb(b) for b in bodies], ["fast"] * len(bodies)),
    ).fetchone()["r"]
    assert [r["messages"] for r in results] == [1, 1, 1]
    assert recently_active(db, ACTIVE) == [True, True, True]

    an_hour_ago(db, ACTIVE)
    results = batch(db, [text(wa_id, f"wamid.again-{wa_id}") for wa_id in ACTIVE])
    assert [r["messages"] for r in results] == [1, 1, 1]
    assert recently_active(db, ACTIVE) == [True, True, True]


def test_a_returning_users_activity_moves_on_the_one_by_one_path(db, channel):
    activate(db, ACTIVE[0])
    an_hour_ago(db, ACTIVE[:1])
    assert one(db, text(ACTIVE[0], "wamid.back"))["messages"] == 1
    assert recently_active(db, ACTIVE[:1]) == [True]


def test_yes_to_the_terms_inside_a_batch_under_load_accepts_them(db, channel):
    for wa_id in ACTIVE[:2]:
        activate(db, wa_id)
    newcomer = "447700900299"
    one(db, text(newcomer, "wamid.first", "hi"), "setup")
    assert state(db, newcomer) == "awaiting_terms"

    bodies = [
        text(ACTIVE[0], "wamid.load-1"),
        text(newcomer, "wamid.yes", "yes"),
        text(ACTIVE[1], "wamid.load-2"),
        text(ACTIVE[0], "wamid.load-3"),
    ]
    results = batch(db, bodies)
    assert [r["outcome"] for r in results] == ["processed"] * 4
    assert [r["messages"] for r in results] == [1, 1, 1, 1]
    assert state(db, newcomer) == "active"
    user = db.execute(
        "SELECT terms_accepted_at, terms_version FROM whatsapp_handler.users WHERE phone = %s", ("+" + newcomer,)
    ).fetchone()
    assert user["terms_accepted_at"] is not None and user["terms_version"]
    accepted = [e for e in outbox_events(db, "user.terms_accepted") if e["correlation_id"] == "batch"]
    assert len(accepted) == 1


def test_a_sender_with_a_leading_zero_is_refused_in_a_batch_as_alone(db, channel):
    """The fast lane tests senders with the one E.164 rule: a number starting with 0 is
    left to the one-by-one path, which refuses it (WH001) and dead-letters the webhook
    alone, as ingest_meta does."""
    for wa_id in ACTIVE[:2]:
        activate(db, wa_id)
    alone = one(db, text("0447700900201", "wamid.zero-alone"))
    assert alone["outcome"] == "failed"

    bodies = [text(ACTIVE[0], "wamid.z1"), text("0447700900201", "wamid.zero"), text(ACTIVE[1], "wamid.z2")]
    fast = db.execute(
        "SELECT whatsapp_handler._ingest_meta_texts(%s::jsonb[], %s) AS r",
        ([Jsonb(b) for b in bodies], ["fast"] * 3),
    ).fetchone()["r"]
    assert fast[1] is None and fast[0] is not None and fast[2] is not None
    bodies = [text(ACTIVE[0], "wamid.z3"), text("0447700900201", "wamid.zero2"), text(ACTIVE[1], "wamid.z4")]
    results = batch(db, bodies)
    assert [r["outcome"] for r in results] == ["processed", "failed", "processed"]
    errors = db.execute(
        "SELECT error FROM whatsapp_handler.webhook_events WHERE id = ANY (%s) ORDER BY id",
        ([alone["webhook_event_id"], results[1]["webhook_event_id"]],),
    ).fetchall()
    assert [e["error"].split(":")[0] for e in errors] == ["WH001", "WH001"]
    letters = db.execute("SELECT message ->> 'sqlstate' AS s FROM pgmq.q_inbound_dlq ORDER BY msg_id").fetchall()
    assert [r["s"] for r in letters] == ["WH001", "WH001"]


def sources(db, pattern: str) -> list[str]:
    """The project's functions whose body, and the constraints whose definition, match."""
    functions = db.execute(
        "SELECT p.proname FROM pg_proc p WHERE p.pronamespace = 'whatsapp_handler'::regnamespace"
        " AND p.prosrc ~ %s ORDER BY 1",
        (pattern,),
    ).fetchall()
    constraints = db.execute(
        "SELECT c.conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace"
        " WHERE n.nspname = 'whatsapp_handler' AND pg_get_constraintdef(c.oid) ~ %s ORDER BY 1",
        (pattern,),
    ).fetchall()
    return [r["proname"] for r in functions] + [r["conname"] for r in constraints]


def test_the_phone_shape_is_written_once(db):
    assert sources(db, r"\[0-9\]\{6,") == ["_is_e164"]


def test_the_settings_check_a_channel_phone_as_the_schema_does(db):
    """The one copy across the wall: settings refuse a channel's phone before `serve` reaches
    add_channel, and must refuse exactly what the e164 domain refuses."""
    from hypothesis import HealthCheck, given, settings
    from pydantic import ValidationError

    from app.settings import ChannelConfig
    from tests.fuzz_strategies import phones

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    def storable(text: str) -> bool:  # what a text column can hold at all
        return "\x00" not in text and text.encode("utf-8", "surrogatepass").decode("utf-8", "ignore") == text

    @given(phones().filter(storable))
    def agree(phone: str) -> None:
        try:
            ChannelConfig(provider="meta", ref="1", phone=phone, name="n", secret="s" * 32)
            python = True
        except ValidationError:
            python = False
        sql = db.execute("SELECT whatsapp_handler._is_e164(%s) AS ok", (phone,)).fetchone()["ok"]
        assert python == sql, phone

    agree()


def test_activity_is_written_once(db):
    assert sources(db, r"SET\s+last_active_at") == ["_touch_activity"]


def test_the_event_envelope_is_written_once(db):
    assert sources(db, r"'aggregate_type'") == ["_event_envelope"]
