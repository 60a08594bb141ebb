"""OTP: issuing codes (hash only, rate limits, lock carry-over) and verifying them
(single use, expiry, locking, concurrency)."""

from __future__ import annotations

import json
import threading

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.settings import PROJECT_DIR
from tests.helpers import outbound_messages, outbox_events, raises_sqlstate

PHONE = "+447700900123"


def request(conn, channel_id, phone=PHONE) -> dict:
    return conn.execute("SELECT * FROM whatsapp_handler.request_otp(%s, %s)", (phone, channel_id)).fetchone()


def verify(conn, code, phone=PHONE) -> str:
    return conn.execute("SELECT whatsapp_handler.verify_otp(%s, %s) AS o", (phone, code)).fetchone()["o"]


def latest_code(conn) -> str:
    return [m for m in outbound_messages(conn) if m["kind"] == "otp"][-1]["code"]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def age_challenges(conn, by: str) -> None:
    """Move every challenge into the past, as if `by` had elapsed."""
    conn.execute(
        "UPDATE whatsapp_handler.otp_challenges SET created_at = created_at - %s::interval, "
        "expires_at = expires_at - %s::interval, resolved_at = resolved_at - %s::interval",
        (by, by, by),
    )


def challenges(conn) -> list[dict]:
    return conn.execute("SELECT * FROM whatsapp_handler.otp_challenges ORDER BY id").fetchall()


def test_request_issues_a_hashed_code_and_queues_it_for_delivery(db, channel_id):
    db.execute("SELECT set_config('whatsapp_handler.correlation_id', 'otp-req-1', false)")
    issued = request(db, channel_id)
    [challenge] = challenges(db)
    assert challenge["id"] == issued["challenge_id"]
    assert challenge["status"] == "pending" and challenge["failed_attempts"] == 0
    assert (issued["expires_at"] - challenge["created_at"]).total_seconds() == 600

    [message] = outbound_messages(db)
    code = message["code"]
    assert len(code) == 6 and code.isdigit()
    assert message["to"] == PHONE and message["channel_id"] == channel_id and message["kind"] == "otp"
    assert challenge["code_hash"].startswith("$2a$") and code not in challenge["code_hash"]

    # The code is in the outbound message and nowhere else: not in any table, nor in events.
    found = db.execute(
        """
        SELECT c.oid::regclass::text AS tbl
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('whatsapp_handler', 'pgmq') AND c.relkind = 'r' AND c.relname <> 'q_outbound'
          AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0)
        """
    ).fetchall()
    for row in found:
        hit = db.execute(f"SELECT count(*) AS n FROM {row['tbl']} t WHERE t::text LIKE %s", (f"%{code}%",)).fetchone()
        assert hit["n"] == 0, f"code found in {row['tbl']}"
    types = [e["type"] for e in outbox_events(db)]
    assert types == ["user.registered", "otp.requested"]
    requested = outbox_events(db, "otp.requested")[0]
    assert requested["payload"]["challenge_id"] == issued["challenge_id"]
    assert requested["correlation_id"] == "otp-req-1"


def test_codes_are_six_digits_and_vary(db):
    codes = {db.execute("SELECT whatsapp_handler._new_otp_code() AS c").fetchone()["c"] for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert len(codes) > 190  # 200 draws from a million: collisions are rare


def test_right_code_verifies_once(db, channel_id):
    request(db, channel_id)
    code = latest_code(db)
    assert verify(db, code) == "verified"
    assert verify(db, code) == "no_challenge"
    [challenge] = challenges(db)
    assert challenge["status"] == "verified" and challenge["code_hash"] is None
    uid = challenge["user_id"]
    assert db.execute("SELECT verified_at FROM whatsapp_handler.users WHERE id = %s", (uid,)).fetchone()["verified_at"]
    assert len(outbox_events(db, "user.verified")) == 1


def test_wrong_codes_count_and_the_fifth_locks(db, channel_id):
    request(db, channel_id)
    code = latest_code(db)
    assert [verify(db, wrong(code)) for _ in range(4)] == ["invalid"] * 4
    assert challenges(db)[0]["failed_attempts"] == 4
    assert verify(db, "12ab56") == "locked"  # a malformed code counts as a wrong one
    assert verify(db, code) == "locked"  # even the right code, once locked
    [challenge] = challenges(db)
    assert (challenge["status"], challenge["failed_attempts"], challenge["code_hash"]) == ("locked", 5, None)
    assert outbox_events(db, "user.verified") == []


def test_expired_code_is_refused(db, channel_id):
    request(db, channel_id)
    code = latest_code(db)
    db.execute(
        "UPDATE whatsapp_handler.otp_challenges"
        " SET created_at = now() - interval '11 minutes', expires_at = now() - interval '1 minute'"
    )
    assert verify(db, code) == "expired"
    assert verify(db, code) == "expired"
    assert challenges(db)[0]["status"] == "expired"


def test_no_challenge_for_unknown_phone_and_for_user_without_code(db, channel_id):
    assert verify(db, "123456", phone="+15559998888") == "no_challenge"
    db.execute("SELECT whatsapp_handler.register_user(%s, %s)", (PHONE, channel_id))
    assert verify(db, "123456") == "no_challenge"


@pytest.mark.parametrize("phone", ["07700900123", "+44", None, "+44 7700 900123"])
def test_malformed_phone_is_wh001(db, channel_id, phone):
    with raises_sqlstate("WH001"):
        request(db, channel_id, phone=phone)
    with raises_sqlstate("WH001"):
        verify(db, "123456", phone=phone)
    assert outbound_messages(db) == []


def test_unknown_channel_is_wh003(db, channel_id):
    with raises_sqlstate("WH003"):
        request(db, channel_id + 99)
    assert outbound_messages(db) == [] and outbox_events(db) == []


def test_a_new_code_needs_sixty_seconds(db, channel_id):
    request(db, channel_id)
    with raises_sqlstate("WH005") as info:
        request(db, channel_id)
    seconds = json.loads(info.value.diag.message_detail)["retry_after_seconds"]
    assert 0 < seconds <= 60
    age_challenges(db, "61 seconds")
    request(db, channel_id)
    statuses = [c["status"] for c in challenges(db)]
    assert statuses == ["superseded", "pending"]
    assert len(outbound_messages(db)) == 2


def test_at_most_five_codes_per_hour(db, channel_id):
    for _ in range(5):
        request(db, channel_id)
        age_challenges(db, "61 seconds")
    with raises_sqlstate("WH006") as info:
        request(db, channel_id)
    assert "retry_after_seconds" in json.loads(info.value.diag.message_detail)
    assert len(challenges(db)) == 5
    age_challenges(db, "1 hour")
    request(db, channel_id)
    assert len(challenges(db)) == 6


def test_a_new_code_keeps_the_failed_attempts(db, channel_id):
    request(db, channel_id)
    code = latest_code(db)
    for _ in range(3):
        verify(db, wrong(code))
    age_challenges(db, "61 seconds")
    request(db, channel_id)
    assert challenges(db)[-1]["failed_attempts"] == 3
    new_code = latest_code(db)
    assert verify(db, code) == "invalid"  # the superseded code is dead
    assert verify(db, wrong(new_code)) == "locked"


def test_locked_phone_gets_no_new_code_for_an_hour(db, channel_id):
    request(db, channel_id)
    code = latest_code(db)
    for _ in range(5):
        verify(db, wrong(code))
    age_challenges(db, "2 minutes")
    with raises_sqlstate("WH007"):
        request(db, channel_id)
    age_challenges(db, "1 hour")
    request(db, channel_id)
    assert challenges(db)[-1]["failed_attempts"] == 0
    assert verify(db, latest_code(db)) == "verified"


def test_verified_code_resets_the_carried_count(db, channel_id):
    request(db, channel_id)
    code = latest_code(db)
    verify(db, wrong(code))
    assert verify(db, code) == "verified"
    age_challenges(db, "61 seconds")
    request(db, channel_id)
    assert challenges(db)[-1]["failed_attempts"] == 0


def test_blocked_user_gets_no_code_and_cannot_verify(db, channel_id):
    """A blocked phone is answered like any other (nothing tells it is blocked), but gets no code and
    never verifies, not even with the code it was sent before the block."""
    request(db, channel_id)
    code = latest_code(db)
    uid = challenges(db)[0]["user_id"]
    db.execute("SELECT whatsapp_handler.block_user(%s, 'abuse')", (uid,))
    assert verify(db, code) == "invalid"
    age_challenges(db, "61 seconds")
    events = len(outbox_events(db, "otp.requested"))
    decoy = request(db, channel_id)
    assert set(decoy) == {"challenge_id", "expires_at"}
    assert challenges(db)[-1]["status"] == "pending" and challenges(db)[-1]["failed_attempts"] == 1
    assert len(outbound_messages(db)) == 1 and len(outbox_events(db, "otp.requested")) == events
    assert [verify(db, code) for _ in range(4)] == ["invalid", "invalid", "invalid", "locked"]
    assert db.execute("SELECT verified_at FROM whatsapp_handler.users WHERE id = %s", (uid,)).fetchone() == {
        "verified_at": None
    }


def _race(db_url, n, fn):
    barrier = threading.Barrier(n)
    results, errors = [], []

    def run():
        try:
            with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
                barrier.wait()
                results.append(fn(conn))
        except psycopg.Error as exc:
            errors.append(exc.diag.sqlstate)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def test_concurrent_verifications_of_the_right_code_succeed_once(db_url, db, channel_id):
    request(db, channel_id)
    code = latest_code(db)
    results, errors = _race(db_url, 6, lambda conn: verify(conn, code))
    assert errors == []
    assert sorted(results) == ["no_challenge"] * 5 + ["verified"]
    assert len(outbox_events(db, "user.verified")) == 1


def test_concurrent_wrong_codes_lock_exactly_at_five(db_url, db, channel_id):
    request(db, channel_id)
    bad = wrong(latest_code(db))
    results, errors = _race(db_url, 8, lambda conn: verify(conn, bad))
    assert errors == []
    assert sorted(results) == ["invalid"] * 4 + ["locked"] * 4
    assert challenges(db)[0]["failed_attempts"] == 5


def test_concurrent_requests_issue_one_code(db_url, db, channel_id):
    db.execute("SELECT whatsapp_handler.register_user(%s, %s)", (PHONE, channel_id))
    results, errors = _race(db_url, 5, lambda conn: request(conn, channel_id))
    assert len(results) == 1 and errors == ["WH005"] * 4
    assert len(challenges(db)) == 1 and len(outbound_messages(db)) == 1


# --- pumping: destination countries and token buckets (docs/security.md, OTP abuse) ---------------------------


def set_setting(conn, key: str, value) -> None:
    changed = conn.execute(
        "UPDATE whatsapp_handler.settings SET value = %s WHERE key = %s", (Jsonb(value), key)
    ).rowcount
    assert changed == 1, key


def set_limits(conn, per_key: tuple[int, int] = (60, 20), overall: tuple[int, int] = (300, 60)) -> None:
    """(per_minute, burst) of each API key's bucket and of the overall one."""
    for scope, (per_minute, burst) in (("per_key", per_key), ("overall", overall)):
        set_setting(conn, f"otp.limit.{scope}.per_minute", per_minute)
        set_setting(conn, f"otp.limit.{scope}.burst", burst)


def keyed_request(conn, channel_id, phone, key_id) -> dict:
    return conn.execute(
        "SELECT * FROM whatsapp_handler.request_otp(%s, %s, %s)", (phone, channel_id, key_id)
    ).fetchone()


def new_phone(i: int) -> str:
    return f"+4479{i:08d}"


def pump(conn, channel_id, key_id, phones) -> tuple[int, list[str]]:
    """Requests to new numbers, one after the other: (codes issued, SQLSTATEs of the refusals)."""
    issued, refused = 0, []
    for phone in phones:
        try:
            keyed_request(conn, channel_id, phone, key_id)
            issued += 1
        except psycopg.Error as exc:
            refused.append(exc.diag.sqlstate)
    return issued, refused


def user_count(conn) -> int:
    return conn.execute("SELECT count(*) AS n FROM whatsapp_handler.users").fetchone()["n"]


def test_a_pumping_run_stops_at_the_keys_bucket(db, channel_id):
    set_limits(db, per_key=(1, 5))
    issued, refused = pump(db, channel_id, "key-a", [new_phone(i) for i in range(40)])
    assert (issued, refused) == (5, ["WH056"] * 35)
    # A refusal keeps nothing: no user row, no challenge, no message for the 35 numbers.
    assert user_count(db) == 5 and len(challenges(db)) == 5 and len(outbound_messages(db)) == 5


def test_the_refusal_says_when_a_token_is_back_and_the_bucket_refills(db, channel_id):
    set_limits(db, per_key=(2, 1))  # one token every 30 s
    keyed_request(db, channel_id, new_phone(1), "key-a")
    with raises_sqlstate("WH056") as refused:
        keyed_request(db, channel_id, new_phone(2), "key-a")
    assert 28 <= json.loads(refused.value.diag.message_detail)["retry_after_seconds"] <= 30
    db.execute("UPDATE whatsapp_handler.otp_rate_buckets SET updated_at = updated_at - interval '31 seconds'")
    keyed_request(db, channel_id, new_phone(2), "key-a")
    # Refilled up to the burst, never beyond it, however long the key was quiet.
    db.execute("UPDATE whatsapp_handler.otp_rate_buckets SET updated_at = updated_at - interval '1 day'")
    issued, refused_codes = pump(db, channel_id, "key-a", [new_phone(i) for i in range(3, 6)])
    assert (issued, refused_codes) == (1, ["WH056"] * 2)


def test_two_keys_have_separate_buckets(db, channel_id):
    set_limits(db, per_key=(1, 3))
    assert pump(db, channel_id, "key-a", [new_phone(i) for i in range(5)]) == (3, ["WH056"] * 2)
    assert pump(db, channel_id, "key-b", [new_phone(i) for i in range(10, 15)]) == (3, ["WH056"] * 2)
    # Direct SQL callers, who name no key, share a bucket of their own.
    assert pump(db, channel_id, "sql", [new_phone(i) for i in range(20, 22)]) == (2, [])
    request(db, channel_id, new_phone(22))
    with raises_sqlstate("WH056"):
        request(db, channel_id, new_phone(23))


def test_the_overall_bucket_caps_every_key_together(db, channel_id):
    set_limits(db, per_key=(60, 10), overall=(1, 4))
    assert pump(db, channel_id, "key-a", [new_phone(i) for i in range(3)]) == (3, [])
    assert pump(db, channel_id, "key-b", [new_phone(i) for i in range(10, 13)]) == (1, ["WH057"] * 2)
    assert pump(db, channel_id, "key-c", [new_phone(20)]) == (0, ["WH057"])
    assert user_count(db) == 4


def test_a_refusal_for_the_phone_gives_the_token_back(db, channel_id):
    set_limits(db, per_key=(1, 2))
    keyed_request(db, channel_id, PHONE, "key-a")
    for _ in range(3):
        with raises_sqlstate("WH005"):
            keyed_request(db, channel_id, PHONE, "key-a")
    assert pump(db, channel_id, "key-a", [new_phone(1), new_phone(2)]) == (1, ["WH056"])


@pytest.mark.parametrize("phone", ["+4915123456789", "+8821234567", "+23765432100", "+4312345678"])
def test_a_number_outside_the_allowed_countries_is_refused_before_anything_is_written(db, channel_id, phone):
    set_setting(db, "otp.country_codes", ["44"])
    with raises_sqlstate("WH055") as refused:
        keyed_request(db, channel_id, phone, "key-a")
    assert phone not in refused.value.diag.message_primary
    assert user_count(db) == 0 and challenges(db) == [] and outbound_messages(db) == []
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.otp_rate_buckets").fetchone()["n"] == 0


def test_the_allowed_countries_are_calling_code_prefixes(db, channel_id):
    set_setting(db, "otp.country_codes", ["44", "1876"])
    keyed_request(db, channel_id, "+447700900123", "key-a")
    keyed_request(db, channel_id, "+18765550123", "key-a")
    with raises_sqlstate("WH055"):
        keyed_request(db, channel_id, "+12025550123", "key-a")  # +1 but not the listed area code
    set_setting(db, "otp.country_codes", [])  # an empty list serves no one, on purpose
    with raises_sqlstate("WH055"):
        keyed_request(db, channel_id, "+447700900124", "key-a")


@pytest.mark.parametrize("value", [None, "44", ["+44"], [44], ["0044"], ["1234567"], {"44": True}])
def test_destinations_not_configured_refuse_every_request(db, channel_id, value):
    set_setting(db, "otp.country_codes", value)
    with raises_sqlstate("WH058") as refused:
        keyed_request(db, channel_id, PHONE, "key-a")
    assert "otp.country_codes" in refused.value.diag.message_primary
    assert user_count(db) == 0


def test_a_fresh_deploy_leaves_the_destinations_for_a_dba_to_set(db):
    # The test template lists the tests' countries; the plan itself leaves null, which refuses all.
    row = db.execute(
        "SELECT value, description FROM whatsapp_handler.settings WHERE key = 'otp.country_codes'"
    ).fetchone()
    assert row["value"] == ["44", "1"]
    deployed = (PROJECT_DIR / "deploy" / "otp/request_otp.sql").read_text()
    assert "('otp.country_codes', 'null'," in deployed


@pytest.mark.parametrize("key_id", [None, "", "x" * 65, "key a", "key:a", "otp-key-0123456789abcdef\n"])
def test_a_malformed_key_id_is_refused(db, channel_id, key_id):
    with raises_sqlstate("WH008"):
        keyed_request(db, channel_id, PHONE, key_id)
    assert user_count(db) == 0


@pytest.mark.parametrize(
    ("key", "value", "code"),
    [("otp.limit.per_key.burst", 0, "WH020"), ("otp.limit.overall.per_minute", "fast", "WH020"),
     ("otp.limit.per_key.per_minute", 2.5, "WH020")],
)  # fmt: skip
def test_a_bad_limit_setting_refuses_with_its_name(db, channel_id, key, value, code):
    set_setting(db, key, value)
    with raises_sqlstate(code) as refused:
        keyed_request(db, channel_id, PHONE, "key-a")
    assert key in refused.value.diag.message_primary


def test_concurrent_requests_never_overdraw_a_bucket(db_url, db, channel_id):
    set_limits(db, per_key=(1, 5), overall=(1, 8))
    phones = iter(range(1000))
    lock = threading.Lock()

    def one(conn) -> int:
        issued = 0
        for _ in range(4):
            with lock:
                phone = new_phone(next(phones))
            try:
                keyed_request(conn, channel_id, phone, "key-a" if phone[-1] in "02468" else "key-b")
                issued += 1
            except psycopg.Error as exc:
                assert exc.diag.sqlstate in ("WH056", "WH057"), exc.diag.message_primary
        return issued

    results, errors = _race(db_url, 12, one)
    assert errors == [] and sum(results) == 8
    per_key = db.execute(
        "SELECT count(*) FILTER (WHERE right(u.phone, 1) IN ('0', '2', '4', '6', '8')) AS a, count(*) AS n"
        " FROM whatsapp_handler.otp_challenges c JOIN whatsapp_handler.users u ON u.id = c.user_id"
    ).fetchone()
    assert per_key["n"] == 8 and per_key["a"] <= 5 and per_key["n"] - per_key["a"] <= 5
