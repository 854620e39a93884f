"""NMF neuron factors: groups of FFN neurons that fire together, and the tokens where each group fires.

Input is one run's FFN activations shaped ``(layers, neurons, positions)`` -- every layer in numeric order,
every token position. The selected layers ``[from_layer, to_layer)`` (half-open, as in the original ecco)
are flattened into a ``(positions, features)`` matrix, made non-negative (see *Negative activations*) and
factorized with scikit-learn's NMF as ``X ≈ W @ H``:

* ``factors = W.T`` -- ``(n_components, positions)``: how strongly each factor is active at each token;
* ``components = H`` -- ``(n_components, features)``: each factor's loading on every neuron;
* ``neuron_index`` -- ``(features, 3)`` rows of ``(layer, neuron, sign)`` naming each feature column.

Scale and order (both fixed here; the original ecco left them to the solver):

* **Scale.** ``W @ H`` does not change if a factor's row of ``H`` is multiplied by ``c`` and its column of
  ``W`` divided by ``c``. We remove that freedom: with ``normalize="l2"`` (default) every component row has
  unit L2 norm, so ``factors[k, p]`` is the L2 norm of factor ``k``'s contribution to the reconstructed
  activation vector at position ``p`` (factors are comparable with each other and across texts).
  With ``normalize="max"`` every component's largest loading is 1, so ``factors[k, p]`` is the
  reconstructed activation of the factor's top neuron. A component that came out all zero stays zero.
* **Order.** Factors are sorted by descending total activation ``factors[k].sum()`` (under the chosen
  normalisation). Totals equal to 6 decimals of the largest total count as ties and are broken by the
  earlier peak position, then by the lower index of the top-loading feature, then by the solver's order.
  A fitted `FactorModel` keeps its training order on every text it transforms, so factor ``k`` means the
  same neuron group everywhere.

Negative activations (NMF needs a non-negative matrix; SmolLM2's ``silu(gate) * up`` is signed,
BERT's GELU output dips to about -0.17):

* ``"clip"`` (default): keep the positive part, ``max(a, 0)``. A neuron 'fires' when it is positive;
  its negative excursions are ignored. Features: one per neuron, sign ``+1``.
* ``"split"``: positive and negative parts become separate non-negative features ``max(a, 0)`` and
  ``max(-a, 0)``: all positive-part columns first, then all negative-part columns. ``neuron_index``'s sign
  column (``+1``/``-1``) says which part a loading is on, and `NMFResult.top_neurons` reports negative-part
  loadings with a negative weight. Nothing is thrown away, at twice the features.
* ``"shift"``: subtract each neuron's minimum over the positions, ``a - min_p a``, so a feature measures how
  far above its lowest value the neuron is on this text (a `FactorModel` uses the training corpus minimum
  and clips values below it to 0). Keeps the sign information in one feature per neuron but is relative to
  the text (or corpus) it was computed on. It converges more slowly (one big shared baseline): expect
  scikit-learn's ConvergenceWarning at the default ``max_iter`` and raise it when the factors matter.

Solver: scikit-learn ``NMF(solver="cd", beta_loss="frobenius")`` with ``random_state=seed``, started from
NNDSVDa (or NNDSVD) -- Boutsidis & Gallopoulos 2008. When the matrix's smaller side is at most
``_EXACT_SVD_MAX`` (any single text), the start is computed here from an exact SVD via the small Gram
matrix (faster than scikit-learn's randomized SVD on a 46080-wide matrix, and exact) and passed as
``init="custom"``; for bigger corpora scikit-learn computes the same NNDSVD(a) start itself. Matrices of at
most ``_SINGLE_THREAD_MAX_ROWS`` rows are solved with one BLAS thread (their thin products are memory-bound).

Rendering lives in ``ecco_sdk.render`` and LLM explanations in ``ecco_sdk.explain``; both are imported
lazily by `NMFResult.explore`, `NMFResult.plot` and `NMFResult.explain`.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from .bounded_io import MAX_LOAD_BYTES, ByteBudget, open_regular, read_json, read_npz, short
from .checks import as_activations, check_choice, check_int, check_positive, check_text, check_tokens
from .errors import FileFormatError, InputError

NegativeMode = Literal["clip", "split", "shift"]
Normalize = Literal["l2", "max"]
Init = Literal["nndsvda", "nndsvd"]

NEGATIVE_MODES: tuple[str, ...] = ("clip", "split", "shift")
NORMALIZE_MODES: tuple[str, ...] = ("l2", "max")
INIT_MODES: tuple[str, ...] = ("nndsvda", "nndsvd")

DEFAULT_MAX_ITER = 200  # scikit-learn's default; "clip"/"split" factors are settled by then on SmolLM2 text
DEFAULT_TOL = 1e-4
# A corpus fit above this many positions is subsampled: 4096 x 46080 float32 features are already 755 MB.
DEFAULT_MAX_POSITIONS = 4096
# Up to this many rows (or columns) the NNDSVD start comes from an exact SVD of the small Gram matrix.
_EXACT_SVD_MAX = 512
# Up to this many rows the solver runs with one BLAS thread: its (rows x features) @ (features x k) products are
# memory-bound, and a second OpenBLAS thread made them 4-5x slower on a busy 2-core machine.
_SINGLE_THREAD_MAX_ROWS = 512
# Totals within this many decimals of the largest total are treated as ties when ordering factors.
_TIE_DECIMALS = 6
_FORMAT = "ecco_sdk.factors/1"

ActivationsFor = Callable[[list[str]], Sequence[tuple[Sequence[str], Any]]]
FactorFn = Callable[[list[str]], list[tuple[list[str], np.ndarray]]]


# --------------------------------------------------------------------------------------------- input checks


def _check_finite(arr: np.ndarray, name: str, layer_offset: int = 0) -> None:
    """Stop NaN/inf early, because NMF would fail on them with an unhelpful message."""
    if not np.isfinite(arr).all():
        layer, neuron, pos = (int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise InputError(
            f"{name} contains NaN or infinite values (first at layer {layer + layer_offset}, neuron {neuron}, "
            f"position {pos}); drop those positions or fix the capture"
        )


def _check_n_input(n_input_tokens: Any, n_positions: int) -> int:
    """The prompt length must fit inside the text."""
    n = check_int(n_input_tokens, "n_input_tokens")
    if not 0 <= n <= n_positions:
        raise InputError(f"n_input_tokens must be between 0 and {n_positions} (the number of positions), got {n}")
    return n


def _layer_range(n_layers: int, from_layer: Any, to_layer: Any) -> tuple[int, int]:
    """Resolve the half-open layer range [from_layer, to_layer); None means the first / past-the-last layer."""
    lo = 0 if from_layer is None else check_int(from_layer, "from_layer")
    hi = n_layers if to_layer is None else check_int(to_layer, "to_layer")
    if not 0 <= lo < n_layers:
        raise InputError(
            f"from_layer={lo} is out of range; valid values are 0..{n_layers - 1} (the model has {n_layers} layers)"
        )
    if not 0 < hi <= n_layers:
        raise InputError(
            f"to_layer={hi} is out of range; valid values are 1..{n_layers} (exclusive end; "
            f"the model has {n_layers} layers)"
        )
    if lo >= hi:
        raise InputError(
            f"empty layer range [{lo}, {hi}): to_layer is exclusive, so it must be greater than from_layer "
            f"(e.g. from_layer={lo}, to_layer={lo + 1} for layer {lo} alone)"
        )
    return lo, hi


def _select_positions(positions: Any, n_positions: int) -> np.ndarray:
    """Turn None, a slice, a boolean mask or increasing integer indices into sorted position indices."""
    if positions is None:
        return np.arange(n_positions)
    if isinstance(positions, slice):
        return np.arange(n_positions)[positions]
    arr = np.asarray(positions)
    if arr.dtype == bool:
        if arr.shape != (n_positions,):
            raise InputError(f"a boolean positions mask must have length {n_positions}, got shape {arr.shape}")
        return np.flatnonzero(arr)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise InputError("positions must be None, a slice, a boolean mask or a list of integer positions")
    idx = arr.astype(np.int64)
    if idx.size and (idx.min() < -n_positions or idx.max() >= n_positions):
        raise InputError(f"positions must lie in -{n_positions}..{n_positions - 1}, got {arr.tolist()}")
    idx = np.where(idx < 0, idx + n_positions, idx)
    if np.any(np.diff(idx) <= 0):
        raise InputError("positions must be increasing without repeats, e.g. sorted(set(positions))")
    return idx


@dataclass(frozen=True)
class _FitOptions:
    """Solver settings shared by run_nmf and fit_factor_model."""

    seed: int
    max_iter: int
    tol: float
    normalize: str
    init: str


def _fit_options(seed: Any, max_iter: Any, tol: Any, normalize: Any, init: Any) -> _FitOptions:
    """Validate solver settings once, so both entry points reject the same mistakes the same way."""
    seed_ = check_int(seed, "seed")
    if not 0 <= seed_ < 2**32:
        raise InputError(f"seed must be between 0 and 2**32 - 1, got {seed_}")
    iters = check_int(max_iter, "max_iter")
    if iters < 1:
        raise InputError(f"max_iter must be at least 1, got {iters}")
    check_positive(tol, "tol")
    return _FitOptions(
        seed=seed_,
        max_iter=iters,
        tol=float(tol),
        normalize=check_choice(normalize, "normalize", NORMALIZE_MODES),
        init=check_choice(init, "init", INIT_MODES),
    )


def _check_n_components(n_components: Any, n_rows: int, n_features: int) -> int:
    """NMF cannot find more factors than the smaller side of the matrix (positions, usually)."""
    k = check_int(n_components, "n_components")
    most = min(n_rows, n_features)
    if not 1 <= k <= most:
        side = "positions" if n_rows <= n_features else "features"
        raise InputError(f"n_components must be between 1 and {most} (the number of {side}), got {k}")
    return k


# --------------------------------------------------------------------------------------------- features


def neuron_index(from_layer: int, to_layer: int, n_neurons: int, negative: str) -> np.ndarray:
    """Name every feature column as (layer, neuron, sign), so loadings can be traced back to neurons.

    Args:
        from_layer: The first layer of the range (inclusive).
        to_layer: The end of the layer range (exclusive).
        n_neurons: Neurons per layer.
        negative: The negative-value mode; "split" adds a second copy of every column with sign -1.

    Returns:
        An int32 array of shape (n_features, 3), one (layer, neuron, sign) row per feature column.
    """
    layers = np.repeat(np.arange(from_layer, to_layer), n_neurons)
    neurons = np.tile(np.arange(n_neurons), to_layer - from_layer)
    plus = np.stack([layers, neurons, np.ones_like(layers)], axis=1)
    if negative != "split":
        return plus.astype(np.int32)
    minus = plus.copy()
    minus[:, 2] = -1
    return np.concatenate([plus, minus]).astype(np.int32)


def _signed_matrix(acts: np.ndarray) -> np.ndarray:
    """(layers, neurons, positions) -> C-contiguous float32 (positions, layers*neurons), layer-major columns."""
    n_pos = acts.shape[2]
    return np.array(acts.reshape(-1, n_pos).T, dtype=np.float32, order="C", copy=True)  # callers edit it in place


def _nonnegative(x: np.ndarray, negative: str, offsets: np.ndarray | None = None) -> np.ndarray:
    """Apply the negative-value mode to a signed (positions, neurons) matrix; see the module docstring."""
    if negative == "clip":
        return np.maximum(x, 0.0, out=x)
    if negative == "split":
        return np.concatenate([np.maximum(x, 0.0), np.maximum(-x, 0.0)], axis=1)
    base = x.min(axis=0) if offsets is None else offsets
    x -= base
    return np.maximum(x, 0.0, out=x)


# --------------------------------------------------------------------------------------------- solver


def _top_singular(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact top-k SVD of a matrix with a small side, via the eigenvectors of its small Gram matrix."""
    x64 = x.astype(np.float64)
    wide = x.shape[0] <= x.shape[1]
    gram = x64 @ x64.T if wide else x64.T @ x64
    evals, evecs = np.linalg.eigh(gram)
    top = np.argsort(evals)[::-1][:k]
    s = np.sqrt(np.clip(evals[top], 0.0, None))
    small = evecs[:, top]
    safe = np.where(s > 0, s, 1.0)
    other = ((x64.T if wide else x64) @ small) / safe
    u, v = (small, other) if wide else (other, small)
    return u, s, v.T


def _nndsvd_start(x: np.ndarray, k: int, fill: bool) -> tuple[np.ndarray, np.ndarray]:
    """NNDSVD start (Boutsidis & Gallopoulos 2008); `fill` gives NNDSVDa, zeros replaced by the mean of x."""
    u, s, vt = _top_singular(x, k)
    w = np.zeros((x.shape[0], k))
    h = np.zeros((k, x.shape[1]))
    w[:, 0] = math.sqrt(s[0]) * np.abs(u[:, 0])
    h[0] = math.sqrt(s[0]) * np.abs(vt[0])
    for j in range(1, k):
        parts = []
        for a, b in ((u[:, j], vt[j]), (-u[:, j], -vt[j])):
            ap, bp = np.maximum(a, 0.0), np.maximum(b, 0.0)
            na, nb = float(np.linalg.norm(ap)), float(np.linalg.norm(bp))
            parts.append((na * nb, ap / (na or 1.0), bp / (nb or 1.0)))
        mass, a, b = max(parts, key=lambda p: p[0])  # ties keep the positive part: max() returns the first
        lam = math.sqrt(s[j] * mass)
        w[:, j], h[j] = lam * a, lam * b
    if fill:
        avg = float(x.mean())
        w[w == 0] = avg
        h[h == 0] = avg
    return w.astype(x.dtype), h.astype(x.dtype)


def _blas_threads(n_rows: int) -> contextlib.AbstractContextManager[Any]:
    """One BLAS thread for small (single-text) matrices, where extra threads only fight over memory bandwidth."""
    if n_rows > _SINGLE_THREAD_MAX_ROWS:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits  # scikit-learn loads only when an NMF runs

    return threadpool_limits(limits=1, user_api="blas")


def _factorize(x: np.ndarray, k: int, opts: _FitOptions) -> tuple[np.ndarray, np.ndarray]:
    """Run scikit-learn NMF on a non-negative (rows, features) matrix and return (W, H)."""
    from sklearn.decomposition import NMF  # scikit-learn loads only when an NMF runs

    common = {
        "solver": "cd",
        "beta_loss": "frobenius",
        "max_iter": opts.max_iter,
        "tol": opts.tol,
        "random_state": opts.seed,
    }
    with _blas_threads(x.shape[0]):
        if min(x.shape) <= _EXACT_SVD_MAX:
            w0, h0 = _nndsvd_start(x, k, fill=opts.init == "nndsvda")
            model = NMF(k, init="custom", **common)
            w = model.fit_transform(x, W=w0, H=h0)
        else:
            model = NMF(k, init=opts.init, **common)
            w = model.fit_transform(x)
    return w.astype(np.float32), model.components_.astype(np.float32)


def _normalize(w: np.ndarray, h: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Fix the W/H scale freedom: unit-norm (or unit-max) component rows, factor activations rescaled to match."""
    scale = np.linalg.norm(h, axis=1) if how == "l2" else np.abs(h).max(axis=1)
    alive = scale > 0
    safe = np.where(alive, scale, 1.0)
    return (w * np.where(alive, scale, 0.0)).astype(np.float32), (h / safe[:, None]).astype(np.float32)


def _factor_order(w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Descending total activation; near-ties by earlier peak position, then top feature, then solver order."""
    totals = w.sum(axis=0, dtype=np.float64)
    rounded = np.round(totals / max(float(totals.max()), np.finfo(np.float64).tiny), _TIE_DECIMALS)
    peak = w.argmax(axis=0)
    top = np.abs(h).argmax(axis=1)
    return np.lexsort((np.arange(w.shape[1]), top, peak, -rounded))


def _solve_w(x: np.ndarray, h: np.ndarray, max_iter: int, tol: float) -> np.ndarray:
    """Factor activations of new positions for fixed components (non-negative least squares via sklearn)."""
    from sklearn.decomposition import non_negative_factorization  # scikit-learn loads only when an NMF runs

    with _blas_threads(x.shape[0]):
        w, _, _ = non_negative_factorization(
            x,
            H=h.astype(x.dtype),
            n_components=h.shape[0],
            update_H=False,
            solver="cd",
            beta_loss="frobenius",
            max_iter=max_iter,
            tol=tol,
        )
    return w.astype(np.float32)


@dataclass(frozen=True)
class _Fit:
    """Errors of X ≈ W @ H, measured in float64."""

    error: float
    relative: float
    explained: float


def _fit_quality(x: np.ndarray, w: np.ndarray, h: np.ndarray, chunk: int = 256) -> _Fit:
    """Frobenius error of the reconstruction, row chunk by row chunk so no second full matrix is held."""
    sq_err = 0.0
    sq_norm = 0.0
    for start in range(0, x.shape[0], chunk):
        rows = x[start : start + chunk].astype(np.float64)
        sq_norm += float(np.einsum("ij,ij->", rows, rows))
        resid = rows - w[start : start + chunk].astype(np.float64) @ h.astype(np.float64)
        sq_err += float(np.einsum("ij,ij->", resid, resid))
    error = math.sqrt(sq_err)
    relative = error / math.sqrt(sq_norm) if sq_norm > 0 else 0.0
    return _Fit(error=error, relative=relative, explained=1.0 - relative**2)


def _fit_ordered(x: np.ndarray, k: int, opts: _FitOptions) -> tuple[np.ndarray, np.ndarray, _Fit]:
    """Factorize, normalise and order: the one pipeline behind run_nmf and fit_factor_model."""
    if not np.any(x > 0):
        raise InputError(
            "the selected activations are all zero after making them non-negative (nothing fires); "
            "pick other layers or positions, or use negative='split' or 'shift'"
        )
    w, h = _factorize(x, k, opts)
    w, h = _normalize(w, h, opts.normalize)
    order = _factor_order(w, h)
    w, h = w[:, order], h[order]
    return w, h, _fit_quality(x, w, h)


# --------------------------------------------------------------------------------------------- results


def _lazy(module: str, name: str) -> Any:
    """Fetch a function from a sibling package at call time, so factors.py imports without render/explain."""
    try:
        mod = importlib.import_module(f"ecco_sdk.{module}")
    except ImportError as exc:
        raise ImportError(f"ecco_sdk.{module} is not available ({exc}); it provides {name}()") from exc
    fn = getattr(mod, name, None)
    if fn is None:
        raise ImportError(f"ecco_sdk.{module} has no {name}(); update ecco_sdk or use the result's arrays directly")
    return fn


def _top_neurons(components: np.ndarray, index: np.ndarray, factor: Any, n: Any) -> list[tuple[int, int, float]]:
    """Largest loadings of one factor as (layer, neuron, weight), weight negative for negative-part features."""
    k = components.shape[0]
    f = check_int(factor, "factor")
    if not -k <= f < k:
        raise InputError(f"factor must be between 0 and {k - 1} (there are {k} factors), got {f}")
    count = check_int(n, "n")
    if count < 1:
        raise InputError(f"n must be at least 1, got {count}")
    row = components[f]
    best = np.argsort(-row, kind="stable")[:count]
    return [(int(index[i, 0]), int(index[i, 1]), float(row[i] * index[i, 2])) for i in best]


def _write_npz(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """One .npz file holding the arrays plus a JSON metadata string, written to exactly `path`."""
    out = Path(path)
    with out.open("wb") as fh:
        np.savez(fh, meta_json=np.array(json.dumps(meta)), **arrays)
    return out


def _read_npz(
    path: str | Path, kind: str, keys: tuple[str, ...], max_bytes: int = MAX_LOAD_BYTES
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read what _write_npz wrote, checking it is the expected kind of ecco_sdk factors file.

    Bounded like `ecco_sdk.load`: a non-regular file, a file over `max_bytes`, or arrays whose npy headers
    claim more than that are refused before anything is inflated.
    """
    src = Path(path)
    if not src.exists():
        raise InputError(f"no file at {src}; pass the path that save() wrote")
    where = str(src)
    with open_regular(src, max_bytes) as fp:
        data = fp.read(max_bytes + 1)
    arrays = read_npz(data, ByteBudget(max_bytes, where), where, text=("meta_json",))
    meta_json = arrays.pop("meta_json", None)
    if meta_json is None or meta_json.dtype.kind != "U" or meta_json.shape != ():
        raise FileFormatError(f"{src} is not an ecco_sdk factors file (no meta_json text)")
    meta = read_json(str(meta_json).encode("utf-8", "surrogatepass"), f"{where}: meta_json")
    if not isinstance(meta, dict):
        raise FileFormatError(f"{src}: meta_json is a {type(meta).__name__}, not an object")
    if meta.get("format") != _FORMAT or meta.get("kind") != kind:
        raise FileFormatError(
            f"{src} holds {short(meta.get('kind'))} / {short(meta.get('format'))}, expected {kind!r} / {_FORMAT!r}"
        )
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise FileFormatError(f"{src} lacks the arrays {missing}")
    return arrays, meta


@dataclass
class NMFResult:
    """Factors found in one text: where each neuron group fires (`factors`) and which neurons form it.

    Attributes:
        tokens: One display string per factorized position.
        factors: (n_components, positions) float32 activations, >= 0, strongest factor first.
        components: (n_components, n_features) float32 loadings, >= 0, unit L2 (or max) rows.
        neuron_index: (n_features, 3) int32 rows of (layer, neuron, sign), naming each feature column.
        layers: The half-open layer range [from_layer, to_layer) that was used.
        negative: How negative activations were made non-negative: "clip", "split" or "shift".
        n_input_tokens: How many of the positions are the prompt.
        normalize: How component rows were scaled: "l2" or "max".
        reconstruction_error: ||X - W H||_F on the non-negative matrix.
        relative_error: reconstruction_error / ||X||_F.
        explained_fraction: 1 - relative_error**2, the share of ||X||_F^2 reproduced (uncentred).
        positions: The original position of each column when a subset was factorized, else None.
        meta: Solver settings and provenance.
    """

    tokens: list[str]
    factors: np.ndarray  # (n_components, positions) float32, >= 0
    components: np.ndarray  # (n_components, n_features) float32, >= 0, unit L2 (or max) rows
    neuron_index: np.ndarray  # (n_features, 3) int32 rows of (layer, neuron, sign)
    layers: tuple[int, int]  # half-open [from_layer, to_layer)
    negative: str = "clip"
    n_input_tokens: int = 0
    normalize: str = "l2"
    reconstruction_error: float = 0.0  # ||X - W H||_F on the non-negative matrix
    relative_error: float = 0.0  # reconstruction_error / ||X||_F
    explained_fraction: float = 1.0  # 1 - relative_error**2: share of ||X||_F^2 reproduced (uncentred)
    positions: np.ndarray | None = None  # original position of each column when a subset was factorized
    meta: dict[str, Any] = field(default_factory=dict)  # solver settings and provenance

    @property
    def n_components(self) -> int:
        """How many factors there are."""
        return int(self.factors.shape[0])

    @property
    def n_features(self) -> int:
        """How many feature columns were factorized (neurons, or twice that for negative='split')."""
        return int(self.components.shape[1])

    def top_neurons(self, factor: int, n: int = 10) -> list[tuple[int, int, float]]:
        """The `n` neurons with the largest loading on `factor`, as (layer, neuron, weight), strongest first.

        weight is the normalised loading; with negative="split" it is negated for a neuron's negative-part
        feature (the factor is active when that neuron is *negative*), so the same neuron may appear twice.

        Args:
            factor: The factor's index (negative counts from the end).
            n: How many neurons to return, at least 1.

        Returns:
            Up to `n` (layer, neuron, weight) tuples.
        """
        return _top_neurons(self.components, self.neuron_index, factor, n)

    def explore(self, top_n: int = 10, **kw: Any) -> Any:
        """Interactive HTML view of the factors over the tokens (ecco_sdk.render.factors_view).

        Args:
            top_n: How many top neurons to list per factor.
            **kw: Passed on to `ecco_sdk.render.factors_view`, e.g. `explanations` or `selected`.

        Returns:
            A `Visual` that shows itself in a notebook and saves as one HTML file.
        """
        view = _lazy("render", "factors_view")
        tops = [self.top_neurons(k, top_n) for k in range(self.n_components)]
        return view(self.tokens, self.factors, top_neurons=tops, **kw)

    def plot(self, **kw: Any) -> Any:
        """Matplotlib figure of each factor's activation over the tokens (ecco_sdk.render.factors_figure).

        Args:
            **kw: Passed on to `ecco_sdk.render.factors_figure`.

        Returns:
            A matplotlib Figure.
        """
        return _lazy("render", "factors_figure")(self.tokens, self.factors, **kw)

    def explain(self, **kw: Any) -> Any:
        """LLM-written explanation of each factor (ecco_sdk.explain.explain_factors; kw are forwarded).

        Args:
            **kw: Passed on to `ecco_sdk.explain.explain_factors`, e.g. `backend` or `n_examples`.

        Returns:
            One Explanation per factor, in factor order.
        """
        return _lazy("explain", "explain_factors")(self.tokens, self.factors, **kw)

    def to_dict(self, full: bool = False, top_n: int = 10) -> dict[str, Any]:
        """JSON-serializable view: factors and top neurons; the big component matrix only when `full`.

        Args:
            full: Include the component matrix and the neuron index.
            top_n: How many top neurons to list per factor.

        Returns:
            A dict of plain lists, numbers and strings.
        """
        out: dict[str, Any] = {
            "kind": "nmf",
            "tokens": list(self.tokens),
            "n_input_tokens": int(self.n_input_tokens),
            "positions": None if self.positions is None else [int(p) for p in self.positions],
            "layers": [int(self.layers[0]), int(self.layers[1])],
            "negative": self.negative,
            "normalize": self.normalize,
            "n_components": self.n_components,
            "n_features": self.n_features,
            "factors": self.factors.astype(float).tolist(),
            "top_neurons": [[list(t) for t in self.top_neurons(k, top_n)] for k in range(self.n_components)],
            "reconstruction_error": float(self.reconstruction_error),
            "relative_error": float(self.relative_error),
            "explained_fraction": float(self.explained_fraction),
            "meta": dict(self.meta),
        }
        if full:
            out["components"] = self.components.astype(float).tolist()
            out["neuron_index"] = self.neuron_index.tolist()
        return out

    def save(self, path: str | Path) -> Path:
        """Write the result to one .npz file (arrays plus JSON metadata), readable by NMFResult.load.

        Args:
            path: The file to write, used exactly as given (no suffix is added).

        Returns:
            The path written.
        """
        meta = {k: v for k, v in self.to_dict().items() if k not in ("factors", "top_neurons", "positions")}
        meta["format"] = _FORMAT
        arrays = {"factors": self.factors, "components": self.components, "neuron_index": self.neuron_index}
        if self.positions is not None:
            arrays["positions"] = np.asarray(self.positions)
        return _write_npz(path, arrays, meta)

    @classmethod
    def load(cls, path: str | Path) -> NMFResult:
        """Read a result written by NMFResult.save.

        Args:
            path: The .npz file; files over the load limit or of another kind are refused.

        Returns:
            The result, equal to the one saved.
        """
        arrays, meta = _read_npz(path, "nmf", ("factors", "components", "neuron_index"))
        return cls(
            tokens=list(meta["tokens"]),
            factors=arrays["factors"],
            components=arrays["components"],
            neuron_index=arrays["neuron_index"],
            layers=(int(meta["layers"][0]), int(meta["layers"][1])),
            negative=meta["negative"],
            n_input_tokens=int(meta["n_input_tokens"]),
            normalize=meta["normalize"],
            reconstruction_error=float(meta["reconstruction_error"]),
            relative_error=float(meta["relative_error"]),
            explained_fraction=float(meta["explained_fraction"]),
            positions=arrays.get("positions"),
            meta=dict(meta.get("meta", {})),
        )

    def __repr__(self) -> str:
        lo, hi = self.layers
        return (
            f"NMFResult({self.n_components} factors over {len(self.tokens)} tokens, layers [{lo}, {hi}), "
            f"{self.n_features} features, negative={self.negative!r}, normalize={self.normalize!r}, "
            f"relative error {self.relative_error:.3f})"
        )


def run_nmf(
    activations: Any,
    tokens: Sequence[str],
    n_components: int = 4,
    from_layer: int | None = None,
    to_layer: int | None = None,
    positions: Any = None,
    negative: NegativeMode = "clip",
    n_input_tokens: int = 0,
    seed: int = 0,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    normalize: Normalize = "l2",
    init: Init = "nndsvda",
) -> NMFResult:
    """Factorize one text's FFN activations into `n_components` neuron groups and where each fires.

    Factors come ordered by descending total activation and a run is deterministic for a given `seed`.

    Args:
        activations: (layers, neurons, positions) for every layer, numpy or torch.
        tokens: One display string per position.
        n_components: How many factors to find, 1..number of positions.
        from_layer: The first layer used (None: the first).
        to_layer: The end of the layer range, exclusive (None: past the last layer).
        positions: Restricts the columns factorized: None, a slice, a boolean mask or increasing indices.
        negative: "clip", "split" or "shift": how negative activations are handled (module docstring).
        n_input_tokens: How many positions are the prompt (kept for the views).
        seed: Seed of the solver's initialisation, 0..2**32 - 1.
        max_iter: Most solver iterations, at least 1.
        tol: The solver's stopping tolerance, a positive number.
        normalize: "l2" or "max": how component rows are scaled.
        init: The NMF initialisation, e.g. "nndsvda".

    Returns:
        The factors, their neuron loadings and the fit's errors.
    """
    acts = as_activations(activations)
    n_layers, n_neurons, n_pos = acts.shape
    toks = check_tokens(tokens, n_pos)
    n_input = _check_n_input(n_input_tokens, n_pos)
    lo, hi = _layer_range(n_layers, from_layer, to_layer)
    negative = check_choice(negative, "negative", NEGATIVE_MODES)  # type: ignore[assignment]
    opts = _fit_options(seed, max_iter, tol, normalize, init)
    pos = _select_positions(positions, n_pos)
    if pos.size < 2:
        raise InputError(f"NMF needs at least 2 positions, got {pos.size}; pass a longer text or more positions")
    chosen = acts[lo:hi] if pos.size == n_pos else acts[lo:hi][:, :, pos]
    _check_finite(chosen, "activations", layer_offset=lo)
    x = _nonnegative(_signed_matrix(chosen), negative)
    k = _check_n_components(n_components, x.shape[0], x.shape[1])
    w, h, fit = _fit_ordered(x, k, opts)
    subset = pos.size != n_pos
    return NMFResult(
        tokens=[toks[i] for i in pos] if subset else toks,
        factors=np.ascontiguousarray(w.T),
        components=h,
        neuron_index=neuron_index(lo, hi, n_neurons, negative),
        layers=(lo, hi),
        negative=negative,
        n_input_tokens=int(np.count_nonzero(pos < n_input)),
        normalize=opts.normalize,
        reconstruction_error=fit.error,
        relative_error=fit.relative,
        explained_fraction=fit.explained,
        positions=pos if subset else None,
        meta={"seed": opts.seed, "max_iter": opts.max_iter, "tol": opts.tol, "init": opts.init},
    )


# --------------------------------------------------------------------------------------------- corpus model


@dataclass
class FactorModel:
    """NMF components fitted on many texts, applied to new text so factor k means the same neurons everywhere.

    Attributes:
        components: (n_components, n_features) float32 loadings, ordered and normalised as in run_nmf.
        neuron_index: (n_features, 3) int32 rows of (layer, neuron, sign).
        layers: The half-open layer range [from_layer, to_layer).
        n_layers: Layers in the activations the model expects.
        n_neurons: Neurons per layer.
        negative: "clip", "split" or "shift", as in run_nmf.
        normalize: "l2" or "max", as in run_nmf.
        offsets: For negative="shift", the per-feature corpus minimum subtracted before clipping.
        totals: (n_components,) total factor activation over the fitted positions.
        n_texts: How many texts the model was fitted on.
        n_positions: Positions the NMF was fitted on (after any subsampling).
        n_positions_total: Positions in the corpus.
        reconstruction_error: ||X - W H||_F on the fitted matrix.
        relative_error: reconstruction_error / ||X||_F.
        explained_fraction: 1 - relative_error**2.
        meta: Solver settings.
    """

    components: np.ndarray  # (n_components, n_features) float32, ordered and normalised as in run_nmf
    neuron_index: np.ndarray  # (n_features, 3) int32 rows of (layer, neuron, sign)
    layers: tuple[int, int]  # half-open [from_layer, to_layer)
    n_layers: int  # layers in the activations the model expects
    n_neurons: int  # neurons per layer
    negative: str = "clip"
    normalize: str = "l2"
    offsets: np.ndarray | None = None  # negative="shift": per-feature corpus minimum subtracted before clipping
    totals: np.ndarray | None = None  # (n_components,) total factor activation over the fitted positions
    n_texts: int = 0
    n_positions: int = 0  # positions the NMF was fitted on (after any subsampling)
    n_positions_total: int = 0  # positions in the corpus
    reconstruction_error: float = 0.0
    relative_error: float = 0.0
    explained_fraction: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)  # solver settings

    @property
    def n_components(self) -> int:
        """How many factors the model has."""
        return int(self.components.shape[0])

    @property
    def n_features(self) -> int:
        """How many feature columns each position has."""
        return int(self.components.shape[1])

    def features(self, activations: Any) -> np.ndarray:
        """Non-negative (positions, features) matrix of one text, prepared exactly as during fitting.

        Args:
            activations: (layers, neurons, positions) activations from the model the factors were fitted on.

        Returns:
            A float32 (positions, n_features) matrix.
        """
        acts = as_activations(activations)
        if acts.shape[:2] != (self.n_layers, self.n_neurons):
            raise InputError(
                f"activations have {acts.shape[0]} layers x {acts.shape[1]} neurons; this model was fitted on "
                f"{self.n_layers} x {self.n_neurons} (capture them with the same language model)"
            )
        lo, hi = self.layers
        _check_finite(acts[lo:hi], "activations", layer_offset=lo)
        return _nonnegative(_signed_matrix(acts[lo:hi]), self.negative, self.offsets)

    def transform(self, activations: Any, tokens: Sequence[str], n_input_tokens: int = 0) -> NMFResult:
        """Factor activations of a new text under the fixed, fitted components (training order kept).

        Args:
            activations: (layers, neurons, positions) activations of the new text.
            tokens: One display string per position.
            n_input_tokens: How many positions are the prompt.

        Returns:
            An NMFResult whose factor k means the same neurons as in every other text.
        """
        acts = as_activations(activations)
        toks = check_tokens(tokens, acts.shape[2])
        n_input = _check_n_input(n_input_tokens, acts.shape[2])
        x = self.features(acts)
        w = _solve_w(
            x,
            self.components,
            int(self.meta.get("max_iter", DEFAULT_MAX_ITER)),
            float(self.meta.get("tol", DEFAULT_TOL)),
        )
        fit = _fit_quality(x, w, self.components)
        return NMFResult(
            tokens=toks,
            factors=np.ascontiguousarray(w.T),
            components=self.components,
            neuron_index=self.neuron_index,
            layers=self.layers,
            negative=self.negative,
            n_input_tokens=n_input,
            normalize=self.normalize,
            reconstruction_error=fit.error,
            relative_error=fit.relative,
            explained_fraction=fit.explained,
            meta={**self.meta, "source": "FactorModel.transform"},
        )

    def factor_fn(self, activations_for: ActivationsFor) -> FactorFn:
        """Adapt a capture function into the `factor_fn(texts) -> [(tokens, factors)]` that held-out scoring takes.

        Args:
            activations_for: activations_for(texts) returns one (tokens, activations) pair per text,
                activations shaped (layers, neurons, positions) like the training data.

        Returns:
            factor_fn(texts) -> one (tokens, factors) pair per text, factors shaped (n_components, positions).
        """

        def factor_fn(texts: list[str]) -> list[tuple[list[str], np.ndarray]]:
            pairs = list(activations_for(list(texts)))
            if len(pairs) != len(texts):
                raise InputError(f"activations_for returned {len(pairs)} results for {len(texts)} texts")
            return [(list(tok), self.transform(acts, tok).factors) for tok, acts in pairs]

        return factor_fn

    def top_neurons(self, factor: int, n: int = 10) -> list[tuple[int, int, float]]:
        """The `n` strongest (layer, neuron, weight) of one factor; negative weight = negative-part feature.

        Args:
            factor: The factor's index (negative counts from the end).
            n: How many neurons to return, at least 1.

        Returns:
            Up to `n` (layer, neuron, weight) tuples, strongest first.
        """
        return _top_neurons(self.components, self.neuron_index, factor, n)

    def to_dict(self, full: bool = False, top_n: int = 10) -> dict[str, Any]:
        """JSON-serializable summary; the component matrix, index and offsets only when `full`.

        Args:
            full: Include the component matrix, the neuron index and the offsets.
            top_n: How many top neurons to list per factor.

        Returns:
            A dict of plain lists, numbers and strings.
        """
        out: dict[str, Any] = {
            "kind": "factor_model",
            "layers": [int(self.layers[0]), int(self.layers[1])],
            "n_layers": int(self.n_layers),
            "n_neurons": int(self.n_neurons),
            "negative": self.negative,
            "normalize": self.normalize,
            "n_components": self.n_components,
            "n_features": self.n_features,
            "totals": None if self.totals is None else [float(t) for t in self.totals],
            "n_texts": int(self.n_texts),
            "n_positions": int(self.n_positions),
            "n_positions_total": int(self.n_positions_total),
            "reconstruction_error": float(self.reconstruction_error),
            "relative_error": float(self.relative_error),
            "explained_fraction": float(self.explained_fraction),
            "top_neurons": [[list(t) for t in self.top_neurons(k, top_n)] for k in range(self.n_components)],
            "meta": dict(self.meta),
        }
        if full:
            out["components"] = self.components.astype(float).tolist()
            out["neuron_index"] = self.neuron_index.tolist()
            out["offsets"] = None if self.offsets is None else self.offsets.astype(float).tolist()
        return out

    def save(self, path: str | Path) -> Path:
        """Write the model to one .npz file (arrays plus JSON metadata), readable by FactorModel.load.

        Args:
            path: The file to write, used exactly as given (no suffix is added).

        Returns:
            The path written.
        """
        meta = {k: v for k, v in self.to_dict().items() if k not in ("top_neurons", "totals")}
        meta["format"] = _FORMAT
        arrays = {"components": self.components, "neuron_index": self.neuron_index}
        for name in ("offsets", "totals"):
            value = getattr(self, name)
            if value is not None:
                arrays[name] = np.asarray(value)
        return _write_npz(path, arrays, meta)

    @classmethod
    def load(cls, path: str | Path) -> FactorModel:
        """Read a model written by FactorModel.save.

        Args:
            path: The .npz file; files over the load limit or of another kind are refused.

        Returns:
            The model, equal to the one saved.
        """
        arrays, meta = _read_npz(path, "factor_model", ("components", "neuron_index"))
        comps, index = arrays["components"], arrays["neuron_index"]
        if comps.ndim != 2 or index.shape != (comps.shape[1], 3):
            raise FileFormatError(f"{path}: components {comps.shape} do not match neuron_index {index.shape}")
        return cls(
            components=comps,
            neuron_index=index,
            layers=(int(meta["layers"][0]), int(meta["layers"][1])),
            n_layers=int(meta["n_layers"]),
            n_neurons=int(meta["n_neurons"]),
            negative=meta["negative"],
            normalize=meta["normalize"],
            offsets=arrays.get("offsets"),
            totals=arrays.get("totals"),
            n_texts=int(meta["n_texts"]),
            n_positions=int(meta["n_positions"]),
            n_positions_total=int(meta["n_positions_total"]),
            reconstruction_error=float(meta["reconstruction_error"]),
            relative_error=float(meta["relative_error"]),
            explained_fraction=float(meta["explained_fraction"]),
            meta=dict(meta.get("meta", {})),
        )

    def __repr__(self) -> str:
        lo, hi = self.layers
        return (
            f"FactorModel({self.n_components} factors, layers [{lo}, {hi}), {self.n_features} features, "
            f"negative={self.negative!r}, fitted on {self.n_positions} positions of {self.n_texts} texts, "
            f"relative error {self.relative_error:.3f})"
        )


def _corpus_arrays(activation_list: Any) -> list[np.ndarray]:
    """Validate a list of (layers, neurons, positions_i) arrays that share layers and neurons."""
    if isinstance(activation_list, np.ndarray) or not isinstance(activation_list, Sequence):
        raise InputError(
            "activation_list must be a list of (layers, neurons, positions) arrays, one per text; "
            "for a single text pass [activations]"
        )
    arrays = [as_activations(a, f"activation_list[{i}]") for i, a in enumerate(activation_list)]
    if not arrays:
        raise InputError("activation_list is empty; pass at least one text's activations")
    shape = arrays[0].shape[:2]
    for i, a in enumerate(arrays):
        if a.shape[:2] != shape:
            raise InputError(
                f"activation_list[{i}] has {a.shape[0]} layers x {a.shape[1]} neurons but the first text has "
                f"{shape[0]} x {shape[1]}; capture every text with the same model"
            )
    return arrays


def _sample_positions(lengths: list[int], max_positions: int | None, seed: int) -> list[np.ndarray]:
    """Per-text position indices to fit on: all of them, or a seeded uniform sample when over the cap."""
    total = sum(lengths)
    if max_positions is None or total <= max_positions:
        return [np.arange(n) for n in lengths]
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=max_positions, replace=False))
    starts = np.cumsum([0, *lengths])
    return [chosen[(chosen >= a) & (chosen < b)] - a for a, b in itertools.pairwise(starts)]


def _check_max_positions(max_positions: Any) -> int | None:
    """The subsampling cap must be None or at least 2 positions."""
    if max_positions is None:
        return None
    cap = check_int(max_positions, "max_positions")
    if cap < 2:
        raise InputError(f"max_positions must be at least 2 (or None for no cap), got {cap}")
    return cap


def fit_factor_model(
    activation_list: Sequence[Any],
    n_components: int = 4,
    from_layer: int | None = None,
    to_layer: int | None = None,
    negative: NegativeMode = "clip",
    seed: int = 0,
    max_positions: int | None = DEFAULT_MAX_POSITIONS,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    normalize: Normalize = "l2",
    init: Init = "nndsvda",
) -> FactorModel:
    """Fit one NMF on the positions of many texts, so factors can be compared and scored on held-out text.

    Positions are stacked row-wise into one float32 matrix; above `max_positions` a seeded uniform sample of
    positions is used and a UserWarning says so. Normalisation, ordering and the negative modes are those of
    run_nmf; with "shift" the per-neuron minimum is taken over the whole corpus.

    Args:
        activation_list: One (layers, neurons, positions_i) array per text, all from the same model.
        n_components: How many factors to find.
        from_layer: The first layer used (None: the first).
        to_layer: The end of the layer range, exclusive (None: past the last layer).
        negative: "clip", "split" or "shift", as in run_nmf.
        seed: Seed of the initialisation and of the position sample.
        max_positions: Most positions fitted, at least 2 (None: no cap).
        max_iter: Most solver iterations.
        tol: The solver's stopping tolerance.
        normalize: "l2" or "max", as in run_nmf.
        init: The NMF initialisation, e.g. "nndsvda".

    Returns:
        The fitted FactorModel.
    """
    arrays = _corpus_arrays(activation_list)
    n_layers, n_neurons = arrays[0].shape[:2]
    lo, hi = _layer_range(n_layers, from_layer, to_layer)
    negative = check_choice(negative, "negative", NEGATIVE_MODES)  # type: ignore[assignment]
    opts = _fit_options(seed, max_iter, tol, normalize, init)
    cap = _check_max_positions(max_positions)
    for i, a in enumerate(arrays):
        _check_finite(a[lo:hi], f"activation_list[{i}]", layer_offset=lo)
    lengths = [a.shape[2] for a in arrays]
    picks = _sample_positions(lengths, cap, opts.seed)
    n_rows = sum(p.size for p in picks)
    n_features = (hi - lo) * n_neurons * (2 if negative == "split" else 1)
    if n_rows < sum(lengths):
        warnings.warn(
            f"fitting on a sample of {n_rows} of {sum(lengths)} positions (the full matrix would take "
            f"{sum(lengths) * n_features * 4 / 1e9:.1f} GB as float32); raise max_positions or pass "
            "max_positions=None to use them all",
            UserWarning,
            stacklevel=2,
        )
    if n_rows < 2:
        raise InputError(f"NMF needs at least 2 positions, the corpus has {n_rows}; add texts")
    offsets = None
    if negative == "shift":
        offsets = np.min([_signed_matrix(a[lo:hi]).min(axis=0) for a in arrays], axis=0)
    x = np.empty((n_rows, n_features), dtype=np.float32)
    row = 0
    for a, pick in zip(arrays, picks, strict=True):
        if pick.size:
            x[row : row + pick.size] = _nonnegative(_signed_matrix(a[lo:hi][:, :, pick]), negative, offsets)
            row += pick.size
    k = _check_n_components(n_components, n_rows, n_features)
    w, h, fit = _fit_ordered(x, k, opts)
    return FactorModel(
        components=h,
        neuron_index=neuron_index(lo, hi, n_neurons, negative),
        layers=(lo, hi),
        n_layers=n_layers,
        n_neurons=n_neurons,
        negative=negative,
        normalize=opts.normalize,
        offsets=offsets,
        totals=w.sum(axis=0, dtype=np.float64),
        n_texts=len(arrays),
        n_positions=n_rows,
        n_positions_total=sum(lengths),
        reconstruction_error=fit.error,
        relative_error=fit.relative,
        explained_fraction=fit.explained,
        meta={"seed": opts.seed, "max_iter": opts.max_iter, "tol": opts.tol, "init": opts.init},
    )


def texts_activations(lm: Any, texts: Sequence[str], batch_size: int = 8) -> list[tuple[list[str], np.ndarray]]:
    """FFN activations of many texts through batched forward passes (padding removed), for corpus analyses.

    Args:
        lm: A loaded `ecco_sdk.LM`.
        texts: The texts to run.
        batch_size: Texts per forward pass.

    Returns:
        One (tokens, activations) pair per text, activations shaped (layers, neurons, positions).
    """

    texts = list(texts)
    if not texts:
        raise InputError("pass at least one text")
    for i, text in enumerate(texts):
        check_text(text, f"text {i}")  # here, so the index counts over all texts, not within one batch
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    pairs: list[tuple[list[str], np.ndarray]] = []
    bar = tqdm(total=len(texts), desc="ecco_sdk: capturing activations", disable=not lm.verbose, leave=False)
    with bar:
        for start in range(0, len(texts), batch_size):
            for seq in lm(texts[start : start + batch_size]):
                if seq.activations is None:
                    raise InputError(
                        "the model was loaded without activations; use from_pretrained(name, activations=True)"
                    )
                pairs.append((seq.tokens, seq.activations))
            bar.update(min(batch_size, len(texts) - start))
    return pairs


def fit_corpus_nmf(lm: Any, texts: Sequence[str], n_components: int = 4, batch_size: int = 8, **kw: Any) -> FactorModel:
    """Fit one factor model on many texts run through `lm`; apply it to new text with `apply_factor_model`.

    Args:
        lm: A loaded `ecco_sdk.LM`.
        texts: The corpus.
        n_components: How many factors to find.
        batch_size: Texts per forward pass.
        **kw: Passed on to `fit_factor_model`, e.g. `from_layer` or `max_positions`.

    Returns:
        The fitted FactorModel.
    """
    pairs = texts_activations(lm, texts, batch_size)
    model = fit_factor_model([acts for _, acts in pairs], n_components=n_components, **kw)
    model.meta["model_name"] = lm.name
    return model


def apply_factor_model(model: FactorModel, lm: Any, text: str) -> NMFResult:
    """Factor activations of a new text under a corpus-fitted model.

    Args:
        model: A FactorModel fitted on activations of `lm`.
        lm: The loaded `ecco_sdk.LM` the model was fitted with.
        text: The new text.

    Returns:
        The text's factors under the model's fixed components.
    """
    ((tokens, acts),) = texts_activations(lm, [text])
    return model.transform(acts, tokens)
