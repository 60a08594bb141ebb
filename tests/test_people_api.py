"""/v1/people/* over real HTTP, as a business's backend uses them: each endpoint for the key's own brand,
and each refusal (another brand's key, a key without manage, an unknown phone, bad input) as a problem."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p
from tests.helpers import outbox_events
from tests.relay import META_SAME_APP_REF, assert_problem, scrape

PHONE = "+447700900123"
STRANGER = "+447700900999"


@pytest.fixture
def api(relay: Callable[..., str], db: psycopg.Connection) -> dict[str, Any]:
    base = relay()
    channels = {
        r["provider_ref"]: r["id"] for r in db.execute("SELECT id, provider_ref FROM whatsapp_handler.channels")
    }
    meta, other = channels[p.META_PHONE_NUMBER_ID], channels[META_SAME_APP_REF]

    def key(name: str, channel_ids: list[int], scopes: list[str]) -> str:
        return db.execute(
            "SELECT api_key FROM whatsapp_handler.api_key_create(%s, %s, %s)", (name, channel_ids, scopes)
        ).fetchone()["api_key"]

    # The person wrote to the Meta channel (their brand: channels configured without one are each a brand).
    db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(p.meta_text(PHONE.lstrip("+"), "wamid.IN1")),))
    return {
        "base": base,
        "meta": meta,
        "other": other,
        "key": key("acme", [meta], ["manage"]),
        "sender": key("acme-sender", [meta], ["send", "read"]),
        "other_key": key("globex", [other], ["manage"]),
    }


def call(api: dict, method: str, path: str, body: Any = None, key: str | None = None, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or api['key']}"}
    return httpx.request(method, api["base"] + path, json=body, params=params or None, headers=headers)


def person(api: dict, phone: str = PHONE, **extra: Any) -> dict[str, Any]:
    return {"channel_id": api["meta"], "phone": phone, **extra}


# Every endpoint that needs a person the key's channel knows, with a body that gets that far.
ENDPOINTS: list[tuple[str, str, dict[str, Any]]] = [
    ("PATCH", "/v1/people/preferences", {"preferences": {"language": "pt-BR"}}),
    ("POST", "/v1/people/block", {"reason": "abuse"}),
    ("POST", "/v1/people/unblock", {}),
    ("POST", "/v1/people/export", {}),
    ("POST", "/v1/people/erase", {}),
]


def test_a_backend_manages_a_person(api: dict, db: psycopg.Connection) -> None:
    consent = call(api, "POST", "/v1/people/consent", person(api, opt_in=True, source="checkout-form"))
    assert consent.status_code == 200, consent.text
    assert consent.json() == {"status": "opted_in", "changed": True}
    prefs = call(api, "PATCH", "/v1/people/preferences", person(api, preferences={"language": "pt-BR"}))
    assert prefs.status_code == 200 and prefs.json()["language"] == "pt-BR"
    read = call(api, "GET", "/v1/people/preferences", channel_id=api["meta"], phone=PHONE)
    assert read.status_code == 200 and read.json() == prefs.json()
    assert call(api, "POST", "/v1/people/block", person(api, reason="abuse")).json() == {
        "blocked": True,
        "changed": True,
    }
    unblocked = call(api, "POST", "/v1/people/unblock", person(api))
    assert unblocked.status_code == 200 and unblocked.json() == {"blocked": False, "changed": True}
    export = call(api, "POST", "/v1/people/export", person(api))
    assert export.status_code == 200
    doc = export.json()
    assert doc["person"]["phone"] == PHONE and doc["consents"][0]["source"] == "api:checkout-form"
    assert [m["body"] for m in doc["messages"] if m["direction"] == "inbound"] == ["hello"]
    erased = call(api, "POST", "/v1/people/erase", person(api))
    assert erased.status_code == 200 and erased.json() == {"erased": True}
    assert len(outbox_events(db, "user.erased")) == 1
    assert db.execute("SELECT count(*) AS n FROM whatsapp_handler.consents").fetchone()["n"] == 0
    # Gone for the brand: a retry is a 404.
    assert assert_problem(call(api, "POST", "/v1/people/erase", person(api)), 404)["code"] == "WH071"


def test_a_consent_registers_a_phone_the_channel_never_met(api: dict) -> None:
    answer = call(api, "POST", "/v1/people/consent", person(api, STRANGER, opt_in=False, source="call-centre"))
    assert answer.status_code == 200 and answer.json() == {"status": "opted_out", "changed": True}
    read = call(api, "GET", "/v1/people/preferences", channel_id=api["meta"], phone=STRANGER)
    assert read.status_code == 200


@pytest.mark.parametrize(("method", "path", "extra"), ENDPOINTS)
def test_each_refusal_is_a_problem_and_changes_nothing(
    api: dict, db: psycopg.Connection, method: str, path: str, extra: dict
) -> None:
    def refused(response: httpx.Response, status: int, code: str) -> None:
        problem = assert_problem(response, status)
        assert problem["code"] == code and problem["hint"]

    refused(call(api, method, path, person(api, **extra), key=api["other_key"]), 403, "WH061")  # another brand's key
    refused(call(api, method, path, person(api, **extra), key=api["sender"]), 403, "WH061")  # no scope manage
    refused(call(api, method, path, person(api, **extra), key="whk_not_a_key"), 401, "WH060")
    refused(call(api, method, path, person(api, STRANGER, **extra)), 404, "WH071")  # unknown phone
    refused(call(api, method, path, person(api, "07700 900123", **extra)), 422, "WH001")
    refused(call(api, method, path, person(api, **extra, surprise=1)), 422, "WH072")
    assert_problem(call(api, method, path, [person(api, **extra)]), 400)
    no_key = httpx.request(method, api["base"] + path, json=person(api, **extra))
    assert assert_problem(no_key, 401) and no_key.headers["www-authenticate"] == "Bearer"
    user = db.execute("SELECT blocked_at, erased_at FROM whatsapp_handler.users WHERE phone = %s", (PHONE,)).fetchone()
    assert user == {"blocked_at": None, "erased_at": None}
    assert outbox_events(db, "user.preferences_updated") == []


def test_a_person_only_another_brand_knows_is_unknown_here(api: dict) -> None:
    # Globex's channel met a stranger: acme's key gets the same 404 as for a phone nobody knows.
    theirs = {"channel_id": api["other"], "phone": STRANGER, "opt_in": True, "source": "form"}
    assert call(api, "POST", "/v1/people/consent", theirs, key=api["other_key"]).status_code == 200
    acme = assert_problem(call(api, "POST", "/v1/people/export", person(api, STRANGER)), 404)
    nobody = assert_problem(call(api, "POST", "/v1/people/export", person(api, "+447700900555")), 404)
    assert acme == nobody
    # And globex's key on acme's channel is refused before any person is looked up.
    assert (
        assert_problem(call(api, "POST", "/v1/people/export", person(api), key=api["other_key"]), 403)["code"]
        == "WH061"
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/v1/people/consent", {"opt_in": "yes", "source": "form"}, 422, "WH072"),
        ("POST", "/v1/people/consent", {"opt_in": True, "source": "keyword:stop"}, 422, "WH072"),
        ("POST", "/v1/people/block", {"reason": ""}, 422, "WH072"),
        ("PATCH", "/v1/people/preferences", {"preferences": {"notifications_enabled": True}}, 422, "WH073"),
        ("PATCH", "/v1/people/preferences", {"preferences": {"timezone": "Mars/Olympus"}}, 422, "WH008"),
        ("POST", "/v1/people/consent", {"channel_id": "1", "opt_in": True, "source": "form"}, 403, "WH061"),
    ],
)
def test_bad_input_gets_a_documented_problem(api: dict, method: str, path: str, body: dict, status: int,
                                             code: str) -> None:  # fmt: skip
    problem = assert_problem(call(api, method, path, person(api, **body)), status)
    assert problem["code"] == code and problem["hint"]


def test_a_brand_lifts_only_its_own_block(api: dict, db: psycopg.Connection) -> None:
    user_id = db.execute("SELECT id FROM whatsapp_handler.users WHERE phone = %s", (PHONE,)).fetchone()["id"]
    db.execute("SELECT whatsapp_handler.block_user(%s, 'fraud')", (user_id,))
    problem = assert_problem(call(api, "POST", "/v1/people/unblock", person(api)), 409)
    assert problem["code"] == "WH074"
    assert call(api, "POST", "/v1/people/block", person(api, reason="abuse")).json() == {"blocked": True,
                                                                                          "changed": False}  # fmt: skip


def test_the_preferences_query_is_checked(api: dict) -> None:
    assert_problem(call(api, "GET", "/v1/people/preferences", channel_id="x", phone=PHONE), 400)
    assert_problem(call(api, "GET", "/v1/people/preferences", channel_id=api["meta"]), 400)
    problem = assert_problem(call(api, "GET", "/v1/people/preferences", channel_id=api["meta"], phone=STRANGER), 404)
    assert problem["code"] == "WH071"


def test_calls_are_counted_by_action_and_result(api: dict) -> None:
    assert call(api, "POST", "/v1/people/export", person(api)).status_code == 200
    for key in (api["other_key"], api["sender"]):
        assert call(api, "POST", "/v1/people/erase", person(api), key=key).status_code == 403
    assert call(api, "POST", "/v1/people/erase", person(api), key="whk_gone").status_code == 401
    assert call(api, "POST", "/v1/people/block", person(api, STRANGER, reason="x")).status_code == 404
    metrics = scrape(api["base"])

    def counted(action: str, result: str) -> float:
        return metrics[("whatsapp_people_requests_total", (("action", action), ("result", result)))]

    assert counted("export", "ok") == 1
    assert counted("erase", "not_covered") == 2 and counted("erase", "unknown_key") == 1
    assert counted("block", "unknown_person") == 1
    assert counted("erase", "ok") == 0
