"""The monitoring that ships with the service: Prometheus alert rules checked and unit-tested
by promtool, a Grafana dashboard that parses, and every metric either of them names is one the
relay or the worker exposes. The cron gauge is read from a real scrape."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from app.settings import PROJECT_DIR
from tests.relay import Servers, relay_environment, scrape

MONITORING = PROJECT_DIR / "monitoring"
RULES = MONITORING / "prometheus" / "alerts.yml"
RULE_TESTS = MONITORING / "prometheus" / "alerts_test.yml"
DASHBOARD = MONITORING / "grafana" / "whatsapp-handler.json"
METRIC = re.compile(r"\bwhatsapp_[a-z_]+")
# What Prometheus appends to a counter's or a histogram's name.
SUFFIXES = ("_total", "_bucket", "_sum", "_count")
ALERTS = {"WhatsappRelayDown", "WhatsappWorkerDown", "WhatsappWebhookErrorRate", "WhatsappWebhookLatencyHigh",
          "WhatsappOutboundQueueStale", "WhatsappDeadLettersGrowing", "WhatsappCronJobFailing"}  # fmt: skip


def promtool() -> str:
    found = shutil.which("promtool") or shutil.which("promtool", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("promtool is missing: bin/setup installs it into .venv/bin")
    return found


def declared_metrics() -> set[str]:
    """The metric names declared in app/ (Counter("..."), Histogram("..."), GaugeMetricFamily("..."))."""
    names: set[str] = set()
    for source in (PROJECT_DIR / "app").glob("*.py"):
        pattern = r'(?:Counter|Histogram|Gauge|GaugeMetricFamily|CounterMetricFamily)\(\s*"(whatsapp_[a-z_]+)"'
        for name in re.findall(pattern, source.read_text()):
            names.add(name.removesuffix("_total"))
    return names


def unknown_metrics(text: str, declared: set[str]) -> set[str]:
    unknown = set()
    for name in set(METRIC.findall(text)):
        bases = {name} | {name.removesuffix(s) for s in SUFFIXES if name.endswith(s)}
        if not bases & declared:
            unknown.add(name)
    return unknown


def test_the_rules_pass_promtool_check() -> None:
    result = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_rules_pass_their_unit_tests() -> None:
    result = subprocess.run([promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True,
                            check=False, cwd=RULE_TESTS.parent)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_fails_a_rule_test_that_is_wrong(tmp_path: Path) -> None:
    # The unit tests can fail: the same rules, with an alert expected where none fires.
    shutil.copy(RULES, tmp_path / "alerts.yml")
    wrong = RULE_TESTS.read_text().replace("exp_labels: {severity: critical, provider: meta}",
                                           "exp_labels: {severity: critical, provider: twilio}")  # fmt: skip
    assert wrong != RULE_TESTS.read_text()
    (tmp_path / "alerts_test.yml").write_text(wrong)
    result = subprocess.run([promtool(), "test", "rules", "alerts_test.yml"], capture_output=True, text=True,
                            check=False, cwd=tmp_path)  # fmt: skip
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_every_alert_asked_for_exists_and_is_unit_tested() -> None:
    rules, tests = RULES.read_text(), RULE_TESTS.read_text()
    defined = set(re.findall(r"- alert: (\w+)", rules))
    assert defined >= ALERTS
    assert defined <= set(re.findall(r"alertname: (\w+)", tests))


def test_the_dashboard_parses_and_covers_the_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert dashboard["uid"] and len(exprs) >= 10
    used = {n for e in exprs for n in METRIC.findall(e)}
    for needed in ("whatsapp_webhook_requests_total", "whatsapp_webhook_duration_seconds_bucket",
                   "whatsapp_queue_depth", "whatsapp_queue_oldest_message_age_seconds",
                   "whatsapp_user_registrations_total", "whatsapp_otp_sent_total", "whatsapp_otp_verified_total",
                   "whatsapp_outbound_messages_total", "whatsapp_provider_request_seconds_bucket",
                   "whatsapp_cron_job_failures"):  # fmt: skip
        assert needed in used, needed
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("path", [RULES, DASHBOARD], ids=["alerts", "dashboard"])
def test_every_metric_named_is_one_the_app_exposes(path: Path) -> None:
    declared = declared_metrics()
    assert {"whatsapp_webhook_requests", "whatsapp_outbound_messages", "whatsapp_cron_job_failures"} <= declared
    assert unknown_metrics(path.read_text(), declared) == set()


def test_a_metric_the_app_does_not_expose_is_caught() -> None:
    declared = declared_metrics()
    text = "rate(whatsapp_webhook_requests_total[5m]) + whatsapp_webhook_request_total + whatsapp_queue_depths"
    assert unknown_metrics(text, declared) == {"whatsapp_webhook_request_total", "whatsapp_queue_depths"}


def _schedule_here(db: psycopg.Connection) -> None:
    # A clone's jobs name the template; on pg_cron's own database they name it.
    db.execute("UPDATE cron.job SET database = current_database()")


def _fail_a_job(db: psycopg.Connection) -> None:
    db.execute(
        "INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status, return_message,"
        " start_time, end_time) SELECT jobid, 1, current_database(), username, command, 'failed',"
        " 'ERROR:  boom', now(), now() FROM cron.job WHERE jobname = 'whatsapp_handler.partitions'"
    )


def test_cron_failures_are_scraped_with_a_login_that_sees_the_jobs(
    http_server: Servers, db: psycopg.Connection, db_url: str
) -> None:
    _schedule_here(db)
    base = http_server.start(relay_environment(db_url))
    before = scrape(base)
    assert before[("whatsapp_cron_metrics_up", ())] == 1
    assert before[("whatsapp_cron_job_failures", (("cron_job", "whatsapp_handler.partitions"),))] == 0
    _fail_a_job(db)
    after = scrape(base)
    assert after[("whatsapp_cron_job_failures", (("cron_job", "whatsapp_handler.partitions"),))] == 1
    assert after[("whatsapp_cron_job_failures", (("cron_job", "whatsapp_handler.retention"),))] == 0
    assert after[("whatsapp_queue_metrics_up", ())] == 1


def test_the_relays_own_login_sees_the_failures_through_the_deployers_function(
    http_server: Servers, db: psycopg.Connection, relay_db_url: str
) -> None:
    # pg_cron shows runs only to the jobs' login; cron_job_failures() reads them through its function.
    _schedule_here(db)
    _fail_a_job(db)
    m = scrape(http_server.start(relay_environment(relay_db_url)))
    assert m[("whatsapp_cron_metrics_up", ())] == 1
    assert m[("whatsapp_cron_job_failures", (("cron_job", "whatsapp_handler.partitions"),))] == 1
    assert m[("whatsapp_queue_metrics_up", ())] == 1


def test_jobs_scheduled_for_another_login_than_the_jobs_login_are_reported_blind(
    http_server: Servers, db: psycopg.Connection, relay_db_url: str
) -> None:
    # The jobs run as whatsapp_handler_cron, whose function reads their runs. A job scheduled for
    # another role (a DBA's cron.schedule as itself) is hidden from it: /metrics says it is blind.
    _schedule_here(db)
    _fail_a_job(db)
    db.execute("UPDATE cron.job SET username = 'postgres'")
    base = http_server.start(relay_environment(relay_db_url))
    m = scrape(base)
    assert m[("whatsapp_cron_metrics_up", ())] == 0
    assert not any(name == "whatsapp_cron_job_failures" for name, _ in m)
    assert m[("whatsapp_queue_metrics_up", ())] == 1
    # A superuser's UPDATE of the rows schedules them for the jobs' login again: seen, failures too.
    db.execute("UPDATE cron.job SET username = 'whatsapp_handler_cron'")
    m = scrape(base)
    assert m[("whatsapp_cron_metrics_up", ())] == 1
    assert m[("whatsapp_cron_job_failures", (("cron_job", "whatsapp_handler.partitions"),))] == 1
