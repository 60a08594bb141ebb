"""Each provider's proof that a webhook is genuine, checked in constant time.

Secrets and presented values are compared as bytes: hmac.compare_digest refuses
non-ASCII str, and a header may hold anything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

META_PREFIX = "sha256="
TWILIO_ALGORITHMS = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}

# Twilio's signed text is every `name + value`, sorted, with nothing between them, so one
# signature fits other splits of the same text (`MessageSid=SM…NumMedia0` and no NumMedia).
# A signed form is taken only when every name is one Twilio sends and every SID has its shape
# (two letters and 32 hex digits), which pins the message id to the text Twilio signed.
# The names are those of Twilio's incoming message webhook (core, media, rich messages,
# location, geographic, WhatsApp, Click-to-WhatsApp ads, replies) and status callbacks.
TWILIO_PARAMETERS = frozenset(
    {
        "AccountSid", "ApiVersion", "Body", "ErrorCode", "ErrorMessage", "EventType", "FlowData", "Forwarded",
        "From", "FrequentlyForwarded", "InteractiveData", "Latitude", "Longitude", "Address", "Label",
        "MessageSid", "MessageStatus", "MessageType", "MessagingServiceSid", "NumMedia", "NumSegments",
        "ProfileName", "RawDlrDoneDate", "SmsMessageSid", "SmsSid", "SmsStatus", "StructuredMessage", "To", "WaId",
    }
)  # fmt: skip
# Families Twilio extends (MediaUrl0..N, ReferralCtwaClid, ChannelInstallSid, ButtonType, FromCountry, ...):
# a new member of one of them is still Twilio's, so it is not refused.
TWILIO_FAMILIES = re.compile(
    r"Media(?:Url|ContentType)[0-9]{1,2}|(?:Referral|Channel|Button|OriginalRepliedMessage)[A-Z][A-Za-z]{0,40}"
    r"|(?:From|To)(?:City|State|Zip|Country)"
)
TWILIO_SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
# Names that carry the message's own id: Twilio sends the same SID in each.
TWILIO_MESSAGE_SIDS = ("MessageSid", "SmsSid", "SmsMessageSid")


def same(expected: bytes, presented: str | bytes | None) -> bool:
    if presented is None:
        return False
    if isinstance(presented, str):
        presented = presented.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(expected, presented)


def meta_valid(app_secret: bytes, body: bytes, header: str) -> bool:
    """X-Hub-Signature-256: `sha256=` and the hex HMAC-SHA256 of the raw body."""
    if not header.startswith(META_PREFIX):
        return False
    expected = hmac.new(app_secret, body, hashlib.sha256).hexdigest().encode()
    return same(expected, header[len(META_PREFIX) :].lower())


def twilio_base_urls(public_base_url: str) -> tuple[str, str]:
    """The base URL without and with its port: Twilio signs either form (its own validator tries both)."""
    parts = urlsplit(public_base_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    userinfo = parts.netloc[: len(parts.netloc) - len(host)]
    bare = host.rsplit(":", 1)[0] if parts.port is not None else host
    port = parts.port or (443 if parts.scheme == "https" else 80)
    prefix = f"{parts.scheme}://{userinfo}"
    return f"{prefix}{bare}{parts.path}", f"{prefix}{bare}:{port}{parts.path}"


def twilio_signed_text(params: Iterable[tuple[str, str]]) -> str:
    """Sorted names, each followed by its sorted distinct values, as twilio's RequestValidator builds it."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    return "".join(name + value for name in sorted(values) for value in sorted(values[name]))


def twilio_valid(
    secret: bytes, urls: Iterable[str], params: Iterable[tuple[str, str]], header: str, algorithm: str = "HMAC_SHA1"
) -> bool:
    """X-Twilio-Signature: base64 HMAC of the URL followed by the sorted POST parameters."""
    digest = TWILIO_ALGORITHMS.get(algorithm.upper())
    if digest is None:
        return False
    signed = twilio_signed_text(params)
    valid = False
    for url in urls:
        expected = base64.b64encode(hmac.new(secret, (url + signed).encode(), digest).digest())
        # Every candidate is computed and compared: how long it takes says nothing about which matched.
        valid |= same(expected, header.strip())
    return valid


def twilio_algorithm(settings_header: str | None) -> str:
    """The algorithm named by X-Twilio-Webhooks-Signature-Settings (SharedKey signing); HMAC_SHA1 without it."""
    for part in (settings_header or "").split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip() == "algorithm" and value.strip():
            return value.strip()
    return "HMAC_SHA1"


def body_sha256_valid(body: bytes, presented: str) -> bool:
    """JSON-bodied Twilio requests sign the URL only and carry the body's hash in its query (bodySHA256)."""
    return same(hashlib.sha256(body).hexdigest().encode(), presented.lower())


def twilio_form_refusal(params: Iterable[tuple[str, str]]) -> str | None:
    """Why a signed Twilio form is not one Twilio sends (None when it is): an unknown name, a SID
    of the wrong shape, no MessageSid, or message SIDs that differ. Asked only once the form is
    authenticated, so that an unsigned caller hears 403 whatever it sends."""
    fields: dict[str, str] = {}
    for name, value in params:
        if name not in TWILIO_PARAMETERS and not TWILIO_FAMILIES.fullmatch(name):
            return f"{name[:64]!r} is not a parameter Twilio sends"
        if name.endswith("Sid") and not TWILIO_SID.fullmatch(value):
            return f"{name} is not a Twilio SID (two letters and 32 hex digits)"
        fields.setdefault(name, value)
    sids = {fields[name] for name in TWILIO_MESSAGE_SIDS if name in fields}
    if "MessageSid" not in fields:
        return "the form has no MessageSid"
    if len(sids) > 1:
        return "MessageSid, SmsSid and SmsMessageSid differ"
    return None


# Evolution API signs nothing: its apikey is the credential. One presented in a header is
# compared before the body is parsed; one in the body is looked for only in bodies up to this
# size, so that a caller without a key cannot make the relay parse megabytes of JSON.
EVOLUTION_BODY_KEY_MAX_BYTES = 256 * 1024
REDACTED = "[redacted]"


def _apikey_name(name: object) -> bool:
    return isinstance(name, str) and name.casefold().replace("_", "").replace("-", "") == "apikey"


def redact_evolution_keys(payload: dict[str, Any], secrets: Iterable[bytes]) -> dict[str, Any]:
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
