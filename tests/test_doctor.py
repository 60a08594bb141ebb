"""`whatsapp-handler doctor`, run as an operator runs it, against the test cluster: a healthy
database passes, and each fault it is meant to find is found, named, and given a fix."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from app.cluster import LocalCluster
from app.settings import PROJECT_DIR
from app.sqitch import last_change
from tests.conftest import CRON_DB
from tests.test_cli import CLOSED_URL, SECRET, assert_one_line_error, run_cli

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
                  "pg_cron launcher", "sqitch plan", "cron jobs", "cron runs", "queue outbound"):  # fmt: skip
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
