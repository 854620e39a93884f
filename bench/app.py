"""Latency of each app endpoint through gradio_client, cold and warm, beside the same SDK calls made directly.

The app (space/app.py, embedded SmolLM2-135M) is launched in this process on a free loopback port with
no preload, so the first /generate pays for the model load ("cold" = first call of each endpoint after
the app starts). "Warm" is the median of --repeat further calls. The peer is the same SDK work done
in-process without the app (the same analysis and the same rendering), alternated call by call with the
app's so that load from other processes hits both alike; ratio = through the app / direct, warm.
Saliency is timed on a fresh run each time (the app caches attributions per run); the untimed
generation for it is excluded. Direct cold generation (model load + generate) runs in a child process.

    python bench/app.py [--repeat 3] [--slow-repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import run_child, table

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

MODEL = "smollm2-135m-instruct"
PROMPT = "The capital of France is a city called Paris, and the"  # 12 tokens (printed below)
N_NEW = 8
IG_STEPS = 16
WATCH = " Paris, London"
NMF_K = 4
EXPLAIN = {"n_components": 2, "n_examples": 2, "retriever": "bm25"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clock(fn) -> tuple[float, object]:
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


def _paired(app_fn, direct_fn, repeat: int, setup) -> tuple[float, float]:
    """Medians of app and direct calls, alternated so that load from other processes hits both alike.

    setup() -> (run id for the app, OutputSeq for the direct call); its time is not counted.
    """
    app_t, direct_t = [], []
    for _ in range(repeat):
        rid, out = setup()
        app_t.append(_clock(lambda r=rid: app_fn(r))[0])
        direct_t.append(_clock(lambda o=out: direct_fn(o))[0])
    return statistics.median(app_t), statistics.median(direct_t)


def app_calls(url: str) -> dict[str, callable]:
    """One closure per endpoint; each takes a run id (or None) and makes one gradio_client call."""
    from gradio_client import Client

    c = Client(url, verbose=False, download_files=False)
    ex = EXPLAIN

    def explain(rid):
        args = (rid, ex["n_components"], 0, -1, "local", "", MODEL, "", False, ex["n_examples"], ex["retriever"], "")
        return c.predict(*args, api_name="/explain")

    return {
        "generate": lambda _=None: c.predict(PROMPT, MODEL, N_NEW, api_name="/generate")[1]["run_id"],
        "saliency": lambda rid: c.predict(rid, "ig", "minimal", -1, IG_STEPS, api_name="/saliency"),
        "rankings": lambda rid: c.predict(rid, WATCH, -1, 5, api_name="/rankings"),
        "nmf": lambda rid: c.predict(rid, NMF_K, 0, -1, api_name="/nmf"),
        "explain": explain,
    }


def direct_calls(lm) -> dict[str, callable]:
    """The same SDK work in-process: analysis, rendering and JSON, no app in between."""
    from ecco_sdk.explain import explain_output
    from ecco_sdk.render import figure_to_html

    def generate(_=None):
        out = lm.generate(PROMPT, generate=N_NEW)
        return out.view().static_html, out.to_dict()

    def saliency(out):
        view = out.primary_attributions("ig", n_steps=IG_STEPS)
        return view.static_html, out.attributions["ig"].to_dict()

    def rankings(out):
        p, r, w = out.layer_predictions(topk=5), out.rankings(), out.rankings_watch([" Paris", " London"])
        return [figure_to_html(x.plot()).static_html for x in (p, r, w)], [x.to_dict() for x in (p, r, w)]

    def nmf(out):
        res = out.run_nmf(NMF_K)
        return res.explore(top_n=8).static_html, figure_to_html(res.plot()).static_html, res.to_dict(top_n=8)

    def explain(out):
        return explain_output(out, EXPLAIN["n_components"], backend=f"local:{MODEL}", score=False, max_tokens=48,
                              n_examples=EXPLAIN["n_examples"], retriever=EXPLAIN["retriever"]).to_dict()  # fmt: skip

    return {"generate": generate, "saliency": saliency, "rankings": rankings, "nmf": nmf, "explain": explain}


def child_direct_cold() -> None:
    """In a fresh process: model load + first generate, the direct peer of the app's cold /generate."""
    t = time.perf_counter()
    import ecco_sdk

    lm = ecco_sdk.from_pretrained(MODEL, verbose=False)
    out = lm.generate(PROMPT, generate=N_NEW)
    out.view()
    print(json.dumps({"seconds": time.perf_counter() - t}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="warm calls per endpoint (median)")
    ap.add_argument("--slow-repeat", type=int, default=1, help="warm calls for /saliency and /explain (slow on CPU)")
    ap.add_argument("--child-direct-cold", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_direct_cold:
        child_direct_cold()
        return

    start = time.perf_counter()
    from ecco_sdk.app import load_app

    app = load_app()
    demo = app.build_app([MODEL])
    port = _free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    print(f"app up in {time.perf_counter() - start:.1f} s (imports + build + launch) on port {port}", flush=True)
    try:
        calls = app_calls(f"http://127.0.0.1:{port}/")
        cold: dict[str, float] = {}
        cold["generate"], rid = _clock(calls["generate"])
        for name in ("saliency", "rankings", "nmf", "explain"):
            cold[name] = _clock(lambda n=name: calls[n](rid))[0]
            print(f"cold {name}: {cold[name]:.2f} s", flush=True)
        from ecco_sdk.app import get_lm

        lm = get_lm(MODEL)  # the app's own LM: direct calls share its weights
        n_prompt = int(lm.encode(PROMPT).shape[1])
        direct = direct_calls(lm)
        base = lm.generate(PROMPT, generate=N_NEW)
        same = lambda: (rid, base)  # noqa: E731
        fresh = lambda: (calls["generate"](), lm.generate(PROMPT, generate=N_NEW))  # noqa: E731
        warm, peer = {}, {}
        for name, repeat, setup in [
            ("generate", args.repeat, same),
            ("rankings", args.repeat, same),
            ("nmf", args.repeat, same),
            ("saliency", args.slow_repeat, fresh),  # the app caches attributions per run: new runs each time
            ("explain", args.slow_repeat, same),
        ]:
            warm[name], peer[name] = _paired(calls[name], direct[name], repeat, setup)
            print(f"warm {name}: app {warm[name]:.2f} s, direct {peer[name]:.2f} s", flush=True)
    finally:
        demo.close()
    peer_cold = run_child(__file__, "--child-direct-cold")["seconds"]

    rows = []
    for name in ("generate", "saliency", "rankings", "nmf", "explain"):
        direct_cold = peer_cold if name == "generate" else "-"
        rows.append([f"/{name}", cold[name], warm[name], peer[name], direct_cold, warm[name] / peer[name]])
    print()
    print(
        f"SmolLM2-135M, {n_prompt}-token prompt, {N_NEW} new tokens (greedy), ig {IG_STEPS} steps, NMF {NMF_K} "
        f"factors, explain {EXPLAIN['n_components']} factors local backend; {os.cpu_count()} CPUs; "
        f"warm = median of {args.repeat} (saliency, explain: {args.slow_repeat}), app and direct calls alternated"
    )
    headers = ["endpoint", "app cold (s)", "app warm (s)", "direct warm (s)", "direct cold (s)", "ratio warm"]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
