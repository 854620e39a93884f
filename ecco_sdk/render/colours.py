"""Colour scales and contrast-aware text colours, so highlights stay readable on light and dark pages."""

from __future__ import annotations

import colorsys

RGB = tuple[int, int, int]

#: Card backgrounds and text colours of the two themes (must match assets/ecco.css).
LIGHT_BG: RGB = (255, 255, 255)
DARK_BG: RGB = (24, 26, 31)
LIGHT_FG: RGB = (31, 35, 40)
DARK_FG: RGB = (226, 231, 237)
WHITE: RGB = (255, 255, 255)
INK: RGB = (17, 19, 22)

#: Importance and positive attribution (violet) / negative attribution (orange): a colour-blind safe pair.
POSITIVE = "#6741d9"
NEGATIVE = "#d9480f"

FACTOR_PALETTE = (
    "#1c7ed6", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8", "#0b7285",
    "#e67700", "#862e9c", "#5c940d", "#364fc7", "#c92a2a", "#495057",
)  # fmt: skip

#: Below this strength a token gets no background at all (keeps near-zero noise from tinting the text).
MIN_STRENGTH = 0.005


def hex_to_rgb(colour: str) -> RGB:
    """Parse '#rrggbb' so colours can be blended and measured.

    Args:
        colour: A '#rrggbb' colour.

    Returns:
        The (red, green, blue) channels, 0..255.
    """
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def rgba(colour: str, alpha: float) -> str:
    """CSS rgba() of a hex colour, so highlights and legends write colours one way.

    Args:
        colour: A '#rrggbb' colour.
        alpha: The opacity, 0..1.

    Returns:
        The CSS colour, e.g. "rgba(255,128,0,0.5)".
    """
    r, g, b = hex_to_rgb(colour)
    return f"rgba({r},{g},{b},{alpha:g})"


def relative_luminance(rgb: RGB) -> float:
    """WCAG relative luminance, the basis of the contrast ratio.

    Args:
        rgb: (red, green, blue) channels, 0..255.

    Returns:
        The luminance, 0 (black) to 1 (white).
    """

    def channel(v: int) -> float:
        """Linearise one sRGB channel."""
        s = v / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: RGB, b: RGB) -> float:
    """WCAG contrast ratio between two colours (1 to 21).

    Args:
        a: One colour's (red, green, blue) channels.
        b: The other colour's channels.

    Returns:
        The ratio, 1 (no contrast) to 21 (black on white).
    """
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def blend(rgb: RGB, alpha: float, background: RGB) -> RGB:
    """Colour seen when `rgb` at opacity `alpha` lies over `background`.

    Args:
        rgb: The overlay's (red, green, blue) channels.
        alpha: The overlay's opacity, 0..1.
        background: The background's channels.

    Returns:
        The blended (red, green, blue) channels.
    """
    return tuple(round(alpha * c + (1 - alpha) * b) for c, b in zip(rgb, background, strict=True))  # type: ignore[return-value]


def text_colour(colour: str, alpha: float) -> str:
    """Pick the text colour (inherited, white or ink) that reads best over a highlight on both themes.

    Args:
        colour: The highlight's '#rrggbb' colour.
        alpha: The highlight's opacity.

    Returns:
        "inherit", "#ffffff" or "#111316", whichever has the best worst-case contrast on light and dark pages.
    """
    rgb = hex_to_rgb(colour)
    on_light, on_dark = blend(rgb, alpha, LIGHT_BG), blend(rgb, alpha, DARK_BG)
    options = {
        "inherit": min(contrast_ratio(LIGHT_FG, on_light), contrast_ratio(DARK_FG, on_dark)),
        "#ffffff": min(contrast_ratio(WHITE, on_light), contrast_ratio(WHITE, on_dark)),
        "#111316": min(contrast_ratio(INK, on_light), contrast_ratio(INK, on_dark)),
    }
    return max(options, key=lambda k: options[k])


def strength_to_alpha(strength: float) -> float:
    """Map a 0..1 strength to a highlight opacity; zero stays transparent, anything above it is visible.

    Args:
        strength: The value's strength; clipped to 0..1.

    Returns:
        0 below MIN_STRENGTH, else an opacity from 0.1 to 1.
    """
    s = min(max(float(strength), 0.0), 1.0)
    return 0.0 if s < MIN_STRENGTH else round(0.1 + 0.9 * s, 3)


def highlight_style(colour: str, strength: float) -> str:
    """Inline CSS for a token highlighted at `strength` (0..1) in `colour`; empty when there is nothing to show.

    Args:
        colour: The highlight's '#rrggbb' colour.
        strength: The value's strength, 0..1.

    Returns:
        The CSS declarations (background and, when needed, text colour), or "".
    """
    alpha = strength_to_alpha(strength)
    if alpha == 0.0:
        return ""
    style = f"background-color:{rgba(colour, alpha)}"
    fg = text_colour(colour, alpha)
    return style if fg == "inherit" else f"{style};color:{fg}"


def signed_style(value: float) -> str:
    """Inline CSS for a signed value in [-1, 1] on the diverging (orange-violet) scale.

    Args:
        value: The signed value; its sign picks the colour and its magnitude the strength.

    Returns:
        The CSS declarations, or "" for zero.
    """
    return highlight_style(NEGATIVE if value < 0 else POSITIVE, abs(value))


def factor_colour(index: int) -> str:
    """Distinct colour of factor `index`; the fixed palette first, then well-spread generated hues.

    Args:
        index: The factor's index, from 0.

    Returns:
        A '#rrggbb' colour.
    """
    if index < len(FACTOR_PALETTE):
        return FACTOR_PALETTE[index]
    hue = (index * 137.508) % 360 / 360
    r, g, b = colorsys.hls_to_rgb(hue, 0.42, 0.62)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"
