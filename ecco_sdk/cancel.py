"""Cooperative cancellation and time caps, so a cancelled or overdue request stops its work instead of running on.

Long loops (integrated-gradient step batches, scoring loops, LLM calls) call `checkpoint()` between units
of work. Outside a `limits(...)` block it costs one context-variable read and never raises, so the SDK
behaves exactly as before when nobody sets a limit. The app wraps each request in `limits(...)`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from .errors import Cancelled, TimeLimitError


@dataclass
class Budget:
    """One request's stop conditions: a deadline on the monotonic clock and a cancel flag.

    Attributes:
        deadline: The `time.monotonic()` time to stop at (None: no deadline).
        event: Set to cancel the work.
        what: Names the work in the error message, e.g. "this request".
        limit_s: The time cap in seconds, quoted in the error message.
        hint: Added to the time-limit message, e.g. how to ask for less work.
    """

    deadline: float | None = None
    event: threading.Event = field(default_factory=threading.Event)
    what: str = "this request"
    limit_s: float | None = None
    hint: str = ""

    def cancel(self) -> None:
        """Ask the work to stop at its next checkpoint."""
        self.event.set()

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None: no deadline).

        Returns:
            The seconds left, never below 0, or None.
        """
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def check(self) -> None:
        """Raise Cancelled or TimeLimitError when the work should stop.

        Raises:
            Cancelled: the event was set.
            TimeLimitError: the deadline has passed.
        """
        if self.event.is_set():
            raise Cancelled(f"{self.what} was cancelled")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            hint = f"; {self.hint}" if self.hint else ""
            raise TimeLimitError(f"{self.what} ran past its time limit of {self.limit_s:g} s and was stopped{hint}")


_CURRENT: ContextVar[Budget | None] = ContextVar("ecco_sdk_budget", default=None)


@contextmanager
def limits(
    seconds: float | None = None, event: threading.Event | None = None, what: str = "this request", hint: str = ""
) -> Iterator[Budget]:
    """Run the enclosed work under a time cap and/or a cancel flag; nested blocks keep the tighter deadline.

    Args:
        seconds: The time cap from now (None: none of its own; an enclosing block's deadline still holds).
        event: The cancel flag to watch (None: the enclosing block's, or a fresh one).
        what: Names the work in the error messages.
        hint: Added to the time-limit message, e.g. "ask for fewer steps".

    Yields:
        The Budget in force inside the block (its `cancel()` stops the work).
    """
    outer = _CURRENT.get()
    deadline = None if seconds is None else time.monotonic() + float(seconds)
    if outer is not None and outer.deadline is not None and (deadline is None or outer.deadline < deadline):
        deadline, seconds, what, hint = outer.deadline, outer.limit_s, outer.what, outer.hint
    if event is None:
        event = outer.event if outer is not None else threading.Event()
    budget = Budget(deadline=deadline, event=event, what=what, limit_s=seconds, hint=hint)
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)


def current() -> Budget | None:
    """The budget of the enclosing `limits` block, if any.

    Returns:
        That Budget, or None outside any `limits` block.
    """
    return _CURRENT.get()


def checkpoint() -> None:
    """Stop here (raise Cancelled / TimeLimitError) if the enclosing request was cancelled or ran out of time.

    Raises:
        Cancelled: the enclosing block's cancel flag is set.
        TimeLimitError: its deadline has passed.
    """
    budget = _CURRENT.get()
    if budget is not None:
        budget.check()


def remaining(default: float | None = None) -> float | None:
    """Seconds left for the enclosing request (or `default`), to bound a network timeout by it.

    Args:
        default: The timeout to use, in seconds, when no deadline is set (None: no timeout).

    Returns:
        The smaller of the seconds left and `default`, whichever is set; None when neither is.
    """
    budget = _CURRENT.get()
    left = None if budget is None else budget.remaining()
    if left is None:
        return default
    return left if default is None else min(left, default)
