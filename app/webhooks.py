"""The steps every provider's webhook shares once its module has authenticated it: find the channel
it names among those of the secrets that signed it, then one SQL call through the provider's batcher.
Each provider's route is in its own module (app/providers/), and takes a Relay (app/web.py provides it).

The answer (200) goes out only after that call returned, i.e. after its transaction
committed: the connections are in autocommit, so the call is its own transaction.
Under load, webhooks arriving together share the call (app/batching.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.exceptions import NotFoundException

from app.batching import Batcher
from app.channels import Channel, Channels
from app.context import OUTCOME_KEY
from app.envelopes import Body
from app.logs import CORRELATION_ID
from app.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Relay:
    """What a provider's webhook route needs besides the request: the configured channels, the
    batchers it ingests through (one per provider), the metrics, and the URL providers post to.
    One Litestar dependency ("relay"): Litestar resolves several in a task group, which measured
    about 0.13 ms of CPU per webhook (three dependencies), nearly doubling the relay's own work."""

    channels: Channels
    batchers: dict[str, Batcher]
    metrics: Metrics
    public_base_url: str | None

    async def ingest(self, request: Request, provider: str, payload: str | Body) -> dict[str, Any]:
        """One SQL call through the provider's batcher; answered once its transaction committed."""
        batcher = self.batchers[provider]
        if isinstance(payload, str) or payload.note is None:
            text = payload if isinstance(payload, str) else payload.text
            result = await batcher.ingest(text, CORRELATION_ID.get())
        else:
            # Authenticated, but jsonb refuses the body as received: kept raw, cleaned or dead-lettered (the note says).
            log.warning("%s webhook body kept raw: %s", provider, payload.note)
            result = await batcher.ingest_raw(payload.raw, payload.text, payload.note, CORRELATION_ID.get())
        request.scope["state"][OUTCOME_KEY] = result.get("outcome")
        if registrations := result.get("registrations"):
            self.metrics.registrations.inc(registrations)
        if unmatched := result.get("templates_unmatched"):
            # The registry stays stale until the sync: a paused template would still be sent (docs/runbook.md).
            self.metrics.template_updates_unmatched.inc(unmatched)
        return result

    async def keep_unread(self, request: Request, provider: str, body: Body, why: str) -> dict[str, Any]:
        """An authenticated body the relay cannot route or read (not the shape its provider sends): stored
        as received and dead-lettered with why, never processed, and answered 200. A 4xx would lose it:
        Twilio does not retry one, Meta retries the same bytes for a week."""
        return await self.ingest(request, provider, Body(body.raw, None, f"not read: {why}"))

    def channel(self, provider: str, ref: object, signers: set[bytes]) -> Channel:
        """The channel a request names, among those of the secrets that authenticated it. One answer
        for a ref that is not configured and for one of another app, account or instance: holding
        one channel's secret must not tell which refs the others are."""
        found = self.channels.get(provider, ref)
        if found is None or found.secret not in signers:
            raise NotFoundException(f"no {provider} channel of the credentials presented is configured for {ref}")
        return found
