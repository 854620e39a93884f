"""NMF factors: planted-factor recovery, agreement with scikit-learn, order, negative modes, corpus model, errors."""

from __future__ import annotations

import json
import sys
import types
import warnings

import numpy as np
import pytest
from sklearn.decomposition import NMF

import ecco_sdk.factors as factors_mod
from ecco_sdk.errors import FileFormatError, InputError
from ecco_sdk.factors import FactorModel, NMFResult, fit_factor_model, neuron_index, run_nmf

N_LAYERS, N_NEURONS = 4, 24


def _groups(seed: int = 0, size: int = 12) -> list[np.ndarray]:
    """Three disjoint groups of feature columns (layer-major flat index), spread over the layers."""
    perm = np.random.default_rng(seed).permutation(N_LAYERS * N_NEURONS)
    return [np.sort(perm[i * size : (i + 1) * size]) for i in range(3)]


def _loadings(groups: list[np.ndarray], seed: int = 1) -> np.ndarray:
    """(3, features) non-negative loadings, unit L2 rows, each supported on its own group."""
    rng = np.random.default_rng(seed)
    h = np.zeros((3, N_LAYERS * N_NEURONS))
    for k, g in enumerate(groups):
        h[k, g] = rng.uniform(0.5, 1.5, g.size)
    return h / np.linalg.norm(h, axis=1, keepdims=True)


def _patterns(n_pos: int, seed: int = 2) -> np.ndarray:
    """(positions, 3) planted factor activations with clearly different totals (about 3 : 2 : 1).

    Position 0 is silent for every pattern, so every neuron's minimum over positions is 0.
    """
    rng = np.random.default_rng(seed)
    w = np.zeros((n_pos, 3))
    w[1::3, 0] = rng.uniform(2.5, 3.5, w[1::3, 0].shape)  # a 'comma' pattern: every third token
    w[2:8, 1] = rng.uniform(4.0, 6.0, 6)  # a 'prompt' pattern: an early stretch
    late = rng.choice(np.arange(8, n_pos), size=max(2, n_pos // 8), replace=False)
    w[late, 2] = rng.uniform(1.0, 2.0, late.size)  # a sparse pattern
    scale = np.array([3.0, 2.0, 1.0]) / w.sum(axis=0)
    return w * scale * n_pos


def _to_acts(x: np.ndarray) -> np.ndarray:
    """(positions, features) -> (layers, neurons, positions) float32, the layout run_nmf takes."""
    return np.ascontiguousarray(x.T.reshape(N_LAYERS, N_NEURONS, x.shape[0])).astype(np.float32)


def _planted(n_pos: int = 40, noise: float = 0.01, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Activations built from three planted patterns, plus the true (positions, 3) activations and tokens."""
    w = _patterns(n_pos, seed + 2)
    x = w @ _loadings(_groups(seed), seed + 1)
    x += noise * np.abs(np.random.default_rng(seed + 3).standard_normal(x.shape))
    return _to_acts(x), w, [f"t{i}" for i in range(n_pos)]


def _best_corr(found: np.ndarray, planted: np.ndarray) -> np.ndarray:
    """For each found factor (rows), the index of the planted pattern (columns) it correlates with best."""
    c = np.corrcoef(found, planted.T)[: found.shape[0], found.shape[0] :]
    return c


def _sk_matrix(acts: np.ndarray) -> np.ndarray:
    """The clipped (positions, features) matrix, built independently of factors.py."""
    return np.maximum(acts.reshape(-1, acts.shape[2]).T, 0).astype(np.float32)


# --------------------------------------------------------------------------------------------- recovery


def test_planted_factors_are_recovered_in_order_of_total_activation():
    acts, w, toks = _planted()
    res = run_nmf(acts, toks, n_components=3)
    corr = _best_corr(res.factors, w)
    assert np.all(corr.max(axis=1) > 0.95)
    # the planted totals are 3 : 2 : 1, so factor k must be planted pattern k
    assert list(corr.argmax(axis=1)) == [0, 1, 2]
    totals = res.factors.sum(axis=1)
    assert np.all(np.diff(totals) < 0)
    # with unit-L2 components the factor totals equal the planted ones (up to noise)
    np.testing.assert_allclose(totals, w.sum(axis=0), rtol=0.05)
    assert res.relative_error < 0.05 and res.explained_fraction > 0.99


def test_components_are_unit_l2_and_top_neurons_name_the_planted_group():
    acts, _, toks = _planted()
    res = run_nmf(acts, toks, n_components=3)
    np.testing.assert_allclose(np.linalg.norm(res.components, axis=1), 1.0, rtol=1e-5)
    assert res.factors.dtype == np.float32 and res.factors.shape == (3, 40)
    for k, group in enumerate(_groups()):
        expected = {(int(g) // N_NEURONS, int(g) % N_NEURONS) for g in group}
        top = res.top_neurons(k, n=group.size)
        assert {(layer, neuron) for layer, neuron, _ in top} == expected
        weights = [wt for _, _, wt in top]
        assert weights == sorted(weights, reverse=True) and all(wt > 0 for wt in weights)


def test_max_normalisation_gives_unit_max_rows_and_same_reconstruction():
    acts, _, toks = _planted()
    l2 = run_nmf(acts, toks, n_components=3)
    mx = run_nmf(acts, toks, n_components=3, normalize="max")
    np.testing.assert_allclose(mx.components.max(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(mx.factors.T @ mx.components, l2.factors.T @ l2.components, atol=1e-4)


# --------------------------------------------------------------------------------------------- scikit-learn


def _assert_same_factorization(res: NMFResult, w_sk: np.ndarray, h_sk: np.ndarray, tol: float) -> None:
    """Same W @ H, and every sklearn component matches one of ours after unit-L2 scaling."""
    ours = res.factors.T.astype(np.float64) @ res.components
    theirs = w_sk.astype(np.float64) @ h_sk
    assert np.linalg.norm(ours - theirs) <= tol * np.linalg.norm(theirs)
    h_unit = h_sk / np.linalg.norm(h_sk, axis=1, keepdims=True)
    match = h_unit @ res.components.T  # cosine between sklearn's and our components
    assert sorted(match.argmax(axis=1)) == list(range(res.n_components))
    assert np.all(match.max(axis=1) > 0.999)


def test_agrees_with_scikit_learn_on_the_same_matrix():
    acts, _, toks = _planted(noise=0.05)
    res = run_nmf(acts, toks, n_components=3)
    model = NMF(3, init="nndsvda", solver="cd", random_state=0, max_iter=200, tol=1e-4)
    w_sk = model.fit_transform(_sk_matrix(acts))
    _assert_same_factorization(res, w_sk, model.components_, tol=1e-3)


def test_large_matrix_path_is_scikit_learn_own_nndsvda(monkeypatch):
    # above _EXACT_SVD_MAX rows the start comes from scikit-learn itself: the result is sklearn's, reordered
    monkeypatch.setattr(factors_mod, "_EXACT_SVD_MAX", 0)
    acts, _, toks = _planted(noise=0.05)
    res = run_nmf(acts, toks, n_components=3)
    model = NMF(3, init="nndsvda", solver="cd", random_state=0, max_iter=200, tol=1e-4)
    w_sk = model.fit_transform(_sk_matrix(acts))
    _assert_same_factorization(res, w_sk, model.components_, tol=1e-5)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_runs_are_identical_and_reproducible():
    acts, _, toks = _planted(noise=0.1)
    a = run_nmf(acts, toks, n_components=5)
    b = run_nmf(acts.copy(), list(toks), n_components=5)
    np.testing.assert_array_equal(a.factors, b.factors)
    np.testing.assert_array_equal(a.components, b.components)
    assert a.reconstruction_error == b.reconstruction_error
    assert np.all(np.diff(a.factors.sum(axis=1)) <= 0)


def test_ties_in_total_activation_are_broken_by_earlier_peak():
    # two patterns with exactly the same total on mirrored positions and equal-sized groups
    n_pos = 12
    w = np.zeros((n_pos, 2))
    w[8, 0], w[2, 1] = 5.0, 5.0  # pattern 0 peaks later than pattern 1
    groups = _groups()
    h = np.zeros((2, N_LAYERS * N_NEURONS))
    h[0, groups[0]] = 1.0
    h[1, groups[1]] = 1.0
    h /= np.linalg.norm(h, axis=1, keepdims=True)
    res = run_nmf(_to_acts(w @ h), [str(i) for i in range(n_pos)], n_components=2)
    np.testing.assert_allclose(res.factors.sum(axis=1), [5.0, 5.0], rtol=1e-5)
    assert [int(np.argmax(f)) for f in res.factors] == [2, 8]


# --------------------------------------------------------------------------------------------- negatives


def test_clip_ignores_negative_values():
    acts, w, toks = _planted(noise=0.0)
    rng = np.random.default_rng(7)
    noisy = acts - np.abs(rng.standard_normal(acts.shape)).astype(np.float32) * (acts == 0)  # negative where silent
    assert (noisy < 0).any()
    clipped = run_nmf(noisy, toks, n_components=3)
    direct = run_nmf(np.maximum(noisy, 0), toks, n_components=3)
    np.testing.assert_array_equal(clipped.factors, direct.factors)
    assert np.all(clipped.neuron_index[:, 2] == 1)
    assert np.all(_best_corr(clipped.factors, w).max(axis=1) > 0.95)


def test_split_turns_negative_firing_into_negative_weights():
    n_pos = 30
    w = _patterns(n_pos)
    groups = _groups()
    h = _loadings(groups)
    x = w[:, :2] @ h[:2] - np.outer(w[:, 2], h[2])  # the third group fires *negatively*
    acts = _to_acts(x)
    toks = [str(i) for i in range(n_pos)]
    res = run_nmf(acts, toks, n_components=3, negative="split")
    n = N_LAYERS * N_NEURONS
    assert res.n_features == 2 * n
    assert tuple(res.neuron_index[0]) == (0, 0, 1) and tuple(res.neuron_index[n]) == (0, 0, -1)
    corr = _best_corr(res.factors, w)
    assert np.all(corr.max(axis=1) > 0.95)
    neg_factor = int(np.argmax(corr[:, 2]))
    top = res.top_neurons(neg_factor, n=groups[2].size)
    assert all(wt < 0 for _, _, wt in top)
    expected = {(int(g) // N_NEURONS, int(g) % N_NEURONS) for g in groups[2]}
    assert {(layer, neuron) for layer, neuron, _ in top} == expected
    # clip cannot see the negative group at all
    clip = run_nmf(acts, toks, n_components=2)
    assert np.all(clip.components[:, groups[2]] == 0)


def test_shift_removes_a_per_neuron_baseline():
    acts, w, toks = _planted(noise=0.0)
    baseline = np.random.default_rng(5).uniform(-3.0, -1.0, size=(N_LAYERS, N_NEURONS, 1)).astype(np.float32)
    shifted = run_nmf(acts + baseline, toks, n_components=3, negative="shift", max_iter=2000)
    plain = run_nmf(acts, toks, n_components=3, max_iter=2000)
    corr = _best_corr(shifted.factors, w)
    assert list(corr.argmax(axis=1)) == [0, 1, 2] and np.all(corr.max(axis=1) > 0.95)
    np.testing.assert_allclose(shifted.factors, plain.factors, atol=1e-3 * plain.factors.max())
    # clip on the same input loses everything below zero: the baseline eats into every factor
    clipped = run_nmf(acts + baseline, toks, n_components=3)
    assert clipped.factors.sum() < 0.9 * shifted.factors.sum()


# --------------------------------------------------------------------------------------------- layers, positions


def test_layer_range_maps_neuron_index():
    acts, _, toks = _planted()
    res = run_nmf(acts, toks, n_components=2, from_layer=2)
    assert res.layers == (2, N_LAYERS)
    assert res.n_features == (N_LAYERS - 2) * N_NEURONS
    assert tuple(res.neuron_index[0]) == (2, 0, 1)
    assert tuple(res.neuron_index[-1]) == (N_LAYERS - 1, N_NEURONS - 1, 1)
    one = run_nmf(acts, toks, n_components=2, from_layer=1, to_layer=2)
    assert one.layers == (1, 2) and {int(layer) for layer in one.neuron_index[:, 0]} == {1}
    split = run_nmf(acts, toks, n_components=2, from_layer=2, negative="split")
    assert tuple(split.neuron_index[(N_LAYERS - 2) * N_NEURONS]) == (2, 0, -1)


def test_top_neurons_follow_the_layer_range():
    n_pos = 20
    x = np.zeros((n_pos, N_LAYERS * N_NEURONS))
    x[::2, 3 * N_NEURONS + 5 : 3 * N_NEURONS + 10] = 1.0  # layer 3, neurons 5..9
    x[1::2, 0:4] = 1.0  # layer 0, neurons 0..3
    res = run_nmf(_to_acts(x), [str(i) for i in range(n_pos)], n_components=1, from_layer=3, to_layer=4)
    assert {(layer, neuron) for layer, neuron, _ in res.top_neurons(0, n=5)} == {(3, n) for n in range(5, 10)}


def test_neuron_index_helper():
    idx = neuron_index(1, 3, 4, "split")
    assert idx.shape == (16, 3) and idx.dtype == np.int32
    assert idx[:8].tolist() == [[1, i, 1] for i in range(4)] + [[2, i, 1] for i in range(4)]
    assert np.all(idx[8:, 2] == -1)


def test_positions_subset_keeps_tokens_and_prompt_length():
    acts, _, toks = _planted()
    res = run_nmf(acts, toks, n_components=2, positions=[0, 3, 5, 9, 20], n_input_tokens=6)
    assert res.tokens == ["t0", "t3", "t5", "t9", "t20"]
    assert res.n_input_tokens == 3 and res.positions.tolist() == [0, 3, 5, 9, 20]
    assert res.factors.shape == (2, 5)
    sliced = run_nmf(acts, toks, n_components=2, positions=slice(10, None))
    assert sliced.tokens == toks[10:] and sliced.n_input_tokens == 0
    mask = np.zeros(40, dtype=bool)
    mask[10:] = True
    np.testing.assert_array_equal(run_nmf(acts, toks, n_components=2, positions=mask).factors, sliced.factors)


def test_torch_input_is_accepted():
    torch = pytest.importorskip("torch")
    acts, _, toks = _planted()
    np.testing.assert_array_equal(
        run_nmf(torch.from_numpy(acts), toks, n_components=2).factors, run_nmf(acts, toks, n_components=2).factors
    )


# --------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"from_layer": 3, "to_layer": 1}, "empty layer range"),
        ({"from_layer": 2, "to_layer": 2}, "empty layer range"),
        ({"from_layer": 4}, r"0\.\.3"),
        ({"from_layer": -1}, r"0\.\.3"),
        ({"to_layer": 5}, r"1\.\.4"),
        ({"to_layer": 0}, r"1\.\.4"),
        ({"from_layer": 1.5}, "integer"),
        ({"n_components": 0}, "between 1 and 40"),
        ({"n_components": 41}, "between 1 and 40"),
        ({"negative": "abs"}, "'clip', 'split', 'shift'"),
        ({"normalize": "l1"}, "'l2', 'max'"),
        ({"n_input_tokens": 41}, "between 0 and 40"),
        ({"positions": [3, 1]}, "increasing"),
        ({"positions": [5]}, "at least 2 positions"),
        ({"positions": [0, 99]}, "-40..39"),
        ({"max_iter": 0}, "max_iter"),
        ({"tol": -1.0}, "tol"),
    ],
)
def test_bad_arguments_raise_input_error(kw, match):
    acts, _, toks = _planted()
    with pytest.raises(InputError, match=match):
        run_nmf(acts, toks, **{"n_components": 2, **kw})


def test_bad_activations_raise_input_error():
    acts, _, toks = _planted()
    with pytest.raises(InputError, match="at least 2 positions"):
        run_nmf(acts[:, :, :1], toks[:1], n_components=1)
    with pytest.raises(InputError, match=r"\(layers, neurons, positions\)"):
        run_nmf(acts[0], toks)
    with pytest.raises(InputError, match="tokens"):
        run_nmf(acts, toks[:-1])
    for bad in (np.nan, np.inf):
        broken = acts.copy()
        broken[2, 3, 4] = bad
        with pytest.raises(InputError, match="layer 2, neuron 3, position 4"):
            run_nmf(broken, toks)
    with pytest.raises(InputError, match="split"):
        run_nmf(-np.abs(acts) - 1.0, toks)  # nothing is positive: clip leaves an all-zero matrix


def test_top_neurons_rejects_bad_factor():
    acts, _, toks = _planted()
    res = run_nmf(acts, toks, n_components=2)
    with pytest.raises(InputError, match="between 0 and 1"):
        res.top_neurons(2)
    with pytest.raises(InputError, match="at least 1"):
        res.top_neurons(0, n=0)


# --------------------------------------------------------------------------------------------- results


def test_to_dict_is_json_and_save_load_round_trips(tmp_path):
    acts, _, toks = _planted()
    res = run_nmf(acts, toks, n_components=3, negative="split", n_input_tokens=4)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["n_components"] == 3 and d["negative"] == "split" and len(d["factors"][0]) == 40
    assert d["top_neurons"][0][0] == list(res.top_neurons(0, 1)[0])
    assert "components" not in d
    full = json.loads(json.dumps(res.to_dict(full=True)))
    assert np.asarray(full["components"]).shape == res.components.shape
    path = res.save(tmp_path / "factors.npz")
    back = NMFResult.load(path)
    np.testing.assert_array_equal(back.factors, res.factors)
    np.testing.assert_array_equal(back.neuron_index, res.neuron_index)
    assert back.tokens == res.tokens and back.layers == res.layers and back.n_input_tokens == 4
    assert repr(back) == repr(res) and "3 factors over 40 tokens" in repr(res)


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(FileFormatError):
        NMFResult.load(bad)
    with pytest.raises(InputError, match="no file"):
        FactorModel.load(tmp_path / "missing.npz")
    acts, _, toks = _planted()
    path = run_nmf(acts, toks, n_components=2).save(tmp_path / "result.npz")
    with pytest.raises(FileFormatError, match="factor_model"):
        FactorModel.load(path)


def test_load_is_bounded_like_ecco_load(tmp_path):
    """Factor files go through the same bounded reader as runs: no device, no npy header claiming terabytes."""
    import io
    import zipfile

    with pytest.raises(FileFormatError, match="not a regular file"):
        NMFResult.load("/dev/zero")
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
    header = head.getvalue()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("factors.npy", header + b"\0" * 16)
    bomb = tmp_path / "bomb.npz"
    bomb.write_bytes(buf.getvalue())
    with pytest.raises(FileFormatError, match="claims"):
        NMFResult.load(bomb)
    no_meta = tmp_path / "no_meta.npz"
    np.savez(no_meta, factors=np.zeros((2, 3)))
    with pytest.raises(FileFormatError, match="meta_json"):
        FactorModel.load(no_meta)


def test_explore_plot_explain_forward_to_render_and_explain(monkeypatch):
    calls = {}

    def record(name):
        def fn(*args, **kw):
            calls[name] = (args, kw)
            return name

        return fn

    render = types.SimpleNamespace(factors_view=record("view"), factors_figure=record("figure"))
    explain = types.SimpleNamespace(explain_factors=record("explain"))
    monkeypatch.setitem(sys.modules, "ecco_sdk.render", render)
    monkeypatch.setitem(sys.modules, "ecco_sdk.explain", explain)
    acts, _, toks = _planted()
    res = run_nmf(acts, toks, n_components=2)
    assert res.explore(top_n=3, selected=1) == "view"
    args, kw = calls["view"]
    assert args[0] == toks and args[1] is res.factors and kw["selected"] == 1
    assert kw["top_neurons"] == [res.top_neurons(0, 3), res.top_neurons(1, 3)]
    assert res.plot() == "figure" and calls["figure"][0][1] is res.factors
    assert res.explain(n_examples=2) == "explain" and calls["explain"][1] == {"n_examples": 2}
    monkeypatch.setitem(sys.modules, "ecco_sdk.render", types.SimpleNamespace())
    with pytest.raises(ImportError, match="factors_figure"):
        res.plot()


# --------------------------------------------------------------------------------------------- corpus model


def _corpus(n_texts: int = 5, n_pos: int = 30, noise: float = 0.01) -> list[tuple[np.ndarray, np.ndarray, list[str]]]:
    """Texts sharing the same three neuron groups, each with its own activation pattern."""
    h = _loadings(_groups())
    rng = np.random.default_rng(11)
    out = []
    for t in range(n_texts):
        w = _patterns(n_pos, seed=100 + t)
        x = w @ h + noise * np.abs(rng.standard_normal((n_pos, h.shape[1])))
        out.append((_to_acts(x), w, [f"{t}:{i}" for i in range(n_pos)]))
    return out


def test_corpus_fit_and_transform_recover_planted_factors_on_new_text():
    texts = _corpus()
    model = fit_factor_model([a for a, _, _ in texts[:4]], n_components=3)
    assert model.n_texts == 4 and model.n_positions == 120 and model.n_features == N_LAYERS * N_NEURONS
    assert np.all(np.diff(model.totals) < 0)
    acts, w, toks = texts[4]  # held out
    res = model.transform(acts, toks, n_input_tokens=2)
    assert res.tokens == toks and res.n_input_tokens == 2 and res.factors.shape == (3, 30)
    corr = _best_corr(res.factors, w)
    assert list(corr.argmax(axis=1)) == [0, 1, 2] and np.all(corr.max(axis=1) > 0.95)
    assert res.relative_error < 0.05


def test_corpus_model_matches_run_nmf_on_a_single_text():
    acts, _, toks = _planted()
    model = fit_factor_model([acts], n_components=3)
    single = run_nmf(acts, toks, n_components=3)
    np.testing.assert_allclose(model.components, single.components, atol=1e-5)
    refit = model.transform(acts, toks)
    np.testing.assert_allclose(refit.factors, single.factors, atol=1e-3 * single.factors.max())


def test_corpus_shift_uses_corpus_minimum():
    texts = _corpus(n_texts=3, noise=0.0)
    baseline = np.random.default_rng(5).uniform(-3.0, -1.0, size=(N_LAYERS, N_NEURONS, 1)).astype(np.float32)
    model = fit_factor_model([a + baseline for a, _, _ in texts[:2]], n_components=3, negative="shift", max_iter=1000)
    np.testing.assert_allclose(model.offsets, baseline.reshape(-1), atol=1e-5)
    acts, w, toks = texts[2]
    corr = _best_corr(model.transform(acts + baseline, toks).factors, w)
    assert np.all(corr.max(axis=1) > 0.95)


def test_factor_model_save_load_round_trip(tmp_path):
    texts = _corpus(n_texts=3)
    model = fit_factor_model([a for a, _, _ in texts], n_components=3, negative="shift", from_layer=1)
    path = model.save(tmp_path / "model.npz")
    back = FactorModel.load(path)
    np.testing.assert_array_equal(back.components, model.components)
    np.testing.assert_array_equal(back.offsets, model.offsets)
    np.testing.assert_array_equal(back.totals, model.totals)
    assert back.layers == (1, N_LAYERS) and back.negative == "shift" and repr(back) == repr(model)
    acts, _, toks = texts[0]
    np.testing.assert_array_equal(back.transform(acts, toks).factors, model.transform(acts, toks).factors)
    json.dumps(model.to_dict(full=True))


def test_factor_fn_adapts_a_capture_function():
    texts = _corpus(n_texts=3)
    model = fit_factor_model([a for a, _, _ in texts], n_components=3)
    by_text = {f"text {i}": (toks, acts) for i, (acts, _, toks) in enumerate(texts)}
    fn = model.factor_fn(lambda names: [by_text[n] for n in names])
    out = fn(["text 2", "text 0"])
    assert [toks for toks, _ in out] == [texts[2][2], texts[0][2]]
    np.testing.assert_array_equal(out[0][1], model.transform(texts[2][0], texts[2][2]).factors)
    bad = model.factor_fn(lambda names: [])
    with pytest.raises(InputError, match="0 results for 1 texts"):
        bad(["x"])


def test_corpus_subsamples_above_the_position_cap():
    texts = _corpus(n_texts=4)
    with pytest.warns(UserWarning, match="sample of 50 of 120 positions"):
        model = fit_factor_model([a for a, _, _ in texts], n_components=3, max_positions=50)
    assert model.n_positions == 50 and model.n_positions_total == 120
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        again = fit_factor_model([a for a, _, _ in texts], n_components=3, max_positions=None)
    assert again.n_positions == 120


def test_corpus_bad_input():
    texts = _corpus(n_texts=2)
    acts = texts[0][0]
    with pytest.raises(InputError, match=r"\[activations\]"):
        fit_factor_model(acts)
    with pytest.raises(InputError, match="empty"):
        fit_factor_model([])
    with pytest.raises(InputError, match="same model"):
        fit_factor_model([acts, acts[:, :10]])
    with pytest.raises(InputError, match="between 1 and 60"):
        fit_factor_model([texts[0][0], texts[1][0]], n_components=61)
    model = fit_factor_model([acts], n_components=2)
    with pytest.raises(InputError, match="fitted on"):
        model.transform(acts[:2], texts[0][2])


# --------------------------------------------------------------------------------------------- real model


@pytest.mark.slow
def test_real_smollm2_activations_factorize_reproducibly():
    torch = pytest.importorskip("torch")
    from ecco_sdk.errors import ModelLoadError
    from ecco_sdk.models import load

    try:
        lm = load("smollm2-135m-instruct", verbose=False)
    except ModelLoadError as exc:
        pytest.skip(f"embedded SmolLM2 not available: {exc}")
    text = "One, two, three, four, five, six, seven, eight, nine, ten."
    layers = lm.model.model.layers
    captured: dict[int, np.ndarray] = {}
    hooks = [
        layer.mlp.down_proj.register_forward_pre_hook(
            lambda _m, args, i=i: captured.__setitem__(i, args[0][0].detach().float().numpy().T.copy())
        )
        for i, layer in enumerate(layers)
    ]
    try:
        enc = lm.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            lm.model(**enc)
    finally:
        for h in hooks:
            h.remove()
    acts = np.stack([captured[i] for i in range(len(layers))]).astype(np.float32)
    toks = lm.tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    assert acts.shape == (30, 1536, len(toks)) and (acts < 0).any()
    res = run_nmf(acts, toks, n_components=4)
    assert res.factors.shape == (4, len(toks)) and res.components.shape == (4, 30 * 1536)
    assert np.isfinite(res.factors).all() and np.isfinite(res.components).all() and (res.factors >= 0).all()
    assert np.all(np.diff(res.factors.sum(axis=1)) <= 0)
    again = run_nmf(acts, toks, n_components=4)
    np.testing.assert_array_equal(res.factors, again.factors)
    split = run_nmf(acts, toks, n_components=3, from_layer=10, to_layer=20, negative="split")
    assert split.n_features == 2 * 10 * 1536 and np.isfinite(split.factors).all()
    json.dumps(res.to_dict())
