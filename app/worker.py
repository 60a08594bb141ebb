"""The delivery worker: claims messages from pgmq queue `outbound` and sends each through
its channel's provider, then settles it in SQL (worker_sent / worker_retry /
worker_release / worker_dead_letter). docs/worker.md explains the guarantees.

- One message per user at a time (worker_claim), so a user's messages arrive in order.
- Pacing is the claim's (delivery/pacing): a message whose channel or person has no token is
  not claimed yet. The held messages and the channels' backlogs are read every few seconds
  (worker_pacing) for /metrics.
- A provider's refusal is settled by worker_failed with the provider's error code: SQL's
  provider_errors decides (dead letter with the reason, retry, or pace the channel or the
  person, untried); a code it does not list follows the HTTP status: 429, 5xx and timeouts
  are retried with exponential backoff and jitter, by pushing the message's visibility out,
  at most `worker_max_attempts` attempts, then the dead-letter queue (reason provider_down,
  which the re-drive job takes back); other 4xx go to the dead-letter queue at once (reason
  rejected).
- A circuit breaker per channel; while it is open that channel's messages stay queued.
- Before a send the claim is recorded; a claim never settled (the worker died) comes
  back in doubt, and is only sent again where the channel has an idempotency header.
- SIGTERM: no new claims, the sends under way finish and are settled, then exit.
  SIGKILL: the claims expire after the visibility timeout and the messages come back.
- The server refusing the worker's own login (42501/42883: it lacks its group, the group its
  grants, or the plan is behind this build) is counted in whatsapp_worker_rights_failures_total
  and logged at WARNING with the fix; claims are tried again after a growing pause.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from app import providers
from app.breaker import Breaker
from app.errors import RIGHTS_SQLSTATES, login_of, rights_problem
from app.metrics import WorkerMetrics
from app.pool import worker_pool as _pool
from app.settings import ChannelConfig, Settings

log = logging.getLogger("whatsapp_handler.worker")

CLAIM = "SELECT msg_id, attempts, in_doubt, message FROM whatsapp_handler.worker_claim(%s, %s, %s)"
SENT = "SELECT whatsapp_handler.worker_sent(%s, %s)"
SENT_BATCH = "SELECT whatsapp_handler.worker_sent_batch(%s, %s)"
MAX_SENT_BATCH = 500
RETRY = "SELECT whatsapp_handler.worker_retry(%s, %s, %s)"
RELEASE = "SELECT whatsapp_handler.worker_release(%s, %s)"
DEAD = "SELECT whatsapp_handler.worker_dead_letter(%s, %s, %s)"
FAILED = "SELECT whatsapp_handler.worker_failed(%s, %s, %s, %s, %s)"
PACING = "SELECT channel_id, held_channel, held_pair, throttled, backlog_seconds FROM whatsapp_handler.worker_pacing()"
# worker_failed's outcomes under the metric's names: both dead letters are dead_letter (the alerts').
LABELS = {"rejected": "dead_letter", "provider_down": "dead_letter"}
# How often the pacing counters are read for /metrics (every worker process reads the same rows).
PACING_EVERY = 5.0
CHANNELS = "SELECT id, provider::text, provider_ref FROM whatsapp_handler.worker_channels()"
NEXT_VISIBLE = "SELECT whatsapp_handler.worker_next_visible()"
# The shortest wait between claims: a paced channel's next token is 1/per_second away (12.5 ms at 80).
MIN_POLL = 0.01
CAMPAIGNS = "SELECT whatsapp_handler.worker_campaigns(%s)"
CAMPAIGN_METRICS = "SELECT * FROM whatsapp_handler.worker_campaign_metrics()"
# Each active channel's standing, in ChannelCollector's order.
CHANNEL_STANDING = """SELECT channel_id, provider, connected, connection, connection_reason, state_seconds,
       quality_event, current_limit, account_event, account_disabled FROM whatsapp_handler.worker_channel_standing()"""
# Recipients per worker_campaigns call: each is a subtransaction, and SQL takes at most 60.
CAMPAIGN_SLICE = 50
# Claims the server refuses the worker's login are tried again after a pause doubling up to this: a login
# out of its group stays so until someone grants it, and each try is a round trip and a WARNING.
REFUSED_PAUSE_MAX = 15.0


def backoff(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Exponential, capped, with "equal jitter" (half fixed, half random) so that messages that
    failed together do not come back together; never sooner than the provider's Retry-After."""
    delay = min(cap, base * 2 ** max(attempt - 1, 0))
    delay = delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - spreading retries, not a secret
    return max(delay, min(retry_after or 0.0, cap))


class Worker:
    def __init__(
        self, settings: Settings, pool: AsyncConnectionPool, session: aiohttp.ClientSession, metrics: WorkerMetrics
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._pool = pool
        self._session = session
        self._timeout = aiohttp.ClientTimeout(
            total=settings.provider_timeout, sock_connect=settings.provider_connect_timeout
        )
        self._configs = {(c.provider, c.ref): c for c in settings.channels}
        self._channels: dict[int, ChannelConfig | None] = {}
        self._breakers: dict[int, Breaker] = {}
        self._in_flight: set[asyncio.Task] = set()
        # Deliveries waiting to be recorded as sent: recorded together, one commit for all.
        self._sent: list[tuple[int, str, asyncio.Future]] = []
        self._recording = False
        self._recorder: asyncio.Task | None = None
        self._login = login_of(pool.conninfo)
        self.stopping = asyncio.Event()
        self.pacing = metrics.pacing

    async def load_channels(self) -> None:
        """Match the database's channels to the configured credentials."""
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(CHANNELS)).fetchall()
        for channel_id, provider, ref in rows:
            config = self._configs.get((provider, ref))
            problem = "not configured" if config is None else providers.missing_credentials(config)
            if problem:
                log.warning("channel %s (%s %s) cannot send: %s", channel_id, provider, ref, problem)
            self._channels[channel_id] = None if problem else config
            self._breakers.setdefault(
                channel_id, Breaker(self._settings.breaker_failures, self._settings.breaker_cooldown)
            )

    def _refused(self, exc: psycopg.Error, doing: str) -> None:
        """A call the server refused the worker's own login: counted, and logged with its fix."""
        self._metrics.rights_failures.inc()
        log.warning("%s: %s", doing, rights_problem(exc, self._login, "worker"),
                    extra={"sqlstate": exc.sqlstate, "login": self._login})  # fmt: skip

    async def _watch_pacing(self) -> None:
        collectors = ((self.pacing, PACING), (self._metrics.campaigns, CAMPAIGN_METRICS),
                      (self._metrics.channels, CHANNEL_STANDING))  # fmt: skip
        while not self.stopping.is_set():
            for collector, query in collectors:
                try:
                    async with self._pool.connection() as conn:
                        collector.rows = await (await conn.execute(query)).fetchall()
                except psycopg.Error as exc:
                    # The plan behind this build, or the database away: the gauge says so (up 0).
                    log.debug("reading %s failed: %s", query, exc)
                    collector.rows = None
            await self._pause(PACING_EVERY)

    async def _dispatch_campaigns(self) -> None:
        """Campaign recipients into the queue (worker_campaigns, at each campaign's pace): again at once
        while a call fills its slice, else after campaign_dispatch_interval. Every worker process does
        it; SQL lets one call at a time work on a campaign."""
        interval = self._settings.campaign_dispatch_interval
        failures = 0  # in a row: the pause doubles up to REFUSED_PAUSE_MAX
        while not self.stopping.is_set():
            try:
                async with self._pool.connection() as conn:
                    done = (await (await conn.execute(CAMPAIGNS, (CAMPAIGN_SLICE,))).fetchone())[0]
            except psycopg.Error as exc:
                # Its own counter and alert (WhatsappCampaignDispatchFailing): the worker's rights
                # failures are its claims' and settles', which a login out of its group also meets.
                failures += 1
                self._metrics.campaign_dispatch_failures.inc()
                pause = min(REFUSED_PAUSE_MAX, interval * 2 ** (failures - 1))
                log.warning("campaign dispatch failed, next attempt in %g s: %s", pause, exc,
                            extra={"sqlstate": exc.sqlstate})  # fmt: skip
                await self._pause(pause)
                continue
            failures = 0
            self._metrics.campaign_dispatched.inc(done)
            if done < CAMPAIGN_SLICE:
                await self._pause(interval)

    async def run(self) -> None:
        helpers = [asyncio.create_task(self._watch_pacing()), asyncio.create_task(self._dispatch_campaigns())]
        try:
            await self._run()
        finally:
            for task in helpers:
                task.cancel()

    async def _run(self) -> None:
        s = self._settings
        loaded = False
        refused = 0  # claims refused in a row
        while not self.stopping.is_set():
            free = s.worker_concurrency - len(self._in_flight)
            if free <= 0:
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                if not loaded:
                    await self.load_channels()
                    loaded = True
                claimed = await self._claim(min(free, s.worker_batch))
            except psycopg.Error as exc:
                if exc.sqlstate not in RIGHTS_SQLSTATES:
                    log.warning("claim failed, retrying: %s", exc)
                    await self._pause(s.worker_poll_interval * 4)
                    continue
                refused += 1
                pause = min(REFUSED_PAUSE_MAX, s.worker_poll_interval * 4 * 2 ** (refused - 1))
                if exc.sqlstate == "42883" and refused == 1:
                    # Maybe an upgrade replacing the function between two changes of one deploy: once
                    # is not yet a failure.
                    log.info("claim met a missing function, retrying in %g s: %s", pause, exc)
                else:
                    self._refused(exc, f"claim refused, next try in {pause:g} s")
                await self._pause(pause)
                continue
            refused = 0
            log.debug("claimed %d of %d", len(claimed), min(free, s.worker_batch))
            for row in claimed:
                task = asyncio.create_task(self._guarded(*row))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            if len(claimed) < min(free, s.worker_batch):
                await self._pause(await self._until_next_visible())
        if self._in_flight:
            log.info("stopping: finishing %d sends under way", len(self._in_flight))
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _until_next_visible(self) -> float:
        """How long to wait before the next claim: until the soonest queued message becomes visible (one the
        pacing held back to its turn), at most worker_poll_interval; the poll interval when that cannot be
        read (the plan behind this build)."""
        poll = self._settings.worker_poll_interval
        try:
            async with self._pool.connection() as conn:
                seconds = (await (await conn.execute(NEXT_VISIBLE)).fetchone())[0]
        except psycopg.Error as exc:
            log.debug("reading the next visible message failed: %s", exc)
            return poll
        return poll if seconds is None else min(poll, max(seconds, MIN_POLL))

    async def _pause(self, seconds: float) -> None:
        """Sleep, unless asked to stop."""
        waits = [asyncio.create_task(self.stopping.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds)
        finally:
            waits[0].cancel()

    async def _claim(self, qty: int) -> list[tuple[int, int, bool, dict[str, Any]]]:
        blocked = [cid for cid, breaker in self._breakers.items() if breaker.blocked()]
        async with self._pool.connection() as conn:
            return await (
                await conn.execute(CLAIM, (qty, self._settings.worker_visibility_timeout, blocked))
            ).fetchall()

    async def _guarded(self, msg_id: int, attempts: int, in_doubt: bool, message: dict[str, Any]) -> None:
        try:
            await self._deliver(msg_id, attempts, in_doubt, message)
        except psycopg.Error as exc:
            if exc.sqlstate not in RIGHTS_SQLSTATES:
                log.exception("delivering queue message %s failed", msg_id)
                return
            # Looking up a channel added since: the claim expires and the message comes back.
            self._refused(exc, f"delivering queue message {msg_id} refused")
        except Exception:
            # A bug, not a provider's answer: the claim expires and the message comes back (in doubt).
            log.exception("delivering queue message %s failed", msg_id)

    async def _deliver(self, msg_id: int, attempts: int, in_doubt: bool, message: dict[str, Any]) -> None:
        channel_id = message.get("channel_id")
        if channel_id not in self._channels:
            await self.load_channels()  # a channel added since the worker started
        channel = self._channels.get(channel_id)
        provider = channel.provider if channel else "unknown"
        if channel is None:
            error = {"error": f"channel {channel_id} has no sending credentials in this worker"}
            await self._settle(provider, "dead_letter", DEAD, msg_id, "rejected", Jsonb(error))
            return
        if in_doubt and not channel.idempotency_header:
            # The previous worker may have got it accepted: sending it again could send it twice.
            error = {"error": "a previous attempt was never settled", "attempts": attempts}
            await self._settle(provider, "in_doubt", DEAD, msg_id, "in_doubt", Jsonb(error))
            return
        breaker = self._breakers[channel_id]
        if not breaker.allow():
            await self._settle(provider, "released", RELEASE, msg_id, max(breaker.remaining(), 1.0))
            return
        with self._metrics.send_seconds.labels(provider).time():
            outcome = await providers.send(self._session, channel, message, self._timeout)
        await self._conclude(provider, breaker, msg_id, attempts, outcome)

    async def _conclude(self, provider: str, breaker: Breaker, msg_id: int, attempts: int,
                        outcome: providers.Outcome) -> None:  # fmt: skip
        s = self._settings
        if isinstance(outcome, providers.Sent):
            breaker.success()
            await self._record_sent(provider, msg_id, outcome.provider_message_id)
        elif isinstance(outcome, providers.Unknown):
            breaker.success()
            await self._settle(provider, "in_doubt", DEAD, msg_id, "in_doubt", Jsonb(outcome.error))
        else:
            # SQL decides what the provider's code means (provider_errors); the status only when it names none.
            retry_after = outcome.retry_after if isinstance(outcome, providers.Retry) else None
            fallback = "retry" if isinstance(outcome, providers.Retry) else "permanent"
            delay = (
                None
                if attempts >= s.worker_max_attempts
                else backoff(attempts, s.worker_backoff_base, s.worker_backoff_max, retry_after)
            )
            taken = await self._settle(provider, None, FAILED, msg_id, outcome.code, fallback, Jsonb(outcome.error),
                                       delay)  # fmt: skip
            if taken in ("retry", "provider_down") or (taken is None and fallback == "retry"):
                breaker.failure()
            else:
                breaker.success()  # the provider is up: it refused this message, or asked to slow down

    async def _record_sent(self, provider: str, msg_id: int, provider_message_id: str) -> None:
        """Group commit: deliveries that finish while a batch is being recorded go in the next."""
        future = asyncio.get_running_loop().create_future()
        self._sent.append((msg_id, provider_message_id, future))
        if not self._recording:
            self._recording = True
            self._recorder = asyncio.create_task(self._record_sent_batches())
        if await future:
            self._metrics.outcomes.labels(provider, "sent").inc()
        else:
            # The batch could not be recorded: each on its own, with the usual patience.
            await self._settle(provider, "sent", SENT, msg_id, provider_message_id)

    async def _record_sent_batches(self) -> None:
        try:
            while self._sent:
                batch, self._sent = self._sent[:MAX_SENT_BATCH], self._sent[MAX_SENT_BATCH:]
                try:
                    async with self._pool.connection() as conn:
                        await conn.execute(SENT_BATCH, ([b[0] for b in batch], [b[1] for b in batch]))
                    ok = True
                except psycopg.Error as exc:
                    log.warning("recording %d deliveries together failed, one by one instead: %s", len(batch), exc)
                    ok = False
                for _, _, future in batch:
                    future.set_result(ok)
        finally:
            self._recording = False

    async def _settle(self, provider: str, outcome: str | None, query: str, *params: Any) -> str | None:
        """Record the outcome (None: the one the settle function returns, worker_failed's); while the
        database is away, keep trying for as long as the claim lasts (after that the message comes back
        on its own, in doubt if it was sent). Returns the outcome recorded."""
        deadline = asyncio.get_running_loop().time() + self._settings.worker_visibility_timeout
        pause = 0.2
        counted = False
        while True:
            try:
                async with self._pool.connection() as conn:
                    row = await (await conn.execute(query, params)).fetchone()
                if outcome is None:
                    # NULL: another worker settled it meanwhile (a stale outcome).
                    outcome = row[0] if row and row[0] else "stale"
                self._metrics.outcomes.labels(provider, LABELS.get(outcome, outcome)).inc()
                return outcome
            # UndefinedFunction: an upgrade replacing the functions a settle calls, between two
            # changes of one `sqitch deploy` (docs/database.md): gone milliseconds later.
            # InsufficientPrivilege: the login out of its group; a GRANT while the claim lasts still
            # records this outcome, rather than the message coming back in doubt.
            except (psycopg.OperationalError, psycopg.errors.DeadlockDetected, psycopg.errors.UndefinedFunction,
                    psycopg.errors.InsufficientPrivilege) as exc:  # fmt: skip
                refused = exc.sqlstate in RIGHTS_SQLSTATES
                doing = f"recording {outcome} of queue message {params[0]} refused"
                if refused and not counted and exc.sqlstate == "42501":
                    counted = True
                    self._refused(exc, doing + ", retrying while its claim lasts")
                if asyncio.get_running_loop().time() + pause > deadline:
                    if refused and not counted:
                        self._refused(exc, doing)
                    log.error("could not record %s for queue message %s (it comes back when its claim expires): %s",
                              outcome or "the refusal", params[0], exc)  # fmt: skip
                    return None
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)


async def run(settings: Settings, on_ready: Callable[[], Awaitable[None]] | None = None, restarts: int = 0) -> None:
    metrics = WorkerMetrics(restarts)
    if settings.worker_metrics_port:
        metrics.serve(settings.worker_metrics_port, settings.http_host)
    pool = _pool(settings)
    await pool.open(wait=True, timeout=30)
    connector = aiohttp.TCPConnector(limit=settings.worker_concurrency, ttl_dns_cache=300)
    try:
        async with aiohttp.ClientSession(connector=connector, raise_for_status=False) as session:
            worker = Worker(settings, pool, session, metrics)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, worker.stopping.set)
            log.info("worker started: %d sends at once", settings.worker_concurrency)
            if on_ready is not None:
                await on_ready()
            await worker.run()
            log.info("worker stopped")
    finally:
        await pool.close()
