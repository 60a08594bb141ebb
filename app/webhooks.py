"""Provider webhooks: authenticate, bound, route to a channel, then one SQL call.

The answer (200) goes out only after that call returned, i.e. after its transaction
committed: the connections are in autocommit, so the call is its own transaction.
Under load, webhooks arriving together share the call (app/batching.py).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import ClientException, NotAuthorizedException, NotFoundException, PermissionDeniedException

from app import signatures
from app.channels import Channel
from app.context import OUTCOME_KEY
from app.envelopes import Body, clean_form, decode, evolution_envelope, form_pairs, json_object, meta_envelope
from app.logs import CORRELATION_ID
from app.openapi import EVOLUTION_BODY, META_BODY, TWILIO_FORM, described, problems

FORM = "application/x-www-form-urlencoded"
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_CHALLENGE = 256
HANDSHAKE_QUERY = {
    "hub.mode": "subscribe",
    "hub.verify_token": "a Meta channel's verify token",
    "hub.challenge": "echoed",
}


log = logging.getLogger(__name__)


async def _ingest(request: Request, provider: str, payload: str | Body) -> dict[str, Any]:
    state = request.app.state
    batcher = state.batchers[provider]
    if isinstance(payload, str) or payload.note is None:
        text = payload if isinstance(payload, str) else payload.text
        result = await batcher.ingest(text, CORRELATION_ID.get())
    else:
        # Authenticated, but jsonb refuses the body as received: kept raw, cleaned or dead-lettered (the note says).
        log.warning("%s webhook body kept raw: %s", provider, payload.note)
        result = await batcher.ingest_raw(payload.raw, payload.text, payload.note, CORRELATION_ID.get())
    request.scope["state"][OUTCOME_KEY] = result.get("outcome")
    if registrations := result.get("registrations"):
        state.metrics.registrations.inc(registrations)
    return result


async def _keep_unread(request: Request, provider: str, body: Body, why: str) -> dict[str, Any]:
    """An authenticated body the relay cannot route or read (not the shape its provider sends): stored
    as received and dead-lettered with why, never processed, and answered 200. A 4xx would lose it:
    Twilio does not retry one, Meta retries the same bytes for a week."""
    return await _ingest(request, provider, Body(body.raw, None, f"not read: {why}"))


def _channel(request: Request, provider: str, ref: object, signers: set[bytes]) -> Channel:
    """The channel a request names, among those of the secrets that authenticated it. One answer
    for a ref that is not configured and for one of another app, account or instance: holding
    one channel's secret must not tell which refs the others are."""
    channel = request.app.state.channels.get(provider, ref)
    if channel is None or channel.secret not in signers:
        raise NotFoundException(f"no {provider} channel of the credentials presented is configured for {ref}")
    return channel


@get(
    "/webhooks/meta",
    media_type="text/plain",
    sync_to_thread=False,
    responses=problems(400, 403),
    operation_class=described(query=HANDSHAKE_QUERY),
)
def meta_handshake(request: Request) -> Response:
    """Meta's subscription handshake: echo hub.challenge when hub.verify_token is a Meta channel's."""
    query = request.query_params
    challenge = query.get("hub.challenge")
    if not challenge or len(challenge) > MAX_CHALLENGE:
        raise ClientException(f"hub.challenge is missing or longer than {MAX_CHALLENGE} characters")
    if query.get("hub.mode") != "subscribe":
        raise PermissionDeniedException("hub.mode is not subscribe")
    token = query.get("hub.verify_token")
    matched = False
    for expected in request.app.state.channels.meta_verify_tokens:
        matched |= signatures.same(expected, token)
    if not matched:
        raise PermissionDeniedException("hub.verify_token matches no Meta channel")
    return Response(challenge, media_type="text/plain", headers={"X-Content-Type-Options": "nosniff"})


@post(
    "/webhooks/meta",
    status_code=200,
    opt={"provider": "meta"},
    responses=problems(400, 401, 404, 413, 503),
    operation_class=described(("application/json", META_BODY), {"X-Hub-Signature-256": "sha256= and the hex HMAC"}),
)
async def meta_webhook(request: Request) -> Response:
    """Meta Cloud API events, signed with the app secret (X-Hub-Signature-256)."""
    signature = request.headers.get("x-hub-signature-256")
    if signature is None:
        raise NotAuthorizedException("X-Hub-Signature-256 is missing")
    body = await request.body()
    # Authenticated before it is parsed: against every configured app's secret (a handful).
    signers = {secret for secret in request.app.state.channels.meta_secrets
               if signatures.meta_valid(secret, body, signature)}  # fmt: skip
    if not signers:
        raise NotAuthorizedException("X-Hub-Signature-256 does not match the body")
    decoded = decode(body)
    if decoded.text is None:
        # Signed, but not JSON: kept as received and dead-lettered (Meta would only send it again).
        return Response(await _ingest(request, "meta", decoded))
    try:
        envelope = meta_envelope(decoded.text)
    except ClientException as exc:
        return Response(await _keep_unread(request, "meta", decoded, exc.detail))
    # Account-level events name no number; the signing app's are stored raw by SQL.
    for phone_number_id in sorted(envelope.phone_number_ids()):
        _channel(request, "meta", phone_number_id, signers)
    return Response(await _ingest(request, "meta", decoded))


def _twilio_url(request: Request) -> list[str]:
    """The URL Twilio posted to, as it saw it: the public base URL, then path and query as received."""
    raw = request.scope.get("raw_path") or request.scope["path"].encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    query = request.scope["query_string"].decode("latin-1")
    tail = path + (f"?{query}" if query else "")
    return [base + tail for base in request.app.state.twilio_base_urls]


@post(
    "/webhooks/twilio",
    status_code=200,
    media_type="text/xml",
    opt={"provider": "twilio"},
    responses=problems(400, 403, 404, 413, 503),
    operation_class=described((FORM, TWILIO_FORM), {"X-Twilio-Signature": "base64 HMAC of the URL and the form"}),
)
async def twilio_webhook(request: Request) -> Response:
    """Twilio messages and status callbacks, signed with the auth token (X-Twilio-Signature)."""
    signature = request.headers.get("x-twilio-signature")
    if not signature:
        raise PermissionDeniedException("X-Twilio-Signature is missing")
    body = await request.body()
    body_hash = request.query_params.get("bodySHA256")
    unread = None
    if body_hash is not None:
        # A JSON body: the signature covers the URL (with the body's hash in it) and no parameters.
        payload, fields, signed = decode(body), {}, []
        if payload.text is not None:
            try:
                fields = json_object(payload.text)
            except ClientException as exc:
                unread = exc.detail  # told once the request is authenticated
    else:
        if request.headers.get("content-type", "").split(";", 1)[0].strip().lower() != FORM:
            raise ClientException(f"expected {FORM}")
        signed = form_pairs(body)
        fields = {}
        for name, value in signed:
            fields.setdefault(name, value)
        payload = Body(body, *clean_form(body, fields))
    # Authenticated before the channel is looked up: against every configured auth token.
    algorithm = signatures.twilio_algorithm(request.headers.get("x-twilio-webhooks-signature-settings"))
    urls = _twilio_url(request)
    signers = {token for token in request.app.state.channels.secrets("twilio")
               if signatures.twilio_valid(token, urls, signed, signature, algorithm)}  # fmt: skip
    if not signers or (body_hash is not None and not signatures.body_sha256_valid(body, body_hash)):
        raise PermissionDeniedException("X-Twilio-Signature does not match the request")
    if payload.text is None:
        # Signed, but not JSON: kept as received and dead-lettered (Twilio does not retry a 4xx).
        await _ingest(request, "twilio", payload)
        return Response(EMPTY_TWIML, media_type="text/xml")
    # Status callbacks come from the business number; inbound messages are sent to it.
    ref_field = "From" if fields.get("MessageStatus", "received") != "received" else "To"
    # The signed text of a form can be split otherwise; a JSON body is pinned by its hash.
    refusal = unread or (signatures.twilio_form_refusal(signed) if body_hash is None else None)
    if refusal or not fields.get(ref_field):
        # Kept, not acted on: a re-split of a captured form lands here, and so would a name Twilio adds.
        await _keep_unread(request, "twilio", payload, refusal or f"the body has no {ref_field}")
        return Response(EMPTY_TWIML, media_type="text/xml")
    _channel(request, "twilio", fields[ref_field], signers)
    await _ingest(request, "twilio", payload)
    return Response(EMPTY_TWIML, media_type="text/xml")


def _bearer(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@post(
    "/webhooks/evolution",
    status_code=200,
    opt={"provider": "evolution"},
    responses=problems(400, 401, 404, 413, 503),
    operation_class=described(("application/json", EVOLUTION_BODY), {"apikey": "the instance's apikey"}),
)
async def evolution_webhook(request: Request) -> Response:
    """Evolution API events, authenticated by the instance's apikey (body, apikey header or Bearer)."""
    body = await request.body()
    configured = request.app.state.channels.secrets("evolution")
    # Authenticated before the instance is looked up, against every configured key; a key in a
    # header before the body is parsed, one in the body only from a small body.
    headers = (request.headers.get("apikey"), _bearer(request.headers.get("authorization")))
    keys = {key for key in configured if any([signatures.same(key, candidate) for candidate in headers])}
    if not keys and len(body) > signatures.EVOLUTION_BODY_KEY_MAX_BYTES:
        raise NotAuthorizedException(
            f"no configured apikey in the apikey or Authorization header, and a body over"
            f" {signatures.EVOLUTION_BODY_KEY_MAX_BYTES} bytes is not searched for one"
        )
    if not keys:
        # Only the body's key can authenticate it: read from the body as sent, before anything is cleaned
        # (a key with a \u0000 must not become the key once the \u0000 is removed).
        presented, _ = evolution_envelope(body)
        keys = {key for key in configured if signatures.same(key, presented.apikey)}
        if not keys:
            raise NotAuthorizedException("no configured apikey was presented")
    decoded = decode(body)
    if decoded.text is None:
        # Authenticated by a header, but not JSON: kept (without the key's bytes) and dead-lettered.
        return Response(await _ingest(request, "evolution", _without_keys(decoded, configured)))
    try:
        envelope, payload = evolution_envelope(decoded.text)
    except ClientException as exc:
        return Response(await _keep_unread(request, "evolution", _without_keys(decoded, configured), exc.detail))
    _channel(request, "evolution", envelope.instance, keys)
    # The apikey is a credential: no copy of it is stored with the raw event.
    signatures.redact_evolution_keys(payload, configured)
    if decoded.note is None:
        return Response(await _ingest(request, "evolution", json.dumps(payload)))
    return Response(await _ingest(request, "evolution", Body(_without_keys(decoded, configured).raw,
                                                              json.dumps(payload), decoded.note)))  # fmt: skip


def _without_keys(body: Body, keys: set[bytes]) -> Body:
    """The raw body with every configured apikey's bytes masked: a credential is not stored."""
    raw = body.raw
    for key in keys:
        raw = raw.replace(key, b"[redacted]")
    return Body(raw, body.text, body.note)


ROUTES = [meta_handshake, meta_webhook, twilio_webhook, evolution_webhook]
