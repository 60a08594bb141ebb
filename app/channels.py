"""The configured channels, as the relay looks them up (by provider and provider ref), and
their registration in the database."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import time
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


def watch(conninfo: str, configs: list[ChannelConfig], change: Change, every: float = WATCH_SECONDS,
          log_level: str = "INFO") -> subprocess.Popen[bytes] | None:  # fmt: skip
    """For as long as `serve` runs, every few seconds, restore_missing(): a revert and a redeploy under
    a running relay drop the channels; the relay's own login may not add them, and until someone did,
    every webhook naming them was dead-lettered. Returns the watching process (None with no channels
    configured); terminate it to stop. It ends by itself once its parent is gone.

    A process of its own (`python -m app.channels`), never a thread of serve's: granian forks its
    workers, at start and each time it replaces one, from serve's process (multiprocessing's fork
    method, Python's default on Linux before 3.14). A fork copies a lock another thread holds at that
    moment (a stream's buffer lock mid log line, libc's or libpq's mid connect) into a child where no
    thread will ever release it, and the child hangs on its first use. A fresh interpreter inherits
    no lock, and the process granian forks from runs no thread of ours (granian's own, one per worker,
    wait in join() holding no lock, and log a death before they wake the loop that forks anew)."""
    if not configs:
        return None
    process = subprocess.Popen([sys.executable, "-m", "app.channels"], stdin=subprocess.PIPE)
    # Through a pipe, never the command line: the admin conninfo holds a password that ps shows to all.
    assert process.stdin is not None
    with process.stdin:
        pickle.dump((conninfo, configs, change, every, os.getpid(), log_level), process.stdin)
    return process


def _watch(conninfo: str, configs: list[ChannelConfig], change: Change, every: float, parent: int,
           log_level: str) -> None:  # fmt: skip
    from app import logs

    logs.configure(log_level)
    # Ctrl-C reaches the whole process group: serve stops, and stops this process itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Reparented once serve is gone (a SIGKILL leaves no one to terminate this process).
    while os.getppid() == parent:
        time.sleep(every)
        try:
            restore_missing(conninfo, configs, change)
        except (psycopg.OperationalError, psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction) as exc:
            # Unreachable, or mid-revert: the relay's /ready says so; try again next round.
            log.debug("channel check skipped: %s", " ".join(str(exc).split()))
        except psycopg.Error as exc:
            # The plan is there but a channel could not be added: doctor's channel lines say which.
            log.warning("configured channels could not be added again: %s", " ".join(str(exc).split()))


if __name__ == "__main__":
    # Run as app.channels rather than __main__, so that its log lines carry the module's logger name.
    from app.channels import _watch as watch_here

    # Only serve starts this, writing its arguments to the pipe it alone holds.
    watch_here(*pickle.load(sys.stdin.buffer))  # noqa: S301
