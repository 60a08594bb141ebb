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
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from app.cluster import ClusterError
from app.cron_status import CRON_FAILURES
from app.database import embedded_cluster
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
        ("sqitch plan", lambda: _plan(conn, PLAN)),
        ("cron jobs", lambda: _cron_jobs(conn)),
        ("queues", lambda: _queues(conn, max_queue_age, max_dead_letter_age)),
        ("channels", lambda: _channels(conn, settings)),
        ("otp destinations", lambda: _otp(conn)),
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
        yield Check("cron runs", "FAIL", detail,
                    "run the job's function by hand to see the error (docs/jobs.md), fix it; "
                    "the next successful run clears this")  # fmt: skip
    else:
        yield Check("cron runs", "ok", "the last run of every job succeeded (or none ran yet)")


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


def _channels(conn: psycopg.Connection, settings: Settings) -> Iterator[Check]:
    known = {
        (r["provider"], r["provider_ref"]): r["active"]
        for r in conn.execute("SELECT provider::text, provider_ref, active FROM whatsapp_handler.channels").fetchall()
    }
    configured = {(c.provider, c.ref): c for c in settings.channels}
    if not configured and not known:
        yield Check("channels", "warn", "none configured", "set WHATSAPP_HANDLER_CHANNELS (docs/configuration.md)")
    # Imported here: the providers' modules hold their webhook routes, which load litestar and
    # prometheus_client; the CLI must not load the latter before `serve` configures it.
    from app import providers

    for (provider, ref), config in configured.items():
        name = f"channel {provider} {ref}"
        problem = providers.missing_credentials(config)
        if problem:
            yield Check(name, "FAIL", f"cannot send: {problem}",
                        "add it to the channel in WHATSAPP_HANDLER_CHANNELS (docs/configuration.md)")  # fmt: skip
        elif (provider, ref) not in known:
            yield Check(name, "warn", "configured but not in the database",
                        "`whatsapp-handler serve` registers the configured channels")  # fmt: skip
        else:
            yield Check(name, "ok", "can send" + ("" if known[(provider, ref)] else " (inactive in the database)"))
    for (provider, ref), active in sorted(known.items()):
        if (provider, ref) not in configured and active:
            yield Check(f"channel {provider} {ref}", "warn", "in the database but not configured here: "
                        "its webhooks are refused and its messages dead-lettered",
                        "add it to WHATSAPP_HANDLER_CHANNELS, or set it inactive")  # fmt: skip


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
