"""POST /v1/otp and /v1/otp/verify over real HTTP, authenticated by an API key."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import psycopg
import pytest

from tests.helpers import outbound_messages, outbox_events
from tests.relay import OTP_KEY, assert_problem

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
