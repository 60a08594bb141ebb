"""The providers' credentials on a webhook, computed independently of the relay's code (hmac
here, twilio's own validator), so that a test of the relay's checks does not check them against
themselves.

Evolution API signs nothing: its credential is the instance's apikey, in the body
(`kit.payloads.evolution_upsert(..., apikey=...)`) or in an `apikey` header.
"""

from __future__ import annotations

import hashlib
import hmac

from twilio.request_validator import RequestValidator


def meta_signature(body: bytes, secret: str) -> str:
    """X-Hub-Signature-256: the HMAC-SHA256 of the raw body under the app secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def meta_headers(body: bytes, secret: str) -> dict[str, str]:
    """The headers Meta posts a webhook with."""
    return {"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body, secret)}


def twilio_signature(url: str, params: dict[str, str], token: str) -> str:
    """X-Twilio-Signature of a form post to url (the URL as Twilio sees it), by twilio's own library."""
    return RequestValidator(token).compute_signature(url, params)
