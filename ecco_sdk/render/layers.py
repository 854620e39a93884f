"""Layers x positions heatmaps: layer attributions of one target, and one token's attention per layer or head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.colors import LinearSegmentedColormap, Normalize
from matplotlib.figure import Figure

from ecco_sdk.errors import InputError
from ecco_sdk.render._validate import float_array, label_list
from ecco_sdk.render.figures import PROB_CMAP, _figure, _heatmap, _titled, figure_to_html
from ecco_sdk.render.tokens import token_label
from ecco_sdk.render.visual import Visual

SIGNED_CMAP = LinearSegmentedColormap.from_list(
    "ecco_signed", ["#2f5fb3", "#a9c1ea", "#f7f7f7", "#f2a99b", "#c2362b"]
).with_extremes(bad="#eceef2")


def _cell_text(v: float, scale: float) -> str:
    """A short value label relative to the largest magnitude (so tiny and large maps read alike)."""
    if np.isnan(v):
        return ""
    r = v / scale if scale else 0.0
    return f"{r:+.2f}" if abs(r) >= 0.005 else "0"


def layer_heatmap_figure(
    scores: Any,
    tokens: Sequence[str],
    row_labels: Sequence[str],
    title: str,
    *,
    signed: bool = True,
    ylabel: str = "layer",
) -> Figure:
    """A rows x positions heatmap: signed scores on a diverging scale around 0, or non-negative ones on a ramp.

    Args:
        scores: (rows, positions) values; NaN cells (positions that cannot matter) are drawn blank.
        tokens: one label per position.
        row_labels: one label per row (e.g. 'emb', '1', ... or 'head 0', ...).
        title: the figure title.
        signed: diverging colours centred on 0 (True) or a 0..max ramp (False).
        ylabel: the row axis label.

    Returns:
        A matplotlib Figure (Agg canvas, outside pyplot).
    """
    values = float_array(scores, "scores", 2, allow_nan=True)
    if np.isnan(values).all():
        raise InputError("scores are all NaN: no position can influence this target; pick a later target.")
    rows = label_list(row_labels, "row_labels", values.shape[0])
    cols = [token_label(t) for t in label_list(tokens, "tokens", values.shape[1])]
    scale = float(np.nanmax(np.abs(values))) or 1.0
    annotate = values.size <= 600
    texts = [[_cell_text(v, scale) if annotate else "" for v in row] for row in values]
    norm = Normalize(-scale, scale) if signed else Normalize(0.0, scale)
    cmap = SIGNED_CMAP if signed else PROB_CMAP
    fig = _figure(1.8 + 0.62 * values.shape[1] + 1.1, 1.5 + 0.3 * values.shape[0])
    ax = _heatmap(fig, values, texts, cmap=cmap, norm=norm, rows=rows, cols=cols, fontsize=7.5)
    bar = fig.colorbar(ax._ecco_image, ax=ax, shrink=min(1.0, 6 / max(values.shape[0], 1) + 0.3), pad=0.02)
    bar.set_label("attribution (signed)" if signed else "weight")
    _titled(fig, ax, title, "position", ylabel)
    return fig


def layer_attribution_figure(attribution: Any, aggregation: str = "sum") -> Figure:
    """The layers x positions heatmap of a LayerAttribution (positions up to the target's prediction).

    Args:
        attribution: A LayerAttribution (from `OutputSeq.layer_attributions`).
        aggregation: "sum" (signed) or "l2" (magnitude) over the hidden dimensions.

    Returns:
        A matplotlib Figure.
    """
    scores = attribution.scores(aggregation)
    end = int(attribution.target_position)
    labels = ["emb" if r == 0 else str(int(r)) for r in attribution.layers]
    target = token_label(attribution.tokens[end])
    title = f"{attribution.method} ({attribution.target_kind}) of {target!s} at position {end}, by layer"
    return layer_heatmap_figure(scores[:, :end], attribution.tokens[:end], labels, title, signed=aggregation == "sum")


def layer_attribution_view(attribution: Any, aggregation: str = "sum") -> Visual:
    """The same heatmap as self-contained HTML (an embedded PNG), for notebooks and the app.

    Args:
        attribution: A LayerAttribution.
        aggregation: "sum" (signed) or "l2" (magnitude) over the hidden dimensions.

    Returns:
        A Visual holding the image.
    """
    return figure_to_html(layer_attribution_figure(attribution, aggregation))


def token_attention_figure(attention: Any, layer: int | None = None) -> Figure:
    """One token's attention: layers x positions (mean over heads), or heads x positions at one layer.

    Args:
        attention: A TokenAttention (from `ecco_sdk.attention.token_attention`).
        layer: A block number 1..L to show by head (None: every layer, mean over heads).

    Returns:
        A matplotlib Figure.
    """
    pos = int(attention.position)
    tokens = attention.tokens[: pos + 1]
    if layer is None:
        values = attention.per_layer()[:, : pos + 1]
        labels = [str(i + 1) for i in range(values.shape[0])]
        title = f"attention of {token_label(attention.tokens[pos])} (position {pos}), mean over heads"
        return layer_heatmap_figure(values, tokens, labels, title, signed=False)
    values = attention.per_head(layer)[:, : pos + 1]
    labels = [str(h) for h in range(values.shape[0])]
    title = f"attention of {token_label(attention.tokens[pos])} (position {pos}) at block {layer}, by head"
    return layer_heatmap_figure(values, tokens, labels, title, signed=False, ylabel="head")
