"""SQL-injection and format-string payloads (tests/security.py HOSTILE) through every text field that
reaches SQL: each webhook field ingestion reads, for each provider; the OTP API's fields; the SQL API's
text parameters; and the reachable dynamic SQL of deploy/*.sql (EXECUTE format(...): create_partition,
add_analyst/remove_analyst, the jobs trigger, job_retention's queue names). Nothing is ever a 500 or an
uncaught error, stored text is stored verbatim, and the schema is the same afterwards.

Audit of the dynamic SQL (grep EXECUTE, format in deploy/): every identifier goes through %I and every
value through %L or USING; create_partition builds its name from a regclass and a date; job_retention's
queue names are constants; job_partitions drops regclass values read from pg_partition_tree; the jobs
trigger passes the command to cron.schedule as a value, and the table's CHECKs bound the function name."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import httpx
import psycopg
import pytest

from kit import payloads as p
from tests.conftest import LOGIN_PASSWORD
from tests.helpers import raises_sqlstate
from tests.relay import EVOLUTION_KEY, EVOLUTION_REF, OTP_KEY, count, post_meta, post_twilio
from tests.security import HOSTILE, schema_fingerprint

AUTH = {"Authorization": f"Bearer {OTP_KEY}"}
BUSINESS_TWILIO = "+15550002222"


def sender(i: int) -> str:
    return f"+4477009{i:05d}"


def ident(i: int, h: str) -> str:
    """A provider id carrying the payload, short enough for a btree key."""
    return f"ID{i}-{h[:200]}"


@pytest.fixture
def intact(db: psycopg.Connection):
    """Asserts, after the test, that every relation, column, function and role is as it was."""
    before = schema_fingerprint(db)
    yield
    assert schema_fingerprint(db) == before


def stored_body(db: psycopg.Connection, provider_message_id: str) -> dict | None:
    return db.execute(
        "SELECT m.body, m.media, u.display_name FROM whatsapp_handler.messages m"
        " LEFT JOIN whatsapp_handler.users u ON u.id = m.user_id WHERE m.provider_message_id = %s",
        (provider_message_id,),
    ).fetchone()


def ok(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text


def test_meta_fields(relay: Callable[..., str], db: psycopg.Connection, intact) -> None:
    base = relay()
    for i, h in enumerate(HOSTILE):
        wa_id = sender(i).lstrip("+")
        ok(post_meta(base, p.meta_text(wa_id, ident(i, h), body=h, name=h[:256])))
        row = stored_body(db, ident(i, h))
        assert (row["body"], row["display_name"]) == (h, h[:256])
        ok(post_meta(base, p.meta_button_reply(wa_id, ident(i, h) + ".b", h, h)))
        caption = p.meta_message(wa_id, ident(i, h) + ".m", "image", id=h, caption=h, mime_type=h, sha256=h)
        ok(post_meta(base, p.meta_body(p.meta_value([caption], contacts=[(wa_id, h[:256])]))))
        media = stored_body(db, ident(i, h) + ".m")
        assert h in json.dumps(media, ensure_ascii=False) or media["body"] == h
        status = p.meta_status(ident(i, h), h, h, errors=[{"code": 1, "title": h, "message": h}])
        ok(post_meta(base, p.meta_body(p.meta_value(statuses=[status]))))
        ok(post_meta(base, p.meta_body(p.meta_value(statuses=[p.meta_status(ident(i, h), "read", wa_id)]))))
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.users").fetchone()["n"] == len(HOSTILE)


def test_meta_routing_fields_never_reach_sql_as_code(relay: Callable[..., str], db: psycopg.Connection, intact) -> None:
    base = relay()
    for i, h in enumerate(HOSTILE[:-1]):
        response = post_meta(base, p.meta_text(sender(i).lstrip("+"), f"wamid.R{i}", phone_number_id=h))
        assert response.status_code == 404, response.text
        # A sender that is not a phone number: stored raw and dead-lettered (WH001), never a 500.
        ok(post_meta(base, p.meta_text(h, f"wamid.S{i}")))
    assert db.execute("SELECT count(*) AS n FROM pgmq.q_inbound_dlq").fetchone()["n"] == len(HOSTILE) - 1


def test_twilio_fields(relay: Callable[..., str], db: psycopg.Connection, intact) -> None:
    base = relay()
    for i, h in enumerate(HOSTILE):
        # A SID has Twilio's shape or the form is refused (issue 11): the payload goes in every other field.
        sid = f"SM{i:032x}"
        hostile_sid = p.twilio_inbound(ident(i, h), sender(i), BUSINESS_TWILIO, body=h)
        before = count(db, "messages")
        assert post_twilio(base, hostile_sid).status_code == 200
        assert count(db, "messages") == before  # kept raw and dead-lettered, never read
        extra = {"ProfileName": h[:256], "ButtonPayload": h, "ButtonText": h, "MediaUrl0": h, "MediaContentType0": h}
        ok(post_twilio(base, p.twilio_inbound(sid, sender(i), BUSINESS_TWILIO, body=h, **extra)))
        row = stored_body(db, sid)
        assert (row["body"], row["display_name"]) == (h, h[:256])
        ok(post_twilio(base, p.twilio_status(sid, h, BUSINESS_TWILIO, sender(i), ErrorCode=h, ErrorMessage=h)))
        ok(post_twilio(base, p.twilio_status(sid, "delivered", BUSINESS_TWILIO, h)))


def test_evolution_fields(relay: Callable[..., str], db: psycopg.Connection, intact) -> None:
    base = relay()
    url = f"{base}/webhooks/evolution"
    for i, h in enumerate(HOSTILE):
        key = ident(i, h)
        body = p.evolution_upsert(EVOLUTION_REF, sender(i), key, text=h, apikey=EVOLUTION_KEY)
        body["data"]["pushName"] = h[:256]
        ok(httpx.post(url, json=body, timeout=10))
        row = stored_body(db, key)
        assert (row["body"], row["display_name"]) == (h, h[:256])
        caption = p.evolution_upsert(EVOLUTION_REF, sender(i), key + ".m", apikey=EVOLUTION_KEY)
        caption["data"]["message"] = {"imageMessage": {"caption": h, "url": h, "mimetype": h}}
        caption["data"]["messageType"] = "imageMessage"
        ok(httpx.post(url, json=caption, timeout=10))
        ok(httpx.post(url, json=p.evolution_update(EVOLUTION_REF, key, h, apikey=EVOLUTION_KEY), timeout=10))
        other = {"event": h[:128], "instance": EVOLUTION_REF, "data": {h: h}, "apikey": EVOLUTION_KEY}
        ok(httpx.post(url, json=other, timeout=10))


def test_otp_api_fields(relay: Callable[..., str], db: psycopg.Connection, intact) -> None:
    base = relay()
    channel_id = db.execute("SELECT min(id) AS id FROM whatsapp_handler.channels").fetchone()["id"]
    for h in HOSTILE:
        requested = httpx.post(f"{base}/v1/otp", json={"phone": h, "channel_id": channel_id}, headers=AUTH)
        assert requested.status_code in (400, 422), requested.text
        verified = httpx.post(f"{base}/v1/otp/verify", json={"phone": h, "code": h}, headers=AUTH)
        assert verified.status_code in (400, 422), verified.text
    assert httpx.post(f"{base}/v1/otp", json={"phone": sender(1), "channel_id": channel_id}, headers=AUTH).is_success
    for h in HOSTILE:
        verified = httpx.post(f"{base}/v1/otp/verify", json={"phone": sender(1), "code": h}, headers=AUTH)
        assert verified.status_code in (200, 400), verified.text
        if len(h) <= 32:
            assert verified.json() in ({"outcome": "invalid"}, {"outcome": "locked"})


@pytest.fixture
def user_id(db: psycopg.Connection, channel_id: int) -> int:
    return db.execute(
        "SELECT user_id AS id FROM whatsapp_handler.register_user(%s, %s)", (sender(0), channel_id)
    ).fetchone()["id"]


@pytest.mark.parametrize("h", HOSTILE, ids=range(len(HOSTILE)))
def test_sql_api_text_parameters(db: psycopg.Connection, channel_id: int, user_id: int, intact, h: str) -> None:
    named = db.execute(
        "SELECT user_id AS id FROM whatsapp_handler.register_user(%s, %s, %s)", (sender(1), channel_id, h[:256])
    )
    assert db.execute("SELECT display_name FROM whatsapp_handler.users WHERE id = %s", (named.fetchone()["id"],)
                      ).fetchone()["display_name"] == h[:256]  # fmt: skip
    with raises_sqlstate("WH001"):
        db.execute("SELECT whatsapp_handler.register_user(%s, %s)", (h, channel_id))
    with raises_sqlstate("WH008"):  # a version is 1-32 of [A-Za-z0-9._-]: none of these
        db.execute("SELECT whatsapp_handler.accept_terms(%s, %s)", (user_id, h))
    # Keys, language tags and time zones are checked against lists and shapes: these are refused as values.
    for changes in ({h: h}, {"language": h}, {"timezone": h}, {"notifications_enabled": h}):
        with raises_sqlstate("WH008"):
            db.execute("SELECT whatsapp_handler.set_user_preferences(%s, %s)", (user_id, json.dumps(changes)))
    db.execute("SELECT whatsapp_handler.block_user(%s, %s)", (user_id, h[:500]))
    user = db.execute("SELECT terms_version, blocked_reason FROM whatsapp_handler.users WHERE id = %s", (user_id,))
    assert user.fetchone() == {"terms_version": None, "blocked_reason": h[:500]}
    with raises_sqlstate("WH008"):  # provider_ref is 1-128 of [A-Za-z0-9_:+.@-]
        db.execute("SELECT whatsapp_handler.add_channel('meta', %s, '+15550009999', 'n')", (h,))
    added = db.execute("SELECT whatsapp_handler.add_channel('meta', 'ref-1', '+15550009999', %s) AS id", (h[:100],))
    name = db.execute("SELECT name FROM whatsapp_handler.channels WHERE id = %s", (added.fetchone()["id"],))
    assert name.fetchone()["name"] == h[:100]
    with pytest.raises(psycopg.Error) as refused:
        db.execute("SELECT whatsapp_handler.add_channel(%s, 'x', '+15550009999', 'n')", (h,))
    assert refused.value.diag.sqlstate in ("22P02", "WH008")


def test_worker_text_parameters(db: psycopg.Connection, connect_as, intact) -> None:
    """What a provider answers (its message id, its error) reaches SQL through the worker's functions."""
    meta = db.execute("SELECT whatsapp_handler.add_channel('meta', %s, '+15550001111', 'M') AS id",
                      (p.META_PHONE_NUMBER_ID,)).fetchone()["id"]  # fmt: skip
    assert meta
    # One claim takes every welcome at once: pacing (delivery/pacing) is not what this test is about.
    db.execute("UPDATE whatsapp_handler.settings SET value = '1000' WHERE key = 'pacing.channel.per_second'")
    db.execute("UPDATE whatsapp_handler.settings SET value = '100' WHERE key = 'pacing.channel.burst'")
    for i in range(len(HOSTILE)):
        db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL)", (json.dumps(p.meta_text(sender(i)[1:], f"w{i}")),))
    worker = connect_as("worker")
    claimed = worker.execute("SELECT msg_id FROM whatsapp_handler.worker_claim(100, 60)").fetchall()
    assert len(claimed) >= len(HOSTILE)
    for row, h in zip(claimed, HOSTILE, strict=False):
        if h is HOSTILE[0]:
            worker.execute("SELECT whatsapp_handler.worker_sent(%s, %s)", (row["msg_id"], h[:200]))
        else:
            error = json.dumps({"status": 400, "body": h, h[:100]: h})
            worker.execute("SELECT whatsapp_handler.worker_dead_letter(%s, 'rejected', %s)", (row["msg_id"], error))
            with raises_sqlstate("WH013"):  # the reason is one of four words
                worker.execute("SELECT whatsapp_handler.worker_dead_letter(%s, %s, '{}')", (row["msg_id"], h))
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.messages WHERE provider_message_id = %s",
                      (HOSTILE[0][:200],)).fetchone()["n"] == 1  # fmt: skip
    dead = db.execute("SELECT message::text AS t FROM pgmq.q_outbound_dlq").fetchall()
    assert len(dead) == len(HOSTILE) - 1
    text = " ".join(json.loads(r["t"]).__repr__() for r in dead)
    assert all(repr(h)[1:-1] in text for h in HOSTILE[1:])


# Dynamic SQL ----------------------------------------------------------------------------------------


def test_create_partition_takes_no_name_from_its_caller(db: psycopg.Connection, intact) -> None:
    for h in HOSTILE[:6]:
        with pytest.raises(psycopg.Error) as refused:
            db.execute("SELECT whatsapp_handler.create_partition(%s::regclass, '2031-01-01', '2031-01-02')", (h,))
        assert refused.value.diag.sqlstate in ("42P01", "42602", "3F000", "22P02"), refused.value.diag.message_primary
    with raises_sqlstate("WH008"):
        db.execute("SELECT whatsapp_handler.create_partition('pg_catalog.pg_class', '2031-01-01', '2031-01-02')")


@pytest.fixture
def hostile_login(db: psycopg.Connection):
    """A login whose name would break out of an identifier if it were not quoted."""
    login = f'wh_sec"; DROP TABLE whatsapp_handler.users; --{uuid.uuid4().hex[:6]}'
    quoted = db.execute("SELECT quote_ident(%s) AS q", (login,)).fetchone()["q"]
    db.execute(f"CREATE ROLE {quoted} LOGIN PASSWORD '{LOGIN_PASSWORD}'")
    yield login
    db.execute(f"DROP ROLE IF EXISTS {quoted}")


def test_add_and_remove_analyst_quote_the_login_and_the_timeouts(
    db: psycopg.Connection, channel_id: int, hostile_login: str, intact
) -> None:
    for h in HOSTILE[:9]:
        with raises_sqlstate("WH031"):
            db.execute("SELECT whatsapp_handler.add_analyst(%s, ARRAY[%s]::bigint[], p_statement_timeout => %s)",
                       (hostile_login, channel_id, h))  # fmt: skip
        with raises_sqlstate("WH031"):
            db.execute("SELECT whatsapp_handler.add_analyst(%s, ARRAY[%s]::bigint[], p_idle_timeout => %s)",
                       (hostile_login, channel_id, h))  # fmt: skip
    db.execute("SELECT whatsapp_handler.add_analyst(%s, ARRAY[%s]::bigint[])", (hostile_login, channel_id))
    member = "SELECT pg_has_role(%s, 'whatsapp_handler_analyst', 'MEMBER') AS m"
    assert db.execute(member, (hostile_login,)).fetchone()["m"]
    settings = db.execute(
        "SELECT setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = %s",
        (hostile_login,),
    ).fetchone()["setconfig"]
    assert sorted(settings) == ["default_transaction_read_only=on", "idle_in_transaction_session_timeout=60s",
                                "statement_timeout=30s"]  # fmt: skip
    db.execute("SELECT whatsapp_handler.remove_analyst(%s)", (hostile_login,))
    assert not db.execute(member, (hostile_login,)).fetchone()["m"]
    for h in HOSTILE[:9]:
        with raises_sqlstate("WH030"):
            db.execute("SELECT whatsapp_handler.add_analyst(%s, ARRAY[%s]::bigint[])", (h, channel_id))
        db.execute("SELECT whatsapp_handler.remove_analyst(%s)", (h,))


def test_jobs_refuse_hostile_functions_and_schedules(db: psycopg.Connection, intact) -> None:
    job = db.execute("SELECT name FROM whatsapp_handler.jobs ORDER BY name LIMIT 1").fetchone()["name"]
    for h in HOSTILE:
        with raises_sqlstate("23514"):
            db.execute("UPDATE whatsapp_handler.jobs SET function = %s WHERE name = %s", (h, job))
        with pytest.raises(psycopg.Error) as refused:
            db.execute("UPDATE whatsapp_handler.jobs SET schedule = %s WHERE name = %s", (h[:100], job))
        assert refused.value.diag.sqlstate in ("WH022", "23514")
        with raises_sqlstate("23514"):
            db.execute("INSERT INTO whatsapp_handler.jobs (name, function, schedule, description)"
                       " VALUES (%s, 'job_retention', '@daily', 'x')", (h,))  # fmt: skip
    commands = db.execute("SELECT command FROM cron.job WHERE jobname LIKE 'whatsapp_handler.%'").fetchall()
    assert all(c["command"].startswith("SELECT whatsapp_handler.") and ";" not in c["command"] for c in commands)


def test_retention_settings_are_values_not_code(db: psycopg.Connection, intact) -> None:
    keys = [r["key"] for r in db.execute("SELECT key FROM whatsapp_handler.settings WHERE key LIKE 'retention.%'")]
    assert keys
    for h in HOSTILE[:9]:
        for key in keys:
            db.execute("UPDATE whatsapp_handler.settings SET value = %s WHERE key = %s", (json.dumps(h), key))
        with pytest.raises(psycopg.Error) as refused:
            db.execute("SELECT whatsapp_handler.job_retention()")
        assert refused.value.diag.sqlstate.startswith("WH"), refused.value.diag.message_primary
