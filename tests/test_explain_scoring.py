"""Scoring: simulation correlation and detection accuracy with baselines, over a loopback server and SmolLM2."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from servers.openai_compat import OpenAICompatServer

from ecco_sdk.errors import InputError
from ecco_sdk.explain import (
    ActivationRecord,
    Explanation,
    OpenAIBackend,
    ScoreReport,
    load_library,
    score_explanations,
    top_tokens_explanation,
)
from ecco_sdk.explain.backends import Completion, TokenLogprob
from ecco_sdk.explain.prompt import DETECTION_SYSTEM, SIMULATION_SYSTEM
from ecco_sdk.explain.scoring import (
    MIN_SPREAD,
    HeldOut,
    apply_factor_fn,
    balanced_accuracy,
    detection_snippets,
    parse_simulation,
    pearson,
    quoted_matches,
    quoted_terms,
    roc_auc,
    simulate,
)

FIXTURE = Path(__file__).parent / "explain_fixtures" / "examples.json"
KEY = "sk-scoring-test"
_PIECE = re.compile(r"\s?\w+|[^\w\s]")
TEXTS = ["I bought eggs, milk, and bread.", "The sun is warm today.", "Red, green, blue.", "We walked home slowly."]


def factor_fn(texts):
    """A fitted 'factor model' as plain data: factor 0 fires on commas, factor 1 on capitalised words."""
    out = []
    for text in texts:
        tokens = _PIECE.findall(text)
        acts = np.zeros((2, len(tokens)))
        for i, tok in enumerate(tokens):
            acts[0, i] = 1.0 if tok == "," else 0.0
            acts[1, i] = 0.8 if tok.strip()[:1].isupper() else 0.0
        out.append((tokens, acts))
    return out


def simulating_responder(messages, body):
    """A server-side 'LLM' that understands comma explanations and nothing else."""
    system, user = messages[0]["content"], messages[-1]["content"]
    explanation = re.search(r"Explanation: (.*)", user).group(1)
    about_commas = "comma" in explanation or '","' in explanation
    if system == SIMULATION_SYSTEM:
        tokens = user.split("Tokens:\n", 1)[1].rsplit("\n\nActivations:", 1)[0].split("\n")
        return "\n".join(f"{t}\t{10 if about_commas and t == ',' else 0}" for t in tokens)
    if system == DETECTION_SYSTEM:
        text = re.search(r"Text: (.*)", user).group(1)
        return "Yes" if about_commas and "," in text else "No"
    return "no clear pattern"


@pytest.fixture(scope="module")
def library():
    return load_library(FIXTURE)


def _comma_explanation() -> Explanation:
    tokens = ["I", " love", " apples", ",", " pears", ",", " and", " plums", "."]
    record = ActivationRecord(tokens, [0, 0, 0, 1.0, 0, 0.9, 0.1, 0, 0.2], factor=0)
    return Explanation(factor=0, text="commas separating items in a list", record=record)


@pytest.mark.parametrize("logprobs", [True, False])
def test_good_explanation_beats_the_random_baseline_over_a_real_client(library, logprobs):
    with OpenAICompatServer(api_key=KEY, responder=simulating_responder, logprobs=logprobs) as srv:
        backend = OpenAIBackend("sim", base_url=srv.base_url, api_key=KEY)
        report = score_explanations(
            [_comma_explanation()], factor_fn, TEXTS, backend=backend, library=library, seed=3, per_class=2
        )
    (f,) = report.factors
    main, rand, top = f.explanation.scores, f.baseline("random").scores, f.baseline("top-tokens").scores
    assert main.simulation == pytest.approx(1.0) and main.detection == 1.0 and main.unpredicted == 0
    assert rand.simulation == 0.0 and rand.detection == 0.5  # predicts nothing: constant, never says Yes
    assert "comma" not in f.baseline("random").text
    assert f.baseline("random").text in {ex.explanation for ex in library}
    assert f.baseline("top-tokens").text == 'the tokens ",", "." and "and"'
    # quoted tokens are taken literally: "." and "and" never fire here, so the list scores below the right phrase
    assert 0.3 < top.simulation < main.simulation
    if logprobs:
        assert main.detection_auc == 1.0 and rand.detection_auc == 0.5
    else:
        assert main.detection_auc is None
    assert report.mean("simulation") > report.mean("simulation", "random")
    # the simulator read the explanations (about 10 on commas for one, 0 for the other): no warning
    assert main.simulation_spread > 2 * MIN_SPREAD and rand.simulation_spread == main.simulation_spread
    assert not any("hardly reads" in n for n in main.notes)


def test_a_simulator_that_ignores_the_explanation_is_flagged(library):
    def ignores(messages, body):  # the same guess for every explanation: 3 on capitalised tokens
        if messages[0]["content"] == SIMULATION_SYSTEM:
            tokens = messages[-1]["content"].split("Tokens:\n", 1)[1].rsplit("\n\nActivations:", 1)[0].split("\n")
            return "\n".join(f"{t}\t{3 if t.strip()[:1].isupper() else 0}" for t in tokens)
        return "No"

    with OpenAICompatServer(api_key=KEY, responder=ignores) as srv:
        backend = OpenAIBackend("sim", base_url=srv.base_url, api_key=KEY)
        report = score_explanations(
            [_comma_explanation()], factor_fn, TEXTS, backend=backend, library=library, per_class=2
        )
    (f,) = report.factors
    main = f.explanation.scores
    assert main.simulation_spread == 0.0 and all(b.scores.simulation_spread == 0.0 for b in f.baselines)
    assert any("hardly reads explanations" in n and "at most 0.0" in n for n in main.notes)
    assert main.simulation is not None  # the score is still given, next to the warning


def test_report_is_a_plain_serializable_table(library):
    with OpenAICompatServer(api_key=KEY, responder=simulating_responder) as srv:
        backend = OpenAIBackend("sim", base_url=srv.base_url, api_key=KEY)
        report = score_explanations(
            ["commas separating items in a list", "capitalised words"], factor_fn, TEXTS, backend=backend,
            library=library, per_class=2,
        )  # fmt: skip
    assert isinstance(report, ScoreReport)
    d = json.loads(json.dumps(report.to_dict()))
    assert [f["factor"] for f in d["factors"]] == [0, 1]
    assert d["means"]["simulation"]["explanation"] == pytest.approx(report.mean("simulation"))
    table = str(report)
    assert "simulation" in table and "sim:random" in table and "mean" in table
    assert "commas separating items in a list" in table
    # strings carry no record, so the top-tokens baseline is skipped and says why
    assert any("top-tokens" in n for n in report.factors[0].explanation.scores.notes)
    assert [b.kind for b in report.factors[0].baselines] == ["random"]


def test_malformed_answers_are_counted_not_fatal(library):
    with OpenAICompatServer(api_key=KEY, responder=lambda m, b: "Sorry, I cannot help with that!") as srv:
        backend = OpenAIBackend("sim", base_url=srv.base_url, api_key=KEY)
        report = score_explanations(
            ["commas"], factor_fn, TEXTS, backend=backend, library=library, baselines=(), per_class=2
        )
    scores = report.factors[0].explanation.scores
    n_tokens = sum(len(t) for t, _ in factor_fn(TEXTS))
    assert scores.unpredicted == n_tokens
    assert scores.simulation == 0.0
    assert scores.simulation_spread is None  # one candidate alone: nothing to compare its predictions with
    assert scores.detection == 0.5
    assert any("no readable prediction" in n for n in scores.notes)
    assert any("neither Yes nor No" in n for n in scores.notes)


def test_parse_simulation_lines_json_and_garbage():
    lines = Completion("a\t0\n b\t7\n,\t10\n")
    values, missing = parse_simulation(lines, 3)
    assert values.tolist() == [0, 7, 10] and missing == 0
    values, missing = parse_simulation(Completion("Here you go: [0, 3, 10]"), 3)
    assert values.tolist() == [0, 3, 10] and missing == 0
    values, missing = parse_simulation(Completion("a\t1\nb\t2"), 4)  # too short: the rest is unpredicted
    assert values.tolist() == [1, 2, 0, 0] and missing == 2
    values, missing = parse_simulation(Completion("no numbers here"), 2)
    assert values.tolist() == [0, 0] and missing == 2
    values, _ = parse_simulation(Completion("a\t99"), 1)
    assert values.tolist() == [10]


def test_parse_simulation_uses_logprobs_and_maps_split_tens():
    lp = math.log
    tokens = [
        TokenLogprob("a", 0.0),
        TokenLogprob("\t", 0.0),
        TokenLogprob("1", lp(0.6), [("1", lp(0.6)), ("3", lp(0.4))]),  # the written value is "10"
        TokenLogprob("0", 0.0),
        TokenLogprob("\n", 0.0),
        TokenLogprob("b", 0.0),
        TokenLogprob("\t", 0.0),
        TokenLogprob("2", lp(0.5), [("2", lp(0.5)), ("4", lp(0.25)), ("x", lp(0.25))]),
    ]
    values, missing = parse_simulation(Completion("a\t10\nb\t2", tokens), 2)
    assert missing == 0
    assert values[0] == pytest.approx(0.6 * 10 + 0.4 * 3)
    assert values[1] == pytest.approx((0.5 * 2 + 0.25 * 4) / 0.75)


def test_metric_helpers():
    assert pearson(np.array([1, 2, 3]), np.array([2, 4, 6])) == pytest.approx(1.0)
    assert pearson(np.array([1, 1, 1]), np.array([1, 2, 3])) is None
    labels = np.array([True, True, False, False])
    assert balanced_accuracy(np.array([True, False, False, False]), labels) == 0.75
    assert roc_auc(np.array([0.9, 0.4, 0.4, 0.1]), labels) == pytest.approx((1 + 0.5 + 1 + 1) / 4)


def test_detection_snippets_are_balanced_and_seeded():
    held = apply_factor_fn(factor_fn, TEXTS, 2)
    a = detection_snippets(held, 0, window=16, per_class=2, rng=np.random.default_rng(5))
    b = detection_snippets(held, 0, window=16, per_class=2, rng=np.random.default_rng(5))
    assert [s.text for s in a] == [s.text for s in b]
    assert sum(s.positive for s in a) == 2 and sum(not s.positive for s in a) == 2
    assert all(("," in s.text) == s.positive for s in a)
    silent = HeldOut(["x"], [["a", "b", "c"]], [np.zeros((1, 3))])
    assert detection_snippets(silent, 0, window=16, per_class=2, rng=np.random.default_rng(0)) == []


def test_factor_fn_results_are_checked():
    with pytest.raises(InputError, match="one per text"):
        apply_factor_fn(lambda texts: [], ["a"], 1)
    with pytest.raises(InputError, match="does not match"):
        apply_factor_fn(lambda texts: [(["a", "b"], np.zeros((1, 3)))], ["a"], 1)
    with pytest.raises(InputError, match="need 2"):
        apply_factor_fn(lambda texts: [(["a"], np.zeros((1, 1)))], ["a"], 2)
    with pytest.raises(InputError, match="factor_fn failed"):
        apply_factor_fn(lambda texts: 1 / 0, ["a"], 1)


def test_top_tokens_baseline_is_built_without_an_llm():
    rec = ActivationRecord(["a", " Paris", " and", " Rome"], [0, 1.0, 0, 0.8])
    assert top_tokens_explanation(rec) == 'the tokens "Paris" and "Rome"'
    assert top_tokens_explanation(ActivationRecord(["a"], [0.0])) == "no clear pattern"


# -- with the embedded SmolLM2 (logits, teacher-forced) ----------------------------------------------


@pytest.mark.slow
def test_local_naming_values_are_on_the_0_10_scale_one_per_token(local):
    displays = [["Red", ",", " green", ",", " blue"], ["The", " sun", " is", " warm"]]
    ((values, missing), (other, _)) = simulate(local, ["commas", "the word sun"], displays, [])
    assert missing == 0 and [len(v) for v in values] == [5, 4]
    flat = np.concatenate(values + other)
    assert np.all((flat >= 0) & (flat <= 10)) and np.ptp(flat) > 0
    # tokens of the same word share a value: both commas of the first text
    assert values[0][1] == pytest.approx(values[0][3])


@pytest.mark.slow
def test_local_yes_no_probabilities_sum_to_one(local):
    from ecco_sdk.explain.prompt import detection_messages

    probs = local.choice_probabilities(
        [detection_messages("commas", "a, b, c"), detection_messages("commas", "the sun is warm")],
        [("Yes", "yes"), ("No", "no")],
    )
    assert probs.shape == (2, 2) and np.allclose(probs.sum(axis=1), 1.0) and np.all(probs > 0)


@pytest.mark.slow
def test_local_backend_really_scores_simulation_and_detection(local, library):
    report = score_explanations(
        [_comma_explanation()],
        factor_fn,
        ["We saw cats, dogs, and owls.", "It rained all day."],
        backend="local:smollm2-135m-instruct",
        library=library,
        baselines=("top-tokens",),
        per_class=1,
    )
    assert report.backend == "local:smollm2-135m-instruct"
    scores = report.factors[0].explanation.scores
    assert scores.unpredicted == 0
    assert scores.simulation is not None and -1.0 <= scores.simulation <= 1.0
    assert scores.detection in (0.0, 0.5, 1.0) and 0.0 <= scores.detection_auc <= 1.0
    assert report.factors[0].baseline("top-tokens").scores.simulation is not None
    # the 135M simulator barely reacts to what an explanation says, and the report says so
    spread = scores.simulation_spread
    assert spread is not None and 0.0 <= spread <= 10.0
    assert any("hardly reads" in n for n in scores.notes) == (spread < MIN_SPREAD)


def test_quoted_tokens_are_read_literally():
    terms = quoted_terms('Commas (strongest: ",", "\\n", "Paris") and `</li>`, not \'it\'s\' or it\'s')
    assert {",", "↵", "paris", "</li>"} <= terms and not any("it" in t for t in terms)
    display = [" Paris", ",", " it", "'s", "↵", "</", "li", ">", " paris"]
    hits = quoted_matches('the tokens ",", "Paris" and "</li>"', display)
    assert hits.tolist() == [1, 1, 0, 0, 0, 1, 1, 1, 1]  # "</li>" marks its whole unspaced run; case is ignored
    assert not quoted_matches("commas and full stops", display).any()  # no quotes: nothing literal
