"""Integrated gradients: ecco_sdk vs captum's LLMGradientAttribution(LayerIntegratedGradients), one run.

Same model (embedded SmolLM2-135M), same prompt, same generated target tokens, same semantics
(captum's: log-probability target, prompt tokens interpolated from the embedding of token 0,
generated tokens fixed, signed sum over the embedding dimension). Each side runs in its own child
process so that peak RSS is its own. Two tables:

- speed (default): ours and captum at equal n_steps, side by side as ratios, with the work floor
  (one forward over the sequence plus one backward per target over its own prefix, at the matmul
  peak measured in the same run) and the opt-in bfloat16 row;
- accuracy (--accuracy): on several prompts, each variant's largest (over targets) L1 distance
  between the normalised |attributions| and a 256-step fp32 reference, and its time against captum's
  at its default 50 steps (captum's accuracy is ours at 50 steps: equal to 1e-4, checked in the speed run).

    python bench/attribution.py [--steps 50] [--targets 6,12,24] [--captum-targets 6,12,24]
    python bench/attribution.py --accuracy [--tolerance 0.3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(__file__))
from _common import matmul_peak_gflops, peak_rss_mb, run_child, table, timed

PROMPT = "The Eiffel Tower is a famous landmark located in the city of"
PROMPTS = (
    PROMPT,
    "Heathrow airport is located in the city of",
    "The capital of France is",
    "My favourite fruit to eat in summer is",
)


def _targets(lm, prompt: str, n: int) -> list[int]:
    out = lm.generate(prompt, generate=n, stop_at_eos=False)
    return out.token_ids[out.n_input_tokens :].tolist()


def _sizes(lm) -> tuple[int, int]:
    body = sum(p.numel() for b in lm.adapter.main.blocks for p in b.parameters())
    return body, lm.adapter.head.weight.numel()


def _floor_flops(body: int, head: int, n_prompt: int, n_targets: int, steps: int) -> float:
    """Least matmul work: one forward over the sequence, one backward per target over only its prefix."""
    length = n_prompt + n_targets - 1
    prefixes = sum(n_prompt + j for j in range(n_targets))
    return steps * (2 * body * (length + prefixes) + 4 * head * n_targets)


def _our_flops(body: int, head: int, n_prompt: int, n_targets: int, steps: int) -> float:
    """What ours does: one forward, then per chunk group one batched backward through the chunks up to it."""
    from ecco_sdk.attribution import _chunk_bounds, _Problem

    positions = [n_prompt + j for j in range(n_targets)]
    bounds = _chunk_bounds(
        SimpleNamespace(target_positions=positions), _Problem.__dataclass_fields__["chunk_tokens"].default
    )
    walked = sum(next(e for _, e in bounds if p - 1 < e) for p in positions)
    return steps * (2 * body * (positions[-1] - 1 + walked) + 4 * head * n_targets)


def _captum_flops(body: int, head: int, n_prompt: int, n_targets: int, steps: int) -> float:
    """captum: per target a forward over its prefix (all logits) and a backward over it."""
    return steps * sum(2 * (2 * body + head) * (n_prompt + j) + 2 * head for j in range(n_targets))


def _ours(lm, prompt: str, targets: list[int], **kw):
    out = lm.attribute(
        prompt, target=targets, methods="ig", scope="prompt", target_kind="logprob", baseline=0, keep_raw=False, **kw
    )
    attr = out.attributions["ig"]
    return attr.scores_sum[:, : out.n_input_tokens].tolist(), attr


def child(args) -> None:
    import torch

    import ecco_sdk

    lm = ecco_sdk.from_pretrained("smollm2-135m-instruct", verbose=False)
    prompt = PROMPTS[args.prompt]
    targets = _targets(lm, prompt, args.n)
    n_prompt = len(lm.encode(prompt)[0])
    result: dict = {"who": args.child, "targets": args.n, "prompt_tokens": n_prompt}
    if args.child == "captum":
        from captum.attr import LayerIntegratedGradients, LLMGradientAttribution, TextTokenInput

        llm = LLMGradientAttribution(LayerIntegratedGradients(lm.model, lm.adapter.input_embeddings), lm.tokenizer)
        inp = TextTokenInput(prompt, lm.tokenizer)

        def run():
            return llm.attribute(inp, target=torch.tensor(targets), n_steps=args.steps).token_attr.tolist()

        result["seconds"], result["scores"] = timed(run, repeat=args.repeat, warmup=args.warmup)
    elif args.child == "ours":
        kw = {"n_steps": args.steps, "dtype": args.dtype}
        result["seconds"], (result["scores"], _) = timed(
            lambda: _ours(lm, prompt, targets, **kw), repeat=args.repeat, warmup=args.warmup
        )
    else:  # "variants": the accuracy reference and every variant, one model load
        result["variants"] = {}
        _ours(lm, prompt, targets, n_steps=8)  # warm-up
        for name, kw in _variants(args.tolerance, args.max_steps):
            t = time.perf_counter()
            scores, attr = _ours(lm, prompt, targets, **kw)
            result["variants"][name] = {
                "seconds": time.perf_counter() - t,
                "scores": scores,
                "steps": attr.n_steps,
                "estimate": attr.error_estimate,
            }
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def _variants(tolerance: float, max_steps: int) -> list[tuple[str, dict]]:
    return [
        ("reference 256 fp32", {"n_steps": 256}),
        ("ours 50 fp32 (= captum 50)", {"n_steps": 50}),
        ("ours 50 bf16", {"n_steps": 50, "dtype": "bfloat16"}),
        ("ours 25 bf16", {"n_steps": 25, "dtype": "bfloat16"}),
        (f"auto tol {tolerance} fp32", {"n_steps": "auto", "tolerance": tolerance, "max_steps": max_steps}),
        (
            f"auto tol {tolerance} bf16",
            {"n_steps": "auto", "tolerance": tolerance, "max_steps": max_steps, "dtype": "bfloat16"},
        ),
    ]


def l1_error(scores, reference) -> float:
    """Largest, over targets, L1 distance between normalised |attributions| (0 = same shares, 2 = disjoint)."""
    import numpy as np

    a, b = np.abs(np.asarray(scores, dtype=float)), np.abs(np.asarray(reference, dtype=float))
    a = a / a.sum(axis=1, keepdims=True)
    b = b / b.sum(axis=1, keepdims=True)
    return float(np.abs(a - b).sum(axis=1).max())


def _rel(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / np.abs(b).max())


def speed(args) -> None:
    import ecco_sdk

    peak = matmul_peak_gflops()
    lm = ecco_sdk.from_pretrained("smollm2-135m-instruct", verbose=False)
    body, head = _sizes(lm)
    del lm
    rows = []
    captum_counts = {int(x) for x in args.captum_targets.split(",") if x}
    common = ["--steps", str(args.steps), "--repeat", str(args.repeat), "--warmup", str(args.warmup)]
    first = None
    for n in [int(x) for x in args.targets.split(",")]:
        common_n = [*common, "--n", str(n)]
        cap = run_child(__file__, "--child", "captum", *common_n) if n in captum_counts else None
        ours = run_child(__file__, "--child", "ours", *common_n)
        bf16 = run_child(__file__, "--child", "ours", "--dtype", "bfloat16", *common_n)
        p = ours["prompt_tokens"]
        floor_s = _floor_flops(body, head, p, n, args.steps) / 1e9 / peak
        ours_of_peak = _our_flops(body, head, p, n, args.steps) / 1e9 / ours["seconds"] / peak
        first = first or (n, ours["seconds"], cap["seconds"] if cap else None)
        row = [n, p, ours["seconds"], ours["seconds"] / n, floor_s / n, ours["seconds"] / floor_s, ours_of_peak]
        row += [ours["seconds"] / first[1] if n != first[0] else "-", ours["peak_rss_mb"]]
        if cap:
            cap_of_peak = _captum_flops(body, head, p, n, args.steps) / 1e9 / cap["seconds"] / peak
            growth = cap["seconds"] / first[2] if n != first[0] and first[2] else "-"
            row += [cap["seconds"], cap_of_peak, growth, cap["seconds"] / ours["seconds"]]
            row += [_rel(ours["scores"], cap["scores"]), cap["seconds"] / bf16["seconds"]]
            row += [_rel(bf16["scores"], cap["scores"])]
        else:
            row += ["-"] * 7
        row += [bf16["seconds"]]
        rows.append(row)
    print(
        f"integrated gradients, n_steps={args.steps}, SmolLM2-135M, CPU ({os.cpu_count()} cores); "
        f"fp32 matmul peak measured now: {peak:.0f} GFLOP/s; times: median of {args.repeat} after "
        f"{args.warmup} warm-up; floor = one forward + one backward per target over its prefix, at that peak"
    )
    headers = ["targets", "prompt tok", "ours s", "ours s/target", "floor s/target", "ours/floor", "ours of peak"]
    headers += ["ours growth", "ours peak MB", "captum s", "captum of peak", "captum growth", "speed-up"]
    headers += ["max rel diff", "bf16 speed-up", "bf16 max rel diff", "bf16 s"]
    print(table(headers, rows))


def accuracy(args) -> None:
    rows = []
    prompts = [int(x) for x in args.prompts.split(",")]
    for i in prompts:
        common = ["--prompt", str(i), "--n", str(args.n), "--steps", "50", "--repeat", "1", "--warmup", "0"]
        cap = run_child(__file__, "--child", "captum", *common)
        ours = run_child(
            __file__,
            "--child",
            "variants",
            *common,
            "--tolerance",
            str(args.tolerance),
            "--max-steps",
            str(args.max_steps),
        )
        variants = ours["variants"]
        ref = variants.pop("reference 256 fp32")["scores"]
        rows.append([i, "captum 50 fp32", 50, cap["seconds"], 1.0, l1_error(cap["scores"], ref), "-"])
        for name, v in variants.items():
            est = v["estimate"] if v["estimate"] is not None else "-"
            rows.append(
                [i, name, v["steps"], v["seconds"], cap["seconds"] / v["seconds"], l1_error(v["scores"], ref), est]
            )
    print(
        f"integrated gradients accuracy, {args.n} targets, prompts {prompts} (see PROMPTS), SmolLM2-135M; "
        "L1 = largest over targets of the L1 distance between normalised |attributions| and ours at 256 "
        "steps fp32 (Gauss-Legendre); single timed runs (captum without warm-up, ours after one)"
    )
    print(table(["prompt", "variant", "steps", "seconds", "captum s / this", "L1 vs 256-step", "estimate"], rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--targets", default="6,12,24")
    ap.add_argument("--captum-targets", default="6,12,24", help="target counts to also run captum on (slow)")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs (median)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    ap.add_argument("--accuracy", action="store_true", help="the accuracy table instead of the speed table")
    ap.add_argument("--prompts", default="0,1,2", help="indices into PROMPTS for --accuracy")
    ap.add_argument("--tolerance", type=float, default=0.3)
    ap.add_argument("--max-steps", type=int, default=75)
    ap.add_argument("--child", choices=["ours", "captum", "variants"])
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--prompt", type=int, default=0)
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    if args.child:
        child(args)
    elif args.accuracy:
        accuracy(args)
    else:
        speed(args)


if __name__ == "__main__":
    main()
