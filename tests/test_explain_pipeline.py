"""explain_activations leaves out the first positions (the attention sink) of the text and of held-out texts.

Every check here fails before any explanation is written, so no LLM is called: bad settings cost nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

from ecco_sdk import InputError
from ecco_sdk.explain import SKIP_FIRST, explain_activations
from ecco_sdk.explain.pipeline import held_out_activations, skip_positions
from ecco_sdk.factors import texts_activations

TEXT = "The children were running home because the dogs had barked all night."


@pytest.fixture(scope="module")
def captured(smollm):
    ((tokens, acts),) = texts_activations(smollm, [TEXT])
    return tokens, acts


def test_the_first_position_is_the_attention_sink(captured):
    _, acts = captured
    norms = np.linalg.norm(acts.reshape(-1, acts.shape[2]), axis=0)
    assert norms[0] > 10 * norms[1:].max()  # why SKIP_FIRST is 1


def test_skip_positions_drops_the_first_tokens_and_their_activations(captured):
    tokens, acts = captured
    kept, toks = skip_positions(acts, list(tokens), SKIP_FIRST)
    assert toks == list(tokens)[1:] and kept.shape == (*acts.shape[:2], acts.shape[2] - 1)
    np.testing.assert_array_equal(kept, acts[:, :, 1:])


@pytest.mark.parametrize("skip", [-1, 1.5, True, "1"])
def test_a_bad_skip_first_is_a_clear_error(smollm, captured, skip):
    tokens, acts = captured
    with pytest.raises(InputError, match="skip_first must be a non-negative integer"):
        explain_activations(smollm, tokens, acts, 2, score=False, skip_first=skip)


def test_a_text_too_short_after_skipping_is_a_clear_error(smollm, captured):
    tokens, acts = captured
    with pytest.raises(InputError, match="fewer than the 2 that NMF needs; pass a longer text or skip_first=0"):
        explain_activations(smollm, tokens[:2], acts[:, :, :2], 1, score=False)


def test_a_held_out_text_with_nothing_left_is_refused_before_any_explanation(smollm, captured):
    tokens, acts = captured
    with pytest.raises(InputError, match="held-out text 'Hi' has 1 token"):
        explain_activations(smollm, tokens, acts, 2, held_out=["Hi", "A longer held-out text."])


def test_held_out_activations_match_a_capture_without_their_first_position(smollm):
    texts = ["Paris, Berlin and Rome are capitals.", "One, two, three."]
    held = held_out_activations(smollm, texts, 1)
    for text, (tokens, acts) in zip(texts, texts_activations(smollm, texts), strict=True):
        assert held[text][0] == list(tokens)[1:]
        np.testing.assert_array_equal(held[text][1], acts[:, :, 1:])
