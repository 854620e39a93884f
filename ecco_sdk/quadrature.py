"""Quadrature on [0, 1] for integrated gradients: fixed rules and adaptive Gauss-Kronrod panels.

The integrated-gradients integrand (the gradient along the path from the baseline) is far from
smooth for a language model, so a fixed number of steps can be far from converged without saying
so. Gauss-Kronrod (7, 15) panels give two estimates from the same 15 points (the 7-point Gauss rule
is nested in the 15-point Kronrod rule), so every panel carries its own error estimate for free;
the panels with the largest estimated error are bisected until the tolerance or the step budget is met.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The 15-point Kronrod extension of the 7-point Gauss-Legendre rule on [-1, 1] (positive nodes; the
# rule is symmetric). Node 0 is the centre; odd indices are the Gauss nodes. Checked in the tests:
# the Kronrod rule integrates polynomials up to degree 22 exactly, the Gauss one up to degree 13.
_XK = np.array(
    [
        0.0,
        0.207784955007898467600689403773245,
        0.405845151377397166906606412076961,
        0.586087235467691130294144845693013,
        0.741531185599394439863864773280788,
        0.864864423359769072789712788640926,
        0.949107912342758524526189684047851,
        0.991455371120812639206854697526329,
    ]
)
_WK = np.array(
    [
        0.209482141084727828012999174891714,
        0.204432940075298892414161999234649,
        0.190350578064785409913256402421014,
        0.169004726639267902826583426598550,
        0.140653259715525918745189590510238,
        0.104790010322250183839876322541518,
        0.063092092629978553290700663189204,
        0.022935322010529224963732008058970,
    ]
)
_WG = np.array(
    [
        0.417959183673469387755102040816327,
        0.0,
        0.381830050505118944950369775488975,
        0.0,
        0.279705391489276667901467771423780,
        0.0,
        0.129484966168869693270611432679082,
        0.0,
    ]
)
POINTS_PER_PANEL = 15


def kronrod_rule() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(nodes, Kronrod weights, Gauss weights) of the 15-point rule on [-1, 1], nodes ascending.

    Returns:
        The 15 nodes, the 15 Kronrod weights, and the Gauss weights (zero at the 8 nodes not in the 7-point rule).
    """
    x = np.concatenate([-_XK[:0:-1], _XK])
    wk = np.concatenate([_WK[:0:-1], _WK])
    wg = np.concatenate([_WG[:0:-1], _WG])
    return x, wk, wg


@dataclass(frozen=True)
class Panel:
    """A sub-interval [a, b] of the path, integrated by its own 15 points.

    Attributes:
        a: The start, in [0, 1].
        b: The end, in [0, 1].
    """

    a: float
    b: float

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """(alphas, weights as a (2, 15) array: Kronrod row then Gauss row) on this panel.

        Returns:
            The 15 points in [a, b] and their weights, scaled so each row integrates over [a, b].
        """
        x, wk, wg = kronrod_rule()
        half = 0.5 * (self.b - self.a)
        return self.a + half * (x + 1), half * np.stack([wk, wg])

    def halves(self) -> tuple[Panel, Panel]:
        """The two halves of this panel, to bisect one whose error estimate is too large.

        Returns:
            [a, mid] and [mid, b].
        """
        mid = 0.5 * (self.a + self.b)
        return Panel(self.a, mid), Panel(mid, self.b)


def to_split(errors: np.ndarray, share: float = 0.5) -> list[int]:
    """Indices of the panels that together hold at least `share` of the estimated error, largest first.

    Args:
        errors: (panels,) each panel's estimated error (non-negative).
        share: The fraction of the total error the picked panels must hold.

    Returns:
        The panel indices, largest error first (ties in index order); at least one unless `errors` is empty.
    """
    order = np.argsort(-errors, kind="stable")
    total = float(errors.sum())
    picked: list[int] = []
    held = 0.0
    for i in order:
        picked.append(int(i))
        held += float(errors[i])
        if held >= share * total:
            break
    return picked
