"""A stand-in for the providers' send APIs, served over HTTP on loopback: Meta's Graph API
(`/meta/v21.0/{phone_number_id}/messages`), Twilio's Messages API
(`/twilio/2010-04-01/Accounts/{sid}/Messages.json`) and Evolution API
(`/evolution/message/sendText/{instance}`, and sendMedia, sendWhatsAppAudio, sendLocation,
sendReaction, sendButtons, sendList).

It answers what it is told to (a script of answers, then `ok`): success with a message
id, any status with any body (`meta_error()` and `twilio_error()` make each provider's
error answer for a code), a stall, a slow success, a dropped connection. It records
every request with its arrival time, and honours an `Idempotency-Key` header the way a provider with keys
would: a key it has accepted before gets the first answer again and is not delivered
twice. Run in a thread by the tests, or alone by the benchmarks:

    python -m kit.provider_double --port N              # answers ok, keeps nothing
    python -m kit.provider_double --port N --control    # keeps what it accepted; takes orders

With --control it has two more routes, `POST /_answer` (what to answer from now on, e.g.
["slow", 1.5]; `answer()` posts it) and `GET /_deliveries` (what it accepted; `deliveries()`
reads it), so that a run can count deliveries per message.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

OK = ("ok",)


@dataclass
class Received:
    provider: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    answer: int = 0
    duplicate: bool = False
    at: float = field(default_factory=time.monotonic)
    wall: float = field(default_factory=time.time)  # the arrival time, comparable across processes


class ProviderDouble:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self._script: list[tuple] = []
        self._default: tuple = OK
        self._ids = itertools.count(1)
        self._accepted: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # Telling it what to answer -----------------------------------------------------------
    def script(self, *answers: tuple) -> None:
        """The next answers, in order: ("ok",), ("status", 500, body?, headers?), ("stall", s),
        ("slow", s), ("drop",). Afterwards the default (ok unless `always` changed it)."""
        with self._lock:
            self._script.extend(answers)

    def always(self, answer: tuple) -> None:
        with self._lock:
            self._default = answer

    def deliveries(self) -> list[Received]:
        """Requests that delivered a message: answered 2xx and not an idempotent repeat."""
        return [r for r in self.received if 200 <= r.answer < 300 and not r.duplicate]

    def base_url(self, provider: str) -> str:
        return f"http://127.0.0.1:{self.port}/{provider}" + ("/v21.0" if provider == "meta" else "")

    # Serving -----------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/meta/v21.0/{ref}/messages", self._handle("meta"))
        app.router.add_post("/twilio/2010-04-01/Accounts/{sid}/Messages.json", self._handle("twilio"))
        # Evolution's send endpoints, one per message type (a business message's, app/providers/evolution.py).
        endpoint = "{endpoint:send(?:Text|Media|WhatsAppAudio|Location|Reaction|Buttons|List)}"
        app.router.add_post(f"/evolution/message/{endpoint}/{{ref}}", self._handle("evolution"))
        return app

    def _next(self) -> tuple:
        with self._lock:
            return self._script.pop(0) if self._script else self._default

    def _handle(self, provider: str):
        async def handler(request: web.Request) -> web.StreamResponse:
            body = dict(await request.post()) if provider == "twilio" else await request.json()
            record = Received(provider, request.path, dict(request.headers), body)
            self.received.append(record)
            key = request.headers.get("Idempotency-Key")
            if key and key in self._accepted:
                record.duplicate, record.answer = True, 200
                return web.json_response(self._accepted[key])
            answer = self._next()
            kind = answer[0]
            if kind == "stall":
                await asyncio.sleep(answer[1])
                record.answer = 599
                return web.Response(status=504)
            if kind == "drop":
                record.answer = -1
                request.transport.close()
                return web.Response(status=500)
            if kind == "status":
                record.answer = answer[1]
                extra = answer[3] if len(answer) > 3 else {}
                return web.json_response(answer[2] if len(answer) > 2 else {"error": "scripted"}, status=answer[1],
                                         headers=extra)  # fmt: skip
            if kind == "slow":
                await asyncio.sleep(answer[1])
            reply = self._success(provider)
            if key:
                self._accepted[key] = reply
            record.answer = 201 if provider == "twilio" else 200
            return web.json_response(reply, status=record.answer)

        return handler

    def _success(self, provider: str) -> dict[str, Any]:
        n = next(self._ids)
        if provider == "meta":
            return {"messaging_product": "whatsapp", "messages": [{"id": f"wamid.double{n}"}]}
        if provider == "twilio":
            return {"sid": f"SM{n:032x}", "status": "queued"}
        return {"key": {"id": f"EVO{n}", "fromMe": True}, "status": "PENDING"}

    def start(self) -> ProviderDouble:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            self._runner = web.AppRunner(self.app(), access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)


def channel_ref(path: str) -> str:
    """The channel a request was sent on: Meta's phone number id, Twilio's account, Evolution's instance."""
    return path.split("/")[3] if path.startswith("/meta/") else path.rsplit("/", 1)[-1]


def content_key(path: str, body: dict[str, Any]) -> str:
    """What makes a delivery that message: channel, recipient and content (a code's template
    names no code, so that one person's OTP is one message whatever its digits)."""
    ref = channel_ref(path)
    to = body.get("to") or body.get("To") or body.get("number")
    content = body.get("text", {}).get("body") if isinstance(body.get("text"), dict) else body.get("Body")
    if body.get("type") == "template":
        content = "template:" + body["template"]["name"]
    return f"{ref}|{to}|{content}"


# Each provider's refusals as it answers them. Meta: its Graph API error object, mostly with HTTP 400
# (throttling included); Twilio: its REST error object. The titles are the providers' meanings.
META_ERRORS = {
    131047: "Re-engagement message: more than 24 hours have passed since the customer last replied",
    131026: "Message undeliverable",
    131050: "User has stopped marketing messages from this business",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
    130429: "Rate limit hit: Cloud API message throughput has been reached",
    131000: "Something went wrong",
    131016: "Service unavailable",
    132001: "Template name does not exist in the translation",
}
TWILIO_ERRORS = {
    63016: "Failed to send freeform message because you are outside the allowed window",
    63018: "Rate limit exceeded for Channel",
    63038: "Account exceeded the daily messages limit",
    20429: "Too Many Requests",
    21211: "Invalid 'To' Phone Number",
    21614: "'To' number is not a valid mobile number",
}


def meta_error(code: int, status: int = 400, subcode: int | None = None) -> tuple:
    """An answer of the double: Meta refusing a send with this error code."""
    title = META_ERRORS.get(code, "Error")
    error = {"message": f"({code}) {title}", "type": "OAuthException", "code": code,
             "error_data": {"messaging_product": "whatsapp", "details": title},
             "fbtrace_id": "AbCdEf0123456789"}  # fmt: skip
    if subcode is not None:
        error["error_subcode"] = subcode
    return ("status", status, {"error": error})


def twilio_error(code: int, status: int | None = None) -> tuple:
    """An answer of the double: Twilio refusing a send with this error code (429 for its rate limits)."""
    status = status or (429 if code in (20429, 63018) else 400)
    body = {"code": code, "message": TWILIO_ERRORS.get(code, "Error"), "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}  # fmt: skip
    return ("status", status, body)


def controlled_app(double: ProviderDouble) -> web.Application:
    """The double's app with the control routes `/_answer` and `/_deliveries`."""

    async def set_answer(request: web.Request) -> web.Response:
        double.always(tuple(await request.json()))
        return web.json_response({"ok": True})

    async def accepted(request: web.Request) -> web.Response:
        rows = [{"path": r.path, "key": content_key(r.path, r.body), "repeat": r.duplicate,
                 "idempotency_key": r.headers.get("Idempotency-Key"), "at": r.wall, "ref": channel_ref(r.path),
                 "to": r.body.get("to") or r.body.get("To") or r.body.get("number")}
                for r in list(double.received) if 200 <= r.answer < 300]  # fmt: skip
        return web.json_response(rows)

    app = double.app()
    app.router.add_post("/_answer", set_answer)
    app.router.add_get("/_deliveries", accepted)
    return app


def answer(port: int, *how: object) -> None:
    """What the double on port answers from now on: ("ok",), ("slow", seconds), ("status", 503), ..."""
    httpx.post(f"http://127.0.0.1:{port}/_answer", json=list(how), timeout=5).raise_for_status()


def deliveries(port: int) -> list[dict]:
    """Every request the double on port accepted (2xx), with `repeat` true when its idempotency key
    had been accepted before (the double answered the first result and delivered nothing)."""
    response = httpx.get(f"http://127.0.0.1:{port}/_deliveries", timeout=30)
    response.raise_for_status()
    return response.json()


def main() -> None:
    parser = argparse.ArgumentParser(description="the provider double, alone (answers ok to everything)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control", action="store_true", help="keep what it accepted; serve /_answer, /_deliveries")
    args = parser.parse_args()
    double = ProviderDouble()
    if args.control:
        app = controlled_app(double)
    else:
        # Alone it keeps no history: the benchmark counts deliveries in the database.
        double.received = _Discard()
        app = double.app()
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


class _Discard(list):
    def append(self, item: Any) -> None:
        pass


if __name__ == "__main__":
    main()
