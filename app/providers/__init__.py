"""The providers: one module each (meta, twilio, evolution), all following app/providers/base.py's
Provider. This is their one list; a new provider is a new module named here (and its normaliser
in SQL, deploy/providers/<name>.sql). See docs/relay.md, "Adding a provider".
"""

from __future__ import annotations

from typing import Any

import aiohttp

from app.providers import base, evolution, meta, twilio
from app.providers.base import Outcome, Provider, Reject, Retry, Sent, Unknown, idempotency_key
from app.settings import ChannelConfig

__all__ = [
    "PROVIDERS",
    "ROUTES",
    "Outcome",
    "Provider",
    "Reject",
    "Retry",
    "Sent",
    "Unknown",
    "idempotency_key",
    "missing_credentials",
    "send",
]

PROVIDERS: dict[str, Provider] = {provider.NAME: provider for provider in (meta, twilio, evolution)}
# Every provider's webhook routes, for the app.
ROUTES = [route for provider in PROVIDERS.values() for route in provider.ROUTES]


def missing_credentials(channel: ChannelConfig) -> str | None:
    """Why this channel cannot send, or None when it can."""
    return PROVIDERS[channel.provider].missing_credentials(channel)


async def send(session: aiohttp.ClientSession, channel: ChannelConfig, message: dict[str, Any],
               timeout: aiohttp.ClientTimeout) -> Outcome:  # fmt: skip
    """Send one queued message through its channel's provider, and read the answer."""
    return await base.send(PROVIDERS[channel.provider], session, channel, message, timeout)
