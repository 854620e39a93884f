"""Readable, escaped token display shared by every view: visible gaps, joined subwords, ↵ and ⇥ glyphs."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ecco_sdk.tokens import NEWLINE_MARK, TAB_MARK, is_continuation, is_special, is_wordpiece, normalise_token

_GLYPHS = {"\n": NEWLINE_MARK, "\t": TAB_MARK, "\r": "␍"}
MAX_BREAKS = 2


@dataclass(frozen=True)
class TokenParts:
    """Display pieces of one token, so every view lays out gaps, glyphs and line breaks the same way.

    Attributes:
        lead: Whitespace shown before the token (its leading space, or the gap word-piece text needs).
        text: The visible text, without the leading whitespace.
        breaks: Line breaks to draw after the token (at most MAX_BREAKS).
        continuation: Whether the token is a "##" word-piece continuation.
        special: Whether the token is a special token such as [CLS] (see `ecco_sdk.tokens.is_special`).
    """

    lead: str
    text: str
    breaks: int
    continuation: bool = False
    special: bool = False


@dataclass
class Decoration:
    """What a view adds to one token element: classes, highlight style, tooltip and content under the text.

    Attributes:
        classes: Extra CSS classes of the element.
        style: Inline CSS of the highlighted text, e.g. from `highlight_style`.
        title: The hover tooltip.
        attrs: Extra attributes (escaped when rendered).
        below: Trusted HTML shown under the text, e.g. a value and a bar.
    """

    classes: tuple[str, ...] = ()
    style: str = ""
    title: str = ""
    attrs: dict[str, str] = field(default_factory=dict)
    below: str = ""


def token_parts(token: str, *, wordpiece: bool = False, first: bool = False) -> TokenParts:
    """Split a raw token into its leading gap, visible text and following line breaks.

    Args:
        token: One raw token string.
        wordpiece: Whether the sequence is word-piece (see `ecco_sdk.tokens.is_wordpiece`), whose word starts
            need a gap added.
        first: Whether this is the sequence's first token (no gap before it).

    Returns:
        The token's TokenParts.
    """
    special = is_special(token)
    text = token if special else normalise_token(token)
    lead = ""
    continuation = False
    if wordpiece and not special and is_continuation(text):
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
    """Escape token text and show newlines, tabs and empty tokens as muted glyphs.

    Args:
        text: Decoded token text.

    Returns:
        Escaped HTML.
    """
    if not text:
        return '<span class="ecco-glyph">∅</span>'
    out = html.escape(text, quote=True)
    for raw, glyph in _GLYPHS.items():
        out = out.replace(raw, f'<span class="ecco-glyph">{glyph}</span>')
    return out


def token_label(token: str, max_len: int = 18) -> str:
    """Plain one-line label of a token for figure axes and tooltips (glyphs for whitespace, shortened).

    Args:
        token: One raw token string.
        max_len: The most characters returned; longer labels end in "…".

    Returns:
        The label (not HTML-escaped).
    """
    text = normalise_token(token)
    for raw, glyph in _GLYPHS.items():
        text = text.replace(raw, glyph)
    if text.strip() == "":
        text = "␣" * len(text) if text else "∅"
    return text if len(text) <= max_len else text[: max_len - 1] + "…"


def token_tooltip(token: str, position: int, extra: str = "") -> str:
    """Hover text for a token element: its exact string, position and an optional value.

    Args:
        token: One raw token string.
        position: The token's position in the sequence.
        extra: A value to add, e.g. "score 0.42".

    Returns:
        The tooltip text (not HTML-escaped).
    """
    shown = repr(normalise_token(token))
    return f"{shown} · position {position}" + (f" · {extra}" if extra else "")


def _attrs_html(attrs: dict[str, str]) -> str:
    """Render extra attributes, escaped."""
    return "".join(f' {k}="{html.escape(v, quote=True)}"' for k, v in attrs.items())


def token_element(index: int, parts: TokenParts, deco: Decoration) -> str:
    """One token element: outer box (layout, tooltip) holding the highlighted text and optional content under it.

    Args:
        index: The token's position, written as data-i.
        parts: The token's display pieces.
        deco: What the view adds to the element.

    Returns:
        The element's HTML.
    """
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
    """Lay out a token sequence as one flowing text; `decorate` adds each view's styling per token.

    Args:
        tokens: Raw token strings of one sequence.
        decorate: decorate(position, parts) returns the Decoration of each token.

    Returns:
        The HTML of the whole sequence.
    """
    wordpiece = is_wordpiece(tokens)
    out: list[str] = []
    for i, token in enumerate(tokens):
        parts = token_parts(token, wordpiece=wordpiece, first=i == 0)
        if parts.lead:
            out.append(f'<span class="ecco-gap">{html.escape(parts.lead)}</span>')
        out.append(token_element(i, parts, decorate(i, parts)))
        out.append("<br>" * parts.breaks)
    return "".join(out)
