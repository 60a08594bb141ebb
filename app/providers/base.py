"""What every provider shares: the protocol its module follows, the outcomes of a send, and the
provider-neutral steps around a send (posting, redaction of the answer, classification).

A provider is one module (app/providers/meta.py, twilio.py, evolution.py) holding all that is
its own, on both sides: its webhook route (authentication, envelope, routing to a channel),
the request that sends a message, how its answers are read, and the credentials a channel
needs. app/providers/__init__.py lists them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp

if TYPE_CHECKING:
    from litestar.handlers import HTTPRouteHandler
    from litestar.openapi.spec import Schema

    from app.settings import ChannelConfig

MAX_ERROR_BODY = 2000
# Queue kinds that answer no message (sending/read_receipts): a 2xx is their success.
RECEIPTS = ("read", "typing")
# Any answer a provider gives to a request it could take later: too early, too many, or down.
RETRYABLE_STATUSES = (408, 425, 429)


@dataclass(frozen=True)
class Sent:
    provider_message_id: str


# A refusal carries the provider's error code when its answer names one: what the code means for the
# message (refused for good, retried, the channel or the person paced) is decided once, in SQL
# (provider_errors, read by worker_failed); Retry and Reject are the HTTP status's reading of it.
@dataclass(frozen=True)
class Retry:
    error: dict[str, Any]
    retry_after: float | None = None
    code: str | None = None


@dataclass(frozen=True)
class Reject:
    error: dict[str, Any]
    code: str | None = None


@dataclass(frozen=True)
class Unknown:
    """The provider said yes but named no message: it may well send it, so not again."""

    error: dict[str, Any]


Outcome = Sent | Retry | Reject | Unknown


class Provider(Protocol):
    """What a provider's module holds. The module itself is the implementation."""

    # The name in settings, in the database's provider type, and in ingest_<name>; the name people use.
    NAME: str
    TITLE: str
    # The channel settings (ChannelConfig fields) that only this provider takes.
    CHANNEL_FIELDS: frozenset[str]
    # The service settings (Settings fields) that its channels need, each with why.
    REQUIRED_SETTINGS: dict[str, str]
    # Its webhook routes (each authenticates, reads the envelope, routes to a channel, ingests).
    ROUTES: Sequence[HTTPRouteHandler]
    # The envelope the relay reads, for the OpenAPI document.
    ENVELOPE_SCHEMA: Schema

    def channel_refs(self, payload: dict[str, Any]) -> set[str]:
        """The channel refs (provider_ref) a webhook body names: the routing, which the provider's SQL
        _<name>_channel_ref does the same way."""

    def config_refusal(self, channel: ChannelConfig) -> str | None:
        """Why this channel's configuration is not one this provider takes (None when it is)."""

    def missing_credentials(self, channel: ChannelConfig) -> str | None:
        """Why this channel cannot send (None when it can)."""

    def send_request(self, channel: ChannelConfig, message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The URL and aiohttp keyword arguments (json or data) that send this queued message; the
        credentials go in auth_headers."""

    def auth_headers(self, channel: ChannelConfig) -> dict[str, str]:
        """The headers carrying the channel's credentials, if the provider takes them in headers."""

    def provider_id(self, body: Any) -> str | None:
        """The provider's id of the message it accepted, read from its answer's JSON."""

    def error_code(self, body: Any) -> str | None:
        """The provider's error code in a refusal's JSON (Meta error.code, Twilio code), as text."""


def digits(phone: str) -> str:
    """An E.164 number without its +, as Meta and Evolution take it."""
    return phone.lstrip("+")


def otp_text(message: dict[str, Any]) -> str:
    """The code as plain text, for a provider or channel without an authentication template."""
    return f"Your code is {message['code']}"


# A business message (kind "business", queued by SQL's send function) carries its content as a Meta
# Cloud API message object without messaging_product, recipient_type and to: these are its types.
# SQL refuses, before queueing, what a channel's provider cannot carry (docs/worker.md, "Business
# messages"); a provider's send_request refuses again whatever slipped through, as Unsupported.
BUSINESS_TYPES = frozenset(
    {"text", "template", "image", "document", "audio", "video", "location", "interactive", "reaction"}
)
MEDIA_TYPES = frozenset({"image", "document", "audio", "video"})


class Unsupported(ValueError):
    """A business message its channel's provider cannot carry (a type, a feature, media by id)."""


def business_content(message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A business message's type and the object of that type (Meta's shape)."""
    content = message["content"]
    if not isinstance(content, dict):
        raise TypeError("content is not an object")
    kind = content["type"]
    if kind not in BUSINESS_TYPES:
        raise Unsupported(f"unknown message type {kind!r}")
    found = content[kind]
    if not isinstance(found, dict):
        raise TypeError(f"content.{kind} is not an object")
    return kind, found


def media_link(provider: str, kind: str, media: dict[str, Any]) -> str:
    """The media's URL: a provider other than Meta cannot fetch a Meta media id (uploaded to Meta)."""
    link = media.get("link")
    if not isinstance(link, str) or not link:
        raise Unsupported(f"{provider} takes {kind} by link only, not by a Meta media id")
    return link


def coordinates(location: dict[str, Any]) -> tuple[float, float]:
    """Meta takes latitude and longitude as numbers or decimal strings; both are checked as degrees."""
    latitude, longitude = float(location["latitude"]), float(location["longitude"])
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise ValueError(f"location {latitude},{longitude} is not latitude and longitude in degrees")
    return latitude, longitude


def decimal(degrees: float) -> str:
    """Degrees as a decimal string, never in exponent form (1e-05), for a provider that takes text."""
    return format(Decimal(repr(degrees)), "f")


def idempotency_key(message: dict[str, Any]) -> str:
    """Stable for one message across every attempt: its outbound row (a reply or a business
    message: both name their message_id), or its OTP challenge."""
    if message.get("kind") == "otp":
        return f"whatsapp-handler-otp-{message['challenge_id']}"
    if message.get("kind") in RECEIPTS:
        return f"whatsapp-handler-{message['kind']}-{message['provider_message_id']}"
    return f"whatsapp-handler-message-{message['message_id']}"


def headers(provider: Provider, channel: ChannelConfig, message: dict[str, Any]) -> dict[str, str]:
    found = provider.auth_headers(channel)
    if channel.idempotency_header:
        found[channel.idempotency_header] = idempotency_key(message)
    return found


async def send(provider: Provider, session: aiohttp.ClientSession, channel: ChannelConfig,
               message: dict[str, Any], timeout: aiohttp.ClientTimeout) -> Outcome:  # fmt: skip
    try:
        url, kwargs = provider.send_request(channel, message)
        sent_headers = headers(provider, channel, message)
    except Unsupported as exc:
        # What the provider cannot carry is not tried: it would fail at the provider, or arrive as something else.
        return Reject({"error": f"{provider.TITLE} cannot carry this message: {exc}"})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # A queued message without its address, text or code cannot succeed however often it is tried.
        return Reject({"error": f"malformed queue message: {type(exc).__name__} {exc}"})
    try:
        async with session.post(url, headers=sent_headers, timeout=timeout, **kwargs) as response:
            text = (await response.text(errors="replace"))[:MAX_ERROR_BODY]
            if not 200 <= response.status < 300:
                text = redact(text, channel, message)
            outcome = classify(provider, response.status, text, response.headers.get("Retry-After"))
    except TimeoutError:
        return Retry({"error": "timeout"})
    except aiohttp.ClientError as exc:
        return Retry({"error": type(exc).__name__, "detail": str(exc)[:200]})
    if isinstance(outcome, Unknown) and message.get("kind") in RECEIPTS:
        # A receipt's answer names no message ({"success": true}): its 2xx is the whole answer.
        return Sent(f"{message['kind']}:{message['provider_message_id']}"[:256])
    return outcome


def redact(text: str, channel: ChannelConfig, message: dict[str, Any]) -> str:
    """A provider's error may echo the request it refused; the answer is kept (dead letters, archived
    headers), so the OTP code and the channel's credentials that request carried are cut out of it.
    A value shorter than a code would cut out ordinary words, and is no credential worth the name."""
    secrets = [channel.secret.get_secret_value()]
    if channel.access_token is not None:
        secrets.append(channel.access_token.get_secret_value())
    if message.get("kind") == "otp" and isinstance(message.get("code"), str):
        secrets.append(message["code"])
    for secret in secrets:
        if len(secret) >= 6:
            text = text.replace(secret, "[redacted]")
    return text


def classify(provider: Provider, status: int, text: str, retry_after: str | None) -> Outcome:
    """Sent (with the provider's id), Unknown (2xx without one), or by the HTTP status Retry (overloaded or
    down: 408, 425, 429, 5xx) or Reject (another 4xx), each with the provider's error code when it names
    one: the worker's settle (worker_failed) lets provider_errors overrule the status by the code."""
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    error = {"status": status, "body": body if body is not None else text}
    if 200 <= status < 300:
        found = provider.provider_id(body)
        return Sent(found) if isinstance(found, str) and 0 < len(found) <= 256 else Unknown(error)
    code = provider.error_code(body)
    if status in RETRYABLE_STATUSES or status >= 500:
        return Retry(error, retry_after_seconds(retry_after), code)
    return Reject(error, code)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After in seconds; None for an HTTP date, which the worker's backoff decides instead."""
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None
