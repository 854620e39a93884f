"""Token-activation records: one factor's activations over a text, as 0-10 levels an LLM can read.

A factor's raw values are scaled to integers 0..10 relative to the factor's own maximum on the text
(``round(10 * a / max)``), so a token at 5% of the peak or less reads as 0 and the peak always reads
10. An all-zero factor gives all-zero levels and an empty compact view.

Compact view (what the explainer and the retriever see), chosen to be cheap in BPE tokens and plain
ASCII apart from the ellipsis::

    I love apples[,:10] pears[,:9] [and:1] plums …

* an active token (level >= ``min_level``) is wrapped as ``[token:level]``; the level is always the
  text after the last colon, so tokens that contain ``:`` or ``]`` stay unambiguous;
* a word-start token's leading space stays outside the brackets, so the text still reads naturally;
* ``context`` inactive tokens are kept on each side of every active token; longer inactive stretches
  are replaced by ``…``;
* newlines show as ``↵`` and tabs as ``⇥``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..tokens import display_tokens, token_words

MAX_LEVEL = 10
ELLIPSIS = "…"
# Token rules (special tokens, markers, display strings, words) live in ecco_sdk.tokens.


def to_levels(values: Sequence[float] | np.ndarray) -> list[int]:
    """Scale non-negative activations to integers 0..10 relative to their maximum (all zero stays zero).

    Args:
        values: One factor's activations over a text; negative values count as 0.

    Returns:
        One level per value, round(10 * value / max).
    """
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size and not np.all(np.isfinite(arr)):
        raise InputError("activations contain NaN or infinity; factor values must be finite numbers")
    peak = float(arr.max()) if arr.size else 0.0
    if peak <= 0.0:
        return [0] * int(arr.size)
    scaled = np.clip(arr, 0.0, None) / peak * MAX_LEVEL
    return [math.floor(v + 0.5) for v in scaled.tolist()]


def check_non_negative(values: np.ndarray, what: str) -> np.ndarray:
    """Clip float noise below zero; refuse clearly signed data, which 0-10 levels cannot represent.

    Args:
        values: Factor activations of any shape.
        what: Names the values in the error message.

    Returns:
        The values as float64 with tiny negatives (under 1e-6 of the largest magnitude) set to 0.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return arr
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{what} contains NaN or infinity; pass finite non-negative values (NMF factors)")
    scale = float(np.abs(arr).max())
    if float(arr.min()) < -1e-6 * max(scale, 1e-12):
        raise InputError(
            f"{what} has negative values (min {float(arr.min()):.4g}); explanations need non-negative "
            "factor activations such as NMF output: clip or shift the values first"
        )
    return np.clip(arr, 0.0, None)


@dataclass
class ActivationRecord:
    """One factor over one token sequence, kept both raw (for scoring) and as 0-10 levels (for prompts).

    Attributes:
        tokens: The raw tokens, one per activation.
        activations: The factor's raw value at each token.
        levels: The 0-10 levels (empty: computed from `activations` by `to_levels`).
        factor: The factor's index, when the record comes from a factor matrix.
    """

    tokens: list[str]
    activations: list[float]
    levels: list[int] = field(default_factory=list)
    factor: int | None = None

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.activations):
            raise InputError(
                f"an activation record needs one activation per token: got {len(self.tokens)} tokens "
                f"and {len(self.activations)} activations"
            )
        self.tokens = [str(t) for t in self.tokens]
        self.activations = [float(a) for a in self.activations]
        if not self.levels:
            self.levels = to_levels(self.activations)
        elif len(self.levels) != len(self.tokens):
            raise InputError(f"levels has {len(self.levels)} values for {len(self.tokens)} tokens")

    @classmethod
    def from_levels(cls, tokens: Sequence[str], levels: Sequence[int], factor: int | None = None) -> ActivationRecord:
        """A record whose values are already 0-10 levels (library examples).

        Args:
            tokens: The tokens.
            levels: One 0-10 level per token.
            factor: The factor's index, if any.

        Returns:
            A record whose activations equal its levels.
        """
        lv = [int(v) for v in levels]
        return cls(tokens=list(tokens), activations=[float(v) for v in lv], levels=lv, factor=factor)

    @property
    def max_activation(self) -> float:
        """The factor's peak on this text (what level 10 means)."""
        return max(self.activations, default=0.0)

    @property
    def display(self) -> list[str]:
        """Tokens as readable strings (leading spaces kept, newlines as ↵)."""
        return display_tokens(self.tokens)

    def is_empty(self) -> bool:
        """True when no token reaches level 1: the factor is silent on this text.

        Returns:
            Whether every level is 0.
        """
        return not any(self.levels)

    def active(self, min_level: int = 1) -> list[tuple[int, str, int]]:
        """(position, display token, level) of every token at or above min_level, in text order.

        Args:
            min_level: The lowest level that counts as active.

        Returns:
            The active tokens as (position, display token, level) tuples.
        """
        disp = self.display
        return [(i, disp[i], lv) for i, lv in enumerate(self.levels) if lv >= min_level]

    def top_tokens(self, k: int = 5, min_level: int = 1) -> list[tuple[str, int]]:
        """The k strongest distinct tokens (display form, best level), strongest first.

        Args:
            k: How many tokens to return.
            min_level: The lowest level that counts as active.

        Returns:
            Up to k (token, level) pairs, tokens stripped of surrounding spaces.
        """
        best: dict[str, int] = {}
        for _, tok, lv in self.active(min_level):
            key = tok.strip() or tok
            best[key] = max(best.get(key, 0), lv)
        return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    def top_words(self, k: int = 5, min_level: int = 1) -> list[tuple[str, int]]:
        """Like `top_tokens`, but each sub-word token widened to its whole word ("en" -> "Bergen").

        Args:
            k: How many words to return.
            min_level: The lowest level that counts as active.

        Returns:
            Up to k (word, level) pairs, strongest first.
        """
        words = token_words(self.display)
        best: dict[str, int] = {}
        for pos, _, lv in self.active(min_level):
            best[words[pos]] = max(best.get(words[pos], 0), lv)
        return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    def compact(self, context: int = 3, min_level: int = 1) -> str:
        """The active tokens in context, e.g. ``love apples[,:10] pears[,:9] …`` (see module doc).

        Args:
            context: Inactive tokens kept on each side of every active token.
            min_level: The lowest level that is marked.

        Returns:
            The compact view; empty when no token reaches `min_level`.
        """
        disp = self.display
        n = len(disp)
        hot = [i for i, lv in enumerate(self.levels) if lv >= min_level]
        if not hot:
            return ""
        keep = [False] * n
        for i in hot:
            for j in range(max(0, i - context), min(n, i + context + 1)):
                keep[j] = True
        parts: list[str] = []
        gap = False
        for i in range(n):
            if not keep[i]:
                gap = True
                continue
            piece = _mark(disp[i], self.levels[i]) if self.levels[i] >= min_level else disp[i]
            if gap:
                parts.append(f" {ELLIPSIS} " if parts else f"{ELLIPSIS} ")
                piece = piece[1:] if piece.startswith(" ") else piece
            gap = False
            parts.append(piece)
        if gap:
            parts.append(f" {ELLIPSIS}")
        return "".join(parts).strip()

    def lines(self) -> str:
        """One ``token<TAB>level`` line per token: the simulation format.

        Returns:
            The lines joined by newlines.
        """
        return "\n".join(f"{tok}\t{lv}" for tok, lv in zip(self.display, self.levels, strict=True))

    def text(self) -> str:
        """The plain text the record covers.

        Returns:
            The display tokens joined, without surrounding whitespace.
        """
        return "".join(self.display).strip()

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON.

        Returns:
            The factor, tokens, activations, levels, peak and compact view.
        """
        return {
            "factor": self.factor,
            "tokens": list(self.tokens),
            "activations": list(self.activations),
            "levels": list(self.levels),
            "max_activation": self.max_activation,
            "compact": self.compact(),
        }


def _mark(token: str, level: int) -> str:
    core = token.lstrip(" ")
    lead = token[: len(token) - len(core)]
    if not core:  # a pure-space token: show it inside the brackets so it is visible
        core, lead = token, ""
    return f"{lead}[{core}:{level}]"


def records_from_factors(
    tokens: Sequence[str], factors: np.ndarray | Sequence[Sequence[float]]
) -> list[ActivationRecord]:
    """One record per factor row, in factor order; a 1-D array counts as a single factor.

    Args:
        tokens: The text's tokens, one per column.
        factors: Non-negative factor activations shaped (n_factors, n_tokens), or (n_tokens,) for one factor.

    Returns:
        One ActivationRecord per factor.
    """
    toks = [str(t) for t in tokens]
    if not toks:
        raise InputError("tokens is empty; pass the token strings the factors were computed on")
    arr = np.asarray(factors, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InputError(f"factors must be shaped (n_factors, n_tokens); got an array with shape {arr.shape}")
    if arr.shape[1] != len(toks):
        if arr.shape[0] == len(toks):
            raise InputError(
                f"factors has shape {arr.shape} but there are {len(toks)} tokens: it looks transposed; "
                "pass factors shaped (n_factors, n_tokens)"
            )
        raise InputError(f"factors has shape {arr.shape}; its second axis must match the {len(toks)} tokens")
    arr = check_non_negative(arr, "factors")
    return [ActivationRecord(tokens=toks, activations=row.tolist(), factor=f) for f, row in enumerate(arr)]


def search_texts(record: ActivationRecord) -> tuple[str, str]:
    """What a record is matched by in dense retrieval: its active tokens alone, and them in close context.

    The first text carries *which* tokens fire (so "Paris" finds other city examples), the second how
    they sit in the text (so commas between list items find list-comma examples); their embeddings are
    averaged. A silent record falls back to its plain text for both.

    Args:
        record: The record to search by.

    Returns:
        (its top active tokens, its compact view with one token of context).
    """
    words = " ".join(tok for tok, _ in record.top_tokens(8))
    return (words or record.text(), record.compact(context=1) or record.text())
