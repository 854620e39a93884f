"""Generation with full capture: ecco_sdk vs plain Hugging Face `generate`, one run; plus load times.

Same model object (`lm.model`, `lm.tokenizer` of the embedded SmolLM2-135M), same prompt, greedy,
20 new tokens. Ours records at every step the top-k candidates and, through hooks, the hidden
states and FFN activations of every layer and position (including one extra forward over the last
token, which HF does not run). HF runs `model.generate(..., max_new_tokens=20, do_sample=False)`.
The ratio comes from both sides in one child process, alternating run by run (fair under load
drift); each side also runs alone in its own child process for its own peak RSS. Medians after
warm-up. Load times: cold (GGUF de-quantised into a fresh ECCO_SDK_CACHE) and warm (from that
cache), each in a fresh process, with the torch + transformers import timed apart.

    python bench/generate.py [--new 20] [--repeat 5] [--quick] [--no-cold]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import peak_rss_mb, run_child, table, timed

MODEL = "smollm2-135m-instruct"
PROMPT = "Heathrow airport is located in the city of"


def _runners(lm, n_new: int):
    """(ours, hf) callables: each generates `n_new` tokens greedily and returns (new token ids, output)."""
    import torch

    enc = lm.tokenizer(PROMPT, return_tensors="pt")
    pad = lm.tokenizer.pad_token_id

    def ours():
        out = lm.generate(PROMPT, generate=n_new, stop_at_eos=False, topk_candidates=10)
        assert out.activations is not None and out.hidden_states is not None
        return out.token_ids[out.n_input_tokens :].tolist(), out

    def hf():
        with torch.inference_mode():
            res = lm.model.generate(**enc, max_new_tokens=n_new, do_sample=False, pad_token_id=pad)
        return res[0, enc.input_ids.shape[1] :].tolist(), None

    return ours, hf


def child_generate(who: str, n_new: int, repeat: int) -> None:
    """Time one side (or both, interleaved run by run so load drift hits both alike); print JSON."""
    import statistics

    import ecco_sdk

    lm = ecco_sdk.from_pretrained(MODEL, activations=True, verbose=False)
    ours, hf = _runners(lm, n_new)
    if who == "both":
        ours(), hf()
        times: dict[str, list[float]] = {"ours": [], "hf": []}
        ids = {}
        for _ in range(repeat):
            for name, fn in (("ours", ours), ("hf", hf)):
                t = time.perf_counter()
                ids[name], out = fn()
                times[name].append(time.perf_counter() - t)
        ratios = [a / b for a, b in zip(times["ours"], times["hf"])]
        result = {k: statistics.median(v) for k, v in times.items()}
        result.update(ratio=statistics.median(ratios), same=ids["ours"] == ids["hf"], ids=ids)
        result.update(hidden_states=list(out.hidden_states.shape) if out is not None else None)
        print(json.dumps(result))
        return
    seconds, (ids, out) = timed(ours if who == "ours" else hf, repeat=repeat, warmup=1)
    extra = {}
    if out is not None:
        extra = {
            "hidden_states": list(out.hidden_states.shape),
            "activations": list(out.activations.shape),
            "candidates": list(out.candidate_ids.shape),
        }
    print(json.dumps({"who": who, "seconds": seconds, "ids": ids, "peak_rss_mb": peak_rss_mb(), **extra}))


def child_load() -> None:
    """Time the import of torch + transformers, then of ecco_sdk, then `from_pretrained`; print JSON."""
    t0 = time.perf_counter()
    import torch  # noqa: F401
    import transformers  # noqa: F401

    t1 = time.perf_counter()
    import ecco_sdk

    t2 = time.perf_counter()
    ecco_sdk.from_pretrained(MODEL, verbose=False)
    t3 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "import_sdk_s": t2 - t1, "load_s": t3 - t2, "peak_rss_mb": peak_rss_mb()}))


def _total(r: dict) -> float:
    return r["import_s"] + r["import_sdk_s"] + r["load_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--new", type=int, default=20, help="tokens to generate")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs after one warm-up run (median)")
    ap.add_argument("--quick", action="store_true", help="short run: 2 repeats, no cold load")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold (GGUF conversion) load")
    ap.add_argument("--child", choices=["ours", "hf", "both", "load"])
    args = ap.parse_args()
    if args.child == "load":
        child_load()
        return
    if args.child:
        child_generate(args.child, args.new, args.repeat)
        return
    repeat = 2 if args.quick else args.repeat
    common = ["--new", str(args.new), "--repeat", str(repeat)]
    both = run_child(__file__, "--child", "both", *common)
    hf = run_child(__file__, "--child", "hf", *common)
    ours = run_child(__file__, "--child", "ours", *common)
    print(
        f"greedy generation of {args.new} tokens, {MODEL}, CPU ({os.cpu_count()} cores); medians of {repeat} "
        "runs after one warm-up. 'interleaved': both sides in one process, alternating run by run (the fair "
        "ratio on a busy machine); 'own process': each side alone in a fresh process (its own peak RSS)"
    )
    print(
        table(
            ["side", "interleaved s", "ms / token", "own process s", "peak RSS MB", "captured"],
            [
                ["HF generate", both["hf"], 1000 * both["hf"] / args.new, hf["seconds"], hf["peak_rss_mb"], "-"],
                [
                    "ecco_sdk generate",
                    both["ours"],
                    1000 * both["ours"] / args.new,
                    ours["seconds"],
                    ours["peak_rss_mb"],
                    f"hidden {ours['hidden_states']}, ffn {ours['activations']}, top-k {ours['candidates']}",
                ],
            ],
        )
    )
    same = "yes" if both["same"] and ours["ids"] == hf["ids"] else f"NO ({both['ids']})"
    print(
        f"overhead ours / HF: {both['ratio']:.2f}x interleaved (median of per-pair ratios), "
        f"{ours['seconds'] / hf['seconds']:.2f}x own processes (target <= 1.5x); same tokens: {same}\n"
    )

    rows = []
    if not (args.quick or args.no_cold):
        with tempfile.TemporaryDirectory(prefix="ecco_bench_cache_") as cache:
            cold = run_child(__file__, "--child", "load", env={"ECCO_SDK_CACHE": cache})
            warm = run_child(__file__, "--child", "load", env={"ECCO_SDK_CACHE": cache})
        rows += [["cold (GGUF -> fresh cache)", cold], ["warm (fresh cache, 2nd process)", warm]]
    rows.append(["warm (default cache)", run_child(__file__, "--child", "load")])
    print("load times, each in a fresh process (target: warm load under 3 s)")
    print(
        table(
            ["load", "import torch+transformers s", "import ecco_sdk s", "from_pretrained s", "total s", "peak MB"],
            [[name, r["import_s"], r["import_sdk_s"], r["load_s"], _total(r), r["peak_rss_mb"]] for name, r in rows],
        )
    )


if __name__ == "__main__":
    main()
