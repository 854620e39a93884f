"""Primary attributions (input saliency): how much each input token contributed to each generated token.

Methods: integrated gradients, gradient (saliency), input x gradient, and feature ablation. All
generated tokens are attributed together. A causal model's output at position p depends only on
inputs up to p, so one forward pass over an interpolated sequence serves every target; only the
logits the targets need are computed, and the targets whose predictions fall in the same KV-cache
chunk share ONE backward pass with the targets stacked in a batch dimension (`is_grads_batched`),
walking only the chunks up to theirs; interpolation steps are batched to a memory budget. Weights
never receive gradients. (12 targets, 10 steps on SmolLM2: 21-24 s of CPU batched against 45 s with
one backward per target.) Integrated gradients also offers n_steps="auto" (adaptive Gauss-Kronrod
panels with an error estimate, see quadrature.py) and an opt-in dtype="bfloat16".

Targets: the target token's probability (the original ecco's), its log-probability, its logit, or a
contrast with a foil token (target logit minus foil logit). Scope: "prefix" attributes each target to
every earlier token, prompt and generated (the original ecco's view); "prompt" interpolates only the
prompt and keeps generated tokens fixed (captum's LLMGradientAttribution view).
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .adapters import cache_kwargs
from .cancel import checkpoint
from .checks import check_int, check_positive, check_text
from .errors import InputError
from .quadrature import POINTS_PER_PANEL, Panel, to_split
from .tokens import strip_continuation, word_groups

if TYPE_CHECKING:
    from .lm import LM
    from .output import OutputSeq

TARGETS = ("prob", "logprob", "logit")
IG_DTYPES = ("float32", "bfloat16")
SCOPES = ("prefix", "prompt")
ALL_TARGETS = (*TARGETS, "contrast")  # "contrast" = target logit minus a foil's logit (pass foil=...)


@dataclass(frozen=True)
class Method:
    """One attribution method found by name: the function that computes it and what it supports.

    Attributes:
        name: The canonical name, the key its results are stored under in `OutputSeq.attributions`.
        fn: The function: `fn(prob, batch, **options)` returns a PrimaryAttribution.
        summary: One line on what the method measures.
        targets: The target kinds it supports, from ALL_TARGETS.
        scopes: The scopes it supports, from SCOPES.
        aliases: Other accepted names (the original ecco's, captum's and inseq's spellings).
        options: Each keyword option the method accepts, mapped to its default.
        unavailable: Given a model, returns why the method cannot run on it or None when it can (None: always runs).
    """

    name: str
    fn: Callable[..., PrimaryAttribution]
    summary: str
    targets: tuple[str, ...] = ALL_TARGETS
    scopes: tuple[str, ...] = SCOPES
    aliases: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    unavailable: Callable[[LM], str | None] | None = None  # why it cannot run on a model, or None


_REGISTRY: dict[str, Method] = {}
_ALIASES: dict[str, str] = {}


def _alias_key(name: str) -> str:
    return str(name).lower().replace("-", "_").replace(" ", "_")


def register_method(
    name: str,
    summary: str,
    *,
    targets: Sequence[str] = ALL_TARGETS,
    scopes: Sequence[str] = SCOPES,
    aliases: Sequence[str] = (),
    options: dict[str, Any] | None = None,
    unavailable: Callable[[LM], str | None] | None = None,
) -> Callable[[Callable[..., PrimaryAttribution]], Callable[..., PrimaryAttribution]]:
    """Decorator adding a method to the registry: adding a method is one decorated function and one test.

    Args:
        name: the canonical name (the key results are stored under).
        summary: one line on what the method measures.
        targets: the target kinds it supports, from ALL_TARGETS.
        scopes: the scopes it supports, from SCOPES.
        aliases: other accepted names (captum's and inseq's spellings).
        options: keyword options the method accepts, with their defaults.
        unavailable: given a model, the reason the method cannot run on it (None when it can).

    Returns:
        The decorator, which returns the function unchanged.
    """
    bad = [t for t in targets if t not in ALL_TARGETS] + [s for s in scopes if s not in SCOPES]
    if bad:
        raise InputError(f"method {name!r} declares unknown targets/scopes {bad}")

    def add(fn: Callable[..., PrimaryAttribution]) -> Callable[..., PrimaryAttribution]:
        spec = Method(
            name, fn, summary, tuple(targets), tuple(scopes), tuple(aliases), dict(options or {}), unavailable
        )
        for key in (name, *aliases):
            owner = _ALIASES.get(_alias_key(key))
            if owner not in (None, name):
                raise InputError(f"method name {key!r} is already taken by {owner!r}")
            _ALIASES[_alias_key(key)] = name
        _REGISTRY[name] = spec
        return fn

    return add


def canonical_method(name: str) -> str:
    """Map any accepted method name (the original ecco's, captum's and inseq's included) to its registry name.

    Args:
        name: A method name or alias, in any case, with '-' or ' ' for '_' (e.g. "IntegratedGradients").

    Returns:
        The registry name (e.g. "ig"); an unknown name raises InputError listing the registered ones.
    """
    key = _alias_key(name)
    if key not in _ALIASES:
        raise InputError(f"unknown attribution method {name!r}; use one of {sorted(_REGISTRY)} (or an alias)")
    return _ALIASES[key]


def method_info(name: str) -> Method:
    """The registry entry of a method (its function, targets, scopes, aliases and options).

    Args:
        name: A method name or alias (see `canonical_method`).

    Returns:
        The method's Method entry.
    """
    return _REGISTRY[canonical_method(name)]


def usable_methods(lm: LM) -> tuple[str, ...]:
    """The registered methods that can run on this model (e.g. for a method menu): refused ones left out.

    Args:
        lm: The loaded model (e.g. attention methods need one loaded with `attention=True`).

    Returns:
        The canonical names of the usable methods, in registration order.
    """
    return tuple(n for n, s in _REGISTRY.items() if s.unavailable is None or s.unavailable(lm) is None)


def _check_supported(spec: Method, target: str, scope: str) -> None:
    """Refuse a target kind or scope the method does not support, saying which ones it does."""
    if target not in spec.targets:
        raise InputError(
            f"method {spec.name!r} does not support target {target!r}; it supports {list(spec.targets)}"
            + (" (a contrast is set by passing foil=...)" if target == "contrast" else "")
        )
    if scope not in spec.scopes:
        raise InputError(f"method {spec.name!r} does not support scope {scope!r}; it supports {list(spec.scopes)}")


def _method_options(specs: Sequence[Method], given: dict[str, Any]) -> list[dict[str, Any]]:
    """Each method's keyword options: its defaults overridden by what the caller gave; unknown keywords refused."""
    known = {k for s in specs for k in s.options}
    unknown = sorted(set(given) - known - _SHARED_OPTIONS)
    if unknown:
        accepted = {s.name: sorted(s.options) for s in specs}
        raise InputError(f"unknown option(s) {unknown} for methods {accepted}")
    return [{k: given.get(k, default) for k, default in s.options.items()} for s in specs]


_SHARED_OPTIONS = {"n_steps", "integration"}


@dataclass(eq=False)
class PrimaryAttribution:
    """Attribution of each target token to the tokens before it, in plain arrays.

    `scores_l2[j, i]` is the original ecco's score: the L2 norm over the embedding dimension of the
    attribution of position i to target j, normalised to sum to 1 over the attributed positions;
    `scores_sum[j, i]` is the signed sum over the embedding dimension (for integrated gradients these
    add up to f(input) - f(baseline), the completeness property). Positions that cannot influence a
    target (at or after it, or outside the scope) hold NaN.

    Attributes:
        method: The method's registry name, e.g. "ig".
        target_kind: What each target measured: "prob", "logprob", "logit", or "contrast" (with a foil).
        scope: "prefix" (every earlier token was attributed) or "prompt" (the prompt tokens only).
        baseline: The reference input: "zeros" or "token:<id>" (that token's embedding at every position).
        target_positions: (targets,) the sequence position of each attributed (generated) token.
        target_ids: (targets,) the token id at each of those positions.
        scores_l2: (targets, positions) the normalised L2 norms described above.
        scores_sum: (targets, positions) the signed sums described above.
        raw: (targets, positions, width) the attribution per embedding dimension (per hidden-state dimension
            for the layer methods) from the gradient methods, 'gradient_shap' and the layer methods when
            `keep_raw` was True; None otherwise (the other methods score whole positions).
        foil_ids: (targets,) the foil token of each target for a contrast, else None.
        delta: (targets,) for 'ig' and 'layer_ig': the completeness error, the sum of the attributions minus
            f(input) - f(baseline); None for other methods.
        n_steps: The integration steps used by 'ig' and 'layer_ig' (with n_steps="auto": the steps taken),
            else None.
        params: The options the method ran with (e.g. seed, n_samples, integration, internal_batch_size;
            tolerance and error_estimate for n_steps="auto").
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
        """(targets, positions) scores: 'l2' (normalised norm, ecco's) or 'sum' (signed).

        Args:
            aggregation: 'l2' for `scores_l2` or 'sum' for `scores_sum`.

        Returns:
            The chosen array itself (not a copy), NaN where a position cannot influence the target.
        """
        return _chosen_scores(self, aggregation)

    @property
    def error_estimate(self) -> float | None:
        """For n_steps="auto" integrated gradients: the estimated largest L1 error of the normalised scores.

        Returns:
            The estimate (at most 2.0, over the targets), or None when the method did not make one.
        """
        value = self.params.get("error_estimate")
        return float(value) if value is not None else None

    def word_scores(self, tokens: Sequence[str], aggregation: str = "l2") -> tuple[list[str], np.ndarray]:
        """Scores summed over the sub-word tokens of each word: (words, (targets, words)).

        Args:
            tokens: The run's tokens, one per score column (e.g. `OutputSeq.tokens`).
            aggregation: 'l2' or 'sum', as in `scores`.

        Returns:
            The words (their pieces joined, word-piece markers dropped) and a (targets, words) array of summed
            scores; a word none of whose tokens can influence a target holds NaN.
        """
        groups = word_groups(tokens)
        scores = self.scores(aggregation)
        words = ["".join(strip_continuation(tokens[i]) if k else tokens[i] for k, i in enumerate(g)) for g in groups]
        with np.errstate(invalid="ignore"):
            out = np.stack([_nansum_or_nan(scores[:, g]) for g in groups], axis=1)
        return words, out

    def to_parts(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON metadata, arrays) for saving inside an .ecco file.

        Returns:
            The JSON-ready fields (method, target_kind, scope, baseline, n_steps, params) and the arrays that
            are set (None ones left out).
        """
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
        """Inverse of `to_parts`.

        Args:
            meta: The JSON fields `to_parts` wrote.
            arrays: The arrays `to_parts` wrote.

        Returns:
            The PrimaryAttribution.
        """
        return cls(**meta, **arrays)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (NaN becomes None; the raw per-dimension array is left out).

        Returns:
            The fields as plain Python values (lists of floats, ints and None).
        """
        meta, arrays = self.to_parts()
        arrays.pop("raw", None)
        return {**meta, **{k: _nan_to_none(v) for k, v in arrays.items()}}

    def __repr__(self) -> str:
        return (
            f"PrimaryAttribution({self.method}, target={self.target_kind}, scope={self.scope}, "
            f"{len(self.target_positions)} targets x {self.scores_l2.shape[1]} positions)"
        )


def _chosen_scores(result: Any, aggregation: str) -> np.ndarray:
    """A result's `scores_l2` or `scores_sum` by name (primary and layer attributions share the two views)."""
    if aggregation not in ("l2", "sum"):
        raise InputError(f"aggregation must be 'l2' or 'sum', got {aggregation!r}")
    return result.scores_l2 if aggregation == "l2" else result.scores_sum


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
    dtype: str = "float32"  # or "bfloat16": the model's matrix products under bf16 autocast

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
    return [lm.token_id(f, "foil") for f in items]


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


def _head_module(prob: _Problem) -> torch.nn.Module | None:
    """The output head of the model that runs (for dtype='bfloat16', the bf16 copy's own head)."""
    adapter = prob.lm.adapter
    if adapter.head is None or prob.dtype == "float32" or not adapter.head_path:
        return adapter.head
    return _model(prob).get_submodule(adapter.head_path)


@contextlib.contextmanager
def _head_inputs(prob: _Problem):
    """Record what the model feeds its output head during a forward: the kept rows' final hidden states."""
    seen: list[torch.Tensor] = []
    head = _head_module(prob)
    handle = head.register_forward_hook(lambda _m, args, _o: seen.append(args[0])) if head is not None else None
    try:
        yield seen
    finally:
        if handle is not None:
            handle.remove()


def _causal_rows(
    prob: _Problem, pieces: list[torch.Tensor], bounds: list[tuple[int, int]]
) -> tuple[list[tuple[torch.Tensor, torch.Tensor | None]], list[int]]:
    """Run input pieces over the KV cache, computing only the logits targets need.

    Per target: its logits (steps, V) and, when the head's input could be read, that input (steps, H);
    and the chunk that holds its prediction.
    """
    from transformers import DynamicCache  # heavy: transformers adds ~1.5 s to `import ecco_sdk`

    model = _model(prob)
    cache = DynamicCache(config=model.config) if len(bounds) > 1 else None
    supports_keep = "logits_to_keep" in prob.lm.forward_kwargs()
    rows_of: list[tuple[torch.Tensor, torch.Tensor | None]] = [(torch.empty(0), None)] * prob.n_targets
    chunk_of = [0] * prob.n_targets
    for c, ((s, e), piece) in enumerate(zip(bounds, pieces, strict=True)):
        wanted = [(j, p - 1 - s) for j, p in enumerate(prob.target_positions) if s <= p - 1 < e]
        rows = torch.tensor([k for _, k in wanted], dtype=torch.long)
        kw = cache_kwargs(model, cache) if cache is not None else {}
        with _head_inputs(prob) as seen:
            if supports_keep:
                logits = model(inputs_embeds=piece, logits_to_keep=rows, **kw).logits
            else:
                logits = model(inputs_embeds=piece, **kw).logits[:, rows]
        head_in = seen[0] if len(seen) == 1 else None
        if head_in is not None and head_in.shape[1] != len(rows):
            head_in = head_in[:, rows] if head_in.shape[1] == e - s else None
        for i, (j, _) in enumerate(wanted):
            rows_of[j] = (logits[:, i], head_in[:, i] if head_in is not None else None)
            chunk_of[j] = c
    return rows_of, chunk_of


def _causal_values(
    prob: _Problem, pieces: list[torch.Tensor], bounds: list[tuple[int, int]]
) -> tuple[list[torch.Tensor], list[int]]:
    """Each target's values (steps,) over the KV cache, and the chunk that holds its prediction."""
    rows_of, chunk_of = _causal_rows(prob, pieces, bounds)
    return [_target_value(logits, prob, j) for j, (logits, _) in enumerate(rows_of)], chunk_of


def _head_surrogate(prob: _Problem, j: int, logits: torch.Tensor, head_in: torch.Tensor | None) -> torch.Tensor:
    """A stand-in for f_j with the same input gradient, whose backward skips the vocabulary-sized logits.

    The batched backward pushes every target's cotangent through every node, so backpropagating f_j
    through the logits of all kept rows costs targets x rows head products, mostly on zeros. Instead
    d f_j / d(head input) is computed here for target j's row alone, and the backward starts from
    <head input, that gradient>. The head is re-run on the row and must reproduce the model's logits
    (a model that rescales logits after its head falls back to the plain value).
    """
    head = _head_module(prob)
    if head_in is None or head is None:
        return _target_value(logits, prob, j)
    with torch.enable_grad():
        h = head_in.detach().requires_grad_(True)
        z = prob.lm.adapter.cap_logits(head(h))
        ref = logits.detach()
        if z.shape != ref.shape or not torch.allclose(
            z.float(), ref.float(), rtol=1e-3, atol=1e-3 * float(ref.abs().max())
        ):
            return _target_value(logits, prob, j)
        value = _target_value(z, prob, j)
        (g,) = torch.autograd.grad(value.sum(), h)
    # Equal to f_j in value (the batched backward only reads its gradient, which is g's through head_in).
    return (head_in * g).sum(-1) + (value - (head_in * g).sum(-1)).detach()


def _seq2seq_values(prob: _Problem, x: torch.Tensor) -> list[torch.Tensor]:
    """One encoder-decoder forward over interpolated encoder and decoder inputs; each target's values."""
    n = prob.n_input
    out = _model(prob)(inputs_embeds=x[:, :n], decoder_inputs_embeds=x[:, n:])
    return [_target_value(out.logits[:, p - n - 1], prob, j) for j, p in enumerate(prob.target_positions)]


def _values_no_grad(prob: _Problem, x: torch.Tensor) -> torch.Tensor:
    """(m, targets) target values for a batch of full inputs, without gradients."""
    with torch.no_grad(), _precision(prob):
        if prob.lm.kind == "seq2seq":
            vals = _seq2seq_values(prob, x)
        else:
            bounds = _chunk_bounds(prob, prob.chunk_tokens)
            vals, _ = _causal_values(prob, [x[:, a:b] for a, b in bounds], bounds)
    return torch.stack(vals, dim=1)


# ----- gradient methods ---------------------------------------------------------------------------


def _path_points(n_steps: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Points on [0, 1] and their weights for the IG path integral (Gauss-Legendre as in captum's default)."""
    n_steps = check_int(n_steps, "n_steps", minimum=1, what="a whole number >= 1", hint=" (or 'auto' for 'ig')")
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
    """Interpolation steps per chunk that keep the retained graph under the memory budget (a rough estimate).

    The batched backward (all targets at once) also holds, per step, a gradient per target for each
    activation it passes through: the second term.
    """
    lm = prob.lm
    stack = lm.adapter.main
    hidden = lm.adapter.hidden_size
    heads = getattr(lm.model.config, "num_attention_heads", 8) or 8
    per_token = stack.n_layers * (16 * hidden + 4 * stack.n_neurons + 3 * heads * prob.seq_len)
    vocab = lm.adapter.vocab_size
    backward = prob.n_targets * prob.seq_len * (8 * hidden + 4 * stack.n_neurons + 2 * heads * prob.seq_len)
    per_step = 4 * (prob.seq_len * per_token + 3 * prob.n_targets * vocab + backward)
    return max(1, int(budget_mb * 2**20 // per_step))


def _precision(prob: _Problem):
    """bfloat16 autocast for the model's matrix products when asked (about 4x fp32 matmul speed on this CPU)."""
    if prob.dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(prob.lm.device).type, dtype=torch.bfloat16)


_BF16_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _model(prob: _Problem) -> torch.nn.Module:
    """The model to run: the LM's own, or for dtype='bfloat16' a copy whose matrix weights are stored in bf16.

    Autocast alone re-casts every weight on every forward call (weights need no gradient, so its cast
    cache does not keep them); the copy casts once. Norms and biases stay fp32 (autocast runs them in fp32).
    """
    model = prob.lm.model
    if prob.dtype == "float32":
        return model
    copy_ = _BF16_COPIES.get(model)
    if copy_ is None:
        copy_ = copy.deepcopy(model)
        for module in copy_.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.data = module.weight.data.to(torch.bfloat16)
        _BF16_COPIES[model] = copy_
    return copy_


def _weighted_gradients(prob: _Problem, alphas: np.ndarray, weights: np.ndarray, batch: int, progress) -> torch.Tensor:
    """Sum over path points of weight * d f_j / d x at baseline + alpha (input - baseline).

    `weights` is (n,) for one rule, giving (targets, L, H), or (rules, n) for several rules over the same
    points (adaptive quadrature), giving (rules, targets, L, H).
    """
    lm = prob.lm
    w_all = np.atleast_2d(weights)
    diff = (prob.embeds - prob.baseline) * prob.scope_mask[:, None].to(prob.embeds)
    total = torch.zeros(w_all.shape[0], prob.n_targets, *prob.embeds.shape)
    scope = prob.scope_mask.to(lm.device)
    for s in range(0, len(alphas), batch):
        checkpoint()
        a = torch.tensor(alphas[s : s + batch], dtype=torch.float32, device=lm.device)
        w = torch.tensor(w_all[:, s : s + batch], dtype=torch.float32)
        x = (prob.baseline + a[:, None, None] * diff).to(lm.device)
        # Out-of-scope positions keep their real embedding (and need no gradient).
        x = torch.where(scope[None, :, None], x, prob.embeds.to(lm.device)).detach().requires_grad_(True)
        with torch.enable_grad(), _precision(prob):
            if lm.kind == "seq2seq":
                (g,) = _target_vjp(_seq2seq_values(prob, x), [x], retain=False)
                total += torch.einsum("rm,kmlh->rklh", w, g.float().cpu())
            else:
                _causal_gradients(prob, x, w, total)
        progress.update(len(a))
    return total if np.ndim(weights) == 2 else total[0]


def _target_vjp(values: list[torch.Tensor], inputs: list[torch.Tensor], retain: bool) -> tuple[torch.Tensor, ...]:
    """Per-step input gradients of several targets, (targets, steps, ...) per input, from ONE backward pass.

    The targets share the forward graph; `is_grads_batched` runs the backward once with the targets
    stacked in a batch dimension, so every matrix product is targets-times larger. Measured on
    SmolLM2-135M, 12 targets, 10 steps: 21-24 s of CPU against 45 s for one backward per target.
    """
    v = torch.stack(values, dim=1)  # (steps, k): steps are independent rows, so d(sum)/dx is per step
    k = v.shape[1]
    if k == 1:
        return tuple(g[None] for g in torch.autograd.grad(v[:, 0].sum(), inputs, retain_graph=retain))
    eye = torch.eye(k, dtype=v.dtype, device=v.device)[:, None, :].expand(k, v.shape[0], k)
    return torch.autograd.grad(v, inputs, eye, retain_graph=retain, is_grads_batched=True)


def _causal_gradients(prob: _Problem, x: torch.Tensor, w: torch.Tensor, total: torch.Tensor) -> None:
    """Add each rule's weighted per-target gradients to `total` (rules, targets, L, H) from one shared forward.

    Targets are grouped by the chunk that holds their prediction; each group's batched backward walks
    only the chunks up to its own. Chunks wholly out of scope (generated tokens under scope='prompt') take
    no input gradient: the backward still passes through them, but skips their first layer's input products.
    (Tried and dropped: cutting the graph at the KV cache and sweeping chunk by chunk from the last, with
    every live target batched through each chunk once. Same gradients to 1e-5, but 4-7% slower at 24
    targets on SmolLM2, 50 steps: 55.5-56.9 s against 51.2-53.1 s, and no faster at 6 or 12.)
    """
    bounds = _chunk_bounds(prob, prob.chunk_tokens)
    wanted = [bool(prob.scope_mask[a:b].any()) for a, b in bounds]
    pieces = [x[:, a:b].detach().requires_grad_(want) for (a, b), want in zip(bounds, wanted, strict=True)]
    rows_of, chunk_of = _causal_rows(prob, pieces, bounds)
    values = [_head_surrogate(prob, j, logits, h) for j, (logits, h) in enumerate(rows_of)]
    groups = sorted(set(chunk_of))
    for c in groups:
        checkpoint()
        js = [j for j in range(prob.n_targets) if chunk_of[j] == c]
        inputs = [i for i in range(c + 1) if wanted[i]]
        grads = _target_vjp([values[j] for j in js], [pieces[i] for i in inputs], retain=c != groups[-1])
        for i, g in zip(inputs, grads, strict=True):
            a, b = bounds[i]
            total[:, js, a:b] += torch.einsum("rm,kmlh->rklh", w, g.float().cpu())


def _token_sums(grads: torch.Tensor, prob: _Problem) -> torch.Tensor:
    """Signed per-token attributions (..., targets, L) from path-integrated gradients (..., targets, L, H)."""
    return (grads * (prob.embeds - prob.baseline).cpu()).sum(-1) * prob.influence_mask()


def _adaptive_gradients(
    prob: _Problem, tolerance: float, max_steps: int, batch: int, progress
) -> tuple[torch.Tensor, int, float]:
    """Path-integrated gradients by adaptive Gauss-Kronrod panels: (targets, L, H), steps used, error estimate.

    The estimate bounds the largest, over targets, L1 distance between the normalised |attributions|
    and the exact integral's: 2 * sum_i sum_panels |Kronrod - Gauss| / sum_i |attribution|, per target
    (the Gauss-Kronrod difference is the classic, conservative error estimate of the Gauss rule).
    """
    done: dict[Panel, torch.Tensor] = {}
    pending = [Panel(0.0, 1.0)]
    used = 0
    while True:
        pts = [p.points() for p in pending]
        alphas = np.concatenate([a for a, _ in pts])
        weights = np.zeros((2 * len(pending), len(alphas)))
        for i, (_, w) in enumerate(pts):
            weights[2 * i : 2 * i + 2, i * POINTS_PER_PANEL : (i + 1) * POINTS_PER_PANEL] = w
        rules = _weighted_gradients(prob, alphas, weights, batch, progress)
        done.update({p: rules[2 * i : 2 * i + 2] for i, p in enumerate(pending)})
        used += len(alphas)
        panels = list(done)
        kg = torch.stack([done[p] for p in panels])  # (panels, 2, targets, L, H)
        attr = _token_sums(kg[:, 0].sum(0), prob).abs().sum(-1).clamp_min(1e-30)  # (targets,)
        per_panel = _token_sums(kg[:, 0] - kg[:, 1], prob).abs().sum(-1) / attr  # (panels, targets)
        estimate = min(2.0, float(2 * per_panel.sum(0).max()))  # an L1 distance of shares is at most 2
        split = to_split(per_panel.sum(1).numpy())
        room = (max_steps - used) // (2 * POINTS_PER_PANEL)
        if estimate <= tolerance or room < 1:
            break
        pending = [h for i in split[:room] for h in panels[i].halves()]
        for i in split[:room]:
            del done[panels[i]]
    if estimate > tolerance:
        warnings.warn(
            f"integrated gradients stopped at the step budget ({used} steps) with an error estimate of "
            f"{estimate:.3g} above the tolerance {tolerance:g}; raise max_steps or the tolerance",
            UserWarning,
            stacklevel=4,
        )
    return kg[:, 0].sum(0), used, estimate


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
    n_steps: int | str = 50,
    integration: str = "gausslegendre",
    internal_batch_size: int | None = None,
    memory_budget_mb: float = 2048,
    keep_raw: bool = True,
    **options: Any,
) -> dict[str, PrimaryAttribution]:
    """Attribute every generated token of `out` with each method; results are stored in `out.attributions`.

    Method-specific keywords (seed, n_samples, window, layer, head, ...) go in `options`; each method
    takes the ones it declares (see `method_info(name).options`) and an unknown keyword is refused.

    Args:
        lm: The model that produced `out` (its weights are read, never changed).
        out: The run whose generated tokens are attributed; it needs at least one generated token.
        methods: One method name or several: registry names such as "ig", "saliency", "grad_x_input",
            "ablation", "lime" or "attention", or their aliases (see `canonical_method`, `usable_methods`).
        target_kind: What each target token's score measures: "prob" (its probability, the original
            ecco's), "logprob" or "logit". A `foil` replaces it by a contrast.
        foil: None, or a token (text such as " London", or an id) to contrast every target with, or a list of
            one per target: each target then measures its logit minus the foil's, and results are stored
            under "<method>:contrast".
        scope: "prefix" attributes each target to every earlier token, prompt and generated; "prompt" moves
            only the prompt tokens and keeps the generated ones fixed.
        baseline: The reference input the path starts from or positions are replaced by: "zeros", "pad",
            "unk", "eos" or "bos" (that tokenizer token's embedding), or a token id.
        n_steps: Integration steps for "ig" and "layer_ig", or "auto" for "ig": adaptive Gauss-Kronrod panels
            until the `tolerance` option (default 0.05) or the `max_steps` option (default 512) is reached.
        integration: The path-integral rule for a whole number of steps: "gausslegendre" (captum's default),
            "riemann_trapezoid", "riemann_middle", "riemann_left" or "riemann_right".
        internal_batch_size: Interpolation steps or perturbed inputs per forward pass; None picks the most
            that fit `memory_budget_mb`.
        memory_budget_mb: The memory, in MiB, one batch may roughly use when `internal_batch_size` is None.
        keep_raw: Keep each result's per-dimension `raw` array; False drops it to save memory and file size.
        **options: Method-specific options (e.g. seed, n_samples, stdevs, alpha, window, stride, layer, head,
            residual, tolerance, max_steps, dtype), each passed to the methods that declare it.

    Returns:
        Each result keyed by method name ("<method>:contrast" with a foil); the same objects are stored in
        `out.attributions`.
    """
    names = [canonical_method(m) for m in ([methods] if isinstance(methods, str) else methods)]
    specs = [_REGISTRY[m] for m in names]
    per_method = _method_options(specs, {"n_steps": n_steps, "integration": integration, **options})
    prob = _problem(lm, out, target_kind, foil, scope, baseline)
    for spec in specs:
        _check_supported(spec, _target_label(prob), scope)
    if internal_batch_size is not None:
        internal_batch_size = check_int(
            internal_batch_size, "internal_batch_size", minimum=1, what="a positive integer"
        )
    batch = internal_batch_size or _auto_batch(prob, memory_budget_mb)
    results = {}
    for spec, kw in zip(specs, per_method, strict=True):
        checkpoint()
        attr = spec.fn(prob, batch, **kw)
        attr.params.update(internal_batch_size=batch)
        if not keep_raw:
            attr.raw = None
        key = spec.name if foil is None else f"{spec.name}:contrast"
        out.attributions[key] = attr
        results[key] = attr
    return results


def _progress(prob: _Problem, total: int, method: str):

    return tqdm(total=total, desc=f"ecco_sdk: {method} attribution", disable=not prob.lm.verbose, leave=False)


def _gradient_method(
    prob: _Problem,
    method: str,
    n_steps: int | str,
    integration: str,
    batch: int,
    tolerance: float = 0.05,
    max_steps: int = 512,
) -> PrimaryAttribution:
    params: dict[str, Any] = {"integration": integration}
    if prob.dtype != "float32":
        params["dtype"] = prob.dtype
    if method == "ig" and n_steps == "auto":
        _check_auto(tolerance, max_steps)
        with _progress(prob, max_steps, method) as bar:
            grads, n_steps, estimate = _adaptive_gradients(prob, tolerance, max_steps, batch, bar)
        params.update(integration="gausskronrod", tolerance=tolerance, max_steps=max_steps, error_estimate=estimate)
    else:
        alphas, weights = _path_points(n_steps, integration) if method == "ig" else (np.ones(1), np.ones(1))
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
        # The path starts from the baseline only where it moves: out-of-scope positions stay real.
        start = torch.where(prob.scope_mask[:, None], prob.baseline, prob.embeds)
        ends = _values_no_grad(prob, torch.stack([start, prob.embeds]).to(prob.lm.device))
        delta = (raw.sum(dim=(1, 2)) - (ends[1] - ends[0]).cpu()).numpy()
    return _result(prob, method, raw, mask, n_steps if method == "ig" else None, delta, params)


def _check_auto(tolerance: Any, max_steps: Any) -> None:
    """n_steps='auto' needs a positive tolerance and a budget of at least one 15-point panel."""
    check_positive(tolerance, "tolerance", hint=" (an L1 distance, e.g. 0.05)")
    what = f"a whole number >= {POINTS_PER_PANEL}"
    check_int(max_steps, "max_steps", minimum=POINTS_PER_PANEL, what=what, hint=" (one panel)")


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
    return _position_result(prob, "ablation", effects, {})


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
    return _attribution(
        prob,
        method,
        scores_l2=_normalise(raw.norm(dim=-1), mask),
        scores_sum=_masked(raw.sum(dim=-1), mask),
        params=params,
        raw=raw.numpy().astype(np.float32),
        delta=np.asarray(delta, dtype=np.float32) if delta is not None else None,
        n_steps=n_steps,
    )


def _attribution(
    prob: _Problem, method: str, scores_l2: np.ndarray, scores_sum: np.ndarray, params: dict[str, Any], **extra: Any
) -> PrimaryAttribution:
    """The PrimaryAttribution of one method's scores, with the problem's targets, scope and baseline filled in."""
    return PrimaryAttribution(
        method=method,
        target_kind=_target_label(prob),
        scope="prompt" if not bool(prob.scope_mask.all()) else "prefix",
        baseline=prob.baseline_name,
        target_positions=np.asarray(prob.target_positions),
        target_ids=np.asarray(prob.target_ids),
        scores_l2=scores_l2,
        scores_sum=scores_sum,
        foil_ids=np.asarray(prob.foil_ids) if prob.foil_ids else None,
        params=params,
        **extra,
    )


def attribute_text(
    lm: LM, text: str, target: str | Sequence[int], methods: Sequence[str] | str = ("ig",), **kw: Any
) -> OutputSeq:
    """Attribute a given continuation of `text` (teacher-forced, not generated) to the input tokens.

    Args:
        lm: A causal or encoder-decoder model.
        text: The prompt.
        target: The continuation to attribute: text (e.g. " Paris", tokenized without special tokens) or a
            non-empty list of token ids.
        methods: One method name or several, as in `attribute_output`.
        **kw: Further keywords for `attribute_output` (target_kind, foil, scope, baseline, n_steps, ...).

    Returns:
        A new run of the prompt followed by the target tokens (counted as generated), with the
        attributions in its `attributions`.
    """
    if lm.kind == "encoder":
        raise InputError("attribution needs a causal or encoder-decoder model")
    prompt_ids = lm.encode(text)[0].tolist()
    if isinstance(target, str) and target:
        target_ids = lm.tokenizer(check_text(target, "target", allow_blank=True), add_special_tokens=False).input_ids
    elif isinstance(target, list | tuple) and target and all(isinstance(i, int) for i in target):
        target_ids = [int(i) for i in target]
    else:
        raise InputError("target must be the continuation to attribute: text such as ' Paris' or a list of token ids")
    if not target_ids:
        raise InputError(f"target {target!r} produced no tokens")
    if lm.kind == "seq2seq":
        ids = [*prompt_ids, int(lm.adapter.decoder_start_id), *target_ids]
    else:
        ids = prompt_ids + target_ids
    lm.check_length(len(ids))
    out = lm.new_output(ids, len(prompt_ids), n_generated=len(target_ids), generation={"teacher_forced": True})
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
    """The saliency visual of a run, computing the attribution first if generation did not.

    Args:
        out: The run; it needs its model attached (`out.attach(lm)`) when the attribution is not stored yet.
        attr_method: The method name or alias (default "ig").
        style: "minimal" (highlight one target's inputs) or "detailed" (numbers and bars per target).
        ignore_tokens: Sequence positions to leave out of the view (shown as not attributable).
        aggregation: "l2" (normalised norm) or "sum" (signed), as in `PrimaryAttribution.scores`.
        target: The target row shown first (default: the last generated token).
        **kw: Keywords for `attribute_output` when the attribution has to be computed.

    Returns:
        The saliency Visual (self-contained HTML).
    """
    from .render import saliency_view  # render imports matplotlib (0.7 s measured): only when a figure is drawn

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
        n_steps=attr.n_steps,
        error_estimate=attr.error_estimate,
    )


# ----- the registry's built-in methods (other modules register theirs on import) ----------------------


def _values_with_grad(prob: _Problem, x: torch.Tensor) -> torch.Tensor:
    """(m, targets) values of full inputs (m, L, H) in one forward, autograd on (for captum and layer methods)."""
    if prob.lm.kind == "seq2seq":
        return torch.stack(_seq2seq_values(prob, x), dim=1)
    bounds = [(0, prob.target_positions[-1])]
    values, _ = _causal_values(prob, [x[:, : bounds[0][1]]], bounds)
    return torch.stack(values, dim=1)


def _position_result(prob: _Problem, method: str, effects: torch.Tensor, params: dict[str, Any]) -> PrimaryAttribution:
    """A result from one signed score per (target, position): 'sum' keeps the sign, 'l2' normalises |score|."""
    mask = prob.influence_mask()
    effects = torch.where(mask, effects, torch.zeros_like(effects))
    return _attribution(prob, method, _normalise(effects.abs(), mask), _masked(effects, mask), params)


@register_method(
    "ig",
    "integrated gradients: gradients averaged along the straight path from the baseline, times input - baseline",
    aliases=("integrated_gradients", "integratedgradients"),
    options={"n_steps": 50, "integration": "gausslegendre", "tolerance": 0.05, "max_steps": 512, "dtype": "float32"},
)
def _ig(
    prob: _Problem, batch: int, *, n_steps: int | str, integration: str, tolerance: float, max_steps: int, dtype: str
) -> PrimaryAttribution:
    """n_steps='auto' grows adaptive panels until `tolerance` or `max_steps`; dtype='bfloat16' is opt-in."""
    if dtype not in IG_DTYPES:
        raise InputError(f"dtype must be one of {IG_DTYPES}, got {dtype!r}")
    if n_steps == "auto" and integration != "gausslegendre":
        raise InputError("n_steps='auto' chooses its own points (Gauss-Kronrod panels); leave integration unset")
    return _gradient_method(replace(prob, dtype=dtype), "ig", n_steps, integration, batch, tolerance, max_steps)


@register_method("saliency", "the gradient of the target at the input", aliases=("gradient", "grad"))
def _saliency(prob: _Problem, batch: int) -> PrimaryAttribution:
    return _gradient_method(prob, "saliency", 1, "gausslegendre", batch)


@register_method(
    "grad_x_input",
    "gradient x input: the first-order Taylor estimate of each position's contribution",
    aliases=("input_x_gradient", "inputxgradient", "gradxinput"),
)
def _grad_x_input(prob: _Problem, batch: int) -> PrimaryAttribution:
    return _gradient_method(prob, "grad_x_input", 1, "gausslegendre", batch)


@register_method(
    "ablation",
    "feature ablation: the drop in the target when one position is replaced by the baseline",
    aliases=("feature_ablation", "featureablation"),
)
def _feature_ablation(prob: _Problem, batch: int) -> PrimaryAttribution:
    return _ablation(prob, batch)


def __getattr__(name: str) -> Any:
    """METHODS is read from the registry when asked, so methods registered after import are listed too."""
    if name == "METHODS":
        return tuple(_REGISTRY)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


from . import attention, layer_attribution, perturbation  # noqa: E402,F401  (each registers its methods)
