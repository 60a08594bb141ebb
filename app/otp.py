"""The OTP API for the business's own backend, authenticated by an API key.

The handlers take what they use (the pool, the prepare flag, the metrics) as Litestar
dependencies that app/web.py provides, and pass the correlation id to SQL as the last
argument, as every relay call does (docs/errors.md, correlation ids).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

import psycopg
from litestar import Request, Router, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import JSONBody
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from app.compare import presented_key, same
from app.logs import CORRELATION_ID
from app.metrics import Metrics
from app.openapi import problems

REQUEST_OTP = "SELECT challenge_id, expires_at FROM whatsapp_handler.request_otp(%s, %s, %s, %s)"
VERIFY_OTP = "SELECT whatsapp_handler.verify_otp(%s, %s, %s)"
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


class ApiKeyGuard:
    """Authorization: Bearer <key> or X-API-Key: <key>, against every configured key; the matched
    key's id is kept on the request's state for request_otp's per-key bucket. A guard, not a
    dependency: it runs before the body is read, so an unauthenticated caller learns nothing."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        self._keys = tuple(keys)

    def __call__(self, connection: ASGIConnection, _: BaseRouteHandler) -> None:
        presented = presented_key(connection.headers)
        matched = None
        for key in self._keys:
            if same(key, presented):
                matched = key
        if matched is None:
            raise NotAuthorizedException("a valid API key is required", headers={"WWW-Authenticate": "Bearer"})
        connection.state.otp_key_id = key_id(matched)


@post("/v1/otp", status_code=202, responses=problems(400, 401, 403, 404, 410, 422, 429, 503))
async def request_otp(
    request: Request,
    data: JSONBody[OtpRequest],
    pool: NamedDependency[AsyncConnectionPool],
    prepare: NamedDependency[bool | None],
    metrics: NamedDependency[Metrics],
) -> OtpChallenge:
    """Issue a code to a phone on a channel; the code goes out through the outbound queue. A phone outside
    the allowed countries is refused (403), and so is any request past the API key's or the overall
    rate (429 with Retry-After). A blocked phone gets the same answer as any other, and no code."""
    params = (data.phone, data.channel_id, request.state.otp_key_id, CORRELATION_ID.get())
    try:
        async with pool.connection() as conn:
            row = await (await conn.execute(REQUEST_OTP, params, prepare=prepare)).fetchone()
    except psycopg.Error as exc:
        # Counted, then answered by the one exception handler like any other database error.
        metrics.otp_requests.labels(REFUSALS.get(exc.sqlstate or "", "other")).inc()
        raise
    metrics.otp_requests.labels("issued").inc()
    metrics.otp_sent.inc()
    return OtpChallenge(challenge_id=row[0], expires_at=row[1])


@post("/v1/otp/verify", status_code=200, responses=problems(400, 401, 422, 503))
async def verify_otp(
    data: JSONBody[OtpVerify],
    pool: NamedDependency[AsyncConnectionPool],
    prepare: NamedDependency[bool | None],
    metrics: NamedDependency[Metrics],
) -> OtpOutcome:
    """Check a code; a wrong code is an outcome (counted), not an error. Unknown, blocked and registered
    phones get the same answers: no_challenge when no live code is there."""
    params = (data.phone, data.code, CORRELATION_ID.get())
    async with pool.connection() as conn:
        row = await (await conn.execute(VERIFY_OTP, params, prepare=prepare)).fetchone()
    metrics.otp_verified.labels(row[0]).inc()
    return OtpOutcome(outcome=row[0])


def router(api_keys: Sequence[bytes]) -> Router:
    """The OTP routes behind the guard of the configured keys."""
    return Router(path="/", route_handlers=[request_otp, verify_otp], guards=[ApiKeyGuard(api_keys)])
