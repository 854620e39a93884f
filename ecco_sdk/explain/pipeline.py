"""Explain one text end to end: factors of its FFN activations, an explanation per factor, and scores.

The CLI and the app both call `explain_text`, so the whole pipeline lives in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..checks import as_activations, check_int, check_text, check_tokens
from ..errors import InputError
from ..factors import fit_factor_model, texts_activations
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


# Positions left out at the start of every text. On causal models the first position is the attention
# sink: on SmolLM2-135M its FFN activations have about 25 times the norm of any other position's (3925
# against at most 187, over three texts) and its largest is 2823 against at most 65 elsewhere. With it,
# the first factor is always "the first token" and one explanation is wasted. On encoders and decoders
# the first position is a special token ([CLS], the decoder start) that the text did not write.
SKIP_FIRST = 1


def skip_positions(activations: Any, tokens: Sequence[str], skip: int) -> tuple[np.ndarray, list[str]]:
    """Activations and tokens without their first `skip` positions (see SKIP_FIRST for why).

    Args:
        activations: FFN activations shaped (layers, neurons, positions), numpy or torch.
        tokens: one display string per position.
        skip: how many leading positions to leave out.

    Returns:
        (float32 activations, tokens), both without the first `skip` positions.
    """
    skip = check_int(skip, "skip_first", minimum=0, what="a non-negative integer", hint=" (positions to leave out)")
    acts = as_activations(activations)
    toks = check_tokens(tokens, acts.shape[2])
    return acts[:, :, skip:], toks[skip:]


def held_out_activations(lm: Any, texts: Sequence[str], skip: int) -> dict[str, tuple[list[str], np.ndarray]]:
    """The tokens and activations of each held-out text, its first `skip` positions left out like the explained text's.

    Args:
        lm: the `LM` to run the texts through.
        texts: the held-out texts.
        skip: how many leading positions to leave out of each.

    Returns:
        {text: (tokens, activations shaped (layers, neurons, positions))}.
    """
    for i, text in enumerate(texts):
        check_text(text, f"held-out text {i}")
    pairs = {}
    for text, (tokens, acts) in zip(texts, texts_activations(lm, texts), strict=True):
        if len(tokens) <= skip:
            raise InputError(
                f"held-out text {text!r} has {len(tokens)} token(s), so none is left after leaving out the first "
                f"{skip}; use longer held-out texts or skip_first=0"
            )
        acts, tokens = skip_positions(acts, tokens, skip)
        pairs[text] = (tokens, acts)
    return pairs


@dataclass
class TextExplanation:
    """What `explain_text` found: the factor analysis, one explanation per factor, and their scores.

    Args:
        nmf: the factor analysis (`factors.NMFResult`) of the explained positions.
        explanations: one explanation per factor.
        report: how well each explanation predicts its factor on held-out text (None when not scored).
    """

    nmf: Any
    explanations: list[Explanation]
    report: ScoreReport | None

    def __str__(self) -> str:
        return format_explanations(self.explanations, self.report)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable view.

        Returns:
            {"nmf": ..., "explanations": [...], "scores": ... or None}.
        """
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
    skip_first: int = SKIP_FIRST,
    **explain_kw: Any,
) -> TextExplanation:
    """Factorize captured FFN activations (layers, neurons, positions), explain each factor, score on held-out text.

    The first `skip_first` positions of this text and of every held-out text are left out (see SKIP_FIRST);
    the result's `nmf.positions` says which positions were factorized.

    Args:
        lm: the `LM` the activations came from (it runs the held-out texts).
        tokens: one display string per position.
        activations: FFN activations shaped (layers, neurons, positions), numpy or torch.
        n_components: how many factors to find and explain.
        from_layer: first layer factorized (None: 0).
        to_layer: layer after the last one factorized (None: all).
        backend: the LLM that writes and scores explanations (a `Backend`, a name such as "local", or None
            for the default).
        score: score each explanation on the held-out texts.
        held_out: texts to score on (None: HELD_OUT_TEXTS).
        api_key: key for an OpenAI-compatible backend (default: the environment's).
        skip_first: how many leading positions of every text to leave out.
        **explain_kw: further options of `explain_factors` (n_examples, retriever, library, max_tokens, ...).

    Returns:
        The factors, their explanations and (when `score`) the score report.
    """
    acts, toks = skip_positions(activations, tokens, skip_first)
    if len(toks) < 2:
        raise InputError(
            f"the text has {len(toks) + skip_first} tokens, so leaving out the first {skip_first} leaves fewer than "
            "the 2 that NMF needs; pass a longer text or skip_first=0"
        )
    texts = list(held_out or HELD_OUT_TEXTS)
    held = held_out_activations(lm, texts, skip_first) if score else {}  # checked before any LLM call
    model = fit_factor_model([acts], n_components=n_components, from_layer=from_layer, to_layer=to_layer)
    nmf = model.transform(acts, toks)
    if skip_first:
        nmf.positions = np.arange(skip_first, skip_first + len(toks))
    explanations = explain_factors(nmf.tokens, nmf.factors, backend=backend, api_key=api_key, **explain_kw)
    report = None
    if score:
        factor_fn = model.factor_fn(lambda some: [held[t] for t in some])
        report = score_explanations(explanations, factor_fn, texts, backend=backend, api_key=api_key)
    return TextExplanation(nmf=nmf, explanations=explanations, report=report)


def explain_text(lm: Any, text: str, n_components: int = 3, **kw: Any) -> TextExplanation:
    """Run `text` through `lm` (one forward pass) and explain the factors of its FFN activations.

    Args:
        lm: the `LM` to run.
        text: the text to explain.
        n_components: how many factors to find and explain.
        **kw: the options of `explain_activations` (backend, score, held_out, skip_first, ...).

    Returns:
        The factors, their explanations and scores.
    """
    check_text(text)
    ((tokens, acts),) = texts_activations(lm, [text])
    return explain_activations(lm, tokens, acts, n_components, **kw)


def explain_output(out: Any, n_components: int = 3, stack: str = "main", **kw: Any) -> TextExplanation:
    """Explain the factors of a run that is already captured (no recomputation); the run must carry its LM.

    Args:
        out: an `OutputSeq` with FFN activations and its `LM` attached.
        n_components: how many factors to find and explain.
        stack: "main", or "encoder" for the encoder of an encoder-decoder model.
        **kw: the options of `explain_activations` (backend, score, held_out, skip_first, ...).

    Returns:
        The factors, their explanations and scores.
    """
    acts, tokens, _ = out.stack_view(stack)
    return explain_activations(out.require_lm(), tokens, acts, n_components, **kw)
