"""POST /v1/otp and /v1/otp/verify over real HTTP, authenticated by an API key."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.helpers import outbound_messages, outbox_events
from tests.relay import OTP_KEY, assert_problem, scrape

PHONE = "+447700900123"
AUTH = {"Authorization": f"Bearer {OTP_KEY}"}


@pytest.fixture
def api(relay: Callable[..., str], db: psycopg.Connection) -> tuple[str, int]:
    base = relay()
    channel = db.execute("SELECT id FROM whatsapp_handler.channels WHERE provider = 'meta' ORDER BY id LIMIT 1")
    return base, channel.fetchone()["id"]


def request_code(base: str, channel_id: int, phone: str = PHONE, **headers: str) -> httpx.Response:
    return httpx.post(f"{base}/v1/otp", json={"phone": phone, "channel_id": channel_id}, headers=headers or AUTH)


def verify(base: str, code: str, phone: str = PHONE) -> httpx.Response:
    return httpx.post(f"{base}/v1/otp/verify", json={"phone": phone, "code": code}, headers=AUTH)


def test_request_then_verify(api: tuple[str, int], db: psycopg.Connection) -> None:
    base, channel_id = api
    issued = request_code(base, channel_id, **AUTH, **{"X-Request-ID": "otp-flow-1"})
    assert issued.status_code == 202, issued.text
    assert set(issued.json()) == {"challenge_id", "expires_at"}
    [event] = outbox_events(db, "otp.requested")
    assert event["correlation_id"] == "otp-flow-1"
    assert event["payload"]["challenge_id"] == issued.json()["challenge_id"]
    code = outbound_messages(db)[0]["code"]
    wrong = "000000" if code != "000000" else "111111"
    refused = verify(base, wrong)
    assert (refused.status_code, refused.json()) == (200, {"outcome": "invalid"})
    assert verify(base, code).json() == {"outcome": "verified"}
    assert verify(base, code).json() == {"outcome": "no_challenge"}


def test_second_request_within_a_minute_is_429_with_retry_after(api: tuple[str, int]) -> None:
    base, channel_id = api
    assert request_code(base, channel_id).status_code == 202
    again = request_code(base, channel_id)
    problem = assert_problem(again, 429)
    assert problem["code"] == "WH005"
    assert 1 <= int(again.headers["retry-after"]) <= 60


@pytest.mark.parametrize("headers", [{"X-API-Key": OTP_KEY}, {"Authorization": f"bearer {OTP_KEY}"}])
def test_either_header_carries_the_key(api: tuple[str, int], headers: dict[str, str]) -> None:
    base, channel_id = api
    assert request_code(base, channel_id, **headers).status_code == 202


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "wrong-key-0123456789"}, {"Authorization": f"Basic {OTP_KEY}"}, {"Authorization": "Bearer"}],
    ids=["none", "wrong", "basic-scheme", "empty-bearer"],
)
def test_without_a_valid_key_is_401(api: tuple[str, int], db: psycopg.Connection, headers: dict[str, str]) -> None:
    base, channel_id = api
    response = httpx.post(f"{base}/v1/otp", json={"phone": PHONE, "channel_id": channel_id}, headers=headers)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert_problem(httpx.post(f"{base}/v1/otp/verify", json={"phone": PHONE, "code": "1"}, headers=headers), 401)
    assert outbound_messages(db) == []


def test_malformed_phone_is_422_problem_json(api: tuple[str, int]) -> None:
    base, channel_id = api
    problem = assert_problem(request_code(base, channel_id, phone="07700 900123"), 422)
    assert (problem["code"], problem["title"]) == ("WH001", "Unprocessable Entity")
    assert problem["hint"]
    assert assert_problem(verify(base, "123456", phone="not-a-phone"), 422)["code"] == "WH001"


def test_unknown_channel_is_404(api: tuple[str, int]) -> None:
    base, _ = api
    assert assert_problem(request_code(base, 987654), 404)["code"] == "WH003"


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"phone": "+447700900123"}',
        b'{"phone": "+447700900123", "channel_id": "one"}',
        b'{"phone": "+447700900123", "channel_id": 0}',
        b'{"phone": "+447700900123", "channel_id": 99999999999999999999}',
        b'{"phone": 447700900123, "channel_id": 1}',
        b'{"phone": "+447700900123", "channel_id": 1, "extra": true}',
        b'{"phone": "+4477\\u0000", "channel_id": 1}',
    ],
    ids=["syntax", "no-channel", "text-channel", "zero-channel", "huge-channel", "numeric-phone", "extra", "nul"],
)
def test_bad_request_bodies_are_4xx_problem_json(api: tuple[str, int], body: bytes) -> None:
    base, _ = api
    response = httpx.post(f"{base}/v1/otp", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code in (400, 422), response.text
    assert_problem(response, response.status_code)


# --- pumping (docs/security.md, OTP abuse) --------------------------------------------------------------------

OTHER_KEY = "otp-key-of-another-backend-0123"


def set_setting(db: psycopg.Connection, key: str, value: object) -> None:
    assert db.execute("UPDATE whatsapp_handler.settings SET value = %s WHERE key = %s", (Jsonb(value), key)).rowcount


def pump(base: str, channel_id: int, phones: list[str], key: str = OTP_KEY) -> list[httpx.Response]:
    """Requests to many new numbers at once, as a pumping run sends them."""
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda p: request_code(base, channel_id, p, **{"X-API-Key": key}), phones))


def new_phones(n: int, start: int = 0) -> list[str]:
    return [f"+4479{i:08d}" for i in range(start, start + n)]


def test_a_pumping_run_is_stopped_at_the_keys_bucket(api: tuple[str, int], db: psycopg.Connection) -> None:
    base, channel_id = api
    set_setting(db, "otp.limit.per_key.burst", 10)
    set_setting(db, "otp.limit.per_key.per_minute", 1)
    answers = pump(base, channel_id, new_phones(120))
    assert Counter(a.status_code for a in answers) == {202: 10, 429: 110}
    for refused in (a for a in answers if a.status_code == 429):
        assert assert_problem(refused, 429)["code"] == "WH056"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert len(outbound_messages(db)) == 10
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.users").fetchone()["n"] == 10
    metrics = scrape(base)
    assert metrics[("whatsapp_otp_requests_total", (("result", "issued"),))] == 10
    assert metrics[("whatsapp_otp_requests_total", (("result", "key_rate"),))] == 110


def test_two_keys_have_their_own_buckets_and_the_overall_one_caps_both(
    relay: Callable[..., str], db: psycopg.Connection
) -> None:
    base = relay(otp_api_keys=[OTP_KEY, OTHER_KEY])
    channel_id = db.execute("SELECT min(id) AS id FROM whatsapp_handler.channels").fetchone()["id"]
    set_setting(db, "otp.limit.per_key.burst", 4)
    set_setting(db, "otp.limit.per_key.per_minute", 1)
    first = pump(base, channel_id, new_phones(6), OTP_KEY)
    second = pump(base, channel_id, new_phones(6, 100), OTHER_KEY)
    assert [sorted(a.status_code for a in answers) for answers in (first, second)] == [[202] * 4 + [429] * 2] * 2
    # The relay named each key to the database by an id, never by the key itself.
    buckets = [r["bucket"] for r in db.execute("SELECT bucket FROM whatsapp_handler.otp_rate_buckets ORDER BY 1")]
    assert len(buckets) == 3 and "overall" in buckets
    assert not any(OTP_KEY in b or OTHER_KEY in b for b in buckets)

    db.execute("DELETE FROM whatsapp_handler.otp_rate_buckets")
    set_setting(db, "otp.limit.overall.burst", 5)
    set_setting(db, "otp.limit.overall.per_minute", 1)
    both = pump(base, channel_id, new_phones(4, 200), OTP_KEY) + pump(base, channel_id, new_phones(4, 300), OTHER_KEY)
    assert sum(a.status_code == 202 for a in both) == 5
    assert {assert_problem(a, 429)["code"] for a in both if a.status_code != 202} == {"WH057"}


def test_a_number_outside_the_allowed_countries_is_403_and_writes_nothing(
    api: tuple[str, int], db: psycopg.Connection
) -> None:
    base, channel_id = api
    users = db.execute("SELECT count(*) AS n FROM whatsapp_handler.users").fetchone()["n"]
    refused = request_code(base, channel_id, phone="+88213456789")  # a satellite range, a pumping favourite
    problem = assert_problem(refused, 403)
    assert problem["code"] == "WH055" and "88213456789" not in refused.text
    set_setting(db, "otp.country_codes", None)
    assert assert_problem(request_code(base, channel_id), 403)["code"] == "WH058"
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.users").fetchone()["n"] == users
    assert outbound_messages(db) == []
    metrics = scrape(base)
    assert metrics[("whatsapp_otp_requests_total", (("result", "country"),))] == 1
    assert metrics[("whatsapp_otp_requests_total", (("result", "not_configured"),))] == 1


def test_a_missing_limit_setting_is_503_not_500(api: tuple[str, int], db: psycopg.Connection) -> None:
    base, channel_id = api
    db.execute("DELETE FROM whatsapp_handler.settings WHERE key = 'otp.limit.overall.burst'")
    assert_problem(request_code(base, channel_id), 503)
    set_setting(db, "otp.limit.per_key.burst", -1)
    assert_problem(request_code(base, channel_id), 503)
