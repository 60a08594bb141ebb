"""The delivery worker's own login refused by the server (out of its group, what a revert and
redeploy of the roles does to it): an operator-visible failure, not a silent stall. The refusals
are counted in whatsapp_worker_rights_failures_total, logged at WARNING with the GRANT, claims are
tried again after a growing pause, and once granted each queued message is delivered once."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.cluster import LocalCluster
from kit import payloads as p
from kit.provider_double import ProviderDouble
from kit.services import free_port
from tests.conftest import LOGIN_PASSWORD
from tests.test_cli import run_cli
from tests.test_doctor import lines
from tests.test_worker import Workers, dead_letters, outbound_rows, queue_depth, say_hi, wait_for

COUNTER = "whatsapp_worker_rights_failures_total"


@pytest.fixture
def double() -> Iterator[ProviderDouble]:
    d = ProviderDouble().start()
    yield d
    d.stop()


@pytest.fixture
def login(db: psycopg.Connection) -> Iterator[str]:
    """A worker login of this test only (roles are cluster-wide), in its group to begin with."""
    name = f"wh_wrights_{uuid.uuid4().hex[:8]}"
    db.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{LOGIN_PASSWORD}' IN ROLE whatsapp_handler_worker")
    yield name
    db.execute(f"DROP ROLE {name}")


@pytest.fixture
def workers(
    cluster: LocalCluster, db_name: str, double: ProviderDouble, tmp_path: Path, login: str
) -> Iterator[Workers]:
    w = Workers(cluster, db_name, double, tmp_path)
    w.url = cluster.url(db_name, user=login, password=LOGIN_PASSWORD)
    yield w
    # Stopped before the login is dropped: its sessions would keep using the role.
    w.stop_all()


@pytest.fixture
def meta_channel(db: psycopg.Connection) -> None:
    db.execute("SELECT whatsapp_handler.add_channel('meta', %s, '+15550001111', 'test')", (p.META_PHONE_NUMBER_ID,))


def refusals(port: int) -> float | None:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
    except httpx.TransportError:
        return None
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    return samples.get(COUNTER)


def warnings(log: str) -> list[dict]:
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [w for w in lines if w["level"] == "WARNING"]


@pytest.mark.usefixtures("meta_channel")
def test_a_login_out_of_its_group_is_counted_logged_with_the_grant_and_delivers_once_granted(
    db: psycopg.Connection, db_url: str, double: ProviderDouble, workers: Workers, login: str, tmp_path: Path
) -> None:
    db.execute(f"REVOKE whatsapp_handler_worker FROM {login}")
    say_hi(db, "447700900901")  # a welcome and the terms, queued
    port = free_port()
    proc = workers.start(worker_metrics_port=port)

    # At least three refusals: the pause between them is seen to grow.
    wait_for(lambda: (refusals(port) or 0) >= 3, "three refusals counted")
    refused = [w["message"] for w in warnings(workers.log()) if "refused" in w["message"]]
    assert refused and all(f"GRANT whatsapp_handler_worker TO {login}" in m and "42501" in m for m in refused)
    assert all("worker's database login" in m and "whatsapp-handler doctor" in m for m in refused)
    pauses = [float(m) for m in re.findall(r"next try in ([0-9.]+) s", "\n".join(refused))]
    assert len(pauses) >= 3 and pauses == sorted(pauses) and pauses[-1] > pauses[0], pauses
    # Still running, nothing sent, nothing settled, nothing dead-lettered.
    assert proc.poll() is None and double.received == [] and queue_depth(db) == 2 and dead_letters(db) == []
    # doctor names the same fix.
    doctor = run_cli("doctor", url=db_url, cwd=tmp_path, WHATSAPP_HANDLER_WORKER_DATABASE_URL=workers.url)
    (line,) = lines(doctor)["login worker"]
    assert line.startswith("FAIL") and line.endswith(f"-> GRANT whatsapp_handler_worker TO {login}"), line

    db.execute(f"GRANT whatsapp_handler_worker TO {login}")
    wait_for(lambda: queue_depth(db) == 0 and len(double.deliveries()) == 2, "both delivered once granted", 60)
    assert len(double.received) == 2 and dead_letters(db) == []
    assert [r["provider_message_id"] is not None for r in outbound_rows(db)] == [True, True]


@pytest.mark.usefixtures("meta_channel")
def test_a_settle_refused_while_its_claim_lasts_is_recorded_once_granted_and_never_sent_twice(
    db: psycopg.Connection, double: ProviderDouble, workers: Workers, login: str
) -> None:
    double.always(("slow", 0.5))  # under provider_timeout: a send that succeeds
    say_hi(db, "447700900902")
    port = free_port()
    workers.start(worker_metrics_port=port, worker_concurrency=1, worker_visibility_timeout=20)
    wait_for(lambda: len(double.received) == 1, "the welcome's send under way")
    db.execute(f"REVOKE whatsapp_handler_worker FROM {login}")
    wait_for(lambda: "recording sent of queue message" in workers.log(), "the settle refused")
    assert (refusals(port) or 0) >= 1

    db.execute(f"GRANT whatsapp_handler_worker TO {login}")
    double.always(("ok",))
    wait_for(lambda: queue_depth(db) == 0 and len(double.deliveries()) == 2, "both delivered", 60)
    # The welcome was recorded by the settle that waited: not back in doubt, not sent again.
    assert len(double.received) == 2 and dead_letters(db) == []
    assert all(r["provider_message_id"] for r in outbound_rows(db))
    settled = [w["message"] for w in warnings(workers.log()) if "recording sent" in w["message"]]
    assert settled and f"GRANT whatsapp_handler_worker TO {login}" in settled[0]
