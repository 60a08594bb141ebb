"""The DBA's side of the send API: `api-key create|list|revoke` and `templates sync|list` against a
loopback stand-in for Meta's template list and Twilio's Content API (pages, deletions, a failing
provider), and their refusals."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from kit import payloads as p
from tests.test_cli import assert_one_line_error, run_cli

TWILIO_SID = "AC" + "1" * 32
WABA = "102290129340398"


class Provider:
    """Meta's GET /{waba}/message_templates (two pages) and Twilio's GET /v1/ContentAndApprovals."""

    def __init__(self) -> None:
        self.meta: list[dict[str, Any]] = []
        self.twilio: list[dict[str, Any]] = []
        self.fail = False
        self.seen: list[str] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.seen.append(self.path + " " + self.headers.get("Authorization", ""))
                url = urlparse(self.path)
                if provider.fail:
                    return self._answer(500, {"error": "down"})
                if url.path == f"/meta/{WABA}/message_templates":
                    after = int(parse_qs(url.query).get("after", ["0"])[0])
                    page = provider.meta[after : after + 1]
                    more = after + 1 < len(provider.meta)
                    paging = {"next": f"http://127.0.0.1:{provider.port}{url.path}?after={after + 1}"} if more else {}
                    return self._answer(200, {"data": page, "paging": paging})
                if url.path == "/twilio/v1/ContentAndApprovals":
                    return self._answer(200, {"contents": provider.twilio, "meta": {"next_page_url": None}})
                return self._answer(404, {"error": "no such path"})

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def provider() -> Iterator[Provider]:
    served = Provider()
    yield served
    served.server.shutdown()


def channels(provider: Provider) -> list[dict[str, Any]]:
    base = f"http://127.0.0.1:{provider.port}"
    return [
        {"provider": "meta", "ref": p.META_PHONE_NUMBER_ID, "phone": "+15550001111", "name": "Support",
         "secret": "meta-app-secret-cli-1234", "access_token": "meta-token", "waba_id": WABA,
         "api_base_url": f"{base}/meta"},
        {"provider": "twilio", "ref": "whatsapp:+15550002222", "phone": "+15550002222", "name": "Twilio",
         "secret": "twilio-auth-token-cli-1", "account_sid": TWILIO_SID, "api_base_url": f"{base}/twilio"},
        {"provider": "evolution", "ref": "shop", "phone": "+15550003333", "name": "Shop",
         "secret": "evolution-key-cli-123456", "api_base_url": f"{base}/evolution"},
    ]  # fmt: skip


def environment(configured: list[dict[str, Any]]) -> dict[str, str]:
    return {
        "WHATSAPP_HANDLER_CHANNELS": json.dumps(configured),
        "WHATSAPP_HANDLER_PUBLIC_BASE_URL": "https://hooks.example.com",
    }


def meta_template(name: str, status: str = "APPROVED", body: str = "Hi {{1}}") -> dict[str, Any]:
    return {"id": f"id-{name}", "name": name, "language": "en_US", "status": status, "category": "UTILITY",
            "components": [{"type": "BODY", "text": body}]}  # fmt: skip


def test_templates_sync_records_every_page_and_forgets_what_is_gone(db, db_url, tmp_path, provider) -> None:
    configured = channels(provider)
    for c in configured:
        db.execute(
            "SELECT whatsapp_handler.add_channel(%s, %s, %s, %s)", (c["provider"], c["ref"], c["phone"], c["name"])
        )
    provider.meta = [meta_template("parcel_update", body="Hi {{1}}, parcel {{2}}"), meta_template("promo", "PENDING")]
    provider.twilio = [
        {"sid": "HX" + "a" * 32, "friendly_name": "refund_sent", "language": "en",
         "types": {"twilio/text": {"body": "Refund {{1}} sent"}},
         "approval_requests": {"name": "refund_sent", "category": "UTILITY", "status": "approved"}},
        {"sid": "HX" + "b" * 32, "friendly_name": "draft", "language": "en", "types": {}, "approval_requests": {}},
    ]  # fmt: skip
    env = environment(configured)

    result = run_cli("templates", "sync", url=db_url, cwd=tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert "Support (1234567890): 2 listed, 2 new or changed status, 0 no longer listed" in result.stdout
    assert "Twilio (whatsapp:+15550002222): 1 listed" in result.stdout
    assert "Shop (shop): no templates on WhatsApp Web" in result.stdout
    rows = db.execute("SELECT name, status, category, body_parameters, provider_template_id"
                      " FROM whatsapp_handler.message_templates ORDER BY name").fetchall()  # fmt: skip
    assert [(r["name"], r["status"], r["body_parameters"]) for r in rows] == [
        ("parcel_update", "approved", 2), ("promo", "pending", 1), ("refund_sent", "approved", 1)]  # fmt: skip
    assert rows[2]["provider_template_id"] == "HX" + "a" * 32
    assert any(s.endswith("Bearer meta-token") for s in provider.seen)

    provider.meta = [meta_template("parcel_update", "PAUSED", "Hi {{1}}, parcel {{2}}")]
    again = run_cli("templates", "sync", "--channel", p.META_PHONE_NUMBER_ID, url=db_url, cwd=tmp_path, **env)
    assert "1 listed, 1 new or changed status, 1 no longer listed (deleted)" in again.stdout, again.stdout
    status = {r["name"]: r["status"] for r in db.execute("SELECT name, status FROM whatsapp_handler.message_templates")}
    assert status == {"parcel_update": "paused", "promo": "deleted", "refund_sent": "approved"}
    listed = run_cli("templates", "list", url=db_url, cwd=tmp_path, **env).stdout
    assert "parcel_update (en_US) utility, paused, 2 body parameter(s)" in listed


def test_a_failing_provider_is_named_and_the_exit_says_so(db, db_url, tmp_path, provider) -> None:
    configured = channels(provider)
    for c in configured:
        db.execute(
            "SELECT whatsapp_handler.add_channel(%s, %s, %s, %s)", (c["provider"], c["ref"], c["phone"], c["name"])
        )
    provider.fail = True
    result = run_cli("templates", "sync", url=db_url, cwd=tmp_path, **environment(configured))
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert "Support (1234567890): failed: the provider answered 500" in result.stdout
    assert "Shop (shop): no templates" in result.stdout
    unknown = run_cli("templates", "sync", "--channel", "nope", url=db_url, cwd=tmp_path, **environment(configured))
    assert "no configured channel has ref nope" in assert_one_line_error(unknown, 2)


def test_api_keys_are_made_listed_and_revoked(db, db_url, tmp_path) -> None:
    channel = db.execute("SELECT whatsapp_handler.add_channel('meta', '1234567890', '+15550001111', 'Support') AS id")
    channel_id = channel.fetchone()["id"]
    made = run_cli("api-key", "create", "billing", "--channel", str(channel_id), url=db_url, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    key = made.stdout.split(": ")[1].split()[0]
    assert key.startswith("whk_") and "only its hash is kept" in made.stdout
    listed = run_cli("api-key", "list", url=db_url, cwd=tmp_path).stdout
    assert f"billing: channels {channel_id}; read, send;" in listed and key not in listed
    assert run_cli("api-key", "revoke", "billing", url=db_url, cwd=tmp_path).stdout == "API key billing revoked\n"
    assert "revoked" in run_cli("api-key", "list", url=db_url, cwd=tmp_path).stdout
    assert "no live API key named billing" in assert_one_line_error(
        run_cli("api-key", "revoke", "billing", url=db_url, cwd=tmp_path), 2)  # fmt: skip
    assert "unknown channel 999" in assert_one_line_error(
        run_cli("api-key", "create", "other", "--channel", "999", url=db_url, cwd=tmp_path), 1)  # fmt: skip
    bad_name = run_cli("api-key", "create", "Bad Name", "--channel", str(channel_id), url=db_url, cwd=tmp_path)
    assert "malformed API key name" in assert_one_line_error(bad_name, 1)


def test_doctor_says_when_a_channel_can_send_no_template(db, db_url, tmp_path) -> None:
    channel_id = db.execute(
        "SELECT whatsapp_handler.add_channel('meta', '1234567890', '+15550001111', 'Support') AS id"
    ).fetchone()["id"]

    def templates_line() -> str:
        out = run_cli("doctor", url=db_url, cwd=tmp_path).stdout
        return next(line for line in out.splitlines() if line.split()[1:3] == ["templates", "channel"])

    assert templates_line().startswith("ok") and "0 approved of 0" in templates_line()
    db.execute("SELECT whatsapp_handler.api_key_create('shop', %s)", ([channel_id],))
    line = templates_line()
    assert line.startswith("warn") and "it can send nothing" in line and "templates sync" in line
    db.execute(
        "SELECT whatsapp_handler.template_upsert(%s, 'parcel', 'en', 'utility', 'approved', '[]')", (channel_id,)
    )
    assert templates_line().startswith("ok")
    db.execute("UPDATE whatsapp_handler.message_templates SET updated_at = now() - interval '9 days'")
    assert "none updated for 9 days" in templates_line()
