"""A campaign's recipient list as the CLI and the HTTP API receive it (CSV or JSON), read into the rows
`campaign_upload` takes: [{"phone": ..., "variables": [...]}, ...] in the file's order.

Only the file's structure is checked here (a CSV row with the wrong number of fields, a JSON row that is
not an object); whether a phone is E.164 and the variables fit the template is SQL's one check
(`_campaign_row_problem`), which names the row. Rows count from 1, the CSV header not counted, in both
places, so that "row 7" means the same line to everyone."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

MAX_ROWS = 200_000  # setting campaigns.max_recipients's default: SQL holds the real limit


class RecipientsError(ValueError):
    """The file cannot be read as a recipient list; the message names the row."""


def from_csv(text: str) -> list[dict[str, Any]]:
    """A header `phone[,name,...]`, then one recipient per line: the phone, then the template's body
    variables in order. Blank lines are skipped; a line with another number of fields is an error."""
    # A spreadsheet's export may begin with a byte-order mark: it is not part of the header.
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    try:
        header = next(reader, None)
        if not header or header[0].strip().lower() != "phone":
            raise RecipientsError("the first line is a header whose first field is phone (phone,var1,var2,...)")
        rows: list[dict[str, Any]] = []
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                raise RecipientsError(
                    f"row {len(rows) + 1} (line {reader.line_num}) has {len(fields)} fields, the header {len(header)}"
                )
            rows.append({"phone": fields[0].strip(), "variables": [f.strip() for f in fields[1:]]})
            _check_count(rows)
    except csv.Error as exc:
        raise RecipientsError(f"line {reader.line_num} is not CSV: {exc}") from None
    return _non_empty(rows)


def from_json(text: str | bytes) -> list[dict[str, Any]]:
    """A JSON array of {"phone", "variables"} objects, or {"recipients": [...]}."""
    try:
        data = json.loads(text, parse_constant=_no_constant)
        # What PostgreSQL's jsonb refuses (a lone surrogate) is refused here, with the row's number and not
        # in the server's log, whose error context would quote the list and its phones.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError) as exc:
        raise RecipientsError(f"not JSON: {exc}") from None
    return from_rows(data.get("recipients") if isinstance(data, dict) else data)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def from_rows(data: Any) -> list[dict[str, Any]]:
    """Rows already parsed (an HTTP body): an array of objects, each checked by SQL."""
    if not isinstance(data, list):
        raise RecipientsError('recipients are a JSON array: [{"phone": "+447700900123", "variables": ["Ana"]}, ...]')
    for n, row in enumerate(data, 1):
        if not isinstance(row, dict):
            raise RecipientsError(f'row {n} is not an object {{"phone", "variables"}}')
    _check_count(data)
    return _non_empty(data)


def read(text: str, media_type: str) -> list[dict[str, Any]]:
    """By media type: text/csv, else JSON."""
    return from_csv(text) if media_type.split(";")[0].strip().lower() == "text/csv" else from_json(text)


def _check_count(rows: list) -> None:
    if len(rows) > MAX_ROWS:
        raise RecipientsError(f"more than {MAX_ROWS:,} rows: split the list over several uploads or campaigns")


def _non_empty(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not rows:
        raise RecipientsError("the list holds no recipient")
    return rows
