"""A signed load for the benchmarks: Meta text webhooks at a steady rate, each retried as a
provider would, keeping per webhook its id and how it ended."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from kit import payloads
from kit.durable import PHONE_NUMBER_ID
from kit.services import SECRET
from kit.signing import meta_headers

# Fixed, so that the same webhook is the same bytes in every run.
SENT_AT = 1700000000


def meta_body(wa_id: str, wamid: str, ref: str = PHONE_NUMBER_ID, text: str = "hello") -> bytes:
    """A Meta webhook carrying one text message from wa_id to the channel ref, as sent on the wire."""
    return payloads.compact(payloads.meta_text(wa_id, wamid, body=text, phone_number_id=ref, at=SENT_AT))


@dataclass
class Webhook:
    wamid: str
    wa_id: str
    ref: str
    status: int | None = None  # the last answer; None when no attempt got one
    attempts: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Answer:
    at: float  # monotonic time the answer (or the failure) came
    seconds: float  # from when the attempt was due
    ok: bool


class Load:
    """Signed Meta webhooks at a steady rate, open loop (a slow answer does not slow the sender),
    each retried as a provider would until it gets a 2xx or its retry window closes: backoff
    from 0.25 s doubling to 4 s. `port` is read at every attempt, so a restarted relay may move."""

    def __init__(self, port: Callable[[], int], rate: float, retry_window: float = 60.0, timeout: float = 10.0):
        self.port, self.rate, self.retry_window = port, rate, retry_window
        self.webhooks: list[Webhook] = []
        self.answers: list[Answer] = []
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._tasks: set[asyncio.Task] = set()

    async def run(self, duration: float, make: Callable[[int], Webhook], session: aiohttp.ClientSession) -> None:
        """Sends for `duration` seconds (numbering webhooks from len(self.webhooks)), then waits
        for the retries of what it sent."""
        start, first = time.monotonic(), len(self.webhooks)
        for i in range(int(duration * self.rate)):
            due = start + i / self.rate
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            webhook = make(first + i)
            self.webhooks.append(webhook)
            task = asyncio.create_task(self._deliver(session, webhook, due))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def _deliver(self, session: aiohttp.ClientSession, webhook: Webhook, due: float) -> None:
        body = meta_body(webhook.wa_id, webhook.wamid, webhook.ref)
        headers = meta_headers(body, SECRET)
        give_up, pause = due + self.retry_window, 0.25
        while True:
            webhook.attempts += 1
            try:
                url = f"http://127.0.0.1:{self.port()}/webhooks/meta"
                async with session.post(url, data=body, headers=headers, timeout=self._timeout) as response:
                    await response.read()
                    webhook.status = response.status
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                webhook.status = None
                webhook.errors.append(type(exc).__name__)
            self.answers.append(Answer(time.monotonic(), time.monotonic() - due, webhook.acknowledged))
            if webhook.acknowledged or time.monotonic() + pause > give_up:
                return
            await asyncio.sleep(pause)
            due, pause = time.monotonic(), min(pause * 2, 4.0)


def client_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256, force_close=False))
