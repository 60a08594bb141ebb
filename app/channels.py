"""The configured channels, as the relay looks them up (by provider and provider ref), and
their registration in the database."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import psycopg

from app.settings import ChannelConfig
from app.sqitch import Change

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
        _add(conn, configs)


def _add(conn: psycopg.Connection, configs: list[ChannelConfig]) -> None:
    for c in configs:
        row = conn.execute(ADD_CHANNEL, (c.provider, c.ref, c.phone, c.name, c.brand)).fetchone()
        log.info("channel %s %s is id %s", c.provider, c.ref, row[0] if row else None)


WATCH_SECONDS = 5.0
READY = "SELECT (whatsapp_handler.readiness(%s, %s::timestamptz) ->> 'plan')::boolean"
PRESENT = "SELECT provider::text, provider_ref FROM whatsapp_handler.channels"


def restore_missing(conninfo: str, configs: list[ChannelConfig], change: Change) -> list[ChannelConfig]:
    """Add again the configured channels the database lacks, once it holds the whole plan this
    build expects (never into a database half reverted or half deployed, where core/restore_kept
    has yet to put the kept channels back with their ids). Returns those it added."""
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        ready = conn.execute(READY, (change.name, change.planned_at)).fetchone()
        if not (ready and ready[0]):
            return []
        present = set(conn.execute(PRESENT).fetchall())
        lost = [c for c in configs if (c.provider, c.ref) not in present]
        if lost:
            log.warning(
                "configured channels missing from the database (reverted and deployed again?), adding them: %s",
                ", ".join(f"{c.provider} {c.ref}" for c in lost),
            )
            _add(conn, lost)
    return lost


def watch(conninfo: str, configs: list[ChannelConfig], change: Change, every: float = WATCH_SECONDS) -> threading.Event:
    """serve's parent process, as long as it runs: every few seconds, restore_missing(). A revert
    and a redeploy under a running relay drop the channels; the relay's own login may not add
    them, and until someone did, every webhook naming them was dead-lettered. Set the returned
    event to stop."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                restore_missing(conninfo, configs, change)
            except (psycopg.OperationalError, psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction) as exc:
                # Unreachable, or mid-revert: the relay's /ready says so; try again next round.
                log.debug("channel check skipped: %s", " ".join(str(exc).split()))
            except psycopg.Error as exc:
                # The plan is there but a channel could not be added: doctor's channel lines say which.
                log.warning("configured channels could not be added again: %s", " ".join(str(exc).split()))

    if configs:
        threading.Thread(target=loop, name="channel-watch", daemon=True).start()
    return stop
