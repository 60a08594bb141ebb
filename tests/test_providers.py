"""The providers' modules (app/providers/): each follows the one protocol, the registry lists them,
and the relay's routing in Python picks the same channel field as each provider's SQL routing."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from app import providers
from app.providers import base
from app.settings import ChannelConfig, Settings
from kit import payloads as p

BUSINESS = "+15550004444"
OTHER = "+15550005555"
USER = "+447700900123"
SID = "SM00000000000000000000000000000002"
META_REF = "555555555555"
SECRET = "s" * 32


def test_every_provider_module_follows_the_protocol() -> None:
    members = {name for name in dir(base.Provider) if not name.startswith("_")} | set(base.Provider.__annotations__)
    for name, module in providers.PROVIDERS.items():
        assert name == module.NAME
        missing = {member for member in members if not hasattr(module, member)}
        assert not missing, f"app/providers/{name}.py lacks {missing}"
        for member in members:
            if inspect.isfunction(getattr(base.Provider, member, None)):
                assert callable(getattr(module, member))


def test_every_route_is_a_providers_and_names_it() -> None:
    paths = {route.paths.copy().pop(): route for route in providers.ROUTES}
    assert set(paths) == {"/webhooks/meta", "/webhooks/twilio", "/webhooks/evolution"}
    for name in providers.PROVIDERS:
        posts = [r for r in providers.ROUTES if "POST" in r.http_methods and r.opt.get("provider") == name]
        assert [r.paths.copy().pop() for r in posts] == [f"/webhooks/{name}"]


def test_each_provider_takes_only_its_own_channel_settings() -> None:
    common = {"ref": "whatsapp:+15550001111", "phone": "+15550001111", "name": "n", "secret": SECRET}
    with pytest.raises(ValueError, match="Input should be 'meta', 'twilio' or 'evolution'"):
        ChannelConfig(provider="carrier-pigeon", **common)
    with pytest.raises(ValueError, match="verify_token is for Meta channels only"):
        ChannelConfig(provider="evolution", verify_token="t", **common)
    with pytest.raises(ValueError, match="access_token is for Meta channels only"):
        ChannelConfig(provider="twilio", access_token="t", **common)
    with pytest.raises(ValueError, match="account_sid is for Twilio channels only"):
        ChannelConfig(provider="meta", account_sid="AC" + "0" * 32, **common)
    with pytest.raises(ValueError, match="a Twilio channel's ref is its sender"):
        ChannelConfig(provider="twilio", **(common | {"ref": "15550001111"}))
    twilio = ChannelConfig(provider="twilio", **common).model_dump(mode="json") | {"secret": SECRET}
    with pytest.raises(ValueError, match="Twilio channels need public_base_url: Twilio signs the URL it posts to"):
        Settings(channels=[twilio], _env_file=None)


def test_missing_credentials_are_each_providers() -> None:
    common = {"phone": "+15550001111", "name": "n", "secret": SECRET}
    assert "access_token" in providers.missing_credentials(ChannelConfig(provider="meta", ref="1", **common))
    twilio = ChannelConfig(provider="twilio", ref="whatsapp:+15550001111", **common)
    assert "account_sid" in providers.missing_credentials(twilio)
    assert "api_base_url" in providers.missing_credentials(ChannelConfig(provider="evolution", ref="i", **common))
    ready = ChannelConfig(provider="evolution", ref="i", api_base_url="http://evo", **common)
    assert providers.missing_credentials(ready) is None


@pytest.mark.parametrize(
    ("name", "status", "body", "expected"),
    [
        ("meta", 200, '{"messages": [{"id": "wamid.1"}]}', base.Sent("wamid.1")),
        ("twilio", 201, '{"sid": "SM1"}', base.Sent("SM1")),
        ("evolution", 201, '{"key": {"id": "3EB0"}}', base.Sent("3EB0")),
        ("twilio", 200, '{"messages": [{"id": "wamid.1"}]}', base.Unknown),
        # Meta's throttling answered 400: the code goes to SQL, whose provider_errors paces the channel.
        (
            "meta",
            400,
            '{"error": {"code": 130429}}',
            base.Reject({"status": 400, "body": {"error": {"code": 130429}}}, "130429"),
        ),
        ("twilio", 400, '{"error": {"code": 130429}}', base.Reject),
        ("evolution", 503, "", base.Retry),
    ],
)
def test_answers_are_read_by_their_providers_rules(name: str, status: int, body: str, expected: Any) -> None:
    outcome = base.classify(providers.PROVIDERS[name], status, body, None)
    if isinstance(expected, type):
        assert isinstance(outcome, expected)
    else:
        assert outcome == expected


# Sample bodies: an incoming message and a status callback per provider, and the channel each names.
ROUTING_SAMPLES = [
    ("meta", "message", p.meta_text(USER.lstrip("+"), "wamid.p1", phone_number_id=META_REF), {META_REF}),
    ("meta", "status", p.meta_body(p.meta_value(statuses=[p.meta_status("wamid.p1", "read", USER.lstrip("+"))],
                                                phone_number_id=META_REF)), {META_REF}),
    ("twilio", "message", p.twilio_inbound(SID, USER, BUSINESS), {f"whatsapp:{BUSINESS}"}),
    ("twilio", "status", p.twilio_status(SID, "delivered", BUSINESS, USER), {f"whatsapp:{BUSINESS}"}),
    # A status named received is an inbound message's: routed by To, as a message is.
    ("twilio", "received", p.twilio_inbound(SID, USER, BUSINESS, MessageStatus="received"),
     {f"whatsapp:{BUSINESS}"}),
    ("evolution", "message", p.evolution_upsert("p-instance", USER, "3EB0AA"), {"p-instance"}),
    ("evolution", "status", p.evolution_update("p-instance", "3EB0AA", "READ"), {"p-instance"}),
]  # fmt: skip
# Each provider's SQL routing, applied to what it routes by (Meta: each change's value).
SQL_ROUTING = {
    "meta": "SELECT array_agg(DISTINCT whatsapp_handler._meta_channel_ref(v)) AS refs"
    " FROM jsonb_path_query(%s::jsonb, '$.entry[*].changes[*].value') AS v",
    "twilio": "SELECT ARRAY[whatsapp_handler._twilio_channel_ref(%s::jsonb)] AS refs",
    "evolution": "SELECT ARRAY[whatsapp_handler._evolution_channel_ref(%s::jsonb)] AS refs",
}


@pytest.mark.parametrize(
    ("name", "kind", "body", "refs"), ROUTING_SAMPLES, ids=[f"{s[0]}-{s[1]}" for s in ROUTING_SAMPLES]
)
def test_python_and_sql_route_a_body_to_the_same_channel(db, name: str, kind: str, body: dict, refs: set) -> None:
    assert providers.PROVIDERS[name].channel_refs(body) == refs
    routed = db.execute(SQL_ROUTING[name], (Jsonb(body),)).fetchone()["refs"]
    assert set(routed) == refs


def test_a_twilio_callback_is_routed_by_from_and_a_message_by_to() -> None:
    from app.providers import twilio

    # The business number is the status callback's sender and the message's recipient.
    assert twilio.channel_refs(p.twilio_status(SID, "sent", OTHER, USER)) == {f"whatsapp:{OTHER}"}
    assert twilio.channel_refs(p.twilio_inbound(SID, USER, OTHER)) == {f"whatsapp:{OTHER}"}
    assert twilio.channel_refs({"MessageStatus": "sent", "To": "whatsapp:+1555"}) == set()
