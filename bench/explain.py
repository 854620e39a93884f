"""Explanations of NMF factors with the local backend, scored against baselines, on 10 texts of different kinds.

Per text: FFN activations of the embedded SmolLM2-135M (layers FROM:TO), a 3-factor NMF, one explanation
per factor written by the local backend (SmolLM2-135M-Instruct, hybrid retrieval from the few-shot library),
then simulation (correlation) and detection (balanced accuracy) on the held-out texts of
`ecco_sdk.explain.HELD_OUT_TEXTS`, next to the two baselines (a random library explanation and a
"most active tokens" explanation). None of the texts is in the few-shot library or among the held-out
texts (checked at start). Times are wall seconds and process CPU seconds per factor (the machine may be
shared: CPU seconds are the steadier number). Each text's first token, the attention sink, is left out
as `explain_text` does (`--keep-first` keeps it).

    python bench/explain.py [--quick] [--layers 20:30] [--components 3] [--json out.json] [--keep-first]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import table

# (kind, text): none of them is in ecco_sdk/explain/data/examples.json or HELD_OUT_TEXTS (checked in main)
TEXTS: tuple[tuple[str, str], ...] = (
    ("numbers", "Chapter 4 has 12 pages, chapter 5 has 19 pages and chapter 6 has 31 pages."),
    ("code", "while n > 1:\n    n = n // 2 if n % 2 == 0 else 3 * n + 1\n    steps += 1\n"),
    ("poetry", "The river sings beneath the moon,\nthe willows sway and softly croon."),
    ("names, places", "Maria flew from Lisbon to Oslo, then took a train with Jonas to Bergen."),
    ("dates", "The lease starts on 1 July 2024 and ends on 30 June 2026, unless renewed."),
    ("tense, plurals", "The boys jumped over the fences while the girls watched the horses."),
    ("quotes, brackets", 'He said [quietly] that "the answer (probably) is no".'),
    ("punctuation", "Bring eggs; flour; sugar; milk - and, if possible, vanilla!"),
    ("dialogue", "Why are you late? I missed the bus, sorry. It's fine, come in."),
    ("markup", "<ul><li>Tea</li><li>Coffee</li><li>Juice</li></ul>"),
)
QUICK = ("numbers", "names, places")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("↵", "\n")).strip().lower()


def check_unseen(texts: list[str]) -> None:
    """Refuse bench texts that the few-shot library or the held-out scoring texts contain (or vice versa)."""
    from ecco_sdk.explain import HELD_OUT_TEXTS, load_library

    seen = [_norm(ex.record.text()) for ex in load_library()] + [_norm(t) for t in HELD_OUT_TEXTS]
    for text in texts:
        t = _norm(text)
        clash = next((s for s in seen if t in s or (len(s) > 20 and s in t)), None)
        if clash is not None:
            raise SystemExit(f"bench text {text!r} overlaps a library/held-out text {clash!r}")


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def run_text(lm, kind: str, text: str, components: int, lo: int | None, hi: int | None, skip: int, held: dict) -> dict:
    """Factorize one text, explain each factor with the local backend, score on the held-out texts.

    The steps of `explain_activations`, timed one by one; the first `skip` positions of every text are left out
    (`held`: the held-out texts' activations, captured once for all texts with the same skip).
    """
    from ecco_sdk.explain import HELD_OUT_TEXTS, explain_factors, score_explanations
    from ecco_sdk.explain.pipeline import skip_positions
    from ecco_sdk.factors import fit_factor_model, texts_activations

    ((tokens, acts),) = texts_activations(lm, [text])
    acts, tokens = skip_positions(acts, tokens, skip)
    model = fit_factor_model([acts], n_components=components, from_layer=lo, to_layer=hi)
    nmf = model.transform(acts, tokens)
    w0, c0 = _clock()
    explanations = explain_factors(nmf.tokens, nmf.factors, backend="local")
    w1, c1 = _clock()
    factor_fn = model.factor_fn(lambda texts: [held[t] for t in texts])
    report = score_explanations(explanations, factor_fn, list(HELD_OUT_TEXTS), backend="local")
    w2, c2 = _clock()
    n = len(explanations)
    return {
        "kind": kind,
        "text": text,
        "explain_s": (w1 - w0) / n,
        "explain_cpu_s": (c1 - c0) / n,
        "score_s": (w2 - w1) / n,
        "score_cpu_s": (c2 - c1) / n,
        "means": report.to_dict()["means"],
        "spread": _mean([f.explanation.scores.simulation_spread for f in report.factors]),
        "factors": [
            {
                "factor": e.factor,
                "active": e.active_tokens(5),
                "explanation": e.text,
                "raw": e.raw,
                "scores": f.to_dict(),
            }
            for e, f in zip(explanations, report.factors, strict=True)
        ],
    }


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _cell(v: float | None) -> object:
    return "-" if v is None else v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"only 2 texts ({', '.join(QUICK)})")
    ap.add_argument("--layers", default="20:30", help="FROM:TO, half-open")
    ap.add_argument("--components", type=int, default=3)
    ap.add_argument("--json", help="also write all results (explanations, per-factor scores) to this file")
    ap.add_argument("--keep-first", action="store_true", help="factorize each text's first token (the sink) too")
    args = ap.parse_args()
    import ecco_sdk
    from ecco_sdk.explain import HELD_OUT_TEXTS, SKIP_FIRST
    from ecco_sdk.explain.pipeline import held_out_activations
    from ecco_sdk.explain.scoring import MIN_SPREAD

    items = [(k, t) for k, t in TEXTS if not args.quick or k in QUICK]
    check_unseen([t for _, t in items])
    lo, hi = (int(x) if x else None for x in args.layers.split(":"))
    start = time.perf_counter()
    lm = ecco_sdk.from_pretrained("smollm2-135m-instruct", verbose=False)
    skip = 0 if args.keep_first else SKIP_FIRST
    held = held_out_activations(lm, HELD_OUT_TEXTS, skip)
    results = []
    for kind, text in items:
        results.append(run_text(lm, kind, text, args.components, lo, hi, skip, held))
        print(f"[{time.perf_counter() - start:.0f}s] {kind}: done", file=sys.stderr, flush=True)
    first = "kept" if args.keep_first else "left out"
    metrics = [(m, k) for m in ("simulation", "detection") for k in ("explanation", "random", "top-tokens")]
    timing = ("spread", "explain_s", "explain_cpu_s", "score_s", "score_cpu_s")
    rows = [[r["kind"], *[_cell(r["means"][m][k]) for m, k in metrics], *[r[t] for t in timing]] for r in results]
    rows.append(
        [
            "mean",
            *[_cell(_mean([r["means"][m][k] for r in results])) for m, k in metrics],
            *[_mean([r[t] for r in results]) for t in timing],
        ]
    )
    print(
        f"explain + score, local SmolLM2-135M-Instruct, {len(items)} texts x {args.components} factors, layers "
        f"{args.layers}, {len(HELD_OUT_TEXTS)} held-out texts, first token {first}; sim = simulation correlation, "
        f"det = detection balanced accuracy (mean over a text's factors); sim spread = how much the simulator's "
        f"predictions depend on the explanation (0-10; below {MIN_SPREAD} it hardly reads them); times per factor; "
        f"{os.cpu_count()} CPU cores"
    )
    print(
        table(
            [
                "text",
                "sim",
                "sim random",
                "sim top-tok",
                "det",
                "det random",
                "det top-tok",
                "sim spread",
                "explain s",
                "explain cpu s",
                "score s",
                "score cpu s",
            ],
            rows,
        )
    )
    print()
    for r in results:
        for f in r["factors"]:
            active = " ".join(f"{tok}:{lv}" for tok, lv in f["active"])
            print(f"{r['kind']} #{f['factor']}  [{active}]  -> {f['explanation']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2, default=str)


if __name__ == "__main__":
    main()
