"""OpenAI-compatible servers (OpenAI, vLLM, Ollama, llama.cpp): the backend, and the one home of its client.

The client plumbing: the API key is read from ``OPENAI_API_KEY`` (or given explicitly) and kept in a
``Secret`` whose repr is masked; error messages are built from the status code and a short message of
ours, never from the request or the server's reply body, so neither the key nor whatever a server sends
back (which may be anything when the URL came from a stranger) reaches an exception, a repr, a result or
a log line. Redirects are not followed, so a server cannot bounce a request (and its key) elsewhere.

Token counts: ``tiktoken`` is not usable offline, so `OpenAIBackend.count_tokens` estimates
``ceil(len(text) / 4)`` (about right for English BPE) plus 4 tokens per message; set
``ECCO_SDK_TIKTOKEN=1`` to use tiktoken instead when it is installed with its encodings cached.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ...cancel import checkpoint, remaining
from ...errors import BackendError, ConfigurationError, InputError
from .protocols import Completion, Message, TokenLogprob, check_messages

log = logging.getLogger("ecco_sdk.explain")

T = TypeVar("T")

#: Key sent to servers that do not check keys (vLLM, Ollama, llama.cpp) when a base URL is set but no key.
NO_KEY_PLACEHOLDER = "no-key"


class Secret:
    """A string that never shows itself in repr/str, so it cannot end up in logs or saved results.

    Args:
        value: the secret text.

    Raises:
        TypeError: on pickling (which would write the secret to disk).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value, only for handing to the HTTP client.

        Returns:
            The secret text.
        """
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> tuple:  # pickling would write the key to disk
        raise TypeError("a Secret cannot be pickled")


def resolve_key(api_key: str | None, base_url: str | None) -> Secret:
    """The key to use: the explicit one, else OPENAI_API_KEY, else a placeholder for keyless local servers.

    Args:
        api_key: an explicit key, or None.
        base_url: the server URL; when set, a missing key becomes `NO_KEY_PLACEHOLDER`.

    Returns:
        The key, wrapped in a `Secret`.

    Raises:
        ConfigurationError: no key is given or set and no base URL names a local server.
    """
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
    """The server URL: explicit, else OPENAI_BASE_URL, else None (api.openai.com).

    Args:
        base_url: an explicit URL, or None.

    Returns:
        The URL without a trailing slash, or None.
    """
    url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    return url.rstrip("/") if url else None


def public_url(url: str | None) -> str:
    """The server URL without user:password or query string, safe to show and store.

    Args:
        url: the server URL; None or empty means api.openai.com.

    Returns:
        Scheme, host, port and path only.
    """
    if not url:
        return "https://api.openai.com/v1"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts after the first, and exponential backoff between them.

    Args:
        max_retries: attempts after the first.
        backoff: seconds before the first retry, doubled each time.
        max_backoff: the longest wait, in seconds.
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 20.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based), honouring a server's Retry-After.

        Args:
            attempt: the retry's number, from 0.
            retry_after: seconds the server asked for, or None.

        Returns:
            The exponential backoff with up to 10% jitter, at least `retry_after`, at most `max_backoff`
            (plus jitter).
        """
        base = min(self.backoff * (2**attempt), self.max_backoff)
        base *= 1.0 + 0.1 * random.random()
        if retry_after is not None:
            base = max(base, min(retry_after, self.max_backoff))
        return base


def _openai_module() -> Any:
    """The openai package, imported on first use so `import ecco_sdk.explain` and local-only runs skip it."""
    # `python -X importtime -c "import openai"` measured 1.6 s on this machine (2 shared cores).
    try:
        import openai  # openai takes 1.6 s to import (measured): only when a server backend is used
    except ImportError as err:  # pragma: no cover - openai is a hard dependency
        raise ConfigurationError(
            "the 'openai' package is needed for OpenAI-compatible backends: pip install openai"
        ) from err
    return openai


def make_client(base_url: str | None, key: Secret, timeout: float) -> Any:
    """An `openai.OpenAI` client with its own retries off (ours log and back off explicitly).

    Args:
        base_url: the server URL, or None for api.openai.com.
        key: the API key.
        timeout: seconds per request.

    Returns:
        The client; it does not follow redirects.

    Raises:
        ConfigurationError: the openai package is not installed.
    """
    openai = _openai_module()
    http = openai.DefaultHttpxClient(follow_redirects=False, timeout=timeout)
    return openai.OpenAI(api_key=key.reveal(), base_url=base_url, timeout=timeout, max_retries=0, http_client=http)


def redact(text: str, *secrets: Secret | None) -> str:
    """Remove secret values (and long fragments of them) from a text before it is shown anywhere.

    Args:
        text: the text to clean.
        *secrets: the secrets to remove (None and values under 4 characters are skipped).

    Returns:
        The text with each secret, and the first 8 and last 6 characters of long ones, replaced by ``***``.
    """
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
    openai = _openai_module()

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

    Args:
        fn: the call, taking no arguments.
        what: what the call does, for messages (``"chat completion"``).
        url: the server URL, shown without credentials.
        key: the API key, removed from every message.
        policy: how often to retry and how long to wait.

    Returns:
        What `fn` returned.

    Raises:
        BackendError: the server refused the request (401, 403, 404, another 4xx), answered with something
            that is not JSON, or kept failing after the retries.
        Cancelled: the caller's time limit or cancel came first.
    """
    openai = _openai_module()

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


# --------------------------------------------------------------------------------------------------
# The backend

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


def _tiktoken_encoder(model: str) -> Any | None:
    """tiktoken's encoder when ECCO_SDK_TIKTOKEN asks for it; imported here because it is optional."""
    if os.environ.get("ECCO_SDK_TIKTOKEN", "").lower() not in ("1", "true", "yes"):
        return None
    try:  # pragma: no cover - tiktoken is optional and needs cached encodings
        import tiktoken  # optional: only to count tokens for OpenAI models

        try:
            return tiktoken.encoding_for_model(model)
        except KeyError:
            return tiktoken.get_encoding("o200k_base")
    except Exception:  # pragma: no cover - no tiktoken or no cached encoding: fall back to the estimate
        return None


class OpenAIBackend:
    """Any OpenAI-compatible chat-completions server (OpenAI, vLLM, Ollama, llama.cpp) via the openai client.

    The key is held masked and never appears in a repr, an error message or a result.

    Args:
        model: the model name on the server; None reads $ECCO_SDK_OPENAI_MODEL, else ``gpt-4o-mini``.
        base_url: the server URL ending in ``/v1``; None reads OPENAI_BASE_URL, else api.openai.com.
        api_key: the key; None reads OPENAI_API_KEY (a server at a base URL may need none).
        timeout: seconds per request.
        max_retries: retries of a request that failed with 429, 5xx, a timeout or no connection.
        backoff: seconds before the first retry, doubled each time.
        temperature: sampling temperature (0: as deterministic as the server allows).
        context_window: the model's context length in tokens, for prompt budgets.

    Raises:
        InputError: timeout <= 0, max_retries < 0 or backoff < 0.
        ConfigurationError: no key is given or set and no base URL names a local server.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        temperature: float = 0.0,
        context_window: int = 16000,
    ) -> None:
        if timeout <= 0 or max_retries < 0 or backoff < 0:
            raise InputError("timeout must be > 0, max_retries >= 0 and backoff >= 0")
        self.model = model or os.environ.get("ECCO_SDK_OPENAI_MODEL") or DEFAULT_OPENAI_MODEL
        self._base_url = resolve_base_url(base_url)
        self._key: Secret = resolve_key(api_key, self._base_url)
        self.timeout = float(timeout)
        self.policy = RetryPolicy(max_retries=max_retries, backoff=backoff)
        self.temperature = float(temperature)
        self.context_window = int(context_window)
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._encoder = _tiktoken_encoder(self.model)

    @property
    def base_url(self) -> str:
        """The server URL, without credentials (safe to show)."""
        return public_url(self._base_url)

    @property
    def name(self) -> str:
        """Identifies the model and server in results."""
        return f"openai:{self.model}@{self.base_url}"

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r})"

    def with_key(self, api_key: str) -> OpenAIBackend:
        """A copy that uses another key (for one call); this backend keeps its own.

        Args:
            api_key: the key for the copy.

        Returns:
            A new `OpenAIBackend` with the same settings.
        """
        twin = OpenAIBackend.__new__(OpenAIBackend)
        twin.__dict__.update(self.__dict__)
        twin._key = Secret(api_key)
        twin._client = None
        twin._client_lock = threading.Lock()
        return twin

    def _get_client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = make_client(self._base_url, self._key, self.timeout)
            return self._client

    def count_tokens(self, text: str) -> int:
        """Token estimate: tiktoken when enabled and cached, else ceil(chars / 4).

        Args:
            text: the text.

        Returns:
            Its estimated token count.
        """
        if self._encoder is not None:  # pragma: no cover - optional
            return len(self._encoder.encode(text))
        return math.ceil(len(text) / 4)

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Prompt estimate: content tokens plus 4 per message and 3 for the reply's start.

        Args:
            messages: the chat.

        Returns:
            Its estimated token count.
        """
        return sum(self.count_tokens(m["content"]) + 4 for m in messages) + 3

    def _create(self, messages: Sequence[Message], max_tokens: int, **extra: Any) -> Any:
        client = self._get_client()
        msgs = check_messages(messages)
        return call_with_retries(
            lambda: client.chat.completions.create(
                model=self.model, messages=msgs, max_tokens=int(max_tokens), temperature=self.temperature, **extra
            ),
            what=f"chat completion with {self.model!r}",
            url=self._base_url,
            key=self._key,
            policy=self.policy,
        )

    @staticmethod
    def _text(response: Any) -> str:
        try:
            content = response.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            raise BackendError(
                "the server's chat completion had no choices; is this an OpenAI-compatible server?"
            ) from None
        return content or ""

    def complete(self, messages: Sequence[Message], max_tokens: int = 64) -> str:
        """The assistant's reply (greedy-ish: temperature 0 by default).

        Args:
            messages: ``{"role": ..., "content": ...}`` dicts, in order.
            max_tokens: most tokens of the reply.

        Returns:
            The reply's text.

        Raises:
            InputError: a message is malformed or there are none.
            BackendError: the server refused the request or kept failing after the retries.
        """
        return self._text(self._create(messages, max_tokens))

    def complete_logprobs(self, messages: Sequence[Message], max_tokens: int = 64, top_logprobs: int = 5) -> Completion:
        """A reply with per-token top logprobs; tokens is None if the server does not return them.

        Args:
            messages: ``{"role": ..., "content": ...}`` dicts, in order.
            max_tokens: most tokens of the reply.
            top_logprobs: how many alternatives (with their logprobs) the server should return per token.

        Returns:
            The reply's `Completion`; its ``tokens`` is None when the server sent no logprobs.

        Raises:
            InputError: a message is malformed or there are none.
            BackendError: the server refused the request or kept failing after the retries.
        """
        response = self._create(messages, max_tokens, logprobs=True, top_logprobs=int(top_logprobs))
        text = self._text(response)
        content = getattr(getattr(response.choices[0], "logprobs", None), "content", None)
        if not content:
            return Completion(text=text, tokens=None)
        tokens = [
            TokenLogprob(
                token=item.token,
                logprob=float(item.logprob),
                top=[(alt.token, float(alt.logprob)) for alt in (item.top_logprobs or [])],
            )
            for item in content
        ]
        return Completion(text=text, tokens=tokens)

    def embed(self, texts: Sequence[str], model: str) -> np.ndarray:
        """Embeddings from the same server (used by `OpenAIEmbedder`).

        Args:
            texts: the texts (blank ones are sent as a single space).
            model: the embedding model's name.

        Returns:
            An (n_texts, dim) float32 array, in input order.

        Raises:
            BackendError: the server refused the request, kept failing, or did not return one vector per text.
        """
        client = self._get_client()
        items = [str(t) if str(t).strip() else " " for t in texts]
        response = call_with_retries(
            lambda: client.embeddings.create(model=model, input=items),
            what=f"embeddings with {model!r}",
            url=self._base_url,
            key=self._key,
            policy=self.policy,
        )
        data = sorted(response.data, key=lambda d: d.index)
        if len(data) != len(items):
            raise BackendError(f"the embeddings server returned {len(data)} vectors for {len(items)} texts")
        return np.asarray([d.embedding for d in data], dtype=np.float32)
