"""Put pgmq into a database when the server has no pgmq extension.

The plan's queue/pgmq change accepts pgmq as an extension or as its SQL-only
install; plain sqitch cannot run the latter (it is not a migration of ours), so
the wrapper loads it, from the SQL that the `pgmq` Python package ships, first.
"""

from __future__ import annotations

from importlib.resources import files

import psycopg

PRESENT = """
SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'pgmq')
    OR to_regprocedure('pgmq.send(text,jsonb,jsonb,timestamp with time zone)') IS NOT NULL
    OR EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pgmq')
"""


def bundled_sql() -> str:
    return files("pgmq").joinpath("sql", "pgmq.sql").read_text(encoding="utf-8")


def ensure_pgmq(conninfo: str) -> bool:
    """Load the SQL-only pgmq unless pgmq is installed or installable as an extension.
    Returns whether it loaded it. Runs in one transaction: all or nothing."""
    with psycopg.connect(conninfo) as conn:
        if conn.execute(PRESENT).fetchone()[0]:
            return False
        # A lock so that two deploys at once do not both load it (duplicate types).
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('whatsapp_handler.pgmq_install'))")
        if conn.execute(PRESENT).fetchone()[0]:
            return False
        conn.execute(bundled_sql())
    return True
