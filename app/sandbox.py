"""A development sandbox: walk through a conversation and an OTP login without a provider account.

`sandbox say PHONE TEXT` plays the person: it posts a Meta webhook, signed with a configured Meta
channel's app secret, to the running relay, as Meta would. `sandbox sent [PHONE]` shows what the
service queued for people to receive (the conversation's replies and OTP codes), which without a
worker running stays in pgmq queue `outbound`. It reads the queue as the database's superuser, so
it runs on the embedded cluster only unless told otherwise (docs/sandbox.md)."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import time
import uuid
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from app import database
from app.settings import E164, ChannelConfig, Settings

# Queued, or sent and archived (an OTP message is deleted once sent: its code shows only while queued).
SENT = """
SELECT state, at, message FROM (
    SELECT 'waiting' AS state, enqueued_at AS at, msg_id, message FROM pgmq.q_outbound
    UNION ALL
    SELECT 'sent', archived_at, msg_id, message FROM pgmq.a_outbound
) m
WHERE %(phone)s::text IS NULL OR message ->> 'to' = %(phone)s
ORDER BY at, msg_id
"""


class SandboxError(Exception):
    """What the developer asked cannot be done as asked (exit 2)."""


def add_parser(commands: Any) -> None:
    sandbox = commands.add_parser(
        "sandbox",
        help="development: play a person on a Meta channel, and see what the service would send",
        description="Walk through a conversation and an OTP login without a provider account, against "
        "`serve` running here: `say` posts a signed Meta webhook as the person; `sent` lists the replies and "
        "OTP codes queued for people (run no worker meanwhile: it would try to send them). See docs/sandbox.md.",
    )
    actions = sandbox.add_subparsers(dest="sandbox_action", required=True, metavar="{say,sent}")
    say = actions.add_parser("say", help="post a message from PHONE to the relay, as Meta would")
    say.add_argument("phone", metavar="PHONE", help="the person's number in E.164, e.g. +447700900123")
    say.add_argument("text", metavar="TEXT", nargs="?", help="what they write (or --button)")
    say.add_argument("--button", metavar="ID", help="press a reply button instead, e.g. accept_terms")
    say.add_argument("--channel", metavar="REF", help="the Meta channel's ref (default: the first configured)")
    say.add_argument("--url", metavar="URL", help="the relay (default http://HTTP_HOST:HTTP_PORT)")
    sent = actions.add_parser("sent", help="list what the service queued for people to receive")
    sent.add_argument("phone", metavar="PHONE", nargs="?", help="only what goes to this number")
    sent.add_argument(
        "--allow-external",
        action="store_true",
        help="read a configured WHATSAPP_HANDLER_DATABASE_URL too (it shows OTP codes: never production)",
    )


def command(settings: Settings, args: argparse.Namespace) -> int:
    if args.sandbox_action == "say":
        print(say(settings, args.phone, args.text, args.button, args.channel, args.url))
        return 0
    if settings.database_url is not None and not args.allow_external:
        raise SandboxError(
            "sandbox sent shows OTP codes, so it reads only the embedded cluster; "
            "pass --allow-external for a development database set in WHATSAPP_HANDLER_DATABASE_URL"
        )
    if args.phone is not None:
        _check_phone(args.phone)
    for line in sent(database.resolve_conninfo(settings), args.phone):
        print(line)
    return 0


def say(settings: Settings, phone: str, text: str | None, button: str | None, ref: str | None, url: str | None) -> str:
    _check_phone(phone)
    if (text is None) == (button is None):
        raise SandboxError("say needs TEXT or --button ID (one of them)")
    channel = _meta_channel(settings.channels, ref)
    body = json.dumps(meta_webhook(channel, phone, text, button), separators=(",", ":")).encode()
    signature = hmac.new(channel.secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
    base = url or f"http://{settings.http_host}:{settings.http_port}"
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={signature}"}
    try:
        answer = httpx.post(f"{base.rstrip('/')}/webhooks/meta", content=body, headers=headers, timeout=15)
    except httpx.HTTPError as exc:
        raise OSError(f"the relay at {base} did not answer ({type(exc).__name__}): is `serve` running?") from exc
    if answer.status_code != 200:
        detail = answer.json().get("detail", answer.text) if "json" in answer.headers.get("content-type", "") else ""
        raise OSError(f"the relay answered {answer.status_code}: {detail}".rstrip(": "))
    r = answer.json()
    return f"relay: {r.get('outcome')}, {r.get('messages')} message(s), webhook {r.get('webhook_event_id')}"


def meta_webhook(channel: ChannelConfig, phone: str, text: str | None, button: str | None) -> dict[str, Any]:
    """One message from phone to the channel, in the shape of Meta's Cloud API webhook."""
    wa_id = phone.lstrip("+")
    message: dict[str, Any] = {"from": wa_id, "id": f"wamid.sandbox.{uuid.uuid4().hex}"}
    message["timestamp"] = str(int(time.time()))
    if button is not None:
        reply = {"type": "button_reply", "button_reply": {"id": button, "title": button}}
        message |= {"type": "interactive", "interactive": reply}
    else:
        message |= {"type": "text", "text": {"body": text}}
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": channel.phone.lstrip("+"), "phone_number_id": channel.ref},
        "contacts": [{"profile": {"name": "Sandbox"}, "wa_id": wa_id}],
        "messages": [message],
    }
    change = {"field": "messages", "value": value}
    return {"object": "whatsapp_business_account", "entry": [{"id": "sandbox", "changes": [change]}]}


def sent(conninfo: str, phone: str | None) -> list[str]:
    with psycopg.connect(conninfo, autocommit=True, row_factory=dict_row) as conn:
        rows = conn.execute(SENT, {"phone": phone}).fetchall()
    if not rows:
        return ["nothing queued" + (f" for {phone}" if phone else "")]
    return [f"{r['at']:%Y-%m-%d %H:%M:%S} {r['state']:<7} {r['message'].get('to')}  {_what(r['message'])}"
            for r in rows]  # fmt: skip


def _what(message: dict[str, Any]) -> str:
    if message.get("kind") == "otp":
        return f"OTP code {message.get('code')} (expires {message.get('expires_at')})"
    return f"{message.get('reply_key') or message.get('kind')}: {message.get('body')}"


def _meta_channel(channels: list[ChannelConfig], ref: str | None) -> ChannelConfig:
    metas = [c for c in channels if c.provider == "meta" and (ref is None or c.ref == ref)]
    if not metas:
        wanted = f"a Meta channel with ref {ref}" if ref else "a Meta channel"
        raise SandboxError(f"{wanted} is not configured in WHATSAPP_HANDLER_CHANNELS (its secret signs the webhook)")
    return metas[0]


def _check_phone(phone: str) -> None:
    if not re.fullmatch(E164, phone):
        raise SandboxError(f"{phone!r} is not a phone number in E.164, e.g. +447700900123")
