"""`whatsapp-handler dlq list | show | replay | purge`, run as an operator runs it, on dead
letters of the three queues made the way the service makes them."""

from __future__ import annotations

import json

import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p
from tests.test_cli import assert_one_line_error, run_cli

UNKNOWN_REF = "999999999"


@pytest.fixture
def cli(db_url, tmp_path):
    return lambda *args: run_cli("dlq", *args, url=db_url, cwd=tmp_path)


def inbound_letter(db, n: int = 0) -> int:
    """A Meta webhook for a number no channel has: stored raw and dead-lettered (WH003)."""
    body = p.meta_body(p.meta_value([p.meta_message("447700900501", f"wamid.dlq{n}")], phone_number_id=UNKNOWN_REF))
    db.execute("SELECT whatsapp_handler.ingest_meta(%s, 'c')", (Jsonb(body),))
    return db.execute("SELECT max(msg_id) AS m FROM pgmq.q_inbound_dlq").fetchone()["m"]


def outbound_letter(db, channel_id: int) -> int:
    db.execute("SELECT whatsapp_handler.ingest_meta(%s, 'c')", (Jsonb(p.meta_text("447700900502", "wamid.o1")),))
    msg = db.execute("SELECT msg_id FROM whatsapp_handler.worker_claim(1, 30)").fetchone()["msg_id"]
    return db.execute(
        "SELECT whatsapp_handler.worker_dead_letter(%s, 'provider_down', '{\"status\": 503}') AS d", (msg,)
    ).fetchone()["d"]


def outbox_letter(db) -> int:
    db.execute(
        "INSERT INTO pgmq.q_outbox_dlq (vt, message, headers) VALUES (now(), %s, %s)",
        (
            Jsonb({"event": {"type": "user.registered", "aggregate_id": 7}, "read_ct": 5}),
            Jsonb({"x-pgmq-group": "user:7"}),
        ),
    )
    return db.execute("SELECT max(msg_id) AS m FROM pgmq.q_outbox_dlq").fetchone()["m"]


def depth(db, queue: str) -> int:
    return db.execute(f"SELECT count(*) AS n FROM pgmq.q_{queue}").fetchone()["n"]


def test_list_counts_every_queue_then_shows_one(db, cli, channel_id):
    inbound_letter(db)
    outbound_letter(db, channel_id)
    summary = cli("list")
    assert summary.returncode == 0, summary.stderr
    rows = {line.split()[1]: line.split()[3] for line in summary.stdout.splitlines() if line.startswith("│")}
    assert rows == {"inbound": "1", "outbound": "1", "outbox": "0"}
    detail = cli("list", "inbound")
    assert "WH003" in detail.stdout and "meta webhook" in detail.stdout


def test_show_prints_the_whole_letter_as_json(db, cli, channel_id):
    msg_id = outbound_letter(db, channel_id)
    shown = cli("show", "outbound", str(msg_id))
    assert shown.returncode == 0, shown.stderr
    letter = json.loads(shown.stdout)
    assert letter["msg_id"] == msg_id and letter["message"]["reason"] == "provider_down"


def test_replay_inbound_after_the_cause_is_fixed(db, cli):
    msg_id = inbound_letter(db)
    db.execute("SELECT whatsapp_handler.add_channel('meta', %s, '+15550009999', 'late')", (UNKNOWN_REF,))
    replayed = cli("replay", "inbound", str(msg_id))
    assert replayed.returncode == 0, replayed.stderr
    assert "replay inbound: 1 asked; " in replayed.stdout and "redriven 1" in replayed.stdout
    assert depth(db, "inbound_dlq") == 0
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.messages WHERE direction = 'inbound'").fetchone()["n"]


def test_replay_outbound_and_outbox_put_the_letters_back(db, cli, channel_id):
    outbound_letter(db, channel_id)
    outbox_letter(db)
    before = depth(db, "outbound")
    assert "redriven 1" in cli("replay", "outbound", "--all").stdout
    assert depth(db, "outbound") == before + 1 and depth(db, "outbound_dlq") == 0
    events = depth(db, "outbox")
    assert "replayed 1" in cli("replay", "outbox", "--all").stdout
    assert depth(db, "outbox") == events + 1 and depth(db, "outbox_dlq") == 0


def test_purge_needs_yes_then_deletes_for_good(db, cli):
    letters = [inbound_letter(db, n) for n in range(3)]
    assert_one_line_error(cli("purge", "inbound", "--all"), 2)
    assert depth(db, "inbound_dlq") == 3
    purged = cli("purge", "inbound", str(letters[0]), "--yes")
    assert purged.returncode == 0 and "purged 1" in purged.stdout
    assert "purged 2" in cli("purge", "inbound", "--all", "--yes").stdout
    assert depth(db, "inbound_dlq") == 0


def test_a_long_replay_goes_in_chunks(db, cli, channel_id):
    for n in range(150):
        inbound_letter(db, n)
    db.execute("SELECT whatsapp_handler.add_channel('meta', %s, '+15550009999', 'late')", (UNKNOWN_REF,))
    replayed = cli("replay", "inbound", "--all")
    assert replayed.returncode == 0 and "150 asked; " in replayed.stdout and "redriven 150" in replayed.stdout
    assert depth(db, "inbound_dlq") == 0


@pytest.mark.parametrize(
    "args",
    [
        ("replay", "inbound"),
        ("replay", "inbound", "1", "--all"),
        ("show", "inbound", "12345"),
        ("purge", "outbox", "1"),
        ("history", "--limit", "0"),
        ("history", "--limit", "10001"),
    ],
)
def test_bad_requests_are_one_line_errors(cli, args):
    assert_one_line_error(cli(*args), 2)


@pytest.mark.parametrize("args", [("list", "telegram"), ("history", "--queue", "telegram")])
def test_an_unknown_queue_is_refused_by_the_parser(cli, args):
    result = cli(*args)
    assert result.returncode == 2 and "invalid choice" in result.stderr and len(result.stderr.splitlines()) == 1


def history_rows(result) -> list[list[str]]:
    lines = [line for line in result.stdout.splitlines() if line.startswith("│")]
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines]


def test_history_shows_what_replays_and_purges_did_newest_first(db, cli, channel_id):
    assert cli("history").stdout.strip() == "no dead-letter history"
    inbound = inbound_letter(db)
    db.execute("SELECT whatsapp_handler.add_channel('meta', %s, '+15550009999', 'late')", (UNKNOWN_REF,))
    assert cli("replay", "inbound", str(inbound)).returncode == 0
    outbox = [outbox_letter(db) for _ in range(2)]
    assert cli("purge", "outbox", *map(str, outbox), "424242", "--yes").returncode == 0
    me = db.execute("SELECT session_user AS u").fetchone()["u"]

    shown = cli("history")
    assert shown.returncode == 0, shown.stderr
    purge, replay = history_rows(shown)
    assert purge[2:] == [me, "purge", "outbox", " ".join(map(str, [*outbox, 424242])), "purged 2, not found 1"]
    assert replay[2:] == [me, "replay", "inbound", str(inbound), "redriven 1"]
    assert int(purge[0]) > int(replay[0])
    only = history_rows(cli("history", "--queue", "inbound", "--limit", "5"))
    assert [row[4] for row in only] == ["inbound"]
    assert len(history_rows(cli("history", "--limit", "1"))) == 1
