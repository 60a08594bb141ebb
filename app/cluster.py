"""A project-local PostgreSQL 15 cluster with pg_cron preloaded.

Used by the embedded default of the service and by the test session. PostgreSQL
refuses to run as root, so as root every server command runs as the `postgres`
user and the cluster lives where that user can reach it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

SERVER_USER = "postgres"


class ClusterError(RuntimeError):
    """A server command failed; the message says which and how to look further."""


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

    def ensure_database(self, name: str, template: str | None = None) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return
            stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                stmt += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            conn.execute(stmt)
