"""The people API for the business's backend (API keys with scope `manage`): consent, preferences,
block and unblock, export and erasure of a person, addressed by channel and phone.

Who the key may manage and what each call does are SQL's (people/api): a person the key's channel
does not know is 404 whoever else knows them, an export holds what the key's brand holds, an
erasure reaches the brand alone while another brand knows the person. The handlers pass the body as
it came and translate the answer. The phone travels in the body (or, for a GET, the query string,
which the relay's access log leaves out), never in the path. docs/sending.md "People" is the reference.
"""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
from litestar import Request, Router, get, patch, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import JSONBody, QueryParameter
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

from app.logs import CORRELATION_ID
from app.messages import BIGINT_MAX, bearer_guard, key_hash
from app.openapi import problems

CONSENT = "SELECT status, changed FROM whatsapp_handler.people_consent(%s, %s, %s)"
PREFERENCES = "SELECT whatsapp_handler.people_preferences(%s, %s, %s)"
SET_PREFERENCES = "SELECT whatsapp_handler.people_set_preferences(%s, %s, %s)"
BLOCK = "SELECT blocked, changed FROM whatsapp_handler.people_block(%s, %s, %s)"
UNBLOCK = "SELECT blocked, changed FROM whatsapp_handler.people_unblock(%s, %s, %s)"
EXPORT = "SELECT whatsapp_handler.people_export(%s, %s, %s)"
ERASE = "SELECT whatsapp_handler.people_erase(%s, %s, %s)"
REFUSALS = problems(400, 401, 403, 404, 413, 422, 503)
# Why SQL refused a call, as whatsapp_people_requests_total{result} counts it (app/metrics.py's PEOPLE_RESULTS).
# A key refused on a channel is the one to watch: a backend with the wrong key, or someone trying keys
# or other brands' channels (alert WhatsappPeopleApiKeyRefusals).
RESULTS = {
    "WH060": "unknown_key",
    "WH061": "not_covered",
    "WH071": "unknown_person",
    "WH001": "invalid",
    "WH008": "invalid",
    "WH072": "invalid",
    "WH073": "invalid",
    "WH074": "not_own_block",
}
# A body of any JSON: its shape is SQL's to check, with a project SQLSTATE naming what is wrong.
Body = JSONBody[Any]
Pool = NamedDependency[AsyncConnectionPool]


class Consent(BaseModel):
    status: str = Field(description="opted_in or opted_out: the person's consent on the channel now")
    changed: bool = Field(description="false when that was already their consent (no event)")


class Blocked(BaseModel):
    blocked: bool = Field(description="whether the person is blocked now (for every brand)")
    changed: bool = Field(description="false when nothing changed")


class Erased(BaseModel):
    erased: bool = Field(description="true: the brand no longer holds anything about the person")


def _object(data: Any) -> Jsonb:
    if not isinstance(data, dict):
        raise ValidationException('the body is a JSON object: {"channel_id": ..., "phone": ..., ...}')
    return Jsonb(data)


async def _one(pool: AsyncConnectionPool, query: str, request: Request, body: Jsonb, action: str) -> tuple[Any, ...]:
    metrics = request.app.state.metrics
    try:
        async with pool.connection() as conn:
            row = await (await conn.execute(query, (key_hash(request), body, CORRELATION_ID.get()))).fetchone()
    except psycopg.Error as exc:
        # Counted, then answered by the one exception handler like any other database error.
        metrics.people_requests.labels(action, RESULTS.get(exc.sqlstate or "", "other")).inc()
        raise
    metrics.people_requests.labels(action, "ok").inc()
    return row  # type: ignore[return-value]


@post("/v1/people/consent", status_code=200, responses=REFUSALS)
async def consent(request: Request, data: Body, pool: Pool) -> Consent:
    """Record a person's consent on a channel: `{"channel_id", "phone", "opt_in": true|false, "source"}`, the
    source naming where it was given or withdrawn (kept as `api:<source>`). A phone the channel never met is
    registered on it."""
    row = await _one(pool, CONSENT, request, _object(data), "consent")
    return Consent(status=row[0], changed=row[1])


@get("/v1/people/preferences", responses=problems(400, 401, 403, 404, 422, 503))
async def preferences(
    request: Request,
    pool: Pool,
    channel_id: Annotated[int, QueryParameter(gt=0, le=BIGINT_MAX)],
    phone: Annotated[str, QueryParameter(max_length=32)],
) -> dict[str, Any]:
    """A person's preferences (one set for every brand that knows them)."""
    row = await _one(pool, PREFERENCES, request, Jsonb({"channel_id": channel_id, "phone": phone}), "preferences")
    return row[0]  # type: ignore[no-any-return]


@patch("/v1/people/preferences", responses=REFUSALS)
async def set_preferences(request: Request, data: Body, pool: Pool) -> dict[str, Any]:
    """Change some of a person's preferences: `{"channel_id", "phone", "preferences": {"language": "pt-BR"}}`
    (language, timezone, delay_threshold_minutes, auto_claim); answers them all. They are the person's, for
    every brand; `notifications_enabled` is theirs alone to set (STOP, START)."""
    row = await _one(pool, SET_PREFERENCES, request, _object(data), "set_preferences")
    return row[0]  # type: ignore[no-any-return]


@post("/v1/people/block", status_code=200, responses=REFUSALS)
async def block(request: Request, data: Body, pool: Pool) -> Blocked:
    """Block a person: `{"channel_id", "phone", "reason"}`. A block is the person's, for every brand: they
    get nothing from any channel until it is lifted."""
    row = await _one(pool, BLOCK, request, _object(data), "block")
    return Blocked(blocked=row[0], changed=row[1])


@post("/v1/people/unblock", status_code=200, responses=problems(400, 401, 403, 404, 409, 413, 422, 503))
async def unblock(request: Request, data: Body, pool: Pool) -> Blocked:
    """Lift a block this key's brand set: `{"channel_id", "phone"}`."""
    row = await _one(pool, UNBLOCK, request, _object(data), "unblock")
    return Blocked(blocked=row[0], changed=row[1])


@post("/v1/people/export", status_code=200, responses=REFUSALS)
async def export(request: Request, data: Body, pool: Pool) -> dict[str, Any]:
    """What this key's brand holds about a person (GDPR access): `{"channel_id", "phone"}`."""
    row = await _one(pool, EXPORT, request, _object(data), "export")
    return row[0]  # type: ignore[no-any-return]


@post("/v1/people/erase", status_code=200, responses=REFUSALS)
async def erase(request: Request, data: Body, pool: Pool) -> Erased:
    """Erase what this key's brand holds about a person (GDPR erasure): `{"channel_id", "phone"}`. The person
    is then unknown to the brand: a retry answers 404."""
    row = await _one(pool, ERASE, request, _object(data), "erase")
    return Erased(erased=row[0])


def router() -> Router:
    return Router(
        path="/",
        route_handlers=[consent, preferences, set_preferences, block, unblock, export, erase],
        guards=[bearer_guard],
    )
