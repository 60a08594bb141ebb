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


META_ACCOUNT_ID = "102290129340398"  # the WhatsApp Business Account (entry.id) of meta_body's webhooks
TEMPLATE_ID = 806312974732579  # Meta's id of a template (message_template_id)


def meta_priced_status(
    wamid: str,
    status: str,
    recipient: str,
    category: str = "utility",
    *,
    billable: bool = True,
    pricing_model: str = "PMP",
    at: int | None = None,
    conversation: bool = True,
) -> dict:
    """A sent or delivered status with Meta's pricing (billable, pricing_model, category, type)
    and, as conversation-based pricing sent it, the conversation the message opened."""
    s = meta_status(wamid, status, recipient, at)
    s["pricing"] = {"billable": billable, "pricing_model": pricing_model, "category": category,
                    "type": "regular" if billable else "free_customer_service"}  # fmt: skip
    if conversation:
        s["conversation"] = {"id": f"conv-{wamid}", "origin": {"type": category}}
        if status == "sent":
            s["conversation"]["expiration_timestamp"] = str(int(time.time()) + 86400)
    return s


def meta_status_error(code: int, title: str, details: str) -> dict[str, Any]:
    """One error of a failed status as Meta reports it (code, title, message, error_data.details)."""
    return {"code": code, "title": title, "message": title, "error_data": {"details": details},
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}  # fmt: skip


def meta_account_body(field: str, value: dict[str, Any], account_id: str = META_ACCOUNT_ID) -> dict[str, Any]:
    """An account-level webhook (no phone number): one change of `field` for the account."""
    entry = {"id": account_id, "time": int(time.time()), "changes": [{"field": field, "value": value}]}
    return {"object": "whatsapp_business_account", "entry": [entry]}


def meta_template_status(
    name: str, language: str, event: str, template_id: int = TEMPLATE_ID, reason: str | None = "NONE", **extra: Any
) -> dict[str, Any]:
    """The value of a message_template_status_update (APPROVED, REJECTED, PAUSED, DISABLED, ...)."""
    return {"event": event, "message_template_id": template_id, "message_template_name": name,
            "message_template_language": language, "reason": reason, **extra}  # fmt: skip


def meta_template_category(name: str, language: str, new: str, previous: str, template_id: int = TEMPLATE_ID) -> dict:
    """The value of a template_category_update."""
    return {"message_template_id": template_id, "message_template_name": name, "message_template_language": language,
            "previous_category": previous, "new_category": new}  # fmt: skip


def meta_template_quality(name: str, language: str, new: str, previous: str, template_id: int = TEMPLATE_ID) -> dict:
    """The value of a message_template_quality_update (GREEN, YELLOW, RED, UNKNOWN)."""
    return {"previous_quality_score": previous, "new_quality_score": new, "message_template_id": template_id,
            "message_template_name": name, "message_template_language": language}  # fmt: skip


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


def evolution_connection(
    instance: str, state: str, reason: int = 200, date_time: str | None = None, apikey: str = ""
) -> dict[str, Any]:
    """Evolution API's CONNECTION_UPDATE: {"state": open | connecting | close, "statusReason": Baileys' code}."""
    body: dict[str, Any] = {
        "event": "connection.update",
        "instance": instance,
        "data": {"instance": instance, "state": state, "statusReason": reason},
        "destination": "https://hooks.example.com/webhooks/evolution",
        "sender": "15550003333@s.whatsapp.net",
        "server_url": "https://evolution.example.com",
        "apikey": apikey,
    }
    if date_time is not None:
        body["date_time"] = date_time
    return body
