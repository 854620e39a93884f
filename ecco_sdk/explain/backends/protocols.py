"""What every explain backend implements and shares: the protocols, the chat message, a completion with logprobs.

`Backend` is all explain and score need. Scoring uses richer signals when a backend has them:
`ForcedScorer` (first-token probabilities from logits) and `LogprobCompleter` (a completion with
per-token top logprobs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ...errors import InputError

Message = dict[str, str]


@runtime_checkable
class Backend(Protocol):
    """What explain and score need from any LLM: chat completion and token counting.

    Any object with a ``name``, a ``context_window`` (tokens) and these three methods can be passed as
    ``backend=``.

    Attributes:
        name: identifies the model (and server) in results.
        context_window: the model's context length in tokens, for prompt budgets.
    """

    name: str
    context_window: int

    def complete(self, messages: Sequence[Message], max_tokens: int = 64) -> str:
        """The assistant's reply to a chat.

        Args:
            messages: ``{"role": "system" | "user" | "assistant", "content": str}`` dicts, in order.
            max_tokens: most tokens of the reply.

        Returns:
            The reply's text.
        """
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens a piece of text costs in this backend's units.

        Args:
            text: the text.

        Returns:
            Its token count.
        """
        ...

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Tokens a whole chat prompt costs, including the chat template's own tokens.

        Args:
            messages: the chat.

        Returns:
            Its token count.
        """
        ...


@runtime_checkable
class ForcedScorer(Protocol):
    """A backend that exposes next-token logits, so scoring needs no generation or parsing."""

    def first_token_probabilities(
        self, batch: Sequence[tuple[Sequence[Message], Sequence[Sequence[str]]]]
    ) -> list[np.ndarray]:
        """Per (messages, choices) item: probability that the reply starts with each choice, over the choices.

        Args:
            batch: ``(messages, choices)`` pairs; a choice is a list of spellings.

        Returns:
            One probability array per item, one value per choice.
        """
        ...

    def choice_probabilities(self, batch: Sequence[Sequence[Message]], choices: Sequence[Sequence[str]]) -> np.ndarray:
        """Probability of each choice as the reply's first token, normalised over the choices.

        Args:
            batch: the chats.
            choices: the choices, each a list of spellings (e.g. ``[["Yes"], ["No"]]``).

        Returns:
            An (n_chats, n_choices) array.
        """
        ...


@dataclass
class TokenLogprob:
    """One generated token with its log-probability and the server's top alternatives.

    Args:
        token: the token's text.
        logprob: its log-probability.
        top: the server's top alternatives at this position, as (token, logprob) pairs.
    """

    token: str
    logprob: float
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Completion:
    """A reply with, when the server returned them, per-token logprobs.

    Args:
        text: the reply.
        tokens: each generated token with its log-probability and top alternatives, or None.
    """

    text: str
    tokens: list[TokenLogprob] | None = None


@runtime_checkable
class LogprobCompleter(Protocol):
    """A backend that can return token logprobs with a completion (OpenAI-compatible servers)."""

    def complete_logprobs(self, messages: Sequence[Message], max_tokens: int = 64, top_logprobs: int = 5) -> Completion:
        """A completion with per-token logprobs, or tokens=None when the server ignores the request.

        Args:
            messages: the chat.
            max_tokens: most tokens of the reply.
            top_logprobs: alternatives to return per token.

        Returns:
            The `Completion`.
        """
        ...


def check_messages(messages: Sequence[Message]) -> list[Message]:
    """Copies of chat messages with only role and content, so a backend never sends a malformed or extra field.

    Args:
        messages: ``{"role": "system" | "user" | "assistant", "content": str}`` dicts, in order.

    Returns:
        New dicts with exactly ``role`` and ``content``, in order.

    Raises:
        InputError: a message is not such a dict, or there are none.
    """
    out = []
    for i, m in enumerate(messages):
        if (
            not isinstance(m, dict)
            or m.get("role") not in ("system", "user", "assistant")
            or not isinstance(m.get("content"), str)
        ):
            raise InputError(f"message #{i} must be a dict with role system/user/assistant and string content")
        out.append({"role": m["role"], "content": m["content"]})
    if not out:
        raise InputError("messages is empty; pass at least one user message")
    return out
