"""Hypothesis strategies shared by the fuzz tests: phones, hostile text, JSON of every shape, wrong types,
and provider bodies with one field swapped for something the provider would never send."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from kit import payloads

LONG = os.environ.get("WH_FUZZ") == "long"

# CI: derandomized and small, so a run is repeatable and short. Long: random, many examples, and an example
# database outside the tree (so a failure found once is replayed first next time, on this machine only).
_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("wh_fuzz_ci", derandomize=True, database=None, print_blob=True, **_COMMON)
settings.register_profile(
    "wh_fuzz_long",
    database=DirectoryBasedExampleDatabase(os.path.join(tempfile.gettempdir(), "wh-fuzz-examples")),
    print_blob=True,
    **_COMMON,
)


def budget(ci: int, long: int) -> settings:
    """Settings of one fuzz target: `ci` examples in CI, `long` when WH_FUZZ=long."""
    return settings(settings.get_profile("wh_fuzz_long" if LONG else "wh_fuzz_ci"), max_examples=long if LONG else ci)


# --- text -------------------------------------------------------------------------------------------------------

NASTY_CHARS = [
    "\x00",  # NUL: PostgreSQL text cannot hold it
    "\u202e",  # right-to-left override
    "\u200f",  # right-to-left mark
    "\u0301",  # combining acute accent
    "\u200d",  # zero-width joiner
    "\ufeff",  # byte order mark
    "\ud800",  # lone surrogate: not encodable as UTF-8
    "\U0001f600",  # outside the BMP
    "\u0660",  # Arabic-Indic digit zero
    "\uff11",  # fullwidth digit one
    "'",
    '"',
    "\\",
    "%",
    "\n",
]


def huge_text(min_size: int = 10_000, max_size: int = 300_000) -> st.SearchStrategy[str]:
    return st.builds(lambda n, c: c * n, st.integers(min_size, max_size), st.sampled_from(["x", "é", "\U0001f600"]))


def texts(max_size: int = 60) -> st.SearchStrategy[str]:
    """Unicode of every category (surrogates and NUL included), the characters that break things, and huge text."""
    return st.one_of(
        st.text(max_size=max_size),
        st.text(st.sampled_from(NASTY_CHARS) | st.characters(), max_size=max_size),
        st.lists(st.sampled_from(NASTY_CHARS), min_size=1, max_size=8).map("".join),
        huge_text(),
    )


# --- phones -----------------------------------------------------------------------------------------------------


def e164() -> st.SearchStrategy[str]:
    return st.from_regex(r"\A\+[1-9][0-9]{6,14}\Z")


def phones() -> st.SearchStrategy[str]:
    """Valid E.164 numbers and the ways a number can almost be one."""
    near_misses = st.one_of(
        st.from_regex(r"\A[1-9][0-9]{6,14}\Z"),  # no plus
        st.from_regex(r"\A\+0[0-9]{6,14}\Z"),  # leading zero
        st.from_regex(r"\A\+[1-9][0-9]{15,20}\Z"),  # too long
        st.from_regex(r"\A\+[1-9][0-9]{0,4}\Z"),  # too short
        st.from_regex(r"\A\+[1-9][0-9 ()\-.]{6,18}\Z"),  # formatted
        e164().map(lambda p: p + "\n"),
        e164().map(lambda p: " " + p),
        e164().map(lambda p: "whatsapp:" + p),
    )
    unicode_digits = st.builds(
        lambda digits, zero: "+" + "".join(chr(ord(zero) + int(d)) for d in digits),
        st.from_regex(r"\A[1-9][0-9]{6,14}\Z"),
        st.sampled_from(["\u0660", "\u06f0", "\u0966", "\uff10", "\U0001d7ce"]),
    )
    very_long = st.integers(16, 100_000).map(lambda n: "+" + "1" * n)
    return st.one_of(e164(), near_misses, unicode_digits, very_long, texts(24), st.just(""))


# --- JSON -------------------------------------------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**200),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 5e-324, 1e-400]),
    texts(30),
)


def json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts(12), inner, max_size=4),
        max_leaves=max_leaves,
    )


class RawJson(str):
    """JSON text sent as is: what json.dumps cannot produce (deep nesting, duplicate keys, NaN, \\u0000)."""


def deep_json() -> st.SearchStrategy[RawJson]:
    def nest(depth: int, kind: str) -> RawJson:
        if kind == "array":
            return RawJson("[" * depth + "]" * depth)
        return RawJson('{"a":' * depth + "1" + "}" * depth)

    return st.builds(nest, st.integers(500, 20_000), st.sampled_from(["array", "object"]))


def odd_json() -> st.SearchStrategy[RawJson]:
    return st.sampled_from(
        [
            RawJson('{"a": 1, "a": 2}'),
            RawJson('{"object": "whatsapp_business_account", "object": "x", "entry": []}'),
            RawJson('{"a": "\\u0000"}'),
            RawJson('{"\\u0000": 1}'),
            RawJson('{"a": "\\ud800"}'),
            RawJson('{"n": 1e400}'),
            RawJson('{"n": -1e400}'),
            RawJson('{"n": 123456789012345678901234567890123456789}'),
            RawJson('{"n": NaN}'),
            RawJson("[]"),
            RawJson('"a string"'),
            RawJson("null"),
            RawJson("12"),
            RawJson("{}"),
            RawJson(""),
        ]
    )


def any_json() -> st.SearchStrategy[Any]:
    return st.one_of(json_values(), deep_json(), odd_json())


# --- wrong types ------------------------------------------------------------------------------------------------


def wrong_types() -> st.SearchStrategy[Any]:
    """Values of the wrong kind for whatever parameter they are passed to."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.floats(),
        st.integers(min_value=2**63),
        st.integers(max_value=-(2**63) - 1),
        st.sampled_from(["12abc", "", "1e3", " 7", "NaN", "-0", "9223372036854775808"]),
        st.lists(st.integers(-5, 5), max_size=3),
        st.lists(st.text(max_size=3), max_size=3),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2).map(lambda d: RawJson(json.dumps(d))),
    )


# --- provider bodies ----------------------------------------------------------------------------------------------


def _leaves(value: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))] + [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))] + [path]
    return [path]


def _replace(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[Any]) -> Any:
    """A valid body with a few fields (or whole sub-objects) replaced by anything JSON can hold."""
    body = draw(base)
    for _ in range(draw(st.integers(0, 3))):
        # Not the root: a body that is no longer an object is any_json()'s business.
        path = draw(st.sampled_from([p for p in _leaves(body) if p]))
        body = _replace(body, path, draw(json_values(6)))
    return body


def _meta_inbound(wa_id: str, wamid: str, text: str, name: str, ref: str, kind: str) -> dict[str, Any]:
    if kind == "status":
        value = payloads.meta_value(statuses=[payloads.meta_status(wamid, text, wa_id)], phone_number_id=ref)
        return payloads.meta_body(value)
    message = payloads.meta_message(wa_id, wamid, kind, body=text, id=text, title=name)
    return payloads.meta_body(payloads.meta_value([message], contacts=[(wa_id, name)], phone_number_id=ref))


def meta_bodies(refs: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    base = st.builds(
        _meta_inbound,
        phones().map(lambda p: p.lstrip("+")),
        texts(40),
        texts(40) | st.sampled_from(["sent", "delivered", "read", "failed", "1", "yes", "no"]),
        texts(30),
        st.sampled_from(refs) | texts(20),
        st.sampled_from(["text", "interactive", "image", "unsupported", "status", "reaction", "button"]) | texts(10),
    )
    return mutated(base)


def twilio_bodies(refs: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    status = st.sampled_from(["queued", "sent", "delivered", "read", "failed", "undelivered"]) | texts(10)
    inbound = st.builds(
        lambda sid, phone, ref, body: payloads.twilio_inbound(sid, phone, ref.removeprefix("whatsapp:"), body),
        texts(40),
        phones(),
        st.sampled_from(refs) | texts(20),
        texts(),
    )
    statuses = st.builds(
        lambda sid, s, ref, phone: payloads.twilio_status(sid, s, ref.removeprefix("whatsapp:"), phone),
        texts(40),
        status,
        st.sampled_from(refs) | texts(20),
        phones(),
    )
    return mutated(inbound | statuses)


def evolution_bodies(refs: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    status = st.sampled_from(["PENDING", "SERVER_ACK", "DELIVERY_ACK", "READ", "ERROR", "PLAYED"]) | texts(10)
    upsert = st.builds(payloads.evolution_upsert, st.sampled_from(refs) | texts(20), phones(), texts(40), texts())
    update = st.builds(payloads.evolution_update, st.sampled_from(refs) | texts(20), texts(40), status)
    return mutated(upsert | update)
