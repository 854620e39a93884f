"""Small HTML helpers shared by the views (headers, number formats, legends)."""

from __future__ import annotations

import html

from ecco_sdk.render.tokens import text_html, token_parts


def esc(text: str) -> str:
    """HTML-escape any text that came from a caller.

    Args:
        text: Any text (converted with str).

    Returns:
        The escaped text, quotes included.
    """
    return html.escape(str(text), quote=True)


def _caption(caption_html: str, live: bool) -> str:
    """Muted caption; a live one is the single caption the enhancing script rewrites."""
    cls = "ecco-caption ecco-live-caption" if live else "ecco-caption"
    return f'<span class="{cls}">{caption_html}</span>' if caption_html else ""


def header(title: str, caption_html: str = "", extra_html: str = "", *, live: bool = False) -> str:
    """Title line of a visual with a caption and optional extras (legend, hint).

    Args:
        title: The title (escaped here).
        caption_html: Trusted caption markup.
        extra_html: Trusted markup after the caption, e.g. a legend.
        live: Whether the enhancing script rewrites this caption.

    Returns:
        The header's HTML.
    """
    caption = _caption(caption_html, live)
    return f'<div class="ecco-head"><span class="ecco-title">{esc(title)}</span>{caption}{extra_html}</div>'


def section(title: str, caption_html: str = "", *, live: bool = False) -> str:
    """Small uppercase heading that separates the parts of a visual.

    Args:
        title: The heading (escaped here).
        caption_html: Trusted caption markup.
        live: Whether the enhancing script rewrites this caption.

    Returns:
        The heading's HTML.
    """
    return f'<div class="ecco-section">{esc(title)} {_caption(caption_html, live)}</div>'


def inline_token(token: str) -> str:
    """A token shown inline in captions and tables: markers decoded, leading space kept, escaped.

    Args:
        token: One raw token string.

    Returns:
        The token's HTML.
    """
    parts = token_parts(token)
    return esc(parts.lead) + text_html(parts.text)


def percent(p: float, *, signed: bool = False) -> str:
    """Compact percentage label; tiny non-zero values read '<0.1%' rather than a misleading '0.0%'.

    Args:
        p: A fraction, e.g. 0.25 for 25%.
        signed: Prefix "+" or "−".

    Returns:
        The label, e.g. "25.0%".
    """
    value = 100 * p
    sign = ("+" if value > 0 else "−" if value < 0 else "") if signed else ""
    mag = abs(value)
    if 0 < mag < 0.1:
        return f"{sign}<0.1%"
    return f"{sign}{mag:.1f}%" if mag < 99.95 or mag > 100.05 else f"{sign}100%"


def ramp(colours: list[str], low: str, high: str) -> str:
    """Colour legend: a gradient bar between two labels.

    Args:
        colours: CSS colours of the gradient, low to high.
        low: The label on the left.
        high: The label on the right.

    Returns:
        The legend's HTML.
    """
    gradient = ",".join(colours)
    return (
        f'<span class="ecco-legend">{esc(low)}<span class="ecco-ramp" '
        f'style="background:linear-gradient(90deg,{gradient})"></span>{esc(high)}</span>'
    )
