"""Token strings as people read them: word boundaries for grouping sub-word tokens."""

from __future__ import annotations

from collections.abc import Sequence

_SPACE_MARKERS = ("Ġ", "▁", "Ċ")


def starts_word(token: str, first: bool) -> bool:
    """Whether a token begins a new word (leading space/marker, punctuation, or the first token)."""
    if first or not token:
        return True
    if token.startswith("##"):
        return False
    if token[0].isspace() or token.startswith(_SPACE_MARKERS):
        return True
    return not token[0].isalnum()


def word_groups(tokens: Sequence[str]) -> list[list[int]]:
    """Positions grouped into words: a word is a word-starting token plus its continuation pieces."""
    groups: list[list[int]] = []
    for i, tok in enumerate(tokens):
        prev_is_punct = bool(groups) and not any(ch.isalnum() for ch in tokens[groups[-1][-1]])
        if starts_word(tok, first=not groups) or prev_is_punct:
            groups.append([i])
        else:
            groups[-1].append(i)
    return groups
