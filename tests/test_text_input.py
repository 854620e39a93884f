"""Every SDK entry point that takes text refuses lone surrogates and non-strings with a clear InputError (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest

import ecco_sdk
from ecco_sdk.attribution import attribute_text
from ecco_sdk.checks import check_text
from ecco_sdk.errors import InputError
from ecco_sdk.explain import explain_activations, explain_text
from ecco_sdk.factors import fit_corpus_nmf

LONE = "Hi \ud800 there"


@pytest.fixture(scope="module")
def lm(tiny_model_dir):
    return ecco_sdk.from_pretrained(tiny_model_dir("gpt2"), activations=True, verbose=False)


def test_the_tokenizer_itself_fails_with_a_bare_type_error(lm):
    """Why the check exists: Hugging Face fast tokenizers cannot take a lone surrogate."""
    with pytest.raises(TypeError):
        lm.tokenizer(LONE)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda lm: lm.generate(LONE, generate=1), r"^text contains a lone surrogate U\+D800 at character 3"),
        (lambda lm: lm.generate("Hi \udfff"), r"lone surrogate U\+DFFF at character 3"),
        (lambda lm: lm.encode("\ud83d"), r"lone surrogate U\+D83D at character 0"),
        (lambda lm: lm(["fine text", LONE]), r"^text 1 contains a lone surrogate U\+D800"),
        (lambda lm: lm(LONE), r"^text 0 contains a lone surrogate"),
        (lambda lm: lm.attribute(LONE, " x", methods="saliency"), r"^text contains a lone surrogate"),
        (lambda lm: lm.attribute("Hi", " \udc80", methods="saliency"), r"^target contains a lone surrogate U\+DC80"),
        (lambda lm: attribute_text(lm, "Hi", "\ud800", "saliency"), r"^target contains a lone surrogate"),
        (lambda lm: explain_text(lm, LONE, backend="never-called"), r"^text contains a lone surrogate"),
        (lambda lm: fit_corpus_nmf(lm, ["one two three"] * 9 + [LONE]), r"^text 9 contains a lone surrogate"),
        (
            lambda lm: explain_activations(
                lm, ["a", "b", "c"], np.ones((2, 4, 3)), 1, held_out=["ok text", LONE], backend="never-called"
            ),
            r"^held-out text 1 contains a lone surrogate",
        ),
        (lambda lm: lm.generate(b"Hi there"), r"text must be a string, got bytes; decode it first"),
        (lambda lm: lm.generate(None), r"text must be a string, got NoneType"),
        (lambda lm: lm(["ok", 5]), r"text 1 must be a string, got int"),
        (lambda lm: lm(7), r"pass a text, a list of texts, or a tokenizer BatchEncoding; got int"),
        (lambda lm: lm([]), r"got an empty list"),
        (lambda lm: lm.generate("   "), r"text is empty"),
    ],
)
def test_bad_text_is_an_input_error_saying_what_to_change(lm, call, match):
    with pytest.raises(InputError, match=match):
        call(lm)


def test_real_characters_outside_the_bmp_still_work(lm):
    out = lm.generate("Hi \U0001f600", generate=1)
    assert out.n_generated == 1
    assert check_text("\U0001f600") == "\U0001f600"
    assert check_text(" ", "target", allow_blank=True) == " "


def test_the_message_echoes_no_input(lm):
    huge = "x" * 100_000 + "\ud800"
    with pytest.raises(InputError) as info:
        lm.generate(huge)
    assert len(str(info.value)) < 300 and "character 100000" in str(info.value)
