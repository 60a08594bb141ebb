"""The SQL under sql/ runs as documented on a freshly deployed database."""

from __future__ import annotations

import os
import subprocess

from app.settings import PROJECT_DIR


def test_demo_data_loads_with_psql(cluster, db_name, db):
    result = subprocess.run(
        ["psql", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", "-d", db_name,
         "-f", str(PROJECT_DIR / "sql" / "demo_data.sql")],
        env={**os.environ, "PGPASSWORD": cluster.password()},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.channels").fetchone()["n"] == 3
    assert db.execute("SELECT phone FROM whatsapp_handler.users").fetchall() == [{"phone": "+447700900001"}]
