"""bench/soak.py: its growth rule on crafted series, and a short run that samples every interval."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.soak import Sample, growth, slope

ROOT = Path(__file__).resolve().parent.parent


def samples(rss: list[float], interval: int = 10) -> list[Sample]:
    return [Sample(t=(i + 1) * interval, answered=1, p50_ms=1, p99_ms=1, max_ms=1, errors=0, relay_rss_mb=mb,
                   relay_pss_mb=mb, worker_rss_mb=mb, worker_pss_mb=mb, pg_pss_mb=mb, pg_anon_mb=mb, outbound=0,
                   outbox=0, dead_letters=0, load1=0) for i, mb in enumerate(rss)]  # fmt: skip


def test_slope_of_a_line() -> None:
    assert slope([(0, 1.0), (10, 2.0), (20, 3.0)]) == 0.1
    assert slope([(5, 1.0)]) == 0.0


def test_a_steady_leak_is_growing() -> None:
    leaking = [100 + 0.5 * i for i in range(60)]  # 30 MB over ten minutes
    assert growth(samples(leaking), "relay_rss_mb", 600)["verdict"] == "growing"


def test_warm_up_then_flat_with_noise_is_bounded() -> None:
    # The first minute fills caches (excluded); then ±2 MB of noise around a plateau.
    warm = [60 + 7 * i for i in range(6)] + [100 + (2 if i % 3 == 0 else -1) for i in range(54)]
    verdict = growth(samples(warm), "relay_rss_mb", 600)
    assert verdict["verdict"] == "bounded", verdict
    assert verdict["second_minute_mb"] < 101.5


def test_short_run_samples_every_interval() -> None:
    cmd = [sys.executable, "bench/soak.py", "--duration", "10", "--interval", "1", "--rate", "50"]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["samples"] == 10
    assert summary["webhooks"] == 500
    assert summary["acknowledged"] == 500
    assert summary["verdict"] in ("bounded", "growing")
    assert {g["series"] for g in summary["growth"]} == {"relay_rss_mb", "worker_rss_mb", "pg_anon_mb"}
    rows = [line for line in run.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 10
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        answered, relay_rss, worker_rss, pg_pss = int(cells[1]), float(cells[6]), float(cells[8]), float(cells[10])
        assert answered > 0 and relay_rss > 0 and worker_rss > 0 and pg_pss > 0, row
