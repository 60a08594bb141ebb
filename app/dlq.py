"""`whatsapp-handler dlq`: the operators' view of the dead-letter queues.

    dlq list [QUEUE]                  counts per queue, or the dead letters of one
    dlq show QUEUE MSG_ID             one dead letter, whole
    dlq replay QUEUE (MSG_ID... | --all)
    dlq purge QUEUE (MSG_ID... | --all) --yes
    dlq history [--queue QUEUE] [--limit N]   what re-drives, replays and purges did, newest first

Every action calls SQL functions, none reads the queues' tables: list, show and purge
call dlq_counts, dlq_letters and dlq_purge (queue/dlq_operators); replays go through
the same SQL as the scheduled re-drive (redrive_inbound, redrive_outbound) or, for the
outbox, outbox_dlq_replay; forced by id, so parked letters and those waiting for their
backoff go too. Long runs show a progress bar. Each of those SQL calls leaves a row of the
dead-letter history (queue/dead_letter_history), which history reads through dlq_history.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

QUEUES = {"inbound": "inbound_dlq", "outbound": "outbound_dlq", "outbox": "outbox_dlq"}
REPLAY = {
    "inbound": "SELECT whatsapp_handler.redrive_inbound(%s, %s) AS r",
    "outbound": "SELECT whatsapp_handler.redrive_outbound(%s, %s) AS r",
    "outbox": "SELECT whatsapp_handler.outbox_dlq_replay(%s) AS r",
}
CHUNK = 100
# What the dead-letter history says of the last hour: letters by queue, action and result (/metrics, doctor).
HISTORY_METRICS = "SELECT queue, action, result, letters FROM whatsapp_handler.dead_letter_history_metrics()"
HISTORY_LIMIT = 10000


class DlqUsageError(Exception):
    """The command line names no letters, or an unknown queue."""


def add_parser(commands: Any) -> None:
    dlq = commands.add_parser("dlq", help="list, show, replay or purge dead letters (inbound, outbound, outbox)")
    actions = dlq.add_subparsers(dest="action", required=True, metavar="{list,show,replay,purge,history}")
    listing = actions.add_parser("list", help="counts per queue, or the dead letters of one queue")
    listing.add_argument("queue", nargs="?", choices=sorted(QUEUES))
    listing.add_argument("--limit", type=int, default=50, help="at most this many letters (default 50)")
    show = actions.add_parser("show", help="print one dead letter as JSON")
    show.add_argument("queue", choices=sorted(QUEUES))
    show.add_argument("msg_id", type=int)
    for name, text in (("replay", "process dead letters again (forced: backoff and parking do not apply)"),
                       ("purge", "delete dead letters for good")):  # fmt: skip
        action = actions.add_parser(name, help=text)
        action.add_argument("queue", choices=sorted(QUEUES))
        action.add_argument("msg_ids", nargs="*", type=int, metavar="MSG_ID")
        action.add_argument("--all", action="store_true", help="every letter of the queue")
        if name == "purge":
            action.add_argument("--yes", action="store_true", help="confirm: purged letters are gone")
    past = actions.add_parser("history", help="re-drives, replays, purges and parked letters, newest first")
    past.add_argument("--queue", choices=sorted(QUEUES), help="only this queue's")
    past.add_argument("--limit", type=int, default=20, help=f"at most this many rows, 1-{HISTORY_LIMIT} (default 20)")


def command(conninfo: str, args: argparse.Namespace) -> int:
    with psycopg.connect(conninfo, autocommit=True, row_factory=dict_row, connect_timeout=10) as conn:
        if args.action == "list":
            return _list(conn, args.queue, args.limit)
        if args.action == "show":
            return _show(conn, args.queue, args.msg_id)
        if args.action == "history":
            return _history(conn, args.queue, args.limit)
        if not args.msg_ids and not args.all:
            raise DlqUsageError(f"name the letters to {args.action} (MSG_ID ...) or pass --all")
        if args.msg_ids and args.all:
            raise DlqUsageError("pass MSG_IDs or --all, not both")
        if args.action == "purge" and not args.yes:
            raise DlqUsageError("purge needs --yes (purged letters cannot be replayed)")
        ids = args.msg_ids or _all_ids(conn, args.queue)
        return _in_chunks(conn, args.action, args.queue, ids)


def _age(then: datetime) -> str:
    seconds = int((datetime.now(UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _summary(queue: str, message: dict[str, Any]) -> tuple[str, str]:
    """(why, what) for a table row."""
    if queue == "inbound":
        why = message.get("sqlstate") or ""
        return why, f"{message.get('provider')} webhook {message.get('webhook_event_id')}: {message.get('error', '')}"
    if queue == "outbound":
        inner = message.get("message") or {}
        return message.get("reason", ""), f"{inner.get('kind')} to user {inner.get('user_id')}: {message.get('error')}"
    event = message.get("event") or {}
    return f"read {message.get('read_ct')}x", f"{event.get('type')} of user {event.get('aggregate_id')}"


def _list(conn: psycopg.Connection, queue: str | None, limit: int) -> int:
    console = Console(soft_wrap=True)
    if queue is None:
        table = Table("queue", "letters", "oldest", "parked")
        counts = {r["queue"]: r for r in conn.execute("SELECT * FROM whatsapp_handler.dlq_counts()").fetchall()}
        for name, pgmq_queue in QUEUES.items():
            row = counts[pgmq_queue]
            table.add_row(name, str(row["letters"]), _age(row["oldest"]) if row["oldest"] else "-", str(row["parked"]))
        console.print(table)
        return 0
    rows = conn.execute(
        "SELECT msg_id, enqueued_at, message FROM whatsapp_handler.dlq_letters(%s, %s)", (QUEUES[queue], limit)
    ).fetchall()
    table = Table("msg_id", "age", "why", "what", "parked", title=f"{queue} dead letters")
    for row in rows:
        why, what = _summary(queue, row["message"])
        table.add_row(str(row["msg_id"]), _age(row["enqueued_at"]), why, what[:100],
                      "yes" if row["message"].get("parked") else "")  # fmt: skip
    console.print(table if rows else f"no {queue} dead letters")
    return 0


def _show(conn: psycopg.Connection, queue: str, msg_id: int) -> int:
    row = conn.execute(
        "SELECT msg_id, read_ct, enqueued_at, vt, message, headers FROM whatsapp_handler.dlq_letters(%s, 1, %s)",
        (QUEUES[queue], msg_id),
    ).fetchone()
    if row is None:
        raise DlqUsageError(f"no {queue} dead letter {msg_id} (see `whatsapp-handler dlq list {queue}`)")
    sys.stdout.write(json.dumps(row, default=str, indent=2, ensure_ascii=False) + "\n")
    return 0


def _ids(ids: list[int], shown: int = 5) -> str:
    text = " ".join(str(i) for i in ids[:shown])
    return text + (f" (+{len(ids) - shown})" if len(ids) > shown else "")


def _results(outcome: dict[str, Any]) -> str:
    """Letters per result (redriven 3, failed 1), and those named but not found."""
    counts: dict[str, int] = {}
    for result in outcome.get("results") or ():
        counts[str(result.get("result"))] = counts.get(str(result.get("result")), 0) + 1
    text = ", ".join(f"{key} {count}" for key, count in sorted(counts.items()))
    if outcome.get("not_found"):
        text += (", " if text else "") + f"not found {len(outcome['not_found'])}"
    if "run" in outcome:
        text += f" (run {outcome['run']})"
    return text or "-"


def _history(conn: psycopg.Connection, queue: str | None, limit: int) -> int:
    if not 1 <= limit <= HISTORY_LIMIT:
        raise DlqUsageError(f"--limit is 1 to {HISTORY_LIMIT}, not {limit}")
    rows = conn.execute(
        "SELECT id, created_at, login, job, action, queue, msg_ids, outcome FROM whatsapp_handler.dlq_history(%s, %s)",
        (QUEUES[queue] if queue else None, limit),
    ).fetchall()
    if not rows:
        print(f"no dead-letter history{f' of {queue}' if queue else ''}")
        return 0
    table = Table("id", "age", "by", "action", "queue", "msg_ids", "results", title="dead-letter history")
    for row in rows:
        by = f"job {row['job']}" if row["job"] else row["login"]
        table.add_row(str(row["id"]), _age(row["created_at"]), by, row["action"], row["queue"].removesuffix("_dlq"),
                      _ids(row["msg_ids"]), _results(row["outcome"]))  # fmt: skip
    Console(soft_wrap=True).print(table)
    return 0


def _all_ids(conn: psycopg.Connection, queue: str) -> list[int]:
    rows = conn.execute("SELECT msg_id FROM whatsapp_handler.dlq_letters(%s)", (QUEUES[queue],)).fetchall()
    return [r["msg_id"] for r in rows]


def _in_chunks(conn: psycopg.Connection, action: str, queue: str, ids: list[int]) -> int:
    done: dict[str, int] = {}
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=len(ids) <= CHUNK) as progress:
        task = progress.add_task(f"{action} {queue}", total=len(ids))
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            for key, count in _apply(conn, action, queue, chunk).items():
                done[key] = done.get(key, 0) + count
            progress.advance(task, len(chunk))
    summary = ", ".join(f"{key} {count}" for key, count in sorted(done.items())) or "nothing"
    print(f"{action} {queue}: {len(ids)} asked; {summary}")
    return 0


def _apply(conn: psycopg.Connection, action: str, queue: str, ids: list[int]) -> dict[str, int]:
    if action == "purge":
        purged = conn.execute("SELECT whatsapp_handler.dlq_purge(%s, %s::bigint[]) AS n", (QUEUES[queue], ids))
        return {"purged": purged.fetchone()["n"]}
    if queue == "outbox":
        return {"replayed": conn.execute(REPLAY[queue], (ids,)).fetchone()["r"]}
    result = conn.execute(REPLAY[queue], (len(ids), ids)).fetchone()["r"] or {}
    counts = {key: value for key, value in result.items() if isinstance(value, int)}
    if result.get("not_found"):
        counts["not found or locked"] = len(result["not_found"])
    return counts
