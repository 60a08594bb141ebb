"""What the benchmarks share: a throwaway PostgreSQL that is durable (fsync and
synchronous_commit on, unlike the test cluster), with the plan deployed by sqitch into
database `bench`, and the steady-state data most of them start from."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app import sqitch
from app.cluster import LocalCluster
from app.settings import Settings

BENCH = Path(__file__).resolve().parent
PHONE_NUMBER_ID = "1234567890"
# max_wal_size as a write-heavy primary would have it: at the default 1GB a sustained load
# forces a checkpoint every two minutes, and the full-page writes after each slow every commit.
DEFAULTS = {"max_connections": "200", "shared_buffers": "512MB", "max_wal_size": "4GB"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def durable_cluster(home: Path, **settings: str) -> LocalCluster:
    pg = LocalCluster(home=home, port=free_port(), bindir=Settings().pg_bindir, settings=DEFAULTS | settings)
    pg.init()
    pg.configure(cron_database="bench")
    pg.start()
    pg.ensure_database("bench")
    sqitch.run("deploy", pg.url("bench"), capture=True)
    return pg


def load_known_users(pg: LocalCluster) -> None:
    """A Meta channel and bench/known_users.sql's 100,000 users in active conversations on it."""
    with psycopg.connect(pg.url("bench"), autocommit=True) as conn:
        conn.execute("SELECT whatsapp_handler.add_channel('meta', %s, '+15550001111', 'Bench')", (PHONE_NUMBER_ID,))
        # One statement at a time: the file ends in a VACUUM, which no transaction may hold.
        for statement in (BENCH / "known_users.sql").read_text().split(";"):
            if any(verb in statement for verb in ("INSERT", "UPDATE", "VACUUM")):
                conn.execute(statement)


def add_login(pg: LocalCluster, login: str, password: str, group: str) -> str:
    """A login granted one of the project's group roles; returns its URL."""
    with psycopg.connect(pg.url("bench"), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {login} LOGIN PASSWORD '{password}' IN ROLE {group}")
    return pg.url("bench", user=login, password=password)
