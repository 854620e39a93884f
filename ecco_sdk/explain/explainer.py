"""explain_factors: one LLM-written explanation per factor, in factor order, with everything that produced it."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cancel import checkpoint
from ..checks import check_int
from ..errors import InputError
from .backends import Backend, Message, get_backend
from .embeddings import Embedder
from .library import Example, Library, as_library
from .prompt import CITED_TOKENS, NO_PATTERN, clean_explanation, pack_prompt, top_tokens_explanation, with_cited_tokens
from .records import ActivationRecord, records_from_factors
from .retrieval import Retriever, make_retriever, rank_examples
from .store import ExampleStore

DEFAULT_BUDGET = 1024
INACTIVE_TEXT = f"{NO_PATTERN} (the factor is zero on every token)"

# An answer is a near-copy of a worked example's explanation when at least COPY_THRESHOLD of its words
# (and at least COPY_MIN_WORDS of them) appear, in order, in that explanation. Among the 11,990 ordered
# pairs of distinct explanations in the built-in library, 8 reach 0.75 with 4 words, all restating the same
# pattern ("Only the first token of the sequence"); the 99th percentile is 0.40. The copies seen in issue
# 15 score 1.0 ("Digits of numbers and years; weak on the thousands-separator commas") and 0.86
# ("Spelled-out number words (one to four)" for a factor of food words).
COPY_THRESHOLD = 0.75
COPY_MIN_WORDS = 4
#: What to do with a near-copy: use the top-tokens wording (the default), or ask again without the copied
#: example. In bench/explain.py (numbers text, 3 factors) the three copies (one by the 1.5B, two by SmolLM2)
#: simulated at -0.056, -0.181 and 0.029 after a retry, against 0.002, -0.182 and 0.029 for the top-tokens
#: wording of the same factors; the fallback also saves the second generation.
ON_COPY = ("top-tokens", "retry")
_WORD = re.compile(r"\w+")


@dataclass
class Explanation:
    """What one factor responds to, according to an LLM, with the prompt and examples it was given.

    Made by `explain_factors` / `explain_record`; `to_dict` gives everything but the backend object.

    Args:
        factor: the factor's index.
        text: the cleaned one-line explanation.
        record: the factor's activations as 0-10 levels over the tokens.
        example_ids: the worked examples that were in the prompt, in prompt order.
        messages: the chat sent to the backend.
        backend: the backend's name.
        retriever: the retriever's name (``""`` when no examples were retrieved).
        prompt_tokens: the prompt's size in the backend's tokens.
        token_budget: the prompt budget it was packed into.
        min_level: the lowest level shown in the prompt (raised when the record did not fit).
        raw: the backend's answer before cleaning.
        copied_from: id of the worked example the first answer nearly copied, or None.
        copy_similarity: share of the first answer's words found in order in the closest example's explanation.
        notes: remarks a reader should see with the explanation.
    """

    factor: int
    text: str
    record: ActivationRecord
    example_ids: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    backend: str = ""
    retriever: str = ""
    prompt_tokens: int = 0
    token_budget: int = 0
    min_level: int = 1
    raw: str = ""
    #: Id of the worked example whose explanation the first answer nearly copied (None: no copy).
    copied_from: str | None = None
    #: Share of the first answer's words found in order in the closest example's explanation (0-1).
    copy_similarity: float = 0.0
    #: Remarks a reader should see with the explanation (a retried copy, the small fallback model).
    notes: list[str] = field(default_factory=list)

    def active_tokens(self, k: int = 8) -> list[tuple[str, int]]:
        """The factor's strongest distinct tokens with their 0-10 levels.

        Args:
            k: how many tokens at most.

        Returns:
            ``(token, level)`` pairs, strongest first.
        """
        return self.record.top_tokens(k)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON (no backend object, no key, just what was sent and received).

        Returns:
            Every field, with the record as `ActivationRecord.to_dict` gives it.
        """
        return {
            "factor": self.factor,
            "text": self.text,
            "raw": self.raw,
            "example_ids": list(self.example_ids),
            "messages": [dict(m) for m in self.messages],
            "backend": self.backend,
            "retriever": self.retriever,
            "prompt_tokens": self.prompt_tokens,
            "token_budget": self.token_budget,
            "min_level": self.min_level,
            "copied_from": self.copied_from,
            "copy_similarity": self.copy_similarity,
            "notes": list(self.notes),
            "record": self.record.to_dict(),
        }


def copy_similarity(text: str, reference: str) -> tuple[float, int]:
    """Share of `text`'s words found in order in `reference` (case-folded), and how many words that is.

    Args:
        text: the answer to check.
        reference: a worked example's explanation.

    Returns:
        ``(share 0-1, number of matched words)``; ``(0.0, 0)`` when either has no words.
    """
    words = [w.lower() for w in _WORD.findall(text)]
    ref = [w.lower() for w in _WORD.findall(reference)]
    if not words or not ref:
        return 0.0, 0
    matcher = difflib.SequenceMatcher(None, words, ref, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    return matched / len(words), matched


def find_copy(text: str, examples: Sequence[Example]) -> tuple[str | None, float]:
    """The example whose explanation `text` nearly copies (None if none) and the highest similarity found.

    Args:
        text: the cleaned explanation.
        examples: the worked examples that were in the prompt.

    Returns:
        (example id or None, highest share of words matched over all examples).
    """
    scored = [(copy_similarity(text, ex.explanation), ex.id) for ex in examples]
    copies = [
        (share, ex_id) for (share, matched), ex_id in scored if share >= COPY_THRESHOLD and matched >= COPY_MIN_WORDS
    ]
    best = max((share for (share, _), _ in scored), default=0.0)
    return (max(copies)[1] if copies else None), best


def _default_budget(backend: Backend, max_tokens: int) -> int:
    return max(64, min(DEFAULT_BUDGET, int(backend.context_window) - int(max_tokens)))


def explain_record(
    record: ActivationRecord,
    *,
    backend: Backend,
    library: Library,
    retriever: Retriever | None,
    n_examples: int,
    token_budget: int,
    max_tokens: int,
    context: int = 3,
    on_copy: str = "top-tokens",
    cite_tokens: int = CITED_TOKENS,
) -> Explanation:
    """Explain one record: retrieve examples, pack the prompt, ask the backend, tidy the answer.

    An answer that nearly copies a worked example's explanation (see `find_copy`) is replaced by the
    top-tokens wording (on_copy="top-tokens", the default) or asked again without that example
    (on_copy="retry"; a second copy falls back to the top-tokens wording); the Explanation records the copy
    and says so in `notes`.

    Args:
        record: the factor's record (see `records_from_factors`).
        backend: the LLM to ask.
        library: the worked examples the retriever's ids refer to.
        retriever: ranks worked examples; None sends none.
        n_examples: most worked examples in the prompt (0: none).
        token_budget: most prompt tokens, in the backend's units.
        max_tokens: most tokens of the answer.
        context: tokens shown either side of each active token in the prompt.
        on_copy: ``"top-tokens"`` or ``"retry"`` (see above).
        cite_tokens: how many of the record's strongest tokens to quote after the answer (0: none).

    Returns:
        The `Explanation`; a record with no active token gets `INACTIVE_TEXT` without asking the backend.

    Raises:
        InputError: `on_copy` is not one of `ON_COPY`, or `token_budget` is not positive.
        BackendError: the backend failed (a server refused the request or kept failing).
    """
    factor = record.factor if record.factor is not None else 0
    base = {"factor": factor, "record": record, "backend": backend.name, "token_budget": token_budget}
    if on_copy not in ON_COPY:
        raise InputError(f"on_copy must be one of {ON_COPY}, got {on_copy!r}")
    if record.is_empty():
        return Explanation(text=INACTIVE_TEXT, retriever=getattr(retriever, "name", ""), **base)
    candidates: list[Example] = []
    if retriever is not None and n_examples > 0:
        ids = rank_examples(retriever, record, max(3 * n_examples, 8))
        candidates = [library.get(i) for i in ids if i in library]
    prompt, raw = _ask(backend, record, candidates, token_budget, n_examples, max_tokens, context)
    text = clean_explanation(raw)
    copied, similarity = find_copy(text, [library.get(i) for i in prompt.example_ids])
    notes = [backend.note] if getattr(backend, "note", None) else []
    if copied is not None:
        if on_copy == "retry":
            checkpoint()
            prompt, raw = _ask(
                backend,
                record,
                [c for c in candidates if c.id != copied],
                token_budget,
                n_examples,
                max_tokens,
                context,
            )
            text = clean_explanation(raw)
            again, _ = find_copy(text, [library.get(i) for i in prompt.example_ids])
            how = "asked again without that example"
            if again is not None:
                text = top_tokens_explanation(record)
                how += f", copied {again} then, so the top-tokens wording is used"
            else:
                text = with_cited_tokens(text, record, cite_tokens)
        else:
            text = top_tokens_explanation(record)
            how = "the top-tokens wording is used instead"
        notes.append(f"the first answer nearly copied worked example {copied} ({similarity:.0%} of its words); {how}")
    else:
        text = with_cited_tokens(text, record, cite_tokens)
    return Explanation(
        text=text,
        example_ids=prompt.example_ids,
        messages=prompt.messages,
        retriever=getattr(retriever, "name", ""),
        prompt_tokens=prompt.tokens,
        min_level=prompt.min_level,
        raw=raw,
        copied_from=copied,
        copy_similarity=similarity,
        notes=notes,
        **base,
    )


def _ask(
    backend: Backend,
    record: ActivationRecord,
    candidates: Sequence[Example],
    token_budget: int,
    n_examples: int,
    max_tokens: int,
    context: int,
) -> tuple[Any, str]:
    """Pack the prompt from ranked candidates and get the backend's raw answer."""
    prompt = pack_prompt(
        record, candidates, count=backend.count_messages, budget=token_budget, n_examples=n_examples, context=context
    )
    return prompt, backend.complete(prompt.messages, max_tokens=max_tokens)


def explain_factors(
    tokens: Sequence[str],
    factors: np.ndarray | Sequence[Sequence[float]],
    *,
    backend: str | Backend | None = None,
    n_examples: int = 4,
    token_budget: int | None = None,
    retriever: str | Retriever = "hybrid",
    library: Library | str | Path | None = None,
    embedder: str | Embedder | None = None,
    store: ExampleStore | None = None,
    mmr_lambda: float = 0.5,
    max_tokens: int = 48,
    api_key: str | None = None,
    max_workers: int = 1,
    context: int = 3,
    on_copy: str = "top-tokens",
    cite_tokens: int = CITED_TOKENS,
) -> list[Explanation]:
    """One Explanation per factor row of `factors` (n_factors, n_tokens), returned in factor order.

    Args:
        tokens: the text's tokens, one per column of `factors` (e.g. ``output.tokens[0]``).
        factors: NMF factor activations, shape (n_factors, n_tokens), e.g. from ``output.run_nmf(...)``.
        backend: ``"local"`` (offline: the embedded Qwen2.5-Coder-1.5B when installed, else SmolLM2-135M with a
            note), ``"local:<model>"``, ``"openai"``, ``"openai:<model>"`` or a `Backend`; None reads
            $ECCO_SDK_EXPLAINER, else ``"local"``.
        n_examples: most worked examples per prompt (0: none, and no retrieval).
        token_budget: most prompt tokens in the backend's own units; None means
            ``min(1024, context window - max_tokens)``.
        retriever: ``"hybrid"`` (dense MiniLM-in-Chroma ranking with MMR, fused with BM25), ``"dense"``,
            ``"bm25"`` (no embeddings needed) or a `Retriever`.
        library: the worked examples: a `Library`, a JSON file, or None for the built-in library.
        embedder: the embedder for dense retrieval (see `get_embedder`).
        store: an opened `ExampleStore` to use instead of opening the default one.
        mmr_lambda: relevance weight of the dense ranking's MMR, 0-1 (1: plain nearest neighbours).
        max_tokens: most tokens of each answer.
        api_key: an OpenAI key used for this call only and never stored.
        max_workers: factors asked at once (more than 1 helps with a server backend).
        context: tokens shown either side of each active token in the prompt.
        on_copy: what to do when an answer nearly copies a worked example: ``"top-tokens"`` (use the top-tokens
            wording) or ``"retry"`` (ask again without that example).
        cite_tokens: how many of the factor's strongest tokens to quote after the answer's phrase, as
            ``(strongest: "a", "b", "c")``; 0 keeps the answer as it came. The scoring simulator takes quoted
            tokens literally, so the quotes also make the explanation's claim checkable.

    Returns:
        One `Explanation` per factor, in factor order.

    Raises:
        InputError: a bad count (n_examples < 0, max_tokens <= 0, max_workers < 1), an unknown `on_copy`,
            backend or retriever, tokens and factors that do not match, or a budget that does not fit the
            backend's context window.
        ConfigurationError: the backend or the example store cannot be set up (no API key, a missing model
            package, a store made with another embedder).
        FileFormatError: the library file does not validate.
        BackendError: an LLM or Chroma server refused a request or kept failing.
    """
    if n_examples < 0 or max_tokens <= 0 or max_workers < 1:
        raise InputError("n_examples must be >= 0, max_tokens > 0 and max_workers >= 1")
    if on_copy not in ON_COPY:
        raise InputError(f"on_copy must be one of {ON_COPY}, got {on_copy!r}")
    cite_tokens = check_int(cite_tokens, "cite_tokens", minimum=0)
    records = records_from_factors(tokens, factors)
    llm = get_backend(backend, api_key=api_key)
    lib = as_library(library) if n_examples else Library(examples=[])
    finder = (
        make_retriever(retriever, lib, store=store, embedder=embedder, mmr_lambda=mmr_lambda) if n_examples else None
    )
    budget = int(token_budget) if token_budget is not None else _default_budget(llm, max_tokens)
    if budget + max_tokens > llm.context_window:
        raise InputError(
            f"token_budget {budget} + max_tokens {max_tokens} exceeds the {llm.context_window}-token window of "
            f"{llm.name}; lower token_budget"
        )

    def one(record: ActivationRecord) -> Explanation:
        """Explain one factor with the shared settings (runs in worker threads when max_workers > 1)."""
        return explain_record(
            record,
            backend=llm,
            library=lib,
            retriever=finder,
            n_examples=n_examples,
            token_budget=budget,
            max_tokens=max_tokens,
            context=context,
            on_copy=on_copy,
            cite_tokens=cite_tokens,
        )

    if max_workers == 1 or len(records) == 1:
        return [one(r) for r in records]
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        return list(pool.map(one, records))  # map keeps input (factor) order whatever finishes first
