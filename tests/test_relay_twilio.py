"""POST /webhooks/twilio over real HTTP, signed with twilio's own RequestValidator."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import httpx
import psycopg
import pytest

from kit import payloads as p
from tests.relay import PUBLIC_BASE_URL, TWILIO_TOKEN, assert_problem, count, kept_unread, post_twilio, twilio_signature

USER = "+447700900123"
BUSINESS = "+15550002222"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def assert_twiml(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    assert response.text == EMPTY_TWIML


@pytest.mark.parametrize(
    ("public_base_url", "signed_base"),
    [
        (PUBLIC_BASE_URL, PUBLIC_BASE_URL),
        (PUBLIC_BASE_URL, "https://hooks.example.com:443"),
        ("https://hooks.example.com:443", PUBLIC_BASE_URL),
        ("http://hooks.example.com:8080/wa", "http://hooks.example.com:8080/wa"),
        ("http://hooks.example.com:8080/wa", "http://hooks.example.com/wa"),
    ],
    ids=["as-configured", "signed-with-default-port", "configured-with-port", "other-port", "port-dropped"],
)
def test_signed_inbound_message_is_stored_and_answered_with_empty_twiml(
    relay: Callable[..., str], db: psycopg.Connection, public_base_url: str, signed_base: str
) -> None:
    base = relay(public_base_url=public_base_url)
    params = p.twilio_inbound("SM" + "1" * 32, USER, BUSINESS, body="hi twilio")
    assert_twiml(post_twilio(base, params, signed_url=f"{signed_base}/webhooks/twilio"))
    row = db.execute(
        "SELECT body FROM whatsapp_handler.messages WHERE provider_message_id = %s", (params["MessageSid"],)
    )
    assert row.fetchone()["body"] == "hi twilio"
    stored = db.execute("SELECT payload FROM whatsapp_handler.webhook_events").fetchone()["payload"]
    assert stored == params


def test_query_string_is_part_of_the_signed_url(relay: Callable[..., str], db: psycopg.Connection) -> None:
    base = relay()
    params = p.twilio_inbound("SM" + "2" * 32, USER, BUSINESS)
    url = f"{PUBLIC_BASE_URL}/webhooks/twilio?tenant=a"
    headers = {"X-Twilio-Signature": twilio_signature(url, params)}
    assert_twiml(httpx.post(f"{base}/webhooks/twilio?tenant=a", data=params, headers=headers))
    assert_problem(httpx.post(f"{base}/webhooks/twilio?tenant=b", data=params, headers=headers), 403)
    assert count(db, "webhook_events") == 1


def test_status_callback_is_routed_by_from(relay: Callable[..., str], db: psycopg.Connection) -> None:
    base = relay()
    params = p.twilio_status("SM" + "3" * 32, "delivered", BUSINESS, USER)
    assert_twiml(post_twilio(base, params))
    assert count(db, "webhook_events") == 1


# The tests here whose requests are all refused, each checking that nothing was stored, share one relay
# and database (conftest's shared_relay) rather than starting one each.
@pytest.mark.parametrize(
    "signature",
    ["", "bm90IGl0", twilio_signature(f"{PUBLIC_BASE_URL}/webhooks/twilio", {"Body": "other"})],
    ids=["missing", "garbage", "other-params"],
)
def test_bad_signature_is_403_and_nothing_is_stored(shared_relay, signature: str) -> None:
    base, db = shared_relay("refused")
    params = p.twilio_inbound("SM" + "4" * 32, USER, BUSINESS)
    headers = {"X-Twilio-Signature": signature} if signature else {}
    assert_problem(httpx.post(f"{base}/webhooks/twilio", data=params, headers=headers), 403)
    assert count(db, "webhook_events") == 0


def test_signature_with_a_wrong_token_is_403(shared_relay) -> None:
    base, db = shared_relay("refused")
    params = p.twilio_inbound("SM" + "5" * 32, USER, BUSINESS)
    signature = twilio_signature(f"{PUBLIC_BASE_URL}/webhooks/twilio", params, token=TWILIO_TOKEN + "x")
    response = httpx.post(f"{base}/webhooks/twilio", data=params, headers={"X-Twilio-Signature": signature})
    assert_problem(response, 403)
    assert count(db, "webhook_events") == 0


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"To": "whatsapp:+15550002222"}', "application/json"),
        (b"To=whatsapp%3A%2B15550002222&novalue", "application/x-www-form-urlencoded"),
    ],
    # A form that is not UTF-8 is read with U+FFFD and authenticated (tests/test_relay_raw_bodies.py).
    ids=["json-without-body-hash", "field-without-value"],
)
def test_not_a_form_is_400(relay: Callable[..., str], content: bytes, content_type: str) -> None:
    base = relay()
    headers = {"Content-Type": content_type, "X-Twilio-Signature": "c2ln"}
    assert_problem(httpx.post(f"{base}/webhooks/twilio", content=content, headers=headers), 400)


def test_a_form_naming_no_number_is_403_unsigned_and_kept_unread_signed(relay: Callable[..., str], db) -> None:
    # Unsigned, it learns nothing; signed by a configured account, it is kept for an operator (Twilio
    # does not retry a 4xx) and not acted on.
    base = relay()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "c2ln"}
    assert_problem(httpx.post(f"{base}/webhooks/twilio", content=b"Body=hi", headers=headers), 403)
    assert count(db, "webhook_events") == 0
    assert_twiml(post_twilio(base, {"Body": "hi"}))
    [note] = kept_unread(db)
    assert "MessageSid" in note


def test_unknown_number_is_404(shared_relay) -> None:
    base, db = shared_relay("refused")
    params = p.twilio_inbound("SM" + "6" * 32, USER, "+15559999999")
    assert_problem(post_twilio(base, params), 404)
    assert count(db, "webhook_events") == 0


def test_json_body_signed_through_body_sha256(relay: Callable[..., str], db: psycopg.Connection) -> None:
    base = relay()
    body = json.dumps(p.twilio_inbound("SM" + "7" * 32, USER, BUSINESS)).encode()
    url = f"/webhooks/twilio?bodySHA256={hashlib.sha256(body).hexdigest()}"
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": twilio_signature(PUBLIC_BASE_URL + url, {})}
    assert_twiml(httpx.post(base + url, content=body, headers=headers))
    tampered = body.replace(b"hello", b"HELLO")
    assert_problem(httpx.post(base + url, content=tampered, headers=headers), 403)
    assert count(db, "webhook_events") == 1


# Names and SIDs of a signed form (issue 11, finding 9: the signed text can be split otherwise) ------

SID = "SM" + "8" * 32
BAD_SIDS = {
    "short": SID[:-1],
    "long": SID + "8",
    "not-hex": "SM" + "g" * 32,
    "lower-case-prefix": "sm" + "8" * 32,
    "one-letter-prefix": "S" + "8" * 33,
    "trailing-newline": SID[:-1] + "\n",
    "trailing-space": SID + " ",
    "other-script-digits": "SM" + "\u0663" * 32,
    "empty": "",
    "next-pair-appended": SID + "NumMedia0",
}


def test_a_signed_form_with_a_malformed_sid_is_kept_unread(relay: Callable[..., str], db: psycopg.Connection) -> None:
    base = relay()
    expected = []
    for field in ("MessageSid", "AccountSid", "MessagingServiceSid", "OriginalRepliedMessageSid", "ChannelInstallSid"):
        for value in BAD_SIDS.values():
            params = p.twilio_inbound(SID, USER, BUSINESS) | {field: value}
            if field == "MessageSid":
                params |= {"SmsSid": value, "SmsMessageSid": value}
            assert_twiml(post_twilio(base, params))
            expected.append(field)
    notes = kept_unread(db)
    assert len(notes) == len(expected)
    assert all(field in note for field, note in zip(expected, notes, strict=True)), notes


def test_message_sids_that_differ_are_400(relay: Callable[..., str], db: psycopg.Connection) -> None:
    """Twilio sends the message's SID as MessageSid, SmsSid and SmsMessageSid alike."""
    base = relay()
    assert_twiml(post_twilio(base, p.twilio_inbound(SID, USER, BUSINESS) | {"SmsSid": "SM" + "9" * 32}))
    no_message_sid = {k: v for k, v in p.twilio_inbound(SID, USER, BUSINESS).items() if k != "MessageSid"}
    assert_twiml(post_twilio(base, no_message_sid))
    assert len(kept_unread(db)) == 2


def test_a_signed_form_with_a_name_twilio_does_not_send_is_kept_unread(
    relay: Callable[..., str], db: psycopg.Connection
) -> None:
    base = relay()
    names = ("Extra", "messagesid", "Body ", "MediaUrl100", "MediaUrlX", "Referral", "ReferralCtwaClid2", "Ünï")
    for name in names:
        assert_twiml(post_twilio(base, p.twilio_inbound(SID, USER, BUSINESS) | {name: "1"}))
    notes = kept_unread(db)
    assert len(notes) == len(names) and all("is not a parameter Twilio sends" in n for n in notes), notes


def test_every_documented_parameter_and_new_members_of_its_families_are_taken(
    relay: Callable[..., str], db: psycopg.Connection
) -> None:
    """Twilio's documented inbound and status-callback parameters, and names Twilio may add to a family
    (another media index, another Referral or Channel field): stored as sent."""
    base = relay()
    inbound = p.twilio_inbound(
        SID, USER, BUSINESS, body="", NumMedia="2", MediaUrl0="https://api.twilio.com/m0",
        MediaContentType0="image/jpeg", MediaUrl1="https://api.twilio.com/m1", MediaContentType1="image/png",
        MessagingServiceSid="MG" + "a" * 32,
        ButtonPayload="p", ButtonText="t", ButtonType="REPLY", InteractiveData="{}", FlowData="{}",
        ChannelMetadata="{}", Latitude="51.5", Longitude="-0.12", Address="a", Label="l", FromCity="c",
        FromState="s", FromZip="z", FromCountry="GB", ToCity="c", ToState="s", ToZip="z", ToCountry="US",
        Forwarded="true", FrequentlyForwarded="false", ReferralBody="b", ReferralHeadline="h",
        ReferralSourceId="1", ReferralSourceType="ad", ReferralSourceUrl="https://fb.me/x", ReferralMediaId="m",
        ReferralMediaContentType="image/jpeg", ReferralMediaUrl="https://x", ReferralCtwaClid="ARAk",
        ReferralSomethingNew="x", OriginalRepliedMessageSender=f"whatsapp:{BUSINESS}",
        OriginalRepliedMessageSid="SM" + "b" * 32,
    )  # fmt: skip
    assert_twiml(post_twilio(base, inbound))
    status = p.twilio_status(
        SID, "undelivered", BUSINESS, USER, ErrorCode="63016", ErrorMessage="outside the window",
        ChannelInstallSid="XE" + "c" * 32, ChannelStatusMessage="m", ChannelToAddress=USER, EventType="UNDELIVERED",
        StructuredMessage="false", RawDlrDoneDate="2611301200", MessagingServiceSid="MG" + "a" * 32,
        ChannelSomethingNew="x",
    )  # fmt: skip
    assert_twiml(post_twilio(base, status))
    stored = [r["payload"] for r in db.execute("SELECT payload FROM whatsapp_handler.webhook_events ORDER BY id")]
    assert stored == [inbound, status]


def test_a_json_body_is_pinned_by_its_hash_and_not_held_to_form_names(
    relay: Callable[..., str], db: psycopg.Connection
) -> None:
    base = relay()
    body = json.dumps(p.twilio_inbound(SID, USER, BUSINESS) | {"SomeJsonField": "1"}).encode()
    url = f"/webhooks/twilio?bodySHA256={hashlib.sha256(body).hexdigest()}"
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": twilio_signature(PUBLIC_BASE_URL + url, {})}
    assert_twiml(httpx.post(base + url, content=body, headers=headers))
