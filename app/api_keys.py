"""`whatsapp-handler api-key create|revoke|list`: the business API's keys (sending/api_keys), for the DBA.

A key is shown once, when it is made: the database keeps only its SHA-256. Runs as the database's
administrator (the deployer's URL, or the embedded cluster's superuser), like `db` and `dlq`."""

from __future__ import annotations

import argparse
from typing import Any

import psycopg
from psycopg.rows import dict_row

SCOPES = ("send", "read", "manage")
LIST = """
SELECT name, channel_ids, scopes, created_at, revoked_at FROM whatsapp_handler.api_keys ORDER BY name
"""


class ApiKeyUsageError(Exception):
    """The command was asked for something it cannot do as asked (exit 2)."""


def add_parser(commands: Any) -> None:
    keys = commands.add_parser(
        "api-key",
        help="create, revoke or list the business API's keys (each scoped to channels and scopes)",
        description="Keys of POST /v1/messages and the people API. A key acts only on its channels and within "
        "its scopes (send, read, manage); it is printed once, at creation. See docs/sending.md.",
    )
    actions = keys.add_subparsers(dest="key_action", required=True, metavar="{create,revoke,list}")
    create = actions.add_parser("create", help="make a key and print it (the only time it is shown)")
    create.add_argument("name", metavar="NAME", help="who uses it, e.g. billing-backend")
    create.add_argument("--channel", dest="channels", metavar="ID", type=int, action="append", required=True,
                        help="a channel id the key may act on (repeat for several)")  # fmt: skip
    create.add_argument("--scope", dest="scopes", choices=SCOPES, action="append",
                        help="send, read or manage (repeat; default: send and read)")  # fmt: skip
    revoke = actions.add_parser("revoke", help="refuse the key from its next request on")
    revoke.add_argument("name", metavar="NAME")
    actions.add_parser("list", help="every key: channels, scopes, when made and revoked (never the key)")


def command(conninfo: str, args: argparse.Namespace) -> int:
    with psycopg.connect(conninfo, autocommit=True, row_factory=dict_row) as conn:
        if args.key_action == "create":
            scopes = sorted(set(args.scopes or ("send", "read")))
            row = conn.execute(
                "SELECT id, api_key FROM whatsapp_handler.api_key_create(%s, %s, %s)",
                (args.name, args.channels, scopes),
            ).fetchone()
            print(f"API key {args.name} (channels {', '.join(map(str, sorted(set(args.channels))))}; "
                  f"{', '.join(scopes)}): {row['api_key']}")  # fmt: skip
            print("Store it now: only its hash is kept. Send it as Authorization: Bearer <key>.")
            return 0
        if args.key_action == "revoke":
            revoked = conn.execute("SELECT whatsapp_handler.api_key_revoke(%s) AS r", (args.name,)).fetchone()["r"]
            if not revoked:
                raise ApiKeyUsageError(f"no live API key named {args.name} (`api-key list` shows them)")
            print(f"API key {args.name} revoked")
            return 0
        rows = conn.execute(LIST).fetchall()
        if not rows:
            print("no API keys (`api-key create NAME --channel ID` makes one)")
        for r in rows:
            state = f"revoked {r['revoked_at']:%Y-%m-%d %H:%M}" if r["revoked_at"] else "live"
            print(f"{r['name']}: channels {', '.join(map(str, r['channel_ids']))}; {', '.join(r['scopes'])};"
                  f" made {r['created_at']:%Y-%m-%d %H:%M}; {state}")  # fmt: skip
        return 0
