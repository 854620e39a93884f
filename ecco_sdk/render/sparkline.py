"""Inline SVG sparklines, so a factor's profile over positions shows without images or scripts."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from ecco_sdk.errors import InputError
from ecco_sdk.render._validate import float_array

_PAD = 2.0


def _scale(values: np.ndarray, height: float) -> tuple[np.ndarray, float]:
    """Map values to y pixel coordinates (0 at the baseline unless values go negative) and the zero line's y."""
    finite = values[np.isfinite(values)]
    lo = min(0.0, float(finite.min())) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 1.0
    if hi <= lo:
        hi = lo + 1.0
    span = height - 2 * _PAD
    filled = np.where(np.isfinite(values), values, 0.0)
    ys = height - _PAD - (filled - lo) / (hi - lo) * span
    zero_y = height - _PAD - (0.0 - lo) / (hi - lo) * span
    return ys, zero_y


def _xs(n: int, width: float) -> np.ndarray:
    """Spread n points evenly across the width (one point sits in the middle)."""
    if n == 1:
        return np.array([width / 2])
    return _PAD + np.arange(n) * (width - 2 * _PAD) / (n - 1)


def sparkline_svg(
    values: Any, width: float = 120, height: float = 24, *, colour: str = "currentColor", label: str = ""
) -> str:
    """Inline SVG line of `values` (one point per value; NaN drawn at zero), for compact per-factor profiles.

    Args:
        values: The 1-D values to draw.
        width: The SVG width in pixels.
        height: The SVG height in pixels.
        colour: The line's CSS colour.
        label: An accessible label (aria-label and title; empty: "sparkline of N values").

    Returns:
        The SVG markup.
    """
    arr = float_array(values, "values", 1, allow_nan=True)
    if not (width > 0 and height > 0):
        raise InputError(f"sparkline width and height must be positive, got {width}x{height}.")
    xs, (ys, zero_y) = _xs(arr.size, width), _scale(arr, height)
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    area = f"{points} {xs[-1]:.1f},{zero_y:.1f} {xs[0]:.1f},{zero_y:.1f}"
    col = html.escape(colour, quote=True)
    name = html.escape(label or f"sparkline of {arr.size} values", quote=True)
    peak = int(np.nanargmax(arr)) if np.isfinite(arr).any() else 0
    return (
        f'<svg class="ecco-spark" width="{width:g}" height="{height:g}" viewBox="0 0 {width:g} {height:g}" '
        f'role="img" aria-label="{name}"><title>{name}</title>'
        f'<line x1="0" y1="{zero_y:.1f}" x2="{width:g}" y2="{zero_y:.1f}" stroke="{col}" stroke-opacity="0.25" '
        'stroke-width="1"/>'
        f'<polygon points="{area}" fill="{col}" fill-opacity="0.14" stroke="none"/>'
        f'<polyline points="{points}" fill="none" stroke="{col}" stroke-width="1.5" stroke-linejoin="round" '
        'stroke-linecap="round"/>'
        f'<circle cx="{xs[peak]:.1f}" cy="{ys[peak]:.1f}" r="2" fill="{col}"/></svg>'
    )
