"""sql/migrate_phase2.sql on sample data: a database of the seeds' phase-2 shape (docs/migrating.md)
built in a fresh copy of the deployed template, migrated with the real psql, and every row looked
for where the doc says it goes; a second run refuses and changes nothing; a source missing a
table, or the other shape of user_preferences, as the doc says."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from app.settings import Settings
from tests.conftest import LOGIN_PASSWORD, LOGINS, fresh_database

SCRIPT = Path(__file__).resolve().parent.parent / "sql" / "migrate_phase2.sql"
META_REF = "100000000000001"

# The phase-2 shape docs/migrating.md assumes: RFC-001's users (14 columns, the OTP on the row),
# typed preferences and outbox, EasyMO's dead-letter tables, wa_events partitioned by month.
SCHEMA = """
CREATE SCHEMA phase2;
CREATE TABLE phase2.users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    phone_number varchar(20) NOT NULL UNIQUE,
    display_name text,
    otp_secret varchar(64),
    otp_verified_at timestamptz,
    verified_at timestamptz,
    registered_at timestamptz,
    last_active_at timestamptz,
    terms_accepted_at timestamptz,
    terms_version varchar(20),
    blocked_at timestamptz,
    block_reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE phase2.user_preferences (
    user_id uuid NOT NULL UNIQUE REFERENCES phase2.users (id) ON DELETE CASCADE,
    notification_enabled boolean NOT NULL DEFAULT true,
    language varchar(10) NOT NULL DEFAULT 'en-GB',
    timezone varchar(50) NOT NULL DEFAULT 'Europe/London',
    delay_threshold_minutes integer NOT NULL DEFAULT 15,
    auto_claim_enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE phase2.outbox_events (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    aggregate_id uuid NOT NULL,
    aggregate_type varchar(100) NOT NULL,
    event_type varchar(100) NOT NULL,
    event_version varchar(10) NOT NULL DEFAULT '1.0',
    payload jsonb NOT NULL,
    metadata jsonb,
    correlation_id varchar(64),
    published_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE phase2.webhook_dlq (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    phone_number text, service text NOT NULL, correlation_id text, request_id text,
    payload jsonb NOT NULL, error_message text NOT NULL, error_type text NOT NULL, status_code integer,
    retry_count integer NOT NULL DEFAULT 0, status text NOT NULL DEFAULT 'pending',
    next_retry_at timestamptz, created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(), reprocessed_at timestamptz, last_retry_at timestamptz
);
CREATE TABLE phase2.dlq_processing_log (
    id bigserial PRIMARY KEY, processed_at timestamptz NOT NULL DEFAULT now(), status text NOT NULL,
    entries_processed integer DEFAULT 0, entries_failed integer DEFAULT 0, error_message text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE phase2.wa_events (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    event_type text NOT NULL, correlation_id text, wa_id text, phone_number text, message_id text,
    conversation_id text, payload jsonb DEFAULT '{}', direction text CHECK (direction IN ('inbound', 'outbound')),
    status text, error_message text, created_at timestamptz NOT NULL DEFAULT now(), processed_at timestamptz,
    metadata jsonb DEFAULT '{}',
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE phase2.wa_events_default PARTITION OF phase2.wa_events DEFAULT;
"""


def uid(n: int, prefix: str = "a") -> str:
    return f"{prefix}0000000-0000-4000-8000-{n:012d}"


ALICE, BOB_SPACED, BOB, CAROL, ANON, EVE, FRANK = (uid(n) for n in range(1, 8))
DLQ_BODY = {
    "object": "whatsapp_business_account",
    "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100001", "phone_number_id": META_REF},
        "contacts": [{"wa_id": "447700900001", "profile": {"name": "Alice"}}],
        "messages": [{"from": "447700900001", "id": "wamid.dlq1", "timestamp": "1764000000", "type": "text",
                      "text": {"body": "late hello"}}]}}]}],
}  # fmt: skip

DATA = f"""
INSERT INTO phase2.users (id, phone_number, display_name, otp_secret, otp_verified_at, verified_at, registered_at,
                          last_active_at, terms_accepted_at, terms_version, blocked_at, block_reason,
                          created_at, updated_at) VALUES
 ('{ALICE}', '+447700900001', 'Alice', 'sha256:9f86d081884c7d659a2feaa0c55ad015', now() - interval '40 days',
  now() - interval '40 days', now() - interval '40 days', now() - interval '2 days', now() - interval '41 days',
  '2025-11', NULL, NULL, now() - interval '60 days', now() - interval '2 days'),
 ('{BOB_SPACED}', '+44 7700 900002', NULL, NULL, NULL, NULL, NULL, now() - interval '50 days', NULL, NULL, NULL, NULL,
  now() - interval '90 days', now() - interval '50 days'),
 ('{BOB}', '00447700900002', 'Bob', NULL, NULL, now() - interval '20 days', NULL, now() - interval '5 days', NULL, NULL,
  NULL, NULL, now() - interval '30 days', now() - interval '5 days'),
 ('{CAROL}', '07700900003', 'Carol', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  now() - interval '10 days', now() - interval '10 days'),
 ('{ANON}', 'ANONYMIZED_a0000000', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  now() - interval '400 days', now() - interval '200 days'),
 ('{EVE}', 'whatsapp:+1555010006', 'Eve', '123456', NULL, NULL, NULL, now() - interval '1 day',
  now() - interval '3 days', 'v 1!', now() - interval '1 day', 'spam', now() - interval '3 days',
  now() - interval '1 day'),
 ('{FRANK}', '+447700900007', 'Frank', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  now() - interval '7 days', now() - interval '7 days');
INSERT INTO phase2.user_preferences (user_id, notification_enabled, language, timezone, delay_threshold_minutes,
                                     auto_claim_enabled, updated_at) VALUES
 ('{ALICE}', false, 'de-DE', 'Europe/Berlin', 30, false, now() - interval '39 days'),
 ('{BOB_SPACED}', true, 'fr-FR', 'Europe/Paris', 15, true, now() - interval '50 days'),
 ('{EVE}', true, 'english', 'Mars/Olympus', 5000, true, now() - interval '3 days');
INSERT INTO phase2.outbox_events (id, aggregate_id, aggregate_type, event_type, event_version, payload, correlation_id,
                                  published_at, created_at) VALUES
 ('{uid(1, "e")}', '{ALICE}', 'user', 'user.registered', '1.0', '{{"phone_number": "+447700900001"}}', 'corr-1',
  now() - interval '60 days', now() - interval '60 days'),
 ('{uid(2, "e")}', '{ALICE}', 'user', 'user.verified', '1.0', '{{"verified_at": "x"}}', 'corr-2', NULL,
  now() - interval '2 hours'),
 ('{uid(3, "e")}', '{BOB_SPACED}', 'user', 'user.registered', '2.1', '{{}}', NULL, NULL, now() - interval '1 hour'),
 ('{uid(4, "e")}', '{uid(1, "b")}', 'journey', 'journey.created', '1.0', '{{}}', NULL, NULL,
  now() - interval '30 minutes'),
 ('{uid(5, "e")}', '{CAROL}', 'user', 'user.verified', '1.0', '{{}}', NULL, NULL, now() - interval '20 minutes');
INSERT INTO phase2.webhook_dlq (id, service, correlation_id, payload, error_message, error_type, retry_count, status,
                                created_at) VALUES
 ('{uid(1, "d")}', 'wa-webhook-core', 'corr-d1', '{json.dumps(DLQ_BODY)}', 'timeout calling the handler', 'timeout', 2,
  'pending', now() - interval '3 days'),
 ('{uid(2, "d")}', 'wa-webhook-core', NULL, '{{"object": "whatsapp_business_account", "entry": []}}', 'boom',
  'error', 1, 'reprocessed', now() - interval '4 days'),
 ('{uid(3, "d")}', 'wa-webhook-core', NULL, '{{"foo": 1}}', 'bad body', 'validation', 5, 'failed',
  now() - interval '5 days');
INSERT INTO phase2.dlq_processing_log (processed_at, status, entries_processed, entries_failed) VALUES
 (now() - interval '1 day', 'triggered', 0, 0), (now() - interval '2 hours', 'completed', 3, 1);
INSERT INTO phase2.wa_events (event_type, phone_number, message_id, payload, direction, status, created_at) VALUES
 ('message.received', '+447700900001', 'wamid.1', '{{"type": "text", "text": {{"body": "hello"}}}}', 'inbound', NULL,
  now() - interval '40 days'),
 ('message.sent', '+447700900001', 'wamid.2', '{{"type": "text", "text": {{"body": "hi Alice"}}}}', 'outbound', 'sent',
  now() - interval '9 days'),
 ('message.status', '+447700900001', 'wamid.2', '{{}}', 'outbound', 'delivered',
  now() - interval '9 days' + interval '1 minute'),
 ('message.received', '07700900003', 'wamid.3', '{{"type": "text", "text": {{"body": "who?"}}}}', 'inbound', NULL,
  now() - interval '8 days'),
 ('message.received', '+447700900099', 'wamid.4', '{{"type": "text", "text": {{"body": "stranger"}}}}', 'inbound', NULL,
  now() - interval '7 days'),
 ('webhook.error', NULL, NULL, '{{}}', NULL, NULL, now() - interval '6 days'),
 ('message.received', '+447700900001', 'wamid.5', '{{"type": "text", "text": {{"body": "long ago"}}}}', 'inbound', NULL,
  now() - interval '30 months');
"""  # fmt: skip


def run_script(
    cluster, db_name: str, source: str = "phase2", channel: int | None = None
) -> subprocess.CompletedProcess:
    """The script as an operator runs it: the real psql, ON_ERROR_STOP, the variables on the command line."""
    psql = Settings().pg_bindir / "psql"
    args = [str(psql), "-X", "-v", "ON_ERROR_STOP=1", "-v", f"source={source}"]
    if channel is not None:
        args += ["-v", f"channel={channel}"]
    args += ["-f", str(SCRIPT), f"host=127.0.0.1 port={cluster.port} dbname={db_name} user=postgres"]
    env = {**os.environ, "PGPASSWORD": cluster.password()}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, check=False)


def prepare(conn: psycopg.Connection, schema: str = SCHEMA, data: str = DATA) -> int:
    """The old tables in schema phase2, the old number as a channel, and Frank already known here."""
    conn.execute(schema)
    if data:
        conn.execute(data)
    channel = conn.execute(
        "SELECT whatsapp_handler.add_channel('meta', %s, '+15550100001', 'Old number') AS id", (META_REF,)
    ).fetchone()["id"]
    conn.execute("SELECT whatsapp_handler.register_user('+447700900007', %s, 'Frank here')", (channel,))
    return channel


@contextmanager
def source_database(cluster) -> Iterator[tuple[str, psycopg.Connection]]:
    """A fresh copy of the deployed template and a superuser connection to it, in autocommit."""
    with (
        fresh_database(cluster) as name,
        psycopg.connect(cluster.url(name), autocommit=True, row_factory=dict_row) as conn,
    ):
        yield name, conn


def target_state(conn: psycopg.Connection) -> dict:
    """Everything the script may write, for before/after comparisons."""
    queries = {
        "users": "SELECT * FROM whatsapp_handler.users ORDER BY id",
        "preferences": "SELECT * FROM whatsapp_handler.user_preferences ORDER BY user_id",
        "conversations": "SELECT * FROM whatsapp_handler.conversations ORDER BY id",
        "outbox": "SELECT msg_id, message FROM pgmq.q_outbox ORDER BY msg_id",
        "inbound_dlq": "SELECT msg_id, message FROM pgmq.q_inbound_dlq ORDER BY msg_id",
        "webhook_events": "SELECT id, outcome, error FROM whatsapp_handler.webhook_events ORDER BY id",
        "messages": "SELECT id, provider_message_id, status FROM whatsapp_handler.messages ORDER BY id",
        "message_keys": "SELECT * FROM whatsapp_handler.message_keys ORDER BY message_id",
        "otp_challenges": "SELECT * FROM whatsapp_handler.otp_challenges ORDER BY id",
        "left_in_source": """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                             WHERE n.nspname = 'phase2' AND c.relname LIKE 'wh\\_%' ORDER BY 1""",
    }
    return {name: conn.execute(q).fetchall() for name, q in queries.items()}


@pytest.fixture(scope="module")
def migrated(cluster) -> Iterator[dict]:
    """One database migrated once, then asked again: the tests below only read it."""
    with source_database(cluster) as (name, conn):
        channel = prepare(conn)
        first = run_script(cluster, name, channel=channel)
        assert first.returncode == 0, first.stderr
        after_first = target_state(conn)
        second = run_script(cluster, name, channel=channel)
        yield {
            "conn": conn,
            "db_name": name,
            "channel": channel,
            "first": first,
            "second": second,
            "after_first": after_first,
            "after_second": target_state(conn),
        }


def user_of(conn: psycopg.Connection, source_id: str) -> dict | None:
    return conn.execute(
        """SELECT u.*, m.outcome FROM phase2.wh_user_ids m JOIN whatsapp_handler.users u ON u.id = m.user_id
           WHERE m.source_id = %s""",
        (source_id,),
    ).fetchone()


def report(conn: psycopg.Connection, table: str) -> dict[str, list[str]]:
    rows = conn.execute(
        "SELECT source_id, outcome, detail FROM phase2.wh_migration_report WHERE source_table = %s", (table,)
    ).fetchall()
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["source_id"], []).append(row["outcome"])
    return found


def test_people_are_carried_merged_refused_or_left_as_they_were(migrated):
    conn = migrated["conn"]
    alice = user_of(conn, ALICE)
    assert alice["phone"] == "+447700900001" and alice["display_name"] == "Alice" and alice["outcome"] == "imported"
    assert alice["verified_at"] is not None and alice["terms_version"] == "2025-11"
    # Onboarded: the later of terms and verification (the project's rule, not the old registered_at).
    assert alice["onboarded_at"] == max(alice["verified_at"], alice["terms_accepted_at"])
    # Two spellings of one number: one person, the verified row kept, the first contact of either.
    bob, spaced = user_of(conn, BOB), user_of(conn, BOB_SPACED)
    assert bob["id"] == spaced["id"] and bob["phone"] == "+447700900002" and bob["display_name"] == "Bob"
    assert (bob["outcome"], spaced["outcome"]) == ("imported", "merged")
    first_contact = conn.execute(f"SELECT created_at FROM phase2.users WHERE id = '{BOB_SPACED}'").fetchone()
    assert bob["created_at"] == first_contact["created_at"]
    # Twilio's prefix undone; blocked with its reason; malformed terms dropped (listed).
    eve = user_of(conn, EVE)
    assert eve["phone"] == "+1555010006" and eve["blocked_at"] is not None and eve["blocked_reason"] == "spam"
    assert eve["terms_version"] is None and eve["onboarded_at"] is None
    # Known here already: mapped, not touched.
    frank = user_of(conn, FRANK)
    assert frank["outcome"] == "existing" and frank["display_name"] == "Frank here"
    # A national number and an anonymised row: listed, not carried, no user made.
    assert user_of(conn, CAROL) is None and user_of(conn, ANON) is None
    listed = report(conn, "users")
    assert listed[CAROL] == ["refused_phone"] and listed[ANON] == ["not_carried_erased"]
    assert listed[BOB_SPACED] == ["merged"] and listed[FRANK] == ["existing"] and listed[EVE] == ["terms_dropped"]
    assert conn.execute("SELECT count(*) AS n FROM whatsapp_handler.users").fetchone()["n"] == 4
    assert not conn.execute("SELECT FROM whatsapp_handler.users WHERE phone LIKE '%7700900003'").fetchall()


def test_no_otp_is_carried_and_no_phone_is_reported(migrated):
    conn = migrated["conn"]
    assert migrated["after_first"]["otp_challenges"] == []
    everything = json.dumps(migrated["after_first"], default=str)
    assert "123456" not in everything and "9f86d081884c7d659a2feaa0c55ad015" not in everything
    # The report and the map name rows by their old ids, never by number.
    written = json.dumps(
        conn.execute("SELECT * FROM phase2.wh_migration_report").fetchall()
        + conn.execute("SELECT * FROM phase2.wh_user_ids").fetchall()
        + conn.execute("SELECT counts FROM phase2.wh_migration").fetchall(),
        default=str,
    )
    assert "7700" not in written and "1555010006" not in written
    counts = conn.execute("SELECT counts FROM phase2.wh_migration").fetchone()["counts"]
    assert counts["users"]["otp_dropped"] == 2


def test_preferences_are_carried_checked_or_defaulted(migrated):
    conn = migrated["conn"]
    prefs = {r["user_id"]: r for r in conn.execute("SELECT * FROM whatsapp_handler.user_preferences").fetchall()}
    alice = prefs[user_of(conn, ALICE)["id"]]
    assert (alice["notifications_enabled"], alice["language"], alice["timezone"]) == (False, "de-DE", "Europe/Berlin")
    assert (alice["delay_threshold_minutes"], alice["auto_claim"]) == (30, False)
    eve = prefs[user_of(conn, EVE)["id"]]
    assert (eve["language"], eve["timezone"], eve["delay_threshold_minutes"], eve["auto_claim"]) == (
        "en-GB", "UTC", 15, True,
    )  # fmt: skip
    details = {
        r["detail"].split(":")[0]
        for r in conn.execute(
            "SELECT detail FROM phase2.wh_migration_report WHERE source_table = 'user_preferences' AND source_id = %s",
            (EVE,),
        ).fetchall()
    }
    assert details == {"language", "timezone", "delay_threshold_minutes"}
    # The kept row had none: the defaults (the merged row's preferences are not carried).
    bob = prefs[user_of(conn, BOB)["id"]]
    assert (bob["language"], bob["timezone"]) == ("en-GB", "UTC")
    assert len(prefs) == 4


def test_each_person_carried_has_a_conversation_on_the_channel(migrated):
    conn = migrated["conn"]
    rows = conn.execute(
        """SELECT m.source_id, c.state, c.terms_version, c.channel_id FROM phase2.wh_user_ids m
           JOIN whatsapp_handler.conversations c ON c.user_id = m.user_id WHERE m.outcome = 'imported'"""
    ).fetchall()
    by_source = {r["source_id"]: r for r in rows}
    assert set(by_source) == {ALICE, BOB, EVE}
    assert {r["channel_id"] for r in rows} == {migrated["channel"]}
    assert (by_source[ALICE]["state"], by_source[ALICE]["terms_version"]) == ("active", "2025-11")
    assert by_source[BOB]["state"] == by_source[EVE]["state"] == "new"


def test_unpublished_user_events_are_queued_in_the_envelope_and_nothing_is_announced(migrated):
    conn = migrated["conn"]
    rows = conn.execute("SELECT message, headers FROM pgmq.q_outbox ORDER BY msg_id").fetchall()
    events = [r["message"] | {"_group": r["headers"]["x-pgmq-group"]} for r in rows]
    # Frank's own user.registered (made here before the import), then the two old events in their order.
    assert [e["type"] for e in events] == ["user.registered", "user.verified", "user.registered"]
    assert events[0]["aggregate_id"] == user_of(conn, FRANK)["id"]
    verified, registered = events[1], events[2]
    alice, bob = user_of(conn, ALICE)["id"], user_of(conn, BOB)["id"]
    assert (
        verified["event_id"] == uid(2, "e")
        and verified["aggregate_id"] == alice
        and verified["_group"] == f"user:{alice}"
    )
    assert verified["correlation_id"] == "corr-2" and verified["payload"] == {"verified_at": "x"}
    assert verified["version"] == 1 and verified["aggregate_type"] == "user"
    old = conn.execute(f"SELECT created_at FROM phase2.outbox_events WHERE id = '{uid(2, 'e')}'").fetchone()
    assert conn.execute("SELECT %s::timestamptz = %s AS same", (verified["occurred_at"], old["created_at"])).fetchone()[
        "same"
    ]
    # The merged row's event is its person's; version 2.1 is version 2.
    assert registered["aggregate_id"] == bob and registered["version"] == 2
    assert set(verified) - {"_group"} == set(events[0]) - {"_group"}
    listed = report(conn, "outbox_events")
    assert listed == {uid(4, "e"): ["refused_aggregate"], uid(5, "e"): ["refused_person"]}
    counts = conn.execute("SELECT counts FROM phase2.wh_migration").fetchone()["counts"]["outbox_events"]
    assert counts == {"published": 1, "queued": 2, "refused_aggregate": 1, "refused_person": 1}


def test_unresolved_webhook_dead_letters_are_stored_and_parked(migrated):
    conn = migrated["conn"]
    stored = conn.execute("SELECT * FROM whatsapp_handler.webhook_events").fetchall()
    assert len(stored) == 1
    event = stored[0]
    assert event["outcome"] == "failed" and event["provider"] == "meta" and event["channel_id"] == migrated["channel"]
    assert event["error"].startswith(f"imported from phase2.webhook_dlq {uid(1, 'd')} ")
    assert event["payload"] == DLQ_BODY and event["correlation_id"] == "corr-d1"
    letters = [r["message"] for r in conn.execute("SELECT message FROM pgmq.q_inbound_dlq").fetchall()]
    assert len(letters) == 1
    letter = letters[0]
    assert letter["webhook_event_id"] == event["id"] and letter["parked"] is True and letter["attempts"] == 2
    assert (
        letter["imported_from"] == f"phase2.webhook_dlq {uid(1, 'd')}" and letter["channel_id"] == migrated["channel"]
    )
    assert report(conn, "webhook_dlq") == {uid(3, "d"): ["refused_payload"]}
    counts = conn.execute("SELECT counts FROM phase2.wh_migration").fetchone()["counts"]
    assert counts["webhook_dlq"] == {"dead_lettered": 1, "resolved": 1, "refused_payload": 1}
    assert counts["dlq_processing_log"] == {"not_carried": 2}


def test_old_messages_become_messages_with_their_keys(migrated):
    conn = migrated["conn"]
    rows = conn.execute(
        """SELECT m.*, m.tableoid::regclass::text AS part FROM whatsapp_handler.messages m ORDER BY created_at"""
    ).fetchall()
    alice = user_of(conn, ALICE)["id"]
    conversation = conn.execute(
        "SELECT id FROM whatsapp_handler.conversations WHERE user_id = %s", (alice,)
    ).fetchone()["id"]
    assert [(r["provider_message_id"], r["direction"], r["status"], r["body"]) for r in rows] == [
        ("wamid.1", "inbound", "received", "hello"),
        ("wamid.2", "outbound", "delivered", "hi Alice"),
    ]
    assert {(r["user_id"], r["conversation_id"], r["channel_id"]) for r in rows} == {
        (alice, conversation, migrated["channel"])
    }
    # Filed in monthly partitions (made for the months that lacked one), not in DEFAULT.
    assert all(r["part"] != "whatsapp_handler.messages_default" for r in rows)
    keys = conn.execute("SELECT provider_message_id, message_id FROM whatsapp_handler.message_keys").fetchall()
    assert {(k["provider_message_id"], k["message_id"]) for k in keys} == {
        (r["provider_message_id"], r["id"]) for r in rows
    }
    counts = conn.execute("SELECT counts FROM phase2.wh_migration").fetchone()["counts"]["wa_events"]
    assert counts == {
        "rows": 7, "messages_imported": 2, "messages_refused_phone": 1, "messages_unknown_person": 1,
        "rows_not_messages": 1, "rows_past_retention": 1,
    }  # fmt: skip


def test_the_run_prints_its_counts(migrated):
    out = migrated["first"].stdout
    assert "outbox_events_queued" in out and "inbound_letters_parked" in out
    assert "refused_phone" in out and "not_carried_erased" in out and "messages_imported" in out


def test_a_second_run_refuses_and_changes_nothing(migrated):
    second = migrated["second"]
    assert second.returncode != 0
    assert "schema phase2 was already migrated" in second.stderr and "nothing was changed" in second.stderr
    assert migrated["after_second"] == migrated["after_first"]


@pytest.mark.parametrize("login", sorted(LOGINS))
def test_no_role_reads_what_the_run_left_in_the_source(migrated, cluster, login):
    with psycopg.connect(cluster.url(migrated["db_name"], user=f"wh_test_{login}", password=LOGIN_PASSWORD)) as conn:
        for table in ("wh_user_ids", "wh_migration_report", "users"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM phase2.{table}")
            conn.rollback()


def test_a_source_missing_a_table_or_a_channel_is_refused_and_nothing_changes(cluster):
    without_wa_events = SCHEMA.split("CREATE TABLE phase2.wa_events")[0]
    with source_database(cluster) as (name, conn):
        channel = prepare(conn, schema=without_wa_events, data=DATA.split("INSERT INTO phase2.wa_events")[0])
        before = target_state(conn)
        missing = run_script(cluster, name, channel=channel)
        assert missing.returncode != 0
        assert "table phase2.wa_events is missing; nothing was changed" in missing.stderr
        assert target_state(conn) == before
        for source, chan, said in [
            ("phase2", 999, "channel 999 is not an active channel"),
            ("nothere", channel, "schema nothere does not exist"),
            ("phase2", None, "no channel: pass -v channel=CHANNEL_ID"),
        ]:
            refused = run_script(cluster, name, source=source, channel=chan)
            assert refused.returncode != 0 and said in refused.stderr, refused.stderr
        assert target_state(conn) == before


def test_key_value_preferences_and_the_five_column_users(cluster):
    """The later shape: users of five columns, preferences as key-value rows."""
    old = SCHEMA[SCHEMA.index("CREATE TABLE phase2.users") : SCHEMA.index("CREATE TABLE phase2.outbox")]
    schema = SCHEMA.replace(old, """
CREATE TABLE phase2.users (
    id uuid PRIMARY KEY, phone_number varchar(20) NOT NULL UNIQUE, verified_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE phase2.user_preferences (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id uuid NOT NULL REFERENCES phase2.users,
    preference_key varchar(100) NOT NULL, preference_value text,
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, preference_key));
""")  # fmt: skip
    data = f"""
INSERT INTO phase2.users (id, phone_number, verified_at) VALUES ('{ALICE}', '+447700900001', now());
INSERT INTO phase2.user_preferences (user_id, preference_key, preference_value) VALUES
 ('{ALICE}', 'language', 'cy-GB'), ('{ALICE}', 'notification_enabled', 'false'),
 ('{ALICE}', 'timezone', 'Europe/London'),
 ('{ALICE}', 'favourite_station', 'Crewe');
"""
    with source_database(cluster) as (name, conn):
        channel = prepare(conn, schema=schema, data=data)
        done = run_script(cluster, name, channel=channel)
        assert done.returncode == 0, done.stderr
        alice = user_of(conn, ALICE)
        assert alice["phone"] == "+447700900001" and alice["verified_at"] is not None
        assert alice["display_name"] is None and alice["terms_version"] is None
        prefs = conn.execute(
            "SELECT * FROM whatsapp_handler.user_preferences WHERE user_id = %s", (alice["id"],)
        ).fetchone()
        assert (prefs["language"], prefs["notifications_enabled"], prefs["timezone"]) == (
            "cy-GB", False, "Europe/London",
        )  # fmt: skip
        assert (prefs["delay_threshold_minutes"], prefs["auto_claim"]) == (15, False)
        listed = conn.execute(
            "SELECT outcome, detail FROM phase2.wh_migration_report WHERE source_table = 'user_preferences'"
        ).fetchall()
        assert [(r["outcome"], r["detail"]) for r in listed] == [
            ("not_carried_key", "key favourite_station has no column here")
        ]


def test_an_imported_letter_waits_for_an_operator_and_its_events_reach_a_consumer(cluster):
    """What the doc promises the operator next: the job leaves the parked letter alone, a replay by
    id runs it (the late message is recorded), and the old events are read by a consumer in order."""
    with source_database(cluster) as (name, conn):
        channel = prepare(conn)
        assert run_script(cluster, name, channel=channel).returncode == 0
        letter = conn.execute("SELECT msg_id FROM pgmq.q_inbound_dlq").fetchone()["msg_id"]
        by_job = conn.execute("SELECT whatsapp_handler.redrive_inbound() AS r").fetchone()["r"]
        assert by_job["redriven"] == 0
        assert conn.execute("SELECT msg_id FROM pgmq.q_inbound_dlq").fetchone()["msg_id"] == letter
        by_hand = conn.execute(
            "SELECT whatsapp_handler.redrive_inbound(100, ARRAY[%s]::bigint[]) AS r", (letter,)
        ).fetchone()["r"]
        assert by_hand["redriven"] == 1, by_hand
        late = conn.execute(
            "SELECT user_id, body FROM whatsapp_handler.messages WHERE provider_message_id = 'wamid.dlq1'"
        ).fetchone()
        assert late == {"user_id": user_of(conn, ALICE)["id"], "body": "late hello"}
        consumer_url = cluster.url(name, user="wh_test_consumer", password=LOGIN_PASSWORD)
        with psycopg.connect(consumer_url, autocommit=True, row_factory=dict_row) as consumer:
            read = consumer.execute("SELECT * FROM whatsapp_handler.outbox_read(10, 30)").fetchall()
            ids = [r["message"]["event_id"] for r in read]
            assert uid(2, "e") in ids and uid(3, "e") in ids
