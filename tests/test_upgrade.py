"""Upgrades: a database deployed at the last release tag, holding data, upgrades to this
checkout with a plain `sqitch deploy`, loses nothing and verifies; and the scripts of
released changes' deploy scripts are never edited in place (a changed function goes through
`sqitch rework`, which keeps the released script as `<change>@<tag>.sql`)."""

from __future__ import annotations

import hashlib
import json

import psycopg
import pytest
from psycopg.rows import dict_row

from app import sqitch
from app.settings import PROJECT_DIR
from kit.payloads import meta_text
from tests.conftest import CRON_DB

RELEASED = PROJECT_DIR / "tests" / "released_scripts.sha256"


def last_tag() -> str:
    tags = [line.split()[0] for line in (PROJECT_DIR / "sqitch.plan").read_text().splitlines() if line.startswith("@")]
    if not tags:
        # Until the first release (bin/tag-release) there is nothing to upgrade from.
        pytest.skip("sqitch.plan has no release tag yet")
    return tags[-1]


def _meta_text(wa_id: str, wamid: str, body: str) -> str:
    return json.dumps(meta_text(wa_id, wamid, body, at=1764500000))


def _load(conn: psycopg.Connection) -> None:
    """What a live database holds: channels, people in every conversation state, messages,
    replies and events queued, an OTP challenge, a DBA's settings."""
    channel = conn.execute(
        "SELECT whatsapp_handler.add_channel('meta', '1234567890', '+15550001111', 'Support', 'acme') AS id"
    ).fetchone()["id"]
    conn.execute("UPDATE whatsapp_handler.settings SET value = '[\"44\"]' WHERE key = 'otp.country_codes'")
    conn.execute("UPDATE whatsapp_handler.settings SET value = '\"3 days\"' WHERE key = 'retention.webhook_events'")
    for n in range(20):
        phone = f"4477009{n:05d}"
        for step, text in enumerate(("hello", "YES", "thanks")[: 1 + n % 3]):
            conn.execute(
                "SELECT whatsapp_handler.ingest_meta(%s::jsonb, %s)",
                (_meta_text(phone, f"wamid.{n}.{step}", text), f"c-{n}"),
            )
    conn.execute("SELECT whatsapp_handler.request_otp('+447700900001', %s, 'upgrade-test')", (channel,))
    # One person onboarded (terms accepted, then the OTP code verified) by the released
    # functions, and the analytics summaries counted, all under the released names.
    user = conn.execute("SELECT id FROM whatsapp_handler.users WHERE phone = '+447700900001'").fetchone()["id"]
    conn.execute("SELECT whatsapp_handler.accept_terms(%s, 'upgrade-v1')", (user,))
    otp = "SELECT message->>'code' AS c FROM pgmq.q_outbound WHERE message->>'kind' = 'otp'"
    code = conn.execute(otp).fetchone()["c"]
    verified = conn.execute("SELECT whatsapp_handler.verify_otp('+447700900001', %s) AS o", (code,)).fetchone()["o"]
    assert verified == "verified"
    conn.execute("SELECT whatsapp_handler.job_analytics_refresh()")


# "Registered" was renamed "onboarded" after v1.0.0 (users/onboarded, analytics/onboarded): the
# same stamps and counts under either set of names.
ONBOARDED = {
    "released": {
        "users": "SELECT string_agg(phone || ' ' || registered_at, ',' ORDER BY phone) FROM whatsapp_handler.users"
        " WHERE registered_at IS NOT NULL",
        "analytics_users": "SELECT count(registered_on) FROM whatsapp_handler.analytics_users",
        "funnel": "SELECT sum(registered) FROM whatsapp_handler.analytics_funnel_daily",
        "daily": "SELECT sum(registrations) FROM whatsapp_handler.analytics_registrations_daily",
        "view": "SELECT sum(registrations) FROM analytics.registrations_daily",
    },
    "renamed": {
        "users": "SELECT string_agg(phone || ' ' || onboarded_at, ',' ORDER BY phone) FROM whatsapp_handler.users"
        " WHERE onboarded_at IS NOT NULL",
        "analytics_users": "SELECT count(onboarded_on) FROM whatsapp_handler.analytics_users",
        "funnel": "SELECT sum(onboarded) FROM whatsapp_handler.analytics_funnel_daily",
        "daily": "SELECT sum(onboarded) FROM whatsapp_handler.analytics_onboarded_daily",
        "view": "SELECT sum(onboarded) FROM analytics.onboarded_daily",
    },
}


def _onboarded(url: str, names: str) -> dict[str, object]:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(sql).fetchone()[0] for name, sql in ONBOARDED[names].items()}


COUNTS = {
    "channels": "SELECT count(*) FROM whatsapp_handler.channels",
    "users": "SELECT count(*) FROM whatsapp_handler.users",
    "conversations": "SELECT string_agg(state::text, ',' ORDER BY id) FROM whatsapp_handler.conversations",
    "messages": "SELECT count(*) FROM whatsapp_handler.messages",
    "webhook_events": "SELECT count(*) FROM whatsapp_handler.webhook_events",
    "otp_challenges": "SELECT count(*) FROM whatsapp_handler.otp_challenges",
    "outbox": "SELECT count(*) FROM pgmq.q_outbox",
    "outbound": "SELECT count(*) FROM pgmq.q_outbound",
    "settings": "SELECT array_agg(key || '=' || coalesce(value::text, 'null') ORDER BY key)"
    " FROM whatsapp_handler.settings",
    "jobs": "SELECT string_agg(jobname || ' ' || schedule, ',' ORDER BY jobname) FROM cron.job",
}


def _counts(url: str) -> dict[str, object]:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(sql).fetchone()[0] for name, sql in COUNTS.items()}


def _kept(after: dict[str, object], before: dict[str, object]) -> None:
    """Everything as it was, but a change after the tag may add settings rows and jobs of its own:
    every row and job there was keeps its value and schedule (what a DBA set among them)."""
    grown = ("settings", "jobs")
    assert {k: v for k, v in after.items() if k not in grown} == {k: v for k, v in before.items() if k not in grown}
    assert set(before["settings"]) <= set(after["settings"])
    assert set(before["jobs"].split(",")) <= set(after["jobs"].split(","))


def test_a_database_deployed_at_the_release_upgrades_with_sqitch_deploy_and_keeps_its_data(cluster):
    # pg_cron's database, as a real deployment is; left deployed at HEAD for the tests after.
    url = cluster.url(CRON_DB)
    tag = last_tag()
    sqitch.run("revert", url, capture=True)
    try:
        sqitch.run("deploy", url, "--to", tag, capture=True)
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            _load(conn)
        before = _counts(url)
        assert before["users"] == 20 and before["messages"] > 20 and before["otp_challenges"] == 1
        onboarded = _onboarded(url, "released")
        assert onboarded["users"].startswith("+447700900001 ") and "," not in onboarded["users"]
        assert [onboarded[k] for k in ("analytics_users", "funnel", "daily", "view")] == [1, 1, 1, 1]

        sqitch.run("deploy", url, capture=True)
        sqitch.run("verify", url, capture=True)
        _kept(_counts(url), before)
        # The person onboarded before the upgrade keeps the stamp, the summaries their counts.
        assert _onboarded(url, "renamed") == onboarded
        assert "Nothing to deploy (up-to-date)" in sqitch.run("status", url, capture=True).stdout

        # The upgraded database still works: a returning user's message is taken.
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            result = conn.execute(
                "SELECT whatsapp_handler.ingest_meta(%s::jsonb, 'after') AS r",
                (_meta_text("447700900003", "wamid.after", "hi"),),
            ).fetchone()["r"]
        assert result["outcome"] == "processed" and result["messages"] == 1
        # And onboards by the reworked functions, counted by the reworked refresh.
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            user = conn.execute("SELECT id FROM whatsapp_handler.users WHERE phone = '+447700900002'").fetchone()["id"]
            conn.execute("UPDATE whatsapp_handler.users SET verified_at = now() WHERE id = %s", (user,))
            conn.execute("SELECT whatsapp_handler.accept_terms(%s, 'upgrade-v2')", (user,))
            conn.execute("SELECT whatsapp_handler.job_analytics_refresh()")
        onboarded = _onboarded(url, "renamed")
        assert onboarded["users"].count(",") == 1
        assert [onboarded[k] for k in ("analytics_users", "funnel", "daily", "view")] == [2, 2, 2, 2]

        # And a step back to the release keeps the data too, under the released names.
        sqitch.run("revert", url, "-y", "--to", tag, capture=True)
        sqitch.run("verify", url, capture=True)
        assert _counts(url)["users"] == 20
        assert _onboarded(url, "released") == onboarded
        with psycopg.connect(url, autocommit=True) as conn:
            # The released refresh counts again, under the released names.
            conn.execute("SELECT whatsapp_handler.job_analytics_refresh()")
        assert _onboarded(url, "released") == onboarded
    finally:
        sqitch.run("deploy", url, capture=True)


def _released() -> list[tuple[str, str]]:
    return [tuple(line.split()[::-1]) for line in RELEASED.read_text().splitlines() if line.strip()]


def test_released_deploy_scripts_are_never_edited_in_place():
    """Every deploy script of the last release is still in the tree with the same bytes, either
    under its own name or, once reworked, as `<change>@<tag>.sql`."""
    tag = last_tag()
    changed = []
    for path, digest in _released():
        current = PROJECT_DIR / path
        kept = current.with_name(current.stem + tag + ".sql")
        if not any(p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() == digest for p in (current, kept)):
            changed.append(path)
    assert changed == [], f"released scripts edited in place (use `sqitch rework`): {changed}"


def test_the_release_manifest_lists_every_released_deploy_script():
    last_tag()
    lines = (PROJECT_DIR / "sqitch.plan").read_text().splitlines()
    released = lines[: max(i for i, line in enumerate(lines) if line.startswith("@"))]
    names = {
        f"deploy/{line.split()[0]}.sql" for line in released if line.strip() and not line.startswith(("%", "#", "@"))
    }
    listed = {path for path, _ in _released()}
    assert names - listed == set()
