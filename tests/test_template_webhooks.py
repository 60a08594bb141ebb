"""Meta's template webhooks keep the registry current (issue 14, templates/status_updates): a
message_template_status_update moves the template on every Meta channel of the account it came
from (and only there), emits template.status_changed about each channel, and a paused or
disabled template is refused at send time; category and quality updates are kept too. Every
webhook is posted as the relay posts it: one ingest_meta call with the body Meta sends."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import psycopg
import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p
from tests.helpers import outbox_events, raises_sqlstate

ACCOUNT = p.META_ACCOUNT_ID
OTHER_ACCOUNT = "555000111222"
PHONE = "+447700900123"
WA_ID = PHONE.lstrip("+")
NAME, LANGUAGE = "parcel_update", "en_GB"
BODY_PARAMETERS = [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]
SEND = {"type": "template", "template": {"name": NAME, "language": {"code": LANGUAGE}, "components": BODY_PARAMETERS}}


@dataclass
class Registry:
    db: psycopg.Connection
    first: int  # the account's number that meta_text's webhooks reach
    second: int  # a second number of the same account
    other: int  # a number of another account (another brand), with a template of the same name
    key: str  # an API key that sends on all three

    def ingest(self, body: dict) -> dict:
        return self.db.execute("SELECT whatsapp_handler.ingest_meta(%s, 'cid-tpl') AS r", (Jsonb(body),)).fetchone()[
            "r"
        ]

    def template(self, channel: int) -> dict:
        return self.db.execute(
            "SELECT * FROM whatsapp_handler.message_templates WHERE channel_id = %s AND name = %s AND language = %s",
            (channel, NAME, LANGUAGE),
        ).fetchone()

    def send(self, channel: int, idem: str) -> dict:
        return self.db.execute(
            "SELECT * FROM whatsapp_handler.send_message(%s, %s, %s, 'cid-1')",
            (hashlib.sha256(self.key.encode()).digest(), Jsonb({"channel_id": channel, "to": PHONE, **SEND}), idem),
        ).fetchone()


def text_from(phone_number_id: str, account: str, wamid: str) -> dict:
    """A person's message to a number, in a webhook of the account the number belongs to."""
    body = p.meta_text(WA_ID, wamid, phone_number_id=phone_number_id)
    body["entry"][0]["id"] = account
    return body


@pytest.fixture
def registry(db: psycopg.Connection) -> Registry:
    def channel(ref: str, phone: str, brand: str) -> int:
        return db.execute("SELECT whatsapp_handler.add_channel('meta', %s, %s, %s, %s) AS id",
                          (ref, phone, f"{brand} {ref}", brand)).fetchone()["id"]  # fmt: skip

    first = channel(p.META_PHONE_NUMBER_ID, "+15550001111", "acme")
    second = channel("1234567891", "+15550001112", "acme")
    other = channel("998877665544", "+15550005555", "globex")
    for ch in (first, second, other):
        db.execute(
            "SELECT whatsapp_handler.template_upsert(%s, %s, %s, 'utility', 'approved', %s)",
            (ch, NAME, LANGUAGE, Jsonb([{"type": "BODY", "text": "Hi {{1}}, your parcel is on its way"}])),
        )
    key = db.execute(
        "SELECT api_key FROM whatsapp_handler.api_key_create('acme', %s, ARRAY['send', 'read'])",
        ([first, second, other],),
    ).fetchone()["api_key"]
    reg = Registry(db, first, second, other, key)
    # Each number's webhooks say which account it belongs to (entry.id).
    reg.ingest(text_from(p.META_PHONE_NUMBER_ID, ACCOUNT, "wamid.IN1"))
    reg.ingest(text_from("1234567891", ACCOUNT, "wamid.IN2"))
    reg.ingest(text_from("998877665544", OTHER_ACCOUNT, "wamid.IN3"))
    return reg


def test_the_numbers_learn_their_account_from_their_webhooks(registry: Registry) -> None:
    rows = registry.db.execute(
        "SELECT channel_id, account_id FROM whatsapp_handler.meta_channel_accounts ORDER BY channel_id"
    ).fetchall()
    assert [(r["channel_id"], r["account_id"]) for r in rows] == [
        (registry.first, ACCOUNT), (registry.second, ACCOUNT), (registry.other, OTHER_ACCOUNT)
    ]  # fmt: skip


def test_a_pause_moves_the_accounts_registry_emits_events_and_refuses_the_send(registry: Registry) -> None:
    assert registry.send(registry.first, "before")["message_id"] > 0
    result = registry.ingest(
        p.meta_account_body("message_template_status_update", p.meta_template_status(NAME, LANGUAGE, "PAUSED",
                                                                                      reason="LOW_QUALITY"))
    )  # fmt: skip
    assert (result["outcome"], result["templates"], result["templates_unmatched"]) == ("processed", 2, 0)
    for ch in (registry.first, registry.second):
        row = registry.template(ch)
        assert (row["status"], row["status_reason"]) == ("paused", "LOW_QUALITY")
        assert row["provider_template_id"] == str(p.TEMPLATE_ID)  # found by name; found by id from now on
    assert registry.template(registry.other)["status"] == "approved"  # another account's template of that name
    events = outbox_events(registry.db, "template.status_changed")
    assert [(e["aggregate_type"], e["aggregate_id"], e["_headers"]["x-pgmq-group"]) for e in events] == [
        ("channel", registry.first, f"channel:{registry.first}"),
        ("channel", registry.second, f"channel:{registry.second}"),
    ]
    assert events[0]["payload"] == {
        "channel_id": registry.first, "name": NAME, "language": LANGUAGE, "status": "paused",
        "previous_status": "approved", "reason": "LOW_QUALITY", "provider_template_id": str(p.TEMPLATE_ID),
    }  # fmt: skip
    with raises_sqlstate("WH066"):
        registry.send(registry.second, "paused")
    assert registry.send(registry.other, "elsewhere")["message_id"] > 0
    # Reinstated: approved again, and sent again.
    registry.ingest(p.meta_account_body("message_template_status_update",
                                        p.meta_template_status(NAME, LANGUAGE, "REINSTATED")))  # fmt: skip
    assert registry.template(registry.first)["status"] == "approved"
    assert registry.send(registry.first, "after")["message_id"] > 0
    assert [e["payload"]["status"] for e in outbox_events(registry.db, "template.status_changed")] == [
        "paused", "paused", "approved", "approved"
    ]  # fmt: skip


@pytest.mark.parametrize(("event", "status"), [("DISABLED", "disabled"), ("REJECTED", "rejected")])
def test_disabled_and_rejected_templates_are_refused(registry: Registry, event: str, status: str) -> None:
    registry.ingest(p.meta_account_body("message_template_status_update",
                                        p.meta_template_status(NAME, LANGUAGE, event)))  # fmt: skip
    assert registry.template(registry.first)["status"] == status
    with raises_sqlstate("WH066"):
        registry.send(registry.first, "refused")


def test_an_update_by_template_id_reaches_the_row_whatever_the_account(registry: Registry) -> None:
    registry.db.execute(
        "UPDATE whatsapp_handler.message_templates SET provider_template_id = '42' WHERE channel_id = %s",
        (registry.other,),
    )
    result = registry.ingest(p.meta_account_body(
        "message_template_status_update", p.meta_template_status(NAME, LANGUAGE, "DISABLED", template_id=42),
        account_id="777"))  # fmt: skip
    assert result["templates"] == 1
    assert [registry.template(ch)["status"] for ch in (registry.first, registry.second, registry.other)] == [
        "approved", "approved", "disabled"
    ]  # fmt: skip


def test_an_update_that_finds_no_template_is_kept_raw(registry: Registry) -> None:
    result = registry.ingest(p.meta_account_body(
        "message_template_status_update", p.meta_template_status("no_such_template", LANGUAGE, "PAUSED", template_id=7)
    ))  # fmt: skip
    assert (result["outcome"], result["templates"], result["templates_unmatched"]) == ("stored", 0, 1)
    raw = registry.db.execute(
        "SELECT outcome FROM whatsapp_handler.webhook_events WHERE id = %s", (result["webhook_event_id"],)
    ).fetchone()
    assert raw["outcome"] == "stored"
    assert outbox_events(registry.db, "template.status_changed") == []


def test_a_repeated_update_announces_nothing_twice(registry: Registry) -> None:
    body = p.meta_account_body("message_template_status_update", p.meta_template_status(NAME, LANGUAGE, "PAUSED"))
    registry.ingest(body)
    registry.ingest(body)
    assert len(outbox_events(registry.db, "template.status_changed")) == 2  # one per channel, once


def test_category_and_quality_updates_are_kept(registry: Registry) -> None:
    registry.ingest(p.meta_account_body("template_category_update",
                                        p.meta_template_category(NAME, LANGUAGE, "MARKETING", "UTILITY")))  # fmt: skip
    registry.ingest(p.meta_account_body("message_template_quality_update",
                                        p.meta_template_quality(NAME, LANGUAGE, "RED", "GREEN")))  # fmt: skip
    row = registry.template(registry.first)
    assert (row["category"], row["quality_score"], row["status"]) == ("marketing", "red", "approved")
    assert registry.template(registry.other)["category"] == "utility"
    [first, second] = outbox_events(registry.db, "template.category_changed")
    assert (first["aggregate_id"], first["payload"]["category"], first["payload"]["previous_category"]) == (
        registry.first, "marketing", "utility"
    )  # fmt: skip
    assert second["aggregate_id"] == registry.second
    # A marketing template needs the person's opt-in now (consent/consents).
    with raises_sqlstate("WH068"):
        registry.send(registry.first, "now-marketing")


def test_an_unknown_event_is_kept_raw(registry: Registry) -> None:
    result = registry.ingest(
        p.meta_account_body("message_template_status_update", p.meta_template_status(NAME, LANGUAGE, "LOCKED"))
    )
    # Not a failure: LOCKED says whether it may be edited, not whether it may be sent.
    assert (result["outcome"], result["templates"], result["templates_unmatched"]) == ("stored", 0, 0)
    assert registry.template(registry.first)["status"] == "approved"


def test_through_the_relay_a_pause_moves_the_registry_and_a_miss_is_counted(registry: Registry, relay) -> None:
    """Posted as Meta posts it: signed with the app's secret, no phone number in the body."""
    from tests.relay import post_meta, scrape

    base = relay()
    paused = p.meta_account_body("message_template_status_update", p.meta_template_status(NAME, LANGUAGE, "PAUSED"))
    response = post_meta(base, paused)
    assert response.status_code == 200, response.text
    assert (response.json()["outcome"], response.json()["templates"]) == ("processed", 2)
    assert registry.template(registry.first)["status"] == "paused"
    with raises_sqlstate("WH066"):
        registry.send(registry.first, "through-the-relay")
    assert scrape(base).get(("whatsapp_template_updates_unmatched_total", ()), 0) == 0
    missed = p.meta_account_body("message_template_status_update",
                                 p.meta_template_status("not_listed", LANGUAGE, "DISABLED", template_id=9))  # fmt: skip
    assert post_meta(base, missed).json()["outcome"] == "stored"
    assert scrape(base)[("whatsapp_template_updates_unmatched_total", ())] == 1


def test_doctor_names_a_meta_channel_its_template_webhooks_cannot_reach(registry: Registry) -> None:
    from app.doctor import _meta_templates

    assert [(c.name, c.status) for c in _meta_templates(registry.db)] == [("meta templates", "ok")]
    fourth = registry.db.execute(
        "SELECT whatsapp_handler.add_channel('meta', '4444444444', '+15550004444', 'new number', 'acme') AS id"
    ).fetchone()["id"]
    registry.db.execute(
        "SELECT whatsapp_handler.template_upsert(%s, %s, %s, 'utility', 'approved', %s)",
        (fourth, NAME, LANGUAGE, Jsonb([{"type": "BODY", "text": "Hi {{1}}"}])),
    )
    [check] = _meta_templates(registry.db)
    assert (check.name, check.status) == (f"meta templates channel {fourth}", "warn")
    assert "cannot reach 1 of its 1" in check.found
    registry.ingest(text_from("4444444444", ACCOUNT, "wamid.IN4"))  # its first webhook names the account
    assert [(c.name, c.status) for c in _meta_templates(registry.db)] == [("meta templates", "ok")]


def test_an_empty_template_id_is_no_id(registry: Registry) -> None:
    body = p.meta_account_body("message_template_status_update",
                               p.meta_template_status(NAME, LANGUAGE, "PAUSED", template_id=""))  # fmt: skip
    assert registry.ingest(body)["templates"] == 2  # found by name; nothing recorded as its id
    assert registry.template(registry.first)["provider_template_id"] is None
