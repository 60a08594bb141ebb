"""Probes: /health (the process answers) and /ready (database reachable, the relay's login holds its rights,
plan deployed, pg_cron running)."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from litestar import get
from litestar.datastructures import State
from psycopg_pool import AsyncConnectionPool

from app.errors import NotReady, login_of, rights_problem
from app.openapi import problems
from app.sqitch import Change

log = logging.getLogger(__name__)

READINESS = "SELECT whatsapp_handler.readiness(%s, %s::timestamptz)"
GETCONN_TIMEOUT = 2.0


async def readiness(pool: AsyncConnectionPool, change: Change) -> tuple[dict[str, bool], str | None]:
    """Each check's result, and what the relay's login lacks when the server refused it a right."""
    try:
        async with pool.connection(timeout=GETCONN_TIMEOUT) as conn:
            row = await (await conn.execute(READINESS, (change.name, change.planned_at))).fetchone()
    except psycopg.OperationalError:
        # An unreachable database is a probe result, not an error of the probe.
        return {"database": False, "plan": False, "pg_cron": False}, None
    except psycopg.Error as exc:
        if exc.sqlstate == "42501":
            # Refused, not missing: the plan and pg_cron are unknown from here, and a redeploy would
            # not help; the login needs its group back.
            log.warning("/ready: %s", rights_problem(exc, login_of(pool.conninfo)), extra={"sqlstate": exc.sqlstate})
            return {"database": True, "rights": False}, "not ready: " + rights_problem(exc)
        # Reachable, but without readiness() (42883: a plan older than this build).
        return {"database": True, "plan": False, "pg_cron": False}, None
    checks = row[0] if row else {}
    return {"database": True, "plan": bool(checks.get("plan")), "pg_cron": bool(checks.get("pg_cron"))}, None


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/ready", responses=problems(503))
async def ready(state: State) -> dict[str, Any]:
    checks, lacking = await readiness(state.pool, state.last_change)
    if lacking is not None:
        state.metrics.rights_failures.inc()
    if not all(checks.values()):
        raise NotReady(checks, lacking)
    return {"status": "ready", "checks": checks}


ROUTES = [health, ready]
