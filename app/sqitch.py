"""A thin wrapper around the sqitch CLI: the target comes from the settings, and
pgmq's SQL-only install is loaded first where the server lacks the extension. Also the one
reader of sqitch.plan, for the probes, the doctor and the tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote

from psycopg.conninfo import conninfo_to_dict

from app.pgmq_install import ensure_pgmq
from app.settings import PROJECT_DIR

COMMANDS = ("deploy", "revert", "verify", "status")


class Change(NamedTuple):
    """A change of the plan. A change reworked after a release has one name for two versions:
    the time each was planned (sqitch.changes.planned_at) tells them apart."""

    name: str
    planned_at: str  # as the plan writes it, 2026-11-30T20:41:00Z (UTC)

    def __str__(self) -> str:
        return self.name


# name, then its dependencies in brackets (which hold spaces), then the time it was planned.
_CHANGE_LINE = re.compile(r"^(\S+)(?:\s+\[[^\]]*\])?\s+(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\s")


def plan_changes(plan: Path) -> list[Change]:
    """The plan's changes in deploy order. Pragmas (%), comments (#) and tags (@) are skipped;
    a change reworked after a tag stands in the plan once per version
    (`otp/request_otp [otp/request_otp@v1.0.0] 2026-12-02T...`), each with its own time."""
    changes = []
    for line in plan.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith(("%", "#", "@")):
            continue
        match = _CHANGE_LINE.match(line)
        if match is None:
            raise ValueError(f"{plan}: not a change line: {line[:80]!r}")
        changes.append(Change(*match.groups()))
    return changes


def last_change(plan: Path) -> Change:
    """The plan's last change: the one this build expects deployed."""
    changes = plan_changes(plan)
    if not changes:
        raise ValueError(f"{plan} has no changes")
    return changes[-1]


class SqitchError(RuntimeError):
    """sqitch is missing or exited non-zero."""


def target(conninfo: str) -> tuple[str, dict[str, str]]:
    """A sqitch target URI without the password, and the environment that carries it."""
    parts = conninfo_to_dict(conninfo)
    user = quote(str(parts.get("user", "postgres")), safe="")
    host = parts.get("host", "127.0.0.1")
    port = parts.get("port", "5432")
    dbname = quote(str(parts.get("dbname", "postgres")), safe="")
    env = {}
    if parts.get("password"):
        env["SQITCH_PASSWORD"] = str(parts["password"])
    return f"db:pg://{user}@{host}:{port}/{dbname}", env


def run(
    command: str, conninfo: str, *args: str, capture: bool = False, project: Path = PROJECT_DIR
) -> subprocess.CompletedProcess[str]:
    """sqitch <command> on a database, with the plan of project (this checkout unless told)."""
    if command not in COMMANDS:
        raise SqitchError(f"unknown sqitch command {command!r}; use one of {', '.join(COMMANDS)}")
    exe = shutil.which("sqitch")
    if exe is None:
        raise SqitchError("sqitch is not installed: apt-get install sqitch libdbd-pg-perl (bin/setup does it)")
    if command == "deploy":
        ensure_pgmq(conninfo)
    uri, extra_env = target(conninfo)
    env = {**os.environ, **extra_env}
    # sqitch records who deployed; a CI box may have no name configured.
    env.setdefault("SQITCH_FULLNAME", "whatsapp-handler")
    env.setdefault("SQITCH_EMAIL", "whatsapp-handler@localhost")
    cmd = [exe, command, *args, uri]
    if command == "revert" and "-y" not in args:
        cmd.insert(2, "-y")
    result = subprocess.run(cmd, cwd=project, env=env, text=True, capture_output=capture, check=False)
    if result.returncode != 0:
        raise SqitchError(f"sqitch {command} failed (exit {result.returncode}){_first_error(result.stderr)}")
    return result


def _first_error(stderr: str | None) -> str:
    """The line that says what went wrong (psql's ERROR, or sqitch's last word)."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR:" in line or "HINT:" in line]
    picked = errors or lines[-1:]
    return ": " + " ".join(picked) if picked else ""
