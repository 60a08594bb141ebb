"""What the security tests share: a snapshot of what ingestion writes, hostile strings, and a second
channel per provider for the tests that sign with another channel's secret."""

from __future__ import annotations

from typing import Any

import psycopg

from tests.relay import CHANNELS

# Every table a webhook or an OTP request writes to, and the queues it sends to.
WRITTEN = (
    "whatsapp_handler.webhook_events",
    "whatsapp_handler.message_keys",
    "whatsapp_handler.messages",
    "whatsapp_handler.message_status_events",
    "whatsapp_handler.users",
    "whatsapp_handler.conversations",
    "whatsapp_handler.otp_challenges",
    "pgmq.q_outbox",
    "pgmq.q_outbound",
    "pgmq.q_inbound_dlq",
)

TWILIO_OTHER_REF = "whatsapp:+15550006666"
TWILIO_OTHER_TOKEN = "twilio-other-token-abcdef0123456789"
EVOLUTION_OTHER_REF = "other-instance"
EVOLUTION_OTHER_KEY = "other-instance-apikey-0123"
SECOND_CHANNELS: list[dict[str, Any]] = [
    {"provider": "twilio", "ref": TWILIO_OTHER_REF, "phone": "+15550006666", "name": "Twilio two",
     "secret": TWILIO_OTHER_TOKEN},
    {"provider": "evolution", "ref": EVOLUTION_OTHER_REF, "phone": "+15550007777", "name": "Evo two",
     "secret": EVOLUTION_OTHER_KEY},
]  # fmt: skip

# Strings meant to break out of a SQL literal, an identifier, a format() or a dollar quote.
HOSTILE = [
    "O'Brien",
    "'; DROP TABLE whatsapp_handler.users; --",
    "'); DROP TABLE whatsapp_handler.users; --",
    '"; DROP TABLE whatsapp_handler.users; --',
    "$$; DROP TABLE whatsapp_handler.users; $$",
    "$x$ SELECT 1 $x$",
    "%s %I %L %1$s %%",
    "{0} {name} %(x)s",
    "back\\slash \\' \\\\ \\x27",
    "\u02bc; DROP TABLE whatsapp_handler.users; --",  # a modifier letter apostrophe, not a quote
    "\uff07; \uff24\uff32\uff2f\uff30 \uff34\uff21\uff22\uff2c\uff25 users; --",  # fullwidth look-alikes
    "1 OR 1=1",
    "admin'--",
    "\u202eevil\u202c",
    "😀 emoji and combining é",
    "x" * 10_000,
]


def snapshot(db: psycopg.Connection) -> dict[str, int]:
    """Row counts of everything ingestion and the OTP API write."""
    return {table: db.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"] for table in WRITTEN}


def add_second_channels(db: psycopg.Connection) -> list[dict[str, Any]]:
    """Adds the second Twilio and Evolution channels to the database; returns the relay's channel setting."""
    for c in SECOND_CHANNELS:
        db.execute(
            "SELECT whatsapp_handler.add_channel(%s, %s, %s, %s)", (c["provider"], c["ref"], c["phone"], c["name"])
        )
    return CHANNELS + SECOND_CHANNELS


def schema_fingerprint(db: psycopg.Connection) -> list[tuple]:
    """Every relation, column and function of the service's schemas: equal before and after an attack."""
    rows = db.execute(
        """SELECT c.oid::regclass::text AS o, a.attname::text AS a FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
           WHERE n.nspname IN ('whatsapp_handler', 'analytics', 'pgmq', 'cron')
           UNION ALL
           SELECT p.oid::regprocedure::text, md5(p.prosrc) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname IN ('whatsapp_handler', 'analytics', 'pgmq', 'cron')
           UNION ALL
           SELECT 'role:' || rolname, rolsuper::text FROM pg_roles
           ORDER BY 1, 2"""
    ).fetchall()
    return [(r["o"], r["a"]) for r in rows]
