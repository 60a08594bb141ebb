"""`whatsapp-handler campaign ...`: campaigns for operators (docs/runbook.md#campaigns, docs/campaigns.md).

    campaign create --channel ID --template NAME --language CODE --name NAME [...]   prints the id
    campaign upload ID FILE [--format csv|json] [--skip-invalid]                     FILE `-` is stdin
    campaign audience ID [--active-within INTERVAL] [--language CODE] [--variable TEXT ...]
    campaign start|pause|resume|cancel ID                                            prints the new state
    campaign show ID [--json]                                                        state and funnel
    campaign list [--limit N]
    campaign watch ID [--interval SECONDS]                                           a live progress bar

Every action is one of the admin SQL functions of campaigns/campaigns (campaign_create,
campaign_upload, campaign_audience, campaign_control, campaign_results), run as the database's
administrator like `dlq` and `api-key`; what a row, a state or a filter may be is theirs to say,
and their refusals reach the operator as every command prints a project SQLSTATE. A recipient
list is read by app.recipients, the one reader of CSV and JSON lists."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from app import recipients

# watch's exit when the campaign stops short of completing (paused, cancelled, out of today's
# budget): the same code as "not running" elsewhere in the command.
EXIT_STOPPED = 3
EXIT_INTERRUPTED = 130
# The states a watch ends on; budget_exhausted waits for the next UTC day, too long to watch.
STOPPED = ("completed", "cancelled", "paused", "budget_exhausted")
# The funnel's order for display; a state SQL adds later is shown after these.
FUNNEL = ("pending", "queued", "sent", "delivered", "read", "failed", "skipped")
PLAIN_LINE_EVERY = 5.0  # seconds between watch's lines when the output is not a terminal
RATE_WINDOW = 10.0  # seconds of samples the rate is measured over
RESULTS = "SELECT whatsapp_handler.campaign_results(%s) AS r"
LIST = """
SELECT ch.name AS channel_name, whatsapp_handler.campaign_results(k.id) AS r
FROM whatsapp_handler.campaigns k JOIN whatsapp_handler.channels ch ON ch.id = k.channel_id
ORDER BY k.id DESC LIMIT %s
"""


class CampaignUsageError(Exception):
    """The command line asks for something the command cannot do as asked (exit 2)."""


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its message
    return parse


def add_parser(commands: Any) -> None:
    campaign = commands.add_parser(
        "campaign",
        help="create, fill, start, pause, resume, cancel, show and watch campaigns (a template to an audience)",
        description="Campaigns send one approved template to a list of recipients at their own pace "
        "(docs/campaigns.md, docs/runbook.md#campaigns). Runs as the database's administrator "
        "(WHATSAPP_HANDLER_DATABASE_URL).",
    )
    actions = campaign.add_subparsers(
        dest="campaign_action", required=True,
        metavar="{create,upload,audience,start,pause,resume,cancel,show,list,watch}",
    )  # fmt: skip

    create = actions.add_parser("create", help="make a draft campaign and print its id")
    create.add_argument("--channel", type=int, required=True, metavar="ID", help="the channel's id")
    create.add_argument("--template", required=True, metavar="NAME", help="an approved template of the channel")
    create.add_argument("--language", required=True, metavar="CODE", help="the template's language, e.g. en_GB")
    create.add_argument("--name", required=True, metavar="NAME", help="what operators call it (1-200 characters)")
    create.add_argument("--per-second", type=_positive(float), metavar="N",
                        help="its pace, below the channel's cap (default 10)")  # fmt: skip
    create.add_argument("--daily-budget", type=_positive(int), metavar="N", help="at most N messages a UTC day")
    create.add_argument("--starts-at", metavar="ISO8601", help="start no earlier than this, e.g. 2026-12-24T09:00Z")
    create.add_argument(
        "--components", metavar="JSON", help="the template's components besides the body (a header's image), as JSON"
    )

    upload = actions.add_parser(
        "upload",
        help="add recipients from a CSV (phone,var1,...) or JSON list",
        description="Adds recipients to a draft or scheduled campaign. A CSV's header is phone, then one column per "
        'body variable of the template; JSON is [{"phone": ..., "variables": [...]}]. A bad row refuses the '
        "whole upload, naming it (rows count from 1, the header not counted), unless --skip-invalid.",
    )
    upload.add_argument("campaign_id", type=int, metavar="ID")
    upload.add_argument("file", metavar="FILE", help="a .csv or .json file, or - for stdin (with --format)")
    upload.add_argument("--format", choices=("csv", "json"), help="the file's format (default: by its name)")
    upload.add_argument(
        "--skip-invalid", action="store_true", help="keep a row not in E.164 or lacking a variable as skipped"
    )

    audience = actions.add_parser("audience", help="add as recipients the people the channel knows who match")
    audience.add_argument("campaign_id", type=int, metavar="ID")
    audience.add_argument("--active-within", metavar="INTERVAL", help='active since, e.g. "30 days"')
    audience.add_argument("--language", metavar="CODE", help="their preferred language, e.g. pt-BR")
    audience.add_argument("--preferences", metavar="JSON", help='their preferences contain these, e.g. {"news": true}')
    audience.add_argument("--variable", dest="variables", action="append", metavar="TEXT",
                          help="a body variable, the same for everyone (repeat, in order)")  # fmt: skip

    for action, text in (("start", "start sending (or schedule it, with --starts-at in the future)"),
                         ("pause", "stop sending until resumed"),
                         ("resume", "go on after a pause (its own, or an operator's)"),
                         ("cancel", "stop for good: pending recipients are skipped as cancelled")):  # fmt: skip
        control = actions.add_parser(action, help=text)
        control.add_argument("campaign_id", type=int, metavar="ID")

    show = actions.add_parser("show", help="its state and funnel: recipients by state and reason")
    show.add_argument("campaign_id", type=int, metavar="ID")
    show.add_argument("--json", action="store_true", help="print campaign_results' JSON as it is")
    listing = actions.add_parser("list", help="the latest campaigns: id, name, channel, state, counts")
    listing.add_argument("--limit", type=_positive(int), default=50, metavar="N", help="at most N (default 50)")
    watch = actions.add_parser(
        "watch",
        help="a live progress bar until it completes, stops or is paused",
        description="Shows how many recipients are done (no longer pending) of all, by state, and the rate; "
        "redrawn in place on a terminal, a line every few seconds otherwise. Exits 0 when the campaign completes, "
        f"{EXIT_STOPPED} when it is paused, cancelled or out of today's budget (saying why), "
        f"{EXIT_INTERRUPTED} on Ctrl-C (the campaign goes on).",
    )
    watch.add_argument("campaign_id", type=int, metavar="ID")
    watch.add_argument("--interval", type=_positive(float), default=1.0, metavar="SECONDS",
                       help="how often to look (default 1)")  # fmt: skip


def command(conninfo: str, args: argparse.Namespace) -> int:
    action = args.campaign_action
    # Read and checked before connecting: a bad file or argument costs no database work.
    rows = _read_rows(args.file, args.format) if action == "upload" else None
    request = _create_request(args) if action == "create" else None
    audience = _audience_filter(args) if action == "audience" else None
    with psycopg.connect(conninfo, autocommit=True, row_factory=dict_row, connect_timeout=10) as conn:
        if action == "create":
            print(conn.execute("SELECT whatsapp_handler.campaign_create(%s) AS id", (Jsonb(request),)).fetchone()["id"])
            return 0
        if action == "upload":
            result = conn.execute("SELECT whatsapp_handler.campaign_upload(%s, %s, %s) AS r",
                                  (args.campaign_id, Jsonb(rows), args.skip_invalid)).fetchone()["r"]  # fmt: skip
            print(_uploaded(args.campaign_id, result))
            return 0
        if action == "audience":
            result = conn.execute("SELECT whatsapp_handler.campaign_audience(%s, %s) AS r",
                                  (args.campaign_id, Jsonb(audience))).fetchone()["r"]  # fmt: skip
            print(_uploaded(args.campaign_id, result))
            return 0
        if action in ("start", "pause", "resume", "cancel"):
            conn.execute("SELECT whatsapp_handler.campaign_control(%s, %s)", (args.campaign_id, action))
            print(f"campaign {args.campaign_id}: {_state(_results(conn, args.campaign_id))}")
            return 0
        if action == "show":
            results = _results(conn, args.campaign_id)
            if args.json:
                sys.stdout.write(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
            else:
                print(_show(results))
            return 0
        if action == "list":
            return _list(conn, args.limit)
        return _watch(conn, args.campaign_id, args.interval)


def _json_argument(option: str, text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CampaignUsageError(f"{option} is not JSON: {exc}") from None


def _create_request(args: argparse.Namespace) -> dict[str, Any]:
    request: dict[str, Any] = {
        "name": args.name,
        "channel_id": args.channel,
        "template": {"name": args.template, "language": args.language},
        "per_second": args.per_second,
        "daily_budget": args.daily_budget,
        "starts_at": args.starts_at,
        "components": _json_argument("--components", args.components),
    }
    # What is not given is left to campaign_create's defaults.
    return {key: value for key, value in request.items() if value is not None}


def _audience_filter(args: argparse.Namespace) -> dict[str, Any]:
    found = {
        "active_within": args.active_within,
        "language": args.language,
        "preferences": _json_argument("--preferences", args.preferences),
        "variables": args.variables,
    }
    return {key: value for key, value in found.items() if value is not None}


def _read_rows(file: str, format_: str | None) -> list[dict[str, Any]]:
    if file == "-":
        if format_ is None:
            raise CampaignUsageError("reading recipients from stdin (-) needs --format csv or --format json")
        name, data = "stdin", sys.stdin.buffer.read()
    else:
        name = file
        format_ = format_ or {".csv": "csv", ".json": "json"}.get(Path(file).suffix.lower())
        if format_ is None:
            raise CampaignUsageError(f"{file}: name a .csv or .json file, or pass --format csv or --format json")
        try:
            data = Path(file).read_bytes()
        except FileNotFoundError:
            raise CampaignUsageError(f"{file}: no such file") from None
        except OSError as exc:
            raise CampaignUsageError(f"{file}: cannot be read: {exc.strerror}") from None
    try:
        # utf-8-sig: a spreadsheet's CSV export often starts with a byte order mark.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CampaignUsageError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    try:
        return recipients.from_csv(text) if format_ == "csv" else recipients.from_json(text)
    except recipients.RecipientsError as exc:
        raise CampaignUsageError(f"{name}: {exc}") from None


def _uploaded(campaign_id: int, result: dict[str, Any]) -> str:
    last = result["first_position"] + result["rows"] - 1
    return (
        f"campaign {campaign_id}: rows {result['rows']}, accepted {result['accepted']}, duplicates "
        f"{result['duplicates']}, invalid {result['invalid']} (positions {result['first_position']}-{last})"
    )


def _results(conn: psycopg.Connection, campaign_id: int) -> dict[str, Any]:
    return conn.execute(RESULTS, (campaign_id,)).fetchone()["r"]


def _state(r: dict[str, Any]) -> str:
    """The campaign's state, and what it means for an operator when that is not plain."""
    state, reason, cid = r["state"], r["reason"], r["id"]
    if state == "paused" and reason == "operator":
        return f"paused by an operator (`whatsapp-handler campaign resume {cid}` goes on)"
    if state == "paused":
        return (f"paused by itself: {reason} (docs/runbook.md#campaign-paused says why; once fixed, "
                f"`whatsapp-handler campaign resume {cid}`)")  # fmt: skip
    if state == "budget_exhausted":
        return f"budget_exhausted: its {r['daily_budget']} messages of today are spent; it goes on after 00:00 UTC"
    if state == "scheduled":
        return f"scheduled for {r['starts_at']}"
    if state == "draft":
        return f"draft (upload recipients, then `whatsapp-handler campaign start {cid}`)"
    return f"{state} ({reason})" if reason else state


def _progress(r: dict[str, Any]) -> tuple[int, int, int]:
    """(done, of all, percent): done is every recipient no longer pending, floored so 100 % means all."""
    total = r["recipients"]
    done = total - r["states"].get("pending", 0)
    return done, total, done * 100 // total if total else 0


def _funnel(r: dict[str, Any], zeros: bool = False) -> list[tuple[str, int]]:
    states = r["states"]
    ordered = [*FUNNEL, *sorted(set(states) - set(FUNNEL))]
    return [(s, states.get(s, 0)) for s in ordered if zeros or states.get(s)]


def _show(r: dict[str, Any]) -> str:
    done, total, percent = _progress(r)
    lines = [
        f"campaign {r['id']} {r['name']}: {_state(r)}",
        f"  channel {r['channel_id']}; template {r['template']['name']} ({r['template']['language']}), "
        f"{r['category']}; {r['per_second']:g} a second"
        + (f"; daily budget {r['daily_budget']}" if r["daily_budget"] else "")
        + (f"; starts at {r['starts_at']}" if r["starts_at"] else ""),
        f"  {r['state']} since {datetime.fromisoformat(r['state_changed_at']).astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC",
        f"  recipients {total}, done {done} ({percent} %)",
    ]
    reasons: dict[str, list[str]] = {}
    for key, count in sorted(r["reasons"].items()):
        state, _, reason = key.partition(":")
        reasons.setdefault(state, []).append(f"{reason} {count}")
    for state, count in _funnel(r, zeros=True):
        why = f"  {', '.join(reasons[state])}" if state in reasons else ""
        lines.append(f"    {state:<10} {count:>8}{why}")
    return "\n".join(lines)


def _list(conn: psycopg.Connection, limit: int) -> int:
    rows = conn.execute(LIST, (limit,)).fetchall()
    if not rows:
        print("no campaigns (`whatsapp-handler campaign create ...` makes one)")
        return 0
    table = [("id", "name", "channel", "state", "recipients", "done", "by state")]
    for row in rows:
        r = row["r"]
        _, total, percent = _progress(r)
        state = r["state"] + (f" ({r['reason']})" if r["reason"] else "")
        by_state = ", ".join(f"{s} {n}" for s, n in _funnel(r)) or "-"
        table.append((str(r["id"]), r["name"], f"{r['channel_id']} {row['channel_name']}", state, str(total),
                      f"{percent} %", by_state))  # fmt: skip
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[-1])
    return 0


class _Rate:
    """Recipients done per second over the last RATE_WINDOW seconds of samples."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, at: float, done: int) -> float | None:
        self.samples.append((at, done))
        while len(self.samples) > 2 and at - self.samples[1][0] >= RATE_WINDOW:
            self.samples.popleft()
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else None


def _status(r: dict[str, Any], rate: float | None) -> str:
    done, total, _ = _progress(r)
    parts = [r["state"], ", ".join(f"{s} {n}" for s, n in _funnel(r)) or "no recipients"]
    if rate is not None:
        left = total - done
        eta = f", about {_duration(left / rate)} left" if rate > 0 and left and r["state"] == "running" else ""
        parts.append(f"{rate:.1f}/s{eta}")
    return "; ".join(parts)


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class _PlainView:
    """Not a terminal (a log, a pipe): a line at the start, on a change of state, every PLAIN_LINE_EVERY
    seconds, and at the end."""

    def __init__(self, interval: float) -> None:
        self.every = max(PLAIN_LINE_EVERY, interval)
        self.last: tuple[float, str] | None = None

    def __enter__(self) -> _PlainView:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def show(self, r: dict[str, Any], rate: float | None, now: float, last: bool) -> None:
        if self.last and not last and r["state"] == self.last[1] and now - self.last[0] < self.every:
            return
        done, total, percent = _progress(r)
        print(f"campaign {r['id']} {r['name']}: {percent} % ({done} of {total}) {_status(r, rate)}", flush=True)
        self.last = (now, r["state"])


class _TerminalView:
    """A terminal: one bar, redrawn in place."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[percent]:>3} % {task.completed:.0f}/{task.fields[of]}"),
            TextColumn("{task.fields[status]}"),
            console=console,
            auto_refresh=False,
        )
        self.task = self.progress.add_task("", total=None, percent=0, of=0, status="")

    def __enter__(self) -> _TerminalView:
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def show(self, r: dict[str, Any], rate: float | None, now: float, last: bool) -> None:
        done, total, percent = _progress(r)
        self.progress.update(self.task, description=f"campaign {r['id']} {r['name']}", completed=done,
                             total=total or None, percent=percent, of=total, status=_status(r, rate))  # fmt: skip
        if self.progress.live.is_started:
            self.progress.refresh()
        else:
            self.progress.start()  # drawn from the first look on, never empty


def _watch(conn: psycopg.Connection, campaign_id: int, interval: float) -> int:
    r = _results(conn, campaign_id)  # an unknown campaign is refused before anything is drawn
    console = Console()
    terminal = console.is_terminal and not console.is_dumb_terminal
    view = _TerminalView(console) if terminal else _PlainView(interval)
    rate = _Rate()
    try:
        with view:
            while True:
                now = time.monotonic()
                stopped = r["state"] in STOPPED
                view.show(r, rate.add(now, _progress(r)[0]), now, stopped)
                if stopped:
                    break
                time.sleep(interval)
                r = _results(conn, campaign_id)
    except KeyboardInterrupt:
        print(f"stopped watching campaign {campaign_id}; it is {r['state']} and goes on without the watch", flush=True)
        return EXIT_INTERRUPTED
    print(f"campaign {campaign_id} {r['name']}: {_state(r)}", flush=True)
    return 0 if r["state"] == "completed" else EXIT_STOPPED
