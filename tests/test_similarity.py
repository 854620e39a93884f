"""Representation similarity: invariances, analytic cases, naive-formula cross-checks and input errors."""

from __future__ import annotations

import numpy as np
import pytest

from ecco_sdk.errors import EccoError, InputError
from ecco_sdk.similarity import canonical_correlations, cca, cka, layer_similarity, pwcca, svcca

CCA_FAMILY = [cca, svcca, pwcca]


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _orthogonal(n: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(_rng(seed).standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _centered_orthonormal_rows(k: int, n: int, seed: int) -> np.ndarray:
    """k orthonormal, zero-mean vectors of length n (rows), for exactly known correlations."""
    m = _rng(seed).standard_normal((n, k))
    m -= m.mean(axis=0)
    q, _ = np.linalg.qr(m)
    return q.T


def _naive_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Textbook formula: HSIC(K, L) = tr(K H L H) / (n-1)^2 with K = X^T X, L = Y^T Y, H = I - 11^T/n."""
    n = x.shape[1]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x.T @ x, y.T @ y

    def hsic(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.trace(a @ h @ b @ h)) / (n - 1) ** 2

    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def _naive_unbiased_hsic(k: np.ndarray, l_: np.ndarray) -> float:
    """Song et al. 2012 estimator, written out literally with explicit matrices."""
    n = k.shape[0]
    kt, lt = k.copy(), l_.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    one = np.ones(n)
    term1 = np.trace(kt @ lt)
    term2 = (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (one @ kt @ lt @ one)
    return float(term1 + term2 - term3) / (n * (n - 3))


def _layers(n_layers: int = 4, features: int = 12, samples: int = 300, seed: int = 0) -> np.ndarray:
    """A random walk of layers: each layer is the previous one plus fresh noise, so similarity decays with depth."""
    rng = _rng(seed)
    out = [rng.standard_normal((features, samples))]
    for _ in range(n_layers - 1):
        out.append(out[-1] + 0.8 * rng.standard_normal((features, samples)))
    return np.stack(out)


# ------------------------------------------------------------------------------------------------ identity


@pytest.mark.parametrize("fn", [*CCA_FAMILY, cka])
def test_identical_views_score_one(fn) -> None:
    x = _rng(1).standard_normal((10, 200))
    assert fn(x, x) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("fn", [*CCA_FAMILY, cka])
def test_orthogonal_rotation_scores_one(fn) -> None:
    x = _rng(2).standard_normal((10, 200))
    rotated = _orthogonal(10, seed=3) @ x
    assert not np.allclose(rotated, x)
    assert fn(x, rotated) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("fn", CCA_FAMILY)
def test_cca_family_invariant_to_any_invertible_map_and_offsets(fn) -> None:
    x = _rng(4).standard_normal((6, 150))
    mixed = _rng(5).standard_normal((6, 6)) @ x + 7.0
    assert fn(x, mixed) == pytest.approx(1.0, abs=1e-8)


def test_linear_cka_is_not_invariant_to_general_invertible_maps() -> None:
    x = _rng(6).standard_normal((6, 300))
    stretched = np.diag([1.0, 1.0, 1.0, 1.0, 1.0, 30.0]) @ x
    assert cka(x, stretched) < 0.6


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_cka_invariant_to_isotropic_scaling_and_rotation(kernel: str) -> None:
    rng = _rng(7)
    x = rng.standard_normal((8, 120))
    y = x[:5] + 0.5 * rng.standard_normal((5, 120))
    base = cka(x, y, kernel=kernel)
    assert 0.2 < base < 0.99
    assert cka(123.0 * x, y, kernel=kernel) == pytest.approx(base, abs=1e-10)
    assert cka(x, 0.01 * (_orthogonal(5, seed=8) @ y), kernel=kernel) == pytest.approx(base, abs=1e-10)


# ---------------------------------------------------------------------------------------------- unrelated


def test_independent_views_score_low() -> None:
    rng = _rng(9)
    x, y = rng.standard_normal((20, 1000)), rng.standard_normal((25, 1000))
    assert cka(x, y) < 0.3
    assert cka(x, y, kernel="rbf") < 0.3
    for fn in CCA_FAMILY:
        assert fn(x, y) < 0.5


def test_debiased_cka_near_zero_where_biased_cka_is_inflated() -> None:
    rng = _rng(10)
    x, y = rng.standard_normal((300, 100)), rng.standard_normal((300, 100))
    biased = cka(x, y)
    assert biased > 0.5  # many features, few samples: the biased estimate is far from 0
    assert cka(x, y, debiased=True) < 0.05
    assert cka(x, y, kernel="rbf", debiased=True) < 0.05
    assert cka(x, x, debiased=True) == pytest.approx(1.0, abs=1e-9)


def test_debiased_cka_stays_high_for_related_views() -> None:
    rng = _rng(11)
    x = rng.standard_normal((300, 100))
    assert cka(x, x + 0.3 * rng.standard_normal(x.shape), debiased=True) > 0.8


# --------------------------------------------------------------------------------------- analytic / naive


def test_cca_recovers_known_canonical_correlations() -> None:
    n, c = 200, np.array([0.9, 0.6, 0.3])
    u = _centered_orthonormal_rows(8, n, seed=12)
    s = np.sqrt(1.0 - c**2)
    x0 = np.vstack([u[0:3], u[6:8]])  # 3 shared latents + 2 dims unrelated to y
    y0 = c[:, None] * u[0:3] + s[:, None] * u[3:6]
    x = _rng(13).standard_normal((5, 5)) @ x0 + 4.0
    y = _rng(14).standard_normal((3, 3)) @ y0 - 2.0
    np.testing.assert_allclose(canonical_correlations(x, y), c, atol=1e-10)
    assert cca(x, y) == pytest.approx(c.mean(), abs=1e-10)
    assert cca(y, x) == pytest.approx(c.mean(), abs=1e-10)


def test_pwcca_matches_projection_weights_analytically() -> None:
    n, c = 200, np.array([0.95, 0.5, 0.1])
    u = _centered_orthonormal_rows(6, n, seed=15)
    y = c[:, None] * u[0:3] + np.sqrt(1.0 - c**2)[:, None] * u[3:6]
    a = np.array([[5.0, 0.1, 0.2], [4.0, 0.3, -0.1], [-3.0, 0.2, 1.0]])
    x = a @ u[0:3]  # neuron j = sum_l a[j, l] u_l, so <u_i, x_j> = a[j, i]
    weights = np.abs(a).sum(axis=0)
    expected = float(weights @ c / weights.sum())
    assert pwcca(x, y) == pytest.approx(expected, abs=1e-10)
    assert abs(pwcca(x, y) - cca(x, y)) > 0.1  # weighting matters here: x lives mostly on u_0


def test_rank_deficient_views_are_handled() -> None:
    rng = _rng(16)
    base = rng.standard_normal((4, 100))
    x = np.vstack([base, base[0:1], np.full((1, 100), 3.0)])  # a duplicated and a constant neuron
    assert cca(x, x) == pytest.approx(1.0, abs=1e-9)
    assert cca(x, base) == pytest.approx(1.0, abs=1e-9)
    assert len(canonical_correlations(x, base)) == 4
    assert pwcca(x, base) == pytest.approx(1.0, abs=1e-9)


def test_linear_cka_matches_naive_formula() -> None:
    rng = _rng(17)
    x = rng.standard_normal((15, 80)) + 2.0
    y = x[:7] @ rng.standard_normal((80, 80)) * 0.1 + rng.standard_normal((7, 80))
    assert cka(x, y) == pytest.approx(_naive_linear_cka(x - x.mean(1, keepdims=True), y), abs=1e-10)
    assert cka(x, y) == pytest.approx(_naive_linear_cka(x, y), abs=1e-10)


def test_rbf_cka_matches_naive_formula() -> None:
    rng = _rng(18)
    x, y = rng.standard_normal((6, 40)), rng.standard_normal((4, 40))
    y[:2] += x[:2]

    def rbf(v: np.ndarray, sigma: float) -> np.ndarray:
        d = np.array([[np.linalg.norm(v[:, i] - v[:, j]) for j in range(v.shape[1])] for i in range(v.shape[1])])
        med = np.median(d[np.triu_indices(v.shape[1], 1)])
        return np.exp(-(d**2) / (2 * (sigma * med) ** 2))

    n = x.shape[1]
    h = np.eye(n) - 1.0 / n
    k, l_ = rbf(x, 0.5), rbf(y, 0.5)
    expected = np.trace(k @ h @ l_ @ h) / np.sqrt(np.trace(k @ h @ k @ h) * np.trace(l_ @ h @ l_ @ h))
    assert cka(x, y, kernel="rbf", sigma=0.5) == pytest.approx(expected, abs=1e-10)


def test_debiased_cka_matches_naive_unbiased_hsic() -> None:
    rng = _rng(19)
    x = rng.standard_normal((10, 30))
    y = x[:4] + rng.standard_normal((4, 30))
    xc, yc = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    k, l_ = xc.T @ xc, yc.T @ yc
    expected = _naive_unbiased_hsic(k, l_) / np.sqrt(_naive_unbiased_hsic(k, k) * _naive_unbiased_hsic(l_, l_))
    assert 0.05 < expected < 0.95
    assert cka(x, y, debiased=True) == pytest.approx(expected, abs=1e-10)


# ------------------------------------------------------------------------------------------------- SVCCA


def test_svcca_ignores_low_variance_noise_that_dilutes_cca() -> None:
    rng = _rng(20)
    latent = rng.standard_normal((3, 400))
    x = rng.standard_normal((20, 3)) @ latent + 0.01 * rng.standard_normal((20, 400))
    y = rng.standard_normal((15, 3)) @ latent + 0.01 * rng.standard_normal((15, 400))
    assert cca(x, y) < 0.6
    assert svcca(x, y) > 0.999
    assert svcca(x, y, n_dims=3) > 0.999
    assert svcca(x, y, n_dims=10) < svcca(x, y, n_dims=3) - 0.2


def test_svcca_works_with_more_features_than_samples_without_trivial_ones() -> None:
    rng = _rng(21)
    x, y = rng.standard_normal((50, 21)), rng.standard_normal((40, 21))
    with pytest.raises(InputError, match="svcca"):
        cca(x, y)
    value = svcca(x, y, keep_variance=1.0)  # capped at (21 - 1) // 2 = 10 dims per view
    assert 0.0 < value < 0.95
    with pytest.raises(InputError, match="n_dims=11"):
        svcca(x, y, n_dims=11)


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5, "0.9"])
def test_svcca_rejects_bad_keep_variance(bad) -> None:
    x = _rng(22).standard_normal((4, 50))
    with pytest.raises(InputError, match="keep_variance"):
        svcca(x, x, keep_variance=bad)


# ----------------------------------------------------------------------------------------- layer matrices


@pytest.mark.parametrize(
    ("method", "kw"),
    [
        ("cka", {}),
        ("cka", {"kernel": "rbf"}),
        ("cka", {"debiased": True}),
        ("cca", {}),
        ("svcca", {"keep_variance": 0.95}),
        ("pwcca", {}),
    ],
)
def test_layer_similarity_matrix_shape_diagonal_and_decay(method: str, kw: dict) -> None:
    acts = _layers()
    m = layer_similarity(acts, method=method, **kw)
    assert m.shape == (4, 4)
    assert m.dtype == np.float64
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-9)
    assert ((m >= 0.0) & (m <= 1.0)).all()
    assert m[0, 1] > m[0, 3] + 0.02  # layers further apart in the random walk are less alike
    if method != "pwcca":
        np.testing.assert_array_equal(m, m.T)


@pytest.mark.parametrize(
    ("method", "fn", "kw"),
    [
        ("cka", cka, {}),
        ("cka", cka, {"kernel": "rbf", "sigma": 0.4}),
        ("cka", cka, {"debiased": True}),
        ("cca", cca, {}),
        ("svcca", svcca, {"n_dims": 5}),
        ("pwcca", pwcca, {}),
    ],
)
def test_layer_similarity_agrees_with_pairwise_functions(method: str, fn, kw: dict) -> None:
    a, b = _layers(seed=23), _layers(n_layers=3, seed=24)
    b[1] = a[2] + 0.5 * _rng(25).standard_normal(a[2].shape)
    m = layer_similarity(a, b, method=method, **kw)
    assert m.shape == (4, 3)
    expected = np.array([[fn(a[i], b[j], **kw) for j in range(3)] for i in range(4)])
    np.testing.assert_allclose(m, expected, atol=1e-10)
    assert m[2, 1] == m.max()  # the planted relation is the strongest


def test_layer_similarity_accepts_lists_of_different_widths() -> None:
    rng = _rng(26)
    base = rng.standard_normal((8, 200))
    layers = [base, np.vstack([base, rng.standard_normal((4, 200))]), rng.standard_normal((3, 200))]
    m = layer_similarity(layers, method="cka")
    assert m.shape == (3, 3)
    assert m[0, 1] > 0.5 > m[0, 2]


def test_layer_similarity_accepts_torch_tensors() -> None:
    torch = pytest.importorskip("torch")
    acts = _layers()
    m = layer_similarity(torch.tensor(acts, dtype=torch.float32))
    np.testing.assert_allclose(m, layer_similarity(acts), atol=1e-5)
    x = torch.tensor(acts[0], dtype=torch.bfloat16)
    assert isinstance(cka(x, x), float)
    assert cka(x, x) == pytest.approx(1.0, abs=1e-9)


# ------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("fn", [*CCA_FAMILY, cka])
def test_mismatched_samples_error_names_both_shapes(fn) -> None:
    rng = _rng(27)
    with pytest.raises(InputError, match=r"\(4, 50\) and \(4, 60\)"):
        fn(rng.standard_normal((4, 50)), rng.standard_normal((4, 60)))


@pytest.mark.parametrize("fn", [*CCA_FAMILY, cka])
def test_one_dimensional_input_is_rejected(fn) -> None:
    with pytest.raises(InputError, match="2-D"):
        fn(np.arange(10.0), np.arange(10.0))


@pytest.mark.parametrize("fn", [*CCA_FAMILY, cka])
def test_nan_input_is_rejected(fn) -> None:
    x = _rng(28).standard_normal((3, 40))
    y = x.copy()
    y[1, 7] = np.nan
    with pytest.raises(InputError, match=r"NaN.*\(1, 7\)"):
        fn(x, y)


@pytest.mark.parametrize("fn", [cca, pwcca, canonical_correlations])
def test_cca_needs_more_samples_than_features(fn) -> None:
    rng = _rng(29)
    with pytest.raises(InputError, match="30 features but only 30 samples"):
        fn(rng.standard_normal((30, 30)), rng.standard_normal((5, 30)))


@pytest.mark.parametrize("fn", [*CCA_FAMILY, cka])
def test_constant_view_is_rejected(fn) -> None:
    x = _rng(30).standard_normal((3, 40))
    with pytest.raises(InputError, match="constant"):
        fn(x, np.ones((2, 40)))


def test_input_error_is_an_ecco_value_error() -> None:
    with pytest.raises(EccoError):
        cka(np.ones((2, 3, 4)), np.ones((2, 3, 4)))
    with pytest.raises(ValueError):
        cka([["a", "b"]], [["c", "d"]])


def test_bad_cka_options_are_rejected() -> None:
    x = _rng(31).standard_normal((3, 40))
    with pytest.raises(InputError, match="kernel"):
        cka(x, x, kernel="poly")
    with pytest.raises(InputError, match="sigma"):
        cka(x, x, kernel="rbf", sigma=0)
    with pytest.raises(InputError, match="at least 4 samples"):
        cka(x[:, :3], x[:, :3], debiased=True)
    with pytest.raises(InputError, match="median distance"):
        cka(np.zeros((2, 10)) + np.eye(2, 10), x[:, :10], kernel="rbf")


def test_layer_similarity_rejects_bad_calls() -> None:
    acts = _layers()
    with pytest.raises(InputError, match="method"):
        layer_similarity(acts, method="procrustes")
    with pytest.raises(InputError, match="kernel"):
        layer_similarity(acts, method="cca", kernel="rbf")
    with pytest.raises(InputError, match="3-D"):
        layer_similarity(acts[0])
    with pytest.raises(InputError, match="same number of samples"):
        layer_similarity(acts, acts[:, :, :100])
    with pytest.raises(InputError, match=r"activations_a\[1\]"):
        layer_similarity([acts[0], acts[1][:, :100]])
    with pytest.raises(InputError, match=r"activations_b\[0\].*features"):
        layer_similarity(acts, np.ones((2, 400, 300)), method="cca")
