"""`whatsapp-handler templates sync|list`: each channel's message templates, as its provider lists them,
in the registry the send rules read (templates/templates: only approved templates are sent).

sync asks each configured Meta channel's WhatsApp Business Account (its `waba_id`) and each Twilio
channel's Content API for every template and records them with template_upsert; a template the
provider no longer lists is marked deleted, so it is refused from then on. Evolution channels have
no templates. One line per channel; a channel that fails is named and the others still sync."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.providers import meta
from app.settings import ChannelConfig, Settings

TIMEOUT = 30.0
MAX_PAGES = 100  # 100 templates a page: far more than an account may hold
TWILIO_CONTENT = "https://content.twilio.com"
NAME = re.compile(r"^[a-z0-9_]+$")
UPSERT = "SELECT whatsapp_handler.template_upsert(%s, %s, %s, %s, %s, %s, %s, %s) AS changed"


class TemplatesUsageError(Exception):
    """The command was asked for something it cannot do as asked (exit 2)."""


@dataclass(frozen=True)
class Listed:
    name: str
    language: str
    category: str
    status: str
    components: list[dict[str, Any]]
    provider_template_id: str | None = None
    reason: str | None = None


def add_parser(commands: Any) -> None:
    templates = commands.add_parser(
        "templates",
        help="sync or list each channel's message templates (only approved ones are sent)",
        description="sync asks Meta (a channel's waba_id) and Twilio (its Content API) for their templates and "
        "records them; list shows the registry. See docs/sending.md.",
    )
    actions = templates.add_subparsers(dest="templates_action", required=True, metavar="{sync,list}")
    sync = actions.add_parser("sync", help="fetch every configured channel's templates from its provider")
    sync.add_argument("--channel", metavar="REF", help="only the channel of this ref")
    listing = actions.add_parser("list", help="the registry: name, language, category, status per channel")
    listing.add_argument("--channel", metavar="REF", help="only the channel of this ref")


def command(settings: Settings, conninfo: str, args: argparse.Namespace) -> int:
    channels = [c for c in settings.channels if args.channel is None or c.ref == args.channel]
    if args.channel is not None and not channels:
        raise TemplatesUsageError(f"no configured channel has ref {args.channel}")
    with psycopg.connect(conninfo, autocommit=True, row_factory=dict_row) as conn:
        ids = {
            r["provider_ref"]: r["id"] for r in conn.execute("SELECT id, provider_ref FROM whatsapp_handler.channels")
        }
        if args.templates_action == "list":
            return _list(conn, [ids[c.ref] for c in channels if c.ref in ids])
        failed = 0
        for channel in channels:
            if channel.ref not in ids:
                print(f"{channel.name} ({channel.ref}): not in the database (`db deploy` and `serve` add it)")
                failed += 1
                continue
            try:
                print(f"{channel.name} ({channel.ref}): {_sync(conn, ids[channel.ref], channel)}", flush=True)
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                print(f"{channel.name} ({channel.ref}): failed: {_one_line(exc)}", flush=True)
                failed += 1
        return 1 if failed else 0


def _sync(conn: psycopg.Connection, channel_id: int, channel: ChannelConfig) -> str:
    if channel.provider == "meta":
        listed = _meta_templates(channel)
    elif channel.provider == "twilio":
        listed = _twilio_templates(channel)
    else:
        return "no templates on WhatsApp Web (Evolution): nothing to sync"
    changed = skipped = 0
    for t in listed:
        try:
            with conn.transaction():
                row = conn.execute(UPSERT, (channel_id, t.name, t.language, t.category, t.status, Jsonb(t.components),
                                            t.provider_template_id, t.reason)).fetchone()  # fmt: skip
            changed += bool(row["changed"])
        except psycopg.Error as exc:
            if exc.sqlstate != "WH008":
                raise
            print(f"  skipped {t.name} ({t.language}): {exc.diag.message_primary}")
            skipped += 1
    gone = _mark_deleted(conn, channel_id, {(t.name, t.language) for t in listed})
    return (
        f"{len(listed)} listed, {changed} new or changed status, {gone} no longer listed (deleted), {skipped} skipped"
    )


def _mark_deleted(conn: psycopg.Connection, channel_id: int, listed: set[tuple[str, str]]) -> int:
    rows = conn.execute(
        "SELECT name, language, category, components, status_reason FROM whatsapp_handler.message_templates"
        " WHERE channel_id = %s AND status <> 'deleted'", (channel_id,),
    ).fetchall()  # fmt: skip
    gone = [r for r in rows if (r["name"], r["language"]) not in listed]
    for r in gone:
        conn.execute(UPSERT, (channel_id, r["name"], r["language"], r["category"], "deleted", Jsonb(r["components"]),
                              None, "no longer listed by the provider"))  # fmt: skip
    return len(gone)


def _meta_templates(channel: ChannelConfig) -> list[Listed]:
    """GET /{waba_id}/message_templates, page after page (Graph API paging.next)."""
    if not channel.waba_id or channel.access_token is None:
        raise ValueError("a Meta channel needs waba_id and access_token to list its templates")
    url: str | None = f"{channel.api_base_url or meta.DEFAULT_BASE_URL}/{channel.waba_id}/message_templates"
    params: dict[str, Any] | None = {"fields": "id,name,language,status,category,components", "limit": 100}
    headers = {"Authorization": f"Bearer {channel.access_token.get_secret_value()}"}
    listed: list[Listed] = []
    with httpx.Client(timeout=TIMEOUT, headers=headers) as client:
        for _ in range(MAX_PAGES):
            if url is None:
                break
            answer = client.get(url, params=params)
            answer.raise_for_status()
            body = answer.json()
            listed += [Listed(t["name"], t["language"], t["category"], t["status"], t.get("components") or [],
                              None, t.get("rejected_reason")) for t in body["data"]]  # fmt: skip
            url, params = (body.get("paging") or {}).get("next"), None
    return listed


def _twilio_templates(channel: ChannelConfig) -> list[Listed]:
    """GET /v1/ContentAndApprovals: each content's WhatsApp approval (name, category, status)."""
    if not channel.account_sid:
        raise ValueError("a Twilio channel needs account_sid to list its templates")
    url: str | None = f"{channel.api_base_url or TWILIO_CONTENT}/v1/ContentAndApprovals"
    params: dict[str, Any] | None = {"PageSize": 100}
    auth = (channel.account_sid, channel.secret.get_secret_value())
    listed: list[Listed] = []
    with httpx.Client(timeout=TIMEOUT, auth=auth) as client:
        for _ in range(MAX_PAGES):
            if url is None:
                break
            answer = client.get(url, params=params)
            answer.raise_for_status()
            body = answer.json()
            for content in body["contents"]:
                approval = content.get("approval_requests") or {}
                name = approval.get("name") or content.get("friendly_name") or ""
                if not approval or not NAME.match(name):
                    continue  # not submitted to WhatsApp: Twilio cannot send it there as a template
                text = next((t["body"] for t in (content.get("types") or {}).values()
                             if isinstance(t, dict) and isinstance(t.get("body"), str)), "")  # fmt: skip
                listed.append(Listed(name, content["language"], approval.get("category") or "utility",
                                     _twilio_status(approval.get("status")), [{"type": "BODY", "text": text}],
                                     content["sid"], approval.get("rejection_reason") or None))  # fmt: skip
            url, params = (body.get("meta") or {}).get("next_page_url"), None
    return listed


def _twilio_status(status: str | None) -> str:
    # Twilio's approval states: received and pending are Meta's pending; unsubmitted never reaches here.
    return {"received": "pending", "pending": "pending"}.get(status or "", status or "pending")


def _list(conn: psycopg.Connection, channel_ids: list[int]) -> int:
    rows = conn.execute(
        "SELECT channel_id, name, language, category, status, body_parameters FROM whatsapp_handler.message_templates"
        " WHERE channel_id = ANY (%s) ORDER BY channel_id, name, language", (channel_ids,),
    ).fetchall()  # fmt: skip
    if not rows:
        print("no templates (`templates sync` fetches them)")
    for r in rows:
        print(f"channel {r['channel_id']}: {r['name']} ({r['language']}) {r['category']}, {r['status']}, "
              f"{r['body_parameters']} body parameter(s)")  # fmt: skip
    return 0


def _one_line(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"the provider answered {exc.response.status_code} to {exc.request.url.copy_with(query=None)}"
    return " ".join(str(exc).split())[:300] or type(exc).__name__
