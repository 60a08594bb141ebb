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


# --- the business API ---------------------------------------------------------------------------------------------


def visible_ascii(min_size: int = 1, max_size: int = 40) -> st.SearchStrategy[str]:
    return st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=min_size, max_size=max_size)


def idempotency_keys(known: list[str]) -> st.SearchStrategy[Any]:
    """Keys a backend would send (some already used), and the ones the API refuses: empty, spaces, too long."""
    return st.one_of(
        visible_ascii(),
        st.sampled_from(known) if known else st.nothing(),
        st.sampled_from(["", " ", "a b", "k\n", "é", "x" * 255, "x" * 256]),
        texts(40),
        st.none(),
    )


def mostly(usual: st.SearchStrategy[Any], rest: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` about three times in four, `rest` otherwise. Not st.one_of(usual, usual, usual, rest), which
    draws its distinct branches evenly; not an index either, which hypothesis draws at its bounds more often
    than between them: two coins, and `rest` only on two heads (hypothesis leans to tails, so to `usual`)."""
    return st.tuples(st.booleans(), st.booleans()).flatmap(lambda coins: rest if all(coins) else usual)


def key_hashes(good: list[bytes], other: list[bytes]) -> st.SearchStrategy[bytes]:
    """The SHA-256 of a key that may act (three times in four, so that calls get past the key), of a live key
    that may not here (another scope or channel, or revoked: most of the rest, so that a success it should not
    have shows), of no key at all, and bytes that are no hash."""
    unknown = st.binary(min_size=32, max_size=32) | st.binary()
    return mostly(st.sampled_from(good), mostly(st.sampled_from(other), unknown))


def json_numbers_or_not() -> st.SearchStrategy[Any]:
    """What a JSON client might put where an id belongs."""
    return st.one_of(
        st.integers(-(2**70), 2**70),
        st.sampled_from([0, -1, 1.0, 1.5, 1e20, "1", "", True, None, [1], {"id": 1}]),
        json_values(3),
    )


def words(max_size: int = 60) -> st.SearchStrategy[str]:
    """Text a backend would send two times in three, texts()' hostile kinds the third: a field that is always
    hostile would stop every message at its first check."""
    readable = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))
    return st.one_of(
        st.sampled_from(["Ana", "hello", "P-1", "\U0001f600 ol\u00e1"]),
        st.text(readable, min_size=1, max_size=max_size),
        texts(max_size),
    )


def _template(name: str, language: str, parameters: list[Any], component: str) -> dict[str, Any]:
    given = [{"type": "text", "text": value} for value in parameters]
    return {"name": name, "language": {"code": language}, "components": [{"type": component, "parameters": given}]}


def _object(required: dict[str, Any], **optional: Any) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object with these members (strategies, or constants), and some of the optional ones."""
    as_strategy = {k: v if isinstance(v, st.SearchStrategy) else st.just(v) for k, v in required.items()}
    return st.fixed_dictionaries(as_strategy, optional=optional)


def _interactive() -> st.SearchStrategy[dict[str, Any]]:
    """Buttons and lists, up to one past each of WhatsApp's counts and lengths."""
    body = _object({"text": words(60)})
    reply = _object({"type": "reply", "reply": _object({"id": words(30), "title": words(24)})})
    buttons = _object({"buttons": st.lists(reply, max_size=4)})
    row = _object({"id": words(30), "title": words(26)}, description=words(80))
    section = _object({"rows": st.lists(row, max_size=11)}, title=words(26))
    sections = _object({"button": words(22), "sections": st.lists(section, max_size=11)})
    footer = _object({"text": words(62)})
    header = _object({"type": "text", "text": words(62)})
    return _object({"type": "button", "body": body, "action": buttons}, footer=footer) | _object(
        {"type": "list", "body": body, "action": sections}, header=header
    )


def business_contents(templates: list[str], replied_to: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Meta's Cloud API message objects (without channel_id and to) of every type the send API takes, near
    WhatsApp's limits, naming known templates and messages mostly; some with a field swapped for anything."""
    message_ids = (st.sampled_from(replied_to) | words(40)) if replied_to else words(40)
    link = st.sampled_from(["https://example.com/a.jpg", "http://example.com/a.jpg", "https://", "https://a b"])
    text = _object({"body": st.just("hello") | words(100) | huge_text(4090, 4100)}, preview_url=st.booleans())
    template = st.builds(
        _template,
        st.sampled_from(templates) | st.from_regex(r"\A[a-z0-9_]{1,20}\Z") | words(20),
        st.sampled_from(["en_GB", "en", "pt_BR", "EN", ""]),
        st.lists(st.just("Ana") | words(20), max_size=3),
        st.sampled_from(["body", "BODY", "header", "button", "footer"]),
    )
    media = _object({}, link=link | words(30), id=words(20), caption=words(60), filename=words(20))
    coordinate = st.floats(-200, 200) | st.integers(-200, 200) | json_values(1)
    location = _object({"latitude": coordinate, "longitude": coordinate}, name=words(40), address=words(40))
    emoji = st.sampled_from(["\U0001f44d", ""]) | words(17)
    # The first drawn most: hypothesis leans to the simplest choice.
    objects = {
        "text": text,
        "template": template,
        "image": media,
        "interactive": _interactive(),
        "reaction": _object({"message_id": message_ids, "emoji": emoji}),
        "location": location,
        "document": media,
        "video": media,
        "audio": media,
    }
    typed = st.sampled_from(list(objects)).flatmap(
        lambda kind: _object(
            {"type": kind, kind: objects[kind]},
            context=_object({"message_id": message_ids}),
            messaging_product=st.sampled_from(["whatsapp", "sms"]),
            recipient_type=st.sampled_from(["individual", "group"]),
        )
    )
    return mostly(typed, mutated(typed))
