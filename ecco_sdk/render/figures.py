"""Matplotlib figures (Agg, no pyplot state) for layer-wise views: rankings, layer predictions, similarity."""

from __future__ import annotations

import base64
import io
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, LinearSegmentedColormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.text import Text

from ecco_sdk.errors import InputError
from ecco_sdk.render._common import esc
from ecco_sdk.render._validate import float_array, label_list, token_list, token_list_like
from ecco_sdk.render.colours import relative_luminance
from ecco_sdk.render.tokens import token_label
from ecco_sdk.render.visual import Visual, new_id, wrap

from .colours import factor_colour

RANK_CMAP = LinearSegmentedColormap.from_list("ecco_rank", ["#163a8a", "#2f6bd0", "#7fa9ec", "#d4e3f8", "#f7f9fc"])
PROB_CMAP = LinearSegmentedColormap.from_list("ecco_prob", ["#fbfaff", "#d9cff7", "#9a7fe6", "#6741d9", "#3b1f96"])
SIM_CMAP = LinearSegmentedColormap.from_list("ecco_sim", ["#f7fbfb", "#bfe3e0", "#4fb0aa", "#137a84", "#0b3d57"])

_MAX_W, _MAX_H = 24.0, 22.0


def _figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas, outside pyplot, so nothing global is opened or shown."""
    fig = Figure(figsize=(min(width, _MAX_W), min(height, _MAX_H)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _plain(texts: Sequence[Text], *, in_layout: bool = True) -> None:
    """Show token text literally ('$' must not start math mode); cell texts stay out of layout for speed."""
    for t in texts:
        t.set_parse_math(False)
        t.set_in_layout(in_layout)


def _ink(rgba: tuple[float, float, float, float]) -> str:
    """Cell text colour that contrasts with the cell colour."""
    rgb = (round(rgba[0] * 255), round(rgba[1] * 255), round(rgba[2] * 255))
    return "#111316" if relative_luminance(rgb) > 0.36 else "#ffffff"


def _rank_text(rank: float) -> str:
    """Short rank label that fits a cell (1, 42, 1.2k, 37k, 1.5M)."""
    r = round(rank)
    if r < 1000:
        return str(r)
    if r < 10_000:
        return f"{r / 1000:.1f}k"
    return f"{r // 1000}k" if r < 1_000_000 else f"{r / 1e6:.1f}M"


def _prob_text(p: float) -> str:
    """Probability label: whole percents when large, one decimal when small, '<0.1%' rather than '0%'."""
    if p >= 0.095:
        return f"{p:.0%}"
    return f"{p:.1%}" if p >= 0.001 else "<0.1%"


def _heatmap(
    fig: Figure,
    values: np.ndarray,
    texts: list[list[str]] | list[list[tuple[str, str]]],
    *,
    cmap: Colormap,
    norm: Normalize,
    rows: list[str],
    cols: list[str],
    fontsize: float,
) -> Any:
    """Draw an annotated heatmap (rows top to bottom) and return its axes."""
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    colours = image.to_rgba(values)
    cells = ((r, c, text) for r, row in enumerate(texts) for c, text in enumerate(row))
    for r, c, text in cells:
        if isinstance(text, tuple):
            left, right = text
            ink = _ink(colours[r, c])
            t1 = ax.text(c - 0.44, r, left, ha="left", va="center", fontsize=fontsize, color=ink, fontweight="bold")
            t2 = ax.text(c + 0.44, r, right, ha="right", va="center", fontsize=fontsize - 1, color=ink)
            _plain([t1, t2], in_layout=False)
        elif text:
            t = ax.text(c, r, text, ha="center", va="center", fontsize=fontsize, color=_ink(colours[r, c]))
            _plain([t], in_layout=False)
    ax.set_yticks(range(len(rows)), rows, fontsize=9)
    rotate = max((len(c) for c in cols), default=0) > 6
    ax.set_xticks(range(len(cols)), cols, fontsize=9, rotation=40 if rotate else 0, ha="right" if rotate else "center")
    _plain([*ax.get_xticklabels(), *ax.get_yticklabels()])
    ax.tick_params(length=0)
    ax.hlines(np.arange(len(rows) + 1) - 0.5, -0.5, len(cols) - 0.5, colors="white", linewidth=1)
    ax.vlines(np.arange(len(cols) + 1) - 0.5, -0.5, len(rows) - 0.5, colors="white", linewidth=1)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax._ecco_image = image  # kept for the colour bar
    return ax


def _titled(fig: Figure, ax: Any, title: str, xlabel: str, ylabel: str) -> None:
    """Set title and axis labels literally (no math-mode parsing)."""
    _plain([ax.set_title(title, fontsize=12, loc="left", pad=10), ax.set_xlabel(xlabel), ax.set_ylabel(ylabel)])


def _rank_figure(rankings: Any, layer_labels: Any, col_labels: Any, title: str, xlabel: str) -> Figure:
    """Shared body of the two rankings figures: log-coloured ranks with the number in each cell."""
    ranks = float_array(rankings, "rankings", 2)
    if (ranks < 1).any():
        raise InputError("rankings must be ranks starting at 1 (1 = the top prediction); add 1 to 0-based ranks.")
    n_layers, n_cols = ranks.shape
    rows = label_list(layer_labels, "layer_labels", n_layers)
    cols = [token_label(t) for t in label_list(col_labels, "token labels", n_cols)]
    fig = _figure(1.7 + 0.64 * n_cols + 1.1, 1.5 + 0.3 * n_layers)
    texts = [[_rank_text(v) for v in row] for row in ranks]
    norm = LogNorm(vmin=1, vmax=max(10.0, float(ranks.max())))
    ax = _heatmap(fig, ranks, texts, cmap=RANK_CMAP, norm=norm, rows=rows, cols=cols, fontsize=8.5)
    if n_layers > 12:
        ax.tick_params(labeltop=True)
        _plain(ax.get_xticklabels(which="both"))
    bar = fig.colorbar(ax._ecco_image, ax=ax, shrink=min(1.0, 6 / max(n_layers, 1) + 0.3), pad=0.02)
    bar.set_label("rank (log scale, 1 = top)")
    bar.ax.invert_yaxis()
    _titled(fig, ax, title, xlabel, "layer")
    return fig


def rankings_figure(
    rankings: Any,
    layer_labels: Sequence[str],
    token_labels: Sequence[str],
    title: str = "Rank of each output token at each layer",
) -> Figure:
    """Show how each layer ranked the token the model finally output (rank 1 = best), as in ecco's rankings view.

    Args:
        rankings: (layers, tokens) ranks, e.g. `Rankings.ranks`.
        layer_labels: One label per layer (row).
        token_labels: One label per output token (column).
        title: The figure title.

    Returns:
        A matplotlib Figure.
    """
    return _rank_figure(rankings, layer_labels, token_labels, title, "output token")


def rankings_watch_figure(
    rankings: Any,
    layer_labels: Sequence[str],
    watch_labels: Sequence[str],
    title: str = "Rank of watched tokens at each layer",
) -> Figure:
    """Compare how each layer ranked a few chosen candidate tokens (e.g. ' is' vs ' are').

    Args:
        rankings: (layers, watched tokens) ranks, e.g. `RankingsWatch.ranks`.
        layer_labels: One label per layer (row).
        watch_labels: One label per watched token (column).
        title: The figure title.

    Returns:
        A matplotlib Figure.
    """
    return _rank_figure(rankings, layer_labels, watch_labels, title, "watched token")


def layer_predictions_figure(
    pred_tokens: Sequence[Sequence[str]],
    pred_probs: Any,
    layer_labels: Sequence[str],
    title: str = "Top predictions at each layer",
) -> Figure:
    """Show each layer's top-k next-token guesses with their probabilities (logit lens), tokens written in cells.

    Args:
        pred_tokens: One list of k predicted tokens per layer.
        pred_probs: (layers, k) probabilities in [0, 1].
        layer_labels: One label per layer (row).
        title: The figure title.

    Returns:
        A matplotlib Figure.
    """
    probs = float_array(pred_probs, "pred_probs", 2)
    tokens = [token_list(row, f"pred_tokens[{i}]") for i, row in enumerate(token_list_like(pred_tokens, "pred_tokens"))]
    if len(tokens) != probs.shape[0] or any(len(row) != probs.shape[1] for row in tokens):
        raise InputError(
            f"pred_tokens is {len(tokens)} layers x {sorted({len(r) for r in tokens})} tokens but pred_probs has "
            f"shape {probs.shape}: pass one probability per predicted token."
        )
    if (probs < -1e-6).any() or (probs > 1 + 1e-6).any():
        raise InputError("pred_probs must be probabilities in [0, 1]; apply softmax to logits first.")
    n_layers, k = probs.shape
    rows = label_list(layer_labels, "layer_labels", n_layers)
    texts = [
        [(token_label(t, 14), _prob_text(p)) for t, p in zip(tr, pr, strict=True)]
        for tr, pr in zip(tokens, probs, strict=True)
    ]
    fig = _figure(1.7 + 1.45 * k + 1.1, 1.5 + 0.32 * n_layers)
    norm = Normalize(vmin=0.0, vmax=1.0)
    cols = [f"#{i + 1}" for i in range(k)]
    ax = _heatmap(fig, np.clip(probs, 0, 1), texts, cmap=PROB_CMAP, norm=norm, rows=rows, cols=cols, fontsize=8.5)
    ax.tick_params(labeltop=True, labelbottom=False)
    bar = fig.colorbar(ax._ecco_image, ax=ax, shrink=min(1.0, 6 / max(n_layers, 1) + 0.3), pad=0.02)
    bar.set_label("probability")
    _titled(fig, ax, title, "", "layer")
    return fig


def similarity_figure(
    matrix: Any,
    labels_a: Sequence[str],
    labels_b: Sequence[str] | None = None,
    title: str = "Similarity",
) -> Figure:
    """Heatmap of a 0..1 similarity matrix (e.g. CKA between layers), values written in cells when they fit.

    Args:
        matrix: (rows, columns) similarities in [0, 1].
        labels_a: One label per row.
        labels_b: One label per column (None: `labels_a`, for a square matrix).
        title: The figure title.

    Returns:
        A matplotlib Figure.
    """
    m = float_array(matrix, "matrix", 2)
    if (m < -1e-6).any() or (m > 1 + 1e-6).any():
        raise InputError("similarity_figure expects values in [0, 1]; rescale first (e.g. (cosine + 1) / 2).")
    rows = [token_label(x) for x in label_list(labels_a, "labels_a", m.shape[0])]
    cols = rows if labels_b is None else [token_label(x) for x in label_list(labels_b, "labels_b", m.shape[1])]
    if labels_b is None and m.shape[0] != m.shape[1]:
        raise InputError(f"matrix has shape {m.shape}: pass labels_b for its {m.shape[1]} columns.")
    annotate = m.size <= 900
    texts = [[f"{v:.2f}" if annotate else "" for v in row] for row in m]
    fig = _figure(1.8 + 0.5 * m.shape[1] + 1.1, 1.6 + 0.42 * m.shape[0])
    ax = _heatmap(fig, np.clip(m, 0, 1), texts, cmap=SIM_CMAP, norm=Normalize(0, 1), rows=rows, cols=cols, fontsize=7)
    fig.colorbar(ax._ecco_image, ax=ax, shrink=min(1.0, 8 / max(m.shape[0], 1) + 0.3), pad=0.02).set_label("similarity")
    _titled(fig, ax, title, "", "")
    return fig


def figure_to_png_bytes(fig: Figure, dpi: int = 150) -> bytes:
    """Render a figure to PNG bytes (for files, HTTP responses or embedding).

    Args:
        fig: A matplotlib Figure.
        dpi: Dots per inch.

    Returns:
        The PNG bytes.
    """
    if not isinstance(fig, Figure):
        raise InputError(f"expected a matplotlib Figure, got {type(fig).__name__}.")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def _png_width(png: bytes) -> int:
    """Pixel width from a PNG header."""
    return struct.unpack(">I", png[16:20])[0]


def figure_to_html(fig: Figure, dpi: int = 150) -> Visual:
    """Embed a figure as a base64 PNG in a Visual, so it travels inside standalone HTML and Gradio pages.

    Args:
        fig: A matplotlib Figure.
        dpi: Dots per inch of the PNG.

    Returns:
        A Visual holding the image.
    """
    png = figure_to_png_bytes(fig, dpi)
    title = next((ax.get_title(loc="left") or ax.get_title() for ax in fig.axes if ax.get_title(loc="left")), "figure")
    width = round(_png_width(png) * 96 / dpi)
    data = base64.b64encode(png).decode("ascii")
    img = f'<img class="ecco-img" src="data:image/png;base64,{data}" alt="{esc(title)}" width="{width}">'
    return Visual(wrap(new_id(), "figure", img), title=title, kind="figure")


def factors_figure(tokens: Any, factors: Any, title: str = "NMF factors over the tokens") -> Figure:
    """Each factor's activation along the text as stacked line plots, for reports and notebooks.

    Args:
        tokens: One token per position.
        factors: (n_factors, positions) activations.
        title: The figure title.

    Returns:
        A matplotlib Figure.
    """

    toks = token_list(tokens)
    values = float_array(factors, "factors", 2)
    k, n = values.shape
    if n != len(toks):
        raise InputError(f"factors has {n} positions but there are {len(toks)} tokens; pass factors (k, positions)")
    if (values < 0).any():
        raise InputError("factors must be non-negative (NMF factor activations)")
    fig = _figure(2.0 + 0.32 * n, 0.9 + 1.1 * k)
    axes = fig.subplots(k, 1, sharex=True, squeeze=False)[:, 0]
    x = np.arange(n)
    for f, ax in enumerate(axes):
        colour = factor_colour(f)
        ax.fill_between(x, values[f], color=colour, alpha=0.25, linewidth=0)
        ax.plot(x, values[f], color=colour, linewidth=1.6)
        ax.set_ylim(0, max(float(values[f].max()) * 1.1, 1e-9))
        ax.set_yticks([])
        _plain([ax.set_ylabel(f"factor {f + 1}", rotation=0, ha="right", va="center", fontsize=9)])
        for spine in ("top", "right", "left"):
            ax.spines[spine].set_visible(False)
    axes[-1].set_xticks(x, [token_label(t) for t in toks], rotation=60, ha="right", fontsize=8)
    _plain(axes[-1].get_xticklabels())
    _plain([axes[0].set_title(title, fontsize=12, loc="left")])
    return fig
