"""Evolution API: all that is Evolution's, on both sides.

Webhooks: Evolution signs nothing, its instance's apikey is the credential (in the body, an
apikey header or a Bearer token); a body names its instance, the channel. Sending:
`/message/sendText/{instance}` on the channel's own server, with the apikey in a header (a
business message through the send endpoint of its type: sendMedia, sendLocation, ...).
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, NotAuthorizedException
from litestar.openapi.spec import OpenAPIType, Schema
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.compare import same
from app.envelopes import Body, bad_request, decode, json_object
from app.openapi import described, problems, string_schema, webhook_examples
from app.providers.base import MEDIA_TYPES, Unsupported, business_content, coordinates, digits, media_link, otp_text
from app.settings import ChannelConfig
from app.webhooks import Relay

NAME = "evolution"
TITLE = "Evolution"


# --- Authentication ------------------------------------------------------------------------------------------

# A key presented in a header is compared before the body is parsed; one in the body is looked
# for only in bodies up to this size, so that a caller without a key cannot make the relay parse
# megabytes of JSON.
BODY_KEY_MAX_BYTES = 256 * 1024
REDACTED = "[redacted]"


def _apikey_name(name: object) -> bool:
    return isinstance(name, str) and name.casefold().replace("_", "").replace("-", "") == "apikey"


def redact_keys(payload: dict[str, Any], secrets: Iterable[bytes]) -> dict[str, Any]:
    """The body without its apikey (the top-level one removed; any other member named apikey, in
    any case and at any depth, and any copy of a secret inside a string, replaced by [redacted]),
    so that no copy of a credential is stored with the raw event. Walks without recursion: a
    body nested as deep as the parser allows is still redacted."""
    payload.pop("apikey", None)
    words = [w for w in (s.decode("utf-8", "surrogateescape") for s in secrets) if w]
    stack: list[dict[str, Any] | list[Any]] = [payload]
    while stack:
        node = stack.pop()
        for key, value in list(node.items()) if isinstance(node, dict) else enumerate(node):
            if isinstance(node, dict) and _apikey_name(key):
                node[key] = REDACTED
            elif isinstance(value, str):
                for word in words:
                    if word in value:
                        value = value.replace(word, REDACTED)
                node[key] = value
            elif isinstance(value, dict | list):
                stack.append(value)
    return payload


def _without_keys(body: Body, keys: Iterable[bytes]) -> Body:
    """The raw body with every configured apikey's bytes masked: a credential is not stored."""
    raw = body.raw
    for key in keys:
        raw = raw.replace(key, REDACTED.encode())
    return Body(raw, body.text, body.note)


def _bearer(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


# --- The envelope, and routing -------------------------------------------------------------------------------


class Envelope(BaseModel):
    """An Evolution API event: the instance it comes from (the channel; SQL's _evolution_channel_ref
    reads the same field) and, usually, that instance's apikey."""

    model_config = ConfigDict(extra="allow")

    event: str = Field(min_length=1, max_length=128)
    instance: str = Field(min_length=1, max_length=128)
    apikey: str | None = None


def envelope(body: bytes | str) -> tuple[Envelope, dict[str, Any]]:
    """The envelope, and the body as an object (to be stored without its apikey)."""
    payload = json_object(body)
    try:
        return Envelope.model_validate(payload), payload
    except ValidationError as exc:
        raise bad_request("not an Evolution API event", exc) from None


def channel_refs(payload: dict[str, Any]) -> set[str]:
    """The channel ref a body names, its instance (a body that is not Evolution's envelope names none)."""
    try:
        return {Envelope.model_validate(payload).instance}
    except ValidationError:
        return set()


ENVELOPE_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    properties={
        "event": string_schema(min_length=1, max_length=128),
        "instance": string_schema(min_length=1, max_length=128),
        "apikey": string_schema(),
    },
    required=["event", "instance"],
)


# --- The webhook route ---------------------------------------------------------------------------------------


@post(
    "/webhooks/evolution",
    status_code=200,
    opt={"provider": NAME},
    responses=problems(400, 401, 404, 413, 503),
    operation_class=described(
        ("application/json", ENVELOPE_SCHEMA), {"apikey": "the instance's apikey"}, examples=webhook_examples(NAME)
    ),
)
async def evolution_webhook(request: Request, relay: NamedDependency[Relay]) -> Response:
    """Evolution API events, authenticated by the instance's apikey (body, apikey header or Bearer)."""
    body = await request.body()
    configured = relay.channels.secrets(NAME)
    # Authenticated before the instance is looked up, against every configured key; a key in a
    # header before the body is parsed, one in the body only from a small body.
    headers = (request.headers.get("apikey"), _bearer(request.headers.get("authorization")))
    keys = {key for key in configured if any([same(key, candidate) for candidate in headers])}
    if not keys and len(body) > BODY_KEY_MAX_BYTES:
        raise NotAuthorizedException(
            f"no configured apikey in the apikey or Authorization header, and a body over"
            f" {BODY_KEY_MAX_BYTES} bytes is not searched for one"
        )
    if not keys:
        # Only the body's key can authenticate it: read from the body as sent, before anything is cleaned
        # (a key with a \u0000 must not become the key once the \u0000 is removed).
        presented, _ = envelope(body)
        keys = {key for key in configured if same(key, presented.apikey)}
        if not keys:
            raise NotAuthorizedException("no configured apikey was presented")
    decoded = decode(body)
    if decoded.text is None:
        # Authenticated by a header, but not JSON: kept (without the key's bytes) and dead-lettered.
        return Response(await relay.ingest(request, NAME, _without_keys(decoded, configured)))
    try:
        read, payload = envelope(decoded.text)
    except ClientException as exc:
        return Response(await relay.keep_unread(request, NAME, _without_keys(decoded, configured), exc.detail))
    relay.channel(NAME, read.instance, keys)
    # The apikey is a credential: no copy of it is stored with the raw event.
    redact_keys(payload, configured)
    if decoded.note is None:
        return Response(await relay.ingest(request, NAME, json.dumps(payload)))
    kept = Body(_without_keys(decoded, configured).raw, json.dumps(payload), decoded.note)
    return Response(await relay.ingest(request, NAME, kept))


ROUTES = [evolution_webhook]


# --- Settings: what an Evolution channel needs ---------------------------------------------------------------

# Evolution takes no settings of its own: the channel's secret is the instance's apikey, its
# ref the instance's name, and api_base_url its server.
CHANNEL_FIELDS: frozenset[str] = frozenset()

# The service settings (Settings fields) a channel of this provider needs, and why.
REQUIRED_SETTINGS: dict[str, str] = {}


def config_refusal(config: ChannelConfig) -> str | None:
    return None


def missing_credentials(config: ChannelConfig) -> str | None:
    if not config.api_base_url:
        return "an Evolution channel needs api_base_url to send"
    return None


# --- Sending, and reading the answer -------------------------------------------------------------------------


# How long Evolution shows the typing indicator for.
TYPING_MS = 3000


def send_request(config: ChannelConfig, message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if message.get("kind") == "read":
        # Evolution API v2's chat controller: markMessageAsRead takes the message's key.
        key = {
            "remoteJid": f"{digits(message['to'])}@s.whatsapp.net",
            "fromMe": False,
            "id": message["provider_message_id"],
        }
        return f"{config.api_base_url}/chat/markMessageAsRead/{config.ref}", {"json": {"readMessages": [key]}}
    if message.get("kind") == "typing":
        # sendPresence shows "typing..." for delay milliseconds (the answer follows in the queue).
        body = {"number": digits(message["to"]), "presence": "composing", "delay": TYPING_MS}
        return f"{config.api_base_url}/chat/sendPresence/{config.ref}", {"json": body}
    if message.get("kind") == "business":
        endpoint, body = business_request(message)
        return f"{config.api_base_url}/message/{endpoint}/{config.ref}", {"json": body}
    text = otp_text(message) if message.get("kind") == "otp" else message["body"]
    body = {"number": digits(message["to"]), "text": text}
    return f"{config.api_base_url}/message/sendText/{config.ref}", {"json": body}


# Python's own table of file extensions, not the machine's (/etc/mime.types): the same guess everywhere.
MIME_TYPES = mimetypes.MimeTypes()

# The shapes below are Evolution API v2's send endpoints (doc.evolution-api.com, "Message Controller";
# the request schemas of src/validate/message.schema.ts, release 2.3). Every one but sendReaction
# takes `quoted`, the message it replies to.


def business_request(message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A business message (Meta's message object) as the Evolution endpoint and its body. Evolution
    (WhatsApp Web) has no templates, and fetches media only from a URL or base64."""
    kind, found = business_content(message)
    number = digits(message["to"])
    context = message["content"].get("context")
    if kind == "reaction":
        if context is not None:
            raise Unsupported("Evolution cannot send a reaction as a reply (context)")
        # The reacted-to message is named by its chat and id; fromMe false: the customer's message.
        key = {"remoteJid": f"{number}@s.whatsapp.net", "fromMe": False, "id": found["message_id"]}
        return "sendReaction", {"key": key, "reaction": found["emoji"]}
    endpoint, body = _business_body(kind, found)
    body = {"number": number} | body
    if context is not None:
        body["quoted"] = {"key": {"id": context["message_id"]}}
    return endpoint, body


def _business_body(kind: str, found: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if kind == "text":
        preview = {"linkPreview": bool(found["preview_url"])} if "preview_url" in found else {}
        return "sendText", {"text": found["body"]} | preview
    if kind == "audio":
        # Evolution converts it to Opus and sends a voice message; its 2.3 release applies no `quoted` to it.
        return "sendWhatsAppAudio", {"audio": media_link(TITLE, kind, found)}
    if kind in MEDIA_TYPES:
        return "sendMedia", _media(kind, found)
    if kind == "location":
        latitude, longitude = coordinates(found)
        # Evolution requires name and address; Meta makes both optional.
        return "sendLocation", {"latitude": latitude, "longitude": longitude,
                                "name": found.get("name") or "", "address": found.get("address") or ""}  # fmt: skip
    if kind == "interactive":
        return _interactive(found)
    raise Unsupported(f"Evolution cannot send a message of type {kind} (WhatsApp Web has no templates)")


def _media(kind: str, found: dict[str, Any]) -> dict[str, Any]:
    link = media_link(TITLE, kind, found)
    body: dict[str, Any] = {"mediatype": kind, "media": link}
    if found.get("caption"):
        body["caption"] = found["caption"]
    if kind == "document":
        # Evolution names a document without fileName after its URL's last segment up to a dot, and
        # fails on a URL without one: the name is always given.
        body["fileName"] = found.get("filename") or PurePosixPath(urlsplit(link).path).name or "document"
    mimetype = found.get("mime_type") or MIME_TYPES.guess_type(urlsplit(link).path)[0]
    if mimetype:
        body["mimetype"] = mimetype
    return body


def _interactive(found: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Meta's reply buttons and list as Evolution's: the header's text is the title, which Evolution
    shows in bold above the body; a list section without a title (Meta allows one) gets the list's
    button text, as Evolution requires a title for each."""
    style = found["type"]
    if style not in ("button", "list"):
        raise Unsupported(f"Evolution cannot send an interactive {style} message")
    text = found["body"]["text"]
    footer = (found.get("footer") or {}).get("text") or ""
    header = found.get("header") or {}
    action = found["action"]
    if header and header.get("type") != "text" and not (style == "button" and header.get("type") == "image"):
        raise Unsupported(f"Evolution cannot send an interactive {style} with a {header.get('type')} header")
    title = header.get("text") or ""
    if style == "button":
        buttons = [{"type": "reply", "displayText": b["reply"]["title"], "id": b["reply"]["id"]}
                   for b in action["buttons"]]  # fmt: skip
        # Without a header the body is the title (Evolution requires one), with no description under it.
        body = {"title": title or text, "description": text if title else "", "footer": footer, "buttons": buttons}
        if header.get("type") == "image":
            body["thumbnailUrl"] = media_link(TITLE, "an interactive header image", header["image"])
        return "sendButtons", body
    sections = [
        {"title": section.get("title") or action["button"],
         "rows": [{"title": row["title"], "rowId": row["id"]}
                  | ({"description": row["description"]} if row.get("description") else {})
                  for row in section["rows"]]}
        for section in action["sections"]
    ]  # fmt: skip
    return "sendList", {"title": title, "description": text, "footerText": footer,
                        "buttonText": action["button"], "sections": sections}  # fmt: skip


def auth_headers(config: ChannelConfig) -> dict[str, str]:
    return {"apikey": config.secret.get_secret_value()}


def provider_id(body: Any) -> str | None:
    """{"key": {"id": "..."}}"""
    key = body.get("key") if isinstance(body, dict) else None
    return key.get("id") if isinstance(key, dict) else None


def error_code(body: Any) -> str | None:
    return None  # Evolution's answers carry no WhatsApp error code: its HTTP status decides
