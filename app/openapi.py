"""What the OpenAPI document says that the handlers' signatures cannot: the problem+json answers, and the
webhook bodies and signature headers, which the handlers read raw (the signature covers the raw bytes).
Each provider's module (app/providers/) describes its own body with the schema builders here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example, OpenAPIMediaType, OpenAPIType, Operation, Parameter, RequestBody, Schema
from pydantic import BaseModel, ConfigDict, Field

from app.errors import PROBLEM_JSON, status_meaning


class Problem(BaseModel):
    """RFC 9457 problem details, with the project's SQLSTATE and hint when the database refused."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["about:blank"])
    title: str
    status: int
    detail: str
    code: str | None = Field(default=None, description="the SQLSTATE, such as WH001 (docs/errors.md)")
    hint: str | None = None


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_JSON,
            description=status_meaning(status),
            generate_examples=False,
        )
        for status in statuses
    }


def string_schema(**extra: Any) -> Schema:
    return Schema(type=OpenAPIType.STRING, **extra)


def object_schema(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    return Schema(type=OpenAPIType.OBJECT, properties=properties, required=required)


def array_schema(items: Schema) -> Schema:
    return Schema(type=OpenAPIType.ARRAY, items=items, min_items=1)


# One file a body: docs/webhooks.md shows the same files, and tests post each one to the relay.
EXAMPLES = Path(__file__).parent / "providers" / "examples"


def webhook_examples(provider: str) -> dict[str, Example]:
    """A provider's example webhook bodies (app/providers/examples/<provider>_<what>.json, or .form
    for a form-encoded body), named by <what>."""
    found = {}
    for path in sorted(EXAMPLES.glob(f"{provider}_*")):
        text = path.read_text(encoding="utf-8")
        value = json.loads(text) if path.suffix == ".json" else dict(parse_qsl(text.strip(), keep_blank_values=True))
        name = path.stem.removeprefix(f"{provider}_")
        found[name] = Example(summary=f"{name} (docs/webhooks.md)", value=value)
    return found


def described(
    body: tuple[str, Schema] | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    examples: dict[str, Example] | None = None,
) -> type[Operation]:
    """An Operation class documenting the body (media type, schema, examples), headers and query that a
    handler reads itself."""

    @dataclass
    class DescribedOperation(Operation):
        def __post_init__(self) -> None:
            if body is not None:
                media = OpenAPIMediaType(schema=body[1], examples=examples)
                self.request_body = RequestBody(content={body[0]: media}, required=True)
            documented = [
                Parameter(name=name, param_in=where, required=False, description=text, schema=string_schema())
                for where, names in (("header", headers or {}), ("query", query or {}))
                for name, text in names.items()
            ]
            self.parameters = [*(self.parameters or []), *documented] or None

    return DescribedOperation
