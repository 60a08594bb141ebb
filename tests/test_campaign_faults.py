"""Issue 15's crash test: a campaign of 2,000 recipients runs through two real workers against the provider
double while one worker is SIGKILLed with sends in flight (and another started) and PostgreSQL crashes
(pg_ctl stop -m immediate, then start: crash recovery). Once the campaign is completed and the queue empty,
every eligible recipient was delivered exactly one message (counted per recipient from the double's record),
every other one is skipped with its reason, campaign_results adds up, and no recipient is left pending or
queued without an accepted message.

The channel has an idempotency header, as the fault suite's keyed channel: a send the killed worker had in
flight comes back in doubt after the visibility timeout and is sent again under its key, and the double
answers the first result without delivering twice (docs/worker.md). So nothing may be dead-lettered in doubt
here; the test counts such letters anyway and fails naming them.

The test crashes its database, so it runs on a cluster of its own: a copy of the session's cluster made by
pg_basebackup (the deployed template and the test logins in seconds; a sqitch deploy takes a minute on a
busy machine), with commits acknowledged only once their WAL is written (CRASH_SETTINGS)."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app import recipients
from app.cluster import LocalCluster
from kit import payloads as p
from kit.procfs import process_tree
from kit.provider_double import ProviderDouble
from kit.services import free_port
from tests.conftest import CRON_DB, TEMPLATE_DB
from tests.test_worker import Workers

DATABASE = "wh_campaign_faults"
ELIGIBLE = 1800
# Skipped when dispatched, by the send rules (a marketing template needs an opt-in not withdrawn).
OPTED_OUT, BLOCKED, NO_CONSENT = 40, 40, 40
# Skipped at upload (campaign_upload with skip_invalid): a phone already in the list, a bad row.
DUPLICATES, INVALID_NUMBERS, MISSING_VARIABLES = 40, 20, 20
PER_SECOND = 60  # the campaign's pace: about 30 s for the eligible ones
SLOW_SEND = 0.6  # seconds per answer while the kill is prepared, so that the killed worker holds sends
WORKER_SETTINGS = {"campaign_dispatch_interval": 0.2, "provider_timeout": 2.0, "worker_visibility_timeout": 4}
DEADLINE = 150.0  # seconds for the campaign to complete and the queue to empty (about 35 expected)
KILLED_TOKEN = "token-killed"
PENDING = "SELECT count(*) FROM whatsapp_handler.campaign_recipients WHERE campaign_id = %s AND state = 'pending'"


# An immediate stop kills PostgreSQL's processes, not the machine: what they wrote is in the kernel's cache
# either way, so fsync (which only a power cut would test) stays off, as on the session's cluster, and the
# start after the crash skips fsyncing the whole data directory. synchronous_commit stays on: off, a commit
# would be acknowledged before its WAL is written, and this very crash would lose acknowledged commits.
CRASH_SETTINGS = {"fsync": "off", "synchronous_commit": "on", "max_connections": "200", "shared_buffers": "128MB"}


@pytest.fixture
def own_cluster(cluster: LocalCluster) -> Iterator[LocalCluster]:
    """A durable copy of the session's cluster, this test's alone, with a database cloned from the template."""
    home = Path(tempfile.mkdtemp(prefix="wh-test-campaign-faults-"))
    pg = LocalCluster(home=home, port=free_port(), bindir=cluster.bindir, settings=CRASH_SETTINGS)
    try:
        pg._make_dirs()
        shutil.copy(cluster.password_file, pg.password_file)  # the copy's superuser is the session's
        if os.geteuid() == 0:
            shutil.chown(pg.password_file, "postgres", "postgres")
        source = psycopg.conninfo.make_conninfo(
            host="127.0.0.1", port=cluster.port, user="postgres", password=cluster.password()
        )
        # Without -R: a primary of its own, not a standby. configure() replaces the session's fast settings.
        pg._run(str(cluster.bindir / "pg_basebackup"), "-d", source, "-D", str(pg.data_dir), "-X", "stream",
                "-c", "fast")  # fmt: skip
        pg.configure(cron_database=CRON_DB)
        pg.start()
        pg.ensure_database(DATABASE, template=TEMPLATE_DB)
        yield pg
    finally:
        pg.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)


def phone(n: int) -> str:
    return f"+4477001{n:05d}"


def audience(seed: int = 15) -> tuple[str, list[tuple[str, str | None]], dict[str, list[str]]]:
    """The recipient list as a CSV (phone, name, train), each row's expected (state, reason) in order, and
    the phones of each kind of person. The kinds are shuffled through the list, so that skipped rows fall
    before, between and after the faults; each duplicate comes after the row it repeats."""
    rng = random.Random(seed)  # noqa: S311 (an order, not a secret)
    numbers = iter(range(1, 100_000))
    people = {kind: [phone(next(numbers)) for _ in range(n)]
              for kind, n in (("eligible", ELIGIBLE), ("opted_out", OPTED_OUT), ("blocked", BLOCKED),
                              ("no_consent", NO_CONSENT), ("missing_variables", MISSING_VARIABLES))}  # fmt: skip
    people["invalid_number"] = [f"07700{next(numbers):06d}" for _ in range(INVALID_NUMBERS)]
    rows = [(number, kind) for kind, phones in people.items() for number in phones]
    rng.shuffle(rows)
    for original in rng.sample(people["eligible"], DUPLICATES):
        first = next(i for i, (number, _) in enumerate(rows) if number == original)
        rows.insert(rng.randint(first + 1, len(rows)), (original, "duplicate"))
    lines, expected = ["phone,name,train"], []
    for i, (number, kind) in enumerate(rows, 1):
        lines.append(f"{number},{'' if kind == 'missing_variables' else f'P{i}'},IC {i}")
        expected.append(("queued", None) if kind == "eligible" else ("skipped", kind))
    return "\n".join(lines) + "\n", expected, people


def prepare(db: psycopg.Connection, channel: int, people: dict[str, list[str]]) -> None:
    """Consent as the business recorded it: the eligible and the ones who opted out or are blocked opted
    in (the latter then opted out, or were blocked); half of no_consent are known without consent, the
    rest the service has never seen."""
    record = ("SELECT count(whatsapp_handler._record_consent(r.user_id, %s, %s, 'api:signup')) FROM unnest(%s::text[]) "
              "AS t (phone), LATERAL whatsapp_handler.register_user(t.phone, %s) r")  # fmt: skip
    db.execute(record, (channel, True, people["eligible"] + people["opted_out"] + people["blocked"], channel))
    db.execute(record, (channel, False, people["opted_out"], channel))
    db.execute("SELECT count(whatsapp_handler.block_user(u.id, 'abuse')) FROM whatsapp_handler.users u "
               "WHERE u.phone = ANY (%s)", (people["blocked"],))  # fmt: skip
    db.execute("SELECT count(*) FROM unnest(%s::text[]) AS t (phone), "
               "LATERAL whatsapp_handler.register_user(t.phone, %s)",
               (people["no_consent"][: NO_CONSENT // 2], channel))  # fmt: skip


def query(url: str, sql: str, args: tuple = ()) -> Any:
    """One value, on a connection of its own; None while the database is away (the crash)."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
            return conn.execute(sql, args).fetchone()[0]
    except psycopg.OperationalError:
        return None


def until(check: Callable[[], Any], what: str, deadline: float) -> Any:
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def in_flight(double: ProviderDouble, token: str) -> list[str]:
    """The recipients of the requests the double is still answering that came with this access token."""
    return [r.body["to"] for r in list(double.received)
            if r.answer == 0 and r.headers.get("Authorization") == f"Bearer {token}"]  # fmt: skip


def kill(worker: subprocess.Popen, double: ProviderDouble) -> list[str]:
    """SIGKILL the `worker` command and its delivery process; once both are gone, the recipients of the
    sends it left unanswered at the double (it died holding them: they come back in doubt)."""
    tree = process_tree(worker.pid)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    worker.wait(10)
    until(lambda: not any(alive(pid) for pid in tree), "the killed worker's processes gone", time.monotonic() + 10)
    return in_flight(double, KILLED_TOKEN)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.timeout(280)
def test_a_campaign_survives_a_killed_worker_and_a_database_crash(own_cluster: LocalCluster, tmp_path: Path) -> None:
    pg, url = own_cluster, own_cluster.url(DATABASE)
    text, expected, people = audience()
    assert len(expected) == 2000
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as db:
        channel = db.execute("SELECT whatsapp_handler.add_channel('meta', %s, '+15550001111', 'Rail') AS id",
                             (p.META_PHONE_NUMBER_ID,)).fetchone()["id"]  # fmt: skip
        body = [{"type": "BODY", "text": "Hi {{1}}, train {{2}} has seats"}]
        db.execute("SELECT whatsapp_handler.template_upsert(%s, 'spring_sale', 'en_GB', 'marketing', 'approved', %s, "
                   "'HX0123')", (channel, Jsonb(body)))  # fmt: skip
        prepare(db, channel, people)
        request = {"name": "spring", "channel_id": channel, "per_second": PER_SECOND,
                   "template": {"name": "spring_sale", "language": "en_GB"}}  # fmt: skip
        campaign = db.execute("SELECT whatsapp_handler.campaign_create(%s) AS id", (Jsonb(request),)).fetchone()["id"]
        uploaded = db.execute("SELECT whatsapp_handler.campaign_upload(%s, %s, true) AS r",
                              (campaign, Jsonb(recipients.from_csv(text)))).fetchone()["r"]  # fmt: skip
        assert uploaded == {"rows": 2000, "accepted": 2000 - DUPLICATES - INVALID_NUMBERS - MISSING_VARIABLES,
                            "duplicates": DUPLICATES, "invalid": INVALID_NUMBERS + MISSING_VARIABLES,
                            "first_position": 1}  # fmt: skip

    double = ProviderDouble().start()
    workers = Workers(pg, DATABASE, double, tmp_path)

    def channels(token: str) -> list[dict]:
        return [{"provider": "meta", "ref": p.META_PHONE_NUMBER_ID, "phone": "+15550001111", "name": "Rail",
                 "secret": "meta-app-secret-faults", "access_token": token, "api_base_url": double.base_url("meta"),
                 "idempotency_header": "Idempotency-Key"}]  # fmt: skip

    def delivered() -> int:
        return len(double.deliveries())

    figures: dict[str, Any] = {}
    try:
        killed = workers.start(channels(KILLED_TOKEN), **WORKER_SETTINGS)
        workers.start(channels("token-second"), **WORKER_SETTINGS)
        started = time.monotonic()
        deadline = started + DEADLINE
        start = "SELECT (whatsapp_handler.campaign_control(%s, 'start')) ->> 'state'"
        assert query(url, start, (campaign,)) == "running"

        # (a) A quarter in: answers slow down, so that the worker dies holding sends; a new worker takes its place.
        until(lambda: delivered() >= ELIGIBLE // 4, "a quarter of the campaign delivered", deadline)
        double.always(("slow", SLOW_SEND))
        until(lambda: in_flight(double, KILLED_TOKEN), "sends in flight in the worker to be killed", deadline)
        time.sleep(SLOW_SEND / 2)
        held = kill(killed, double)
        figures |= {"delivered_at_kill": delivered(), "in_flight_at_kill": len(held),
                    "pending_at_kill": query(url, PENDING, (campaign,))}  # fmt: skip
        workers.start(channels("token-third"), **WORKER_SETTINGS)
        time.sleep(SLOW_SEND)
        double.always(("ok",))

        # (b) Past half: PostgreSQL crashes and starts again (crash recovery), under both workers.
        until(lambda: delivered() >= ELIGIBLE * 11 // 20, "more than half delivered", deadline)
        figures |= {"delivered_at_crash": delivered(), "pending_at_crash": query(url, PENDING, (campaign,))}
        down = time.monotonic()
        pg.stop("immediate")
        time.sleep(1)
        pg.start()
        figures["database_down_seconds"] = round(time.monotonic() - down, 1)
        assert "database system was not properly shut down" in pg.log_file.read_text(errors="replace")

        done = ("SELECT c.state = 'completed' AND NOT EXISTS (SELECT FROM pgmq.q_outbound) "
                "FROM whatsapp_handler.campaigns c WHERE c.id = %s")  # fmt: skip
        until(lambda: query(url, done, (campaign,)), "the campaign completed and the queue empty", deadline)
        figures["seconds"] = round(time.monotonic() - started, 1)
    finally:
        workers.stop_all()
        double.stop()

    # Both faults struck mid-campaign: recipients were still waiting for their dispatch.
    assert figures["pending_at_kill"] > 0 and figures["pending_at_crash"] > 0, figures
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as db:
        rows = db.execute(
            "SELECT r.position, r.phone, r.variables, r.state, r.reason, m.provider_message_id "
            "FROM whatsapp_handler.campaign_recipients r LEFT JOIN whatsapp_handler.messages m "
            "ON m.id = r.message_id AND m.created_at = r.message_created_at "
            "WHERE r.campaign_id = %s ORDER BY r.position", (campaign,)
        ).fetchall()  # fmt: skip
        results = db.execute("SELECT whatsapp_handler.campaign_results(%s) AS r", (campaign,)).fetchone()["r"]
        dead = db.execute("SELECT message ->> 'reason' AS reason, message -> 'message' ->> 'message_id' AS id "
                          "FROM pgmq.q_outbound_dlq").fetchall()  # fmt: skip

    # Nothing dead-lettered: on a channel with an idempotency header a send in doubt is sent again under its key.
    assert dead == [], f"dead letters ({Counter(d['reason'] for d in dead)}): {dead[:5]}"
    # Every row as expected, in order: the eligible queued and accepted by the provider (the double posts no
    # status webhooks, so none goes further), the others skipped with their reason; none pending.
    assert [(r["state"], r["reason"]) for r in rows] == expected
    unaccepted = [r["position"] for r in rows if r["state"] == "queued" and r["provider_message_id"] is None]
    assert unaccepted == [], f"recipients queued without an accepted message: {unaccepted[:10]}"

    # The double's record, per recipient: the eligible exactly once each, nobody else, and each with the
    # variables of their first row (a duplicate row sends nothing).
    sent = [(r.body["to"], [x["text"] for x in r.body["template"]["components"][0]["parameters"]])
            for r in double.deliveries()]  # fmt: skip
    per_recipient = Counter("+" + to for to, _ in sent)
    assert [n for n, k in per_recipient.items() if k > 1] == [], "delivered more than once"
    assert set(per_recipient) == set(people["eligible"]), (
        f"missed {len(set(people['eligible']) - set(per_recipient))}, "
        f"not eligible {len(set(per_recipient) - set(people['eligible']))}"
    )
    first_row = {r["phone"]: r["variables"] for r in rows if r["state"] == "queued"}
    assert all(first_row["+" + to] == variables for to, variables in sent)

    # The killed worker's sends came back after the visibility timeout and were sent again under their key:
    # the double answered each with its first result and delivered nothing twice.
    # Any other repeat is a send whose outcome the crash kept from being recorded within its claim.
    repeated = {r.body["to"] for r in double.received if r.duplicate}
    assert held, "the worker was killed with no send in flight: the fault was not exercised"
    assert set(held) <= repeated, (sorted(set(held) - repeated)[:5], len(repeated))
    first_sender: dict[str, str] = {}
    for r in double.received:
        first_sender.setdefault(r.body["to"], r.headers["Authorization"])
    from_killed = sum(first_sender[to] == f"Bearer {KILLED_TOKEN}" for to in repeated)
    logged = "".join(workers.log(n) for n in range(len(workers.procs)))
    figures |= {"requests": len(double.received), "repeats_of_the_killed_worker": from_killed,
                "other_repeats": len(repeated) - from_killed,
                "dispatch_failures_logged": logged.count("campaign dispatch failed")}  # fmt: skip
    assert "Traceback" not in logged

    reasons = Counter(f"skipped:{reason}" for state, reason in expected if state == "skipped")
    assert reasons == {"skipped:opted_out": OPTED_OUT, "skipped:blocked": BLOCKED, "skipped:no_consent": NO_CONSENT,
                       "skipped:duplicate": DUPLICATES, "skipped:invalid_number": INVALID_NUMBERS,
                       "skipped:missing_variables": MISSING_VARIABLES}  # fmt: skip
    assert (results["state"], results["recipients"]) == ("completed", 2000)
    assert results["states"] == {"queued": ELIGIBLE, "skipped": 2000 - ELIGIBLE}
    assert sum(results["states"].values()) == results["recipients"]
    assert results["reasons"] == reasons
    print(f"\ncampaign faults: {len(rows)} recipients, {ELIGIBLE} eligible, 1 worker SIGKILLed, 1 database crash:",
          figures)  # fmt: skip
