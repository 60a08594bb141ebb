"""The send API for the business's backend: POST /v1/messages (and /v1/messages/batch) queue
messages, GET /v1/messages/{id} reads one back with its statuses.

Every rule (the key's channels and scopes, the message's shape, what the provider carries, the
24-hour window, templates, consent, idempotency) is checked in SQL, in the transaction that
queues the message (sending/send): the handlers only hash the key, pass the body as it came,
and translate the answer. docs/sending.md is the reference.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import psycopg
from litestar import Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, HeaderParameter, JSONBody
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from app.compare import presented_key
from app.logs import CORRELATION_ID
from app.openapi import problems

SEND = "SELECT message_id, duplicate FROM whatsapp_handler.send_message(%s, %s, %s, %s)"
SEND_BATCH = (
    "SELECT index, message_id, duplicate, error_code, error FROM whatsapp_handler.send_messages(%s, %s, %s, %s)"
)
VIEW = "SELECT whatsapp_handler.message_view(%s, %s)"
MARK_READ = "SELECT whatsapp_handler.mark_read(%s, %s, %s, %s, %s)"
BIGINT_MAX = 2**63 - 1
# The SQLSTATEs of a refused send, as whatsapp_send_requests_total{result} counts them (docs/sending.md, the rules).
RESULTS = {"WH060": "unknown_key", "WH061": "not_covered", "WH003": "unknown_channel", "WH062": "malformed",
           "WH001": "malformed", "WH063": "not_carried", "WH069": "key_reused", "WH004": "blocked",
           "WH064": "outside_window", "WH065": "template", "WH066": "template", "WH067": "template",
           "WH068": "no_consent"}  # fmt: skip


class Queued(BaseModel):
    id: int = Field(description="the message's id, for GET /v1/messages/{id}")
    status: str = Field(description="queued")
    duplicate: bool = Field(description="true when the Idempotency-Key named a message already queued: no second send")


class ReadReceipt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel_id: int = Field(gt=0, le=BIGINT_MAX, description="the channel the person wrote to")
    message_id: str = Field(min_length=1, max_length=256, description="the provider's id of the person's message")
    typing: bool = Field(default=False, description="show the typing indicator too, until the answer comes")


class BatchResult(BaseModel):
    index: int
    id: int | None = None
    duplicate: bool | None = None
    code: str | None = Field(default=None, description="the SQLSTATE that refused this element (docs/errors.md)")
    detail: str | None = None


class BatchQueued(BaseModel):
    results: list[BatchResult]


def key_hash(connection: ASGIConnection) -> bytes:
    """The SHA-256 of the presented key: the only form of it the database sees."""
    return connection.state.api_key_hash  # type: ignore[no-any-return]


def bearer_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Authorization: Bearer <key> (or X-API-Key, as app.compare.presented_key reads both). Whether the
    key exists and may act on the channel is SQL's to say (sending/api_keys); a request with no key at
    all is refused before its body is read."""
    key = presented_key(connection.headers)
    if key is None:
        raise NotAuthorizedException("an API key is required (Authorization: Bearer <key>)",
                                     headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    connection.state.api_key_hash = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationException("the body is a JSON object: the message, with channel_id and to")
    return data


@post("/v1/messages", status_code=202, responses=problems(400, 401, 403, 404, 409, 413, 422, 503))
async def send_message(
    request: Request,
    data: JSONBody[Any],
    pool: NamedDependency[AsyncConnectionPool],
    idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key", required=False, max_length=255)],
) -> Response[Queued]:
    """Queue one message: Meta's Cloud API message object (`type` and its object: text, template, image,
    document, audio, video, location, interactive, reaction; optional `context`) plus `channel_id` and
    `to`. The Idempotency-Key header names it: a retry with the same key and body answers the same id
    (`duplicate: true`) and sends nothing again."""
    if not idempotency_key:
        raise ValidationException(
            "the Idempotency-Key header is required: a key unique to this message, repeated on a retry"
        )
    params = (key_hash(request), Jsonb(_object(data)), idempotency_key, CORRELATION_ID.get())
    sends = request.app.state.metrics.send_requests
    try:
        async with pool.connection() as conn:
            row = await (await conn.execute(SEND, params)).fetchone()
    except psycopg.Error as exc:
        # Counted, then answered by the one exception handler like any other database error.
        sends.labels(RESULTS.get(exc.sqlstate or "", "other")).inc()
        raise
    sends.labels("duplicate" if row[1] else "queued").inc()
    headers = {"Idempotent-Replayed": "true"} if row[1] else {}
    return Response(Queued(id=row[0], status="queued", duplicate=row[1]), status_code=202, headers=headers)


@post("/v1/messages/batch", status_code=200, responses=problems(400, 401, 403, 413, 422, 503))
async def send_batch(request: Request, data: JSONBody[Any], pool: NamedDependency[AsyncConnectionPool]) -> BatchQueued:
    """Queue up to 1000 messages on one channel: `{"channel_id": N, "messages": [{"to", "type", ...,
    "idempotency_key"}, ...]}`. Each element is queued or refused on its own; the results say which,
    in order."""
    body = _object(data)
    channel_id, messages = body.get("channel_id"), body.get("messages")
    if type(channel_id) is not int or not 0 < channel_id <= BIGINT_MAX or set(body) - {"channel_id", "messages"}:
        raise ValidationException('the body is {"channel_id": <channel id>, "messages": [...]}')
    params = (key_hash(request), channel_id, Jsonb(messages), CORRELATION_ID.get())
    async with pool.connection() as conn:
        rows = await (await conn.execute(SEND_BATCH, params)).fetchall()
    sends = request.app.state.metrics.send_requests
    for r in rows:
        sends.labels(RESULTS.get(r[3], "other") if r[3] else "duplicate" if r[2] else "queued").inc()
    return BatchQueued(results=[BatchResult(index=r[0], id=r[1], duplicate=r[2], code=r[3], detail=r[4]) for r in rows])


@post("/v1/messages/read", status_code=202, responses=problems(400, 401, 403, 404, 422, 503))
async def mark_read(
    request: Request, data: JSONBody[ReadReceipt], pool: NamedDependency[AsyncConnectionPool]
) -> dict[str, str]:
    """Mark a person's message as read (blue ticks), with the typing indicator when `typing` is true:
    queued in line with the messages waiting for them. Meta and Evolution channels; a Twilio channel
    answers 422 (WH063)."""
    params = (key_hash(request), data.channel_id, data.message_id, data.typing, CORRELATION_ID.get())
    async with pool.connection() as conn:
        await conn.execute(MARK_READ, params)
    return {"status": "queued"}


@get("/v1/messages/{message_id:int}", responses=problems(400, 401, 404, 503))
async def view_message(
    request: Request, message_id: FromPath[int], pool: NamedDependency[AsyncConnectionPool]
) -> dict[str, Any]:
    """A message this key may read: its type, status, the provider's id and every status the provider
    reported, with their errors."""
    if not 0 < message_id <= BIGINT_MAX:
        raise ValidationException("a message id is a positive 64-bit integer")
    async with pool.connection() as conn:
        row = await (await conn.execute(VIEW, (key_hash(request), message_id))).fetchone()
    return row[0]  # type: ignore[no-any-return]


def router() -> Router:
    return Router(path="/", route_handlers=[send_message, send_batch, mark_read, view_message], guards=[bearer_guard])
