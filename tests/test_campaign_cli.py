"""`whatsapp-handler campaign ...`, run as an operator runs it against the test database: a campaign made,
filled from a CSV, started and watched to completion while the test dispatches it; the watch on a terminal,
stopped by a pause or by Ctrl-C; and each bad input refused in one line that names the row or the state,
with nothing stored."""

from __future__ import annotations

import fcntl
import os
import pty
import queue
import signal
import struct
import subprocess
import termios
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p
from tests.test_cli import CLI, assert_one_line_error, run_cli

TEMPLATE = "timetable_change"
LINE_WAIT = 60  # seconds: generous for a loaded machine, never a measure


@pytest.fixture
def channel(db: psycopg.Connection) -> int:
    channel = db.execute("SELECT whatsapp_handler.add_channel('meta', %s, '+15550001111', 'Rail', 'rail') AS id",
                         (p.META_PHONE_NUMBER_ID,)).fetchone()["id"]  # fmt: skip
    template(db, channel, "approved")
    return channel


def template(db: psycopg.Connection, channel: int, status: str) -> None:
    db.execute(
        "SELECT whatsapp_handler.template_upsert(%s, %s, 'en_GB', 'utility', %s, %s, 'HX0123')",
        (channel, TEMPLATE, status, Jsonb([{"type": "BODY", "text": "Hi {{1}}, train {{2}} moved"}])),
    )


@pytest.fixture
def cli(db_url: str, tmp_path: Path):
    return lambda *args, **kw: run_cli("campaign", *args, url=db_url, cwd=tmp_path, **kw)


def phone(n: int) -> str:
    return f"+4477009{n:05d}"


def csv_file(tmp_path: Path, *lines: str, name: str = "people.csv") -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def create(cli, channel: int, *extra: str) -> int:
    made = cli("create", "--channel", str(channel), "--template", TEMPLATE, "--language", "en_GB",
               "--name", "timetable", *extra)  # fmt: skip
    assert made.returncode == 0, made.stderr
    return int(made.stdout)


def filled(cli, channel: int, tmp_path: Path, *numbers: int) -> int:
    campaign = create(cli, channel)
    people = csv_file(tmp_path, "phone,name,train", *(f"{phone(n)},P{n},IC {n}" for n in numbers))
    assert cli("upload", str(campaign), people).returncode == 0
    return campaign


def recipients(db: psycopg.Connection) -> list[tuple[str, str, str | None]]:
    rows = db.execute("SELECT phone, state, reason FROM whatsapp_handler.campaign_recipients ORDER BY position")
    return [(r["phone"], r["state"], r["reason"]) for r in rows]


def dispatch(db: psycopg.Connection) -> int:
    return db.execute("SELECT whatsapp_handler.worker_campaigns(50) AS n").fetchone()["n"]


def environment(db_url: str) -> dict[str, str]:
    """run_cli's environment, for the runs it cannot make (in the background, with stdin)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHATSAPP_HANDLER_")}
    return {**env, "WHATSAPP_HANDLER_DATABASE_URL": db_url}


class Watch:
    """`campaign watch` running in the background, its output read line by line (or chunk by chunk on a pty)."""

    def __init__(self, db_url: str, cwd: Path, campaign: int, terminal: bool = False) -> None:
        env = environment(db_url)
        args = [str(CLI), "campaign", "watch", str(campaign), "--interval", "0.2"]
        self.out: queue.Queue[str | None] = queue.Queue()
        self.seen = ""
        if terminal:
            leader, follower = pty.openpty()
            fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
            env["TERM"] = "xterm-256color"
            self.proc = subprocess.Popen(args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=follower,
                                         stderr=subprocess.PIPE, text=True)  # fmt: skip
            os.close(follower)
            threading.Thread(target=self._read_pty, args=(leader,), daemon=True).start()
        else:
            self.proc = subprocess.Popen(args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)  # fmt: skip
            threading.Thread(target=self._read_pipe, daemon=True).start()

    def _read_pipe(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.out.put(line)
        self.out.put(None)

    def _read_pty(self, fd: int) -> None:
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            if not chunk:
                os.close(fd)
                self.out.put(None)
                return
            self.out.put(chunk.decode("utf-8", "replace"))

    def until(self, text: str) -> str:
        """The output so far, once it holds text."""
        while text not in self.seen:
            chunk = self.out.get(timeout=LINE_WAIT)
            if chunk is None:
                raise AssertionError(f"watch ended without {text!r}: {self.seen!r} {self.proc.stderr.read()!r}")
            self.seen += chunk
        return self.seen

    def end(self) -> tuple[int, str, str]:
        code = self.proc.wait(timeout=LINE_WAIT)
        while (chunk := self.out.get(timeout=LINE_WAIT)) is not None:
            self.seen += chunk
        assert self.proc.stderr is not None
        return code, self.seen, self.proc.stderr.read()


@pytest.fixture
def watches() -> Iterator[list[Watch]]:
    started: list[Watch] = []
    yield started
    for watch in started:
        if watch.proc.poll() is None:
            watch.proc.kill()
            watch.proc.wait()


def test_a_campaign_is_made_filled_started_and_watched_to_completion(db, db_url, cli, channel, tmp_path, watches):
    campaign = create(cli, channel, "--per-second", "5", "--daily-budget", "100")
    people = csv_file(tmp_path, "phone,name,train", f"{phone(1)},Ana,IC 1", f"{phone(2)},Bo,IC 2",
                      f"{phone(1)},Ana again,IC 1", f"{phone(3)},Cy,IC 3")  # fmt: skip
    uploaded = cli("upload", str(campaign), people)
    assert uploaded.returncode == 0, uploaded.stderr
    assert uploaded.stdout.strip() == (
        f"campaign {campaign}: rows 4, accepted 3, duplicates 1, invalid 0 (positions 1-4)")  # fmt: skip
    assert "draft" in cli("show", str(campaign)).stdout
    started = cli("start", str(campaign))
    assert (started.returncode, started.stdout.strip()) == (0, f"campaign {campaign}: running"), started.stderr

    watch = Watch(db_url, tmp_path, campaign)
    watches.append(watch)
    # Nothing dispatched yet: the watch shows the campaign running at 25 % (the duplicate is done).
    assert f"campaign {campaign} timetable: 25 % (1 of 4) running; pending 3, skipped 1" in watch.until("\n")
    while watch.proc.poll() is None and dispatch(db) == 0:
        pass
    code, out, err = watch.end()
    assert (code, err) == (0, ""), out
    last_bar, final = out.splitlines()[-2:]
    assert last_bar.startswith(f"campaign {campaign} timetable: 100 % (4 of 4) completed; queued 3, skipped 1")
    assert final == f"campaign {campaign} timetable: completed"
    assert recipients(db) == [(phone(1), "queued", None), (phone(2), "queued", None),
                              (phone(1), "skipped", "duplicate"), (phone(3), "queued", None)]  # fmt: skip

    shown = cli("show", str(campaign)).stdout
    assert f"campaign {campaign} timetable: completed" in shown and "  completed since " in shown
    assert "template timetable_change (en_GB), utility; 5 a second; daily budget 100" in shown
    assert "recipients 4, done 4 (100 %)" in shown
    assert [line.split() for line in shown.splitlines() if line.startswith("    ")] == [
        ["pending", "0"], ["queued", "3"], ["sent", "0"], ["delivered", "0"], ["read", "0"], ["failed", "0"],
        ["skipped", "1", "duplicate", "1"]]  # fmt: skip
    listed = cli("list").stdout.splitlines()
    assert listed[0].split() == ["id", "name", "channel", "state", "recipients", "done", "by", "state"]
    assert listed[1].split() == [str(campaign), "timetable", str(channel), "Rail", "completed", "4", "100", "%",
                                 "queued", "3,", "skipped", "1"]  # fmt: skip


def test_watch_on_a_terminal_redraws_the_bar_in_place(db, db_url, cli, channel, tmp_path, watches):
    campaign = filled(cli, channel, tmp_path, 1, 2)
    cli("start", str(campaign))
    watch = Watch(db_url, tmp_path, campaign, terminal=True)
    watches.append(watch)
    watch.until("0/2")
    while watch.proc.poll() is None and dispatch(db) == 0:
        pass
    code, out, err = watch.end()
    assert (code, err) == (0, ""), out
    # A terminal gets the bar redrawn over itself (carriage return, erase line), not a line per look.
    assert "\r\x1b[2K" in out and "\n" not in out.split("0/2")[0], repr(out)
    assert "100 % 2/2" in out and f"campaign {campaign} timetable: completed" in out


def test_watch_ends_when_the_campaign_pauses_by_itself_saying_why(db, cli, channel, tmp_path):
    campaign = filled(cli, channel, tmp_path, 1, 2)
    cli("start", str(campaign))
    template(db, channel, "paused")
    assert dispatch(db) == 0
    watched = cli("watch", str(campaign), "--interval", "0.2")
    assert watched.returncode == 3, watched
    assert watched.stdout.splitlines()[-1] == (
        f"campaign {campaign} timetable: paused by itself: template_paused (docs/runbook.md#campaign-paused says why; "
        f"once fixed, `whatsapp-handler campaign resume {campaign}`)")  # fmt: skip
    assert "0 % (0 of 2) paused; pending 2" in watched.stdout
    # Approved again, an operator resumes it where it stopped.
    template(db, channel, "approved")
    resumed = cli("resume", str(campaign))
    assert resumed.stdout.strip() == f"campaign {campaign}: running"
    paused = cli("pause", str(campaign)).stdout.strip()
    assert (
        paused == f"campaign {campaign}: paused by an operator (`whatsapp-handler campaign resume {campaign}` goes on)"
    )
    assert cli("cancel", str(campaign)).stdout.strip() == f"campaign {campaign}: cancelled (operator)"
    assert [r[1:] for r in recipients(db)] == [("skipped", "cancelled"), ("skipped", "cancelled")]


def test_ctrl_c_stops_the_watch_not_the_campaign(db, db_url, cli, channel, tmp_path, watches):
    campaign = filled(cli, channel, tmp_path, 1)
    cli("start", str(campaign))
    watch = Watch(db_url, tmp_path, campaign)
    watches.append(watch)
    watch.until("\n")
    watch.proc.send_signal(signal.SIGINT)
    code, out, err = watch.end()
    assert code == 130, (out, err)
    assert err == "" and "Traceback" not in out
    assert out.splitlines()[-1] == f"stopped watching campaign {campaign}; it is running and goes on without the watch"
    assert db.execute("SELECT state FROM whatsapp_handler.campaigns").fetchone()["state"] == "running"


def test_audience_adds_the_people_the_channel_knows_who_match(db, cli, channel):
    campaign = create(cli, channel)
    # Two people write in (each has an open conversation on the channel); one prefers Portuguese.
    for n in (6, 7):
        db.execute("SELECT whatsapp_handler.ingest_meta(%s, 'c')", (Jsonb(p.meta_text(phone(n)[1:], f"wamid.a{n}")),))
    db.execute("SELECT whatsapp_handler.set_user_preferences((SELECT id FROM whatsapp_handler.users WHERE phone = %s),"
               " %s)", (phone(7), Jsonb({"language": "pt-BR"})))  # fmt: skip
    chosen = cli("audience", str(campaign), "--active-within", "30 days", "--language", "pt-BR",
                 "--variable", "all", "--variable", "IC 9")  # fmt: skip
    assert chosen.stdout.strip() == (
        f"campaign {campaign}: rows 1, accepted 1, duplicates 0, invalid 0 (positions 1-1)"), chosen.stderr  # fmt: skip
    assert recipients(db) == [(phone(7), "pending", None)]
    nobody = cli("audience", str(campaign), "--language", "de", "--variable", "a", "--variable", "b")
    assert "no one the channel knows matches the filter" in assert_one_line_error(nobody, 1)


def test_a_list_is_read_from_stdin(db, db_url, cli, channel, tmp_path):
    campaign = create(cli, channel)
    piped = subprocess.run(
        [str(CLI), "campaign", "upload", str(campaign), "-", "--format", "json"],
        input=f'[{{"phone": "{phone(8)}", "variables": ["Di", "IC 8"]}}]',
        env=environment(db_url), cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "rows 1, accepted 1" in piped.stdout, piped.stderr
    assert recipients(db) == [(phone(8), "pending", None)]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (("phone,name,train", f"{phone(1)},A,IC 1", f"{phone(2)},B"),
         "people.csv: row 2 (line 3) has 2 fields, the header 3"),
        (("phone,name,train", f"{phone(1)},A,IC 1", "07700900123,B,IC 2"),
         "row 2 of the upload is not a phone in E.164: 1 invalid rows, nothing stored"),
        (("phone,name", f"{phone(1)},A"),
         "row 1 of the upload is not 2 variables of 1-1024 characters: 1 invalid rows, nothing stored"),
        (("phone,name,train", f"{phone(1)},A,"),
         "row 1 of the upload is not 2 variables of 1-1024 characters"),
        (("name,phone", f"A,{phone(1)}"), "people.csv: the first line is a header whose first field is phone"),
    ],
)  # fmt: skip
def test_a_bad_list_is_refused_naming_the_row_and_nothing_is_stored(db, cli, channel, tmp_path, lines, expected):
    campaign = create(cli, channel)
    refused = cli("upload", str(campaign), csv_file(tmp_path, *lines))
    assert expected in assert_one_line_error(refused, refused.returncode)
    assert refused.returncode in (1, 2)
    assert recipients(db) == []


def test_project_errors_print_their_message_and_hint(db, cli, channel, tmp_path):
    unknown = assert_one_line_error(cli("show", "999"), 1)
    assert "unknown campaign 999" in unknown and "Use the id campaign_create returned" in unknown
    campaign = filled(cli, channel, tmp_path, 1)
    cli("start", str(campaign))
    again = assert_one_line_error(cli("upload", str(campaign), csv_file(tmp_path, "phone,a,b", f"{phone(2)},x,y")), 1)
    assert f"campaign {campaign} is running: it cannot take more recipients" in again
    cli("cancel", str(campaign))
    restart = assert_one_line_error(cli("start", str(campaign)), 1)
    assert f"campaign {campaign} is cancelled: it cannot start" in restart
    assert "A cancelled campaign stays cancelled: create a new one." in restart
    assert recipients(db) == [(phone(1), "skipped", "cancelled")]
    too_fast = assert_one_line_error(cli("create", "--channel", str(channel), "--template", TEMPLATE, "--language",
                                         "en_GB", "--name", "x", "--per-second", "500"), 1)  # fmt: skip
    assert "per_second" in too_fast
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.campaigns").fetchone()["n"] == 1


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("upload", "1", "missing.csv"), "missing.csv: no such file"),
        (("upload", "1", "people.txt"), "people.txt: name a .csv or .json file, or pass --format"),
        (("upload", "1", "-"), "reading recipients from stdin (-) needs --format"),
        (("create", "--channel", "1", "--template", "t", "--language", "en", "--name", "n", "--components", "{x"),
         "--components is not JSON"),
        (("watch", "1", "--interval", "0"), "must be above 0"),
        (("start",), "the following arguments are required: ID"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_line_and_exit_2(cli, args: tuple[str, ...], expected: str) -> None:
    assert expected in assert_one_line_error(cli(*args), 2)


def test_a_recipient_list_with_a_byte_order_mark_is_read(db, cli, channel, tmp_path) -> None:
    campaign = create(cli, channel)
    path = tmp_path / "export.csv"
    path.write_bytes(f"\ufeffphone,name,train\r\n{phone(1)},A,IC 1\r\n".encode())
    assert "accepted 1" in cli("upload", str(campaign), str(path)).stdout
