"""Corpus NMF through a real model: batched capture, one fit over many texts, applied to a new text."""

from __future__ import annotations

import numpy as np
import pytest

from ecco_sdk import InputError
from ecco_sdk.factors import apply_factor_model, fit_corpus_nmf, run_nmf, texts_activations

CORPUS = [
    "I love commas, really, I do.",
    "Apples, pears, plums, and figs are fruit.",
    "He said she would come back tomorrow.",
    "The cat sat on the mat, then slept.",
    "Numbers like 1, 2, 3 and 4 are small.",
    "Paris, London and Rome are cities.",
]


def test_batched_capture_equals_one_text_at_a_time(minilm):
    batched = texts_activations(minilm, CORPUS, batch_size=4)
    single = texts_activations(minilm, CORPUS, batch_size=1)
    for (tok_b, act_b), (tok_s, act_s) in zip(batched, single, strict=True):
        assert tok_b == tok_s
        assert act_b.shape == act_s.shape == (minilm.n_layers, minilm.n_neurons, len(tok_s))
        np.testing.assert_allclose(act_b, act_s, atol=2e-4)


def test_corpus_model_applies_to_new_text_and_refits_its_own_texts(minilm):
    model = fit_corpus_nmf(minilm, CORPUS, n_components=4, batch_size=3)
    assert model.n_texts == len(CORPUS) and model.meta["model_name"] == minilm.name
    assert np.all(np.diff(model.totals) <= 0)  # factors in documented order: total activation, largest first

    new = apply_factor_model(model, minilm, "Oranges, lemons, and limes, please.")
    assert new.factors.shape == (4, len(new.tokens)) and np.all(new.factors >= 0)
    assert new.tokens[0] == "[CLS]" and new.tokens[-1] == "[SEP]"

    # A corpus fitted on one text is the single-text NMF of that text.
    ((tokens, acts),) = texts_activations(minilm, [CORPUS[1]])
    one = fit_corpus_nmf(minilm, [CORPUS[1]], n_components=3)
    direct = run_nmf(acts, tokens, n_components=3)
    np.testing.assert_allclose(one.components, direct.components, atol=1e-4)


def test_corpus_nmf_on_the_causal_model_with_a_layer_range(smollm):
    model = fit_corpus_nmf(smollm, CORPUS[:4], n_components=3, from_layer=25, to_layer=30)
    assert model.layers == (25, 30) and model.n_features == 5 * smollm.n_neurons
    res = apply_factor_model(model, smollm, "Plums, figs, and dates.")
    assert res.factors.shape[0] == 3
    layer, neuron, weight = res.top_neurons(0, n=1)[0]
    assert 25 <= layer < 30 and 0 <= neuron < smollm.n_neurons and weight > 0


def test_corpus_nmf_bad_input(minilm):
    with pytest.raises(InputError, match="at least one text"):
        fit_corpus_nmf(minilm, [], n_components=2)
    with pytest.raises(InputError, match="batch_size"):
        texts_activations(minilm, CORPUS, batch_size=0)
