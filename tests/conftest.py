"""One PostgreSQL cluster per test session, a template database deployed by the real
sqitch, and a fresh database per test cloned from it.

pg_cron can only be created in its own database (cron.database_name) and its
launcher stays connected there, which would stop that database from serving as a
template. So the session deploys the template while it is pg_cron's database, then
restarts the cluster with pg_cron pointed at a clone (CRON_DB): the template is
left unconnected and every test database is a copy with pg_cron's tables in it.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row
from pytest_postgresql.janitor import DatabaseJanitor

from app import sqitch
from app.cluster import LocalCluster
from app.settings import Settings
from kit.services import free_port as _free_port

TEMPLATE_DB = "wh_template"
CRON_DB = "wh_cron"
LOGIN_PASSWORD = "test-password"
# A login user per group role, made once per session (roles are cluster-wide).
LOGINS = {
    "relay": "whatsapp_handler_relay",
    "worker": "whatsapp_handler_worker",
    "analyst": "whatsapp_handler_analyst",
    "consumer": "whatsapp_handler_consumer",
}


def pytest_configure(config: pytest.Config) -> None:
    """PostgreSQL's own client programs first on PATH, for the session and every process it starts.
    Debian's psql (pg_dump, pgbench alike) is a Perl wrapper that picks among installed versions and
    costs more than the program it then runs; sqitch runs psql twice per change (deploy, then verify),
    some 250 times a deploy. The programs are the ones the wrapper would run: deploys, reverts and
    verifies take half the time."""
    bindir = Settings().pg_bindir
    if (bindir / "psql").exists() and str(bindir) not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([str(bindir), os.environ.get("PATH", "")])


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    home = Path(tempfile.mkdtemp(prefix="wh-test-pg-"))
    # Speed over durability: this cluster's data dies with the session (never benchmark on it).
    fast = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "200"}
    pg = LocalCluster(home=home, port=_free_port(), bindir=Settings().pg_bindir, settings=fast)
    pg.init()
    pg.configure(cron_database=TEMPLATE_DB)
    pg.start()
    try:
        pg.ensure_database(TEMPLATE_DB)
        sqitch.run("deploy", pg.url(TEMPLATE_DB), capture=True)
        with psycopg.connect(pg.url(TEMPLATE_DB), autocommit=True) as conn:
            # A deploy leaves the OTP destinations unset (every request refused, WH058): the tests' numbers.
            conn.execute(
                """UPDATE whatsapp_handler.settings SET value = '["44", "1"]' WHERE key = 'otp.country_codes'"""
            )
        _create_logins(pg)
        pg.stop()
        pg.configure(cron_database=CRON_DB)
        pg.start()
        # pg_cron ran the template's jobs whose minute came round during the deploy: their runs
        # would be in every copy, and a test of lateness would pass or fail by the session's clock.
        with psycopg.connect(pg.url(TEMPLATE_DB), autocommit=True) as conn:
            conn.execute("DELETE FROM cron.job_run_details")
        pg.ensure_database(CRON_DB, template=TEMPLATE_DB)
        # The clone's jobs still name the template: pointed at the clone, so that no job
        # connects to the template while a test database is being copied from it.
        with psycopg.connect(pg.url(CRON_DB), autocommit=True) as conn:
            conn.execute("UPDATE cron.job SET database = current_database() WHERE database = %s", (TEMPLATE_DB,))
        yield pg
    finally:
        pg.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)


def _create_logins(pg: LocalCluster) -> None:
    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        for login, group in LOGINS.items():
            conn.execute(f"CREATE ROLE wh_test_{login} LOGIN PASSWORD '{LOGIN_PASSWORD}' IN ROLE {group}")


_db_numbers = itertools.count()


def _janitor(cluster: LocalCluster, name: str) -> DatabaseJanitor:
    return DatabaseJanitor(
        user="postgres",
        host="127.0.0.1",
        port=cluster.port,
        password=cluster.password(),
        dbname=name,
        template_dbname=TEMPLATE_DB,
    )


@contextmanager
def fresh_database(cluster: LocalCluster) -> Iterator[str]:
    """The name of a new copy of the template, dropped after."""
    name = f"wh_test_{next(_db_numbers)}"
    with _janitor(cluster, name):
        yield name


@pytest.fixture
def db_name(cluster: LocalCluster) -> Iterator[str]:
    with fresh_database(cluster) as name:
        yield name


@pytest.fixture
def db_url(cluster: LocalCluster, db_name: str) -> str:
    """Superuser conninfo of this test's fresh database."""
    return cluster.url(db_name)


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection]:
    """A superuser connection in autocommit: each call commits, as a caller's would."""
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture
def connect_as(cluster: LocalCluster, db_name: str) -> Iterator:
    """connect_as('relay') -> an autocommit connection as that role's login user."""
    opened: list[psycopg.Connection] = []

    def _connect(login: str) -> psycopg.Connection:
        conn = psycopg.connect(
            cluster.url(db_name, user=f"wh_test_{login}", password=LOGIN_PASSWORD),
            autocommit=True,
            row_factory=dict_row,
        )
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        conn.close()


@pytest.fixture
def channel_id(db: psycopg.Connection) -> int:
    return db.execute(
        "SELECT whatsapp_handler.add_channel('meta', '1234567890', '+15550001111', 'Support') AS id"
    ).fetchone()["id"]


@pytest.fixture
def relay_db_url(cluster: LocalCluster, db_name: str) -> str:
    """Conninfo of this test's database as the relay's login (granted whatsapp_handler_relay)."""
    return cluster.url(db_name, user="wh_test_relay", password=LOGIN_PASSWORD)


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator:
    """http_server.start(env, via_cli=False) -> base URL of the app on a free loopback port, given
    only these WHATSAPP_HANDLER_* variables; http_server.log_text() -> what the servers logged.
    via_cli runs `whatsapp-handler serve` (deploy, register the channels, then granian);
    otherwise granian itself, as a process manager would."""
    from tests.relay import Servers

    servers = Servers(tmp_path)
    yield servers
    servers.stop_all()


@pytest.fixture
def relay(db: psycopg.Connection, relay_db_url: str, http_server) -> Iterator:
    """relay(**settings) -> base URL of the relay on this test's database, connected as the relay's
    login, with tests/relay.py's channels added to the database and configured. Keyword arguments
    override settings: relay(public_base_url="https://hooks.example.com:443", max_body_bytes=2048)."""

    def _start(**settings: object) -> str:
        return start_relay(db, relay_db_url, http_server, **settings)

    yield _start


@pytest.fixture(scope="module")
def shared_relay(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """shared_relay(name, prepare=None) -> (base URL, superuser connection) of one relay on one fresh
    database, made the first time a test of the module asks for that name and shared by all that do.
    Only for tests that leave the database as they found it, as a refused request does (each such
    test checks its own refusal stored nothing): they are then spared a copy of the template and a
    relay's start each. prepare(db), if given, runs before the relay starts and returns settings
    for it, as keyword arguments to the relay fixture would be."""
    from tests.relay import Servers

    made: dict[str, tuple[str, psycopg.Connection]] = {}
    with ExitStack() as stack:
        servers = Servers(tmp_path_factory.mktemp("shared-relay"))

        def _get(name: str, prepare=None) -> tuple[str, psycopg.Connection]:
            if name not in made:
                database = stack.enter_context(fresh_database(cluster))
                conn = stack.enter_context(
                    psycopg.connect(cluster.url(database), autocommit=True, row_factory=dict_row)
                )
                settings = prepare(conn) if prepare else {}
                relay_url = cluster.url(database, user="wh_test_relay", password=LOGIN_PASSWORD)
                made[name] = (start_relay(conn, relay_url, servers, **settings), conn)
            return made[name]

        try:
            yield _get
        finally:
            servers.stop_all()  # before the databases are dropped


def start_relay(db: psycopg.Connection, relay_db_url: str, servers, **settings: object) -> str:
    """tests/relay.py's channels added to the database, then the relay started on it by servers (a
    tests.relay.Servers) as the relay's login; returns its base URL."""
    from tests.relay import CHANNELS, relay_environment

    for c in CHANNELS:
        db.execute(
            "SELECT whatsapp_handler.add_channel(%s, %s, %s, %s)", (c["provider"], c["ref"], c["phone"], c["name"])
        )
    return servers.start(relay_environment(relay_db_url, **settings))


@pytest.fixture(scope="session")
def pg_cron_running(cluster: LocalCluster) -> None:
    """Wait for pg_cron's launcher: it retries a few seconds after CRON_DB appears, so the first
    tests of a session can run before it does."""
    import time

    deadline = time.monotonic() + 30
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        query = "SELECT 1 FROM pg_stat_activity WHERE backend_type = 'pg_cron launcher'"
        while conn.execute(query).fetchone() is None:
            if time.monotonic() > deadline:
                pytest.fail(f"pg_cron's launcher did not start; see {cluster.log_file}")
            time.sleep(0.2)


# --- an embedded cluster with the plan deployed, for the tests of `serve` on one ---------------------


@pytest.fixture(scope="session")
def embedded_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The home of an embedded cluster (stopped) as `whatsapp-handler db deploy` leaves it on a new
    directory: made once per session, under a lock the session's workers share, for the tests that
    start from a deployed embedded cluster (copy_embedded). The deploy from nothing, initdb then the
    whole plan, is their slowest step and none of them is about it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's, above each worker's own
    image = root / "embedded-deployed"
    with (root / "embedded-deployed.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not image.exists():
            _make_embedded_image(image)
    return image


def _make_embedded_image(image: Path) -> None:
    from tests.relay import BIN

    # Traversable, so that as root resolve_home keeps it rather than choosing a stand-in under /var/lib.
    home = Path(tempfile.mkdtemp(prefix="wh-test-embedded-image-"))
    home.chmod(0o755)
    pg = LocalCluster(home=home, port=_free_port(), bindir=Settings().pg_bindir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_HANDLER_", "GRANIAN_"))}
    env |= {"WHATSAPP_HANDLER_EMBEDDED_DIR": str(home), "WHATSAPP_HANDLER_EMBEDDED_PORT": str(pg.port)}
    try:
        deployed = subprocess.run(
            [str(BIN / "whatsapp-handler"), "db", "deploy"],
            env=env,
            cwd=home,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        pg.stop()
        # Copied whole (owners and modes kept), then renamed: a worker never sees half an image.
        building = image.with_name(image.name + ".building")
        subprocess.run(["cp", "-a", str(home), str(building)], check=True)
        building.rename(image)
    finally:
        if pg.is_running():
            pg.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)


def copy_embedded(image: Path, cluster: LocalCluster) -> None:
    """The image (embedded_image) copied into the cluster's empty home, owners and modes kept, and
    started on the cluster's port, as `whatsapp-handler db deploy` would have left it."""
    subprocess.run(["cp", "-a", f"{image}/.", str(cluster.home)], check=True)
    cluster.configure(cron_database=Settings().embedded_database)
    cluster.start()
