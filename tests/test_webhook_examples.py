"""The example webhook bodies (app/providers/examples/) are what docs/webhooks.md shows and what
the OpenAPI document offers, and the relay takes each one, signed, as the doc says it does."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import httpx
import pytest

from app.openapi import EXAMPLES
from app.settings import PROJECT_DIR
from kit import signing
from tests.relay import META_SECRET, TWILIO_TOKEN, post_twilio, relay_environment

EVOLUTION_APIKEY = "B6D711FCDE4D4FD5936544120E713976"
CHANNELS = [
    {"provider": "meta", "ref": "106540352242922", "phone": "+15550001111", "name": "Support", "secret": META_SECRET},
    {"provider": "twilio", "ref": "whatsapp:+15550002222", "phone": "+15550002222", "name": "Sales",
     "secret": TWILIO_TOKEN},
    {"provider": "evolution", "ref": "shop", "phone": "+15550003333", "name": "Shop", "secret": EVOLUTION_APIKEY},
]  # fmt: skip
FILES = sorted(p.name for p in EXAMPLES.iterdir())
# As a conversation would go: first contact, the terms accepted by button, a status; then the
# same person on the other providers; last, what the providers say of the channels themselves.
ORDER = ["meta_text.json", "meta_button_reply.json", "meta_status.json", "twilio_inbound.form", "twilio_status.form",
         "evolution_upsert.json", "evolution_update.json",
         "evolution_connection.json", "meta_account_update.json"]  # fmt: skip


def test_there_is_an_example_of_each_kind_the_doc_promises():
    assert sorted(ORDER) == FILES


@pytest.mark.parametrize("name", FILES)
def test_the_doc_shows_each_example_as_it_is(name):
    assert (EXAMPLES / name).read_text().rstrip() in (PROJECT_DIR / "docs" / "webhooks.md").read_text()


@pytest.fixture
def base(db, relay_db_url, http_server) -> str:
    for c in CHANNELS:
        add = "SELECT whatsapp_handler.add_channel(%s, %s, %s, %s)"
        db.execute(add, (c["provider"], c["ref"], c["phone"], c["name"]))
    return http_server.start(relay_environment(relay_db_url, channels=CHANNELS))


def post(base: str, name: str) -> httpx.Response:
    raw = (EXAMPLES / name).read_bytes()
    provider = name.split("_", 1)[0]
    if provider == "meta":  # signed over the file's bytes, as they are
        headers = signing.meta_headers(raw, META_SECRET)
        return httpx.post(f"{base}/webhooks/meta", content=raw, headers=headers, timeout=10)
    if provider == "twilio":
        return post_twilio(base, dict(parse_qsl(raw.decode().strip(), keep_blank_values=True)))
    # Evolution: the apikey is in the body.
    headers = {"Content-Type": "application/json"}
    return httpx.post(f"{base}/webhooks/evolution", content=raw, headers=headers, timeout=10)


def provider_ids(db, table: str) -> list[str]:
    return [r["id"] for r in db.execute(f"SELECT provider_message_id AS id FROM whatsapp_handler.{table} ORDER BY 1")]


def test_the_relay_takes_every_example_as_the_doc_says(base, db):
    results = {}
    for name in ORDER:
        answer = post(base, name)
        assert answer.status_code == 200, (name, answer.text)
        results[name] = answer.json() if "json" in answer.headers["content-type"] else answer.text
    for name in ("meta_text.json", "meta_button_reply.json", "evolution_upsert.json"):
        assert results[name]["outcome"] == "processed" and results[name]["messages"] == 1, (name, results[name])
    for name in ("meta_status.json", "evolution_update.json"):
        assert results[name]["outcome"] == "processed" and results[name]["statuses"] == 1, (name, results[name])
    assert results["meta_text.json"]["registrations"] == 1  # first contact registers the person
    # The channels' standing: the instance logged out, the account (learned from meta_text.json's entry) banned.
    assert results["evolution_connection.json"]["connection"] == "changed"
    assert results["meta_account_update.json"]["account_updates"] == 1
    down = "SELECT count(*) AS n FROM whatsapp_handler.worker_channel_standing() WHERE NOT connected"
    assert db.execute(down).fetchone()["n"] == 2
    assert "<Response" in results["twilio_inbound.form"]
    inbound = provider_ids(db, "messages")
    assert "SM3f9a2c1e8b7d6a5f4e3d2c1b0a9f8e7d" in inbound and "3EB0C767D26A1D8A6B3F" in inbound
    statuses = provider_ids(db, "message_status_events")
    assert "SM8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d" in statuses  # the Twilio status callback, routed by From
    # The button's id is what the conversation read: the terms are accepted.
    assert db.execute("SELECT terms_version FROM whatsapp_handler.users").fetchall()[0]["terms_version"] is not None


def test_the_openapi_document_offers_the_examples(base):
    schema = httpx.get(f"{base}/schema/openapi.json", timeout=10).json()
    for route, media, names in (
        ("/webhooks/meta", "application/json", {"text", "button_reply", "status", "account_update"}),
        ("/webhooks/twilio", "application/x-www-form-urlencoded", {"inbound", "status"}),
        ("/webhooks/evolution", "application/json", {"upsert", "update", "connection"}),
    ):
        offered = schema["paths"][route]["post"]["requestBody"]["content"][media]["examples"]
        assert set(offered) == names, route
        provider = route.rsplit("/", 1)[1]
        for name, example in offered.items():
            path = EXAMPLES / f"{provider}_{name}.json"
            if path.exists():
                assert example["value"] == json.loads(path.read_text())
