"""Sending one queued message through its channel's provider, and reading the answer.

Each provider gets the request it documents: Meta's Graph API `/{phone_number_id}/messages`
(text, template, and OTP through an authentication template), Twilio's Messages API
(`whatsapp:` addresses, basic auth) and Evolution API's `/message/sendText/{instance}`.
The answer is classified once, here: Sent (with the provider's id), Retry (the provider
is overloaded or down: 429, 5xx, a timeout, a dropped connection, Meta's throttling
codes) or Reject (4xx that will not succeed however often it is tried).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from app.settings import ChannelConfig

DEFAULT_BASE_URLS = {
    "meta": "https://graph.facebook.com/v21.0",
    "twilio": "https://api.twilio.com",
}
# Meta answers throttling and its own transient faults with these codes, often with HTTP 400.
META_RETRYABLE_CODES = {1, 2, 4, 17, 341, 613, 80007, 130429, 131000, 131016, 131056, 133004}
MAX_ERROR_BODY = 2000


@dataclass(frozen=True)
class Sent:
    provider_message_id: str


@dataclass(frozen=True)
class Retry:
    error: dict[str, Any]
    retry_after: float | None = None


@dataclass(frozen=True)
class Reject:
    error: dict[str, Any]


@dataclass(frozen=True)
class Unknown:
    """The provider said yes but named no message: it may well send it, so not again."""

    error: dict[str, Any]


Outcome = Sent | Retry | Reject | Unknown


def _digits(phone: str) -> str:
    return phone.lstrip("+")


def idempotency_key(message: dict[str, Any]) -> str:
    """Stable for one message across every attempt: its outbound row, or its OTP challenge."""
    if message.get("kind") == "otp":
        return f"whatsapp-handler-otp-{message['challenge_id']}"
    return f"whatsapp-handler-message-{message['message_id']}"


def _meta_request(channel: ChannelConfig, message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    base = channel.api_base_url or DEFAULT_BASE_URLS["meta"]
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual",
                            "to": _digits(message["to"])}  # fmt: skip
    if message.get("kind") == "otp":
        code = message["code"]
        body |= {"type": "template", "template": {
            "name": channel.otp_template,
            "language": {"code": channel.otp_template_language},
            # Authentication templates carry the code in the body and in the copy-code button.
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": code}]},
                {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": code}]},
            ],
        }}  # fmt: skip
    elif message.get("kind") == "template":
        body |= {"type": "template", "template": message["template"]}
    else:
        body |= {"type": "text", "text": {"preview_url": False, "body": message["body"]}}
    return f"{base}/{channel.ref}/messages", {"json": body}


def _twilio_request(channel: ChannelConfig, message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    base = channel.api_base_url or DEFAULT_BASE_URLS["twilio"]
    form = {"From": channel.ref, "To": f"whatsapp:{message['to']}"}
    if message.get("kind") == "otp" and channel.otp_template:
        form |= {"ContentSid": channel.otp_template, "ContentVariables": json.dumps({"1": message["code"]})}
    elif message.get("kind") == "otp":
        form["Body"] = f"Your code is {message['code']}"
    else:
        form["Body"] = message["body"]
    auth = aiohttp.BasicAuth(channel.account_sid or "", channel.secret.get_secret_value())
    return f"{base}/2010-04-01/Accounts/{channel.account_sid}/Messages.json", {"data": form, "auth": auth}


def _evolution_request(channel: ChannelConfig, message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    text = f"Your code is {message['code']}" if message.get("kind") == "otp" else message["body"]
    body = {"number": _digits(message["to"]), "text": text}
    return f"{channel.api_base_url}/message/sendText/{channel.ref}", {"json": body}


def _headers(channel: ChannelConfig, message: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    if channel.provider == "meta" and channel.access_token is not None:
        headers["Authorization"] = f"Bearer {channel.access_token.get_secret_value()}"
    if channel.provider == "evolution":
        headers["apikey"] = channel.secret.get_secret_value()
    if channel.idempotency_header:
        headers[channel.idempotency_header] = idempotency_key(message)
    return headers


REQUESTS = {"meta": _meta_request, "twilio": _twilio_request, "evolution": _evolution_request}


def missing_credentials(channel: ChannelConfig) -> str | None:
    """Why this channel cannot send, or None when it can."""
    if channel.provider == "meta" and channel.access_token is None:
        return "a Meta channel needs access_token to send"
    if channel.provider == "twilio" and not channel.account_sid:
        return "a Twilio channel needs account_sid to send"
    if channel.provider == "evolution" and not channel.api_base_url:
        return "an Evolution channel needs api_base_url to send"
    return None


async def send(session: aiohttp.ClientSession, channel: ChannelConfig, message: dict[str, Any],
               timeout: aiohttp.ClientTimeout) -> Outcome:  # fmt: skip
    try:
        url, kwargs = REQUESTS[channel.provider](channel, message)
        headers = _headers(channel, message)
    except (KeyError, TypeError, AttributeError) as exc:
        # A queued message without its address, text or code cannot succeed however often it is tried.
        return Reject({"error": f"malformed queue message: {type(exc).__name__} {exc}"})
    try:
        async with session.post(url, headers=headers, timeout=timeout, **kwargs) as response:
            text = (await response.text(errors="replace"))[:MAX_ERROR_BODY]
            if not 200 <= response.status < 300:
                text = _redact(text, channel, message)
            return classify(channel.provider, response.status, text, response.headers.get("Retry-After"))
    except TimeoutError:
        return Retry({"error": "timeout"})
    except aiohttp.ClientError as exc:
        return Retry({"error": type(exc).__name__, "detail": str(exc)[:200]})


def _redact(text: str, channel: ChannelConfig, message: dict[str, Any]) -> str:
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


def classify(provider: str, status: int, text: str, retry_after: str | None) -> Outcome:
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    error = {"status": status, "body": body if body is not None else text}
    if 200 <= status < 300:
        provider_id = _provider_id(provider, body)
        return Sent(provider_id) if provider_id else Unknown(error)
    if status in (408, 425, 429) or status >= 500 or _meta_throttled(provider, body):
        return Retry(error, _seconds(retry_after))
    return Reject(error)


def _provider_id(provider: str, body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    if provider == "meta":
        messages = body.get("messages")
        first = messages[0] if isinstance(messages, list) and messages else None
        found = first.get("id") if isinstance(first, dict) else None
    elif provider == "twilio":
        found = body.get("sid")
    else:
        key = body.get("key")
        found = key.get("id") if isinstance(key, dict) else None
    return found if isinstance(found, str) and 0 < len(found) <= 256 else None


def _meta_throttled(provider: str, body: Any) -> bool:
    if provider != "meta" or not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return False
    return body["error"].get("code") in META_RETRYABLE_CODES


def _seconds(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the backoff decides instead
