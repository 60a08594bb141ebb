"""Realistic webhook bodies of Meta's Cloud API, Twilio and Evolution API, for tests
and benchmarks. Shapes follow each provider's documented payloads."""

from __future__ import annotations

import json
import time
from typing import Any

META_PHONE_NUMBER_ID = "1234567890"
META_DISPLAY_PHONE = "15550001111"


def meta_body(*values: dict[str, Any]) -> dict[str, Any]:
    """One Meta webhook with one change per value."""
    changes = [{"field": "messages", "value": {"messaging_product": "whatsapp", **v}} for v in values]
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": changes}]}


def meta_value(
    messages: list[dict] | None = None,
    statuses: list[dict] | None = None,
    *,
    phone_number_id: str = META_PHONE_NUMBER_ID,
    contacts: list[tuple[str, str]] = (),
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "metadata": {"display_phone_number": META_DISPLAY_PHONE, "phone_number_id": phone_number_id}
    }
    if contacts:
        value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id} for wa_id, name in contacts]
    if messages:
        value["messages"] = messages
    if statuses:
        value["statuses"] = statuses
    return value


def meta_message(wa_id: str, wamid: str, type_: str = "text", *, at: int | None = None, **content: Any) -> dict:
    """A message of any type, sent at `at` (epoch seconds; now by default); content is the
    object under the type's key."""
    timestamp = str(at if at is not None else int(time.time()))
    message = {"from": wa_id, "id": wamid, "timestamp": timestamp, "type": type_}
    if type_ == "text":
        message["text"] = {"body": content.get("body", "hello")}
    elif type_ == "unsupported":
        message["errors"] = [{"code": 131051, "title": "Message type unknown"}]
    else:
        message[type_] = content
    return message


def meta_text(
    wa_id: str, wamid: str, body: str = "hello", name: str = "Ana", at: int | None = None, **kw: Any
) -> dict[str, Any]:
    return meta_body(meta_value([meta_message(wa_id, wamid, body=body, at=at)], contacts=[(wa_id, name)], **kw))


def compact(body: dict[str, Any]) -> bytes:
    """A body as a provider sends it on the wire: JSON without spaces."""
    return json.dumps(body, separators=(",", ":")).encode()


def meta_button_reply(wa_id: str, wamid: str, button_id: str, title: str) -> dict[str, Any]:
    reply = {"type": "button_reply", "button_reply": {"id": button_id, "title": title}}
    return meta_body(meta_value([meta_message(wa_id, wamid, "interactive", **reply)], contacts=[(wa_id, "Ana")]))


def meta_status(wamid: str, status: str, recipient: str, at: int | None = None, errors: list | None = None) -> dict:
    s: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(at if at is not None else int(time.time())),
        "recipient_id": recipient,
    }
    if errors:
        s["errors"] = errors
    return s


def twilio_inbound(sid: str, from_phone: str, to_phone: str, body: str = "hello", **extra: str) -> dict[str, str]:
    return {
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ProfileName": "Ana",
        "MessageType": "text",
        "SmsSid": sid,
        "WaId": from_phone.lstrip("+"),
        "SmsStatus": "received",
        "Body": body,
        "To": f"whatsapp:{to_phone}",
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": sid,
        "AccountSid": "AC00000000000000000000000000000000",
        "From": f"whatsapp:{from_phone}",
        "ApiVersion": "2010-04-01",
        **extra,
    }


def twilio_status(sid: str, status: str, business_phone: str, user_phone: str, **extra: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "From": f"whatsapp:{business_phone}",
        "To": f"whatsapp:{user_phone}",
        "AccountSid": "AC00000000000000000000000000000000",
        "ApiVersion": "2010-04-01",
        "ChannelPrefix": "whatsapp",
        **extra,
    }


def evolution_upsert(instance: str, phone: str, key_id: str, text: str = "hello", apikey: str = "") -> dict[str, Any]:
    return {
        "event": "messages.upsert",
        "instance": instance,
        "data": {
            "key": {"remoteJid": f"{phone.lstrip('+')}@s.whatsapp.net", "fromMe": False, "id": key_id},
            "pushName": "Ana",
            "message": {"conversation": text},
            "messageType": "conversation",
            "messageTimestamp": int(time.time()),
            "instanceId": "af6c5b7c-ee27-4f94-9ea8-192393746ddd",
            "source": "android",
        },
        "destination": "https://hooks.example.com/webhooks/evolution",
        "date_time": "2026-11-24T10:00:00.000Z",
        "sender": "15550003333@s.whatsapp.net",
        "server_url": "https://evolution.example.com",
        "apikey": apikey,
    }


def evolution_update(instance: str, key_id: str, status: str, apikey: str = "") -> dict[str, Any]:
    return {
        "event": "messages.update",
        "instance": instance,
        "data": {"keyId": key_id, "remoteJid": "447700900123@s.whatsapp.net", "fromMe": True, "status": status},
        "apikey": apikey,
    }
