"""Checks on the shipped few-shot library ``ecco_sdk/explain/data/examples.json`` (content, not the loader)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[1] / "ecco_sdk" / "explain" / "data" / "examples.json"
SMOLLM = "smollm2-135m-instruct"
MINILM = "minilm-l6"
REQUIRED_CATEGORIES = (
    "numbers",
    "punctuation",
    "code",
    "poetry",
    "names-places",
    "dates",
    "grammar",
    "position",
    "quotes-brackets",
    "no-pattern",
)
KNOWN_CATEGORIES = (*REQUIRED_CATEGORIES, "semantic")
NMF_SOURCE = re.compile(r"^nmf:(smollm2-135m-instruct|minilm-l6):layers \d+-\d+:k=\d+$")
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@pytest.fixture(scope="module")
def doc() -> dict:
    return json.loads(LIBRARY.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def examples(doc: dict) -> list[dict]:
    return doc["examples"]


def test_top_level_shape(doc: dict) -> None:
    assert set(doc) == {"version", "examples"}
    assert doc["version"] == 1
    assert isinstance(doc["examples"], list)


def test_enough_examples(examples: list[dict]) -> None:
    assert len(examples) >= 40


def test_schema_keys_and_types(examples: list[dict]) -> None:
    allowed = {"id", "category", "source", "tokens", "activations", "explanation", "tokenizer"}
    for ex in examples:
        where = ex.get("id", "<no id>")
        assert {"id", "category", "source", "tokens", "activations", "explanation"} <= set(ex), where
        assert set(ex) <= allowed, f"{where}: unexpected keys {set(ex) - allowed}"
        assert isinstance(ex["id"], str) and ID.match(ex["id"]), where
        assert ex["category"] in KNOWN_CATEGORIES, f"{where}: category {ex['category']!r}"
        assert isinstance(ex["source"], str) and ex["source"], where
        assert ex.get("tokenizer", SMOLLM) in (SMOLLM, MINILM), where
        assert isinstance(ex["tokens"], list) and ex["tokens"], where
        assert all(isinstance(t, str) and t for t in ex["tokens"]), where
        assert isinstance(ex["activations"], list), where


def test_unique_ids(examples: list[dict]) -> None:
    dupes = [i for i, n in Counter(ex["id"] for ex in examples).items() if n > 1]
    assert not dupes


def test_activations_are_levels_matching_tokens(examples: list[dict]) -> None:
    for ex in examples:
        acts = ex["activations"]
        assert len(acts) == len(ex["tokens"]), ex["id"]
        assert all(type(a) is int and 0 <= a <= 10 for a in acts), ex["id"]
        assert max(acts) > 0, ex["id"]
        assert max(acts) == 10, f"{ex['id']}: levels are relative to the factor's max, so the max must be 10"


def test_token_counts_vary(examples: list[dict]) -> None:
    lengths = [len(ex["tokens"]) for ex in examples]
    assert min(lengths) >= 8
    assert max(lengths) <= 64
    assert any(n <= 12 for n in lengths) and any(n >= 40 for n in lengths)


def test_required_categories_present(examples: list[dict]) -> None:
    counts = Counter(ex["category"] for ex in examples)
    for cat in REQUIRED_CATEGORIES:
        assert counts[cat] >= 1, f"no {cat!r} example"
    assert counts["no-pattern"] >= 5


def test_no_pattern_explanations_say_so(examples: list[dict]) -> None:
    for ex in examples:
        if ex["category"] == "no-pattern":
            assert ex["explanation"].lower().startswith("no clear pattern"), ex["id"]


def test_sources(examples: list[dict]) -> None:
    nmf = [ex for ex in examples if ex["source"].startswith("nmf:")]
    assert len(nmf) >= 10
    for ex in examples:
        assert ex["source"] == "hand" or NMF_SOURCE.match(ex["source"]), f"{ex['id']}: source {ex['source']!r}"
    for ex in nmf:
        model = ex["source"].split(":")[1]
        assert ex.get("tokenizer", SMOLLM) == model, f"{ex['id']}: tokenizer must match the model of its source"


def test_minilm_examples(examples: list[dict]) -> None:
    minilm = [ex for ex in examples if ex.get("tokenizer") == MINILM]
    assert len(minilm) >= 4
    for ex in minilm:
        assert ex["tokens"][0] == "[CLS]" and ex["tokens"][-1] == "[SEP]", ex["id"]


def test_explanations(examples: list[dict]) -> None:
    for ex in examples:
        expl = ex["explanation"]
        assert isinstance(expl, str) and expl.strip(), ex["id"]
        assert len(expl) < 200, ex["id"]
        assert "\n" not in expl, ex["id"]


def test_loads_with_the_package_loader() -> None:
    from ecco_sdk.explain.library import load_library

    lib = load_library(LIBRARY)
    assert len(lib) >= 40


@pytest.mark.slow
def test_smollm_tokens_are_the_real_tokenization(examples: list[dict]) -> None:
    from ecco_sdk.models import load

    tok = load(SMOLLM, verbose=False).tokenizer
    bad = []
    for ex in examples:
        if ex.get("tokenizer", SMOLLM) != SMOLLM:
            continue
        text = "".join(ex["tokens"])
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if [tok.decode([i]) for i in ids] != ex["tokens"]:
            bad.append(ex["id"])
    assert not bad, f"tokens do not re-tokenize to themselves: {bad}"


@pytest.mark.slow
def test_minilm_tokens_are_the_real_tokenization(examples: list[dict]) -> None:
    from ecco_sdk.models import load

    tok = load(MINILM, verbose=False).tokenizer
    for ex in examples:
        if ex.get("tokenizer") != MINILM:
            continue
        ids = tok.convert_tokens_to_ids(ex["tokens"])
        assert tok.unk_token_id not in ids, ex["id"]
        words = tok.convert_tokens_to_string(ex["tokens"][1:-1])
        assert tok.convert_ids_to_tokens(tok(words)["input_ids"]) == ex["tokens"], ex["id"]
