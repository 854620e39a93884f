"""Choosing few-shot examples for a factor: dense (embeddings + MMR), lexical (BM25), or both fused.

* ``"dense"``: embed the factor record (mean of its active tokens' and its close-context view's
  embeddings, see `records.search_texts`), take the nearest stored examples from Chroma, and re-rank
  them with maximal marginal relevance,
  ``argmax  lambda * sim(query, d) - (1 - lambda) * max_{s in chosen} sim(d, s)``,
  so near-duplicate examples do not crowd out different ones (lambda=1: plain nearest neighbours).
* ``"bm25"``: Okapi BM25 (rank-bm25) over the active tokens and their shapes (number, capitalised,
  punctuation, -ed/-ing suffix, first/last position), repeated by level, plus the words right next
  to them; needs no embedding model, and a year finds year examples even with different digits.
* ``"hybrid"``: reciprocal-rank fusion of the two rankings, ``score = sum 1 / (k0 + rank)``.

Every retriever returns example ids, best first; the prompt builder packs them until the budget is full.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import InputError
from .embeddings import Embedder
from .library import Library
from .records import ActivationRecord
from .store import ExampleStore, open_store

RETRIEVERS = ("dense", "bm25", "hybrid")
_WORD = re.compile(r"\w+|[^\w\s]")


@runtime_checkable
class Retriever(Protocol):
    """Ranks library examples by how useful they are as worked examples for a record.

    Any object with a ``name`` and this ``rank`` method can be passed as ``retriever=``.
    """

    name: str

    def rank(self, record: ActivationRecord, k: int) -> list[str]:
        """Up to k example ids, best first.

        Args:
            record: the factor's record to find worked examples for.
            k: how many ids to return at most.

        Returns:
            Library example ids, best first.
        """
        ...


def mmr(query: np.ndarray, candidates: np.ndarray, k: int, lam: float = 0.5) -> list[int]:
    """Indices of k candidates chosen by maximal marginal relevance (vectors assumed unit-length).

    Args:
        query: the query vector, shape (dim,).
        candidates: the candidate vectors, shape (n, dim).
        k: how many to choose.
        lam: weight of relevance against redundancy, 0-1 (1: plain nearest neighbours).

    Returns:
        Up to k row indices into `candidates`, in the order they were chosen.

    Raises:
        InputError: `lam` is outside 0-1.
    """
    if not 0.0 <= lam <= 1.0:
        raise InputError(f"mmr lambda must be between 0 and 1, got {lam}")
    cands = np.asarray(candidates, dtype=np.float64)
    if cands.size == 0 or k <= 0:
        return []
    relevance = cands @ np.asarray(query, dtype=np.float64)
    pairwise = cands @ cands.T
    chosen: list[int] = []
    redundancy = np.full(len(cands), -np.inf)
    left = set(range(len(cands)))
    while left and len(chosen) < k:
        best, best_score = -1, -np.inf
        for i in sorted(left):
            penalty = redundancy[i] if chosen else 0.0
            score = lam * relevance[i] - (1.0 - lam) * penalty
            if score > best_score:
                best, best_score = i, score
        chosen.append(best)
        left.discard(best)
        redundancy = np.maximum(redundancy, pairwise[best])
    return chosen


class DenseRetriever:
    """Nearest examples in embedding space, diversified with MMR.

    Args:
        store: the synced example store to query.
        library: when given, only ids this library has are returned (a shared store may hold others).
        mmr_lambda: relevance weight for `mmr`, 0-1.
        fetch: how many nearest examples to re-rank at least.

    Raises:
        InputError: `mmr_lambda` is outside 0-1.
    """

    name = "dense"

    def __init__(self, store: ExampleStore, library: Library | None = None, mmr_lambda: float = 0.5, fetch: int = 32):
        if not 0.0 <= mmr_lambda <= 1.0:
            raise InputError(f"mmr_lambda must be between 0 and 1, got {mmr_lambda}")
        self.store = store
        self.library = library
        self.mmr_lambda = float(mmr_lambda)
        self.fetch = max(1, int(fetch))

    def rank(self, record: ActivationRecord, k: int) -> list[str]:
        """MMR-ordered ids among the nearest `fetch` (at least 4k) stored examples.

        Args:
            record: the factor's record.
            k: how many ids to return at most.

        Returns:
            Example ids, best first.

        Raises:
            BackendError: a Chroma server did not answer within its timeouts.
        """
        query = self.store.embed_query(record)
        hits = self.store.query(query, max(self.fetch, 4 * k))
        if self.library is not None:
            hits = [h for h in hits if h.id in self.library]
        if not hits:
            return []
        order = mmr(query, np.stack([h.embedding for h in hits]), k, self.mmr_lambda)
        return [hits[i].id for i in order]


def token_shape(token: str, position: int, length: int) -> list[str]:
    """Coarse shape terms of a token (number, capitalised, punctuation, suffix, position) for lexical matching.

    Args:
        token: the display token.
        position: its index in the record.
        length: the record's number of tokens.

    Returns:
        Terms such as ``"#number"``, ``"#capital"``, ``"#suffix-ing"`` or ``"#first"``.
    """
    core = token.strip()
    shapes = []
    if not core:
        shapes.append("#space" if token != "↵" else "#newline")
    elif core == "↵" or "↵" in core:
        shapes.append("#newline")
    elif core.isdigit():
        shapes += ["#number", f"#digits{min(len(core), 5)}"]
    elif not any(ch.isalnum() for ch in core):
        shapes.append("#punct")
    elif core[0].isupper():
        shapes.append("#capital")
    else:
        shapes.append("#lower")
    if core.isalpha() and len(core) > 3:
        shapes += [f"#suffix-{sfx}" for sfx in ("ed", "ing", "ly", "s") if core.lower().endswith(sfx)][:1]
    if token and not token.startswith(" ") and position > 0 and core[:1].isalnum():
        shapes.append("#subword")
    if position == 0:
        shapes.append("#first")
    if position == length - 1:
        shapes.append("#last")
    return shapes


def lexical_terms(record: ActivationRecord, context: int = 1) -> list[str]:
    """BM25 terms: each active token and its shape (repeated by strength) plus the words right around it.

    Args:
        record: the record to describe.
        context: how many tokens either side of an active one contribute their words.

    Returns:
        The terms; the record's words when no token is active.
    """
    terms: list[str] = []
    display = record.display
    near: set[int] = set()
    for pos, tok, level in record.active():
        weight = 1 + level // 4
        terms.extend([f"@{tok.strip().lower() or tok}", *token_shape(tok, pos, len(display))] * weight)
        near.update(range(max(0, pos - context), min(len(display), pos + context + 1)))
    for pos in sorted(near):
        terms.extend(w.lower() for w in _WORD.findall(display[pos]))
    return terms or [w.lower() for w in _WORD.findall(record.text())]


class BM25Retriever:
    """Okapi BM25 over the examples' active tokens and words; no embeddings needed.

    Args:
        library: the examples to rank.
    """

    name = "bm25"

    def __init__(self, library: Library) -> None:
        from rank_bm25 import BM25Okapi  # loads only when BM25 retrieval is used

        self.library = library
        self._ids = library.ids
        corpus = [lexical_terms(ex.record) or ["<empty>"] for ex in library]
        self._bm25 = BM25Okapi(corpus)

    def rank(self, record: ActivationRecord, k: int) -> list[str]:
        """Ids by BM25 score (ties keep library order).

        Args:
            record: the factor's record.
            k: how many ids to return at most.

        Returns:
            Example ids, best first.
        """
        scores = np.asarray(self._bm25.get_scores(lexical_terms(record)), dtype=np.float64)
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        return [self._ids[i] for i in order[:k]]


class HybridRetriever:
    """Reciprocal-rank fusion of a dense and a lexical ranking.

    Args:
        dense: the embedding-based retriever.
        lexical: the lexical retriever.
        k0: the fusion constant in ``1 / (k0 + rank)``; larger flattens the difference between ranks.
        depth: how many ids each ranking contributes at least.
    """

    name = "hybrid"

    def __init__(self, dense: Retriever, lexical: Retriever, k0: int = 60, depth: int = 32) -> None:
        self.dense = dense
        self.lexical = lexical
        self.k0 = int(k0)
        self.depth = int(depth)

    def rank(self, record: ActivationRecord, k: int) -> list[str]:
        """Ids by fused score, sum over rankings of 1 / (k0 + rank).

        Args:
            record: the factor's record.
            k: how many ids to return at most.

        Returns:
            Example ids, best first (ties: first seen first).
        """
        depth = max(self.depth, 4 * k)
        scores: dict[str, float] = {}
        first_seen: dict[str, int] = {}
        for ranking in (self.dense.rank(record, depth), self.lexical.rank(record, depth)):
            for r, ex_id in enumerate(ranking):
                scores[ex_id] = scores.get(ex_id, 0.0) + 1.0 / (self.k0 + r + 1)
                first_seen.setdefault(ex_id, len(first_seen))
        return sorted(scores, key=lambda i: (-scores[i], first_seen[i]))[:k]


def make_retriever(
    spec: str | Retriever,
    library: Library,
    *,
    store: ExampleStore | None = None,
    embedder: str | Embedder | None = None,
    mmr_lambda: float = 0.5,
    collection: str | None = None,
    chroma: Any = None,
) -> Retriever:
    """Build a retriever by name ("dense", "bm25", "hybrid"), syncing the store for dense ones.

    Args:
        spec: ``"dense"``, ``"bm25"``, ``"hybrid"``, or a `Retriever` (returned as is).
        library: the examples to rank.
        store: an opened store for dense ranking (synced with `library` here); None opens one with `open_store`.
        embedder: the embedder for a new store (see `get_embedder`).
        mmr_lambda: relevance weight of the dense ranking's `mmr`, 0-1.
        collection: the Chroma collection name for a new store (None: the default one).
        chroma: a Chroma client for a new store (None: `chroma_client`).

    Returns:
        The retriever.

    Raises:
        InputError: an unknown name, an object without ``name``/``rank``, or `mmr_lambda` outside 0-1.
        ConfigurationError: the store cannot be opened (see `open_store`).
        BackendError: a Chroma server stopped answering while syncing.
    """
    if not isinstance(spec, str):
        if not isinstance(spec, Retriever):
            raise InputError(f"retriever {spec!r} needs a `name` and a `rank(record, k)` method")
        return spec
    name = spec.strip().lower()
    if name not in RETRIEVERS:
        raise InputError(f"unknown retriever {spec!r}; use one of {', '.join(RETRIEVERS)}")
    if name == "bm25":
        return BM25Retriever(library)
    if store is None:
        kwargs: dict[str, Any] = {"client": chroma}
        if collection:
            kwargs["collection"] = collection
        store = open_store(library, embedder, **kwargs)
    else:
        store.sync(library)
    dense = DenseRetriever(store, library, mmr_lambda=mmr_lambda)
    if name == "dense":
        return dense
    return HybridRetriever(dense, BM25Retriever(library))


def rank_examples(retriever: Retriever, record: ActivationRecord, k: int) -> list[str]:
    """A retriever's ranking with duplicates removed (fusion and filters can repeat ids).

    Args:
        retriever: the retriever to ask.
        record: the factor's record.
        k: how many ids to ask for.

    Returns:
        Its ids, best first, each once.
    """
    seen: set[str] = set()
    out: list[str] = []
    for ex_id in retriever.rank(record, k):
        if ex_id not in seen:
            seen.add(ex_id)
            out.append(ex_id)
    return out


def ids_in(library: Library, ids: Sequence[str]) -> list[str]:
    """Keep only ids the library has (a shared store may hold others).

    Args:
        library: the library to check against.
        ids: example ids.

    Returns:
        The ids the library has, in their order.
    """
    return [i for i in ids if i in library]
