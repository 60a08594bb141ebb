"""The OTP API for the business's own backend, authenticated by an API key.

request_otp and verify_otp take no correlation id, so it is set in the same statement:
set_config runs inside a sub-select that produces the call's first argument, and an
argument is always evaluated before the function runs. One statement, one round trip,
one (autocommit) transaction, so the setting reaches the events the call emits.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import psycopg
from litestar import Request, post
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import JSONBody
from pydantic import BaseModel, ConfigDict, Field

from app import signatures
from app.logs import CORRELATION_ID
from app.openapi import problems

_WITH_ID = "(SELECT %s::text FROM pg_catalog.set_config('whatsapp_handler.correlation_id', %s, true))"
REQUEST_OTP = f"SELECT challenge_id, expires_at FROM whatsapp_handler.request_otp({_WITH_ID}, %s, %s)"
VERIFY_OTP = f"SELECT whatsapp_handler.verify_otp({_WITH_ID}, %s)"
BIGINT_MAX = 2**63 - 1
# The refusals of request_otp counted by reason (whatsapp_otp_requests_total{result}); others count as "other".
REFUSALS = {
    "WH055": "country",
    "WH058": "not_configured",
    "WH056": "key_rate",
    "WH057": "overall_rate",
    "WH005": "cooldown",
    "WH006": "hourly",
    "WH007": "locked",
    "WH001": "malformed_phone",
    "WH003": "unknown_channel",
}


class OtpRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(max_length=32, description="E.164, such as +447700900123", examples=["+447700900123"])
    channel_id: int = Field(gt=0, le=BIGINT_MAX, description="the channel that delivers the code")


class OtpChallenge(BaseModel):
    challenge_id: int
    expires_at: datetime


class OtpVerify(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(max_length=32, examples=["+447700900123"])
    code: str = Field(max_length=32, examples=["123456"])


class OtpOutcome(BaseModel):
    outcome: str = Field(description="verified, invalid, expired, locked or no_challenge")


def key_id(key: bytes) -> str:
    """What names an API key to the database (its token bucket): a short hash, never the key itself."""
    return hashlib.sha256(key).hexdigest()[:16]


def api_key_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Authorization: Bearer <key> or X-API-Key: <key>, against every configured key; the matched
    key's id is kept on the request's state for request_otp's per-key bucket."""
    scheme, _sep, token = connection.headers.get("authorization", "").partition(" ")
    presented = token.strip() if scheme.lower() == "bearer" else connection.headers.get("x-api-key")
    matched = None
    for key in connection.app.state.otp_api_keys:
        if signatures.same(key, presented):
            matched = key
    if matched is None:
        raise NotAuthorizedException("a valid API key is required", headers={"WWW-Authenticate": "Bearer"})
    connection.state.otp_key_id = key_id(matched)


@post("/v1/otp", status_code=202, guards=[api_key_guard], responses=problems(400, 401, 403, 404, 410, 422, 429, 503))
async def request_otp(request: Request, data: JSONBody[OtpRequest]) -> OtpChallenge:
    """Issue a code to a phone on a channel; the code goes out through the outbound queue. A phone outside
    the allowed countries is refused (403), and so is any request past the API key's or the overall
    rate (429 with Retry-After). A blocked phone gets the same answer as any other, and no code."""
    state = request.app.state
    params = (data.phone, CORRELATION_ID.get(), data.channel_id, request.state.otp_key_id)
    try:
        async with state.pool.connection() as conn:
            row = await (await conn.execute(REQUEST_OTP, params, prepare=state.prepare)).fetchone()
    except psycopg.Error as exc:
        # Counted, then answered by the one exception handler like any other database error.
        state.metrics.otp_requests.labels(REFUSALS.get(exc.sqlstate or "", "other")).inc()
        raise
    state.metrics.otp_requests.labels("issued").inc()
    state.metrics.otp_sent.inc()
    return OtpChallenge(challenge_id=row[0], expires_at=row[1])


@post("/v1/otp/verify", status_code=200, guards=[api_key_guard], responses=problems(400, 401, 422, 503))
async def verify_otp(request: Request, data: JSONBody[OtpVerify]) -> OtpOutcome:
    """Check a code; a wrong code is an outcome (counted), not an error. Unknown, blocked and registered
    phones get the same answers: no_challenge when no live code is there."""
    state = request.app.state
    params = (data.phone, CORRELATION_ID.get(), data.code)
    async with state.pool.connection() as conn:
        row = await (await conn.execute(VERIFY_OTP, params, prepare=state.prepare)).fetchone()
    state.metrics.otp_verified.labels(row[0]).inc()
    return OtpOutcome(outcome=row[0])


ROUTES = [request_otp, verify_otp]
