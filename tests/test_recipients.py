"""app.recipients: a recipient list read from CSV or JSON, its structure checked, each row named by the number
SQL's upload uses (from 1, the header not counted)."""

from __future__ import annotations

import re

import pytest

from app import recipients
from app.recipients import RecipientsError


def test_a_csv_becomes_rows_in_order() -> None:
    text = 'phone,name,train\n+447700900001,Ana,IC 1\n\n+447700900002,"Bo, Jr.",IC 2\r\n'
    assert recipients.from_csv(text) == [
        {"phone": "+447700900001", "variables": ["Ana", "IC 1"]},
        {"phone": "+447700900002", "variables": ["Bo, Jr.", "IC 2"]},
    ]
    assert recipients.read(text, "text/csv; charset=utf-8") == recipients.from_csv(text)
    assert recipients.from_csv("\ufeff" + text) == recipients.from_csv(text)  # a spreadsheet's byte-order mark


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("+447700900001,Ana\n", "header"),
        ("phone,name\n+447700900001,Ana\n+447700900002\n", "row 2 (line 3) has 1 fields, the header 2"),
        ('phone,name\n+447700900001,"Ana\n', "is not CSV"),
        ("phone,name\n", "no recipient"),
    ],
)
def test_a_malformed_csv_names_its_row(text: str, message: str) -> None:
    with pytest.raises(RecipientsError, match=re.escape(message)):
        recipients.from_csv(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1]", "row 1 is not an object"),
        ('{"recipients": "x"}', "JSON array"),
        ("[", "not JSON"),
        ("[]", "no recipient"),
        ('[{"phone": "+447700900001", "variables": [NaN]}]', "NaN is not a JSON value"),
        ('[{"phone": "+447700900001", "variables": ["\\ud800"]}]', "not JSON"),
    ],
)
def test_a_malformed_json_list_names_its_row(text: str, message: str) -> None:
    with pytest.raises(RecipientsError, match=re.escape(message)):
        recipients.from_json(text)


def test_too_many_rows_are_refused_before_the_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recipients, "MAX_ROWS", 2)
    with pytest.raises(RecipientsError, match="more than 2 rows"):
        recipients.from_csv("phone\n+447700900001\n+447700900002\n+447700900003\n")
    assert recipients.from_json('{"recipients": [{"phone": "+447700900001"}]}') == [{"phone": "+447700900001"}]
