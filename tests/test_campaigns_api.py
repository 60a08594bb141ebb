"""/v1/campaigns over real HTTP, as a business's backend uses it: a campaign created, filled from a CSV, started
and read back; each refusal a documented problem that changes nothing; another brand's campaign answered as an
id nobody created; and the SQL behind it callable by the relay's login alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p
from tests.helpers import outbox_events, raises_sqlstate
from tests.relay import META_SAME_APP_REF, assert_problem

TEMPLATE = {"name": "timetable_change", "language": "en_GB"}
KNOWN = "+447700900123"  # wrote to the Meta channel: the channel knows them
CSV = "phone,name,train\n+447700900001,Ana,IC 1\n+447700900002,Bo,IC 2\n+447700900001,Ana again,IC 3\n"
TIMEOUT = 30


@pytest.fixture
def api(relay: Callable[..., str], db: psycopg.Connection) -> dict[str, Any]:
    base = relay()
    channels = {
        r["provider_ref"]: r["id"] for r in db.execute("SELECT id, provider_ref FROM whatsapp_handler.channels")
    }
    meta, other = channels[p.META_PHONE_NUMBER_ID], channels[META_SAME_APP_REF]
    for channel in (meta, other):
        db.execute(
            "SELECT whatsapp_handler.template_upsert(%s, %s, %s, 'utility', 'approved', %s)",
            (channel, TEMPLATE["name"], TEMPLATE["language"],
             Jsonb([{"type": "BODY", "text": "Hi {{1}}, train {{2}} moved"}])),
        )  # fmt: skip

    def key(name: str, channel_ids: list[int], scopes: list[str]) -> str:
        return db.execute(
            "SELECT api_key FROM whatsapp_handler.api_key_create(%s, %s, %s)", (name, channel_ids, scopes)
        ).fetchone()["api_key"]

    db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(p.meta_text(KNOWN.lstrip("+"), "wamid.IN1")),))
    return {
        "base": base,
        "meta": meta,
        "other": other,
        "key": key("acme", [meta], ["send", "read"]),
        "reader": key("acme-reader", [meta], ["read"]),
        "writer": key("acme-writer", [meta], ["send"]),
        "other_key": key("globex", [other], ["send", "read", "manage"]),
    }


def call(api: dict, method: str, path: str, body: Any = None, key: str | None = None, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or api['key']}", **kwargs.pop("headers", {})}
    return httpx.request(method, api["base"] + path, json=body, headers=headers, timeout=TIMEOUT, **kwargs)


def upload_csv(api: dict, campaign: int, text: str, key: str | None = None, **params: Any) -> httpx.Response:
    return call(api, "POST", f"/v1/campaigns/{campaign}/recipients", key=key, content=text.encode(),
                headers={"Content-Type": "text/csv"}, params=params or None)  # fmt: skip


def create(api: dict, key: str | None = None, **extra: Any) -> httpx.Response:
    body = {"name": "timetable", "channel_id": api["meta"], "template": TEMPLATE, **extra}
    return call(api, "POST", "/v1/campaigns", body, key=key)


def new_campaign(api: dict) -> int:
    created = create(api)
    assert created.status_code == 201, created.text
    return created.json()["id"]


def refused(response: httpx.Response, status: int, code: str) -> dict:
    problem = assert_problem(response, status)
    assert problem["code"] == code and problem["hint"], problem
    return problem


def campaign_rows(db: psycopg.Connection) -> list[dict]:
    return db.execute(
        "SELECT c.id, c.state, count(r.position) AS recipients FROM whatsapp_handler.campaigns c "
        "LEFT JOIN whatsapp_handler.campaign_recipients r ON r.campaign_id = c.id GROUP BY c.id ORDER BY c.id"
    ).fetchall()


def test_a_backend_runs_a_campaign_from_a_csv(api: dict, db: psycopg.Connection) -> None:
    body = {"name": "timetable", "channel_id": api["meta"], "template": TEMPLATE, "per_second": 5}
    created = call(api, "POST", "/v1/campaigns", body, headers={"X-Request-ID": "req-campaign-1"})
    assert created.status_code == 201, created.text
    campaign = created.json()["id"]
    assert created.json() == {"id": campaign, "state": "draft"}
    # The key that created it is recorded; the request's id travels with the event.
    key_id = db.execute("SELECT id FROM whatsapp_handler.api_keys WHERE name = 'acme'").fetchone()["id"]
    assert db.execute("SELECT api_key_id FROM whatsapp_handler.campaigns").fetchone()["api_key_id"] == key_id
    [event] = outbox_events(db, "campaign.created")
    assert event["correlation_id"] == "req-campaign-1"

    uploaded = upload_csv(api, campaign, CSV)
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json() == {"rows": 3, "accepted": 2, "duplicates": 1, "invalid": 0, "first_position": 1}
    started = call(api, "POST", f"/v1/campaigns/{campaign}/start")
    assert started.status_code == 200 and started.json() == {"id": campaign, "state": "running", "reason": None}
    assert db.execute("SELECT whatsapp_handler.worker_campaigns(10) AS n").fetchone()["n"] == 2

    results = call(api, "GET", f"/v1/campaigns/{campaign}", key=api["reader"])
    assert results.status_code == 200, results.text
    funnel = results.json()
    assert (funnel["id"], funnel["state"], funnel["recipients"]) == (campaign, "completed", 3)
    assert funnel["states"] == {"queued": 2, "skipped": 1}
    assert funnel["reasons"] == {"skipped:duplicate": 1}
    assert funnel["template"] == TEMPLATE and funnel["channel_id"] == api["meta"]

    # Page by page in upload order, and by state.
    first = call(api, "GET", f"/v1/campaigns/{campaign}/recipients", key=api["reader"], params={"limit": 2})
    assert first.status_code == 200, first.text
    page = first.json()
    assert [(r["position"], r["phone"], r["state"]) for r in page["recipients"]] == [
        (1, "+447700900001", "queued"), (2, "+447700900002", "queued")]  # fmt: skip
    assert all(r["message_id"] for r in page["recipients"]) and page["next_after"] == 2
    rest = call(api, "GET", f"/v1/campaigns/{campaign}/recipients", params={"limit": 2, "after": 2}).json()
    assert rest == {"recipients": [{"position": 3, "phone": "+447700900001", "state": "skipped",
                                    "reason": "duplicate", "message_id": None}], "next_after": None}  # fmt: skip
    skipped = call(api, "GET", f"/v1/campaigns/{campaign}/recipients", params={"state": "skipped"}).json()
    assert [r["position"] for r in skipped["recipients"]] == [3] and skipped["next_after"] is None
    # The message each recipient became is the send API's to show.
    message_id = page["recipients"][0]["message_id"]
    assert call(api, "GET", f"/v1/messages/{message_id}").json()["status"] == "queued"


def test_a_json_upload_keeps_invalid_rows_as_skipped_when_asked(api: dict) -> None:
    campaign = new_campaign(api)
    rows = [{"phone": "+447700900001", "variables": ["Ana", "IC 1"]}, {"phone": "0770", "variables": ["Bo", "IC 2"]},
            {"phone": "+447700900003", "variables": ["Cy"]}]  # fmt: skip
    kept = call(api, "POST", f"/v1/campaigns/{campaign}/recipients", {"recipients": rows},
                params={"skip_invalid": "true"})  # fmt: skip
    assert kept.status_code == 200, kept.text
    assert kept.json() == {"rows": 3, "accepted": 1, "duplicates": 0, "invalid": 2, "first_position": 1}
    page = call(api, "GET", f"/v1/campaigns/{campaign}/recipients", params={"state": "skipped"}).json()
    assert [(r["position"], r["phone"], r["reason"]) for r in page["recipients"]] == [
        (2, None, "invalid_number"), (3, "+447700900003", "missing_variables")]  # fmt: skip
    # A plain array and a CSV with a byte order mark (as spreadsheets save it) continue the numbering.
    more = call(api, "POST", f"/v1/campaigns/{campaign}/recipients", [{"phone": "+447700900004",
                                                                       "variables": ["Di", "IC 4"]}])  # fmt: skip
    assert more.status_code == 200 and more.json()["first_position"] == 4
    bom = upload_csv(api, campaign, "\ufeffphone,name,train\n+447700900005,Ed,IC 5\n")
    assert bom.status_code == 200 and bom.json()["first_position"] == 5


def test_an_audience_is_the_people_the_channel_knows(api: dict) -> None:
    campaign = new_campaign(api)
    chosen = call(api, "POST", f"/v1/campaigns/{campaign}/audience",
                  {"filter": {"active_within": "30 days", "variables": ["friend", "IC 9"]}})  # fmt: skip
    assert chosen.status_code == 200, chosen.text
    assert chosen.json() == {"rows": 1, "accepted": 1, "duplicates": 0, "invalid": 0, "first_position": 1}
    page = call(api, "GET", f"/v1/campaigns/{campaign}/recipients").json()
    assert [r["phone"] for r in page["recipients"]] == [KNOWN]
    refused(call(api, "POST", f"/v1/campaigns/{campaign}/audience", {"filter": {"language": "xx"}}), 422, "WH078")
    refused(call(api, "POST", f"/v1/campaigns/{campaign}/audience", {"filter": {"active_within": "a while"}}), 422,
            "WH079")  # fmt: skip


def test_a_malformed_audience_request_is_refused(api: dict, db: psycopg.Connection) -> None:
    campaign = new_campaign(api)
    path = f"/v1/campaigns/{campaign}/audience"
    refused(call(api, "POST", path, {"filter": {"language": 7}}), 422, "WH079")
    assert_problem(call(api, "POST", path, {"active_within": "1 day"}), 400)
    assert_problem(call(api, "POST", path, [{"filter": {}}]), 400)
    assert campaign_rows(db) == [{"id": campaign, "state": "draft", "recipients": 0}]


def test_a_campaign_cannot_start_a_second_time_nor_take_rows_while_running(api: dict, db: psycopg.Connection) -> None:
    campaign = new_campaign(api)
    assert upload_csv(api, campaign, CSV).status_code == 200
    assert call(api, "POST", f"/v1/campaigns/{campaign}/start").json()["state"] == "running"
    running = refused(upload_csv(api, campaign, "phone,name,train\n+447700900009,Al,IC 9\n"), 409, "WH077")
    assert "is running" in running["detail"]
    assert campaign_rows(db) == [{"id": campaign, "state": "running", "recipients": 3}]
    assert call(api, "POST", f"/v1/campaigns/{campaign}/pause").json() == {"id": campaign, "state": "paused",
                                                                           "reason": "operator"}  # fmt: skip
    assert call(api, "POST", f"/v1/campaigns/{campaign}/resume").json()["state"] == "running"
    assert call(api, "POST", f"/v1/campaigns/{campaign}/cancel").json()["state"] == "cancelled"
    cancelled = refused(call(api, "POST", f"/v1/campaigns/{campaign}/start"), 409, "WH077")
    assert "is cancelled" in cancelled["detail"]
    refused(call(api, "POST", f"/v1/campaigns/{campaign}/resume"), 409, "WH077")
    assert campaign_rows(db) == [{"id": campaign, "state": "cancelled", "recipients": 3}]
    assert call(api, "GET", f"/v1/campaigns/{campaign}").json()["states"] == {"skipped": 3}


@pytest.mark.parametrize(
    ("text", "status", "code", "named"),
    [
        # A row with a field missing: the reader names it before SQL sees anything.
        ("phone,name,train\n+447700900001,Ana,IC 1\n+447700900002,Bo\n", 422, "WH078", "row 2 (line 3)"),
        ('phone,name,train\n+447700900001,"Ana,IC 1\n', 422, "WH078", "is not CSV"),
        ("name,phone\nAna,+447700900001\n", 422, "WH078", "header"),
        # A phone that is not E.164, and a row missing one of the template's two variables: SQL names the row.
        (
            "phone,name,train\n+447700900001,Ana,IC 1\n07700 900002,Bo,IC 2\n",
            422,
            "WH078",
            "row 2 of the upload is not a phone in E.164",
        ),
        ("phone,name\n+447700900001,Ana\n", 422, "WH078", "row 1 of the upload is not 2 variables"),
        ("phone,name,train\n+447700900001,Ana,\n", 422, "WH078", "row 1 of the upload is not 2 variables"),
    ],
)
def test_a_bad_recipient_list_is_refused_naming_the_row_and_nothing_is_stored(
    api: dict, db: psycopg.Connection, text: str, status: int, code: str, named: str
) -> None:
    campaign = new_campaign(api)
    problem = refused(upload_csv(api, campaign, text), status, code)
    assert named in problem["detail"], problem
    assert campaign_rows(db) == [{"id": campaign, "state": "draft", "recipients": 0}]
    # Still a draft that takes a good list.
    assert upload_csv(api, campaign, CSV).status_code == 200


def test_what_is_not_a_recipient_list_is_refused(api: dict, db: psycopg.Connection) -> None:
    campaign = new_campaign(api)
    path = f"/v1/campaigns/{campaign}/recipients"
    refused(call(api, "POST", path, {"rows": []}), 422, "WH078")
    refused(call(api, "POST", path, [1, 2]), 422, "WH078")
    refused(call(api, "POST", path, content=b"{not json", headers={"Content-Type": "application/json"}), 422, "WH078")
    refused(upload_csv(api, campaign, "phone,name,train\n"), 422, "WH078")
    assert_problem(call(api, "POST", path, content=b"phone\n+44\xff\n", headers={"Content-Type": "text/csv"}), 400)
    # Not a phone in E.164 in JSON: the row named by SQL, with its problem for a program to read.
    bad = refused(call(api, "POST", path, [{"phone": "+1", "variables": ["a", "b"]}]), 422, "WH078")
    assert bad["detail"].startswith("row 1 of the upload is not a phone in E.164")
    assert campaign_rows(db) == [{"id": campaign, "state": "draft", "recipients": 0}]


@pytest.mark.parametrize(
    ("extra", "status", "code"),
    [
        ({"channel_id": 999999}, 403, "WH061"),  # a channel the key does not hold (or nobody has)
        ({"channel_id": "1"}, 422, "WH079"),
        ({"channel_id": 1.5}, 422, "WH079"),
        ({"template": {"name": "nope", "language": "en_GB"}}, 404, "WH065"),
        ({"per_second": 0}, 422, "WH079"),
        ({"colour": "red"}, 422, "WH079"),
    ],
)
def test_a_bad_campaign_is_refused_and_nothing_is_created(
    api: dict, db: psycopg.Connection, extra: dict, status: int, code: str
) -> None:
    refused(create(api, **extra), status, code)
    assert campaign_rows(db) == []
    assert outbox_events(db, "campaign.created") == []


def test_a_campaign_on_an_inactive_channel_is_refused(api: dict, db: psycopg.Connection) -> None:
    db.execute("UPDATE whatsapp_handler.channels SET active = false WHERE id = %s", (api["meta"],))
    refused(create(api), 404, "WH003")
    assert campaign_rows(db) == []


def test_keys_are_checked_before_the_request(api: dict, db: psycopg.Connection) -> None:
    refused(create(api, key="whk_not_a_key"), 401, "WH060")
    refused(create(api, key="whk_not_a_key", channel_id="x"), 401, "WH060")
    no_key = httpx.post(api["base"] + "/v1/campaigns", json={}, timeout=TIMEOUT)
    assert assert_problem(no_key, 401) and no_key.headers["www-authenticate"] == "Bearer"
    # A key without scope send reads but cannot create or change a campaign; one without read cannot read.
    refused(create(api, key=api["reader"]), 403, "WH061")
    campaign = new_campaign(api)
    refused(upload_csv(api, campaign, CSV, key=api["reader"]), 403, "WH061")
    refused(call(api, "POST", f"/v1/campaigns/{campaign}/cancel", key=api["reader"]), 403, "WH061")
    assert call(api, "GET", f"/v1/campaigns/{campaign}", key=api["reader"]).status_code == 200
    refused(call(api, "GET", f"/v1/campaigns/{campaign}", key=api["writer"]), 403, "WH061")
    refused(call(api, "GET", f"/v1/campaigns/{campaign}/recipients", key=api["writer"]), 403, "WH061")
    assert campaign_rows(db) == [{"id": campaign, "state": "draft", "recipients": 0}]
    assert_problem(call(api, "GET", "/v1/campaigns/0"), 400)
    assert_problem(call(api, "GET", f"/v1/campaigns/{2**63}"), 400)


# Every endpoint on an existing campaign, with a body that would succeed for its own brand.
ENDPOINTS: list[tuple[str, str, Any]] = [
    ("POST", "/recipients", [{"phone": "+447700900001", "variables": ["Ana", "IC 1"]}]),
    ("POST", "/audience", {"filter": {"variables": ["a", "b"]}}),
    ("POST", "/start", None),
    ("POST", "/pause", None),
    ("POST", "/resume", None),
    ("POST", "/cancel", None),
    ("GET", "", None),
    ("GET", "/recipients", None),
]


@pytest.mark.parametrize(("method", "suffix", "body"), ENDPOINTS)
def test_another_brands_campaign_is_an_unknown_id(
    api: dict, db: psycopg.Connection, method: str, suffix: str, body: Any
) -> None:
    theirs = create(api, key=api["other_key"], channel_id=api["other"])
    assert theirs.status_code == 201, theirs.text
    campaign = theirs.json()["id"]
    assert upload_csv(api, campaign, CSV, key=api["other_key"]).status_code == 200
    before = campaign_rows(db)
    # acme's key, with every scope it could hold, gets what an id nobody created gets.
    foreign = refused(call(api, method, f"/v1/campaigns/{campaign}{suffix}", body), 404, "WH076")
    nobody = refused(call(api, method, f"/v1/campaigns/{campaign + 1000}{suffix}", body), 404, "WH076")
    assert foreign == {**nobody, "detail": nobody["detail"].replace(str(campaign + 1000), str(campaign))}
    assert campaign_rows(db) == before
    assert [e["type"] for e in outbox_events(db) if e["type"].startswith("campaign.")] == ["campaign.created"]


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"limit": 1001}, 422, "WH079"),
        ({"state": "sent_maybe"}, 422, "WH079"),
        ({"limit": 0}, 400, None),
        ({"after": -1}, 400, None),
        ({"limit": "ten"}, 400, None),
    ],
)
def test_a_bad_page_request_is_refused(api: dict, params: dict, status: int, code: str | None) -> None:
    campaign = new_campaign(api)
    problem = assert_problem(call(api, "GET", f"/v1/campaigns/{campaign}/recipients", params=params), status)
    assert problem.get("code") == code


def test_the_openapi_document_lists_each_operations_problems(api: dict) -> None:
    paths = httpx.get(api["base"] + "/schema/openapi.json", timeout=TIMEOUT).json()["paths"]
    expected = {
        ("/v1/campaigns", "post"): {"201", "400", "401", "403", "404", "413", "422", "503"},
        ("/v1/campaigns/{campaign_id}/recipients", "post"): {"200", "400", "401", "403", "404", "409", "413", "422",
                                                              "503"},
        ("/v1/campaigns/{campaign_id}/audience", "post"): {"200", "400", "401", "403", "404", "409", "413", "422",
                                                            "503"},
        ("/v1/campaigns/{campaign_id}", "get"): {"200", "400", "401", "403", "404", "503"},
        ("/v1/campaigns/{campaign_id}/recipients", "get"): {"200", "400", "401", "403", "404", "422", "503"},
        **{(f"/v1/campaigns/{{campaign_id}}/{action}", "post"): {"200", "400", "401", "403", "404", "409", "422",
                                                                 "503"} for action in ("start", "pause", "resume",
                                                                                       "cancel")},
    }  # fmt: skip
    for (path, method), statuses in expected.items():
        responses = paths[path][method]["responses"]
        assert set(responses) == statuses, (path, method)
        assert all("application/problem+json" in responses[s]["content"] for s in statuses if s >= "400")
    upload_body = paths["/v1/campaigns/{campaign_id}/recipients"]["post"]["requestBody"]["content"]
    assert set(upload_body) == {"text/csv", "application/json"}


# --- who may call what ---------------------------------------------------------------------------------------------

CALLS = (
    "api_campaign_create(%(k)s, '{}')",
    "api_campaign_upload(%(k)s, 1, '[]')",
    "api_campaign_audience(%(k)s, 1, '{}')",
    "api_campaign_control(%(k)s, 1, 'start')",
    "api_campaign_results(%(k)s, 1)",
    "api_campaign_recipients(%(k)s, 1)",
)


def test_only_the_relay_may_call_the_campaigns_api(db: psycopg.Connection, connect_as: Callable) -> None:
    relay = connect_as("relay")
    # The relay reaches its functions (here refused for the unknown key, by the function itself)...
    for call_ in CALLS:
        with raises_sqlstate("WH060"):
            relay.execute(f"SELECT whatsapp_handler.{call_}", {"k": b"\x00" * 32})
    # ...and neither the helper under them nor the admin functions they call.
    for fn in ("_api_campaign(NULL, NULL, NULL)", "campaign_create('{}')", "campaign_upload(1, '[]')",
               "campaign_control(1, 'start')", "campaign_results(1)", "campaign_audience(1)"):  # fmt: skip
        with raises_sqlstate("42501"):
            relay.execute(f"SELECT whatsapp_handler.{fn}")
    for login in ("worker", "analyst", "consumer"):
        conn = connect_as(login)
        for call_ in CALLS:
            with raises_sqlstate("42501"):
                conn.execute(f"SELECT whatsapp_handler.{call_}", {"k": b"\x00" * 32})
