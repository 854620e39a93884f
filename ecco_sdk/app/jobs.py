"""Jobs: endpoint work on worker threads, with bounded queues, time caps and cancellation."""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import ctypes.util
import gc
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..cancel import limits
from ..errors import EccoError
from .config import ServingConfig

T = TypeVar("T")


class BusyError(EccoError):
    """The app has as many requests running and waiting as it accepts; the caller should try again later."""


_LIBC: Any = None


def release_memory() -> bool:
    """Hand freed heap pages back to the OS (glibc malloc_trim), after a young-generation collection.

    Measured on the app's process after a 4-step IG: RSS 1161 -> 1042 MB, the trim taking 25-63 ms; a full
    gc.collect() took 750 ms there and freed nothing more (tensors go by reference counting), so it is skipped.

    Returns:
        True when glibc released memory.
    """
    global _LIBC
    gc.collect(1)
    if _LIBC is None:
        name = ctypes.util.find_library("c")
        try:
            _LIBC = ctypes.CDLL(name) if name else False
            _LIBC.malloc_trim  # noqa: B018 - glibc only (musl and macOS lack it)
        except (OSError, AttributeError):
            _LIBC = False
    if not _LIBC:
        return False
    return bool(_LIBC.malloc_trim(0))


#: What each endpoint's time-cap message suggests.
TIME_HINTS = {
    "saliency": "ask for fewer IG steps or use a shorter run",
    "explain": "ask for fewer factors, no scoring, or fewer held-out texts",
    "nmf": "ask for fewer factors or fewer layers",
}


class Jobs:
    """Runs endpoint work on long-lived worker threads: bounded per endpoint and session, time-capped, cancellable.

    Gradio cannot stop a thread; a cancelled request instead sets its budget's cancel flag, and the work
    stops at its next `cancel.checkpoint()` (IG step batches, scoring loops, LLM calls). Until it has
    stopped it keeps its worker, so at most `concurrency_limit` works per endpoint run at once.

    Args:
        cfg: the limits (concurrency, queue, jobs per session, time cap).
    """

    def __init__(self, cfg: ServingConfig) -> None:
        self.cfg = cfg
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}  # per endpoint: running + waiting
        self._running: dict[str, int] = {}
        self._sessions: dict[str, int] = {}

    def _pool(self, name: str) -> ThreadPoolExecutor:
        with self._lock:
            if name not in self._pools:
                self._pools[name] = ThreadPoolExecutor(self.cfg.concurrency_limit, thread_name_prefix=f"ecco-{name}")
            return self._pools[name]

    def counts(self, name: str) -> tuple[int, int]:
        """(running, running + waiting) jobs of one endpoint, cancelled ones included until they have stopped.

        Args:
            name: the endpoint's name.

        Returns:
            (running, running + waiting).
        """
        with self._lock:
            return self._running.get(name, 0), self._pending.get(name, 0)

    def _admit(self, name: str, session: str) -> None:
        cfg = self.cfg
        with self._lock:
            if self._sessions.get(session, 0) >= cfg.max_jobs_per_session:
                raise BusyError(
                    f"you already have {cfg.max_jobs_per_session} requests running or waiting; wait for them to "
                    "finish (or cancel them) and try again"
                )
            if self._pending.get(name, 0) >= cfg.concurrency_limit + cfg.max_queue:
                raise BusyError(f"the app is busy: /{name} has {cfg.max_queue} requests waiting; try again in a minute")
            self._pending[name] = self._pending.get(name, 0) + 1
            self._sessions[session] = self._sessions.get(session, 0) + 1

    def _release(self, name: str, session: str) -> None:
        with self._lock:
            self._pending[name] -= 1
            self._sessions[session] -= 1
            if not self._sessions[session]:
                del self._sessions[session]

    def _work(self, name: str, event: threading.Event, fn: Callable[[], T]) -> T:
        with self._lock:
            self._running[name] = self._running.get(name, 0) + 1
        hint = TIME_HINTS.get(name, "try a smaller request")
        try:
            with limits(
                self.cfg.max_request_s, event, what=f"this /{name} request", hint=f"{hint} (ECCO_APP_MAX_REQUEST_S)"
            ):
                return fn()
        finally:
            with self._lock:
                self._running[name] -= 1

    def _trim_if_idle(self) -> None:
        with self._lock:
            busy = any(self._running.values())
        if not busy:
            release_memory()

    async def run(self, name: str, session: str, fn: Callable[[], T]) -> T:
        """Await `fn()` on the endpoint's workers; cancelling the awaiting task cancels the work.

        When the last running job ends, freed memory goes back to the OS on a side thread (off the reply's path).

        Args:
            name: the endpoint's name (its own workers and queue).
            session: the caller's session, bounded to `max_jobs_per_session` jobs.
            fn: the work, called with no arguments under the time cap.

        Returns:
            What `fn` returns.

        Raises:
            BusyError: the session or the endpoint has as many jobs as it accepts.
            TimeLimitError: the work ran past `max_request_s`.
        """
        self._admit(name, session)
        event = threading.Event()
        ctx = contextvars.copy_context()  # the caller's context (Gradio's progress and request) goes along
        try:
            job = self._pool(name).submit(ctx.run, self._work, name, event, fn)
        except BaseException:
            self._release(name, session)
            raise
        job.add_done_callback(lambda _: self._release(name, session))
        job.add_done_callback(lambda _: threading.Thread(target=self._trim_if_idle, daemon=True).start())
        try:
            return await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            event.set()  # stops the work at its next checkpoint; a job still waiting never starts
            job.cancel()
            raise

    def shutdown(self) -> None:
        """Stop accepting work and let the workers finish."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)
