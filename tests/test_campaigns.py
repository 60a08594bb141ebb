"""Campaigns in SQL (campaigns/*): the audience uploaded (every row answered), the states and what each
allows, dispatch at the campaign's pace by the send API's rules with each recipient's state written
in the transaction that queues it, the recipients following their messages' statuses, the budget."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from kit import payloads as p
from kit.provider_double import ProviderDouble
from kit.services import free_port
from tests.helpers import outbound_messages, outbox_events, raises_sqlstate
from tests.test_worker import Workers, wait_for


@dataclass
class Shop:
    db: psycopg.Connection
    channel: int

    def template(self, status: str = "approved", category: str = "utility", name: str = "timetable_change") -> None:
        self.db.execute(
            "SELECT whatsapp_handler.template_upsert(%s, %s, 'en_GB', %s, %s, %s, 'HX0123')",
            (self.channel, name, category, status, Jsonb([{"type": "BODY", "text": "Hi {{1}}, train {{2}} moved"}])),
        )

    def create(self, **extra: Any) -> int:
        body = {"name": "timetable", "channel_id": self.channel,
                "template": {"name": "timetable_change", "language": "en_GB"}, **extra}  # fmt: skip
        return self.db.execute("SELECT whatsapp_handler.campaign_create(%s) AS id", (Jsonb(body),)).fetchone()["id"]

    def upload(self, campaign: int, rows: list[Any], skip_invalid: bool = False) -> dict:
        return self.db.execute("SELECT whatsapp_handler.campaign_upload(%s, %s, %s) AS r",
                               (campaign, Jsonb(rows), skip_invalid)).fetchone()["r"]  # fmt: skip

    def control(self, campaign: int, action: str) -> dict:
        return self.db.execute("SELECT whatsapp_handler.campaign_control(%s, %s) AS r", (campaign, action)).fetchone()[
            "r"
        ]

    def dispatch(self, limit: int = 50) -> int:
        return self.db.execute("SELECT whatsapp_handler.worker_campaigns(%s) AS n", (limit,)).fetchone()["n"]

    def results(self, campaign: int) -> dict:
        return self.db.execute("SELECT whatsapp_handler.campaign_results(%s) AS r", (campaign,)).fetchone()["r"]

    def recipients(self, campaign: int) -> list[dict]:
        return self.db.execute("SELECT * FROM whatsapp_handler.campaign_recipients WHERE campaign_id = %s "
                               "ORDER BY position", (campaign,)).fetchall()  # fmt: skip


def phone(n: int) -> str:
    return f"+4477009{n:05d}"


def rows(*numbers: int) -> list[dict]:
    return [{"phone": phone(n), "variables": [f"P{n}", "IC 123"]} for n in numbers]


@pytest.fixture
def shop(db: psycopg.Connection) -> Shop:
    channel = db.execute("SELECT whatsapp_handler.add_channel('meta', %s, '+15550001111', 'Rail', 'rail') AS id",
                         (p.META_PHONE_NUMBER_ID,)).fetchone()["id"]  # fmt: skip
    s = Shop(db, channel)
    s.template()
    return s


def test_an_upload_answers_every_row_and_keeps_duplicates_as_skipped(shop: Shop) -> None:
    campaign = shop.create()
    assert shop.upload(campaign, rows(1, 2, 1, 3)) == {
        "rows": 4, "accepted": 3, "duplicates": 1, "invalid": 0, "first_position": 1}  # fmt: skip
    # A second upload continues the numbering; a phone of the first is a duplicate.
    assert shop.upload(campaign, rows(3, 4))["first_position"] == 5
    states = [(r["position"], r["phone"], r["state"], r["reason"]) for r in shop.recipients(campaign)]
    assert states == [(1, phone(1), "pending", None), (2, phone(2), "pending", None),
                      (3, phone(1), "skipped", "duplicate"), (4, phone(3), "pending", None),
                      (5, phone(3), "skipped", "duplicate"), (6, phone(4), "pending", None)]  # fmt: skip


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ({"phone": "07700900123", "variables": ["a", "b"]}, "invalid_number"),
        ({"phone": phone(9), "variables": ["a"]}, "missing_variables"),
        ({"phone": phone(9), "variables": ["a", ""]}, "missing_variables"),
        ({"phone": phone(9), "variables": ["a", 2]}, "missing_variables"),
        ({"phone": phone(9), "variables": ["a", "b"], "name": "x"}, "malformed"),
        ("+447700900123", "malformed"),
    ],
)
def test_a_bad_row_refuses_the_upload_naming_it_and_nothing_is_stored(shop: Shop, bad: Any, problem: str) -> None:
    campaign = shop.create()
    with raises_sqlstate("WH078") as refused:
        shop.upload(campaign, [*rows(1, 2), bad, *rows(3)])
    assert "row 3 " in refused.value.diag.message_primary
    assert refused.value.diag.message_detail == f"row=3 problem={problem}"
    assert shop.recipients(campaign) == []
    if problem != "malformed":
        kept = shop.upload(campaign, [*rows(1, 2), bad, *rows(3)], skip_invalid=True)
        assert (kept["accepted"], kept["invalid"]) == (3, 1)
        assert shop.recipients(campaign)[2]["reason"] == problem


def test_states_allow_what_they_name(shop: Shop) -> None:
    campaign = shop.create()
    with raises_sqlstate("WH077") as empty:
        shop.control(campaign, "start")
    assert "no recipient" in empty.value.diag.message_primary
    shop.upload(campaign, rows(1, 2))
    assert shop.control(campaign, "start")["state"] == "running"
    with raises_sqlstate("WH077") as running:
        shop.upload(campaign, rows(3))
    assert "is running" in running.value.diag.message_primary
    with raises_sqlstate("WH077"):
        shop.control(campaign, "resume")
    assert shop.control(campaign, "pause") == {"id": campaign, "state": "paused", "reason": "operator"}
    assert shop.control(campaign, "resume")["state"] == "running"
    assert shop.control(campaign, "cancel")["state"] == "cancelled"
    with raises_sqlstate("WH077") as cancelled:
        shop.control(campaign, "start")
    assert "is cancelled" in cancelled.value.diag.message_primary
    assert [r["reason"] for r in shop.recipients(campaign)] == ["cancelled", "cancelled"]
    assert [e["type"] for e in outbox_events(shop.db) if e["type"].startswith("campaign.")] == [
        "campaign.created", "campaign.running", "campaign.paused", "campaign.running",
        "campaign.cancelled"]  # fmt: skip
    with raises_sqlstate("WH076"):
        shop.control(campaign + 1, "pause")
    with raises_sqlstate("WH079"):
        shop.control(campaign, "restart")


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"per_second": 81}, "WH079"),  # above the channel's cap (pacing.channel.per_second 80)
        ({"per_second": 0}, "WH079"),
        ({"daily_budget": 1.5}, "WH079"),
        ({"starts_at": "tomorrow-ish"}, "WH079"),
        ({"template": {"name": "nope", "language": "en_GB"}}, "WH065"),
        ({"channel_id": 999999}, "WH003"),
        ({"colour": "red"}, "WH079"),
    ],
)
def test_a_malformed_campaign_is_refused(shop: Shop, extra: dict, code: str) -> None:
    with raises_sqlstate(code):
        shop.create(**extra)
    assert shop.db.execute("SELECT count(*) AS n FROM whatsapp_handler.campaigns").fetchone()["n"] == 0


def test_dispatch_queues_each_recipient_once_at_the_campaigns_pace(shop: Shop) -> None:
    campaign = shop.create(per_second=4)
    shop.upload(campaign, rows(1, 2, 3, 4, 5, 6))
    shop.control(campaign, "start")
    # campaigns.lookahead (10 s) at 4 a second: 40 could go ahead; the limit takes 5.
    assert shop.dispatch(5) == 5
    assert shop.dispatch(5) == 1
    assert shop.results(campaign)["state"] == "completed"
    queued = outbound_messages(shop.db)
    business = [m for m in queued if m["kind"] == "business"]
    assert sorted(m["to"] for m in business) == [phone(n) for n in range(1, 7)]
    assert {m["campaign_id"] for m in business} == {campaign}
    visible = [r["vt"] for r in shop.db.execute(
        "SELECT vt FROM pgmq.q_outbound WHERE message ->> 'kind' = 'business' ORDER BY vt")]  # fmt: skip
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(visible)]
    assert min(gaps) >= 0.25 - 1e-6, gaps
    assert all(r["state"] == "queued" and r["message_id"] for r in shop.recipients(campaign))
    assert shop.dispatch() == 0


def test_the_send_rules_skip_a_person_with_the_reason(shop: Shop) -> None:
    shop.template(category="marketing", name="spring_sale")
    campaign = shop.create(template={"name": "spring_sale", "language": "en_GB"})
    shop.upload(campaign, rows(1, 2, 3, 4))
    db = shop.db
    for n, opt_in in ((1, True), (2, False)):
        user = db.execute(
            "SELECT user_id FROM whatsapp_handler.register_user(%s, %s)", (phone(n), shop.channel)
        ).fetchone()
        db.execute(
            "SELECT whatsapp_handler._record_consent(%s, %s, %s, 'api:signup')", (user["user_id"], shop.channel, opt_in)
        )
    db.execute("SELECT whatsapp_handler.register_user(%s, %s)", (phone(3), shop.channel))
    db.execute("SELECT whatsapp_handler.block_user((SELECT id FROM whatsapp_handler.users WHERE phone = %s), 'abuse')",
               (phone(3),))  # fmt: skip
    shop.control(campaign, "start")
    assert shop.dispatch() == 4
    assert [(r["state"], r["reason"]) for r in shop.recipients(campaign)] == [
        ("queued", None), ("skipped", "opted_out"), ("skipped", "blocked"), ("skipped", "no_consent")]  # fmt: skip
    assert shop.results(campaign)["reasons"] == {"skipped:opted_out": 1, "skipped:blocked": 1, "skipped:no_consent": 1}


def test_a_paused_template_pauses_the_campaign_and_skips_no_one(shop: Shop) -> None:
    campaign = shop.create()
    shop.upload(campaign, rows(1, 2))
    shop.control(campaign, "start")
    shop.template(status="paused")
    assert shop.dispatch() == 0
    result = shop.results(campaign)
    assert (result["state"], result["reason"], result["states"]) == ("paused", "template_paused", {"pending": 2})
    [paused] = [e for e in outbox_events(shop.db) if e["type"] == "campaign.paused"]
    assert paused["payload"]["reason"] == "template_paused"
    # Approved again, an operator resumes it and it goes on where it was.
    shop.template()
    shop.control(campaign, "resume")
    assert shop.dispatch() == 2


def test_the_daily_budget_stops_the_campaign_for_the_day(shop: Shop) -> None:
    campaign = shop.create(daily_budget=2)
    shop.upload(campaign, rows(1, 2, 3))
    shop.control(campaign, "start")
    assert shop.dispatch() == 2
    assert shop.results(campaign)["state"] == "budget_exhausted"
    assert shop.dispatch() == 0
    # The next day (UTC) it runs again.
    shop.db.execute("UPDATE whatsapp_handler.campaigns SET budget_day = budget_day - 1 WHERE id = %s", (campaign,))
    assert shop.dispatch() == 1 and shop.results(campaign)["state"] == "completed"


def test_a_scheduled_campaign_waits_for_its_time(shop: Shop) -> None:
    campaign = shop.create(starts_at="2999-01-01T00:00:00Z")
    shop.upload(campaign, rows(1))
    assert shop.control(campaign, "start")["state"] == "scheduled"
    assert shop.dispatch() == 0
    shop.db.execute("UPDATE whatsapp_handler.campaigns SET starts_at = now() WHERE id = %s", (campaign,))
    assert shop.dispatch() == 1


def test_recipients_follow_their_messages_status_with_the_failure_reason(shop: Shop) -> None:
    campaign = shop.create()
    shop.upload(campaign, rows(1, 2, 3))
    shop.control(campaign, "start")
    shop.dispatch()
    db = shop.db
    ids = {r["message"]["to"]: r["msg_id"] for r in db.execute("SELECT msg_id, message FROM pgmq.q_outbound")}
    db.execute("SELECT whatsapp_handler.worker_sent(%s, 'wamid.C1')", (ids[phone(1)],))
    db.execute("SELECT whatsapp_handler.worker_sent(%s, 'wamid.C2')", (ids[phone(2)],))
    db.execute("SELECT whatsapp_handler.worker_failed(%s, '131026', 'permanent', '{}', NULL)", (ids[phone(3)],))
    statuses = [p.meta_status("wamid.C1", "read", phone(1)[1:]),
                p.meta_status("wamid.C2", "failed", phone(2)[1:], errors=[{"code": 131049, "title": "x"}])]  # fmt: skip
    db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(p.meta_body(p.meta_value(statuses=statuses))),))
    assert [(r["state"], r["reason"]) for r in shop.recipients(campaign)] == [
        ("read", None), ("failed", "ecosystem_limit"), ("failed", "undeliverable")]  # fmt: skip
    assert shop.results(campaign)["states"] == {"read": 1, "failed": 2}


def test_concurrent_dispatchers_queue_each_recipient_once(shop: Shop, db_url: str) -> None:
    campaign = shop.create(per_second=80)
    shop.upload(campaign, rows(*range(1, 301)))
    shop.control(campaign, "start")
    shop.db.execute("UPDATE whatsapp_handler.settings SET value = '\"10 minutes\"' WHERE key = 'campaigns.lookahead'")
    errors: list[BaseException] = []

    def dispatcher() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                while conn.execute("SELECT whatsapp_handler.worker_campaigns(20)").fetchone()[0]:
                    pass
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=dispatcher) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    sent_to = Counter(m["to"] for m in outbound_messages(shop.db) if m["kind"] == "business")
    assert len(sent_to) == 300 and set(sent_to.values()) == {1}
    assert shop.results(campaign)["states"] == {"queued": 300}


def test_only_the_worker_dispatches_and_nobody_reads_the_tables(shop: Shop, connect_as) -> None:
    worker = connect_as("worker")
    assert worker.execute("SELECT whatsapp_handler.worker_campaigns(10) AS n").fetchone()["n"] == 0
    with raises_sqlstate("WH013"):
        worker.execute("SELECT whatsapp_handler.worker_campaigns(61)")
    for role in ("relay", "worker", "analyst", "consumer"):
        conn = connect_as(role)
        for table in ("campaigns", "campaign_recipients"):
            with raises_sqlstate("42501"):
                conn.execute(f"SELECT * FROM whatsapp_handler.{table}")
        for call in ("campaign_create('{}')", "campaign_upload(1, '[]')", "campaign_control(1, 'start')",
                     "campaign_results(1)", "campaign_audience(1)"):  # fmt: skip
            with raises_sqlstate("42501"):
                conn.execute(f"SELECT whatsapp_handler.{call}")


# --- the real worker, Meta's quality webhook ---------------------------------------------------------------------


@pytest.fixture
def double() -> Iterator[ProviderDouble]:
    d = ProviderDouble().start()
    yield d
    d.stop()


def test_the_worker_delivers_a_campaign_once_each_and_exports_its_funnel(
    shop: Shop, double: ProviderDouble, cluster, db_name: str, tmp_path
) -> None:
    campaign = shop.create(per_second=20)
    shop.upload(campaign, [*rows(*range(1, 41)), {"phone": phone(1), "variables": ["again", "IC 1"]}])
    shop.control(campaign, "start")
    workers = Workers(cluster, db_name, double, tmp_path)
    port = free_port()
    try:
        workers.start(worker_metrics_port=port, campaign_dispatch_interval=0.1)
        # Accepted by the provider; "sent" is the provider's status webhook's word, which the double does not post.
        accepted = "SELECT count(*) AS n FROM whatsapp_handler.messages WHERE provider_message_id IS NOT NULL"
        wait_for(lambda: shop.db.execute(accepted).fetchone()["n"] == 40, "every recipient's message accepted")
        text = wait_for(lambda: _metrics(port, 'state="queued"} 40.0'), "the funnel in /metrics")
    finally:
        workers.stop_all()
    delivered = Counter(r.body["to"] for r in double.deliveries())
    assert len(delivered) == 40 and set(delivered.values()) == {1}
    assert shop.results(campaign)["state"] == "completed"
    labels = f'campaign="{campaign}",channel="{shop.channel}"'
    assert f'whatsapp_campaign_recipients{{{labels},reason="",state="queued"}} 40.0' in text
    assert f'whatsapp_campaign_recipients{{{labels},reason="duplicate",state="skipped"}} 1.0' in text
    assert "whatsapp_campaign_dispatched_total 40.0" in text  # the duplicate was skipped at upload


def _metrics(port: int, needle: str) -> str | None:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
    except httpx.TransportError:
        return None
    return text if needle in text else None


def quality_update(event: str, number: str = "15550001111") -> dict:
    value = {"display_phone_number": number, "event": event, "current_limit": "TIER_1K"}
    return p.meta_account_body("phone_number_quality_update", value)


def test_a_flagged_number_pauses_its_campaigns_by_themselves(shop: Shop) -> None:
    running, draft = shop.create(), shop.create()
    shop.upload(running, rows(1, 2))
    shop.control(running, "start")
    db = shop.db
    result = db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL) AS r", (Jsonb(quality_update("FLAGGED")),))
    assert result.fetchone()["r"]["quality_updates"] == 1
    assert (shop.results(running)["state"], shop.results(running)["reason"]) == ("paused", "quality_flagged")
    assert shop.results(draft)["state"] == "draft"
    quality = db.execute("SELECT quality_event, current_limit FROM whatsapp_handler.channel_standing").fetchall()
    assert quality == [{"quality_event": "FLAGGED", "current_limit": "TIER_1K"}]
    [changed] = [e for e in outbox_events(db) if e["type"] == "channel.quality_changed"]
    assert changed["payload"]["event"] == "FLAGGED"
    assert shop.dispatch() == 0
    # Unflagged, the campaign stays paused until an operator resumes it.
    db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(quality_update("UNFLAGGED")),))
    assert shop.results(running)["state"] == "paused"
    shop.control(running, "resume")
    assert shop.dispatch() == 2


def test_a_quality_update_of_another_number_moves_nothing(shop: Shop) -> None:
    campaign = shop.create()
    shop.upload(campaign, rows(1))
    shop.control(campaign, "start")
    result = shop.db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL) AS r",
                             (Jsonb(quality_update("FLAGGED", number="15559999999")),)).fetchone()["r"]  # fmt: skip
    assert result["outcome"] == "stored" and shop.results(campaign)["state"] == "running"


def account_update(shop: Shop, ban_state: str) -> None:
    """Meta's account_update banning (DISABLE) or reinstating (REINSTATE) the channel's account."""
    value = {"event": "DISABLED_UPDATE", "ban_info": {"waba_ban_state": ban_state, "waba_ban_date": "1 Dec 2026"}}
    body = p.meta_account_body("account_update", value)
    shop.db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(body),))


def state(shop: Shop, campaign: int) -> tuple[str, str | None]:
    found = shop.results(campaign)
    return found["state"], found["reason"]


def test_a_channel_down_pauses_its_campaigns_until_it_is_back(shop: Shop) -> None:
    running, later, held = shop.create(), shop.create(starts_at="2999-01-01T00:00:00Z"), shop.create()
    for n, campaign in enumerate((running, later, held)):
        shop.upload(campaign, rows(2 * n + 1, 2 * n + 2))
        shop.control(campaign, "start")
    shop.control(held, "pause")
    # A message webhook of the number teaches it its account; then the account is banned.
    shop.db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(p.meta_body(p.meta_value())),))
    account_update(shop, "DISABLE")
    assert [state(shop, c) for c in (running, later, held)] == [
        ("paused", "channel_down"), ("paused", "channel_down"), ("paused", "operator")]  # fmt: skip
    assert shop.dispatch() == 0

    account_update(shop, "REINSTATE")
    # Back by themselves, each to where it was: the one not yet due scheduled again; the operator's pause stays.
    assert [state(shop, c) for c in (running, later, held)] == [
        ("running", None), ("scheduled", None), ("paused", "operator")]  # fmt: skip
    assert shop.dispatch() == 2
    moves = ("campaign.paused", "campaign.running")
    kinds = [(e["type"], e["payload"].get("reason")) for e in outbox_events(shop.db)
             if e["type"] in moves and e["payload"]["campaign_id"] == running]  # fmt: skip
    assert kinds == [("campaign.running", None), ("campaign.paused", "channel_down"), ("campaign.running", None)]


def test_a_number_flagged_while_its_channel_is_down_waits_for_an_operator(shop: Shop) -> None:
    campaign = shop.create()
    shop.upload(campaign, rows(1))
    shop.control(campaign, "start")
    shop.db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(p.meta_body(p.meta_value())),))
    account_update(shop, "DISABLE")
    shop.db.execute("SELECT whatsapp_handler.ingest_meta(%s, NULL)", (Jsonb(quality_update("FLAGGED")),))
    assert state(shop, campaign) == ("paused", "quality_flagged")
    account_update(shop, "REINSTATE")
    assert state(shop, campaign) == ("paused", "quality_flagged")
    assert shop.control(campaign, "resume")["state"] == "running"


def test_doctor_names_a_campaign_that_paused_itself(shop: Shop, db_url: str, tmp_path) -> None:
    from tests.test_cli import run_cli
    from tests.test_doctor import lines

    assert lines(run_cli("doctor", url=db_url, cwd=tmp_path))["campaigns"][0].startswith("ok")
    campaign = shop.create()
    shop.upload(campaign, rows(1, 2))
    shop.control(campaign, "start")
    (line,) = lines(run_cli("doctor", url=db_url, cwd=tmp_path))[f"campaign {campaign}"]
    assert line.startswith("ok") and "running, 2 recipients pending" in line
    shop.template(status="disabled")
    shop.dispatch()
    (line,) = lines(run_cli("doctor", url=db_url, cwd=tmp_path))[f"campaign {campaign}"]
    assert line.startswith("warn") and "paused by itself (template_disabled)" in line
    assert line.endswith(f"then `whatsapp-handler campaign resume {campaign}`")


def test_analysts_see_the_funnel_of_their_channels_campaigns_only(shop: Shop, cluster, db_name: str) -> None:
    from tests.conftest import LOGIN_PASSWORD

    db = shop.db
    other = db.execute("SELECT whatsapp_handler.add_channel('meta', '998877665544', '+15550005555', 'Other', "
                       "'other') AS id").fetchone()["id"]  # fmt: skip
    campaign = shop.create()
    shop.upload(campaign, [*rows(1, 2, 3), {"phone": phone(1), "variables": ["x", "y"]}])
    shop.control(campaign, "start")
    shop.dispatch()
    seen = {}
    for name, channel in (("mine", shop.channel), ("theirs", other)):
        # Roles are the cluster's, not the test database's: a name of this test's own, dropped after.
        login = f"wh_campaign_analyst_{name}_{db_name}"
        db.execute(f"CREATE ROLE {login} LOGIN PASSWORD '{LOGIN_PASSWORD}'")
        try:
            db.execute("SELECT whatsapp_handler.add_analyst(%s, %s)", (login, [channel]))
            with psycopg.connect(cluster.url(db_name, user=login, password=LOGIN_PASSWORD)) as conn:
                seen[name] = conn.execute("SELECT campaign_id, recipients, queued, skipped, skipped_by_reason "
                                          "FROM analytics.campaigns").fetchall()  # fmt: skip
                with raises_sqlstate("42501"):
                    conn.execute("SELECT phone FROM whatsapp_handler.campaign_recipients")
        finally:
            db.execute(f"DROP OWNED BY {login}")
            db.execute(f"DROP ROLE {login}")
    assert seen == {"mine": [(campaign, 4, 3, 1, {"duplicate": 1})], "theirs": []}
