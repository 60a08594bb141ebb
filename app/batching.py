"""Group commit for webhooks: while every ingest slot is busy, arriving webhooks wait together
and go to PostgreSQL as one ingest_batch call, one transaction and one round trip for all.

With a slot free a webhook goes at once, alone, through ingest_<provider>: at low load
nothing waits and nothing changes. Under load the calls grow instead of multiplying, so
that commits (and the relay's per-call work) stay few. Each webhook keeps its own
savepoint, result and dead letter in SQL, and each request is answered only after the
transaction that holds its webhook committed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg_pool import AsyncConnectionPool

if TYPE_CHECKING:  # imported by the Metrics that make it (app/metrics.py says why)
    from prometheus_client import Histogram

# A provider's own ingest function, ingest_<name> (deploy/ingest/ingest.sql).
SINGLE = "SELECT whatsapp_handler.ingest_{}(%s::jsonb, %s)"
# %b: arrays go in binary; in text every quote of every JSON body would be escaped, in Python.
BATCH = "SELECT whatsapp_handler.ingest_batch(%s, %b::jsonb[], %b::text[])"
# A body jsonb refuses as received (app/envelopes.py cleaned it, or it is not JSON): alone, with its bytes.
RAW = "SELECT whatsapp_handler.ingest_raw(%s, %s, %s, %s, %s)"
# jsonb refused a body the relay judged good: kept raw and dead-lettered rather than lost.
REFUSED = (psycopg.DataError, psycopg.errors.ProgramLimitExceeded)

RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
ATTEMPTS = 3

_Waiting = tuple[str, str | None, asyncio.Future]


class Batcher:
    """One per provider and worker process."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        provider: str,
        *,
        slots: int,
        max_batch: int,
        prepare: bool | None,
        sizes: Histogram,
    ) -> None:
        self._pool = pool
        self._sizes = sizes
        self._provider = provider
        self._single_query = SINGLE.format(provider)
        self._slots = slots
        self._max_batch = max_batch
        self._prepare = prepare
        self._waiting: list[_Waiting] = []
        self._running = 0
        # Drain tasks must outlive the request that started them (a client may hang up).
        self._tasks: set[asyncio.Task] = set()

    async def ingest(self, payload: str, correlation_id: str | None) -> dict[str, Any]:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((payload, correlation_id, future))
        if self._running < self._slots:
            self._running += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def ingest_raw(
        self, raw: bytes, payload: str | None, note: str, correlation_id: str | None
    ) -> dict[str, Any]:
        """A body jsonb refuses as received: its bytes, the cleaned JSON text (None if there is none) and a note."""
        return await self._call(RAW, (self._provider, raw, payload, note, correlation_id)) or {}

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                await self._run(batch)
        finally:
            self._running -= 1

    async def _run(self, batch: list[_Waiting]) -> None:
        self._sizes.observe(len(batch))
        if len(batch) == 1:
            await self._settle_alone(*batch[0])
            return
        try:
            results = await self._batch(batch)
        except REFUSED:
            # One body PostgreSQL cannot take would fail the whole array: each is tried
            # alone, so that only that one goes to ingest_raw.
            for payload, correlation_id, future in batch:
                await self._settle_alone(payload, correlation_id, future)
            return
        except Exception as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _settle_alone(self, payload: str, correlation_id: str | None, future: asyncio.Future) -> None:
        try:
            try:
                result = await self._single(payload, correlation_id)
            except REFUSED as exc:
                # app/envelopes.py lets through only what jsonb takes; should it be wrong, the
                # body is still kept (raw, dead-lettered with WH045) and acknowledged.
                note = f"jsonb refused the body as received ({exc.sqlstate or 'refused by the driver'})"
                result = await self.ingest_raw(payload.encode("utf-8", "surrogatepass"), None, note, correlation_id)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)

    async def _single(self, payload: str, correlation_id: str | None) -> dict[str, Any]:
        return await self._call(self._single_query, (payload, correlation_id)) or {}

    async def _batch(self, batch: list[_Waiting]) -> list[dict[str, Any]]:
        results = await self._call(BATCH, (self._provider, [w[0] for w in batch], [w[1] for w in batch]))
        return list(results) if results else [{} for _ in batch]

    async def _call(self, query: str, params: tuple[Any, ...]) -> Any:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self._pool.connection() as conn:
                    row = await (await conn.execute(query, params, prepare=self._prepare)).fetchone()
                return row[0] if row else None
            except RETRYABLE:
                # Two calls that locked the same conversations in different orders: one was
                # rolled back whole, nothing of it committed, so running it again is safe.
                if attempt == ATTEMPTS:
                    raise
