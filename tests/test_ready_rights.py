"""The relay's own login losing its group (what a revert and redeploy of the roles does to it): the
server's refusal is the service's failure, not the caller's. Webhooks and the OTP API answer 503
with what is missing, the log says it at WARNING with the login, /ready names the rights check
instead of sending the operator to redeploy, and a counter feeds the alert."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from app.cluster import LocalCluster
from kit import payloads as p
from tests.conftest import LOGIN_PASSWORD
from tests.relay import CHANNELS, OTP_KEY, Servers, assert_problem, post_meta, relay_environment, scrape


@pytest.fixture
def login(db: psycopg.Connection) -> Iterator[str]:
    """A relay login of this test only (roles are cluster-wide), in its group to begin with."""
    name = f"wh_rights_{uuid.uuid4().hex[:8]}"
    db.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{LOGIN_PASSWORD}' IN ROLE whatsapp_handler_relay")
    yield name
    db.execute(f"DROP ROLE {name}")


@pytest.fixture
def relay_as(
    db: psycopg.Connection, cluster: LocalCluster, db_name: str, login: str, http_server: Servers
) -> Iterator[str]:
    for c in CHANNELS:
        add = "SELECT whatsapp_handler.add_channel(%s, %s, %s, %s)"
        db.execute(add, (c["provider"], c["ref"], c["phone"], c["name"]))
    yield http_server.start(relay_environment(cluster.url(db_name, user=login, password=LOGIN_PASSWORD)))
    # Stopped before the login is dropped: its sessions would keep using the role.
    http_server.stop_all()


@pytest.mark.usefixtures("pg_cron_running")
def test_a_login_stripped_of_its_group_is_a_503_that_names_the_rights(
    relay_as: str, db: psycopg.Connection, login: str, http_server: Servers
) -> None:
    body = json.dumps(p.meta_text("447700900123", "wamid.RIGHTS1", body="hello")).encode()
    assert post_meta(relay_as, body).status_code == 200
    ready = httpx.get(f"{relay_as}/ready", timeout=10)
    assert ready.status_code == 200 and "rights" not in ready.json()["checks"], ready.text

    db.execute(f"REVOKE whatsapp_handler_relay FROM {login}")

    webhook = post_meta(relay_as, json.dumps(p.meta_text("447700900123", "wamid.RIGHTS2")).encode())
    problem = assert_problem(webhook, 503)
    assert problem["code"] == "42501" and webhook.headers["retry-after"] == "5"
    assert "lacks a right it needs" in problem["detail"] and "whatsapp_handler_relay" in problem["detail"]
    # The caller is not told which login the service uses.
    assert login not in webhook.text

    otp = httpx.post(f"{relay_as}/v1/otp", json={"phone": "+447700900123", "channel_id": 1},
                     headers={"Authorization": f"Bearer {OTP_KEY}"}, timeout=10)  # fmt: skip
    assert assert_problem(otp, 503)["code"] == "42501"

    ready = httpx.get(f"{relay_as}/ready", timeout=10)
    failed = assert_problem(ready, 503)
    # Not "plan: false, pg_cron: false": nothing to redeploy, the login needs its group.
    assert failed["checks"] == {"database": True, "rights": False}
    assert "lacks a right it needs" in failed["detail"] and "plan" not in failed["detail"]

    warnings = [json.loads(line) for line in http_server.log_text().splitlines() if login in line]
    assert any(w["level"] == "WARNING" and f"GRANT whatsapp_handler_relay TO {login}" in w["message"]
               for w in warnings), http_server.log_text()  # fmt: skip
    assert scrape(relay_as)[("whatsapp_relay_rights_failures_total", ())] >= 3

    db.execute(f"GRANT whatsapp_handler_relay TO {login}")
    assert httpx.get(f"{relay_as}/ready", timeout=10).status_code == 200


def test_a_function_the_login_cannot_find_is_a_503_that_sends_the_operator_to_deploy(
    relay_as: str, db: psycopg.Connection, login: str, http_server: Servers
) -> None:
    # 42883: the function a webhook calls is not there for the login (a plan behind this build, or
    # one the login cannot see). Renamed away, as a deploy that has yet to run would leave it.
    assert post_meta(relay_as, json.dumps(p.meta_text("447700900124", "wamid.MISSING1")).encode()).status_code == 200
    before = scrape(relay_as).get(("whatsapp_relay_rights_failures_total", ()), 0.0)
    db.execute("ALTER FUNCTION whatsapp_handler.ingest_meta(jsonb, text) RENAME TO ingest_meta_away")
    try:
        webhook = post_meta(relay_as, json.dumps(p.meta_text("447700900124", "wamid.MISSING2")).encode())
        problem = assert_problem(webhook, 503)
        assert problem["code"] == "42883" and webhook.headers["retry-after"] == "5"
        assert "lacks a right it needs" in problem["detail"] and "ingest_meta" in problem["detail"]
        # Either fix may be the one: the plan deployed, or the group granted.
        assert "deploy this build's plan" in problem["detail"] and "whatsapp_handler_relay" in problem["detail"]
        assert login not in webhook.text
        assert scrape(relay_as)[("whatsapp_relay_rights_failures_total", ())] > before
        warnings = [json.loads(line) for line in http_server.log_text().splitlines() if "42883" in line]
        assert any(w["level"] == "WARNING" and "whatsapp-handler db deploy" in w["message"] and login in w["message"]
                   for w in warnings), http_server.log_text()  # fmt: skip
    finally:
        db.execute("ALTER FUNCTION whatsapp_handler.ingest_meta_away(jsonb, text) RENAME TO ingest_meta")

    again = post_meta(relay_as, json.dumps(p.meta_text("447700900124", "wamid.MISSING3")).encode())
    assert again.status_code == 200, again.text
    stored = "SELECT count(*) AS n FROM whatsapp_handler.message_keys WHERE provider_message_id = 'wamid.MISSING3'"
    assert db.execute(stored).fetchone()["n"] == 1
