"""The upgrade walk of docs/rollback.md on a database with traffic: back up (roles and the
database), deploy, smoke, revert to the release before, smoke again, and restore the backup on
a fresh cluster (as disaster recovery would) where it verifies and holds the same rows."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from app import sqitch
from app.cluster import LocalCluster
from app.settings import Settings
from kit.services import free_port
from tests.conftest import CRON_DB
from tests.test_upgrade import _counts, _load, _meta_text, last_tag

BINDIR = Settings().pg_bindir


def _smoke(url: str, n: int) -> None:
    """What the walk checks after each step: the plan is there as this checkout wants it, and a
    webhook is taken."""
    last = sqitch.last_change(sqitch.PROJECT_DIR / "sqitch.plan")
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        ready = conn.execute("SELECT whatsapp_handler.readiness(%s, %s::timestamptz) AS r", last).fetchone()["r"]
        assert ready["plan"] is True, ready
        body = _meta_text("447700990001", f"wamid.smoke.{n}", "hi")  # nobody _load made
        result = conn.execute("SELECT whatsapp_handler.ingest_meta(%s::jsonb, 'smoke') AS r", (body,)).fetchone()["r"]
        assert result["outcome"] == "processed", result


def _pg(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BINDIR / tool), *args], capture_output=True, text=True, check=True)


def test_backup_deploy_rollback_and_restore_keep_the_data(cluster, tmp_path):
    url = cluster.url(CRON_DB)
    tag = last_tag()
    dump, roles = tmp_path / "whatsapp_handler.dump", tmp_path / "roles.sql"
    sqitch.run("revert", url, capture=True)
    try:
        sqitch.run("deploy", url, "--to", tag, capture=True)
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            _load(conn)
        # 1. Back up: the database in custom format, and the roles it needs (global objects).
        _pg("pg_dump", "-Fc", "-f", str(dump), "--dbname", url)
        _pg("pg_dumpall", "--roles-only", "-f", str(roles), "--dbname", cluster.url("postgres"))
        backed_up = _counts(url)

        # 2. Deploy this checkout, 3. smoke.
        sqitch.run("deploy", url, capture=True)
        _smoke(url, 1)
        # 4. The upgrade is taken back: revert to the release before; the data stays.
        sqitch.run("revert", url, "-y", "--to", tag, capture=True)
        sqitch.run("verify", url, capture=True)
        after = _counts(url)
        assert after["users"] == backed_up["users"] + 1 and after["channels"] == backed_up["channels"]
        assert after["settings"] == backed_up["settings"]
        # 5. Forward again, smoke again.
        sqitch.run("deploy", url, capture=True)
        _smoke(url, 2)

        # 6. The backup restores on a fresh cluster whose pg_cron serves the same database name.
        _restore_and_check(dump, roles, backed_up)
    finally:
        sqitch.run("deploy", url, capture=True)


def _restore_and_check(dump: Path, roles: Path, expected: dict) -> None:
    home = Path(tempfile.mkdtemp(prefix="wh-restore-"))
    pg = LocalCluster(home=home, port=free_port(), bindir=BINDIR, settings={"fsync": "off"})
    try:
        pg.init()
        pg.configure(cron_database=CRON_DB)
        pg.start()
        # The fresh cluster keeps its own superuser: the roles file without the lines about
        # it (its password would be the old cluster's), as docs/rollback.md says.
        kept = roles.with_name("roles-without-superuser.sql")
        kept.write_text("".join(line for line in roles.read_text().splitlines(True) if " ROLE postgres" not in line))
        psql = [str(BINDIR / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-f", str(kept), pg.url("postgres")]
        subprocess.run(psql, capture_output=True, check=True)
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {CRON_DB}")
        _pg("pg_restore", "--exit-on-error", "--dbname", pg.url(CRON_DB), str(dump))
        restored = pg.url(CRON_DB)
        sqitch.run("verify", restored, capture=True)
        counts = _counts(restored)
        # pg_cron's jobs are rows of cron.job in the dump, with the database they run in.
        assert counts == expected
    finally:
        pg.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)
