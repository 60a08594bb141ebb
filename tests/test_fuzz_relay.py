"""Fuzz the running relay over HTTP: schemathesis from its own OpenAPI document, then hand-written hostile bodies.

CI (derandomized, a few examples per operation):
    .venv/bin/pytest -q -p no:xdist tests/test_fuzz_relay.py
By hand, long and random (see bench/fuzz_long.sh):
    WH_FUZZ=long .venv/bin/pytest -q -p no:xdist -s tests/test_fuzz_relay.py

Every request is signed as its provider would sign it (Meta's HMAC of the raw body, Twilio's HMAC of URL and
form, Evolution's apikey, the OTP API key), so that generated bodies get past authentication to the parsers.
Properties: never a 5xx; every 4xx is application/problem+json with type, title, status and detail; every
answer agrees with the document (status, content type, body schema); a webhook answered 200 was stored once,
and one refused was not stored at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from kit import payloads
from tests.fuzz_strategies import (
    RawJson,
    any_json,
    budget,
    deep_json,
    evolution_bodies,
    huge_text,
    json_values,
    meta_bodies,
    odd_json,
    phones,
    texts,
    twilio_bodies,
    wrong_types,
)
from tests.relay import (
    EVOLUTION_KEY,
    EVOLUTION_REF,
    OTP_KEY,
    PUBLIC_BASE_URL,
    TWILIO_REF,
    count,
    meta_signature,
    twilio_signature,
)

PROBLEM_FIELDS = {"type", "title", "status", "detail"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
TIMEOUT = 60
META_REFS = [payloads.META_PHONE_NUMBER_ID, "3333333333", "2222222222"]
CALLS: dict[str, int] = {}
STATUSES: dict[str, set[int]] = {}


# --- signing and sending -----------------------------------------------------------------------------------------


def _encode(body: Any, media_type: str) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, RawJson):
        return body.encode("utf-8", "surrogatepass")
    if media_type.startswith("application/x-www-form-urlencoded") and isinstance(body, dict):
        return form_bytes(body)
    # ensure_ascii keeps lone surrogates as \\ud800 escapes: the bytes are valid UTF-8, the JSON is not valid text.
    return json.dumps(body).encode()


def signed_headers(path: str, raw: bytes, media_type: str) -> dict[str, str]:
    """The headers that authenticate this body to the relay, whatever the body holds."""
    if path == "/webhooks/meta":
        return {"X-Hub-Signature-256": meta_signature(raw)}
    if path == "/webhooks/twilio":
        form = _form_or_empty(raw) if media_type.startswith("application/x-www-form-urlencoded") else {}
        return {"X-Twilio-Signature": twilio_signature(f"{PUBLIC_BASE_URL}{path}", form)}
    if path == "/webhooks/evolution":
        return {"apikey": EVOLUTION_KEY}
    return {"Authorization": f"Bearer {OTP_KEY}"}


def _form_or_empty(raw: bytes) -> dict[str, str]:
    try:
        return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return {}


def send(base: str, method: str, path: str, raw: bytes | None, media_type: str) -> httpx.Response:
    headers = {"Content-Type": media_type, **signed_headers(path, raw or b"", media_type)}
    query = ""
    if path == "/webhooks/twilio" and media_type == JSON:
        # Twilio's JSON bodies: the body's hash goes in the query, and the signature covers the URL alone.
        query = "?bodySHA256=" + hashlib.sha256(raw or b"").hexdigest()
        headers["X-Twilio-Signature"] = twilio_signature(f"{PUBLIC_BASE_URL}{path}{query}", {})
    return httpx.request(method, f"{base}{path}{query}", content=raw, headers=headers, timeout=TIMEOUT)


def assert_no_error_of_ours(response: httpx.Response) -> None:
    sent = response.request
    what = f"{sent.method} {sent.url} {sent.headers.get('content-type')!r} {sent.content[:300]!r}"
    assert response.status_code < 500, f"{response.status_code} to {what}: {response.text[:2000]}"
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json"), response.headers
        body = response.json()
        assert set(body) >= PROBLEM_FIELDS, body
        assert body["status"] == response.status_code
        assert isinstance(body["detail"], str) and body["detail"]
        assert "Traceback" not in response.text


# --- schemathesis: every operation of the document ----------------------------------------------------------------


def route_to_a_channel(path: str, body: Any) -> None:
    """Name a configured channel in a generated body, so that it gets past routing to the parsers and SQL."""
    if not isinstance(body, dict):
        return
    if path == "/webhooks/meta":
        entry = body.get("entry")
        changes = entry[0].get("changes") if isinstance(entry, list) and entry and isinstance(entry[0], dict) else None
        value = (
            changes[0].get("value") if isinstance(changes, list) and changes and isinstance(changes[0], dict) else None
        )
        if isinstance(value, dict):
            value["metadata"] = {"phone_number_id": payloads.META_PHONE_NUMBER_ID}
    elif path == "/webhooks/twilio":
        body["To" if body.get("MessageStatus", "received") == "received" else "From"] = TWILIO_REF
    elif path == "/webhooks/evolution":
        body.update(instance=EVOLUTION_REF, apikey=EVOLUTION_KEY)
    elif path.startswith("/v1/otp"):
        body.update(phone="+447700900123")
        if path == "/v1/otp":
            body.update(channel_id=1)


def _operations(base: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{base}/schema/openapi.json", timeout=TIMEOUT)
    return [result.ok() for result in schema.get_all_operations()]


def _fuzz_operation(base: str, operation: Any, mode: GenerationMode) -> None:
    name = f"{operation.method.upper()} {operation.path} {mode.value}"
    CALLS[name] = 0
    STATUSES[name] = set()
    # A signed webhook is never refused for what its body holds (kept raw and dead-lettered instead, which
    # the hand-written webhook fuzz below checks): schemathesis's negative data is data to keep there.
    negative = mode is GenerationMode.NEGATIVE and not operation.path.startswith("/webhooks/")
    checks = [*CHECKS, negative_data_rejection] if negative else CHECKS

    # The business API's bodies are JSON objects its SQL checks field by field (docs/sending.md): the
    # document leaves them open, and schemathesis discards many of its tries before it finds one.
    @settings(budget(ci=10, long=400), suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
    @given(case=operation.as_strategy(generation_mode=mode), routed=st.booleans())
    def run(case: Any, routed: bool) -> None:
        CALLS[name] += 1
        if routed and mode is GenerationMode.POSITIVE:
            # Not a negative case: what it negates must stay as generated for negative_data_rejection.
            route_to_a_channel(operation.path, case.body)
        media_type = case.media_type or "application/json"
        raw = None if isinstance(case.body, NotSet) else _encode(case.body, media_type)
        headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "content-type"}
        headers.update(signed_headers(operation.path, raw or b"", media_type))
        if raw is not None:
            headers["Content-Type"] = media_type
        response = httpx.request(
            operation.method.upper(),
            f"{base}{case.formatted_path}",
            params=case.query,
            content=raw,
            headers=headers,
            timeout=TIMEOUT,
        )
        STATUSES[name].add(response.status_code)
        assert_no_error_of_ours(response)
        case.validate_response(response, checks=checks)

    try:
        run()
    except Unsatisfiable:
        # The business API takes any JSON object and its SQL checks it field by field (docs/sending.md): the
        # document describes no shape for schemathesis to break, so there is no negative data to send. Its
        # refusals are tested by tests/test_sending.py, tests/test_send_api.py and tests/test_people*.py.
        if mode is not GenerationMode.NEGATIVE:
            raise
        CALLS[name] = -1


# Every operation of the document; the test fails when the document gains one that is not listed here.
OPERATIONS = [
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/webhooks/meta"),
    ("POST", "/webhooks/meta"),
    ("POST", "/webhooks/twilio"),
    ("POST", "/webhooks/evolution"),
    ("POST", "/v1/otp"),
    ("POST", "/v1/otp/verify"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages/batch"),
    ("POST", "/v1/messages/read"),
    ("GET", "/v1/messages/{message_id}"),
    ("POST", "/v1/people/consent"),
    ("GET", "/v1/people/preferences"),
    ("PATCH", "/v1/people/preferences"),
    ("POST", "/v1/people/block"),
    ("POST", "/v1/people/unblock"),
    ("POST", "/v1/people/export"),
    ("POST", "/v1/people/erase"),
]


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_every_operation_of_the_document_holds_under_schemathesis(
    relay: Callable[..., str], method: str, path: str
) -> None:
    base = relay()
    operations = {(op.method.upper(), op.path): op for op in _operations(base)}
    assert set(operations) == set(OPERATIONS)
    operation = operations[(method, path)]
    raw = operation.definition.raw
    # Negative data needs something to negate: /health and /ready take no input at all.
    has_input = "requestBody" in raw or bool(raw.get("parameters"))
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_input else (GenerationMode.POSITIVE,):
        _fuzz_operation(base, operation, mode)
    print("".join(f"\nfuzz {name}: {n} requests, statuses {sorted(STATUSES[name])}" for name, n in CALLS.items()))
    CALLS.clear()


# --- hand-written: what a schema does not describe well ------------------------------------------------------------

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
CONTENT_TYPES = st.sampled_from(
    [
        JSON,
        FORM,
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        "",
    ]
)


def _json_text_of(raw: bytes) -> bool:
    """Whether a body is JSON text once bytes that are not UTF-8 are read as U+FFFD."""
    try:
        json.loads(raw.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return False
    return True


def _json_text(value: Any) -> bytes:
    return _encode(value, JSON)


def hostile_bodies(shaped: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Provider-shaped bodies, any JSON, deep nesting, duplicate keys, huge strings, and bytes that are not UTF-8."""
    return st.one_of(
        shaped.map(_json_text),
        any_json().map(_json_text),
        deep_json().map(_json_text),
        odd_json().map(_json_text),
        huge_text(100_000, 2_000_000).map(lambda t: _json_text({"object": "whatsapp_business_account", "x": t})),
        st.binary(max_size=200),
        st.sampled_from([b"\xff\xfe{}", b'{"a": "\xc3"}', b"\x00", b""]),
    )


def form_bytes(fields: dict[Any, Any]) -> bytes:
    """URL-encoded as Twilio would, except that anything goes: lone surrogates pass as their raw code units."""
    pairs = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
    return urlencode(pairs, encoding="utf-8", errors="surrogatepass").encode()


def twilio_forms() -> st.SearchStrategy[bytes]:
    return st.one_of(
        twilio_bodies([TWILIO_REF]).map(form_bytes),
        st.dictionaries(texts(10), texts(40), max_size=6).map(lambda d: form_bytes(d | {"To": TWILIO_REF})),
        st.sampled_from([b"To=whatsapp%3A%2B15550002222&Body=%ff%fe", b"a=1&&b", b"%", b"To", b"To=" + b"x" * 100_000]),
        st.binary(max_size=200),
    )


WEBHOOKS = {
    "/webhooks/meta": (meta_bodies(META_REFS),),
    "/webhooks/evolution": (evolution_bodies([EVOLUTION_REF]).map(lambda b: {**b, "apikey": EVOLUTION_KEY}),),
}


# A valid envelope with a member nested beyond what PostgreSQL's jsonb parser takes (54001 at binding).
DEEP = b', "deep": ' + b"[" * 20_000 + b"]" * 20_000


def _webhook_case(path: str) -> st.SearchStrategy[tuple[bytes, str]]:
    if path == "/webhooks/twilio":
        bodies = twilio_forms() | hostile_bodies(twilio_bodies([TWILIO_REF]))
        return st.tuples(bodies, st.just(FORM) | CONTENT_TYPES)
    return st.tuples(hostile_bodies(WEBHOOKS[path][0]), st.just(JSON) | CONTENT_TYPES)


@pytest.mark.parametrize("path", ["/webhooks/meta", "/webhooks/twilio", "/webhooks/evolution"])
def test_signed_hostile_webhooks_are_stored_once_or_refused_cleanly(
    relay: Callable[..., str], db: psycopg.Connection, path: str
) -> None:
    base = relay()
    calls = 0
    seen: set[tuple[str, int]] = set()

    @budget(ci=25, long=700)
    @given(case=_webhook_case(path))
    @example(case=(_json_text(payloads.twilio_inbound("SMfuzz", "+447700900123", "+15550002222")), JSON))
    @example(case=(b"[" * 5000 + b"]" * 5000, JSON))
    @example(case=(_json_text(payloads.meta_text("447700900123", "wamid.deep"))[:-1] + DEEP + b"}", JSON))
    # Found by the fuzz: json.loads raised RecursionError on this (a 500 until app/envelopes.py).
    # Issue 11, finding 4: what jsonb refuses, and what is not JSON, signed: kept, never a 400.
    @example(case=(_json_text(payloads.meta_text("447700900123", "wamid.nul", body="a\u0000b")), JSON))
    @example(case=(_json_text(payloads.meta_text("447700900123", "wamid.sur", name="\ud800")), JSON))
    @example(case=(b'{"object": "whatsapp_business_account", "n": 1e999999, "entry": []}', JSON))
    @example(case=(b"\xff\xfe not json", JSON))
    @example(case=(b'{"event": "x", "instance": "shop-instance", "n": ' + b"[" * 3000 + b"]" * 3000 + b"}", JSON))
    def run(case: tuple[bytes, str]) -> None:
        nonlocal calls
        calls += 1
        raw, media_type = case
        stored = count(db, "webhook_events")
        response = send(base, "POST", path, raw, media_type)
        seen.add((media_type.split(";")[0], response.status_code))
        assert_no_error_of_ours(response)
        assert response.status_code in {200, 400, 401, 403, 404, 413}, response.text
        now = count(db, "webhook_events")
        assert now - stored == (1 if response.status_code == 200 else 0), "stored not exactly once"
        if path != "/webhooks/twilio" or media_type == JSON:
            # Authenticated bodies (the whole body signed or a header key) are never refused for what they
            # hold: one jsonb refuses is cleaned, one not JSON or of another shape is kept raw and dead-lettered.
            readable = _json_text_of(raw)
            assert response.status_code != 400, f"refused, so lost: {raw[:200]!r} {response.text}"
            if response.status_code == 200 and not readable:
                row = db.execute(
                    "SELECT payload IS NULL AS raw_only, outcome FROM whatsapp_handler.webhook_events"
                    " ORDER BY id DESC LIMIT 1"
                ).fetchone()
                assert row == {"raw_only": True, "outcome": "failed"}, "not JSON, yet not kept raw and dead-lettered"

    run()
    print(f"\nfuzz POST {path} hostile: {calls} requests, (content type, status) {sorted(seen)}")


def otp_bodies() -> st.SearchStrategy[bytes]:
    fields = {
        "phone": phones() | wrong_types(),
        "channel_id": st.integers(min_value=-(2**70), max_value=2**70) | wrong_types() | st.just(1),
        "code": texts(40) | st.from_regex(r"\A[0-9]{6}\Z") | wrong_types(),
    }
    shaped = st.fixed_dictionaries({}, optional={**fields, "extra": json_values(4)})
    return st.one_of(
        shaped.map(_json_text),
        any_json().map(_json_text),
        deep_json().map(_json_text),
        odd_json().map(_json_text),
        st.binary(max_size=100),
    )


@pytest.mark.parametrize("path", ["/v1/otp", "/v1/otp/verify"])
def test_hostile_otp_requests_are_refused_cleanly(relay: Callable[..., str], path: str) -> None:
    base = relay()
    calls = 0

    @budget(ci=25, long=700)
    @given(raw=otp_bodies(), media_type=st.just(JSON) | CONTENT_TYPES)
    @example(raw=b'{"phone": "+447700900123", "channel_id": 1, "code": "\\ud800"}', media_type=JSON)
    @example(raw=b'{"phone": "\\u0000", "channel_id": 1, "code": "1"}', media_type=JSON)
    # Found by the fuzz: Litestar's msgspec decoding raised RecursionError on this (a 500 until app/errors.py).
    @example(raw=b"[" * 5000 + b"]" * 5000, media_type=JSON)
    def run(raw: bytes, media_type: str) -> None:
        nonlocal calls
        calls += 1
        assert_no_error_of_ours(send(base, "POST", path, raw, media_type))

    run()
    print(f"\nfuzz POST {path} hostile: {calls} requests")
