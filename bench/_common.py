"""Shared helpers for the benchmarks: timing, peak memory in a child process, a matmul peak, tables."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def timed(fn: Callable[[], object], repeat: int = 3, warmup: int = 1) -> tuple[float, object]:
    """Median wall time of `fn` over `repeat` runs after `warmup` runs, and the last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (MB).

    On Linux this is VmHWM of the process's own address space: `ru_maxrss` would also carry the peak of
    the parent that spawned it (the kernel keeps the larger of the two across fork/exec), so a child
    started by a bench that had loaded a model would report the parent's memory as its own.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(script: str, *args: str, env: dict | None = None) -> dict:
    """Run `script` in a fresh Python process and parse the JSON it prints last (its own peak RSS included)."""
    res = subprocess.run(
        [sys.executable, script, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if res.returncode != 0:
        raise RuntimeError(f"{script} {args} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def matmul_peak_gflops(n: int = 2048, repeat: int = 5) -> float:
    """fp32 GFLOP/s of a square torch matmul on this machine, measured now."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table (Markdown pipe syntax, so it pastes into the README)."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


LONG_TEXT = (
    "The history of the city begins with a small settlement on the river, where traders met to exchange "
    "grain, wool and salt. Over the centuries the town grew into a busy port, and its bridges, markets and "
    "churches became famous across the whole region. Today visitors come to see the old harbour, the castle "
    "on the hill and the museum that tells the story of the people who built it."
)


def real_sequence(lm, n_tokens: int = 64):
    """One captured forward (`OutputSeq`) over exactly the first `n_tokens` tokens of LONG_TEXT."""
    import torch

    ids = lm.encode(LONG_TEXT)[:, :n_tokens]
    if ids.shape[1] < n_tokens:
        raise ValueError(f"LONG_TEXT has only {ids.shape[1]} tokens; ask for fewer")
    return lm({"input_ids": ids, "attention_mask": torch.ones_like(ids)}).sequences[0]
