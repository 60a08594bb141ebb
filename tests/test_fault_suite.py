"""bench/fault_suite.py: a short run of the three faults keeps its invariants, and its checker
catches a lost or duplicated webhook and a lost or duplicated delivery."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bench.fault_suite import KEYED_REF, PLAIN_REF, outbound_counts, violations, webhook_counts
from kit.load import Webhook

ROOT = Path(__file__).resolve().parent.parent


def acked(wamid: str, status: int | None = 200) -> Webhook:
    return Webhook(wamid, "447800000001", KEYED_REF, status=status, attempts=1)


def counts(webhooks: dict, outbound: dict, in_flight: int = 3) -> dict:
    return {"phases": [{"name": "a", "acknowledged": 1}], "faults": {"worker_sends_in_flight_at_kill": in_flight},
            "webhooks": webhooks, "outbound": outbound}  # fmt: skip


def delivery(key: str, repeat: bool = False) -> dict:
    return {"key": key, "repeat": repeat}


REPLY = f"{KEYED_REF}|447800000001|Welcome"
PLAIN_REPLY = f"{PLAIN_REF}|447800000002|Welcome"
CLEAN_WEBHOOKS = webhook_counts([acked("wamid.fault.1"), acked("wamid.fault.2", None)], Counter({"wamid.fault.1": 1}))
CLEAN_OUTBOUND = outbound_counts({REPLY: ("m1", True)}, {}, 0, [delivery(REPLY)], 0)


def test_clean_counts_pass() -> None:
    assert violations(counts(CLEAN_WEBHOOKS, CLEAN_OUTBOUND)) == []
    assert CLEAN_WEBHOOKS["refused_or_failed"] == 1


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (Counter({"wamid.fault.1": 2}), "stored more than once: 1"),
        (Counter(), "acknowledged (2xx) but not stored: 1"),
    ],
    ids=["planted duplicate", "lost webhook"],
)
def test_checker_catches_webhooks(stored: Counter, expected: str) -> None:
    webhooks = webhook_counts([acked("wamid.fault.1")], stored)
    assert any(expected in v for v in violations(counts(webhooks, CLEAN_OUTBOUND)))


@pytest.mark.parametrize(
    ("queued", "dead", "still", "accepted", "expected"),
    [
        ({REPLY: ("m1", True)}, {}, 0, [delivery(REPLY), delivery(REPLY)], "delivered more than once: 1"),
        ({REPLY: ("m1", False)}, {}, 0, [], "neither delivered nor dead-lettered: 1"),
        ({REPLY: ("m1", True)}, {}, 0, [], "recorded as sent that the double never accepted: 1"),
        ({REPLY: ("m1", False)}, {"m1": "in_doubt"}, 0, [], "in-doubt dead letters on the channel with an idempotency"),
        ({REPLY: ("m1", True)}, {}, 1, [delivery(REPLY)], "still queued after the drain: 1"),
        ({REPLY: ("m1", True)}, {}, 0, [delivery(REPLY), delivery(PLAIN_REPLY)], "match no queued message: 1"),
    ],
    ids=["duplicate delivery", "lost message", "sent not delivered", "keyed in doubt", "still queued", "unknown"],
)
def test_checker_catches_outbound(queued: dict, dead: dict, still: int, accepted: list, expected: str) -> None:
    outbound = outbound_counts(queued, dead, still, accepted, 0)
    assert any(expected in v for v in violations(counts(CLEAN_WEBHOOKS, outbound)))


def test_idempotent_repeats_and_parked_in_doubt_are_not_violations() -> None:
    queued = {REPLY: ("m1", True), PLAIN_REPLY: ("m2", False)}
    accepted = [delivery(REPLY), delivery(REPLY, repeat=True), delivery(PLAIN_REPLY)]
    outbound = outbound_counts(queued, {"m2": "in_doubt"}, 0, accepted, 0)
    assert violations(counts(CLEAN_WEBHOOKS, outbound)) == []
    assert outbound["idempotent_repeats"] == 1
    assert outbound["delivered_and_dead_lettered_in_doubt"] == 1


def test_a_fault_that_hit_nothing_fails_the_suite() -> None:
    assert any("not exercised" in v for v in violations(counts(CLEAN_WEBHOOKS, CLEAN_OUTBOUND, in_flight=0)))


def test_short_run_keeps_every_invariant() -> None:
    cmd = [sys.executable, "bench/fault_suite.py", "--duration", "3", "--rate", "30", "--drain", "30",
           "--deadline", "150"]  # fmt: skip
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=200)
    assert run.stdout.strip(), run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert result["ok"] is True and result["violations"] == []
    webhooks, outbound, faults = result["webhooks"], result["outbound"], result["faults"]
    assert webhooks["sent"] == 270
    assert webhooks["acknowledged"] == webhooks["stored"] - webhooks["stored_without_acknowledgement"]
    assert webhooks["stored_more_than_once"] == 0
    # Each fault interrupted traffic that was then retried, and (c) caught sends in flight.
    phases = {p["name"][0]: p for p in result["phases"]}
    assert phases["a"]["retried"] > 0
    assert phases["b"]["retried"] > 0
    assert faults["database_crash_recovery_logged"] is True
    assert faults["worker_sends_in_flight_at_kill"] > 0
    assert outbound["queued"] > 0 and outbound["lost"] == 0
    assert outbound["replies"] > 0 and outbound["otp_codes"] > 0
    assert outbound["duplicates_delivered"] == 0
