"""A business message (kind "business": Meta's message object, queued by SQL's send function) as
each provider's request: the URL, headers and body that send_request builds for every type, the
error for what a provider cannot carry, and one message per provider through the real worker
against the provider double (docs/worker.md, "Business messages: what each provider carries")."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from psycopg.types.json import Jsonb

from app.providers import base, evolution, meta, twilio
from app.settings import ChannelConfig
from kit import payloads as p
from kit.provider_double import ProviderDouble
from tests.test_worker import EVOLUTION_REF, TWILIO_REF, Workers, channels_config, wait_for

TO = "+447700900123"
DIGITS = "447700900123"
SECRET = "s" * 32
WAMID = "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgg"
CONTENT_SID = "HX" + "b" * 32

META = ChannelConfig(provider="meta", ref="106540352242922", phone="+15550001111", name="Meta", secret=SECRET,
                     access_token="meta-token", api_base_url="https://graph.example/v21.0")  # fmt: skip
TWILIO = ChannelConfig(provider="twilio", ref="whatsapp:+15550002222", phone="+15550002222", name="Twilio",
                       secret=SECRET, account_sid="AC" + "a" * 32, api_base_url="https://twilio.example")  # fmt: skip
EVOLUTION = ChannelConfig(provider="evolution", ref="shop", phone="+15550003333", name="Evo", secret=SECRET,
                          api_base_url="https://evo.example")  # fmt: skip

# One content per type, in Meta's shape (the Cloud API's message object without its envelope).
BUTTONS = {"type": "button", "header": {"type": "text", "text": "Your order"}, "body": {"text": "Reschedule?"},
           "footer": {"text": "Reply by 6pm"},
           "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                                  {"type": "reply", "reply": {"id": "no", "title": "No"}}]}}  # fmt: skip
LIST = {"type": "list", "header": {"type": "text", "text": "Branches"}, "body": {"text": "Pick one"},
        "footer": {"text": "Open daily"},
        "action": {"button": "Choose", "sections": [
            {"title": "London", "rows": [{"id": "soho", "title": "Soho", "description": "W1"},
                                         {"id": "bank", "title": "Bank"}]},
            {"rows": [{"id": "leeds", "title": "Leeds"}]}]}}  # fmt: skip
CONTENTS: dict[str, dict[str, Any]] = {
    "text": {"type": "text", "text": {"body": "Your refund is on its way"}},
    "template": {"type": "template", "template": {"name": "order_delay", "language": {"code": "en_GB"},
                 "components": [{"type": "body", "parameters": [{"type": "text", "text": "A-17"},
                                                                {"type": "text", "text": "Friday"}]}]}},
    "image": {"type": "image", "image": {"link": "https://cdn.example/p/box.jpg", "caption": "Your parcel"}},
    "document": {"type": "document", "document": {"link": "https://cdn.example/i/77.pdf", "caption": "Invoice",
                                                  "filename": "invoice-77.pdf"}},
    "audio": {"type": "audio", "audio": {"link": "https://cdn.example/a/hello.ogg"}},
    "video": {"type": "video", "video": {"link": "https://cdn.example/v/howto.mp4"}},
    "location": {"type": "location", "location": {"latitude": 51.5138, "longitude": -0.0984,
                                                  "name": "Bank branch", "address": "1 Poultry, London"}},
    "interactive": {"type": "interactive", "interactive": BUTTONS},
    "reaction": {"type": "reaction", "reaction": {"message_id": WAMID, "emoji": "\U0001f44d"}},
}  # fmt: skip


def business(content: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"kind": "business", "message_id": 123, "message_created_at": "2026-12-01T05:00:00+00:00",
            "channel_id": 1, "user_id": 9, "to": TO, "correlation_id": "c-1",
            "content": copy.deepcopy(content), **extra}  # fmt: skip


def with_context(content: dict[str, Any]) -> dict[str, Any]:
    return content | {"context": {"message_id": WAMID}}


def refusal(provider: Any, config: ChannelConfig, message: dict[str, Any]) -> str:
    """The dead letter's error base.send makes of a request the provider's module will not build."""
    outcome = asyncio.run(base.send(provider, None, config, message, aiohttp.ClientTimeout(1)))  # type: ignore[arg-type]
    assert isinstance(outcome, base.Reject)
    return outcome.error["error"]


# --- Meta: the content as it is -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(CONTENTS))
def test_meta_sends_each_type_as_it_is(kind: str) -> None:
    content = CONTENTS[kind]
    url, kwargs = meta.send_request(META, business(content))
    assert url == "https://graph.example/v21.0/106540352242922/messages"
    assert kwargs == {"json": {"messaging_product": "whatsapp", "recipient_type": "individual", "to": DIGITS,
                               **content}}  # fmt: skip
    assert base.headers(meta, META, business(content)) == {"Authorization": "Bearer meta-token"}


def test_meta_takes_a_reply_a_media_id_and_a_list_as_they_are() -> None:
    for content in (with_context(CONTENTS["text"]), {"type": "image", "image": {"id": "1479537139650973"}},
                    {"type": "interactive", "interactive": LIST}):  # fmt: skip
        _, kwargs = meta.send_request(META, business(content))
        assert kwargs["json"] == {"messaging_product": "whatsapp", "recipient_type": "individual", "to": DIGITS,
                                  **content}  # fmt: skip


def test_meta_refuses_a_content_that_names_its_own_recipient_or_an_unknown_type() -> None:
    with pytest.raises(ValueError, match="content names to, which the worker sets"):
        meta.send_request(META, business(CONTENTS["text"] | {"to": "15550009999"}))
    assert refusal(meta, META, business({"type": "sticker", "sticker": {"id": "1"}})) == (
        "Meta cannot carry this message: unknown message type 'sticker'"
    )
    assert refusal(meta, META, business({"type": "text"})) == "malformed queue message: KeyError 'text'"


# --- Twilio: Body, MediaUrl, ContentSid, PersistentAction ----------------------------------------------------

TWILIO_FORMS = {
    "text": {"Body": "Your refund is on its way"},
    "template": {"ContentSid": CONTENT_SID, "ContentVariables": '{"1": "A-17", "2": "Friday"}'},
    "image": {"MediaUrl": "https://cdn.example/p/box.jpg", "Body": "Your parcel"},
    "document": {"MediaUrl": "https://cdn.example/i/77.pdf", "Body": "Invoice"},
    "audio": {"MediaUrl": "https://cdn.example/a/hello.ogg"},
    "video": {"MediaUrl": "https://cdn.example/v/howto.mp4"},
    "location": {"Body": "Bank branch\n1 Poultry, London", "PersistentAction": "geo:51.5138,-0.0984|Bank branch"},
}
TEMPLATE_EXTRA = {"provider_template_id": CONTENT_SID, "template_variables": {"1": "A-17", "2": "Friday"}}


@pytest.mark.parametrize("kind", sorted(TWILIO_FORMS))
def test_twilio_sends_each_type_it_carries_in_its_own_parameters(kind: str) -> None:
    url, kwargs = twilio.send_request(TWILIO, business(CONTENTS[kind], **TEMPLATE_EXTRA))
    assert url == f"https://twilio.example/2010-04-01/Accounts/{TWILIO.account_sid}/Messages.json"
    assert kwargs["data"] == {"From": "whatsapp:+15550002222", "To": f"whatsapp:{TO}", **TWILIO_FORMS[kind]}
    assert set(kwargs) == {"data"}
    # HTTP Basic: base64 of "<account SID>:<auth token>".
    basic = "QUNhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYTpzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzcw=="
    assert base.headers(twilio, TWILIO, business(CONTENTS[kind])) == {"Authorization": f"Basic {basic}"}


def test_twilio_location_without_a_name_is_labelled_by_its_address_or_its_coordinates() -> None:
    bare = {"type": "location", "location": {"latitude": "-33.8568", "longitude": 0.00001}}
    _, kwargs = twilio.send_request(TWILIO, business(bare))
    assert kwargs["data"]["Body"] == "-33.8568,0.00001"
    assert kwargs["data"]["PersistentAction"] == "geo:-33.8568,0.00001"
    addressed = {"type": "location", "location": {"latitude": 1, "longitude": 2, "address": "Pier 3"}}
    _, kwargs = twilio.send_request(TWILIO, business(addressed))
    assert kwargs["data"]["Body"] == "Pier 3" and kwargs["data"]["PersistentAction"] == "geo:1.0,2.0|Pier 3"


def test_twilio_template_without_variables_names_only_its_content_sid() -> None:
    _, kwargs = twilio.send_request(TWILIO, business(CONTENTS["template"], provider_template_id=CONTENT_SID))
    assert kwargs["data"] == {"From": "whatsapp:+15550002222", "To": f"whatsapp:{TO}", "ContentSid": CONTENT_SID}


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (CONTENTS["interactive"], "Twilio sends interactive messages only as Content templates (a ContentSid)"),
        (CONTENTS["reaction"], "Twilio cannot send a message of type reaction"),
        (with_context(CONTENTS["text"]), "Twilio cannot send a message as a reply to another (context)"),
        (
            {"type": "image", "image": {"id": "1479537139650973"}},
            "Twilio takes image by link only, not by a Meta media id",
        ),
        ({"type": "document", "document": {"id": "1", "link": ""}}, "Twilio takes document by link only"),
    ],
    ids=["interactive", "reaction", "context", "media-id", "empty-link"],
)
def test_twilio_refuses_what_it_cannot_carry(content: dict[str, Any], error: str) -> None:
    with pytest.raises(base.Unsupported):
        twilio.send_request(TWILIO, business(content))
    assert refusal(twilio, TWILIO, business(content)).startswith(f"Twilio cannot carry this message: {error}")


def test_twilio_refuses_a_template_without_its_content_sid_and_a_location_off_the_globe() -> None:
    assert refusal(twilio, TWILIO, business(CONTENTS["template"])) == (
        "malformed queue message: KeyError 'provider_template_id'"
    )
    off = {"type": "location", "location": {"latitude": 91, "longitude": 0}}
    assert "is not latitude and longitude in degrees" in refusal(twilio, TWILIO, business(off))
    assert "ValueError could not convert" in refusal(
        twilio, TWILIO, business({"type": "location", "location": {"latitude": "north", "longitude": 0}})
    )


# --- Evolution: one endpoint per type -------------------------------------------------------------------------

EVOLUTION_REQUESTS = {
    "text": ("sendText", {"number": DIGITS, "text": "Your refund is on its way"}),
    "image": ("sendMedia", {"number": DIGITS, "mediatype": "image", "media": "https://cdn.example/p/box.jpg",
                            "caption": "Your parcel", "mimetype": "image/jpeg"}),
    "document": ("sendMedia", {"number": DIGITS, "mediatype": "document", "media": "https://cdn.example/i/77.pdf",
                               "caption": "Invoice", "fileName": "invoice-77.pdf", "mimetype": "application/pdf"}),
    "audio": ("sendWhatsAppAudio", {"number": DIGITS, "audio": "https://cdn.example/a/hello.ogg"}),
    "video": ("sendMedia", {"number": DIGITS, "mediatype": "video", "media": "https://cdn.example/v/howto.mp4",
                            "mimetype": "video/mp4"}),
    "location": ("sendLocation", {"number": DIGITS, "latitude": 51.5138, "longitude": -0.0984,
                                  "name": "Bank branch", "address": "1 Poultry, London"}),
    "interactive": ("sendButtons", {"number": DIGITS, "title": "Your order", "description": "Reschedule?",
                                    "footer": "Reply by 6pm",
                                    "buttons": [{"type": "reply", "displayText": "Yes", "id": "yes"},
                                                {"type": "reply", "displayText": "No", "id": "no"}]}),
    "reaction": ("sendReaction", {"key": {"remoteJid": f"{DIGITS}@s.whatsapp.net", "fromMe": False, "id": WAMID},
                                  "reaction": "\U0001f44d"}),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(EVOLUTION_REQUESTS))
def test_evolution_sends_each_type_it_carries_to_its_endpoint(kind: str) -> None:
    endpoint, body = EVOLUTION_REQUESTS[kind]
    url, kwargs = evolution.send_request(EVOLUTION, business(CONTENTS[kind]))
    assert url == f"https://evo.example/message/{endpoint}/shop"
    assert kwargs == {"json": body}
    assert base.headers(evolution, EVOLUTION, business(CONTENTS[kind])) == {"apikey": SECRET}


def test_evolution_quotes_the_message_a_reply_answers() -> None:
    for kind in ("text", "image", "location", "interactive"):
        endpoint, body = EVOLUTION_REQUESTS[kind]
        url, kwargs = evolution.send_request(EVOLUTION, business(with_context(CONTENTS[kind])))
        assert url.endswith(f"/{endpoint}/shop") and kwargs["json"] == body | {"quoted": {"key": {"id": WAMID}}}


def test_evolution_list_titles_every_section_and_keeps_row_descriptions_only_when_given() -> None:
    url, kwargs = evolution.send_request(EVOLUTION, business({"type": "interactive", "interactive": LIST}))
    assert url == "https://evo.example/message/sendList/shop"
    assert kwargs["json"] == {
        "number": DIGITS, "title": "Branches", "description": "Pick one", "footerText": "Open daily",
        "buttonText": "Choose",
        "sections": [{"title": "London", "rows": [{"title": "Soho", "rowId": "soho", "description": "W1"},
                                                  {"title": "Bank", "rowId": "bank"}]},
                     {"title": "Choose", "rows": [{"title": "Leeds", "rowId": "leeds"}]}],
    }  # fmt: skip


def test_evolution_defaults_what_it_requires_and_meta_leaves_out() -> None:
    plain = {"type": "button", "body": {"text": "Still there?"},
             "action": {"buttons": [{"type": "reply", "reply": {"id": "y", "title": "Yes"}}]}}  # fmt: skip
    _, kwargs = evolution.send_request(EVOLUTION, business({"type": "interactive", "interactive": plain}))
    assert kwargs["json"] == {"number": DIGITS, "title": "Still there?", "description": "", "footer": "",
                              "buttons": [{"type": "reply", "displayText": "Yes", "id": "y"}]}  # fmt: skip
    pictured = plain | {"header": {"type": "image", "image": {"link": "https://cdn.example/h.png"}}}
    _, kwargs = evolution.send_request(EVOLUTION, business({"type": "interactive", "interactive": pictured}))
    assert kwargs["json"]["thumbnailUrl"] == "https://cdn.example/h.png"
    somewhere = {"type": "location", "location": {"latitude": "1.5", "longitude": 2}}
    _, kwargs = evolution.send_request(EVOLUTION, business(somewhere))
    assert kwargs["json"] == {"number": DIGITS, "latitude": 1.5, "longitude": 2.0, "name": "", "address": ""}
    document = {"type": "document", "document": {"link": "https://cdn.example/files/statement"}}
    _, kwargs = evolution.send_request(EVOLUTION, business(document))
    assert kwargs["json"]["fileName"] == "statement" and "mimetype" not in kwargs["json"]
    _, kwargs = evolution.send_request(
        EVOLUTION, business(CONTENTS["text"] | {"text": {"body": "x", "preview_url": True}})
    )
    assert kwargs["json"] == {"number": DIGITS, "text": "x", "linkPreview": True}


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (CONTENTS["template"], "Evolution cannot send a message of type template (WhatsApp Web has no templates)"),
        ({"type": "video", "video": {"id": "1479537139650973"}}, "Evolution takes video by link only"),
        ({"type": "audio", "audio": {"id": "1"}}, "Evolution takes audio by link only"),
        ({"type": "interactive", "interactive": {"type": "cta_url", "body": {"text": "t"}, "action": {}}},
         "Evolution cannot send an interactive cta_url message"),
        ({"type": "interactive", "interactive": BUTTONS | {"header": {"type": "video", "video": {"link": "x"}}}},
         "Evolution cannot send an interactive button with a video header"),
        ({"type": "interactive", "interactive": BUTTONS | {"header": {"type": "image", "image": {"id": "1"}}}},
         "Evolution takes an interactive header image by link only"),
        (with_context(CONTENTS["reaction"]), "Evolution cannot send a reaction as a reply (context)"),
    ],
    ids=["template", "video-id", "audio-id", "cta_url", "video-header", "header-image-id", "reaction-context"],
)  # fmt: skip
def test_evolution_refuses_what_it_cannot_carry(content: dict[str, Any], error: str) -> None:
    with pytest.raises(base.Unsupported):
        evolution.send_request(EVOLUTION, business(content))
    assert refusal(evolution, EVOLUTION, business(content)).startswith(f"Evolution cannot carry this message: {error}")


# --- What every provider shares -------------------------------------------------------------------------------


def test_a_business_message_keeps_one_idempotency_key_across_attempts() -> None:
    assert base.idempotency_key(business(CONTENTS["text"])) == "whatsapp-handler-message-123"
    keyed = META.model_copy(update={"idempotency_header": "Idempotency-Key"})
    assert base.headers(meta, keyed, business(CONTENTS["image"]))["Idempotency-Key"] == "whatsapp-handler-message-123"


def test_a_business_message_without_content_is_malformed_for_every_provider() -> None:
    message = business(CONTENTS["text"])
    del message["content"]
    for provider, config in ((meta, META), (twilio, TWILIO), (evolution, EVOLUTION)):
        assert refusal(provider, config, message) == "malformed queue message: KeyError 'content'"
        assert refusal(provider, config, business("not an object")) == (  # type: ignore[arg-type]
            "malformed queue message: TypeError content is not an object"
        )


REPLY = {"kind": "text", "message_id": 5, "channel_id": 1, "user_id": 9, "to": TO, "body": "Welcome"}


def test_the_kinds_queued_before_keep_their_requests() -> None:
    """Replies, OTP codes and Meta's templates go as they did before business messages."""
    assert meta.send_request(META, REPLY)[1] == {"json": {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": DIGITS, "type": "text",
        "text": {"preview_url": False, "body": "Welcome"}}}  # fmt: skip
    template = {"name": "n", "language": {"code": "en"}}
    assert (
        meta.send_request(META, REPLY | {"kind": "template", "template": template})[1]["json"]["template"] == template
    )
    assert twilio.send_request(TWILIO, REPLY)[1]["data"] == {
        "From": TWILIO.ref,
        "To": f"whatsapp:{TO}",
        "Body": "Welcome",
    }
    otp = {"kind": "otp", "challenge_id": 4, "to": TO, "code": "123456"}
    assert twilio.send_request(TWILIO, otp)[1]["data"]["ContentVariables"] == '{"1": "123456"}'
    assert evolution.send_request(EVOLUTION, REPLY) == (
        "https://evo.example/message/sendText/shop",
        {"json": {"number": DIGITS, "text": "Welcome"}},
    )
    assert evolution.send_request(EVOLUTION, otp)[1]["json"]["text"] == "Your code is 123456"


# --- Through the worker, against the provider double ---------------------------------------------------------


@pytest.fixture
def double() -> Iterator[ProviderDouble]:
    d = ProviderDouble().start()
    yield d
    d.stop()


@pytest.fixture
def workers(cluster, db_name, double, tmp_path) -> Iterator[Workers]:
    w = Workers(cluster, db_name, double, tmp_path)
    yield w
    w.stop_all()


@pytest.fixture
def channel_ids(db) -> dict[str, int]:
    def add(provider: str, ref: str, phone: str) -> int:
        return db.execute(
            "SELECT whatsapp_handler.add_channel(%s, %s, %s, 'test') AS id", (provider, ref, phone)
        ).fetchone()["id"]

    return {
        "meta": add("meta", p.META_PHONE_NUMBER_ID, "+15550001111"),
        "twilio": add("twilio", TWILIO_REF, "+15550002222"),
        "evolution": add("evolution", EVOLUTION_REF, "+15550003333"),
    }


def queue_business(db, channel_id: int, content: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """What SQL's send function will queue: an outbound row (status queued) and its queue message,
    grouped by user as the conversation's replies are (messages/queue_reply)."""
    user_id = db.execute("INSERT INTO whatsapp_handler.users (phone) VALUES (%s) RETURNING id", (TO,)).fetchone()["id"]
    row = db.execute(
        "INSERT INTO whatsapp_handler.messages (channel_id, user_id, direction, message_type, status, correlation_id)"
        " VALUES (%s, %s, 'outbound', %s, 'queued', 'c-business') RETURNING id, created_at",
        (channel_id, user_id, content["type"]),
    ).fetchone()
    message = business(content, **extra) | {
        "message_id": row["id"], "message_created_at": row["created_at"].isoformat(),
        "channel_id": channel_id, "user_id": user_id,
    }  # fmt: skip
    db.execute("SELECT whatsapp_handler._enqueue_outbound(%s, %s)", (Jsonb(message), f"user:{user_id}"))
    return message


def provider_id_of(db, message_id: int) -> str | None:
    return db.execute(
        "SELECT provider_message_id FROM whatsapp_handler.messages WHERE id = %s", (message_id,)
    ).fetchone()["provider_message_id"]


E2E = {
    "meta": (with_context({"type": "image", "image": {"id": "1479537139650973", "caption": "Your parcel"}}), {}),
    "twilio": (CONTENTS["template"], TEMPLATE_EXTRA),
    "evolution": ({"type": "interactive", "interactive": LIST}, {}),
}


@pytest.mark.parametrize("name", sorted(E2E))
def test_the_worker_delivers_a_business_message_through_each_provider(db, channel_ids, double, workers, name):
    content, extra = E2E[name]
    message = queue_business(db, channel_ids[name], content, **extra)
    workers.start(worker_concurrency=1)
    [delivered] = wait_for(lambda: double.deliveries(), f"the {name} request")
    config = ChannelConfig.model_validate(next(c for c in channels_config(double) if c["provider"] == name))
    url, kwargs = {"meta": meta, "twilio": twilio, "evolution": evolution}[name].send_request(config, message)
    assert f"http://127.0.0.1:{double.port}{delivered.path}" == url
    assert delivered.body == kwargs.get("json", kwargs.get("data"))
    # The provider's id is recorded on the outbound row, and the queue message archived.
    assert wait_for(lambda: provider_id_of(db, message["message_id"]), "the provider's id recorded")
    wait_for(lambda: db.execute("SELECT count(*) AS n FROM pgmq.q_outbound").fetchone()["n"] == 0, "settled")
    assert db.execute("SELECT count(*) AS n FROM pgmq.a_outbound").fetchone()["n"] == 1


def test_the_worker_dead_letters_what_a_provider_cannot_carry_without_calling_it(db, channel_ids, double, workers):
    message = queue_business(db, channel_ids["twilio"], CONTENTS["reaction"])
    workers.start(worker_concurrency=1)
    [dead] = wait_for(
        lambda: [r["message"] for r in db.execute("SELECT message FROM pgmq.q_outbound_dlq").fetchall()],
        "a dead letter",
    )
    assert dead["reason"] == "rejected" and dead["attempts"] == 1
    assert dead["error"] == {"error": "Twilio cannot carry this message: Twilio cannot send a message of type reaction"}
    assert dead["message"]["content"] == CONTENTS["reaction"]
    status = db.execute("SELECT status FROM whatsapp_handler.messages WHERE id = %s", (message["message_id"],))
    assert status.fetchone()["status"] == "failed"
    assert double.received == [] and "Traceback" not in workers.log()


def test_read_receipts_and_typing_per_provider() -> None:
    receipt = {
        "kind": "read",
        "to": TO,
        "provider_message_id": "wamid.IN",
        "typing": True,
        "user_id": 1,
        "channel_id": 1,
    }
    url, kwargs = meta.send_request(META, receipt)
    read = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN"}
    assert url.endswith("/messages") and kwargs["json"] == {**read, "typing_indicator": {"type": "text"}}
    url, kwargs = evolution.send_request(EVOLUTION, receipt)
    assert url.endswith(f"/chat/markMessageAsRead/{EVOLUTION.ref}")
    assert kwargs["json"] == {
        "readMessages": [{"remoteJid": f"{TO.lstrip('+')}@s.whatsapp.net", "fromMe": False, "id": "wamid.IN"}]
    }
    url, kwargs = evolution.send_request(EVOLUTION, {**receipt, "kind": "typing"})
    assert url.endswith(f"/chat/sendPresence/{EVOLUTION.ref}") and kwargs["json"]["presence"] == "composing"
    with pytest.raises(base.Unsupported):
        twilio.send_request(TWILIO, receipt)
    assert base.idempotency_key(receipt) == "whatsapp-handler-read-wamid.IN"
