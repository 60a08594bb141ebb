"""`whatsapp-handler smoke` as pytest tests, for a pipeline: the same checks (app/smoke.py), one test
each, against the service at SMOKE_URL. Skipped when SMOKE_URL is unset, so that the normal suite
(bin/test) collects them and moves on.

    SMOKE_URL=https://hooks.example.com SMOKE_DATABASE_URL=postgresql://... .venv/bin/pytest -n 0 tests/smoke

SMOKE_DATABASE_URL (else WHATSAPP_HANDLER_DATABASE_URL) adds the sqitch registry check,
SMOKE_WORKER_METRICS_URL the worker's /metrics; SMOKE_TIMEOUT and SMOKE_MAX_LATENCY are seconds.
Safe against production, as the command is (docs/smoke.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from app import smoke

URL = os.environ.get("SMOKE_URL", "")

pytestmark = pytest.mark.skipif(not URL, reason="SMOKE_URL is not set (the deployed service to smoke)")


@pytest.fixture(scope="module")
def target() -> Iterator[smoke.Target]:
    """One target for the module: once the service has not answered, later tests fail at once."""
    env = os.environ.get
    with smoke.target(
        URL,
        timeout=float(env("SMOKE_TIMEOUT") or smoke.DEFAULT_TIMEOUT),
        max_latency=float(env("SMOKE_MAX_LATENCY") or smoke.DEFAULT_MAX_LATENCY),
        database_url=env("SMOKE_DATABASE_URL") or env("WHATSAPP_HANDLER_DATABASE_URL"),
        worker_metrics_url=env("SMOKE_WORKER_METRICS_URL"),
    ) as t:
        yield t


# In smoke.CHECKS' order, which pytest keeps: /metrics is read after the refusals.
@pytest.mark.parametrize("check", smoke.CHECKS, ids=[check.name for check in smoke.CHECKS])
def test_deployed(target: smoke.Target, check: smoke.Check) -> None:
    results = check.run(target)
    for result in results:
        print(result.line())
    failed = [result.line() for result in results if result.ok is False]
    assert not failed, "\n".join(failed)
    if all(result.ok is None for result in results):
        pytest.skip("; ".join(result.detail for result in results))
