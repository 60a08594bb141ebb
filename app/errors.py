"""Every error the relay answers, as problem+json, and the one table of the errors the database raises.

ERRORS is the single source of the error contract: the relay maps a SQLSTATE to its HTTP status
from it, the OpenAPI document describes each status with it (app/openapi.py), and the tables of
docs/errors.md are generated from it (`python -m app.errors` rewrites them; a test checks that
the committed doc is current). Keys are a full SQLSTATE or a class prefix; the longest matching
key wins.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import psycopg
from litestar import Request, Response
from litestar.exceptions import HTTPException
from psycopg.conninfo import conninfo_to_dict

from app.context import request_id_header

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER = "5"
# When a rate refusal's DETAIL does not say (or cannot be read): the longest a per-phone wait starts at.
RETRY_AFTER_UNKNOWN = "60"
# The statuses whose answers carry Retry-After.
RETRYABLE = (429, 503)


@dataclass(frozen=True)
class ErrorCode:
    """One row of the contract between the SQL API and its callers."""

    sqlstate: str  # a full SQLSTATE, or a class prefix (22, 57P) standing for every code in it
    meaning: str
    status: int | None  # the relay's answer; None when the error never reaches the relay
    raised_by: str = ""  # the project's own codes: what raises it
    who: str = ""  # who meets it, when not (only) an HTTP caller

    @property
    def code(self) -> str:
        """As the docs write it: a class as 22*."""
        return self.sqlstate if len(self.sqlstate) == 5 else self.sqlstate + "*"


ERRORS: tuple[ErrorCode, ...] = (
    ErrorCode(
        "WH001",
        "malformed phone number (not E.164); the message does not repeat the number, which the server log would keep",
        422,
        "register_user, request_otp, verify_otp",
    ),
    ErrorCode(
        "WH002",
        "unknown user (or, for touch_user_activity, erased)",
        404,
        "every function taking a user id",
    ),
    ErrorCode(
        "WH003",
        "unknown or inactive channel",
        404,
        "register_user, request_otp, send_message, mark_read, campaign_create",
    ),
    ErrorCode(
        "WH004",
        "user is blocked (the OTP API never says so: a blocked phone gets the answers any phone gets, and no code)",
        403,
        "accept_terms, set_user_preferences, send_message, send_messages, mark_read (_check_not_blocked)",
    ),
    ErrorCode(
        "WH005",
        'a code was issued less than setting `otp.cooldown` (60 s) ago; DETAIL `{"retry_after_seconds": N}`',
        429,
        "request_otp",
    ),
    ErrorCode(
        "WH006",
        'setting `otp.per_window` (5) codes within `otp.window` (an hour); DETAIL `{"retry_after_seconds": N}`',
        429,
        "request_otp",
    ),
    ErrorCode(
        "WH007",
        (
            "phone locked after setting `otp.max_failures` (5) wrong codes, for `otp.window`; DETAIL "
            '`{"retry_after_seconds": N}`'
        ),
        429,
        "request_otp",
    ),
    ErrorCode(
        "WH008",
        (
            "invalid argument (terms version, preference key, type or value, block reason, channel fields, partition "
            "range, batch shape, OTP API key id)"
        ),
        422,
        (
            "accept_terms, set_user_preferences, block_user, add_channel, create_partition, ingest_batch, ingest_* (a "
            "NULL body), ingest_raw (unknown provider, no body or no note), request_otp"
        ),
    ),
    ErrorCode(
        "WH009",
        "user was erased (request_otp: erased while its code was being requested; the message names no id)",
        410,
        "functions that change a user",
    ),
    ErrorCode(
        "WH010",
        "a partition cannot be created (overlap, or rows in the default partition)",
        None,
        "create_partition",
        "operators only",
    ),
    ErrorCode(
        "WH011",
        "a setting or reply text is missing (`settings`, `reply_texts`)",
        503,
        "ingestion (dead-lettered), _setting, request_otp and verify_otp (an `otp.*` setting)",
        "dead letter",
    ),
    ErrorCode(
        "WH012",
        "a webhook body is not of the provider's shape",
        None,
        "ingestion (dead-lettered)",
        "dead letter; the provider still gets 200",
    ),
    ErrorCode(
        "WH013",
        (
            "invalid argument to a worker function (claim size or visibility, retry delay, dead-letter reason, provider"
            " message id)"
        ),
        None,
        "worker_claim, worker_sent, worker_retry, worker_release (a delay over 86,400 s), worker_dead_letter",
        "worker only",
    ),
    ErrorCode(
        "WH014",
        "invalid argument to an outbox function (read size or visibility, delay)",
        None,
        "outbox_read, outbox_nack",
        "consumers only",
    ),
    ErrorCode(
        "WH020",
        (
            "a setting is not an interval of at least its minimum (or null where there is no off), or not a whole "
            "number in range"
        ),
        503,
        "the scheduled jobs (docs/jobs.md), request_otp and verify_otp (an `otp.limit.*` or OTP policy setting), "
        "outbox_read (`outbox.max_reads`)",
        "jobs",
    ),
    ErrorCode(
        "WH021",
        (
            "`whatsapp_handler.jobs` changed by a role that is not a superuser (the jobs run as the login "
            "`whatsapp_handler_cron`, and only a superuser may schedule a job for another role)"
        ),
        None,
        "the jobs table's trigger",
        "DBAs only",
    ),
    ErrorCode(
        "WH022",
        "a schedule pg_cron refuses",
        None,
        "the jobs table's trigger",
        "DBAs only",
    ),
    ErrorCode(
        "WH023",
        "a job names a function that does not exist or needs arguments",
        None,
        "the jobs table's trigger",
        "DBAs only",
    ),
    ErrorCode(
        "WH024",
        "an argument out of range (`p_limit` 1-10000, at most 10000 msg_ids), or an unknown dead-letter queue",
        None,
        "redrive_inbound, redrive_outbound, job_erase_inactive_users, dlq_purge, dlq_letters, dlq_history",
        "operators only",
    ),
    ErrorCode(
        "WH030",
        "the analyst login is missing or cannot log in",
        None,
        "add_analyst, remove_analyst",
        "DBAs only",
    ),
    ErrorCode(
        "WH031",
        (
            "an analyst's scope is both or neither (channel ids and all channels), a channel id is unknown, or a "
            "timeout is malformed"
        ),
        None,
        "add_analyst",
        "DBAs only",
    ),
    ErrorCode(
        "WH032",
        "the caller may not grant roles or set a login's parameters",
        None,
        "add_analyst, remove_analyst",
        "DBAs only",
    ),
    ErrorCode(
        "WH033",
        "the login is a superuser, has BYPASSRLS, or is in the owner role: row-level security would not hold",
        None,
        "add_analyst",
        "DBAs only",
    ),
    ErrorCode(
        "WH040",
        "the jobs' login `whatsapp_handler_cron` is missing, a superuser, or may not execute the job's function",
        None,
        "the jobs table's trigger",
        "DBAs only",
    ),
    ErrorCode(
        "WH045",
        (
            "recorded, not raised to a caller: an authenticated webhook body that is not JSON even once cleaned; it is "
            "kept as bytes (`webhook_events.raw`, `payload` NULL, outcome `failed`) with a dead letter on `inbound_dlq`"
            " carrying this code. The re-drive parks such a letter at its first attempt"
        ),
        None,
        "ingest_raw, redrive_inbound (in the dead letter)",
        "none: the provider's answer is 200",
    ),
    ErrorCode(
        "WH055",
        "the phone is outside the OTP destination countries (setting `otp.country_codes`); nothing is written",
        403,
        "request_otp",
    ),
    ErrorCode(
        "WH056",
        'the API key\'s token bucket is empty (settings `otp.limit.per_key.*`); DETAIL `{"retry_after_seconds": N}`',
        429,
        "request_otp",
    ),
    ErrorCode(
        "WH057",
        (
            "the overall token bucket of the OTP API is empty (settings `otp.limit.overall.*`); DETAIL "
            '`{"retry_after_seconds": N}`'
        ),
        429,
        "request_otp",
    ),
    ErrorCode(
        "WH058",
        (
            "OTP destinations not configured: `otp.country_codes` is null (as a deploy leaves it) or not a list of "
            "calling codes"
        ),
        403,
        "request_otp",
    ),
    # The send API (sending/send, docs/sending.md).
    ErrorCode("WH060", "unknown or revoked API key", 401, "send_message, send_messages, message_view"),
    ErrorCode(
        "WH061",
        "the API key may not act on this channel, or lacks the scope (send, read, manage)",
        403,
        "send_message, send_messages",
    ),
    ErrorCode(
        "WH062",
        "malformed business message (the field is named), idempotency key or batch",
        422,
        "send_message, send_messages",
    ),
    ErrorCode(
        "WH063",
        (
            "the channel's provider cannot carry this message (Twilio: interactive, reaction, context, read receipts; "
            "Evolution: template)"
        ),
        422,
        "send_message, send_messages, mark_read",
    ),
    ErrorCode(
        "WH064",
        "free-form message outside the recipient's 24-hour window (setting `sending.window`): send a template",
        409,
        "send_message, send_messages",
    ),
    ErrorCode("WH065", "unknown template (name and language) on this channel", 404, "send_message, send_messages"),
    ErrorCode(
        "WH066",
        "the template is not approved (pending, rejected, paused, disabled, ...)",
        409,
        "send_message, send_messages",
    ),
    ErrorCode(
        "WH067",
        "wrong number of template parameters (header, body or button)",
        422,
        "send_message, send_messages",
    ),
    ErrorCode(
        "WH068",
        "no consent: the recipient opted out on this channel, or a marketing template lacks their opt-in",
        403,
        "send_message, send_messages",
    ),
    ErrorCode(
        "WH069",
        "the idempotency key was used for another message (another channel, recipient or content)",
        422,
        "send_message, send_messages",
    ),
    ErrorCode("WH070", "unknown message, or one on a channel the API key may not read", 404, "message_view, mark_read"),
    # The people API (people/api, docs/sending.md "People").
    ErrorCode(
        "WH071",
        (
            "unknown person on this channel: never met there, erased by its brand, or erased; the same answer "
            "whoever else knows them"
        ),
        404,
        "people_preferences, people_set_preferences, people_block, people_unblock, people_export, people_erase",
    ),
    ErrorCode(
        "WH072",
        "malformed people request (an unknown field, opt_in or source of a consent, block reason, preferences object)",
        422,
        "people_* (every people API function)",
    ),
    ErrorCode(
        "WH073",
        "notifications_enabled is the person's own (STOP and START): a brand records consent per channel instead",
        422,
        "people_set_preferences",
    ),
    ErrorCode(
        "WH074",
        "the block was set by the operator or another brand: a brand lifts only the blocks it set through the API",
        409,
        "people_unblock",
    ),
    ErrorCode(
        "WH075",
        "setting pacing.channel.burst is above pacing.channel.per_second (docs/worker.md, Pacing)",
        None,
        "worker_claim, worker_failed (delivery/pacing)",
        "the worker; doctor names it",
    ),
    # Campaigns (campaigns/*, docs/campaigns.md).
    ErrorCode(
        "WH076",
        "unknown campaign, or one on a channel the API key may not use",
        404,
        "campaign_upload, campaign_audience, campaign_control, campaign_results, api_campaign_*",
    ),
    ErrorCode(
        "WH077",
        (
            "the campaign's state does not allow it (the message names the state): a cancelled campaign cannot "
            "start, a running one takes no more recipients"
        ),
        409,
        "campaign_upload, campaign_control, api_campaign_*",
    ),
    ErrorCode(
        "WH078",
        (
            "recipient rows refused: the first bad row is named (DETAIL row=N problem=...), nothing stored; "
            "or no one matches an audience filter"
        ),
        422,
        "campaign_upload, campaign_audience, api_campaign_upload",
    ),
    ErrorCode(
        "WH079",
        "malformed campaign, audience filter or action (per_second above the channel's cap, a bad starts_at)",
        422,
        "campaign_create, campaign_audience, campaign_control, api_campaign_*",
    ),
    ErrorCode(
        "WH090",
        "pgcrypto is installed outside schema public",
        None,
        "deploy of core/pgcrypto",
        "deploy",
    ),
    ErrorCode(
        "WH091",
        "pg_cron not preloaded, or this is not pg_cron's database",
        None,
        "deploy of core/pg_cron",
        "deploy",
    ),
    ErrorCode(
        "WH092",
        "pgmq neither installed nor available as an extension",
        None,
        "deploy of queue/pgmq",
        "deploy",
    ),
    # PostgreSQL's own codes that callers can meet.
    ErrorCode(
        "42501",
        "insufficient privilege (a role calling what it was not granted; on the relay's own login: 503, see runbook)",
        403,
    ),
    ErrorCode(
        "23505",
        "unique violation (should not surface: the API functions absorb their races)",
        409,
    ),
    ErrorCode(
        "22",
        (
            "data exception: a value PostgreSQL cannot take (a \\u0000 in JSON, a number out of range; a webhook body "
            "jsonb refuses never gets here: the relay cleans it or keeps it raw, see docs/ingestion.md)"
        ),
        400,
    ),
    ErrorCode(
        "40",
        "transaction rollback (deadlock, serialization failure): transient, after the relay's own retries",
        503,
    ),
    ErrorCode(
        "57014",
        "statement timeout: the database is too slow to answer now",
        503,
    ),
    ErrorCode(
        "08",
        "connection exception",
        503,
    ),
    ErrorCode(
        "53",
        "insufficient resources",
        503,
    ),
    ErrorCode(
        "57P",
        "operator intervention: the server is shutting down or cannot take connections now",
        503,
    ),
)
SQLSTATE_STATUS: dict[str, int] = {e.sqlstate: e.status for e in ERRORS if e.status is not None}

# What the relay answers with a status before (or without) any SQL: the rest of each status's meaning.
HTTP_MEANINGS: dict[int, str] = {
    400: "the request is malformed (body, form, JSON)",
    401: "missing or wrong credentials (signature, apikey, API key)",
    403: "refused: a bad Twilio signature or Meta verify token",
    404: "no channel is configured for the body's number or instance",
    408: "the body did not arrive in time",
    413: "the body is larger than the configured limit",
    503: "the database is unavailable or too slow; retry after Retry-After",
}


def status_meaning(status: int) -> str:
    """What a status means from this API, for the OpenAPI document: the relay's own reasons, then
    each database error answered with it."""
    reasons = [HTTP_MEANINGS[status]] if status in HTTP_MEANINGS else []
    reasons += [f"{e.code}: {e.meaning}" for e in ERRORS if e.status == status]
    if status in RETRYABLE and status != 503:
        reasons.append("Retry-After says when to ask again")
    return "; ".join(reasons) or HTTPStatus(status).phrase


def _http_cell(e: ErrorCode) -> str:
    parts = [f"({e.who})"] if e.who else []
    if e.status is not None:
        parts.append(f"{e.status} + Retry-After" if e.status in RETRYABLE else str(e.status))
    return "; ".join(parts)


def errors_markdown() -> str:
    """The tables of docs/errors.md, generated from ERRORS."""
    lines = ["| SQLSTATE | meaning | raised by | HTTP |", "| --- | --- | --- | --- |"]
    lines += [
        f"| `{e.sqlstate}` | {e.meaning} | {e.raised_by} | {_http_cell(e)} |"
        for e in ERRORS
        if e.sqlstate.startswith("WH")
    ]
    lines += ["", "PostgreSQL's own codes that callers can meet, and their HTTP status:", ""]
    lines += ["| SQLSTATE | meaning | HTTP |", "| --- | --- | --- |"]
    for e in ERRORS:
        if not e.sqlstate.startswith("WH"):
            lines.append(f"| `{e.code}` | {e.meaning} | {_http_cell(e)} |")
    return "\n".join(lines) + "\n"


DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"
BEGIN_TABLES = (
    "<!-- The tables below are generated from app/errors.py (ERRORS) by `python -m app.errors`: edit them there. -->\n"
)
END_TABLES = "<!-- End of the generated tables. -->\n"


def document(text: str) -> str:
    """The text of docs/errors.md with its generated tables replaced by the current ones."""
    head, _, rest = text.partition(BEGIN_TABLES)
    _, _, tail = rest.partition(END_TABLES)
    return head + BEGIN_TABLES + "\n" + errors_markdown() + "\n" + END_TABLES + tail


def retry_after(detail: str | None) -> str:
    """The Retry-After of a rate refusal, from its DETAIL {"retry_after_seconds": N} (otp/policy's
    _retry_after); RETRY_AFTER_UNKNOWN when there is none or it cannot be read."""
    try:
        seconds = json.loads(detail or "")["retry_after_seconds"]
    except (ValueError, TypeError, KeyError, IndexError):
        return RETRY_AFTER_UNKNOWN
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
        return RETRY_AFTER_UNKNOWN
    return str(seconds)


class NotReady(Exception):
    """A readiness check failed; carries every check's result (and, for a rights failure, what is missing)."""

    def __init__(self, checks: dict[str, bool], reason: str | None = None) -> None:
        super().__init__("not ready: " + ", ".join(name for name, ok in checks.items() if not ok))
        self.checks = checks
        self.reason = reason


# The server refusing the relay's own login (no EXECUTE, no USAGE on the schema; 42883, a function it
# cannot see, is that or a plan behind this build): no caller's request is refused that way, since the
# relay calls only its own functions. It follows a login left out of its group (a revert and redeploy
# re-creates the groups) and is the service's failure, answered 503, never a 403 that a provider takes
# for a refusal of its webhook.
RIGHTS_SQLSTATES = ("42501", "42883")


def login_of(conninfo: str) -> str:
    """The user a conninfo or URL logs in as, for logs (never its password)."""
    try:
        return str(conninfo_to_dict(conninfo).get("user") or "the default user")
    except psycopg.Error:
        return "an unparseable conninfo's user"


def rights_problem(exc: psycopg.Error, login: str | None = None, service: str = "relay") -> str:
    """What a service's login (the relay's, or the delivery worker's) lacks, in one line, with the fix; the
    login named only where operators read it (logs, doctor), not in an answer to whoever asked."""
    missing = " ".join((exc.diag.message_primary or str(exc)).split())
    who = f"the {service}'s database login {login}" if login else f"the {service}'s database login"
    fix = f"GRANT whatsapp_handler_{service} TO {login}" if login else f"grant it whatsapp_handler_{service}"
    if exc.sqlstate == "42883":
        # Not visible to the login, or not deployed at all: either fix may be the one.
        fix = f"deploy this build's plan (`whatsapp-handler db deploy`), or {fix}"
    return f"{who} lacks a right it needs ({missing}, SQLSTATE {exc.sqlstate}): {fix}; `whatsapp-handler doctor` checks"


def _rights_failure(request: Request, exc: psycopg.Error) -> Response:
    state = request.app.state
    login = login_of(state.pool.conninfo)
    log.warning("%s %s: %s", request.method, request.url.path, rights_problem(exc, login),
                extra={"sqlstate": exc.sqlstate, "login": login})  # fmt: skip
    if (metrics := state.get("metrics")) is not None:
        metrics.rights_failures.inc()
    detail = "the service cannot use its database: " + rights_problem(exc)
    return problem(503, detail, {"Retry-After": RETRY_AFTER}, code=exc.sqlstate)


def status_for(sqlstate: str | None) -> int | None:
    """The HTTP status of a SQLSTATE, or None when the table does not name it."""
    if not sqlstate:
        return None
    for length in (5, 3, 2):
        if (status := SQLSTATE_STATUS.get(sqlstate[:length])) is not None:
            return status
    return None


def problem(status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    title = HTTPStatus(status).phrase
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def unavailable(detail: str = "the database is unavailable") -> Response:
    return problem(503, detail, {"Retry-After": RETRY_AFTER})


def database_problem(exc: psycopg.Error) -> Response | None:
    """The answer to a database error, or None when it is not one the table (or its fallbacks) knows."""
    sqlstate = exc.sqlstate
    status = status_for(sqlstate)
    if status is None:
        if isinstance(exc, psycopg.OperationalError):
            # No SQLSTATE: the server is unreachable, the connection broke, or the pool timed out.
            status = 503
        elif isinstance(exc, psycopg.DataError):
            # Refused before it left the client, such as a NUL character in a string.
            status = 400
        else:
            return None
    if status == 503:
        log.warning("database unavailable: %s", " ".join(str(exc).split()), extra={"sqlstate": sqlstate})
        return unavailable()
    diag = exc.diag
    headers = None
    if status == 429:
        headers = {"Retry-After": retry_after(diag.message_detail)}
    extra = ({"code": sqlstate} if sqlstate else {}) | ({"hint": diag.message_hint} if diag.message_hint else {})
    return problem(status, diag.message_primary or str(exc) or "the request was refused", headers, **extra)


def _database_error(request: Request, exc: psycopg.Error) -> Response:
    if exc.sqlstate in RIGHTS_SQLSTATES:
        return _rights_failure(request, exc)
    return database_problem(exc) or _unexpected(request, exc)


def _not_ready(request: Request, exc: NotReady) -> Response:
    detail = exc.reason or f"{exc} (the plan's last change is {request.app.state.last_change})"
    return problem(503, detail, {"Retry-After": RETRY_AFTER}, checks=exc.checks)


def _http_error(request: Request, exc: HTTPException) -> Response:
    extra = {"errors": exc.extra} if exc.extra else {}
    headers = exc.headers
    if "route_handler" not in request.scope:
        # Not routed (404, 405): the request context middleware never ran to add it.
        headers = {**(headers or {}), **request_id_header(request.scope)}
    return problem(exc.status_code, exc.detail, headers, **extra)


def _too_deep(request: Request, exc: RecursionError) -> Response:
    # Only parsers recurse on input here: Litestar's msgspec decoding of a JSON body nested thousands deep.
    log.warning("refused a body nested too deeply on %s %s", request.method, request.url.path)
    return problem(400, "the body is nested too deeply to be parsed")


def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "an unexpected error occurred; it has been logged")


EXCEPTION_HANDLERS: dict[type[Exception], Any] = {
    NotReady: _not_ready,
    psycopg.Error: _database_error,
    HTTPException: _http_error,
    RecursionError: _too_deep,
    Exception: _unexpected,
}


if __name__ == "__main__":
    # python -m app.errors: rewrite docs/errors.md's tables from ERRORS (--check: only say whether they are current).
    current = DOC.read_text()
    if "--check" in sys.argv[1:]:
        sys.exit(0 if document(current) == current else "docs/errors.md is not current: run python -m app.errors")
    DOC.write_text(document(current))
