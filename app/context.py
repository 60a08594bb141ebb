"""Per request: the correlation id (X-Request-ID), the one access log line, and the webhook metrics."""

from __future__ import annotations

import logging
import re
import uuid
from time import perf_counter

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import CORRELATION_ID

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
HEADER = b"x-request-id"
ID_KEY = "correlation_id"
# Set by a webhook handler to the ingest outcome (processed, failed, stored) once SQL has answered.
OUTCOME_KEY = "webhook_outcome"
REJECTED = {
    400: "malformed",
    401: "unauthorized",
    403: "unauthorized",
    404: "unknown_channel",
    408: "timeout",
    413: "too_large",
    503: "unavailable",
}

access = logging.getLogger("whatsapp_handler.access")


def correlation_id(scope: Scope) -> str:
    """The caller's X-Request-ID when it is a safe token, else a new uuid4; the same for the whole request."""
    state = scope.setdefault("state", {})
    found = state.get(ID_KEY)
    if found is None:
        presented = next((value for name, value in scope["headers"] if name == HEADER), b"")
        text = presented.decode("latin-1")
        found = text if REQUEST_ID.fullmatch(text) else str(uuid.uuid4())
        state[ID_KEY] = found
    return found


def request_id_header(scope: Scope) -> dict[str, str]:
    """For the error responses of unrouted requests (404, 405), which the middleware below never sees."""
    return {"X-Request-ID": correlation_id(scope)}


def request_context(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        request_id = correlation_id(scope)
        token = CORRELATION_ID.set(request_id)
        started = perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (HEADER, request_id.encode())]
            await send(message)

        try:
            await app(scope, receive, capture)
        finally:
            elapsed = perf_counter() - started
            _observe(scope, status, elapsed)
            # The path only: a query string can hold a secret (Meta's hub.verify_token). Answered
            # requests are DEBUG: at thousands of webhooks a second, a line each costs as much CPU as
            # the rest of the request; refusals and failures stay visible at INFO and WARNING.
            access.log(
                logging.DEBUG if status < 400 else logging.INFO if status < 500 else logging.WARNING,
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={"status": status, "duration_ms": round(elapsed * 1000, 2)},
            )
            CORRELATION_ID.reset(token)

    return middleware


def _observe(scope: Scope, status: int, elapsed: float) -> None:
    provider = scope["route_handler"].opt.get("provider") if "route_handler" in scope else None
    if provider is None:
        return
    outcome = scope["state"].get(OUTCOME_KEY) if status == 200 else REJECTED.get(status, "error")
    metrics = scope["app"].state.metrics
    metrics.webhook_requests.labels(provider, outcome or "error").inc()
    metrics.webhook_duration.labels(provider).observe(elapsed)
