"""`whatsapp-handler smoke URL` against the relay served by granian on loopback: it passes a healthy
service, names the failing check when the database is down or the plan behind, fails a service that
never answers instead of waiting on it, and tests/smoke/ runs the same checks under pytest."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from app import cli, smoke
from app.metrics import WorkerMetrics
from app.settings import PROJECT_DIR
from app.sqitch import last_change
from kit.services import free_port
from tests.relay import Servers, relay_environment

LINE = re.compile(r"^(ok|FAIL|skip) +([^:]+): (.*)$")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(["smoke", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def statuses(out: str) -> dict[str, str]:
    """name -> ok / FAIL / skip, from the lines; every line but the summary is a check's."""
    lines = out.splitlines()
    assert lines[-1].startswith("smoke: "), out
    found = {}
    for line in lines[:-1]:
        match = LINE.match(line)
        assert match, f"not a check's line: {line!r}"
        found[match[2]] = match[1]
    return found


EVERY_CHECK = {
    "health", "ready", "ready database", "ready plan", "ready pg_cron", "openapi", "webhook meta unsigned",
    "webhook meta handshake", "webhook twilio unsigned", "webhook evolution unsigned", "otp api without key",
    "malformed body", "unknown route", "wrong method", "metrics", "plan",
}  # fmt: skip


@pytest.mark.usefixtures("pg_cron_running")
def test_smoke_passes_against_a_running_service(
    http_server: Servers, relay_db_url: str, db_url: str, db: psycopg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    # As deployed: `serve` (the deploying URL, the relay's own login for the app), whose granian
    # workers keep their counters in multiprocess files.
    base = http_server.start(relay_environment(relay_db_url, database_url=db_url), via_cli=True)
    events = db.execute("SELECT count(*) AS n FROM whatsapp_handler.webhook_events").fetchone()["n"]
    worker_port = free_port()
    WorkerMetrics().serve(worker_port, "127.0.0.1")
    worker = f"http://127.0.0.1:{worker_port}/"
    code, out, err = run([base, "--database-url", db_url, "--worker-metrics-url", worker], capsys)
    assert code == 0, out + err
    found = statuses(out)
    # /ready's own keys, whatever they are, each on a line of its own.
    assert set(found) >= EVERY_CHECK | {"worker metrics"}, out
    assert set(found.values()) == {"ok"}, out
    assert f"smoke: {base}: {len(found)} checks, 0 failed, 0 skipped" in out
    assert re.search(r"^ok +health: 200 in \d+ ms$", out, re.M), out
    # Under serve every documented name is there, the restarts its main process counts included.
    assert f"ok    metrics: all {len(smoke.RELAY_METRICS)} documented names\n" in out
    assert re.search(rf"^ok +plan: deployed up to {re.escape(str(last_change(PROJECT_DIR / 'sqitch.plan')))}", out,
                     re.M), out  # fmt: skip
    # Safe against production: nothing it sent was stored.
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.webhook_events").fetchone()["n"] == events


def test_smoke_names_the_failing_checks_when_the_database_is_down(
    http_server: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    down = f"postgresql://postgres:never-shown@127.0.0.1:{free_port()}/whatsapp_handler"
    base = http_server.start(relay_environment(down))
    # The relay's /metrics given as the worker's: it lacks the worker's names.
    code, out, _ = run([base, "--database-url", down, "--timeout", "3", "--worker-metrics-url", f"{base}/metrics"],
                       capsys)  # fmt: skip
    assert code == 1, out
    found = statuses(out)
    failed = {name for name, status in found.items() if status == "FAIL"}
    assert failed == {"ready", "ready database", "ready plan", "ready pg_cron", "plan", "worker metrics"}, out
    assert re.search(r"^FAIL +worker metrics: missing whatsapp_outbound_messages_total, ", out, re.M), out
    # What does not need the database still answers as documented.
    assert found["health"] == found["webhook meta unsigned"] == found["metrics"] == "ok", out
    # Started by granian itself, as a process manager may: no restarts are counted, and that is said.
    assert "not shown, as documented: whatsapp_relay_worker_restarts_total (counted by `serve` only)" in out
    assert "never-shown" not in out
    assert "cannot read the sqitch registry" in out


@pytest.mark.usefixtures("pg_cron_running")
def test_smoke_names_the_plan_when_it_is_behind(
    relay, db_url: str, db: psycopg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    # The last change deployed in an older version (as test_web's readiness test does).
    db.execute(
        "UPDATE sqitch.changes SET planned_at = planned_at - interval '1 day' WHERE change_id = (SELECT change_id"
        " FROM sqitch.changes WHERE project = 'whatsapp_handler' ORDER BY committed_at DESC LIMIT 1)"
    )
    base = relay()
    code, out, _ = run([base, "--database-url", db_url, "--json"], capsys)
    assert code == 1
    document = json.loads(out)
    assert (document["url"], document["ok"], document["failed"]) == (base, False, 3)
    by_name = {check["name"]: check for check in document["checks"]}
    failed = {name for name, check in by_name.items() if check["status"] == "FAIL"}
    assert failed == {"ready", "ready plan", "plan"}, out
    expected = last_change(PROJECT_DIR / "sqitch.plan")
    assert by_name["plan"]["build"] == list(expected)
    assert by_name["plan"]["deployed"][0] == expected.name
    assert by_name["plan"]["deployed"][1] != expected.planned_at
    assert by_name["ready database"]["status"] == by_name["ready pg_cron"]["status"] == "ok"
    assert isinstance(by_name["health"]["latency_ms"], float)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose socket takes connections (the kernel's backlog) and never answers one."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


# A hang would be caught by this bound, far above the run's few timeouts of 1 s.
@pytest.mark.timeout(60)
def test_a_service_that_never_answers_fails_instead_of_hanging(
    silent_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run([f"http://127.0.0.1:{silent_port}", "--timeout", "1"], capsys)
    assert code == 1
    found = statuses(out)
    assert re.search(r"^FAIL +health: GET \S+/health got no answer within 1 s$", out, re.M), out
    # Once the service did not answer, the rest are not tried (each would wait its own timeout).
    assert out.count("not tried") == len(found) - 2  # health, and the plan (no database URL) skipped
    assert found["plan"] == "skip"


def test_json_output_is_one_document(silent_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([f"http://127.0.0.1:{silent_port}", "--timeout", "1", "--json"], capsys)
    document = json.loads(out)
    assert code == 1 and document["ok"] is False
    detail = f"GET http://127.0.0.1:{silent_port}/health got no answer within 1 s"
    assert document["checks"][0] == {"name": "health", "status": "FAIL", "detail": detail}
    assert document["checks"] == [c for c in document["checks"] if set(c) >= {"name", "status", "detail"}]


@pytest.mark.parametrize(
    "argv",
    [[], ["127.0.0.1:8000"], ["ftp://example.com"], ["http://"], ["http://x?y=1"], ["http://x", "--timeout", "0"],
     ["http://x", "--max-latency", "soon"], ["http://x", "--timeout", "nan"],
     ["http://x", "--worker-metrics-url", "x"]],
)  # fmt: skip
def test_usage_errors_exit_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["smoke", *argv])
    assert exit_.value.code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("whatsapp-handler: error: "), err


def _metric_names(text: str) -> set[str]:
    """whatsapp_* metric names in a text, without the suffixes Prometheus adds to a family."""
    # A family written with a wildcard (whatsapp_queue_*) names no metric of its own.
    names = set(re.findall(r"\bwhatsapp_[a-z_]*[a-z](?![a-z_*])", text))
    # Roles, schemas and object names share the prefix.
    names = {n for n in names if not n.startswith(("whatsapp_handler", "whatsapp_business"))}
    return {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in names}


def test_the_checked_names_are_every_metric_the_alerts_and_docs_use() -> None:
    checked = _metric_names(" ".join(smoke.RELAY_METRICS + smoke.WORKER_METRICS))
    alerts = _metric_names((PROJECT_DIR / "monitoring/prometheus/alerts.yml").read_text())
    docs = set().union(*(_metric_names(p.read_text()) for p in (PROJECT_DIR / "docs").glob("*.md")))
    assert alerts, "no metric found in alerts.yml"
    assert alerts <= checked, alerts - checked
    assert docs <= checked, docs - checked
    # And no name the service does not have: each is registered in app/metrics.py, its one home.
    source = (PROJECT_DIR / "app/metrics.py").read_text()
    assert {name for name in checked if f'"{name}"' not in source} == set()


@pytest.mark.usefixtures("pg_cron_running")
def test_the_pipeline_tests_run_the_same_checks(relay, db_url: str) -> None:
    base = relay()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_HANDLER_", "SMOKE_"))}
    cmd = [sys.executable, "-m", "pytest", "-n", "0", "-q", "tests/smoke"]
    passed = subprocess.run(cmd, cwd=PROJECT_DIR, env=env | {"SMOKE_URL": base, "SMOKE_DATABASE_URL": db_url},
                            capture_output=True, text=True, timeout=240)  # fmt: skip
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert f"{len(smoke.CHECKS)} passed" in passed.stdout, passed.stdout
    # Against a service that is not there, they fail; without SMOKE_URL, they are skipped.
    gone = subprocess.run(cmd, cwd=PROJECT_DIR, env=env | {"SMOKE_URL": f"http://127.0.0.1:{free_port()}"},
                          capture_output=True, text=True, timeout=240)  # fmt: skip
    assert gone.returncode == 1, gone.stdout
    skipped = subprocess.run(cmd, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=240)
    assert skipped.returncode == 0 and f"{len(smoke.CHECKS)} skipped" in skipped.stdout, skipped.stdout


def test_smoke_is_in_docs() -> None:
    doc = (PROJECT_DIR / "docs/smoke.md").read_text()
    for check in EVERY_CHECK:
        assert f" {check}: " in doc, check
    assert "smoke" in Path(PROJECT_DIR / "README.md").read_text()


@pytest.mark.parametrize(
    ("status", "headers", "body", "why"),
    [
        (404, {"content-type": "application/problem+json"}, {"type": "about:blank", "title": "Not Found"}, "status"),
        (404, {"content-type": "application/json"}, {"type": "about:blank", "title": "x", "status": 404}, "not "),
        (404, {"content-type": "application/problem+json"}, {"title": "Not Found", "status": 404}, "type"),
        (500, {"content-type": "application/problem+json"}, {"type": "t", "title": "x", "status": 500}, "expected"),
        (404, {"content-type": "text/html"}, None, "text/html"),
    ],
)
def test_an_answer_that_is_not_the_documented_problem_fails(status: int, headers: dict, body: object, why: str) -> None:
    content = json.dumps(body).encode() if body is not None else b"<h1>Not Found</h1>"
    response = httpx.Response(status, headers=headers, content=content)
    error = smoke.problem_error(response, 404)
    assert error and why in error, error
    good = {"type": "about:blank", "title": "Not Found", "status": 404}
    ok = httpx.Response(404, headers={"content-type": "application/problem+json"}, content=json.dumps(good).encode())
    assert smoke.problem_error(ok, 404) is None
