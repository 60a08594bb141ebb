"""analytics.delivery_costs_daily (issue 14, analytics/delivery_costs): billable messages by pricing
category and failures by error code, per channel and UTC day, recounted by job_analytics_refresh from
the statuses Meta reported (posted as the relay posts them), under the analysts' row-level security:
an analyst of one channel sees that channel's rows only."""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from kit import payloads as p
from tests.conftest import LOGIN_PASSWORD

WA_ID = "447700900123"
DAY = dt.date(2026, 1, 5)
AT = int(dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.UTC).timestamp())
UNDELIVERABLE = p.meta_status_error(131026, "Message undeliverable", "Message could not be delivered")
STOPPED = p.meta_status_error(131050, "Unable to deliver the message", "The user has stopped marketing messages")
OTHER_REF = "998877665544"


def post(db: psycopg.Connection, ref: str, *statuses: dict) -> None:
    body = p.meta_body(p.meta_value(statuses=list(statuses), phone_number_id=ref))
    db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(body),))


@pytest.fixture
def channels(db) -> dict[str, int]:
    def add(ref: str, phone: str) -> int:
        return db.execute(
            "SELECT whatsapp_handler.add_channel('meta', %s, %s, 'costs') AS id", (ref, phone)
        ).fetchone()["id"]

    a, b = add(p.META_PHONE_NUMBER_ID, "+15550001111"), add(OTHER_REF, "+15550005555")
    ref = p.META_PHONE_NUMBER_ID
    # On A, on 2026-01-05 (provider clocks):
    post(db, ref, p.meta_priced_status("wamid.m1", "sent", WA_ID, "utility", at=AT),
         p.meta_priced_status("wamid.m1", "delivered", WA_ID, "utility", at=AT + 5))  # fmt: skip
    # a failure one device reported after another's delivery: delivered, not failed
    post(db, ref, p.meta_priced_status("wamid.m2", "sent", WA_ID, "marketing", at=AT),
         p.meta_priced_status("wamid.m2", "delivered", WA_ID, "marketing", at=AT + 5),
         p.meta_status("wamid.m2", "failed", WA_ID, AT + 6, errors=[UNDELIVERABLE]))  # fmt: skip
    post(db, ref, p.meta_status("wamid.m3", "sent", WA_ID, AT),
         p.meta_status("wamid.m3", "failed", WA_ID, AT + 9, errors=[UNDELIVERABLE]))  # fmt: skip
    post(db, ref, p.meta_status("wamid.m4", "failed", WA_ID, AT + 1, errors=[STOPPED]))
    post(db, ref, p.meta_priced_status("wamid.m5", "sent", WA_ID, "service", billable=False, at=AT),
         p.meta_status("wamid.m5", "read", WA_ID, AT + 30))  # fmt: skip
    # On B, the same day: one marketing message delivered.
    post(db, OTHER_REF, p.meta_priced_status("wamid.m6", "sent", WA_ID, "marketing", at=AT),
         p.meta_priced_status("wamid.m6", "delivered", WA_ID, "marketing", at=AT + 3))  # fmt: skip
    db.execute("SELECT whatsapp_handler.job_analytics_refresh()")
    return {"A": a, "B": b}


@pytest.fixture
def analyst(cluster, db_name, db):
    """analyst(channel ids) -> a connection as a new login made an analyst of those channels only."""
    made: list[tuple[str, psycopg.Connection]] = []

    def _make(channel_ids: list[int]) -> psycopg.Connection:
        login = f"wh_analyst_{uuid.uuid4().hex[:12]}"
        db.execute(f"CREATE ROLE {login} LOGIN PASSWORD '{LOGIN_PASSWORD}'")
        db.execute("SELECT whatsapp_handler.add_analyst(%s, %s)", (login, channel_ids))
        conn = psycopg.connect(cluster.url(db_name, user=login, password=LOGIN_PASSWORD), autocommit=True,
                               row_factory=dict_row)  # fmt: skip
        made.append((login, conn))
        return conn

    yield _make
    for login, conn in made:
        conn.close()
        db.execute(f"DROP ROLE {login}")


def costs(conn: psycopg.Connection) -> set[tuple]:
    return {
        (r["day"], r["channel_id"], r["category"], r["error_code"], r["messages"], r["billable"], r["failed"])
        for r in conn.execute("SELECT * FROM analytics.delivery_costs_daily").fetchall()
    }


def test_billable_by_category_and_failures_by_code_as_an_analyst_of_one_channel(channels, analyst):
    a, b = channels["A"], channels["B"]
    assert costs(analyst([a])) == {
        (DAY, a, "utility", None, 1, 1, 0),
        (DAY, a, "marketing", None, 1, 1, 0),  # its failure was outranked by its delivery
        (DAY, a, "unpriced", "131026", 1, 0, 1),
        (DAY, a, "unpriced", "131050", 1, 0, 1),
        (DAY, a, "service", None, 1, 0, 0),
    }
    assert costs(analyst([b])) == {(DAY, b, "marketing", None, 1, 1, 0)}
    assert costs(analyst([a, b])) == costs(analyst([a])) | costs(analyst([b]))


def test_a_late_delivery_moves_a_failure_on_the_next_refresh(db, channels, analyst):
    a = channels["A"]
    post(db, p.META_PHONE_NUMBER_ID, p.meta_status("wamid.m3", "delivered", WA_ID, AT + 60))
    db.execute("SELECT whatsapp_handler.job_analytics_refresh(%s)", (dt.datetime(2026, 1, 5, tzinfo=dt.UTC),))
    seen = costs(analyst([a]))
    assert (DAY, a, "unpriced", "131026", 1, 0, 1) not in seen
    assert (DAY, a, "unpriced", None, 1, 0, 0) in seen
    assert sum(row[4] for row in seen) == 5  # the same five messages, none counted twice
    # A refresh with nothing new changes nothing.
    db.execute("SELECT whatsapp_handler.job_analytics_refresh(%s)", (dt.datetime(2026, 1, 5, tzinfo=dt.UTC),))
    assert costs(analyst([a])) == seen


def test_an_analyst_without_the_channel_sees_nothing_and_cannot_read_the_table(db, channels, analyst):
    conn = analyst([channels["B"]])
    assert {row[1] for row in costs(conn)} == {channels["B"]}
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT * FROM whatsapp_handler.analytics_delivery_costs_daily")
