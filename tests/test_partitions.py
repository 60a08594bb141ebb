"""create_partition / create_partitions: naming, idempotence, routing and refusals."""

from __future__ import annotations

import pytest

from tests.helpers import raises_sqlstate


def partitions(db, table: str) -> list[str]:
    rows = db.execute(
        "SELECT c.relname FROM pg_partition_tree(%s::regclass) t JOIN pg_class c ON c.oid = t.relid "
        "WHERE t.level = 1 ORDER BY c.relname",
        (f"whatsapp_handler.{table}",),
    ).fetchall()
    return [r["relname"] for r in rows]


def test_deploy_made_partitions_ahead_and_a_default(db):
    days = [p for p in partitions(db, "webhook_events") if p != "webhook_events_default"]
    assert len(days) >= 8 and "webhook_events_default" in partitions(db, "webhook_events")
    assert len([p for p in partitions(db, "messages") if p != "messages_default"]) >= 3


def test_create_partition_is_idempotent_and_named_for_its_lower_bound(db):
    call = (
        "SELECT whatsapp_handler.create_partition('whatsapp_handler.messages', '2031-03-01Z', '2031-04-01Z')::text AS p"
    )
    first = db.execute(call).fetchone()["p"]
    assert first == "whatsapp_handler.messages_p20310301"
    assert db.execute(call).fetchone()["p"] == first
    owner = db.execute(
        "SELECT relowner::regrole::text AS o FROM pg_class WHERE oid = %s::regclass", (first,)
    ).fetchone()
    assert owner["o"] == "whatsapp_handler_owner"


def test_rows_land_in_their_partition_and_strays_in_the_default(db):
    db.execute(
        "SELECT whatsapp_handler.create_partition('whatsapp_handler.webhook_events', '2031-03-01Z', '2031-03-02Z')"
    )
    db.execute(
        "INSERT INTO whatsapp_handler.webhook_events (provider, payload, received_at) VALUES "
        "('meta', '{}', '2031-03-01 12:00Z'), ('meta', '{}', '2040-01-01Z')"
    )
    where = db.execute(
        "SELECT tableoid::regclass::text AS p FROM whatsapp_handler.webhook_events ORDER BY received_at"
    ).fetchall()
    assert [r["p"] for r in where] == [
        "whatsapp_handler.webhook_events_p20310301",
        "whatsapp_handler.webhook_events_default",
    ]
    # A partition whose rows already sit in the default one is refused, plainly.
    with raises_sqlstate("WH010"):
        db.execute(
            "SELECT whatsapp_handler.create_partition('whatsapp_handler.webhook_events', '2040-01-01Z', '2040-01-02Z')"
        )


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ("'whatsapp_handler.users', '2031-01-01Z', '2031-02-01Z'", "WH008"),
        ("'whatsapp_handler.messages', '2031-02-01Z', '2031-01-01Z'", "WH008"),
        ("'whatsapp_handler.messages', '2031-01-01 06:00Z', '2031-02-01Z'", "WH008"),
        ("'whatsapp_handler.messages', '2031-01-15Z', '2031-02-15Z'", None),
    ],
)
def test_create_partition_refuses_bad_ranges(db, args, code):
    if code is None:  # set up an overlap: the existing January partition blocks mid-January
        db.execute(
            "SELECT whatsapp_handler.create_partition('whatsapp_handler.messages', '2031-01-01Z', '2031-02-01Z')"
        )
        code = "WH010"
    with raises_sqlstate(code):
        db.execute(f"SELECT whatsapp_handler.create_partition({args})")


def test_create_partitions_ahead(db):
    made = db.execute(
        "SELECT p::text FROM whatsapp_handler.create_partitions('whatsapp_handler.webhook_events', 'day', 30) AS p"
    ).fetchall()
    assert len(made) == 31
    with raises_sqlstate("WH008"):
        db.execute("SELECT whatsapp_handler.create_partitions('whatsapp_handler.webhook_events', 'hour', 3)")
