"""Load test of the app: N gradio_client users for a bounded time on loopback; latency, errors and app memory.

The app (space/app.py, embedded SmolLM2-135M, default ServingConfig unless ECCO_APP_* variables say
otherwise) runs in a child process, so the memory figures are the app's alone (VmRSS from /proc,
sampled every 0.2 s). Each client loops until the deadline: generate a run, then saliency (IG), logit-lens
rankings and NMF on it, and every third round a local explanation (one factor). A refused request
("busy") counts as an error of kind "busy", anything else as "other"; a client that gets "busy" waits a
second before its next call. Memory: idle = after one call of each endpoint (so what first use loads,
such as the explainer's model, is in it), peak = the largest sample under load, settled = --settle
seconds after the last request ended; settled near idle means the load left nothing behind.

    python bench/load.py [--clients 4] [--seconds 120] [--ig-steps 8] [--settle 10]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(__file__))
from _common import table

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

MODEL = "smollm2-135m-instruct"
PROMPTS = ["The capital of France is", "One, two, three,", "Heathrow airport is in", "The keys to the cabinet"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port: int) -> None:
    """Child mode: build and launch the app on loopback, then block."""
    from ecco_sdk.app import load_app

    demo = load_app().build_app([MODEL])
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    print("READY", flush=True)
    threading.Event().wait()


def rss_mb(pid: int) -> float:
    """Resident memory of a process now (MB), from /proc."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Sampler(threading.Thread):
    """Samples a process's RSS every `every` seconds and keeps the peak."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.peak = pid, every, 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            self.stop.wait(self.every)


def user(url: str, i: int, deadline: float, ig_steps: int, log: dict, lock: threading.Lock) -> None:
    """One client: rounds of generate -> saliency -> rankings -> nmf (-> explain every third round)."""
    from gradio_client import Client

    c = Client(url, verbose=False, download_files=False)

    def call(name: str, *args):
        start = time.perf_counter()
        out, kind, message = None, None, ""
        try:
            out = c.predict(*args, api_name=f"/{name}")
        except Exception as err:  # every failure is counted, by kind
            message = str(err)[:200]
            kind = "busy" if "busy" in message or "already have" in message else "other"
        with lock:
            log[name].append((time.perf_counter() - start, kind, message))
        if kind == "busy":
            time.sleep(1.0)
        return out

    rounds = 0
    while time.monotonic() < deadline:
        gen = call("generate", PROMPTS[(i + rounds) % len(PROMPTS)], MODEL, 6)
        if gen is None:
            continue
        rid = gen[1]["run_id"]
        steps = [
            ("saliency", rid, "ig", "minimal", -1, ig_steps),
            ("rankings", rid, " Paris, London", -1, 5),
            ("nmf", rid, 3, 0, -1),
        ]
        if rounds % 3 == 2:
            steps.append(("explain", rid, 1, 20, -1, "local", "", MODEL, "", False, 0, "bm25", ""))
        for name, *args in steps:
            if time.monotonic() >= deadline:
                break
            call(name, *args)
        rounds += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--ig-steps", type=int, default=8)
    ap.add_argument("--settle", type=float, default=10.0)
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return

    port = _free_port()
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("READY"):
                break
        url = f"http://127.0.0.1:{port}/"
        from gradio_client import Client

        warm = Client(url, verbose=False, download_files=False)
        rid = warm.predict(PROMPTS[0], MODEL, 2, api_name="/generate")[1]["run_id"]
        time.sleep(2.0)
        loaded = rss_mb(child.pid)
        # One call of every endpoint first, so "idle" holds what first use loads (e.g. the explainer's model).
        warm.predict(rid, "ig", "minimal", -1, args.ig_steps, api_name="/saliency")
        warm.predict(rid, " Paris", -1, 5, api_name="/rankings")
        warm.predict(rid, 3, 0, -1, api_name="/nmf")
        warm.predict(rid, 1, 20, -1, "local", "", MODEL, "", False, 0, "bm25", "", api_name="/explain")
        time.sleep(2.0)
        idle = rss_mb(child.pid)
        sampler = Sampler(child.pid)
        sampler.start()
        log: dict[str, list] = defaultdict(list)
        lock = threading.Lock()
        deadline = time.monotonic() + args.seconds
        start = time.perf_counter()
        users = [
            threading.Thread(target=user, args=(url, i, deadline, args.ig_steps, log, lock))
            for i in range(args.clients)
        ]
        for t in users:
            t.start()
        for t in users:
            t.join()
        wall = time.perf_counter() - start
        time.sleep(args.settle)
        sampler.stop.set()
        sampler.join()
        settled = rss_mb(child.pid)
    finally:
        child.terminate()
        child.wait(timeout=30)

    rows = []
    for name in ("generate", "saliency", "rankings", "nmf", "explain"):
        entries = log.get(name, [])
        ok = sorted(t for t, kind, _ in entries if kind is None)
        busy = sum(1 for _, kind, _ in entries if kind == "busy")
        other = [m for _, kind, m in entries if kind == "other"]
        p50 = statistics.median(ok) if ok else float("nan")
        p95 = ok[min(len(ok) - 1, round(0.95 * (len(ok) - 1)))] if ok else float("nan")
        rows.append([f"/{name}", len(entries), len(ok), p50, p95, busy, len(other)])
        for m in sorted(set(other))[:3]:
            print(f"  /{name} error: {m}")
    print(
        f"{args.clients} clients for {args.seconds:g} s (ran {wall:.0f} s) on loopback, IG {args.ig_steps} steps, "
        f"{os.cpu_count()} CPUs"
    )
    print(table(["endpoint", "calls", "ok", "p50 (s)", "p95 (s)", "busy", "other errors"], rows))
    print(f"app RSS: model loaded {loaded:.0f} MB, idle after one call of each endpoint {idle:.0f} MB,")
    print(f"         peak under load {sampler.peak:.0f} MB, settled {settled:.0f} MB ({args.settle:g} s after)")


if __name__ == "__main__":
    main()
