"""Self-contained visuals (HTML fragments and matplotlib figures) built from plain data, never from models."""

from ecco_sdk.render.factors import factors_view
from ecco_sdk.render.figures import (
    factors_figure,
    figure_to_html,
    figure_to_png_bytes,
    layer_predictions_figure,
    rankings_figure,
    rankings_watch_figure,
    similarity_figure,
)
from ecco_sdk.render.layers import (
    layer_attribution_figure,
    layer_attribution_view,
    layer_heatmap_figure,
    token_attention_figure,
)
from ecco_sdk.render.saliency import saliency_view
from ecco_sdk.render.sequence import sequence_view
from ecco_sdk.render.sparkline import sparkline_svg
from ecco_sdk.render.tokens import token_label
from ecco_sdk.render.visual import Visual

__all__ = [
    "Visual",
    "factors_figure",
    "factors_view",
    "figure_to_html",
    "figure_to_png_bytes",
    "layer_attribution_figure",
    "layer_attribution_view",
    "layer_heatmap_figure",
    "layer_predictions_figure",
    "rankings_figure",
    "rankings_watch_figure",
    "saliency_view",
    "sequence_view",
    "similarity_figure",
    "sparkline_svg",
    "token_attention_figure",
    "token_label",
]
