"""Meta's WhatsApp Cloud API: all that is Meta's, on both sides.

Webhooks: signed with the app's secret (X-Hub-Signature-256, the hex HMAC-SHA256 of the raw
body), verified by a GET handshake with the channel's verify token; each change of a body names
its business number by metadata.phone_number_id. Sending: the Graph API's
`/{phone_number_id}/messages` (text, template, OTP through an authentication template, and a
business message's content as it is), with the system user's access token.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Literal

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, NotAuthorizedException, PermissionDeniedException
from pydantic import BaseModel, Field, ValidationError

from app.compare import same
from app.envelopes import bad_request, decode
from app.openapi import array_schema, described, object_schema, problems, string_schema, webhook_examples
from app.providers.base import business_content, digits
from app.settings import ChannelConfig
from app.webhooks import Relay

NAME = "meta"
TITLE = "Meta"
DEFAULT_BASE_URL = "https://graph.facebook.com/v21.0"
# Meta answers throttling and its own transient faults with these codes, often with HTTP 400.
SIGNATURE_PREFIX = "sha256="
MAX_CHALLENGE = 256
HANDSHAKE_QUERY = {
    "hub.mode": "subscribe",
    "hub.verify_token": "a Meta channel's verify token",
    "hub.challenge": "echoed",
}


# --- Authentication ------------------------------------------------------------------------------------------


def valid(app_secret: bytes, body: bytes, header: str) -> bool:
    """X-Hub-Signature-256: `sha256=` and the hex HMAC-SHA256 of the raw body."""
    if not header.startswith(SIGNATURE_PREFIX):
        return False
    expected = hmac.new(app_secret, body, hashlib.sha256).hexdigest().encode()
    return same(expected, header[len(SIGNATURE_PREFIX) :].lower())


# --- The envelope, and routing -------------------------------------------------------------------------------


class _Metadata(BaseModel):
    phone_number_id: str = Field(min_length=1, max_length=128)


class _Value(BaseModel):
    # Account-level fields (message_template_status_update, account_update, ...) name no number.
    metadata: _Metadata | None = None


class _Change(BaseModel):
    value: _Value


class _Entry(BaseModel):
    changes: list[_Change] = Field(min_length=1)


class Envelope(BaseModel):
    """A WhatsApp Business Account webhook: message changes name the number they are for."""

    object: Literal["whatsapp_business_account"]
    entry: list[_Entry] = Field(min_length=1)

    def channel_refs(self) -> set[str]:
        """The business numbers (phone_number_id) the body's changes are for; SQL's _meta_channel_ref
        reads the same field of each change's value."""
        return {
            change.value.metadata.phone_number_id
            for entry in self.entry
            for change in entry.changes
            if change.value.metadata is not None
        }


def envelope(body: bytes | str) -> Envelope:
    try:
        return Envelope.model_validate_json(body)
    except ValidationError as exc:
        raise bad_request("not a WhatsApp Business Account webhook", exc) from None


def channel_refs(payload: dict[str, Any]) -> set[str]:
    """The channel refs a body names (a body that is not Meta's envelope names none)."""
    try:
        return Envelope.model_validate(payload).channel_refs()
    except ValidationError:
        return set()


ENVELOPE_SCHEMA = object_schema(
    {
        "object": string_schema(const="whatsapp_business_account"),
        "entry": array_schema(
            object_schema(
                {
                    "changes": array_schema(
                        object_schema(
                            {
                                "value": object_schema(
                                    {
                                        "metadata": object_schema(
                                            {"phone_number_id": string_schema(min_length=1, max_length=128)}
                                        )
                                    }
                                )
                            },
                            ["value"],
                        )
                    )
                },
                ["changes"],
            )
        ),
    },
    ["object", "entry"],
)


# --- The webhook routes --------------------------------------------------------------------------------------


@get(
    "/webhooks/meta",
    media_type="text/plain",
    sync_to_thread=False,
    responses=problems(400, 403),
    operation_class=described(query=HANDSHAKE_QUERY),
)
def meta_handshake(request: Request, relay: NamedDependency[Relay]) -> Response:
    """Meta's subscription handshake: echo hub.challenge when hub.verify_token is a Meta channel's."""
    query = request.query_params
    challenge = query.get("hub.challenge")
    if not challenge or len(challenge) > MAX_CHALLENGE:
        raise ClientException(f"hub.challenge is missing or longer than {MAX_CHALLENGE} characters")
    if query.get("hub.mode") != "subscribe":
        raise PermissionDeniedException("hub.mode is not subscribe")
    token = query.get("hub.verify_token")
    matched = False
    for expected in relay.channels.verify_tokens(NAME):
        matched |= same(expected, token)
    if not matched:
        raise PermissionDeniedException("hub.verify_token matches no Meta channel")
    return Response(challenge, media_type="text/plain", headers={"X-Content-Type-Options": "nosniff"})


@post(
    "/webhooks/meta",
    status_code=200,
    opt={"provider": NAME},
    responses=problems(400, 401, 404, 413, 503),
    operation_class=described(
        ("application/json", ENVELOPE_SCHEMA),
        {"X-Hub-Signature-256": "sha256= and the hex HMAC"},
        examples=webhook_examples(NAME),
    ),
)
async def meta_webhook(request: Request, relay: NamedDependency[Relay]) -> Response:
    """Meta Cloud API events, signed with the app secret (X-Hub-Signature-256)."""
    signature = request.headers.get("x-hub-signature-256")
    if signature is None:
        raise NotAuthorizedException("X-Hub-Signature-256 is missing")
    body = await request.body()
    # Authenticated before it is parsed: against every configured app's secret (a handful).
    signers = {secret for secret in relay.channels.secrets(NAME) if valid(secret, body, signature)}
    if not signers:
        raise NotAuthorizedException("X-Hub-Signature-256 does not match the body")
    decoded = decode(body)
    if decoded.text is None:
        # Signed, but not JSON: kept as received and dead-lettered (Meta would only send it again).
        return Response(await relay.ingest(request, NAME, decoded))
    try:
        read = envelope(decoded.text)
    except ClientException as exc:
        return Response(await relay.keep_unread(request, NAME, decoded, exc.detail))
    # Account-level events name no number; the signing app's are stored raw by SQL.
    for phone_number_id in sorted(read.channel_refs()):
        relay.channel(NAME, phone_number_id, signers)
    return Response(await relay.ingest(request, NAME, decoded))


ROUTES = [meta_handshake, meta_webhook]


# --- Settings: what a Meta channel needs ---------------------------------------------------------------------


# The settings only a Meta channel takes: the handshake's token and the Graph API's access token.
CHANNEL_FIELDS = frozenset({"verify_token", "access_token", "waba_id"})

# The service settings (Settings fields) a channel of this provider needs, and why.
REQUIRED_SETTINGS: dict[str, str] = {}


def config_refusal(config: ChannelConfig) -> str | None:
    return None


def missing_credentials(config: ChannelConfig) -> str | None:
    if config.access_token is None:
        return "a Meta channel needs access_token to send"
    return None


# --- Sending, and reading the answer -------------------------------------------------------------------------


def send_request(config: ChannelConfig, message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    base = config.api_base_url or DEFAULT_BASE_URL
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual",
                            "to": digits(message["to"])}  # fmt: skip
    if message.get("kind") == "read":
        # Meta's "mark as read" (blue ticks), with the typing indicator when asked: one request.
        body = {"messaging_product": "whatsapp", "status": "read", "message_id": message["provider_message_id"]}
        if message.get("typing"):
            body["typing_indicator"] = {"type": "text"}
        return f"{base}/{config.ref}/messages", {"json": body}
    if message.get("kind") == "otp":
        code = message["code"]
        body |= {"type": "template", "template": {
            "name": config.otp_template,
            "language": {"code": config.otp_template_language},
            # Authentication templates carry the code in the body and in the copy-code button.
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": code}]},
                {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": code}]},
            ],
        }}  # fmt: skip
    elif message.get("kind") == "template":
        body |= {"type": "template", "template": message["template"]}
    elif message.get("kind") == "business":
        body |= business_body(message)
    else:
        body |= {"type": "text", "text": {"preview_url": False, "body": message["body"]}}
    return f"{base}/{config.ref}/messages", {"json": body}


# What the worker sets on every request: a content naming these would send elsewhere or otherwise.
ENVELOPE_FIELDS = frozenset({"messaging_product", "recipient_type", "to"})


def business_body(message: dict[str, Any]) -> dict[str, Any]:
    """A business message's content is already a Cloud API message object (Meta's "Send messages"
    reference: type, the object of that type, optional context.message_id); it goes as it is."""
    business_content(message)
    content = message["content"]
    clash = ENVELOPE_FIELDS & content.keys()
    if clash:
        raise ValueError(f"content names {', '.join(sorted(clash))}, which the worker sets")
    return content


def auth_headers(config: ChannelConfig) -> dict[str, str]:
    if config.access_token is None:
        return {}
    return {"Authorization": f"Bearer {config.access_token.get_secret_value()}"}


def provider_id(body: Any) -> str | None:
    """{"messages": [{"id": "wamid..."}]}"""
    messages = body.get("messages") if isinstance(body, dict) else None
    first = messages[0] if isinstance(messages, list) and messages else None
    return first.get("id") if isinstance(first, dict) else None


def error_code(body: Any) -> str | None:
    """{"error": {"message", "type", "code": 131047, "error_subcode", "error_data": {"details"}, "fbtrace_id"}}:
    Meta answers its throttling and its refusals alike, mostly with HTTP 400; the code says which
    (provider_errors)."""
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code) if isinstance(code, int) and not isinstance(code, bool) else None
