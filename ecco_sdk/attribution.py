"""Primary attributions (input saliency): how much each input token contributed to each generated token.

Methods: integrated gradients, gradient (saliency), input x gradient, and feature ablation. All
generated tokens are attributed together. A causal model's output at position p depends only on
inputs up to p, so one forward pass over an interpolated sequence serves every target; only the
logits the targets need are computed, each target then takes one backward pass through the shared
graph, and interpolation steps are batched to a memory budget. Weights never receive gradients.
(Running the sequence chunk by chunk over the KV cache, so each backward walks only its own prefix,
saves about 14% of the arithmetic for 6 targets but measured slower: smaller matrix products.)

Targets: the target token's probability (the original ecco's), its log-probability, its logit, or a
contrast with a foil token (target logit minus foil logit). Scope: "prefix" attributes each target to
every earlier token, prompt and generated (the original ecco's view); "prompt" interpolates only the
prompt and keeps generated tokens fixed (captum's LLMGradientAttribution view).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .adapters import cache_kwargs
from .cancel import checkpoint
from .errors import InputError
from .tokens import word_groups

if TYPE_CHECKING:
    from .lm import LM
    from .output import OutputSeq

_ALIASES = {
    "ig": "ig",
    "integrated_gradients": "ig",
    "integratedgradients": "ig",
    "saliency": "saliency",
    "gradient": "saliency",
    "grad": "saliency",
    "grad_x_input": "grad_x_input",
    "input_x_gradient": "grad_x_input",
    "inputxgradient": "grad_x_input",
    "gradxinput": "grad_x_input",
    "ablation": "ablation",
    "feature_ablation": "ablation",
    "occlusion": "ablation",
}
METHODS = ("ig", "saliency", "grad_x_input", "ablation")
TARGETS = ("prob", "logprob", "logit")


def canonical_method(name: str) -> str:
    """Map any accepted method name (the original ecco's included) to one of METHODS."""
    key = str(name).lower().replace("-", "_").replace(" ", "_")
    if key not in _ALIASES:
        raise InputError(f"unknown attribution method {name!r}; use one of {sorted(_ALIASES)}")
    return _ALIASES[key]


@dataclass(eq=False)
class PrimaryAttribution:
    """Attribution of each target token to the tokens before it, in plain arrays.

    `scores_l2[j, i]` is the original ecco's score: the L2 norm over the embedding dimension of the
    attribution of position i to target j, normalised to sum to 1 over the attributed positions;
    `scores_sum[j, i]` is the signed sum over the embedding dimension (for integrated gradients these
    add up to f(input) - f(baseline), the completeness property). Positions that cannot influence a
    target (at or after it, or outside the scope) hold NaN.
    """

    method: str
    target_kind: str
    scope: str
    baseline: str
    target_positions: np.ndarray
    target_ids: np.ndarray
    scores_l2: np.ndarray
    scores_sum: np.ndarray
    raw: np.ndarray | None = None
    foil_ids: np.ndarray | None = None
    delta: np.ndarray | None = None
    n_steps: int | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def scores(self, aggregation: str = "l2") -> np.ndarray:
        """(targets, positions) scores: 'l2' (normalised norm, ecco's) or 'sum' (signed)."""
        if aggregation not in ("l2", "sum"):
            raise InputError(f"aggregation must be 'l2' or 'sum', got {aggregation!r}")
        return self.scores_l2 if aggregation == "l2" else self.scores_sum

    def word_scores(self, tokens: Sequence[str], aggregation: str = "l2") -> tuple[list[str], np.ndarray]:
        """Scores summed over the sub-word tokens of each word: (words, (targets, words))."""
        groups = word_groups(tokens)
        scores = self.scores(aggregation)
        words = [
            "".join(tokens[i][2:] if k and tokens[i].startswith("##") else tokens[i] for k, i in enumerate(g))
            for g in groups
        ]
        with np.errstate(invalid="ignore"):
            out = np.stack([_nansum_or_nan(scores[:, g]) for g in groups], axis=1)
        return words, out

    def to_parts(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON metadata, arrays) for saving inside an .ecco file."""
        meta = {
            "method": self.method,
            "target_kind": self.target_kind,
            "scope": self.scope,
            "baseline": self.baseline,
            "n_steps": self.n_steps,
            "params": self.params,
        }
        arrays = {
            k: v
            for k, v in {
                "target_positions": self.target_positions,
                "target_ids": self.target_ids,
                "scores_l2": self.scores_l2,
                "scores_sum": self.scores_sum,
                "raw": self.raw,
                "foil_ids": self.foil_ids,
                "delta": self.delta,
            }.items()
            if v is not None
        }
        return meta, arrays

    @classmethod
    def from_parts(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> PrimaryAttribution:
        """Inverse of `to_parts`."""
        return cls(**meta, **arrays)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (NaN becomes None; the raw per-dimension array is left out)."""
        meta, arrays = self.to_parts()
        arrays.pop("raw", None)
        return {**meta, **{k: _nan_to_none(v) for k, v in arrays.items()}}

    def __repr__(self) -> str:
        return (
            f"PrimaryAttribution({self.method}, target={self.target_kind}, scope={self.scope}, "
            f"{len(self.target_positions)} targets x {self.scores_l2.shape[1]} positions)"
        )


def _nan_to_none(a: np.ndarray) -> Any:
    if a.dtype.kind == "f":
        return (
            [[None if math.isnan(x) else float(x) for x in row] for row in a]
            if a.ndim == 2
            else [None if math.isnan(x) else float(x) for x in a]
        )
    return a.tolist()


def _nansum_or_nan(block: np.ndarray) -> np.ndarray:
    all_nan = np.isnan(block).all(axis=1)
    return np.where(all_nan, np.nan, np.nansum(block, axis=1))


# ----- the attribution problem ---------------------------------------------------------------------


@dataclass
class _Problem:
    """Everything the methods need: embeddings, baseline, which positions move, and what each target measures."""

    lm: LM
    ids: torch.Tensor  # (L,) full sequence (for seq2seq: encoder ids then decoder ids)
    n_input: int
    target_positions: list[int]
    target_ids: list[int]
    foil_ids: list[int] | None
    target_kind: str
    scope_mask: torch.Tensor  # (L,) bool: positions that are interpolated/attributed
    embeds: torch.Tensor  # (L, H) input embeddings
    baseline: torch.Tensor  # (L, H)
    baseline_name: str
    chunk_tokens: int = 8

    @property
    def n_targets(self) -> int:
        return len(self.target_positions)

    @property
    def seq_len(self) -> int:
        return int(self.ids.shape[0])

    def influence_mask(self) -> torch.Tensor:
        """(targets, L) True where position i can influence target j and is in scope."""
        pos = torch.arange(self.seq_len)
        if self.lm.kind == "seq2seq":
            dec = pos >= self.n_input
            before = torch.stack([(~dec) | (pos < p) for p in self.target_positions])
        else:
            before = torch.stack([pos < p for p in self.target_positions])
        return before & self.scope_mask


def _embed(lm: LM, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return lm.adapter.input_embeddings(ids.to(lm.device)[None])[0].float()


def _baseline(lm: LM, ids: torch.Tensor, embeds: torch.Tensor, baseline: str | int) -> tuple[torch.Tensor, str]:
    """The reference input IG integrates from: zeros, or the embedding of one token (e.g. pad, unk, id 0)."""
    if baseline in ("zeros", "zero", None):
        return torch.zeros_like(embeds), "zeros"
    tok = lm.tokenizer
    if isinstance(baseline, str) and baseline in ("pad", "unk", "eos", "bos"):
        token_id = getattr(tok, f"{baseline}_token_id", None)
        if token_id is None:
            raise InputError(f"this tokenizer has no {baseline} token; use baseline='zeros' or a token id")
    elif isinstance(baseline, int) and not isinstance(baseline, bool):
        token_id = baseline
    else:
        raise InputError(f"baseline must be 'zeros', 'pad', 'unk', 'eos', 'bos' or a token id, got {baseline!r}")
    row = _embed(lm, torch.tensor([int(token_id)]))[0]
    return row.expand_as(embeds).clone(), f"token:{int(token_id)}"


def _resolve_foils(lm: LM, foil: Any, n: int) -> list[int] | None:
    if foil is None:
        return None
    items = list(foil) if isinstance(foil, list | tuple) else [foil] * n
    if len(items) != n:
        raise InputError(f"give one foil for all targets or one per target ({n}), got {len(items)}")
    return [_single_token_id(lm, f, "foil") for f in items]


def _single_token_id(lm: LM, token: str | int, what: str) -> int:
    """Id of a token given as id or as text that must be exactly one token."""
    if isinstance(token, int) and not isinstance(token, bool):
        return token
    ids = lm.tokenizer(str(token), add_special_tokens=False).input_ids
    if len(ids) != 1:
        raise InputError(
            f"{what} {token!r} is {len(ids)} tokens {lm.token_strings(ids)}; give a single token "
            "(often with a leading space, e.g. ' Paris') or its id"
        )
    return int(ids[0])


def _problem(lm: LM, out: OutputSeq, target_kind: str, foil: Any, scope: str, baseline: Any) -> _Problem:
    if lm.kind == "encoder":
        raise InputError(
            "primary attributions explain generated tokens; this is an encoder model that does not generate"
        )
    if target_kind not in TARGETS:
        raise InputError(f"target_kind must be one of {TARGETS}, got {target_kind!r}")
    if scope not in ("prefix", "prompt"):
        raise InputError(f"scope must be 'prefix' (all earlier tokens) or 'prompt', got {scope!r}")
    if out.n_generated < 1:
        raise InputError("this run has no generated tokens to attribute; generate at least one")
    ids = torch.as_tensor(out.token_ids, dtype=torch.long)
    positions = out.generated_positions
    targets = [int(ids[p]) for p in positions]
    if lm.kind == "seq2seq":
        embeds = torch.cat([_embed(lm, ids[: out.n_input_tokens]), _embed_decoder(lm, ids[out.n_input_tokens :])])
    else:
        embeds = _embed(lm, ids)
    base, base_name = _baseline(lm, ids, embeds, baseline)
    scope_mask = torch.ones(len(ids), dtype=torch.bool)
    if scope == "prompt":
        scope_mask[out.n_input_tokens :] = False
    return _Problem(
        lm=lm,
        ids=ids,
        n_input=out.n_input_tokens,
        target_positions=positions,
        target_ids=targets,
        foil_ids=_resolve_foils(lm, foil, len(positions)),
        target_kind=target_kind,
        scope_mask=scope_mask,
        embeds=embeds,
        baseline=base,
        baseline_name=base_name,
    )


def _embed_decoder(lm: LM, ids: torch.Tensor) -> torch.Tensor:
    dec = lm.model.get_decoder().get_input_embeddings() if hasattr(lm.model, "get_decoder") else None
    emb = dec or lm.adapter.input_embeddings
    with torch.no_grad():
        return emb(ids.to(lm.device)[None])[0].float()


# ----- forward passes that yield each target's value --------------------------------------------


def _target_value(logits: torch.Tensor, prob: _Problem, j: int) -> torch.Tensor:
    """f_j for a batch of logits (m, V) at target j's prediction position."""
    t = prob.target_ids[j]
    if prob.foil_ids is not None:
        return logits[:, t] - logits[:, prob.foil_ids[j]]
    if prob.target_kind == "logit":
        return logits[:, t]
    logp = torch.log_softmax(logits.float(), dim=-1)[:, t]
    return logp if prob.target_kind == "logprob" else logp.exp()


def _chunk_bounds(prob: _Problem, group: int) -> list[tuple[int, int]]:
    """Sequence chunks for the forward: up to the first prediction, then `group` positions at a time.

    Target j reads its logits at position p_j - 1, so its backward pass only walks the chunks up to
    the one holding that position. One chunk makes the biggest, most efficient matrix products; with
    many targets, chunks save more backward work than they cost.
    """
    first, last = prob.target_positions[0], prob.target_positions[-1]
    if group <= 0 or last - first <= group:
        return [(0, last)]
    bounds = [(0, first)]
    while bounds[-1][1] < last:
        bounds.append((bounds[-1][1], min(last, bounds[-1][1] + group)))
    return bounds


def _causal_values(
    prob: _Problem, pieces: list[torch.Tensor], bounds: list[tuple[int, int]]
) -> tuple[list[torch.Tensor], list[int]]:
    """Run input pieces over the KV cache, computing only the logits targets need; values and source chunk."""
    from transformers import DynamicCache

    model = prob.lm.model
    cache = DynamicCache(config=model.config) if len(bounds) > 1 else None
    supports_keep = "logits_to_keep" in prob.lm._forward_kwargs()
    values: list[torch.Tensor] = [torch.empty(0)] * prob.n_targets
    chunk_of = [0] * prob.n_targets
    for c, ((s, e), piece) in enumerate(zip(bounds, pieces, strict=True)):
        wanted = [(j, p - 1 - s) for j, p in enumerate(prob.target_positions) if s <= p - 1 < e]
        rows = torch.tensor([k for _, k in wanted], dtype=torch.long)
        kw = cache_kwargs(model, cache) if cache is not None else {}
        if supports_keep:
            logits = model(inputs_embeds=piece, logits_to_keep=rows, **kw).logits
        else:
            logits = model(inputs_embeds=piece, **kw).logits[:, rows]
        for i, (j, _) in enumerate(wanted):
            values[j] = _target_value(logits[:, i], prob, j)
            chunk_of[j] = c
    return values, chunk_of


def _seq2seq_values(prob: _Problem, x: torch.Tensor) -> list[torch.Tensor]:
    """One encoder-decoder forward over interpolated encoder and decoder inputs; each target's values."""
    n = prob.n_input
    out = prob.lm.model(inputs_embeds=x[:, :n], decoder_inputs_embeds=x[:, n:])
    return [_target_value(out.logits[:, p - n - 1], prob, j) for j, p in enumerate(prob.target_positions)]


def _values_no_grad(prob: _Problem, x: torch.Tensor) -> torch.Tensor:
    """(m, targets) target values for a batch of full inputs, without gradients."""
    with torch.no_grad():
        if prob.lm.kind == "seq2seq":
            vals = _seq2seq_values(prob, x)
        else:
            bounds = _chunk_bounds(prob, prob.chunk_tokens)
            vals, _ = _causal_values(prob, [x[:, a:b] for a, b in bounds], bounds)
    return torch.stack(vals, dim=1)


# ----- gradient methods ---------------------------------------------------------------------------


def _path_points(n_steps: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Points on [0, 1] and their weights for the IG path integral (Gauss-Legendre as in captum's default)."""
    if n_steps < 1:
        raise InputError(f"n_steps must be >= 1, got {n_steps}")
    if method == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(n_steps)
        return 0.5 * (x + 1), 0.5 * w
    if method == "riemann_trapezoid":
        if n_steps < 2:
            raise InputError("riemann_trapezoid needs n_steps >= 2")
        a = np.linspace(0, 1, n_steps)
        w = np.full(n_steps, 1.0 / (n_steps - 1))
        w[[0, -1]] /= 2
        return a, w
    if method in ("riemann_middle", "riemann_left", "riemann_right"):
        offset = {"riemann_middle": 0.5, "riemann_left": 0.0, "riemann_right": 1.0}[method]
        return (np.arange(n_steps) + offset) / n_steps, np.full(n_steps, 1.0 / n_steps)
    raise InputError(f"unknown integration method {method!r}; use 'gausslegendre', 'riemann_trapezoid' or riemann_*")


def _auto_batch(prob: _Problem, budget_mb: float) -> int:
    """Interpolation steps per chunk that keep the retained graph under the memory budget (a rough estimate)."""
    lm = prob.lm
    stack = lm.adapter.main
    heads = getattr(lm.model.config, "num_attention_heads", 8) or 8
    per_token = stack.n_layers * (16 * lm.adapter.hidden_size + 4 * stack.n_neurons + 3 * heads * prob.seq_len)
    vocab = getattr(lm.model.config, "vocab_size", 32000) or 32000
    per_step = 4 * (prob.seq_len * per_token + 3 * prob.n_targets * vocab)
    return max(1, int(budget_mb * 2**20 // per_step))


def _weighted_gradients(prob: _Problem, alphas: np.ndarray, weights: np.ndarray, batch: int, progress) -> torch.Tensor:
    """Sum over path points of weight * d f_j / d x at baseline + alpha (input - baseline): (targets, L, H)."""
    lm = prob.lm
    diff = (prob.embeds - prob.baseline) * prob.scope_mask[:, None].to(prob.embeds)
    total = torch.zeros(prob.n_targets, *prob.embeds.shape)
    for s in range(0, len(alphas), batch):
        checkpoint()
        a = torch.tensor(alphas[s : s + batch], dtype=torch.float32, device=lm.device)
        w = torch.tensor(weights[s : s + batch], dtype=torch.float32, device=lm.device)
        x = (prob.baseline + a[:, None, None] * diff).to(lm.device)
        scope = prob.scope_mask.to(lm.device)
        # Out-of-scope positions keep their real embedding (and need no gradient).
        x = torch.where(scope[None, :, None], x, prob.embeds.to(lm.device)).detach().requires_grad_(True)
        with torch.enable_grad():
            if lm.kind == "seq2seq":
                values = _seq2seq_values(prob, x)
                for j, v in enumerate(values):
                    checkpoint()
                    (g,) = torch.autograd.grad(v @ w, x, retain_graph=j < len(values) - 1)
                    total[j] += g.sum(0).float().cpu()
            else:
                total += _causal_gradients(prob, x, w)
        progress.update(len(a))
    return total


def _causal_gradients(prob: _Problem, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per-target weighted gradients from one shared forward; each backward walks only the chunks it needs."""
    bounds = _chunk_bounds(prob, prob.chunk_tokens)
    pieces = [x[:, a:b].detach().requires_grad_(True) for a, b in bounds]
    values, chunk_of = _causal_values(prob, pieces, bounds)
    out = torch.zeros(prob.n_targets, *x.shape[1:])
    for j, v in enumerate(values):
        checkpoint()
        used = pieces[: chunk_of[j] + 1]
        grads = torch.autograd.grad(v @ w, used, retain_graph=j < len(values) - 1)
        for (a, b), g in zip(bounds, grads, strict=False):
            out[j, a:b] = g.sum(0).float().cpu()
    return out


# ----- public entry points ----------------------------------------------------------------------


def attribute_output(
    lm: LM,
    out: OutputSeq,
    methods: Sequence[str] | str = ("ig",),
    *,
    target_kind: str = "prob",
    foil: Any = None,
    scope: str = "prefix",
    baseline: str | int = "zeros",
    n_steps: int = 50,
    integration: str = "gausslegendre",
    internal_batch_size: int | None = None,
    memory_budget_mb: float = 2048,
    keep_raw: bool = True,
) -> dict[str, PrimaryAttribution]:
    """Attribute every generated token of `out` with each method; results are stored in `out.attributions`."""
    methods = [canonical_method(m) for m in ([methods] if isinstance(methods, str) else methods)]
    prob = _problem(lm, out, target_kind, foil, scope, baseline)
    if internal_batch_size is not None and (not isinstance(internal_batch_size, int) or internal_batch_size < 1):
        raise InputError(f"internal_batch_size must be a positive integer, got {internal_batch_size!r}")
    batch = internal_batch_size or _auto_batch(prob, memory_budget_mb)
    results = {}
    for method in methods:
        if method == "ablation":
            attr = _ablation(prob, batch)
        else:
            attr = _gradient_method(prob, method, n_steps, integration, batch)
        attr.params.update(internal_batch_size=batch)
        if not keep_raw:
            attr.raw = None
        key = method if foil is None else f"{method}:contrast"
        out.attributions[key] = attr
        results[key] = attr
    return results


def _progress(prob: _Problem, total: int, method: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"ecco_sdk: {method} attribution", disable=not prob.lm.verbose, leave=False)


def _gradient_method(prob: _Problem, method: str, n_steps: int, integration: str, batch: int) -> PrimaryAttribution:
    if method == "ig":
        alphas, weights = _path_points(n_steps, integration)
    else:
        alphas, weights = np.ones(1), np.ones(1)
    with _progress(prob, len(alphas), method) as bar:
        grads = _weighted_gradients(prob, alphas, weights, batch, bar)
    mask = prob.influence_mask()
    if method == "ig":
        raw = grads * (prob.embeds - prob.baseline).cpu()[None]
    elif method == "grad_x_input":
        raw = grads * prob.embeds.cpu()[None]
    else:
        raw = grads
    raw = raw * mask[:, :, None]
    delta = None
    if method == "ig":
        ends = _values_no_grad(prob, torch.stack([prob.baseline, prob.embeds]).to(prob.lm.device))
        delta = (raw.sum(dim=(1, 2)) - (ends[1] - ends[0]).cpu()).numpy()
    return _result(prob, method, raw, mask, n_steps if method == "ig" else None, delta, {"integration": integration})


def _ablation(prob: _Problem, batch: int) -> PrimaryAttribution:
    """Feature ablation: the drop in each target's value when one position is replaced by the baseline."""
    positions = [i for i in range(prob.seq_len) if bool(prob.scope_mask[i])]
    reference = _values_no_grad(prob, prob.embeds[None].to(prob.lm.device))[0]
    effects = torch.full((prob.n_targets, prob.seq_len), float("nan"))
    with _progress(prob, len(positions), "ablation") as bar:
        for s in range(0, len(positions), batch):
            checkpoint()
            chunk = positions[s : s + batch]
            x = prob.embeds[None].repeat(len(chunk), 1, 1)
            for row, pos in enumerate(chunk):
                x[row, pos] = prob.baseline[pos]
            vals = _values_no_grad(prob, x.to(prob.lm.device)).cpu()
            effects[:, chunk] = (reference.cpu()[:, None] - vals.T).float()
            bar.update(len(chunk))
    mask = prob.influence_mask()
    effects = torch.where(mask, effects, torch.zeros_like(effects))
    l2 = _normalise(effects.abs(), mask)
    return PrimaryAttribution(
        method="ablation",
        target_kind=_target_label(prob),
        scope="prompt" if not bool(prob.scope_mask.all()) else "prefix",
        baseline=prob.baseline_name,
        target_positions=np.asarray(prob.target_positions),
        target_ids=np.asarray(prob.target_ids),
        scores_l2=l2,
        scores_sum=_masked(effects, mask),
        foil_ids=np.asarray(prob.foil_ids) if prob.foil_ids else None,
    )


def _target_label(prob: _Problem) -> str:
    return "contrast" if prob.foil_ids is not None else prob.target_kind


def _normalise(values: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """Scale each target's non-negative scores to sum to 1 over the positions that can influence it."""
    v = torch.where(mask, values, torch.zeros_like(values))
    total = v.sum(dim=1, keepdim=True).clamp_min(1e-30)
    return _masked(v / total, mask)


def _masked(values: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    return torch.where(mask, values, torch.full_like(values, float("nan"))).numpy().astype(np.float32)


def _result(prob, method, raw, mask, n_steps, delta, params) -> PrimaryAttribution:
    return PrimaryAttribution(
        method=method,
        target_kind=_target_label(prob),
        scope="prompt" if not bool(prob.scope_mask.all()) else "prefix",
        baseline=prob.baseline_name,
        target_positions=np.asarray(prob.target_positions),
        target_ids=np.asarray(prob.target_ids),
        scores_l2=_normalise(raw.norm(dim=-1), mask),
        scores_sum=_masked(raw.sum(dim=-1), mask),
        raw=raw.numpy().astype(np.float32),
        foil_ids=np.asarray(prob.foil_ids) if prob.foil_ids else None,
        delta=np.asarray(delta, dtype=np.float32) if delta is not None else None,
        n_steps=n_steps,
        params=params,
    )


def attribute_text(
    lm: LM, text: str, target: str | Sequence[int], methods: Sequence[str] | str = ("ig",), **kw: Any
) -> OutputSeq:
    """Attribute a given continuation of `text` (teacher-forced, not generated) to the input tokens."""
    from .output import OutputSeq

    if lm.kind == "encoder":
        raise InputError("attribution needs a causal or encoder-decoder model")
    prompt_ids = lm.encode(text)[0].tolist()
    if isinstance(target, str) and target:
        target_ids = lm.tokenizer(target, add_special_tokens=False).input_ids
    elif isinstance(target, list | tuple) and target and all(isinstance(i, int) for i in target):
        target_ids = [int(i) for i in target]
    else:
        raise InputError("target must be the continuation to attribute: text such as ' Paris' or a list of token ids")
    if not target_ids:
        raise InputError(f"target {target!r} produced no tokens")
    if lm.kind == "seq2seq":
        start = lm.model.config.decoder_start_token_id
        start = lm.model.config.pad_token_id if start is None else start
        ids = [*prompt_ids, int(start), *target_ids]
    else:
        ids = prompt_ids + target_ids
    lm._check_length(len(ids))
    out = OutputSeq(
        model_name=lm.name,
        kind=lm.kind,
        token_ids=np.asarray(ids, dtype=np.int64),
        tokens=lm.token_strings(ids),
        n_input_tokens=len(prompt_ids),
        n_generated=len(target_ids),
        generation={"teacher_forced": True},
        meta={"adapter": lm.adapter.describe(), "source": lm.loaded.source},
        lm=lm,
    )
    attribute_output(lm, out, methods, **kw)
    return out


def primary_attributions_view(
    out: OutputSeq,
    attr_method: str = "ig",
    style: str = "minimal",
    ignore_tokens: Sequence[int] | None = None,
    aggregation: str = "l2",
    target: int | None = None,
    **kw: Any,
):
    """The saliency visual of a run, computing the attribution first if generation did not."""
    from .render import saliency_view

    method = canonical_method(attr_method)
    if style not in ("minimal", "detailed"):
        raise InputError(f"style must be 'minimal' or 'detailed', got {style!r}")
    key = method
    if key not in out.attributions:
        if out.lm is None:
            raise InputError(
                f"no {method!r} attribution in this run; generate with attribution=[{method!r}] "
                "or attach the model (out.attach(lm)) so it can be computed"
            )
        attribute_output(out.lm, out, [method], **kw)
    attr = out.attributions[key]
    scores = attr.scores(aggregation).copy()
    for i in ignore_tokens or []:
        if not 0 <= int(i) < scores.shape[1]:
            raise InputError(f"ignore_tokens position {i} is outside the sequence (0..{scores.shape[1] - 1})")
        scores[:, int(i)] = np.nan
    return saliency_view(
        out.tokens,
        out.n_input_tokens,
        scores,
        list(attr.target_positions),
        style=style,
        method=method,
        target=target,
    )
