"""Late jobs (docs/jobs.md#late-jobs): a job's period from its pg_cron schedule, and the rule that
an enabled job is late when it has not started within twice it, on runs planted in
cron.job_run_details; the gauges /metrics builds from them; who may read them."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.rows import dict_row

from app.metrics import _lateness_families
from tests.conftest import fresh_database
from tests.helpers import raises_sqlstate

MIN, HOUR, DAY = 60, 3600, 86400

# (schedule, period in seconds or None when it cannot be bounded)
PERIODS = [
    ("* * * * *", MIN),
    ("*/10 * * * *", 10 * MIN),
    ("*/7 * * * *", 7 * MIN),  # 0, 7, ... 56, then 4 minutes to the hour: the longest wait is 7
    ("0,30 * * * *", 30 * MIN),
    ("7 * * * *", HOUR),
    ("0-10 * * * *", 50 * MIN),
    ("17 3 * * *", DAY),
    ("0 9,17 * * *", 16 * HOUR),
    ("0 */6 * * *", 6 * HOUR),
    ("15 10/4 * * *", 12 * HOUR),  # 10:15, 14:15, 18:15, 22:15, then 10:15 next day
    ("0 9 * * 1-5", 3 * DAY),  # Friday to Monday
    ("0 9 * * MON-FRI", 3 * DAY),
    ("30 8 * * sat,sun", 6 * DAY),
    ("0 0 * * 0", 7 * DAY),
    ("0 0 * * 7", 7 * DAY),
    ("@weekly", 7 * DAY),
    ("@hourly", HOUR),
    ("@daily", DAY),
    ("@midnight", DAY),
    ("  @Daily ", DAY),
    ("@monthly", 31 * DAY),
    ("@yearly", 366 * DAY),
    ("@annually", 366 * DAY),
    ("0 0 1 1 *", 366 * DAY),
    ("0 0 31 * *", 61 * DAY),  # 31 August to 31 October
    ("0 0 1 */3 *", 92 * DAY),
    ("0 0 1 jan,jul *", 184 * DAY),
    ("0 0 29 2 *", 1461 * DAY),  # leap days
    ("0 12 13 * 5", 7 * DAY),  # the 13th or a Friday (neither field is *)
    ("0 12 */2 * 5", 21 * DAY),  # a field starting with *: odd days that are Fridays
    ("0 0 $ * *", 31 * DAY),  # pg_cron 1.5: the month's last day
    ("30 seconds", 30),
    ("1 second", 1),
    # Cannot be bounded, or not a schedule: NULL, and the job is never judged late.
    ("@reboot", None),
    ("0 0 30 2 *", None),
    ("0 0 31 4 *", None),
    ("0 seconds", None),
    ("60 seconds", None),
    ("60 * * * *", None),
    ("* 24 * * *", None),
    ("5-1 * * * *", None),
    ("*-5 * * * *", None),
    ("*/0 * * * *", None),
    ("0 0 * * 8", None),
    ("0 0 * foo *", None),
    ("0 0 * * * *", None),
    ("* * * *", None),
    ("", None),
    ("nonsense", None),
]


@pytest.fixture(scope="module")
def shared_db(cluster):
    """One database for the tests that only read (the periods)."""
    with (
        fresh_database(cluster) as name,
        psycopg.connect(cluster.url(name), autocommit=True, row_factory=dict_row) as c,
    ):
        yield c


@pytest.mark.parametrize(("schedule", "seconds"), PERIODS)
def test_the_period_of_a_schedule(shared_db, schedule, seconds):
    row = shared_db.execute(
        "SELECT extract(epoch FROM whatsapp_handler._cron_period(%s))::float8 AS s", (schedule,)
    ).fetchone()
    assert row["s"] == seconds


def test_the_shipped_schedules_have_periods(shared_db):
    rows = shared_db.execute(
        "SELECT name FROM whatsapp_handler.jobs WHERE whatsapp_handler._cron_period(schedule) IS NULL"
    ).fetchall()
    assert rows == []


def _plant(db, job: str, ago: str, status: str = "succeeded") -> None:
    db.execute(
        "INSERT INTO cron.job_run_details (jobid, runid, username, command, status, start_time, end_time) "
        "SELECT jobid, (SELECT coalesce(max(runid), 0) + 1 FROM cron.job_run_details), username, command, %s, "
        "now() - %s::interval, now() - %s::interval FROM cron.job WHERE jobname = %s",
        (status, ago, ago, f"whatsapp_handler.{job}"),
    )


def _lateness(conn) -> dict[str, dict]:
    return {r["job_name"].removeprefix("whatsapp_handler."): r
            for r in conn.execute("SELECT * FROM whatsapp_handler.cron_job_lateness()").fetchall()}  # fmt: skip


@pytest.fixture
def jobs_db(db):
    """The test database's copy of cron.job names the template: this database's jobs, as on a deploy.
    Every job enabled three hours ago, no run in the history."""
    db.execute("UPDATE cron.job SET database = current_database()")
    db.execute("DELETE FROM cron.job_run_details")
    db.execute("ALTER TABLE whatsapp_handler.jobs DISABLE TRIGGER jobs_scheduled_at")
    db.execute("UPDATE whatsapp_handler.jobs SET scheduled_at = now() - interval '3 hours'")
    db.execute("ALTER TABLE whatsapp_handler.jobs ENABLE TRIGGER jobs_scheduled_at")
    return db


def test_late_jobs_on_planted_runs(jobs_db, connect_as):
    db = jobs_db
    _plant(db, "retention", "15 minutes")  # */10: 15 min is under twice 10
    _plant(db, "analytics_refresh", "25 minutes")  # */10: over 20
    _plant(db, "redrive_inbound", "90 seconds")  # every minute: under 2 minutes
    _plant(db, "redrive_outbound", "3 minutes")  # over 2
    _plant(db, "redrive_outbound", "10 minutes", "failed")  # an older run does not count
    _plant(db, "cron_history", "30 hours", "failed")  # daily: a failed run is a run (failures alert apart)
    _plant(db, "analyst_guard", "5 minutes", "running")  # still running since: a stuck run is late
    # partitions (hourly) and gdpr_inactive_users (hourly) never ran: judged from three hours ago.
    # webhook_minutes (every minute) never ran either.
    rows = _lateness(connect_as("relay"))
    overdue = {job for job, r in rows.items() if r["overdue"]}
    assert overdue == {"analytics_refresh", "redrive_outbound", "analyst_guard", "partitions",
                       "gdpr_inactive_users", "webhook_minutes"}  # fmt: skip
    assert rows["retention"]["overdue"] is False and rows["cron_history"]["overdue"] is False
    assert rows["retention"]["period_seconds"] == 600 and rows["cron_history"]["period_seconds"] == DAY
    assert rows["partitions"]["last_run_at"] is None
    assert (
        rows["retention"]["last_run_at"]
        == db.execute(
            "SELECT max(start_time) AS t FROM cron.job_run_details d JOIN cron.job c USING (jobid) "
            "WHERE c.jobname = 'whatsapp_handler.retention'"
        ).fetchone()["t"]
    )
    # A later run clears it.
    _plant(db, "redrive_outbound", "10 seconds")
    assert _lateness(connect_as("relay"))["redrive_outbound"]["overdue"] is False


def test_a_job_enabled_again_or_rescheduled_is_judged_from_then(jobs_db):
    db = jobs_db
    _plant(db, "partitions", "5 hours")
    _plant(db, "retention", "5 hours")
    assert _lateness(db)["partitions"]["overdue"] and _lateness(db)["retention"]["overdue"]
    db.execute("UPDATE whatsapp_handler.jobs SET enabled = false WHERE name = 'partitions'")
    assert "partitions" not in _lateness(db)  # a disabled job is not judged
    db.execute("UPDATE whatsapp_handler.jobs SET enabled = true WHERE name = 'partitions'")
    db.execute("UPDATE whatsapp_handler.jobs SET schedule = '*/5 * * * *' WHERE name = 'retention'")
    rows = _lateness(db)
    assert rows["partitions"]["overdue"] is False and rows["retention"]["overdue"] is False
    assert rows["retention"]["period_seconds"] == 300
    # Changing something else (the description) moves nothing.
    before = db.execute("SELECT scheduled_at FROM whatsapp_handler.jobs WHERE name = 'gdpr_inactive_users'").fetchone()
    db.execute("UPDATE whatsapp_handler.jobs SET description = 'x', enabled = true WHERE name = 'gdpr_inactive_users'")
    after = db.execute("SELECT scheduled_at FROM whatsapp_handler.jobs WHERE name = 'gdpr_inactive_users'").fetchone()
    assert before == after and _lateness(db)["gdpr_inactive_users"]["overdue"]


def test_a_schedule_without_a_period_is_never_late(jobs_db):
    db = jobs_db
    db.execute("UPDATE whatsapp_handler.jobs SET schedule = '0 0 31 2 *' WHERE name = 'cron_history'")
    db.execute("ALTER TABLE whatsapp_handler.jobs DISABLE TRIGGER jobs_scheduled_at")
    db.execute(
        "UPDATE whatsapp_handler.jobs SET scheduled_at = now() - interval '400 days' WHERE name = 'cron_history'"
    )
    db.execute("ALTER TABLE whatsapp_handler.jobs ENABLE TRIGGER jobs_scheduled_at")
    row = _lateness(db)["cron_history"]
    assert row["period_seconds"] is None and row["overdue"] is None and row["age_seconds"] > 399 * DAY


def test_a_job_scheduled_for_another_role_counts_as_never_run(jobs_db):
    db = jobs_db
    _plant(db, "retention", "1 minute")
    db.execute("UPDATE cron.job SET username = 'postgres' WHERE jobname = 'whatsapp_handler.retention'")
    row = _lateness(db)["retention"]
    assert row["last_run_at"] is None and row["overdue"]


def test_the_gauges(jobs_db, connect_as):
    _plant(jobs_db, "retention", "25 minutes")
    _plant(jobs_db, "redrive_inbound", "30 seconds")
    jobs_db.execute("UPDATE whatsapp_handler.jobs SET schedule = '@reboot' WHERE name = 'cron_history'")
    rows = (
        connect_as("relay")
        .execute("SELECT job_name, period_seconds, age_seconds, overdue FROM whatsapp_handler.cron_job_lateness()")
        .fetchall()
    )
    families = {f.name: {s.labels.get("cron_job"): s.value for s in f.samples}
                for f in _lateness_families([tuple(r.values()) for r in rows])}  # fmt: skip
    assert families["whatsapp_cron_lateness_up"] == {None: 1}
    assert families["whatsapp_cron_job_overdue"]["whatsapp_handler.retention"] == 1
    assert families["whatsapp_cron_job_overdue"]["whatsapp_handler.redrive_inbound"] == 0
    assert families["whatsapp_cron_job_period_seconds"]["whatsapp_handler.retention"] == 600
    # No period, no verdict: the job has an age but no overdue or period series.
    assert "whatsapp_handler.cron_history" not in families["whatsapp_cron_job_overdue"]
    assert "whatsapp_handler.cron_history" in families["whatsapp_cron_job_last_run_age_seconds"]
    assert 25 * MIN <= families["whatsapp_cron_job_last_run_age_seconds"]["whatsapp_handler.retention"] < DAY
    assert {f.name: [s.value for s in f.samples] for f in _lateness_families(None)}["whatsapp_cron_lateness_up"] == [0]


@pytest.mark.parametrize("login", ["worker", "analyst", "consumer"])
def test_only_the_relay_reads_the_lateness(connect_as, login):
    with raises_sqlstate("42501"):
        connect_as(login).execute("SELECT * FROM whatsapp_handler.cron_job_lateness()")


def test_the_relay_reads_nothing_else(connect_as):
    relay = connect_as("relay")
    for call in ("SELECT whatsapp_handler._cron_period('* * * * *')",
                 "SELECT * FROM whatsapp_handler._cron_job_last_runs()",
                 "SELECT whatsapp_handler._cron_field('*', 0, 59)",
                 "UPDATE whatsapp_handler.jobs SET scheduled_at = now()"):  # fmt: skip
        with raises_sqlstate("42501"):
            relay.execute(call)


def test_an_owner_member_may_not_move_the_clock(db, cluster, db_name):
    """scheduled_at is the superuser's table's: a member of the owner reads it and changes nothing."""
    db.execute("CREATE ROLE wh_late_owner LOGIN PASSWORD 'pw' IN ROLE whatsapp_handler_owner")
    try:
        with psycopg.connect(cluster.url(db_name, user="wh_late_owner", password="pw"), autocommit=True) as conn:
            conn.execute("SET ROLE whatsapp_handler_owner")
            assert conn.execute("SELECT count(*) FROM whatsapp_handler.jobs WHERE scheduled_at <= now()").fetchone()[0]
            with raises_sqlstate("42501"):
                conn.execute("UPDATE whatsapp_handler.jobs SET scheduled_at = now() + interval '1 year'")
    finally:
        db.execute("DROP ROLE wh_late_owner")
