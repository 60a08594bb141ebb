"""One contract across the wall: ERRORS (app/errors.py) is the one source of the SQLSTATE -> HTTP
mapping, of the OpenAPI document's error descriptions and of docs/errors.md's tables; every project
SQLSTATE the SQL raises is in it; and a refusal's Retry-After is a number read from JSON."""

from __future__ import annotations

import re

import pytest

from app import errors, otp
from app.settings import PROJECT_DIR


def test_the_committed_docs_tables_are_generated_from_the_table():
    text = errors.DOC.read_text()
    assert errors.BEGIN_TABLES in text and errors.END_TABLES in text
    assert errors.document(text) == text, "docs/errors.md is not current: run python -m app.errors"


def test_every_project_sqlstate_raised_in_deploy_is_in_the_table():
    raised = {
        code
        for path in (PROJECT_DIR / "deploy").rglob("*.sql")
        for code in re.findall(r"ERRCODE\s*=\s*'(WH[0-9A-Z]{3})'", path.read_text())
    }
    assert len(raised) >= 20, raised  # the pattern found them
    listed = {e.sqlstate for e in errors.ERRORS}
    assert raised - listed == set(), "raised in deploy/ but not in app/errors.py ERRORS"


def test_each_code_is_listed_once_and_answers_a_known_status():
    codes = [e.sqlstate for e in errors.ERRORS]
    assert len(codes) == len(set(codes))
    for e in errors.ERRORS:
        assert re.fullmatch(r"[0-9A-Z]{2,5}", e.sqlstate), e
        assert e.status is not None or e.who, f"{e.sqlstate}: no HTTP status, so the table must say who meets it"
        if e.sqlstate.startswith("WH"):
            assert e.raised_by, e.sqlstate


def test_the_relay_maps_every_code_by_the_table():
    for e in errors.ERRORS:
        assert errors.status_for(e.sqlstate.ljust(5, "0")) == e.status, e.sqlstate


def test_the_openapi_error_descriptions_come_from_the_table():
    responses = otp.request_otp.responses
    assert responses is not None
    for status, spec in responses.items():
        assert spec.description == errors.status_meaning(status)
    for e in errors.ERRORS:
        if e.status in responses:
            assert f"{e.code}: {e.meaning}" in responses[e.status].description


@pytest.mark.parametrize(
    ("detail", "header"),
    [
        ('{"retry_after_seconds": 42}', "42"),
        ('{"retry_after_seconds":7,"other":1}', "7"),
        (None, "60"),
        ("", "60"),
        ("retry_after_seconds=42", "60"),  # the old text form is not read any more
        ('{"retry_after_seconds": "42"}', "60"),
        ('{"retry_after_seconds": 4.5}', "60"),
        ('{"retry_after_seconds": -1}', "60"),
        ('{"retry_after_seconds": true}', "60"),
        ("[42]", "60"),
        ("42", "60"),
    ],
)
def test_retry_after_is_read_from_the_json_detail(detail, header):
    assert errors.retry_after(detail) == header


def test_sql_writes_the_detail_the_relay_reads(db):
    detail = db.execute("SELECT whatsapp_handler._retry_after(29.01) AS d").fetchone()["d"]
    assert errors.retry_after(detail) == "30"
