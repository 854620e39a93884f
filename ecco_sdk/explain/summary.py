"""Plain-text summary of explanations (and scores) for terminals and the CLI."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .explainer import Explanation
from .scoring import ScoredExplanation, ScoreReport


def _scores_line(label: str, item: ScoredExplanation | None) -> str:
    if item is None:
        return ""
    s = item.scores
    parts = []
    if s.simulation is not None:
        parts.append(f"simulation {s.simulation:.3f}")
    if s.detection is not None:
        parts.append(f"detection {s.detection:.3f}")
    return f"{label}: " + (", ".join(parts) if parts else "not scored")


def format_explanations(explanations: Sequence[Explanation], report: ScoreReport | None = None, top: int = 6) -> str:
    """Per factor: its most active tokens, the explanation, the examples used and (if given) its scores."""
    by_factor = {f.factor: f for f in (report.factors if report else [])}
    blocks = []
    for e in explanations:
        active = (
            "  ".join(f"{json.dumps(tok, ensure_ascii=False)}:{lv}" for tok, lv in e.active_tokens(top)) or "(none)"
        )
        lines = [
            f"factor {e.factor}",
            f"  active tokens: {active}",
            f"  explanation:   {e.text}",
            f"  examples:      {', '.join(e.example_ids) or '(none)'}",
            *[f"  note: {n}" for n in e.notes],
        ]
        scored = by_factor.get(e.factor)
        if scored is not None:
            lines.append("  " + _scores_line("scores", scored.explanation))
            lines += ["  " + _scores_line(f"baseline {b.kind}", b) for b in scored.baselines]
            lines += [f"  note: {n}" for n in scored.explanation.scores.notes]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
