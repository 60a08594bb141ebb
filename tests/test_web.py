"""The HTTP app served by granian on loopback, as in production, over real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pytest

from app.cluster import LocalCluster
from app.settings import PROJECT_DIR
from app.web import last_change

BIN = Path(sys.executable).parent
STARTUP_SECONDS = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_health(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"server did not answer /health within {STARTUP_SECONDS} s:\n{log.read_text()}")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """serve(url, via_cli=False) -> base URL of the app running against that database.
    via_cli runs `whatsapp-handler serve` (deploy, then granian); otherwise granian itself."""
    procs: list[subprocess.Popen[bytes]] = []

    def _serve(url: str, via_cli: bool = False) -> str:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_HANDLER_", "GRANIAN_"))}
        env |= {"WHATSAPP_HANDLER_DATABASE_URL": url, "WHATSAPP_HANDLER_HTTP_PORT": str(port)}
        if via_cli:
            cmd = [str(BIN / "whatsapp-handler"), "serve"]
        else:
            cmd = [str(BIN / "granian"), "--interface", "asgi", "--factory", "--workers", "1"]
            cmd += ["--host", "127.0.0.1", "--port", str(port), "app.web:create_app"]
        log = tmp_path / f"server-{port}.log"
        with log.open("wb") as out:
            # A session of its own, so that teardown reaches granian's worker processes too.
            proc = subprocess.Popen(
                cmd, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        _wait_for_health(proc, base, log)
        return base

    yield _serve
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def test_url(cluster: LocalCluster, db_name: str) -> str:
    return f"postgresql://postgres:{quote(cluster.password(), safe='')}@127.0.0.1:{cluster.port}/{db_name}"


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert "Traceback" not in response.text
    return body


def test_health_and_ready_on_a_deployed_database(serve: Callable[..., str], test_url: str) -> None:
    base = serve(test_url, via_cli=True)
    health = httpx.get(f"{base}/health")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = httpx.get(f"{base}/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"database": True, "plan": True, "pg_cron": True}}


def test_unknown_route_and_method_are_problem_json(serve: Callable[..., str], test_url: str) -> None:
    base = serve(test_url)
    assert_problem(httpx.get(f"{base}/no-such-route"), 404)
    assert_problem(httpx.post(f"{base}/health"), 405)


def test_unreachable_database_keeps_health_and_fails_ready(serve: Callable[..., str]) -> None:
    base = serve(f"postgresql://postgres:never-shown@127.0.0.1:{free_port()}/whatsapp_handler")
    assert httpx.get(f"{base}/health").status_code == 200
    ready = httpx.get(f"{base}/ready", timeout=10)
    body = assert_problem(ready, 503)
    assert ready.headers["retry-after"] == "5"
    assert body["checks"] == {"database": False, "plan": False, "pg_cron": False}
    assert "never-shown" not in ready.text


def test_ready_fails_when_the_last_plan_change_is_not_deployed(
    serve: Callable[..., str], test_url: str, db: psycopg.Connection
) -> None:
    gone = db.execute(
        "DELETE FROM sqitch.changes WHERE change_id = (SELECT change_id FROM sqitch.changes"
        " WHERE project = 'whatsapp_handler' ORDER BY committed_at DESC LIMIT 1) RETURNING change"
    ).fetchone()["change"]
    # sqitch's registry and the app's reading of sqitch.plan agree on which change is last.
    assert gone == last_change(PROJECT_DIR / "sqitch.plan")
    base = serve(test_url)
    ready = httpx.get(f"{base}/ready", timeout=10)
    body = assert_problem(ready, 503)
    assert ready.headers["retry-after"] == "5"
    assert body["checks"] == {"database": True, "plan": False, "pg_cron": True}
    assert gone in body["detail"]


def test_last_change_skips_pragmas_comments_and_tags(tmp_path: Path) -> None:
    plan = tmp_path / "sqitch.plan"
    plan.write_text(
        "%syntax-version=1.0.0\n%project=p\n\n"
        "first 2026-01-01T00:00:00Z A <a@b> # one\n"
        "second [first] 2026-01-01T00:01:00Z A <a@b> # two\n"
        "@v1.0.0 2026-01-01T00:02:00Z A <a@b> # a tag\n"
        "# a comment\n\n"
    )
    assert last_change(plan) == "second"
    plan.write_text("%project=p\n# nothing yet\n")
    with pytest.raises(ValueError, match="no changes"):
        last_change(plan)


def test_create_app_without_a_database_url_says_how_to_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from app.web import create_app

    monkeypatch.delenv("WHATSAPP_HANDLER_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError, match="whatsapp-handler serve"):
        create_app()


def test_unexpected_error_is_500_problem_json_without_a_stack_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    from litestar import get
    from litestar.testing import TestClient

    from app.web import create_app

    @get("/boom")
    async def boom() -> None:
        raise ZeroDivisionError("secret internals")

    monkeypatch.setenv("WHATSAPP_HANDLER_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    app = create_app()
    app.register(boom)
    with TestClient(app) as client:
        response = client.get("/boom")
    body = assert_problem(response, 500)
    assert "secret internals" not in response.text
    assert "ZeroDivisionError" not in response.text
    assert body["title"] == "Internal Server Error"
