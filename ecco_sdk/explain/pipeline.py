"""Explain one text end to end: factors of its FFN activations, an explanation per factor, and scores.

The CLI and the app both call `explain_text`, so the whole pipeline lives in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .explainer import Explanation, explain_factors
from .scoring import ScoreReport, score_explanations
from .summary import format_explanations

# Held-out texts of different kinds, for scoring when the caller gives none.
HELD_OUT_TEXTS: tuple[str, ...] = (
    "The meeting moved from Tuesday, March 3 to Friday, March 6 at 10:30.",
    'She asked, "Are you coming with us (or staying home)?"',
    "def mean(values):\n    return sum(values) / len(values)\n",
    "Paris, Berlin, Madrid and Rome are capitals; Lyon, Hamburg and Milan are not.",
    "The children were running home because the dogs had barked all night.",
    "1, 2, 3, 5, 8, 13, 21, 34 and 55 are Fibonacci numbers.",
    "Roses are red,\nviolets are blue,\nsugar is sweet,\nand so are you.",
    '{"name": "Ada", "born": 1815, "languages": ["English", "French"]}',
)


@dataclass
class TextExplanation:
    """What `explain_text` found: the factor analysis, one explanation per factor, and their scores."""

    nmf: Any
    explanations: list[Explanation]
    report: ScoreReport | None

    def __str__(self) -> str:
        return format_explanations(self.explanations, self.report)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable view."""
        return {
            "nmf": self.nmf.to_dict(),
            "explanations": [e.to_dict() for e in self.explanations],
            "scores": self.report.to_dict() if self.report else None,
        }


def explain_activations(
    lm: Any,
    tokens: Sequence[str],
    activations: Any,
    n_components: int = 3,
    from_layer: int | None = None,
    to_layer: int | None = None,
    *,
    backend: Any = None,
    score: bool = True,
    held_out: Sequence[str] | None = None,
    api_key: str | None = None,
    **explain_kw: Any,
) -> TextExplanation:
    """Factorize captured FFN activations (layers, neurons, positions), explain each factor, score on held-out text."""
    from ..factors import fit_factor_model, texts_activations

    model = fit_factor_model([activations], n_components=n_components, from_layer=from_layer, to_layer=to_layer)
    nmf = model.transform(activations, list(tokens))
    explanations = explain_factors(nmf.tokens, nmf.factors, backend=backend, api_key=api_key, **explain_kw)
    report = None
    if score:
        factor_fn = model.factor_fn(lambda texts: texts_activations(lm, texts))
        report = score_explanations(
            explanations, factor_fn, list(held_out or HELD_OUT_TEXTS), backend=backend, api_key=api_key
        )
    return TextExplanation(nmf=nmf, explanations=explanations, report=report)


def explain_text(lm: Any, text: str, n_components: int = 3, **kw: Any) -> TextExplanation:
    """Run `text` through `lm` (one forward pass) and explain the factors of its FFN activations."""
    from ..factors import texts_activations

    if not isinstance(text, str) or not text.strip():
        raise InputError("text is empty; pass the text whose neuron factors should be explained")
    ((tokens, acts),) = texts_activations(lm, [text])
    return explain_activations(lm, tokens, acts, n_components, **kw)


def explain_output(out: Any, n_components: int = 3, stack: str = "main", **kw: Any) -> TextExplanation:
    """Explain the factors of a run that is already captured (no recomputation); the run must carry its LM."""
    acts, tokens, _ = out.stack_view(stack)
    return explain_activations(out._require_lm(), tokens, acts, n_components, **kw)
