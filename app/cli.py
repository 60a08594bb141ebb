"""The `whatsapp-handler` command: deploy the database, run the embedded cluster, serve HTTP."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from importlib.util import find_spec

import psycopg
from pydantic import ValidationError
from pydantic_settings import SettingsError

from app import (
    api_keys,
    campaign_cli,
    channels,
    database,
    dlq,
    doctor,
    logs,
    sandbox,
    smoke,
    sqitch,
    supervise,
    templates,
)
from app.cluster import ClusterError
from app.settings import Settings, get_settings

PROG = "whatsapp-handler"
URL_VAR = "WHATSAPP_HANDLER_DATABASE_URL"
RELAY_URL_VAR = "WHATSAPP_HANDLER_RELAY_DATABASE_URL"
WORKER_URL_VAR = "WHATSAPP_HANDLER_WORKER_DATABASE_URL"
METRICS_DIR_VAR = "PROMETHEUS_MULTIPROC_DIR"
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3

log = logging.getLogger(PROG)


class UsageError(Exception):
    """The command line asks for something the command refuses to do."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse would print the whole usage block; one line is easier to spot in logs.
        sys.stderr.write(f"{PROG}: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Database-first WhatsApp webhook relay. Settings come from WHATSAPP_HANDLER_* variables "
        f"(or .env); with no {URL_VAR} the service runs on an embedded PostgreSQL cluster.",
    )
    commands = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="{db,cluster,serve,worker,dlq,doctor,smoke,sandbox,api-key,templates,campaign}",
    )

    db = commands.add_parser("db", help="deploy, revert, verify or inspect the sqitch plan")
    db_commands = db.add_subparsers(dest="action", required=True, metavar="{deploy,revert,verify,status}")
    to_help = "stop at this change (sqitch's --to)"
    deploy = db_commands.add_parser("deploy", help="deploy the plan (loads SQL-only pgmq first when needed)")
    deploy.add_argument("--to", metavar="CHANGE", help=to_help)
    revert = db_commands.add_parser("revert", help="revert changes; without --to, every change")
    revert.add_argument("--to", metavar="CHANGE", help="revert the changes after this one")
    revert.add_argument("--yes", action="store_true", help="confirm: revert runs without asking")
    verify = db_commands.add_parser("verify", help="run every deployed change's verify script")
    verify.add_argument("--to", metavar="CHANGE", help=to_help)
    db_commands.add_parser("status", help="show the deployed change and what is left to deploy")

    cluster = commands.add_parser("cluster", help="manage the embedded PostgreSQL cluster")
    cluster_commands = cluster.add_subparsers(dest="action", required=True, metavar="{start,stop,status}")
    cluster_commands.add_parser("start", help="create (first time) and start the cluster; prints its conninfo")
    cluster_commands.add_parser("stop", help="stop the cluster (fast shutdown)")
    cluster_commands.add_parser(
        "status", help=f"say whether the cluster runs; exit {EXIT_NOT_RUNNING} when it does not"
    )

    commands.add_parser(
        "serve",
        help="resolve the database, deploy the plan, then serve HTTP",
        description="Start the embedded cluster when no database URL is set, deploy the plan, "
        "and serve the HTTP app with granian on WHATSAPP_HANDLER_HTTP_HOST:WHATSAPP_HANDLER_HTTP_PORT.",
    )
    commands.add_parser(
        "worker",
        help="deliver queued outbound messages to the providers until SIGTERM",
        description="Claim messages from pgmq queue outbound and send them through each channel's provider "
        "(see docs/worker.md). Needs the plan deployed (`serve` or `db deploy` does it). SIGTERM finishes "
        "the sends under way, then exits.",
    )
    dlq.add_parser(commands)
    doctor.add_parser(commands)
    smoke.add_parser(commands)
    sandbox.add_parser(commands)
    api_keys.add_parser(commands)
    templates.add_parser(commands)
    campaign_cli.add_parser(commands)
    return parser


def db_command(settings: Settings, action: str, to: str | None, yes: bool) -> int:
    if action == "revert" and not yes:
        raise UsageError("revert needs --yes (without --to it reverts every change of the plan)")
    conninfo = database.resolve_conninfo(settings)
    # Fail on an unreachable server with psycopg's one clear message, before sqitch prints its own.
    with psycopg.connect(conninfo, connect_timeout=10):
        pass
    extra = ("--to", to) if to else ()
    result = sqitch.run(action, conninfo, *extra, capture=True)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return 0


def cluster_command(settings: Settings, action: str) -> int:
    if settings.database_url is not None:
        shown = database.mask(settings.database_url.get_secret_value())
        if action == "status":
            print(f"no embedded cluster: an external database is configured ({shown})")
            return 0
        raise ClusterError(f"an external database is configured ({URL_VAR}={shown}); there is no cluster to {action}")
    cluster = database.embedded_cluster(settings)
    if action == "start":
        print(database.mask(database.resolve_conninfo(settings)))
        return 0
    if action == "stop":
        cluster.stop()
        print(f"embedded cluster in {cluster.home} is stopped")
        return 0
    if not (cluster.data_dir / "PG_VERSION").exists():
        print(f"no embedded cluster in {cluster.home} (`{PROG} cluster start` creates it)")
        return EXIT_NOT_RUNNING
    running = cluster.is_running()
    print(f"embedded cluster in {cluster.home} on 127.0.0.1:{cluster.port}: {'running' if running else 'stopped'}")
    return 0 if running else EXIT_NOT_RUNNING


def serve(settings: Settings) -> int:
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    # A server's log is read by machines: JSON lines from here on, as the app's.
    logs.configure(settings.log_level)
    conninfo = database.resolve_conninfo(settings)
    for line in sqitch.run("deploy", conninfo, capture=True).stdout.splitlines():
        log.info("%s", line)
    # Deployed with the admin URL: only the owner may add channels; the relay's own login may not.
    channels.register(conninfo, settings.channels)
    # And again whenever a revert and redeploy under the running relay loses them (docs/database.md),
    # from a process of its own: granian forks its workers from this one (channels.watch says why).
    watcher = channels.watch(conninfo, settings.channels, sqitch.last_change(sqitch.PROJECT_DIR / "sqitch.plan"),
                             log_level=settings.log_level)  # fmt: skip
    # The app runs in granian's worker processes and never starts a cluster itself:
    # it finds the database that was resolved here in its environment.
    if settings.database_url is None and settings.relay_database_url is None:
        # The embedded cluster: the app gets the relay group's own login, never the superuser's URL.
        os.environ[RELAY_URL_VAR] = database.service_conninfo(settings, "relay")
        # The worker is started apart; its login is made here too, so that it exists from the first serve.
        database.service_conninfo(settings, "worker")
    else:
        os.environ.setdefault(URL_VAR, conninfo)
    metrics_dir = None
    if not os.environ.get(METRICS_DIR_VAR):
        # Worker processes share their counters through prometheus_client's multiprocess files, which
        # outlive a worker that dies (its counts, and the restarts the main process counts, stay summed).
        metrics_dir = tempfile.mkdtemp(prefix="whatsapp-handler-metrics-")
        os.environ[METRICS_DIR_VAR] = metrics_dir
    server = supervise.relay_server(
        "app.web:create_app",
        address=settings.http_host,
        port=settings.http_port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=settings.http_workers,
        loop=Loops.uvloop if find_spec("uvloop") else Loops.asyncio,
        log_level=LogLevels(settings.log_level.lower()),
        log_dictconfig=logs.dict_config(settings.log_level),
        # HTTP/1.1 only: in "auto" mode granian first waits, with no deadline, for the bytes that
        # tell HTTP/1 from HTTP/2, so a connection that never sends one is held for good. Providers
        # post over HTTP/1.1 (and a TLS proxy in front speaks it to the relay).
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(header_read_timeout=int(settings.http_header_timeout * 1000)),
        backpressure=settings.http_backpressure,
    )
    try:
        server.serve()
    finally:
        if watcher is not None:
            watcher.terminate()
            watcher.wait(5)
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    if server.gave_up:
        sys.stderr.write(f"{PROG}: error: {server.gave_up}\n")
        return EXIT_RUNTIME
    return 0


def run_worker(settings: Settings) -> int:
    import asyncio

    from app import worker

    logs.configure(settings.log_level)
    restarts = os.environ.get(supervise.DELIVERY_VAR)
    if restarts is None:
        # The command itself: it supervises a delivery process (this same function, as its child).
        if settings.worker_database_url is None and settings.database_url is None:
            # The embedded cluster: the worker group's own login, not the superuser; the child inherits it.
            database.resolve_conninfo(settings)
            os.environ[WORKER_URL_VAR] = database.service_conninfo(settings, "worker")
        try:
            return supervise.supervise_worker()
        except supervise.GaveUp as exc:
            sys.stderr.write(f"{PROG}: error: {exc}\n")
            return EXIT_RUNTIME
    runner = asyncio.run
    if find_spec("uvloop"):
        import uvloop

        runner = uvloop.run
    runner(worker.run(settings, restarts=int(restarts)))
    return 0


def _one_line(exc: BaseException, settings: Settings | None) -> str:
    message = " ".join(str(exc).split()) or type(exc).__name__
    url = settings.database_url.get_secret_value() if settings and settings.database_url else None
    if url:
        message = message.replace(url, database.mask(url))
        secret = database.password_of(url)
        if secret:
            message = message.replace(secret, database.MASK)
    return message


def _settings_error(exc: ValidationError) -> str:
    first = exc.errors(include_input=False, include_url=False)[0]
    # The input value is left out on purpose: it may be a secret.
    field = "_".join(str(part) for part in first["loc"]).upper()
    if not field:
        return f"invalid settings: {first['msg']}"
    return f"invalid setting WHATSAPP_HANDLER_{field}: {first['msg']}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"{PROG}: %(message)s", stream=sys.stderr)
    settings: Settings | None = None
    try:
        settings = get_settings()
        logging.getLogger().setLevel(settings.log_level)
        if args.command == "db":
            return db_command(settings, args.action, getattr(args, "to", None), getattr(args, "yes", False))
        if args.command == "cluster":
            return cluster_command(settings, args.action)
        if args.command == "worker":
            return run_worker(settings)
        if args.command == "dlq":
            return dlq.command(database.resolve_conninfo(settings), args)
        if args.command == "doctor":
            return doctor.command(settings, args)
        if args.command == "smoke":
            return smoke.command(settings, args)
        if args.command == "sandbox":
            return sandbox.command(settings, args)
        if args.command == "api-key":
            return api_keys.command(database.resolve_conninfo(settings), args)
        if args.command == "templates":
            return templates.command(settings, database.resolve_conninfo(settings), args)
        if args.command == "campaign":
            return campaign_cli.command(database.resolve_conninfo(settings), args)
        return serve(settings)
    except (
        UsageError,
        dlq.DlqUsageError,
        sandbox.SandboxError,
        api_keys.ApiKeyUsageError,
        templates.TemplatesUsageError,
        campaign_cli.CampaignUsageError,
    ) as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return EXIT_USAGE
    except ValidationError as exc:
        sys.stderr.write(f"{PROG}: error: {_settings_error(exc)}\n")
        return EXIT_RUNTIME
    except SettingsError as exc:
        # A variable that is not valid JSON (WHATSAPP_HANDLER_CHANNELS); the message names it, not its value.
        sys.stderr.write(f"{PROG}: error: invalid settings: {_one_line(exc, None)}\n")
        return EXIT_RUNTIME
    except (sqitch.SqitchError, ClusterError, psycopg.Error, OSError) as exc:
        sys.stderr.write(f"{PROG}: error: {_one_line(exc, settings)}\n")
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
