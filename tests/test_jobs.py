"""The scheduled jobs (docs/jobs.md): the jobs table kept in step with pg_cron's cron.job,
schedules and periods changed as data, each job function on data that straddles its
boundary, and who may run them. The re-drive functions have their own file
(test_jobs_redrive.py)."""

from __future__ import annotations

import re
import time
import uuid

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app import sqitch
from tests.conftest import CRON_DB
from tests.helpers import raises_sqlstate

CRON_LOGIN = "whatsapp_handler_cron"

JOBS = {
    "whatsapp_handler.partitions": ("7 * * * *", "SELECT whatsapp_handler.job_partitions()"),
    "whatsapp_handler.retention": ("*/10 * * * *", "SELECT whatsapp_handler.job_retention()"),
    "whatsapp_handler.cron_history": ("17 3 * * *", "SELECT whatsapp_handler.job_trim_cron_history()"),
    "whatsapp_handler.gdpr_inactive_users": ("37 * * * *", "SELECT whatsapp_handler.job_erase_inactive_users()"),
    "whatsapp_handler.redrive_inbound": ("* * * * *", "SELECT whatsapp_handler.redrive_inbound()"),
    "whatsapp_handler.redrive_outbound": ("* * * * *", "SELECT whatsapp_handler.redrive_outbound()"),
    "whatsapp_handler.analytics_refresh": ("*/10 * * * *", "SELECT whatsapp_handler.job_analytics_refresh()"),
    "whatsapp_handler.analyst_guard": ("* * * * *", "SELECT whatsapp_handler.job_analyst_guard()"),
    "whatsapp_handler.webhook_minutes": ("* * * * *", "SELECT whatsapp_handler.job_webhook_minutes()"),
}
JOB_FUNCTIONS = [
    "whatsapp_handler.job_partitions()",
    "whatsapp_handler.job_retention()",
    "whatsapp_handler.job_trim_cron_history()",
    "whatsapp_handler.job_erase_inactive_users()",
    "whatsapp_handler.redrive_inbound()",
    "whatsapp_handler.redrive_outbound()",
    "whatsapp_handler.job_analytics_refresh()",
    "whatsapp_handler.job_webhook_minutes()",
    "whatsapp_handler.job_analyst_guard()",
]


def set_setting(db, key: str, value) -> None:
    updated = db.execute(
        "UPDATE whatsapp_handler.settings SET value = %s, updated_at = now() WHERE key = %s", (Jsonb(value), key)
    )
    assert updated.rowcount == 1, key


def cron_jobs(conn) -> dict[str, tuple[str, str]]:
    rows = conn.execute(
        "SELECT jobname, schedule, command FROM cron.job WHERE jobname LIKE 'whatsapp\\_handler.%%'"
    ).fetchall()
    return {r["jobname"]: (r["schedule"], r["command"]) for r in rows}


@pytest.fixture
def cron_db(cluster):
    with psycopg.connect(cluster.url(CRON_DB), autocommit=True, row_factory=dict_row) as conn:
        yield conn


# --- the jobs in cron.job -------------------------------------------------------------


def test_deploy_schedules_every_job_in_pg_crons_database(cron_db):
    assert cron_jobs(cron_db) == JOBS
    table = cron_db.execute("SELECT cron_job_name, schedule, command, enabled FROM whatsapp_handler.jobs").fetchall()
    assert {r["cron_job_name"]: (r["schedule"], r["command"]) for r in table} == JOBS
    assert all(r["enabled"] for r in table)
    # pg_cron runs a job as the role it was scheduled for: the jobs' login, never a superuser.
    users = cron_db.execute(
        "SELECT DISTINCT r.rolname, r.rolcanlogin, r.rolsuper FROM cron.job j "
        "JOIN pg_roles r ON r.rolname = j.username WHERE j.jobname LIKE 'whatsapp\\_handler.%%'"
    ).fetchall()
    assert users == [{"rolname": CRON_LOGIN, "rolcanlogin": True, "rolsuper": False}]


def test_revert_removes_exactly_its_jobs_and_deploy_brings_them_back(cluster, cron_db):
    url = cluster.url(CRON_DB)
    cron_db.execute("SELECT cron.schedule('someone_else', '0 4 * * *', 'SELECT 1')")
    try:
        sqitch.run("revert", url, "--to", "jobs/redrive_outbound@v1.0.0", capture=True)
        assert cron_jobs(cron_db) == {}
        assert cron_db.execute("SELECT to_regclass('whatsapp_handler.jobs') AS t").fetchone()["t"] is None
        assert cron_db.execute("SELECT count(*) AS n FROM cron.job WHERE jobname = 'someone_else'").fetchone()["n"] == 1
        sqitch.run("deploy", url, capture=True)
        assert cron_jobs(cron_db) == JOBS
        sqitch.run("verify", url, capture=True)
    finally:
        cron_db.execute("SELECT cron.unschedule('someone_else')")
        sqitch.run("deploy", url, capture=True)


def test_verify_fails_when_a_job_is_missing_from_cron(cluster, cron_db):
    url = cluster.url(CRON_DB)
    # The verify of the change that schedules the jobs, as test_plan.py's verify tests run one change's:
    # the whole plan's runs it too, with every other change's (test_a_fresh_database_verifies).
    jobs_change = ("--from", "jobs/jobs", "--to", "jobs/jobs")
    # By id: a name alone unschedules only the caller's own job, and this one is the jobs' login's.
    cron_db.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'whatsapp_handler.retention'")
    try:
        with pytest.raises(sqitch.SqitchError, match=re.escape("verify/jobs/jobs.sql")):
            sqitch.run("verify", url, *jobs_change, capture=True)
    finally:
        # Touching the row schedules it again: the way a DBA re-syncs a job.
        cron_db.execute("UPDATE whatsapp_handler.jobs SET enabled = true WHERE name = 'retention'")
    sqitch.run("verify", url, *jobs_change, capture=True)
    assert cron_jobs(cron_db) == JOBS


def test_a_schedule_change_is_data(db):
    db.execute("UPDATE whatsapp_handler.jobs SET schedule = '*/5 * * * *' WHERE name = 'retention'")
    assert cron_jobs(db)["whatsapp_handler.retention"] == ("*/5 * * * *", "SELECT whatsapp_handler.job_retention()")

    db.execute("UPDATE whatsapp_handler.jobs SET enabled = false WHERE name = 'redrive_outbound'")
    assert "whatsapp_handler.redrive_outbound" not in cron_jobs(db)
    db.execute("UPDATE whatsapp_handler.jobs SET enabled = true WHERE name = 'redrive_outbound'")
    assert cron_jobs(db)["whatsapp_handler.redrive_outbound"] == JOBS["whatsapp_handler.redrive_outbound"]

    db.execute("UPDATE whatsapp_handler.jobs SET name = 'partition_maintenance' WHERE name = 'partitions'")
    jobs = cron_jobs(db)
    assert "whatsapp_handler.partitions" not in jobs
    assert jobs["whatsapp_handler.partition_maintenance"] == JOBS["whatsapp_handler.partitions"]

    db.execute("DELETE FROM whatsapp_handler.jobs WHERE name = 'cron_history'")
    assert "whatsapp_handler.cron_history" not in cron_jobs(db)
    db.execute(
        "INSERT INTO whatsapp_handler.jobs (name, function, schedule, description) "
        "VALUES ('inbound_often', 'redrive_inbound', '*/2 * * * *', 'a second re-drive')"
    )
    often = cron_jobs(db)["whatsapp_handler.inbound_often"]
    assert often == ("*/2 * * * *", "SELECT whatsapp_handler.redrive_inbound()")


def test_the_job_of_another_role_is_replaced_not_doubled(db):
    """A job of the same name scheduled for another role gives way: one job per name, run as the jobs' login."""
    db.execute("UPDATE cron.job SET username = 'whatsapp_handler_relay' WHERE jobname = 'whatsapp_handler.retention'")
    db.execute("UPDATE whatsapp_handler.jobs SET schedule = '*/15 * * * *' WHERE name = 'retention'")
    rows = db.execute("SELECT username, schedule FROM cron.job WHERE jobname = 'whatsapp_handler.retention'").fetchall()
    assert rows == [{"username": CRON_LOGIN, "schedule": "*/15 * * * *"}]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ("UPDATE whatsapp_handler.jobs SET schedule = 'every minute' WHERE name = 'retention'", "WH022"),
        ("UPDATE whatsapp_handler.jobs SET schedule = '61 * * * *' WHERE name = 'retention'", "WH022"),
        ("UPDATE whatsapp_handler.jobs SET function = 'job_nothing' WHERE name = 'retention'", "WH023"),
        (
            "INSERT INTO whatsapp_handler.jobs (name, function, schedule, description) "
            "VALUES ('x', 'redrive_everything', '* * * * *', 'x')",
            "WH023",
        ),
        # not a job_* or redrive_* function: refused by the table's CHECK
        ("UPDATE whatsapp_handler.jobs SET function = 'erase_user' WHERE name = 'retention'", "23514"),
    ],
)
def test_a_bad_job_is_refused_and_cron_is_left_as_it_was(db, change, code):
    with raises_sqlstate(code):
        db.execute(change)
    assert cron_jobs(db) == JOBS


def test_only_a_superuser_changes_the_jobs(db):
    """Scheduling a job for the jobs' login is a superuser's right: the owner (whose members could
    otherwise redefine what a superuser runs) only reads the table, and a role given UPDATE on it
    anyway is refused by the trigger before cron.job is touched."""
    with db.transaction():
        db.execute("SET LOCAL ROLE whatsapp_handler_owner")
        assert len(db.execute("SELECT name FROM whatsapp_handler.jobs").fetchall()) == len(JOBS)
        with raises_sqlstate("42501"):
            db.execute("UPDATE whatsapp_handler.jobs SET schedule = '*/5 * * * *' WHERE name = 'retention'")
    dba = f"wh_jobs_dba_{uuid.uuid4().hex[:8]}"
    db.execute(f"CREATE ROLE {dba} LOGIN")
    try:
        db.execute(f"GRANT USAGE ON SCHEMA whatsapp_handler TO {dba}")
        db.execute(f"GRANT SELECT, UPDATE, DELETE ON whatsapp_handler.jobs TO {dba}")
        for change in ("UPDATE whatsapp_handler.jobs SET schedule = '*/5 * * * *' WHERE name = 'retention'",
                       "DELETE FROM whatsapp_handler.jobs WHERE name = 'retention'"):  # fmt: skip
            with db.transaction():
                db.execute(f"SET LOCAL ROLE {dba}")
                with raises_sqlstate("WH021"):
                    db.execute(change)
    finally:
        db.execute(f"DROP OWNED BY {dba}")
        db.execute(f"DROP ROLE {dba}")
    assert cron_jobs(db) == JOBS


def test_a_job_the_jobs_login_may_not_execute_is_refused(db):
    db.execute("REVOKE EXECUTE ON FUNCTION whatsapp_handler.job_retention() FROM whatsapp_handler_cron")
    with raises_sqlstate("WH040"):
        db.execute("UPDATE whatsapp_handler.jobs SET schedule = '*/5 * * * *' WHERE name = 'retention'")
    assert cron_jobs(db) == JOBS


def test_the_jobs_login_runs_every_job_function_and_nothing_else(db):
    """What a job runs with: in a session of whatsapp_handler_cron, as pg_cron opens one, each job
    function works (the analytics refresh writes every channel's rows, the history trim that login's
    runs); a table, another function, a role change are refused."""
    from tests import analytics_data

    analytics_data.load(db)
    summaries = "SELECT count(*) AS n FROM whatsapp_handler.analytics_users"
    before = db.execute(summaries).fetchone()["n"]
    assert before > 0
    db.execute("SET SESSION AUTHORIZATION whatsapp_handler_cron")
    try:
        assert db.execute("SELECT session_user AS u").fetchone()["u"] == CRON_LOGIN
        for fn in JOB_FUNCTIONS:
            db.execute(f"SELECT {fn}")
        db.execute("SELECT whatsapp_handler.job_analytics_refresh('2000-01-01')")
        for denied in ("SELECT 1 FROM whatsapp_handler.users", "SELECT 1 FROM whatsapp_handler.jobs",
                       "SELECT 1 FROM pgmq.q_outbound", "SELECT whatsapp_handler.erase_user(1)",
                       "SELECT whatsapp_handler.cron_job_failures()",
                       "SELECT cron.schedule_in_database('x', '* * * * *', 'SELECT 1', current_database(), 'postgres')",
                       "ALTER ROLE whatsapp_handler_cron SUPERUSER",
                       "CREATE TABLE whatsapp_handler.intruder (id int)"):  # fmt: skip
            with raises_sqlstate("42501"):
                db.execute(denied)
    finally:
        db.execute("RESET SESSION AUTHORIZATION")
    assert db.execute(summaries).fetchone()["n"] == before


def wait_for_run(cron_db, job: str, since) -> dict | None:
    """The first finished run of a job started after since (pg_cron 1.4: minute granularity)."""
    jobid = cron_db.execute(
        "SELECT jobid FROM cron.job WHERE jobname = %s AND database = current_database()", (job,)
    ).fetchone()["jobid"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        run = cron_db.execute(
            "SELECT username, status, return_message FROM cron.job_run_details "
            "WHERE jobid = %s AND start_time > %s AND status IN ('succeeded', 'failed') ORDER BY runid LIMIT 1",
            (jobid, since),
        ).fetchone()
        if run is not None:
            return run
        time.sleep(1)
    return None


def test_the_jobs_run_under_pg_cron_as_the_jobs_login_only(cluster, cron_db, pg_cron_running):
    """Real runs: a job runs as whatsapp_handler_cron (a background worker, no password) and its
    command works; a member of whatsapp_handler_owner (not a superuser) who redefines a scheduled job
    function to make itself a superuser sees that run fail for lack of rights."""
    # Rescheduled from this database: the copied rows of the session's template name that one.
    cron_db.execute("UPDATE whatsapp_handler.jobs SET enabled = false")
    cron_db.execute("UPDATE whatsapp_handler.jobs SET enabled = true")
    member = f"wh_owner_member_{uuid.uuid4().hex[:8]}"
    guard = "whatsapp_handler.job_analyst_guard()"
    original = cron_db.execute("SELECT pg_get_functiondef(%s::regprocedure) AS d", (guard,)).fetchone()["d"]
    cron_db.execute(f"CREATE ROLE {member} LOGIN PASSWORD 'member-password' IN ROLE whatsapp_handler_owner")
    started = cron_db.execute("SELECT clock_timestamp() AS t").fetchone()["t"]
    try:
        with psycopg.connect(cluster.url(CRON_DB, user=member, password="member-password"), autocommit=True) as conn:
            conn.execute(
                f"CREATE OR REPLACE FUNCTION {guard} RETURNS jsonb LANGUAGE plpgsql SECURITY INVOKER "
                f"AS $$ BEGIN ALTER ROLE {member} SUPERUSER; RETURN '{{}}'; END $$"
            )
        since = cron_db.execute("SELECT clock_timestamp() AS t").fetchone()["t"]
        attack = wait_for_run(cron_db, "whatsapp_handler.analyst_guard", since)
        plain = wait_for_run(cron_db, "whatsapp_handler.redrive_inbound", since)
        superuser = cron_db.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (member,)).fetchone()
    finally:
        cron_db.execute(original)
        cron_db.execute(f"DROP ROLE {member}")
        # The session's other tests (doctor, /metrics) read this database's runs: the attack's go.
        cron_db.execute(
            "DELETE FROM cron.job_run_details WHERE status = 'failed' AND start_time > %s AND jobid IN "
            "(SELECT jobid FROM cron.job WHERE jobname = 'whatsapp_handler.analyst_guard')",
            (started,),
        )
    assert plain == {"username": CRON_LOGIN, "status": "succeeded", "return_message": "SELECT 1"}
    assert attack is not None and attack["username"] == CRON_LOGIN and attack["status"] == "failed"
    assert "permission denied" in attack["return_message"] or "must be superuser" in attack["return_message"]
    assert superuser == {"rolsuper": False}


# --- who may run them -----------------------------------------------------------------


@pytest.mark.parametrize("login", ["relay", "worker", "analyst", "consumer"])
def test_no_service_role_may_run_a_job_or_change_one(connect_as, login):
    conn = connect_as(login)
    for fn in JOB_FUNCTIONS:
        with raises_sqlstate("42501"):
            conn.execute(f"SELECT {fn}")
    with raises_sqlstate("42501"):
        conn.execute("SELECT whatsapp_handler.redrive_outbound(10, '{1}')")
    with raises_sqlstate("42501"):
        conn.execute("UPDATE whatsapp_handler.jobs SET enabled = false")
    with raises_sqlstate("42501"):
        conn.execute("UPDATE whatsapp_handler.settings SET value = '\"1 day\"' WHERE key = 'retention.webhook_events'")


# --- partitions -----------------------------------------------------------------------


def partitions(db, table: str) -> list[str]:
    rows = db.execute(
        "SELECT c.relname FROM pg_partition_tree(%s::regclass) t JOIN pg_class c ON c.oid = t.relid "
        "WHERE t.level = 1 ORDER BY c.relname",
        (f"whatsapp_handler.{table}",),
    ).fetchall()
    return [r["relname"] for r in rows]


def day_partition(db, days_ago_sql: str) -> str:
    """Makes the daily webhook_events partition holding the instant given as SQL; returns its name."""
    day = f"(date_trunc('day', ({days_ago_sql}) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"
    made = db.execute(
        f"SELECT whatsapp_handler.create_partition('whatsapp_handler.webhook_events', {day}, {day} + '1 day'::interval)"
    ).fetchone()["create_partition"]
    return made.removeprefix("whatsapp_handler.")


def test_partitions_wholly_past_retention_are_dropped_and_the_rest_stay(db):
    # The day that ends before the cutoff goes; the day that holds the cutoff stays.
    gone = day_partition(db, "now() - interval '30 days' - interval '1 day'")
    kept = day_partition(db, "now() - interval '30 days'")
    db.execute(
        "INSERT INTO whatsapp_handler.webhook_events (provider, payload, received_at) VALUES "
        "('meta', '{\"n\": 1}', now() - interval '30 days' - interval '1 day'), "
        "('meta', '{\"n\": 2}', now() - interval '30 days' + interval '1 minute'), "
        "('meta', '{\"n\": 3}', '1999-01-01Z')"  # a stray in the default partition: never dropped, never deleted
    )
    # Monthly tables: the month that ends before now() - 24 months goes, the one holding it stays.
    # In UTC: the partitions are whole UTC months.
    month = "(date_trunc('month', (now() - interval '24 months') AT TIME ZONE 'UTC') + make_interval(months => %s))"
    make = f"SELECT whatsapp_handler.create_partition(%s, {month} AT TIME ZONE 'UTC', {month} AT TIME ZONE 'UTC')::text"
    months = {
        "gone": db.execute(make, ("whatsapp_handler.messages", -1, 0)).fetchone()["create_partition"],
        "kept": db.execute(make, ("whatsapp_handler.messages", 0, 1)).fetchone()["create_partition"],
        "s": db.execute(make, ("whatsapp_handler.message_status_events", -1, 0)).fetchone()["create_partition"],
    }

    result = db.execute("SELECT whatsapp_handler.job_partitions() AS r").fetchone()["r"]

    short = {k: v.removeprefix("whatsapp_handler.") for k, v in months.items()}
    assert result["webhook_events"]["dropped"] == [gone]
    assert result["messages"]["dropped"] == [short["gone"]]
    assert result["message_status_events"]["dropped"] == [short["s"]]
    assert gone not in partitions(db, "webhook_events") and kept in partitions(db, "webhook_events")
    assert short["kept"] in partitions(db, "messages") and short["gone"] not in partitions(db, "messages")
    assert "webhook_events_default" in partitions(db, "webhook_events")
    left = db.execute("SELECT payload FROM whatsapp_handler.webhook_events ORDER BY received_at").fetchall()
    assert [r["payload"]["n"] for r in left] == [3, 2]
    assert result["webhook_events"]["default_has_rows"] is True
    assert result["messages"]["default_has_rows"] is False
    # Nothing left to do: a second run changes nothing.
    again = db.execute("SELECT whatsapp_handler.job_partitions() AS r").fetchone()["r"]
    assert all(again[t]["dropped"] == [] and again[t]["created"] == [] for t in again)


def run_job(db, call: str) -> dict:
    return db.execute(f"SELECT whatsapp_handler.{call} AS r").fetchone()["r"]


def test_a_retention_period_changed_as_data_takes_effect(db):
    recent = day_partition(db, "now() - interval '5 days'")
    assert run_job(db, "job_partitions()")["webhook_events"]["dropped"] == []
    set_setting(db, "retention.webhook_events", "3 days")
    assert run_job(db, "job_partitions()")["webhook_events"]["dropped"] == [recent]
    # null keeps everything
    older = day_partition(db, "now() - interval '400 days'")
    set_setting(db, "retention.webhook_events", None)
    assert run_job(db, "job_partitions()")["webhook_events"]["dropped"] == []
    assert older in partitions(db, "webhook_events")


def test_partitions_are_made_ahead_as_far_as_the_setting_says(db):
    horizon = "to_char(date_trunc('day', now() AT TIME ZONE 'UTC') + interval '%s days', 'YYYYMMDD')"
    day = lambda n: "webhook_events_p" + db.execute(f"SELECT {horizon % n} AS d").fetchone()["d"]  # noqa: E731
    assert day(7) in partitions(db, "webhook_events") and day(10) not in partitions(db, "webhook_events")
    set_setting(db, "partitions.webhook_events.ahead", 10)
    created = db.execute("SELECT whatsapp_handler.job_partitions() AS r").fetchone()["r"]["webhook_events"]["created"]
    assert created == [day(8), day(9), day(10)]
    assert day(10) in partitions(db, "webhook_events") and day(11) not in partitions(db, "webhook_events")
    owner = db.execute(
        "SELECT relowner::regrole::text AS o FROM pg_class WHERE oid = %s::regclass", (f"whatsapp_handler.{day(10)}",)
    ).fetchone()["o"]
    assert owner == "whatsapp_handler_owner"


def test_a_range_whose_rows_sit_in_the_default_partition_is_reported_not_fatal(db):
    db.execute(
        "INSERT INTO whatsapp_handler.webhook_events (provider, payload, received_at) "
        "VALUES ('meta', '{}', now() + interval '9 days')"
    )
    set_setting(db, "partitions.webhook_events.ahead", 10)
    result = db.execute("SELECT whatsapp_handler.job_partitions() AS r").fetchone()["r"]["webhook_events"]
    assert len(result["blocked"]) == 1 and len(result["created"]) == 2
    assert result["default_has_rows"] is True


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("retention.webhook_events", "0 days"),  # would drop today's partition
        ("retention.webhook_events", "soon"),
        ("retention.webhook_events", 30),
        ("partitions.messages.ahead", 401),
        ("partitions.messages.ahead", "2"),
        ("partitions.messages.ahead", 1.5),
    ],
)
def test_a_malformed_setting_stops_the_job_with_a_hint(db, key, value):
    set_setting(db, key, value)
    before = partitions(db, "webhook_events")
    with raises_sqlstate("WH020"):
        db.execute("SELECT whatsapp_handler.job_partitions()")
    assert partitions(db, "webhook_events") == before


def test_a_missing_setting_stops_the_job_with_a_hint(db):
    db.execute("DELETE FROM whatsapp_handler.settings WHERE key = 'retention.queue_archives'")
    with raises_sqlstate("WH011"):
        db.execute("SELECT whatsapp_handler.job_retention()")


# --- row retention --------------------------------------------------------------------

QUEUES = ["outbox", "outbound", "inbound_dlq", "outbox_dlq", "outbound_dlq"]


def archive_rows(db, queue: str) -> list[str]:
    return [r["message"]["age"] for r in db.execute(f"SELECT message FROM pgmq.a_{queue} ORDER BY msg_id").fetchall()]


@pytest.fixture
def user_id(db, channel_id) -> int:
    row = db.execute("INSERT INTO whatsapp_handler.users (phone) VALUES ('+447700900001') RETURNING id").fetchone()
    return row["id"]


def test_retention_deletes_what_is_past_its_period_and_keeps_the_rest(db, channel_id, user_id):
    for i, queue in enumerate(QUEUES):
        db.execute(
            f"INSERT INTO pgmq.a_{queue} (msg_id, vt, message, archived_at) VALUES "
            f"({i * 10 + 1}, now(), '{{\"age\": \"old\"}}', now() - interval '7 days' - interval '1 minute'), "
            f"({i * 10 + 2}, now(), '{{\"age\": \"young\"}}', now() - interval '7 days' + interval '1 minute')"
        )
    # OTP challenges: resolved, or expired unused, more than a day ago go; the others stay.
    other = db.execute("INSERT INTO whatsapp_handler.users (phone) VALUES ('+447700900002') RETURNING id").fetchone()
    db.execute(
        "INSERT INTO whatsapp_handler.otp_challenges (user_id, channel_id, status, code_hash, created_at, expires_at, "
        "resolved_at) VALUES "
        "(%(u)s, %(c)s, 'verified', NULL, now() - '2 days'::interval, now() - '47 hours'::interval, "
        " now() - interval '1 day' - interval '1 minute'), "
        "(%(u)s, %(c)s, 'superseded', NULL, now() - '2 days'::interval, now() - '47 hours'::interval, "
        " now() - interval '1 day' + interval '1 minute'), "
        "(%(u)s, %(c)s, 'expired', NULL, now() - '3 days'::interval, now() - '71 hours'::interval, "
        " now() - interval '3 days'), "
        "(%(u)s, %(c)s, 'pending', 'x', now() - interval '1 hour', now() - interval '50 minutes', NULL), "
        "(%(o)s, %(c)s, 'pending', 'y', now() - '3 days'::interval, now() - '71 hours'::interval, NULL)",
        {"u": user_id, "o": other["id"], "c": channel_id},
    )
    db.execute(
        "INSERT INTO whatsapp_handler.message_keys (channel_id, provider_message_id, message_id, message_created_at) "
        "VALUES (%(c)s, 'old', 1, now() - interval '24 months' - interval '1 minute'), "
        "       (%(c)s, 'young', 2, now() - interval '24 months' + interval '1 minute')",
        {"c": channel_id},
    )

    result = db.execute("SELECT whatsapp_handler.job_retention() AS r").fetchone()["r"]

    assert result == {
        "queue_archives": dict.fromkeys(QUEUES, 1),
        "otp_challenges": 3,
        "message_keys": 1,
        "send_requests": 0,
        "dead_letter_history": 0,
    }  # tests/test_sending.py trims those
    for queue in QUEUES:
        assert archive_rows(db, queue) == ["young"]
    statuses = db.execute("SELECT status::text FROM whatsapp_handler.otp_challenges ORDER BY id").fetchall()
    assert [r["status"] for r in statuses] == ["superseded", "pending"]
    keys = db.execute("SELECT provider_message_id FROM whatsapp_handler.message_keys").fetchall()
    assert keys == [{"provider_message_id": "young"}]


def test_retention_works_in_bounded_batches(db):
    db.execute(
        "INSERT INTO pgmq.a_outbox (msg_id, vt, message, archived_at) "
        "SELECT i, now(), '{\"age\": \"old\"}', now() - interval '30 days' FROM generate_series(1, 5) i"
    )
    set_setting(db, "retention.batch_size", 2)
    counts = [
        db.execute("SELECT whatsapp_handler.job_retention() AS r").fetchone()["r"]["queue_archives"]["outbox"]
        for _ in range(4)
    ]
    assert counts == [2, 2, 1, 0]


def test_queue_archive_retention_changed_as_data(db):
    db.execute(
        "INSERT INTO pgmq.a_outbound (msg_id, vt, message, archived_at) "
        "VALUES (1, now(), '{\"age\": \"two days\"}', now() - interval '2 days')"
    )
    assert db.execute("SELECT whatsapp_handler.job_retention() AS r").fetchone()["r"]["queue_archives"]["outbound"] == 0
    set_setting(db, "retention.queue_archives", "1 day")
    assert db.execute("SELECT whatsapp_handler.job_retention() AS r").fetchone()["r"]["queue_archives"]["outbound"] == 1
    assert archive_rows(db, "outbound") == []


def test_cron_history_is_trimmed_past_its_period(db):
    """The runs of the jobs' login past the period go; younger runs, and other roles' jobs, stay."""
    db.execute(
        "INSERT INTO cron.job_run_details (jobid, runid, username, command, status, start_time, end_time) VALUES "
        "(1, 1001, 'whatsapp_handler_cron', 'old', 'succeeded', now() - '8 days'::interval, "
        " now() - '7 days 1 minute'::interval), "
        "(1, 1002, 'whatsapp_handler_cron', 'young', 'succeeded', now() - '8 days'::interval, "
        " now() - '7 days -1 minute'::interval), "
        "(2, 1003, 'postgres', 'not ours', 'succeeded', now() - '8 days'::interval, now() - '8 days'::interval)"
    )
    assert db.execute("SELECT whatsapp_handler.job_trim_cron_history() AS r").fetchone()["r"] == {"job_run_details": 1}
    left = db.execute("SELECT command FROM cron.job_run_details WHERE runid IN (1001, 1002, 1003) ORDER BY runid")
    assert left.fetchall() == [{"command": "young"}, {"command": "not ours"}]


# --- GDPR -----------------------------------------------------------------------------


def make_user(db, phone: str, last_active: str | None, created: str = "now()") -> int:
    return db.execute(
        f"INSERT INTO whatsapp_handler.users (phone, last_active_at, created_at) "
        f"VALUES (%s, {last_active or 'NULL'}, {created}) RETURNING id",
        (phone,),
    ).fetchone()["id"]


def erased(db) -> set[int]:
    return {r["id"] for r in db.execute("SELECT id FROM whatsapp_handler.users WHERE erased_at IS NOT NULL")}


def test_users_inactive_past_the_period_are_erased_and_the_others_kept(db):
    long_ago = "now() - interval '3 years'"
    out = make_user(db, "+447700900001", "now() - interval '24 months' - interval '1 day'", long_ago)
    inside = make_user(db, "+447700900002", "now() - interval '24 months' + interval '1 day'", long_ago)
    never_old = make_user(db, "+447700900003", None, "now() - interval '25 months'")
    never_new = make_user(db, "+447700900004", None, "now() - interval '1 month'")

    result = db.execute("SELECT whatsapp_handler.job_erase_inactive_users() AS r").fetchone()["r"]

    assert result == {"erased": 2, "failed": 0, "remaining": False}
    assert erased(db) == {out, never_old}
    phones = db.execute("SELECT id, phone FROM whatsapp_handler.users WHERE id IN (%s, %s)", (out, inside)).fetchall()
    assert {r["id"]: r["phone"] for r in phones} == {out: None, inside: "+447700900002"}
    assert never_new not in erased(db)
    # erase_user did the work: its event was emitted for each.
    events = db.execute("SELECT count(*) AS n FROM pgmq.q_outbox WHERE message ->> 'type' = 'user.erased'").fetchone()
    assert events["n"] == 2


def test_gdpr_erasure_goes_in_bounded_batches_and_follows_its_setting(db):
    ids = [make_user(db, f"+44770090010{i}", f"now() - interval '{13 + i} months'") for i in range(3)]
    assert db.execute("SELECT whatsapp_handler.job_erase_inactive_users() AS r").fetchone()["r"]["erased"] == 0
    set_setting(db, "gdpr.inactive_after", "12 months")
    set_setting(db, "gdpr.batch_size", 2)
    first = db.execute("SELECT whatsapp_handler.job_erase_inactive_users() AS r").fetchone()["r"]
    assert first == {"erased": 2, "failed": 0, "remaining": True}
    assert erased(db) == {ids[2], ids[1]}  # longest inactive first
    second = db.execute("SELECT whatsapp_handler.job_erase_inactive_users() AS r").fetchone()["r"]
    assert second == {"erased": 1, "failed": 0, "remaining": False}
    with raises_sqlstate("WH024"):
        db.execute("SELECT whatsapp_handler.job_erase_inactive_users(0)")
