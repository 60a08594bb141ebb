"""Acknowledged means durable: the relay's and the worker's connections never commit with
synchronous_commit off, whatever default the server or the database sets."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from app import worker
from app.pool import relay_pool
from app.settings import Settings


async def _setting_seen_by(pool) -> str:
    await pool.open(wait=True, timeout=10)
    try:
        async with pool.connection() as conn:
            return (await (await conn.execute("SHOW synchronous_commit")).fetchone())[0]
    finally:
        await pool.close()


@pytest.mark.parametrize(
    ("default", "expected"), [("off", "local"), ("on", "on"), ("local", "local"), ("remote_apply", "remote_apply")]
)
def test_off_is_turned_back_on_and_stronger_settings_are_kept(
    db: psycopg.Connection, db_name: str, db_url: str, default: str, expected: str
) -> None:
    db.execute(f"ALTER DATABASE {db_name} SET synchronous_commit = {default}")
    settings = Settings(database_url=db_url)
    relay = asyncio.run(_setting_seen_by(relay_pool(db_url, settings)))
    sender = asyncio.run(_setting_seen_by(worker._pool(settings)))
    assert (relay, sender) == (expected, expected)
    # The database default itself is what the DBA set: only the service's sessions differ.
    with psycopg.connect(db_url) as other:
        assert other.execute("SHOW synchronous_commit").fetchone()[0] == default
