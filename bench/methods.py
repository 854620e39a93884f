"""Every attribution method on one 13-token prompt and 6 targets: seconds, peak RSS, agreement with IG, captum beside.

Model: the embedded SmolLM2-135M. Prompt: "The Eiffel Tower is a famous landmark located in the city
of" (13 tokens with the BOS), its 6 greedy continuation tokens teacher-forced as targets; target =
log-probability, scope = prefix (each target attributed to every earlier token), baseline = zeros.
Each run is its own child process, so peak RSS (VmHWM) is that method's alone (model included).
Agreement with IG: Spearman rank correlation of the signed token scores (scores_sum) and of the
normalised magnitudes (scores_l2) over the positions before each target, averaged over the 6
targets. For every method ecco_sdk wraps or reimplements, captum called directly (one call per
target on the model's plain forward) runs in its own child; "same" is the largest difference between
the two sides' signed scores, relative to the largest score.

    python bench/methods.py [--methods ig,lime,...] [--repeat 1] [--store DIR] [--no-run]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import peak_rss_mb, run_child, table, timed

PROMPT = "The Eiffel Tower is a famous landmark located in the city of"
N_TARGETS = 6
OPTIONS = {  # each method's settings (the registry defaults, written out so the table says what ran)
    "ig": {"n_steps": 50},
    "gradient_shap": {"n_samples": 20, "seed": 0},
    "lime": {"n_samples": 100, "seed": 0},
    "kernel_shap": {"n_samples": 100, "seed": 0},
    "shapley_sampling": {"n_samples": 8, "seed": 0},
    "occlusion": {"window": 3},
    "layer_grad_x_act": {"layer": 15},
    "layer_ig": {"layer": 15, "n_steps": 50},
}
ATTENTION = ("attention", "attention_rollout", "value_attention")


PEERS = (
    "ig",
    "saliency",
    "grad_x_input",
    "ablation",
    "gradient_shap",
    "lime",
    "kernel_shap",
    "shapley_sampling",
    "occlusion",
    "layer_grad_x_act",
    "layer_ig",
)
PER_POSITION = ("ablation", "lime", "kernel_shap", "shapley_sampling", "occlusion")
PER_EVAL = 64  # captum's perturbations_per_eval: batched like ours, not its default of 1


def _peer_call(name: str, lm, opts: dict, f, emb):
    """captum's class for `name`, configured like ours, attributing one target's forward `f` at `emb`."""
    import captum.attr as ca
    import torch
    from captum._utils.models.linear_model import SkLearnRidge

    zeros = torch.zeros_like(emb)
    mask = torch.arange(emb.shape[1])[None, :, None].expand_as(emb).contiguous()
    h = emb.shape[-1]
    block = lm.adapter.main.blocks[opts.get("layer", 1) - 1]
    sampled = {
        "baselines": zeros,
        "feature_mask": mask,
        "n_samples": opts.get("n_samples"),
        "perturbations_per_eval": PER_EVAL,
    }
    calls = {
        "ig": lambda: ca.IntegratedGradients(f).attribute(emb, baselines=zeros, n_steps=opts["n_steps"]),
        "saliency": lambda: ca.Saliency(f).attribute(emb.requires_grad_(True), abs=False),
        "grad_x_input": lambda: ca.InputXGradient(f).attribute(emb.requires_grad_(True)),
        "ablation": lambda: ca.FeatureAblation(f).attribute(
            emb, baselines=zeros, feature_mask=mask, perturbations_per_eval=PER_EVAL
        ),
        "gradient_shap": lambda: ca.GradientShap(f).attribute(emb, baselines=zeros, n_samples=opts["n_samples"]),
        "lime": lambda: ca.Lime(f, interpretable_model=SkLearnRidge(alpha=1.0)).attribute(emb, **sampled),
        "kernel_shap": lambda: ca.KernelShap(f).attribute(emb, **sampled),
        "shapley_sampling": lambda: ca.ShapleyValueSampling(f).attribute(emb, **sampled),
        "occlusion": lambda: ca.Occlusion(f).attribute(
            emb, sliding_window_shapes=(opts["window"], h), strides=(1, h), perturbations_per_eval=PER_EVAL
        ),
        "layer_grad_x_act": lambda: ca.LayerGradientXActivation(f, block).attribute(emb),
        "layer_ig": lambda: ca.LayerIntegratedGradients(f, block).attribute(
            emb, baselines=zeros, n_steps=opts["n_steps"]
        ),
    }
    out = calls[name]()
    return out[0] if isinstance(out, tuple | list) else out


def _captum_scores(name: str, lm, ids: list[int], n_prompt: int, opts: dict) -> list[list[float]]:
    """captum called directly, one call per target on the plain forward; signed token scores per target."""
    import numpy as np
    import torch

    rows = []
    for p in range(n_prompt, len(ids)):

        def f(e, p=p, tgt=ids[p]):
            return torch.log_softmax(lm.model(inputs_embeds=e).logits[:, p - 1].float(), -1)[:, tgt]

        with torch.no_grad():
            emb = lm.adapter.input_embeddings(torch.tensor([ids[:p]])).float()
        torch.manual_seed(opts.get("seed", 0))
        np.random.seed(opts.get("seed", 0))
        a = _peer_call(name, lm, opts, f, emb)
        # Per-position methods give every embedding dimension the position's score; gradient ones differ by dimension.
        scores = a[0, :, 0] if name in PER_POSITION else a[0].detach().sum(-1)
        rows.append([float(v) for v in scores] + [float("nan")] * (len(ids) - 1 - p))
    return rows


def child(name: str, side: str, repeat: int) -> None:
    import ecco_sdk
    from ecco_sdk.attribution import attribute_output

    lm = ecco_sdk.from_pretrained("smollm2-135m-instruct", attention=name in ATTENTION, verbose=False)
    base = lm.generate(PROMPT, generate=N_TARGETS, stop_at_eos=False)
    ids = base.token_ids.tolist()
    n_prompt = base.n_input_tokens
    opts = OPTIONS.get(name, {})
    result: dict = {"method": name, "side": side}
    if side == "ours":

        def run():
            res = attribute_output(lm, base, name, target_kind="logprob", keep_raw=False, **opts)
            attr = next(iter(res.values()))
            return attr.scores_sum[:, :-1].tolist(), attr.scores_l2[:, :-1].tolist()

        try:
            seconds, (sums, l2) = timed(run, repeat=repeat, warmup=0)
        except ecco_sdk.EccoError as err:
            print(json.dumps({**result, "refused": f"{type(err).__name__}: {str(err)[:90]}..."}))
            return
        result.update(sums=sums, l2=l2)
    else:
        seconds, sums = timed(lambda: _captum_scores(name, lm, ids, n_prompt, opts), repeat=repeat, warmup=0)
        result.update(sums=sums)
    result.update(seconds=seconds, peak_rss_mb=peak_rss_mb(), n_prompt=n_prompt, n_tokens=len(ids))
    print(json.dumps(result))


def _spearman(a: list[list[float]], b: list[list[float]]) -> float:
    """Mean over targets of Spearman's rho between two rows of token scores (NaN positions dropped)."""
    import numpy as np
    from scipy.stats import spearmanr

    rhos = []
    for ra, rb in zip(a, b, strict=True):
        x, y = np.asarray(ra, float), np.asarray(rb, float)
        keep = ~(np.isnan(x) | np.isnan(y))
        if keep.sum() > 2:
            rhos.append(spearmanr(x[keep], y[keep]).statistic)
    return float(np.nanmean(rhos)) if rhos else float("nan")


def _rel_diff(a: list[list[float]], b: list[list[float]]) -> float:
    import numpy as np

    x, y = np.asarray(a, float), np.asarray(b, float)
    keep = ~(np.isnan(x) | np.isnan(y))
    return float(np.abs(x[keep] - y[keep]).max() / max(np.abs(y[keep]).max(), 1e-30))


def main() -> None:
    from ecco_sdk.attribution import METHODS

    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--store", help="keep each run's JSON in this folder and reuse runs already there")
    ap.add_argument("--no-run", action="store_true", help="only print the table from --store")
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.repeat)
        return
    names = args.methods.split(",")

    def result(name: str, side: str) -> dict | None:
        path = os.path.join(args.store, f"{name}-{side}.json") if args.store else None
        if path and os.path.exists(path):
            with open(path) as fh:
                return json.load(fh)
        if args.no_run:
            return None
        res = run_child(__file__, "--child", name, side, "--repeat", str(args.repeat))
        if path:
            os.makedirs(args.store, exist_ok=True)
            with open(path, "w") as fh:
                json.dump(res, fh)
        return res

    ours = {n: r for n in names if (r := result(n, "ours")) is not None}
    names = list(ours)
    peers = {n: result(n, "captum") for n in names if "refused" not in ours[n] and n in PEERS}
    peers = {n: r for n, r in peers.items() if r is not None}
    ig = ours.get("ig") or result("ig", "ours")
    rows = []
    for n in names:
        o = ours[n]
        if "refused" in o:
            rows.append([n, "refused", "", "", "", "", "", "", "", o["refused"]])
            continue
        c = peers.get(n)
        rows.append(
            [
                n,
                o["seconds"],
                o["peak_rss_mb"],
                _spearman(o["sums"], ig["sums"]),
                _spearman(o["l2"], ig["l2"]),
                c["seconds"] if c else "-",
                c["peak_rss_mb"] if c else "-",
                o["seconds"] / c["seconds"] if c else "-",
                _spearman(o["sums"], c["sums"]) if c else "-",
                f"{_rel_diff(o['sums'], c['sums']):.1e}" if c else "no captum peer",
            ]
        )
    first = next(iter(ours.values()))
    print(f"SmolLM2-135M, {first.get('n_prompt')}-token prompt, {N_TARGETS} targets (logprob, prefix scope)")
    print(f"options: {json.dumps(OPTIONS)}")
    headers = [
        "method",
        "ecco_sdk s",
        "ecco_sdk peak MB",
        "rho vs IG (signed)",
        "rho vs IG (l2)",
        "captum s",
        "captum peak MB",
        "time ratio ecco/captum",
        "rho vs captum",
        "max diff vs captum",
    ]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
