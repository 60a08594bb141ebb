"""Which database the service uses: the configured URL, or the embedded cluster."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from app.cluster import LocalCluster, resolve_home
from app.settings import Settings

log = logging.getLogger(__name__)

MASK = "***"


def embedded_cluster(settings: Settings) -> LocalCluster:
    return LocalCluster(
        home=resolve_home(settings.embedded_dir), port=settings.embedded_port, bindir=settings.pg_bindir
    )


def resolve_conninfo(settings: Settings) -> str:
    """The conninfo to use; with no URL configured, the embedded cluster is made,
    started and given its database first (each step is a no-op when already done)."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    cluster = embedded_cluster(settings)
    cluster.init()
    cluster.configure(cron_database=settings.embedded_database)
    cluster.start()
    cluster.ensure_database(settings.embedded_database)
    log.info("embedded PostgreSQL in %s, listening on 127.0.0.1:%s", cluster.home, cluster.port)
    return cluster.url(settings.embedded_database)


# The embedded cluster's logins of the HTTP app and the delivery worker (role names are
# cluster-wide, hence the prefix); the superuser only deploys and registers channels.
SERVICE_LOGINS = {
    "relay": ("whatsapp_handler_relay_login", "whatsapp_handler_relay"),
    "worker": ("whatsapp_handler_worker_login", "whatsapp_handler_worker"),
}


def service_conninfo(settings: Settings, service: str) -> str:
    """The embedded cluster's conninfo for the relay's or the worker's own login, made (or put
    back) on each call; the cluster must run and the plan be deployed."""
    login, group = SERVICE_LOGINS[service]
    cluster = embedded_cluster(settings)
    conninfo = cluster.ensure_login(settings.embedded_database, login, group)
    log.info("the %s connects as %s (password in %s)", service, login, cluster.login_password_file(login))
    return conninfo


def mask(conninfo: str) -> str:
    """The conninfo or URL with its password replaced, fit to print or log."""
    if conninfo.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(conninfo)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, hosts = netloc.rsplit("@", 1)
            if ":" in userinfo:
                netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{hosts}"
        query = urlencode([(k, MASK if k == "password" else v) for k, v in parse_qsl(parts.query)], safe="*")
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    try:
        params = conninfo_to_dict(conninfo)
    except Exception:
        # An unparseable string may still hold a password somewhere: show none of it.
        return "<unparseable conninfo>"
    if "password" in params:
        params["password"] = MASK
    return make_conninfo(**params)


def password_of(conninfo: str) -> str | None:
    """The password inside a conninfo or URL, so that messages can be scrubbed of it."""
    try:
        value = conninfo_to_dict(conninfo).get("password")
    except Exception:
        # libpq refused the string; the URL parser may still find the password in it.
        value = urlsplit(conninfo).password if "://" in conninfo else None
    return str(value) if value else None
