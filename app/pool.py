"""The relay's connection pool: autocommit connections, so that one SQL call is one transaction
and one round trip, and a cheap check that drops connections the server has closed."""

from __future__ import annotations

import select

import psycopg
from psycopg_pool import AsyncConnectionPool

from app.settings import Settings


async def drop_if_closed(conn: psycopg.AsyncConnection) -> None:
    """An idle connection has nothing to read: if its socket is readable, the server closed it
    (or sent a FATAL on its way down). Polling costs a syscall, not a round trip, so after a
    database restart the first request gets a fresh connection rather than an error."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    if poller.poll(0):
        await conn.close()
        raise psycopg.OperationalError("the server closed this idle connection")


async def durable_commits(conn: psycopg.AsyncConnection) -> None:
    """A webhook is acknowledged, and a send settled, once its transaction commits; with
    synchronous_commit off (a server or database default a DBA may set for speed) a crash loses
    the last commits, and a provider would not retry what it saw acknowledged. So a connection
    that inherits off waits for the local flush again; a stronger setting (on, remote_write,
    remote_apply, for a synchronous standby) is left as the DBA chose it."""
    cursor = await conn.execute("SHOW synchronous_commit")
    row = await cursor.fetchone()
    if row is not None and row[0] == "off":
        await conn.execute("SET synchronous_commit = local")


def relay_pool(conninfo: str, settings: Settings) -> AsyncConnectionPool:
    kwargs: dict[str, object] = {"autocommit": True, "application_name": "whatsapp-handler-relay"}
    if settings.statement_timeout_ms:
        kwargs["options"] = f"-c statement_timeout={settings.statement_timeout_ms}"
    if not settings.prepared_statements:
        kwargs["prepare_threshold"] = None
    return AsyncConnectionPool(
        conninfo,
        kwargs=kwargs,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.pool_timeout,
        reconnect_timeout=settings.pool_reconnect_timeout,
        check=drop_if_closed,
        configure=durable_commits,
        open=False,
    )
