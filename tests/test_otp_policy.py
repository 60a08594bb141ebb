"""The per-phone OTP policy is settings rows (otp/policy): each one, changed with UPDATE, changes
what request_otp and verify_otp do, and the defaults are exact (a cooldown of 60 s, not about 60 s).
Time is moved by rewriting the challenges' created_at, never by sleeping."""

from __future__ import annotations

import json
import re

import psycopg
import pytest
from psycopg.types.json import Jsonb

from app.settings import PROJECT_DIR
from tests.helpers import outbound_messages, raises_sqlstate

PHONE = "+447700900123"
POLICY = ("otp.code_ttl", "otp.cooldown", "otp.window", "otp.per_window", "otp.max_failures")


def request(conn: psycopg.Connection, channel_id: int) -> dict:
    return conn.execute("SELECT * FROM whatsapp_handler.request_otp(%s, %s)", (PHONE, channel_id)).fetchone()


def verify(conn: psycopg.Connection, code: str) -> str:
    return conn.execute("SELECT whatsapp_handler.verify_otp(%s, %s) AS o", (PHONE, code)).fetchone()["o"]


def set_setting(conn: psycopg.Connection, key: str, value: object) -> None:
    changed = conn.execute(
        "UPDATE whatsapp_handler.settings SET value = %s WHERE key = %s", (Jsonb(value), key)
    ).rowcount
    assert changed == 1, key


def issued_ago(conn: psycopg.Connection, seconds: float) -> None:
    """The latest challenge as if it had been issued `seconds` before now."""
    conn.execute(
        "UPDATE whatsapp_handler.otp_challenges SET created_at = now() - make_interval(secs => %s)"
        " WHERE id = (SELECT max(id) FROM whatsapp_handler.otp_challenges)",
        (seconds,),
    )


def age_all(conn: psycopg.Connection, seconds: float) -> None:
    conn.execute(
        "UPDATE whatsapp_handler.otp_challenges SET created_at = created_at - make_interval(secs => %s)",
        (seconds,),
    )


def latest_code(conn: psycopg.Connection) -> str:
    return [m for m in outbound_messages(conn) if m["kind"] == "otp"][-1]["code"]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_the_deployed_policy(db):
    rows = db.execute(
        "SELECT key, value FROM whatsapp_handler.settings WHERE key = ANY(%s) ORDER BY key", (list(POLICY),)
    ).fetchall()
    assert {r["key"]: r["value"] for r in rows} == {
        "otp.code_ttl": "10 minutes",
        "otp.cooldown": "60 seconds",
        "otp.window": "1 hour",
        "otp.per_window": 5,
        "otp.max_failures": 5,
    }


def test_the_cooldown_is_exactly_sixty_seconds(db, channel_id):
    """59 s after the last code is refused, 60 s is accepted: a shorter cooldown (30 s) fails this."""
    request(db, channel_id)
    issued_ago(db, 59)
    with raises_sqlstate("WH005") as refused:
        request(db, channel_id)
    assert json.loads(refused.value.diag.message_detail) == {"retry_after_seconds": 1}
    issued_ago(db, 60)
    request(db, channel_id)
    assert len(outbound_messages(db)) == 2


def test_the_cooldown_follows_its_setting(db, channel_id):
    set_setting(db, "otp.cooldown", "10 seconds")
    request(db, channel_id)
    issued_ago(db, 9)
    with raises_sqlstate("WH005") as refused:
        request(db, channel_id)
    assert "10 seconds" in refused.value.diag.message_primary
    issued_ago(db, 10)
    request(db, channel_id)
    set_setting(db, "otp.cooldown", "5 minutes")
    age_all(db, 299)
    with raises_sqlstate("WH005"):
        request(db, channel_id)
    age_all(db, 1)
    request(db, channel_id)


def test_the_code_lifetime_follows_its_setting(db, channel_id):
    set_setting(db, "otp.code_ttl", "2 minutes")
    issued = request(db, channel_id)
    created = db.execute("SELECT created_at FROM whatsapp_handler.otp_challenges").fetchone()["created_at"]
    assert (issued["expires_at"] - created).total_seconds() == 120


def test_the_codes_per_window_follow_their_settings(db, channel_id):
    set_setting(db, "otp.per_window", 2)
    set_setting(db, "otp.window", "10 minutes")
    for _ in range(2):
        request(db, channel_id)
        age_all(db, 61)
    with raises_sqlstate("WH006") as refused:
        request(db, channel_id)
    # The oldest of the two was issued 122 s ago: the window frees it 478 s from now.
    assert 477 <= json.loads(refused.value.diag.message_detail)["retry_after_seconds"] <= 479
    age_all(db, 600 - 121)
    request(db, channel_id)


def test_the_wrong_codes_that_lock_follow_their_setting(db, channel_id):
    set_setting(db, "otp.max_failures", 3)
    request(db, channel_id)
    code = latest_code(db)
    assert [verify(db, wrong(code)) for _ in range(3)] == ["invalid", "invalid", "locked"]
    age_all(db, 61)
    # The three carry over: the phone is locked for otp.window.
    with raises_sqlstate("WH007"):
        request(db, channel_id)
    set_setting(db, "otp.window", "5 minutes")
    age_all(db, 300)
    request(db, channel_id)
    assert verify(db, latest_code(db)) == "verified"


@pytest.mark.parametrize(
    ("key", "value", "code"),
    [
        ("otp.code_ttl", "30 seconds", "WH020"),
        ("otp.code_ttl", None, "WH020"),
        ("otp.cooldown", "-1 seconds", "WH020"),
        ("otp.window", "soon", "WH020"),
        ("otp.per_window", 0, "WH020"),
        ("otp.max_failures", 2.5, "WH020"),
    ],
)
def test_a_bad_policy_setting_refuses_with_its_name(db, channel_id, key, value, code):
    set_setting(db, key, value)
    with raises_sqlstate(code) as refused:
        request(db, channel_id)
    assert key in refused.value.diag.message_primary
    with raises_sqlstate(code):
        verify(db, "123456")


def test_a_missing_policy_setting_is_wh011(db, channel_id):
    db.execute("DELETE FROM whatsapp_handler.settings WHERE key = 'otp.max_failures'")
    with raises_sqlstate("WH011"):
        request(db, channel_id)
    with raises_sqlstate("WH011"):
        verify(db, "123456")


def test_no_otp_function_hard_codes_the_policy():
    """request_otp and verify_otp take every limit from _otp_policy(); the revert removes exactly its keys."""
    for name in ("request_otp", "verify_otp"):
        text = (PROJECT_DIR / "deploy" / "otp" / f"{name}.sql").read_text()
        # A reworked change replaces its functions (docs/database.md, releases).
        body = text[re.search(rf"CREATE (OR REPLACE )?FUNCTION whatsapp_handler\.{name}\(", text).start() :]
        assert not re.search(r"CONSTANT (interval|integer)|interval '\d", body), name
    revert = (PROJECT_DIR / "revert" / "otp" / "policy.sql").read_text()
    assert set(re.findall(r"'(otp\.[a-z_.]+)'", revert)) == set(POLICY)
