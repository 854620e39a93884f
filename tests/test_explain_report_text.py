"""`ScoreReport.to_text`: the per-factor text of explanations with their scores, and `format_explanations` over it."""

from __future__ import annotations

import numpy as np

from ecco_sdk.explain import ActivationRecord, Explanation, ScoreReport, format_explanations
from ecco_sdk.explain.scoring import FactorScore, MethodScores, ScoredExplanation

TOKENS = ["The", " cat", ' "sat"', " on"]


def explanation(factor: int, text: str, activations: list[float], **kw) -> Explanation:
    record = ActivationRecord(tokens=TOKENS, activations=np.asarray(activations, dtype=float))
    return Explanation(factor, text, record, **kw)


def report(factors: list[FactorScore]) -> ScoreReport:
    return ScoreReport(
        factors=factors, backend="test", methods=["simulation", "detection"], baselines=["random"], n_texts=1, seed=0
    )


def test_to_text_shows_each_factors_tokens_explanation_examples_and_scores() -> None:
    cats = explanation(0, "cats", [0, 10, 5, 0], example_ids=["ex-1"], notes=["retried"])
    scored = FactorScore(
        0,
        ScoredExplanation("explanation", "cats", MethodScores(simulation=0.5, detection=0.75, notes=["few texts"])),
        [ScoredExplanation("random", "dates", MethodScores(detection=0.5))],
    )
    assert report([scored]).to_text([cats], top=2).splitlines() == [
        "factor 0",
        '  active tokens: "cat":10  "\\"sat\\"":5',
        "  explanation:   cats",
        "  examples:      ex-1",
        "  note: retried",
        "  scores: simulation 0.500, detection 0.750",
        "  baseline random: detection 0.500",
        "  note: few texts",
    ]


def test_a_factor_the_report_did_not_score_is_shown_without_scores() -> None:
    silent = explanation(3, "nothing", [0, 0, 0, 0])
    other = FactorScore(1, ScoredExplanation("explanation", "x", MethodScores()))
    lines = report([other]).to_text([silent]).splitlines()
    assert lines == ["factor 3", "  active tokens: (none)", "  explanation:   nothing", "  examples:      (none)"]


def test_format_explanations_is_the_reports_text_and_without_a_report_has_no_scores() -> None:
    items = [explanation(0, "cats", [0, 10, 5, 0]), explanation(1, "sitting", [0, 0, 9, 2])]
    scored = report([FactorScore(1, ScoredExplanation("explanation", "sitting", MethodScores(simulation=-0.25)))])
    assert format_explanations(items, scored, top=3) == scored.to_text(items, top=3)
    assert "  scores: simulation -0.250" in format_explanations(items, scored).split("\n\n")[1]
    unscored = format_explanations(items)
    assert unscored.count("factor ") == 2 and "scores:" not in unscored
    assert unscored == report([]).to_text(items)
