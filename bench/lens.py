"""Logit lens: ecco_sdk's rankings + layer predictions vs per-layer loops, one run.

A 64-token sequence of the embedded SmolLM2-135M (30 layers, vocab 49152, hidden 576) goes
through one forward pass. The timed work is what a user asks for in one look at the lens:
`rankings(positions="all")` (every layer x the 63 predicted tokens, exact full-vocabulary ranks)
plus `layer_predictions` (top-10 of every layer) at the last position. Peers, same states:

- ecco:  the original ecco's way: for each layer, unembedding with no final norm, softmax, and a
         full `argsort` per position to find each token's rank; top-k per layer for predictions.
- loop:  a straightforward torch loop over layers with the final norm: unembed, `argsort` the
         whole (positions x vocab) block, read each token's rank off the sort.

Each side runs in its own child process (its own peak RSS); times are medians after one warm-up
(the slow ecco side: one timed run).
"loop" applies the same norm as ours, so its ranks must equal ours (checked; ties aside).

    python bench/lens.py [--tokens 64] [--repeat 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import matmul_peak_gflops, peak_rss_mb, real_sequence, run_child, table, timed

MODEL = "smollm2-135m-instruct"


def _ours(lm, out):
    def run():
        r = out.rankings(positions="all")
        lp = out.layer_predictions(position=len(out.tokens), topk=10)
        return r.ranks, lp.token_ids

    return run


def _loop(lm, out, norm: bool):
    """Per-layer loop over the same states: unembed (with or without the final norm), sort, read ranks off."""
    import torch

    head = lm.adapter.head
    final_norm = lm.adapter.main.final_norm if norm else None
    hs = torch.from_numpy(out.hidden_states)
    targets = torch.as_tensor(out.token_ids[1:])  # position p is predicted from the state at p - 1

    def run():
        ranks, preds = [], []
        with torch.inference_mode():
            for layer in range(1, hs.shape[0]):
                h = hs[layer]
                logits = head(final_norm(h) if final_norm is not None else h)
                probs = torch.softmax(logits, dim=-1)
                if norm:  # the whole block at once
                    order = torch.argsort(logits[:-1], dim=-1, descending=True)
                    ranks.append((order == targets[:, None]).nonzero()[:, 1] + 1)
                else:  # ecco: one argsort per position
                    row = []
                    for p in range(len(targets)):
                        order = torch.argsort(probs[p], descending=True)
                        row.append(int((order == targets[p]).nonzero()[0, 0]) + 1)
                    ranks.append(torch.tensor(row))
                preds.append(torch.topk(probs[-1], 10).indices)
        return torch.stack(ranks).numpy(), torch.stack(preds).numpy()

    return run


def child(who: str, n_tokens: int, repeat: int) -> None:
    import torch

    import ecco_sdk

    torch.manual_seed(0)
    lm = ecco_sdk.from_pretrained(MODEL, verbose=False)
    out = real_sequence(lm, n_tokens)
    run = _ours(lm, out) if who == "ours" else _loop(lm, out, norm=who == "loop")
    seconds, (ranks, preds) = timed(run, repeat=repeat, warmup=1)
    rows = (out.hidden_states.shape[0] - 1) * (len(out.tokens) - 1)
    print(
        json.dumps(
            {
                "who": who,
                "seconds": seconds,
                "peak_rss_mb": peak_rss_mb(),
                "ranks": ranks.tolist(),
                "preds": preds.tolist(),
                "rows": rows,
                "gflop": 2 * rows * lm.adapter.hidden_size * lm.adapter.head.out_features / 1e9,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5, help="timed runs after one warm-up run (median)")
    ap.add_argument("--quick", action="store_true", help="short run: 1 timed repeat")
    ap.add_argument("--child", choices=["ours", "loop", "ecco"])
    args = ap.parse_args()
    if args.child:
        child(args.child, args.tokens, args.repeat)
        return
    import numpy as np

    repeat = 1 if args.quick else args.repeat
    common = ["--tokens", str(args.tokens), "--repeat", str(repeat)]
    peak = matmul_peak_gflops()
    res = {who: run_child(__file__, "--child", who, *common) for who in ("ours", "loop")}
    # ecco's per-position argsort takes about a minute a run: one timed run after the warm-up is enough
    res["ecco"] = run_child(__file__, "--child", "ecco", "--tokens", str(args.tokens), "--repeat", "1")
    ours = res["ours"]
    ref = np.asarray(ours["ranks"])
    rows = []
    for who, label in (("ours", "ecco_sdk (norm, exact)"), ("loop", "torch loop + norm"), ("ecco", "ecco (no norm)")):
        r = res[who]
        same = float((np.asarray(r["ranks"]) == ref).mean())
        top1 = float((np.asarray(r["preds"])[:, 0] == np.asarray(ours["preds"])[:, 0]).mean())
        rows.append(
            [
                label,
                r["seconds"],
                r["seconds"] / ours["seconds"],
                r["gflop"] / r["seconds"],
                r["gflop"] / r["seconds"] / peak,
                r["peak_rss_mb"],
                f"{same:.1%}",
                f"{top1:.0%}",
            ]
        )
    print(
        f"logit lens over {args.tokens} tokens x 30 layers ({ours['rows']} rankings rows), {MODEL}, CPU "
        f"({os.cpu_count()} cores); rankings(all positions) + layer_predictions(last position, top-10); "
        f"medians of {repeat} after one warm-up (ecco: 1); torch fp32 matmul peak measured now: {peak:.0f} GFLOP/s "
        f"(unembedding alone needs {ours['gflop']:.0f} GFLOP)"
    )
    print(
        table(
            [
                "side",
                "seconds",
                "x ours",
                "GFLOP/s",
                "of peak",
                "peak RSS MB",
                "ranks = ours",
                "top-1 = ours",
            ],
            rows,
        )
    )
    print(f"target: ours under 0.5 s -> {'met' if ours['seconds'] < 0.5 else 'NOT met'} ({ours['seconds']:.3f} s)")


if __name__ == "__main__":
    main()
