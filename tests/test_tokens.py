"""The one home for token rules: special tokens, word-piece, byte-level BPE and sentencepiece markers, words."""

from __future__ import annotations

import re

import pytest

from ecco_sdk.explain.records import ActivationRecord
from ecco_sdk.render import factors_view
from ecco_sdk.render.tokens import token_parts
from ecco_sdk.tokens import (
    detokenize,
    display_tokens,
    is_byte_fallback,
    is_continuation,
    is_special,
    is_wordpiece,
    marks_word_starts,
    normalise_token,
    same_run,
    strip_continuation,
    token_scheme,
    token_words,
    word_groups,
)


@pytest.mark.parametrize(
    "token",
    ["[CLS]", "[SEP]", "[MASK]", "<s>", "</s>", "<pad>", "<unk>", "<|im_start|>", "<|endoftext|>", "<start_of_turn>"],
)
def test_special_tokens_are_recognised(token):
    assert is_special(token)


@pytest.mark.parametrize("token", ["<div>", "</li>", "<br>", "<0x0A>", "[x]", "ĠHello", "<", "|", "[CLS", "hello"])
def test_markup_and_text_are_not_special(token):
    assert not is_special(token)


def test_byte_fallback_tokens_stand_alone_as_words():
    assert is_byte_fallback("<0x0A>") and is_byte_fallback("<0xff>")
    assert not is_byte_fallback("<0x0>") and not is_byte_fallback("0x0A")
    tokens = ["▁Heath", "row", "<0x0A>", "Next", "▁line"]
    assert word_groups(tokens) == [[0, 1], [2], [3], [4]]


def test_wordpiece_continuations_need_text_after_the_marker():
    assert is_continuation("##ing") and not is_continuation("##") and not is_continuation("#ing")
    assert strip_continuation("##ing") == "ing"
    assert strip_continuation("##") == "##" and strip_continuation("play") == "play"


def test_wordpiece_is_told_apart_from_space_marked_tokenizers():
    assert is_wordpiece(["[CLS]", "play", "##ing", "[SEP]"])
    assert is_wordpiece(["[CLS]", "hello", "world", "[SEP]"])  # no "##", but BERT's separators
    assert not is_wordpiece(["Hel", "lo"])  # unmarked tokens are not word-piece
    # markdown "###" in byte-level BPE text is not a continuation marker: the "Ġ" tokens decide
    assert not is_wordpiece(["###", "ĠHe", "ading"])
    assert not marks_word_starts(["ĠOnly"]) and marks_word_starts(["a", "\tb"])


@pytest.mark.parametrize(
    ("tokens", "scheme"),
    [
        (["[CLS]", "an", "##ki", "[SEP]"], "wordpiece"),
        (["Hello", "Ġworld", "Ċ"], "byte-level"),
        (["▁The", "▁cat", "s"], "sentencepiece"),
        (["a", "b"], "plain"),
        (["###", "ĠHe", "ading"], "byte-level"),
    ],
)
def test_token_scheme(tokens, scheme):
    assert token_scheme(tokens) == scheme


def test_normalise_token_decodes_every_marker_family():
    assert normalise_token("Ġairport") == " airport"  # byte-level BPE space
    assert normalise_token("▁the") == " the"  # sentencepiece space
    assert normalise_token("âĢĻ") == "’"  # three UTF-8 bytes spelt as byte-level characters
    assert normalise_token("ĠcafÃ©") == " café"
    assert normalise_token("čĊ") == "\r\n"
    assert normalise_token("âĢ") == "âĢ"  # an incomplete UTF-8 sequence keeps its characters
    assert normalise_token("Łódź") == "Łódź"  # not every byte-level character: plain text stays
    assert normalise_token("[CLS]") == "[CLS]"


def test_display_tokens_per_scheme():
    assert display_tokens(["It", "âĢĻ", "s", "Ġa", "ĠcafÃ©", "Ċ", "ĉx"]) == ["It", "’", "s", " a", " café", "↵", "⇥x"]
    assert display_tokens(["▁cię", "ę", "<0x0A>"]) == [" cię", "ę", "<0x0A>"]  # no byte decoding outside byte-level
    assert display_tokens(["[CLS]", "un", "##believ", "##able", "[SEP]"]) == [
        "[CLS]",
        " un",
        "believ",
        "able",
        " [SEP]",
    ]
    assert display_tokens(["<|im_start|>", "user", "Ċ", "Hi"]) == ["<|im_start|>", "user", "↵", "Hi"]
    assert display_tokens(["def", "Ġf", "Ċ", "###", "ĠHe", "ading"]) == ["def", " f", "↵", "###", " He", "ading"]
    assert detokenize(["[CLS]", "hello", "world"]) == "[CLS] hello world"


def test_word_groups_per_scheme():
    assert word_groups(["He", "ath", "row", "Ġairport", ",", "ĠLondon"]) == [[0, 1, 2], [3], [4], [5]]
    assert word_groups(["▁un", "believ", "able", "▁cat"]) == [[0, 1, 2], [3]]
    assert word_groups(["[CLS]", "play", "##ing", "!", "[SEP]"]) == [[0], [1, 2], [3], [4]]
    assert word_groups(["a", "b", "c"]) == [[0], [1], [2]]  # no markers: each token is a word
    assert word_groups(["<start_of_turn>", "user", "▁hi"]) == [[0], [1], [2]]
    assert word_groups([]) == []


def test_words_and_runs_over_display_strings():
    display = ["<", "/", "li", ">", " Berg", "en", " 12", ",", "000"]
    assert token_words(display) == ["<", "/", "li", ">", "Bergen", "Bergen", "12", ",", "000"]
    assert token_words(display, glue=same_run)[:4] == ["</li>"] * 4
    assert not same_run("a", "↵b") and same_run("a", "b") and not same_run("a", " b")


def test_every_view_reads_tokens_through_the_same_rules():
    tokens = ["[CLS]", "un", "##believ", "##able", "cat", "[SEP]"]
    parts = [token_parts(t, wordpiece=is_wordpiece(tokens), first=i == 0) for i, t in enumerate(tokens)]
    record = ActivationRecord(tokens=tokens, activations=[0, 1, 2, 3, 0, 0])
    assert "".join(p.lead + p.text for p in parts) == "".join(record.display) == "[CLS] unbelievable cat [SEP]"
    assert [p.special for p in parts] == [is_special(t) for t in tokens] == [True, False, False, False, False, True]
    html = factors_view(tokens, [[0, 1, 2, 3, 0, 0]]).html
    classes = re.findall(r'class="ecco-tok ?([^"]*)"', html)[:6]
    assert classes == ["ecco-special", "", "ecco-cont", "ecco-cont", "", "ecco-special"]
