"""Fault suite (issue 6): signed Meta webhooks flow at a steady rate, and OTP codes are
requested, while (a) the relay is killed with SIGKILL and restarted on its port, (b)
PostgreSQL crashes (pg_ctl stop -m immediate, then start: crash recovery, as after a power
cut) and (c) the worker is SIGKILLed with sends in flight (the double answers slowly then)
and restarted. The load retries, as a provider does, whatever got no 2xx. Then it checks:

- every webhook that got a 2xx is stored, and no provider message id is stored twice;
- every queued outbound message (replies to first contacts, OTP codes) was delivered (per
  the double's record) or is in outbound_dlq, and none is still waiting;
- none was delivered twice; everything recorded as sent was delivered;
- the channel with an idempotency header parks nothing in doubt (its sends are repeated
  under their key and the double answers the first result).

Loopback only, on a throwaway durable cluster; bounded by --duration per phase and
--deadline overall. Prints counts per phase, then one JSON line; exits 1 when an invariant
fails, 2 when the deadline passes first.

    .venv/bin/python bench/fault_suite.py [--duration 20] [--rate 50] [--deadline 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from kit import services
from kit.durable import PHONE_NUMBER_ID, start_database
from kit.load import Load, Webhook, client_session
from kit.provider_double import answer, deliveries

KEYED_REF, KEYED_PHONE = PHONE_NUMBER_ID, "+15550001111"  # has bench/known_users.sql's users
PLAIN_REF, PLAIN_PHONE = "1234567891", "+15550001112"
KNOWN_USERS = 100_000
# Short enough that claims of a killed worker come back within a phase; longer than the provider timeout.
WORKER_SETTINGS = {"provider_timeout": "4", "worker_visibility_timeout": "6", "worker_backoff_base": "0.2",
                   "worker_backoff_max": "2", "breaker_cooldown": "2"}  # fmt: skip
SLOW_SEND = 1.5  # seconds per send during fault (c): sends are in flight when the worker dies

OUTBOUND = """
SELECT c.provider_ref, u.phone, m.body, m.provider_message_id IS NOT NULL, m.id
FROM whatsapp_handler.messages m
JOIN whatsapp_handler.channels c ON c.id = m.channel_id
JOIN whatsapp_handler.users u ON u.id = m.user_id
WHERE m.direction = 'outbound'
"""
OTPS = """
SELECT c.provider_ref, u.phone, o.id
FROM whatsapp_handler.otp_challenges o
JOIN whatsapp_handler.channels c ON c.id = o.channel_id
JOIN whatsapp_handler.users u ON u.id = o.user_id
"""
DEAD = """
SELECT coalesce('m' || (message -> 'message' ->> 'message_id'), 'o' || (message -> 'message' ->> 'challenge_id')),
       message ->> 'reason'
FROM pgmq.q_outbound_dlq
"""


@dataclass
class Phase:
    name: str
    first: int = 0  # index of its first webhook
    last: int = 0
    notes: dict[str, object] = field(default_factory=dict)


def violations(counts: dict) -> list[str]:
    """The invariants, on the counts `collect` makes; each broken one named with its figure."""
    w, o = counts["webhooks"], counts["outbound"]
    found = []
    checks = [
        (w["acknowledged_not_stored"], "webhooks acknowledged (2xx) but not stored"),
        (w["stored_more_than_once"], "provider message ids stored more than once"),
        (o["lost"], "outbound messages neither delivered nor dead-lettered"),
        (o["still_queued"], "outbound messages still queued after the drain"),
        (o["duplicates_delivered"], "outbound messages delivered more than once"),
        (o["sent_not_delivered"], "outbound messages recorded as sent that the double never accepted"),
        (o["delivered_unknown"], "deliveries that match no queued message"),
        (o["ambiguous"], "queued messages the suite cannot tell apart (same channel, recipient and text)"),
        (o["in_doubt_with_idempotency_key"], "in-doubt dead letters on the channel with an idempotency header"),
    ]
    found += [f"{what}: {n}" for n, what in checks if n]
    for phase in counts["phases"]:
        if phase["acknowledged"] == 0:
            found.append(f"phase {phase['name']}: no webhook acknowledged")
    if counts["faults"].get("worker_sends_in_flight_at_kill", 1) == 0:
        found.append("fault (c) killed the worker with no send in flight: the fault was not exercised")
    return found


def webhook_counts(webhooks: list[Webhook], stored: Counter) -> dict[str, int]:
    acknowledged = {w.wamid for w in webhooks if w.acknowledged}
    return {
        "sent": len(webhooks),
        "acknowledged": len(acknowledged),
        "refused_or_failed": len(webhooks) - len(acknowledged),
        "retried": sum(w.attempts > 1 for w in webhooks),
        "stored": sum(1 for wamid in stored if wamid.startswith("wamid.fault.")),
        "acknowledged_not_stored": len(acknowledged - set(stored)),
        "stored_more_than_once": sum(n > 1 for n in stored.values()),
        "stored_without_acknowledgement": sum(1 for wamid in stored if wamid not in acknowledged),
    }


def outbound_counts(queued: dict[str, tuple[str, bool]], dead: dict[str, str], still_queued: int,
                    accepted: list[dict], ambiguous: int) -> dict[str, object]:  # fmt: skip
    """queued: content key -> (queue id, recorded as sent); dead: queue id -> reason;
    accepted: the double's record (2xx answers, `repeat` for an idempotent repeat)."""
    delivered = Counter(a["key"] for a in accepted if not a["repeat"])
    in_doubt = {key for key, (qid, _) in queued.items() if dead.get(qid) == "in_doubt"}
    return {
        "queued": len(queued),
        "replies": sum(1 for qid, _ in queued.values() if qid.startswith("m")),
        "otp_codes": sum(1 for qid, _ in queued.values() if qid.startswith("o")),
        "delivered": sum(1 for key in queued if key in delivered),
        "recorded_sent": sum(1 for _, sent in queued.values() if sent),
        "dead_lettered": dict(Counter(dead.values())),
        "delivered_and_dead_lettered_in_doubt": len(in_doubt & set(delivered)),
        "idempotent_repeats": sum(a["repeat"] for a in accepted),
        "still_queued": still_queued,
        "lost": sum(1 for key, (qid, _) in queued.items() if key not in delivered and qid not in dead),
        "duplicates_delivered": sum(n - 1 for n in delivered.values() if n > 1),
        "sent_not_delivered": sum(1 for key, (_, sent) in queued.items() if sent and key not in delivered),
        "delivered_unknown": sum(1 for key in delivered if key not in queued),
        "ambiguous": ambiguous,
        "in_doubt_with_idempotency_key": sum(1 for key in in_doubt if key.startswith(KEYED_REF + "|")),
    }


def queued_messages(conn: psycopg.Connection) -> tuple[dict[str, tuple[str, bool]], int]:
    """Every outbound message and OTP code the database queued, by the key the double records."""
    queued: dict[str, tuple[str, bool]] = {}
    ambiguous = 0
    rows = [(ref, phone, body, sent, f"m{mid}") for ref, phone, body, sent, mid in conn.execute(OUTBOUND)]
    rows += [(ref, phone, "template:otp_code", False, f"o{oid}") for ref, phone, oid in conn.execute(OTPS)]
    for ref, phone, body, sent, qid in rows:
        key = f"{ref}|{phone.lstrip('+')}|{body}"
        ambiguous += key in queued
        queued[key] = (qid, sent)
    return queued, ambiguous


class Suite:
    def __init__(self, home: Path, args: argparse.Namespace) -> None:
        self.home, self.args = home, args
        self.log = home.parent / home.name
        self.phases: list[Phase] = []
        self.faults: dict[str, object] = {}
        self.otp_requested = 0
        self.procs: dict[str, subprocess.Popen] = {}

    # Setting up -----------------------------------------------------------------------------
    def start(self) -> None:
        self.pg, self.relay_url, self.worker_url = start_database(self.home, "fault")
        with psycopg.connect(self.pg.url("bench"), autocommit=True) as conn:
            conn.execute("SELECT whatsapp_handler.add_channel('meta', %s, %s, 'Plain')", (PLAIN_REF, PLAIN_PHONE))
            self.channel_ids = dict(conn.execute("SELECT provider_ref, id FROM whatsapp_handler.channels"))
        self.procs["double"], self.double_port = services.start_double(Path(f"{self.log}-double.log"))
        self.channels = [
            services.sending_channel(KEYED_REF, KEYED_PHONE, self.double_port, idempotency_header="Idempotency-Key"),
            services.sending_channel(PLAIN_REF, PLAIN_PHONE, self.double_port),
        ]
        self.start_worker()
        self.procs["relay"], self.port = services.start_relay(
            self.relay_url, self.channels, Path(f"{self.log}-relay.log")
        )

    def start_worker(self) -> None:
        log = Path(f"{self.log}-worker.log")
        self.procs["worker"] = services.start_worker(self.worker_url, self.channels, 64, log, **WORKER_SETTINGS)

    def stop(self) -> None:
        for proc in self.procs.values():
            services.stop(proc)
        self.pg.stop("immediate")

    # The faults ------------------------------------------------------------------------------
    async def kill_relay(self) -> None:
        services.stop(self.procs["relay"], signal.SIGKILL)
        down = time.monotonic()
        relay_log = Path(f"{self.log}-relay.log")
        self.procs["relay"], _ = await asyncio.to_thread(
            services.start_relay, self.relay_url, self.channels, relay_log, 1, self.port
        )
        self.faults["relay_down_seconds"] = round(time.monotonic() - down, 2)

    async def crash_database(self) -> None:
        """A crash, not a shutdown: immediate mode skips the checkpoint, so the start replays WAL."""
        down = time.monotonic()
        await asyncio.to_thread(self.pg.stop, "immediate")
        await asyncio.sleep(1)  # long enough for the relay and the worker to notice
        await asyncio.to_thread(self.pg.start)
        self.faults["database_down_seconds"] = round(time.monotonic() - down, 2)
        recovered = "database system was not properly shut down" in self.pg.log_file.read_text(errors="replace")
        self.faults["database_crash_recovery_logged"] = recovered

    async def kill_worker(self) -> None:
        """Slow sends, so that the worker dies holding some; restart it at once: its claims come
        back after the visibility timeout, in doubt."""
        await asyncio.to_thread(answer, self.double_port, "slow", SLOW_SEND)
        # Most sends under way are slow ones after one slow send's time; then kill at the next count.
        await asyncio.sleep(SLOW_SEND * 0.8)
        in_flight, deadline = 0, time.monotonic() + 10
        while in_flight == 0 and time.monotonic() < deadline:
            in_flight = await asyncio.to_thread(self.in_flight)
            if not in_flight:
                await asyncio.sleep(0.1)
        services.stop(self.procs["worker"], signal.SIGKILL)
        self.faults["worker_sends_in_flight_at_kill"] = in_flight
        self.start_worker()
        await asyncio.sleep(SLOW_SEND)
        await asyncio.to_thread(answer, self.double_port, "ok")

    def in_flight(self) -> int:
        with psycopg.connect(self.pg.url("bench"), autocommit=True) as conn:
            query = "SELECT count(*) FROM pgmq.q_outbound WHERE (headers ->> 'in_flight')::boolean"
            return conn.execute(query).fetchone()[0]

    # Running ---------------------------------------------------------------------------------
    def webhook(self, i: int) -> Webhook:
        """One in --new-every webhooks is a first contact (two replies queued), alternately on the
        channel with an idempotency header and the one without; the rest come from known users."""
        if i % self.args.new_every == 0:
            ref = KEYED_REF if (i // self.args.new_every) % 2 == 0 else PLAIN_REF
            return Webhook(f"wamid.fault.{i}", str(447800000000 + i), ref)
        return Webhook(f"wamid.fault.{i}", str(447700000000 + i % KNOWN_USERS), KEYED_REF)

    async def request_otps(self, stopping: asyncio.Event) -> None:
        """OTP codes through the SQL API at --otp-rate, alternating channels, through every fault
        (a failed call is simply not counted: the check counts the challenges stored)."""
        n = 0
        while not stopping.is_set():
            ref = KEYED_REF if n % 2 == 0 else PLAIN_REF
            try:
                await asyncio.to_thread(self._request_otp, f"+4479{n:08d}", self.channel_ids[ref])
                self.otp_requested += 1
            except psycopg.Error:
                pass
            n += 1
            await asyncio.sleep(1 / self.args.otp_rate)

    def _request_otp(self, phone: str, channel_id: int) -> None:
        with psycopg.connect(self.pg.url("bench"), autocommit=True, connect_timeout=2) as conn:
            conn.execute("SELECT whatsapp_handler.request_otp(%s, %s)", (phone, channel_id))

    async def phase(self, load: Load, session, name: str, fault: Callable[[], Awaitable[None]]) -> None:
        phase, started = Phase(name, first=len(load.webhooks)), time.monotonic()
        running = asyncio.create_task(load.run(self.args.duration, self.webhook, session))
        await asyncio.sleep(self.args.duration / 3)
        await fault()
        await running
        phase.last = len(load.webhooks)
        phase.notes["seconds"] = round(time.monotonic() - started, 1)
        self.phases.append(phase)

    async def run(self) -> Load:
        load = Load(lambda: self.port, self.args.rate, retry_window=self.args.retry_window)
        stopping = asyncio.Event()
        otps = asyncio.create_task(self.request_otps(stopping))
        async with client_session() as session:
            await self.phase(load, session, "a: relay SIGKILL and restart", self.kill_relay)
            await self.phase(load, session, "b: PostgreSQL crash (stop -m immediate) and start", self.crash_database)
            await self.phase(load, session, "c: worker SIGKILL with sends in flight, restart", self.kill_worker)
        stopping.set()
        await otps
        await asyncio.to_thread(answer, self.double_port, "ok")
        await self.drain()
        return load

    async def drain(self) -> None:
        """Until the outbound queue is empty, or the drain's deadline (claims of the killed worker
        take the visibility timeout to come back; retries wait out their backoff)."""
        started = time.monotonic()
        while time.monotonic() < started + self.args.drain and await asyncio.to_thread(self.queue_depth):
            await asyncio.sleep(0.5)
        self.faults["drain_seconds"] = round(time.monotonic() - started, 1)

    def queue_depth(self) -> int:
        with psycopg.connect(self.pg.url("bench"), autocommit=True) as conn:
            return conn.execute("SELECT count(*) FROM pgmq.q_outbound").fetchone()[0]

    # Checking --------------------------------------------------------------------------------
    def errors_logged(self, name: str) -> int:
        """Lines at ERROR level (or tracebacks) in a service's log, restarts included: for the reader."""
        text = Path(f"{self.log}-{name}.log").read_text(errors="replace")
        return sum("ERROR" in line or line.startswith("Traceback") for line in text.splitlines())

    def collect(self, load: Load) -> dict:
        with psycopg.connect(self.pg.url("bench"), autocommit=True) as conn:
            stored = Counter(dict(conn.execute(
                "SELECT provider_message_id, count(*) FROM whatsapp_handler.messages "
                "WHERE direction = 'inbound' AND provider_message_id LIKE 'wamid.fault.%' GROUP BY 1"
            )))  # fmt: skip
            queued, ambiguous = queued_messages(conn)
            dead = dict(conn.execute(DEAD))
            still = conn.execute("SELECT count(*) FROM pgmq.q_outbound").fetchone()[0]
            inbound_dlq = conn.execute("SELECT count(*) FROM pgmq.q_inbound_dlq").fetchone()[0]
        accepted = deliveries(self.double_port)
        phases = []
        for phase in self.phases:
            part = load.webhooks[phase.first : phase.last]
            counts = webhook_counts(part, Counter({w.wamid: stored[w.wamid] for w in part if w.wamid in stored}))
            phases.append({"name": phase.name} | phase.notes | counts)
        logged = {name: self.errors_logged(name) for name in ("relay", "worker")}
        return {
            "phases": phases,
            "faults": self.faults | {"error_lines_logged": logged},
            "webhooks": webhook_counts(load.webhooks, stored) | {"inbound_dead_letters": inbound_dlq},
            "outbound": outbound_counts(queued, dead, still, accepted, ambiguous)
            | {"otp_requests_returned": self.otp_requested},
        }


def report(counts: dict, problems: list[str]) -> None:
    for phase in counts["phases"]:
        print(f"{phase['name']}: sent {phase['sent']}, acknowledged {phase['acknowledged']}, refused or failed "
              f"{phase['refused_or_failed']}, retried {phase['retried']}, stored {phase['stored']}, "
              f"stored twice {phase['stored_more_than_once']} ({phase['seconds']} s)")  # fmt: skip
    print("faults:", json.dumps(counts["faults"]))
    print("webhooks:", json.dumps(counts["webhooks"]))
    print("outbound:", json.dumps(counts["outbound"]))
    for problem in problems:
        print("INVARIANT FAILED:", problem)
    print(json.dumps({"ok": not problems, "violations": problems} | counts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20, help="seconds of load per phase")
    parser.add_argument("--rate", type=float, default=50, help="webhooks per second")
    parser.add_argument("--new-every", type=int, default=5, help="one webhook in N is a first contact")
    parser.add_argument("--otp-rate", type=float, default=2, help="OTP requests per second")
    parser.add_argument("--retry-window", type=float, default=30, help="how long a webhook is retried")
    parser.add_argument("--drain", type=float, default=60, help="seconds to wait for the outbound queue to empty")
    parser.add_argument("--deadline", type=float, default=300, help="seconds for the whole suite")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="wh-faults-"))
    suite = Suite(home, args)
    started = time.monotonic()
    try:
        suite.start()
        remaining = args.deadline - (time.monotonic() - started)
        load = asyncio.run(asyncio.wait_for(suite.run(), remaining))
        counts = suite.collect(load)
    except TimeoutError:
        print(json.dumps({"ok": False, "violations": [f"deadline of {args.deadline} s passed"]}))
        sys.exit(2)
    finally:
        if hasattr(suite, "pg"):
            suite.stop()
        shutil.rmtree(home, ignore_errors=True)
    problems = violations(counts)
    report(counts, problems)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
