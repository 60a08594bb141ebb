"""Prometheus metrics: counters kept by the relay (Metrics) and by the delivery worker
(WorkerMetrics), each in a registry of its own, and pgmq queue gauges read at scrape time."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

import psycopg
from litestar import Request, Response, get
from psycopg_pool import AsyncConnectionPool

from app.cron_status import CRON_FAILURES, CRON_LATENESS, WEBHOOK_SUCCESS
from app.dlq import HISTORY_METRICS

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

# prometheus_client is imported where it is used, never when this module is: it picks its
# multiprocess mode at import, and the CLI loads the providers (and so this module) while
# `serve` has yet to set PROMETHEUS_MULTIPROC_DIR for granian's workers.
log = logging.getLogger(__name__)

QUEUE_METRICS = "SELECT queue_name, depth, oldest_age_seconds FROM whatsapp_handler.queue_metrics()"
# Per table with its own autovacuum settings (the hot tables' partitions, the queue tables): dead and live
# rows, the last autovacuum, the size and an estimate of bloat (deploy/core/vacuum_metrics.sql).
VACUUM_METRICS = """SELECT table_name, dead_tuples, live_tuples, extract(epoch FROM last_autovacuum)::float8,
    autovacuum_count, table_bytes, bloat_bytes FROM whatsapp_handler.vacuum_metrics()"""

# A scrape must answer even when the database does not.
QUEUE_TIMEOUT_SECONDS = 1.0
# Webhooks answer in milliseconds; the tail up to Twilio's 15 s timeout still counts.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000)
OTP_OUTCOMES = ("verified", "invalid", "expired", "locked", "no_challenge")
# issued, or why request_otp refused (app/otp.py's REFUSALS, and "other").
OTP_REQUEST_RESULTS = ("issued", "country", "not_configured", "key_rate", "overall_rate", "cooldown", "hourly",
                       "locked", "malformed_phone", "unknown_channel", "other")  # fmt: skip
# The people API's calls (app/people.py), by action and result: ok, or why SQL refused it (its RESULTS).
PEOPLE_ACTIONS = ("consent", "preferences", "set_preferences", "block", "unblock", "export", "erase")
# What whatsapp_send_requests_total{result} counts: queued, a retry of a queued one, or why SQL refused it.
SEND_RESULTS = ("queued", "duplicate", "unknown_key", "not_covered", "unknown_channel", "malformed", "not_carried",
                "key_reused", "blocked", "outside_window", "template", "no_consent", "other")  # fmt: skip
PEOPLE_RESULTS = ("ok", "unknown_key", "not_covered", "unknown_person", "invalid", "not_own_block", "other")


class Metrics:
    """One registry per app, so that two apps in one process (tests) do not collide.

    With several granian workers (`serve` sets PROMETHEUS_MULTIPROC_DIR), each worker writes its
    counts to files in that directory and a scrape, whichever worker answers it, sums them all."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
        from prometheus_client.multiprocess import MultiProcessCollector

        # The *_created series double the output and no dashboard reads them.
        disable_created_metrics()
        self.registry = CollectorRegistry()
        r: CollectorRegistry | None = self.registry
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            MultiProcessCollector(self.registry)
            r = None
        self.webhook_requests = Counter(
            "whatsapp_webhook_requests",
            "Webhooks answered, by provider and outcome",
            ["provider", "outcome"],
            registry=r,
        )
        self.webhook_duration = Histogram(
            "whatsapp_webhook_duration_seconds",
            "Time to answer a webhook",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ingest_batch_size = Histogram(
            "whatsapp_ingest_batch_size",
            "Webhooks per ingest call (more than one when they arrive faster than the slots answer)",
            ["provider"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.registrations = Counter("whatsapp_user_registrations", "Users registered on first contact", registry=r)
        self.template_updates_unmatched = Counter(
            "whatsapp_template_updates_unmatched",
            "Meta template webhooks (status, category, quality) that found no template of the registry: kept raw only",
            registry=r,
        )
        self.otp_sent = Counter("whatsapp_otp_sent", "OTP codes issued through the API", registry=r)
        self.rights_failures = Counter(
            "whatsapp_relay_rights_failures",
            "Calls the server refused the relay's own login (42501/42883): it lacks its group or the group its grants",
            registry=r,
        )
        self.otp_verified = Counter("whatsapp_otp_verified", "OTP verifications, by outcome", ["outcome"], registry=r)
        for outcome in OTP_OUTCOMES:
            self.otp_verified.labels(outcome)
        self.otp_requests = Counter(
            "whatsapp_otp_requests",
            "OTP requests through the API, by result: issued, or the reason they were refused",
            ["result"],
            registry=r,
        )
        for result in OTP_REQUEST_RESULTS:
            self.otp_requests.labels(result)
        self.send_requests = Counter(
            "whatsapp_send_requests",
            "Business messages asked of the send API (one per batch element), by result: queued, duplicate, or the "
            "rule that refused it",
            ["result"],
            registry=r,
        )
        for result in SEND_RESULTS:
            self.send_requests.labels(result)
        self.people_requests = Counter(
            "whatsapp_people_requests",
            "People API calls (scope manage), by action and result: ok, or why they were refused",
            ["action", "result"],
            registry=r,
        )
        for action in PEOPLE_ACTIONS:
            for result in PEOPLE_RESULTS:
                self.people_requests.labels(action, result)


class PacingCollector:
    """The database's pacing counters (worker_pacing) as of the last read: the same in every worker
    process, so an alert takes their max by channel."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, int, int, float]] | None = None

    def describe(self) -> list:
        return []

    def collect(self) -> list:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        up = GaugeMetricFamily("whatsapp_pacing_metrics_up", "Whether the pacing counters could be read")
        up.add_metric([], 0 if self.rows is None else 1)
        held = CounterMetricFamily(
            "whatsapp_pacing_held",
            "Messages a claim held back for later: by the channel's messages-per-second cap or by the person's pace",
            labels=["channel", "reason"],
        )
        throttled = CounterMetricFamily(
            "whatsapp_pacing_throttled",
            "Provider answers that the channel or the person was sent to too fast",
            labels=["channel"],
        )
        backlog = GaugeMetricFamily(
            "whatsapp_pacing_backlog_seconds",
            "How far ahead the channel's held messages (or a provider's throttle) reach: its paced backlog",
            labels=["channel"],
        )
        for channel_id, held_channel, held_pair, throttles, backlog_seconds in self.rows or ():
            held.add_metric([str(channel_id), "channel"], held_channel)
            held.add_metric([str(channel_id), "pair"], held_pair)
            throttled.add_metric([str(channel_id)], throttles)
            backlog.add_metric([str(channel_id)], backlog_seconds)
        return [up, held, throttled, backlog]


class CampaignCollector:
    """The campaigns (worker_campaign_metrics) as of the last read: each live campaign's state, and
    its recipients by state and reason. The same in every worker process: alerts take the max."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, str, str, str, str, int]] | None = None

    def describe(self) -> list:
        return []

    def collect(self) -> list:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("whatsapp_campaign_metrics_up", "Whether the campaigns could be read")
        up.add_metric([], 0 if self.rows is None else 1)
        state = GaugeMetricFamily(
            "whatsapp_campaign_state",
            "1 for each live campaign's state and its reason (paused by itself: template_*, quality_*, "
            "channel_inactive, provider_refuses; by an operator: operator)",
            labels=["campaign", "channel", "state", "reason"],
        )
        recipients = GaugeMetricFamily(
            "whatsapp_campaign_recipients",
            "A campaign's recipients by state (pending, queued, sent, delivered, read, failed, skipped) and reason",
            labels=["campaign", "channel", "state", "reason"],
        )
        seen: set[int] = set()
        for campaign, channel, c_state, c_reason, r_state, r_reason, n in self.rows or ():
            if campaign not in seen:
                seen.add(campaign)
                state.add_metric([str(campaign), str(channel), c_state, c_reason], 1)
            recipients.add_metric([str(campaign), str(channel), r_state, r_reason], n)
        return [up, state, recipients]


class ChannelCollector:
    """Each active channel's standing (worker_channel_standing) as of the last read: whether it can send
    (its Evolution instance open, its Meta account not disabled), its connection state and how long it has
    held it, its number's quality. The same in every worker process: alerts take the min or max by channel."""

    def __init__(self) -> None:
        self.rows: list[tuple] | None = None

    def describe(self) -> list:
        return []

    def collect(self) -> list:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("whatsapp_channel_standing_metrics_up", "Whether the channels' standing could be read")
        up.add_metric([], 0 if self.rows is None else 1)
        connected = GaugeMetricFamily(
            "whatsapp_channel_connected",
            "1 while an active channel can send, 0 while it is down: its Evolution instance not open (close or "
            "connecting), or its Meta account disabled",
            labels=["channel", "provider"],
        )
        state = GaugeMetricFamily(
            "whatsapp_channel_connection_state",
            "1 for an Evolution channel's connection state as its last CONNECTION_UPDATE said (open, connecting, "
            "close), with Evolution's statusReason",
            labels=["channel", "provider", "state", "reason"],
        )
        age = GaugeMetricFamily(
            "whatsapp_channel_state_age_seconds",
            "Seconds since the channel's connection state or its account's standing last changed",
            labels=["channel", "provider"],
        )
        quality = GaugeMetricFamily(
            "whatsapp_channel_quality",
            "1 for a Meta channel's number's last quality event (FLAGGED, UNFLAGGED, DOWNGRADE, ...) and messaging "
            "limit",
            labels=["channel", "event", "limit"],
        )
        for channel, provider, is_up, connection, reason, seconds, q_event, q_limit, _account, _disabled in (
            self.rows or ()
        ):
            labels = [str(channel), provider]
            connected.add_metric(labels, 1 if is_up else 0)
            if connection is not None:
                state.add_metric([*labels, connection, "" if reason is None else str(reason)], 1)
            if seconds is not None:
                age.add_metric(labels, seconds)
            if q_event is not None:
                quality.add_metric([str(channel), q_event, q_limit or ""], 1)
        return [up, connected, state, age, quality]


class WorkerMetrics:
    """The delivery worker's counters, in a registry of its own as the relay's are, served on
    `worker_metrics_port` with the worker process's own CPU and memory."""

    def __init__(self, restarts: int = 0) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, disable_created_metrics

        disable_created_metrics()
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        # The supervising `worker` counts; each delivery process it starts carries the count on.
        self.restarts = Counter(
            "whatsapp_worker_restarts",
            "Delivery processes the worker command started in place of one that died",
            registry=self.registry,
        )
        self.restarts.inc(restarts)
        # The database's pacing counters (worker_pacing), as the delivery loop last read them.
        self.pacing = PacingCollector()
        self.registry.register(self.pacing)
        # The campaigns (worker_campaign_metrics), and this process's share of their dispatch.
        self.campaigns = CampaignCollector()
        self.registry.register(self.campaigns)
        # Each active channel's standing (worker_channel_standing): connected or down, and why.
        self.channels = ChannelCollector()
        self.registry.register(self.channels)
        self.campaign_dispatched = Counter(
            "whatsapp_campaign_dispatched",
            "Campaign recipients this worker process settled into the queue (queued) or out of it (skipped)",
            registry=self.registry,
        )
        self.campaign_dispatch_failures = Counter(
            "whatsapp_campaign_dispatch_failures",
            "worker_campaigns calls that failed (the database away, a rights problem, a fault)",
            registry=self.registry,
        )
        self.outcomes = Counter(
            "whatsapp_outbound_messages",
            "Outbound messages settled by the worker",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.rights_failures = Counter(
            "whatsapp_worker_rights_failures",
            "Calls the server refused the worker's own login (42501/42883): claims refused, and settles refused "
            "(counted once each); it lacks its group, the group its grants, or the plan is behind the worker",
            registry=self.registry,
        )
        self.send_seconds = Histogram(
            "whatsapp_provider_request_seconds",
            "Time of one send request to a provider",
            ["provider"],
            registry=self.registry,
        )

    def serve(self, port: int, host: str) -> None:
        from prometheus_client import start_http_server

        start_http_server(port, addr=host, registry=self.registry)


class RelaySupervisorMetrics:
    """Counted by `serve`'s main process, which outlives its granian workers: written to the
    multiprocess directory (PROMETHEUS_MULTIPROC_DIR, always set by `serve`) that every worker's
    /metrics sums, so the count survives the worker that died."""

    def __init__(self) -> None:
        from prometheus_client import Counter

        self.restarts = Counter(
            "whatsapp_relay_worker_restarts",
            "Relay worker processes that died and were replaced",
            registry=None,
        )


class _Families:
    """A one-off collector, so that scrape-time gauges need no shared mutable state."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


QueueRows = list[tuple[str, int, float | None]]
CronRows = list[tuple[str, bool, int, str | None]]


# What the relay's /metrics reads from the database, each an optional part: a database deployed
# before one of them still gives the others. The queues come first: they tell whether the database
# answers at all (whatsapp_queue_metrics_up).
SCRAPE_QUERIES = {
    "queues": QUEUE_METRICS,
    "cron": CRON_FAILURES,
    "vacuum": VACUUM_METRICS,
    "lateness": CRON_LATENESS,
    "success": WEBHOOK_SUCCESS,
    "dead_letters": HISTORY_METRICS,
}


async def _scrape_rows(pool: AsyncConnectionPool) -> dict[str, list | None]:
    """Every database reader of a scrape, on one connection within one timeout: with the database away
    the scrape waits one timeout, not one per reader. A reader whose function is missing or refused is
    None and the others go on (the pool's connections are autocommit)."""
    found: dict[str, list | None] = dict.fromkeys(SCRAPE_QUERIES)
    try:
        async with asyncio.timeout(QUEUE_TIMEOUT_SECONDS), pool.connection(timeout=QUEUE_TIMEOUT_SECONDS) as conn:
            for part, query in SCRAPE_QUERIES.items():
                try:
                    found[part] = await (await conn.execute(query, prepare=True)).fetchall()
                except psycopg.Error as exc:
                    if isinstance(exc, psycopg.OperationalError):
                        raise
                    log.debug("%s metrics unavailable: %s", part, " ".join(str(exc).split()))
    except (psycopg.Error, TimeoutError) as exc:
        log.warning("database metrics unavailable: %s", " ".join(str(exc).split()) or type(exc).__name__)
    return found


def _cron_families(rows: CronRows | None) -> list[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    up = GaugeMetricFamily(
        "whatsapp_cron_metrics_up",
        "Whether every enabled pg_cron job of this project is scheduled as its jobs login (and so seen)",
    )
    up.add_metric([], 1 if rows and all(scheduled for _job, scheduled, _count, _message in rows) else 0)
    failures = GaugeMetricFamily(
        "whatsapp_cron_job_failures",
        "Failed runs of a pg_cron job since its last successful run (0 when the last run succeeded)",
        labels=["cron_job"],
    )
    for job, scheduled, count, _message in rows or ():
        if scheduled:
            failures.add_metric([job], count)
    return [up, failures]


def _queue_families(rows: QueueRows | None) -> list[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    up = GaugeMetricFamily("whatsapp_queue_metrics_up", "Whether the queue gauges could be read from the database")
    up.add_metric([], 0 if rows is None else 1)
    depth = GaugeMetricFamily("whatsapp_queue_depth", "Messages in a pgmq queue", labels=["queue"])
    age = GaugeMetricFamily(
        "whatsapp_queue_oldest_message_age_seconds", "Age of the oldest message in a pgmq queue", labels=["queue"]
    )
    for name, count, oldest in rows or ():
        depth.add_metric([name], count)
        age.add_metric([name], oldest or 0.0)
    return [up, depth, age]


VacuumRows = list[tuple[str, int, int, float | None, int, int, int | None]]


def _vacuum_families(rows: VacuumRows | None) -> list[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    up = GaugeMetricFamily("whatsapp_vacuum_metrics_up", "Whether the tables' vacuum gauges could be read")
    up.add_metric([], 0 if rows is None else 1)
    dead = GaugeMetricFamily(
        "whatsapp_table_dead_tuples", "Dead rows of a table (pg_stat_user_tables)", labels=["table"]
    )
    live = GaugeMetricFamily(
        "whatsapp_table_live_tuples", "Live rows of a table (pg_stat_user_tables)", labels=["table"]
    )
    last = GaugeMetricFamily(
        "whatsapp_table_last_autovacuum_timestamp_seconds",
        "When autovacuum last vacuumed a table (0: never)",
        labels=["table"],
    )
    size = GaugeMetricFamily("whatsapp_table_size_bytes", "Size of a table's main fork", labels=["table"])
    bloat = GaugeMetricFamily(
        "whatsapp_table_bloat_bytes",
        "Estimated bloat of a table: its size less what its live rows need by the last ANALYZE's column widths",
        labels=["table"],
    )
    for table, dead_n, live_n, last_at, _count, size_b, bloat_b in rows or ():
        dead.add_metric([table], dead_n)
        live.add_metric([table], live_n)
        last.add_metric([table], last_at or 0.0)
        size.add_metric([table], size_b)
        if bloat_b is not None:
            bloat.add_metric([table], bloat_b)
    return [up, dead, live, last, size, bloat]


HistoryRows = list[tuple[str, str, str, int]]


def _dead_letter_families(rows: HistoryRows | None) -> list[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    up = GaugeMetricFamily("whatsapp_dead_letter_history_up", "Whether the dead-letter history could be read")
    up.add_metric([], 0 if rows is None else 1)
    letters = GaugeMetricFamily(
        "whatsapp_dead_letter_history_letters",
        "Dead letters the re-drives, replays and purges of the last hour acted on, by queue, action (redrive, "
        "replay, purge, park) and result (redriven, failed, parked, gone, refused, erased, replayed, purged)",
        labels=["queue", "action", "result"],
    )
    for queue, action, result, n in rows or ():
        letters.add_metric([queue, action, result], n)
    return [up, letters]


LatenessRows = list[tuple[str, float | None, float, bool | None]]
SuccessRows = list[tuple[str, str, int | None, int, int, float]]


def _lateness_families(rows: LatenessRows | None) -> list[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    up = GaugeMetricFamily("whatsapp_cron_lateness_up", "Whether the pg_cron jobs' last runs could be read")
    up.add_metric([], 0 if rows is None else 1)
    overdue = GaugeMetricFamily(
        "whatsapp_cron_job_overdue",
        "1 when an enabled pg_cron job has not started within twice its period (since it was enabled or "
        "rescheduled, if later); absent when its schedule cannot be bounded",
        labels=["cron_job"],
    )
    age = GaugeMetricFamily(
        "whatsapp_cron_job_last_run_age_seconds",
        "Seconds since an enabled pg_cron job last started (or was enabled or rescheduled, if later)",
        labels=["cron_job"],
    )
    period = GaugeMetricFamily(
        "whatsapp_cron_job_period_seconds",
        "The longest wait between two runs a job's schedule allows",
        labels=["cron_job"],
    )
    for job, period_s, age_s, late in rows or ():
        age.add_metric([job], age_s)
        if period_s is not None:
            period.add_metric([job], period_s)
            overdue.add_metric([job], 1 if late else 0)
    return [up, overdue, age, period]


def _success_families(rows: SuccessRows | None) -> list[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    up = GaugeMetricFamily("whatsapp_webhook_success_up", "Whether the webhooks' success rate could be read")
    up.add_metric([], 0 if rows is None else 1)
    labels = ["provider", "channel", "window"]
    ratio = GaugeMetricFamily(
        "whatsapp_webhook_success_ratio",
        "Share of the webhooks received in the window (1h, 24h, up to the last minute counted) that are not "
        "failed: not dead-lettered, or re-driven since",
        labels=labels,
    )
    webhooks = GaugeMetricFamily(
        "whatsapp_webhook_window_received", "Webhooks received in the window (1h, 24h)", labels=labels
    )
    failed = GaugeMetricFamily(
        "whatsapp_webhook_window_failed",
        "Webhooks of the window (1h, 24h) failed now: dead-lettered and not re-driven",
        labels=labels,
    )
    for span, provider, channel_id, n, n_failed, share in rows or ():
        key = [provider, "unknown" if channel_id is None else str(channel_id), span]
        ratio.add_metric(key, share)
        webhooks.add_metric(key, n)
        failed.add_metric(key, n_failed)
    return [up, ratio, webhooks, failed]


@get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    state = request.app.state
    rows = await _scrape_rows(state.pool)
    families = _queue_families(rows["queues"]) + _cron_families(rows["cron"]) + _vacuum_families(rows["vacuum"])
    families += _lateness_families(rows["lateness"]) + _success_families(rows["success"])
    families += _dead_letter_families(rows["dead_letters"])
    text = generate_latest(state.metrics.registry) + generate_latest(_Families(families))  # type: ignore[arg-type]
    return Response(text, media_type=CONTENT_TYPE_LATEST)
