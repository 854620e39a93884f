"""LLM backends that write and score explanations: any OpenAI-compatible server, or an embedded model.

Every backend implements `Backend`: ``complete(messages, max_tokens) -> str`` plus token counting in the
backend's own units, so prompts are packed against the real budget. Scoring uses richer signals when a
backend has them:

* `ForcedScorer` (the local backend): probabilities of choices for the reply's first token, read from the
  logits of one forward pass: which word of a text a simulator names first (or "None"), and Yes/No.
* `LogprobCompleter` (OpenAI-compatible servers): a completion with per-token top logprobs, when the
  server returns them.

Token counts: the local backend counts with its own Hugging Face tokenizer and chat template. For
OpenAI-compatible servers ``tiktoken`` is not usable offline, so `OpenAIBackend.count_tokens` estimates
``ceil(len(text) / 4)`` (about right for English BPE) plus 4 tokens per message; set
``ECCO_SDK_TIKTOKEN=1`` to use tiktoken instead when it is installed with its encodings cached.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..adapters import cache_kwargs, returned_cache
from ..cancel import checkpoint
from ..errors import BackendError, InputError
from ._openai import RetryPolicy, Secret, call_with_retries, make_client, public_url, resolve_base_url, resolve_key

Message = dict[str, str]

#: The local explainer and simulator when its packages are installed (see `default_local_model`).
QWEN_LOCAL_MODEL = "qwen2.5-coder-1.5b-instruct"
#: The small fallback, always installed with ecco_sdk.
SMALL_LOCAL_MODEL = "smollm2-135m-instruct"
#: Kept for callers that imported it: the small model's name (the default is chosen by `default_local_model`).
DEFAULT_LOCAL_MODEL = SMALL_LOCAL_MODEL
FALLBACK_NOTE = (
    f"explained by the small fallback model {SMALL_LOCAL_MODEL} (135M parameters), whose explanations score near "
    f"chance; install {QWEN_LOCAL_MODEL} (`make install`) for explanations that beat the baselines"
)
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


@runtime_checkable
class Backend(Protocol):
    """What explain and score need from any LLM: chat completion and token counting."""

    name: str
    context_window: int

    def complete(self, messages: Sequence[Message], max_tokens: int = 64) -> str:
        """The assistant's reply to a chat."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens a piece of text costs in this backend's units."""
        ...

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Tokens a whole chat prompt costs, including the chat template's own tokens."""
        ...


@runtime_checkable
class ForcedScorer(Protocol):
    """A backend that exposes next-token logits, so scoring needs no generation or parsing."""

    def first_token_probabilities(
        self, batch: Sequence[tuple[Sequence[Message], Sequence[Sequence[str]]]]
    ) -> list[np.ndarray]:
        """Per (messages, choices) item: probability that the reply starts with each choice, over the choices."""
        ...

    def choice_probabilities(self, batch: Sequence[Sequence[Message]], choices: Sequence[Sequence[str]]) -> np.ndarray:
        """Probability of each choice as the reply's first token, normalised over the choices."""
        ...


@dataclass
class TokenLogprob:
    """One generated token with its log-probability and the server's top alternatives."""

    token: str
    logprob: float
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Completion:
    """A reply with, when the server returned them, per-token logprobs."""

    text: str
    tokens: list[TokenLogprob] | None = None


@runtime_checkable
class LogprobCompleter(Protocol):
    """A backend that can return token logprobs with a completion (OpenAI-compatible servers)."""

    def complete_logprobs(self, messages: Sequence[Message], max_tokens: int = 64, top_logprobs: int = 5) -> Completion:
        """A completion with per-token logprobs, or tokens=None when the server ignores the request."""
        ...


def _check_messages(messages: Sequence[Message]) -> list[Message]:
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


# --------------------------------------------------------------------------------------------------
# OpenAI-compatible servers


def _tiktoken_encoder(model: str) -> Any | None:
    if os.environ.get("ECCO_SDK_TIKTOKEN", "").lower() not in ("1", "true", "yes"):
        return None
    try:  # pragma: no cover - tiktoken is optional and needs cached encodings
        import tiktoken

        try:
            return tiktoken.encoding_for_model(model)
        except KeyError:
            return tiktoken.get_encoding("o200k_base")
    except Exception:  # pragma: no cover - no tiktoken or no cached encoding: fall back to the estimate
        return None


class OpenAIBackend:
    """Any OpenAI-compatible chat-completions server (OpenAI, vLLM, Ollama, llama.cpp) via the openai client."""

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
        """A copy that uses another key (for one call); this backend keeps its own."""
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
        """Token estimate: tiktoken when enabled and cached, else ceil(chars / 4)."""
        if self._encoder is not None:  # pragma: no cover - optional
            return len(self._encoder.encode(text))
        return math.ceil(len(text) / 4)

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Prompt estimate: content tokens plus 4 per message and 3 for the reply's start."""
        return sum(self.count_tokens(m["content"]) + 4 for m in messages) + 3

    def _create(self, messages: Sequence[Message], max_tokens: int, **extra: Any) -> Any:
        client = self._get_client()
        msgs = _check_messages(messages)
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
        """The assistant's reply (greedy-ish: temperature 0 by default)."""
        return self._text(self._create(messages, max_tokens))

    def complete_logprobs(self, messages: Sequence[Message], max_tokens: int = 64, top_logprobs: int = 5) -> Completion:
        """A reply with per-token top logprobs; tokens is None if the server does not return them."""
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
        """Embeddings from the same server (used by `OpenAIEmbedder`)."""
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


# --------------------------------------------------------------------------------------------------
# The embedded local model


def qwen_installed() -> bool:
    """True when the packages of the embedded 1.5B model are installed (nothing is loaded or converted)."""
    from .. import models

    entry = models.EMBEDDED.get(QWEN_LOCAL_MODEL)
    return entry is not None and entry.installed()


def default_local_model() -> tuple[str, str | None]:
    """The local model to explain and score with: the 1.5B when installed, else SmolLM2 and a note saying so.

    Returns:
        (model name, note) where note is None for the 1.5B and `FALLBACK_NOTE` for the small fallback.
    """
    if qwen_installed():
        return QWEN_LOCAL_MODEL, None
    return SMALL_LOCAL_MODEL, FALLBACK_NOTE


class LocalBackend:
    """An LLM run in-process with transformers (default: see `default_local_model`), fully offline."""

    #: How many shared prompt prefixes (their KV caches) are kept for reuse.
    PREFIX_CACHE_SIZE = 4

    def __init__(
        self,
        model: str | None = None,
        *,
        dtype: str | None = None,
        max_batch: int = 16,
        greedy: bool = True,
        one_line: bool = True,
        no_repeat_ngram: int = 3,
        repetition_penalty: float = 1.2,
    ) -> None:
        if no_repeat_ngram < 0 or repetition_penalty < 1.0:
            raise InputError("no_repeat_ngram must be >= 0 (0 = off) and repetition_penalty >= 1.0 (1.0 = off)")
        name = model if model is not None else default_local_model()[0]
        self.model_name = name
        #: None: the model's own default (bfloat16 for the 1.5B, float32 for SmolLM2; see `ecco_sdk.models`).
        self.dtype = dtype
        self.max_batch = max(1, int(max_batch))
        self.greedy = greedy
        self.one_line = one_line
        self.no_repeat_ngram = int(no_repeat_ngram)
        self.repetition_penalty = float(repetition_penalty)
        self._loaded: Any = None
        self._load_lock = threading.Lock()
        self._specials: list[str] | None = None
        self._prefix_cache: dict[tuple[int, ...], tuple[Any, Any]] = {}

    @property
    def name(self) -> str:
        """Identifies the model in results."""
        return f"local:{self.model_name}"

    def __repr__(self) -> str:
        return f"LocalBackend(model={self.model_name!r})"

    @property
    def note(self) -> str | None:
        """`FALLBACK_NOTE` when this is the small fallback because the 1.5B is not installed, else None."""
        return FALLBACK_NOTE if self.model_name == SMALL_LOCAL_MODEL and not qwen_installed() else None

    @property
    def is_loaded(self) -> bool:
        """False until the first call that needs the weights (that call loads them)."""
        return self._loaded is not None

    def load(self, verbose: bool = False) -> Any:
        """Load the model and tokenizer now (with progress bars when verbose); later calls return them."""
        with self._load_lock:
            if self._loaded is None:
                from .. import models

                loaded = models.load(self.model_name, dtype=self.dtype, verbose=verbose)
                if loaded.kind != "causal":
                    raise InputError(f"{self.model_name!r} is a {loaded.kind} model; the explainer needs a causal LM")
                self._loaded = loaded
            return self._loaded

    @property
    def loaded(self) -> Any:
        """The model and tokenizer (loaded on first use, shared across the process)."""
        return self.load()

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer."""
        return self.loaded.tokenizer

    @property
    def context_window(self) -> int:
        """The model's maximum sequence length."""
        return int(getattr(self.loaded.model.config, "max_position_embeddings", 2048) or 2048)

    def _special_strings(self) -> list[str]:
        tok = self.tokenizer
        found = set(getattr(tok, "all_special_tokens", []) or [])
        for added in (getattr(tok, "added_tokens_decoder", None) or {}).values():
            if getattr(added, "special", False):
                found.add(str(added.content))
        return sorted((s for s in found if len(s) > 1), key=len, reverse=True)

    def defuse(self, text: str) -> str:
        """Break special-token strings inside content (e.g. a shown ``<|im_start|>``) so they stay plain text."""
        if self._specials is None:
            self._specials = self._special_strings()
        for special in self._specials:
            if special in text:
                text = text.replace(special, special[0] + "\u2060" + special[1:])
        return text

    def _template(self, messages: Sequence[Message], generation_prompt: bool = True) -> str:
        msgs = [{"role": m["role"], "content": self.defuse(m["content"])} for m in _check_messages(messages)]
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=generation_prompt)
        text = "".join(f"{m['role']}: {m['content']}\n" for m in msgs)
        return text + ("assistant: " if generation_prompt else "")

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        """Exact count with the model's tokenizer."""
        return len(self._encode(text))

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Exact count of the templated chat prompt."""
        return len(self._encode(self._template(messages)))

    def complete(self, messages: Sequence[Message], max_tokens: int = 64) -> str:
        """Generate a reply with the chat template (greedy by default), see `generation` for the controls.

        With ``one_line`` (the default) generation stops at the end of the first line, and an n-gram
        ban plus a mild repetition penalty, applied to the reply only, keep a small model from looping.
        """
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        from .generation import make_line_stop, make_no_repeat

        lm = self.loaded
        ids = self._encode(self._template(messages))
        if len(ids) + max_tokens > self.context_window:
            raise InputError(
                f"prompt ({len(ids)} tokens) + max_tokens ({max_tokens}) exceeds {self.model_name}'s "
                f"{self.context_window}-token window; lower token_budget"
            )
        input_ids = torch.tensor([ids], device=lm.model.device)
        kwargs: dict[str, Any] = {"max_new_tokens": int(max_tokens), "pad_token_id": lm.tokenizer.pad_token_id}
        kwargs.update({"do_sample": False} if self.greedy else {"do_sample": True, "temperature": 0.7})
        if self.no_repeat_ngram or self.repetition_penalty > 1.0:
            processor = make_no_repeat(len(ids), self.no_repeat_ngram, self.repetition_penalty)
            kwargs["logits_processor"] = LogitsProcessorList([processor])
        if self.one_line:
            kwargs["stopping_criteria"] = StoppingCriteriaList([make_line_stop(lm.tokenizer, len(ids))])
        with lm.lock, torch.no_grad():
            out = lm.model.generate(input_ids, attention_mask=torch.ones_like(input_ids), **kwargs)
        text = lm.tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True).strip()
        return text.split("\n", 1)[0].strip() if self.one_line else text

    # -- logits-based scoring ------------------------------------------------------------------------

    def _first_ids(self, spellings: Sequence[str]) -> list[int]:
        """The distinct first token ids of some spellings (how a reply that starts with them begins)."""
        ids = (self._encode(self.defuse(t))[:1] for t in spellings if t)
        return list(dict.fromkeys(i[0] for i in ids if i))

    def _prefix_state(self, prefix: tuple[int, ...]) -> tuple[Any, Any]:
        """Hidden states and KV cache of a shared prompt prefix, kept for reuse across batches and calls."""
        import torch

        cached = self._prefix_cache.get(prefix)
        if cached is None:
            model = self.loaded.model
            out = model.base_model(input_ids=torch.tensor([list(prefix)], device=model.device), use_cache=True)
            cached = (out[0], returned_cache(out))
            while len(self._prefix_cache) >= self.PREFIX_CACHE_SIZE:
                self._prefix_cache.pop(next(iter(self._prefix_cache)))
            self._prefix_cache[prefix] = cached
        return cached

    def _hidden_states(self, chunk: list[list[int]], prefix: tuple[int, ...]) -> Any:
        """Final hidden states for a batch whose sequences all start with `prefix` (its KV cache is reused)."""
        import copy

        import torch

        lm = self.loaded
        model = lm.model
        pad = lm.tokenizer.pad_token_id or 0
        shared = len(prefix)
        device = model.device
        width = max(len(s) for s in chunk) - shared
        mask = torch.zeros((len(chunk), shared + width), dtype=torch.long)
        mask[:, :shared] = 1
        for row, seq in enumerate(chunk):
            mask[row, shared : len(seq)] = 1
        if shared < 8:  # not worth a cache: one plain padded pass
            full = torch.tensor([s + [pad] * (shared + width - len(s)) for s in chunk])
            return model.base_model(input_ids=full.to(device), attention_mask=mask.to(device))[0]
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        for row, seq in enumerate(chunk):
            ids[row, : len(seq) - shared] = torch.tensor(seq[shared:])
        prefix_hidden, prefix_cache = self._prefix_state(prefix)
        cache = copy.deepcopy(prefix_cache)
        cache.batch_repeat_interleave(len(chunk))
        rest = model.base_model(
            input_ids=ids.to(device), attention_mask=mask.to(device), **cache_kwargs(model.base_model, cache)
        )[0]
        return torch.cat([prefix_hidden.expand(len(chunk), -1, -1), rest], dim=1)

    def _head_logits(
        self, sequences: list[list[int]], picks: list[list[tuple[int, list[int]]]]
    ) -> list[list[np.ndarray]]:
        """Read logits of a few token ids at chosen positions, with few forward passes.

        The prefix all sequences share (system prompt, worked examples) is computed once and cached
        across calls; sequences are batched by length so that little compute goes to padding.
        """
        import torch

        lm = self.loaded
        model = lm.model
        head = model.get_output_embeddings()
        cap = getattr(model.config, "final_logit_softcapping", None)
        shared = min(_common_prefix(sequences), min(len(s) for s in sequences) - 1)
        prefix = tuple(sequences[0][:shared])
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        results: list[list[np.ndarray]] = [[] for _ in sequences]
        for start in range(0, len(order), self.max_batch):
            checkpoint()
            rows = order[start : start + self.max_batch]
            with lm.lock, torch.no_grad():
                hidden = self._hidden_states([sequences[i] for i in rows], prefix)
                for row, index in enumerate(rows):
                    for pos, token_ids in picks[index]:
                        logits = head.weight[token_ids] @ hidden[row, pos]
                        if getattr(head, "bias", None) is not None:
                            logits = logits + head.bias[token_ids]
                        if cap:
                            logits = cap * torch.tanh(logits / cap)
                        results[index].append(logits.float().cpu().numpy())
        return results

    def first_token_probabilities(
        self, batch: Sequence[tuple[Sequence[Message], Sequence[Sequence[str]]]]
    ) -> list[np.ndarray]:
        """Per (messages, choices) item: how likely the reply starts with each choice, normalised over the choices.

        A choice is a list of spellings (e.g. ``["Yes", " yes"]``); its weight is the summed probability of
        the distinct first tokens of its spellings. Choices that share a first token each get that token's
        whole weight. All items go through the model in few batched passes, their shared prefix computed once.
        """
        sequences, picks, groups = [], [], []
        for messages, choices in batch:
            ids = [self._first_ids(spellings) for spellings in choices]
            if not ids or any(not i for i in ids):
                raise InputError("every choice needs at least one non-empty spelling")
            flat = list(dict.fromkeys(i for group in ids for i in group))
            seq = self._encode(self._template(messages))
            if len(seq) > self.context_window:
                raise InputError(f"a scoring prompt of {len(seq)} tokens exceeds the model's window; shorten texts")
            sequences.append(seq)
            picks.append([(len(seq) - 1, flat)])
            groups.append([[flat.index(i) for i in group] for group in ids])
        if not sequences:
            return []
        out = []
        for (vec,), item in zip(self._head_logits(sequences, picks), groups, strict=True):
            p = _softmax(vec)
            out.append(np.asarray([p[g].sum() for g in item]))
        return out

    def choice_probabilities(self, batch: Sequence[Sequence[Message]], choices: Sequence[Sequence[str]]) -> np.ndarray:
        """P(each choice) as the reply's start, normalised over the choices (e.g. Yes/No), one row per chat."""
        rows = self.first_token_probabilities([(m, choices) for m in batch])
        out = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(choices))
        return out / out.sum(axis=1, keepdims=True)


def _common_prefix(sequences: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix all sequences share."""
    first = sequences[0]
    n = min(len(s) for s in sequences)
    for i in range(n):
        if any(s[i] != first[i] for s in sequences):
            return i
    return n


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.asarray(x, dtype=np.float64)
    z = np.exp(z - z.max())
    return z / z.sum()


_LOCAL: dict[str, LocalBackend] = {}
_LOCAL_LOCK = threading.Lock()


def get_backend(spec: str | Backend | None = None, *, api_key: str | None = None) -> Backend:
    """Resolve ``"local"``, ``"local:<model>"``, ``"openai"``, ``"openai:<model>"`` or a Backend object.

    None means ``$ECCO_SDK_EXPLAINER`` or ``"local"``. An explicit api_key makes a one-off OpenAI
    backend for this call; it is never stored on the object you passed.
    """
    if spec is None:
        spec = os.environ.get("ECCO_SDK_EXPLAINER") or "local"
    if not isinstance(spec, str):
        if not isinstance(spec, Backend):
            raise InputError(
                f"backend {spec!r} does not implement complete/count_tokens/count_messages; use 'local' or 'openai'"
            )
        if api_key is not None:
            if not isinstance(spec, OpenAIBackend):
                raise InputError("api_key only applies to OpenAI-compatible backends")
            return spec.with_key(api_key)
        return spec
    kind, _, model = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "local":
        if api_key is not None:
            raise InputError("api_key only applies to OpenAI-compatible backends, not 'local'")
        name = model.strip() or default_local_model()[0]
        with _LOCAL_LOCK:
            if name not in _LOCAL:
                _LOCAL[name] = LocalBackend(name)
            return _LOCAL[name]
    if kind == "openai":
        return OpenAIBackend(model or None, api_key=api_key)
    raise InputError(f"unknown backend {spec!r}; use 'local', 'local:<model>', 'openai' or 'openai:<model>'")
