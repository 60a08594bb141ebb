"""Dead-letter history (issue 16): every re-drive, replay and purge of a dead letter leaves a row
naming the job or login, the letters and what became of each; parking leaves a row of its own; a
refused call leaves none; operators read it, no service role or analyst reads the table; the
retention job trims it; analytics.dead_letter_history_daily counts it per channel."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from kit import payloads as p
from tests.conftest import LOGIN_PASSWORD
from tests.helpers import raises_sqlstate
from tests.test_analytics import analyst  # noqa: F401 (a fixture)

UNKNOWN_REF = "999999999"
CRON_LOGIN = "whatsapp_handler_cron"


def history(db, queue: str | None = None) -> list[dict]:
    return db.execute(
        "SELECT * FROM whatsapp_handler.dead_letter_history WHERE %(q)s::text IS NULL OR queue = %(q)s ORDER BY id",
        {"q": queue},
    ).fetchall()


def setting(db, key: str, value: str) -> None:
    db.execute("UPDATE whatsapp_handler.settings SET value = %s::jsonb WHERE key = %s", (value, key))


def inbound_letter(db, n: int = 0) -> int:
    """A Meta webhook for a number no channel has: stored raw and dead-lettered (WH003)."""
    body = p.meta_body(p.meta_value([p.meta_message("447700900501", f"wamid.h{n}")], phone_number_id=UNKNOWN_REF))
    db.execute("SELECT whatsapp_handler.ingest_meta(%s, 'c')", (Jsonb(body),))
    return db.execute("SELECT max(msg_id) AS m FROM pgmq.q_inbound_dlq").fetchone()["m"]


def outbound_letter(db, wamid: str = "wamid.o1") -> int:
    """A reply the worker could not deliver while its provider was down."""
    db.execute("SELECT whatsapp_handler.ingest_meta(%s, 'c')", (Jsonb(p.meta_text("447700900502", wamid)),))
    msg = db.execute("SELECT msg_id FROM whatsapp_handler.worker_claim(1, 30)").fetchone()["msg_id"]
    return db.execute(
        "SELECT whatsapp_handler.worker_dead_letter(%s, 'provider_down', '{\"status\": 503}') AS d", (msg,)
    ).fetchone()["d"]


def outbox_letter(db, channel: int | None = None, user: int = 7) -> int:
    payload = {} if channel is None else {"channel_id": channel}
    event = {"type": "user.registered", "aggregate_id": user, "payload": payload}
    return db.execute(
        "INSERT INTO pgmq.q_outbox_dlq (vt, message, headers) VALUES (now(), %s, %s) RETURNING msg_id",
        (Jsonb({"event": event, "read_ct": 5}), Jsonb({"x-pgmq-group": f"user:{user}"})),
    ).fetchone()["msg_id"]


def as_cron(db, sql: str, params=None):
    """As pg_cron runs a job: a session of the login whatsapp_handler_cron."""
    db.execute(f"SET SESSION AUTHORIZATION {CRON_LOGIN}")
    try:
        return db.execute(sql, params).fetchone()
    finally:
        db.execute("RESET SESSION AUTHORIZATION")


@pytest.fixture
def login(cluster, db_name, db):
    """login(group or None) -> (name, connection) of a new login, dropped after the test."""
    made: list[tuple[str, psycopg.Connection]] = []

    def _make(group: str | None) -> tuple[str, psycopg.Connection]:
        name = f"wh_op_{uuid.uuid4().hex[:10]}"
        db.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{LOGIN_PASSWORD}'" + (f" IN ROLE {group}" if group else ""))
        conn = psycopg.connect(cluster.url(db_name, user=name, password=LOGIN_PASSWORD), autocommit=True,
                               row_factory=dict_row)  # fmt: skip
        made.append((name, conn))
        return name, conn

    yield _make
    for name, conn in made:
        conn.close()
        db.execute(f"DROP OWNED BY {name}")
        db.execute(f"DROP ROLE {name}")


def test_a_replay_leaves_its_history_row(db, channel_id):
    """An operator's replay of the outbox names the login, the letters put back and the one not found."""
    first, second = outbox_letter(db, channel_id), outbox_letter(db, None, user=8)
    replayed = db.execute("SELECT whatsapp_handler.outbox_dlq_replay(%s) AS n", ([first, second, 424242],)).fetchone()
    assert replayed["n"] == 2
    me = db.execute("SELECT session_user AS u").fetchone()["u"]
    [row] = history(db)
    assert (row["login"], row["job"], row["action"], row["queue"]) == (me, None, "replay", "outbox_dlq")
    assert row["msg_ids"] == [first, second, 424242]
    assert row["outcome"]["replayed"] == 2 and row["outcome"]["not_found"] == [424242]
    assert row["outcome"]["results"] == [
        {"msg_id": first, "result": "replayed", "channel_id": channel_id},
        {"msg_id": second, "result": "replayed", "channel_id": None},
    ]
    assert db.execute("SELECT count(*) AS n FROM pgmq.q_outbox_dlq").fetchone()["n"] == 0


def test_an_inbound_replay_keeps_the_report_and_deletes_no_letter_as_a_purge(db):
    msg_id = inbound_letter(db)
    db.execute("SELECT whatsapp_handler.add_channel('meta', %s, '+15550009999', 'late')", (UNKNOWN_REF,))
    report = db.execute("SELECT whatsapp_handler.redrive_inbound(1, %s) AS r", ([msg_id],)).fetchone()["r"]
    assert report["redriven"] == 1
    [row] = history(db)
    assert row["action"] == "replay" and row["queue"] == "inbound_dlq" and row["msg_ids"] == [msg_id]
    # The report the caller got is the one kept, whole.
    assert row["outcome"] == report
    # The re-driven letter's delete is part of the replay, not an operator's purge.
    assert [r["action"] for r in history(db)] == ["replay"]


def test_a_redrive_run_by_the_job_names_the_job_and_its_parking(db):
    """Run as pg_cron runs it (the jobs' login, no argument): each run that touched a letter is kept
    with the job's name; the letter given up on gets a park row pointing at its run."""
    setting(db, "redrive.inbound.backoff", '"0 seconds"')
    setting(db, "redrive.inbound.max_attempts", "2")
    msg_id = inbound_letter(db)

    first = as_cron(db, "SELECT whatsapp_handler.redrive_inbound() AS r")["r"]
    assert first["failed"] == 1
    second = as_cron(db, "SELECT whatsapp_handler.redrive_inbound() AS r")["r"]
    assert second["parked"] == 1
    # Nothing due any more (the letter is parked): a run that touched nothing leaves no row.
    assert as_cron(db, "SELECT whatsapp_handler.redrive_inbound() AS r")["r"]["results"] == []

    run1, run2, park = history(db)
    for row in (run1, run2, park):
        assert (row["login"], row["job"], row["queue"], row["msg_ids"]) == (CRON_LOGIN, "redrive_inbound",
                                                                             "inbound_dlq", [msg_id])  # fmt: skip
    assert (run1["action"], run1["outcome"]) == ("redrive", first)
    assert (run2["action"], run2["outcome"]) == ("redrive", second)
    assert park["action"] == "park" and park["outcome"]["run"] == run2["id"]
    assert [r["result"] for r in park["outcome"]["results"]] == ["parked"]
    assert run1["outcome"]["results"][0]["sqlstate"] == "WH003"


def test_an_outbound_redrive_by_the_job_names_its_channel_and_parks(db, channel_id):
    setting(db, "redrive.outbound.backoff", '"0 seconds"')
    setting(db, "redrive.outbound.max_redrives", "0")
    msg_id = outbound_letter(db)
    report = as_cron(db, "SELECT whatsapp_handler.redrive_outbound() AS r")["r"]
    assert report["parked"] == 1
    run, park = history(db)
    assert (run["job"], run["action"], park["action"]) == ("redrive_outbound", "redrive", "park")
    assert park["msg_ids"] == [msg_id]
    assert park["outcome"]["results"][0]["channel_id"] == channel_id


def test_a_purge_by_a_login_names_that_login_and_the_ids(db, login):
    """An operator who is a member of the owner group purges: the row names that login, the letters
    deleted and the one named that was not there."""
    name, conn = login("whatsapp_handler_owner")
    gone, kept = outbox_letter(db), outbox_letter(db, user=9)
    purge = "SELECT whatsapp_handler.dlq_purge('outbox_dlq', %s) AS n"
    assert conn.execute(purge, ([gone, 31337],)).fetchone()["n"] == 1
    [row] = history(db)
    assert (row["login"], row["job"], row["action"], row["queue"]) == (name, None, "purge", "outbox_dlq")
    assert row["msg_ids"] == [gone, 31337]
    assert row["outcome"]["purged"] == 1 and row["outcome"]["not_found"] == [31337]
    assert [r["msg_id"] for r in row["outcome"]["results"]] == [gone]
    assert db.execute("SELECT array_agg(msg_id) AS ids FROM pgmq.q_outbox_dlq").fetchone()["ids"] == [kept]
    # The operator reads it back through dlq_history, newest first.
    [seen] = conn.execute("SELECT * FROM whatsapp_handler.dlq_history('outbox_dlq', 10)").fetchall()
    assert seen["id"] == row["id"] and seen["login"] == name


def test_a_refused_call_leaves_no_row(db):
    letter = outbox_letter(db)
    with raises_sqlstate("WH024"):
        db.execute("SELECT whatsapp_handler.dlq_purge('no_such_dlq', %s)", ([letter],))
    with raises_sqlstate("WH024"):
        db.execute("SELECT whatsapp_handler.redrive_inbound(0)")
    with raises_sqlstate("WH024"):
        db.execute("SELECT whatsapp_handler.dlq_history('no_such_dlq')")
    with raises_sqlstate("WH024"):
        db.execute("SELECT whatsapp_handler.dlq_history(NULL, 0)")
    # An empty call names no letter.
    db.execute("SELECT whatsapp_handler.dlq_purge('outbox_dlq', '{}')")
    db.execute("SELECT whatsapp_handler.outbox_dlq_replay('{}')")
    assert history(db) == []
    assert db.execute("SELECT count(*) AS n FROM pgmq.q_outbox_dlq").fetchone()["n"] == 1


def test_who_reads_the_history(db, connect_as, login, channel_id):
    db.execute("SELECT whatsapp_handler.dlq_purge('outbox_dlq', %s)", ([outbox_letter(db, channel_id)],))
    # Operators: a member of the owner group (and the deploying superuser, the db fixture).
    _, owner = login("whatsapp_handler_owner")
    assert len(owner.execute("SELECT * FROM whatsapp_handler.dlq_history()").fetchall()) == 1
    assert len(owner.execute("SELECT * FROM whatsapp_handler.dead_letter_history").fetchall()) == 1
    # /metrics: the relay's login reads the last hour's counts, and nothing else of it.
    relay = connect_as("relay")
    assert relay.execute("SELECT * FROM whatsapp_handler.dead_letter_history_metrics()").fetchall() == [
        {"queue": "outbox_dlq", "action": "purge", "result": "purged", "letters": 1}
    ]
    _, nobody = login(None)
    for conn in (relay, connect_as("worker"), connect_as("consumer"), connect_as("analyst"), nobody):
        for sql in ("SELECT 1 FROM whatsapp_handler.dead_letter_history",
                    "SELECT 1 FROM whatsapp_handler.dlq_history()"):  # fmt: skip
            with raises_sqlstate("42501"):
                conn.execute(sql)
    for conn in (connect_as("worker"), connect_as("analyst"), nobody):
        with raises_sqlstate("42501"):
            conn.execute("SELECT 1 FROM whatsapp_handler.dead_letter_history_metrics()")
    # The jobs' login writes it through its job functions only.
    for sql in ("SELECT 1 FROM whatsapp_handler.dead_letter_history", "SELECT 1 FROM whatsapp_handler.dlq_history()",
                "SELECT whatsapp_handler._dead_letter_log('purge', 'outbox_dlq', 'x', '{}')"):  # fmt: skip
        with raises_sqlstate("42501"):
            as_cron(db, sql)


def test_retention_trims_the_history(db):
    first, second = outbox_letter(db), outbox_letter(db, user=9)
    for letter in (first, second):
        db.execute("SELECT whatsapp_handler.dlq_purge('outbox_dlq', %s)", ([letter],))
    old, young = history(db)
    db.execute("UPDATE whatsapp_handler.dead_letter_history SET created_at = now() - interval '91 days' WHERE id = %s",
               (old["id"],))  # fmt: skip
    report = as_cron(db, "SELECT whatsapp_handler.job_retention() AS r")["r"]
    assert report["dead_letter_history"] == 1
    assert [r["id"] for r in history(db)] == [young["id"]]
    # A null period keeps every row.
    setting(db, "retention.dead_letter_history", "null")
    db.execute("UPDATE whatsapp_handler.dead_letter_history SET created_at = now() - interval '5 years'")
    assert db.execute("SELECT whatsapp_handler.job_retention() AS r").fetchone()["r"]["dead_letter_history"] == 0
    assert len(history(db)) == 1


def test_the_analytics_view_counts_letters_per_channel_for_each_analyst(db, analyst, channel_id):  # noqa: F811
    add = "SELECT whatsapp_handler.add_channel('meta', '222', '+15550002222', 'Other') AS id"
    other = db.execute(add).fetchone()["id"]
    mine = [outbox_letter(db, channel_id, user=u) for u in (1, 2)]
    theirs = outbox_letter(db, other, user=3)
    unknown = outbox_letter(db, None, user=4)
    db.execute("SELECT whatsapp_handler.outbox_dlq_replay(%s)", ([mine[0]],))
    db.execute("SELECT whatsapp_handler.dlq_purge('outbox_dlq', %s)", ([mine[1], theirs, unknown],))
    view = "SELECT queue, action, result, channel_id, run_by, runs, letters FROM analytics.dead_letter_history_daily"
    order = " ORDER BY action, channel_id NULLS LAST"

    scoped = analyst([channel_id])
    assert scoped.execute(view + order).fetchall() == [
        {"queue": "outbox_dlq", "action": "purge", "result": "purged", "channel_id": channel_id, "run_by": "login",
         "runs": 1, "letters": 1},
        {"queue": "outbox_dlq", "action": "replay", "result": "replayed", "channel_id": channel_id,
         "run_by": "login", "runs": 1, "letters": 1},
    ]  # fmt: skip
    everyone = analyst(None, all_channels=True)
    purged = everyone.execute(view + " WHERE action = 'purge'" + order).fetchall()
    assert [(r["channel_id"], r["letters"]) for r in purged] == [(channel_id, 1), (other, 1), (None, 1)]
    day = everyone.execute("SELECT DISTINCT day FROM analytics.dead_letter_history_daily").fetchall()
    assert [r["day"] for r in day] == [db.execute("SELECT (now() AT TIME ZONE 'UTC')::date AS d").fetchone()["d"]]
    with raises_sqlstate("42501"):
        scoped.execute("SELECT 1 FROM whatsapp_handler.dead_letter_history")


def test_the_relay_reads_the_last_hour_for_metrics(db, connect_as):
    """What /metrics shows (app/metrics.py): the relay's login reads the last hour's letters by queue,
    action and result; an hour-old row no longer counts."""
    from prometheus_client import generate_latest

    from app.dlq import HISTORY_METRICS
    from app.metrics import _dead_letter_families, _Families

    setting(db, "redrive.inbound.backoff", '"0 seconds"')
    setting(db, "redrive.inbound.max_attempts", "1")
    inbound_letter(db)
    as_cron(db, "SELECT whatsapp_handler.redrive_inbound() AS r")
    db.execute("SELECT whatsapp_handler.dlq_purge('outbox_dlq', %s)", ([outbox_letter(db)],))
    db.execute("UPDATE whatsapp_handler.dead_letter_history SET created_at = now() - interval '61 minutes' "
               "WHERE queue = 'outbox_dlq'")  # fmt: skip
    rows = connect_as("relay").execute(HISTORY_METRICS).fetchall()
    text = generate_latest(_Families(_dead_letter_families([tuple(r.values()) for r in rows]))).decode()
    assert "whatsapp_dead_letter_history_up 1.0" in text
    found = {line for line in text.splitlines() if line.startswith("whatsapp_dead_letter_history_letters{")}
    assert found == {
        'whatsapp_dead_letter_history_letters{action="park",queue="inbound_dlq",result="parked"} 1.0',
        'whatsapp_dead_letter_history_letters{action="redrive",queue="inbound_dlq",result="parked"} 1.0',
    }
    assert "whatsapp_dead_letter_history_up 0.0" in generate_latest(_Families(_dead_letter_families(None))).decode()
