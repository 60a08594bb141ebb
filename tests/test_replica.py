"""Analysts on a streaming replica: a second cluster made with `pg_basebackup -R` from the test
session's cluster runs as a hot standby, follows what the primary writes, runs the analytics
views (and a read of whatsapp_handler's tables), and refuses writes."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.cluster import LocalCluster
from kit import payloads as p
from kit.services import free_port
from tests.conftest import CRON_DB

CATCH_UP_SECONDS = 30


@pytest.fixture
def replica(cluster: LocalCluster) -> Iterator[LocalCluster]:
    home = Path(tempfile.mkdtemp(prefix="wh-test-replica-"))
    standby = LocalCluster(home=home, port=free_port(), bindir=cluster.bindir,
                           settings={"hot_standby": "on", "fsync": "off", "max_connections": "200"})  # fmt: skip
    try:
        standby._make_dirs()
        # The copy's superuser is the primary's, with its password.
        shutil.copy(cluster.password_file, standby.password_file)
        if os.geteuid() == 0:
            shutil.chown(standby.password_file, "postgres", "postgres")
        source = psycopg.conninfo.make_conninfo(
            host="127.0.0.1", port=cluster.port, user="postgres", password=cluster.password()
        )
        # -R writes standby.signal and primary_conninfo: the copy starts as a streaming replica.
        standby._run(str(cluster.bindir / "pg_basebackup"), "-d", source, "-D", str(standby.data_dir),
                     "-R", "-X", "stream", "-c", "fast")  # fmt: skip
        # Its own port and socket directory; the rest of the primary's settings come along.
        standby.configure(cron_database=CRON_DB)
        standby.start()
        yield standby
    finally:
        standby.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)


def _wait_for_replay(primary: psycopg.Connection, standby: psycopg.Connection) -> None:
    # The insert position, not pg_current_wal_lsn() (the write position): with the test cluster's
    # synchronous_commit = off a commit record can sit in the WAL buffers, behind the latter.
    target = primary.execute("SELECT pg_current_wal_insert_lsn() AS lsn").fetchone()["lsn"]
    deadline = time.monotonic() + CATCH_UP_SECONDS
    while time.monotonic() < deadline:
        if standby.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn AS done", (target,)).fetchone()["done"]:
            return
        time.sleep(0.1)
    pytest.fail(f"the replica did not replay up to {target} within {CATCH_UP_SECONDS} s")


def test_a_streaming_replica_serves_the_analysts_reads(
    replica: LocalCluster, db: psycopg.Connection, db_name: str, channel_id: int
) -> None:
    # Written on the primary after the base backup: it reaches the replica by streaming.
    db.execute("SELECT whatsapp_handler.ingest_meta(%s, 'c')", (Jsonb(p.meta_text("447700900901", "wamid.rep1")),))
    # The test's database itself was made after the base backup: wait until it is replayed.
    with psycopg.connect(replica.url("postgres"), autocommit=True, row_factory=dict_row) as standby:
        assert standby.execute("SELECT pg_is_in_recovery() AS r").fetchone()["r"] is True
        _wait_for_replay(db, standby)
    with psycopg.connect(replica.url(db_name), autocommit=True, row_factory=dict_row) as standby:
        seen = standby.execute(
            "SELECT (SELECT count(*) FROM whatsapp_handler.users) AS users, "
            "(SELECT count(*) FROM whatsapp_handler.messages WHERE direction = 'inbound') AS inbound"
        ).fetchone()
        assert seen == {"users": 1, "inbound": 1}

        views = [
            r["name"]
            for r in standby.execute(
                "SELECT c.relname AS name FROM pg_class c WHERE c.relnamespace = to_regnamespace('analytics') "
                "AND c.relkind IN ('v', 'm') ORDER BY 1"
            ).fetchall()
        ]
        if standby.execute("SELECT to_regnamespace('analytics') IS NOT NULL AS here").fetchone()["here"]:
            assert views, "schema analytics holds no views"
        for view in views:
            standby.execute(sql.SQL("SELECT * FROM analytics.{} LIMIT 100").format(sql.Identifier(view))).fetchall()

        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            standby.execute("SELECT whatsapp_handler.add_channel('meta', '99', '+15550009999', 'x')")
    # Nothing the replica refused reached the primary either.
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.channels").fetchone()["n"] == 1


def test_pg_basebackup_is_there() -> None:
    # The replica fixture needs the server package's pg_basebackup (postgresql-15, bin/setup).
    from app.settings import Settings

    assert (Settings().pg_bindir / "pg_basebackup").exists()
    assert subprocess.run([str(Settings().pg_bindir / "pg_basebackup"), "--version"], check=False).returncode == 0
