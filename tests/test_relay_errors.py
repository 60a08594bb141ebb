"""The one SQLSTATE -> HTTP table (app/errors.py): real errors raised by PostgreSQL, and the
table read against docs/errors.md so that the two cannot drift apart."""

from __future__ import annotations

import json
import re

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import PoolTimeout

from app.errors import database_problem, status_for
from app.settings import PROJECT_DIR


def raised(db: psycopg.Connection, sqlstate: str, detail: str = "") -> psycopg.Error:
    statement = sql.SQL(
        "DO $$ BEGIN RAISE EXCEPTION 'refused: value' USING ERRCODE = {}, DETAIL = {}, HINT = 'do this'; END $$"
    ).format(sql.Literal(sqlstate), sql.Literal(detail))
    with pytest.raises(psycopg.Error) as info:
        db.execute(statement)
    return info.value


def body(response) -> dict:
    return json.loads(response.render(response.content, response.media_type))


@pytest.mark.parametrize(
    ("sqlstate", "status"),
    [("WH001", 422), ("WH002", 404), ("WH003", 404), ("WH004", 403), ("WH008", 422), ("WH009", 410),
     ("42501", 403), ("23505", 409), ("22P05", 400)],
)  # fmt: skip
def test_project_and_postgres_errors_become_problem_json(db: psycopg.Connection, sqlstate: str, status: int) -> None:
    response = database_problem(raised(db, sqlstate))
    assert response is not None
    assert response.status_code == status
    assert response.media_type == "application/problem+json"
    assert body(response) == {
        "type": "about:blank",
        "title": body(response)["title"],
        "status": status,
        "detail": "refused: value",
        "code": sqlstate,
        "hint": "do this",
    }


@pytest.mark.parametrize("sqlstate", ["WH005", "WH006", "WH007"])
def test_rate_limits_are_429_with_retry_after_from_the_detail(db: psycopg.Connection, sqlstate: str) -> None:
    response = database_problem(raised(db, sqlstate, '{"retry_after_seconds": 37}'))
    assert (response.status_code, response.headers["Retry-After"]) == (429, "37")


@pytest.mark.parametrize("sqlstate", ["08006", "53300", "57P01", "57P03", "57014", "40P01", "40001"])
def test_unavailability_is_503_with_retry_after_and_no_internals(db: psycopg.Connection, sqlstate: str) -> None:
    response = database_problem(raised(db, sqlstate))
    assert (response.status_code, response.headers["Retry-After"]) == (503, "5")
    assert "refused" not in json.dumps(body(response))


def test_errors_without_a_sqlstate() -> None:
    assert database_problem(PoolTimeout("couldn't get a connection after 2.00 sec")).status_code == 503
    assert database_problem(psycopg.OperationalError("connection refused")).status_code == 503
    assert (
        database_problem(psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")).status_code == 400
    )
    assert database_problem(psycopg.ProgrammingError("a bug")) is None


def test_unknown_sqlstates_are_left_to_the_500_handler(db: psycopg.Connection) -> None:
    assert database_problem(raised(db, "42883")) is None
    assert status_for(None) is None


def test_the_table_agrees_with_docs_errors_md() -> None:
    """Every row of docs/errors.md that names an HTTP status: its codes (or classes) map to it."""
    documented: dict[str, int] = {}
    for line in (PROJECT_DIR / "docs" / "errors.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        status = re.match(r"(\d{3})\b", cells[-1])
        if line.startswith("|") and status:
            for code in re.findall(r"`([0-9A-Z]+)\*?`", cells[0]):
                documented[code] = int(status.group(1))
    assert len(documented) >= 14, documented  # the parser found the rows
    for code, status in documented.items():
        # A class such as 57P stands for any code in it.
        assert status_for(code.ljust(5, "0")) == status, code
