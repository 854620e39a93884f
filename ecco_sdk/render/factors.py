"""NMF factor explorer: one row per factor (swatch, sparkline, top neurons, explanation) and highlighted text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ecco_sdk.checks import check_index
from ecco_sdk.errors import InputError
from ecco_sdk.render._common import esc, header, inline_token, section
from ecco_sdk.render._validate import float_array, token_list, token_list_like
from ecco_sdk.render.colours import factor_colour, highlight_style
from ecco_sdk.render.sparkline import sparkline_svg
from ecco_sdk.render.tokens import Decoration, TokenParts, token_tooltip, tokens_html
from ecco_sdk.render.visual import Visual, behaviour_js, new_id, wrap

Neuron = tuple[int, int, float]
_MAX_CHIPS = 8


def _neurons(top_neurons: Any, k: int) -> list[list[Neuron]]:
    """Validate the per-factor lists of (layer, neuron, weight) tuples."""
    if top_neurons is None:
        return [[] for _ in range(k)]
    lists = token_list_like(top_neurons, "top_neurons")
    if len(lists) != k:
        raise InputError(f"top_neurons has {len(lists)} lists but there are {k} factors: pass one list per factor.")
    out = []
    for f, items in enumerate(lists):
        row = []
        for item in token_list_like(items, f"top_neurons[{f}]"):
            if not isinstance(item, Sequence | np.ndarray) or len(item) != 3:
                raise InputError(f"top_neurons[{f}] entries must be (layer, neuron, weight) tuples, got {item!r}.")
            row.append((int(item[0]), int(item[1]), float(item[2])))
        out.append(row)
    return out


def _explanations(explanations: Any, k: int) -> list[str]:
    """Validate the optional per-factor explanation texts."""
    if explanations is None:
        return [""] * k
    texts = token_list_like(explanations, "explanations")
    if len(texts) != k:
        raise InputError(f"explanations has {len(texts)} entries but there are {k} factors: pass one per factor.")
    return ["" if t is None else str(t).strip() for t in texts]


def _normalised(factors: Any, n_tokens: int) -> np.ndarray:
    """Check shape and sign, then scale each factor to a maximum of 1 (colour is relative per factor)."""
    arr = float_array(factors, "factors", 2)
    if arr.shape[1] != n_tokens:
        raise InputError(
            f"factors has {arr.shape[1]} positions but there are {n_tokens} tokens: pass shape (k, {n_tokens})."
        )
    if (arr < -1e-9).any():
        raise InputError("factors must be non-negative (NMF output); clip or shift negative values first.")
    arr = np.clip(arr, 0.0, None)
    peak = arr.max(axis=1, keepdims=True)
    return np.divide(arr, peak, out=np.zeros_like(arr), where=peak > 0)


def _info(f: int, neurons: list[Neuron], explanation: str, tokens: list[str], row: np.ndarray) -> str:
    """Neuron chips and explanation of one factor (its strongest tokens when neither is given)."""
    parts = []
    if neurons:
        chips = [
            f'<span class="ecco-chip" title="layer {layer}, neuron {n}, weight {w:.4g}">L{layer} · N{n} '
            f"<b>{w:.2f}</b></span>"
            for layer, n, w in neurons[:_MAX_CHIPS]
        ]
        more = len(neurons) - _MAX_CHIPS
        chips += [f'<span class="ecco-chip">+{more} more</span>'] if more > 0 else []
        parts.append(f'<span class="ecco-neurons">{"".join(chips)}</span>')
    if explanation:
        parts.append(f'<span class="ecco-expl">{esc(explanation)}</span>')
    if not parts:
        top = [i for i in np.argsort(-row, kind="stable")[:4] if row[i] > 0]
        shown = "".join(f'<span class="ecco-chip ecco-tchip">{inline_token(tokens[i])}</span>' for i in top)
        parts.append(f'<span class="ecco-neurons"><span class="ecco-none">strongest on</span>{shown or "none"}</span>')
    return f'<span class="ecco-finfo">{"".join(parts)}</span>'


def _row(f: int, selected: int, norm: np.ndarray, neurons: list[Neuron], expl: str, tokens: list[str]) -> str:
    """One factor row: colour swatch, name, sparkline over positions and its info."""
    colour = factor_colour(f)
    sel = " ecco-sel" if f == selected else ""
    spark = sparkline_svg(norm[f], 120, 24, colour=colour, label=f"Factor {f + 1} over {norm.shape[1]} positions")
    return (
        f'<div class="ecco-frow{sel}" data-f="{f}" aria-pressed="{str(f == selected).lower()}">'
        f'<span class="ecco-swatch" style="background:{colour}"></span>'
        f'<span class="ecco-fname">Factor {f + 1}</span>{spark}{_info(f, neurons, expl, tokens, norm[f])}</div>'
    )


def _factor_styles(norm: np.ndarray, f: int) -> list[str]:
    """Highlight style of every token for factor f."""
    return [highlight_style(factor_colour(f), float(v)) for v in norm[f]]


def _caption(f: int) -> str:
    """Caption of the selected-factor text."""
    return f'<span class="ecco-key" style="background:{factor_colour(f)}"></span>Factor {f + 1}'


def factors_view(
    tokens: Sequence[str],
    factors: Any,
    top_neurons: Sequence[Sequence[Neuron]] | None = None,
    explanations: Sequence[str | None] | None = None,
    selected: int | None = None,
) -> Visual:
    """Explore NMF factors of neuron activity: which tokens each factor fires on and what drives it.

    Args:
        tokens: One token per position.
        factors: (n_factors, positions) non-negative activations.
        top_neurons: Per factor, its strongest (layer, neuron, weight) tuples (None: not shown).
        explanations: Per factor, an explanation or None (None: not shown).
        selected: The factor shown in the "Selected factor" text and its row (None: the first).

    Returns:
        A Visual.
    """
    toks = token_list(tokens)
    norm = _normalised(factors, len(toks))
    k = norm.shape[0]
    neurons, expl = _neurons(top_neurons, k), _explanations(explanations, k)
    sel = 0 if selected is None else check_index(selected, "selected", 0, k - 1)
    dominant = norm.argmax(axis=0)
    sel_styles = _factor_styles(norm, sel)

    def deco_all(i: int, _p: TokenParts) -> Decoration:
        """Colour of the strongest factor, opacity by its strength."""
        f, v = int(dominant[i]), float(norm[dominant[i], i])
        tip = token_tooltip(toks[i], i, f"strongest: factor {f + 1} ({v:.2f})" if v > 0 else "no factor")
        return Decoration(style=highlight_style(factor_colour(f), v), title=tip)

    def deco_sel(i: int, _p: TokenParts) -> Decoration:
        """Highlight by the selected factor; tooltip lists every factor."""
        tip = token_tooltip(toks[i], i, " · ".join(f"F{f + 1} {norm[f, i]:.2f}" for f in range(k)))
        return Decoration(style=sel_styles[i], title=tip)

    root_id = new_id()
    hint = '<span class="ecco-hint">click a factor row to highlight its tokens below</span>'
    body = header("Neuron activation factors", esc(f"{k} factors over {len(toks)} tokens"), hint)
    body += '<div class="ecco-frows">' + "".join(_row(f, sel, norm, neurons[f], expl[f], toks) for f in range(k))
    body += "</div>" + section("All factors", "each token takes the colour of its strongest factor")
    body += f'<div class="ecco-text" data-ecco-text="all">{tokens_html(toks, deco_all)}</div>'
    body += section("Selected factor", _caption(sel), live=True)
    body += f'<div class="ecco-text" data-ecco-text="factor">{tokens_html(toks, deco_sel)}</div>'
    state = {
        "kind": "factors",
        "selected": sel,
        "factors": [
            {"caption": _caption(f), "cells": [[s, "", "", ""] for s in _factor_styles(norm, f)]} for f in range(k)
        ],
    }
    html = wrap(root_id, "factors", body, state=state)
    return Visual(html, title="Neuron activation factors", script=behaviour_js(root_id), kind="factors")
