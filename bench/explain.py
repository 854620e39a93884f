"""Explanations of NMF factors by both local models, side by side, scored against baselines on the same factors.

Per text: FFN activations of the embedded SmolLM2-135M (layers FROM:TO), a 3-factor NMF, then for each local
explainer model (SmolLM2-135M-Instruct and Qwen2.5-Coder-1.5B-Instruct): one explanation per factor (hybrid
retrieval from the few-shot library), simulation (correlation) and detection (balanced accuracy) on the
held-out texts of `ecco_sdk.explain.HELD_OUT_TEXTS`, next to the two baselines (a random library explanation
and a "most active tokens" explanation), all scored by that same model. None of the texts is in the few-shot
library or among the held-out texts (checked at start). Each model runs in its own child process, one after
the other in the same run, so its peak RSS is its own (both children also hold the analysed SmolLM2, about
0.6 GB); the NMF is deterministic, and the run checks that both children saw the same factors. Times are wall
seconds and process CPU seconds per factor (the machine may be shared: CPU seconds are the steadier number).
Each text's first token, the attention sink, is left out as `explain_text` does.

    python bench/explain.py [--quick] [--texts numbers,code] [--models smollm2-135m-instruct,...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import peak_rss_mb, run_child, table

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
MODELS = ("smollm2-135m-instruct", "qwen2.5-coder-1.5b-instruct")
# Issue 15's targets for the 1.5B model.
TARGET_MODEL = "qwen2.5-coder-1.5b-instruct"
TARGET_OVER_RANDOM = 0.15
TARGET_EXPLAIN_S = 20.0
TARGET_SCORE_S = 60.0


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


class Meter:
    """Wall seconds and forward-pass tokens spent in one phase (explain, simulation, detection) of a backend."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.tokens: dict[str, int] = {}
        self.phase = "explain"

    def add(self, seconds: float, tokens: int) -> None:
        """Charge time and tokens to the current phase."""
        self.seconds[self.phase] = self.seconds.get(self.phase, 0.0) + seconds
        self.tokens[self.phase] = self.tokens.get(self.phase, 0) + tokens


def metered(backend, meter: Meter) -> None:
    """Count the prompt tokens and time of every generation and logits pass of a local backend."""
    complete, head = backend.complete, backend._head_logits

    def timed_complete(messages, max_tokens=64):
        start = time.perf_counter()
        out = complete(messages, max_tokens=max_tokens)
        meter.add(time.perf_counter() - start, backend.count_messages(messages) + backend.count_tokens(out))
        return out

    def timed_head(sequences, picks):
        start = time.perf_counter()
        out = head(sequences, picks)
        meter.add(time.perf_counter() - start, sum(len(s) for s in sequences))
        return out

    backend.complete, backend._head_logits = timed_complete, timed_head


def phases(meter: Meter) -> None:
    """Charge the scoring passes to simulation or detection, by wrapping the scoring module's two entry points."""
    from ecco_sdk.explain import scoring

    for name in ("simulate", "detect"):
        inner = getattr(scoring, name)

        def wrapped(*args, _inner=inner, _name=name, **kw):
            meter.phase = "simulation" if _name == "simulate" else "detection"
            try:
                return _inner(*args, **kw)
            finally:
                meter.phase = "explain"

        setattr(scoring, name, wrapped)


def child(model_name: str, kinds: list[str], lo: int | None, hi: int | None, components: int) -> dict:
    """Explain and score every chosen text's factors with one local model; returns JSON-ready results."""
    import ecco_sdk
    from ecco_sdk.explain import HELD_OUT_TEXTS, SKIP_FIRST, LocalBackend, explain_factors, score_explanations
    from ecco_sdk.explain.pipeline import held_out_activations, skip_positions
    from ecco_sdk.factors import fit_factor_model, texts_activations

    lm = ecco_sdk.from_pretrained("smollm2-135m-instruct", verbose=False)
    held = held_out_activations(lm, HELD_OUT_TEXTS, SKIP_FIRST)
    backend = LocalBackend(model_name)
    start = time.perf_counter()
    backend.load()
    load_s = time.perf_counter() - start
    meter = Meter()
    metered(backend, meter)
    phases(meter)
    results = []
    for kind, text in [(k, t) for k, t in TEXTS if k in kinds]:
        ((tokens, acts),) = texts_activations(lm, [text])
        acts, tokens = skip_positions(acts, tokens, SKIP_FIRST)
        model = fit_factor_model([acts], n_components=components, from_layer=lo, to_layer=hi)
        nmf = model.transform(acts, tokens)
        w0, c0 = _clock()
        explanations = explain_factors(nmf.tokens, nmf.factors, backend=backend)
        w1, c1 = _clock()
        factor_fn = model.factor_fn(lambda texts: [held[t] for t in texts])
        report = score_explanations(explanations, factor_fn, list(HELD_OUT_TEXTS), backend=backend)
        w2, c2 = _clock()
        n = len(explanations)
        results.append(
            {
                "kind": kind,
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
                        "copied_from": e.copied_from,
                        "scores": f.to_dict(),
                    }
                    for e, f in zip(explanations, report.factors, strict=True)
                ],
            }
        )
        print(f"[{model_name}] {kind}: done", file=sys.stderr, flush=True)
    n_factors = sum(len(r["factors"]) for r in results)
    return {
        "model": model_name,
        "backend": backend.name,
        "load_s": load_s,
        "peak_rss_mb": peak_rss_mb(),
        "phase_s": {k: v / n_factors for k, v in meter.seconds.items()},
        "phase_tokens": {k: v / n_factors for k, v in meter.tokens.items()},
        "results": results,
    }


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _cell(v: float | None) -> object:
    return "-" if v is None else v


def summary(run: dict) -> dict:
    """Per-model means over all texts: simulation and detection per kind, spread, seconds per factor."""
    rs = run["results"]
    out = {f"{m}:{k}": _mean([r["means"][m][k] for r in rs]) for m in ("simulation", "detection")
           for k in ("explanation", "random", "top-tokens")}  # fmt: skip
    for key in ("spread", "explain_s", "explain_cpu_s", "score_s", "score_cpu_s"):
        out[key] = _mean([r[key] for r in rs])
    out["copies"] = sum(1 for r in rs for f in r["factors"] if f["copied_from"])
    return out


def targets(run: dict, s: dict) -> list[str]:
    """Issue 15's targets for the 1.5B model: met or missed, by how much, and where the time goes."""
    lines = []
    sim, rnd, top = s["simulation:explanation"], s["simulation:random"], s["simulation:top-tokens"]
    checks = [
        ("mean simulation >= random + 0.15", sim, None if rnd is None else rnd + TARGET_OVER_RANDOM, True),
        ("mean simulation >= top-tokens", sim, top, True),
        ("mean spread >= 2", s["spread"], 2.0, True),
        ("explain s/factor <= 20", s["explain_s"], TARGET_EXPLAIN_S, False),
        ("score s/factor <= 60", s["score_s"], TARGET_SCORE_S, False),
    ]
    for label, value, bound, higher in checks:
        if value is None or bound is None:
            lines.append(f"  {label}: not measured")
            continue
        ok = value >= bound if higher else value <= bound
        lines.append(f"  {label}: {'met' if ok else 'MISSED'} ({value:.3f} against {bound:.3f}"
                     + ("" if ok else f", short by {abs(value - bound):.3f}") + ")")  # fmt: skip
    secs, toks = run["phase_s"], run["phase_tokens"]
    where = ", ".join(f"{k} {secs[k]:.1f} s ({toks.get(k, 0):.0f} tokens through the model)" for k in sorted(secs))
    lines.append(f"  where the time goes, per factor: {where}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"only 2 texts ({', '.join(QUICK)})")
    # ';' separates kinds: some kinds' names hold a comma ("names, places")
    ap.add_argument("--texts", help="';'-separated kinds of text to run (default: all, or the quick two)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated local explainer models")
    ap.add_argument("--layers", default="20:30", help="FROM:TO, half-open")
    ap.add_argument("--components", type=int, default=3)
    ap.add_argument("--json", help="also write all results (explanations, per-factor scores) to this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    kinds = args.texts.split(";") if args.texts else [k for k, _ in TEXTS if not args.quick or k in QUICK]
    unknown = set(kinds) - {k for k, _ in TEXTS}
    if unknown:
        raise SystemExit(f"unknown text kinds {sorted(unknown)}; choose from {[k for k, _ in TEXTS]}")
    lo, hi = (int(x) if x else None for x in args.layers.split(":"))
    if args.child:
        print(json.dumps(child(args.child, kinds, lo, hi, args.components), default=str))
        return
    from ecco_sdk.explain import HELD_OUT_TEXTS
    from ecco_sdk.explain.scoring import MIN_SPREAD

    check_unseen([t for k, t in TEXTS if k in kinds])
    runs = []
    for name in args.models.split(","):
        start = time.perf_counter()
        extra = ["--texts", ";".join(kinds), "--layers", args.layers, "--components", str(args.components)]
        runs.append(run_child(__file__, "--child", name, *extra))
        print(f"[{time.perf_counter() - start:.0f}s] {name}: done", file=sys.stderr, flush=True)
    same = len({json.dumps([[f["active"] for f in r["factors"]] for r in run["results"]]) for run in runs}) == 1
    print(
        f"explain + score with each local model, {len(kinds)} texts x {args.components} factors of SmolLM2-135M "
        f"FFN activations, layers {args.layers}, {len(HELD_OUT_TEXTS)} held-out texts; sim = simulation "
        f"correlation, det = detection balanced accuracy (means over factors); spread = how much the simulator's "
        f"predictions depend on the explanation (0-10; below {MIN_SPREAD} it hardly reads them); times per factor; "
        f"{os.cpu_count()} CPU cores; same factors for every model: {'yes' if same else 'NO'}"
    )
    header = ["model", "sim", "sim random", "sim top-tok", "det", "det random", "det top-tok", "spread",
              "explain s", "explain cpu s", "score s", "score cpu s", "copies", "load s", "peak RSS MB"]  # fmt: skip
    rows, sums = [], []
    for run in runs:
        s = summary(run)
        sums.append(s)
        scores = [
            _cell(s[f"{m}:{k}"]) for m in ("simulation", "detection") for k in ("explanation", "random", "top-tokens")
        ]
        times = [s["explain_s"], s["explain_cpu_s"], s["score_s"], s["score_cpu_s"]]
        rows.append([run["model"], *scores, _cell(s["spread"]), *times, s["copies"], run["load_s"], run["peak_rss_mb"]])
    print(table(header, rows))
    for run, s in zip(runs, sums, strict=True):
        if run["model"] == TARGET_MODEL:
            print(f"\ntargets for {TARGET_MODEL} (issue 15):")
            print("\n".join(targets(run, s)))
    print()
    per_text = ["model", "text", "sim", "sim random", "sim top-tok", "det", "spread", "explain s", "score s"]
    rows = [
        [run["model"].split("-")[0], r["kind"], _cell(r["means"]["simulation"]["explanation"]),
         _cell(r["means"]["simulation"]["random"]), _cell(r["means"]["simulation"]["top-tokens"]),
         _cell(r["means"]["detection"]["explanation"]), _cell(r["spread"]), r["explain_s"], r["score_s"]]
        for run in runs for r in run["results"]
    ]  # fmt: skip
    print(table(per_text, rows))
    print()
    for run in runs:
        for r in run["results"]:
            for f in r["factors"]:
                active = " ".join(f"{tok}:{lv}" for tok, lv in f["active"])
                copy = f"  (copy of {f['copied_from']} replaced)" if f["copied_from"] else ""
                print(
                    f"{run['model'].split('-')[0]} {r['kind']} #{f['factor']}  [{active}]  -> {f['explanation']}{copy}"
                )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(runs, fh, indent=2, default=str)


if __name__ == "__main__":
    main()
