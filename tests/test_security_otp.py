"""OTP brute force and flooding, through the HTTP API and through SQL as the relay's login, under
concurrency: five wrong codes count and lock (docs/errors.md, WH005-WH007), the right code is refused
once locked, no new code is issued during the lock, and a code belongs to one phone. The rules one at
a time live in tests/test_otp.py and tests/test_otp_api.py."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from tests.helpers import outbound_messages, raises_sqlstate
from tests.relay import OTP_KEY, assert_problem

PHONE = "+447700900123"
OTHER_PHONE = "+447700900999"
AUTH = {"Authorization": f"Bearer {OTP_KEY}"}
MAX_ATTEMPTS = 5
GUESSES = 40


def codes(db: psycopg.Connection, phone: str = PHONE) -> list[str]:
    return [m["code"] for m in outbound_messages(db) if m["kind"] == "otp" and m["to"] == phone]


def wrong(code: str, k: int = 1) -> str:
    return f"{(int(code) + k) % 1_000_000:06d}"


def challenge(db: psycopg.Connection, phone: str = PHONE) -> dict:
    return db.execute(
        "SELECT c.* FROM whatsapp_handler.otp_challenges c JOIN whatsapp_handler.users u ON u.id = c.user_id"
        " WHERE u.phone = %s ORDER BY c.id DESC LIMIT 1",
        (phone,),
    ).fetchone()


def age(db: psycopg.Connection, by: str) -> None:
    db.execute(
        "UPDATE whatsapp_handler.otp_challenges SET created_at = created_at - %s::interval,"
        " expires_at = expires_at - %s::interval, resolved_at = resolved_at - %s::interval",
        (by, by, by),
    )


@pytest.fixture
def api(relay: Callable[..., str], db: psycopg.Connection) -> tuple[str, int]:
    base = relay()
    row = db.execute("SELECT id FROM whatsapp_handler.channels WHERE provider = 'meta' ORDER BY id LIMIT 1")
    return base, row.fetchone()["id"]


def http_request(base: str, channel_id: int, phone: str = PHONE) -> httpx.Response:
    return httpx.post(f"{base}/v1/otp", json={"phone": phone, "channel_id": channel_id}, headers=AUTH, timeout=20)


def http_verify(base: str, code: str, phone: str = PHONE) -> httpx.Response:
    return httpx.post(f"{base}/v1/otp/verify", json={"phone": phone, "code": code}, headers=AUTH, timeout=20)


def assert_locked_out(db: psycopg.Connection, outcomes: list[str], right_code: str) -> None:
    assert Counter(outcomes) == {"invalid": MAX_ATTEMPTS - 1, "locked": GUESSES - MAX_ATTEMPTS + 1}
    locked = challenge(db)
    assert (locked["status"], locked["failed_attempts"], locked["code_hash"]) == ("locked", MAX_ATTEMPTS, None)
    assert codes(db) == [right_code]
    assert (
        db.execute("SELECT count(*) AS n FROM pgmq.q_outbox WHERE message->>'type' = 'user.verified'").fetchone()["n"]
        == 0
    )


def test_http_brute_force_locks_after_five_and_holds(api, db) -> None:
    base, channel_id = api
    assert http_request(base, channel_id).status_code == 202
    [code] = codes(db)
    guesses = [wrong(code, k) for k in range(1, GUESSES + 1)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda g: http_verify(base, g), guesses))
    assert {a.status_code for a in answers} == {200}
    assert_locked_out(db, [a.json()["outcome"] for a in answers], code)
    assert http_verify(base, code).json() == {"outcome": "locked"}
    # No new code while locked: within the minute the cooldown answers first (WH005), after it the lock (WH007).
    assert assert_problem(http_request(base, channel_id), 429)["code"] == "WH005"
    age(db, "61 seconds")
    refused = http_request(base, channel_id)
    assert assert_problem(refused, 429)["code"] == "WH007"
    assert 60 < int(refused.headers["retry-after"]) <= 3600
    assert codes(db) == [code]


def _sql_guesses(url: str, guesses: list[str], connections: int) -> list[str]:
    """The guesses spread over several connections as the relay's login, released together."""
    barrier = threading.Barrier(connections)
    outcomes: list[str] = []

    def run(mine: list[str]) -> None:
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            barrier.wait()
            for guess in mine:
                row = conn.execute("SELECT whatsapp_handler.verify_otp(%s, %s) AS o", (PHONE, guess)).fetchone()
                outcomes.append(row["o"])

    threads = [threading.Thread(target=run, args=(guesses[i::connections],)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_sql_brute_force_from_eight_connections_locks_after_five(db, channel_id, relay_db_url) -> None:
    relay = psycopg.connect(relay_db_url, autocommit=True, row_factory=dict_row)
    with relay:
        relay.execute("SELECT * FROM whatsapp_handler.request_otp(%s, %s)", (PHONE, channel_id))
    [code] = codes(db)
    outcomes = _sql_guesses(relay_db_url, [wrong(code, k) for k in range(1, GUESSES + 1)], connections=8)
    assert_locked_out(db, outcomes, code)
    with psycopg.connect(relay_db_url, autocommit=True) as conn:
        assert conn.execute("SELECT whatsapp_handler.verify_otp(%s, %s)", (PHONE, code)).fetchone()[0] == "locked"
        age(db, "59 minutes")
        with raises_sqlstate("WH007"):
            conn.execute("SELECT * FROM whatsapp_handler.request_otp(%s, %s)", (PHONE, channel_id))
        age(db, "2 minutes")
        conn.execute("SELECT * FROM whatsapp_handler.request_otp(%s, %s)", (PHONE, channel_id))
    # After the hour, a fresh code and a fresh count: the lock ends, it is not permanent.
    assert len(codes(db)) == 2 and challenge(db)["failed_attempts"] == 0


def test_request_flood_for_one_phone_issues_one_code(api, db) -> None:
    base, channel_id = api
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: http_request(base, channel_id), range(20)))
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {202: 1, 429: 19}
    for refused in (a for a in answers if a.status_code == 429):
        assert assert_problem(refused, 429)["code"] == "WH005"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert len(codes(db)) == 1


def test_at_most_five_codes_an_hour_however_they_are_spaced(api, db) -> None:
    base, channel_id = api
    for _ in range(MAX_ATTEMPTS):
        assert http_request(base, channel_id).status_code == 202
        age(db, "61 seconds")
    refused = http_request(base, channel_id)
    assert assert_problem(refused, 429)["code"] == "WH006"
    assert int(refused.headers["retry-after"]) > 0
    assert len(codes(db)) == MAX_ATTEMPTS


def test_guessing_across_phones_and_new_codes_do_not_reset_the_count(api, db) -> None:
    base, channel_id = api
    assert http_request(base, channel_id).status_code == 202
    assert http_request(base, channel_id, OTHER_PHONE).status_code == 202
    [code] = codes(db)
    [other_code] = codes(db, OTHER_PHONE)
    for k in range(1, 4):
        assert http_verify(base, wrong(code, k)).json() == {"outcome": "invalid"}
        assert http_verify(base, wrong(other_code, k), OTHER_PHONE).json() == {"outcome": "invalid"}
    # One phone's code does not verify another (unless both drew the same six digits).
    if code != other_code:
        assert http_verify(base, code, OTHER_PHONE).json() == {"outcome": "invalid"}
        assert challenge(db, OTHER_PHONE)["failed_attempts"] == 4
    assert challenge(db)["failed_attempts"] == 3
    age(db, "61 seconds")
    assert http_request(base, channel_id).status_code == 202
    new_code = codes(db)[-1]
    assert challenge(db)["failed_attempts"] == 3
    assert http_verify(base, code).json() == {"outcome": "invalid"}  # the superseded code is dead, and counted
    assert http_verify(base, wrong(new_code)).json() == {"outcome": "locked"}
    assert http_verify(base, new_code).json() == {"outcome": "locked"}


@pytest.mark.parametrize(
    "code", ["", " ", "0", "12345", "1234567", "123 456", "\uff11\uff12\uff13\uff14\uff15\uff16", "' OR '1'='1", "%"]
)
def test_malformed_codes_count_as_wrong_ones(api, db, code) -> None:
    base, channel_id = api
    assert http_request(base, channel_id).status_code == 202
    answer = http_verify(base, code)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"outcome": "invalid"}
    assert challenge(db)["failed_attempts"] == 1


# --- who is registered or blocked: the same answers for every phone ---------------------------------------------

UNKNOWN, REGISTERED, BLOCKED = "+447700900301", "+447700900302", "+447700900303"


def test_unknown_registered_and_blocked_phones_get_the_same_answers(api, db) -> None:
    base, channel_id = api
    for phone in (REGISTERED, BLOCKED):
        db.execute("SELECT whatsapp_handler.register_user(%s, %s)", (phone, channel_id))
    blocked_id = db.execute("SELECT id FROM whatsapp_handler.users WHERE phone = %s", (BLOCKED,)).fetchone()["id"]
    db.execute("SELECT whatsapp_handler.block_user(%s, 'abuse')", (blocked_id,))

    def answer(response: httpx.Response) -> tuple[int, str, str]:
        return response.status_code, response.headers["content-type"], response.text

    for code in ("123456", "12345", ""):
        answers = {phone: answer(http_verify(base, code, phone)) for phone in (UNKNOWN, REGISTERED, BLOCKED)}
        assert set(answers.values()) == {(200, "application/json", '{"outcome":"no_challenge"}')}, answers

    # A code requested for each: the same status and body shape, though only the unblocked phones get one.
    issued = {phone: http_request(base, channel_id, phone) for phone in (UNKNOWN, REGISTERED, BLOCKED)}
    shapes = {(r.status_code, tuple(sorted(r.json()))) for r in issued.values()}
    assert shapes == {(202, ("challenge_id", "expires_at"))}
    assert sorted(m["to"] for m in outbound_messages(db)) == [UNKNOWN, REGISTERED]
    for k in range(1, 5):
        outcomes = {http_verify(base, f"{k:06d}", phone).json()["outcome"] for phone in (UNKNOWN, REGISTERED, BLOCKED)}
        assert outcomes == {"invalid"}
    again = {phone: http_request(base, channel_id, phone) for phone in (UNKNOWN, REGISTERED, BLOCKED)}
    assert {(r.status_code, assert_problem(r, 429)["code"]) for r in again.values()} == {(429, "WH005")}
    assert {http_verify(base, "000005", phone).json()["outcome"] for phone in issued} == {"locked"}


def test_no_otp_problem_names_an_internal_id(api, db) -> None:
    base, channel_id = api
    db.execute("SELECT whatsapp_handler.register_user(%s, %s)", (BLOCKED, channel_id))
    user_id = db.execute("SELECT id FROM whatsapp_handler.users WHERE phone = %s", (BLOCKED,)).fetchone()["id"]
    db.execute("SELECT whatsapp_handler.block_user(%s, 'abuse')", (user_id,))
    answers = [http_request(base, channel_id, BLOCKED), http_request(base, channel_id, BLOCKED)]
    answers += [http_verify(base, "000000", BLOCKED), http_request(base, channel_id, "+4915112345678")]
    assert [a.status_code for a in answers] == [202, 429, 200, 403]
    for problem in (a.json() for a in answers if a.status_code >= 400):
        assert "user" not in problem["detail"] and str(user_id) not in problem["detail"], problem
