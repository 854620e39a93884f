"""explain_factors: one LLM-written explanation per factor, in factor order, with everything that produced it."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .backends import Backend, Message, get_backend
from .embeddings import Embedder
from .library import Example, Library, as_library
from .prompt import NO_PATTERN, clean_explanation, pack_prompt
from .records import ActivationRecord, records_from_factors
from .retrieval import Retriever, make_retriever, rank_examples
from .store import ExampleStore

DEFAULT_BUDGET = 1024
INACTIVE_TEXT = f"{NO_PATTERN} (the factor is zero on every token)"


@dataclass
class Explanation:
    """What one factor responds to, according to an LLM, with the prompt and examples it was given."""

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

    def active_tokens(self, k: int = 8) -> list[tuple[str, int]]:
        """The factor's strongest distinct tokens with their 0-10 levels."""
        return self.record.top_tokens(k)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON (no backend object, no key, just what was sent and received)."""
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
            "record": self.record.to_dict(),
        }


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
) -> Explanation:
    """Explain one record: retrieve examples, pack the prompt, ask the backend, tidy the answer."""
    factor = record.factor if record.factor is not None else 0
    base = {"factor": factor, "record": record, "backend": backend.name, "token_budget": token_budget}
    if record.is_empty():
        return Explanation(text=INACTIVE_TEXT, retriever=getattr(retriever, "name", ""), **base)
    candidates: list[Example] = []
    if retriever is not None and n_examples > 0:
        ids = rank_examples(retriever, record, max(3 * n_examples, 8))
        candidates = [library.get(i) for i in ids if i in library]
    prompt = pack_prompt(
        record, candidates, count=backend.count_messages, budget=token_budget, n_examples=n_examples, context=context
    )
    raw = backend.complete(prompt.messages, max_tokens=max_tokens)
    return Explanation(
        text=clean_explanation(raw),
        example_ids=prompt.example_ids,
        messages=prompt.messages,
        retriever=getattr(retriever, "name", ""),
        prompt_tokens=prompt.tokens,
        min_level=prompt.min_level,
        raw=raw,
        **base,
    )


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
) -> list[Explanation]:
    """One Explanation per factor row of `factors` (n_factors, n_tokens), returned in factor order.

    backend: "local" (embedded SmolLM2, offline; default unless $ECCO_SDK_EXPLAINER says otherwise),
    "openai[:model]" or a Backend. retriever: "hybrid" (default: dense MiniLM-in-Chroma ranking with MMR,
    fused with BM25), "dense" or "bm25" (no embeddings needed). token_budget: most prompt
    tokens in the backend's own units (default min(1024, context window - max_tokens)). api_key is
    used for this call only and never stored. max_workers > 1 asks a server for several factors at once.
    """
    if n_examples < 0 or max_tokens <= 0 or max_workers < 1:
        raise InputError("n_examples must be >= 0, max_tokens > 0 and max_workers >= 1")
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
        )

    if max_workers == 1 or len(records) == 1:
        return [one(r) for r in records]
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        return list(pool.map(one, records))  # map keeps input (factor) order whatever finishes first
