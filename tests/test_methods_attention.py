"""Attention methods (weights, rollout, value-weighted) against hand computations on tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ecco_sdk
from ecco_sdk.attention import token_attention
from ecco_sdk.attribution import attribute_output


@pytest.fixture(scope="module")
def llama(tiny_model_dir):
    return ecco_sdk.from_pretrained(tiny_model_dir("llama"), attention=True, verbose=False)


@pytest.fixture(scope="module")
def run(llama):
    return llama.generate("one two three four", generate=3, stop_at_eos=False, attention=True)


def test_attention_rows_equal_generation_capture(llama, run):
    """The method's single forward gives the same weights as the step-by-step capture during generation."""
    for layer, head in [(1, 0), (2, 1), (2, None)]:
        attr = attribute_output(llama, run, "attention", layer=layer, head=head)["attention"]
        captured = run.attention[layer - 1]
        captured = captured.mean(0) if head is None else captured[head]
        for j, p in enumerate(run.generated_positions):
            np.testing.assert_allclose(attr.scores_sum[j, :p], captured[p - 1, :p], rtol=1e-4, atol=1e-6)
            assert np.isnan(attr.scores_sum[j, p:]).all()
    assert attr.params["layer"] == 2 and attr.params["head"] is None


def test_rollout_equals_hand_loop(llama, run):
    attr = attribute_output(llama, run, "attention_rollout")["attention_rollout"]
    a = run.attention.astype(np.float64)  # (layers, heads, n, n)
    n = a.shape[-1]
    flow = np.eye(n)
    for layer in range(a.shape[0]):
        mixed = np.zeros((n, n))
        for q in range(n):
            for k in range(n):
                mixed[q, k] = 0.5 * (q == k) + 0.5 * a[layer, :, q, k].mean()
        flow = mixed @ flow
    for j, p in enumerate(run.generated_positions):
        np.testing.assert_allclose(attr.scores_sum[j, :p], flow[p - 1, :p], rtol=1e-4, atol=1e-6)
        assert attr.scores_sum[j, :p].sum() == pytest.approx(1.0, abs=1e-5)


def test_value_attention_equals_hand_computation(llama, run):
    layer = 2
    attr = attribute_output(llama, run, "value_attention", layer=layer)["value_attention"]
    last = run.generated_positions[-1]
    ids = torch.as_tensor(run.token_ids[:last])[None]
    with torch.no_grad():
        out = llama.model(input_ids=ids, output_hidden_states=True, output_attentions=True)
        block = llama.model.model.layers[layer - 1]
        v = block.self_attn.v_proj(block.input_layernorm(out.hidden_states[layer - 1]))[0]  # (n, kv * head_dim)
    head_dim = llama.model.config.head_dim
    norms = v.reshape(last, -1, head_dim).norm(dim=-1).numpy()  # (n, kv)
    a = out.attentions[layer - 1][0].numpy()  # (heads, n, n)
    heads, kv = a.shape[0], norms.shape[1]
    expected = np.mean([a[h] * norms[:, h // (heads // kv)][None, :] for h in range(heads)], axis=0)
    for j, p in enumerate(run.generated_positions):
        np.testing.assert_allclose(attr.scores_sum[j, :p], expected[p - 1, :p], rtol=1e-4, atol=1e-6)


def test_value_attention_on_gpt2_fused_projection(tiny_model_dir):
    lm = ecco_sdk.from_pretrained(tiny_model_dir("gpt2"), attention=True, verbose=False)
    out = lm.generate("one two three", generate=2, stop_at_eos=False)
    attr = attribute_output(lm, out, "value_attention", layer=1, head=1)["value_attention"]
    last = out.generated_positions[-1]
    with torch.no_grad():
        res = lm.model(input_ids=torch.as_tensor(out.token_ids[:last])[None], output_attentions=True)
        block = lm.model.transformer.h[0]
        qkv = block.attn.c_attn(
            block.ln_1(
                lm.model.transformer.wte.weight[out.token_ids[:last]][None]
                + lm.model.transformer.wpe.weight[:last][None]
            )
        )[0]
    hd = 16
    v = qkv[:, 64:96].reshape(last, 2, hd)[:, 1]  # head 1's value vectors
    expected = res.attentions[0][0, 1].numpy() * v.norm(dim=-1).numpy()[None, :]
    p = out.generated_positions[-1]
    np.testing.assert_allclose(attr.scores_sum[-1, :p], expected[p - 1, :p], rtol=1e-4, atol=1e-6)


def test_value_attention_refuses_interleaved_fused_projection(tiny_model_dir):
    lm = ecco_sdk.from_pretrained(tiny_model_dir("gpt_neox"), attention=True, verbose=False)
    out = lm.generate("one two", generate=1, stop_at_eos=False)
    with pytest.raises(ecco_sdk.UnsupportedModelError, match="no separate value projection"):
        attribute_output(lm, out, "value_attention")


def test_attention_methods_refuse_contrast_and_sdpa(llama, run, tiny_model_dir):
    with pytest.raises(ecco_sdk.InputError, match="does not support target 'contrast'"):
        attribute_output(llama, run, "attention_rollout", foil=17)
    sdpa = ecco_sdk.from_pretrained(tiny_model_dir("llama"), verbose=False)
    with pytest.raises(ecco_sdk.InputError, match="attention=True"):
        attribute_output(sdpa, sdpa.generate("one two", generate=1), "attention")
    with pytest.raises(ecco_sdk.InputError, match="head must be None"):
        attribute_output(llama, run, "attention", head=5)


def test_token_attention_per_layer_and_head(run):
    ta = token_attention(run, position=4)
    assert ta.weights.shape == (2, 2, len(run.tokens))
    np.testing.assert_allclose(ta.per_head(2), run.attention[1, :, 4, :])
    np.testing.assert_allclose(ta.per_layer().sum(-1), 1.0, rtol=1e-5)
    with pytest.raises(ecco_sdk.InputError, match="position must be"):
        token_attention(run, position=99)


def test_usable_methods_leave_out_what_cannot_run(llama, tiny_model_dir):
    from ecco_sdk.attribution import METHODS, usable_methods

    eager = usable_methods(llama)
    sdpa = usable_methods(ecco_sdk.from_pretrained(tiny_model_dir("llama"), verbose=False))
    assert {"attention", "attention_rollout", "value_attention"} <= set(eager)
    assert not {"attention", "attention_rollout", "value_attention"} & set(sdpa)
    assert "deeplift" in METHODS and "deeplift" not in eager and "deeplift_shap" not in sdpa
    assert {"ig", "lime", "occlusion", "layer_ig"} <= set(sdpa)
