"""The HTTP app served by granian on loopback, as in production, over real HTTP."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pytest

from app.cluster import LocalCluster
from app.settings import PROJECT_DIR
from app.web import last_change
from kit.services import free_port
from tests.relay import Servers, assert_problem, relay_environment


def database_env(url: str) -> dict[str, str]:
    return {"WHATSAPP_HANDLER_DATABASE_URL": url}


@pytest.fixture
def test_url(cluster: LocalCluster, db_name: str) -> str:
    return f"postgresql://postgres:{quote(cluster.password(), safe='')}@127.0.0.1:{cluster.port}/{db_name}"


@pytest.mark.usefixtures("pg_cron_running")
def test_health_and_ready_on_a_deployed_database(http_server: Servers, test_url: str) -> None:
    base = http_server.start(database_env(test_url), via_cli=True)
    health = httpx.get(f"{base}/health")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = httpx.get(f"{base}/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"database": True, "plan": True, "pg_cron": True}}


@pytest.mark.usefixtures("pg_cron_running")
def test_ready_as_the_relays_own_login(http_server: Servers, relay_db_url: str) -> None:
    base = http_server.start(relay_environment(relay_db_url))
    ready = httpx.get(f"{base}/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": True, "plan": True, "pg_cron": True}


def test_openapi_describes_the_api(http_server: Servers, relay_db_url: str) -> None:
    base = http_server.start(relay_environment(relay_db_url))
    schema = httpx.get(f"{base}/schema/openapi.json").json()
    assert schema["info"]["title"] == "whatsapp-handler"
    assert {"/webhooks/meta", "/webhooks/twilio", "/webhooks/evolution", "/v1/otp", "/v1/otp/verify"} <= set(
        schema["paths"]
    )
    assert "OtpRequest" in schema["components"]["schemas"]


def test_unknown_route_and_method_are_problem_json(http_server: Servers, test_url: str) -> None:
    base = http_server.start(database_env(test_url))
    assert_problem(httpx.get(f"{base}/no-such-route"), 404)
    assert_problem(httpx.post(f"{base}/health"), 405)


def test_unreachable_database_keeps_health_and_fails_ready(http_server: Servers) -> None:
    unreachable = f"postgresql://postgres:never-shown@127.0.0.1:{free_port()}/whatsapp_handler"
    base = http_server.start(database_env(unreachable))
    assert httpx.get(f"{base}/health").status_code == 200
    ready = httpx.get(f"{base}/ready", timeout=10)
    body = assert_problem(ready, 503)
    assert ready.headers["retry-after"] == "5"
    assert body["checks"] == {"database": False, "plan": False, "pg_cron": False}
    assert "never-shown" not in ready.text


@pytest.mark.usefixtures("pg_cron_running")
def test_ready_fails_when_the_last_plan_change_is_not_deployed(
    http_server: Servers, test_url: str, db: psycopg.Connection
) -> None:
    """The database has the plan's last change by name only, an older version of it: what a
    database not yet upgraded past a rework looks like (sqitch tells the versions apart by
    the time each was planned)."""
    last = db.execute(
        "UPDATE sqitch.changes SET planned_at = planned_at - interval '1 day' WHERE change_id = (SELECT change_id"
        " FROM sqitch.changes WHERE project = 'whatsapp_handler' ORDER BY committed_at DESC LIMIT 1) RETURNING change"
    ).fetchone()["change"]
    # sqitch's registry and the app's reading of sqitch.plan agree on which change is last.
    assert last == last_change(PROJECT_DIR / "sqitch.plan").name
    base = http_server.start(database_env(test_url))
    ready = httpx.get(f"{base}/ready", timeout=10)
    body = assert_problem(ready, 503)
    assert ready.headers["retry-after"] == "5"
    assert body["checks"] == {"database": True, "plan": False, "pg_cron": True}
    assert last in body["detail"]


def test_readiness_tells_the_versions_of_a_reworked_change_apart(db: psycopg.Connection) -> None:
    last = last_change(PROJECT_DIR / "sqitch.plan")
    ask = "SELECT (whatsapp_handler.readiness(%s, %s::timestamptz) ->> 'plan')::boolean AS plan"
    assert db.execute(ask, (last.name, last.planned_at)).fetchone()["plan"] is True
    assert db.execute(ask, (last.name, "2099-01-01T00:00:00Z")).fetchone()["plan"] is False
    assert db.execute(ask, (last.name, None)).fetchone()["plan"] is True  # by name alone, as before


def test_last_change_skips_pragmas_comments_and_tags(tmp_path: Path) -> None:
    plan = tmp_path / "sqitch.plan"
    plan.write_text(
        "%syntax-version=1.0.0\n%project=p\n\n"
        "first 2026-01-01T00:00:00Z A <a@b> # one\n"
        "second [first] 2026-01-01T00:01:00Z A <a@b> # two\n"
        "@v1.0.0 2026-01-01T00:02:00Z A <a@b> # a tag\n"
        "# a comment\n\n"
    )
    assert last_change(plan) == ("second", "2026-01-01T00:01:00Z")
    plan.write_text("%project=p\n# nothing yet\n")
    with pytest.raises(ValueError, match="no changes"):
        last_change(plan)


def test_create_app_without_a_database_url_says_how_to_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from app.web import create_app

    monkeypatch.delenv("WHATSAPP_HANDLER_DATABASE_URL", raising=False)
    monkeypatch.delenv("WHATSAPP_HANDLER_RELAY_DATABASE_URL", raising=False)
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
