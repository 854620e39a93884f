"""explain_factors: factor order, prompt packing within the token budget, and the real offline default path."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from servers.openai_compat import OpenAICompatServer

from ecco_sdk.errors import InputError
from ecco_sdk.explain import (
    ActivationRecord,
    OpenAIBackend,
    explain_factors,
    format_explanations,
    load_library,
    pack_prompt,
)
from ecco_sdk.explain.explainer import INACTIVE_TEXT
from ecco_sdk.explain.prompt import NO_PATTERN, SYSTEM_PROMPT, clean_explanation
from ecco_sdk.explain.store import forget_clients

FIXTURE = Path(__file__).parent / "explain_fixtures" / "examples.json"
TOKENS = ["Alice", " met", " Bob", " in", " Paris", " on", " 3", " May", ",", " 2021", "."]
KEY = "sk-explainer-test"


def _strongest(user_message: str) -> str:
    """The token marked with level 10 in an explainer prompt's compact view."""
    return re.findall(r"\[([^\]]+?):10\]", user_message)[0]


class PromptReader:
    """A real Backend: answers from the prompt's content, so a mixed-up factor order is visible."""

    name = "prompt-reader"
    context_window = 4096

    def __init__(self, jitter: float = 0.0) -> None:
        self.calls: list[list[dict[str, str]]] = []
        self.jitter = jitter
        self._lock = threading.Lock()

    def complete(self, messages, max_tokens=64):
        with self._lock:
            self.calls.append(list(messages))
        time.sleep(random.random() * self.jitter)  # threads finish in a shuffled order
        return f"Explanation: the token '{_strongest(messages[-1]['content'])}'.\nmore text"

    def count_tokens(self, text):
        return len(text.split())

    def count_messages(self, messages):
        return sum(self.count_tokens(m["content"]) + 3 for m in messages)


def _one_hot_factors(positions: list[int]) -> np.ndarray:
    factors = np.zeros((len(positions), len(TOKENS)))
    for f, pos in enumerate(positions):
        factors[f, pos] = 1.0 + f
        factors[f, (pos + 1) % len(TOKENS)] = 0.3 * (1.0 + f)
    return factors


@pytest.fixture(scope="module")
def library():
    return load_library(FIXTURE)


def _cited(e) -> str:
    """The quoted strongest tokens an explanation ends with by default (CITED_TOKENS of its record)."""
    return ", ".join(json.dumps(t, ensure_ascii=False) for t, _ in e.record.top_tokens(3))


@pytest.mark.parametrize("workers", [1, 4])
def test_explanations_come_back_in_factor_order(library, workers):
    positions = [4, 0, 9, 2, 7, 6]
    backend = PromptReader(jitter=0.05)
    out = explain_factors(
        TOKENS, _one_hot_factors(positions), backend=backend, retriever="bm25", library=library, max_workers=workers
    )
    assert [e.factor for e in out] == list(range(len(positions)))
    for e, pos in zip(out, positions, strict=True):
        word = TOKENS[pos].strip()
        # cleaned (label, quotes' surroundings and extra lines removed), then the strongest token cited
        assert e.text == f"the token '{word}' (strongest: {_cited(e)})" and _cited(e).startswith(f'"{word}"')
        assert e.record.top_tokens(1)[0][0] == word
        assert f"[{word}:10]" in e.messages[-1]["content"]


def test_order_is_kept_through_a_real_openai_client_with_concurrent_requests(library):
    def responder(messages, body):
        word = _strongest(messages[-1]["content"])
        time.sleep(0.15 if word in ("Paris", "Alice") else 0.0)  # early factors answer last
        return f"the word {word}"

    positions = [4, 0, 9, 2]
    with OpenAICompatServer(api_key=KEY, responder=responder) as srv:
        backend = OpenAIBackend("m", base_url=srv.base_url, api_key=KEY)
        out = explain_factors(
            TOKENS, _one_hot_factors(positions), backend=backend, retriever="bm25", library=library, max_workers=4
        )
    assert [e.text for e in out] == [
        f"the word {TOKENS[p].strip()} (strongest: {_cited(e)})" for p, e in zip(positions, out)
    ]
    assert all(e.backend == backend.name for e in out)


def test_an_all_zero_factor_is_not_sent_to_the_llm(library):
    factors = _one_hot_factors([4, 0])
    factors[1] = 0.0
    backend = PromptReader()
    out = explain_factors(TOKENS, factors, backend=backend, retriever="bm25", library=library)
    assert len(backend.calls) == 1
    assert out[1].text == INACTIVE_TEXT and out[1].messages == [] and out[1].record.is_empty()


def test_explanation_records_prompt_examples_and_record(library):
    backend = PromptReader()
    (e,) = explain_factors(
        TOKENS, _one_hot_factors([4]), backend=backend, retriever="bm25", library=library, n_examples=3
    )
    assert len(e.example_ids) == 3 and set(e.example_ids) <= set(library.ids)
    assert e.messages == backend.calls[0]
    assert e.messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    # one (user, assistant) pair per example, and the assistant turns are those examples' explanations
    shown = [m["content"] for m in e.messages[2:-1:2]]
    assert shown == [library.get(i).explanation for i in e.example_ids]
    assert e.prompt_tokens == backend.count_messages(e.messages) <= e.token_budget
    d = json.loads(json.dumps(e.to_dict()))
    assert d["factor"] == 0 and d["record"]["levels"][4] == 10 and d["example_ids"] == e.example_ids
    assert "Paris" in format_explanations([e]) and "factor 0" in format_explanations([e])


def test_bad_arguments_raise_input_errors(library):
    with pytest.raises(InputError, match="transposed"):
        explain_factors(TOKENS, np.zeros((len(TOKENS), 3)), backend=PromptReader(), library=library)
    with pytest.raises(InputError, match="unknown backend"):
        explain_factors(TOKENS, _one_hot_factors([1]), backend="claude", library=library)
    with pytest.raises(InputError, match="unknown retriever"):
        explain_factors(TOKENS, _one_hot_factors([1]), backend=PromptReader(), retriever="graph", library=library)


def test_clean_explanation():
    assert clean_explanation('Explanation: "years written as numbers". It also...') == "years written as numbers"
    assert clean_explanation("\n\n  ") == NO_PATTERN
    assert clean_explanation("Answer: commas\nsecond line") == "commas"


# -- with the embedded SmolLM2 ---------------------------------------------------------------------


def _long_record() -> ActivationRecord:
    rng = np.random.default_rng(0)
    words = [" word" + str(i) for i in range(300)]
    return ActivationRecord(words, rng.random(300).tolist())


@pytest.mark.slow
def test_packing_respects_the_budget_counted_with_the_local_tokenizer(local, library):
    record = ActivationRecord(TOKENS, _one_hot_factors([8])[0].tolist())
    candidates = list(library)
    sizes = []
    for budget in (200, 350, 650, 4000):
        prompt = pack_prompt(record, candidates, count=local.count_messages, budget=budget, n_examples=6)
        real = local.count_messages(prompt.messages)
        assert real == prompt.tokens <= budget
        sizes.append(len(prompt.example_ids))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1] == 6  # more room, more examples, up to n_examples
    with pytest.raises(InputError, match="too small"):
        pack_prompt(record, candidates, count=local.count_messages, budget=40, n_examples=2)


@pytest.mark.slow
def test_a_view_too_long_for_the_budget_keeps_only_the_strongest_tokens(local):
    record = _long_record()
    prompt = pack_prompt(record, [], count=local.count_messages, budget=450, n_examples=0)
    assert prompt.min_level > 1 and prompt.tokens <= 450
    assert "[" in prompt.messages[-1]["content"]


def test_openai_token_estimate_is_chars_over_four():
    backend = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", api_key="x")
    assert backend.count_tokens("a" * 40) == 10 and backend.count_tokens("abc") == 1
    msgs = [{"role": "user", "content": "a" * 40}]
    assert backend.count_messages(msgs) == 10 + 4 + 3


@pytest.mark.slow
def test_default_retriever_really_explains_with_minilm_and_embedded_chroma(local, library, tmp_path, monkeypatch):
    """Local SmolLM2 (pinned for speed) and the default retriever (hybrid: MiniLM in embedded Chroma + BM25)."""
    monkeypatch.setenv("ECCO_SDK_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ECCO_SDK_EXPLAINER", raising=False)
    monkeypatch.delenv("ECCO_SDK_EMBEDDING", raising=False)
    monkeypatch.delenv("CHROMA_HOST", raising=False)
    monkeypatch.delenv("CHROMA_PORT", raising=False)
    forget_clients()
    tokens = ["I", " bought", " eggs", ",", " milk", ",", " and", " bread", "."]
    factors = np.array([[0, 0, 0, 1.0, 0, 0.9, 0.1, 0, 0]])
    try:
        (e,) = explain_factors(
            tokens, factors, backend=local, library=library, n_examples=2, max_tokens=16, token_budget=500
        )
    finally:
        forget_clients()
    assert e.backend == "local:smollm2-135m-instruct" and e.retriever == "hybrid"
    assert (tmp_path / "cache" / "chroma").is_dir()
    assert len(e.example_ids) == 2 and set(e.example_ids) <= set(library.ids)
    assert e.raw.strip() and e.text and len(e.text) <= 201
    assert e.prompt_tokens == local.count_messages(e.messages) <= 500
    assert "[,:10]" in e.messages[-1]["content"]


@pytest.mark.slow
def test_special_token_text_in_a_prompt_stays_plain_text(local):
    """A shown "<|im_start|>" token must not open a new chat turn in the local model's prompt."""
    start_id = local.tokenizer.convert_tokens_to_ids("<|im_start|>")
    msgs = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "Feature activations:\n[<|im_start|>:10]The sky is blue."},
    ]
    ids = local.tokenizer(local._template(msgs), add_special_tokens=False)["input_ids"]
    assert ids.count(start_id) == 3  # system, user, assistant turns; nothing from the content
    raw = local.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert local.tokenizer(raw, add_special_tokens=False)["input_ids"].count(start_id) == 4  # what defuse prevents


# -- copies of a worked example ----------------------------------------------------------------------


class Copier(PromptReader):
    """A real Backend that copies the longest worked example shown in its prompt, `copies` times, then answers."""

    def __init__(self, copies: int) -> None:
        super().__init__()
        self.copies = copies

    def complete(self, messages, max_tokens=64):
        with self._lock:
            self.calls.append(list(messages))
            if len(self.calls) <= self.copies:
                return max((m["content"] for m in messages if m["role"] == "assistant"), key=len)
        return f"the word {_strongest(messages[-1]['content'])}"


def test_copy_similarity_and_threshold():
    from ecco_sdk.explain.explainer import COPY_THRESHOLD, copy_similarity

    source = "Spelled-out number words (one to six), slightly weaker toward the end."
    assert copy_similarity("Spelled-out number words (one to four)", source) == (6 / 7, 6)  # issue 15 copy
    assert copy_similarity("Digits of numbers and years", "digits of numbers and YEARS (each digit)") == (1.0, 5)
    assert copy_similarity("names of cities", "Commas separating items in a list")[0] == 0.0
    assert copy_similarity("", source) == (0.0, 0)
    assert 6 / 7 >= COPY_THRESHOLD > 0.40  # above the 99th percentile of distinct library explanations


def test_find_copy_needs_enough_words(library):
    from ecco_sdk.explain.explainer import find_copy

    commas = library.get("punct-commas-01")
    assert find_copy("Commas separating items in a list", [commas]) == ("punct-commas-01", 1.0)
    copied, share = find_copy("commas", [commas])  # one word found is not a copy
    assert copied is None and share == 1.0
    assert find_copy("food words such as bread and rice", [commas])[0] is None


def test_a_near_copy_is_reported_and_asked_again_without_that_example(library):
    backend = Copier(copies=1)
    (e,) = explain_factors(TOKENS, _one_hot_factors([4]), backend=backend, retriever="bm25", library=library,
                           n_examples=2, on_copy="retry")  # fmt: skip
    first, second = backend.calls
    shown = max((m["content"] for m in first if m["role"] == "assistant"), key=len)
    assert library.get(e.copied_from).explanation == shown and e.copy_similarity == 1.0
    assert e.copied_from not in e.example_ids and len(e.example_ids) == 2  # the retry left that example out
    assert shown not in [m["content"] for m in second]
    assert e.text == f"the word Paris (strongest: {_cited(e)})" and "nearly copied worked example" in e.notes[-1]
    assert e.to_dict()["copied_from"] == e.copied_from and "nearly copied" in format_explanations([e])


@pytest.mark.parametrize(("on_copy", "copies", "calls"), [("retry", 2, 2), ("top-tokens", 1, 1)])
def test_a_copy_can_fall_back_to_the_top_tokens_wording(library, on_copy, copies, calls):
    from ecco_sdk.explain import top_tokens_explanation

    backend = Copier(copies=copies)
    (e,) = explain_factors(TOKENS, _one_hot_factors([4]), backend=backend, retriever="bm25", library=library,
                           n_examples=2, on_copy=on_copy)  # fmt: skip
    assert len(backend.calls) == calls and e.copied_from is not None
    assert e.text == top_tokens_explanation(e.record) == 'the tokens "Paris" and "on"'
    assert "top-tokens wording" in e.notes[-1]


def test_an_honest_answer_is_not_a_copy(library):
    (e,) = explain_factors(TOKENS, _one_hot_factors([4]), backend=PromptReader(), retriever="bm25", library=library)
    assert e.copied_from is None and 0.0 <= e.copy_similarity < 0.75 and e.notes == []
    with pytest.raises(InputError, match="on_copy must be one of"):
        explain_factors(TOKENS, _one_hot_factors([4]), backend=PromptReader(), library=library, on_copy="ignore")


def test_cite_tokens_zero_keeps_the_answer_and_bad_counts_are_refused(library):
    (plain,) = explain_factors(TOKENS, _one_hot_factors([4]), backend=PromptReader(), retriever="bm25",
                               library=library, cite_tokens=0)  # fmt: skip
    assert plain.text == f"the token '{TOKENS[4].strip()}'"
    with pytest.raises(InputError, match="cite_tokens must be an integer >= 0"):
        explain_factors(TOKENS, _one_hot_factors([4]), backend=PromptReader(), retriever="bm25", library=library,
                        cite_tokens=-1)  # fmt: skip
