"""The server prerequisites of docs/database.md that the plan checks itself."""

from __future__ import annotations

import psycopg
import pytest

from app.settings import PROJECT_DIR

VERIFY_PGMQ = (PROJECT_DIR / "verify" / "queue" / "pgmq.sql").read_text()


def test_verify_passes_with_the_pgmq_installed(db):
    db.execute(VERIFY_PGMQ)


@pytest.mark.parametrize("column", ["headers", "last_read_at"])
def test_verify_names_a_pgmq_too_old_for_the_queue_layer(db, column):
    db.execute(f"ALTER TYPE pgmq.message_record DROP ATTRIBUTE {column}")
    with pytest.raises(psycopg.errors.RaiseException, match="pgmq is too old") as info:
        db.execute(VERIFY_PGMQ)
    assert "1.8.1 or newer" in info.value.diag.message_hint
