"""Each provider's routing in SQL (the <provider>_channel_ref functions of its change,
dispatched by _channel_ref): which field of a body names the business number, for an
incoming message and for a status callback. The relay routes in Python too; these sample
bodies and answers are what the two must agree on."""

from __future__ import annotations

import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p

BUSINESS = "+15550004444"
USER = "+447700900123"
SID = "SM00000000000000000000000000000001"
META_REF = "444444444444"
TWILIO_REF = f"whatsapp:{BUSINESS}"
EVOLUTION_REF = "routing-instance"

SAMPLES = [
    ("meta", "message", p.meta_text(USER.lstrip("+"), "wamid.r1", phone_number_id=META_REF), META_REF),
    ("meta", "status", p.meta_body(p.meta_value(statuses=[p.meta_status("wamid.r1", "delivered", USER.lstrip("+"))],
                                                phone_number_id=META_REF)), META_REF),
    ("twilio", "message", p.twilio_inbound(SID, USER, BUSINESS), TWILIO_REF),
    ("twilio", "status", p.twilio_status(SID, "delivered", BUSINESS, USER), TWILIO_REF),
    ("evolution", "message", p.evolution_upsert(EVOLUTION_REF, USER, "3EB0C0FFEE"), EVOLUTION_REF),
    ("evolution", "status", p.evolution_update(EVOLUTION_REF, "3EB0C0FFEE", "DELIVERY_ACK"), EVOLUTION_REF),
]  # fmt: skip
IDS = [f"{provider}-{kind}" for provider, kind, _, _ in SAMPLES]
OWN = {
    "meta": "whatsapp_handler._meta_channel_ref(jsonb_path_query_first(%s::jsonb, '$.entry[0].changes[0].value'))",
    "twilio": "whatsapp_handler._twilio_channel_ref(%s::jsonb)",
    "evolution": "whatsapp_handler._evolution_channel_ref(%s::jsonb)",
}


@pytest.mark.parametrize(("provider", "kind", "body", "ref"), SAMPLES, ids=IDS)
def test_the_sql_routing_picks_the_business_numbers_field(db, provider, kind, body, ref):
    routed = db.execute(
        f"SELECT whatsapp_handler._channel_ref(%s, %s) AS via_dispatch, {OWN[provider]} AS via_provider",
        (provider, Jsonb(body), Jsonb(body)),
    ).fetchone()
    assert routed["via_dispatch"] == ref
    assert routed["via_provider"] == ref


@pytest.mark.parametrize(("provider", "kind", "body", "ref"), SAMPLES, ids=IDS)
def test_a_webhook_is_stored_under_the_channel_its_routing_names(db, provider, kind, body, ref):
    channel = db.execute(
        "SELECT whatsapp_handler.add_channel(%s, %s, %s, 'routing') AS id", (provider, ref, BUSINESS)
    ).fetchone()["id"]
    ingest = f"SELECT whatsapp_handler.ingest_{provider}(%s, 'routing') AS r"
    result = db.execute(ingest, (Jsonb(body),)).fetchone()["r"]
    # The normaliser routes the same way: a message is recorded, a status of an unknown
    # message changes nothing, and neither is dead-lettered for a missing channel.
    assert result["outcome"] == "processed"
    assert result["messages"] == (1 if kind == "message" else 0)
    stored = db.execute(
        "SELECT channel_id FROM whatsapp_handler.webhook_events WHERE id = %s", (result["webhook_event_id"],)
    ).fetchone()
    assert stored["channel_id"] == channel


def test_the_twilio_callback_rule(db):
    inbound = p.twilio_inbound("SM00000000000000000000000000000003", USER, BUSINESS, MessageStatus="received")
    status = p.twilio_status("SM00000000000000000000000000000003", "read", BUSINESS, USER)
    row = db.execute(
        "SELECT whatsapp_handler._twilio_is_callback(%s) AS inbound,"
        " whatsapp_handler._twilio_is_callback(%s) AS status, whatsapp_handler._twilio_channel_ref(%s) AS inbound_ref",
        (Jsonb(inbound), Jsonb(status), Jsonb(inbound)),
    ).fetchone()
    assert (row["inbound"], row["status"], row["inbound_ref"]) == (False, True, TWILIO_REF)
