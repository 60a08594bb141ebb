"""The relay's signature checks against twilio's own RequestValidator and plain hmac, without a server."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from urllib.parse import urlparse

import pytest
from twilio.request_validator import RequestValidator, add_port, remove_port

from app import compare
from app.providers import evolution, meta, twilio

TOKEN = "12345"
PARAMS = {"To": "whatsapp:+15550002222", "Body": "héllo & bye", "MediaUrl0": "https://x/y?z=1", "Empty": ""}


@pytest.mark.parametrize(
    "configured",
    ["https://hooks.example.com", "https://hooks.example.com:443", "http://h.example.com:8080/prefix",
     "https://user@h.example.com/a"],
)  # fmt: skip
@pytest.mark.parametrize("variant", [add_port, remove_port])
def test_twilio_accepts_both_forms_twilio_signs(configured: str, variant: Callable[..., str]) -> None:
    url = f"{configured}/webhooks/twilio?a=1"
    signature = RequestValidator(TOKEN).compute_signature(variant(urlparse(url)), PARAMS)
    assert RequestValidator(TOKEN).validate(url, PARAMS, signature)
    urls = [f"{base}/webhooks/twilio?a=1" for base in twilio.base_urls(configured)]
    assert twilio.valid(TOKEN.encode(), urls, list(PARAMS.items()), signature)
    assert not twilio.valid(b"other", urls, list(PARAMS.items()), signature)
    assert not twilio.valid(TOKEN.encode(), urls, [*PARAMS.items(), ("x", "1")], signature)


def test_twilio_base_urls_drop_and_add_the_port() -> None:
    assert twilio.base_urls("https://h.example.com") == (
        "https://h.example.com",
        "https://h.example.com:443",
    )
    assert twilio.base_urls("http://h.example.com:80/p") == (
        "http://h.example.com/p",
        "http://h.example.com:80/p",
    )


def test_twilio_repeated_parameters_sign_like_twilios_validator() -> None:
    class Multi(dict):
        def getall(self, name: str) -> list[str]:
            return [v for k, v in pairs if k == name]

    pairs = [("b", "2"), ("a", "z"), ("a", "y"), ("a", "y")]
    expected = RequestValidator(TOKEN).compute_signature("https://h/x", Multi(pairs))
    assert twilio.valid(TOKEN.encode(), ["https://h/x"], pairs, expected)


def test_twilio_sha256_shared_key_signatures() -> None:
    url = "https://h.example.com/webhooks/twilio"
    settings = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    algorithm = twilio.algorithm(settings)
    signature = RequestValidator(TOKEN).compute_signature(url, PARAMS, algorithm)
    assert twilio.valid(TOKEN.encode(), [url], list(PARAMS.items()), signature, algorithm)
    assert not twilio.valid(TOKEN.encode(), [url], list(PARAMS.items()), signature)
    assert twilio.algorithm(None) == "HMAC_SHA1"
    assert not twilio.valid(TOKEN.encode(), [url], [], signature, "HMAC_MD5")


def test_meta_signature() -> None:
    body = b'{"object":"whatsapp_business_account"}'
    good = "sha256=" + hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert meta.valid(b"secret", body, good)
    assert meta.valid(b"secret", body, good.upper().replace("SHA256=", "sha256="))
    assert not meta.valid(b"secret", body + b" ", good)
    assert not meta.valid(b"other", body, good)
    assert not meta.valid(b"secret", body, good[len("sha256=") :])
    assert not meta.valid(b"secret", body, "sha256=é")


def test_same_takes_any_presented_value() -> None:
    assert compare.same(b"k", "k")
    assert not compare.same(b"k", None)
    assert not compare.same(b"k", "\udcff")


def test_twilio_form_refusal_names_what_twilio_would_not_send() -> None:
    sid = "SM" + "0123456789abcdef" * 2
    good = [("MessageSid", sid), ("SmsSid", sid), ("AccountSid", "AC" + "F" * 32), ("MediaUrl12", "u")]
    assert twilio.form_refusal(good) is None
    assert twilio.form_refusal([*good, ("ReferralAnythingNew", "x")]) is None
    assert "'Extra'" in twilio.form_refusal([*good, ("Extra", "")])
    assert "Extra" * 13 not in twilio.form_refusal([*good, ("Extra" * 1000, "")])  # the name is cut
    assert "AccountSid" in twilio.form_refusal([*good, ("AccountSid", "AC" + "0" * 31)])
    # A repeated SID name: every value is held to the shape, not only the first.
    assert "MessageSid" in twilio.form_refusal([*good, ("MessageSid", sid + "NumMedia0")])
    assert "differ" in twilio.form_refusal([("MessageSid", sid), ("SmsSid", "SM" + "1" * 32)])
    assert "no MessageSid" in twilio.form_refusal([("SmsSid", sid)])


def test_redact_evolution_keys_reaches_every_depth_without_recursing() -> None:
    secret = "k-0123456789"
    deep: dict = {"apikey": secret, "note": f"x{secret}y"}
    for _ in range(50_000):  # far deeper than Python's recursion limit
        deep = {"d": [deep]}
    payload = {"apikey": secret, "APIKEY": 1, "data": deep, "text": f"a {secret} b", secret: "v"}
    redacted = evolution.redact_keys(payload, [secret.encode(), b""])
    assert "apikey" not in redacted
    assert (redacted["APIKEY"], redacted["text"], redacted[secret]) == ("[redacted]", "a [redacted] b", "v")
    node = redacted["data"]
    while "d" in node:
        node = node["d"][0]
    assert node == {"apikey": "[redacted]", "note": "x[redacted]y"}
