"""The run cache: generations kept under random run ids for the other tabs, shared fairly between sessions."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from ..output import OutputSeq
from .inputs import shown


@dataclass
class Run:
    """One generation kept for the other tabs: its model, prompt, output, owner, and a lock for in-place updates.

    Args:
        run_id: the random id callers pass to the other endpoints.
        model: the served model's name.
        prompt: the prompt text.
        out: the generated run (attributions are added to it in place).
        created: the cache clock's time when it was stored.
        owner: the session that generated it.
        lock: held while an endpoint updates `out`.
    """

    run_id: str
    model: str
    prompt: str
    out: OutputSeq
    created: float
    owner: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class RunCache:
    """A thread-safe LRU of runs with an age limit, keyed by random run ids, shared fairly between sessions.

    Each owner (a browser or API session) keeps at most `per_owner` runs; when the whole cache is full the
    least recently used run of the owner holding the most runs goes first, so one client generating in a
    loop evicts its own runs, not everybody's. Run ids stay capabilities: whoever has one may read it.

    Args:
        capacity: runs kept in all.
        ttl_s: seconds a run is kept after it was stored.
        clock: the time source (tests pass a fake one).
        per_owner: runs kept per owner (default: `capacity`).

    Raises:
        InputError: a size is below 1 or the age limit is not positive.
    """

    def __init__(
        self,
        capacity: int = 32,
        ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        per_owner: int | None = None,
    ):
        per_owner = capacity if per_owner is None else per_owner
        if capacity < 1 or ttl_s <= 0 or per_owner < 1:
            raise InputError("RunCache needs capacity >= 1, per_owner >= 1 and ttl_s > 0")
        self.capacity = capacity
        self.per_owner = min(per_owner, capacity)
        self.ttl_s = ttl_s
        self._clock = clock
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, model: str, prompt: str, out: OutputSeq, owner: str = "") -> Run:
        """Store a run under a fresh id; evict the owner's oldest beyond its share, then the largest owner's.

        Args:
            model: the served model's name.
            prompt: the prompt text.
            out: the generated run.
            owner: the session that generated it.

        Returns:
            The stored run, with its new id.
        """
        run = Run(secrets.token_hex(8), model, prompt, out, self._clock(), owner)
        with self._lock:
            self._runs[run.run_id] = run
            mine = [r for r in self._runs.values() if r.owner == owner]
            for old in mine[: max(0, len(mine) - self.per_owner)]:
                del self._runs[old.run_id]
            while len(self._runs) > self.capacity:
                counts: dict[str, int] = {}
                for r in self._runs.values():
                    counts[r.owner] = counts.get(r.owner, 0) + 1
                most = max(counts.values())
                victim = next(r for r in self._runs.values() if counts[r.owner] == most)  # LRU first
                del self._runs[victim.run_id]
        return run

    def describe(self) -> str:
        """What the cache promises, in words (used in errors and the app).

        Returns:
            One sentence with the sizes and the age limit.
        """
        return (
            f"this app keeps each session's last {self.per_owner} runs ({self.capacity} in all; when it is full the "
            f"busiest session's oldest runs go first) for at most {self.ttl_s / 60:g} minutes"
        )

    def get(self, run_id: Any) -> Run:
        """The run with this id (marked recently used), or an InputError saying to generate again.

        Args:
            run_id: the id returned by /generate (spaces around it are ignored).

        Returns:
            The run.

        Raises:
            InputError: the id is missing, not text, unknown or expired.
        """
        if run_id is not None and not isinstance(run_id, str):
            raise InputError(f"run_id must be the text returned by /generate, got {shown(run_id)}")
        rid = run_id.strip() if isinstance(run_id, str) else ""
        if not rid:
            raise InputError("no run id: generate text first (Generate tab or /generate), then pass its run_id")
        with self._lock:
            run = self._runs.get(rid)
            if run is not None and self._clock() - run.created > self.ttl_s:
                del self._runs[rid]
                run = None
            if run is not None:
                self._runs.move_to_end(rid)
        if run is None:
            raise InputError(
                f"run id {shown(rid)} is unknown or expired ({self.describe()}); generate again to get a new run_id"
            )
        return run

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)

    def __contains__(self, run_id: object) -> bool:
        with self._lock:
            return run_id in self._runs
