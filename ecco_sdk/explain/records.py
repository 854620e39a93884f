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

MAX_LEVEL = 10
ELLIPSIS = "…"
NEWLINE_MARK = "↵"
TAB_MARK = "⇥"

_BYTE_LEVEL = {"Ġ": " ", "Ċ": "\n", "ĉ": "\t", "č": ""}
_SPECIAL_PREFIXES = ("<|", "[CLS", "[SEP", "[PAD", "[MASK", "[UNK", "<s>", "</s>", "<pad>", "<unk>", "<eos>", "<bos>")


def _is_special(token: str) -> bool:
    return token.startswith(_SPECIAL_PREFIXES) and (token.endswith((">", "]")))


def token_scheme(tokens: Sequence[str]) -> str:
    """Guess how a token list marks word starts, so it can be shown as readable text."""
    if any(t.startswith("##") and len(t) > 2 for t in tokens):
        return "wordpiece"
    if any(("Ġ" in t or "Ċ" in t) for t in tokens):
        return "byte-level"
    if any("▁" in t for t in tokens):
        return "sentencepiece"
    return "plain"


def _visible(text: str) -> str:
    """Make whitespace that would break a line-based view visible."""
    return text.replace("\r\n", "\n").replace("\r", "").replace("\n", NEWLINE_MARK).replace("\t", TAB_MARK)


def display_tokens(tokens: Sequence[str]) -> list[str]:
    """Turn raw sub-word tokens into display strings that concatenate back into readable text."""
    scheme = token_scheme(tokens)
    out: list[str] = []
    for i, tok in enumerate(tokens):
        tok = str(tok)
        if scheme == "byte-level" and not _is_special(tok):
            tok = "".join(_BYTE_LEVEL.get(ch, ch) for ch in tok)
        elif scheme == "sentencepiece" and not _is_special(tok):
            tok = tok.replace("▁", " ")
        elif scheme == "wordpiece":
            if tok.startswith("##") and len(tok) > 2:
                tok = tok[2:]
            elif i > 0:
                tok = " " + tok
        out.append(_visible(tok))
    return out


def detokenize(tokens: Sequence[str]) -> str:
    """Readable text for a token list (for snippets shown to an LLM)."""
    return "".join(display_tokens(tokens)).strip()


def to_levels(values: Sequence[float] | np.ndarray) -> list[int]:
    """Scale non-negative activations to integers 0..10 relative to their maximum (all zero stays zero)."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size and not np.all(np.isfinite(arr)):
        raise InputError("activations contain NaN or infinity; factor values must be finite numbers")
    peak = float(arr.max()) if arr.size else 0.0
    if peak <= 0.0:
        return [0] * int(arr.size)
    scaled = np.clip(arr, 0.0, None) / peak * MAX_LEVEL
    return [math.floor(v + 0.5) for v in scaled.tolist()]


def check_non_negative(values: np.ndarray, what: str) -> np.ndarray:
    """Clip float noise below zero; refuse clearly signed data, which 0-10 levels cannot represent."""
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
    """One factor over one token sequence, kept both raw (for scoring) and as 0-10 levels (for prompts)."""

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
        """A record whose values are already 0-10 levels (library examples)."""
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
        """True when no token reaches level 1: the factor is silent on this text."""
        return not any(self.levels)

    def active(self, min_level: int = 1) -> list[tuple[int, str, int]]:
        """(position, display token, level) of every token at or above min_level, in text order."""
        disp = self.display
        return [(i, disp[i], lv) for i, lv in enumerate(self.levels) if lv >= min_level]

    def top_tokens(self, k: int = 5, min_level: int = 1) -> list[tuple[str, int]]:
        """The k strongest distinct tokens (display form, best level), strongest first."""
        best: dict[str, int] = {}
        for _, tok, lv in self.active(min_level):
            key = tok.strip() or tok
            best[key] = max(best.get(key, 0), lv)
        return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    def top_words(self, k: int = 5, min_level: int = 1) -> list[tuple[str, int]]:
        """Like `top_tokens`, but each sub-word token widened to its whole word ("en" -> "Bergen")."""
        words = token_words(self.display)
        best: dict[str, int] = {}
        for pos, _, lv in self.active(min_level):
            best[words[pos]] = max(best.get(words[pos], 0), lv)
        return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    def compact(self, context: int = 3, min_level: int = 1) -> str:
        """The active tokens in context, e.g. ``love apples[,:10] pears[,:9] …`` (see module doc)."""
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
        """One ``token<TAB>level`` line per token: the simulation format."""
        return "\n".join(f"{tok}\t{lv}" for tok, lv in zip(self.display, self.levels, strict=True))

    def text(self) -> str:
        """The plain text the record covers."""
        return "".join(self.display).strip()

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {
            "factor": self.factor,
            "tokens": list(self.tokens),
            "activations": list(self.activations),
            "levels": list(self.levels),
            "max_activation": self.max_activation,
            "compact": self.compact(),
        }


def token_words(display: Sequence[str], glue: Any = None) -> list[str]:
    """The word each display token belongs to ("en" in " Berg"+"en" -> "Bergen"), one per token.

    glue(before, token) says whether `token` continues the word of the token before it; the default joins
    letters and digits only. A token that is all whitespace stays itself.
    """
    joins = glue or _continues_word
    out = []
    for pos in range(len(display)):
        start, end = pos, pos + 1
        while start > 0 and joins(display[start - 1], display[start]):
            start -= 1
        while end < len(display) and joins(display[end - 1], display[end]):
            end += 1
        out.append("".join(display[start:end]).strip() or display[pos])
    return out


def same_run(before: str, token: str) -> bool:
    """True when no whitespace (nor a shown line break or tab) separates `token` from `before` ("</" "li" ">")."""
    breaks = (NEWLINE_MARK, TAB_MARK)
    return (
        bool(token)
        and bool(before)
        and not (token[0].isspace() or before[-1].isspace() or token[0] in breaks or before[-1] in breaks)
    )


def _continues_word(before: str, token: str) -> bool:
    """True when `token` glues onto `before` inside one word (no space, both sides letters or digits)."""
    return bool(token) and token[0].isalnum() and bool(before) and before[-1].isalnum()


def _mark(token: str, level: int) -> str:
    core = token.lstrip(" ")
    lead = token[: len(token) - len(core)]
    if not core:  # a pure-space token: show it inside the brackets so it is visible
        core, lead = token, ""
    return f"{lead}[{core}:{level}]"


def records_from_factors(
    tokens: Sequence[str], factors: np.ndarray | Sequence[Sequence[float]]
) -> list[ActivationRecord]:
    """One record per factor row, in factor order; a 1-D array counts as a single factor."""
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
    """
    words = " ".join(tok for tok, _ in record.top_tokens(8))
    return (words or record.text(), record.compact(context=1) or record.text())
