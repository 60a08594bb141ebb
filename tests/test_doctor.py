"""`whatsapp-handler doctor`, run as an operator runs it, against the test cluster: a healthy
database passes, and each fault it is meant to find is found, named, and given a fix."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from app.cluster import LocalCluster
from app.doctor import CRON_BACKGROUND_FIX, SERVICE_FUNCTIONS, cron_login_check
from app.settings import PROJECT_DIR
from app.sqitch import last_change
from tests.conftest import CRON_DB, LOGIN_PASSWORD
from tests.test_cli import CLOSED_URL, SECRET, assert_one_line_error, run_cli
from tests.test_security_roles import ALLOWED

META_REF = "1234567890"


def lines(result: subprocess.CompletedProcess[str]) -> dict[str, list[str]]:
    """check name -> its lines (a name may have several, e.g. two plan findings)."""
    found: dict[str, list[str]] = {}
    for line in result.stdout.splitlines()[:-1]:
        status, rest = line.split(None, 1)
        assert status in ("ok", "warn", "FAIL"), line
        found.setdefault(rest.split(":", 1)[0], []).append(line)
    assert result.stdout.splitlines()[-1].startswith("doctor: "), result.stdout
    return found


def status_of(result: subprocess.CompletedProcess[str], check: str) -> str:
    found = lines(result)[check]
    return "FAIL" if any(x.startswith("FAIL") for x in found) else found[0].split()[0]


def meta_channel(**extra: str) -> str:
    channel = {"provider": "meta", "ref": META_REF, "phone": "+15550001111", "name": "Support",
               "secret": "meta-app-secret-doctor"}  # fmt: skip
    return json.dumps([channel | extra])


def test_a_healthy_database_passes(cluster: LocalCluster, pg_cron_running: None, tmp_path: Path) -> None:
    # pg_cron's own database: the one test database its launcher serves.
    result = run_cli("doctor", url=cluster.url(CRON_DB), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    found = lines(result)
    for check in ("postgresql", "extension pgcrypto", "extension pg_cron", "extension pgmq", "pg_cron database",
                  "pg_cron launcher", "sqitch plan", "cron jobs", "cron runs", "queue outbound",
                  "cron login", "vacuum"):  # fmt: skip
        assert status_of(result, check) == "ok", found.get(check, result.stdout)
    assert last_change(PROJECT_DIR / "sqitch.plan").name in found["sqitch plan"][0]
    assert not any(line.startswith("FAIL") for group in found.values() for line in group)


def test_another_database_than_pg_crons_fails_with_the_fix(db_url: str, tmp_path: Path) -> None:
    result = run_cli("doctor", url=db_url, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = lines(result)["pg_cron database"]
    assert line.startswith("FAIL") and f"is {CRON_DB}, not " in line
    assert "-> set cron.database_name" in line
    # The jobs of a clone name the template, not this database: not scheduled here.
    assert status_of(result, "cron jobs") == "FAIL"


def test_an_old_dead_letter_fails_and_a_fresh_one_warns(db: psycopg.Connection, db_url: str, tmp_path: Path) -> None:
    assert status_of(run_cli("doctor", url=db_url, cwd=tmp_path), "queue outbound_dlq") == "ok"
    db.execute("SELECT pgmq.send('outbound_dlq', %s)", (Jsonb({"reason": "rejected", "message": {}}),))
    assert status_of(run_cli("doctor", url=db_url, cwd=tmp_path), "queue outbound_dlq") == "warn"

    db.execute("UPDATE pgmq.q_outbound_dlq SET enqueued_at = now() - interval '2 hours'")
    result = run_cli("doctor", url=db_url, cwd=tmp_path)
    (line,) = lines(result)["queue outbound_dlq"]
    assert line.startswith("FAIL") and "1 messages" in line and "dlq list outbound" in line
    assert result.returncode == 1
    # The threshold is the operator's: a day's patience makes it a warning again.
    relaxed = run_cli("doctor", "--max-dead-letter-age", "86400", url=db_url, cwd=tmp_path)
    assert status_of(relaxed, "queue outbound_dlq") == "warn"


def test_an_outbound_message_waiting_too_long_fails(db: psycopg.Connection, db_url: str, tmp_path: Path) -> None:
    db.execute("SELECT pgmq.send('outbound', %s)", (Jsonb({"kind": "text"}),))
    assert status_of(run_cli("doctor", url=db_url, cwd=tmp_path), "queue outbound") == "ok"
    db.execute("UPDATE pgmq.q_outbound SET enqueued_at = now() - interval '1 hour'")
    (line,) = lines(run_cli("doctor", url=db_url, cwd=tmp_path))["queue outbound"]
    assert line.startswith("FAIL") and "worker" in line


def test_a_failing_cron_job_fails_until_it_succeeds(db: psycopg.Connection, db_url: str, tmp_path: Path) -> None:
    # Schedule this database's jobs here, as they would be on pg_cron's own database.
    db.execute("UPDATE cron.job SET database = current_database()")
    job = db.execute("SELECT jobid FROM cron.job WHERE jobname = 'whatsapp_handler.retention'").fetchone()["jobid"]
    before = run_cli("doctor", url=db_url, cwd=tmp_path)
    assert (status_of(before, "cron jobs"), status_of(before, "cron runs")) == ("ok", "ok")

    run = (
        "INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status, return_message,"
        " start_time, end_time) VALUES (%s, 1, current_database(), 'whatsapp_handler_cron', 'SELECT 1', %s, %s, now(),"
        " now())"
    )
    db.execute(run, (job, "failed", "ERROR:  canceling statement due to lock timeout"))
    db.execute(run, (job, "failed", "ERROR:  canceling statement due to lock timeout"))
    (line,) = lines(run_cli("doctor", url=db_url, cwd=tmp_path))["cron runs"]
    assert line.startswith("FAIL") and "whatsapp_handler.retention failed 2x" in line and "lock timeout" in line

    db.execute(run, (job, "succeeded", "SELECT 1"))
    assert status_of(run_cli("doctor", url=db_url, cwd=tmp_path), "cron runs") == "ok"


def test_a_plan_not_deployed_to_its_end_fails(db: psycopg.Connection, db_url: str, tmp_path: Path) -> None:
    last = last_change(PROJECT_DIR / "sqitch.plan")
    # Deployed by name, but another version of it (a rework not yet deployed).
    db.execute(
        "UPDATE sqitch.changes SET planned_at = planned_at - interval '1 day'"
        " WHERE project = 'whatsapp_handler' AND change = %s",
        (last.name,),
    )
    line, unknown = lines(run_cli("doctor", url=db_url, cwd=tmp_path))["sqitch plan"]
    assert line.startswith("FAIL") and f"plan ends at {last.name}" in line and "db deploy" in line
    assert unknown.startswith("warn") and last.name in unknown  # the version deployed is not this plan's


def test_a_channel_without_credentials_fails(db: psycopg.Connection, db_url: str, tmp_path: Path) -> None:
    db.execute("SELECT whatsapp_handler.add_channel('meta', %s, '+15550001111', 'Support')", (META_REF,))
    name = f"channel meta {META_REF}"
    result = run_cli("doctor", url=db_url, cwd=tmp_path, WHATSAPP_HANDLER_CHANNELS=meta_channel())
    (line,) = lines(result)[name]
    assert line.startswith("FAIL") and "access_token" in line and "WHATSAPP_HANDLER_CHANNELS" in line
    assert "meta-app-secret-doctor" not in result.stdout + result.stderr

    ready = run_cli("doctor", url=db_url, cwd=tmp_path, WHATSAPP_HANDLER_CHANNELS=meta_channel(access_token="tok"))
    assert status_of(ready, name) == "ok"
    unconfigured = run_cli("doctor", url=db_url, cwd=tmp_path)
    assert status_of(unconfigured, name) == "warn"


def test_a_twilio_channel_without_public_base_url_is_a_one_line_error(db_url: str, tmp_path: Path) -> None:
    channel = {"provider": "twilio", "ref": "whatsapp:+15550002222", "phone": "+15550002222", "name": "T",
               "secret": SECRET, "account_sid": "AC" + "0" * 32}  # fmt: skip
    result = run_cli("doctor", url=db_url, cwd=tmp_path, WHATSAPP_HANDLER_CHANNELS=json.dumps([channel]))
    assert "public_base_url" in assert_one_line_error(result, code=1)
    assert SECRET not in result.stdout + result.stderr


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    result = run_cli("doctor", url=CLOSED_URL, cwd=tmp_path)
    assert "port 1" in assert_one_line_error(result, code=1)
    assert SECRET not in result.stdout + result.stderr
    assert result.stdout == ""


def test_without_a_url_it_does_not_start_the_embedded_cluster(tmp_path: Path) -> None:
    home = tmp_path / "embedded"
    result = run_cli("doctor", url=None, cwd=tmp_path, WHATSAPP_HANDLER_EMBEDDED_DIR=str(home))
    assert "cluster start" in assert_one_line_error(result, code=1)
    assert not (home / "data").exists()


@pytest.mark.parametrize("args", [("--max-queue-age", "soon"), ("--nope",)])
def test_bad_arguments_are_usage_errors(args: tuple[str, ...], tmp_path: Path) -> None:
    assert_one_line_error(run_cli("doctor", *args, url=CLOSED_URL, cwd=tmp_path), code=2)


def test_otp_destinations_unset_warn_and_malformed_fail(db: psycopg.Connection, db_url: str, tmp_path: Path) -> None:
    (line,) = lines(run_cli("doctor", url=db_url, cwd=tmp_path))["otp destinations"]
    assert line.startswith("ok") and "+44, +1" in line and "per_key 60/min (burst 20)" in line
    db.execute("UPDATE whatsapp_handler.settings SET value = 'null' WHERE key = 'otp.country_codes'")
    (line,) = lines(run_cli("doctor", url=db_url, cwd=tmp_path))["otp destinations"]
    assert line.startswith("warn") and "every OTP request is refused (WH058)" in line and "-> UPDATE" in line
    db.execute("UPDATE whatsapp_handler.settings SET value = %s WHERE key = 'otp.country_codes'", (Jsonb(["+44"]),))
    assert status_of(run_cli("doctor", url=db_url, cwd=tmp_path), "otp destinations") == "FAIL"


def test_slow_client_limits_are_shown_and_loose_ones_warn(db_url: str, tmp_path: Path) -> None:
    (line,) = lines(run_cli("doctor", url=db_url, cwd=tmp_path))["slow clients"]
    assert line == "ok    slow clients: a body within 10 s, headers within 10 s, 256 connections per worker"
    loose = run_cli("doctor", url=db_url, cwd=tmp_path, WHATSAPP_HANDLER_BODY_TIMEOUT="120")
    (line,) = lines(loose)["slow clients"]
    assert line.startswith("warn") and "a body within 120 s" in line and "-> keep WHATSAPP_HANDLER_BODY_TIMEOUT" in line
    many = run_cli("doctor", url=db_url, cwd=tmp_path, WHATSAPP_HANDLER_HTTP_BACKPRESSURE="5000")
    assert status_of(many, "slow clients") == "warn"


@pytest.fixture
def relay_login(db: psycopg.Connection) -> Iterator[str]:
    """A relay login of this test only (roles are cluster-wide), in its group."""
    name = f"wh_doctor_{uuid.uuid4().hex[:8]}"
    db.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{LOGIN_PASSWORD}' IN ROLE whatsapp_handler_relay")
    yield name
    db.execute(f"DROP ROLE {name}")


def login_env(cluster: LocalCluster, db_name: str, relay: str, password: str = LOGIN_PASSWORD) -> dict[str, str]:
    return {
        "WHATSAPP_HANDLER_RELAY_DATABASE_URL": cluster.url(db_name, user=relay, password=password),
        "WHATSAPP_HANDLER_WORKER_DATABASE_URL": cluster.url(db_name, user="wh_test_worker", password=LOGIN_PASSWORD),
    }


def test_the_service_logins_pass_when_in_their_groups_and_fail_with_the_grant_when_not(
    db: psycopg.Connection, cluster: LocalCluster, db_name: str, db_url: str, relay_login: str, tmp_path: Path
) -> None:
    env = login_env(cluster, db_name, relay_login)
    healthy = lines(run_cli("doctor", url=db_url, cwd=tmp_path, **env))
    (relay,), (worker,) = healthy["login relay"], healthy["login worker"]
    functions = len(SERVICE_FUNCTIONS["whatsapp_handler_relay"])
    assert relay.startswith("ok") and relay_login in relay and f"can call its {functions} functions" in relay
    assert worker.startswith("ok") and "wh_test_worker" in worker and "whatsapp_handler_worker" in worker

    # What a revert and redeploy of the roles leaves: the login, without its group.
    db.execute(f"REVOKE whatsapp_handler_relay FROM {relay_login}")
    result = run_cli("doctor", url=db_url, cwd=tmp_path, **env)
    assert result.returncode == 1
    (line,) = lines(result)["login relay"]
    assert line.startswith("FAIL") and "is not a member of whatsapp_handler_relay" in line
    assert line.endswith(f"-> GRANT whatsapp_handler_relay TO {relay_login}")
    assert status_of(result, "login worker") == "ok"

    # In its group, but the group lost a grant.
    db.execute(f"GRANT whatsapp_handler_relay TO {relay_login}")
    db.execute("REVOKE EXECUTE ON FUNCTION whatsapp_handler.ingest_meta(jsonb, text) FROM whatsapp_handler_relay")
    (line,) = lines(run_cli("doctor", url=db_url, cwd=tmp_path, **env))["login relay"]
    assert line.startswith("FAIL") and "lacks EXECUTE on whatsapp_handler.ingest_meta(jsonb,text)" in line
    assert "-> GRANT EXECUTE ON FUNCTION whatsapp_handler.ingest_meta(jsonb,text) TO whatsapp_handler_relay" in line


def test_a_login_that_cannot_connect_fails_without_its_password(
    cluster: LocalCluster, db_name: str, db_url: str, relay_login: str, tmp_path: Path
) -> None:
    wrong = "not-the-password-4711"
    result = run_cli("doctor", url=db_url, cwd=tmp_path, **login_env(cluster, db_name, relay_login, wrong))
    assert result.returncode == 1
    (line,) = lines(result)["login relay"]
    assert line.startswith("FAIL") and f"cannot connect as {relay_login}" in line
    assert "-> check WHATSAPP_HANDLER_RELAY_DATABASE_URL" in line
    assert wrong not in result.stdout + result.stderr


def test_the_shared_superuser_url_warns_that_the_services_need_logins_of_their_own(db_url: str, tmp_path: Path) -> None:
    found = lines(run_cli("doctor", url=db_url, cwd=tmp_path))
    for service in ("relay", "worker"):
        (line,) = found[f"login {service}"]
        assert line.startswith("warn") and "is a superuser" in line and f"IN ROLE whatsapp_handler_{service}" in line


def hba(line: int, kind: str, auth: str, address: str | None = "127.0.0.1", netmask: str | None = "255.255.255.255",
        database: str = "all", user: str = "all") -> dict[str, object]:  # fmt: skip
    return {"line_number": line, "type": kind, "database": [database], "user_name": [user], "address": address,
            "netmask": netmask, "auth_method": auth}  # fmt: skip


def test_cron_login_without_background_workers_needs_a_way_in_without_a_password() -> None:
    """pg_cron's libpq path: the first pg_hba.conf line a connection to cron.host would match decides."""
    assert cron_login_check(True, "localhost", True, "wh", None).status == "ok"
    assert cron_login_check(True, "localhost", False, "wh", None).fix == "ALTER ROLE whatsapp_handler_cron LOGIN"

    scram = [hba(88, "local", "peer", None, None), hba(90, "host", "scram-sha-256"), hba(91, "host", "trust")]
    check = cron_login_check(False, "localhost", True, "wh", scram)
    assert check.status == "warn" and "line 90 (scram-sha-256)" in check.found and check.fix == CRON_BACKGROUND_FIX
    trusted = [hba(89, "host", "trust", database="wh", user="whatsapp_handler_cron"), *scram]
    check = cron_login_check(False, "localhost", True, "wh", trusted)
    assert check.status == "ok" and "line 89 (trust) trusts it" in check.found
    # A line for another database, or another network, is not the one.
    elsewhere = [hba(89, "host", "trust", database="other"), hba(90, "host", "trust", "10.0.0.0", "255.0.0.0")]
    check = cron_login_check(False, "localhost", True, "wh", elsewhere)
    assert check.status == "FAIL" and "no pg_hba.conf line" in check.found and check.fix == CRON_BACKGROUND_FIX
    # cron.host a socket directory: the local lines.
    check = cron_login_check(False, "/var/run/postgresql", True, "wh", scram)
    assert check.status == "warn" and "line 88 (peer)" in check.found
    socket_trust = [hba(1, "local", "trust", None, None)]
    assert cron_login_check(False, "/var/run/postgresql", True, "wh", socket_trust).status == "ok"
    assert cron_login_check(False, "localhost", True, "wh", None).status == "warn"  # pg_hba.conf unreadable


def test_cron_runs_failing_to_connect_point_at_background_workers(db: psycopg.Connection, db_url: str,
                                                                   tmp_path: Path) -> None:  # fmt: skip
    db.execute("UPDATE cron.job SET database = current_database()")
    db.execute(
        "INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status, return_message,"
        " start_time, end_time) SELECT jobid, 1, current_database(), username, command, 'failed',"
        " 'connection failed', now(), now() FROM cron.job WHERE jobname = 'whatsapp_handler.partitions'"
    )
    (line,) = lines(run_cli("doctor", url=db_url, cwd=tmp_path))["cron runs"]
    assert line.startswith("FAIL") and "connection failed" in line
    assert line.endswith(f"-> {CRON_BACKGROUND_FIX}") and "by hand" not in line


def test_channels_differing_from_the_configuration_are_named(db: psycopg.Connection, db_url: str,
                                                              tmp_path: Path) -> None:  # fmt: skip
    db.execute("SELECT whatsapp_handler.add_channel('meta', %s, '+15550009999', 'Support')", (META_REF,))
    twilio_ref = "whatsapp:+15550003333"
    db.execute("SELECT whatsapp_handler.add_channel('evolution', %s, '+15550003333', 'Shop')", (twilio_ref,))
    twilio = {"provider": "twilio", "ref": twilio_ref, "phone": "+15550003333", "name": "Shop", "secret": SECRET,
              "account_sid": "AC" + "0" * 32}  # fmt: skip
    configured = [*json.loads(meta_channel(access_token="tok")), twilio]
    result = run_cli("doctor", url=db_url, cwd=tmp_path, WHATSAPP_HANDLER_CHANNELS=json.dumps(configured),
                     WHATSAPP_HANDLER_PUBLIC_BASE_URL="https://hooks.example.com")  # fmt: skip
    found = lines(result)
    (phone,) = found[f"channel meta {META_REF}"]
    assert phone.startswith("warn") and "phone '+15550009999' in the database, '+15550001111' configured" in phone
    # The line's name ends at the first colon: the ref's "whatsapp" prefix.
    (wrong,) = found["channel twilio whatsapp"]
    assert wrong.startswith("warn") and f"holds {twilio_ref} as a evolution channel" in wrong
    assert "provider right" in wrong
    (extra,) = found["channel evolution whatsapp"]
    assert extra.startswith("warn") and "not configured here" in extra


@pytest.mark.parametrize("service", ["relay", "worker"])
def test_the_functions_doctor_checks_are_those_the_group_is_granted(service: str) -> None:
    granted = {name.removeprefix("whatsapp_handler.") for kind, name, _ in ALLOWED[service] if kind == "function"}
    assert set(SERVICE_FUNCTIONS[f"whatsapp_handler_{service}"]) == granted


def test_a_late_cron_job_fails_and_an_unbounded_schedule_warns(db: psycopg.Connection, db_url: str,
                                                              tmp_path: Path) -> None:  # fmt: skip
    db.execute("UPDATE cron.job SET database = current_database()")
    # Scheduled just now: the copy of the template carries the session's deploy time, and the
    # every-minute job (webhook_minutes) of a session older than two minutes would be late already.
    db.execute("UPDATE whatsapp_handler.jobs SET scheduled_at = now()")
    assert status_of(run_cli("doctor", url=db_url, cwd=tmp_path), "cron late") == "ok"
    # Enabled three hours ago, never run since: the hourly partitions job is two periods late.
    db.execute("ALTER TABLE whatsapp_handler.jobs DISABLE TRIGGER jobs_scheduled_at")
    db.execute("UPDATE whatsapp_handler.jobs SET scheduled_at = now() - interval '3 hours' WHERE name = 'partitions'")
    db.execute("ALTER TABLE whatsapp_handler.jobs ENABLE TRIGGER jobs_scheduled_at")
    (line,) = lines(run_cli("doctor", url=db_url, cwd=tmp_path))["cron late"]
    assert line.startswith("FAIL") and "whatsapp_handler.partitions not started for" in line
    assert "period 3600 s" in line and "docs/runbook.md#cron-job-late" in line
    db.execute(
        "INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status, return_message,"
        " start_time, end_time) SELECT jobid, 1, current_database(), username, command, 'succeeded', 'SELECT 1',"
        " now(), now() FROM cron.job WHERE jobname = 'whatsapp_handler.partitions'"
    )
    assert status_of(run_cli("doctor", url=db_url, cwd=tmp_path), "cron late") == "ok"
    db.execute("UPDATE whatsapp_handler.jobs SET schedule = '0 0 31 2 *' WHERE name = 'cron_history'")
    (line,) = lines(run_cli("doctor", url=db_url, cwd=tmp_path))["cron late"]
    assert line.startswith("warn") and "whatsapp_handler.cron_history" in line


def test_a_low_webhook_success_rate_fails_with_enough_webhooks(db: psycopg.Connection, db_url: str,
                                                              tmp_path: Path) -> None:  # fmt: skip
    plant = (
        "INSERT INTO whatsapp_handler.webhook_events (received_at, provider, channel_id, payload, outcome, error) "
        "SELECT date_trunc('minute', now()) - interval '5 minutes', 'meta', %s, '{}', %s, %s "
        "FROM generate_series(1, %s)"
    )
    add = "SELECT whatsapp_handler.add_channel('meta', %s, %s, %s) AS id"
    busy = db.execute(add, ("111", "+15550000001", "Busy")).fetchone()["id"]
    quiet = db.execute(add, ("222", "+15550000002", "Quiet")).fetchone()["id"]
    db.execute(plant, (quiet, "failed", "WH000: planted", 1))  # 1 of 3 failed: too few to tell
    db.execute(plant, (quiet, "processed", None, 2))
    db.execute(plant, (busy, "processed", None, 297))
    db.execute(plant, (busy, "failed", "WH000: planted", 3))  # 99 % of 300: not under
    db.execute("SELECT whatsapp_handler.job_webhook_minutes()")
    (line,) = lines(run_cli("doctor", url=db_url, cwd=tmp_path))["webhook success"]
    assert line.startswith("ok") and f"meta channel {quiet}: 1 of 3 failed" in line
    db.execute(plant, (busy, "failed", "WH000: planted", 1))
    db.execute("DELETE FROM whatsapp_handler.webhook_minute_marks")
    db.execute("SELECT whatsapp_handler.job_webhook_minutes()")
    (line,) = lines(run_cli("doctor", url=db_url, cwd=tmp_path))["webhook success"]
    assert line.startswith("FAIL") and f"meta channel {busy}: 4 of 301 failed" in line
    assert f"channel {quiet}" not in line and "docs/runbook.md#webhook-success-low" in line


def test_letters_parked_or_redriven_in_vain_in_the_last_hour_warn(db: psycopg.Connection, db_url: str,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    (line,) = lines(run_cli("doctor", url=db_url, cwd=tmp_path))["dead-letter history"]
    assert line.startswith("ok") and "no re-drive, replay or purge" in line
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "999999999"},
        "messages": [{"from": "447700900501", "id": "wamid.doc", "timestamp": "1", "type": "text",
                      "text": {"body": "hi"}}]}}]}]}  # fmt: skip
    db.execute("SELECT whatsapp_handler.ingest_meta(%s, 'c')", (Jsonb(body),))  # no such channel: WH003
    db.execute("UPDATE whatsapp_handler.settings SET value = '\"0 seconds\"' WHERE key = 'redrive.inbound.backoff'")
    db.execute("UPDATE whatsapp_handler.settings SET value = '2' WHERE key = 'redrive.inbound.max_attempts'")
    db.execute("SET SESSION AUTHORIZATION whatsapp_handler_cron")
    try:
        assert db.execute("SELECT whatsapp_handler.redrive_inbound() AS r").fetchone()["r"]["failed"] == 1
        assert db.execute("SELECT whatsapp_handler.redrive_inbound() AS r").fetchone()["r"]["parked"] == 1
    finally:
        db.execute("RESET SESSION AUTHORIZATION")
    (line,) = lines(run_cli("doctor", url=db_url, cwd=tmp_path))["dead-letter history"]
    assert line.startswith("warn") and "inbound_dlq 1 parked" in line
    assert "inbound_dlq 1 re-driven and failed again, none got through" in line
    assert "dlq history --queue inbound" in line and "docs/runbook.md#dead-letters-given-up" in line
