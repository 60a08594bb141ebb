"""Probes: /health (the process answers) and /ready (database reachable, plan deployed, pg_cron running)."""

from __future__ import annotations

from typing import Any

import psycopg
from litestar import get
from litestar.datastructures import State
from psycopg_pool import AsyncConnectionPool

from app.errors import NotReady
from app.openapi import problems
from app.sqitch import Change

READINESS = "SELECT whatsapp_handler.readiness(%s, %s::timestamptz)"
GETCONN_TIMEOUT = 2.0


async def readiness(pool: AsyncConnectionPool, change: Change) -> dict[str, bool]:
    try:
        async with pool.connection(timeout=GETCONN_TIMEOUT) as conn:
            row = await (await conn.execute(READINESS, (change.name, change.planned_at))).fetchone()
    except psycopg.OperationalError:
        # An unreachable database is a probe result, not an error of the probe.
        return {"database": False, "plan": False, "pg_cron": False}
    except psycopg.Error:
        # Reachable, but without readiness() (a plan older than this build) or without the right to call it.
        return {"database": True, "plan": False, "pg_cron": False}
    checks = row[0] if row else {}
    return {"database": True, "plan": bool(checks.get("plan")), "pg_cron": bool(checks.get("pg_cron"))}


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/ready", responses=problems(503))
async def ready(state: State) -> dict[str, Any]:
    checks = await readiness(state.pool, state.last_change)
    if not all(checks.values()):
        raise NotReady(checks)
    return {"status": "ready", "checks": checks}


ROUTES = [health, ready]
