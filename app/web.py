"""The HTTP app: a Litestar factory whose connection pool lives in its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any

import psycopg
from litestar import Litestar, Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from psycopg_pool import AsyncConnectionPool

from app.database import resolve_conninfo
from app.settings import PROJECT_DIR, get_settings

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER = "5"
GETCONN_TIMEOUT = 2.0
PROJECT = "whatsapp_handler"


class NotReady(Exception):
    """A readiness check failed; carries every check's result."""

    def __init__(self, checks: dict[str, bool]) -> None:
        super().__init__("not ready: " + ", ".join(name for name, ok in checks.items() if not ok))
        self.checks = checks


def last_change(plan: Path) -> str:
    """The name of the plan's last change (pragmas, comments and tags skipped)."""
    names = [
        line.split()[0]
        for line in plan.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith(("%", "#", "@"))
    ]
    if not names:
        raise ValueError(f"{plan} has no changes")
    return names[-1]


async def readiness(pool: AsyncConnectionPool, change: str) -> dict[str, bool]:
    try:
        async with pool.connection(timeout=GETCONN_TIMEOUT) as conn:
            database = (await (await conn.execute("SELECT 1")).fetchone()) == (1,)
            registry = await (await conn.execute("SELECT to_regclass('sqitch.changes') IS NOT NULL")).fetchone()
            deployed = bool(registry and registry[0])
            if deployed:
                query = "SELECT 1 FROM sqitch.changes WHERE change = %s AND project = %s"
                deployed = await (await conn.execute(query, (change, PROJECT))).fetchone() is not None
            query = "SELECT 1 FROM pg_stat_activity WHERE backend_type = 'pg_cron launcher'"
            cron = await (await conn.execute(query)).fetchone() is not None
    except psycopg.OperationalError:
        # An unreachable database is a probe result, not an error of the probe.
        return {"database": False, "plan": False, "pg_cron": False}
    return {"database": database, "plan": deployed, "pg_cron": cron}


@get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/ready")
async def ready(state: State) -> dict[str, Any]:
    checks = await readiness(state.pool, state.last_change)
    if not all(checks.values()):
        raise NotReady(checks)
    return {"status": "ready", "checks": checks}


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _not_ready(request: Request, exc: NotReady) -> Response:
    detail = f"{exc} (the plan's last change is {request.app.state.last_change})"
    return problem(503, "Service Unavailable", detail, {"Retry-After": RETRY_AFTER}, checks=exc.checks)


def _database_unavailable(_: Request, exc: psycopg.OperationalError) -> Response:
    log.warning("database unavailable: %s", " ".join(str(exc).split()))
    return problem(503, "Service Unavailable", "the database is unavailable", {"Retry-After": RETRY_AFTER})


def _http_error(_: Request, exc: HTTPException) -> Response:
    extra = {"errors": exc.extra} if exc.extra else {}
    return problem(exc.status_code, HTTPStatus(exc.status_code).phrase, exc.detail, exc.headers, **extra)


def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "Internal Server Error", "an unexpected error occurred; it has been logged")


def _pool(conninfo: str) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(conninfo, min_size=1, max_size=10, open=False)
        # wait=False: the app starts (and /health answers) while the database is still down.
        await pool.open(wait=False)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    return lifespan


def create_app() -> Litestar:
    settings = get_settings()
    if settings.database_url is None:
        raise RuntimeError(
            "WHATSAPP_HANDLER_DATABASE_URL is not set: start the app with `whatsapp-handler serve`, which provides it"
        )
    return Litestar(
        route_handlers=[health, ready],
        lifespan=[_pool(resolve_conninfo(settings))],
        state=State({"last_change": last_change(PROJECT_DIR / "sqitch.plan")}),
        exception_handlers={
            NotReady: _not_ready,
            psycopg.OperationalError: _database_unavailable,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
