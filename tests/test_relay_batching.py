"""Webhooks arriving together share one ingest_batch call (app/batching.py): each still gets
its own result, duplicates inside a batch are stored once, and one body PostgreSQL cannot take
does not fail the others."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import psycopg
import pytest
from prometheus_client import Histogram

from app.batching import Batcher
from kit import payloads as p
from tests.relay import meta_signature, scrape

CONCURRENT = 60


async def post_all(base: str, bodies: list[bytes]) -> list[httpx.Response]:
    """All at once, the i-th with X-Request-ID req-i."""
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        return await asyncio.gather(
            *(
                client.post(
                    "/webhooks/meta",
                    content=body,
                    headers={"X-Hub-Signature-256": meta_signature(body), "X-Request-ID": f"req-{i}"},
                )
                for i, body in enumerate(bodies)
            )
        )


def batch_sizes(base: str) -> tuple[float, float]:
    """(calls, webhooks) of the Meta ingest so far."""
    m = scrape(base)
    labels = (("provider", "meta"),)
    return m[("whatsapp_ingest_batch_size_count", labels)], m[("whatsapp_ingest_batch_size_sum", labels)]


def inbound_ids(db: psycopg.Connection) -> list[str]:
    rows = db.execute(
        "SELECT provider_message_id FROM whatsapp_handler.messages WHERE direction = 'inbound' ORDER BY 1"
    ).fetchall()
    return [r["provider_message_id"] for r in rows]


def test_concurrent_webhooks_share_calls_and_each_gets_its_result(
    relay: Callable[..., str], db: psycopg.Connection
) -> None:
    base = relay(ingest_slots=1)
    bodies = [json.dumps(p.meta_text(f"4477009{i:05d}", f"wamid.B{i:03d}")).encode() for i in range(CONCURRENT)]
    responses = asyncio.run(post_all(base, bodies))
    assert [r.status_code for r in responses] == [200] * CONCURRENT
    assert all(r.json()["messages"] == 1 for r in responses)
    # Each answer is its own webhook's result, stored with its own request's correlation id.
    events = {
        r["id"]: (r["payload"]["entry"][0]["changes"][0]["value"]["messages"][0]["id"], r["correlation_id"])
        for r in db.execute("SELECT id, payload, correlation_id FROM whatsapp_handler.webhook_events").fetchall()
    }
    answered = [events[r.json()["webhook_event_id"]] for r in responses]
    assert answered == [(f"wamid.B{i:03d}", f"req-{i}") for i in range(CONCURRENT)]
    assert inbound_ids(db) == sorted(f"wamid.B{i:03d}" for i in range(CONCURRENT))
    calls, webhooks = batch_sizes(base)
    assert webhooks == CONCURRENT
    assert calls < CONCURRENT, "no two webhooks went together: the test did not exercise a batch"


def test_duplicates_inside_a_batch_are_stored_once(relay: Callable[..., str], db: psycopg.Connection) -> None:
    base = relay(ingest_slots=1)
    body = json.dumps(p.meta_text("447700900123", "wamid.SAME")).encode()
    responses = asyncio.run(post_all(base, [body] * 20))
    assert [r.status_code for r in responses] == [200] * 20
    assert sum(r.json()["messages"] for r in responses) == 1
    assert sum(r.json()["duplicates"] for r in responses) == 19
    assert inbound_ids(db) == ["wamid.SAME"]


def test_a_body_postgres_refuses_as_received_goes_alone_and_is_kept(
    relay: Callable[..., str], db: psycopg.Connection
) -> None:
    base = relay(ingest_slots=1)
    bodies = [json.dumps(p.meta_text(f"4477009{i:05d}", f"wamid.G{i:03d}")).encode() for i in range(30)]
    poison = json.dumps(p.meta_text("447700900999", "wamid.POISON", body="a\u0000b")).encode()
    not_json = b"signed, but not JSON"
    responses = asyncio.run(post_all(base, [*bodies[:15], poison, not_json, *bodies[15:]]))
    assert [r.status_code for r in responses] == [200] * 32
    assert (responses[15].json()["messages"], responses[16].json()["outcome"]) == (1, "failed")
    assert inbound_ids(db) == sorted([*(f"wamid.G{i:03d}" for i in range(30)), "wamid.POISON"])
    assert db.execute("SELECT count(*) AS n FROM pgmq.q_inbound_dlq").fetchone()["n"] == 1
    calls, _ = batch_sizes(base)
    assert calls < 31, "no two webhooks went together: the test did not exercise a batch"


def test_batching_off_sends_one_call_per_webhook(relay: Callable[..., str], db: psycopg.Connection) -> None:
    base = relay(ingest_batch_max=1)
    bodies = [json.dumps(p.meta_text(f"4477009{i:05d}", f"wamid.S{i:03d}")).encode() for i in range(20)]
    assert [r.status_code for r in asyncio.run(post_all(base, bodies))] == [200] * 20
    assert batch_sizes(base) == (20, 20)


class _Pool:
    """Answers each call with the next outcome: an exception to raise or a row's value."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.queries: list[tuple[str, tuple]] = []

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[_Pool]:
        yield self

    async def execute(self, query: str, params: tuple, prepare: bool | None = None) -> _Pool:
        self.calls += 1
        self.queries.append((query, params))
        self.outcome = self.outcomes.pop(0)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self

    async def fetchone(self) -> tuple:
        return (self.outcome,)


def batcher(pool: _Pool) -> Batcher:
    return Batcher(pool, "meta", slots=1, max_batch=10, prepare=True, sizes=Histogram("h", "h", registry=None))


def test_a_call_rolled_back_by_a_deadlock_runs_again() -> None:
    deadlock = psycopg.errors.DeadlockDetected("deadlock detected")
    pool = _Pool(deadlock, deadlock, {"outcome": "processed"})
    assert asyncio.run(batcher(pool).ingest("{}", "c")) == {"outcome": "processed"}
    assert pool.calls == 3
    pool = _Pool(deadlock, deadlock, deadlock)
    with pytest.raises(psycopg.errors.DeadlockDetected):
        asyncio.run(batcher(pool).ingest("{}", "c"))
    pool = _Pool(psycopg.errors.UniqueViolation("not a retry"))
    with pytest.raises(psycopg.errors.UniqueViolation):
        asyncio.run(batcher(pool).ingest("{}", "c"))
    assert pool.calls == 1


def test_a_body_jsonb_refuses_though_the_relay_judged_it_good_is_kept_raw() -> None:
    """The safety net behind app/envelopes.py: jsonb's refusal of a single call becomes an ingest_raw call."""
    refused = psycopg.errors.UntranslatableCharacter("unsupported Unicode escape sequence")
    pool = _Pool(refused, {"outcome": "failed"})
    assert asyncio.run(batcher(pool).ingest('{"a": "\\u0000"}', "c")) == {"outcome": "failed"}
    assert pool.calls == 2
    query, params = pool.queries[1]
    assert "ingest_raw" in query
    assert params == ("meta", b'{"a": "\\u0000"}', None, "jsonb refused the body as received (22P05)", "c")
