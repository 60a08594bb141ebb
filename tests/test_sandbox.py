"""The development sandbox (docs/sandbox.md): a conversation and an OTP login walked through
against a running relay with `sandbox say` and `sandbox sent`, and its refusals."""

from __future__ import annotations

import json
import re

import httpx

from kit.services import free_port
from tests.relay import CHANNELS, OTP_KEY, PUBLIC_BASE_URL
from tests.test_cli import assert_one_line_error, run_cli

PHONE = "+447700900123"


def test_a_conversation_and_an_otp_login_without_a_provider(relay, db, db_url, tmp_path):
    base = relay()
    env = {"WHATSAPP_HANDLER_CHANNELS": json.dumps(CHANNELS), "WHATSAPP_HANDLER_PUBLIC_BASE_URL": PUBLIC_BASE_URL}

    def cli(*args: str) -> str:
        result = run_cli("sandbox", *args, url=db_url, cwd=tmp_path, **env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert cli("say", PHONE, "hello", "--url", base).startswith("relay: processed, 1 message(s)")
    shown = cli("sent", PHONE, "--allow-external")
    assert "welcome: Welcome!" in shown and "terms: Please read our terms" in shown
    cli("say", PHONE, "--button", "accept_terms", "--url", base)
    assert "terms_accepted: Thank you" in cli("sent", PHONE, "--allow-external")

    channel_id = db.execute("SELECT id FROM whatsapp_handler.channels WHERE provider = 'meta' ORDER BY id").fetchone()
    asked = httpx.post(f"{base}/v1/otp", json={"phone": PHONE, "channel_id": channel_id["id"]},
                       headers={"Authorization": f"Bearer {OTP_KEY}"}, timeout=10)  # fmt: skip
    assert asked.status_code == 202, asked.text
    code = re.search(r"OTP code (\d+)", cli("sent", PHONE, "--allow-external")).group(1)
    verified = httpx.post(f"{base}/v1/otp/verify", json={"phone": PHONE, "code": code},
                          headers={"Authorization": f"Bearer {OTP_KEY}"}, timeout=10)  # fmt: skip
    assert verified.json()["outcome"] == "verified"
    # Someone else's queue is not shown when a phone is named.
    assert cli("sent", "+447700900999", "--allow-external").strip() == "nothing queued for +447700900999"


def test_the_sandbox_refuses_clearly(db_url, tmp_path):
    def sandbox(*args: str, channels: list = CHANNELS):
        env = {"WHATSAPP_HANDLER_CHANNELS": json.dumps(channels), "WHATSAPP_HANDLER_PUBLIC_BASE_URL": PUBLIC_BASE_URL}
        return run_cli("sandbox", *args, url=db_url, cwd=tmp_path, **env)

    # It shows OTP codes: a configured database only when asked for.
    assert "--allow-external" in assert_one_line_error(sandbox("sent"), 2)
    assert "E.164" in assert_one_line_error(sandbox("say", "07700", "hi"), 2)
    assert "TEXT or --button" in assert_one_line_error(sandbox("say", PHONE, "hi", "--button", "x"), 2)
    no_meta = [c for c in CHANNELS if c["provider"] != "meta"]
    assert "Meta channel" in assert_one_line_error(sandbox("say", PHONE, "hi", channels=no_meta), 2)
    down = sandbox("say", PHONE, "hi", "--url", f"http://127.0.0.1:{free_port()}")
    assert "is `serve` running?" in assert_one_line_error(down, 1)
