"""How alike two sets of activations are: CCA, SVCCA, PWCCA and CKA, plus layer-by-layer similarity matrices.

Every function takes views shaped ``(features, samples)`` -- e.g. one layer of FFN activations
``activations[layer]`` shaped ``(neurons, positions)`` -- as numpy arrays or torch tensors, and returns a
Python float in ``[0, 1]`` (1 = the same representation up to the method's invariances).

Invariances, from the papers:

* CCA / SVCCA / PWCCA: any invertible linear map of either view (CCA, PWCCA) or of the kept top-variance
  subspace (SVCCA). Meaningful only with clearly more samples than (kept) features.
* Linear CKA: orthogonal transforms and isotropic scaling, not arbitrary invertible maps; works with fewer
  samples than features. RBF CKA: the same, because its bandwidth is relative to the median distance.

References: Hotelling 1936 (CCA); Raghu et al. 2017 (SVCCA); Morcos et al. 2018 (PWCCA);
Kornblith et al. 2019 (CKA); Song et al. 2012 (unbiased HSIC, used for debiased CKA).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .checks import as_real_array, check_int, check_positive
from .errors import InputError

Kernel = Literal["linear", "rbf"]
Method = Literal["cca", "svcca", "pwcca", "cka"]

METHODS: tuple[str, ...] = ("cca", "svcca", "pwcca", "cka")
KERNELS: tuple[str, ...] = ("linear", "rbf")

# Singular directions weaker than this fraction of the strongest are treated as absent (rank deficiency).
_RANK_RTOL = 1e-10
# Extra keyword arguments each method accepts in layer_similarity.
_METHOD_KWARGS: dict[str, frozenset[str]] = {
    "cca": frozenset(),
    "pwcca": frozenset(),
    "svcca": frozenset({"keep_variance", "n_dims"}),
    "cka": frozenset({"kernel", "sigma", "debiased"}),
}


# --------------------------------------------------------------------------------------------- input checks


def _check_finite(arr: np.ndarray, name: str) -> None:
    """Stop NaN/inf early, because they would silently turn every similarity into NaN."""
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise InputError(
            f"{name} contains NaN or infinite values (first at index {tuple(int(i) for i in bad)}); "
            "drop or fill those positions before comparing."
        )


def _as_view(x: Any, name: str) -> np.ndarray:
    """Validate one (features, samples) activation matrix and return it as float64."""
    arr = as_real_array(x, name)
    if arr.ndim != 2:
        hint = (
            " For a single feature use x[None, :]; for a (layers, features, samples) stack use layer_similarity()."
            if arr.ndim in (1, 3)
            else ""
        )
        raise InputError(f"{name} must be 2-D shaped (features, samples); got shape {arr.shape}.{hint}")
    if arr.shape[0] < 1 or arr.shape[1] < 2:
        raise InputError(f"{name} needs at least 1 feature and 2 samples (columns); got shape {arr.shape}.")
    _check_finite(arr, name)
    return arr


def _check_same_samples(x: np.ndarray, y: np.ndarray, xname: str = "x", yname: str = "y") -> None:
    """Both views must describe the same samples (positions), column for column."""
    if x.shape[1] != y.shape[1]:
        hint = ""
        if x.shape[0] == y.shape[0]:
            hint = " Their first axes match: if you passed (samples, features), transpose both (x.T, y.T)."
        raise InputError(
            f"{xname} and {yname} must have the same number of samples (columns); got shapes {x.shape} and "
            f"{y.shape}. Pass activations for the same positions, shaped (features, samples).{hint}"
        )


def _center(x: np.ndarray) -> np.ndarray:
    """Remove each feature's mean over samples, since every method here compares covariance structure."""
    return x - x.mean(axis=1, keepdims=True)


def _unit_interval(value: float) -> float:
    """Clip tiny numerical excursions so callers always get a float in [0, 1]."""
    return float(min(max(value, 0.0), 1.0))


def _require_more_samples(x: np.ndarray, name: str, method: str) -> None:
    """CCA with features >= samples finds perfect correlations for any data, so refuse instead of misleading."""
    features, samples = x.shape
    if samples <= features:
        raise InputError(
            f"{method} needs more samples (columns) than features (rows), otherwise every canonical correlation "
            f"is trivially 1: {name} has {features} features but only {samples} samples. "
            "Use svcca() (which reduces dimensions), cka(), or pass more positions."
        )


# -------------------------------------------------------------------------------------------- CCA machinery


@dataclass(frozen=True)
class _Spectrum:
    """A centered view's SVD, kept so CCA, SVCCA and PWCCA can share one decomposition."""

    centered: np.ndarray  # (features, samples)
    singular: np.ndarray  # (rank,) descending, near-zero directions dropped
    directions: np.ndarray  # (rank, samples), orthonormal rows spanning the view's sample-space


def _spectrum(x: np.ndarray, name: str) -> _Spectrum:
    """Decompose a centered view once; dropping near-zero directions is how rank deficiency is handled."""
    centered = _center(x)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)
    if s.size == 0 or s[0] <= 0.0:
        raise InputError(f"{name} has no variance across samples (every feature is constant); nothing to compare.")
    keep = s > _RANK_RTOL * s[0]
    return _Spectrum(centered=centered, singular=s[keep], directions=vt[keep])


def _canonical_from_bases(qx: np.ndarray, qy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical correlations between two orthonormal row bases, and view-x's rotation to its canonical variates.

    With orthonormal bases, the correlations are the singular values of Qx Qy^T (the cosines of the principal
    angles between the two spans) -- no covariance matrix is ever inverted.
    """
    u, s, _ = np.linalg.svd(qx @ qy.T, full_matrices=False)
    k = min(qx.shape[0], qy.shape[0])
    return np.clip(s[:k], 0.0, 1.0), u[:, :k]


def _correlations_only(qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """Canonical correlations without the rotation, which is several times cheaper for layer-by-layer matrices."""
    return np.clip(np.linalg.svd(qx @ qy.T, compute_uv=False), 0.0, 1.0)


def _svd_keep(spec: _Spectrum, keep_variance: float, n_dims: int | None, cap: int) -> np.ndarray:
    """SVCCA's first step: the top singular directions of a view, chosen by variance kept or by count."""
    if n_dims is not None:
        k = min(n_dims, spec.singular.size)
    else:
        fraction = np.cumsum(spec.singular**2) / np.sum(spec.singular**2)
        k = int(np.searchsorted(fraction, keep_variance - 1e-12)) + 1
        k = min(k, spec.singular.size, cap)
    return spec.directions[:k]


def _svcca_cap(samples: int) -> int:
    """Largest kept dimension per view for which two views' subspaces need not overlap by dimension counting."""
    return (samples - 1) // 2


def _check_svcca_args(keep_variance: float, n_dims: int | None, samples: int) -> None:
    """Reject SVCCA settings that cannot give a meaningful number, saying which value to change."""
    if isinstance(keep_variance, bool) or not isinstance(keep_variance, (int, float)) or not 0 < keep_variance <= 1:
        raise InputError(f"keep_variance must be a fraction in (0, 1], e.g. 0.99; got {keep_variance!r}.")
    cap = _svcca_cap(samples)
    if cap < 1:
        raise InputError(f"svcca needs at least 3 samples (columns); got {samples}.")
    if n_dims is None:
        return
    n_dims = check_int(n_dims, "n_dims", what="a positive integer", hint=" or None")
    if n_dims > cap:
        raise InputError(
            f"n_dims={n_dims} is too many for {samples} samples: with more than (samples - 1) // 2 = {cap} dims per "
            "view the two subspaces must overlap and correlations are trivially 1. Lower n_dims or pass more positions."
        )


def _pwcca_from(spec_x: _Spectrum, spec_y: _Spectrum) -> float:
    """Weight each canonical correlation by how much of view x's neurons its canonical variate accounts for."""
    rho, rot = _canonical_from_bases(spec_x.directions, spec_y.directions)
    variates = rot.T @ spec_x.directions  # (k, samples), unit-norm canonical variates of x
    weights = np.abs(variates @ spec_x.centered.T).sum(axis=1)  # sum_j |<h_i, x_j>|
    total = weights.sum()
    if total <= 0.0:
        return _unit_interval(float(rho.mean()))
    return _unit_interval(float(weights @ rho / total))


def canonical_correlations(x: Any, y: Any) -> np.ndarray:
    """All canonical correlations (descending) between two views, for when one summary number hides too much.

    Args:
        x: One view, (features, samples), numpy or torch.
        y: The other view, (features, samples), with the same samples.

    Returns:
        The canonical correlations in [0, 1], largest first, min(rank_x, rank_y) of them.
    """
    xa, ya = _as_view(x, "x"), _as_view(y, "y")
    _check_same_samples(xa, ya)
    _require_more_samples(xa, "x", "cca")
    _require_more_samples(ya, "y", "cca")
    return _correlations_only(_spectrum(xa, "x").directions, _spectrum(ya, "y").directions)


def cca(x: Any, y: Any) -> float:
    """Mean canonical correlation: how well the two views' linear spans line up, ignoring any invertible remap.

    Views are (features, samples) with the same samples; each needs more samples than features
    (otherwise InputError -- use svcca() or cka()). Near-zero singular directions are dropped, so duplicated
    or constant neurons are fine; the mean runs over min(rank_x, rank_y) correlations.

    Args:
        x: One view, (features, samples), numpy or torch.
        y: The other view, (features, samples), with the same samples.

    Returns:
        The mean canonical correlation, in [0, 1].
    """
    return _unit_interval(float(canonical_correlations(x, y).mean()))


def svcca(x: Any, y: Any, keep_variance: float = 0.99, n_dims: int | None = None) -> float:
    """SVCCA similarity: CCA on each view's top-variance directions, so low-variance noise cannot inflate it.

    Each view is SVD-reduced to the fewest directions keeping ``keep_variance`` of its variance, or to exactly
    ``n_dims`` directions when given (``n_dims`` then wins; a view with fewer non-constant directions keeps all).
    Reduction is done in sample space, so views may have more features than samples. When chosen by
    ``keep_variance``, each view keeps at most ``(samples - 1) // 2`` directions, so the two subspaces are never
    forced to overlap just by dimension counting (which would make correlations trivially 1); an explicit larger
    ``n_dims`` raises InputError.

    Args:
        x: One view, (features, samples), numpy or torch.
        y: The other view, (features, samples), with the same samples.
        keep_variance: The share of each view's variance the kept directions must hold, in (0, 1].
        n_dims: Exactly this many directions per view instead (None: chosen by `keep_variance`).

    Returns:
        The mean canonical correlation of the reduced views, in [0, 1].
    """
    xa, ya = _as_view(x, "x"), _as_view(y, "y")
    _check_same_samples(xa, ya)
    samples = xa.shape[1]
    _check_svcca_args(keep_variance, n_dims, samples)
    cap = _svcca_cap(samples)
    qx = _svd_keep(_spectrum(xa, "x"), keep_variance, n_dims, cap)
    qy = _svd_keep(_spectrum(ya, "y"), keep_variance, n_dims, cap)
    return _unit_interval(float(_correlations_only(qx, qy).mean()))


def pwcca(x: Any, y: Any) -> float:
    """Projection-weighted CCA: canonical correlations weighted by how much of x's neurons each one explains.

    Down-weights canonical directions that are correlated but carry little of view x's activity (often noise).
    Not symmetric: weights come from ``x``. Same sample requirements as cca().

    Args:
        x: The view whose neurons weight the correlations, (features, samples).
        y: The other view, (features, samples), with the same samples.

    Returns:
        The weighted mean canonical correlation, in [0, 1].
    """
    xa, ya = _as_view(x, "x"), _as_view(y, "y")
    _check_same_samples(xa, ya)
    _require_more_samples(xa, "x", "pwcca")
    _require_more_samples(ya, "y", "pwcca")
    return _pwcca_from(_spectrum(xa, "x"), _spectrum(ya, "y"))


# -------------------------------------------------------------------------------------------- CKA machinery


def _check_cka_args(kernel: str, sigma: float, debiased: bool, samples: int) -> None:
    """Reject CKA settings that cannot work, saying which value to change."""
    if kernel not in KERNELS:
        raise InputError(f"kernel must be one of {KERNELS}; got {kernel!r}.")
    if kernel == "rbf":
        check_positive(sigma, "sigma", hint=" (a fraction of the median distance, e.g. 0.8)")
    if debiased and samples < 4:
        raise InputError(f"debiased CKA needs at least 4 samples (columns); got {samples}. Use debiased=False.")


def _gram(x: np.ndarray, kernel: str, sigma: float, name: str) -> np.ndarray:
    """The (samples x samples) kernel matrix of one view, the object CKA actually compares."""
    centered = _center(x)
    lin = centered.T @ centered
    if kernel == "linear":
        return lin
    sq_norms = np.diag(lin)
    sq_dist = np.maximum(sq_norms[:, None] + sq_norms[None, :] - 2.0 * lin, 0.0)
    upper = np.triu_indices(sq_dist.shape[0], k=1)
    median = float(np.median(np.sqrt(sq_dist[upper])))
    if median <= 0.0:
        raise InputError(
            f"{name}: the median distance between samples is 0 (most samples are identical), so the RBF bandwidth "
            "is undefined. Use kernel='linear' or drop duplicate positions."
        )
    return np.exp(-sq_dist / (2.0 * (sigma * median) ** 2))


@dataclass(frozen=True)
class _HsicTerms:
    """Per-view pieces whose inner products give (biased or unbiased) HSIC for every pair of views at once."""

    flat: np.ndarray  # (views, n*n): centered Gram (biased) or zero-diagonal Gram (debiased)
    totals: np.ndarray  # (views,): sum of the zero-diagonal Gram (debiased only)
    row_sums: np.ndarray  # (views, n): row sums of the zero-diagonal Gram (debiased only)
    debiased: bool
    samples: int


def _hsic_terms(grams: Sequence[np.ndarray], debiased: bool) -> _HsicTerms:
    """Prepare Gram matrices so HSIC between all pairs becomes a few matrix products (vectorised across layers)."""
    n = grams[0].shape[0]
    if not debiased:
        flat = np.stack([_double_center(g).ravel() for g in grams])
        empty = np.zeros((len(grams), 0))
        return _HsicTerms(flat, np.zeros(len(grams)), empty, False, n)
    zeroed = [g - np.diag(np.diag(g)) for g in grams]
    return _HsicTerms(
        flat=np.stack([g.ravel() for g in zeroed]),
        totals=np.array([g.sum() for g in zeroed]),
        row_sums=np.stack([g.sum(axis=1) for g in zeroed]),
        debiased=True,
        samples=n,
    )


def _double_center(g: np.ndarray) -> np.ndarray:
    """H G H with H the centering matrix: the biased HSIC compares Gram matrices after removing means."""
    return g - g.mean(axis=0, keepdims=True) - g.mean(axis=1, keepdims=True) + g.mean()


def _hsic_cross(a: _HsicTerms, b: _HsicTerms) -> np.ndarray:
    """HSIC between every view in a and every view in b, up to a positive factor that cancels in CKA."""
    out = a.flat @ b.flat.T
    if a.debiased:
        n = a.samples
        out = out + np.outer(a.totals, b.totals) / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (a.row_sums @ b.row_sums.T)
    return out


def _hsic_self(t: _HsicTerms) -> np.ndarray:
    """HSIC of each view with itself (the CKA normaliser), without forming the full cross matrix."""
    out = np.einsum("ij,ij->i", t.flat, t.flat)
    if t.debiased:
        n = t.samples
        out = out + t.totals**2 / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * np.einsum("ij,ij->i", t.row_sums, t.row_sums)
    return out


def _check_self_hsic(values: np.ndarray, names: Sequence[str]) -> None:
    """A view whose HSIC with itself is not positive has no usable variation; say which one."""
    for value, name in zip(values, names, strict=True):
        if not value > 0.0:
            raise InputError(
                f"{name} has no usable variation across samples for CKA (self-HSIC is {value:.3g}); every "
                "feature is constant, or there are too few samples for the debiased estimate. Check the input or pass "
                "more positions."
            )


def _cka_matrix(a: _HsicTerms, b: _HsicTerms, names_a: Sequence[str], names_b: Sequence[str]) -> np.ndarray:
    """CKA for every pair: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), clipped into [0, 1]."""
    self_a, self_b = _hsic_self(a), _hsic_self(b)
    _check_self_hsic(self_a, names_a)
    _check_self_hsic(self_b, names_b)
    return np.clip(_hsic_cross(a, b) / np.sqrt(np.outer(self_a, self_b)), 0.0, 1.0)


def cka(x: Any, y: Any, kernel: Kernel = "linear", sigma: float = 0.8, debiased: bool = False) -> float:
    """Centered kernel alignment: similarity that holds up with fewer samples than features, unlike CCA.

    ``kernel="linear"`` compares the views' (centered) linear Gram matrices; ``kernel="rbf"`` uses
    ``exp(-d^2 / (2 (sigma * median_d)^2))`` where ``median_d`` is the median pairwise distance between samples
    in that view. Both use HSIC on centered Gram matrices. ``debiased=True`` uses the unbiased HSIC estimator
    (Song et al. 2012), which removes the finite-sample upward bias so unrelated views score near 0; its raw
    estimate can dip slightly below 0 from sampling noise and is then reported as 0.

    Args:
        x: One view, (features, samples), numpy or torch.
        y: The other view, (features, samples), with the same samples.
        kernel: "linear" or "rbf".
        sigma: The RBF width as a fraction of the median pairwise distance (used with kernel="rbf").
        debiased: Use the unbiased HSIC estimator (needs at least 4 samples).

    Returns:
        The CKA similarity, in [0, 1].
    """
    xa, ya = _as_view(x, "x"), _as_view(y, "y")
    _check_same_samples(xa, ya)
    _check_cka_args(kernel, sigma, debiased, xa.shape[1])
    tx = _hsic_terms([_gram(xa, kernel, sigma, "x")], debiased)
    ty = _hsic_terms([_gram(ya, kernel, sigma, "y")], debiased)
    return float(_cka_matrix(tx, ty, ["x"], ["y"])[0, 0])


# ------------------------------------------------------------------------------------------ layer matrices


def _as_stack(acts: Any, name: str) -> list[np.ndarray]:
    """Validate a (layers, features, samples) stack -- or a list of per-layer (features, samples) arrays."""
    if isinstance(acts, (list, tuple)):
        if not acts:
            raise InputError(f"{name} is empty; pass at least one layer shaped (features, samples).")
        layers = [_as_view(layer, f"{name}[{i}]") for i, layer in enumerate(acts)]
    else:
        arr = as_real_array(acts, name)
        if arr.ndim != 3:
            hint = " For a single layer call cka()/cca()/... directly, or pass x[None]." if arr.ndim == 2 else ""
            raise InputError(f"{name} must be 3-D shaped (layers, features, samples); got shape {arr.shape}.{hint}")
        if arr.shape[0] < 1:
            raise InputError(f"{name} has no layers; got shape {arr.shape}.")
        layers = [_as_view(arr[i], f"{name}[{i}]") for i in range(arr.shape[0])]
    for i, layer in enumerate(layers[1:], start=1):
        _check_same_samples(layers[0], layer, f"{name}[0]", f"{name}[{i}]")
    return layers


def _check_method_kwargs(method: str, kw: dict[str, Any]) -> None:
    """Catch misspelled or misplaced options, instead of silently ignoring them."""
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}; got {method!r}.")
    unknown = set(kw) - _METHOD_KWARGS[method]
    if unknown:
        allowed = sorted(_METHOD_KWARGS[method]) or "none"
        raise InputError(f"{method} does not take {sorted(unknown)}; options it accepts: {allowed}.")


def _layer_cka(
    a: list[np.ndarray],
    b: list[np.ndarray] | None,
    kernel: Kernel = "linear",
    sigma: float = 0.8,
    debiased: bool = False,
) -> np.ndarray:
    """CKA across layers with each layer's Gram matrix computed once and all pairs done as one matrix product."""
    _check_cka_args(kernel, sigma, debiased, a[0].shape[1])
    names_a = [f"activations_a[{i}]" for i in range(len(a))]
    ta = _hsic_terms([_gram(x, kernel, sigma, n) for x, n in zip(a, names_a, strict=True)], debiased)
    if b is None:
        out = _cka_matrix(ta, ta, names_a, names_a)
        return (out + out.T) / 2.0  # exact symmetry despite rounding
    names_b = [f"activations_b[{i}]" for i in range(len(b))]
    tb = _hsic_terms([_gram(y, kernel, sigma, n) for y, n in zip(b, names_b, strict=True)], debiased)
    return _cka_matrix(ta, tb, names_a, names_b)


def _layer_cca_family(
    method: str,
    a: list[np.ndarray],
    b: list[np.ndarray] | None,
    keep_variance: float = 0.99,
    n_dims: int | None = None,
) -> np.ndarray:
    """CCA/SVCCA/PWCCA across layers, decomposing each layer once and reusing it for every pair."""
    samples = a[0].shape[1]
    if method == "svcca":
        _check_svcca_args(keep_variance, n_dims, samples)
    else:
        for i, x in enumerate(a):
            _require_more_samples(x, f"activations_a[{i}]", method)
        if b is not None:
            for j, y in enumerate(b):
                _require_more_samples(y, f"activations_b[{j}]", method)
    spec_a = [_spectrum(x, f"activations_a[{i}]") for i, x in enumerate(a)]
    spec_b = spec_a if b is None else [_spectrum(y, f"activations_b[{j}]") for j, y in enumerate(b)]
    symmetric = b is None and method != "pwcca"
    out = np.empty((len(spec_a), len(spec_b)))
    if method == "svcca":
        cap = _svcca_cap(samples)
        qa = [_svd_keep(s, keep_variance, n_dims, cap) for s in spec_a]
        qb = qa if b is None else [_svd_keep(s, keep_variance, n_dims, cap) for s in spec_b]
    else:
        qa = [s.directions for s in spec_a]
        qb = [s.directions for s in spec_b]
    for i in range(len(spec_a)):
        for j in range(i if symmetric else 0, len(spec_b)):
            if method == "pwcca":
                out[i, j] = _pwcca_from(spec_a[i], spec_b[j])
            else:
                out[i, j] = _unit_interval(float(_correlations_only(qa[i], qb[j]).mean()))
            if symmetric:
                out[j, i] = out[i, j]
    return out


def layer_similarity(
    activations_a: Any, activations_b: Any | None = None, method: Method = "cka", **kw: Any
) -> np.ndarray:
    """Similarity of every layer of one stack to every layer of another, to see where representations change.

    Stacks are (layers, features, samples) arrays/tensors, or lists of per-layer (features, samples) arrays
    (layers may then differ in width); all layers share the same samples. ``activations_b`` defaults to
    ``activations_a``. ``method`` is one of "cca", "svcca", "pwcca", "cka"; ``kw`` are that method's options
    (svcca: keep_variance, n_dims; cka: kernel, sigma, debiased). Returns a float array shaped
    (layers_a, layers_b) with values in [0, 1]; row i, column j compares a[i] with b[j]. Linear and RBF CKA
    compute each layer's Gram matrix once (memory: layers * samples^2 floats). PWCCA is not symmetric.

    Args:
        activations_a: The first stack: (layers, features, samples), or a list of (features, samples) arrays.
        activations_b: The second stack, of the same samples (None: `activations_a` again).
        method: "cca", "svcca", "pwcca" or "cka".
        **kw: The method's options (svcca: keep_variance, n_dims; cka: kernel, sigma, debiased).

    Returns:
        A float array shaped (layers_a, layers_b) with values in [0, 1]; row i, column j compares a[i] with b[j].
    """
    _check_method_kwargs(method, kw)
    a = _as_stack(activations_a, "activations_a")
    b = None if activations_b is None else _as_stack(activations_b, "activations_b")
    if b is not None:
        _check_same_samples(a[0], b[0], "activations_a[0]", "activations_b[0]")
    if method == "cka":
        return _layer_cka(a, b, **kw)
    return _layer_cca_family(method, a, b, **kw)


__all__ = [
    "KERNELS",
    "METHODS",
    "canonical_correlations",
    "cca",
    "cka",
    "layer_similarity",
    "pwcca",
    "svcca",
]
