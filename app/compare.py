"""Comparing a secret with what a caller presented, in constant time (webhook signatures and keys,
OTP API keys), and the one reading of how an API caller presents a key.

Secrets and presented values are compared as bytes: hmac.compare_digest refuses non-ASCII
str, and a header may hold anything.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

MAX_KEY_LENGTH = 256


def same(expected: bytes, presented: str | bytes | None) -> bool:
    if presented is None:
        return False
    if isinstance(presented, str):
        presented = presented.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(expected, presented)


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The API key of a request: `Authorization: Bearer <key>`, else `X-API-Key: <key>`; None when
    neither holds one of at most MAX_KEY_LENGTH characters. The OTP API and the business API read it
    alike."""
    scheme, _sep, token = headers.get("authorization", "").partition(" ")
    key = token.strip() if scheme.lower() == "bearer" else (headers.get("x-api-key") or "").strip()
    return key if 0 < len(key) <= MAX_KEY_LENGTH else None
