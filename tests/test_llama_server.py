"""The `openai` backend end to end against a real llama.cpp server (xllamacpp) serving the embedded 1.5B GGUF.

The stand-in server in tests/servers/openai_compat.py covers the error paths; here a real model answers through
the real `openai` client on loopback. Kept short (one factor, two short texts, small max_tokens): about a
minute on 2 cores.
"""

from __future__ import annotations

import json
import re
import urllib.request

import numpy as np
import pytest

from ecco_sdk.explain import OpenAIBackend, explain_factors, score_explanations
from ecco_sdk.explain.prompt import simulation_messages
from ecco_sdk.explain.scoring import _VALUE_END, expected_from_logprobs
from ecco_sdk.models import QWEN_NAME

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

_PIECE = re.compile(r"\d|\s?[^\W\d]+|\s?[^\w\s]")
TEXTS = ["We paid 42 dollars in 1999.", "The sun is warm and the sky is blue."]


def _digits(texts: list[str]) -> list[tuple[list[str], np.ndarray]]:
    """A 'factor model' as plain data: factor 0 fires on digits."""
    out = []
    for text in texts:
        tokens = _PIECE.findall(text)
        out.append((tokens, np.array([[1.0 if t.strip().isdigit() else 0.0 for t in tokens]])))
    return out


@pytest.fixture(scope="module")
def backend(llama_server_url):
    return OpenAIBackend(QWEN_NAME, base_url=llama_server_url, timeout=120, max_retries=0)


def test_the_server_serves_the_embedded_gguf(llama_server_url, backend):
    with urllib.request.urlopen(f"{llama_server_url}/models", timeout=10) as r:
        listed = json.loads(r.read(1 << 16))
    assert QWEN_NAME in [m["id"] for m in listed["data"]]
    reply = backend.complete([{"role": "user", "content": "What is 2 + 3? Answer with the number only."}], 4)
    assert reply.strip().startswith("5")


def test_logprobs_come_back_aligned_with_the_text(backend):
    done = backend.complete_logprobs(
        [{"role": "user", "content": "Count from 1 to 5, separated by commas."}], max_tokens=12, top_logprobs=5
    )
    assert done.tokens, "llama.cpp returned no logprobs"
    assert "".join(t.token for t in done.tokens) == done.text  # what expected_from_logprobs relies on
    for tok in done.tokens:
        assert tok.logprob <= 1e-6 and 1 <= len(tok.top) <= 5
        assert tok.top[0][0] == tok.token  # temperature 0: the chosen token is the most likely one
        assert sum(np.exp(lp) for _, lp in tok.top) <= 1.0 + 1e-3


def test_simulation_values_are_read_from_logprobs(backend):
    tokens = _PIECE.findall(TEXTS[0])
    done = backend.complete_logprobs(
        simulation_messages("digits in numbers", tokens, []), max_tokens=6 * len(tokens) + 16, top_logprobs=10
    )
    lines = [(ln, m) for ln in re.finditer(r"[^\n]+", done.text) if (m := _VALUE_END.search(ln.group()))]
    assert len(lines) >= len(tokens) // 2, done.text  # "token<TAB>value" or "token value": parse_simulation reads both
    expected = [expected_from_logprobs(done, ln.start() + m.start("val"), m.group("val")) for ln, m in lines]
    assert all(v is not None and 0 <= v <= 10 for v in expected), (done.text, expected)


def test_explains_and_scores_a_factor_end_to_end(backend):
    (tokens, acts) = _digits(["In 2024 the 7 shops sold 350 cakes and 18 pies."])[0]
    (expl,) = explain_factors(tokens, acts, backend=backend, retriever="bm25", n_examples=2, max_tokens=24)
    assert expl.text.strip() and expl.backend.startswith(f"openai:{QWEN_NAME}@http://127.0.0.1:")
    assert expl.raw  # the model's own answer, before tidying
    report = score_explanations(
        [expl], _digits, TEXTS, backend=backend, baselines=("top-tokens",), per_class=1, window=4, max_text_tokens=12
    )
    (f,) = report.factors
    scores = f.explanation.scores
    n_tokens = sum(min(len(t), 12) for t, _ in _digits(TEXTS))
    assert scores.simulation is not None and -1.0 <= scores.simulation <= 1.0, (expl.text, scores)
    assert scores.unpredicted < n_tokens // 2, scores.notes
    assert scores.detection is not None and 0.0 <= scores.detection <= 1.0
    assert scores.detection_auc is not None  # P(Yes) from the server's top logprobs, for every snippet
    assert f.baseline("top-tokens").scores.simulation is not None
