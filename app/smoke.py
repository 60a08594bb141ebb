"""`whatsapp-handler smoke URL`: does a deployed relay answer as this build documents? One line per check.

    ok    name: what was found
    FAIL  name: what was found
    skip  name: why it was not run

Safe against production: it sends no signed webhook and writes nothing. The webhooks it posts
carry no signature or key, so the relay refuses them before reading a channel or the database
(they count as `unauthorized` or `malformed` in whatsapp_webhook_requests_total, which no alert
watches); the sqitch registry is read in a read-only transaction. Every request has a timeout,
and once the service has not answered one the rest are not tried: a hanging service fails
within about one timeout instead of one per check.

The checks are functions of a Target, each returning its Results; the CLI prints them and
tests/smoke/test_deployed.py runs the same ones as pytest tests (SMOKE_URL).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg.rows import dict_row

from app import __version__
from app.database import MASK, mask, password_of
from app.errors import PROBLEM_JSON
from app.settings import PROJECT_DIR, Settings
from app.sqitch import Change, last_change

PLAN = PROJECT_DIR / "sqitch.plan"
DEFAULT_TIMEOUT = 5.0
# /health does no work: over a second means an overloaded process or a slow path to it.
DEFAULT_MAX_LATENCY = 2.0
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# The sqitch registry's last change, with the time it was planned as the plan writes it (a
# reworked change's versions share a name; doctor compares the same pair).
LAST_DEPLOYED = """SELECT change, to_char(planned_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS planned_at
FROM sqitch.changes WHERE project = 'whatsapp_handler' ORDER BY committed_at DESC LIMIT 1"""

# What the relay's /metrics documents (docs/relay.md's table, the runbook's cron gauges), as
# Prometheus writes the samples alerts read. tests/test_smoke.py holds these lists to every
# name monitoring/prometheus/alerts.yml and the docs use.
RELAY_METRICS = (
    "whatsapp_webhook_requests_total",
    "whatsapp_webhook_duration_seconds_bucket",
    "whatsapp_ingest_batch_size_bucket",
    "whatsapp_user_registrations_total",
    "whatsapp_otp_sent_total",
    "whatsapp_otp_verified_total",
    "whatsapp_otp_requests_total",
    "whatsapp_send_requests_total",
    "whatsapp_people_requests_total",
    "whatsapp_template_updates_unmatched_total",
    "whatsapp_queue_metrics_up",
    "whatsapp_queue_depth",
    "whatsapp_queue_oldest_message_age_seconds",
    "whatsapp_cron_metrics_up",
    "whatsapp_cron_job_failures",
    "whatsapp_vacuum_metrics_up",
    "whatsapp_table_dead_tuples",
    "whatsapp_table_live_tuples",
    "whatsapp_table_last_autovacuum_timestamp_seconds",
    "whatsapp_table_size_bytes",
    "whatsapp_table_bloat_bytes",
    "whatsapp_cron_lateness_up",
    "whatsapp_cron_job_overdue",
    "whatsapp_cron_job_last_run_age_seconds",
    "whatsapp_cron_job_period_seconds",
    "whatsapp_webhook_success_up",
    "whatsapp_webhook_success_ratio",
    "whatsapp_webhook_window_received",
    "whatsapp_webhook_window_failed",
    "whatsapp_dead_letter_history_up",
    "whatsapp_dead_letter_history_letters",
    "whatsapp_relay_rights_failures_total",
    "whatsapp_relay_worker_restarts_total",
)
# Documented, but not shown by every relay: noted when absent, not failed. The restarts are
# counted by `serve`'s main process; a relay started by granian itself has none. (With several
# granian workers a labelled series shows only once it has a value: the webhook series are there
# because the refusals are counted before /metrics is read.)
RELAY_METRICS_NOT_ALWAYS = {"whatsapp_relay_worker_restarts_total": "counted by `serve` only"} | dict.fromkeys(
    ("whatsapp_webhook_success_ratio", "whatsapp_webhook_window_received", "whatsapp_webhook_window_failed"),
    "one series per provider, channel and window with webhooks in it, after job_webhook_minutes first ran",
)
RELAY_METRICS_NOT_ALWAYS["whatsapp_dead_letter_history_letters"] = "a series per queue, action, result of the last hour"
# The delivery worker's own /metrics (WORKER_METRICS_PORT), checked when its URL is given.
WORKER_METRICS = (
    "whatsapp_outbound_messages_total",
    "whatsapp_provider_request_seconds_bucket",
    "whatsapp_worker_restarts_total",
    "whatsapp_worker_rights_failures_total",
    "whatsapp_pacing_metrics_up",
    "whatsapp_pacing_held_total",
    "whatsapp_pacing_throttled_total",
    "whatsapp_pacing_backlog_seconds",
    "whatsapp_campaign_metrics_up",
    "whatsapp_campaign_state",
    "whatsapp_campaign_recipients",
    "whatsapp_campaign_dispatched_total",
    "whatsapp_channel_standing_metrics_up",
    "whatsapp_channel_connected",
    "whatsapp_channel_connection_state",
    "whatsapp_channel_state_age_seconds",
    "whatsapp_channel_quality",
    "whatsapp_campaign_dispatch_failures_total",
)
# One series per channel, once the delivery loop has read the pacing counters (every 5 s).
WORKER_METRICS_NOT_ALWAYS = dict.fromkeys(
    ("whatsapp_pacing_held_total", "whatsapp_pacing_throttled_total", "whatsapp_pacing_backlog_seconds"),
    "one series per channel, after the worker's first pacing read",
) | dict.fromkeys(
    ("whatsapp_campaign_state", "whatsapp_campaign_recipients"),
    "one series per campaign (and state), while a campaign is live or ended within a day",
) | dict.fromkeys(
    ("whatsapp_channel_connected", "whatsapp_channel_connection_state", "whatsapp_channel_state_age_seconds",
     "whatsapp_channel_quality"),
    "one series per active channel (its provider told its state), after the worker's first read",
)  # fmt: skip
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


class SmokeUsageError(ValueError):
    """The command line cannot name a service to smoke."""


@dataclass(frozen=True)
class Result:
    name: str
    ok: bool | None  # None: not run (nothing to check it against)
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "skip" if self.ok is None else "ok" if self.ok else "FAIL"

    def line(self) -> str:
        return f"{self.status:<4}  {self.name}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, **self.data}


def base_url(url: str) -> str:
    """The service's base URL (a path prefix kept, for a relay behind a proxy), or SmokeUsageError."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SmokeUsageError(f"not an http(s) URL: {url!r} (for example http://127.0.0.1:8000)")
    if parts.query or parts.fragment:
        raise SmokeUsageError(f"the URL must not carry a query or fragment: {url!r}")
    return url.strip().rstrip("/")


class Target:
    """The service under test: one HTTP client with a timeout per request, what it has answered so far
    (the OpenAPI document, read once), and the first request it did not answer."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT, max_latency: float = DEFAULT_MAX_LATENCY,
                 database_url: str | None = None, worker_metrics_url: str | None = None) -> None:  # fmt: skip
        self.url = base_url(url)
        self.worker_metrics_url = worker_metrics_url.strip() if worker_metrics_url else None
        if self.worker_metrics_url:
            base_url(self.worker_metrics_url)
        self.timeout = timeout
        self.max_latency = max_latency
        self.database_url = database_url
        self.unanswered: str | None = None
        self._openapi: dict[str, Any] | None = None
        self._openapi_error: str | None = None
        # Refused requests show up in the relay's INFO log: this id tells them from an attack's.
        self.request_id = f"smoke-{secrets.token_hex(6)}"
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            # A connection per request: the relay may close one after refusing a body it did not read,
            # and a request sent on it meanwhile would be a failure of the smoke, not of the service.
            headers={
                "User-Agent": f"whatsapp-handler-smoke/{__version__}",
                "X-Request-ID": self.request_id,
                "Connection": "close",
            },
        )

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response | None, str, float]:
        """(the response or None, why there is none, seconds taken); no request once one went unanswered."""
        url = path if path.startswith(("http://", "https://")) else self.url + path
        if self.unanswered is not None:
            return None, "not tried: the service did not answer an earlier request", 0.0
        started = time.perf_counter()
        try:
            response = self.client.request(method, url, **kwargs)
        except httpx.TimeoutException:
            self.unanswered = f"{method} {url} got no answer within {self.timeout:g} s"
            return None, self.unanswered, time.perf_counter() - started
        except httpx.HTTPError as exc:
            self.unanswered = f"{method} {url} failed: {' '.join(str(exc).split()) or type(exc).__name__}"
            return None, self.unanswered, time.perf_counter() - started
        return response, "", time.perf_counter() - started

    def openapi(self) -> tuple[dict[str, Any] | None, str]:
        """The deployed relay's OpenAPI document (it documents each route's statuses), read once."""
        if self._openapi is None and self._openapi_error is None:
            response, why, _ = self.request("GET", "/schema/openapi.json")
            if response is None:
                self._openapi_error = why
            elif response.status_code != 200:
                self._openapi_error = f"/schema/openapi.json answered {response.status_code}"
            else:
                try:
                    document = response.json()
                except ValueError:
                    document = None
                if isinstance(document, dict) and isinstance(document.get("paths"), dict):
                    self._openapi = document
                else:
                    self._openapi_error = "/schema/openapi.json is not an OpenAPI document"
        return self._openapi, self._openapi_error or ""


@contextmanager
def target(url: str, **options: Any) -> Iterator[Target]:
    t = Target(url, **options)
    try:
        yield t
    finally:
        t.close()


def problem_error(response: httpx.Response, status: int) -> str | None:
    """Why the answer is not a problem+json of this status, or None when it is."""
    if response.status_code != status:
        return f"answered {response.status_code}, expected {status}"
    content_type = response.headers.get("content-type", "")
    if not content_type.startswith(PROBLEM_JSON):
        return f"{status} as {content_type or 'no content type'}, not {PROBLEM_JSON}"
    try:
        body = response.json()
    except ValueError:
        return f"{status}, but its body is not JSON"
    if not isinstance(body, dict):
        return f"{status}, but its body is not a JSON object"
    missing = [key for key in ("type", "title") if not isinstance(body.get(key), str) or not body[key]]
    if missing or body.get("status") != status:
        return f"{status}, but the problem lacks {', '.join(missing) or 'status'} (or its status differs)"
    return None


# --- The checks ---------------------------------------------------------------------------------------------


def check_health(t: Target) -> list[Result]:
    response, why, seconds = t.request("GET", "/health")
    if response is None:
        return [Result("health", False, why)]
    latency = {"latency_ms": round(seconds * 1000, 1)}
    took = f"{seconds * 1000:.0f} ms"
    if response.status_code != 200:
        return [Result("health", False, f"answered {response.status_code} in {took}", latency)]
    if seconds > t.max_latency:
        return [Result("health", False, f"200 in {took}, over the {t.max_latency:g} s allowed", latency)]
    return [Result("health", True, f"200 in {took}", latency)]


def check_ready(t: Target) -> list[Result]:
    """/ready, and each of its checks on a line of its own: the body's keys, whatever they are."""
    response, why, _ = t.request("GET", "/ready")
    if response is None:
        return [Result("ready", False, why)]
    try:
        body = response.json()
    except ValueError:
        body = None
    checks = body.get("checks") if isinstance(body, dict) else None
    if not isinstance(checks, dict) or not checks:
        return [Result("ready", False, f"answered {response.status_code} without its checks")]
    failing = [name for name, ok in checks.items() if ok is not True]
    if response.status_code == 200 and not failing:
        results = [Result("ready", True, "200 ready")]
    elif response.status_code == 503:
        detail = body.get("detail") or "not ready"
        results = [Result("ready", False, f"503: {detail}")]
    else:
        results = [Result("ready", False, f"answered {response.status_code} with failing checks {failing}")]
    for name, ok in checks.items():
        results.append(Result(f"ready {name}", ok is True, json.dumps(ok)))
    return results


def check_metrics(t: Target) -> list[Result]:
    """The relay's /metrics has every documented name (the worker's too, when its URL is given). Read
    after the refusals below when run in order, so that the webhook series exist in every process."""
    results = [_metrics(t, "metrics", t.url + "/metrics", RELAY_METRICS, RELAY_METRICS_NOT_ALWAYS)]
    if t.worker_metrics_url:
        results.append(_metrics(t, "worker metrics", t.worker_metrics_url, WORKER_METRICS, WORKER_METRICS_NOT_ALWAYS))
    return results


def _metrics(t: Target, name: str, url: str, wanted: tuple[str, ...], sometimes: dict[str, str]) -> Result:
    from prometheus_client.parser import text_string_to_metric_families

    response, why, _ = t.request("GET", url)
    if response is None:
        return Result(name, False, why)
    if response.status_code != 200:
        return Result(name, False, f"{url} answered {response.status_code}")
    exposed: set[str] = set()
    try:
        for family in text_string_to_metric_families(response.text):
            exposed.add(family.name)
            exposed.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
            exposed.update(sample.name for sample in family.samples)
    except ValueError as exc:
        return Result(name, False, f"{url} is not Prometheus text: {exc}")
    missing = [metric for metric in wanted if metric not in exposed and metric not in sometimes]
    absent = [f"{metric} ({why})" for metric, why in sometimes.items() if metric not in exposed]
    note = f"; not shown, as documented: {', '.join(absent)}" if absent else ""
    if missing:
        return Result(name, False, f"missing {', '.join(missing)}{note}", {"missing": missing})
    return Result(name, True, f"all {len(wanted)} documented names{note}")


def check_openapi(t: Target) -> list[Result]:
    document, why = t.openapi()
    if document is None:
        return [Result("openapi", False, why)]
    wanted = {refusal.path for refusal in refusals() if refusal.status not in (404, 405)} | {"/health", "/ready"}
    missing = sorted(wanted - set(document["paths"]))
    version = str(document.get("info", {}).get("version", "?"))
    built = "this build's" if version == __version__ else f"this build is {__version__}"
    if missing:
        return [Result("openapi", False, f"version {version} ({built}); routes missing: {', '.join(missing)}")]
    return [Result("openapi", True, f"version {version} ({built}), every route documented", {"version": version})]


@dataclass(frozen=True)
class Refusal:
    """A request the relay must refuse, with the status docs/relay.md and the OpenAPI document give."""

    name: str
    method: str
    path: str
    status: int
    query: dict[str, str] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    form: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def refusals() -> tuple[Refusal, ...]:
    # The handshake's token is fresh each run: no configured verify_token can be it.
    wrong_token = "smoke-" + secrets.token_urlsafe(24)
    return (
        Refusal("webhook meta unsigned", "POST", "/webhooks/meta", 401,
                json={"object": "whatsapp_business_account", "entry": []}),
        Refusal("webhook meta handshake", "GET", "/webhooks/meta", 403,
                query={"hub.mode": "subscribe", "hub.verify_token": wrong_token, "hub.challenge": "smoke"}),
        Refusal("webhook twilio unsigned", "POST", "/webhooks/twilio", 403,
                form={"MessageSid": "SMsmoke", "Body": "smoke"}),
        Refusal("webhook evolution unsigned", "POST", "/webhooks/evolution", 401,
                json={"event": "smoke", "instance": "smoke"}),
        Refusal("otp api without key", "POST", "/v1/otp", 401, json={"phone": "+15550000000", "channel_id": 1}),
        Refusal("malformed body", "POST", "/webhooks/evolution", 400, content=b'{"event": "smoke", "instance":',
                headers={"Content-Type": "application/json"}),
        Refusal("unknown route", "GET", f"/smoke-no-such-route-{secrets.token_hex(4)}", 404),
        Refusal("wrong method", "POST", "/health", 405),
    )  # fmt: skip


def check_refusals(t: Target) -> list[Result]:
    """Each webhook refuses what is not signed, and what is not a request of the API is a problem+json."""
    return [_refused(t, refusal) for refusal in refusals()]


def _refused(t: Target, refusal: Refusal) -> Result:
    response, why, _ = t.request(
        refusal.method, refusal.path, params=refusal.query or None, json=refusal.json, content=refusal.content,
        data=refusal.form, headers=refusal.headers or None,
    )  # fmt: skip
    label = f"{refusal.method} {refusal.path}"
    if response is None:
        return Result(refusal.name, False, why)
    error = problem_error(response, refusal.status)
    if error:
        return Result(refusal.name, False, f"{label} {error}")
    documented = _documented(t, refusal)
    if documented:
        return Result(refusal.name, False, f"{label} {refusal.status} problem+json, but {documented}")
    return Result(refusal.name, True, f"{label} {refusal.status} problem+json")


def _documented(t: Target, refusal: Refusal) -> str:
    """Why the status is not the one the deployed OpenAPI document gives the route, or ''."""
    if refusal.status in (404, 405):
        return ""  # not a route's answer: the document has no operation for them
    document, _ = t.openapi()
    if document is None:
        return ""  # the openapi check says why
    operation = document["paths"].get(refusal.path, {}).get(refusal.method.lower())
    if operation is None:
        return "the OpenAPI document has no such operation"
    if str(refusal.status) not in operation.get("responses", {}):
        return f"the OpenAPI document does not list {refusal.status} for it"
    return ""


def check_plan(t: Target) -> list[Result]:
    """The sqitch registry's last change against this checkout's plan: the name and the time it was
    planned, which tell a reworked change's versions apart."""
    expected = last_change(PLAN)
    if not t.database_url:
        return [Result("plan", None, "no database URL (--database-url or WHATSAPP_HANDLER_DATABASE_URL)")]
    url = t.database_url
    try:
        # Read-only whatever the URL's login may do; the timeouts keep a hanging server a FAIL.
        with psycopg.connect(
            url,
            autocommit=True,
            row_factory=dict_row,
            connect_timeout=max(2, math.ceil(t.timeout)),
            options=f"-c default_transaction_read_only=on -c statement_timeout={int(t.timeout * 1000)}",
        ) as conn:
            if conn.execute("SELECT to_regclass('sqitch.changes') IS NULL AS none").fetchone()["none"]:
                return [Result("plan", False, f"nothing deployed (no sqitch registry); this build ends at {expected}")]
            row = conn.execute(LAST_DEPLOYED).fetchone()
    except psycopg.Error as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        message = message.replace(url, mask(url))
        if secret := password_of(url):
            message = message.replace(secret, MASK)
        return [Result("plan", False, f"cannot read the sqitch registry: {message}")]
    if row is None:
        return [Result("plan", False, f"no change of whatsapp_handler deployed; this build ends at {expected}")]
    deployed = Change(row["change"], row["planned_at"])
    data = {"deployed": list(deployed), "build": list(expected)}
    if deployed == expected:
        return [Result("plan", True, f"deployed up to {expected}, as this build's plan", data)]
    if deployed.name == expected.name:
        return [Result("plan", False, f"{expected.name} deployed as planned {deployed.planned_at}, "
                       f"this build's is planned {expected.planned_at}", data)]  # fmt: skip
    return [Result("plan", False, f"deployed up to {deployed}, this build's plan ends at {expected}", data)]


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Target], list[Result]]


# In this order: /metrics after the refusals, which create the webhook series it must show.
CHECKS = (
    Check("health", check_health),
    Check("ready", check_ready),
    Check("openapi", check_openapi),
    Check("refusals", check_refusals),
    Check("metrics", check_metrics),
    Check("plan", check_plan),
)


def run_checks(t: Target) -> list[Result]:
    return [result for check in CHECKS for result in check.run(t)]


def summary(results: list[Result]) -> dict[str, int]:
    return {
        "checks": len(results),
        "failed": sum(r.ok is False for r in results),
        "skipped": sum(r.ok is None for r in results),
    }


# --- The command --------------------------------------------------------------------------------------------


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _url(text: str) -> str:
    try:
        return base_url(text)
    except SmokeUsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(commands: Any) -> None:
    smoke = commands.add_parser(
        "smoke",
        help="check a deployed relay from outside: probes, refusals, metrics, the plan",
        description="Check a running relay at URL as its callers see it: /health and its latency, /ready and "
        "each of its checks, /metrics with the documented names, every webhook refusing an unsigned request "
        "with its documented status as problem+json, unknown routes and malformed bodies as problem+json, and "
        "the deployed plan against this checkout's. Sends no signed webhook and writes nothing. One line per "
        "check; exit 0 when none fails, 1 otherwise, 2 for a usage error. See docs/smoke.md.",
    )
    smoke.add_argument("url", type=_url, metavar="URL", help="the relay's base URL, e.g. https://hooks.example.com")
    smoke.add_argument(
        "--database-url",
        metavar="URL",
        help="read the sqitch registry there (default WHATSAPP_HANDLER_DATABASE_URL; without either, the "
        "registry check is skipped and only /ready's plan check compares)",
    )
    smoke.add_argument(
        "--worker-metrics-url", type=_url, metavar="URL", help="also check the delivery worker's /metrics (full URL)"
    )
    smoke.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"per request; a service that does not answer in time fails (default {DEFAULT_TIMEOUT:g})",
    )
    smoke.add_argument(
        "--max-latency",
        type=_seconds,
        default=DEFAULT_MAX_LATENCY,
        metavar="SECONDS",
        help=f"fail when /health takes longer (default {DEFAULT_MAX_LATENCY:g})",
    )
    smoke.add_argument("--json", action="store_true", help="print one JSON document instead of lines")


def command(settings: Settings | None, args: argparse.Namespace) -> int:
    # httpx logs each request at INFO, the CLI's level: the check lines already say what was asked.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    database_url = args.database_url
    if database_url is None and settings is not None and settings.database_url is not None:
        database_url = settings.database_url.get_secret_value()
    with target(args.url, timeout=args.timeout, max_latency=args.max_latency, database_url=database_url,
                worker_metrics_url=args.worker_metrics_url) as t:  # fmt: skip
        results = run_checks(t)
    counts = summary(results)
    if args.json:
        document = {
            "url": t.url,
            "ok": counts["failed"] == 0,
            "failed": counts["failed"],
            "skipped": counts["skipped"],
            "checks": [r.as_dict() for r in results],
        }
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for result in results:
            print(result.line())
        print(f"smoke: {t.url}: {counts['checks']} checks, {counts['failed']} failed, {counts['skipped']} skipped")
    return EXIT_FAILED if counts["failed"] else EXIT_OK
