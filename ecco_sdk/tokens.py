"""Token strings as people read them: word boundaries for grouping sub-word tokens."""

from __future__ import annotations

import re
from collections.abc import Sequence

_SPACE_MARKERS = ("Ġ", "▁", "Ċ")
_SPECIAL = re.compile(r"^(\[[A-Za-z_]+\]|<\|?[^<>\s]*\|?>)$")


def is_special(token: str) -> bool:
    """Special tokens such as [CLS], </s> or <|im_start|> stand alone as words."""
    return bool(_SPECIAL.match(token))


def uses_wordpiece(tokens: Sequence[str]) -> bool:
    """WordPiece (BERT) marks continuations with '##'; byte-level BPE marks word starts with a space instead."""
    return not any(t[:1].isspace() or t.startswith(_SPACE_MARKERS) for t in tokens[1:] if not is_special(t))


def _starts_word(token: str, prev: str, wordpiece: bool) -> bool:
    if is_special(token) or is_special(prev) or not token:
        return True
    if wordpiece:
        return not token.startswith("##")
    if token[0].isspace() or token.startswith(_SPACE_MARKERS):
        return True
    punct_now, punct_prev = not token[0].isalnum(), not any(ch.isalnum() for ch in prev)
    return punct_now or punct_prev


def word_groups(tokens: Sequence[str]) -> list[list[int]]:
    """Positions grouped into words: a word-starting token plus its continuation pieces."""
    wordpiece = uses_wordpiece(tokens)
    groups: list[list[int]] = []
    for i, tok in enumerate(tokens):
        if not groups or _starts_word(tok, tokens[i - 1], wordpiece):
            groups.append([i])
        else:
            groups[-1].append(i)
    return groups
