"""The few fields of each provider's body that the relay needs to route and authenticate a webhook.

Only the envelope is read here; the body itself goes to SQL as received, which
normalises the rest (and dead-letters what it cannot understand).
"""

from __future__ import annotations

import json
from typing import Any, Literal
from urllib.parse import parse_qsl

from litestar.exceptions import ClientException
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Metadata(BaseModel):
    phone_number_id: str = Field(min_length=1, max_length=128)


class _Value(BaseModel):
    # Account-level fields (message_template_status_update, account_update, ...) name no number.
    metadata: _Metadata | None = None


class _Change(BaseModel):
    value: _Value


class _Entry(BaseModel):
    changes: list[_Change] = Field(min_length=1)


class MetaEnvelope(BaseModel):
    """A WhatsApp Business Account webhook: message changes name the number they are for."""

    object: Literal["whatsapp_business_account"]
    entry: list[_Entry] = Field(min_length=1)

    def phone_number_ids(self) -> set[str]:
        return {
            change.value.metadata.phone_number_id
            for entry in self.entry
            for change in entry.changes
            if change.value.metadata is not None
        }


class EvolutionEnvelope(BaseModel):
    """An Evolution API event: the instance it comes from and, usually, that instance's apikey."""

    model_config = ConfigDict(extra="allow")

    event: str = Field(min_length=1, max_length=128)
    instance: str = Field(min_length=1, max_length=128)
    apikey: str | None = None


def _bad_request(what: str, exc: ValidationError) -> ClientException:
    first = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return ClientException(f"{what}: {where}: {first['msg']}")


def meta_envelope(body: bytes) -> MetaEnvelope:
    try:
        return MetaEnvelope.model_validate_json(body)
    except ValidationError as exc:
        raise _bad_request("not a WhatsApp Business Account webhook", exc) from None


def evolution_envelope(body: bytes) -> tuple[EvolutionEnvelope, dict[str, Any]]:
    """The envelope, and the body as an object (to be stored without its apikey)."""
    payload = json_object(body)
    try:
        return EvolutionEnvelope.model_validate(payload), payload
    except ValidationError as exc:
        raise _bad_request("not an Evolution API event", exc) from None


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    """application/x-www-form-urlencoded, strictly: a body that is not one is a 400."""
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, errors="strict")
    except ValueError:
        raise ClientException("the body is not a URL-encoded form") from None


def json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        raise ClientException("the body is not JSON") from None
    except RecursionError:
        # Python's parser recurses per level: a body nested a few thousand deep is refused, not a 500.
        raise ClientException("the body's JSON is nested too deeply") from None
    if not isinstance(payload, dict):
        raise ClientException("the body is not a JSON object")
    return payload
