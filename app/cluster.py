"""A project-local PostgreSQL 15 cluster with pg_cron preloaded.

Used by the embedded default of the service and by the test session. PostgreSQL
refuses to run as root, so as root every server command runs as the `postgres`
user and the cluster lives where that user can reach it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

SERVER_USER = "postgres"
SCRAM_ITERATIONS = 4096
# Serialises the logins' creation between a `serve` and a `worker` starting together.
LOGINS_LOCK = 7_447_001


class ClusterError(RuntimeError):
    """A server command failed; the message says which and how to look further."""


def scram_verifier(password: str) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for a password (RFC 5802/7677), computed here so
    that the plaintext never travels in a statement, which a server log could keep."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _read_or_make_password(path: Path) -> str:
    """The password kept in path, made (random, 0600, created exclusively) the first time."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if kept := path.read_text().strip():
            return kept
        # Left empty by a start that died while writing it: made again.
        path.chmod(0o600)
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _reachable_by_server_user(path: Path) -> bool:
    """Whether the postgres user can traverse every directory down to path."""
    probe = path if path.exists() else path.parent
    while not probe.exists():
        probe = probe.parent
    result = subprocess.run(["runuser", "-u", SERVER_USER, "--", "test", "-x", str(probe)], check=False)
    return result.returncode == 0


def resolve_home(wanted: Path) -> Path:
    """The directory for the cluster: the wanted one, or (as root, when the postgres
    user cannot reach it, e.g. under /root) a stable stand-in under /var/lib."""
    if not _running_as_root() or _reachable_by_server_user(wanted):
        return wanted
    digest = hashlib.sha256(str(wanted).encode()).hexdigest()[:12]
    return Path("/var/lib/whatsapp-handler") / digest


@dataclass
class LocalCluster:
    home: Path
    port: int
    bindir: Path
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def socket_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_file(self) -> Path:
        return self.home / "server.log"

    @property
    def password_file(self) -> Path:
        return self.home / "superuser.password"

    def _server_cmd(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", SERVER_USER, "--"] if _running_as_root() else []
        return [*prefix, *args]

    def _run(self, *args: str) -> str:
        result = subprocess.run(self._server_cmd(*args), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ClusterError(f"{Path(args[0]).name} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def _make_dirs(self) -> None:
        for d in (self.home, self.socket_dir):
            d.mkdir(parents=True, exist_ok=True)
        if _running_as_root():
            shutil.chown(self.home, SERVER_USER, SERVER_USER)
            shutil.chown(self.socket_dir, SERVER_USER, SERVER_USER)
        self.home.chmod(0o700)

    def password(self) -> str:
        return self.password_file.read_text().strip()

    def init(self) -> None:
        """initdb once (idempotent): scram on TCP, a generated superuser password."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        if not (self.bindir / "initdb").exists():
            raise ClusterError(f"no initdb in {self.bindir}: install postgresql-15 or set WHATSAPP_HANDLER_PG_BINDIR")
        self._make_dirs()
        self.password_file.write_text(secrets.token_urlsafe(24) + "\n")
        self.password_file.chmod(0o600)
        if _running_as_root():
            shutil.chown(self.password_file, SERVER_USER, SERVER_USER)
        self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.data_dir),
            "-U", "postgres",
            "--auth-local=peer", "--auth-host=scram-sha-256",
            f"--pwfile={self.password_file}",
            "--encoding=UTF8", "--locale=C.UTF-8",
        )  # fmt: skip

    def configure(self, cron_database: str) -> None:
        """Write the server settings; they take effect at the next start."""
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "shared_preload_libraries": "'pg_cron'",
            "cron.database_name": f"'{cron_database}'",
            # Jobs run in background workers: no libpq login, so no password to store for them.
            "cron.use_background_workers": "on",
            "max_worker_processes": "16",
            **self.settings,
        }
        text = "".join(f"{k} = {v}\n" for k, v in conf.items())
        target = self.data_dir / "conf.d-whatsapp-handler.conf"
        self._write_as_server_user(target, text)
        main_conf = self.data_dir / "postgresql.conf"
        include = f"include_if_exists = '{target.name}'\n"
        if include not in main_conf.read_text():
            self._write_as_server_user(main_conf, main_conf.read_text() + include)

    def _write_as_server_user(self, path: Path, text: str) -> None:
        path.write_text(text)
        if _running_as_root():
            shutil.chown(path, SERVER_USER, SERVER_USER)

    def is_running(self) -> bool:
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        cmd = self._server_cmd(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "status")
        return subprocess.run(cmd, capture_output=True, check=False).returncode == 0

    def start(self) -> None:
        if self.is_running():
            return
        try:
            self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                "60",
                "start",
            )
        except ClusterError as exc:
            raise ClusterError(f"{exc} (server log: {self.log_file})") from None

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def url(self, database: str, user: str = "postgres", password: str | None = None) -> str:
        pw = self.password() if password is None else password
        return psycopg.conninfo.make_conninfo(host="127.0.0.1", port=self.port, dbname=database, user=user, password=pw)

    def login_password_file(self, login: str) -> Path:
        return self.home / f"{login}.password"

    def ensure_login(self, database: str, login: str, group: str) -> str:
        """A login in `group` and nothing else, with its password kept 0600 next to the superuser's;
        made the first time, its attributes, password and memberships put back on every later call.
        Returns its conninfo. The group comes with the plan: deploy first."""
        password = _read_or_make_password(self.login_password_file(login))
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (LOGINS_LOCK,))
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (group,)).fetchone():
                raise ClusterError(
                    f"role {group} does not exist in the embedded cluster: deploy the plan first"
                    " (`whatsapp-handler db deploy` or `whatsapp-handler serve`)"
                )
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone()
            verb = sql.SQL("ALTER" if exists else "CREATE")
            attributes = "LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
            conn.execute(
                sql.SQL("{} ROLE {} " + attributes + " PASSWORD {}").format(
                    verb, sql.Identifier(login), sql.Literal(scram_verifier(password))
                )
            )
            others = conn.execute(
                "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
                " WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = %s) AND g.rolname <> %s",
                (login, group),
            ).fetchall()
            for (other,) in others:
                conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(other), sql.Identifier(login)))
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(login)))
        return self.url(database, user=login, password=password)

    def ensure_database(self, name: str, template: str | None = None) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return
            stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                stmt += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            conn.execute(stmt)
