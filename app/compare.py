"""Comparing a secret with what a caller presented, in constant time (webhook signatures and keys,
OTP API keys).

Secrets and presented values are compared as bytes: hmac.compare_digest refuses non-ASCII
str, and a header may hold anything.
"""

from __future__ import annotations

import hmac


def same(expected: bytes, presented: str | bytes | None) -> bool:
    if presented is None:
        return False
    if isinstance(presented, str):
        presented = presented.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(expected, presented)
