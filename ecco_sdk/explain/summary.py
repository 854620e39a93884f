"""Plain-text summary of explanations (and scores) for terminals and the CLI, made by `ScoreReport.to_text`."""

from __future__ import annotations

from collections.abc import Sequence

from .explainer import Explanation
from .scoring import ScoreReport


def format_explanations(explanations: Sequence[Explanation], report: ScoreReport | None = None, top: int = 6) -> str:
    """Per factor: its most active tokens, the explanation, the examples used and (if given) its scores.

    Kept as a function for callers without a report; it calls `ScoreReport.to_text`.

    Args:
        explanations: from `explain_factors` (or `explain_text`'s ``explanations``).
        report: scores from `score_explanations` to show with each factor, or None.
        top: how many of each factor's strongest tokens to list.

    Returns:
        One block of text per factor, separated by blank lines.
    """
    if report is None:  # no scores: an empty report shows every factor unscored
        report = ScoreReport(factors=[], backend="", methods=[], baselines=[], n_texts=0, seed=0)
    return report.to_text(explanations, top)
