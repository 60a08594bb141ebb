"""A webhook's body made into JSON text that PostgreSQL's jsonb takes, for every provider (each
provider's module, app/providers/, reads the few fields of its envelope that it routes by).

Only the envelope is read by the relay; the body itself goes to SQL as received, which
normalises the rest (and dead-letters what it cannot understand). A body jsonb would
refuse (a \u0000, a lone surrogate, bytes that are not UTF-8, a number out of numeric's
range) is cleaned here, with a note saying what changed, and goes to SQL with its raw
bytes; one that is not JSON at all goes as raw bytes alone, to be dead-lettered. Nothing
jsonb refuses is cast by PostgreSQL outside a handler: its error would quote the body in
the server log.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from litestar.exceptions import ClientException
from pydantic import ValidationError


def bad_request(what: str, exc: ValidationError) -> ClientException:
    """A 400 naming where a provider's envelope differs from what its model expects."""
    first = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return ClientException(f"{what}: {where}: {first['msg']}")


def json_object(body: bytes | str) -> dict[str, Any]:
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


# --- JSON that jsonb takes ---------------------------------------------------------------------------------------

NOT_UTF8 = "bytes that are not UTF-8 replaced with U+FFFD"
# What jsonb refuses in JSON text (PostgreSQL 15): a \u0000 escape, a lone surrogate escape, a number with more
# than 131072 digits before its point or 16383 after it (numeric's range), and NaN or Infinity, which JSON has
# not but Python's parser takes. A body with none of these is passed as received. The screens are cheap (a
# substring test, then one regex with a literal prefix; numbers and constants are seen by the parser's hooks);
# what they let through is checked token by token. A number under 1000 characters with an exponent under
# 10000 fits.
_SUSPECT_ESCAPE = re.compile(
    r"\\u(?:0000|[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])|(?<!\\u[dD][89abAB][0-9a-fA-F]{2}\\u)[dD][c-fC-F])"
)
_BIG_EXPONENT = re.compile(r"[eE][+-]?0*[0-9]{5}")
_TOKEN = re.compile(
    r'(?P<string>"[^"\\]*(?:\\.[^"\\]*)*")'
    r"|(?P<number>-?(?P<int>0|[1-9][0-9]*)(?:\.(?P<frac>[0-9]+))?(?:[eE](?P<exp>[+-]?[0-9]+))?)"
    r"|(?P<constant>-?Infinity|NaN)"
)
_ESCAPE = re.compile(r"\\u([dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u([0-9a-fA-F]{4})|\\.")
NUMERIC_DIGITS_BEFORE = 131072
NUMERIC_DIGITS_AFTER = 16383


@dataclass(frozen=True)
class Body:
    """An authenticated body: raw as received; text, JSON jsonb takes (None when the body is not JSON);
    note, what was changed to make text, or why there is none (None when text is the body as received)."""

    raw: bytes
    text: str | None
    note: str | None


def decode(raw: bytes) -> Body:
    notes = []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
        notes.append(NOT_UTF8)
    odd: list[str] = []

    def number(token: str) -> int:
        if len(token) >= 1000 or _BIG_EXPONENT.search(token):
            odd.append(token)
        return 0

    def constant(token: str) -> int:
        odd.append(token)
        return 0

    try:
        # Syntax only: numbers are not converted (a 5000-digit integer is no error here).
        json.loads(text, parse_int=number, parse_float=number, parse_constant=constant)
    except RecursionError:
        return Body(raw, None, "; ".join([*notes, "not JSON: nested too deeply to be read"]))
    except json.JSONDecodeError as exc:
        # The parser's message names what it expected and where, never the body's content.
        return Body(raw, None, "; ".join([*notes, f"not JSON: {exc.msg} at character {exc.pos}"]))
    if odd or ("\\u" in text and _SUSPECT_ESCAPE.search(text)):
        text, cleaned = _clean(text)
        notes.extend(cleaned)
    return Body(raw, text, "; ".join(notes) or None)


def _clean(text: str) -> tuple[str, list[str]]:
    """JSON text (valid) with what jsonb refuses replaced; the notes say what and how many."""
    counts = {"nul": 0, "surrogate": 0, "number": 0, "constant": 0}

    def escape(match: re.Match[str]) -> str:
        if match.group(1) is not None or match.group(2) is None:
            return match.group(0)  # a surrogate pair, or another escape
        code = int(match.group(2), 16)
        if code == 0:
            counts["nul"] += 1
            return ""
        if 0xD800 <= code <= 0xDFFF:
            counts["surrogate"] += 1
            return "\\ufffd"
        return match.group(0)

    def token(match: re.Match[str]) -> str:
        if match.group("string") is not None:
            string = match.group("string")
            return _ESCAPE.sub(escape, string) if "\\" in string else string
        if match.group("number") is not None:
            if _fits(match.group("int"), match.group("frac") or "", match.group("exp")):
                return match.group(0)
            counts["number"] += 1
        else:
            counts["constant"] += 1
        return f'"{match.group(0)}"'

    cleaned = _TOKEN.sub(token, text)
    notes = {
        "nul": "\\u0000 removed",
        "surrogate": "lone surrogates replaced with U+FFFD",
        "number": "numbers out of jsonb's range kept as strings",
        "constant": "NaN or Infinity kept as strings",
    }
    return cleaned, [f"{count} {notes[kind]}" for kind, count in counts.items() if count]


def _fits(integer: str, fraction: str, exponent: str | None) -> bool:
    """Whether PostgreSQL's numeric (and so jsonb) takes this JSON number."""
    digits = (exponent or "0").lstrip("+-").lstrip("0")
    if len(digits) > 9:
        return False
    power = int(exponent or 0)
    if max(0, len(fraction) - power) > NUMERIC_DIGITS_AFTER:
        return False
    significant = integer.lstrip("0")
    if significant:
        return len(significant) + power <= NUMERIC_DIGITS_BEFORE
    rest = fraction.lstrip("0")
    return not rest or power - (len(fraction) - len(rest)) <= NUMERIC_DIGITS_BEFORE
