"""The HTTP app: a Litestar factory whose connection pool lives in its lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app import __version__, campaigns, health, logs, messages, metrics, otp, people, providers
from app.batching import Batcher
from app.channels import Channels
from app.context import request_context
from app.errors import EXCEPTION_HANDLERS
from app.pool import relay_pool
from app.settings import PROJECT_DIR, get_settings
from app.sqitch import last_change
from app.webhooks import Relay

__all__ = ["body_deadline", "create_app", "last_change"]


def body_deadline(app: ASGIApp, seconds: float) -> ASGIApp:
    """The whole request body must arrive within `seconds` of the request's start, or the request
    is answered 408 and its connection closed. granian reads a body only as fast as the client
    sends it and has no deadline of its own: a body trickled a byte at a time would hold its
    connection, and one of granian's backpressure slots, for as long as the client likes."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + seconds
        complete = False

        async def timed_receive() -> Message:
            nonlocal complete
            if complete:
                # The body is in; what comes now (a disconnect) has no deadline.
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    status_code=408,
                    detail=f"the request body did not arrive within {seconds:g} s",
                    headers={"Connection": "close"},
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        await app(scope, timed_receive, send)

    return middleware


def _provide(value: Any) -> Provide:
    """A dependency that is one object made at start-up, the same for every request."""

    def dependency() -> Any:
        return value

    return Provide(dependency, sync_to_thread=False, use_cache=True)


@asynccontextmanager
async def _pool(app: Litestar) -> AsyncIterator[None]:
    pool = app.state.pool
    # wait=False: the app starts (and /health answers) while the database is still down.
    await pool.open(wait=False)
    try:
        yield
    finally:
        await pool.close()


def create_app() -> Litestar:
    settings = get_settings()
    url = settings.relay_database_url or settings.database_url
    if url is None:
        raise RuntimeError(
            "neither WHATSAPP_HANDLER_RELAY_DATABASE_URL nor WHATSAPP_HANDLER_DATABASE_URL is set:"
            " start the app with `whatsapp-handler serve`, which provides it"
        )
    logs.configure(settings.log_level)
    pool = relay_pool(url.get_secret_value(), settings)
    # True prepares on first use; None leaves it to psycopg (never, when prepared statements are off).
    prepare = True if settings.prepared_statements else None
    app_metrics = metrics.Metrics()
    batchers = {
        provider: Batcher(
            pool,
            provider,
            slots=settings.ingest_slots,
            max_batch=settings.ingest_batch_max,
            prepare=prepare,
            sizes=app_metrics.ingest_batch_size.labels(provider),
        )
        for provider in providers.PROVIDERS
    }
    state = State(
        {
            "last_change": last_change(PROJECT_DIR / "sqitch.plan"),
            "pool": pool,
            "prepare": prepare,
            "metrics": app_metrics,
        }
    )
    # What handlers take by name: each declares the ones it uses as parameters.
    dependencies: dict[str, Provide] = {
        "pool": _provide(pool),
        "prepare": _provide(prepare),
        "metrics": _provide(app_metrics),
        # The providers' webhooks (app/providers/): the channels they route to, the batchers they ingest through.
        "relay": _provide(Relay(Channels(settings.channels), batchers, app_metrics, settings.public_base_url)),
    }
    otp_api_keys = [key.get_secret_value().encode() for key in settings.otp_api_keys]
    return Litestar(
        route_handlers=[
            *health.ROUTES,
            *providers.ROUTES,
            otp.router(otp_api_keys),
            messages.router(),
            people.router(),
            campaigns.router(),
            metrics.metrics,
        ],
        dependencies=dependencies,
        lifespan=[_pool],
        state=state,
        middleware=[request_context, DefineMiddleware(body_deadline, seconds=settings.body_timeout)],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="whatsapp-handler", version=__version__, path="/schema"),
        # Logging is ours (JSON, with the correlation id): Litestar must not install its own.
        logging_config=None,
    )
