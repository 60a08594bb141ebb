"""Does verify_otp's time tell who is registered or blocked? (issue 11, finding 8)

Times `verify_otp` for three phones that have no live code, an unknown one, a registered one
and a blocked one, through SQL as the relay's login on a durable cluster, the calls interleaved
in a random order so that drift hits all three alike. For each pair (registered and blocked,
each against unknown) it reports the difference of the medians and a Mann-Whitney z-score: a
|z| above about 3 means the two can be told apart by timing alone.

With --before REV, the same is measured for the verify_otp of that git revision, installed
next to the current one as verify_otp_before, so both are compared in one run on one cluster.

    .venv/bin/python bench/otp_timing.py --tries 400 --before c30d2c9
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from kit.durable import BENCH, PHONE_NUMBER_ID, add_login, durable_cluster

PHONES = {"unknown": "+447700900401", "registered": "+447700900402", "blocked": "+447700900403"}
CODE = "123456"


def mann_whitney_z(a: list[float], b: list[float]) -> float:
    """z of the Mann-Whitney U statistic (normal approximation, mid-ranks for ties); positive when a is slower."""
    pooled = sorted([(x, 0) for x in a] + [(x, 1) for x in b])
    ranks = [0.0] * len(pooled)
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        i = j + 1
    rank_a = sum(r for r, (_, group) in zip(ranks, pooled, strict=True) if group == 0)
    n1, n2 = len(a), len(b)
    u = rank_a - n1 * (n1 + 1) / 2
    return (u - n1 * n2 / 2) / math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)


def install_before(conninfo: str, revision: str) -> None:
    """verify_otp as it was at revision (or in that deploy script), renamed verify_otp_before and granted to the
    relay like the current one."""
    if Path(revision).is_file():
        old = Path(revision).read_text()
    else:
        old = subprocess.run(["git", "show", f"{revision}:deploy/otp/verify_otp.sql"], cwd=BENCH.parent,
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    script = old.replace("whatsapp_handler.verify_otp(", "whatsapp_handler.verify_otp_before(")
    statements = script.replace("BEGIN;", "").replace("COMMIT;", "")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(statements)


def prepare(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        channel = conn.execute(
            "SELECT whatsapp_handler.add_channel('meta', %s, '+15550001111', 'Bench')", (PHONE_NUMBER_ID,)
        ).fetchone()[0]
        conn.execute("UPDATE whatsapp_handler.settings SET value = '[\"44\"]' WHERE key = 'otp.country_codes'")
        for name in ("registered", "blocked"):
            conn.execute("SELECT whatsapp_handler.register_user(%s, %s)", (PHONES[name], channel))
        conn.execute(
            "SELECT whatsapp_handler.block_user(id, 'bench') FROM whatsapp_handler.users WHERE phone = %s",
            (PHONES["blocked"],),
        )


def measure(relay_url: str, function: str, tries: int, seed: int) -> tuple[dict[str, list[float]], dict[str, set]]:
    """Microseconds per call, by phone; and what each phone was answered (outcome or SQLSTATE)."""
    order = [name for name in PHONES for _ in range(tries)]
    random.Random(seed).shuffle(order)  # noqa: S311 (an order, not a secret)
    times: dict[str, list[float]] = {name: [] for name in PHONES}
    answers: dict[str, set] = {name: set() for name in PHONES}
    statement = f"SELECT whatsapp_handler.{function}(%s, %s)"
    with psycopg.connect(relay_url, autocommit=True) as conn:
        for name in list(PHONES) * 20:  # warm-up: plans prepared, caches filled
            with contextlib.suppress(psycopg.Error):
                conn.execute(statement, (PHONES[name], CODE), prepare=True).fetchone()
        for name in order:
            started = time.perf_counter_ns()
            try:
                answer = conn.execute(statement, (PHONES[name], CODE), prepare=True).fetchone()[0]
            except psycopg.Error as exc:
                answer = exc.sqlstate
            times[name].append((time.perf_counter_ns() - started) / 1000)
            answers[name].add(answer)
    return times, answers


def report(label: str, times: dict[str, list[float]], answers: dict[str, set]) -> dict:
    medians = {name: statistics.median(values) for name, values in times.items()}
    result = {"function": label, "tries": len(times["unknown"]), "median_us": {}, "answers": {}, "versus_unknown": {}}
    for name in PHONES:
        result["median_us"][name] = round(medians[name], 1)
        result["answers"][name] = sorted(answers[name])
    for name in ("registered", "blocked"):
        result["versus_unknown"][name] = {
            "median_difference_us": round(medians[name] - medians["unknown"], 1),
            "z": round(mann_whitney_z(times[name], times["unknown"]), 2),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tries", type=int, default=400, help="calls per phone (default 400)")
    parser.add_argument(
        "--before",
        metavar="REV",
        help="also time verify_otp as it was at this git revision (or in this copy of deploy/otp/verify_otp.sql)",
    )
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="wh-otp-timing-"))
    pg = durable_cluster(home)
    try:
        prepare(pg.url("bench"))
        relay_url = add_login(pg, "otp_timing_relay", "otp-timing-password", "whatsapp_handler_relay")
        functions = [("verify_otp", "verify_otp")]
        if args.before:
            install_before(pg.url("bench"), args.before)
            functions.append((f"verify_otp at {args.before}", "verify_otp_before"))
        for label, function in functions:
            print(json.dumps(report(label, *measure(relay_url, function, args.tries, args.seed))), flush=True)
    finally:
        pg.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
