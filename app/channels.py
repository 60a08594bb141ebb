"""The configured channels, as the relay looks them up (by provider and provider ref), and
their registration in the database."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import psycopg

from app.settings import ChannelConfig

log = logging.getLogger(__name__)

ADD_CHANNEL = "SELECT whatsapp_handler.add_channel(%s, %s, %s, %s, %s)"


@dataclass(frozen=True)
class Channel:
    provider: str
    ref: str
    # repr=False: a channel may end up in a log line or a traceback; its secrets must not.
    secret: bytes = field(repr=False)
    verify_token: bytes | None = field(default=None, repr=False)


class Channels:
    def __init__(self, configs: list[ChannelConfig]) -> None:
        self._by_ref = {
            (c.provider, c.ref): Channel(
                provider=c.provider,
                ref=c.ref,
                secret=c.secret.get_secret_value().encode(),
                verify_token=c.verify_token.get_secret_value().encode() if c.verify_token else None,
            )
            for c in configs
        }
        self._secrets: dict[str, frozenset[bytes]] = {}
        self._verify_tokens: dict[str, list[bytes]] = {}
        for c in self._by_ref.values():
            self._secrets[c.provider] = self._secrets.get(c.provider, frozenset()) | {c.secret}
            if c.verify_token:
                self._verify_tokens.setdefault(c.provider, []).append(c.verify_token)

    def secrets(self, provider: str) -> frozenset[bytes]:
        """Every distinct secret of a provider's channels: a request is authenticated against
        them before the channel it names is looked up, so that an unsigned caller cannot tell
        a configured number (404) from an unconfigured one."""
        return self._secrets.get(provider, frozenset())

    def verify_tokens(self, provider: str) -> list[bytes]:
        """The verify tokens of a provider's channels (Meta's subscription handshake)."""
        return self._verify_tokens.get(provider, [])

    def get(self, provider: str, ref: object) -> Channel | None:
        return self._by_ref.get((provider, ref)) if isinstance(ref, str) else None


def register(conninfo: str, configs: list[ChannelConfig]) -> None:
    """Upsert every configured channel (add_channel is an upsert by provider and ref)."""
    if not configs:
        return
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        for c in configs:
            row = conn.execute(ADD_CHANNEL, (c.provider, c.ref, c.phone, c.name, c.brand)).fetchone()
            log.info("channel %s %s is id %s", c.provider, c.ref, row[0] if row else None)
