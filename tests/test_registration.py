"""Registration, terms, preferences, blocking and activity through the SQL API."""

from __future__ import annotations

import threading

import psycopg
import pytest

from tests.helpers import outbound_messages, outbox_events, raises_sqlstate

PHONE = "+447700900123"


def register(conn, phone=PHONE, channel_id=None, name=None) -> dict:
    return conn.execute(
        "SELECT * FROM whatsapp_handler.register_user(%s, %s, %s)", (phone, channel_id, name)
    ).fetchone()


def user(conn, user_id) -> dict:
    return conn.execute("SELECT * FROM whatsapp_handler.users WHERE id = %s", (user_id,)).fetchone()


def test_register_creates_user_preferences_conversation_and_one_event(db, channel_id):
    db.execute("SELECT set_config('whatsapp_handler.correlation_id', 'req-42', false)")
    row = register(db, channel_id=channel_id, name="Ana")
    assert row["created"] is True
    u = user(db, row["user_id"])
    assert (u["phone"], u["display_name"], u["onboarded_at"]) == (PHONE, "Ana", None)  # registered, not onboarded
    prefs = db.execute(
        "SELECT * FROM whatsapp_handler.user_preferences WHERE user_id = %s", (row["user_id"],)
    ).fetchone()
    assert (prefs["language"], prefs["notifications_enabled"], prefs["timezone"]) == ("en-GB", True, "UTC")
    convs = db.execute(
        "SELECT state FROM whatsapp_handler.conversations WHERE user_id = %s", (row["user_id"],)
    ).fetchall()
    assert convs == [{"state": "new"}]

    [event] = outbox_events(db)
    assert event["type"] == "user.registered"
    assert event["aggregate_id"] == row["user_id"]
    assert event["correlation_id"] == "req-42"
    assert event["version"] == 1
    assert event["payload"] == {"phone": PHONE, "channel_id": channel_id, "display_name": "Ana"}
    assert event["_headers"] == {"x-pgmq-group": f"user:{row['user_id']}"}
    assert set(event) >= {"event_id", "occurred_at", "aggregate_type"}


def test_register_again_is_idempotent(db, channel_id):
    first = register(db, channel_id=channel_id)
    second = register(db, channel_id=channel_id, name="Other name")
    assert second == {"user_id": first["user_id"], "created": False}
    assert user(db, first["user_id"])["display_name"] is None
    assert len(outbox_events(db, "user.registered")) == 1


def test_register_on_a_second_channel_adds_a_conversation(db, channel_id):
    other = db.execute(
        "SELECT whatsapp_handler.add_channel('twilio', 'whatsapp:+15550002222', '+15550002222', 'Sales') AS id"
    ).fetchone()["id"]
    uid = register(db, channel_id=channel_id)["user_id"]
    register(db, channel_id=other)
    n = db.execute("SELECT count(*) AS n FROM whatsapp_handler.conversations WHERE user_id = %s", (uid,)).fetchone()[
        "n"
    ]
    assert n == 2


def test_concurrent_registrations_make_one_user(db_url, db, channel_id):
    barrier = threading.Barrier(8)
    results, errors = [], []

    def worker():
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                barrier.wait()
                results.append(
                    conn.execute("SELECT * FROM whatsapp_handler.register_user(%s, %s)", (PHONE, channel_id)).fetchone()
                )
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({r[0] for r in results}) == 1
    assert sorted(r[1] for r in results) == [False] * 7 + [True]
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.users").fetchone()["n"] == 1
    assert len(outbox_events(db, "user.registered")) == 1


@pytest.mark.parametrize(
    "phone",
    [
        "447700900123",
        "+0447700900123",
        "+44 7700 900123",
        "+44770090012345678",
        "+12345",
        "",
        "whatsapp:+447700900123",
        None,
    ],
)
def test_register_rejects_malformed_phones(db, channel_id, phone):
    with raises_sqlstate("WH001"):
        register(db, phone=phone, channel_id=channel_id)
    assert outbox_events(db) == []


def test_register_rejects_unknown_and_inactive_channels(db, channel_id):
    with raises_sqlstate("WH003"):
        register(db, channel_id=channel_id + 1000)
    db.execute("UPDATE whatsapp_handler.channels SET active = false WHERE id = %s", (channel_id,))
    with raises_sqlstate("WH003"):
        register(db, channel_id=channel_id)
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.users").fetchone()["n"] == 0


def test_register_rejects_an_overlong_name(db, channel_id):
    with raises_sqlstate("WH008"):
        register(db, channel_id=channel_id, name="x" * 257)


def test_phone_check_constraint_backs_the_function(db):
    with raises_sqlstate("23514"):
        db.execute("INSERT INTO whatsapp_handler.users (phone) VALUES ('0044 7700')")


def test_accept_terms_records_version_and_emits_once_per_version(db, channel_id):
    uid = register(db, channel_id=channel_id)["user_id"]
    assert db.execute("SELECT whatsapp_handler.accept_terms(%s, '2026-11') AS c", (uid,)).fetchone()["c"] is True
    assert db.execute("SELECT whatsapp_handler.accept_terms(%s, '2026-11') AS c", (uid,)).fetchone()["c"] is False
    assert db.execute("SELECT whatsapp_handler.accept_terms(%s, '2027-01') AS c", (uid,)).fetchone()["c"] is True
    u = user(db, uid)
    assert u["terms_version"] == "2027-01" and u["terms_accepted_at"] is not None
    events = outbox_events(db, "user.terms_accepted")
    assert [e["payload"] for e in events] == [
        {"terms_version": "2026-11", "previous_terms_version": None},
        {"terms_version": "2027-01", "previous_terms_version": "2026-11"},
    ]


@pytest.mark.parametrize("version", ["", " ", "v 1", "x" * 33, None, "1;DROP TABLE users"])
def test_accept_terms_rejects_malformed_versions(db, channel_id, version):
    uid = register(db, channel_id=channel_id)["user_id"]
    with raises_sqlstate("WH008"):
        db.execute("SELECT whatsapp_handler.accept_terms(%s, %s)", (uid, version))


def test_unknown_user_is_wh002_everywhere(db):
    for call in (
        "SELECT whatsapp_handler.accept_terms(999, 'v1')",
        "SELECT whatsapp_handler.set_user_preferences(999, '{}')",
        "SELECT whatsapp_handler.block_user(999, 'spam')",
        "SELECT whatsapp_handler.unblock_user(999)",
        "SELECT whatsapp_handler.touch_user_activity(999)",
        "SELECT whatsapp_handler.export_user(999)",
        "SELECT whatsapp_handler.erase_user(999)",
    ):
        with raises_sqlstate("WH002"):
            db.execute(call)


def test_onboarding_completes_after_terms_and_verification(db, channel_id):
    uid = register(db, channel_id=channel_id)["user_id"]
    db.execute("SELECT whatsapp_handler.accept_terms(%s, 'v1')", (uid,))
    assert user(db, uid)["onboarded_at"] is None
    db.execute("UPDATE whatsapp_handler.users SET verified_at = now() WHERE id = %s", (uid,))
    db.execute("SELECT whatsapp_handler.accept_terms(%s, 'v2')", (uid,))
    assert user(db, uid)["onboarded_at"] is not None


def test_onboarding_completes_when_the_otp_code_verifies_after_the_terms(db, channel_id):
    # The other order: terms first, then verify_otp stamps onboarded_at (_complete_onboarding).
    uid = register(db, channel_id=channel_id)["user_id"]
    db.execute("SELECT whatsapp_handler.accept_terms(%s, 'v1')", (uid,))
    db.execute("SELECT whatsapp_handler.request_otp(%s, %s)", (PHONE, channel_id))
    code = [m for m in outbound_messages(db) if m["kind"] == "otp"][-1]["code"]
    assert user(db, uid)["onboarded_at"] is None
    outcome = db.execute("SELECT whatsapp_handler.verify_otp(%s, %s) AS o", (PHONE, code)).fetchone()["o"]
    assert outcome == "verified"
    u = user(db, uid)
    assert u["onboarded_at"] is not None and u["onboarded_at"] == u["verified_at"]


def test_onboarded_only_after_terms_and_verification(db, channel_id):
    # "Registered" is first contact; onboarded needs both steps, a rule the table holds too.
    uid = register(db, channel_id=channel_id)["user_id"]
    with raises_sqlstate("23514"):
        db.execute("UPDATE whatsapp_handler.users SET onboarded_at = now() WHERE id = %s", (uid,))
    assert db.execute(
        "SELECT conname FROM pg_constraint"
        " WHERE conrelid = 'whatsapp_handler.users'::regclass AND conname ~ 'after_terms'"
    ).fetchall() == [{"conname": "users_onboarded_after_terms_and_verification"}]


def test_set_preferences_partial_update_and_event_with_changes(db, channel_id):
    uid = register(db, channel_id=channel_id)["user_id"]
    prefs = db.execute(
        "SELECT whatsapp_handler.set_user_preferences(%s, %s) AS p",
        (uid, '{"language": "pt-BR", "timezone": "America/Sao_Paulo", "delay_threshold_minutes": 30}'),
    ).fetchone()["p"]
    assert prefs == {
        "notifications_enabled": True,
        "language": "pt-BR",
        "timezone": "America/Sao_Paulo",
        "delay_threshold_minutes": 30,
        "auto_claim": False,
    }
    [event] = outbox_events(db, "user.preferences_updated")
    assert event["payload"] == {
        "changed": {"language": "pt-BR", "timezone": "America/Sao_Paulo", "delay_threshold_minutes": 30}
    }
    # The same values again change nothing and announce nothing.
    db.execute('SELECT whatsapp_handler.set_user_preferences(%s, \'{"language": "pt-BR"}\')', (uid,))
    assert len(outbox_events(db, "user.preferences_updated")) == 1


@pytest.mark.parametrize(
    "changes",
    [
        '{"colour": "blue"}',
        '{"notifications_enabled": "false"}',
        '{"language": "english"}',
        '{"language": 5}',
        '{"timezone": "Mars/Olympus"}',
        '{"delay_threshold_minutes": -1}',
        '{"delay_threshold_minutes": 1441}',
        '{"delay_threshold_minutes": 2.5}',
        "[]",
        "null",
    ],
)
def test_set_preferences_rejects_bad_input_without_writing(db, channel_id, changes):
    uid = register(db, channel_id=channel_id)["user_id"]
    with raises_sqlstate("WH008"):
        db.execute("SELECT whatsapp_handler.set_user_preferences(%s, %s::jsonb)", (uid, changes))
    prefs = db.execute(
        "SELECT language, delay_threshold_minutes FROM whatsapp_handler.user_preferences WHERE user_id = %s", (uid,)
    ).fetchone()
    assert prefs == {"language": "en-GB", "delay_threshold_minutes": 15}
    assert outbox_events(db, "user.preferences_updated") == []


def test_block_and_unblock(db, channel_id):
    uid = register(db, channel_id=channel_id)["user_id"]
    assert db.execute("SELECT whatsapp_handler.block_user(%s, ' spam ') AS c", (uid,)).fetchone()["c"] is True
    assert db.execute("SELECT whatsapp_handler.block_user(%s, 'again') AS c", (uid,)).fetchone()["c"] is False
    assert user(db, uid)["blocked_reason"] == "spam"
    # A blocked user cannot be changed, except to be unblocked.
    with raises_sqlstate("WH004"):
        db.execute("SELECT whatsapp_handler.accept_terms(%s, 'v1')", (uid,))
    with raises_sqlstate("WH004"):
        db.execute("SELECT whatsapp_handler.set_user_preferences(%s, '{\"auto_claim\": true}')", (uid,))
    assert db.execute("SELECT whatsapp_handler.unblock_user(%s) AS c", (uid,)).fetchone()["c"] is True
    assert db.execute("SELECT whatsapp_handler.unblock_user(%s) AS c", (uid,)).fetchone()["c"] is False
    u = user(db, uid)
    assert (u["blocked_at"], u["blocked_reason"]) == (None, None)
    types = [e["type"] for e in outbox_events(db)]
    assert types == ["user.registered", "user.blocked", "user.unblocked"]


@pytest.mark.parametrize("reason", [None, "", "   ", "x" * 501])
def test_block_needs_a_reason(db, channel_id, reason):
    uid = register(db, channel_id=channel_id)["user_id"]
    with raises_sqlstate("WH008"):
        db.execute("SELECT whatsapp_handler.block_user(%s, %s)", (uid, reason))


def test_touch_activity_moves_forward_only_and_emits_nothing(db, channel_id):
    uid = register(db, channel_id=channel_id)["user_id"]
    db.execute("UPDATE whatsapp_handler.users SET last_active_at = now() + interval '1 hour' WHERE id = %s", (uid,))
    future = user(db, uid)["last_active_at"]
    assert db.execute("SELECT whatsapp_handler.touch_user_activity(%s) AS t", (uid,)).fetchone()["t"] == future
    db.execute("UPDATE whatsapp_handler.users SET last_active_at = NULL WHERE id = %s", (uid,))
    assert db.execute("SELECT whatsapp_handler.touch_user_activity(%s) AS t", (uid,)).fetchone()["t"] is not None
    assert [e["type"] for e in outbox_events(db)] == ["user.registered"]


def test_add_channel_validates_its_input(db):
    with raises_sqlstate("WH008"):
        db.execute("SELECT whatsapp_handler.add_channel('telegram', 'x', '+15550001111', 'n')")
    with raises_sqlstate("WH008"):
        db.execute("SELECT whatsapp_handler.add_channel('meta', 'x', '5550001111', 'n')")
    with raises_sqlstate("WH008"):
        db.execute("SELECT whatsapp_handler.add_channel('meta', 'has space', '+15550001111', 'n')")
