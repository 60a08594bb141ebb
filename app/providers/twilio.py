"""Twilio's WhatsApp messaging: all that is Twilio's, on both sides.

Webhooks: signed with the account's auth token (X-Twilio-Signature, a base64 HMAC of the URL
Twilio posted to followed by the sorted form parameters; a JSON body is signed by the hash in
its URL instead); inbound messages are sent To the business number, status callbacks come From
it. Sending: the Messages API with `whatsapp:` addresses and basic auth (account SID, auth token);
a business message as Body, MediaUrl, ContentSid or PersistentAction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, PermissionDeniedException
from litestar.openapi.spec import OpenAPIType, Schema

from app.compare import same
from app.envelopes import NOT_UTF8, Body, decode, json_object
from app.openapi import described, problems, string_schema, webhook_examples
from app.providers.base import MEDIA_TYPES, Unsupported, business_content, coordinates, decimal, media_link, otp_text
from app.settings import ChannelConfig
from app.webhooks import Relay

NAME = "twilio"
TITLE = "Twilio"
DEFAULT_BASE_URL = "https://api.twilio.com"
FORM = "application/x-www-form-urlencoded"
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


# --- Authentication ------------------------------------------------------------------------------------------

ALGORITHMS = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}

# Twilio's signed text is every `name + value`, sorted, with nothing between them, so one
# signature fits other splits of the same text (`MessageSid=SM…NumMedia0` and no NumMedia).
# A signed form is taken only when every name is one Twilio sends and every SID has its shape
# (two letters and 32 hex digits), which pins the message id to the text Twilio signed.
# The names are those of Twilio's incoming message webhook (core, media, rich messages,
# location, geographic, WhatsApp, Click-to-WhatsApp ads, replies) and status callbacks.
PARAMETERS = frozenset(
    {
        "AccountSid", "ApiVersion", "Body", "ErrorCode", "ErrorMessage", "EventType", "FlowData", "Forwarded",
        "From", "FrequentlyForwarded", "InteractiveData", "Latitude", "Longitude", "Address", "Label",
        "MessageSid", "MessageStatus", "MessageType", "MessagingServiceSid", "NumMedia", "NumSegments",
        "ProfileName", "RawDlrDoneDate", "SmsMessageSid", "SmsSid", "SmsStatus", "StructuredMessage", "To", "WaId",
    }
)  # fmt: skip
# Families Twilio extends (MediaUrl0..N, ReferralCtwaClid, ChannelInstallSid, ButtonType, FromCountry, ...):
# a new member of one of them is still Twilio's, so it is not refused.
FAMILIES = re.compile(
    r"Media(?:Url|ContentType)[0-9]{1,2}|(?:Referral|Channel|Button|OriginalRepliedMessage)[A-Z][A-Za-z]{0,40}"
    r"|(?:From|To)(?:City|State|Zip|Country)"
)
SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
# Names that carry the message's own id: Twilio sends the same SID in each.
MESSAGE_SIDS = ("MessageSid", "SmsSid", "SmsMessageSid")


@lru_cache(maxsize=8)
def base_urls(public_base_url: str) -> tuple[str, str]:
    """The base URL without and with its port: Twilio signs either form (its own validator tries both)."""
    parts = urlsplit(public_base_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    userinfo = parts.netloc[: len(parts.netloc) - len(host)]
    bare = host.rsplit(":", 1)[0] if parts.port is not None else host
    port = parts.port or (443 if parts.scheme == "https" else 80)
    prefix = f"{parts.scheme}://{userinfo}"
    return f"{prefix}{bare}{parts.path}", f"{prefix}{bare}:{port}{parts.path}"


def signed_text(params: Iterable[tuple[str, str]]) -> str:
    """Sorted names, each followed by its sorted distinct values, as twilio's RequestValidator builds it."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    return "".join(name + value for name in sorted(values) for value in sorted(values[name]))


def valid(
    secret: bytes, urls: Iterable[str], params: Iterable[tuple[str, str]], header: str, algorithm: str = "HMAC_SHA1"
) -> bool:
    """X-Twilio-Signature: base64 HMAC of the URL followed by the sorted POST parameters."""
    digest = ALGORITHMS.get(algorithm.upper())
    if digest is None:
        return False
    signed = signed_text(params)
    matched = False
    for url in urls:
        expected = base64.b64encode(hmac.new(secret, (url + signed).encode(), digest).digest())
        # Every candidate is computed and compared: how long it takes says nothing about which matched.
        matched |= same(expected, header.strip())
    return matched


def algorithm(settings_header: str | None) -> str:
    """The algorithm named by X-Twilio-Webhooks-Signature-Settings (SharedKey signing); HMAC_SHA1 without it."""
    for part in (settings_header or "").split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip() == "algorithm" and value.strip():
            return value.strip()
    return "HMAC_SHA1"


def body_sha256_valid(body: bytes, presented: str) -> bool:
    """JSON-bodied Twilio requests sign the URL only and carry the body's hash in its query (bodySHA256)."""
    return same(hashlib.sha256(body).hexdigest().encode(), presented.lower())


def form_refusal(params: Iterable[tuple[str, str]]) -> str | None:
    """Why a signed Twilio form is not one Twilio sends (None when it is): an unknown name, a SID
    of the wrong shape, no MessageSid, or message SIDs that differ. Asked only once the form is
    authenticated, so that an unsigned caller hears 403 whatever it sends."""
    fields: dict[str, str] = {}
    for name, value in params:
        if name not in PARAMETERS and not FAMILIES.fullmatch(name):
            return f"{name[:64]!r} is not a parameter Twilio sends"
        if name.endswith("Sid") and not SID.fullmatch(value):
            return f"{name} is not a Twilio SID (two letters and 32 hex digits)"
        fields.setdefault(name, value)
    sids = {fields[name] for name in MESSAGE_SIDS if name in fields}
    if "MessageSid" not in fields:
        return "the form has no MessageSid"
    if len(sids) > 1:
        return "MessageSid, SmsSid and SmsMessageSid differ"
    return None


# --- The envelope, and routing -------------------------------------------------------------------------------


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    """application/x-www-form-urlencoded, strictly: a body that is not one is a 400.

    Bytes that are not UTF-8 (raw or percent-encoded) become U+FFFD; clean_form says so."""
    try:
        text = body.decode("utf-8", "replace")
        return parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="replace")
    except ValueError:
        raise ClientException("the body is not a URL-encoded form") from None


def clean_form(body: bytes, fields: dict[str, str]) -> tuple[str, str | None]:
    """The form's fields as JSON text jsonb takes, and a note when they are not the body as received."""
    notes = []
    if any("\ufffd" in name + value for name, value in fields.items()):
        try:
            parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            notes.append(NOT_UTF8)
    nul = sum(name.count("\0") + value.count("\0") for name, value in fields.items())
    if nul:
        fields = {name.replace("\0", ""): value.replace("\0", "") for name, value in fields.items()}
        notes.append(f"{nul} \\u0000 removed")
    return json.dumps(fields), "; ".join(notes) or None


def channel_ref_field(fields: dict[str, Any]) -> str:
    """The field naming the business number: status callbacks come From it, inbound messages are
    sent To it. SQL's _twilio_channel_ref reads the same field."""
    return "From" if fields.get("MessageStatus", "received") != "received" else "To"


def channel_refs(fields: dict[str, Any]) -> set[str]:
    """The channel ref the fields name, in the field channel_ref_field picks (none when it is empty)."""
    ref = fields.get(channel_ref_field(fields))
    return {ref} if isinstance(ref, str) and ref else set()


ENVELOPE_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    properties={
        name: string_schema() for name in ("MessageSid", "From", "To", "Body", "MessageStatus", "WaId", "ProfileName")
    },
    additional_properties=string_schema(),
)


# --- The webhook route ---------------------------------------------------------------------------------------


def _posted_urls(request: Request, public_base_url: str | None) -> list[str]:
    """The URL Twilio posted to, as it saw it: the public base URL, then path and query as received."""
    raw = request.scope.get("raw_path") or request.scope["path"].encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    query = request.scope["query_string"].decode("latin-1")
    tail = path + (f"?{query}" if query else "")
    return [base + tail for base in (base_urls(public_base_url) if public_base_url else ())]


@post(
    "/webhooks/twilio",
    status_code=200,
    media_type="text/xml",
    opt={"provider": NAME},
    responses=problems(400, 403, 404, 413, 503),
    operation_class=described(
        (FORM, ENVELOPE_SCHEMA),
        {"X-Twilio-Signature": "base64 HMAC of the URL and the form"},
        examples=webhook_examples(NAME),
    ),
)
async def twilio_webhook(request: Request, relay: NamedDependency[Relay]) -> Response:
    """Twilio messages and status callbacks, signed with the auth token (X-Twilio-Signature)."""
    signature = request.headers.get("x-twilio-signature")
    if not signature:
        raise PermissionDeniedException("X-Twilio-Signature is missing")
    body = await request.body()
    body_hash = request.query_params.get("bodySHA256")
    unread = None
    if body_hash is not None:
        # A JSON body: the signature covers the URL (with the body's hash in it) and no parameters.
        payload, fields, signed = decode(body), {}, []
        if payload.text is not None:
            try:
                fields = json_object(payload.text)
            except ClientException as exc:
                unread = exc.detail  # told once the request is authenticated
    else:
        if request.headers.get("content-type", "").split(";", 1)[0].strip().lower() != FORM:
            raise ClientException(f"expected {FORM}")
        signed = form_pairs(body)
        fields = {}
        for name, value in signed:
            fields.setdefault(name, value)
        payload = Body(body, *clean_form(body, fields))
    # Authenticated before the channel is looked up: against every configured auth token.
    used = algorithm(request.headers.get("x-twilio-webhooks-signature-settings"))
    urls = _posted_urls(request, relay.public_base_url)
    signers = {token for token in relay.channels.secrets(NAME) if valid(token, urls, signed, signature, used)}
    if not signers or (body_hash is not None and not body_sha256_valid(body, body_hash)):
        raise PermissionDeniedException("X-Twilio-Signature does not match the request")
    if payload.text is None:
        # Signed, but not JSON: kept as received and dead-lettered (Twilio does not retry a 4xx).
        await relay.ingest(request, NAME, payload)
        return Response(EMPTY_TWIML, media_type="text/xml")
    ref_field = channel_ref_field(fields)
    # The signed text of a form can be split otherwise; a JSON body is pinned by its hash.
    refusal = unread or (form_refusal(signed) if body_hash is None else None)
    if refusal or not fields.get(ref_field):
        # Kept, not acted on: a re-split of a captured form lands here, and so would a name Twilio adds.
        await relay.keep_unread(request, NAME, payload, refusal or f"the body has no {ref_field}")
        return Response(EMPTY_TWIML, media_type="text/xml")
    relay.channel(NAME, fields[ref_field], signers)
    await relay.ingest(request, NAME, payload)
    return Response(EMPTY_TWIML, media_type="text/xml")


ROUTES = [twilio_webhook]


# --- Settings: what a Twilio channel needs -------------------------------------------------------------------

# The settings only a Twilio channel takes: its account (the channel's secret is the auth token).
CHANNEL_FIELDS = frozenset({"account_sid"})

# The service settings (Settings fields) a channel of this provider needs, and why.
REQUIRED_SETTINGS: dict[str, str] = {"public_base_url": "Twilio signs the URL it posts to"}


def config_refusal(config: ChannelConfig) -> str | None:
    if not config.ref.startswith("whatsapp:+"):
        return "a Twilio channel's ref is its sender, whatsapp:+E164"
    return None


def missing_credentials(config: ChannelConfig) -> str | None:
    if not config.account_sid:
        return "a Twilio channel needs account_sid to send"
    return None


# --- Sending, and reading the answer -------------------------------------------------------------------------


def send_request(config: ChannelConfig, message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if message.get("kind") in ("read", "typing"):
        raise Unsupported("read receipts and typing indicators (SQL refuses them first: providers/carries)")
    base = config.api_base_url or DEFAULT_BASE_URL
    form = {"From": config.ref, "To": f"whatsapp:{message['to']}"}
    if message.get("kind") == "otp" and config.otp_template:
        form |= {"ContentSid": config.otp_template, "ContentVariables": json.dumps({"1": message["code"]})}
    elif message.get("kind") == "otp":
        form["Body"] = otp_text(message)
    elif message.get("kind") == "business":
        form |= business_form(message)
    else:
        form["Body"] = message["body"]
    return f"{base}/2010-04-01/Accounts/{config.account_sid}/Messages.json", {"data": form}


def business_form(message: dict[str, Any]) -> dict[str, str]:
    """A business message (Meta's message object) as the Messages API's parameters (Twilio's "Message
    resource": Body, MediaUrl, ContentSid with ContentVariables, PersistentAction). Twilio sends no
    reply to a given message and no reaction, sends interactive messages only as Content templates,
    and fetches media only from a URL."""
    kind, found = business_content(message)
    if "context" in message["content"]:
        raise Unsupported("Twilio cannot send a message as a reply to another (context)")
    if kind == "text":
        return {"Body": found["body"]}
    if kind == "template":
        # The Content SID that the template registry holds for this channel's template, and the
        # body's parameters by position ("1", "2", ...), which is how Content variables are named.
        sid = message["provider_template_id"]
        if not isinstance(sid, str) or not sid:
            raise TypeError("provider_template_id is not a Content SID")
        form = {"ContentSid": sid}
        if message.get("template_variables"):
            form["ContentVariables"] = json.dumps(message["template_variables"])
        return form
    if kind in MEDIA_TYPES:
        # One MediaUrl per WhatsApp message; the caption travels as the Body (audio has none, and a
        # document's filename is the URL's: Twilio takes no other).
        form = {"MediaUrl": media_link(TITLE, kind, found)}
        if found.get("caption"):
            form["Body"] = found["caption"]
        return form
    if kind == "location":
        # Twilio's "Location messages with WhatsApp": PersistentAction geo:LAT,LONG|LABEL, with a Body
        # (the Messages API needs one), here the place's name and address, or its coordinates.
        latitude, longitude = (decimal(degrees) for degrees in coordinates(found))
        words = [found[key] for key in ("name", "address") if found.get(key)]
        label = f"|{words[0]}" if words else ""
        return {"Body": "\n".join(words) or f"{latitude},{longitude}",
                "PersistentAction": f"geo:{latitude},{longitude}{label}"}  # fmt: skip
    if kind == "interactive":
        raise Unsupported("Twilio sends interactive messages only as Content templates (a ContentSid)")
    raise Unsupported(f"Twilio cannot send a message of type {kind}")


def basic_authorization(login: str, password: str) -> str:
    """HTTP Basic's Authorization value. Built here: aiohttp deprecates BasicAuth, and its replacement
    (encode_basic_auth) is newer than the aiohttp this project allows (3.9). latin1, as BasicAuth encoded."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode("latin1")).decode("ascii")


def auth_headers(config: ChannelConfig) -> dict[str, str]:
    # Twilio's API takes HTTP Basic: the account SID and its auth token.
    return {"Authorization": basic_authorization(config.account_sid or "", config.secret.get_secret_value())}


def provider_id(body: Any) -> str | None:
    """{"sid": "SM..."}"""
    return body.get("sid") if isinstance(body, dict) else None


def error_code(body: Any) -> str | None:
    """{"code": 63016, "message", "more_info", "status": 400}: Twilio's error code."""
    code = body.get("code") if isinstance(body, dict) else None
    return str(code) if isinstance(code, int) and not isinstance(code, bool) else None
