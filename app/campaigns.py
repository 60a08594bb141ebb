"""The campaigns API for the business's backend: /v1/campaigns creates a campaign (a template to an
audience at its own pace), fills it from a recipient list or an audience filter, starts, pauses,
resumes and cancels it, and reads its funnel and its recipients page by page.

Who may do what is SQL's (campaigns/api: scope send to change a campaign, read to look at one; a
campaign on another brand's channel is 404 like an id nobody created), and so is every rule of a
campaign (campaigns/campaigns). The handlers hash the key, read a recipient list into rows
(app.recipients, the one reader), pass the rest as it came and translate the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

from app import recipients
from app.errors import problem
from app.logs import CORRELATION_ID
from app.messages import BIGINT_MAX, bearer_guard, key_hash
from app.openapi import array_schema, object_schema, problems, string_schema

CREATE = "SELECT whatsapp_handler.api_campaign_create(%s, %s, %s)"
UPLOAD = "SELECT whatsapp_handler.api_campaign_upload(%s, %s, %s, %s, %s)"
AUDIENCE = "SELECT whatsapp_handler.api_campaign_audience(%s, %s, %s, %s)"
CONTROL = "SELECT whatsapp_handler.api_campaign_control(%s, %s, %s, %s)"
RESULTS = "SELECT whatsapp_handler.api_campaign_results(%s, %s)"
RECIPIENTS = "SELECT whatsapp_handler.api_campaign_recipients(%s, %s, %s, %s, %s)"
INT4_MAX = 2**31 - 1
# The code of a recipient list refused before SQL saw it: the same meaning as SQL's refusal of a row (docs/errors.md).
ROWS_REFUSED = "WH078"
ROWS_HINT = (
    "CSV: a header phone,var1,var2,... then one recipient per line with as many fields as the header; JSON: "
    '[{"phone": "+447700900123", "variables": ["Ana"]}, ...]. Rows count from 1, the header not counted.'
)
Body = JSONBody[Any]
Pool = NamedDependency[AsyncConnectionPool]


class Created(BaseModel):
    id: int = Field(description="the campaign's id, for the other /v1/campaigns/{id} calls")
    state: str = Field(description="draft")


class Uploaded(BaseModel):
    rows: int = Field(description="rows received")
    accepted: int = Field(description="rows that became recipients (pending)")
    duplicates: int = Field(description="rows whose phone was already listed: kept, skipped as duplicate")
    invalid: int = Field(description="rows kept as skipped (invalid_number, missing_variables) with skip_invalid")
    first_position: int = Field(description="the position of this upload's first row among the campaign's recipients")


class State(BaseModel):
    id: int
    state: str = Field(description="draft, scheduled, running, paused, budget_exhausted, completed or cancelled")
    reason: str | None = Field(description="why it is in that state (operator, template_paused, ...), when known")


class Recipient(BaseModel):
    position: int = Field(description="its row in the audience, from 1, in upload order")
    phone: str | None = Field(description="null for a row kept as invalid_number")
    state: str = Field(description="pending, queued, sent, delivered, read, failed or skipped")
    reason: str | None = Field(description="why it was skipped or failed")
    message_id: int | None = Field(description="the message it became, for GET /v1/messages/{id}")


class RecipientsPage(BaseModel):
    recipients: list[Recipient]
    next_after: int | None = Field(description="pass as after for the next page; null on the last")


def _recipients_body() -> type[Operation]:
    """The recipient list, documented in both media types; the handler reads the raw body itself."""
    variables = Schema(type=OpenAPIType.ARRAY, items=string_schema())
    row = object_schema({"phone": string_schema(description="E.164"), "variables": variables}, required=["phone"])
    csv = string_schema(description="a header phone,var1,var2,... then one recipient per line")
    json = Schema(one_of=[array_schema(row), object_schema({"recipients": array_schema(row)}, ["recipients"])])

    @dataclass
    class RecipientsOperation(Operation):
        def __post_init__(self) -> None:
            content = {"text/csv": OpenAPIMediaType(schema=csv), "application/json": OpenAPIMediaType(schema=json)}
            self.request_body = RequestBody(content=content, required=True)

    return RecipientsOperation


def _campaign(campaign_id: int) -> int:
    if not 0 < campaign_id <= BIGINT_MAX:
        raise ValidationException("a campaign id is a positive 64-bit integer")
    return campaign_id


async def _call(pool: AsyncConnectionPool, query: str, params: tuple[Any, ...]) -> Any:
    """One SQL call; a refusal goes to the one exception handler as a problem."""
    async with pool.connection() as conn:
        row = await (await conn.execute(query, params)).fetchone()
    return row[0]  # type: ignore[index]


@post("/v1/campaigns", status_code=201, responses=problems(400, 401, 403, 404, 413, 422, 503))
async def create(request: Request, data: Body, pool: Pool) -> Created:
    """Create a draft campaign: `{"name", "channel_id", "template": {"name", "language"}}` and optionally
    `components` (a header's media, a button's parameter: the same for everyone), `per_second` (default 10, at
    most the channel's cap), `daily_budget` (messages per UTC day) and `starts_at`."""
    if not isinstance(data, dict):
        raise ValidationException('the body is a JSON object: {"name", "channel_id", "template", ...}')
    answer = await _call(pool, CREATE, (key_hash(request), Jsonb(data), CORRELATION_ID.get()))
    return Created.model_validate(answer)


@post(
    "/v1/campaigns/{campaign_id:int}/recipients",
    status_code=200,
    responses=problems(400, 401, 403, 404, 409, 413, 422, 503),
    operation_class=_recipients_body(),
)
async def upload(
    request: Request,
    campaign_id: FromPath[int],
    pool: Pool,
    skip_invalid: FromQuery[bool] = False,
) -> Response[Uploaded]:
    """Add recipients to a draft or scheduled campaign, after those already there: `text/csv` (a header
    `phone,var1,var2,...`, one recipient per line) or `application/json` (`[{"phone", "variables"}, ...]`).
    A phone already listed is kept as a skipped duplicate. A bad row refuses the whole upload, naming it,
    unless `skip_invalid=true` keeps rows with a bad phone or wrong variables as skipped."""
    _campaign(campaign_id)
    raw = await request.body()
    try:
        # utf-8-sig: a spreadsheet's CSV often starts with a byte order mark.
        rows = recipients.read(raw.decode("utf-8-sig"), request.headers.get("content-type", "application/json"))
    except UnicodeDecodeError:
        raise ValidationException("the recipient list is not UTF-8 text") from None
    except recipients.RecipientsError as exc:
        return problem(
            422,
            f"the recipient list cannot be read: {exc}; nothing stored",
            code=ROWS_REFUSED,
            hint=ROWS_HINT,
        )
    params = (key_hash(request), campaign_id, Jsonb(rows), skip_invalid, CORRELATION_ID.get())
    return Response(Uploaded.model_validate(await _call(pool, UPLOAD, params)))


@post(
    "/v1/campaigns/{campaign_id:int}/audience",
    status_code=200,
    responses=problems(400, 401, 403, 404, 409, 413, 422, 503),
)
async def audience(request: Request, campaign_id: FromPath[int], data: Body, pool: Pool) -> Uploaded:
    """Add as recipients the people the campaign's channel knows who match a filter: `{"filter":
    {"active_within": "30 days", "language": "pt-BR", "preferences": {...}, "variables": [...]}}`, each part
    optional, the variables the same for everyone."""
    _campaign(campaign_id)
    if not isinstance(data, dict) or set(data) - {"filter"}:
        raise ValidationException('the body is {"filter": {"active_within", "language", "preferences", "variables"}}')
    params = (key_hash(request), campaign_id, Jsonb(data.get("filter", {})), CORRELATION_ID.get())
    return Uploaded.model_validate(await _call(pool, AUDIENCE, params))


async def _control(request: Request, campaign_id: int, pool: AsyncConnectionPool, action: str) -> State:
    params = (key_hash(request), _campaign(campaign_id), action, CORRELATION_ID.get())
    return State.model_validate(await _call(pool, CONTROL, params))


CONTROL_PROBLEMS = problems(400, 401, 403, 404, 409, 422, 503)


@post("/v1/campaigns/{campaign_id:int}/start", status_code=200, responses=CONTROL_PROBLEMS)
async def start(request: Request, campaign_id: FromPath[int], pool: Pool) -> State:
    """Start a draft or scheduled campaign with a pending recipient and its template approved: running, or
    scheduled until its starts_at."""
    return await _control(request, campaign_id, pool, "start")


@post("/v1/campaigns/{campaign_id:int}/pause", status_code=200, responses=CONTROL_PROBLEMS)
async def pause(request: Request, campaign_id: FromPath[int], pool: Pool) -> State:
    """Pause a scheduled or running campaign (or one stopped by its budget); nothing more is queued."""
    return await _control(request, campaign_id, pool, "pause")


@post("/v1/campaigns/{campaign_id:int}/resume", status_code=200, responses=CONTROL_PROBLEMS)
async def resume(request: Request, campaign_id: FromPath[int], pool: Pool) -> State:
    """Resume a paused campaign where it stopped."""
    return await _control(request, campaign_id, pool, "resume")


@post("/v1/campaigns/{campaign_id:int}/cancel", status_code=200, responses=CONTROL_PROBLEMS)
async def cancel(request: Request, campaign_id: FromPath[int], pool: Pool) -> State:
    """Cancel a campaign for good: its pending recipients are skipped as cancelled."""
    return await _control(request, campaign_id, pool, "cancel")


@get("/v1/campaigns/{campaign_id:int}", responses=problems(400, 401, 403, 404, 503))
async def results(request: Request, campaign_id: FromPath[int], pool: Pool) -> dict[str, Any]:
    """A campaign's state and funnel: `recipients`, `states` ({state: count}) and `reasons`
    ({"skipped:no_consent": count, "failed:undeliverable": count, ...}), with its settings."""
    return await _call(pool, RESULTS, (key_hash(request), _campaign(campaign_id)))  # type: ignore[no-any-return]


@get("/v1/campaigns/{campaign_id:int}/recipients", responses=problems(400, 401, 403, 404, 422, 503))
async def recipients_page(
    request: Request,
    campaign_id: FromPath[int],
    pool: Pool,
    in_state: Annotated[str | None, QueryParameter(name="state", required=False, max_length=32)],
    after: Annotated[int | None, QueryParameter(required=False, ge=0, le=INT4_MAX)],
    limit: Annotated[int | None, QueryParameter(required=False, ge=1, le=INT4_MAX)],
) -> RecipientsPage:
    """A page of the campaign's recipients in upload order, in one state when `state` is given: up to `limit`
    (1-1000, default 100) after position `after`; `next_after` asks for the next page."""
    params = (key_hash(request), _campaign(campaign_id), in_state, after, limit)
    return RecipientsPage.model_validate(await _call(pool, RECIPIENTS, params))


def router() -> Router:
    return Router(
        path="/",
        route_handlers=[create, upload, audience, start, pause, resume, cancel, results, recipients_page],
        guards=[bearer_guard],
    )
