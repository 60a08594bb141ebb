"""Each provider's proof that a webhook is genuine, checked in constant time.

Secrets and presented values are compared as bytes: hmac.compare_digest refuses
non-ASCII str, and a header may hold anything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit

META_PREFIX = "sha256="
TWILIO_ALGORITHMS = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}


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
