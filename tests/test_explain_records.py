"""Activation records: relative 0-10 levels, the compact view, readable sub-word tokens, input checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ecco_sdk.errors import EccoError, InputError
from ecco_sdk.explain.records import ActivationRecord, records_from_factors, search_texts, to_levels
from ecco_sdk.tokens import detokenize, display_tokens

TOKENS = ["I", " love", " apples", ",", " pears", ",", " and", " plums", "."]


def test_levels_are_relative_to_the_factor_maximum():
    small = to_levels([0.0, 0.001, 0.002, 0.0005])
    big = to_levels([0.0, 100.0, 200.0, 50.0])
    assert small == big == [0, 5, 10, 3]  # the same shape gives the same levels at any scale


def test_tokens_at_five_percent_or_less_of_the_peak_read_as_zero():
    assert to_levels([1.0, 0.049, 0.051, 0.0]) == [10, 0, 1, 0]


def test_all_zero_factor_gives_zero_levels_and_empty_view():
    rec = ActivationRecord(TOKENS, [0.0] * len(TOKENS))
    assert rec.levels == [0] * len(TOKENS)
    assert rec.is_empty()
    assert rec.compact() == ""
    assert rec.top_tokens() == []
    assert search_texts(rec) == ("I love apples, pears, and plums.", "I love apples, pears, and plums.")


def test_compact_view_marks_active_tokens_with_levels_and_elides_the_rest():
    tokens = ["The", " cat", " sat", " on", " the", " mat", " while", " we", " ate", " apples", ",", " pears", "."]
    acts = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1.0, 0, 0.2]
    rec = ActivationRecord(tokens, acts)
    assert rec.compact(context=1) == "… apples[,:10] pears[.:2]"
    assert rec.compact(context=2) == "… ate apples[,:10] pears[.:2]"
    # a leading space stays outside the brackets so the text still reads naturally
    rec2 = ActivationRecord(TOKENS, [0, 0, 0, 0, 1.0, 0, 0, 0, 0])
    assert rec2.compact(context=1) == "… , [pears:10], …"


def test_compact_view_respects_min_level():
    rec = ActivationRecord(TOKENS, [0, 0, 0, 1.0, 0, 0.9, 0.1, 0, 0.2])
    assert "[and:1]" in rec.compact()
    assert "[and:1]" not in rec.compact(min_level=5)
    assert rec.compact(context=0, min_level=5) == "… [,:10] … [,:9] …"


def test_lines_format_has_one_token_and_level_per_line():
    rec = ActivationRecord(TOKENS, [0, 0, 0, 1.0, 0, 0.9, 0.1, 0, 0.2])
    lines = rec.lines().split("\n")
    assert len(lines) == len(TOKENS)
    assert lines[3] == ",\t10" and lines[5] == ",\t9" and lines[0] == "I\t0"


def test_top_tokens_merge_repeats_and_sort_by_strength():
    rec = ActivationRecord(TOKENS, [0, 0, 0, 1.0, 0, 0.9, 0.1, 0, 0.2])
    assert rec.top_tokens(2) == [(",", 10), (".", 2)]


def test_byte_level_tokens_are_shown_readably():
    assert display_tokens(["ĠHello", "Ġworld", "Ċ", "def"]) == [" Hello", " world", "↵", "def"]


def test_sentencepiece_tokens_are_shown_readably():
    assert display_tokens(["▁The", "▁cat", "s", "<0x0A>"]) == [" The", " cat", "s", "<0x0A>"]


def test_wordpiece_continuations_join_and_word_starts_get_spaces():
    disp = display_tokens(["[CLS]", "an", "##ki", "vector", "[SEP]"])
    assert disp == ["[CLS]", " an", "ki", " vector", " [SEP]"]
    assert detokenize(["[CLS]", "an", "##ki", "vector"]) == "[CLS] anki vector"


def test_newlines_and_tabs_become_visible_marks():
    assert display_tokens(["a", "\n", "\tb", " c\r\n"]) == ["a", "↵", "⇥b", " c↵"]
    rec = ActivationRecord(["x", "\n", "y"], [0, 1.0, 0])
    assert rec.compact() == "x[↵:10]y"


def test_records_from_factors_keeps_factor_order():
    factors = np.zeros((3, len(TOKENS)))
    factors[0, 1] = 2.0  # love
    factors[1, 2] = 1.0  # apples
    factors[2, 7] = 5.0  # plums
    recs = records_from_factors(TOKENS, factors)
    assert [r.factor for r in recs] == [0, 1, 2]
    assert [r.top_tokens(1)[0][0] for r in recs] == ["love", "apples", "plums"]


def test_single_factor_may_be_one_dimensional():
    recs = records_from_factors(TOKENS, np.linspace(0, 1, len(TOKENS)))
    assert len(recs) == 1 and recs[0].levels[-1] == 10


@pytest.mark.parametrize(
    ("factors", "needle"),
    [
        (np.zeros((len(TOKENS), 2)), "transposed"),
        (np.zeros((2, 4)), "second axis"),
        (np.full((1, len(TOKENS)), -1.0), "negative"),
        (np.full((1, len(TOKENS)), np.nan), "NaN"),
        (np.zeros((1, 2, len(TOKENS))), "(n_factors, n_tokens)"),
    ],
)
def test_bad_factor_arrays_raise_input_error_saying_what_to_change(factors, needle):
    with pytest.raises(InputError, match=None) as info:
        records_from_factors(TOKENS, factors)
    assert needle in str(info.value)
    assert isinstance(info.value, EccoError)


def test_float_noise_below_zero_is_clipped():
    factors = np.zeros((1, len(TOKENS)))
    factors[0, 3] = 1.0
    factors[0, 4] = -1e-9
    rec = records_from_factors(TOKENS, factors)[0]
    assert rec.levels[4] == 0 and rec.activations[4] == 0.0


def test_record_to_dict_is_json_serializable_and_complete():
    rec = ActivationRecord(TOKENS, [0, 0, 0, 1.0, 0, 0.9, 0.1, 0, 0.2], factor=4)
    d = json.loads(json.dumps(rec.to_dict()))
    assert d["factor"] == 4 and d["levels"][3] == 10 and d["max_activation"] == 1.0
    assert d["compact"] == rec.compact()


def test_from_levels_keeps_given_levels():
    rec = ActivationRecord.from_levels(["a", "b"], [3, 7])
    assert rec.levels == [3, 7]  # not rescaled so the peak becomes 10
