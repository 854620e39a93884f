"""LLM backends that write and score explanations: any OpenAI-compatible server, or an embedded model.

Every backend implements `Backend`: ``complete(messages, max_tokens) -> str`` plus token counting in the
backend's own units, so prompts are packed against the real budget. Scoring uses richer signals when a
backend has them:

* `ForcedScorer` (the local backend): probabilities of choices for the reply's first token, read from the
  logits of one forward pass: which word of a text a simulator names first (or "None"), and Yes/No.
* `LogprobCompleter` (OpenAI-compatible servers): a completion with per-token top logprobs, when the
  server returns them.

One module per part: `protocols` (what every backend implements), `openai` (OpenAI-compatible servers
and their client: keys, retries, errors) and `local` (the embedded model). This package resolves a spec
to a backend (`get_backend`) and re-exports the names callers use.
"""

from __future__ import annotations

import os
import threading

from ...errors import InputError
from .local import (
    DEFAULT_LOCAL_MODEL,
    FALLBACK_NOTE,
    QWEN_LOCAL_MODEL,
    SMALL_LOCAL_MODEL,
    LocalBackend,
    default_local_model,
    qwen_installed,
)
from .openai import DEFAULT_OPENAI_MODEL, OpenAIBackend
from .protocols import Backend, Completion, ForcedScorer, LogprobCompleter, Message, TokenLogprob

__all__ = [
    "DEFAULT_LOCAL_MODEL",
    "DEFAULT_OPENAI_MODEL",
    "FALLBACK_NOTE",
    "QWEN_LOCAL_MODEL",
    "SMALL_LOCAL_MODEL",
    "Backend",
    "Completion",
    "ForcedScorer",
    "LocalBackend",
    "LogprobCompleter",
    "Message",
    "OpenAIBackend",
    "TokenLogprob",
    "default_local_model",
    "get_backend",
    "qwen_installed",
]

_LOCAL: dict[str, LocalBackend] = {}
_LOCAL_LOCK = threading.Lock()


def get_backend(spec: str | Backend | None = None, *, api_key: str | None = None) -> Backend:
    """Resolve ``"local"``, ``"local:<model>"``, ``"openai"``, ``"openai:<model>"`` or a Backend object.

    None means ``$ECCO_SDK_EXPLAINER`` or ``"local"``. An explicit api_key makes a one-off OpenAI
    backend for this call; it is never stored on the object you passed.

    Args:
        spec: ``"local"``, ``"local:<model>"``, ``"openai"``, ``"openai:<model>"``, a `Backend` object, or None.
        api_key: an OpenAI key for this call only (OpenAI-compatible backends only).

    Returns:
        The backend; local backends are shared per model name and load their weights on first use.

    Raises:
        InputError: an unknown spec, an object that is not a `Backend`, or an api_key with a local backend.
        ConfigurationError: an OpenAI backend has no key and no base URL.
    """
    if spec is None:
        spec = os.environ.get("ECCO_SDK_EXPLAINER") or "local"
    if not isinstance(spec, str):
        return _given_backend(spec, api_key)
    kind, _, model = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "local":
        if api_key is not None:
            raise InputError("api_key only applies to OpenAI-compatible backends, not 'local'")
        return _shared_local(model.strip() or default_local_model()[0])
    if kind == "openai":
        return OpenAIBackend(model or None, api_key=api_key)
    raise InputError(f"unknown backend {spec!r}; use 'local', 'local:<model>', 'openai' or 'openai:<model>'")


def _given_backend(spec: object, api_key: str | None) -> Backend:
    """A backend object the caller passed, checked, or a copy of it that uses `api_key` for this call."""
    if not isinstance(spec, Backend):
        raise InputError(
            f"backend {spec!r} does not implement complete/count_tokens/count_messages; use 'local' or 'openai'"
        )
    if api_key is None:
        return spec
    if not isinstance(spec, OpenAIBackend):
        raise InputError("api_key only applies to OpenAI-compatible backends")
    return spec.with_key(api_key)


def _shared_local(name: str) -> LocalBackend:
    """The process's one `LocalBackend` for this model name, so its weights load once."""
    with _LOCAL_LOCK:
        if name not in _LOCAL:
            _LOCAL[name] = LocalBackend(name)
        return _LOCAL[name]
