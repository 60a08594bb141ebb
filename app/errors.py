"""Every error the relay answers, as problem+json; SQLSTATEs mapped to HTTP statuses in one table.

The table follows docs/errors.md. Keys are a full SQLSTATE or a class prefix; the
longest matching key wins.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

import psycopg
from litestar import Request, Response
from litestar.exceptions import HTTPException

from app.context import request_id_header

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER = "5"

SQLSTATE_STATUS: dict[str, int] = {
    "WH001": 422,  # malformed phone number
    "WH002": 404,  # unknown user
    "WH003": 404,  # unknown or inactive channel
    "WH004": 403,  # user is blocked
    "WH005": 429,  # a code was issued less than 60 s ago
    "WH006": 429,  # 5 codes in the last hour
    "WH007": 429,  # locked after 5 wrong codes
    "WH008": 422,  # invalid argument
    "WH009": 410,  # user was erased
    "WH011": 503,  # a setting is missing (request_otp's otp.* settings): the operators must restore it
    "WH020": 503,  # a setting is out of range (request_otp's otp.limit.* settings)
    "WH055": 403,  # OTP destination outside the allowed countries
    "WH056": 429,  # the OTP API key's token bucket is empty
    "WH057": 429,  # the OTP API's overall token bucket is empty
    "WH058": 403,  # OTP destinations not configured (setting otp.country_codes)
    "42501": 403,  # insufficient privilege
    "23505": 409,  # unique violation
    "22": 400,  # data exception: a value PostgreSQL cannot take (a \u0000 in JSON, a number out of range)
    "40": 503,  # transaction rollback (deadlock, serialization failure): transient, worth a retry
    "08": 503,  # connection exception
    "53": 503,  # insufficient resources
    "57P": 503,  # operator intervention: shutting down, cannot connect now
    "57014": 503,  # statement timeout: the database is too slow to answer now
}
_RETRY_AFTER_DETAIL = re.compile(r"retry_after_seconds=(\d+)")


class NotReady(Exception):
    """A readiness check failed; carries every check's result."""

    def __init__(self, checks: dict[str, bool]) -> None:
        super().__init__("not ready: " + ", ".join(name for name, ok in checks.items() if not ok))
        self.checks = checks


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
        seconds = _RETRY_AFTER_DETAIL.search(diag.message_detail or "")
        headers = {"Retry-After": seconds.group(1) if seconds else "60"}
    extra = ({"code": sqlstate} if sqlstate else {}) | ({"hint": diag.message_hint} if diag.message_hint else {})
    return problem(status, diag.message_primary or str(exc) or "the request was refused", headers, **extra)


def _database_error(request: Request, exc: psycopg.Error) -> Response:
    return database_problem(exc) or _unexpected(request, exc)


def _not_ready(request: Request, exc: NotReady) -> Response:
    detail = f"{exc} (the plan's last change is {request.app.state.last_change})"
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
