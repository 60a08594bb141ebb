"""The webhooks' success rate (docs/ingestion.md#success-rate): webhook_success_rate() and
analytics.webhook_success_daily against outcomes planted in webhook_events (several providers
and channels, webhooks just inside and just outside the hour and the day), a re-drive, a late
commit, the gauges /metrics builds, and who may read what."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg.rows import dict_row

from app.metrics import _success_families
from tests.conftest import LOGIN_PASSWORD
from tests.helpers import raises_sqlstate
from tests.test_plan import _sqitch

PLANT = """INSERT INTO whatsapp_handler.webhook_events (received_at, provider, channel_id, payload, outcome, error)
SELECT date_trunc('minute', now()) - %(ago)s::interval, %(provider)s, %(channel)s, '{}', %(outcome)s,
       CASE WHEN %(outcome)s = 'failed' THEN 'WH000: planted' END
FROM generate_series(1, %(n)s)"""


def plant(conn, provider, channel, ago, outcome="processed", n=1):
    conn.execute(PLANT, {"provider": provider, "channel": channel, "ago": ago, "outcome": outcome, "n": n})


def rate(conn) -> dict[tuple, tuple]:
    return {(r["span"], r["provider"], r["channel_id"]): (r["webhooks"], r["failed"], r["success_ratio"])
            for r in conn.execute("SELECT * FROM whatsapp_handler.webhook_success_rate()").fetchall()}  # fmt: skip


@pytest.fixture
def channels(db):
    add = "SELECT whatsapp_handler.add_channel(%s, %s, %s, %s) AS id"
    return {
        "a": db.execute(add, ("meta", "111", "+15550000001", "A")).fetchone()["id"],
        "b": db.execute(add, ("meta", "222", "+15550000002", "B")).fetchone()["id"],
        "c": db.execute(add, ("twilio", "AC1", "+15550000003", "C")).fetchone()["id"],
    }


def plant_all(db, ch) -> None:
    """Outcomes planted relative to the current minute T and the job run, in the caller's transaction
    (one now()): the job counts up to T, so the hour is [T - 60 min, T) and the day [T - 24 h, T)."""
    a, b, c = ch["a"], ch["b"], ch["c"]
    plant(db, "meta", a, "60 minutes")  # the hour's first minute: in
    plant(db, "meta", a, "30 minutes", "stored")  # kept raw, not failed: a success
    plant(db, "meta", a, "1 minute", "failed")  # the hour's last minute: in
    plant(db, "meta", a, "0 minutes", "failed")  # the current minute: not counted yet
    plant(db, "meta", a, "61 minutes", "failed")  # out of the hour, in the day
    plant(db, "meta", a, "1439 minutes")  # the day's first minute: in
    plant(db, "meta", a, "1441 minutes", "failed")  # out of the day
    plant(db, "meta", b, "10 minutes", n=300)
    plant(db, "meta", b, "11 minutes", "failed", n=2)
    plant(db, "twilio", c, "5 minutes", n=2)
    plant(db, "meta", None, "20 minutes", "failed")  # a number the service does not know
    db.execute("SELECT whatsapp_handler.job_webhook_minutes()")


@pytest.fixture
def counted(db, channels):
    with db.transaction():
        plant_all(db, channels)
    return db, channels


def test_the_rate_over_the_hour_and_the_day(counted, connect_as):
    _db, ch = counted
    got = rate(connect_as("relay"))
    a, b, c = ch["a"], ch["b"], ch["c"]
    assert got[("1h", "meta", a)][:2] == (3, 1)
    assert got[("1h", "meta", a)][2] == pytest.approx(2 / 3)
    assert got[("24h", "meta", a)][:2] == (5, 2)
    assert got[("1h", "meta", b)] == (302, 2, pytest.approx(300 / 302))
    assert got[("1h", "twilio", c)] == (2, 0, 1.0)
    assert got[("1h", "meta", None)] == (1, 1, 0.0)
    assert set(got) == {(s, p, ch_) for s in ("1h", "24h")
                        for p, ch_ in (("meta", a), ("meta", b), ("twilio", c), ("meta", None))}  # fmt: skip


def test_a_redrive_and_a_late_commit_show_at_the_next_run(db, channels):
    a = channels["a"]
    with db.transaction():
        plant_all(db, channels)
        # A re-drive that succeeds (jobs/redrive_inbound) marks the webhook processed.
        db.execute(
            "UPDATE whatsapp_handler.webhook_events SET outcome = 'processed', error = NULL WHERE channel_id = %s "
            "AND outcome = 'failed' AND received_at = date_trunc('minute', now()) - interval '61 minutes'",
            (a,),
        )
        # A webhook of the last minute counted, committed after the run: counted by the next one.
        plant(db, "meta", a, "1 minute", "failed")
        # B's two failures have their dead letters waiting: one of them changed behind the letters'
        # back is not looked at again (a minute is counted again only with fewer letters than failures).
        db.execute(
            "SELECT whatsapp_handler._dead_letter_inbound(jsonb_build_object('webhook_event_id', id, "
            "'received_at', received_at, 'provider', provider)) FROM whatsapp_handler.webhook_events "
            "WHERE channel_id = %s AND outcome = 'failed'",
            (channels["b"],),
        )
        db.execute(
            "UPDATE whatsapp_handler.webhook_events SET outcome = 'processed', error = NULL WHERE id = "
            "(SELECT min(id) FROM whatsapp_handler.webhook_events WHERE channel_id = %s AND outcome = 'failed')",
            (channels["b"],),
        )
        db.execute("SELECT whatsapp_handler.job_webhook_minutes()")
        got = rate(db)
    assert got[("24h", "meta", a)][:2] == (6, 2)
    assert got[("1h", "meta", a)][:2] == (4, 2)
    assert got[("1h", "meta", channels["b"])][:2] == (302, 2)


def test_the_analysts_see_their_channels_days(counted, cluster, db_name):
    db, ch = counted
    made = []

    def analyst(ids, all_channels=False):
        login = f"wh_analyst_{uuid.uuid4().hex[:12]}"
        db.execute(f"CREATE ROLE {login} LOGIN PASSWORD '{LOGIN_PASSWORD}' IN ROLE whatsapp_handler_analyst")
        if ids or all_channels:  # else a member of the analysts' group with no scope at all
            db.execute("SELECT whatsapp_handler.add_analyst(%s, %s, %s)", (login, ids, all_channels))
        made.append(login)
        return psycopg.connect(cluster.url(db_name, user=login, password=LOGIN_PASSWORD), autocommit=True,
                               row_factory=dict_row)  # fmt: skip

    total = (
        "SELECT provider, channel_id, sum(webhooks) AS n, sum(failed) AS f FROM analytics.webhook_success_daily "
        "GROUP BY 1, 2"
    )
    try:
        with analyst([ch["a"]]) as conn:
            days = conn.execute(total).fetchall()
            # Every planted webhook of A but the current minute's; none of B, C or no channel.
            assert days == [{"provider": "meta", "channel_id": ch["a"], "n": 6, "f": 3}]
            ratio = conn.execute("SELECT min(success_ratio) AS r FROM analytics.webhook_success_daily").fetchone()["r"]
            assert 0 <= ratio < 1
        with analyst(None, all_channels=True) as conn:
            seen = {(r["provider"], r["channel_id"]): (r["n"], r["f"]) for r in conn.execute(total).fetchall()}
            assert seen == {("meta", ch["a"]): (6, 3), ("meta", ch["b"]): (302, 2), ("twilio", ch["c"]): (2, 0),
                            ("meta", None): (1, 1)}  # fmt: skip
        with analyst([]) as conn:
            assert conn.execute(total).fetchall() == []
            with raises_sqlstate("42501"):
                conn.execute("SELECT * FROM whatsapp_handler.analytics_webhooks_daily")
    finally:
        for login in made:
            db.execute(f"DROP ROLE {login}")


def test_the_gauges(counted, connect_as):
    _db, ch = counted
    rows = (
        connect_as("relay")
        .execute(
            "SELECT span, provider, channel_id, webhooks, failed, success_ratio "
            "FROM whatsapp_handler.webhook_success_rate()"
        )
        .fetchall()
    )
    families = {f.name: {tuple(s.labels.values()): s.value for s in f.samples}
                for f in _success_families([tuple(r.values()) for r in rows])}  # fmt: skip
    assert families["whatsapp_webhook_success_up"] == {(): 1}
    key = ("meta", str(ch["b"]), "1h")
    assert families["whatsapp_webhook_success_ratio"][key] == pytest.approx(300 / 302)
    assert families["whatsapp_webhook_window_received"][key] == 302
    assert families["whatsapp_webhook_window_failed"][key] == 2
    assert families["whatsapp_webhook_window_failed"][("meta", "unknown", "24h")] == 1
    assert {f.name: list(f.samples) for f in _success_families(None)}["whatsapp_webhook_success_ratio"] == []


def test_before_the_first_run_there_is_no_rate(db, connect_as):
    plant(db, "meta", None, "5 minutes", "failed")
    assert rate(connect_as("relay")) == {}


@pytest.mark.parametrize("login", ["worker", "analyst", "consumer"])
def test_only_the_relay_reads_the_rate(connect_as, login):
    with raises_sqlstate("42501"):
        connect_as(login).execute("SELECT * FROM whatsapp_handler.webhook_success_rate()")


def test_no_service_reads_the_counts_or_runs_the_job(connect_as):
    for login in ("relay", "worker", "analyst", "consumer"):
        conn = connect_as(login)
        for sql in ("SELECT whatsapp_handler.job_webhook_minutes()", "SELECT * FROM whatsapp_handler.webhook_minutes",
                    "SELECT * FROM whatsapp_handler.webhook_minute_marks",
                    "DELETE FROM whatsapp_handler.analytics_webhooks_daily"):  # fmt: skip
            with raises_sqlstate("42501"):
                conn.execute(sql)
    with raises_sqlstate("42501"):
        connect_as("relay").execute("SELECT * FROM analytics.webhook_success_daily")


@pytest.mark.parametrize(
    ("breakage", "change"),
    [
        ("GRANT EXECUTE ON FUNCTION whatsapp_handler.webhook_success_rate() TO whatsapp_handler_worker",
         "ingest/success_rate"),
        ("ALTER TABLE whatsapp_handler.analytics_webhooks_daily NO FORCE ROW LEVEL SECURITY", "ingest/success_rate"),
        ("CREATE TRIGGER t BEFORE INSERT ON whatsapp_handler.webhook_events FOR EACH ROW "
         "EXECUTE FUNCTION whatsapp_handler._job_scheduled_at()", "ingest/success_rate"),
        ("ALTER FUNCTION whatsapp_handler._cron_job_last_runs() OWNER TO whatsapp_handler_owner", "jobs/late_jobs"),
        ("DROP TRIGGER jobs_scheduled_at ON whatsapp_handler.jobs", "jobs/late_jobs"),
    ],
)  # fmt: skip
def test_verify_fails_when_an_object_is_wrong(db, db_url, breakage, change):
    assert _sqitch("verify", "--from", change, "--to", change, url=db_url).returncode == 0
    db.execute(breakage)
    result = _sqitch("verify", "--from", change, "--to", change, url=db_url)
    assert result.returncode != 0 and "not ok" in result.stdout, result.stdout


def test_a_revert_and_redeploy_keep_the_jobs_schedule(db, db_url):
    """The revert hands the job's row to core/restore_kept: a DBA's schedule survives a round trip."""
    db.execute("UPDATE whatsapp_handler.jobs SET schedule = '*/2 * * * *' WHERE name = 'webhook_minutes'")
    result = _sqitch("revert", "-y", "--to", "jobs/late_jobs", url=db_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert db.execute("SELECT to_regclass('whatsapp_handler.webhook_minutes') AS t").fetchone()["t"] is None
    assert (
        db.execute("SELECT count(*) AS n FROM whatsapp_handler.jobs WHERE name = 'webhook_minutes'").fetchone()["n"]
        == 0
    )
    result = _sqitch("deploy", url=db_url)
    assert result.returncode == 0, result.stdout + result.stderr
    row = db.execute("SELECT schedule FROM whatsapp_handler.jobs WHERE name = 'webhook_minutes'").fetchone()
    assert row == {"schedule": "*/2 * * * *"}
