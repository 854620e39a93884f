"""Integrated gradients: ecco_sdk vs captum's LLMGradientAttribution(LayerIntegratedGradients), one run.

Same model (embedded SmolLM2-135M), same ~12-token prompt, same generated target tokens, same
n_steps, same semantics (captum's: log-probability target, prompt tokens interpolated from the
embedding of token 0, generated tokens fixed, signed sum over the embedding dimension). Each side
runs in its own child process so that peak RSS is its own. Prints a table with ratios.

    python bench/attribution.py [--steps 50] [--targets 6,12,24] [--captum-targets 6]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import matmul_peak_gflops, peak_rss_mb, run_child, table, timed

PROMPT = "The Eiffel Tower is a famous landmark located in the city of"


def _targets(lm, n: int) -> list[int]:
    out = lm.generate(PROMPT, generate=n, stop_at_eos=False)
    return out.token_ids[out.n_input_tokens :].tolist()


def _flops(lm, n_prompt: int, n_targets: int, steps: int, who: str) -> float:
    """Analytic FLOPs: 2 x params per token forward, the same again for input gradients backward."""
    body = sum(p.numel() for b in lm.adapter.main.blocks for p in b.parameters())
    head = lm.adapter.head.weight.numel()
    prefixes = [n_prompt + j for j in range(n_targets)]
    if who == "ours":  # one forward over the sequence, then one backward per target through all of it
        length = n_prompt + n_targets - 1
        return steps * (2 * body * length * (1 + n_targets) + 4 * head * n_targets)
    return steps * sum(2 * (body + head) * p * 2 for p in prefixes)


def child(who: str, n_targets: int, steps: int, batch: int | None, repeat: int) -> None:
    import torch

    import ecco_sdk

    lm = ecco_sdk.from_pretrained("smollm2-135m-instruct", verbose=False)
    targets = _targets(lm, n_targets)
    n_prompt = len(lm.encode(PROMPT)[0])
    if who == "ours":

        def run():
            out = lm.attribute(
                PROMPT,
                target=targets,
                methods="ig",
                n_steps=steps,
                scope="prompt",
                target_kind="logprob",
                baseline=0,
                keep_raw=False,
                internal_batch_size=batch,
            )
            return out.attributions["ig"].scores_sum[:, :n_prompt].tolist()
    else:
        from captum.attr import LayerIntegratedGradients, LLMGradientAttribution, TextTokenInput

        llm = LLMGradientAttribution(LayerIntegratedGradients(lm.model, lm.adapter.input_embeddings), lm.tokenizer)
        inp = TextTokenInput(PROMPT, lm.tokenizer)

        def run():
            return llm.attribute(inp, target=torch.tensor(targets), n_steps=steps).token_attr.tolist()

    seconds, scores = timed(run, repeat=repeat, warmup=1)
    print(
        json.dumps(
            {
                "who": who,
                "targets": n_targets,
                "prompt_tokens": n_prompt,
                "seconds": seconds,
                "peak_rss_mb": peak_rss_mb(),
                "scores": scores,
                "gflop": _flops(lm, n_prompt, n_targets, steps, who) / 1e9,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--targets", default="6,12,24")
    ap.add_argument("--captum-targets", default="6,12", help="target counts to also run captum on (slow)")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs after one warm-up run (median)")
    ap.add_argument("--child", choices=["ours", "captum"])
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--batch", type=int, default=0, help="our internal_batch_size (0 = from the memory budget)")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.n, args.steps, args.batch or None, args.repeat)
        return
    import numpy as np

    peak = matmul_peak_gflops()
    rows = []
    captum_counts = {int(x) for x in args.captum_targets.split(",") if x}
    common = ["--steps", str(args.steps), "--repeat", str(args.repeat)]
    for n in [int(x) for x in args.targets.split(",")]:
        cap = run_child(__file__, "--child", "captum", "--n", str(n), *common) if n in captum_counts else None
        for batch in [0, args.steps // 2] if n == 6 else [0]:
            ours = run_child(__file__, "--child", "ours", "--n", str(n), "--batch", str(batch), *common)
            row = [
                n,
                ours["prompt_tokens"],
                batch or "auto",
                ours["seconds"],
                ours["peak_rss_mb"],
                ours["gflop"] / ours["seconds"],
                ours["gflop"] / ours["seconds"] / peak,
            ]
            if cap:
                a, b = np.asarray(ours["scores"]), np.asarray(cap["scores"])
                row += [
                    cap["seconds"],
                    cap["peak_rss_mb"],
                    cap["gflop"] / cap["seconds"],
                    cap["seconds"] / ours["seconds"],
                    ours["peak_rss_mb"] / cap["peak_rss_mb"],
                    float(np.abs(a - b).max() / np.abs(b).max()),
                ]
            else:
                row += ["-"] * 6
            rows.append(row)
    print(
        f"integrated gradients, n_steps={args.steps}, SmolLM2-135M, CPU ({os.cpu_count()} cores); "
        f"torch fp32 matmul peak measured now: {peak:.0f} GFLOP/s; times are medians after one warm-up run"
    )
    print(
        table(
            [
                "targets",
                "prompt tok",
                "our batch",
                "ours s",
                "ours peak MB",
                "ours GFLOP/s",
                "of peak",
                "captum s",
                "captum peak MB",
                "captum GFLOP/s",
                "speed-up",
                "RSS ours/captum",
                "max rel diff",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
