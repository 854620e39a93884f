"""Primary attributions checked against captum, on tiny models and on the embedded SmolLM2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import FeatureAblation, InputXGradient, IntegratedGradients, Saliency

import ecco_sdk
from ecco_sdk.attribution import attribute_output, canonical_method


@pytest.fixture(scope="module")
def run(llama):
    return llama.generate("one two three four", generate=4, stop_at_eos=False)


def _value_fn(lm, target_id, kind="prob", foil=None):
    def f(embeds):
        logits = lm.model(inputs_embeds=embeds).logits[:, -1].float()
        if foil is not None:
            return logits[:, target_id] - logits[:, foil]
        if kind == "logit":
            return logits[:, target_id]
        logp = torch.log_softmax(logits, -1)[:, target_id]
        return logp if kind == "logprob" else logp.exp()

    return f


def _embeds(lm, ids):
    with torch.no_grad():
        return lm.adapter.input_embeddings(torch.as_tensor(ids)[None]).float()


def _rel(a, b):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("kind", ["prob", "logprob", "logit"])
def test_ig_equals_captum_per_target(llama, run, kind):
    attr = attribute_output(llama, run, ["ig"], target_kind=kind, n_steps=32)["ig"]
    emb = _embeds(llama, run.token_ids)
    for j, p in enumerate(run.generated_positions):
        ig = IntegratedGradients(_value_fn(llama, int(run.token_ids[p]), kind))
        ref, delta = ig.attribute(
            emb[:, :p], baselines=torch.zeros_like(emb[:, :p]), n_steps=32, return_convergence_delta=True
        )
        assert _rel(attr.raw[j, :p], ref[0]) < 1e-4
        assert np.all(attr.raw[j, p:] == 0)
        assert attr.delta[j] == pytest.approx(float(delta), abs=1e-5)


def test_contrastive_target_equals_captum(llama, run):
    foil = 17
    attr = attribute_output(llama, run, "ig", foil=foil, n_steps=16)["ig:contrast"]
    emb = _embeds(llama, run.token_ids)
    p = run.generated_positions[1]
    ig = IntegratedGradients(_value_fn(llama, int(run.token_ids[p]), foil=foil))
    ref = ig.attribute(emb[:, :p], baselines=torch.zeros_like(emb[:, :p]), n_steps=16)
    assert _rel(attr.raw[1, :p], ref[0]) < 1e-4
    assert attr.target_kind == "contrast"


@pytest.mark.parametrize(("method", "captum_cls"), [("saliency", Saliency), ("grad_x_input", InputXGradient)])
def test_gradient_methods_equal_captum(llama, run, method, captum_cls):
    attr = attribute_output(llama, run, method)[method]
    emb = _embeds(llama, run.token_ids)
    for j, p in enumerate(run.generated_positions):
        ref_method = captum_cls(_value_fn(llama, int(run.token_ids[p])))
        kw = {"abs": False} if method == "saliency" else {}
        ref = ref_method.attribute(emb[:, :p].clone().requires_grad_(True), **kw)
        assert _rel(attr.raw[j, :p], ref[0]) < 1e-4


def test_ablation_equals_captum_feature_ablation(llama, run):
    attr = attribute_output(llama, run, "feature_ablation")["ablation"]
    emb = _embeds(llama, run.token_ids)
    for j, p in enumerate(run.generated_positions):
        mask = torch.arange(p)[None, :, None].expand(1, p, emb.shape[-1])
        ref = FeatureAblation(_value_fn(llama, int(run.token_ids[p]))).attribute(
            emb[:, :p], baselines=0.0, feature_mask=mask
        )
        np.testing.assert_allclose(attr.scores_sum[j, :p], ref[0, :, 0].numpy(), rtol=1e-4, atol=1e-6)


def test_prompt_scope_equals_captum_llm_attribution(llama, run):
    from captum.attr import LayerIntegratedGradients, LLMGradientAttribution, TextTokenInput

    prompt = "one two three four"
    ours = attribute_output(llama, run, "ig", scope="prompt", target_kind="logprob", baseline=0, n_steps=20)["ig"]
    lig = LayerIntegratedGradients(llama.model, llama.adapter.input_embeddings)
    res = LLMGradientAttribution(lig, llama.tokenizer).attribute(
        TextTokenInput(prompt, llama.tokenizer), target=torch.as_tensor(run.token_ids[run.n_input_tokens :]), n_steps=20
    )
    mine = ours.scores_sum[:, : run.n_input_tokens]
    np.testing.assert_allclose(mine, res.token_attr.numpy(), rtol=1e-3, atol=1e-4 * np.abs(mine).max())
    assert np.isnan(ours.scores_sum[:, run.n_input_tokens :]).all()


def test_seq2seq_attributes_encoder_and_decoder(tiny_model_dir):
    lm = ecco_sdk.from_pretrained(tiny_model_dir("t5"), verbose=False)
    out = lm.generate("translate this please", generate=2, stop_at_eos=False)
    attr = attribute_output(lm, out, "ig", n_steps=16)["ig"]
    n = out.n_input_tokens
    ids = torch.as_tensor(out.token_ids)
    enc = _embeds(lm, ids[:n])
    dec = _embeds(lm, ids[n:])
    j, p = 1, out.generated_positions[1]
    tgt = int(ids[p])

    def f(e, d):
        return torch.softmax(lm.model(inputs_embeds=e, decoder_inputs_embeds=d).logits[:, -1].float(), -1)[:, tgt]

    dec_prefix = dec[:, : p - n]
    ref_e, ref_d = IntegratedGradients(f).attribute(
        (enc, dec_prefix), baselines=(torch.zeros_like(enc), torch.zeros_like(dec_prefix)), n_steps=16
    )
    assert _rel(attr.raw[j, :n], ref_e[0]) < 1e-4
    assert _rel(attr.raw[j, n:p], ref_d[0]) < 1e-4


def test_completeness_scores_and_chunking(llama, run):
    a = attribute_output(llama, run, "ig", n_steps=64, internal_batch_size=64)["ig"]
    b = attribute_output(llama, run, "ig", n_steps=64, internal_batch_size=5)["ig"]
    np.testing.assert_allclose(a.raw, b.raw, rtol=1e-4, atol=1e-7)
    assert np.all(np.abs(a.delta) < 1e-3)
    np.testing.assert_allclose(np.nansum(a.scores_l2, axis=1), 1.0, rtol=1e-5)
    for j, p in enumerate(a.target_positions):
        assert np.isnan(a.scores_l2[j, p:]).all() and not np.isnan(a.scores_l2[j, :p]).any()


def test_attribute_given_continuation(llama):
    out = llama.attribute("one two three", target=" four five", methods=["ig", "saliency"], n_steps=8)
    assert out.output_text == " four five"
    assert set(out.attributions) == {"ig", "saliency"}
    assert out.attributions["ig"].scores_l2.shape == (2, len(out.tokens))


def test_word_scores_group_subwords():
    from ecco_sdk.attribution import PrimaryAttribution
    from ecco_sdk.tokens import word_groups

    tokens = ["He", "ath", "row", " airport", ",", " London"]
    assert word_groups(tokens) == [[0, 1, 2], [3], [4], [5]]
    assert word_groups(["[CLS]", "play", "##ing", "!"]) == [[0], [1, 2], [3]]
    scores = np.array([[0.1, 0.2, 0.3, 0.4, np.nan, np.nan]])
    attr = PrimaryAttribution("ig", "prob", "prefix", "zeros", np.array([4]), np.array([0]), scores, scores)
    words, ws = attr.word_scores(tokens)
    assert words == ["Heathrow", " airport", ",", " London"]
    np.testing.assert_allclose(ws[0, :2], [0.6, 0.4])
    assert np.isnan(ws[0, 2:]).all()


def test_original_names_still_work():
    assert canonical_method("integrated_gradients") == "ig"
    assert canonical_method("saliency") == "saliency"
    assert canonical_method("grad_x_input") == "grad_x_input"
    assert canonical_method("Feature-Ablation") == "ablation"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"methods": ["lrp"]}, "unknown attribution method"),
        ({"foil": " two three"}, "single token"),
        ({"scope": "everything"}, "scope"),
        ({"target_kind": "probability"}, "target_kind must be"),
        ({"n_steps": 0}, "n_steps"),
        ({"baseline": "random"}, "baseline"),
        ({"internal_batch_size": 0}, "internal_batch_size"),
    ],
)
def test_bad_attribution_arguments(llama, run, kwargs, match):
    methods = kwargs.pop("methods", ["ig"])
    with pytest.raises(ecco_sdk.InputError, match=match):
        attribute_output(llama, run, methods, **kwargs)


@pytest.mark.slow
def test_ig_on_smollm_equals_captum(smollm):
    out = smollm.generate("The capital of France is", generate=2, attribution=["ig"], n_steps=20)
    attr = out.attributions["ig"]
    emb = _embeds(smollm, out.token_ids)
    for j, p in enumerate(out.generated_positions):
        ref, delta = IntegratedGradients(_value_fn(smollm, int(out.token_ids[p]))).attribute(
            emb[:, :p], baselines=torch.zeros_like(emb[:, :p]), n_steps=20, return_convergence_delta=True
        )
        assert _rel(attr.raw[j, :p], ref[0]) < 1e-4
        assert attr.delta[j] == pytest.approx(float(delta), abs=1e-4)
    np.testing.assert_allclose(np.nansum(attr.scores_l2, axis=1), 1.0, rtol=1e-5)
