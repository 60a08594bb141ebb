"""OTP: issuing codes (hash only, rate limits, lock carry-over) and verifying them
(single use, expiry, locking, concurrency)."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg.rows import dict_row

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
    seconds = int(info.value.diag.message_detail.split("=")[1])
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
    assert "retry_after_seconds=" in info.value.diag.message_detail
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
    request(db, channel_id)
    code = latest_code(db)
    uid = challenges(db)[0]["user_id"]
    db.execute("SELECT whatsapp_handler.block_user(%s, 'abuse')", (uid,))
    age_challenges(db, "61 seconds")
    with raises_sqlstate("WH004"):
        request(db, channel_id)
    with raises_sqlstate("WH004"):
        verify(db, code)
    assert len(outbound_messages(db)) == 1


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
