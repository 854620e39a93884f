"""NMF factors: ecco_sdk's run_nmf vs plain scikit-learn NMF on the same matrix, one run.

FFN activations of a real 64-token SmolLM2-135M forward (30 layers x 1536 neurons x 64 positions)
are saved once; then, for each n_components in 3..10, both sides factorize all 30 layers:

- ours:    `ecco_sdk.factors.run_nmf(acts, tokens, n_components=k)` (what `out.run_nmf` calls):
           builds the (64 x 46080) matrix, clips negatives, exact-SVD NNDSVDa start, sklearn's cd solver,
           normalises and orders the factors, measures the fit.
- sklearn: `NMF(k, init="nndsvda", solver="cd", beta_loss="frobenius", max_iter=200, tol=1e-4,
           random_state=0).fit_transform(X)` on the same clipped matrix (the matrix is built untimed).

Each side runs in its own child process (its own peak RSS); times are medians after one warm-up.
The results must match: the Frobenius reconstruction error ||X - WH|| of both, in float64.

    python bench/nmf.py [--components 3-10] [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from _common import peak_rss_mb, real_sequence, run_child, table, timed

MODEL = "smollm2-135m-instruct"
MAX_ITER, TOL, SEED = 200, 1e-4, 0


def _error(x, w, h) -> float:
    """||X - WH||_F in float64."""
    import numpy as np

    return float(np.linalg.norm(x.astype(np.float64) - w.astype(np.float64) @ h.astype(np.float64)))


def child(who: str, data: str, ks: list[int], repeat: int) -> None:
    import numpy as np

    acts = np.load(os.path.join(data, "acts.npy"))
    with open(os.path.join(data, "tokens.json")) as fh:
        tokens = json.load(fh)
    x = np.maximum(acts.reshape(-1, acts.shape[2]).T.astype(np.float32), 0.0)  # (positions, layers*neurons)
    rows = []
    for k in ks:
        if who == "ours":
            from ecco_sdk.factors import run_nmf

            def run(k=k):
                res = run_nmf(acts, tokens, n_components=k, max_iter=MAX_ITER, tol=TOL, seed=SEED)
                return res.factors.T, res.components

        else:
            import warnings

            from sklearn.decomposition import NMF

            def run(k=k):
                model = NMF(
                    k, init="nndsvda", solver="cd", beta_loss="frobenius", max_iter=MAX_ITER, tol=TOL, random_state=SEED
                )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    w = model.fit_transform(x)
                return w, model.components_

        seconds, (w, h) = timed(run, repeat=repeat, warmup=1)
        rows.append({"k": k, "seconds": seconds, "error": _error(x, w, h)})
    print(
        json.dumps(
            {
                "who": who,
                "rows": rows,
                "norm": float(np.linalg.norm(x.astype(np.float64))),
                "peak_rss_mb": peak_rss_mb(),
                "shape": list(x.shape),
            }
        )
    )


def _save_activations(data: str, n_tokens: int) -> None:
    import numpy as np

    import ecco_sdk

    lm = ecco_sdk.from_pretrained(MODEL, activations=True, verbose=False)
    out = real_sequence(lm, n_tokens)
    np.save(os.path.join(data, "acts.npy"), out.activations)
    with open(os.path.join(data, "tokens.json"), "w") as fh:
        json.dump(out.tokens, fh)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--components", default="3-10", help="a range lo-hi or a comma list")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs after one warm-up run (median)")
    ap.add_argument("--quick", action="store_true", help="short run: components 3,6,10, 1 timed repeat")
    ap.add_argument("--child", choices=["ours", "sklearn"])
    ap.add_argument("--data", help="folder with acts.npy and tokens.json (children)")
    args = ap.parse_args()
    if "-" in args.components:
        lo, hi = (int(v) for v in args.components.split("-"))
        ks = list(range(lo, hi + 1))
    else:
        ks = [int(v) for v in args.components.split(",")]
    if args.child:
        child(args.child, args.data, ks, args.repeat)
        return
    if args.quick:
        ks, repeat = [3, 6, 10], 1
    else:
        repeat = args.repeat
    with tempfile.TemporaryDirectory(prefix="ecco_bench_nmf_") as data:
        _save_activations(data, args.tokens)
        common = ["--data", data, "--components", ",".join(map(str, ks)), "--repeat", str(repeat)]
        ours = run_child(__file__, "--child", "ours", *common)
        skl = run_child(__file__, "--child", "sklearn", *common)
    print(
        f"NMF over all 30 layers x 1536 neurons and {args.tokens} positions of {MODEL} "
        f"(clipped matrix {ours['shape'][0]} x {ours['shape'][1]}, ||X|| = {ours['norm']:.4g}), CPU "
        f"({os.cpu_count()} cores); cd solver, max_iter={MAX_ITER}, tol={TOL}, seed={SEED}; medians of {repeat} "
        f"after one warm-up, each side in its own process (peak RSS: ours {ours['peak_rss_mb']:.0f} MB, "
        f"sklearn {skl['peak_rss_mb']:.0f} MB)"
    )
    rows = []
    for a, b in zip(ours["rows"], skl["rows"]):
        rel = abs(a["error"] - b["error"]) / b["error"]
        rows.append(
            [a["k"], a["seconds"], b["seconds"], b["seconds"] / a["seconds"], a["error"], b["error"], f"{rel:.2e}"]
        )
    print(
        table(
            ["n_components", "ours s", "sklearn s", "speed-up", "ours ||X-WH||", "sklearn ||X-WH||", "rel diff"],
            rows,
        )
    )
    worst = max(float(r[-1]) for r in rows)
    print(f"reconstruction errors agree within {worst:.1e} relative (tolerance 1e-2: {'ok' if worst < 1e-2 else 'NO'})")


if __name__ == "__main__":
    main()
