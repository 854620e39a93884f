"""Layer attributions (block outputs) against captum's layer methods and a manual autograd computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import LayerGradientXActivation, LayerIntegratedGradients
from methods_helpers import embeds as _emb
from methods_helpers import target_forward as _f

import ecco_sdk
from ecco_sdk.attribution import attribute_output
from ecco_sdk.layer_attribution import LayerAttribution


@pytest.fixture(scope="module")
def run(llama):
    return llama.generate("one two three four", generate=3, stop_at_eos=False)


def _first(a):
    return a[0] if isinstance(a, tuple | list) else a


@pytest.mark.parametrize("kind", ["prob", "logit"])
def test_layer_ig_equals_captum(llama, run, kind):
    attr = attribute_output(llama, run, "layer_ig", layer=1, n_steps=16, target_kind=kind)["layer_ig"]
    block = llama.adapter.main.blocks[0]
    for j, p in enumerate(run.generated_positions):
        emb = _emb(llama, run.token_ids[:p])
        lig = LayerIntegratedGradients(_f(llama, p, int(run.token_ids[p]), kind), block)
        ref, delta = lig.attribute(emb, baselines=torch.zeros_like(emb), n_steps=16, return_convergence_delta=True)
        ref = _first(ref)[0].detach().numpy()
        np.testing.assert_allclose(attr.raw[j, :p], ref, rtol=1e-3, atol=1e-5 * np.abs(ref).max())
        assert attr.delta[j] == pytest.approx(float(delta), abs=1e-4 * max(1.0, float(np.abs(ref).sum())))
    assert attr.params["layer"] == 1


def test_layer_grad_x_act_equals_captum(llama, run):
    attr = attribute_output(llama, run, "layer_grad_x_act", layer=2, target_kind="logprob")["layer_grad_x_act"]
    block = llama.adapter.main.blocks[1]
    for j, p in enumerate(run.generated_positions):
        emb = _emb(llama, run.token_ids[:p])
        ref = LayerGradientXActivation(_f(llama, p, int(run.token_ids[p]), "logprob"), block).attribute(emb)
        ref = _first(ref)[0].detach().numpy()
        np.testing.assert_allclose(attr.raw[j, :p], ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max())


def test_layer_view_equals_manual_autograd(llama, run):
    la = run.layer_attributions(target=1, method="grad_x_act")
    assert isinstance(la, LayerAttribution)
    p = run.generated_positions[1]
    tgt = int(run.token_ids[p])
    # Manual: hidden states of every layer from output_hidden_states, gradients by autograd.
    emb = _emb(llama, run.token_ids[:p]).requires_grad_(True)
    out = llama.model(inputs_embeds=emb, output_hidden_states=True)
    value = torch.softmax(out.logits[0, p - 1].float(), -1)[tgt]
    hs = out.hidden_states  # embeddings, block 1 output, ..., last block output after the final norm
    n = llama.n_layers
    inner = list(hs[:n])  # the last entry has the final norm applied: take block n's output from a hook
    grads = torch.autograd.grad(value, inner)
    manual = np.stack([(g * h)[0].sum(-1).detach().numpy() for g, h in zip(grads, inner)])
    np.testing.assert_allclose(la.scores_sum[:n, :p], manual, rtol=1e-4, atol=1e-7)
    assert la.scores_sum.shape == (n + 1, len(run.tokens))
    assert np.isnan(la.scores_sum[:, p:]).all()
    np.testing.assert_allclose(np.nansum(la.scores_l2, axis=1), 1.0, rtol=1e-5)
    # Row 0 is gradient x input.
    gxi = attribute_output(llama, run, "grad_x_input")["grad_x_input"]
    np.testing.assert_allclose(la.scores_sum[0, :p], gxi.scores_sum[1, :p], rtol=1e-4, atol=1e-7)


def test_layer_view_ig_rows_match_layer_ig(llama, run):
    la = run.layer_attributions(target=-1, method="ig", layers=[0, 2], n_steps=8)
    ig = attribute_output(llama, run, "ig", n_steps=8)["ig"]
    lig = attribute_output(llama, run, "layer_ig", layer=2, n_steps=8)["layer_ig"]
    np.testing.assert_allclose(la.scores_sum[0], ig.scores_sum[-1], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(la.scores_sum[1], lig.scores_sum[-1], rtol=1e-4, atol=1e-7)


def test_layer_prompt_scope_masks_generated(llama, run):
    attr = attribute_output(llama, run, "layer_ig", layer=1, n_steps=4, scope="prompt")["layer_ig"]
    n = run.n_input_tokens
    assert np.isnan(attr.scores_sum[:, n:]).all() and not np.isnan(attr.scores_sum[:, :n]).any()
    assert np.all(np.abs(attr.delta) < 1e-3)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda lm, r: attribute_output(lm, r, "layer_ig", layer=0), "layer must be a block number 1..2"),
        (lambda lm, r: attribute_output(lm, r, "layer_grad_x_act", layer=3), "layer must be a block number"),
        (lambda lm, r: r.layer_attributions(target=5), "target must index one of the 3"),
        (lambda lm, r: r.layer_attributions(method="lime"), "method must be 'grad_x_act' or 'ig'"),
        (lambda lm, r: r.layer_attributions(layers=[7]), "layers must be in 0..2"),
    ],
)
def test_layer_bad_arguments(llama, run, call, match):
    with pytest.raises(ecco_sdk.InputError, match=match):
        call(llama, run)


def test_layer_heatmap_renders(llama, run):
    from ecco_sdk.render import figure_to_png_bytes, layer_attribution_figure, layer_attribution_view

    la = run.layer_attributions(target=-1)
    fig = layer_attribution_figure(la)
    ax = fig.axes[0]
    p = la.target_position
    assert ax.images[0].get_array().shape == (llama.n_layers + 1, p)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["emb", "1", "2"]
    assert "layer_grad_x_act" not in ax.get_title(loc="left") and "grad_x_act" in ax.get_title(loc="left")
    assert figure_to_png_bytes(fig)[:4] == b"\x89PNG"
    html = layer_attribution_view(la, aggregation="l2").static_html
    assert "data:image/png;base64" in html


def test_layer_heatmap_refuses_bad_input():
    from ecco_sdk.render import layer_heatmap_figure

    with pytest.raises(ecco_sdk.InputError, match="row_labels has 1 labels"):
        layer_heatmap_figure(np.zeros((2, 3)), ["a", "b", "c"], ["x"], "t")
    with pytest.raises(ecco_sdk.InputError, match="all NaN"):
        layer_heatmap_figure(np.full((1, 2), np.nan), ["a", "b"], ["x"], "t")
