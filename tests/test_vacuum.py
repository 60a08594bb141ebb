"""Autovacuum per table (core/autovacuum, queue/autovacuum): the settings are on the hot tables'
partitions and on every queue's tables after deploy, a new partition gets them, a revert resets them;
vacuum_metrics() reports dead rows and bloat to the relay's login only; doctor's vacuum lines."""

from __future__ import annotations

import os
import subprocess

import psycopg
import pytest

from app import doctor
from app.metrics import _vacuum_families
from app.settings import PROJECT_DIR

# What each kind of table must hold (a subset: the deploy's functions are the one home of the values).
QUEUE = ["autovacuum_vacuum_scale_factor=0", "autovacuum_vacuum_threshold=1000", "autovacuum_vacuum_cost_delay=0"]
ARCHIVE = ["autovacuum_vacuum_insert_scale_factor=0.02"]
HOT = {"users": ["autovacuum_vacuum_scale_factor=0.02"], "pacing_pairs": ["autovacuum_vacuum_scale_factor=0.02"],
       "pacing_channels": ["autovacuum_vacuum_cost_delay=0"]}  # fmt: skip
# The changes of this part, in plan order; reverted in the opposite one.
CHANGES = ("core/autovacuum", "core/partitions", "queue/autovacuum", "core/vacuum_metrics")


def reloptions(db: psycopg.Connection, table: str) -> list[str]:
    row = db.execute("SELECT coalesce(reloptions, '{}') AS o FROM pg_class WHERE oid = %s::regclass", (table,))
    return row.fetchone()["o"]


def partitions(db: psycopg.Connection, parent: str) -> list[str]:
    rows = db.execute("SELECT relid::regclass::text AS t FROM pg_partition_tree(%s::regclass) WHERE isleaf", (parent,))
    return [r["t"] for r in rows]


def queues(db: psycopg.Connection) -> list[str]:
    return [r["queue_name"] for r in db.execute("SELECT queue_name FROM pgmq.meta ORDER BY 1")]


def test_every_queue_and_hot_table_has_its_settings_after_deploy(db: psycopg.Connection) -> None:
    # Every queue pgmq knows: a queue change added later without _queue_autovacuum fails here.
    names = queues(db)
    assert {"outbox", "outbound", "outbox_dlq", "outbound_dlq", "inbound_dlq"} <= set(names)
    for q in names:
        assert set(QUEUE) <= set(reloptions(db, f"pgmq.q_{q}")), q
        assert set(ARCHIVE) <= set(reloptions(db, f"pgmq.a_{q}")), q
    for table, options in HOT.items():
        assert set(options) <= set(reloptions(db, f"whatsapp_handler.{table}")), table
    # A partitioned table holds none; each of its partitions, the default one included, does.
    assert reloptions(db, "whatsapp_handler.messages") == []
    leaves = partitions(db, "whatsapp_handler.messages")
    assert "whatsapp_handler.messages_default" in leaves and len(leaves) >= 2
    for leaf in leaves:
        assert "autovacuum_vacuum_scale_factor=0.02" in reloptions(db, leaf), leaf
    # A table that is not hot keeps the server's settings.
    assert reloptions(db, "whatsapp_handler.channels") == []
    for leaf in partitions(db, "whatsapp_handler.webhook_events"):
        assert reloptions(db, leaf) == [], leaf


def test_a_new_partition_gets_its_tables_settings(db: psycopg.Connection) -> None:
    made = db.execute(
        "SELECT whatsapp_handler.create_partition('whatsapp_handler.messages', '2031-01-01', '2031-02-01')::text AS t"
    ).fetchone()["t"]
    assert made == "whatsapp_handler.messages_p20310101"
    assert set(reloptions(db, made)) == set(reloptions(db, "whatsapp_handler.messages_default"))
    assert "autovacuum_vacuum_insert_scale_factor=0.05" in reloptions(db, made)
    # The maintenance job makes its partitions through the same function.
    db.execute("UPDATE whatsapp_handler.settings SET value = '4' WHERE key = 'partitions.messages.ahead'")
    created = db.execute("SELECT whatsapp_handler.job_partitions() -> 'messages' -> 'created' AS c").fetchone()["c"]
    assert created, "the job made no new partition"
    for name in created:
        assert "autovacuum_vacuum_scale_factor=0.02" in reloptions(db, f"whatsapp_handler.{name}"), name
    # A partition of a table that is not hot gets none.
    other = db.execute(
        "SELECT whatsapp_handler.create_partition('whatsapp_handler.webhook_events', '2031-01-01', '2031-01-02')::text"
        " AS t"
    ).fetchone()["t"]
    assert reloptions(db, other) == []


def _psql(cluster, db_name: str, script: str) -> None:
    result = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres",
         "-d", db_name, "-f", script],
        cwd=PROJECT_DIR, env={**os.environ, "PGPASSWORD": cluster.password()}, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_revert_puts_the_servers_defaults_back(db: psycopg.Connection, cluster, db_name: str) -> None:
    db.execute("ALTER TABLE whatsapp_handler.users SET (fillfactor = 90)")  # a DBA's own: kept
    for change in reversed(CHANGES):
        _psql(cluster, db_name, f"revert/{change}.sql")
    for q in queues(db):
        assert reloptions(db, f"pgmq.q_{q}") == [] and reloptions(db, f"pgmq.a_{q}") == [], q
    assert reloptions(db, "whatsapp_handler.users") == ["fillfactor=90"]
    for table in ("pacing_pairs", "pacing_channels"):
        assert reloptions(db, f"whatsapp_handler.{table}") == [], table
    for leaf in partitions(db, "whatsapp_handler.messages"):
        assert reloptions(db, leaf) == [], leaf
    # create_partition is the released one again: a new partition gets nothing.
    made = db.execute(
        "SELECT whatsapp_handler.create_partition('whatsapp_handler.messages', '2031-01-01', '2031-02-01')::text AS t"
    ).fetchone()["t"]
    assert reloptions(db, made) == []
    assert db.execute("SELECT to_regproc('whatsapp_handler.vacuum_metrics') IS NULL AS gone").fetchone()["gone"]


@pytest.mark.parametrize("role", ["worker", "consumer", "analyst"])
def test_vacuum_metrics_is_the_relays_only(connect_as, role: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        connect_as(role).execute("SELECT * FROM whatsapp_handler.vacuum_metrics()")


def _metrics(conn: psycopg.Connection) -> dict[str, dict]:
    rows = conn.execute("SELECT * FROM whatsapp_handler.vacuum_metrics()").fetchall()
    return {r["table_name"]: r for r in rows}


def test_vacuum_metrics_counts_dead_rows_and_bloat(db: psycopg.Connection, connect_as) -> None:
    relay = connect_as("relay")
    before = _metrics(relay)
    assert {"pgmq.q_outbound", "pgmq.a_outbound", "pgmq.q_outbox", "whatsapp_handler.users"} <= before.keys()
    assert any(name.startswith("whatsapp_handler.messages_p") for name in before)
    # The relay reads the figures, not the tables.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        relay.execute("SELECT count(*) FROM pgmq.q_outbox")
    db.execute("SELECT pgmq.send_batch('outbox', array_fill('{\"x\": 1}'::jsonb, ARRAY[1000]))")
    db.execute("DELETE FROM pgmq.q_outbox WHERE msg_id % 10 <> 0")
    db.execute("SELECT pg_stat_force_next_flush()")
    db.execute("SELECT 1")
    after = _metrics(relay)["pgmq.q_outbox"]
    assert after["dead_tuples"] >= 900
    assert after["live_tuples"] == 100
    assert after["last_autovacuum"] is None  # the test cluster runs no autovacuum this soon
    assert after["bloat_bytes"] is None  # never analysed: no widths to estimate from
    db.execute("ANALYZE pgmq.q_outbox")
    db.execute("SELECT pg_stat_force_next_flush()")
    db.execute("SELECT 1")
    analysed = _metrics(relay)["pgmq.q_outbox"]
    # A tenth of the rows live: most of the table is bloat, which a vacuum frees but does not give back.
    assert 0.7 * analysed["table_bytes"] < analysed["bloat_bytes"] < analysed["table_bytes"], analysed
    db.execute("VACUUM pgmq.q_outbox")
    db.execute("SELECT pg_stat_force_next_flush()")
    db.execute("SELECT 1")
    vacuumed = _metrics(relay)["pgmq.q_outbox"]
    assert vacuumed["dead_tuples"] == 0 and vacuumed["live_tuples"] == 100


def test_doctor_warns_on_dead_rows_a_vacuum_cannot_remove(db: psycopg.Connection, db_url: str) -> None:
    db.execute("SELECT pgmq.send_batch('outbox', array_fill('{\"x\": 1}'::jsonb, ARRAY[200]))")
    with psycopg.connect(db_url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        lines = {c.name: c for c in doctor._vacuum(conn)}
        assert lines["vacuum"].status == "ok", lines["vacuum"]
        assert lines["vacuum horizon"].status == "ok", lines["vacuum horizon"]
        # A transaction left open holds every dead row since it began.
        with psycopg.connect(db_url) as holder:
            holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            holder.execute("SELECT count(*) FROM whatsapp_handler.channels").fetchone()
            db.execute("DELETE FROM pgmq.q_outbox")
            db.execute("VACUUM pgmq.q_outbox")
            db.execute("SELECT pg_stat_force_next_flush()")
            found = {c.name: c for c in doctor._vacuum(conn, max_dead=100, max_horizon=0)}
            assert found["vacuum"].status == "warn", found["vacuum"]
            assert "pgmq.q_outbox" in found["vacuum"].found
            assert found["vacuum horizon"].status == "warn", found["vacuum horizon"]
            assert "idle in transaction" in found["vacuum horizon"].found
            assert "docs/runbook.md#vacuum-held-back" in found["vacuum horizon"].fix


def test_metric_families_per_table() -> None:
    rows = [("pgmq.q_outbound", 10, 5, None, 0, 8192, None),
            ("whatsapp_handler.users", 7, 100, 1_700_000_000.0, 3, 16384, 4096)]  # fmt: skip
    families = {f.name: f for f in _vacuum_families(rows)}
    assert families["whatsapp_vacuum_metrics_up"].samples[0].value == 1
    dead = {s.labels["table"]: s.value for s in families["whatsapp_table_dead_tuples"].samples}
    assert dead == {"pgmq.q_outbound": 10, "whatsapp_handler.users": 7}
    bloat = {s.labels["table"]: s.value for s in families["whatsapp_table_bloat_bytes"].samples}
    assert bloat == {"whatsapp_handler.users": 4096}  # no estimate, no sample
    last = {s.labels["table"]: s.value for s in families["whatsapp_table_last_autovacuum_timestamp_seconds"].samples}
    assert last == {"pgmq.q_outbound": 0, "whatsapp_handler.users": 1_700_000_000.0}
    down = {f.name: f for f in _vacuum_families(None)}
    assert down["whatsapp_vacuum_metrics_up"].samples[0].value == 0
    assert not down["whatsapp_table_dead_tuples"].samples
