"""Small, known data for the analytics tests: two channels, four users, a dozen messages,
OTP codes, delivery statuses and dead letters, with every expected figure worked out by
hand in tests/test_analytics.py. Written straight into the tables (as a superuser) so that
the days are fixed; 2026-01-05 is a Monday."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

PHONES = {"u1": "+447700900001", "u2": "+351912345678", "u3": "+15550002222", "u4": "+447700900004"}
BODIES = ["BODYMARK one", "BODYMARK two", "BODYMARK three", "BODYMARK four", "BODYMARK five"]
# Set in load(): the ids of the two channels.
CHANNELS = {"A": "Support (meta)", "B": "Sales (twilio)"}


def load(db: psycopg.Connection) -> dict[str, int]:
    a = db.execute(
        "SELECT whatsapp_handler.add_channel('meta', '1234567890', '+15550001111', 'Support') AS id"
    ).fetchone()["id"]
    b = db.execute(
        "SELECT whatsapp_handler.add_channel('twilio', 'whatsapp:+15550003333', '+15550003333', 'Sales') AS id"
    ).fetchone()["id"]
    users = {}
    # name: (terms_accepted_at, verified_at, onboarded_at)
    states = {
        "u1": ("2026-01-05 10:05Z", "2026-01-06 08:00Z", "2026-01-06 08:00Z"),
        "u2": ("2026-01-05 11:00Z", None, None),
        "u3": (None, None, None),
        "u4": ("2026-01-07 09:00Z", "2026-01-07 09:10Z", "2026-01-07 09:10Z"),
    }
    for name, (terms, verified, onboarded) in states.items():
        users[name] = db.execute(
            """INSERT INTO whatsapp_handler.users (phone, display_name, terms_accepted_at, terms_version, verified_at,
                                                  onboarded_at, last_active_at, created_at)
               VALUES (%s, %s, %s, CASE WHEN %s::timestamptz IS NOT NULL THEN 'v1' END, %s, %s, '2026-01-12 10:00Z',
                       '2026-01-05 09:00Z') RETURNING id""",
            (PHONES[name], f"Name of {name}", terms, terms, verified, onboarded),
        ).fetchone()["id"]
    # Conversations: first contact per user and channel.
    for name, channel, at in [("u1", a, "2026-01-05 10:00Z"), ("u2", a, "2026-01-05 10:30Z"),
                              ("u3", a, "2026-01-06 12:00Z"),
                              ("u4", b, "2026-01-05 15:00Z"), ("u4", a, "2026-01-07 16:00Z")]:  # fmt: skip
        db.execute(
            "INSERT INTO whatsapp_handler.conversations (user_id, channel_id, state, created_at) "
            "VALUES (%s, %s, 'active', %s)",
            (users[name], channel, at),
        )
    # OTP codes: four on A on 2026-01-06, one on B on 2026-01-07.
    for name, channel, status, failed, at in [
        ("u1", a, "verified", 1, "2026-01-06 07:55Z"),
        ("u2", a, "locked", 5, "2026-01-06 09:00Z"),
        ("u3", a, "superseded", 0, "2026-01-06 12:05Z"),
        ("u3", a, "expired", 2, "2026-01-06 12:06Z"),
        ("u4", b, "verified", 0, "2026-01-07 09:05Z"),
    ]:
        db.execute(
            """INSERT INTO whatsapp_handler.otp_challenges (user_id, channel_id, status, failed_attempts, created_at,
                                                           expires_at, resolved_at)
               VALUES (%s, %s, %s, %s, %s::timestamptz, %s::timestamptz + interval '10 minutes',
                       %s::timestamptz + interval '1 minute')""",
            (users[name], channel, status, failed, at, at, at),
        )
    # Messages: (user, channel, direction, type, at, provider id)
    msgs = [
        ("u1", a, "inbound", "text", "2026-01-05 10:00Z", "in1"),
        ("u1", a, "inbound", "text", "2026-01-05 10:01Z", "in2"),
        ("u2", a, "inbound", "image", "2026-01-05 10:30Z", "in3"),
        ("u1", a, "outbound", "text", "2026-01-05 10:00:00Z", "w1"),
        ("u1", a, "inbound", "text", "2026-01-06 08:00Z", "in4"),
        ("u3", a, "inbound", "text", "2026-01-06 12:00Z", "in5"),
        ("u3", a, "outbound", "text", "2026-01-06 09:00Z", "w2"),
        ("u3", a, "outbound", "text", "2026-01-06 09:00Z", "w3"),
        ("u1", a, "inbound", "text", "2026-01-12 10:00Z", "in6"),
        ("u4", b, "inbound", "text", "2026-01-07 09:00Z", "in7"),
        ("u4", b, "outbound", "template", "2026-01-07 12:00Z", "w4"),
    ]
    for i, (name, channel, direction, type_, at, pid) in enumerate(msgs):
        db.execute(
            """INSERT INTO whatsapp_handler.messages (created_at, channel_id, user_id, direction, provider_message_id,
                                                     message_type, body, status, status_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (at, channel, users[name], direction, pid, type_, BODIES[i % len(BODIES)] + f" {PHONES[name]}",
             "received" if direction == "inbound" else "sent", at),
        )  # fmt: skip
    # w5: a fifth outbound on A on 2026-01-06 known only from its statuses.
    statuses = [
        (a, "w1", "sent", "2026-01-05 10:00:00Z"), (a, "w1", "delivered", "2026-01-05 10:00:10Z"),
        (a, "w1", "read", "2026-01-05 10:01:10Z"), (a, "w1", "sent", "2026-01-05 10:00:30Z"),
        (a, "w2", "sent", "2026-01-06 09:00:00Z"), (a, "w2", "delivered", "2026-01-06 09:00:20Z"),
        (a, "w2", "read", "2026-01-06 09:02:20Z"),
        (a, "w3", "sent", "2026-01-06 09:00:00Z"), (a, "w3", "failed", "2026-01-06 09:00:05Z"),
        (a, "w5", "sent", "2026-01-06 09:00:00Z"), (a, "w5", "delivered", "2026-01-06 09:00:40Z"),
        (b, "w4", "sent", "2026-01-07 12:00:00Z"), (b, "w4", "delivered", "2026-01-07 12:00:30Z"),
    ]  # fmt: skip
    for channel, pid, status, at in statuses:
        db.execute(
            """INSERT INTO whatsapp_handler.message_status_events (channel_id, provider_message_id, status, occurred_at,
                                                                  received_at)
               VALUES (%s, %s, %s, %s::timestamptz, %s::timestamptz + interval '1 second')""",
            (channel, pid, status, at, at),
        )
    # Dead letters: two undelivered messages of B (their bodies carry the phone), and one
    # webhook of no known channel.
    for body in BODIES[:2]:
        db.execute(
            "SELECT pgmq.send('outbound_dlq', %s)",
            (Jsonb({"message": {"channel_id": b, "to": PHONES["u4"], "body": body}, "reason": "rejected"}),),
        )
    db.execute(
        "SELECT pgmq.send('inbound_dlq', %s)",
        (Jsonb({"webhook_event_id": 999999, "received_at": "2026-01-07T00:00:00Z", "provider": "meta"}),),
    )
    db.execute("SELECT whatsapp_handler.job_analytics_refresh('2000-01-01')")
    return {"A": a, "B": b, **users}
