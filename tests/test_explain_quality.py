"""Quality and speed controls of the local explainer: one-line replies, no loops, tidy text, cheap exact scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecco_sdk.explain import ActivationRecord
from ecco_sdk.explain.generation import banned_next, make_no_repeat
from ecco_sdk.explain.prompt import (
    FALLBACK_SIMULATION_EXAMPLE,
    clean_explanation,
    dedupe_clauses,
    naming_choices,
    naming_messages,
    user_turn,
)
from ecco_sdk.explain.scoring import simulate
from ecco_sdk.tokens import display_tokens, same_run, token_words


def test_banned_next_blocks_only_repeats_of_an_ngram_in_the_reply():
    assert banned_next([5, 6, 7, 5, 6], 3) == {7}  # "5 6" was followed by 7 once: 7 would repeat "5 6 7"
    assert banned_next([5, 6, 7, 8], 3) == set()
    assert banned_next([4, 4], 2) == {4}
    assert banned_next([1, 2], 3) == set() and banned_next([1, 2, 3], 0) == set()


def test_no_repeat_processor_touches_only_generated_tokens():
    prompt = [1, 2, 3]
    ids = torch.tensor([[*prompt, 7, 8, 7]])  # the reply so far: 7 8 7
    scores = torch.tensor([[1.0, 2.0, 2.0, 2.0, 0.0, 0.0, 0.0, 3.0, -2.0, 0.5]])
    out = make_no_repeat(len(prompt), ngram=2, penalty=2.0)(ids, scores.clone())
    assert out[0, 8] == float("-inf")  # "7 8" again is banned
    assert out[0, 7] == pytest.approx(1.5)  # a used token with a positive logit is damped
    assert out[0, 1].item() == 2.0 and out[0, 2].item() == 2.0  # prompt tokens keep their logits
    assert out[0, 9].item() == 0.5
    neg = make_no_repeat(len(prompt), ngram=0, penalty=2.0)(ids, torch.tensor([[0.0] * 7 + [0.0, -2.0, 0.0]]))
    assert neg[0, 8].item() == -4.0  # a used token with a negative logit is pushed further down


def test_dedupe_and_clean_remove_a_small_models_loops():
    assert dedupe_clauses("commas, commas and commas") == "commas"
    assert dedupe_clauses("names of cities; names of cities; weak on commas") == "names of cities; weak on commas"
    assert dedupe_clauses("items in a list in a list in a list") == "items in a list"
    assert dedupe_clauses('the tokens "," and "and"') == 'the tokens "," and "and"'
    assert dedupe_clauses("digits 1, 2 and 3") == "digits 1, 2 and 3"
    assert clean_explanation("Years written as numbers, years written as numbers.\nuser: next") == (
        "Years written as numbers"
    )


def test_top_words_widen_sub_words_and_the_prompt_shows_them():
    tokens = ["Maria", " flew", " to", " Berg", "en", " and", " Jon", "as", "."]
    rec = ActivationRecord.from_levels(tokens, [0, 0, 0, 2, 9, 0, 8, 1, 3])
    assert rec.top_words(3) == [("Bergen", 9), ("Jonas", 8), (".", 3)]
    assert rec.top_tokens(2) == [("en", 9), ("Jon", 8)]
    assert "Strongest: Bergen, Jonas, ." in user_turn(rec)["content"]


def test_token_words_widen_sub_words_and_runs_keep_markup_together():
    display = ["<", "/", "li", ">", " Berg", "en", " has", " 12", ",", "000", "↵", "end"]
    assert token_words(display) == ["<", "/", "li", ">", "Bergen", "Bergen", "has", "12", ",", "000", "↵", "end"]
    runs = token_words(display, glue=same_run)
    assert runs[:4] == ["</li>"] * 4 and runs[7:10] == ["12,000"] * 3
    assert runs[10:] == ["↵", "end"]  # a shown line break ends a run


def test_naming_prompt_puts_the_text_first_and_offers_each_tokens_word():
    display = ["Tea", " and", " Berg", "en", " </", "li", ">"]
    text = "Tea and Bergen </li>"
    a, b = naming_messages("city names", text), naming_messages("drinks", text)
    assert a[0] == b[0] and a[1]["content"].startswith(f"Text: {text}\nDescription: city names")
    assert b[1]["content"].split("Description:")[0] == a[1]["content"].split("Description:")[0]  # a shared prefix
    choices = naming_choices(display)
    assert len(choices) == len(display)
    assert choices[3] == ["Bergen", " Bergen"] and "</li>" in choices[4] and " </li>" in choices[4]


# -- with the embedded SmolLM2 ---------------------------------------------------------------------


@pytest.mark.slow
def test_local_reply_is_one_line_without_repeated_trigrams(local):
    messages = [{"role": "user", "content": "Write the numbers one to twenty, one per line."}]
    reply = local.complete(messages, max_tokens=40)
    assert reply and "\n" not in reply
    ids = local._encode(reply)
    trigrams = [tuple(ids[i : i + 3]) for i in range(len(ids) - 2)]
    assert len(trigrams) == len(set(trigrams))


@pytest.mark.slow
def test_batched_length_sorted_scoring_equals_one_sequence_at_a_time(local):
    """Sorting by length, padding and the cached shared prefix must not change a single value."""
    example = FALLBACK_SIMULATION_EXAMPLE
    displays = [
        display_tokens(list(example.tokens)),
        ["Red", ",", " green"],
        ["One", " two", ",", " three", " and", " four", " more", " words", "."],
    ]
    explanations = [example.explanation, "colour names"]
    local._prefix_cache.clear()
    batched = simulate(local, explanations, displays, [example])
    assert len(local._prefix_cache) == len(displays)  # per text: system prompt + text, computed once
    old = local.max_batch
    try:
        local.max_batch = 1
        single = simulate(local, explanations, displays, [example])
    finally:
        local.max_batch = old
    for (vals_a, _), (vals_b, _) in zip(batched, single, strict=True):
        for a, b in zip(vals_a, vals_b, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-3)
    assert [len(v) for v in batched[0][0]] == [len(d) for d in displays]
