"""Forged, truncated, re-encoded, repeated and replayed webhook credentials for each provider, and
credentials of one channel presented for another. A refused request is the status docs/relay.md
gives it, as problem+json, and leaves every table and queue as it was; a replay is accepted and
acted on once (docs/ingestion.md). The basic cases live in tests/test_relay_meta.py,
test_relay_twilio.py, test_relay_evolution.py and test_relay_signatures.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import httpx
import psycopg
import pytest

from kit import payloads as p
from tests.relay import (
    EVOLUTION_KEY,
    EVOLUTION_REF,
    META_OTHER_APP_REF,
    META_OTHER_SECRET,
    META_SECRET,
    PUBLIC_BASE_URL,
    TWILIO_TOKEN,
    assert_problem,
    twilio_signature,
)
from tests.security import (
    EVOLUTION_OTHER_KEY,
    EVOLUTION_OTHER_REF,
    TWILIO_OTHER_REF,
    TWILIO_OTHER_TOKEN,
    add_second_channels,
    snapshot,
)

WA_ID = "447700900123"
USER = "+447700900123"
TWILIO_URL = f"{PUBLIC_BASE_URL}/webhooks/twilio"
TRUNCATED = (0, 1, 2, 7, 16, 31, 32, 40, 63)  # of 64 hex digits (Meta) or up to 27 base64 characters (Twilio)


def meta_body(wamid: str = "wamid.SEC", **kw) -> bytes:
    return json.dumps(p.meta_text(WA_ID, wamid, body="sec", **kw)).encode()


def hexmac(body: bytes, secret: str = META_SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send_meta(base: str, body: bytes, headers: list[tuple[str, str]]) -> httpx.Response:
    return httpx.post(
        f"{base}/webhooks/meta", content=body, headers=[("Content-Type", "application/json"), *headers], timeout=10
    )


def refused(response: httpx.Response, status: int, db: psycopg.Connection, before: dict[str, int]) -> None:
    assert_problem(response, status)
    assert snapshot(db) == before


@pytest.fixture
def meta(relay: Callable[..., str], db: psycopg.Connection) -> tuple[str, dict[str, int]]:
    base = relay()
    return base, snapshot(db)


# The families of variants below are each refused and store nothing, which each checks: they share
# one relay and database per channel configuration (conftest's shared_relay) rather than starting
# one per variant. Tests that store something have a relay and a database of their own.


@pytest.fixture
def meta_refused(shared_relay) -> tuple[str, psycopg.Connection, dict[str, int]]:
    base, db = shared_relay("meta")
    return base, db, snapshot(db)


@pytest.fixture
def second_channels_refused(shared_relay) -> tuple[str, psycopg.Connection, dict[str, int]]:
    """The relay with the second Twilio and Evolution channels, as the twilio and evolution fixtures start it."""
    base, db = shared_relay("second channels", lambda conn: {"channels": add_second_channels(conn)})
    return base, db, snapshot(db)


def _meta_variants() -> dict[str, Callable[[bytes], list[tuple[str, str]]]]:
    sig = "X-Hub-Signature-256"
    variants: dict[str, Callable[[bytes], list[tuple[str, str]]]] = {
        "wrong-secret": lambda b: [(sig, "sha256=" + hexmac(b, "not-the-secret"))],
        "empty": lambda b: [(sig, "")],
        "prefix-only": lambda b: [(sig, "sha256=")],
        "no-prefix": lambda b: [(sig, hexmac(b))],
        "upper-prefix": lambda b: [(sig, "SHA256=" + hexmac(b))],
        "sha1-prefix": lambda b: [(sig, "sha1=" + hexmac(b))],
        "space-after-prefix": lambda b: [(sig, "sha256= " + hexmac(b))],
        "base64-digest": lambda b: [(sig, "sha256=" + base64.b64encode(bytes.fromhex(hexmac(b))).decode())],
        "base64-of-hex": lambda b: [(sig, "sha256=" + base64.b64encode(hexmac(b).encode()).decode())],
        "extended": lambda b: [(sig, "sha256=" + hexmac(b) + "00")],
        "doubled": lambda b: [(sig, "sha256=" + hexmac(b) * 2)],
        "sha256-of-body": lambda b: [(sig, "sha256=" + hashlib.sha256(b).hexdigest())],
        "hmac-sha1": lambda b: [(sig, "sha256=" + hmac.new(META_SECRET.encode(), b, hashlib.sha1).hexdigest())],
        "secret-as-signature": lambda b: [(sig, f"sha256={META_SECRET}")],
        "other-header-name": lambda b: [("X-Hub-Signature", "sha256=" + hexmac(b))],
        "two-wrong-headers": lambda b: [(sig, "sha256=" + "0" * 64), (sig, "sha256=" + "1" * 64)],
        "wrong-then-right": lambda b: [(sig, "sha256=" + "0" * 64), (sig, "sha256=" + hexmac(b))],
    }
    for n in TRUNCATED:
        variants[f"truncated-{n}"] = lambda b, n=n: [(sig, "sha256=" + hexmac(b)[:n])]
    return variants


META_VARIANTS = _meta_variants()


@pytest.mark.parametrize("variant", sorted(META_VARIANTS))
def test_meta_signature_variants_are_401_and_store_nothing(meta_refused, variant) -> None:
    base, db, before = meta_refused
    body = meta_body()
    refused(send_meta(base, body, META_VARIANTS[variant](body)), 401, db, before)


def test_meta_upper_case_hex_is_the_same_digest(meta, db) -> None:
    """Hex is case-blind: upper-case digits carry the same 256 bits, so they verify (as Meta's own samples do)."""
    base, _ = meta
    body = meta_body("wamid.UPPER")
    response = send_meta(base, body, [("X-Hub-Signature-256", "sha256=" + hexmac(body).upper())])
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("target", [b'"sec"', b"wamid.TAMPER", b'"Ana"', WA_ID.encode(), b"messaging_product"])
def test_meta_body_changed_by_one_byte_after_signing_is_401(meta_refused, target) -> None:
    base, db, before = meta_refused
    body = meta_body("wamid.TAMPER")
    signature = [("X-Hub-Signature-256", "sha256=" + hexmac(body))]
    i = body.index(target) + len(target) // 2
    changed = bytearray(body)
    changed[i] ^= 0x01
    refused(send_meta(base, bytes(changed), signature), 401, db, before)
    refused(send_meta(base, body + b" ", signature), 401, db, before)
    refused(send_meta(base, b" " + body, signature), 401, db, before)


def test_meta_body_cut_after_signing_is_refused_before_it_is_parsed(meta, db) -> None:
    """The signature is checked against every configured app's secret before the body is read,
    so a cut body (no longer JSON) is a 401 like any unsigned one, and nothing is stored."""
    base, before = meta
    body = meta_body("wamid.CUT")
    signature = [("X-Hub-Signature-256", "sha256=" + hexmac(body))]
    for n in (1, 2, len(body) // 2, len(body) - 1):
        refused(send_meta(base, body[:n], signature), 401, db, before)


def test_an_unsigned_caller_cannot_tell_configured_numbers_from_others(meta, db) -> None:
    """The same 401/403 whatever number or instance an unsigned request names: a 404 for the
    unconfigured ones would let anyone list the configured ones."""
    base, before = meta
    forged = "sha256=" + hexmac(b"", "not-the-secret")
    answers = {}
    for ref in (p.META_PHONE_NUMBER_ID, "999000999000"):
        response = send_meta(base, meta_body(phone_number_id=ref), [("X-Hub-Signature-256", forged)])
        answers[("meta", ref)] = (response.status_code, response.json()["detail"])
    for to in ("+15550002222", "+15559990000"):
        response = send_twilio(base, twilio_params(to=to), [("X-Twilio-Signature", "c2lnbmF0dXJl")])
        answers[("twilio", to)] = (response.status_code, response.json()["detail"])
    for instance in ("shop-instance", "no-such-instance"):
        response = send_evolution(base, p.evolution_upsert(instance, USER, "K1", apikey="not-the-key"))
        answers[("evolution", instance)] = (response.status_code, response.json()["detail"])
    by_provider = {}
    for (provider, _ref), answer in answers.items():
        by_provider.setdefault(provider, set()).add(answer)
    assert {k: len(v) for k, v in by_provider.items()} == {"meta": 1, "twilio": 1, "evolution": 1}, answers
    assert [status for ((status, _detail),) in by_provider.values()] == [401, 403, 401]
    assert snapshot(db) == before


def test_meta_valid_signature_of_another_app_naming_this_channel_is_404(meta, db) -> None:
    """For the app that signed, another app's number is not one of its channels: 404, as for a number
    that is not configured at all (test_one_channels_credentials_cannot_list_the_others_refs)."""
    base, before = meta
    body = meta_body("wamid.OTHERAPP")
    refused(send_meta(base, body, [("X-Hub-Signature-256", "sha256=" + hexmac(body, META_OTHER_SECRET))]), 404, db,
            before)  # fmt: skip
    # And the other way round: this app's secret over a body for the other app's number.
    other = meta_body("wamid.OTHERAPP2", phone_number_id=META_OTHER_APP_REF)
    refused(send_meta(base, other, [("X-Hub-Signature-256", "sha256=" + hexmac(other))]), 404, db, before)


@pytest.mark.parametrize("first_secret", [META_SECRET, META_OTHER_SECRET])
def test_meta_body_naming_two_apps_is_404_whichever_signs(meta_refused, first_secret) -> None:
    base, db, before = meta_refused
    body = json.dumps(
        p.meta_body(
            p.meta_value([p.meta_message(WA_ID, "wamid.TWO1")], contacts=[(WA_ID, "Ana")]),
            p.meta_value([p.meta_message(WA_ID, "wamid.TWO2")], phone_number_id=META_OTHER_APP_REF),
        )
    ).encode()
    refused(send_meta(base, body, [("X-Hub-Signature-256", "sha256=" + hexmac(body, first_secret))]), 404, db, before)


def test_meta_duplicate_keys_route_where_the_database_reads(meta, db) -> None:
    """A body naming this channel and then, under the same key, the other app's: the relay and PostgreSQL
    both keep the last key, so the app that signed is the app whose channel gets the message."""
    base, before = meta
    text = json.dumps(p.meta_text(WA_ID, "wamid.DUPKEY"))
    other = f'"phone_number_id": "{META_OTHER_APP_REF}"'
    body = text.replace('"phone_number_id": "1234567890"', f'"phone_number_id": "1234567890", {other}').encode()
    assert body.count(b"phone_number_id") == 2
    refused(send_meta(base, body, [("X-Hub-Signature-256", "sha256=" + hexmac(body))]), 404, db, before)
    response = send_meta(base, body, [("X-Hub-Signature-256", "sha256=" + hexmac(body, META_OTHER_SECRET))])
    assert response.status_code == 200, response.text
    row = db.execute(
        "SELECT c.provider_ref FROM whatsapp_handler.messages m JOIN whatsapp_handler.channels c ON c.id = m.channel_id"
        " WHERE m.provider_message_id = 'wamid.DUPKEY'"
    ).fetchone()
    assert row["provider_ref"] == META_OTHER_APP_REF


def test_meta_messages_without_a_number_signed_by_any_app_reach_no_channel(meta, db) -> None:
    """Account-level bodies verify with any configured app; one that smuggles messages without metadata
    is kept raw and dead-lettered, never recorded as a message of some channel."""
    base, before = meta
    value = p.meta_value([p.meta_message(WA_ID, "wamid.NOMETA")], contacts=[(WA_ID, "Ana")])
    value["metadata"] = None
    body = json.dumps(p.meta_body(value)).encode()
    response = send_meta(base, body, [("X-Hub-Signature-256", "sha256=" + hexmac(body, META_OTHER_SECRET))])
    assert response.status_code == 200, response.text
    assert response.json()["messages"] == 0
    after = snapshot(db)
    assert after["whatsapp_handler.messages"] == before["whatsapp_handler.messages"]
    assert after["whatsapp_handler.users"] == before["whatsapp_handler.users"]


def _replay(base: str, send: Callable[[], httpx.Response], n: int = 8) -> list[int]:
    first = send()
    assert first.status_code == 200, first.text
    with ThreadPoolExecutor(n) as pool:
        return [first.status_code, *(r.status_code for r in pool.map(lambda _: send(), range(n)))]


def _messages(db: psycopg.Connection, provider_message_id: str) -> int:
    query = "SELECT count(*) AS n FROM whatsapp_handler.messages WHERE provider_message_id = %s"
    return db.execute(query, (provider_message_id,)).fetchone()["n"]


def test_meta_replay_is_accepted_and_acted_on_once(meta, db) -> None:
    base, before = meta
    body = meta_body("wamid.REPLAY")
    statuses = _replay(base, lambda: send_meta(base, body, [("X-Hub-Signature-256", "sha256=" + hexmac(body))]))
    assert statuses == [200] * 9
    assert _messages(db, "wamid.REPLAY") == 1
    after = snapshot(db)
    assert after["whatsapp_handler.users"] == before["whatsapp_handler.users"] + 1
    assert after["whatsapp_handler.message_keys"] == before["whatsapp_handler.message_keys"] + 1
    events = db.execute("SELECT message->>'type' AS t FROM pgmq.q_outbox WHERE message->>'type' = 'message.received'")
    assert len(events.fetchall()) == 1


# Twilio ---------------------------------------------------------------------------------------------


@pytest.fixture
def twilio(relay: Callable[..., str], db: psycopg.Connection) -> tuple[str, dict[str, int]]:
    base = relay(channels=add_second_channels(db))
    return base, snapshot(db)


def twilio_params(sid: str = "SM" + "a" * 32, to: str = "+15550002222") -> dict[str, str]:
    return p.twilio_inbound(sid, USER, to, body="sec twilio")


def send_twilio(base: str, params: dict[str, str] | list, headers: list[tuple[str, str]]) -> httpx.Response:
    form = [("Content-Type", "application/x-www-form-urlencoded")]
    content = urlencode(list(params.items()) if isinstance(params, dict) else params).encode()
    return httpx.post(f"{base}/webhooks/twilio", content=content, headers=[*form, *headers], timeout=10)


def _twilio_variants() -> dict[str, Callable[[dict[str, str]], list[tuple[str, str]]]]:
    sig = "X-Twilio-Signature"

    def good(params: dict[str, str]) -> str:
        return twilio_signature(TWILIO_URL, params)

    def raw_mac(params: dict[str, str]) -> bytes:
        return base64.b64decode(good(params))

    variants: dict[str, Callable[[dict[str, str]], list[tuple[str, str]]]] = {
        "wrong-token": lambda q: [(sig, twilio_signature(TWILIO_URL, q, token="not-the-token"))],
        "empty": lambda q: [(sig, "")],
        "hex-digest": lambda q: [(sig, raw_mac(q).hex())],
        "base64-of-hex": lambda q: [(sig, base64.b64encode(raw_mac(q).hex().encode()).decode())],
        "lower-cased": lambda q: [(sig, good(q).lower())],
        "urlsafe-base64": lambda q: [(sig, base64.urlsafe_b64encode(raw_mac(q)).decode().rstrip("="))],
        "sha256-without-its-setting": lambda q: [
            (sig, base64.b64encode(hmac.new(TWILIO_TOKEN.encode(), raw_mac(q), hashlib.sha256).digest()).decode())
        ],
        "other-url-host": lambda q: [(sig, twilio_signature("https://evil.example.com/webhooks/twilio", q))],
        "other-url-scheme": lambda q: [(sig, twilio_signature(TWILIO_URL.replace("https", "http"), q))],
        "other-url-path": lambda q: [(sig, twilio_signature(f"{PUBLIC_BASE_URL}/webhooks/meta", q))],
        "url-with-query": lambda q: [(sig, twilio_signature(f"{TWILIO_URL}?a=1", q))],
        "two-wrong-headers": lambda q: [(sig, "AAAA"), (sig, "BBBB")],
        "wrong-then-right": lambda q: [(sig, "AAAA"), (sig, good(q))],
        "signature-as-param-name": lambda q: [("X-Twilio-Signature-256", good(q))],
    }
    for n in (1, 4, 10, 20, 26, 27):
        variants[f"truncated-{n}"] = lambda q, n=n: [(sig, good(q)[:n])]
    return variants


TWILIO_VARIANTS = _twilio_variants()


@pytest.mark.parametrize("variant", sorted(TWILIO_VARIANTS))
def test_twilio_signature_variants_are_403_and_store_nothing(second_channels_refused, variant) -> None:
    base, db, before = second_channels_refused
    params = twilio_params()
    refused(send_twilio(base, params, TWILIO_VARIANTS[variant](params)), 403, db, before)


@pytest.mark.parametrize("change", ["body-one-char", "added-param", "dropped-param", "to-other-channel"])
def test_twilio_form_changed_after_signing_is_403(second_channels_refused, change) -> None:
    base, db, before = second_channels_refused
    params = twilio_params()
    signature = [("X-Twilio-Signature", twilio_signature(TWILIO_URL, params))]
    changed = dict(params)
    if change == "body-one-char":
        changed["Body"] = "sec twiliO"
    elif change == "added-param":
        changed["Extra"] = ""
    elif change == "dropped-param":
        del changed["ProfileName"]
    else:
        changed["To"] = TWILIO_OTHER_REF
    refused(send_twilio(base, changed, signature), 403, db, before)


def test_twilio_other_channels_token_naming_this_channel_is_404(twilio, db) -> None:
    base, before = twilio
    params = twilio_params()
    signature = [("X-Twilio-Signature", twilio_signature(TWILIO_URL, params, token=TWILIO_OTHER_TOKEN))]
    refused(send_twilio(base, params, signature), 404, db, before)
    # Signed right for the other channel, it is accepted there and only there.
    params = twilio_params("SM" + "b" * 32, to="+15550006666")
    signature = [("X-Twilio-Signature", twilio_signature(TWILIO_URL, params, token=TWILIO_OTHER_TOKEN))]
    assert send_twilio(base, params, signature).status_code == 200
    row = db.execute(
        "SELECT c.provider_ref FROM whatsapp_handler.messages m JOIN whatsapp_handler.channels c ON c.id = m.channel_id"
        " WHERE m.provider_message_id = %s",
        (params["MessageSid"],),
    ).fetchone()
    assert row["provider_ref"] == TWILIO_OTHER_REF


def test_twilio_two_to_fields_go_to_the_channel_that_signed(twilio, db) -> None:
    """A repeated To is signed as both values; the first one routes, and only its token verifies."""
    base, before = twilio
    params = twilio_params("SM" + "c" * 32, to="+15550006666")
    pairs = [*params.items(), ("To", f"whatsapp:{'+15550002222'}")]

    class Multi(dict):
        def getall(self, name: str) -> list[str]:
            return [v for k, v in pairs if k == name]

    signed_other = twilio_signature(TWILIO_URL, Multi(pairs), token=TWILIO_OTHER_TOKEN)
    signed_this = twilio_signature(TWILIO_URL, Multi(pairs), token=TWILIO_TOKEN)
    refused(send_twilio(base, pairs, [("X-Twilio-Signature", signed_this)]), 404, db, before)
    assert send_twilio(base, pairs, [("X-Twilio-Signature", signed_other)]).status_code == 200
    stored = db.execute("SELECT payload FROM whatsapp_handler.webhook_events").fetchone()["payload"]
    assert stored["To"] == TWILIO_OTHER_REF


def test_twilio_json_body_with_duplicate_to_routes_where_the_database_reads(twilio, db) -> None:
    base, before = twilio
    text = json.dumps(twilio_params("SM" + "d" * 32, to="+15550002222"))
    body = text.replace('"To": "whatsapp:+15550002222"', f'"To": "whatsapp:+15550002222", "To": "{TWILIO_OTHER_REF}"')
    body_bytes = body.encode()
    url = f"/webhooks/twilio?bodySHA256={hashlib.sha256(body_bytes).hexdigest()}"
    headers = {"Content-Type": "application/json"}
    this = {**headers, "X-Twilio-Signature": twilio_signature(PUBLIC_BASE_URL + url, {})}
    assert_problem(httpx.post(base + url, content=body_bytes, headers=this, timeout=10), 404)
    assert snapshot(db) == before
    other = {**headers, "X-Twilio-Signature": twilio_signature(PUBLIC_BASE_URL + url, {}, token=TWILIO_OTHER_TOKEN)}
    assert httpx.post(base + url, content=body_bytes, headers=other, timeout=10).status_code == 200
    stored = db.execute("SELECT payload FROM whatsapp_handler.webhook_events").fetchone()["payload"]
    assert stored["To"] == TWILIO_OTHER_REF


def test_twilio_replay_is_accepted_and_acted_on_once(twilio, db) -> None:
    base, _ = twilio
    params = twilio_params("SM" + "e" * 32)
    headers = [("X-Twilio-Signature", twilio_signature(TWILIO_URL, params))]
    assert _replay(base, lambda: send_twilio(base, params, headers)) == [200] * 9
    assert _messages(db, params["MessageSid"]) == 1


# Evolution ------------------------------------------------------------------------------------------


@pytest.fixture
def evolution(relay: Callable[..., str], db: psycopg.Connection) -> tuple[str, dict[str, int]]:
    base = relay(channels=add_second_channels(db))
    return base, snapshot(db)


def send_evolution(base: str, body: dict | bytes, headers: list[tuple[str, str]] = ()) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        f"{base}/webhooks/evolution",
        content=content,
        headers=[("Content-Type", "application/json"), *headers],
        timeout=10,
    )


def _evolution_variants() -> dict[str, tuple[str | None, list[tuple[str, str]]]]:
    """(apikey in the body, headers)."""
    variants: dict[str, tuple[str | None, list[tuple[str, str]]]] = {
        "upper-cased": (EVOLUTION_KEY.upper(), []),
        "with-trailing-space": (EVOLUTION_KEY + " ", []),
        "with-nul": (EVOLUTION_KEY + "\u0000", []),
        "extended": (EVOLUTION_KEY + "x", []),
        "base64": (base64.b64encode(EVOLUTION_KEY.encode()).decode(), []),
        "null": (None, []),
        "two-wrong-headers": ("", [("apikey", "nope"), ("apikey", "nada")]),
        "basic-scheme": ("", [("Authorization", "Basic " + base64.b64encode(f"x:{EVOLUTION_KEY}".encode()).decode())]),
    }
    for n in (0, 1, 8, len(EVOLUTION_KEY) // 2, len(EVOLUTION_KEY) - 1):
        variants[f"truncated-{n}"] = (EVOLUTION_KEY[:n], [])
    return variants


EVOLUTION_VARIANTS = _evolution_variants()
OTHER_INSTANCES_KEY = {
    "in-body": (EVOLUTION_OTHER_KEY, []),
    "in-header": ("", [("apikey", EVOLUTION_OTHER_KEY)]),
    "as-bearer": ("", [("Authorization", f"Bearer {EVOLUTION_OTHER_KEY}")]),
}


@pytest.mark.parametrize("variant", sorted(EVOLUTION_VARIANTS))
def test_evolution_apikey_variants_are_401_and_store_nothing(second_channels_refused, variant) -> None:
    base, db, before = second_channels_refused
    key, headers = EVOLUTION_VARIANTS[variant]
    body = p.evolution_upsert(EVOLUTION_REF, USER, "EVOSEC1", text="sec evo")
    body["apikey"] = key
    refused(send_evolution(base, body, headers), 401, db, before)


@pytest.mark.parametrize("where", sorted(OTHER_INSTANCES_KEY))
def test_evolution_other_instances_key_naming_this_instance_is_404(second_channels_refused, where) -> None:
    base, db, before = second_channels_refused
    key, headers = OTHER_INSTANCES_KEY[where]
    body = p.evolution_upsert(EVOLUTION_REF, USER, "EVOSEC2", text="sec evo", apikey=key)
    refused(send_evolution(base, body, headers), 404, db, before)


def test_evolution_duplicate_instance_keys_route_where_the_database_reads(evolution, db) -> None:
    """The last "instance" wins for the relay and for PostgreSQL: the key must be that instance's."""
    base, before = evolution
    text = json.dumps(p.evolution_upsert(EVOLUTION_REF, USER, "EVODUP", apikey=EVOLUTION_OTHER_KEY))
    this, other = f'"instance": "{EVOLUTION_REF}"', f'"instance": "{EVOLUTION_OTHER_REF}"'
    body = text.replace(this, f"{this}, {other}")
    forged = text.replace(this, f"{other}, {this}")
    refused(send_evolution(base, forged.encode()), 404, db, before)
    assert send_evolution(base, body.encode()).status_code == 200
    row = db.execute(
        "SELECT c.provider_ref FROM whatsapp_handler.messages m JOIN whatsapp_handler.channels c ON c.id = m.channel_id"
        " WHERE m.provider_message_id = 'EVODUP'"
    ).fetchone()
    assert row["provider_ref"] == EVOLUTION_OTHER_REF


def test_evolution_replay_is_accepted_and_acted_on_once(evolution, db) -> None:
    base, _ = evolution
    body = p.evolution_upsert(EVOLUTION_REF, USER, "EVOREPLAY", apikey=EVOLUTION_KEY)
    assert _replay(base, lambda: send_evolution(base, body)) == [200] * 9
    assert _messages(db, "EVOREPLAY") == 1
    stored = db.execute("SELECT payload::text AS t FROM whatsapp_handler.webhook_events").fetchall()
    assert all(EVOLUTION_KEY not in r["t"] for r in stored)


# One channel's credentials naming another channel (issue 11, finding 13) ---------------------------


def _answer(response: httpx.Response, ref: str) -> tuple[int, str, str]:
    """The status, content type and problem body, with the ref the caller sent replaced."""
    body = json.loads(response.text.replace(json.dumps(ref)[1:-1], "<ref>"))
    return response.status_code, response.headers["content-type"], json.dumps(body, sort_keys=True)


def test_one_channels_credentials_cannot_list_the_others_refs(twilio, db) -> None:
    """Holding one app's, account's or instance's secret, a configured channel of another and a ref
    configured nowhere get the same answer, so the secret does not list the others' numbers."""
    base, before = twilio
    answers: dict[str, set[tuple]] = {"meta": set(), "twilio": set(), "evolution": set()}
    for ref in (p.META_PHONE_NUMBER_ID, "999000999000"):
        body = meta_body("wamid.LIST", phone_number_id=ref)
        response = send_meta(base, body, [("X-Hub-Signature-256", "sha256=" + hexmac(body, META_OTHER_SECRET))])
        answers["meta"].add(_answer(response, ref))
    for number in ("+15550002222", "+15559990000"):
        params = twilio_params("SM" + "f" * 32, to=number)
        signature = twilio_signature(TWILIO_URL, params, token=TWILIO_OTHER_TOKEN)
        answers["twilio"].add(
            _answer(send_twilio(base, params, [("X-Twilio-Signature", signature)]), f"whatsapp:{number}")
        )
    for instance in (EVOLUTION_REF, "no-such-instance"):
        response = send_evolution(base, p.evolution_upsert(instance, USER, "EVOLIST", apikey=EVOLUTION_OTHER_KEY))
        answers["evolution"].add(_answer(response, instance))
    assert {provider: len(seen) for provider, seen in answers.items()} == {"meta": 1, "twilio": 1, "evolution": 1}, (
        answers
    )
    assert {next(iter(seen))[0] for seen in answers.values()} == {404}
    assert snapshot(db) == before


# Twilio: a signed text split otherwise (issue 11, finding 9) ---------------------------------------


def twilio_documented(sid: str, body: str = "DELETE") -> dict[str, str]:
    """The parameters of Twilio's documented inbound WhatsApp request (no MessageType): MessageSid is
    followed by NumMedia in the signed text."""
    return {
        "AccountSid": "AC" + "0" * 32, "ApiVersion": "2010-04-01", "Body": body, "From": f"whatsapp:{USER}",
        "MessageSid": sid, "NumMedia": "0", "NumSegments": "1", "ProfileName": "Ana", "SmsMessageSid": sid,
        "SmsSid": sid, "SmsStatus": "received", "To": "whatsapp:+15550002222", "WaId": WA_ID,
    }  # fmt: skip


def _without(params: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in params.items() if k not in names}


SID = "SM" + "5" * 32
RESPLITS: dict[str, Callable[[dict[str, str]], dict[str, str]]] = {
    # The issue's: MessageSid takes NumMedia and its value, a new message id of the same signature.
    "message-sid-takes-the-next-pair": lambda q: _without(q, "NumMedia") | {"MessageSid": SID + "NumMedia0"},
    "account-sid-takes-the-next-pair": lambda q: _without(q, "ApiVersion") | {"AccountSid": q["AccountSid"]
                                                                              + "ApiVersion2010-04-01"},
    "a-name-takes-a-value-and-a-name": lambda q: _without(q, "Body", "From") | {"BodyDELETEFrom": q["From"]},
}  # fmt: skip


@pytest.mark.parametrize("resplit", sorted(RESPLITS))
def test_twilio_form_split_otherwise_is_kept_but_never_acted_on(twilio, db, resplit) -> None:
    """The same signature over another split of the signed text: once authenticated it is stored raw
    and dead-lettered (WH045, parked by the re-drive), never processed, so the DELETE it carries is not
    acted on again as a new message; and nothing a signed request carries is lost to a 4xx."""
    base, _ = twilio
    original = twilio_documented(SID)
    forged = RESPLITS[resplit](original)
    signature = twilio_signature(TWILIO_URL, original)
    assert twilio_signature(TWILIO_URL, forged) == signature, "not the same signed text"
    assert send_twilio(base, original, [("X-Twilio-Signature", signature)]).status_code == 200
    before = snapshot(db)
    assert send_twilio(base, forged, [("X-Twilio-Signature", signature)]).status_code == 200
    after = snapshot(db)
    grown = {table for table in after if after[table] != before[table]}
    assert grown == {"whatsapp_handler.webhook_events", "pgmq.q_inbound_dlq"}, (before, after)
    row = db.execute(
        "SELECT payload, outcome, note, error FROM whatsapp_handler.webhook_events ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert (row["payload"], row["outcome"]) == (None, "failed") and row["error"].startswith("WH045")
    assert row["note"].startswith("not read: ")
    assert _messages(db, SID) == 1


def test_twilio_split_keeping_known_names_and_whole_sids_is_the_same_message(twilio, db) -> None:
    """What a split can still do: move text between free-text values of known names. The SIDs are
    whole, so it is the same message id: a duplicate, acted on once."""
    base, _ = twilio
    original = twilio_documented(SID)
    forged = _without(original, "ProfileName") | {"NumSegments": "1ProfileNameAna"}
    signature = twilio_signature(TWILIO_URL, original)
    assert twilio_signature(TWILIO_URL, forged) == signature
    assert send_twilio(base, original, [("X-Twilio-Signature", signature)]).status_code == 200
    assert send_twilio(base, forged, [("X-Twilio-Signature", signature)]).status_code == 200
    assert _messages(db, SID) == 1
    received = "SELECT count(*) AS n FROM pgmq.q_outbox WHERE message->>'type' = 'message.received'"
    assert db.execute(received).fetchone()["n"] == 1


def test_twilio_unsigned_forms_hear_403_whatever_their_names_and_sids(twilio, db) -> None:
    """The names and SIDs are judged only once the form is authenticated: unsigned, a form with an
    unknown name or a malformed SID hears what any unsigned form hears."""
    base, before = twilio
    answers = set()
    for params in (twilio_params(), twilio_params() | {"Extra": "1"}, twilio_params(sid="SMshort")):
        response = send_twilio(base, params, [("X-Twilio-Signature", "c2lnbmF0dXJl")])
        answers.add((response.status_code, response.text))
    assert len(answers) == 1 and next(iter(answers))[0] == 403, answers
    assert snapshot(db) == before
