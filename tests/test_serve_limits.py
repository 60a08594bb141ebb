"""`serve`'s limits on slow clients, over real HTTP on loopback: a body must arrive within
BODY_TIMEOUT (408 and the connection closed), headers within HTTP_HEADER_TIMEOUT (idle connections
included), and granian serves HTTP_BACKPRESSURE connections at once per worker, so that clients
trickling bytes cannot hold the relay, /health included, for longer than those timeouts."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import httpx
import psycopg
import pytest

from app.cluster import LocalCluster
from kit import payloads as p
from tests.relay import Servers, meta_signature, relay_environment, scrape

BODY_TIMEOUT = 2
HEADER_TIMEOUT = 2
# A trickler sends one byte this often and would go on for TRICKLE_FOR seconds if nothing cut it.
TRICKLE_EVERY = 0.5
TRICKLE_FOR = 60
# Room for a loaded machine; every bound stays far below TRICKLE_FOR and granian's old 30 s header timeout.
SLACK = 6


@pytest.fixture
def test_url(cluster: LocalCluster, db_name: str) -> str:
    return f"postgresql://postgres:{quote(cluster.password(), safe='')}@127.0.0.1:{cluster.port}/{db_name}"


def serve(http_server: Servers, test_url: str, relay_db_url: str, **settings: object) -> tuple[str, int]:
    env = relay_environment(
        relay_db_url, body_timeout=str(BODY_TIMEOUT), http_header_timeout=str(HEADER_TIMEOUT), **settings
    )
    base = http_server.start(env | {"WHATSAPP_HANDLER_DATABASE_URL": test_url}, via_cli=True)
    return base, int(urlsplit(base).port or 0)


@dataclass
class Outcome:
    answer: bytes = b""
    # Seconds from the connection's opening to the first byte of the answer, and to its closing.
    answered_after: float | None = None
    closed_after: float | None = None


def _read_until_closed(sock: socket.socket, outcome: Outcome, started: float, until: float) -> None:
    sock.settimeout(0.2)
    while time.monotonic() < until:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            chunk = b""
        if not chunk:
            outcome.closed_after = time.monotonic() - started
            return
        if outcome.answered_after is None:
            outcome.answered_after = time.monotonic() - started
        outcome.answer += chunk


def trickle(port: int, body: bytes, headers: dict[str, str], out: list[Outcome] | None = None) -> Outcome:
    """Send the headers at once, then the body a byte every TRICKLE_EVERY seconds, until the
    server answers or closes the connection (or TRICKLE_FOR seconds pass)."""
    outcome = Outcome()
    if out is not None:
        out.append(outcome)
    started = time.monotonic()
    until = started + TRICKLE_FOR
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            f"POST /webhooks/meta HTTP/1.1\r\nHost: relay\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode()
        )
        sock.settimeout(TRICKLE_EVERY)
        for byte in body:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                if time.monotonic() > until:
                    return outcome
                continue
            except OSError:
                chunk = b""
            if not chunk:
                outcome.closed_after = time.monotonic() - started
                return outcome
            outcome.answered_after = time.monotonic() - started
            outcome.answer += chunk
            break
        _read_until_closed(sock, outcome, started, until)
    return outcome


def signed_webhook(message_id: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(p.meta_text("447700900123", message_id)).encode()
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)}


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def test_a_trickled_body_is_answered_408_and_its_connection_closed(
    http_server: Servers, test_url: str, relay_db_url: str, db: psycopg.Connection
) -> None:
    base, port = serve(http_server, test_url, relay_db_url)
    body, headers = signed_webhook("wamid.TRICKLED")
    outcome = trickle(port, body, headers)
    assert outcome.answered_after is not None, "the trickled body was never cut off"
    assert BODY_TIMEOUT - 0.2 <= outcome.answered_after <= BODY_TIMEOUT + SLACK, outcome
    head, _, payload = outcome.answer.partition(b"\r\n\r\n")
    assert status_of(head) == 408, outcome.answer
    assert b"content-type: application/problem+json" in head.lower()
    problem = json.loads(payload)
    assert (problem["status"], problem["title"]) == (408, "Request Timeout")
    # The connection goes with the answer: the rest of the body is never read.
    assert outcome.closed_after is not None and outcome.closed_after <= BODY_TIMEOUT + SLACK + 1, outcome
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.webhook_events").fetchone()["n"] == 0
    # Counted as a timeout, not as the 5xx "error" the webhook error-rate alert watches.
    counted = scrape(base)
    assert counted[("whatsapp_webhook_requests_total", (("outcome", "timeout"), ("provider", "meta")))] == 1
    assert ("whatsapp_webhook_requests_total", (("outcome", "error"), ("provider", "meta"))) not in counted


def test_a_body_that_arrives_within_the_timeout_is_taken(
    http_server: Servers, test_url: str, relay_db_url: str, db: psycopg.Connection
) -> None:
    _, port = serve(http_server, test_url, relay_db_url)
    body, headers = signed_webhook("wamid.SLOW-BUT-IN-TIME")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"POST /webhooks/meta HTTP/1.1\r\nHost: relay\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode()
        )
        # Three pieces over about 1.2 s: slow, yet within the 2 s deadline.
        third = len(body) // 3
        for piece in (body[:third], body[third : 2 * third], body[2 * third :]):
            time.sleep(0.4)
            sock.sendall(piece)
        answer = sock.recv(65536)
    assert status_of(answer) == 200, answer
    stored = db.execute(
        "SELECT provider_message_id FROM whatsapp_handler.messages WHERE direction = 'inbound'"
    ).fetchall()
    assert [r["provider_message_id"] for r in stored] == ["wamid.SLOW-BUT-IN-TIME"]


def test_health_answers_while_tricklers_outnumber_the_backpressure(
    http_server: Servers, test_url: str, relay_db_url: str
) -> None:
    backpressure = 4
    base, port = serve(http_server, test_url, relay_db_url, http_backpressure=str(backpressure))
    body, headers = signed_webhook("wamid.MANY")
    outcomes: list[Outcome] = []
    threads = [
        threading.Thread(target=trickle, args=(port, body, headers, outcomes), daemon=True)
        for _ in range(3 * backpressure)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    # Every slot is held by a trickler and more wait: /health waits for one to be cut off, no longer
    # than the tricklers ahead of it take (a body timeout per round of `backpressure` connections).
    started = time.monotonic()
    health = httpx.get(f"{base}/health", timeout=4 * BODY_TIMEOUT + 2 * SLACK)
    waited = time.monotonic() - started
    assert health.status_code == 200
    assert waited <= 4 * BODY_TIMEOUT + SLACK, waited
    for thread in threads:
        thread.join(timeout=TRICKLE_FOR)
    assert len(outcomes) == 3 * backpressure
    assert [status_of(o.answer) for o in outcomes] == [408] * len(outcomes), outcomes
    # Once the tricklers are gone, /health is at once again.
    started = time.monotonic()
    assert httpx.get(f"{base}/health", timeout=5).status_code == 200
    assert time.monotonic() - started < SLACK


@pytest.mark.parametrize("sent", [b"", b"POST /webhooks/meta HTTP/1.1\r\nHost: re"], ids=["nothing", "half-headers"])
def test_a_connection_without_complete_headers_is_closed_after_the_header_timeout(
    http_server: Servers, test_url: str, relay_db_url: str, sent: bytes
) -> None:
    _, port = serve(http_server, test_url, relay_db_url)
    outcome = Outcome()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(sent)
        _read_until_closed(sock, outcome, started, started + HEADER_TIMEOUT + 2 * SLACK)
    assert outcome.closed_after is not None, "the connection was still open"
    assert HEADER_TIMEOUT - 0.2 <= outcome.closed_after <= HEADER_TIMEOUT + SLACK, outcome


def test_an_idle_keep_alive_connection_is_closed_after_the_header_timeout(
    http_server: Servers, test_url: str, relay_db_url: str
) -> None:
    _, port = serve(http_server, test_url, relay_db_url)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: relay\r\n\r\n")
        assert status_of(sock.recv(65536)) == 200
        outcome = Outcome()
        started = time.monotonic()
        _read_until_closed(sock, outcome, started, started + HEADER_TIMEOUT + 2 * SLACK)
    assert outcome.closed_after is not None and outcome.closed_after <= HEADER_TIMEOUT + SLACK, outcome
