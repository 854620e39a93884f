"""The embedded local backend: an LLM run in-process with transformers, fully offline.

It counts tokens with the model's own Hugging Face tokenizer and chat template, so prompts are packed
against the real budget, and it is a `ForcedScorer`: scoring reads the probabilities of choices for the
reply's first token from the logits of one forward pass (which word of a text a simulator names first,
or "None"; Yes or No).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ... import models
from ...adapters import Adapter, cache_kwargs, returned_cache
from ...cancel import checkpoint
from ...errors import InputError
from ..generation import make_line_stop, make_no_repeat
from .protocols import Message, check_messages

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

# Below this many shared prompt tokens a KV cache of the prefix is not worth keeping: one plain padded pass.
_MIN_CACHED_PREFIX = 8


def qwen_installed() -> bool:
    """Whether the packages of the embedded 1.5B model are installed (nothing is loaded or converted).

    Returns:
        True when every package of `QWEN_LOCAL_MODEL` is installed.
    """
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
    """An LLM run in-process with transformers (default: see `default_local_model`), fully offline.

    The weights load on the first call that needs them (or on `load`); `get_backend` shares one backend per
    model name across the process.

    Args:
        model: an embedded model's name, a hub id or a local folder; None picks `default_local_model`.
        dtype: torch dtype name (``"float32"``, ``"bfloat16"``...); None uses the model's own default.
        max_batch: most prompts per forward pass when scoring.
        greedy: generate greedily (False: sample).
        one_line: stop the reply at the end of its first line.
        no_repeat_ngram: n-gram size that may not repeat within a reply (0: off).
        repetition_penalty: damping of tokens already in the reply (1.0: off).

    Raises:
        InputError: no_repeat_ngram < 0 or repetition_penalty < 1.0.
    """

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
        """Load the model and tokenizer now (with progress bars when verbose); later calls return them.

        Args:
            verbose: show download and loading progress.

        Returns:
            The loaded model and tokenizer (``ecco_sdk.models`` ``LoadedModel``).

        Raises:
            InputError: the model is not a causal (decoder-only) language model.
            ModelLoadError: the model cannot be found or loaded.
        """
        with self._load_lock:
            if self._loaded is None:
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
        """The model's maximum sequence length, as its adapter found it."""
        return self.loaded.ensure_adapter().context_length

    # -- prompts and token counts ------------------------------------------------------------------

    def _special_strings(self) -> list[str]:
        """The tokenizer's multi-character special-token strings, longest first."""
        tok = self.tokenizer
        found = set(getattr(tok, "all_special_tokens", []) or [])
        for added in (getattr(tok, "added_tokens_decoder", None) or {}).values():
            if getattr(added, "special", False):
                found.add(str(added.content))
        return sorted((s for s in found if len(s) > 1), key=len, reverse=True)

    def defuse(self, text: str) -> str:
        """Break special-token strings inside content (e.g. a shown ``<|im_start|>``) so they stay plain text.

        Args:
            text: message content.

        Returns:
            The text with each special-token string split so the tokenizer reads it as ordinary text.
        """
        if self._specials is None:
            self._specials = self._special_strings()
        for special in self._specials:
            if special in text:
                text = text.replace(special, special[0] + "\u2060" + special[1:])
        return text

    def _template(self, messages: Sequence[Message], generation_prompt: bool = True) -> str:
        """The chat as the model reads it: its chat template, or ``role: content`` lines without one."""
        msgs = [{"role": m["role"], "content": self.defuse(m["content"])} for m in check_messages(messages)]
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=generation_prompt)
        text = "".join(f"{m['role']}: {m['content']}\n" for m in msgs)
        return text + ("assistant: " if generation_prompt else "")

    def _encode(self, text: str) -> list[int]:
        """Token ids of a text, no special tokens added."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        """Exact count with the model's tokenizer.

        Args:
            text: the text.

        Returns:
            Its token count (no special tokens added).
        """
        return len(self._encode(text))

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Exact count of the templated chat prompt.

        Args:
            messages: the chat.

        Returns:
            The token count of the chat template applied to it, generation prompt included.
        """
        return len(self._encode(self._template(messages)))

    # -- generation --------------------------------------------------------------------------------

    def _check_fits(self, prompt_len: int, max_tokens: int) -> None:
        """Raise InputError when the prompt plus the reply would overflow the context window."""
        if prompt_len + max_tokens > self.context_window:
            raise InputError(
                f"prompt ({prompt_len} tokens) + max_tokens ({max_tokens}) exceeds {self.model_name}'s "
                f"{self.context_window}-token window; lower token_budget"
            )

    def _generate_kwargs(self, prompt_len: int, max_tokens: int) -> dict[str, Any]:
        """``generate`` arguments: length, greedy or sampled, and the reply-only loop and line controls."""
        # Imported here: `python -X importtime` measured 1.7 s for transformers on this machine, which
        # `import ecco_sdk.explain` does not pay; `models.load` has loaded it before any reply is generated.
        from transformers import LogitsProcessorList, StoppingCriteriaList

        tok = self.tokenizer
        kwargs: dict[str, Any] = {"max_new_tokens": int(max_tokens), "pad_token_id": tok.pad_token_id}
        kwargs.update({"do_sample": False} if self.greedy else {"do_sample": True, "temperature": 0.7})
        if self.no_repeat_ngram or self.repetition_penalty > 1.0:
            processor = make_no_repeat(prompt_len, self.no_repeat_ngram, self.repetition_penalty)
            kwargs["logits_processor"] = LogitsProcessorList([processor])
        if self.one_line:
            kwargs["stopping_criteria"] = StoppingCriteriaList([make_line_stop(tok, prompt_len)])
        return kwargs

    def complete(self, messages: Sequence[Message], max_tokens: int = 64) -> str:
        """Generate a reply with the chat template (greedy by default), see `generation` for the controls.

        With ``one_line`` (the default) generation stops at the end of the first line, and an n-gram
        ban plus a mild repetition penalty, applied to the reply only, keep a small model from looping.

        Args:
            messages: the chat, as for `Backend.complete`; special-token strings in it stay plain text.
            max_tokens: most new tokens to generate.

        Returns:
            The reply, stripped (its first line only with ``one_line``).

        Raises:
            InputError: a message is malformed, there are none, or prompt plus max_tokens exceed the context window.
        """
        lm = self.loaded
        ids = self._encode(self._template(messages))
        self._check_fits(len(ids), max_tokens)
        input_ids = torch.tensor([ids], device=lm.model.device)
        kwargs = self._generate_kwargs(len(ids), max_tokens)
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
        model = self.loaded.model
        pad = self.tokenizer.pad_token_id or 0
        shared = len(prefix)
        width = max(len(s) for s in chunk) - shared
        mask = _attention_mask(chunk, shared, width).to(model.device)
        if shared < _MIN_CACHED_PREFIX:
            full = _right_padded(chunk, shared + width, pad)
            return model.base_model(input_ids=full.to(model.device), attention_mask=mask)[0]
        ids = _right_padded([s[shared:] for s in chunk], width, pad)
        prefix_hidden, prefix_cache = self._prefix_state(prefix)
        cache = copy.deepcopy(prefix_cache)
        cache.batch_repeat_interleave(len(chunk))
        rest = model.base_model(
            input_ids=ids.to(model.device), attention_mask=mask, **cache_kwargs(model.base_model, cache)
        )[0]
        return torch.cat([prefix_hidden.expand(len(chunk), -1, -1), rest], dim=1)

    def _head_logits(
        self, sequences: list[list[int]], picks: list[list[tuple[int, list[int]]]]
    ) -> list[list[np.ndarray]]:
        """Read logits of a few token ids at chosen positions, with few forward passes.

        The prefix all sequences share (system prompt, worked examples) is computed once and cached
        across calls; sequences are batched by length so that little compute goes to padding.
        """
        lm = self.loaded
        head = lm.model.get_output_embeddings()
        adapter = lm.ensure_adapter()
        shared = min(_common_prefix(sequences), min(len(s) for s in sequences) - 1)
        prefix = tuple(sequences[0][:shared])
        results: list[list[np.ndarray]] = [[] for _ in sequences]
        for rows in _length_batches(sequences, self.max_batch):
            checkpoint()
            with lm.lock, torch.no_grad():
                hidden = self._hidden_states([sequences[i] for i in rows], prefix)
                for row, index in enumerate(rows):
                    results[index] += [_pick_logits(head, hidden[row, pos], ids, adapter) for pos, ids in picks[index]]
        return results

    def _scoring_item(
        self, messages: Sequence[Message], choices: Sequence[Sequence[str]]
    ) -> tuple[list[int], list[int], list[list[int]]]:
        """A scoring prompt's token ids, the distinct first-token ids of its choices, and each choice's among them."""
        ids = [self._first_ids(spellings) for spellings in choices]
        if not ids or any(not i for i in ids):
            raise InputError("every choice needs at least one non-empty spelling")
        flat = list(dict.fromkeys(i for group in ids for i in group))
        seq = self._encode(self._template(messages))
        if len(seq) > self.context_window:
            raise InputError(f"a scoring prompt of {len(seq)} tokens exceeds the model's window; shorten texts")
        return seq, flat, [[flat.index(i) for i in group] for group in ids]

    def first_token_probabilities(
        self, batch: Sequence[tuple[Sequence[Message], Sequence[Sequence[str]]]]
    ) -> list[np.ndarray]:
        """Per (messages, choices) item: how likely the reply starts with each choice, normalised over the choices.

        A choice is a list of spellings (e.g. ``["Yes", " yes"]``); its weight is the summed probability of
        the distinct first tokens of its spellings. Choices that share a first token each get that token's
        whole weight. All items go through the model in few batched passes, their shared prefix computed once.

        Args:
            batch: ``(messages, choices)`` pairs; a choice is a list of spellings.

        Returns:
            One probability array per item, one value per choice.

        Raises:
            InputError: a choice has no non-empty spelling, or a prompt exceeds the model's context window.
        """
        items = [self._scoring_item(messages, choices) for messages, choices in batch]
        if not items:
            return []
        sequences = [seq for seq, _, _ in items]
        logits = self._head_logits(sequences, [[(len(seq) - 1, flat)] for seq, flat, _ in items])
        out = []
        for (vec,), (_, _, groups) in zip(logits, items, strict=True):
            p = _softmax(vec)
            out.append(np.asarray([p[g].sum() for g in groups]))
        return out

    def choice_probabilities(self, batch: Sequence[Sequence[Message]], choices: Sequence[Sequence[str]]) -> np.ndarray:
        """P(each choice) as the reply's start, normalised over the choices (e.g. Yes/No), one row per chat.

        Args:
            batch: the chats.
            choices: the choices, each a list of spellings (e.g. ``[["Yes"], ["No"]]``).

        Returns:
            An (n_chats, n_choices) array whose rows sum to 1.

        Raises:
            InputError: a choice has no non-empty spelling, or a prompt exceeds the model's context window.
        """
        rows = self.first_token_probabilities([(m, choices) for m in batch])
        out = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(choices))
        return out / out.sum(axis=1, keepdims=True)


def _attention_mask(chunk: Sequence[Sequence[int]], shared: int, width: int) -> torch.Tensor:
    """1 over the shared prefix and each sequence's own tokens, 0 over its right padding."""
    mask = torch.zeros((len(chunk), shared + width), dtype=torch.long)
    mask[:, :shared] = 1
    for row, seq in enumerate(chunk):
        mask[row, shared : len(seq)] = 1
    return mask


def _right_padded(rows: Sequence[Sequence[int]], width: int, pad: int) -> torch.Tensor:
    """A (len(rows), width) id tensor, each row padded on the right with `pad`."""
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    for row, seq in enumerate(rows):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return ids


def _length_batches(sequences: Sequence[Sequence[int]], size: int) -> Iterator[list[int]]:
    """Indices of the sequences, shortest first, in batches of at most `size` (little compute goes to padding)."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    for start in range(0, len(order), size):
        yield order[start : start + size]


def _pick_logits(head: Any, hidden: Any, token_ids: list[int], adapter: Adapter) -> np.ndarray:
    """The output head's logits of a few token ids for one hidden state, softcapped like the model's own."""
    logits = head.weight[token_ids] @ hidden
    if getattr(head, "bias", None) is not None:
        logits = logits + head.bias[token_ids]
    return adapter.cap_logits(logits).float().cpu().numpy()


def _common_prefix(sequences: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix all sequences share."""
    first = sequences[0]
    n = min(len(s) for s in sequences)
    for i in range(n):
        if any(s[i] != first[i] for s in sequences):
            return i
    return n


def _softmax(x: np.ndarray) -> np.ndarray:
    """Probabilities from logits, shifted by their maximum so exp never overflows."""
    z = np.asarray(x, dtype=np.float64)
    z = np.exp(z - z.max())
    return z / z.sum()
