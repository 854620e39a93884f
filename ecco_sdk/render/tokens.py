"""Readable, escaped token display shared by every view: visible gaps, joined subwords, ↵ and ⇥ glyphs."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

_SIMPLE_MARKERS = {"Ġ": " ", "Ċ": "\n", "ĉ": "\t", "▁": " "}
_SPECIAL = re.compile(r"^(<\|[^|<>]{1,40}\|>|\[[A-Z_]{2,10}\]|</?s>|<(pad|unk|mask|bos|eos)>)$")
_GLYPHS = {"\n": "↵", "\t": "⇥", "\r": "␍"}
MAX_BREAKS = 2


@dataclass(frozen=True)
class TokenParts:
    """Display pieces of one token, so every view lays out gaps, glyphs and line breaks the same way."""

    lead: str
    text: str
    breaks: int
    continuation: bool = False
    special: bool = False


@dataclass
class Decoration:
    """What a view adds to one token element: classes, highlight style, tooltip and content under the text."""

    classes: tuple[str, ...] = ()
    style: str = ""
    title: str = ""
    attrs: dict[str, str] = field(default_factory=dict)
    below: str = ""


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
    """Turn tokenizer markers (Ġ, Ċ, ▁, byte-level pieces) into the text they stand for."""
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


def is_wordpiece(tokens: Sequence[str]) -> bool:
    """Detect WordPiece (BERT) sequences, whose word starts carry no space and need a gap added."""
    marked = any(t.startswith("##") and len(t) > 2 for t in tokens) or any(t in ("[CLS]", "[SEP]") for t in tokens)
    return marked and not any(t[:1] in (" ", "Ġ", "▁") for t in tokens)


def token_parts(token: str, *, wordpiece: bool = False, first: bool = False) -> TokenParts:
    """Split a raw token into its leading gap, visible text and following line breaks."""
    special = bool(_SPECIAL.match(token))
    text = token if special else normalise_token(token)
    lead = ""
    continuation = False
    if wordpiece and not special and text.startswith("##") and len(text) > 2:
        text, continuation = text[2:], True
    elif wordpiece and not first:
        lead = " "
    if text and text.strip(" ") == "":
        return TokenParts(lead=lead, text="␣" * len(text), breaks=0, continuation=continuation, special=special)
    stripped = text.lstrip(" ")
    lead += text[: len(text) - len(stripped)]
    breaks = min(stripped.count("\n"), MAX_BREAKS)
    return TokenParts(lead=lead, text=stripped, breaks=breaks, continuation=continuation, special=special)


def text_html(text: str) -> str:
    """Escape token text and show newlines, tabs and empty tokens as muted glyphs."""
    if not text:
        return '<span class="ecco-glyph">∅</span>'
    out = html.escape(text, quote=True)
    for raw, glyph in _GLYPHS.items():
        out = out.replace(raw, f'<span class="ecco-glyph">{glyph}</span>')
    return out


def token_label(token: str, max_len: int = 18) -> str:
    """Plain one-line label of a token for figure axes and tooltips (glyphs for whitespace, shortened)."""
    text = normalise_token(token)
    for raw, glyph in _GLYPHS.items():
        text = text.replace(raw, glyph)
    if text.strip() == "":
        text = "␣" * len(text) if text else "∅"
    return text if len(text) <= max_len else text[: max_len - 1] + "…"


def token_tooltip(token: str, position: int, extra: str = "") -> str:
    """Hover text for a token element: its exact string, position and an optional value."""
    shown = repr(normalise_token(token))
    return f"{shown} · position {position}" + (f" · {extra}" if extra else "")


def _attrs_html(attrs: dict[str, str]) -> str:
    """Render extra attributes, escaped."""
    return "".join(f' {k}="{html.escape(v, quote=True)}"' for k, v in attrs.items())


def token_element(index: int, parts: TokenParts, deco: Decoration) -> str:
    """One token element: outer box (layout, tooltip) holding the highlighted text and optional content under it."""
    classes = ["ecco-tok", *deco.classes]
    if parts.continuation:
        classes.append("ecco-cont")
    if parts.special:
        classes.append("ecco-special")
    title = f' title="{html.escape(deco.title, quote=True)}"' if deco.title else ""
    style = f' style="{html.escape(deco.style, quote=True)}"' if deco.style else ""
    return (
        f'<span class="{" ".join(classes)}" data-i="{index}"{title}{_attrs_html(deco.attrs)}>'
        f'<span class="ecco-tt"{style}>{text_html(parts.text)}</span>{deco.below}</span>'
    )


def tokens_html(tokens: Sequence[str], decorate: Callable[[int, TokenParts], Decoration]) -> str:
    """Lay out a token sequence as one flowing text; `decorate` adds each view's styling per token."""
    wordpiece = is_wordpiece(tokens)
    out: list[str] = []
    for i, token in enumerate(tokens):
        parts = token_parts(token, wordpiece=wordpiece, first=i == 0)
        if parts.lead:
            out.append(f'<span class="ecco-gap">{html.escape(parts.lead)}</span>')
        out.append(token_element(i, parts, decorate(i, parts)))
        out.append("<br>" * parts.breaks)
    return "".join(out)
