"""The logit lens's fast path (one matmul per row chunk, counted ranks, reused buffers) equals a plain computation.

The reference here is the obvious one, row by row: the model's own final norm and head on one state,
then rank = 1 + number of strictly larger logits, probability = softmax at the token. The head is
edited so that the vocabulary holds exact duplicates and near-duplicates (1e-4 relative) of other
tokens' rows: ties and near-ties that a careless rank (sort order, approximate logits) gets wrong.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ecco_sdk
from ecco_sdk import lens

TEXT = "The quick brown fox jumps over the lazy dog while the cat sleeps"


@pytest.fixture(scope="module")
def tied_lm(tiny_model_dir, tmp_path_factory):
    """A tiny random Llama whose head has exact and near duplicates of the rows of the tokens in TEXT."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = tiny_model_dir("llama")
    model = AutoModelForCausalLM.from_pretrained(src)
    tok = AutoTokenizer.from_pretrained(src)
    ids = tok(TEXT).input_ids
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        w = model.lm_head.weight
        for n, t in enumerate(sorted(set(ids))):
            w[1000 + 2 * n] = w[t]  # an exact tie with token t
            w[1001 + 2 * n] = w[t] * (1 + 1e-4 * torch.randn(w.shape[1], generator=gen))  # a near-tie
    folder = tmp_path_factory.mktemp("tiny-llama-ties")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    lm = ecco_sdk.from_pretrained(str(folder), verbose=False)
    assert lens._plain_head(lm) is not None  # the fast path is the one under test
    return lm


def _reference(lm, out, layer: int, state: int, token: int) -> tuple[int, float, torch.Tensor]:
    """Rank and probability of `token` under one layer at one state row, computed on that row alone."""
    with torch.inference_mode():
        h = torch.from_numpy(out.hidden_states[layer, state][None].copy())
        logits = lm.model.lm_head(lm.model.model.norm(h))[0]
    return int((logits > logits[token]).sum()) + 1, float(torch.softmax(logits, -1)[token]), logits


@pytest.mark.parametrize("row_elements", [lens._ROW_ELEMENTS, 3 * 49152 + 7])  # one chunk; many, last one partial
def test_rankings_equal_the_row_by_row_computation(tied_lm, monkeypatch, row_elements):
    monkeypatch.setattr(lens, "_ROW_ELEMENTS", row_elements)
    out = tied_lm([TEXT])[0]
    r = out.rankings(positions="all")
    n_layers = out.hidden_states.shape[0] - 1
    assert r.ranks.shape == (n_layers, len(out.tokens) - 1)
    ties_seen = 0
    for li, layer in enumerate(r.layers):
        for pi, pos in enumerate(r.positions):
            token = int(out.token_ids[pos])
            rank, prob, logits = _reference(tied_lm, out, layer, pos - 1, token)
            assert r.ranks[li, pi] == rank, (layer, pos)
            assert r.probs[li, pi] == pytest.approx(prob, rel=1e-4, abs=1e-9)
            ties_seen += int((logits == logits[token]).sum()) - 1
    assert ties_seen > 0  # the exact duplicates did produce tied logits, and they did not count as larger


def test_rankings_watch_and_layer_predictions_equal_the_reference(tied_lm, monkeypatch):
    monkeypatch.setattr(lens, "_ROW_ELEMENTS", 2 * 49152)
    out = tied_lm([TEXT])[0]
    ids = [int(out.token_ids[3]), int(out.token_ids[5])]
    watch = out.rankings_watch(ids, position=4)
    preds = out.layer_predictions(position=4, topk=5)
    for li, layer in enumerate(watch.layers):
        for j, token in enumerate(ids):
            rank, prob, _ = _reference(tied_lm, out, layer, 3, token)
            assert watch.ranks[li, j] == rank
            assert watch.probs[li, j] == pytest.approx(prob, rel=1e-4, abs=1e-9)
        _, _, logits = _reference(tied_lm, out, layer, 3, 0)
        probs = torch.softmax(logits, -1)
        top = torch.topk(probs, 5)
        np.testing.assert_allclose(preds.probs[li], top.values.numpy(), rtol=1e-4)
        # every reported token really has the reported probability (ties may be listed in either order)
        np.testing.assert_allclose(probs[preds.token_ids[li]].numpy(), preds.probs[li], rtol=1e-4)


def test_a_hooked_head_takes_the_generic_path_with_the_same_result(tied_lm):
    out = tied_lm([TEXT])[0]
    fast = out.rankings(positions="all")
    handle = tied_lm.adapter.head.register_forward_hook(lambda _m, _a, o: o)
    try:
        assert lens._plain_head(tied_lm) is None
        slow = out.rankings(positions="all")
    finally:
        handle.remove()
    np.testing.assert_array_equal(fast.ranks, slow.ranks)
    np.testing.assert_allclose(fast.probs, slow.probs, rtol=1e-4, atol=1e-9)
