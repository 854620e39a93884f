"""LLM-written explanations of NMF factors: few-shot retrieval, local or OpenAI-compatible backends, scoring.

Typical use::

    from ecco_sdk.explain import explain_factors, score_explanations, format_explanations
    explanations = explain_factors(tokens, factors)              # local backend, hybrid retrieval
    report = score_explanations(explanations, factor_fn, held_out_texts)
    print(format_explanations(explanations, report))

`explain_text` does all of it from a model and a text. The parts, each replaceable:

* `records_from_factors`: a factor's activations as 0-10 levels per token (`ActivationRecord`);
* `load_library`: the hand-checked worked examples (`Library` of `Example`);
* `make_retriever`: picks worked examples, by embeddings in a Chroma `ExampleStore` (`get_embedder`), BM25, or both;
* `pack_prompt`: fits the factor and its examples into the backend's token budget (`Prompt`);
* `get_backend`: the LLM, `LocalBackend` (offline) or `OpenAIBackend` (any OpenAI-compatible server);
* `score_explanations`: simulation and detection scores on held-out text, next to baselines (`ScoreReport`).
"""

from __future__ import annotations

from ..tokens import display_tokens
from .backends import Backend, Completion, ForcedScorer, LocalBackend, LogprobCompleter, OpenAIBackend, get_backend
from .embeddings import Embedder, OpenAIEmbedder, SentenceTransformerEmbedder, get_embedder
from .explainer import Explanation, explain_factors, explain_record
from .library import Example, Library, default_library_path, load_library, parse_library
from .pipeline import HELD_OUT_TEXTS, SKIP_FIRST, TextExplanation, explain_activations, explain_output, explain_text
from .prompt import SYSTEM_PROMPT, Prompt, pack_prompt
from .records import ActivationRecord, records_from_factors, to_levels
from .retrieval import BM25Retriever, DenseRetriever, HybridRetriever, Retriever, make_retriever, mmr
from .scoring import FactorScore, MethodScores, ScoreReport, score_explanations, top_tokens_explanation
from .store import ExampleStore, SyncStats, chroma_client, open_store
from .summary import format_explanations

__all__ = [
    "HELD_OUT_TEXTS",
    "SKIP_FIRST",
    "SYSTEM_PROMPT",
    "ActivationRecord",
    "BM25Retriever",
    "Backend",
    "Completion",
    "DenseRetriever",
    "Embedder",
    "Example",
    "ExampleStore",
    "Explanation",
    "FactorScore",
    "ForcedScorer",
    "HybridRetriever",
    "Library",
    "LocalBackend",
    "LogprobCompleter",
    "MethodScores",
    "OpenAIBackend",
    "OpenAIEmbedder",
    "Prompt",
    "Retriever",
    "ScoreReport",
    "SentenceTransformerEmbedder",
    "SyncStats",
    "TextExplanation",
    "chroma_client",
    "default_library_path",
    "display_tokens",
    "explain_activations",
    "explain_factors",
    "explain_output",
    "explain_record",
    "explain_text",
    "format_explanations",
    "get_backend",
    "get_embedder",
    "load_library",
    "make_retriever",
    "mmr",
    "open_store",
    "pack_prompt",
    "parse_library",
    "records_from_factors",
    "score_explanations",
    "to_levels",
    "top_tokens_explanation",
]
