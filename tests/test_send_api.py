"""POST /v1/messages, /v1/messages/batch and GET /v1/messages/{id} over real HTTP, as a backend uses them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p
from tests.helpers import outbound_messages
from tests.relay import assert_problem, scrape

PHONE = "+447700900123"
TEXT = {"type": "text", "text": {"body": "Your refund was sent"}}


@pytest.fixture
def api(relay: Callable[..., str], db: psycopg.Connection) -> dict[str, Any]:
    base = relay(max_body_bytes=16384)
    channels = {
        r["provider_ref"]: r["id"] for r in db.execute("SELECT id, provider_ref FROM whatsapp_handler.channels")
    }
    meta = channels[p.META_PHONE_NUMBER_ID]
    others = [c for ref, c in channels.items() if ref != p.META_PHONE_NUMBER_ID]

    def key(name: str, channel_ids: list[int]) -> str:
        return db.execute(
            "SELECT api_key FROM whatsapp_handler.api_key_create(%s, %s)", (name, channel_ids)
        ).fetchone()["api_key"]

    # A message from the person opens their window on the Meta channel.
    db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(p.meta_text(PHONE.lstrip("+"), "wamid.IN1")),))
    return {
        "base": base,
        "meta": meta,
        "other": others[0],
        "key": key("acme", [meta]),
        "other_key": key("globex", others),
    }


def post(
    api: dict, body: Any, idem: str | None = "k-1", key: str | None = None, path: str = "/v1/messages"
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or api['key']}"}
    if idem is not None:
        headers["Idempotency-Key"] = idem
    return httpx.post(api["base"] + path, json=body, headers=headers)


def message(api: dict, **extra: Any) -> dict[str, Any]:
    return {"channel_id": api["meta"], "to": PHONE, **TEXT, **extra}


def test_a_backend_sends_and_reads_back(api: dict, db: psycopg.Connection) -> None:
    sent = post(api, message(api), headers := "order-1")
    assert sent.status_code == 202, sent.text
    body = sent.json()
    assert body["status"] == "queued" and body["duplicate"] is False and "idempotent-replayed" not in sent.headers
    again = post(api, message(api), headers)
    assert again.status_code == 202 and again.json() == {**body, "duplicate": True}
    assert again.headers["idempotent-replayed"] == "true"
    assert len([m for m in outbound_messages(db) if m["kind"] == "business"]) == 1
    view = httpx.get(f"{api['base']}/v1/messages/{body['id']}", headers={"Authorization": f"Bearer {api['key']}"})
    assert view.status_code == 200 and view.json()["status"] == "queued" and view.json()["statuses"] == []


@pytest.mark.parametrize(
    ("body", "idem", "status", "code"),
    [
        ({"channel_id": 1, "to": PHONE, "type": "fax", "fax": {}}, "k", 422, "WH062"),  # unknown type
        ({"to": "12345", **TEXT}, "k", 422, "WH001"),  # malformed to (channel filled in below)
        (
            {"type": "template", "template": {"name": "x", "language": "en"}},
            "k",
            422,
            "WH062",
        ),  # template of the wrong shape
        ({**TEXT}, None, 400, None),  # no Idempotency-Key
        (
            {"type": "text", "text": {"body": "hi"}, "channel_id": 999999},
            "k",
            403,
            "WH061",
        ),  # unknown channel: not the key's
    ],
)
def test_bad_requests_get_a_problem_and_queue_nothing(api: dict, db: psycopg.Connection, body: dict, idem: str | None,
                                                      status: int, code: str | None) -> None:  # fmt: skip
    request = {"channel_id": api["meta"], "to": PHONE, **body}
    problem = assert_problem(post(api, request, idem), status)
    assert problem.get("code") == code
    if code and code.startswith("WH"):
        assert problem["hint"]
    assert [m for m in outbound_messages(db) if m["kind"] == "business"] == []


def test_an_idempotency_key_reused_for_another_body_is_refused(api: dict) -> None:
    assert post(api, message(api), "same").status_code == 202
    problem = assert_problem(post(api, {**message(api), "text": {"body": "other"}}, "same"), 422)
    assert problem["code"] == "WH069"


def test_outside_the_window_a_free_form_message_is_a_409(api: dict) -> None:
    problem = assert_problem(post(api, {**message(api), "to": "+447700900999"}), 409)
    assert problem["code"] == "WH064" and "template" in problem["hint"]


def test_keys_are_scoped_to_their_channels(api: dict) -> None:
    assert assert_problem(post(api, message(api, channel_id=api["other"])), 403)["code"] == "WH061"
    assert assert_problem(post(api, message(api), key=api["other_key"]), 403)["code"] == "WH061"
    assert assert_problem(post(api, message(api), key="whk_not_a_key"), 401)["code"] == "WH060"
    no_key = httpx.post(api["base"] + "/v1/messages", json=message(api), headers={"Idempotency-Key": "k"})
    assert assert_problem(no_key, 401) and no_key.headers["www-authenticate"] == "Bearer"
    sent = post(api, message(api)).json()
    other = httpx.get(
        f"{api['base']}/v1/messages/{sent['id']}", headers={"Authorization": f"Bearer {api['other_key']}"}
    )
    assert assert_problem(other, 404)["code"] == "WH070"


def test_an_oversized_or_non_object_body_is_refused(api: dict) -> None:
    assert_problem(post(api, {**message(api), "text": {"body": "x" * 20000}}), 413)
    assert_problem(post(api, [message(api)]), 400)
    raw = httpx.post(api["base"] + "/v1/messages", content=b"{not json",
                     headers={"Authorization": f"Bearer {api['key']}", "Idempotency-Key": "k",
                              "Content-Type": "application/json"})  # fmt: skip
    assert_problem(raw, 400)


def test_a_batch_answers_each_element(api: dict) -> None:
    batch = {"channel_id": api["meta"], "messages": [
        {"to": PHONE, **TEXT, "idempotency_key": "b1"},
        {"to": "+447700900999", **TEXT, "idempotency_key": "b2"},
    ]}  # fmt: skip
    answer = post(api, batch, idem=None, path="/v1/messages/batch")
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert results[0]["id"] and results[0]["code"] is None
    assert results[1]["id"] is None and results[1]["code"] == "WH064"
    assert_problem(
        post(api, {"channel_id": api["meta"], "messages": [], "extra": 1}, idem=None, path="/v1/messages/batch"), 400
    )


def test_each_send_is_counted_by_its_result(api: dict) -> None:
    post(api, message(api), "c-1")
    post(api, message(api), "c-1")
    post(api, {**message(api), "to": "+447700900999"}, "c-2")
    post(api, message(api), "c-3", key="whk_not_a_key")
    counted = {labels[0][1]: value for (name, labels), value in scrape(api["base"]).items()
               if name == "whatsapp_send_requests_total"}  # fmt: skip
    assert (counted["queued"], counted["duplicate"], counted["outside_window"], counted["unknown_key"]) == (1, 1, 1, 1)
    assert counted["no_consent"] == 0
