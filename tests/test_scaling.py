"""Relays and workers are stateless: two relay processes and two delivery workers on one
database. Every webhook is posted to both relays at once (as a provider's retries and Meta's
copies per subscribed app do): each is stored once and answered once, and every reply it
causes reaches the provider exactly once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from kit import payloads as p
from tests.relay import count, post_meta

# double and workers are fixtures.
from tests.test_worker import channels_config, double, outbound_rows, queue_depth, wait_for, workers  # noqa: F401

USERS = 30
IDEMPOTENCY_HEADER = "Idempotency-Key"


def test_two_relays_and_two_workers_store_once_and_send_once(db, relay, double, workers) -> None:  # noqa: F811
    relays = [relay(), relay()]
    double.always(("slow", 0.01))
    config = channels_config(double, idempotency_header=IDEMPOTENCY_HEADER)
    first, second = workers.start(channels=config), workers.start(channels=config)

    def post(n: int, base: str) -> int:
        return post_meta(base, p.meta_text(f"4477009008{n:02d}", f"wamid.scale{n}")).status_code

    jobs = [(n, base) for n in range(USERS) for base in relays]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda job: post(*job), jobs))
    assert answers == [200] * len(jobs)

    # Stored once: one inbound message and one user per provider message, whichever relay won.
    inbound = db.execute(
        "SELECT count(*) AS n, count(DISTINCT provider_message_id) AS distinct_ids FROM whatsapp_handler.messages "
        "WHERE direction = 'inbound'"
    ).fetchone()
    assert (inbound["n"], inbound["distinct_ids"]) == (USERS, USERS)
    assert count(db, "users") == USERS

    # Sent once: every outbound message reached the provider once, across both workers.
    wait_for(lambda: queue_depth(db) == 0 and all(r["provider_message_id"] for r in outbound_rows(db)),
             "every reply delivered", timeout=45)  # fmt: skip
    rows = outbound_rows(db)
    assert len(rows) >= 2 * USERS  # a welcome and the terms per new user
    delivered = double.deliveries()
    keys = [r.headers[IDEMPOTENCY_HEADER] for r in delivered]
    assert len(keys) == len(set(keys)) == len(rows)
    assert not [r for r in double.received if r.duplicate]
    assert first.poll() is None and second.poll() is None
    # Both relays answered from the same database: each can see what the other stored.
    for base in relays:
        assert httpx.get(f"{base}/ready", timeout=10).status_code == 200
