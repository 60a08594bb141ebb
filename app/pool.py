"""The service's connection pools, made by one factory: autocommit connections, so that one SQL
call is one transaction and one round trip, each named for its service and never committing
with synchronous_commit off. The relay's also checks for connections the server has closed."""

from __future__ import annotations

import select
from collections.abc import Awaitable, Callable

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


def service_pool(
    conninfo: str,
    application_name: str,
    *,
    min_size: int,
    max_size: int,
    timeout: float,
    reconnect_timeout: float = 300.0,
    check: Callable[[psycopg.AsyncConnection], Awaitable[None]] | None = None,
    **connection: object,
) -> AsyncConnectionPool:
    """A closed pool (the caller opens it where its event loop runs); `connection` adds to the
    keyword arguments of every connection (options, prepare_threshold)."""
    return AsyncConnectionPool(
        conninfo,
        kwargs={"autocommit": True, "application_name": application_name, **connection},
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        reconnect_timeout=reconnect_timeout,
        check=check,
        configure=durable_commits,
        open=False,
    )


def relay_pool(conninfo: str, settings: Settings) -> AsyncConnectionPool:
    connection: dict[str, object] = {}
    if settings.statement_timeout_ms:
        connection["options"] = f"-c statement_timeout={settings.statement_timeout_ms}"
    if not settings.prepared_statements:
        connection["prepare_threshold"] = None
    return service_pool(
        conninfo,
        "whatsapp-handler-relay",
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.pool_timeout,
        reconnect_timeout=settings.pool_reconnect_timeout,
        check=drop_if_closed,
        **connection,
    )


def worker_pool(settings: Settings) -> AsyncConnectionPool:
    """The delivery worker's, on its own login where one is set: a connection per four sends
    under way (4 to 32)."""
    url = settings.worker_database_url or settings.database_url
    if url is None:
        raise RuntimeError("neither WHATSAPP_HANDLER_WORKER_DATABASE_URL nor WHATSAPP_HANDLER_DATABASE_URL is set")
    return service_pool(
        url.get_secret_value(),
        "whatsapp-handler-worker",
        min_size=2,
        max_size=max(4, min(settings.worker_concurrency // 4, 32)),
        timeout=settings.pool_timeout * 5,
    )
