"""Each channel's standing as its provider tells it (channels/standing): an Evolution instance's connection
(CONNECTION_UPDATE), a Meta number's quality and its account's events (phone_number_quality_update,
account_update). The state moves with an event on each real change, a late older update does not win, and
/metrics (the worker's ChannelCollector) and doctor read the same rule of up and down."""

from __future__ import annotations

import psycopg
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from psycopg.types.json import Jsonb

from app.doctor import _channel_standing
from app.metrics import ChannelCollector
from app.worker import CHANNEL_STANDING
from kit import payloads as p
from tests.helpers import outbox_events

INSTANCE = "shop"


@pytest.fixture
def evolution(db: psycopg.Connection) -> int:
    return db.execute(
        "SELECT whatsapp_handler.add_channel('evolution', %s, '+15550003333', 'Shop') AS id", (INSTANCE,)
    ).fetchone()["id"]


def connection(db: psycopg.Connection, state: str, reason: int = 200, at: str | None = None,
               instance: str = INSTANCE) -> dict:  # fmt: skip
    body = p.evolution_connection(instance, state, reason, date_time=at)
    return db.execute("SELECT whatsapp_handler.ingest_evolution(%s, NULL) AS r", (Jsonb(body),)).fetchone()["r"]


def standing(db: psycopg.Connection, channel: int) -> dict:
    return db.execute("SELECT * FROM whatsapp_handler.channel_standing WHERE channel_id = %s", (channel,)).fetchone()


def scrape(conn: psycopg.Connection) -> str:
    """The worker's gauges, read as the worker reads them (its own login, its own query)."""
    collector = ChannelCollector()
    collector.rows = [tuple(r.values()) for r in conn.execute(CHANNEL_STANDING).fetchall()]
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def doctor(db: psycopg.Connection) -> list[str]:
    return [check.line() for check in _channel_standing(db)]


def test_a_disconnect_and_a_reconnect_move_the_state_the_event_the_gauge_and_doctor(db, evolution, connect_as):
    worker = connect_as("worker")
    label = f'channel="{evolution}",provider="evolution"'
    # Never told anything: up, and doctor finds nothing.
    assert f"whatsapp_channel_connected{{{label}}} 1.0" in scrape(worker)
    assert doctor(db) == ["ok    channel standing: 1 active channels, none down or flagged by its provider"]

    result = connection(db, "open", at="2026-12-01T10:00:00.000Z")
    assert (result["outcome"], result["connection"]) == ("processed", "changed")
    result = connection(db, "close", 401, at="2026-12-01T10:05:00.000Z")
    assert (result["outcome"], result["connection"]) == ("processed", "changed")
    row = standing(db, evolution)
    assert (row["connection"], row["connection_reason"]) == ("close", 401)
    changes = outbox_events(db, "channel.connection_changed")
    assert [(e["payload"]["state"], e["payload"]["previous_state"]) for e in changes] == [
        ("open", None),
        ("close", "open"),
    ]
    closed = changes[-1]
    assert (closed["aggregate_type"], closed["aggregate_id"]) == ("channel", evolution)
    assert closed["payload"]["reason"] == 401 and closed["payload"]["connected"] is False
    assert closed["_headers"]["x-pgmq-group"] == f"channel:{evolution}"
    text = scrape(worker)
    assert f"whatsapp_channel_connected{{{label}}} 0.0" in text
    assert f'whatsapp_channel_connection_state{{{label},reason="401",state="close"}} 1.0' in text
    assert f"whatsapp_channel_state_age_seconds{{{label}}}" in text
    [line] = doctor(db)
    assert line.startswith(f"FAIL  channel standing {evolution}: Shop: its Evolution instance is close (reason 401)")
    assert line.endswith("(docs/runbook.md#channel-disconnected)")

    # Reconnected: through connecting, back to open.
    connection(db, "connecting", 200, at="2026-12-01T10:06:00.000Z")
    assert not doctor(db)[0].startswith("ok")
    connection(db, "open", 200, at="2026-12-01T10:07:00.000Z")
    assert standing(db, evolution)["connection"] == "open"
    assert [e["payload"]["state"] for e in outbox_events(db, "channel.connection_changed")][-2:] == [
        "connecting",
        "open",
    ]
    text = scrape(worker)
    assert f"whatsapp_channel_connected{{{label}}} 1.0" in text
    assert f'whatsapp_channel_connection_state{{{label},reason="200",state="open"}} 1.0' in text
    assert doctor(db)[0].startswith("ok")


def test_the_same_state_again_queues_nothing(db, evolution):
    connection(db, "close", 428, at="2026-12-01T10:00:00Z")
    changed_at = standing(db, evolution)["connection_changed_at"]
    again = connection(db, "close", 408, at="2026-12-01T10:01:00Z")
    assert (again["outcome"], again["connection"]) == ("processed", "repeat")
    assert len(outbox_events(db, "channel.connection_changed")) == 1
    row = standing(db, evolution)
    # The reason and time are the latest; the state has been close since the first.
    assert (row["connection_reason"], row["connection_changed_at"]) == (408, changed_at)


def test_a_late_older_update_does_not_win(db, evolution):
    connection(db, "close", 401, at="2026-12-01T10:05:00.000Z")
    # The open of 10:00 arrives after the close of 10:05 (a retry, a parallel delivery).
    late = connection(db, "open", at="2026-12-01T10:00:00.000Z")
    assert (late["outcome"], late["connection"]) == ("processed", "older")
    assert standing(db, evolution)["connection"] == "close"
    assert [e["payload"]["state"] for e in outbox_events(db, "channel.connection_changed")] == ["close"]
    # A newer one (another time zone written, the same clock) still moves it; one without a date goes by arrival.
    assert connection(db, "open", at="2026-12-01T07:06:00-03:00")["connection"] == "changed"
    assert connection(db, "close", 428)["connection"] == "changed"
    assert standing(db, evolution)["connection"] == "close"


def test_an_unknown_instances_connection_update_is_dead_lettered_and_applied_once_the_channel_exists(db):
    result = connection(db, "close", 401, instance="unknown-shop")
    assert result["outcome"] == "failed"
    stored = db.execute("SELECT outcome, error FROM whatsapp_handler.webhook_events").fetchone()
    assert stored["outcome"] == "failed" and stored["error"].startswith("WH003")
    assert db.execute("SELECT count(*) AS n FROM pgmq.q_inbound_dlq").fetchone()["n"] == 1
    # As for a message: add the channel, re-drive, and the update is applied.
    channel = db.execute(
        "SELECT whatsapp_handler.add_channel('evolution', 'unknown-shop', '+15550004444', 'Later') AS id"
    ).fetchone()["id"]
    assert db.execute("SELECT whatsapp_handler.redrive_inbound() AS r").fetchone()["r"]["redriven"] == 1
    assert standing(db, channel)["connection"] == "close"


def test_a_state_evolution_does_not_name_is_kept_raw_and_moves_nothing(db, evolution):
    for body in (p.evolution_connection(INSTANCE, "refused"), {"event": "CONNECTION_UPDATE", "instance": INSTANCE}):
        r = db.execute("SELECT whatsapp_handler.ingest_evolution(%s, NULL) AS r", (Jsonb(body),)).fetchone()["r"]
        assert r["outcome"] == "stored"
    assert standing(db, evolution) is None
    # A date that is not a date is no date: the update goes by arrival, and nothing fails.
    assert connection(db, "close", at="2026-13-45T99:00:00Z")["connection"] == "changed"
    assert standing(db, evolution)["connection_at"] is None


def account_update(db: psycopg.Connection, value: dict, at: int) -> dict:
    body = p.meta_account_body("account_update", value)
    body["entry"][0]["time"] = at
    return db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL) AS r", (Jsonb(body),)).fetchone()["r"]


def test_a_banned_meta_account_takes_its_channels_down_until_reinstated(db, channel_id, connect_as):
    worker = connect_as("worker")
    # Before any webhook of the number names its account, an account update finds no channel: kept raw.
    ban = {"event": "DISABLED_UPDATE", "ban_info": {"waba_ban_state": "DISABLE", "waba_ban_date": "December 1, 2026"}}
    assert account_update(db, ban, 1_764_000_000)["outcome"] == "stored"
    db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(p.meta_body(p.meta_value())),))

    result = account_update(db, ban, 1_764_000_100)
    assert (result["outcome"], result["account_updates"]) == ("processed", 1)
    row = standing(db, channel_id)
    assert row["account_disabled"] and row["account_event"] == "DISABLED_UPDATE"
    assert row["account_info"]["ban_info"]["waba_ban_state"] == "DISABLE"
    [event] = outbox_events(db, "channel.account_changed")
    assert event["payload"]["disabled"] is True and event["payload"]["connected"] is False
    assert f'whatsapp_channel_connected{{channel="{channel_id}",provider="meta"}} 0.0' in scrape(worker)
    [line] = doctor(db)
    assert line.startswith(f"FAIL  channel standing {channel_id}: Support: Meta disabled its WhatsApp Business Account")

    # The same ban again: nothing new. A violation notice (older than the ban) does not lift or replace it.
    account_update(db, ban, 1_764_000_200)
    account_update(db, {"event": "ACCOUNT_VIOLATION", "violation_info": {"violation_type": "SCAM"}}, 1_764_000_050)
    assert len(outbox_events(db, "channel.account_changed")) == 1
    assert standing(db, channel_id)["account_event"] == "DISABLED_UPDATE"

    reinstated = {"event": "DISABLED_UPDATE", "ban_info": {"waba_ban_state": "REINSTATE", "waba_ban_date": "x"}}
    account_update(db, reinstated, 1_764_000_300)
    assert not standing(db, channel_id)["account_disabled"]
    assert f'whatsapp_channel_connected{{channel="{channel_id}",provider="meta"}} 1.0' in scrape(worker)
    assert doctor(db)[0].startswith("ok")
    # A violation is a warning: the channel still sends.
    account_update(db, {"event": "ACCOUNT_VIOLATION", "violation_info": {"violation_type": "SCAM"}}, 1_764_000_400)
    [line] = doctor(db)
    assert line.startswith(
        f"warn  channel standing {channel_id}: Support: its account's last event is ACCOUNT_VIOLATION"
    )


def test_a_quality_update_is_kept_once_and_flags_the_channel_in_doctor(db, channel_id, connect_as):
    def quality(event: str, limit: str, at: int) -> dict:
        value = {"display_phone_number": "15550001111", "event": event, "current_limit": limit}
        body = p.meta_account_body("phone_number_quality_update", value)
        body["entry"][0]["time"] = at
        return db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL) AS r", (Jsonb(body),)).fetchone()["r"]

    assert quality("FLAGGED", "TIER_2K", 1_764_000_100)["quality_updates"] == 1
    assert quality("FLAGGED", "TIER_2K", 1_764_000_200)["quality_updates"] == 1  # found, but nothing new
    assert quality("UNFLAGGED", "TIER_2K", 1_764_000_000)["quality_updates"] == 1  # older: kept out
    assert [e["payload"]["event"] for e in outbox_events(db, "channel.quality_changed")] == ["FLAGGED"]
    assert f'whatsapp_channel_quality{{channel="{channel_id}",event="FLAGGED",limit="TIER_2K"}} 1.0' in scrape(
        connect_as("worker")
    )
    [line] = doctor(db)
    assert line.startswith(
        f"warn  channel standing {channel_id}: Support: Meta marked its number FLAGGED (limit TIER_2K)"
    )
    quality("UNFLAGGED", "TIER_2K", 1_764_000_300)
    assert doctor(db)[0].startswith("ok")


@pytest.mark.parametrize("login", ["relay", "worker", "consumer", "analyst"])
def test_roles_reach_the_standing_only_through_the_workers_function(db, evolution, connect_as, login):
    connection(db, "close", 401)
    conn = connect_as(login)
    read = "SELECT count(*) AS n FROM whatsapp_handler.worker_channel_standing()"
    if login == "worker":
        assert conn.execute(read).fetchone()["n"] == 1
    else:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(read)
    for statement in (
        "SELECT * FROM whatsapp_handler.channel_standing",
        "UPDATE whatsapp_handler.channel_standing SET connection = 'open'",
        f"SELECT whatsapp_handler._channel_connection_update({evolution}, 'open', 200, now())",
        "SELECT whatsapp_handler._meta_account_update('102290129340398', '{\"event\": \"ACCOUNT_DELETED\"}', now())",
        "SELECT whatsapp_handler._meta_quality_update('102290129340398', '{}', now())",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    assert standing(db, evolution)["connection"] == "close"
