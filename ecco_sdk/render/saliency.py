"""Primary-attribution (saliency) views: how much each earlier token mattered for a chosen output token."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ecco_sdk.checks import check_choice, check_index
from ecco_sdk.errors import InputError
from ecco_sdk.render._common import esc, header, inline_token, percent, ramp
from ecco_sdk.render._validate import float_array, token_list, token_list_like
from ecco_sdk.render.colours import NEGATIVE, POSITIVE, highlight_style, rgba, signed_style
from ecco_sdk.render.tokens import Decoration, TokenParts, token_tooltip, tokens_html
from ecco_sdk.render.visual import Visual, behaviour_js, new_id, wrap

STYLES = ("minimal", "detailed")


@dataclass(frozen=True)
class Cell:
    """Display of one position for one target: highlight, number label, bar and role flag ('t' target, 'a' after).

    Attributes:
        style: Inline CSS of the token's highlight ("" when none).
        label: The position's share of the total, e.g. "12.5%" ("–" for a missing score).
        bar: Inline CSS of the value bar (width and colour).
        flag: "t" for the target, "a" for a position after it, "" otherwise.
        share: The signed share of the total absolute score, or None.
    """

    style: str
    label: str
    bar: str
    flag: str
    share: float | None


def _targets(target_positions: Any, n_targets: int, n_tokens: int, n_positions: int) -> list[int]:
    """Validate target positions against the token count and the attribution width."""
    positions = token_list_like(target_positions, "target_positions")
    if len(positions) != n_targets:
        raise InputError(
            f"target_positions has {len(positions)} entries but attributions has {n_targets} rows: "
            "pass one target position per attribution row."
        )
    out = []
    for j, pos in enumerate(positions):
        p = check_index(pos, f"target_positions[{j}]", 1, n_tokens - 1)
        if p > n_positions:
            raise InputError(
                f"target_positions[{j}]={p} but attributions only has {n_positions} columns: it needs a value "
                f"for each of the {p} positions before the target."
            )
        out.append(p)
    return out


def _cells(row: np.ndarray, target: int, n_tokens: int, signed: bool) -> list[Cell]:
    """Colour (normalised to this target's largest magnitude), share of total and bar for every position."""
    valid = row[:target]
    finite = valid[np.isfinite(valid)]
    scale = float(np.abs(finite).max()) if finite.size else 0.0
    total = float(np.abs(finite).sum()) if finite.size else 0.0
    cells = []
    for i in range(n_tokens):
        if i >= target:
            cells.append(Cell("", "", "", "t" if i == target else "a", None))
            continue
        v = float(valid[i])
        if not np.isfinite(v):
            cells.append(Cell("", "–", "", "", None))
            continue
        strength = v / scale if scale > 0 else 0.0
        share = v / total if total > 0 else 0.0
        colour = NEGATIVE if v < 0 else POSITIVE
        style = signed_style(strength) if signed else highlight_style(POSITIVE, strength)
        bar = f"width:{100 * abs(strength):.1f}%;background:{colour}"
        cells.append(Cell(style, percent(share, signed=signed), bar, "", share))
    return cells


def _caption(tokens: list[str], target: int) -> str:
    """Caption naming the explained token and its position."""
    return f"for <b>{inline_token(tokens[target])}</b> at position {target}"


def _decorator(
    tokens: list[str], n_in: int, cells: list[Cell], targets: list[int], detailed: bool
) -> Callable[[int, TokenParts], Decoration]:
    """Per-token decoration for one target's cells (shared by the static render and the script's state)."""
    pickable = set(targets) if detailed else set()

    def decorate(i: int, _parts: TokenParts) -> Decoration:
        """Role classes, highlight, tooltip and (detailed) value with bar."""
        cell = cells[i]
        classes = ["ecco-input" if i < n_in else "ecco-gen"]
        classes += {"t": ["ecco-target"], "a": ["ecco-after"]}.get(cell.flag, [])
        extra = f"share {cell.label}" if cell.share is not None else ("target" if cell.flag == "t" else "")
        if i in pickable and cell.flag != "t":
            extra = (extra + " · " if extra else "") + "hover/click to explain this token"
        below = ""
        if detailed:
            label = "target" if cell.flag == "t" else cell.label
            below = (
                f'<span class="ecco-val">{esc(label)}</span>'
                f'<span class="ecco-vbar"><span style="{esc(cell.bar)}"></span></span>'
            )
        return Decoration(tuple(classes), cell.style, token_tooltip(tokens[i], i, extra), below=below)

    return decorate


def _legend(signed: bool) -> str:
    """Colour key for the attribution scale."""
    if signed:
        stops = [rgba(NEGATIVE, 1), rgba(NEGATIVE, 0.1), "transparent", rgba(POSITIVE, 0.1), rgba(POSITIVE, 1)]
        return ramp(stops, "negative", "positive")
    return ramp([rgba(POSITIVE, 0.1), rgba(POSITIVE, 1)], "low", "high")


def _quality(n_steps: int | None, error_estimate: float | None) -> str:
    """A note with the integration steps used and the error estimate, when the attribution has them."""
    parts = []
    if n_steps is not None:
        parts.append(f"{int(check_index(n_steps, 'n_steps', 1, 10**9))} steps")
    if error_estimate is not None:
        est = float(error_estimate)
        if not np.isfinite(est) or est < 0:
            raise InputError(f"error_estimate must be a finite number >= 0, got {error_estimate!r}")
        parts.append(f"estimated error {est:.2g} (L1 of the shares, 0..2)")
    if not parts:
        return ""
    return f'<span class="ecco-hint" data-ecco-quality>{esc(" · ".join(parts))}</span>'


def saliency_view(
    tokens: Sequence[str],
    n_input_tokens: int,
    attributions: Any,
    target_positions: Sequence[int],
    style: str = "minimal",
    method: str = "",
    target: int | None = None,
    n_steps: int | None = None,
    error_estimate: float | None = None,
) -> Visual:
    """Show which earlier tokens an output token depended on (minimal highlight or detailed numbers).

    Args:
        tokens: every token of the run.
        n_input_tokens: how many of them are the prompt.
        attributions: (targets, positions) scores, NaN where a position cannot matter.
        target_positions: the position of each row's target token.
        style: 'minimal' (highlight) or 'detailed' (numbers and bars, pick a target).
        method: the method's name for the title.
        target: the row shown first (default: the last).
        n_steps: integration steps used (integrated gradients), shown under the title.
        error_estimate: integrated gradients' estimated error (largest L1 distance between normalised
            absolute attributions and the exact integral's), shown under the title.

    Returns:
        The Visual.
    """
    toks = token_list(tokens)
    n_in = check_index(n_input_tokens, "n_input_tokens", 0, len(toks))
    check_choice(style, "style", STYLES)
    attr = float_array(attributions, "attributions", 2, allow_nan=True)
    n_targets, n_positions = attr.shape
    if n_positions > len(toks):
        raise InputError(
            f"attributions has {n_positions} columns but there are only {len(toks)} tokens: "
            "pass one column per token position."
        )
    targets = _targets(target_positions, n_targets, len(toks), n_positions)
    sel = n_targets - 1 if target is None else check_index(target, "target", 0, n_targets - 1)
    signed = any((attr[j, : targets[j]] < 0).any() for j in range(n_targets))
    all_cells = [_cells(attr[j], targets[j], len(toks), signed) for j in range(n_targets)]
    detailed = style == "detailed"

    root_id = new_id()
    decorate = _decorator(toks, n_in, all_cells[sel], targets, detailed)
    title = "Input attribution" + (f" — {method}" if method else "")
    hint = '<span class="ecco-hint">hover or click an underlined output token to explain it</span>'
    extra = _legend(signed) + _quality(n_steps, error_estimate) + (hint if detailed else "")
    body = header(title, _caption(toks, targets[sel]), extra, live=True)
    text_cls = "ecco-text ecco-detailed" if detailed else "ecco-text"
    body += f'<div class="{text_cls}" data-ecco-text="main">{tokens_html(toks, decorate)}</div>'
    if not detailed:
        return Visual(wrap(root_id, "saliency", body), title=title, kind="saliency")
    state = {
        "kind": "saliency",
        "selected": sel,
        "targets": [
            {
                "pos": targets[j],
                "caption": _caption(toks, targets[j]),
                "cells": [[c.style, "target" if c.flag == "t" else c.label, c.bar, c.flag] for c in all_cells[j]],
            }
            for j in range(n_targets)
        ],
    }
    html = wrap(root_id, "saliency", body, state=state)
    return Visual(html, title=title, script=behaviour_js(root_id), kind="saliency")
