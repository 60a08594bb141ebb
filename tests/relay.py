"""What the relay's tests share: the channels and keys they configure, the server processes,
and kit.signing's signatures under these keys."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kit import payloads, signing
from kit.services import free_port, settings_env

BIN = Path(sys.executable).parent
STARTUP_SECONDS = 30
PUBLIC_BASE_URL = "https://hooks.example.com"
OTP_KEY = "otp-key-0123456789abcdef"
META_SECRET = "meta-app-secret-one"
META_OTHER_SECRET = "meta-app-secret-two"
VERIFY_TOKEN = "verify-token-123"
TWILIO_TOKEN = "twilio-auth-token-0123456789abcd"
EVOLUTION_KEY = "evolution-instance-apikey"
META_OTHER_APP_REF = "2222222222"
META_SAME_APP_REF = "3333333333"
TWILIO_REF = "whatsapp:+15550002222"
EVOLUTION_REF = "shop-instance"

CHANNELS: list[dict[str, Any]] = [
    {"provider": "meta", "ref": payloads.META_PHONE_NUMBER_ID, "phone": "+15550001111", "name": "Support",
     "secret": META_SECRET, "verify_token": VERIFY_TOKEN},
    {"provider": "meta", "ref": META_SAME_APP_REF, "phone": "+15550005555", "name": "Sales", "secret": META_SECRET},
    {"provider": "meta", "ref": META_OTHER_APP_REF, "phone": "+15550004444", "name": "Other app",
     "secret": META_OTHER_SECRET},
    {"provider": "twilio", "ref": TWILIO_REF, "phone": "+15550002222", "name": "Twilio", "secret": TWILIO_TOKEN},
    {"provider": "evolution", "ref": EVOLUTION_REF, "phone": "+15550003333", "name": "Shop", "secret": EVOLUTION_KEY},
]  # fmt: skip


def relay_environment(relay_db_url: str, **settings: object) -> dict[str, str]:
    values: dict[str, object] = {
        "relay_database_url": relay_db_url,
        "channels": CHANNELS,
        "public_base_url": PUBLIC_BASE_URL,
        "otp_api_keys": [OTP_KEY],
        **settings,
    }
    return settings_env(**values)


class Servers:
    """Server processes of one test, each in a session of its own so that teardown reaches granian's workers."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, env: dict[str, str], via_cli: bool = False) -> str:
        port = free_port()
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_HANDLER_", "GRANIAN_"))}
        clean |= env | {"WHATSAPP_HANDLER_HTTP_PORT": str(port)}
        if via_cli:
            cmd = [str(BIN / "whatsapp-handler"), "serve"]
        else:
            cmd = [str(BIN / "granian"), "--interface", "asgi", "--factory", "--workers", "1"]
            cmd += ["--host", "127.0.0.1", "--port", str(port), "app.web:create_app"]
        log = self.tmp_path / f"server-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, env=clean, cwd=self.tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs.append(proc)
        self.logs.append(log)
        base = f"http://127.0.0.1:{port}"
        self._wait_for_health(proc, base, log)
        return base

    @staticmethod
    def _wait_for_health(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        pytest.fail(f"server did not answer /health within {STARTUP_SECONDS} s:\n{log.read_text()}")

    def log_text(self) -> str:
        return "".join(log.read_text(errors="replace") for log in self.logs)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def meta_signature(body: bytes, secret: str = META_SECRET) -> str:
    return signing.meta_signature(body, secret)


def post_meta(base: str, body: dict | bytes, secret: str = META_SECRET, **headers: str) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {**signing.meta_headers(raw, secret), **headers}
    return httpx.post(f"{base}/webhooks/meta", content=raw, headers=sent, timeout=10)


def twilio_signature(url: str, params: dict[str, str], token: str = TWILIO_TOKEN) -> str:
    return signing.twilio_signature(url, params, token)


def post_twilio(
    base: str, params: dict[str, str], signed_url: str = f"{PUBLIC_BASE_URL}/webhooks/twilio", **headers: str
) -> httpx.Response:
    sent = {"X-Twilio-Signature": twilio_signature(signed_url, params), **headers}
    return httpx.post(f"{base}/webhooks/twilio", data=params, headers=sent, timeout=10)


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert "Traceback" not in response.text
    return body


def count(db: Any, table: str) -> int:
    return db.execute(f"SELECT count(*) AS n FROM whatsapp_handler.{table}").fetchone()["n"]


def kept_unread(db: Any) -> list[str]:
    """The notes of the webhooks kept without being read (signed, but not a shape the provider sends):
    each stored raw with no payload, failed, dead-lettered with WH045, and nothing of it processed."""
    rows = db.execute(
        "SELECT payload IS NULL AS raw_only, raw IS NOT NULL AS has_raw, outcome, error, note"
        " FROM whatsapp_handler.webhook_events ORDER BY id"
    ).fetchall()
    assert all(r["raw_only"] and r["has_raw"] and r["outcome"] == "failed" for r in rows), rows
    assert all(r["error"].startswith("WH045") and r["note"].startswith("not read: ") for r in rows), rows
    letters = db.execute("SELECT message ->> 'sqlstate' AS c FROM pgmq.q_inbound_dlq").fetchall()
    assert [r["c"] for r in letters] == ["WH045"] * len(rows)
    assert count(db, "messages") == 0 and count(db, "message_status_events") == 0
    return [r["note"] for r in rows]


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
