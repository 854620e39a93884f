"""Scoring explanations on held-out text, so a good explanation can be told from a plausible-sounding one.

* Simulation (Bills et al., "Language models can explain neurons in language models", OpenAI 2023):
  an LLM sees only the explanation and predicts each held-out token's activation 0-10; the score is
  the Pearson correlation between predicted and true activations pooled over all tokens.
  - Backends with logits (`ForcedScorer`, the local backend): the simulator is asked which words of a
    text match the explanation; one forward pass per (explanation, text) reads how likely it is to name
    each token's word first rather than "None" (see `simulate_by_naming`); no generation, the text
    placed before the explanation so that its prefix is computed once for all candidates.
  - OpenAI-compatible servers: the model writes ``token<TAB>value`` lines (a JSON list of numbers is
    accepted too). When the server returns logprobs, each value is the expected value over the numeric
    alternatives at that position; otherwise the written number. Lines that cannot be parsed leave
    their tokens at 0 and are counted in ``unpredicted`` with a note, never an exception.
* Detection: held-out text is cut into windows; windows reaching half the factor's held-out peak are
  "activating", windows below a tenth of it "non-activating"; a balanced, seeded sample of both is
  shown one at a time and the LLM answers Yes/No. Score: balanced accuracy (plus ROC AUC of P(Yes)
  when the backend gives probabilities).
* Baselines, scored the same way: "random" (a seeded random explanation from the example library, or
  another factor's explanation when no library is available) and "top-tokens" (built without an LLM
  from the factor's most active tokens in the record the explanation was made from).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cancel import checkpoint
from ..errors import ConfigurationError, EccoError, InputError
from ..tokens import detokenize, display_tokens, same_run, token_words, visible_whitespace
from .backends import Backend, Completion, ForcedScorer, LogprobCompleter, get_backend
from .explainer import Explanation
from .library import Example, Library, as_library
from .prompt import (
    NO_PATTERN,
    NONE_SPELLINGS,
    detection_messages,
    naming_choices,
    naming_messages,
    simulation_examples,
    simulation_messages,
    top_tokens_explanation,
)
from .records import ActivationRecord, check_non_negative

FactorFn = Callable[[list[str]], list[tuple[list[str], np.ndarray]]]

METHODS = ("simulation", "detection")
BASELINES = ("random", "top-tokens")
YES = ("Yes", "yes", " Yes", " yes", "YES")
NO = ("No", "no", " No", " no", "NO")
_VALUE_LINE = re.compile(r"^(?P<tok>.*?)\t\s*(?P<val>\d+(?:\.\d+)?)\s*$")
_VALUE_END = re.compile(r"(?P<val>\d+(?:\.\d+)?)\s*$")


# --------------------------------------------------------------------------------------------------
# Results


@dataclass
class MethodScores:
    """Scores of one explanation for one factor (None where a method could not be applied).

    Args:
        simulation: Pearson correlation of the simulator's predicted 0-10 activations with the true ones.
        detection: balanced accuracy of telling snippets where the factor fires from others, 0 to 1.
        detection_auc: ROC AUC of P(Yes) over the detection snippets (when the backend gives probabilities).
        unpredicted: held-out tokens whose simulated line could not be parsed (left at 0).
        simulation_spread: largest difference, over held-out tokens, between the simulator's predictions for
            the candidates scored together (None with a single candidate).
        notes: why a score is missing or should be read with care.
    """

    simulation: float | None = None
    detection: float | None = None
    detection_auc: float | None = None
    unpredicted: int = 0
    # Largest difference, over held-out tokens, between the simulator's predictions for the candidates
    # scored together (the explanation and its baselines); None with a single candidate. See MIN_SPREAD.
    simulation_spread: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON.

        Returns:
            Every field by name.
        """
        return asdict(self)


@dataclass
class ScoredExplanation:
    """An explanation (the real one or a baseline) and its scores."""

    kind: str
    text: str
    scores: MethodScores

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {"kind": self.kind, "text": self.text, "scores": self.scores.to_dict()}


@dataclass
class FactorScore:
    """One factor: its explanation's scores next to the baselines'.

    Args:
        factor: the factor's index.
        explanation: the explanation and its scores.
        baselines: each baseline and its scores.
    """

    factor: int
    explanation: ScoredExplanation
    baselines: list[ScoredExplanation] = field(default_factory=list)

    def baseline(self, kind: str) -> ScoredExplanation | None:
        """The baseline of this kind, if it was scored.

        Args:
            kind: ``"random"`` or ``"top-tokens"``.

        Returns:
            The scored baseline, or None.
        """
        return next((b for b in self.baselines if b.kind == kind), None)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON.

        Returns:
            ``{"factor": ..., "explanation": {...}, "baselines": [...]}``.
        """
        return {
            "factor": self.factor,
            "explanation": self.explanation.to_dict(),
            "baselines": [b.to_dict() for b in self.baselines],
        }


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _scores_line(label: str, item: ScoredExplanation) -> str:
    """One line of an item's simulation and detection scores, for `ScoreReport.to_text`."""
    s = item.scores
    pairs = (("simulation", s.simulation), ("detection", s.detection))
    parts = [f"{name} {value:.3f}" for name, value in pairs if value is not None]
    return f"{label}: " + (", ".join(parts) if parts else "not scored")


@dataclass
class ScoreReport:
    """Per-factor scores of explanations and baselines on held-out text; `str()` gives a table.

    Args:
        factors: one entry per scored factor.
        backend: the simulator's name.
        methods: the scoring methods used.
        baselines: the baseline kinds scored.
        n_texts: how many held-out texts were used.
        seed: the seed of the random baseline and the detection snippets.
    """

    factors: list[FactorScore]
    backend: str
    methods: list[str]
    baselines: list[str]
    n_texts: int
    seed: int

    def mean(self, metric: str = "simulation", kind: str = "explanation") -> float | None:
        """Mean of a metric over factors, for the explanations or one baseline kind (None if none scored).

        Args:
            metric: a `MethodScores` field: ``"simulation"``, ``"detection"`` or ``"detection_auc"``.
            kind: ``"explanation"`` or a baseline kind.

        Returns:
            The mean over the factors that have this score, or None.
        """
        values = []
        for f in self.factors:
            item = f.explanation if kind == "explanation" else f.baseline(kind)
            value = getattr(item.scores, metric) if item is not None else None
            if value is not None:
                values.append(value)
        return float(np.mean(values)) if values else None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON (NaN never appears: unscored values are None).

        Returns:
            The report's fields, every factor, and ``means`` per method and kind.
        """
        return {
            "backend": self.backend,
            "methods": list(self.methods),
            "baselines": list(self.baselines),
            "n_texts": self.n_texts,
            "seed": self.seed,
            "factors": [f.to_dict() for f in self.factors],
            "means": {m: {k: self.mean(m, k) for k in ("explanation", *self.baselines)} for m in self.methods},
        }

    def __str__(self) -> str:
        kinds = ["explanation", *self.baselines]
        header = ["factor"]
        for m in self.methods:
            header += [m] + [f"{m[:3]}:{b}" for b in self.baselines]
        header.append("explanation")
        rows = []
        for f in self.factors:
            row = [str(f.factor)]
            for m in self.methods:
                for k in kinds:
                    item = f.explanation if k == "explanation" else f.baseline(k)
                    row.append(_fmt(getattr(item.scores, m) if item else None))
            text = f.explanation.text
            row.append(text if len(text) <= 60 else text[:59] + "…")
            rows.append(row)
        mean_row = ["mean"] + [_fmt(self.mean(m, k)) for m in self.methods for k in kinds] + [""]
        rows.append(mean_row)
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
        lines = [
            f"Explanation scores ({self.backend}; {self.n_texts} held-out texts; seed {self.seed}; "
            "simulation = correlation, detection = balanced accuracy)"
        ]
        for r in [header, *rows]:
            lines.append(("  ".join(c.rjust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]).rstrip())
        notes = [(f.factor, n) for f in self.factors for n in f.explanation.scores.notes]
        lines += [f"note (factor {i}): {n}" for i, n in notes]
        return "\n".join(lines)

    def to_text(self, explanations: Sequence[Explanation], top: int = 6) -> str:
        """Per factor: its most active tokens, the explanation, the examples used and this report's scores.

        Args:
            explanations: the explanations (from `explain_factors`); a factor this report did not score
                is shown without scores.
            top: how many of each factor's strongest tokens to list.

        Returns:
            One block of text per explanation, separated by blank lines.
        """
        by_factor = {f.factor: f for f in self.factors}
        blocks = []
        for e in explanations:
            active = "  ".join(f"{json.dumps(t, ensure_ascii=False)}:{lv}" for t, lv in e.active_tokens(top))
            lines = [
                f"factor {e.factor}",
                f"  active tokens: {active or '(none)'}",
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


# --------------------------------------------------------------------------------------------------
# Held-out data


@dataclass
class HeldOut:
    """Held-out texts with each factor's activations on them, from the caller's factor_fn."""

    texts: list[str]
    tokens: list[list[str]]
    activations: list[np.ndarray]

    def factor_rows(self, factor: int) -> list[np.ndarray]:
        """This factor's activations, one array per text."""
        return [a[factor] for a in self.activations]


def apply_factor_fn(factor_fn: FactorFn, texts: Sequence[str], n_factors: int) -> HeldOut:
    """Run the caller's factor model on held-out texts and check what comes back."""
    items = [str(t) for t in texts]
    if not items:
        raise InputError("texts is empty; pass held-out texts the explanations were not made from")
    try:
        out = list(factor_fn(items))
    except EccoError:
        raise
    except Exception as err:
        raise InputError(f"factor_fn failed on the held-out texts: {type(err).__name__}: {err}") from err
    if len(out) != len(items):
        raise InputError(f"factor_fn returned {len(out)} results for {len(items)} texts; return one per text")
    tokens, acts = [], []
    for i, item in enumerate(out):
        try:
            toks, arr = item
        except (TypeError, ValueError):
            raise InputError(f"factor_fn result #{i} must be (tokens, activations)") from None
        arr = np.asarray(arr, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != len(toks):
            raise InputError(
                f"factor_fn result #{i}: activations shape {arr.shape} does not match {len(toks)} tokens; "
                "return (n_factors, n_tokens)"
            )
        if arr.shape[0] < n_factors:
            raise InputError(f"factor_fn result #{i} has {arr.shape[0]} factors; the explanations need {n_factors}")
        tokens.append([str(t) for t in toks])
        acts.append(check_non_negative(arr, f"factor_fn result #{i}"))
    return HeldOut(texts=items, tokens=tokens, activations=acts)


# --------------------------------------------------------------------------------------------------
# Simulation


def pearson(pred: np.ndarray, true: np.ndarray) -> float | None:
    """Correlation, or None when either side is constant (then it is undefined)."""
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if p.size < 2 or np.std(p) == 0 or np.std(t) == 0:
        return None
    return float(np.corrcoef(p, t)[0, 1])


def _json_values(text: str, n: int) -> np.ndarray | None:
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start : end + 1])
    except ValueError:
        return None
    if not isinstance(data, list) or len(data) != n:
        return None
    values = []
    for v in data:
        if isinstance(v, dict):
            v = v.get("activation", v.get("value"))
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        values.append(float(v))
    return np.clip(np.asarray(values), 0, 10)


def _token_at(completion: Completion, char: int) -> int | None:
    if not completion.tokens or "".join(t.token for t in completion.tokens) != completion.text:
        return None
    pos = 0
    for i, tok in enumerate(completion.tokens):
        if pos <= char < pos + len(tok.token):
            return i
        pos += len(tok.token)
    return None


def _as_value(text: str) -> int | None:
    core = text.strip()
    if core.isdigit() and 0 <= int(core) <= 10:
        return int(core)
    return None


def expected_from_logprobs(completion: Completion, char: int, written: str) -> float | None:
    """Expected value over numeric alternatives of the token where a written value starts.

    If the server split the value (e.g. "10" as "1","0"), an alternative equal to the written first piece
    stands for the whole written value; this is an approximation, documented as such.
    """
    idx = _token_at(completion, char)
    if idx is None:
        return None
    tok = completion.tokens[idx]
    first = tok.token.strip()
    alternatives = tok.top or [(tok.token, tok.logprob)]
    weights: dict[int, float] = {}
    for alt, logprob in alternatives:
        core = alt.strip()
        value = int(written) if core == first and first != written and written.startswith(first) else _as_value(core)
        if value is not None:
            weights[value] = weights.get(value, 0.0) + math.exp(logprob)
    total = sum(weights.values())
    if total <= 0:
        return None
    return sum(v * w for v, w in weights.items()) / total


def parse_simulation(completion: Completion, n_tokens: int) -> tuple[np.ndarray, int]:
    """Predicted values for n tokens from a written answer, and how many tokens got no value."""
    as_json = _json_values(completion.text, n_tokens)
    if as_json is not None:
        return as_json, 0
    lines = list(re.finditer(r"[^\n]+", completion.text))
    matches = [(ln, _VALUE_LINE.match(ln.group())) for ln in lines]
    tabbed = [(ln, m) for ln, m in matches if m]
    if len(tabbed) < max(1, n_tokens // 2):
        tabbed = [(ln, m) for ln in lines if (m := _VALUE_END.search(ln.group()))]
    values = np.zeros(n_tokens)
    found = 0
    for i, (ln, m) in enumerate(tabbed[:n_tokens]):
        written = m.group("val")
        value = expected_from_logprobs(completion, ln.start() + m.start("val"), written)
        values[i] = min(10.0, float(written)) if value is None else value
        found += 1
    return values, n_tokens - found


def _simulate_written(
    backend: Backend, explanation: str, display: Sequence[str], examples: Sequence[Example]
) -> tuple[np.ndarray, int]:
    messages = simulation_messages(explanation, display, examples)
    max_tokens = backend.count_tokens("\n".join(f"{t}\t10" for t in display)) + len(display) + 16
    if isinstance(backend, LogprobCompleter):
        completion = backend.complete_logprobs(messages, max_tokens=max_tokens, top_logprobs=10)
    else:
        completion = Completion(text=backend.complete(messages, max_tokens=max_tokens))
    return parse_simulation(completion, len(display))


def simulate_by_naming(
    backend: ForcedScorer, explanations: Sequence[str], displays: Sequence[Sequence[str]]
) -> list[list[np.ndarray]]:
    """Per explanation, per text: 0-10 predictions read from which word the simulator would name first.

    The simulator is asked which words of the text match the explanation (or "None"). One forward pass
    per (explanation, text) gives P(the reply starts with token i's word) and P("None"); token i gets
    ``10 * P(word) / (P(word) + P(None))``: near 10 where its word would be named rather than "no match",
    near 0 where not. On three hand-made factors (digits, closing HTML tags, food words; 8 held-out texts)
    Qwen2.5-Coder-1.5B simulated right explanations of digits and food at 0.69 and 0.58 against -0.05 and
    -0.06 for swapped ones; the teacher-forced slot method (a 0-10 value after each listed token) gave 0.16
    and -0.06 for the same right explanations, moved its predictions by 1.2-4.5 between explanations, and
    cost about twice the compute (it needs a second pass for "10").
    """
    out: list[list[np.ndarray]] = [[] for _ in explanations]
    for display in displays:
        checkpoint()
        text = "".join(display).strip()
        choices = [*naming_choices(display), list(NONE_SPELLINGS)]
        probs = backend.first_token_probabilities([(naming_messages(e, text), choices) for e in explanations])
        for values, p in zip(out, probs, strict=True):
            named, none = np.asarray(p[:-1], dtype=np.float64), float(p[-1])
            values.append(10.0 * named / np.maximum(named + none, 1e-12))
    return out


def simulate(
    backend: Backend, explanations: Sequence[str], displays: Sequence[Sequence[str]], examples: Sequence[Example]
) -> list[tuple[list[np.ndarray], int]]:
    """Per explanation: predicted 0-10 activations for each text (from the explanation alone), unpredicted count.

    A logits backend predicts by naming words (see `simulate_by_naming`); others write a value per token.
    """
    if isinstance(backend, ForcedScorer):
        return [(values, 0) for values in simulate_by_naming(backend, explanations, displays)]
    out = []
    for explanation in explanations:
        parsed = [_simulate_written(backend, explanation, d, examples) for d in displays]
        out.append(([v for v, _ in parsed], sum(m for _, m in parsed)))
    return out


def with_quoted(explanation: str, predictions: Sequence[np.ndarray], displays: Sequence[Sequence[str]]) -> np.ndarray:
    """The simulator's predictions over all texts, with every token the explanation quotes exactly raised to 10."""
    return np.concatenate(
        [np.maximum(p, 10.0 * quoted_matches(explanation, d)) for p, d in zip(predictions, displays, strict=True)]
    )


_QUOTED = (
    re.compile(r'"((?:[^"\\\n]|\\.){1,40})"'),  # "..." (JSON escapes allowed)
    re.compile(r"“([^”\n]{1,40})”"),
    re.compile(r"`([^`\n]{1,40})`"),
    re.compile(r"(?<![\w'])'([^'\n]{1,40})'(?![\w'])"),  # '...' but not apostrophes
)


def quoted_terms(explanation: str) -> set[str]:
    """The strings an explanation quotes, lower-cased and stripped (a quoted space or line break kept as is)."""
    terms: set[str] = set()
    for pattern in _QUOTED:
        for m in pattern.finditer(explanation):
            raw = m.group(1)
            if pattern is _QUOTED[0]:
                try:
                    raw = json.loads(f'"{raw}"')
                except ValueError:
                    pass
            raw = visible_whitespace(raw)  # a quoted "\n" matches the display token ↵
            terms.add(raw.strip().lower() or raw)
    return terms


def quoted_matches(explanation: str, display: Sequence[str]) -> np.ndarray:
    """1.0 for each display token that the explanation quotes exactly (the token, its word or its unspaced run).

    A simulator that reads "fires on "," and "."" should predict commas and full stops; on bench/explain.py's
    30 NMF factors the naming simulator alone reached a correlation of 0.04 for such lists of the strongest
    tokens, while matching the quoted tokens literally reached 0.29 (a /tmp diagnostic over the same factors).
    """
    terms = quoted_terms(explanation)
    hits = np.zeros(len(display))
    if not terms:
        return hits
    words, runs = token_words(display), token_words(display, glue=same_run)
    for i, tok in enumerate(display):
        keys = {tok.strip().lower() or tok, words[i].lower(), runs[i].lower()}
        hits[i] = float(bool(keys & terms))
    return hits


# --------------------------------------------------------------------------------------------------
# Detection


@dataclass
class Snippet:
    """A window of held-out text labelled by whether the factor fires in it."""

    text: str
    positive: bool
    peak: float


def detection_snippets(
    held: HeldOut, factor: int, *, window: int, per_class: int, rng: np.random.Generator
) -> list[Snippet]:
    """A balanced, seeded sample of activating (>= 50% of peak) and silent (<= 10%) windows."""
    windows: list[tuple[list[str], float]] = []
    for toks, row in zip(held.tokens, held.factor_rows(factor), strict=True):
        for start in range(0, len(toks), window):
            part = toks[start : start + window]
            if len(part) >= min(3, len(toks)):
                windows.append((part, float(row[start : start + window].max())))
    peak = max((p for _, p in windows), default=0.0)
    if peak <= 0:
        return []
    pos = [i for i, (_, p) in enumerate(windows) if p >= 0.5 * peak]
    neg = [i for i, (_, p) in enumerate(windows) if p <= 0.1 * peak]
    m = min(len(pos), len(neg), per_class)
    if m == 0:
        return []
    picked = list(rng.choice(pos, m, replace=False)) + list(rng.choice(neg, m, replace=False))
    rng.shuffle(picked)
    positives = set(pos)
    return [Snippet(detokenize(windows[i][0]), i in positives, windows[i][1]) for i in picked]


def _yes_probability(completion: Completion) -> float | None:
    if not completion.tokens:
        return None
    first = completion.tokens[0]
    alts = first.top or [(first.token, first.logprob)]
    yes = sum(math.exp(lp) for t, lp in alts if t.strip().lower() == "yes")
    no = sum(math.exp(lp) for t, lp in alts if t.strip().lower() == "no")
    return yes / (yes + no) if yes + no > 0 else None


def _parse_yes_no(text: str) -> bool | None:
    word = re.match(r"\W*(\w+)", text)
    if not word:
        return None
    w = word.group(1).lower()
    return True if w == "yes" else False if w == "no" else None


def _detect_written(backend: Backend, messages: list[dict[str, str]]) -> tuple[bool, float | None, bool]:
    if isinstance(backend, LogprobCompleter):
        completion = backend.complete_logprobs(messages, max_tokens=3, top_logprobs=10)
    else:
        completion = Completion(text=backend.complete(messages, max_tokens=3))
    p = _yes_probability(completion)
    said = _parse_yes_no(completion.text)
    decision = p > 0.5 if p is not None else bool(said)
    return decision, p, p is None and said is None


def detect(
    backend: Backend, explanations: Sequence[str], snippets: Sequence[Snippet]
) -> list[tuple[np.ndarray, np.ndarray | None, int]]:
    """Per explanation: Yes/No decisions per snippet, P(Yes) when available, and unreadable answers."""
    if not snippets:
        return [(np.zeros(0, dtype=bool), None, 0) for _ in explanations]
    if isinstance(backend, ForcedScorer):
        batch = [detection_messages(e, s.text) for e in explanations for s in snippets]
        p_all = backend.choice_probabilities(batch, [YES, NO])[:, 0]
        n = len(snippets)
        return [(p_all[i * n : (i + 1) * n] > 0.5, p_all[i * n : (i + 1) * n], 0) for i in range(len(explanations))]
    out = []
    for explanation in explanations:
        answers = [_detect_written(backend, detection_messages(explanation, s.text)) for s in snippets]
        probs = [p for _, p, _ in answers]
        p_arr = np.asarray(probs, dtype=np.float64) if all(p is not None for p in probs) else None
        out.append((np.asarray([d for d, _, _ in answers], dtype=bool), p_arr, sum(bad for _, _, bad in answers)))
    return out


def balanced_accuracy(decisions: np.ndarray, labels: np.ndarray) -> float:
    """Mean of the hit rate on activating and the correct-rejection rate on silent snippets."""
    labels = np.asarray(labels, dtype=bool)
    decisions = np.asarray(decisions, dtype=bool)
    return float((decisions[labels].mean() + (~decisions[~labels]).mean()) / 2)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Chance that an activating snippet gets a higher P(Yes) than a silent one (ties count half)."""
    labels = np.asarray(labels, dtype=bool)
    pos, neg = scores[labels], scores[~labels]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


# --------------------------------------------------------------------------------------------------
# Baselines


def random_explanations(own: Sequence[str], library: Library | None, rng: np.random.Generator) -> list[str]:
    """A seeded random explanation per factor: a library example's, else another factor's."""
    pool = [ex.explanation for ex in library] if library is not None and len(library) else list(own)
    out = []
    for text in own:
        choices = [p for p in pool if p != text] or [NO_PATTERN]
        out.append(choices[int(rng.integers(len(choices)))])
    return out


# --------------------------------------------------------------------------------------------------
# Entry point


def _normalise(explanations: Sequence[Explanation | str]) -> list[tuple[int, str, ActivationRecord | None]]:
    out = []
    for i, e in enumerate(explanations):
        if isinstance(e, Explanation):
            out.append((e.factor, e.text, e.record))
        elif isinstance(e, str):
            out.append((i, e, None))
        else:
            raise InputError(f"explanation #{i} must be an Explanation or a string, got {type(e).__name__}")
    if not out:
        raise InputError("no explanations to score")
    return out


def _library_or_none(library: Library | str | Path | None) -> Library | None:
    try:
        return as_library(library)
    except ConfigurationError:
        return None  # no built-in library yet: fall back to built-in worked example / other factors


# Below this spread (0-10 scale) the simulator gave the explanation and its baselines nearly the same
# predictions: it did not read them, so its correlations say little about any of them. With the former
# teacher-forced slot method the embedded SmolLM2-135M gave 1.0-1.8 on real factors; with the naming readout
# (`simulate_by_naming`) SmolLM2 gives 3.2-6.2 and Qwen2.5-Coder-1.5B 3.9-7.8 (bench/explain.py, numbers text).
MIN_SPREAD = 2.0


def _note_spread(results: list[MethodScores], preds: list[np.ndarray]) -> None:
    """Record how much the simulator's predictions depend on the explanation, and warn when they hardly do."""
    if len(preds) < 2:
        return
    stacked = np.stack(preds)
    spread = float((stacked.max(axis=0) - stacked.min(axis=0)).max())
    for scores in results:
        scores.simulation_spread = spread
    if spread < MIN_SPREAD:
        results[0].notes.append(
            f"simulation: the simulator hardly reads explanations (its predictions for this one and the baselines "
            f"differ by at most {spread:.1f} on the 0-10 scale), so these correlations say little; use a stronger "
            "simulator (an OpenAI-compatible backend)"
        )


def score_factor(
    backend: Backend,
    texts: Sequence[str],
    factor: int,
    held: HeldOut,
    *,
    methods: Sequence[str],
    sim_examples: Sequence[Example],
    snippets: Sequence[Snippet],
    max_text_tokens: int,
) -> list[MethodScores]:
    """Simulation and/or detection scores of several explanations (e.g. one and its baselines) for one factor."""
    results = [MethodScores() for _ in texts]
    if "simulation" in methods:
        displays = [display_tokens(t[:max_text_tokens]) for t in held.tokens if t]
        truth = [row[:max_text_tokens] for row, t in zip(held.factor_rows(factor), held.tokens, strict=True) if t]
        true_all = np.concatenate(truth)
        simulated = simulate(backend, texts, displays, sim_examples)
        _note_spread(results, [np.concatenate(preds) for preds, _ in simulated])  # the model's own reading
        for scores, text, (preds, missing) in zip(results, texts, simulated, strict=True):
            scores.unpredicted = missing
            if missing:
                scores.notes.append(f"simulation: {missing} tokens had no readable prediction (counted as 0)")
            scores.simulation = pearson(with_quoted(text, preds, displays), true_all)
            if scores.simulation is None:
                if np.std(true_all) == 0:
                    scores.notes.append("simulation: factor is constant on the held-out text; correlation undefined")
                else:
                    scores.simulation = 0.0
                    scores.notes.append("simulation: predictions were constant; scored 0")
    if "detection" in methods:
        labels = np.asarray([s.positive for s in snippets], dtype=bool)
        for scores, (decisions, p_yes, malformed) in zip(results, detect(backend, texts, snippets), strict=True):
            if not snippets:
                scores.notes.append("detection: held-out text lacks activating or silent windows for this factor")
                continue
            scores.detection = balanced_accuracy(decisions, labels)
            if p_yes is not None:
                scores.detection_auc = roc_auc(p_yes, labels)
            if malformed:
                scores.notes.append(f"detection: {malformed} answers were neither Yes nor No (counted as No)")
    return results


def score_explanations(
    explanations: Sequence[Explanation | str],
    factor_fn: FactorFn,
    texts: Sequence[str],
    *,
    backend: str | Backend | None = None,
    methods: Sequence[str] = METHODS,
    baselines: Sequence[str] = BASELINES,
    library: Library | str | Path | None = None,
    seed: int = 0,
    max_text_tokens: int = 64,
    window: int = 16,
    per_class: int = 4,
    api_key: str | None = None,
) -> ScoreReport:
    """Score explanations (and baselines) on held-out texts: simulation correlation and detection accuracy.

    factor_fn(texts) -> [(tokens, activations (n_factors, n_tokens)), ...] applies the same fitted factor
    model to new text. Explanation objects are matched to factor rows by their `factor`; plain strings by
    position. Held-out texts are cut to max_text_tokens for simulation.

    Args:
        explanations: from `explain_factors`, or plain strings (one per factor, in factor order; the top-tokens
            baseline needs Explanation objects).
        factor_fn: ``factor_fn(texts) -> [(tokens, activations (n_factors, n_tokens)), ...]``, one per text.
        texts: held-out texts the explanations were not made from.
        backend: the simulator: ``"local"``, ``"openai[:model]"`` or a `Backend` (None: $ECCO_SDK_EXPLAINER,
            else ``"local"``).
        methods: any of ``"simulation"`` (correlation of predicted and true levels) and ``"detection"``
            (balanced accuracy of telling firing snippets from others).
        baselines: any of ``"random"`` (a seeded random library example's explanation, else another factor's)
            and ``"top-tokens"`` (the factor's top tokens, no LLM), scored the same way.
        library: worked examples for the simulation prompt and the random baseline (None: the built-in library).
        seed: seed for the random baseline and the detection snippets.
        max_text_tokens: held-out texts are cut to this many tokens for simulation (at least 2).
        window: tokens per detection snippet (at least 2).
        per_class: detection snippets per class, firing and not firing (at least 1).
        api_key: an OpenAI key used for this call only and never stored.

    Returns:
        The `ScoreReport`: per factor, the explanation's scores next to each baseline's; ``str(report)`` is a
        table.

    Raises:
        InputError: an unknown method or baseline, a bad size, no explanations or texts, or a factor_fn that
            fails or returns the wrong shapes.
        ConfigurationError: the backend cannot be set up (no API key, a missing model package).
        BackendError: the simulator's server refused a request or kept failing.
    """
    bad = [m for m in methods if m not in METHODS] + [b for b in baselines if b not in BASELINES]
    if bad or not methods:
        raise InputError(f"unknown method/baseline {bad}; methods from {METHODS}, baselines from {BASELINES}")
    if max_text_tokens < 2 or window < 2 or per_class < 1:
        raise InputError("max_text_tokens and window must be >= 2 and per_class >= 1")
    items = _normalise(explanations)
    llm = get_backend(backend, api_key=api_key)
    lib = _library_or_none(library)
    held = apply_factor_fn(factor_fn, texts, max(f for f, _, _ in items) + 1)
    rng = np.random.default_rng(seed)
    sim_examples = simulation_examples(lib)
    randoms = random_explanations([t for _, t, _ in items], lib, rng) if "random" in baselines else []
    results = []
    for idx, (factor, text, record) in enumerate(items):
        checkpoint()
        snippets = []
        if "detection" in methods:
            snippets = detection_snippets(held, factor, window=window, per_class=per_class, rng=rng)
        candidates = [("explanation", text)]
        notes = []
        for kind in baselines:
            if kind == "random":
                candidates.append((kind, randoms[idx]))
            elif record is not None:
                candidates.append((kind, top_tokens_explanation(record)))
            else:
                notes.append("top-tokens baseline needs Explanation objects (with records), not strings")
        scores = score_factor(
            llm,
            [t for _, t in candidates],
            factor,
            held,
            methods=methods,
            sim_examples=sim_examples,
            snippets=snippets,
            max_text_tokens=max_text_tokens,
        )
        scored = [ScoredExplanation(kind, t, sc) for (kind, t), sc in zip(candidates, scores, strict=True)]
        scored[0].scores.notes.extend(notes)
        results.append(FactorScore(factor=factor, explanation=scored[0], baselines=scored[1:]))
    return ScoreReport(
        factors=results,
        backend=llm.name,
        methods=list(methods),
        baselines=list(baselines),
        n_texts=len(held.texts),
        seed=seed,
    )
