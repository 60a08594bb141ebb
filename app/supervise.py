"""Supervision: `serve` and `worker` replace a worker process that dies (the OOM killer's SIGKILL,
a crash) instead of going down with it, and give up with a non-zero exit when the deaths come
too fast, so that systemd's (or the container runtime's) restart policy takes over.

- `serve`: granian's own respawn (`respawn_failed_workers`) replaces a dead worker at once, while
  the main process keeps the listening socket (connections wait in its backlog meanwhile). Its
  built-in crash-loop rule (a worker dying within 5.5 s of its respawn ends the server) would stop
  the relay on two OOM kills in a row; RelayServer counts deaths in a window instead, logs each,
  and counts them in whatsapp_relay_worker_restarts_total, written by the main process to the
  prometheus_client multiprocess directory that every worker's /metrics sums.
- `worker`: a parent runs the delivery loop as a child process (`python -m app.cli worker` with
  DELIVERY_VAR set) and starts another, after a growing pause, when it dies. It forwards SIGTERM
  and SIGINT, and the child exiting 0 (it stopped on a signal) ends the parent too. The child
  serves the worker's /metrics; it learns from DELIVERY_VAR how many restarts came before it.

docs/deployment.md describes both for operators.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("whatsapp_handler.supervise")

# Set by the supervising `worker` for its child: the number of restarts before this child.
DELIVERY_VAR = "_WHATSAPP_HANDLER_DELIVERY_RESTARTS"

# A worker process may die this many times (the relay: per granian worker) within WINDOW_SECONDS;
# the next death ends the command. Repeated OOM kills a few minutes apart are a crash loop too:
# a human has to look (MemoryMax too low, a leak, a poison message).
DEATHS_ALLOWED = 5
WINDOW_SECONDS = 300.0
# The delivery worker waits before each restart, doubling from BACKOFF_BASE up to BACKOFF_MAX, so
# that a child failing at start does not hammer the database; the first restart comes at once.
BACKOFF_BASE = 0.5
BACKOFF_MAX = 30.0
PR_SET_PDEATHSIG = 1


class GaveUp(Exception):
    """Worker processes died too often: the command exits non-zero and leaves restarting to systemd."""


class CrashLoop:
    """Deaths within a sliding window of time; `died()` says whether the bound is now reached."""

    def __init__(self, allowed: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.allowed = allowed
        self.window = window
        self._clock = clock
        self._deaths: deque[float] = deque()

    def died(self) -> bool:
        now = self._clock()
        self._deaths.append(now)
        while self._deaths and self._deaths[0] <= now - self.window:
            self._deaths.popleft()
        return len(self._deaths) > self.allowed

    @property
    def recent(self) -> int:
        return len(self._deaths)

    def backoff(self) -> float:
        """The pause before the next restart: none after a single recent death, then doubling."""
        if self.recent <= 1:
            return 0.0
        return min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (self.recent - 2))


def how_it_ended(returncode: int | None) -> str:
    if returncode is None:
        return "ended"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


# --- serve ---------------------------------------------------------------------------------------


def relay_server(target: str, **options: Any) -> Any:
    """granian's server, with its workers respawned when they die and deaths bounded by CrashLoop.
    Call after PROMETHEUS_MULTIPROC_DIR is set: the restart counter is written into it."""
    from granian import Granian

    from app.metrics import RelaySupervisorMetrics

    class RelayServer(Granian):  # type: ignore[misc, valid-type]
        def __init__(self, target: str, **kwargs: Any) -> None:
            super().__init__(target, **kwargs, respawn_failed_workers=True)
            self.crash_loop = CrashLoop(DEATHS_ALLOWED * self.workers, WINDOW_SECONDS)
            self.gave_up: str | None = None
            self.supervisor_metrics = RelaySupervisorMetrics()

        def _respawn_workers(self, workers: list[int], spawn_target: Any, target_loader: Any,
                             delay: float = 0) -> None:  # fmt: skip
            # granian also respawns live workers (SIGHUP, lifetimes): only the dead are counted.
            dead = [idx for idx in workers if not self.wrks[idx].is_alive() and not self.wrks[idx].interrupt_by_parent]
            for idx in dead:
                old = self.wrks[idx].inner
                ended = how_it_ended(old.exitcode)
                if self.crash_loop.died():
                    self.gave_up = (
                        f"relay worker processes died {self.crash_loop.recent} times within "
                        f"{self.crash_loop.window:g} s (the last, pid {old.pid}, {ended}); giving up"
                    )
                    log.error("%s", self.gave_up)
                    # granian's loop then shuts the server down as on SIGTERM; serve() exits non-zero.
                    self.interrupt_signal = True
                    self.main_loop_interrupt.set()
                    return
                self.supervisor_metrics.restarts.inc()
                log.error(
                    "relay worker-%d (pid %s) %s; starting another (%d of %d deaths allowed within %g s)",
                    idx + 1, old.pid, ended, self.crash_loop.recent, self.crash_loop.allowed,
                    self.crash_loop.window,
                )  # fmt: skip
            super()._respawn_workers(workers, spawn_target, target_loader, delay)
            for idx in dead:
                # granian's own rule would end the server on a second death within 5.5 s.
                self.respawned_wrks.pop(idx, None)
                log.warning("relay worker-%d replaced: pid %s", idx + 1, self.wrks[idx].inner.pid)

    return RelayServer(target, **options)


# --- worker ------------------------------------------------------------------------------------


def _die_with_parent() -> Callable[[], None] | None:
    """What the child runs before exec: SIGKILL when the supervising parent dies, so that a SIGKILL
    of the `worker` command takes its delivery process with it, as when they were one process.
    libc is loaded here, in the parent: the child between fork and exec should only call it."""
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the child may outlive a killed parent
        return None
    parent = os.getpid()

    def before_exec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return before_exec


def supervise_worker(command: list[str] | None = None) -> int:
    """Run the delivery worker as a child and replace it when it dies; return the exit status.

    Raises GaveUp when the child dies more often than the CrashLoop allows."""
    command = command or [sys.executable, "-m", "app.cli", "worker"]
    crash_loop = CrashLoop(DEATHS_ALLOWED, WINDOW_SECONDS)
    restarts = 0
    stop_signal: int | None = None
    child: subprocess.Popen[bytes] | None = None
    before_exec = _die_with_parent()

    def forward(signum: int, _frame: object) -> None:
        nonlocal stop_signal
        stop_signal = signum
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            env = os.environ | {DELIVERY_VAR: str(restarts)}
            child = subprocess.Popen(command, env=env, preexec_fn=before_exec)
            if stop_signal is not None:  # asked to stop while the child was being started
                forward(stop_signal, None)
            returncode = child.wait()
            if stop_signal is not None or returncode == 0:
                # A clean stop (SIGTERM), the child's or ours: nothing to replace.
                return 0 if returncode == 0 else (128 - returncode if returncode < 0 else returncode)
            ended = how_it_ended(returncode)
            if crash_loop.died():
                raise GaveUp(
                    f"the delivery process died {crash_loop.recent} times within {crash_loop.window:g} s "
                    f"(the last, pid {child.pid}, {ended}); giving up"
                )
            pause = crash_loop.backoff()
            restarts += 1
            log.error(
                "delivery process (pid %s) %s; starting another in %g s (%d of %d deaths allowed within %g s)",
                child.pid, ended, pause, crash_loop.recent, crash_loop.allowed, crash_loop.window,
            )  # fmt: skip
            deadline = time.monotonic() + pause
            while stop_signal is None and time.monotonic() < deadline:
                time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))
            if stop_signal is not None:
                return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
