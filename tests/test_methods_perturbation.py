"""captum-backed methods (gradient SHAP, LIME, KernelSHAP, Shapley sampling, occlusion) against captum direct."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum._utils.models.linear_model import SkLearnRidge
from captum.attr import DeepLift, GradientShap, KernelShap, Lime, Occlusion, ShapleyValueSampling
from methods_helpers import embeds
from methods_helpers import target_forward as _direct_forward

import ecco_sdk
from ecco_sdk.attribution import METHODS, attribute_output, canonical_method, method_info

BATCH = 4


@pytest.fixture(scope="module")
def run(llama):
    return llama.generate("one two three four", generate=3, stop_at_eos=False)


def _inputs(lm, run):
    """Embeddings of every position before the last target (the features), their zero baseline and mask."""
    last = run.generated_positions[-1]
    emb = embeds(lm, run.token_ids[:last])
    mask = torch.arange(last)[None, :, None].expand_as(emb).contiguous()
    return emb, torch.zeros_like(emb), mask


def _direct(lm, run, make, seed, **kw):
    """captum called directly, one target at a time, seeded like ecco_sdk: (targets, positions) scores."""
    emb, base, mask = _inputs(lm, run)
    rows = []
    for p in run.generated_positions:
        torch.manual_seed(seed)
        np.random.seed(seed)
        method = make(_direct_forward(lm, p, int(run.token_ids[p])))
        a = method.attribute(emb, baselines=base, feature_mask=mask, perturbations_per_eval=BATCH, **kw)
        rows.append(a[0, :, 0].detach().numpy())
    return np.stack(rows)


@pytest.mark.parametrize(
    ("name", "make", "kw"),
    [
        ("lime", lambda f: Lime(f, interpretable_model=SkLearnRidge(alpha=1.0)), {"n_samples": 40}),
        ("kernel_shap", KernelShap, {"n_samples": 40}),
        ("shapley_sampling", ShapleyValueSampling, {"n_samples": 3}),
    ],
)
def test_sampled_methods_equal_captum_direct(llama, run, name, make, kw):
    attr = attribute_output(llama, run, name, seed=7, internal_batch_size=BATCH, **kw)[name]
    ref = _direct(llama, run, make, 7, **kw)
    for j, p in enumerate(run.generated_positions):
        np.testing.assert_allclose(attr.scores_sum[j, :p], ref[j, :p], rtol=2e-3, atol=1e-4 * np.abs(ref).max())
        assert np.isnan(attr.scores_sum[j, p:]).all()
    assert attr.params["seed"] == 7


@pytest.mark.parametrize("name", ["lime", "kernel_shap", "shapley_sampling", "gradient_shap"])
def test_same_seed_same_result_and_global_rng_untouched(llama, run, name):
    kw = {"n_samples": 3 if name == "shapley_sampling" else 24}
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = attribute_output(llama, run, name, seed=1, **kw)[name].scores_sum
    after = torch.rand(1)
    b = attribute_output(llama, run, name, seed=1, **kw)[name].scores_sum
    c = attribute_output(llama, run, name, seed=2, **kw)[name].scores_sum
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(np.nan_to_num(a), np.nan_to_num(c))
    assert float(before) == float(after)  # the method's draws did not consume the caller's random stream


def test_gradient_shap_equals_captum_direct(llama, run):
    attr = attribute_output(llama, run, "gradient_shap", seed=3, n_samples=8, stdevs=0.01)["gradient_shap"]
    emb, base, _ = _inputs(llama, run)
    for j, p in enumerate(run.generated_positions):
        torch.manual_seed(3)
        np.random.seed(3)
        ref = GradientShap(_direct_forward(llama, p, int(run.token_ids[p]))).attribute(
            emb, baselines=base, n_samples=8, stdevs=0.01
        )
        np.testing.assert_allclose(attr.raw[j, :p], ref[0, :p].numpy(), rtol=1e-3, atol=1e-5 * float(ref.abs().max()))
        assert np.all(attr.raw[j, p:] == 0)


def test_occlusion_sliding_window_equals_captum(llama, run):
    attr = attribute_output(llama, run, "occlusion", window=3, target_kind="logit", internal_batch_size=BATCH)
    attr = attr["occlusion"]
    emb, _, _ = _inputs(llama, run)
    for j, p in enumerate(run.generated_positions):
        f = _direct_forward(llama, p, int(run.token_ids[p]), "logit")
        ref = Occlusion(f).attribute(emb, sliding_window_shapes=(3, emb.shape[-1]), strides=(1, emb.shape[-1]))
        np.testing.assert_allclose(attr.scores_sum[j, :p], ref[0, :p, 0].numpy(), rtol=1e-4, atol=1e-6)


def test_occlusion_window_one_is_feature_ablation(llama, run):
    occ = attribute_output(llama, run, "occlusion", window=1)["occlusion"]
    abl = attribute_output(llama, run, "ablation")["ablation"]
    np.testing.assert_allclose(occ.scores_sum, abl.scores_sum, rtol=1e-4, atol=1e-7)


def test_prompt_scope_and_contrast(llama, run):
    attr = attribute_output(llama, run, "shapley_sampling", scope="prompt", foil=17, n_samples=2)
    attr = attr["shapley_sampling:contrast"]
    n = run.n_input_tokens
    assert attr.scope == "prompt" and attr.target_kind == "contrast"
    assert not np.isnan(attr.scores_sum[:, :n]).any() and np.isnan(attr.scores_sum[:, n:]).all()


def test_deeplift_is_refused_with_the_reason(llama, run):
    for name in ("deeplift", "DeepLiftShap"):
        with pytest.raises(ecco_sdk.UnsupportedModelError, match="DeepLift cannot work on LlamaForCausalLM"):
            attribute_output(llama, run, name)


def test_captum_deeplift_on_llama_is_only_gradient_x_input(llama, run):
    """The reason for the refusal, measured: captum's DeepLift here returns gradient x (input - 0), nothing more."""
    emb, base, _ = _inputs(llama, run)
    p = run.generated_positions[-1]

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = llama.model

        def forward(self, e):
            return _direct_forward(llama, p, int(run.token_ids[p]), "logit")(e)

    dl = DeepLift(Head()).attribute(emb, baselines=base)
    gxi = attribute_output(llama, run, "grad_x_input", target_kind="logit")["grad_x_input"]
    np.testing.assert_allclose(dl[0].detach().numpy(), gxi.raw[-1, :p], rtol=1e-4, atol=1e-7)


def test_registry_lists_and_refuses(llama, run):
    for name in ("gradient_shap", "lime", "kernel_shap", "shapley_sampling", "occlusion", "deeplift"):
        assert name in METHODS
    assert canonical_method("KernelShap") == "kernel_shap"
    assert canonical_method("ShapleyValueSampling") == "shapley_sampling"
    assert method_info("lime").options["n_samples"] == 100
    with pytest.raises(ecco_sdk.InputError, match=r"unknown option\(s\) \['window'\]"):
        attribute_output(llama, run, "lime", window=3)
    with pytest.raises(ecco_sdk.InputError, match="window 99 is wider"):
        attribute_output(llama, run, "occlusion", window=99)
    with pytest.raises(ecco_sdk.InputError, match="seed must be an integer"):
        attribute_output(llama, run, "lime", seed="x")


def test_saliency_views_draw_new_methods(llama):
    run = llama.generate("one two three four", generate=2, stop_at_eos=False)  # fresh: the views compute
    visual = run.primary_attributions("kernel_shap", style="detailed", n_samples=16)
    assert "kernel_shap" in run.attributions
    html = visual.static_html
    for token in run.tokens[: run.n_input_tokens]:
        assert token.strip() in html
    minimal = run.primary_attributions("occlusion", window=2)
    assert run.attributions["occlusion"].params["window"] == 2 and minimal.static_html


@pytest.mark.slow
def test_methods_on_smollm(smollm):
    """captum-backed and layer methods run on the embedded SmolLM2; DeepLift refuses naming its non-linearities."""
    out = smollm.generate("The capital of France is", generate=2)
    with pytest.raises(ecco_sdk.UnsupportedModelError, match=r"SiLUActivation.*RMSNorm|RMSNorm.*SiLU"):
        attribute_output(smollm, out, "deeplift")
    res = attribute_output(smollm, out, ["lime", "occlusion", "layer_grad_x_act"], n_samples=8, window=2, layer=15)
    for attr in res.values():
        for j, p in enumerate(attr.target_positions):
            assert np.isfinite(attr.scores_sum[j, :p]).all() and np.isnan(attr.scores_sum[j, p:]).all()
