"""Hypothesis against the SQL API: every function a role may call, with hostile arguments.

CI (derandomized, a few examples per function):
    .venv/bin/pytest -q -p no:xdist tests/test_fuzz_sql.py
By hand, long and random (see bench/fuzz_long.sh):
    WH_FUZZ=long .venv/bin/pytest -q -p no:xdist -s tests/test_fuzz_sql.py

Properties of each call, made in a savepoint as the role that may make it:
- it succeeds, or raises a project SQLSTATE listed in docs/errors.md (or 42501) from inside the function;
  a mistake in the arguments themselves (a text that is no bigint, a \\u0000 in jsonb, no function of
  those types) is refused at the call site, before the function runs, and carries no PL/pgSQL context;
- a failed call leaves every table of whatsapp_handler and every pgmq queue exactly as it was;
- a successful call's effects are whole: the outbox events it promises, one per state change.
The business API (send_message, send_messages, message_view, mark_read, people_*), called with the seeded keys:
- a success is one the key may make (live, with the scope, on the channel): no other key's call gets that far;
- a send queues exactly one outbound message, one message.queued event and one messages row, or nothing at all,
  and the same idempotency key and body again answer the same id without queueing anything.
Each example runs in a transaction that is rolled back, so the seeded database is the same for all.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pytest_postgresql.janitor import DatabaseJanitor

from app.cluster import LocalCluster
from kit import payloads
from tests.conftest import TEMPLATE_DB
from tests.fuzz_strategies import (
    RawJson,
    any_json,
    budget,
    business_contents,
    evolution_bodies,
    idempotency_keys,
    json_numbers_or_not,
    json_values,
    key_hashes,
    meta_bodies,
    mostly,
    phones,
    texts,
    twilio_bodies,
    words,
    wrong_types,
)

DOCUMENTED = set(re.findall(r"`(WH\d{3})`", (Path(__file__).parents[1] / "docs" / "errors.md").read_text()))
# Refusals of the arguments themselves, raised while PostgreSQL binds them, before any function body runs.
# 54001: PostgreSQL's jsonb input parser refuses nesting deeper than its stack allows (about ten thousand levels).
# 42P01, 42602, 3F000, 42704: a regclass argument that names no table (create_partition is for operators).
CALL_SITE = {"42883", "42804", "42P18", "42725", "54000", "54001", "42P01", "42602", "3F000", "42704"}
ROLES = {"owner": None, "relay": "whatsapp_handler_relay", "worker": "whatsapp_handler_worker"}
ROLES["consumer"] = "whatsapp_handler_consumer"
TWILIO_REF = "whatsapp:+15550002222"
EVOLUTION_REF = "shop-instance"
# A binding error's context names the portal parameter; an error raised by a function body names the function.
INSIDE_A_FUNCTION = re.compile(r"(PL/pgSQL|SQL) function")
CALLS: dict[str, int] = {}
# How each target's calls ended ("ok", a SQLSTATE, or "client" for what psycopg refused to send): printed, so that
# a target whose calls all stop at the first check shows it.
ENDINGS: dict[str, Counter[str]] = {}


# --- the seeded world -------------------------------------------------------------------------------------------


@dataclass
class Business:
    """What the business API's targets call with: keys, the people the channels know, what they sent."""

    keys: dict[str, bytes]  # name -> SHA-256 of the key, as the relay passes it
    people: list[str]  # phones with an open conversation on the Meta channel (and A on every channel)
    inbound: list[str]  # the provider's ids of the people's messages
    messages: list[int]  # ids of messages, outbound (one sent through the API) and inbound
    used_keys: list[str]  # idempotency keys already used by "sender"
    templates: list[str]


@dataclass
class World:
    channels: list[int]
    users: list[int]
    phones: list[str]
    outbound: list[int]
    outbox: list[int]
    dead_letters: list[int]
    business: Business
    snapshot_sql: str = field(repr=False)


def _one(db: psycopg.Connection, sql: str, *args: Any) -> Any:
    return next(iter(db.execute(sql, args).fetchone().values()))


# The business's keys: (channels by index into World.channels, scopes, revoked).
KEYS = {
    "sender": ([0, 1, 2], ["send", "read"], False),
    "manager": ([0, 1, 2], ["manage"], False),
    "meta-only": ([0], ["send", "read", "manage"], False),
    "reader": ([0], ["read"], False),
    "revoked": ([0, 1, 2], ["send", "read", "manage"], True),
}
PERSON_A, PERSON_B, PERSON_D = "+447700900009", "+447700900010", "+447700900011"
BODY_2 = [{"type": "BODY", "text": "Hi {{1}}, parcel {{2}}"}]
# (channel index, name, category, status, components, Twilio's Content SID)
TEMPLATES = [
    (0, "parcel_update", "utility", "approved", BODY_2, None),
    (0, "spring_sale", "marketing", "approved", [{"type": "BODY", "text": "Sale on {{1}}"}], None),
    (0, "login_code", "authentication", "approved", [{"type": "BODY", "text": "{{1}} is your code"}], None),
    (0, "under_review", "utility", "pending", BODY_2, None),
    (1, "parcel_update", "utility", "approved", BODY_2, "HX0123"),
    (1, "no_sid", "utility", "approved", [{"type": "BODY", "text": "Hi"}], None),
]


def _seed_business(db: psycopg.Connection, channels: list[int]) -> Business:
    """A writes on every channel and opted in to marketing on Meta; B opted out there; D was blocked through
    the API; "sender" sent A one message with idempotency key seed-1."""
    keys = {}
    for name, (indexes, scopes, revoked) in KEYS.items():
        key = _one(db, "SELECT api_key FROM whatsapp_handler.api_key_create(%s, %s, %s)",
                   name, [channels[i] for i in indexes], scopes)  # fmt: skip
        keys[name] = hashlib.sha256(key.encode()).digest()
        if revoked:
            db.execute("SELECT whatsapp_handler.api_key_revoke(%s)", (name,))
    for index, name, category, status, components, sid in TEMPLATES:
        db.execute("SELECT whatsapp_handler.template_upsert(%s, %s, 'en_GB', %s, %s, %s, %s)",
                   (channels[index], name, category, status, Jsonb(components), sid))  # fmt: skip
    inbound = ["wamid.seed", "SMseedA", "EVOseedA", "wamid.seedB", "wamid.seedD"]
    twilio = payloads.twilio_inbound(inbound[1], PERSON_A, TWILIO_REF.removeprefix("whatsapp:"))
    db.execute("SELECT whatsapp_handler.ingest_twilio(%s)", (Jsonb(twilio),))
    db.execute("SELECT whatsapp_handler.ingest_evolution(%s)",
               (Jsonb(payloads.evolution_upsert(EVOLUTION_REF, PERSON_A, inbound[2])),))  # fmt: skip
    for phone, wamid in [(PERSON_B, inbound[3]), (PERSON_D, inbound[4])]:
        db.execute("SELECT whatsapp_handler.ingest_meta(%s)", (Jsonb(payloads.meta_text(phone.lstrip("+"), wamid)),))

    def person(phone: str, **fields: Any) -> Jsonb:
        return Jsonb({"channel_id": channels[0], "phone": phone, **fields})

    manager, consent = keys["manager"], "SELECT whatsapp_handler.people_consent(%s, %s)"
    db.execute(consent, (manager, person(PERSON_A, opt_in=True, source="seed")))
    db.execute(consent, (manager, person(PERSON_B, opt_in=False, source="seed")))
    db.execute("SELECT whatsapp_handler.people_block(%s, %s)", (manager, person(PERSON_D, reason="seeded")))
    text = {"channel_id": channels[0], "to": PERSON_A, "type": "text", "text": {"body": "seeded"}}
    db.execute("SELECT whatsapp_handler.send_message(%s, %s, 'seed-1')", (keys["sender"], Jsonb(text)))
    return Business(
        keys=keys,
        people=[PERSON_A, PERSON_B, PERSON_D],
        inbound=inbound,
        messages=_one(db, "SELECT array_agg(id ORDER BY id) FROM whatsapp_handler.messages"),
        used_keys=["seed-1"],
        templates=sorted({t[1] for t in TEMPLATES}),
    )


def _seed(db: psycopg.Connection) -> World:
    add = "SELECT whatsapp_handler.add_channel(%s, %s, %s, %s)"
    channels = [
        _one(db, add, "meta", payloads.META_PHONE_NUMBER_ID, "+15550001111", "Support"),
        _one(db, add, "twilio", TWILIO_REF, "+15550002222", "Twilio"),
        _one(db, add, "evolution", EVOLUTION_REF, "+15550003333", "Shop"),
    ]
    phones_ = [f"+4477009000{i:02d}" for i in range(1, 6)]
    register = "SELECT user_id FROM whatsapp_handler.register_user(%s, %s, 'Ana')"
    users = [_one(db, register, phone, channels[0]) for phone in phones_[:4]]
    db.execute("SELECT whatsapp_handler.accept_terms(%s, '2024-01')", (users[0],))
    db.execute("SELECT whatsapp_handler.block_user(%s, 'spam')", (users[1],))
    db.execute("SELECT whatsapp_handler.erase_user(%s)", (users[2],))
    db.execute("SELECT whatsapp_handler.request_otp(%s, %s)", (phones_[4], channels[0]))
    db.execute("SELECT whatsapp_handler.ingest_meta(%s)", (Jsonb(payloads.meta_text("447700900009", "wamid.seed")),))
    db.execute("SELECT whatsapp_handler.ingest_meta(%s)", (Jsonb({"object": "whatsapp_business_account"}),))
    claimed = _one(db, "SELECT msg_id FROM whatsapp_handler.worker_claim(1, 30)")
    db.execute("SELECT whatsapp_handler.worker_dead_letter(%s, 'provider_down', '{}')", (claimed,))
    business = _seed_business(db, channels)

    def ids(queue: str) -> list[int]:
        return _one(db, f"SELECT coalesce(array_agg(msg_id ORDER BY msg_id), '{{}}') FROM pgmq.q_{queue}")

    return World(
        channels=channels,
        users=users,
        phones=phones_,
        outbound=ids("outbound"),
        outbox=ids("outbox"),
        dead_letters=ids("inbound_dlq") + ids("outbound_dlq"),
        business=business,
        snapshot_sql=_snapshot_sql(db),
    )


def _snapshot_sql(db: psycopg.Connection) -> str:
    """One statement giving each table's row count and a hash of its rows (the tables are small here)."""
    tables = [
        row["t"]
        for row in db.execute(
            """SELECT c.oid::regclass::text AS t FROM pg_class c
               WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
                 AND (c.relnamespace = 'whatsapp_handler'::regnamespace
                      OR (c.relnamespace = 'pgmq'::regnamespace AND c.relname ~ '^(q|a)_|^meta$'))
               ORDER BY 1"""
        )
    ]
    parts = [
        f"SELECT '{t}' AS t, count(*) AS n, md5(coalesce(string_agg(r::text, ',' ORDER BY r::text), '')) AS h"
        f" FROM {t} r"
        for t in tables
    ]
    return " UNION ALL ".join(parts)


@pytest.fixture(scope="module")
def fuzz_db(cluster: LocalCluster) -> Iterator[psycopg.Connection]:
    """One seeded database for every target of this module: each example rolls back what it did."""
    janitor = DatabaseJanitor(
        user="postgres",
        host="127.0.0.1",
        port=cluster.port,
        password=cluster.password(),
        dbname="wh_fuzz_sql",
        template_dbname=TEMPLATE_DB,
    )
    with janitor, psycopg.connect(cluster.url("wh_fuzz_sql"), autocommit=True, row_factory=dict_row) as conn:
        conn.execute("SET statement_timeout = '60s'")
        yield conn


@pytest.fixture(scope="module")
def world(fuzz_db: psycopg.Connection) -> World:
    return _seed(fuzz_db)


def snapshot(db: psycopg.Connection, world: World) -> dict[str, tuple[int, str]]:
    return {row["t"]: (row["n"], row["h"]) for row in db.execute(world.snapshot_sql)}


def plain(arg: Any) -> Any:
    """An argument as Python holds it: the value inside a Jsonb."""
    return arg.obj if isinstance(arg, Jsonb) else arg


def sent(arg: Any) -> Any:
    """An argument as psycopg sends it: raw JSON text as jsonb."""
    return jsonb(arg) if isinstance(arg, RawJson) else arg


def _call(db: psycopg.Connection, role: str | None, sql: str, args: tuple) -> list[dict]:
    """One call in a savepoint, as the role: a refusal undoes the call, and only the call."""
    with db.transaction():
        if role:
            db.execute(f"SET LOCAL ROLE {role}")
        rows = db.execute(sql, tuple(sent(a) for a in args)).fetchall()
        db.execute("RESET ROLE")
    return rows


@dataclass
class Outcome:
    """A successful call: its arguments and answer, the tables before and after it, and a way to call again."""

    db: psycopg.Connection
    world: World
    role: str | None
    sql: str
    args: tuple
    rows: list[dict]
    before: dict[str, tuple[int, str]]
    after: dict[str, tuple[int, str]]
    last_outbox: int

    @property
    def value(self) -> Any:
        """The first column of the first row: what a function returning a scalar returned."""
        return self.rows[0][next(iter(self.rows[0]))]

    def arg(self, index: int) -> Any:
        return plain(self.args[index])

    def events(self) -> list[dict]:
        rows = self.db.execute(
            "SELECT message FROM pgmq.q_outbox WHERE msg_id > %s ORDER BY msg_id", (self.last_outbox,)
        ).fetchall()
        return [row["message"] for row in rows]

    def types(self) -> list[str]:
        return [event["type"] for event in self.events()]

    def grew(self, table: str) -> int:
        return self.after[table][0] - self.before[table][0]

    def touched(self) -> set[str]:
        return {table for table in self.after if self.after[table] != self.before[table]}

    def again(self, sql: str | None = None, args: tuple | None = None) -> tuple[list[dict], bool]:
        """The same call (or another one) once more, as the same role: its rows, and whether it left every
        table as it found it. A refusal raises."""
        before = snapshot(self.db, self.world)
        rows = _call(self.db, self.role, sql or self.sql, self.args if args is None else args)
        return rows, snapshot(self.db, self.world) == before


# --- targets ----------------------------------------------------------------------------------------------------


@dataclass
class Target:
    """One SQL function, the role that calls it, a strategy of its arguments and what a success must leave."""

    name: str
    role: str
    args: Callable[[World], st.SearchStrategy[tuple]]
    effects: Callable[[Outcome], None] | None = None
    examples: list[Callable[[World], tuple]] = field(default_factory=list)
    ci: int = 10  # examples in CI (WH_FUZZ=long: 250)

    def sql(self, n: int) -> str:
        return f"SELECT * FROM whatsapp_handler.{self.name}({', '.join(['%s'] * n)})"


def jsonb(value: Any) -> Jsonb:
    if isinstance(value, RawJson):
        return Jsonb(value, dumps=str)
    return Jsonb(value)


def ids(known: list[int]) -> st.SearchStrategy[Any]:
    """Known ids mostly, any bigint often, a wrong type sometimes."""
    return st.one_of(
        st.sampled_from(known) if known else st.nothing(),
        st.integers(-(2**63), 2**63 - 1),
        st.sampled_from([0, -1, 2**63 - 1, -(2**63)]),
        wrong_types(),
    )


def ints(lo: int, hi: int) -> st.SearchStrategy[Any]:
    return st.one_of(st.integers(lo, hi), st.integers(-(2**31), 2**31 - 1), wrong_types())


def floats() -> st.SearchStrategy[Any]:
    return st.one_of(st.floats(), st.integers(-(10**6), 10**6), wrong_types())


def text_arg() -> st.SearchStrategy[Any]:
    return texts() | st.none() | wrong_types()


def json_arg() -> st.SearchStrategy[Any]:
    return any_json().map(jsonb) | wrong_types()


def id_array(known: list[int]) -> st.SearchStrategy[Any]:
    return st.lists(st.sampled_from(known) | st.integers(-(2**63), 2**63 - 1), max_size=20) | wrong_types()


def preferences() -> st.SearchStrategy[Any]:
    keys = st.sampled_from(["notifications_enabled", "language", "timezone", "delay_threshold_minutes", "auto_claim"])
    values = json_values(4) | st.sampled_from(["en", "pt-BR", "Europe/Lisbon", "Mars/Olympus", 15, -1, 10**12, True])
    return st.dictionaries(keys | texts(12), values, max_size=4).map(jsonb) | json_arg()


def _event_per_change(event: str) -> Callable:
    """A boolean-returning state change emits its event exactly when it returns true, and nothing else."""

    def check(o: Outcome) -> None:
        changed = o.value
        assert o.types() == ([event] if changed else [])
        if not changed:
            assert o.after == o.before, "returned false but changed something"

    return check


def _registered(o: Outcome) -> None:
    created = o.rows[0]["created"]
    assert o.grew("whatsapp_handler.users") == int(created)
    assert o.types() == (["user.registered"] if created else [])


def _preferences_set(o: Outcome) -> None:
    """One event carrying exactly the values that changed, or none; nothing but the preferences row is touched."""
    now = o.value
    events = o.events()
    assert len(events) <= 1
    if events:
        assert events[0]["type"] == "user.preferences_updated"
        changed = events[0]["payload"]["changed"]
        assert changed and all(now[key] == value for key, value in changed.items())
    touched = o.touched()
    assert touched <= {"whatsapp_handler.user_preferences", "pgmq.q_outbox"}
    assert ("pgmq.q_outbox" in touched) == bool(events)


def _otp_issued(o: Outcome) -> None:
    """A challenge each time; a code and an event unless the phone is blocked (its challenge is a decoy)."""
    blocked = _one(
        o.db,
        "SELECT u.blocked_at IS NOT NULL FROM whatsapp_handler.otp_challenges c"
        " JOIN whatsapp_handler.users u ON u.id = c.user_id WHERE c.id = %s",
        o.rows[0]["challenge_id"],
    )
    assert ("otp.requested" in o.types()) == (not blocked)
    assert o.grew("pgmq.q_outbound") == (not blocked)
    assert o.grew("whatsapp_handler.otp_challenges") == 1


def _otp_checked(o: Outcome) -> None:
    outcome = o.value
    assert outcome in {"verified", "invalid", "expired", "locked", "no_challenge"}
    if outcome != "verified":
        assert "user.verified" not in o.types()


def _ingested(o: Outcome) -> None:
    """Every body given is stored once, with one result each, and each failed one is dead-lettered once."""
    results = o.value
    results = results if isinstance(results, list) else [results]
    assert all(r["outcome"] in {"processed", "stored", "failed"} and r["webhook_event_id"] for r in results), results
    assert o.grew("whatsapp_handler.webhook_events") == len(results), "every webhook body is stored, once"
    failed = sum(r["outcome"] == "failed" for r in results)
    assert o.grew("pgmq.q_inbound_dlq") == failed


def _batch_args(world: World) -> st.SearchStrategy[tuple]:
    def bodies(provider: str) -> st.SearchStrategy[list]:
        return st.lists(_provider_bodies(world)[provider].map(jsonb) | any_json().map(jsonb), max_size=4)

    provider = st.sampled_from(["meta", "twilio", "evolution"])
    shaped = provider.flatmap(
        lambda p: bodies(p).flatmap(
            lambda b: st.tuples(
                st.just(p), st.just(b), st.lists(texts(20) | st.none(), min_size=len(b), max_size=len(b))
            )
        )
    )
    return shaped | st.tuples(
        text_arg(), st.lists(json_arg(), max_size=3) | wrong_types(), st.lists(text_arg()) | wrong_types()
    )


def _provider_bodies(world: World) -> dict[str, st.SearchStrategy[Any]]:
    return {
        "meta": meta_bodies([payloads.META_PHONE_NUMBER_ID]),
        "twilio": twilio_bodies([TWILIO_REF]),
        "evolution": evolution_bodies([EVOLUTION_REF]),
    }


def _ingest_args(provider: str) -> Callable[[World], st.SearchStrategy[tuple]]:
    def args(world: World) -> st.SearchStrategy[tuple]:
        body = _provider_bodies(world)[provider].map(jsonb) | json_arg()
        return st.tuples(body, texts(200) | st.none())

    return args


def _raw_args(world: World) -> st.SearchStrategy[tuple]:
    """ingest_raw: the bytes as received, the relay's cleaned text (a provider's body, anything, or none)."""
    cleaned = st.one_of(*_provider_bodies(world).values()).map(json.dumps) | text_arg()
    raw = st.binary(max_size=300) | st.none() | wrong_types()
    return st.tuples(PROVIDER, raw, cleaned, text_arg(), texts(200) | st.none())


# --- the business API ---------------------------------------------------------------------------------------------


def _keys(world: World, *good: str) -> st.SearchStrategy[bytes]:
    keys = world.business.keys
    return key_hashes([keys[name] for name in good], [h for name, h in keys.items() if name not in good])


def _channel(world: World) -> st.SearchStrategy[Any]:
    """A request's channel_id: a seeded channel mostly, then what a JSON client might put there."""
    return mostly(st.sampled_from(world.channels), json_numbers_or_not())


def _person(world: World) -> st.SearchStrategy[Any]:
    """A phone the Meta channel knows mostly, one it does not (or no phone), or no string."""
    return mostly(st.sampled_from(world.business.people + world.phones), phones() | json_values(1))


def _correlation() -> st.SearchStrategy[str | None]:
    return st.none() | st.just("cid-fuzz") | words(200)


def _well_typed(typed: st.SearchStrategy[tuple], *loose: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple]:
    """Arguments of the function's types three times in four, so that calls get past binding to the function's
    own checks with hostile values; arguments of any type (refused at the call site) the rest of the time."""
    return mostly(typed, st.tuples(*loose))


def _send_args(world: World) -> st.SearchStrategy[tuple]:
    content = business_contents(world.business.templates, world.business.inbound)
    # A's window is open on every channel, B's on Meta: the recipients a free-form message may reach.
    to = mostly(st.sampled_from([PERSON_A, PERSON_B]), _person(world))
    request = st.builds(lambda c, channel, to: {"channel_id": channel, "to": to, **c}, content, _channel(world), to)
    keys = idempotency_keys(world.business.used_keys)
    typed = st.tuples(_keys(world, "sender"), request.map(jsonb), keys, _correlation())
    return _well_typed(typed, _keys(world, "sender") | wrong_types(), json_arg(), keys | wrong_types(), text_arg())


def _batch_send_args(world: World) -> st.SearchStrategy[tuple]:
    content = business_contents(world.business.templates, world.business.inbound)
    key = st.sampled_from(["b1", "b2", *world.business.used_keys]) | idempotency_keys([]) | json_values(1)
    element = st.builds(lambda c, to, k: {**c, "to": to, "idempotency_key": k}, content, _person(world), key)
    batch = st.lists(element | json_values(2), min_size=1, max_size=5).map(jsonb) | any_json().map(jsonb)
    channel = st.sampled_from(world.channels) | st.integers(-(2**63), 2**63 - 1)
    typed = st.tuples(_keys(world, "sender"), channel, batch, _correlation())
    return _well_typed(typed, _keys(world, "sender") | wrong_types(), ids(world.channels), json_arg(), text_arg())


def _read_args(world: World) -> st.SearchStrategy[tuple]:
    channel = st.sampled_from(world.channels) | st.integers(-(2**63), 2**63 - 1)
    message = st.sampled_from(world.business.inbound) | words(300) | st.none()
    typed = st.tuples(_keys(world, "sender"), channel, message, st.booleans() | st.none(), _correlation())
    loose = (_keys(world, "sender") | wrong_types(), ids(world.channels), text_arg(), wrong_types(), text_arg())
    return _well_typed(typed, *loose)


def _view_args(world: World) -> st.SearchStrategy[tuple]:
    typed = st.tuples(_keys(world, "sender", "reader"), st.sampled_from(world.business.messages))
    return _well_typed(typed, _keys(world, "reader") | wrong_types(), ids(world.business.messages))


PREFERENCE_KEYS = ["language", "timezone", "delay_threshold_minutes", "auto_claim", "notifications_enabled"]


def _people_args(**fields: st.SearchStrategy[Any]) -> Callable[[World], st.SearchStrategy[tuple]]:
    """A people request: channel_id, phone and this call's fields, now and then an unknown one; or any JSON."""

    def args(world: World) -> st.SearchStrategy[tuple]:
        # The people the seed made are known on the Meta channel.
        channel = mostly(st.just(world.channels[0]), _channel(world))
        members = {"channel_id": channel, "phone": _person(world), **fields}
        unknown = st.fixed_dictionaries(members, optional={"note": json_values(2)})
        request = mostly(st.fixed_dictionaries(members), unknown).map(jsonb)
        typed = st.tuples(_keys(world, "manager"), request, _correlation())
        return _well_typed(typed, _keys(world, "manager") | wrong_types(), json_arg(), text_arg())

    return args


CONSENT_FIELDS = {
    "opt_in": st.booleans() | st.booleans() | json_values(1),
    "source": st.from_regex(r"\A[a-z0-9][a-z0-9_.-]{0,59}\Z") | words(70) | json_values(1),
}
PREFERENCE_FIELDS = {
    "preferences": st.dictionaries(
        st.sampled_from(PREFERENCE_KEYS) | words(12),
        json_values(3) | st.sampled_from(["en", "pt-BR", "Europe/Lisbon", "Mars/Olympus", 15, -1, 10**12, True]),
        max_size=4,
    )
    | json_values(2)
}
BLOCK_FIELDS = {"reason": words(450) | st.sampled_from(["spam", " ", ""]) | json_values(1)}


def _key_may(o: Outcome, scope: str, channel: Any) -> None:
    """A success means the key is live and holds the scope on the channel: no other key's call gets that far."""
    may = _one(
        o.db,
        "SELECT EXISTS (SELECT FROM whatsapp_handler.api_keys WHERE key_hash = %s::bytea AND revoked_at IS NULL"
        " AND %s = ANY (scopes) AND %s::bigint = ANY (channel_ids))",
        sent(o.args[0]),
        scope,
        sent(channel),
    )
    assert may, f"a call with a key that may not {scope} on channel {channel!r} succeeded"


def _queued(o: Outcome, message_ids: list[int]) -> None:
    """Each message accepted: one outbound message, one messages row and one send request; one message.queued
    event each; and nothing else but the registration of a phone never met."""
    n = len(message_ids)
    for table in ("pgmq.q_outbound", "whatsapp_handler.messages", "whatsapp_handler.send_requests"):
        assert o.grew(table) == n, f"{table} grew by {o.grew(table)} for {n} accepted"
    queued = o.db.execute(
        "SELECT message ->> 'message_id' AS id FROM pgmq.q_outbound"
        " WHERE message ->> 'kind' = 'business' AND message ->> 'message_id' = ANY (%s)",
        ([str(i) for i in message_ids],),
    ).fetchall()
    assert sorted(int(r["id"]) for r in queued) == sorted(message_ids), "not queued exactly once each"
    events = o.events()
    assert sorted(e["payload"]["message_id"] for e in events if e["type"] == "message.queued") == sorted(message_ids)
    assert {e["type"] for e in events} <= {"message.queued", "user.registered"}, o.types()
    assert o.grew("whatsapp_handler.users") == o.types().count("user.registered")


def _sent(o: Outcome) -> None:
    """Accepted once (or a retry, which changes nothing); the same call again is a retry of it."""
    row = o.rows[0]
    _key_may(o, "send", o.arg(1)["channel_id"])
    if row["duplicate"]:
        assert o.after == o.before, "a retry changed something"
    else:
        _queued(o, [row["message_id"]])
    rows, unchanged = o.again()
    assert rows == [{"message_id": row["message_id"], "duplicate": True}], rows
    assert unchanged, "a retry changed something"


def _batch_sent(o: Outcome) -> None:
    """One answer per element, in order: an id or a documented refusal; each accepted one queued once; the
    same batch again answers the same ids as retries and queues nothing."""
    _key_may(o, "send", o.args[1])
    assert [r["index"] for r in o.rows] == list(range(_one(o.db, "SELECT jsonb_array_length(%s)", sent(o.args[2]))))
    for r in o.rows:
        assert (r["message_id"] is None) == (r["error_code"] is not None), r
        assert r["error_code"] is None or (r["error_code"] in DOCUMENTED and r["error"]), r
    _queued(o, [r["message_id"] for r in o.rows if r["message_id"] is not None and not r["duplicate"]])
    rows, unchanged = o.again()
    for first, second in zip(o.rows, rows, strict=True):
        if first["message_id"] is None:
            assert second["error_code"] is not None, (first, second)
        else:
            assert (second["message_id"], second["duplicate"]) == (first["message_id"], True), (first, second)
    assert unchanged, "a retried batch changed something"


def _read_marked(o: Outcome) -> None:
    """A read receipt (and on Evolution the typing indicator apart) queued for the person, and nothing else; never
    for a blocked person, who gets nothing from any brand (docs/sending.md, Block)."""
    _key_may(o, "send", o.args[1])
    n = o.value
    assert n in (1, 2) and o.grew("pgmq.q_outbound") == n
    assert o.touched() <= {"pgmq.q_outbound"} and o.types() == [], o.touched()
    queued = [
        r["message"] for r in o.db.execute("SELECT message FROM pgmq.q_outbound ORDER BY msg_id DESC LIMIT %s", (n,))
    ]
    assert sorted(m["kind"] for m in queued) == ["read", "typing"][:n]
    assert all(m["provider_message_id"] == o.arg(2) for m in queued)
    blocked = "SELECT blocked_at IS NOT NULL FROM whatsapp_handler.users WHERE id = %s"
    assert not any(_one(o.db, blocked, m["user_id"]) for m in queued), f"{queued} queued to a blocked person"


def _viewed(o: Outcome) -> None:
    """The message asked for, outbound, on a channel the key may read; nothing written."""
    view = o.value
    assert o.after == o.before
    _key_may(o, "read", view["channel_id"])
    assert view["id"] == _one(o.db, "SELECT %s::bigint", sent(o.args[1]))
    assert _one(o.db, "SELECT direction FROM whatsapp_handler.messages WHERE id = %s", view["id"]) == "outbound"


def _managed(o: Outcome) -> dict[str, Any]:
    request = o.arg(1)
    _key_may(o, "manage", request["channel_id"])
    return request


def _consented(o: Outcome) -> None:
    """The status asked for; consent.changed exactly when it changed; the same call again changes nothing."""
    request, row = _managed(o), o.rows[0]
    assert row["status"] == ("opted_in" if request["opt_in"] else "opted_out")
    assert o.types().count("consent.changed") == int(row["changed"])
    assert set(o.types()) <= {"consent.changed", "user.registered"}, o.types()
    rows, unchanged = o.again()
    assert rows == [{"status": row["status"], "changed": False}] and unchanged, rows


def _preferences_read(o: Outcome) -> None:
    _managed(o)
    assert o.after == o.before
    assert isinstance(o.value, dict) and "language" in o.value and "user_id" not in o.value, o.value


def _preferences_patched(o: Outcome) -> None:
    _managed(o)
    _preferences_set(o)
    rows, unchanged = o.again()
    assert rows == o.rows and unchanged, "the same preferences again changed something"


def _block_changed(event: str, blocked: bool) -> Callable[[Outcome], None]:
    """blocked as asked; the event exactly when changed, nothing at all otherwise; the same call again no change."""

    def check(o: Outcome) -> None:
        _managed(o)
        row = o.rows[0]
        assert row["blocked"] is blocked
        assert o.types() == ([event] if row["changed"] else [])
        if not row["changed"]:
            assert o.after == o.before, "returned changed false but changed something"
        rows, unchanged = o.again()
        assert rows == [{"blocked": blocked, "changed": False}] and unchanged, rows

    return check


def _exported(o: Outcome) -> None:
    request = _managed(o)
    export = o.value
    assert o.after == o.before
    assert export["format"] == "whatsapp-handler.brand-export/1" and export["person"]["phone"] == request["phone"]
    assert request["channel_id"] in export["channel_ids"]


def _erased(o: Outcome) -> None:
    """The person erased, as a person or from the brand, and from then on unknown to the brand (WH071)."""
    request = _managed(o)
    assert o.value is True
    erasures = [t for t in o.types() if t in {"user.erased", "user.brand_erased"}]
    assert erasures in (["user.erased"], ["user.brand_erased"]), o.types()
    asked = Jsonb({"channel_id": request["channel_id"], "phone": request["phone"]})
    with pytest.raises(psycopg.Error) as refused:
        o.again("SELECT * FROM whatsapp_handler.people_preferences(%s, %s)", (o.args[0], asked))
    assert refused.value.sqlstate == "WH071", refused.value


def _seeded_send(world: World, to: str = PERSON_A, idem: str = "seed-1", **content: Any) -> tuple:
    body = content or {"type": "text", "text": {"body": "seeded"}}
    request = Jsonb({"channel_id": world.channels[0], "to": to, **body})
    return (world.business.keys["sender"], request, idem, None)


def _template_send(world: World, channel: int, to: str) -> tuple:
    parameters = [{"type": "text", "text": "Ana"}, {"type": "text", "text": "P-1"}]
    template = {"name": "parcel_update", "language": {"code": "en_GB"},
                "components": [{"type": "body", "parameters": parameters}]}  # fmt: skip
    request = Jsonb({"channel_id": world.channels[channel], "to": to, "type": "template", "template": template})
    return (world.business.keys["sender"], request, f"t-{channel}", "cid-fuzz")


def _people(world: World, key: str, phone: str, **fields: Any) -> tuple:
    return (world.business.keys[key], Jsonb({"channel_id": world.channels[0], "phone": phone, **fields}), None)


def _batch_text(idem: str) -> dict[str, Any]:
    return {"to": PERSON_A, "type": "text", "text": {"body": "b"}, "idempotency_key": idem}


SEND_EXAMPLES = [
    _seeded_send,  # the seeded send again: a retry
    lambda w: _seeded_send(w, text={"body": "another"}, type="text"),  # WH069
    lambda w: _template_send(w, 0, "+447700900123"),  # a phone never met: registered, then sent a template
    lambda w: _template_send(w, 1, PERSON_A),  # Twilio: the Content SID and numbered variables
    lambda w: _seeded_send(
        w, PERSON_B, "k-b", type="template", template={"name": "parcel_update", "language": {"code": "en_GB"}}
    ),  # WH067
]
BATCH_EXAMPLES = [
    lambda w: (w.business.keys["sender"], w.channels[0], Jsonb([{}] * 1001), None),  # WH062: too many
    lambda w: (w.business.keys["sender"], w.channels[0], Jsonb([_batch_text(k) for k in ("b1", "b1", "seed-1")]), None),
]
BLOCKED, UNBLOCKED = _block_changed("user.blocked", True), _block_changed("user.unblocked", False)
READ_EXAMPLES = [
    lambda w: (w.business.keys["sender"], w.channels[2], "EVOseedA", True, None),
    # Found by the fuzz: D wrote, then was blocked through the API; mark_read queued them a read receipt.
    lambda w: (w.business.keys["sender"], w.channels[0], "wamid.seedD", True, None),
]
VIEW_EXAMPLES = [lambda w: (w.business.keys["reader"], max(w.business.messages))]
PEOPLE_EXAMPLES = {
    "consent": [lambda w: _people(w, "manager", "+447700900124", opt_in=True, source="checkout-form")],
    "unblock": [lambda w: _people(w, "manager", PERSON_D), lambda w: _people(w, "manager", w.phones[1])],
    "erase": [lambda w: _people(w, "meta-only", PERSON_A)],
}


TERMS = "user.terms_accepted"
PROVIDER = text_arg() | st.sampled_from(["meta", "twilio", "evolution"])
CODE = text_arg() | st.from_regex(r"\A[0-9]{6}\Z")
REASON = text_arg() | st.sampled_from(["rejected", "attempts_exhausted", "provider_down", "in_doubt"])


PARTITIONED = ["whatsapp_handler.messages", "whatsapp_handler.webhook_events", "whatsapp_handler.message_status_events"]
PARENT = st.sampled_from([*PARTITIONED, "whatsapp_handler.users", "pg_class", "no_such_table"]) | text_arg()
STEP = st.sampled_from(["day", "month", "week", "year"]) | text_arg()


def moments() -> st.SearchStrategy[Any]:
    utc = st.just(UTC)
    midnights = st.dates(date(1970, 1, 1), date(2200, 1, 1)).map(lambda d: datetime(d.year, d.month, d.day, tzinfo=UTC))
    return st.one_of(
        midnights,
        st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31), timezones=utc),
        st.sampled_from(["infinity", "-infinity", "epoch", "294277-01-01", "4714-11-24 BC"]),
        wrong_types(),
    )


def known_phones(world: World) -> st.SearchStrategy[Any]:
    return phones() | st.sampled_from(world.phones)


def text_array() -> st.SearchStrategy[Any]:
    return st.lists(text_arg(), max_size=20) | wrong_types()


# Found by the fuzz: a NULL body reached the NOT NULL raw column (23502); a release delay past the timestamp
# range (22008). Both are WH-coded refusals now.
NULL_BODY = lambda w: (None, None)  # noqa: E731
ANCIENT = lambda w: ("4714-11-24 BC",)  # noqa: E731 (job_analytics_refresh: date_trunc('week') fell off the range)
FAR_RELEASES = [lambda w: (w.outbound[0], 1e300), lambda w: (w.outbound[0], float("nan"))]


TARGETS = [
    Target("register_user", "owner", lambda w: st.tuples(phones(), ids(w.channels), text_arg()), _registered),
    Target("accept_terms", "owner", lambda w: st.tuples(ids(w.users), text_arg()), _event_per_change(TERMS)),
    Target("set_user_preferences", "owner", lambda w: st.tuples(ids(w.users), preferences()), _preferences_set),
    Target("block_user", "owner", lambda w: st.tuples(ids(w.users), text_arg()), _event_per_change("user.blocked")),
    Target("unblock_user", "owner", lambda w: st.tuples(ids(w.users)), _event_per_change("user.unblocked")),
    Target("touch_user_activity", "owner", lambda w: st.tuples(ids(w.users))),
    Target("export_user", "owner", lambda w: st.tuples(ids(w.users))),
    Target("erase_user", "owner", lambda w: st.tuples(ids(w.users)), _event_per_change("user.erased")),
    Target("add_channel", "owner", lambda w: st.tuples(PROVIDER, text_arg(), phones(), text_arg(), text_arg())),
    Target("request_otp", "relay", lambda w: st.tuples(known_phones(w), ids(w.channels), text_arg()), _otp_issued),
    Target("verify_otp", "relay", lambda w: st.tuples(known_phones(w), CODE), _otp_checked),
    Target("ingest_meta", "relay", _ingest_args("meta"), _ingested, [NULL_BODY]),
    Target("ingest_twilio", "relay", _ingest_args("twilio"), _ingested, [NULL_BODY]),
    Target("ingest_evolution", "relay", _ingest_args("evolution"), _ingested, [NULL_BODY]),
    Target("ingest_batch", "relay", _batch_args, _ingested),
    Target("ingest_raw", "relay", _raw_args, _ingested, [lambda w: ("meta", b"\xff{", None, "not JSON", None)]),
    Target("readiness", "relay", lambda w: st.tuples(text_arg())),
    Target("worker_claim", "worker", lambda w: st.tuples(ints(1, 1000), ints(1, 3600), id_array(w.channels))),
    Target("worker_sent", "worker", lambda w: st.tuples(ids(w.outbound), text_arg())),
    Target("worker_sent_batch", "worker", lambda w: st.tuples(id_array(w.outbound), text_array())),
    Target("worker_retry", "worker", lambda w: st.tuples(ids(w.outbound), floats(), json_arg())),
    Target("worker_release", "worker", lambda w: st.tuples(ids(w.outbound), floats()), None, FAR_RELEASES),
    Target("worker_dead_letter", "worker", lambda w: st.tuples(ids(w.outbound), REASON, json_arg())),
    Target("outbox_read", "consumer", lambda w: st.tuples(ints(1, 1000), ints(1, 43200))),
    Target("outbox_ack", "consumer", lambda w: st.tuples(id_array(w.outbox))),
    Target("outbox_nack", "consumer", lambda w: st.tuples(ids(w.outbox), ints(0, 43200))),
    Target("outbox_dlq_replay", "owner", lambda w: st.tuples(id_array(w.dead_letters))),
    Target("create_partition", "owner", lambda w: st.tuples(PARENT, moments(), moments())),
    Target("create_partitions", "owner", lambda w: st.tuples(PARENT, STEP, ints(0, 400))),
    Target("job_erase_inactive_users", "owner", lambda w: st.tuples(ints(1, 10000) | st.none())),
    Target("job_analytics_refresh", "owner", lambda w: st.tuples(moments() | st.none()), None, [ANCIENT]),
    Target("job_partitions", "owner", lambda w: st.tuples()),
    Target("job_retention", "owner", lambda w: st.tuples()),
    Target("cron_job_failures", "relay", lambda w: st.tuples()),
    Target("queue_metrics", "relay", lambda w: st.tuples()),
    Target("worker_channels", "worker", lambda w: st.tuples()),
    Target("redrive_inbound", "owner", lambda w: st.tuples(ints(1, 10000), id_array(w.dead_letters) | st.none())),
    Target("redrive_outbound", "owner", lambda w: st.tuples(ints(1, 10000), id_array(w.dead_letters) | st.none())),
    Target("send_message", "relay", _send_args, _sent, SEND_EXAMPLES, ci=100),
    Target("send_messages", "relay", _batch_send_args, _batch_sent, BATCH_EXAMPLES, ci=40),
    Target("mark_read", "relay", _read_args, _read_marked, READ_EXAMPLES, ci=30),
    Target("message_view", "relay", _view_args, _viewed, VIEW_EXAMPLES, ci=20),
    Target("people_consent", "relay", _people_args(**CONSENT_FIELDS), _consented, PEOPLE_EXAMPLES["consent"], ci=30),
    Target("people_preferences", "relay", _people_args(), _preferences_read, ci=20),
    Target("people_set_preferences", "relay", _people_args(**PREFERENCE_FIELDS), _preferences_patched, ci=30),
    Target("people_block", "relay", _people_args(**BLOCK_FIELDS), BLOCKED, ci=25),
    Target("people_unblock", "relay", _people_args(), UNBLOCKED, PEOPLE_EXAMPLES["unblock"], ci=20),
    Target("people_export", "relay", _people_args(), _exported, ci=20),
    Target("people_erase", "relay", _people_args(), _erased, PEOPLE_EXAMPLES["erase"], ci=20),
]  # fmt: skip


# --- the property -------------------------------------------------------------------------------------------------


def refusal_is_documented(exc: psycopg.Error) -> str | None:
    """None when the error is one the API promises; otherwise why it is not."""
    code, context = exc.sqlstate, exc.diag.context or ""
    if code is None:
        # Refused by psycopg before sending: a NUL or a lone surrogate in a string.
        return None if isinstance(exc, psycopg.DataError) else f"client-side {type(exc).__name__}: {exc}"
    if code == "42501":
        return None
    if INSIDE_A_FUNCTION.search(context):
        if code in DOCUMENTED:
            return None if exc.diag.message_hint else f"{code} raised without a hint"
        return f"undocumented {code} from inside a function: {exc.diag.message_primary} [{context}]"
    if code.startswith("22") or code in CALL_SITE:
        return None
    return f"undocumented {code} at the call site: {exc.diag.message_primary}"


def call_once(db: psycopg.Connection, world: World, target: Target, args: tuple) -> None:
    role = ROLES[target.role]
    sql = target.sql(len(args))
    endings = ENDINGS.setdefault(target.name, Counter())
    with db.transaction(force_rollback=True):
        before = snapshot(db, world)
        last_outbox = _one(db, "SELECT coalesce(max(msg_id), 0) FROM pgmq.q_outbox")
        try:
            rows = _call(db, role, sql, args)
        except (psycopg.Error, UnicodeEncodeError) as exc:
            endings[getattr(exc, "sqlstate", None) or "client"] += 1
            if isinstance(exc, psycopg.Error):
                assert (why := refusal_is_documented(exc)) is None, why
            assert snapshot(db, world) == before, "a failed call left a partial write"
            return
        endings["ok"] += 1
        after = snapshot(db, world)
        if target.effects:
            target.effects(Outcome(db, world, role, sql, args, rows, before, after, last_outbox))


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_sql_function_refuses_cleanly_and_writes_whole(
    fuzz_db: psycopg.Connection, world: World, target: Target
) -> None:
    fuzz(fuzz_db, world, target)


def fuzz(db: psycopg.Connection, world: World, target: Target) -> None:
    """The target's examples, then as many generated calls as its budget says."""
    CALLS[target.name] = 0

    @budget(ci=target.ci, long=250)
    @given(args=target.args(world))
    def run(args: tuple) -> None:
        CALLS[target.name] += 1
        call_once(db, world, target, args)

    for make in target.examples:
        run = example(args=make(world))(run)
    run()
    ended = ", ".join(f"{k} {n}" for k, n in sorted(ENDINGS.pop(target.name, Counter()).items()))
    print(f"\nfuzz {target.name}: {CALLS[target.name]} calls ({ended})")
    assert CALLS[target.name] > 0


# --- faults the fuzz found, not fixed yet ---------------------------------------------------------------------------


def _components_typed(o: Outcome) -> None:
    """_message_shape's rule: a template's components are {"type": header|body|button, "parameters": [...]}, any
    other refused WH062 before it is queued (the provider would refuse it at send, a dead letter)."""
    _sent(o)
    content = _one(o.db, "SELECT message -> 'content' FROM pgmq.q_outbound WHERE message ->> 'message_id' = %s",
                   str(o.rows[0]["message_id"]))  # fmt: skip
    if content is not None and content["type"] == "template":
        kinds = [str(c.get("type")).lower() for c in content["template"].get("components", [])]
        assert set(kinds) <= {"header", "body", "button"}, f"queued a template component of type {kinds}"


def _untyped_component(world: World, null_type: bool) -> tuple:
    parameters = [{"type": "text", "text": "Ana"}, {"type": "text", "text": "P-1"}]
    stray = {"parameters": [{"type": "text", "text": "x"}]} | ({"type": None} if null_type else {})
    template = {"name": "parcel_update", "language": {"code": "en_GB"},
                "components": [{"type": "body", "parameters": parameters}, stray]}  # fmt: skip
    request = Jsonb({"channel_id": world.channels[0], "to": PERSON_A, "type": "template", "template": template})
    return (world.business.keys["sender"], request, "untyped", None)


# A component with no type, or a JSON null one: lower(NULL) NOT IN (...) was NULL, and the shape check passed it.
UNTYPED_COMPONENTS = [lambda w: _untyped_component(w, False), lambda w: _untyped_component(w, True)]


def test_a_template_component_without_a_type_is_refused(fuzz_db: psycopg.Connection, world: World) -> None:
    fuzz(fuzz_db, world, Target("send_message", "relay", _send_args, _components_typed, UNTYPED_COMPONENTS, ci=5))
