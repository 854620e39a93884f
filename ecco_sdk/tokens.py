"""Token strings as people read them: the one home for special-token, word-start and tokenizer-marker rules.

Every view reads tokens through these rules (HTML and figure labels in `render`, explanation records in
`explain`, word-level scores in `attribution`), so a token shows and groups the same way everywhere. Tokenizers
mark words in three ways:

* byte-level BPE (GPT-2, Llama 3, Qwen): a word start begins with "Ġ" (a space) and "Ċ" is a newline; every
  byte is spelt as one printable character, so "âĢĻ" is the three UTF-8 bytes of "’";
* sentencepiece (Llama 2, Gemma, T5): a word start begins with "▁"; a byte outside the vocabulary is "<0x0A>";
* word-piece (BERT): a word start has no marker and a continuation piece begins with "##".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache

SPACE_MARKERS = ("Ġ", "▁", "Ċ")
NEWLINE_MARK = "↵"
TAB_MARK = "⇥"
WORDPIECE_SEPARATORS = ("[CLS]", "[SEP]")

_SIMPLE_MARKERS = {"Ġ": " ", "Ċ": "\n", "ĉ": "\t", "▁": " "}
# "<start_of_turn>" and "<extra_id_0>" (Gemma, T5) have an underscore, which HTML tags such as "<div>" never do.
_SPECIAL = re.compile(r"^(<\|[^|<>]{1,40}\|>|\[[A-Z_]{2,10}\]|</?s>|<(pad|unk|mask|bos|eos)>|<[a-z]+(_[a-z0-9]+)+>)$")
_BYTE_FALLBACK = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


def is_special(token: str) -> bool:
    """Whether `token` is a special token such as ``[CLS]``, ``</s>``, ``<|im_start|>`` or ``<start_of_turn>``.

    Args:
        token: One raw token string.

    Returns:
        True for a special token, False for ordinary text (HTML such as "<div>" included).
    """
    return bool(_SPECIAL.match(token))


def is_byte_fallback(token: str) -> bool:
    """Whether `token` is a sentencepiece byte such as "<0x0A>", which stands alone as a word.

    Args:
        token: One raw token string.

    Returns:
        True for a "<0xHH>" byte token.
    """
    return bool(_BYTE_FALLBACK.match(token))


def is_continuation(token: str) -> bool:
    """Whether `token` is a word-piece continuation such as "##ing" (a bare "##" is text, not a marker).

    Args:
        token: One raw token string.

    Returns:
        True when the token starts with "##" followed by at least one character.
    """
    return token.startswith("##") and len(token) > 2


def strip_continuation(token: str) -> str:
    """`token` without its word-piece "##" marker, so "##ing" reads "ing"; other tokens come back unchanged.

    Args:
        token: One raw token string.

    Returns:
        The token text without a leading continuation marker.
    """
    return token[2:] if is_continuation(token) else token


def marks_word_starts(tokens: Sequence[str]) -> bool:
    """Whether some token after the first starts with a space or a space marker (byte-level BPE, sentencepiece).

    Args:
        tokens: Raw token strings of one sequence.

    Returns:
        True when the tokenizer marks word starts; False for word-piece or unmarked tokens.
    """
    return any(t[:1].isspace() or t.startswith(SPACE_MARKERS) for t in tokens[1:] if not is_special(t))


def is_wordpiece(tokens: Sequence[str]) -> bool:
    """Whether `tokens` come from a word-piece (BERT) tokenizer, whose word starts carry no space.

    Args:
        tokens: Raw token strings of one sequence.

    Returns:
        True when there is a "##" continuation or a [CLS]/[SEP] token and no token marks a word start.
    """
    marked = any(is_continuation(t) for t in tokens) or any(t in WORDPIECE_SEPARATORS for t in tokens)
    return marked and not marks_word_starts(tokens)


def token_scheme(tokens: Sequence[str]) -> str:
    """How a token list marks word starts, so it can be shown as readable text.

    Args:
        tokens: Raw token strings of one sequence.

    Returns:
        "wordpiece", "byte-level", "sentencepiece" or "plain" (no markers: tokens are shown as they are).
    """
    if is_wordpiece(tokens):
        return "wordpiece"
    if any(("Ġ" in t or "Ċ" in t) for t in tokens):
        return "byte-level"
    if any("▁" in t for t in tokens):
        return "sentencepiece"
    return "plain"


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's byte-to-unicode table, to decode byte-level BPE pieces such as 'âĢĻ'."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, codes, strict=True)}


def normalise_token(token: str) -> str:
    """The text a token stands for: "▁" and "Ġ" become spaces, "Ċ" a newline, byte-level pieces their characters.

    A token is decoded as byte-level only when it holds one of the remapped characters U+0100..U+0143 and
    every character is in GPT-2's byte table, so plain Latin-1 text stays as it is.

    Args:
        token: One raw token string.

    Returns:
        The decoded text; a piece that is not valid UTF-8 on its own keeps its bytes spelt as characters.
    """
    token = token.replace("▁", " ")
    if any(0x100 <= ord(ch) <= 0x143 for ch in token):
        decoder = _byte_decoder()
        if all(ch in decoder for ch in token):
            try:
                return bytes(decoder[ch] for ch in token).decode("utf-8")
            except UnicodeDecodeError:
                pass
        for marker, text in _SIMPLE_MARKERS.items():
            token = token.replace(marker, text)
    return token


def visible_whitespace(text: str) -> str:
    """`text` with newlines shown as ↵ and tabs as ⇥ (carriage returns dropped), for line-based views.

    Args:
        text: Decoded token text.

    Returns:
        The text on one line.
    """
    return text.replace("\r\n", "\n").replace("\r", "").replace("\n", NEWLINE_MARK).replace("\t", TAB_MARK)


def display_tokens(tokens: Sequence[str]) -> list[str]:
    """Raw sub-word tokens as display strings that concatenate back into readable one-line text.

    Args:
        tokens: Raw token strings of one sequence.

    Returns:
        One display string per token: word starts keep their leading space, word-piece continuations lose
        "##", special tokens stay as they are, and newlines and tabs show as ↵ and ⇥.
    """
    scheme = token_scheme(tokens)
    out: list[str] = []
    for i, tok in enumerate(tokens):
        tok = str(tok)
        if scheme == "byte-level" and not is_special(tok):
            tok = normalise_token(tok)
        elif scheme == "sentencepiece" and not is_special(tok):
            tok = tok.replace("▁", " ")
        elif scheme == "wordpiece":
            if is_continuation(tok):
                tok = tok[2:]
            elif i > 0:
                tok = " " + tok
        out.append(visible_whitespace(tok))
    return out


def detokenize(tokens: Sequence[str]) -> str:
    """Readable text for a token list (for snippets shown to an LLM).

    Args:
        tokens: Raw token strings of one sequence.

    Returns:
        The display strings joined, without surrounding whitespace.
    """
    return "".join(display_tokens(tokens)).strip()


def _starts_word(token: str, prev: str, wordpiece: bool) -> bool:
    """Whether raw `token` begins a new word after `prev`."""
    if not token or any(is_special(t) or is_byte_fallback(t) for t in (token, prev)):
        return True
    if wordpiece:
        return not is_continuation(token)
    if token[0].isspace() or token.startswith(SPACE_MARKERS):
        return True
    punct_now, punct_prev = not token[0].isalnum(), not any(ch.isalnum() for ch in prev)
    return punct_now or punct_prev


def word_groups(tokens: Sequence[str]) -> list[list[int]]:
    """Positions grouped into words: a word-starting token plus its continuation pieces.

    Without word-start markers (word-piece or unmarked tokens) every token but a "##" continuation starts a
    word; with markers a token continues the word before it unless it starts with a space or either side is
    punctuation. Special tokens and "<0xHH>" bytes stand alone.

    Args:
        tokens: Raw token strings of one sequence.

    Returns:
        Lists of positions, one per word, in order; together they cover every position once.
    """
    wordpiece = not marks_word_starts(tokens)
    groups: list[list[int]] = []
    for i, tok in enumerate(tokens):
        if not groups or _starts_word(tok, tokens[i - 1], wordpiece):
            groups.append([i])
        else:
            groups[-1].append(i)
    return groups


def continues_word(before: str, token: str) -> bool:
    """Whether display `token` glues onto display `before` inside one word (no space, letters or digits both sides).

    Args:
        before: The display string of the token before.
        token: The display string of this token.

    Returns:
        True when the two belong to one word.
    """
    return bool(token) and token[0].isalnum() and bool(before) and before[-1].isalnum()


def same_run(before: str, token: str) -> bool:
    """Whether no whitespace (nor a shown line break or tab) separates display `token` from `before` ("</" "li" ">").

    Args:
        before: The display string of the token before.
        token: The display string of this token.

    Returns:
        True when the two are written without a gap.
    """
    breaks = (NEWLINE_MARK, TAB_MARK)
    return (
        bool(token)
        and bool(before)
        and not (token[0].isspace() or before[-1].isspace() or token[0] in breaks or before[-1] in breaks)
    )


def token_words(display: Sequence[str], glue: Callable[[str, str], bool] | None = None) -> list[str]:
    """The word each display token belongs to ("en" in " Berg"+"en" -> "Bergen"), one per token.

    Args:
        display: Display strings of one sequence (see `display_tokens`).
        glue: glue(before, token) says whether `token` continues the word of the token before it; the
            default (`continues_word`) joins letters and digits only.

    Returns:
        One word per token, stripped; a token that is all whitespace stays itself.
    """
    joins = glue or continues_word
    out = []
    for pos in range(len(display)):
        start, end = pos, pos + 1
        while start > 0 and joins(display[start - 1], display[start]):
            start -= 1
        while end < len(display) and joins(display[end - 1], display[end]):
            end += 1
        out.append("".join(display[start:end]).strip() or display[pos])
    return out
