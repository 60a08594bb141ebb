"""`whatsapp-handler doctor`: is this installation fit to run? One line per check.

    ok    what was found
    warn  what was found; worth a look, nothing is broken yet
    FAIL  what was found -> how to fix it

Checks the server (PostgreSQL 15+), the extensions (pgcrypto, pg_cron, pgmq as an
extension or its SQL-only install), pg_cron (this database is cron.database_name, its
launcher runs, the project's jobs are scheduled and their last runs succeeded), the
sqitch registry against this build's sqitch.plan, the queues (depth, age of the oldest
message, dead letters), the channels (each configured channel can send), the OTP API's
destinations and the HTTP limits against slow clients. Exit 0
when nothing fails, 1 otherwise. It reads only; it never starts the embedded cluster.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from app.cluster import ClusterError
from app.cron_status import CRON_FAILURES, CRON_LATENESS, WEBHOOK_SUCCESS
from app.database import MASK, SERVICE_LOGINS, embedded_cluster, password_of
from app.dlq import HISTORY_METRICS
from app.settings import PROJECT_DIR, Settings
from app.sqitch import Change, last_change, plan_changes

MIN_SERVER_VERSION = 150000
PLAN = PROJECT_DIR / "sqitch.plan"
# Each deployed change with the time it was planned, as the plan writes it (a reworked change's
# versions share a name).
DEPLOYED = """SELECT change, to_char(planned_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS planned_at
FROM sqitch.changes WHERE project = 'whatsapp_handler' ORDER BY committed_at"""
# A message of the outbound queue older than this: the worker is down or far behind.
DEFAULT_MAX_QUEUE_AGE = 600
# A dead letter older than this: the re-drive job is not taking it back, a person must look.
DEFAULT_MAX_DEAD_LETTER_AGE = 3600
# The queues this service consumes itself; the outbox is read by the business's services.
OWN_QUEUES = ("outbound",)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok", "warn" or "FAIL"
    found: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4}  {self.name}: {self.found}"
        return f"{text} -> {self.fix}" if self.fix and self.status != "ok" else text


def add_parser(commands: Any) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="check the server, extensions, pg_cron, the plan, the queues and the channels",
        description="Print one line per check (ok / warn / FAIL, what was found, how to fix what fails). "
        "Exit 0 when nothing fails, 1 otherwise. Reads only; never starts the embedded cluster.",
    )
    doctor.add_argument(
        "--max-queue-age",
        type=float,
        default=DEFAULT_MAX_QUEUE_AGE,
        metavar="SECONDS",
        help=f"fail when the oldest outbound message is older (default {DEFAULT_MAX_QUEUE_AGE})",
    )
    doctor.add_argument(
        "--max-dead-letter-age",
        type=float,
        default=DEFAULT_MAX_DEAD_LETTER_AGE,
        metavar="SECONDS",
        help=f"fail when a dead letter is older (default {DEFAULT_MAX_DEAD_LETTER_AGE})",
    )


def conninfo_of(settings: Settings) -> str:
    """The database to examine; the embedded cluster only when it already runs."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    cluster = embedded_cluster(settings)
    if not cluster.is_running():
        raise ClusterError(
            f"no database to examine: WHATSAPP_HANDLER_DATABASE_URL is not set and the embedded cluster in "
            f"{cluster.home} is not running (`whatsapp-handler cluster start`)"
        )
    return cluster.url(settings.embedded_database)


def command(settings: Settings, args: argparse.Namespace) -> int:
    # Unreachable: psycopg's error propagates and the CLI prints it as its one line.
    with psycopg.connect(conninfo_of(settings), autocommit=True, row_factory=dict_row, connect_timeout=10) as conn:
        checks = list(run_checks(conn, settings, args.max_queue_age, args.max_dead_letter_age))
    for check in checks:
        print(check.line())
    failed = sum(c.status == "FAIL" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    print(f"doctor: {len(checks)} checks, {failed} failed, {warned} warnings")
    return 1 if failed else 0


def run_checks(conn: psycopg.Connection, settings: Settings, max_queue_age: float,
               max_dead_letter_age: float) -> Iterator[Check]:  # fmt: skip
    steps: list[tuple[str, Callable[[], Iterator[Check]]]] = [
        ("postgresql", lambda: _server(conn)),
        ("extensions", lambda: _extensions(conn)),
        ("pg_cron", lambda: _pg_cron(conn)),
        ("cron login", lambda: _cron_login(conn)),
        ("sqitch plan", lambda: _plan(conn, PLAN)),
        ("cron jobs", lambda: _cron_jobs(conn)),
        ("cron late", lambda: _cron_late(conn)),
        ("webhook success", lambda: _webhook_success(conn)),
        ("queues", lambda: _queues(conn, max_queue_age, max_dead_letter_age)),
        ("dead-letter history", lambda: _dead_letter_history(conn)),
        ("vacuum", lambda: _vacuum(conn)),
        ("logins", lambda: _logins(settings)),
        ("channels", lambda: _channels(conn, settings)),
        ("otp destinations", lambda: _otp(conn)),
        ("api keys", lambda: _api_keys(conn)),
        ("pacing", lambda: _pacing(conn, max_queue_age)),
        ("meta templates", lambda: _meta_templates(conn)),
        ("templates", lambda: _templates(conn)),
        ("campaigns", lambda: _campaigns(conn)),
        ("channel standing", lambda: _channel_standing(conn)),
        ("slow clients", lambda: _slow_clients(settings)),
    ]
    for name, step in steps:
        try:
            # Listed first, so that a check failing half-way reports as one finding.
            found = list(step())
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            # A check that cannot be made (a missing schema, no privilege) is a finding, not a crash.
            found = [Check(name, "FAIL", " ".join(str(exc).split()), "run doctor as the deploying login, "
                           "after `whatsapp-handler db deploy`")]  # fmt: skip
        yield from found


def _server(conn: psycopg.Connection) -> Iterator[Check]:
    row = conn.execute(
        "SELECT current_setting('server_version_num')::int AS num, current_setting('server_version') AS version"
    ).fetchone()
    if row["num"] >= MIN_SERVER_VERSION:
        yield Check("postgresql", "ok", f"version {row['version']}")
    else:
        yield Check("postgresql", "FAIL", f"version {row['version']}", "PostgreSQL 15 or newer is needed")


def _extensions(conn: psycopg.Connection) -> Iterator[Check]:
    installed = {
        r["extname"]: r["extversion"] for r in conn.execute("SELECT extname, extversion FROM pg_extension").fetchall()
    }
    for name, fix in (
        ("pgcrypto", "CREATE EXTENSION pgcrypto (package postgresql-contrib), or `whatsapp-handler db deploy`"),
        ("pg_cron", "install postgresql-15-cron, preload it (shared_preload_libraries), "
                    "then `whatsapp-handler db deploy`"),
    ):  # fmt: skip
        if name in installed:
            yield Check(f"extension {name}", "ok", f"version {installed[name]}")
        else:
            yield Check(f"extension {name}", "FAIL", "not installed", fix)
    if "pgmq" in installed:
        yield Check("extension pgmq", "ok", f"extension, version {installed['pgmq']}")
    elif conn.execute("SELECT to_regprocedure('pgmq.send(text, jsonb, integer)') IS NOT NULL AS ok").fetchone()["ok"]:
        yield Check("extension pgmq", "ok", "SQL-only install (schema pgmq)")
    else:
        yield Check("extension pgmq", "FAIL", "neither the extension nor the SQL-only install",
                    "`whatsapp-handler db deploy` loads the SQL-only install (docs/database.md)")  # fmt: skip


def _pg_cron(conn: psycopg.Connection) -> Iterator[Check]:
    row = conn.execute(
        "SELECT current_database() AS here, current_setting('cron.database_name', true) AS cron_db, "
        "EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pg_cron launcher') AS launcher"
    ).fetchone()
    if row["cron_db"] is None:
        yield Check("pg_cron database", "FAIL", "pg_cron is not preloaded (no cron.database_name)",
                    "add pg_cron to shared_preload_libraries and restart the server")  # fmt: skip
        return
    if row["cron_db"] == row["here"]:
        yield Check("pg_cron database", "ok", f"cron.database_name is {row['here']}")
    else:
        yield Check("pg_cron database", "FAIL", f"cron.database_name is {row['cron_db']}, not {row['here']}",
                    f"set cron.database_name = '{row['here']}' in postgresql.conf and restart the server")  # fmt: skip
    if row["launcher"]:
        yield Check("pg_cron launcher", "ok", "running")
    else:
        yield Check("pg_cron launcher", "FAIL", "not running (or not visible to this login)",
                    "check the server log for pg_cron; doctor needs pg_read_all_stats to see it")  # fmt: skip


def _plan(conn: psycopg.Connection, plan: Path) -> Iterator[Check]:
    expected = last_change(plan)
    if conn.execute("SELECT to_regclass('sqitch.changes') IS NULL AS none").fetchone()["none"]:
        yield Check("sqitch plan", "FAIL", "nothing deployed (no sqitch registry)", "`whatsapp-handler db deploy`")
        return
    deployed = [Change(r["change"], r["planned_at"]) for r in conn.execute(DEPLOYED).fetchall()]
    wanted = plan_changes(plan)
    missing = [c for c in wanted if c not in set(deployed)]
    unknown = [str(c) for c in deployed if c not in set(wanted)]
    if not missing and deployed and deployed[-1] == expected:
        yield Check("sqitch plan", "ok", f"{len(deployed)} changes deployed, up to {expected}")
    elif missing:
        head = deployed[-1] if deployed else "none"
        yield Check("sqitch plan", "FAIL",
                    f"{len(missing)} of {len(wanted)} changes not deployed "
                    f"(deployed up to {head}, plan ends at {expected})",
                    "`whatsapp-handler db deploy` (or `sqitch deploy`)")  # fmt: skip
    else:
        yield Check("sqitch plan", "warn", f"all {len(wanted)} changes deployed, last deployed is {deployed[-1]}",
                    f"this build's plan ends at {expected}")  # fmt: skip
    if unknown:
        yield Check("sqitch plan", "warn", f"deployed changes unknown to this build: {', '.join(unknown[:5])}",
                    "the database is newer than this checkout; update the checkout")  # fmt: skip


def _cron_jobs(conn: psycopg.Connection) -> Iterator[Check]:
    if conn.execute("SELECT to_regclass('whatsapp_handler.jobs') IS NULL AS none").fetchone()["none"]:
        return  # the plan check already says what is missing
    scheduled = {
        r["jobname"]: r["active"]
        for r in conn.execute(
            "SELECT jobname, active FROM cron.job "
            "WHERE database = current_database() AND username = 'whatsapp_handler_cron'"
        ).fetchall()
    }
    jobs = conn.execute("SELECT name, cron_job_name, enabled FROM whatsapp_handler.jobs ORDER BY name").fetchall()
    absent = [j["name"] for j in jobs if j["enabled"] and j["cron_job_name"] not in scheduled]
    inactive = [j["name"] for j in jobs if j["enabled"] and scheduled.get(j["cron_job_name"]) is False]
    if absent:
        yield Check("cron jobs", "FAIL", f"enabled but not in cron.job as whatsapp_handler_cron: {', '.join(absent)}",
                    "re-schedule them as a superuser: UPDATE whatsapp_handler.jobs SET enabled = true "
                    "WHERE name = ... (docs/jobs.md)")  # fmt: skip
    elif inactive:
        yield Check("cron jobs", "warn", f"inactive in cron.job: {', '.join(inactive)}",
                    "UPDATE cron.job SET active = true, or disable them in whatsapp_handler.jobs")  # fmt: skip
    else:
        enabled = sum(j["enabled"] for j in jobs)
        yield Check("cron jobs", "ok", f"{enabled} of {len(jobs)} jobs scheduled")
    missing = "SELECT to_regprocedure('whatsapp_handler.cron_job_failures()') IS NULL AS none"
    if conn.execute(missing).fetchone()["none"]:
        return  # an older deploy: the plan check says so
    failing = [r for r in conn.execute(CRON_FAILURES).fetchall() if r["failures"] > 0]
    if failing:
        detail = "; ".join(
            f"{r['job_name']} failed {r['failures']}x in a row: {' '.join((r['last_message'] or '').split())[:160]}"
            for r in failing
        )
        if any(CRON_CONNECT_FAILED in (r["last_message"] or "") for r in failing):
            # pg_cron never got in: the job's function did not run, running it by hand would succeed.
            yield Check("cron runs", "FAIL", detail, CRON_BACKGROUND_FIX)
        else:
            yield Check("cron runs", "FAIL", detail,
                        "run the job's function by hand to see the error (docs/jobs.md), fix it; "
                        "the next successful run clears this")  # fmt: skip
    else:
        yield Check("cron runs", "ok", "the last run of every job succeeded (or none ran yet)")


def _cron_late(conn: psycopg.Connection) -> Iterator[Check]:
    missing = "SELECT to_regprocedure('whatsapp_handler.cron_job_lateness()') IS NULL AS none"
    if conn.execute(missing).fetchone()["none"]:
        return  # an older deploy: the plan check says so
    rows = conn.execute(CRON_LATENESS).fetchall()
    late = [r for r in rows if r["overdue"]]
    unbounded = [r["job_name"] for r in rows if r["period_seconds"] is None]
    if late:
        yield Check("cron late", "FAIL", "; ".join(
            f"{r['job_name']} not started for {r['age_seconds']:.0f} s (period {r['period_seconds']:.0f} s)"
            for r in late), "is pg_cron's launcher running (the pg_cron line)? is a run stuck? "
            "docs/runbook.md#cron-job-late")  # fmt: skip
    elif unbounded:
        yield Check("cron late", "warn", f"schedules without a period, never judged late: {', '.join(unbounded)}",
                    "give them a five-field schedule (docs/jobs.md#late-jobs)")  # fmt: skip
    else:
        yield Check("cron late", "ok", f"every enabled job of {len(rows)} started within twice its period")


# The alert's rule (monitoring/prometheus/alerts.yml, WhatsappWebhookSuccessLow): under 99 % in the
# last hour, counted only from this many webhooks, so that 1 failed of 3 does not page.
MIN_SUCCESS_RATIO = 0.99
MIN_SUCCESS_VOLUME = 200


def _webhook_success(conn: psycopg.Connection) -> Iterator[Check]:
    missing = "SELECT to_regprocedure('whatsapp_handler.webhook_success_rate()') IS NULL AS none"
    if conn.execute(missing).fetchone()["none"]:
        return  # an older deploy: the plan check says so
    rows = [r for r in conn.execute(WEBHOOK_SUCCESS).fetchall() if r["span"] == "1h"]
    low = [r for r in rows if r["success_ratio"] < MIN_SUCCESS_RATIO and r["webhooks"] >= MIN_SUCCESS_VOLUME]
    found = "; ".join(
        f"{r['provider']} channel {r['channel_id'] if r['channel_id'] is not None else 'unknown'}: "
        f"{r['failed']} of {r['webhooks']} failed ({r['success_ratio']:.2%} processed)"
        for r in (low or sorted(rows, key=lambda r: r["success_ratio"])[:1])
    )
    if low:
        yield Check("webhook success", "FAIL", f"last hour: {found}",
                    "`whatsapp-handler dlq list inbound` says why; docs/runbook.md#webhook-success-low")  # fmt: skip
    elif rows:
        yield Check("webhook success", "ok", f"last hour, lowest: {found}")
    else:
        yield Check("webhook success", "ok", "no webhook in the last hour counted (job_webhook_minutes)")


def _queues(conn: psycopg.Connection, max_queue_age: float, max_dead_letter_age: float) -> Iterator[Check]:
    rows = conn.execute("SELECT queue_name, depth, oldest_age_seconds FROM whatsapp_handler.queue_metrics()").fetchall()
    if not rows:
        yield Check("queues", "FAIL", "no queues of this project", "`whatsapp-handler db deploy`")
    for r in rows:
        name, depth, age = r["queue_name"], r["depth"], r["oldest_age_seconds"] or 0.0
        found = f"{depth} messages" + (f", oldest {age:.0f} s" if depth else "")
        if name.endswith("_dlq"):
            source = name.removesuffix("_dlq")
            fix = f"`whatsapp-handler dlq list {source}`, then `dlq replay {source} ...` or `dlq purge` "
            fix += "(docs/runbook.md)"
            if depth and age > max_dead_letter_age:
                yield Check(f"queue {name}", "FAIL", f"{found} (older than {max_dead_letter_age:.0f} s)", fix)
            elif depth:
                yield Check(f"queue {name}", "warn", found, fix)
            else:
                yield Check(f"queue {name}", "ok", found)
        elif depth and age > max_queue_age:
            own = name in OWN_QUEUES
            fix = ("is `whatsapp-handler worker` running? see its log and the provider's status" if own
                   else "the business's consumers of the outbox are behind or stopped")  # fmt: skip
            yield Check(f"queue {name}", "FAIL" if own else "warn", f"{found} (older than {max_queue_age:.0f} s)", fix)
        else:
            yield Check(f"queue {name}", "ok", found)


def _dead_letter_history(conn: psycopg.Connection) -> Iterator[Check]:
    """The last hour of the dead-letter history: letters the re-drive gave up on (parked), and queues
    whose scheduled re-drive got none of its letters through (WhatsappDeadLettersParked,
    WhatsappDeadLetterRedrivesFailing)."""
    rows = conn.execute(HISTORY_METRICS).fetchall()
    letters = {(r["queue"], r["action"], r["result"]): r["letters"] for r in rows}
    parked = {q: n for (q, action, _result), n in letters.items() if action == "park"}
    failing = {
        q: n
        for (q, action, result), n in letters.items()
        if action == "redrive" and result == "failed" and not letters.get((q, "redrive", "redriven"))
    }
    problems = [f"{q} {n} parked" for q, n in sorted(parked.items())]
    problems += [f"{q} {n} re-driven and failed again, none got through" for q, n in sorted(failing.items())]
    if problems:
        queue = sorted({*parked, *failing})[0].removesuffix("_dlq")
        yield Check("dead-letter history", "warn", f"last hour: {'; '.join(problems)}",
                    f"`whatsapp-handler dlq history --queue {queue}` and `dlq show`; fix the cause, then `dlq replay` "
                    "(docs/runbook.md#dead-letters-given-up)")  # fmt: skip
    elif letters:
        done = ", ".join(f"{q} {a} {r} {n}" for (q, a, r), n in sorted(letters.items()))
        yield Check("dead-letter history", "ok", f"last hour: {done}")
    else:
        yield Check("dead-letter history", "ok", "no re-drive, replay or purge touched a dead letter in the last hour")


# Dead rows a table may hold before doctor looks for what holds vacuum back: more than the queue
# tables' autovacuum threshold (queue/autovacuum) a minute's churn can leave between two visits.
DEFAULT_MAX_DEAD_TUPLES = 100_000
# The oldest snapshot (a transaction, a replication slot) older than this holds every dead row since.
DEFAULT_MAX_VACUUM_HORIZON = 300
VACUUM_ROWS = """SELECT table_name, dead_tuples, live_tuples,
    extract(epoch FROM now() - last_autovacuum)::float8 AS since_autovacuum, bloat_bytes
FROM whatsapp_handler.vacuum_metrics()"""
# What holds back the oldest xmin of this database: a session's transaction, or a replication slot.
VACUUM_HORIZON = """SELECT * FROM (
    SELECT format('pid %s (%s, %s, %s)', pid, usename, coalesce(nullif(application_name, ''), '-'), state) AS holder,
           extract(epoch FROM now() - coalesce(xact_start, query_start))::float8 AS age, age(backend_xmin) AS xids
    FROM pg_stat_activity WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid()
      AND (datname = current_database() OR datname IS NULL)
    UNION ALL
    SELECT format('replication slot %s', slot_name), NULL, age(xmin)
    FROM pg_replication_slots WHERE xmin IS NOT NULL
    UNION ALL
    SELECT format('prepared transaction %s', gid), extract(epoch FROM now() - prepared)::float8, age(transaction)
    FROM pg_prepared_xacts WHERE database = current_database()
) h ORDER BY xids DESC LIMIT 1"""
VACUUM_FIX = "docs/runbook.md#vacuum-held-back"
# A slot has no age in seconds: a standby's feedback holds a few transactions back all the time.
MAX_SLOT_XIDS = 1_000_000


def _vacuum(conn: psycopg.Connection, max_dead: int = DEFAULT_MAX_DEAD_TUPLES,
            max_horizon: float = DEFAULT_MAX_VACUUM_HORIZON) -> Iterator[Check]:  # fmt: skip
    rows = conn.execute(VACUUM_ROWS).fetchall()
    worst = sorted(rows, key=lambda r: r["dead_tuples"], reverse=True)
    over = [r for r in worst if r["dead_tuples"] > max_dead]
    bloat = sum(r["bloat_bytes"] or 0 for r in rows)
    summary = f"{len(rows)} tables, estimated bloat {bloat / 2**20:.1f} MiB"
    if over:
        names = ", ".join(
            f"{r['table_name']} {r['dead_tuples']} dead/{r['live_tuples']} live, last autovacuum "
            + ("never" if r["since_autovacuum"] is None else f"{r['since_autovacuum']:.0f} s ago")
            for r in over[:3]
        )
        yield Check("vacuum", "warn", f"{names} ({summary})",
                    f"see what holds vacuum back (the line below), {VACUUM_FIX}")  # fmt: skip
    elif worst:
        yield Check("vacuum", "ok", f"most dead rows: {worst[0]['table_name']} {worst[0]['dead_tuples']} ({summary})")
    else:
        yield Check("vacuum", "FAIL", "no table reported by vacuum_metrics()", "`whatsapp-handler db deploy`")
    holder = conn.execute(VACUUM_HORIZON).fetchone()
    if holder is None:
        yield Check("vacuum horizon", "ok", "no transaction or slot holds dead rows back")
        return
    age = f"open {holder['age']:.0f} s, " if holder["age"] is not None else ""
    found = f"oldest snapshot: {holder['holder']}, {age}{holder['xids']} transactions old"
    if (holder["age"] is None and holder["xids"] > MAX_SLOT_XIDS) or (holder["age"] or 0) > max_horizon:
        yield Check("vacuum horizon", "warn", found, f"end it if it is stuck, {VACUUM_FIX}")
    else:
        yield Check("vacuum horizon", "ok", found)


CHANNEL_ROWS = "SELECT provider::text, provider_ref, phone::text, name, brand, active FROM whatsapp_handler.channels"


def _channels(conn: psycopg.Connection, settings: Settings) -> Iterator[Check]:
    known = {(r["provider"], r["provider_ref"]): r for r in conn.execute(CHANNEL_ROWS).fetchall()}
    configured = {(c.provider, c.ref): c for c in settings.channels}
    if not configured and not known:
        yield Check("channels", "warn", "none configured", "set WHATSAPP_HANDLER_CHANNELS (docs/configuration.md)")
    # Imported here: the providers' modules hold their webhook routes, which load litestar and
    # prometheus_client; the CLI must not load the latter before `serve` configures it.
    from app import providers

    for (provider, ref), config in configured.items():
        name = f"channel {provider} {ref}"
        problem = providers.missing_credentials(config)
        row = known.get((provider, ref))
        if problem:
            yield Check(name, "FAIL", f"cannot send: {problem}",
                        "add it to the channel in WHATSAPP_HANDLER_CHANNELS (docs/configuration.md)")  # fmt: skip
        elif row is None:
            # The same ref under another provider: a channel configured under the wrong one.
            elsewhere = sorted(p for p, r in known if r == ref)
            found = "configured but not in the database" + (
                f" (it holds {ref} as a {' and '.join(elsewhere)} channel)" if elsewhere else ""
            )
            fix = "`whatsapp-handler serve` registers the configured channels"
            yield Check(name, "warn", found, fix + ("; is its provider right?" if elsewhere else ""))
        elif differs := [
            f"{field} {row[field]!r} in the database, {value!r} configured"
            for field, value in (("phone", config.phone), ("name", config.name), ("brand", config.brand))
            if row[field] != value
        ]:
            yield Check(name, "warn", "; ".join(differs),
                        "`whatsapp-handler serve` writes the configured values (add_channel updates them), "
                        "or correct WHATSAPP_HANDLER_CHANNELS")  # fmt: skip
        else:
            yield Check(name, "ok", "can send" + ("" if row["active"] else " (inactive in the database)"))
    for (provider, ref), row in sorted(known.items()):
        if (provider, ref) not in configured and row["active"]:
            yield Check(f"channel {provider} {ref}", "warn", "in the database but not configured here: "
                        "its webhooks are refused and its messages dead-lettered",
                        "add it to WHATSAPP_HANDLER_CHANNELS, or set it inactive")  # fmt: skip


# The functions each service's group is granted (tests/test_security_roles.py ALLOWED holds the same):
# a login that cannot call one of them fails there at run time, the relay with a 503.
SERVICE_FUNCTIONS = {
    "whatsapp_handler_relay": (
        "cron_job_failures()", "cron_job_lateness()", "webhook_success_rate()",
        "ingest_batch(text,jsonb[],text[])", "ingest_evolution(jsonb,text)",
        "ingest_meta(jsonb,text)", "ingest_raw(text,bytea,text,text,text)", "ingest_twilio(jsonb,text)",
        "queue_metrics()", "readiness(text,timestamp with time zone)", "request_otp(text,bigint,text,text)",
        "verify_otp(text,text,text)", "dead_letter_history_metrics()",
        "mark_read(bytea,bigint,text,boolean,text)", "message_view(bytea,bigint)",
        "people_block(bytea,jsonb,text)", "people_consent(bytea,jsonb,text)",
        "people_erase(bytea,jsonb,text)", "people_export(bytea,jsonb,text)", "people_preferences(bytea,jsonb,text)",
        "people_set_preferences(bytea,jsonb,text)", "people_unblock(bytea,jsonb,text)",
        "api_campaign_audience(bytea,bigint,jsonb,text)", "api_campaign_control(bytea,bigint,text,text)",
        "api_campaign_create(bytea,jsonb,text)", "api_campaign_recipients(bytea,bigint,text,integer,integer)",
        "api_campaign_results(bytea,bigint)", "api_campaign_upload(bytea,bigint,jsonb,boolean,text)",
        "send_message(bytea,jsonb,text,text)", "send_messages(bytea,bigint,jsonb,text)",
        "vacuum_metrics()"),
    "whatsapp_handler_worker": (
        "queue_metrics()", "readiness(text,timestamp with time zone)", "worker_channels()",
        "worker_claim(integer,integer,bigint[])", "worker_dead_letter(bigint,text,jsonb)",
        "worker_release(bigint,double precision)", "worker_retry(bigint,double precision,jsonb)",
        "worker_sent(bigint,text)", "worker_sent_batch(bigint[],text[])", "worker_pacing()",
        "worker_failed(bigint,text,text,jsonb,double precision)", "worker_campaigns(integer)",
        "worker_campaign_metrics()", "worker_next_visible()", "worker_channel_standing()"),
}  # fmt: skip
# What a login holds, asked on its own connection: membership and the schema first (naming a function
# of a schema the login may not use is itself refused), then each function that exists.
MEMBERSHIP = """SELECT current_user AS login, r.rolsuper AS superuser,
    to_regrole(%(group)s) IS NOT NULL AS group_exists,
    COALESCE(pg_has_role(current_user, to_regrole(%(group)s), 'MEMBER'), false) AS member,
    CASE WHEN to_regnamespace('whatsapp_handler') IS NULL THEN false
         ELSE has_schema_privilege(current_user, 'whatsapp_handler', 'USAGE') END AS schema_usage
FROM pg_roles r WHERE r.rolname = current_user"""
CANNOT_EXECUTE = """SELECT f FROM unnest(%s::text[]) f
WHERE to_regprocedure('whatsapp_handler.' || f) IS NOT NULL
  AND NOT has_function_privilege(current_user, to_regprocedure('whatsapp_handler.' || f), 'EXECUTE')"""
LOGIN_TIMEOUT = 5


@dataclass(frozen=True)
class Login:
    service: str  # relay, worker
    group: str
    setting: str  # where its conninfo comes from, as the operator sets it
    conninfo: str | None  # None: the embedded login is not made yet


def service_logins(settings: Settings) -> list[Login]:
    """The logins the relay and the worker connect as, where each comes from."""
    found = []
    for service, (embedded_login, group) in SERVICE_LOGINS.items():
        setting = f"WHATSAPP_HANDLER_{service.upper()}_DATABASE_URL"
        own = getattr(settings, f"{service}_database_url")
        if own is not None:
            found.append(Login(service, group, setting, own.get_secret_value()))
        elif settings.database_url is not None:
            shared = settings.database_url.get_secret_value()
            found.append(Login(service, group, "WHATSAPP_HANDLER_DATABASE_URL", shared))
        else:
            # `serve` and `worker` make the embedded cluster's logins, their passwords in files beside it.
            cluster = embedded_cluster(settings)
            secret = cluster.login_password_file(embedded_login)
            conninfo = None
            if secret.exists():
                password = secret.read_text().strip()
                conninfo = cluster.url(settings.embedded_database, user=embedded_login, password=password)
            found.append(Login(service, group, f"the embedded login {embedded_login}", conninfo))
    return found


def _logins(settings: Settings) -> Iterator[Check]:
    for login in service_logins(settings):
        yield _login(login)


def _login(login: Login) -> Check:
    name = f"login {login.service}"
    if login.conninfo is None:
        return Check(name, "warn", f"{login.setting} is not made yet",
                     f"`whatsapp-handler {'serve' if login.service == 'relay' else 'worker'}` makes it")  # fmt: skip
    functions = list(SERVICE_FUNCTIONS[login.group])
    try:
        conn = psycopg.connect(login.conninfo, autocommit=True, row_factory=dict_row, connect_timeout=LOGIN_TIMEOUT)
    except psycopg.Error as exc:
        message = " ".join(str(exc).split())
        if secret := password_of(login.conninfo):
            message = message.replace(secret, MASK)
        return Check(name, "FAIL", f"cannot connect as {_user_of(login.conninfo)} ({login.setting}): {message}",
                     f"check {login.setting} (host, user, password) and pg_hba.conf")  # fmt: skip
    try:
        with conn:
            rights = conn.execute(MEMBERSHIP, {"group": login.group}).fetchone()
            cannot_execute = []
            if rights["schema_usage"]:
                cannot_execute = [r["f"] for r in conn.execute(CANNOT_EXECUTE, (functions,)).fetchall()]
    except psycopg.Error as exc:
        return Check(name, "FAIL", f"{_user_of(login.conninfo)} connects but its rights cannot be read: "
                     f"{' '.join(str(exc).split())}", "run doctor again; see the server log")  # fmt: skip
    user = rights["login"]
    who = f"{user} ({login.setting})"
    if not rights["group_exists"]:
        return Check(name, "FAIL", f"{who}: the group {login.group} does not exist", "`whatsapp-handler db deploy`")
    if rights["superuser"]:
        return Check(name, "warn", f"{who} is a superuser: the {login.service} may do anything",
                     f"give it a login of its own: CREATE ROLE ... LOGIN IN ROLE {login.group}, set "
                     f"WHATSAPP_HANDLER_{login.service.upper()}_DATABASE_URL (docs/security.md)")  # fmt: skip
    if not rights["member"]:
        return Check(name, "FAIL", f"{who} is not a member of {login.group}: every call of the {login.service} "
                     "is refused (42501)", f"GRANT {login.group} TO {_ident(user)}")  # fmt: skip
    lacking = ([] if rights["schema_usage"] else ["USAGE on schema whatsapp_handler"]) + [
        f"EXECUTE on whatsapp_handler.{f}" for f in cannot_execute
    ]
    if lacking:
        first = ("USAGE ON SCHEMA whatsapp_handler" if not rights["schema_usage"]
                 else f"EXECUTE ON FUNCTION whatsapp_handler.{cannot_execute[0]}")  # fmt: skip
        return Check(name, "FAIL", f"{who} is in {login.group}, which lacks {', '.join(lacking)}",
                     f"GRANT {first} TO {login.group}{' (and the rest)' if len(lacking) > 1 else ''}, "
                     "as the deploying login")  # fmt: skip
    return Check(name, "ok", f"{who} connects, is in {login.group}, can call its {len(functions)} functions")


# The login pg_cron runs every job of the project as (jobs/jobs); it has no password.
CRON_LOGIN = "whatsapp_handler_cron"
# What pg_cron logs when it cannot open a job's connection.
CRON_CONNECT_FAILED = "connection failed"
CRON_BACKGROUND_FIX = (
    "set cron.use_background_workers = on (and max_worker_processes above the jobs that may run at once, "
    "e.g. 20) in postgresql.conf and restart the server (docs/database.md)"
)
CRON_SETTINGS = f"""SELECT current_database() AS here,
    current_setting('cron.use_background_workers', true) AS background,
    COALESCE(current_setting('cron.host', true), 'localhost') AS host,
    (SELECT rolcanlogin FROM pg_roles WHERE rolname = '{CRON_LOGIN}') AS can_login"""
HBA_RULES = """SELECT line_number, type, database, user_name, address, netmask, auth_method
FROM pg_hba_file_rules WHERE error IS NULL ORDER BY line_number"""


def _cron_login(conn: psycopg.Connection) -> Iterator[Check]:
    """Can pg_cron open its jobs' connections? With background workers it needs no login; without,
    it connects over libpq to cron.host as the jobs' login, which has no password."""
    row = conn.execute(CRON_SETTINGS).fetchone()
    if row["background"] is None:
        return  # pg_cron is not preloaded: the pg_cron check says so
    rules = None
    if row["background"] != "on":
        try:
            rules = conn.execute(HBA_RULES).fetchall()
        except psycopg.errors.InsufficientPrivilege:
            rules = None
    yield cron_login_check(row["background"] == "on", row["host"], row["can_login"], row["here"], rules)


def cron_login_check(background: bool, host: str, can_login: bool | None, database: str,
                     rules: list[dict[str, Any]] | None) -> Check:  # fmt: skip
    name = "cron login"
    if can_login is None:
        return Check(name, "FAIL", f"the role {CRON_LOGIN} does not exist", "`whatsapp-handler db deploy`")
    if not can_login:
        return Check(name, "FAIL", f"{CRON_LOGIN} cannot log in (NOLOGIN): every job fails",
                     f"ALTER ROLE {CRON_LOGIN} LOGIN")  # fmt: skip
    if background:
        return Check(name, "ok", f"cron.use_background_workers is on: jobs run as {CRON_LOGIN} without a password")
    via = f"cron.host {host}"
    if rules is None:
        return Check(name, "warn", f"pg_cron connects over {via} as {CRON_LOGIN}, which has no password; "
                     "this login cannot read pg_hba.conf to tell whether it gets in", CRON_BACKGROUND_FIX)  # fmt: skip
    rule = _hba_rule(rules, host, database)
    if rule is None:
        return Check(name, "FAIL", f"pg_cron connects over {via} as {CRON_LOGIN} and no pg_hba.conf line "
                     "lets it in: every job fails with \"connection failed\"", CRON_BACKGROUND_FIX)  # fmt: skip
    line = f"pg_hba.conf line {rule['line_number']} ({rule['auth_method']})"
    if rule["auth_method"] == "trust":
        return Check(name, "ok", f"pg_cron connects over {via} as {CRON_LOGIN}; {line} trusts it")
    if rule["auth_method"] == "reject":
        return Check(name, "FAIL", f"pg_cron connects over {via} as {CRON_LOGIN}; {line} rejects it",
                     CRON_BACKGROUND_FIX)  # fmt: skip
    # A password method, or peer/ident: only a ~/.pgpass of the server's OS user (or an ident map) can
    # satisfy it, which doctor cannot see; the cron runs check reports what actually happens.
    found = (f"pg_cron connects over {via} as {CRON_LOGIN}, which has no password, and {line} asks for "
             "one: jobs fail unless the server's OS user has it in ~/.pgpass")  # fmt: skip
    return Check(name, "warn", found, CRON_BACKGROUND_FIX)


LOOPBACK = ("127.0.0.1", "::1")


def _hba_rule(rules: list[dict[str, Any]], host: str, database: str) -> dict[str, Any] | None:
    """The first pg_hba.conf line a connection of pg_cron to cron.host would match (as the server reads it),
    or None. An address given by name other than localhost matches only lines for all addresses."""
    local = host.startswith("/")
    addresses = LOOPBACK if host == "localhost" else (host,)
    for rule in rules:
        if rule["type"] not in (("local",) if local else ("host", "hostssl", "hostnossl")):
            continue
        if not ({"all", database} & set(rule["database"])) or not ({"all", CRON_LOGIN} & set(rule["user_name"])):
            continue
        if not local and not _address_matches(rule, addresses):
            continue
        return rule
    return None


def _address_matches(rule: dict[str, Any], addresses: tuple[str, ...]) -> bool:
    if rule["address"] in ("all", "samehost", "samenet"):
        return True
    try:
        network = ipaddress.ip_network(f"{rule['address']}/{rule['netmask']}", strict=False)
    except ValueError:
        return False  # a host name in pg_hba.conf: not resolved here
    for address in addresses:
        try:
            if ipaddress.ip_address(address) in network:
                return True
        except ValueError:
            continue  # cron.host given by name
    return False


SIMPLE_IDENT = re.compile(r"[a-z_][a-z0-9_$]*")


def _ident(name: str) -> str:
    return name if SIMPLE_IDENT.fullmatch(name) else '"' + name.replace('"', '""') + '"'


def _user_of(conninfo: str) -> str:
    try:
        return str(conninfo_to_dict(conninfo).get("user") or "the default user")
    except psycopg.Error:
        return "an unparseable conninfo's user"


CALLING_CODE = re.compile(r"[1-9][0-9]{0,5}")


def _otp(conn: psycopg.Connection) -> Iterator[Check]:
    """The OTP API's destination countries and token buckets (docs/security.md, OTP abuse)."""
    rows = conn.execute("SELECT key, value FROM whatsapp_handler.settings WHERE key LIKE 'otp.%'").fetchall()
    values = {r["key"]: r["value"] for r in rows}
    codes = values.get("otp.country_codes")
    fix = "UPDATE whatsapp_handler.settings SET value = '[\"44\", \"49\"]' WHERE key = 'otp.country_codes'"
    if "otp.country_codes" not in values:
        yield Check("otp destinations", "FAIL", "setting otp.country_codes is missing (WH011)",
                    "`whatsapp-handler db deploy`, or restore the row")  # fmt: skip
    elif codes is None:
        yield Check("otp destinations", "warn", "otp.country_codes is not set: every OTP request is refused (WH058)",
                    fix + " (the calling codes the business serves)")  # fmt: skip
    elif not isinstance(codes, list) or not all(isinstance(c, str) and CALLING_CODE.fullmatch(c) for c in codes):
        yield Check("otp destinations", "FAIL", "otp.country_codes is not a list of calling codes (WH058)", fix)
    elif not codes:
        yield Check("otp destinations", "warn", "otp.country_codes is empty: every OTP request is refused (WH055)", fix)
    else:
        limit = values.get
        limits = ", ".join(
            f"{scope} {limit(f'otp.limit.{scope}.per_minute')}/min (burst {limit(f'otp.limit.{scope}.burst')})"
            for scope in ("per_key", "overall")
        )
        yield Check("otp destinations", "ok", f"codes go to +{', +'.join(codes)}; {limits}")


PACING_SETTINGS = """SELECT (p.channel_step, p.channel_slack, p.pair_step) IS NOT NULL AS ok,
       (SELECT jsonb_object_agg(key, value) FROM whatsapp_handler.settings WHERE key LIKE 'pacing.%') AS settings
FROM whatsapp_handler._pacing() p"""
PACING_CHANNELS = """SELECT b.channel_id, c.name, b.held_channel, b.held_pair, b.throttled,
       extract(epoch FROM greatest(b.booked_until, b.throttled_until, now()) - now())::float8 AS backlog
FROM whatsapp_handler.pacing_channels b JOIN whatsapp_handler.channels c ON c.id = b.channel_id ORDER BY b.channel_id"""


def _api_keys(conn: psycopg.Connection) -> Iterator[Check]:
    """The business API's keys (docs/sending.md): how many, what they may do, and live ones naming a channel
    that no longer answers (refused there: WH003)."""
    rows = conn.execute(
        """SELECT k.name, k.scopes, k.revoked_at IS NOT NULL AS revoked,
                  ARRAY(SELECT c FROM unnest(k.channel_ids) c WHERE NOT EXISTS (
                            SELECT FROM whatsapp_handler.channels ch WHERE ch.id = c AND ch.active)) AS idle
           FROM whatsapp_handler.api_keys k ORDER BY k.name"""
    ).fetchall()
    live = [r for r in rows if not r["revoked"]]
    scopes = ", ".join(f"{s} {sum(s in r['scopes'] for r in live)}" for s in ("send", "read", "manage"))
    found = f"{len(live)} live ({scopes}), {len(rows) - len(live)} revoked"
    idle = [f"{r['name']} (channel {', '.join(map(str, r['idle']))})" for r in live if r["idle"]]
    if idle:
        yield Check("api keys", "warn", f"{found}; live keys naming an inactive or unknown channel: {', '.join(idle)}",
                    "SELECT whatsapp_handler.api_key_revoke('<name>'), then api_key_create with the channels it "
                    "serves")  # fmt: skip
    else:
        yield Check("api keys", "ok", found)


def _pacing(conn: psycopg.Connection, max_queue_age: float) -> Iterator[Check]:
    """The pacing settings read as the claim reads them (a bad one stops every claim), and each channel
    whose held messages reach further ahead than a queue may wait (docs/worker.md, Pacing)."""
    fix = "UPDATE whatsapp_handler.settings SET value = ... WHERE key = 'pacing....' (docs/worker.md, Pacing)"
    try:
        with conn.transaction():
            row = conn.execute(PACING_SETTINGS).fetchone()
    except psycopg.Error as exc:
        if exc.sqlstate not in ("WH011", "WH020", "WH075"):
            raise
        yield Check("pacing", "FAIL", f"{exc.diag.message_primary} ({exc.sqlstate}): the worker claims nothing",
                    exc.diag.message_hint or fix)  # fmt: skip
        return
    v = row["settings"]
    yield Check("pacing", "ok", f"{v['pacing.channel.per_second']}/s a channel (burst {v['pacing.channel.burst']}), "
                f"one every {v['pacing.pair.interval']} a person (burst {v['pacing.pair.burst']})")  # fmt: skip
    for r in conn.execute(PACING_CHANNELS).fetchall():
        backlog = max(r["backlog"] or 0.0, 0.0)
        if backlog > max_queue_age:
            yield Check(f"pacing channel {r['channel_id']}", "warn",
                        f"{r['name']}: its held messages reach {backlog:.0f} s ahead (held {r['held_channel']} by its "
                        f"cap, {r['held_pair']} by a person's pace; {r['throttled']} throttles)",
                        "more than the channel's pacing.channel.per_second can send: spread the sends, raise the "
                        "provider's throughput and the setting, or add a channel")  # fmt: skip


# The Meta channels whose registry a template webhook cannot reach by name: no webhook of the number
# has named its account yet (templates/status_updates learns it), and only the templates holding
# Meta's template id are found.
META_TEMPLATES = """SELECT c.id, c.name, count(*) AS templates,
       count(*) FILTER (WHERE t.provider_template_id IS NULL) AS unreachable
FROM whatsapp_handler.channels c
JOIN whatsapp_handler.message_templates t ON t.channel_id = c.id
WHERE c.provider = 'meta'
  AND NOT EXISTS (SELECT FROM whatsapp_handler.meta_channel_accounts a WHERE a.channel_id = c.id)
GROUP BY c.id, c.name ORDER BY c.id"""


def _meta_templates(conn: psycopg.Connection) -> Iterator[Check]:
    """Whether Meta's template webhooks reach each Meta channel's registry (docs/sending.md, Templates)."""
    if conn.execute("SELECT to_regclass('whatsapp_handler.meta_channel_accounts') IS NULL AS none").fetchone()["none"]:
        return  # a database deployed before templates/status_updates: the plan check says so
    unreachable = [r for r in conn.execute(META_TEMPLATES).fetchall() if r["unreachable"]]
    for r in unreachable:
        yield Check(f"meta templates channel {r['id']}", "warn",
                    f"{r['name']}: Meta's template webhooks cannot reach {r['unreachable']} of its {r['templates']} "
                    "templates (no webhook of the number has named its WhatsApp Business Account yet)",
                    "`whatsapp-handler templates sync`, or wait for the number's first message or status webhook "
                    "(docs/runbook.md#template-updates-unmatched)")  # fmt: skip
    if not unreachable:
        yield Check("meta templates", "ok", "Meta's template webhooks reach every Meta channel's templates")


# A registry older than this was not synced for a week: a template paused or disabled since goes on
# being accepted (and refused by the provider) until the next sync.
STALE_TEMPLATES_DAYS = 7
TEMPLATES = """
SELECT c.id, c.name, count(t.name) AS templates, count(*) FILTER (WHERE t.status = 'approved') AS approved,
       extract(epoch FROM now() - max(t.updated_at)) / 86400 AS age_days,
       EXISTS (SELECT FROM whatsapp_handler.api_keys k
               WHERE k.revoked_at IS NULL AND 'send' = ANY (k.scopes) AND c.id = ANY (k.channel_ids)) AS sends
FROM whatsapp_handler.channels c LEFT JOIN whatsapp_handler.message_templates t ON t.channel_id = c.id
WHERE c.active AND c.provider IN ('meta', 'twilio')
GROUP BY c.id, c.name ORDER BY c.id
"""


def _templates(conn: psycopg.Connection) -> Iterator[Check]:
    """Each Meta and Twilio channel's template registry (docs/sending.md, Templates): outside a person's window
    only an approved template may be sent, and the registry is only as current as its last sync."""
    fix = "`whatsapp-handler templates sync` (from cron, daily), then `templates list`"
    for r in conn.execute(TEMPLATES).fetchall():
        name = f"templates channel {r['id']}"
        found = f"{r['name']}: {r['approved']} approved of {r['templates']}"
        if r["sends"] and not r["approved"]:
            yield Check(
                name, "warn", f"{found}, and an API key sends on it: outside the window it can send nothing", fix
            )
        elif r["templates"] and r["age_days"] > STALE_TEMPLATES_DAYS:
            yield Check(name, "warn", f"{found}, none updated for {r['age_days']:.0f} days", fix)
        else:
            yield Check(name, "ok", found)


CAMPAIGNS = """SELECT c.id, c.name, c.channel_id, c.state, c.state_reason, q.quality_event AS quality,
       whatsapp_handler._quality_flagged(q.quality_event) AS flagged,
       (SELECT count(*) FROM whatsapp_handler.campaign_recipients r WHERE r.campaign_id = c.id AND r.state = 'pending')
           AS pending
FROM whatsapp_handler.campaigns c LEFT JOIN whatsapp_handler.channel_standing q ON q.channel_id = c.channel_id
WHERE c.state IN ('scheduled', 'running', 'paused', 'budget_exhausted') ORDER BY c.id"""


def _campaigns(conn: psycopg.Connection) -> Iterator[Check]:
    """Each live campaign (docs/campaigns.md): one that paused itself waits for a person; one that runs on a
    number Meta flagged is sending into trouble."""
    rows = conn.execute(CAMPAIGNS).fetchall()
    if not rows:
        yield Check("campaigns", "ok", "none scheduled, running or paused")
    for r in rows:
        name = f"campaign {r['id']}"
        found = f"{r['name']!r} on channel {r['channel_id']}: {r['state']}, {r['pending']} recipients pending"
        if r["state"] == "paused" and r["state_reason"] == "channel_down":
            yield Check(name, "warn", f"{found}, paused while its channel is down",
                        "it goes on by itself when the channel is back: see the channel's line "
                        "(docs/runbook.md#channel-disconnected)")  # fmt: skip
        elif r["state"] == "paused" and r["state_reason"] != "operator":
            yield Check(name, "warn", f"{found}, paused by itself ({r['state_reason']})",
                        "fix the cause (docs/runbook.md#campaign-paused), then `whatsapp-handler campaign resume "
                        f"{r['id']}`")  # fmt: skip
        elif r["state"] == "running" and r["flagged"]:
            yield Check(name, "warn", f"{found}, on a number Meta marked {r['quality']}",
                        f"`whatsapp-handler campaign pause {r['id']}` until the number's quality recovers")  # fmt: skip
        else:
            yield Check(name, "ok", found)


# Each active channel as /metrics shows it (worker_channel_standing: the one rule of up and down), with its name
# and the state of a ban Meta announced.
CHANNEL_STANDING = """SELECT s.*, c.name, t.account_info -> 'ban_info' ->> 'waba_ban_state' AS ban_state
FROM whatsapp_handler.worker_channel_standing() s JOIN whatsapp_handler.channels c ON c.id = s.channel_id
LEFT JOIN whatsapp_handler.channel_standing t ON t.channel_id = s.channel_id ORDER BY s.channel_id"""
# What Meta says of an account that a person should read, though the channel still sends (a number's
# quality: quality_flagged, the SQL rule campaigns pause on).
ACCOUNT_FLAGS = ("ACCOUNT_VIOLATION", "ACCOUNT_RESTRICTION")
STANDING_FIX = "docs/runbook.md#channel-disconnected"


def _standing_troubles(r: dict[str, Any]) -> list[str]:
    troubles = []
    if r["quality_flagged"]:
        troubles.append(f"Meta marked its number {r['quality_event']} (limit {r['current_limit']})")
    if r["account_event"] in ACCOUNT_FLAGS:
        troubles.append(f"its account's last event is {r['account_event']}")
    if r["ban_state"] == "SCHEDULE_FOR_DISABLE":
        troubles.append("Meta scheduled its account to be disabled")
    return troubles


def _channel_standing(conn: psycopg.Connection) -> Iterator[Check]:
    """Each active channel its provider says is down (an Evolution instance not open, a Meta account disabled)
    or in trouble (a number flagged or downgraded, an account violation, restriction or coming ban)."""
    if conn.execute("SELECT to_regclass('whatsapp_handler.channel_standing') IS NULL AS none").fetchone()["none"]:
        return  # a database deployed before channels/standing: the plan check says so
    rows = conn.execute(CHANNEL_STANDING).fetchall()
    named = 0
    for r in rows:
        name = f"channel standing {r['channel_id']}"
        since = "" if r["state_seconds"] is None else f" for {r['state_seconds']:.0f} s"
        if r["account_disabled"]:
            yield Check(name, "FAIL", f"{r['name']}: Meta disabled its WhatsApp Business Account "
                        f"({r['account_event']}){since}: it sends nothing",
                        f"read the ban in Meta's Business Manager and appeal it ({STANDING_FIX})")  # fmt: skip
        elif not r["connected"]:
            reason = "" if r["connection_reason"] is None else f" (reason {r['connection_reason']})"
            yield Check(name, "FAIL", f"{r['name']}: its Evolution instance is {r['connection']}{reason}{since}: "
                        "it sends nothing", "reconnect the instance on its Evolution server, with a new QR code "
                        f"when it was logged out (401) ({STANDING_FIX})")  # fmt: skip
        elif troubles := _standing_troubles(r):
            yield Check(name, "warn", f"{r['name']}: {'; '.join(troubles)}",
                        f"find what its recipients block or report before sending more ({STANDING_FIX})")  # fmt: skip
        else:
            continue
        named += 1
    if not named:
        yield Check("channel standing", "ok", f"{len(rows)} active channels, none down or flagged by its provider")


# Twilio waits 15 s for an answer and Meta counts an answer over 1 s against the app: a body
# that takes longer than this to arrive is lost to its provider anyway, and only holds a slot.
MAX_USEFUL_BODY_TIMEOUT = 15
# granian's own default; more lets trickling clients hold more memory (up to 4 MiB each).
MAX_BACKPRESSURE = 1024


def _slow_clients(settings: Settings) -> Iterator[Check]:
    """How long `serve` lets a client take, and how many it holds per worker (docs/relay.md, Slow clients)."""
    found = (f"a body within {settings.body_timeout:g} s, headers within {settings.http_header_timeout:g} s, "
             f"{settings.http_backpressure} connections per worker")  # fmt: skip
    if settings.body_timeout > MAX_USEFUL_BODY_TIMEOUT or settings.http_header_timeout > MAX_USEFUL_BODY_TIMEOUT:
        fix = (f"keep WHATSAPP_HANDLER_BODY_TIMEOUT and _HTTP_HEADER_TIMEOUT at {MAX_USEFUL_BODY_TIMEOUT} s or less: "
               "providers give up sooner, a trickling client does not")  # fmt: skip
        yield Check("slow clients", "warn", found, fix)
    elif settings.http_backpressure > MAX_BACKPRESSURE:
        yield Check("slow clients", "warn", found, f"keep WHATSAPP_HANDLER_HTTP_BACKPRESSURE at {MAX_BACKPRESSURE} "
                    "or less: each connection may hold a body of up to 4 MiB")  # fmt: skip
    else:
        yield Check("slow clients", "ok", found)
