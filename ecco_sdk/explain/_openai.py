"""Talking to OpenAI-compatible servers safely: key handling, retries with backoff, and clear errors.

The API key is read from ``OPENAI_API_KEY`` (or given explicitly) and kept in a ``Secret`` whose repr
is masked; error messages are built from the status code and a short message of ours, never from the
request or the server's reply body, so neither the key nor whatever a server sends back (which may be
anything when the URL came from a stranger) reaches an exception, a repr, a result or a log line.
Redirects are not followed, so a server cannot bounce a request (and its key) elsewhere.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..cancel import checkpoint, remaining
from ..errors import BackendError, ConfigurationError

log = logging.getLogger("ecco_sdk.explain")

T = TypeVar("T")

#: Key sent to servers that do not check keys (vLLM, Ollama, llama.cpp) when a base URL is set but no key.
NO_KEY_PLACEHOLDER = "no-key"


class Secret:
    """A string that never shows itself in repr/str, so it cannot end up in logs or saved results."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value, only for handing to the HTTP client."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> tuple:  # pickling would write the key to disk
        raise TypeError("a Secret cannot be pickled")


def resolve_key(api_key: str | None, base_url: str | None) -> Secret:
    """The key to use: the explicit one, else OPENAI_API_KEY, else a placeholder for keyless local servers."""
    key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
    if key:
        return Secret(key)
    if base_url:
        return Secret(NO_KEY_PLACEHOLDER)
    raise ConfigurationError(
        "no OpenAI API key: set OPENAI_API_KEY (or pass api_key=...), or set OPENAI_BASE_URL to a local "
        "OpenAI-compatible server (vLLM, Ollama, llama.cpp) that needs no key"
    )


def resolve_base_url(base_url: str | None) -> str | None:
    """The server URL: explicit, else OPENAI_BASE_URL, else None (api.openai.com)."""
    url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    return url.rstrip("/") if url else None


def public_url(url: str | None) -> str:
    """The server URL without user:password or query string, safe to show and store."""
    if not url:
        return "https://api.openai.com/v1"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts after the first, and exponential backoff between them."""

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 20.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based), honouring a server's Retry-After."""
        base = min(self.backoff * (2**attempt), self.max_backoff)
        base *= 1.0 + 0.1 * random.random()
        if retry_after is not None:
            base = max(base, min(retry_after, self.max_backoff))
        return base


def make_client(base_url: str | None, key: Secret, timeout: float) -> Any:
    """An `openai.OpenAI` client with its own retries off (ours log and back off explicitly)."""
    try:
        import openai
    except ImportError as err:  # pragma: no cover - openai is a hard dependency
        raise ConfigurationError(
            "the 'openai' package is needed for OpenAI-compatible backends: pip install openai"
        ) from err
    http = openai.DefaultHttpxClient(follow_redirects=False, timeout=timeout)
    return openai.OpenAI(api_key=key.reveal(), base_url=base_url, timeout=timeout, max_retries=0, http_client=http)


def redact(text: str, *secrets: Secret | None) -> str:
    """Remove secret values (and long fragments of them) from a text before it is shown anywhere."""
    for s in secrets:
        if s is None:
            continue
        value = s.reveal()
        if len(value) < 4:
            continue
        text = text.replace(value, "***")
        if len(value) >= 12:  # servers often echo a prefix or suffix of a wrong key
            for frag in (value[:8], value[-6:]):
                text = text.replace(frag, "***")
    return text


def _retry_after(err: Any) -> float | None:
    response = getattr(err, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _classify(err: Exception, what: str, where: str) -> tuple[str, float | None, bool]:
    """(message, retry-after, retryable) for an openai exception: the status and our words, no server text."""
    import openai

    if isinstance(err, openai.AuthenticationError):
        return f"{what}: {where} refused the API key (401); check the key", None, False
    if isinstance(err, openai.PermissionDeniedError):
        return f"{what}: {where} denied access (403); the key lacks access to this model", None, False
    if isinstance(err, openai.NotFoundError):
        return f"{what}: {where} answered 404; check the model name and that the URL ends in /v1", None, False
    if isinstance(err, openai.APITimeoutError):
        return "timed out", None, True
    if isinstance(err, openai.APIConnectionError):
        return "connection failed (is the server running and the URL right?)", None, True
    if isinstance(err, openai.APIStatusError):
        status = getattr(err, "status_code", 0)
        if status == 429 or (isinstance(status, int) and status >= 500):
            return f"HTTP {status}", _retry_after(err), True
        return f"{what}: {where} rejected the request (HTTP {status})", None, False
    return f"{what}: {where} sent a reply this client cannot read ({type(err).__name__})", None, False


def call_with_retries(fn: Callable[[], T], *, what: str, url: str | None, key: Secret, policy: RetryPolicy) -> T:
    """Run one API call, retrying 429/5xx/connection/timeouts with backoff; map failures to BackendError.

    The BackendError is raised outside the `except` block, so it carries no reference to the openai
    exception (whose request object holds the Authorization header).
    """
    import openai

    where = public_url(url)
    last = ""
    for attempt in range(policy.max_retries + 1):
        checkpoint()
        try:
            return fn()
        except openai.OpenAIError as err:
            message, wait, retryable = _classify(err, what, where)
        except json.JSONDecodeError:  # a 2xx reply whose body is not JSON
            message, wait, retryable = f"{what}: {where} answered with a body that is not JSON", None, False
        if not retryable:
            raise BackendError(redact(message, key))  # `what` holds caller text: never let it carry the key back
        last = message
        if attempt < policy.max_retries:
            pause = policy.delay(attempt, wait)
            log.warning("%s: %s on attempt %d; retrying in %.2fs", what, last, attempt + 1, pause)
            time.sleep(min(pause, remaining(pause)))
    raise BackendError(
        f"{what}: {where} failed after {policy.max_retries + 1} attempts ({last}); check the server URL and that "
        "the server is up, or raise max_retries/timeout"
    )
