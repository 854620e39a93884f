"""Attributions to the hidden states a Transformer block outputs: how much each position's state at a layer matters.

Two registered methods store a PrimaryAttribution for one block L (option `layer`, 1..n_layers, the
middle block by default): `layer_grad_x_act` (gradient x activation, captum's LayerGradientXActivation)
and `layer_ig` (integrated gradients from the block's output for the baseline input to its output for
the real input, captum's LayerIntegratedGradients). A forward hook on block L swaps its output for the
interpolated states, so blocks before L run once without a graph and every target shares the forward.

`layer_attributions` is the layers x positions view for one target: gradient x activation at every
block output from one backward pass (row 0 is the embeddings, i.e. gradient x input), or layer IG
block by block (n_layers times the cost of one layer_ig).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

# The underscore names are attribution.py's internals shared by the analyses (one problem, one result builder).
from .attribution import (
    PrimaryAttribution,
    _chosen_scores,
    _masked,
    _normalise,
    _path_points,
    _Problem,
    _problem,
    _progress,
    _result,
    _target_label,
    _values_with_grad,
    method_info,
    register_method,
)
from .cancel import checkpoint
from .checks import check_int, is_int
from .errors import InputError

if TYPE_CHECKING:
    from .output import OutputSeq


@dataclass(eq=False)
class LayerAttribution:
    """Attribution of one target to every position's hidden state at every layer, in plain arrays.

    Row r of the score arrays is `layers[r]`: 0 = the input embeddings, l = the output of block l.
    `scores_sum` is the signed sum over the hidden dimension; `scores_l2` the L2 norm normalised to sum
    to 1 over each row's positions. Positions that cannot influence the target (at or after it, or
    outside the scope) hold NaN.

    Attributes:
        method: "grad_x_act" or "ig".
        target_kind: What the target measured: "prob", "logprob", "logit", or "contrast" (with a foil).
        scope: "prefix" (every earlier position) or "prompt" (prompt positions only).
        tokens: Every token of the run.
        n_input_tokens: How many of them are the prompt.
        target_position: The sequence position of the attributed (generated) token.
        target_id: Its token id.
        layers: (rows,) the layer of each row: 0 = the input embeddings, l = the output of block l.
        scores_sum: (rows, positions) the signed sums described above.
        scores_l2: (rows, positions) the normalised L2 norms described above.
        params: The options it ran with (n_steps for "ig").
    """

    method: str
    target_kind: str
    scope: str
    tokens: list[str]
    n_input_tokens: int
    target_position: int
    target_id: int
    layers: np.ndarray
    scores_sum: np.ndarray
    scores_l2: np.ndarray
    params: dict[str, Any]

    def scores(self, aggregation: str = "sum") -> np.ndarray:
        """(layers, positions) scores: 'sum' (signed) or 'l2' (normalised norm).

        Args:
            aggregation: 'sum' for `scores_sum` or 'l2' for `scores_l2`.

        Returns:
            The chosen array itself (not a copy), NaN where a position cannot influence the target.
        """
        return _chosen_scores(self, aggregation)

    def __repr__(self) -> str:
        return (
            f"LayerAttribution({self.method}, target={self.target_kind} of {self.tokens[self.target_position]!r} "
            f"at {self.target_position}, {len(self.layers)} layers x {len(self.tokens)} positions)"
        )


# ----- hooks on block outputs -------------------------------------------------------------------------


@contextlib.contextmanager
def _block_hook(block: torch.nn.Module, change: Callable[[torch.Tensor], torch.Tensor | None]) -> Iterator[None]:
    """Pass this thread's block outputs (hidden states) through `change` (None keeps them); other threads untouched."""
    owner = threading.get_ident()

    def hook(_mod, _args, output):
        if threading.get_ident() != owner:
            return None
        hidden = output[0] if isinstance(output, tuple) else output
        new = change(hidden)
        if new is None:
            return None
        return (new, *output[1:]) if isinstance(output, tuple) else new

    handle = block.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _block(prob: _Problem, layer: Any) -> torch.nn.Module:
    """Block `layer` (1-based: the output of block 1 .. n_layers) of a causal model, checked."""
    if prob.lm.kind != "causal":
        raise InputError("layer attributions are implemented for causal (decoder-only) models")
    n = prob.lm.adapter.main.n_layers
    layer = check_int(
        layer, "layer", minimum=1, maximum=n, what=f"a block number 1..{n}", hint=" (its output is attributed)"
    )
    return prob.lm.adapter.main.blocks[layer - 1]


def _states(prob: _Problem, block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(L, H) output of `block` for one input (1, L, H), without gradients; zero past the last input position."""
    kept: list[torch.Tensor] = []
    with torch.no_grad(), _block_hook(block, lambda h: kept.append(h.detach()[0].float()) or None):
        _values_with_grad(prob, x.to(prob.lm.device))
    out = torch.zeros(prob.seq_len, kept[0].shape[-1], device=kept[0].device)
    out[: kept[0].shape[0]] = kept[0]
    return out


def _layer_path(
    prob: _Problem, layer: int, alphas: np.ndarray, weights: np.ndarray, batch: int, method: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted gradients at block `layer`'s output along base + alpha (state - base): (targets, L, H), state, base."""
    block = _block(prob, layer)
    dev = prob.lm.device
    scope = prob.scope_mask.to(dev)
    x_real = prob.embeds[None].to(dev)
    x_base = torch.where(scope[None, :, None], prob.baseline.to(dev)[None], x_real)
    state = _states(prob, block, x_real)
    # Out-of-scope positions keep their real state at block L; in-scope ones start from the baseline's.
    moved = len(alphas) > 1 or alphas[0] != 1
    base = torch.where(scope[:, None], _states(prob, block, x_base), state) if moved else state
    diff = state - base
    total = torch.zeros(prob.n_targets, *state.shape)
    leaf: list[torch.Tensor] = []

    def swap(h: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        z = (base + a[:, None, None] * diff)[:, : h.shape[1]].detach().requires_grad_(True)
        leaf[:] = [z]
        return z.to(h.dtype)

    with _progress(prob, len(alphas), method) as bar:
        for s in range(0, len(alphas), batch):
            checkpoint()
            a = torch.tensor(alphas[s : s + batch], dtype=torch.float32, device=dev)
            w = torch.tensor(weights[s : s + batch], dtype=torch.float32, device=dev)
            with torch.enable_grad(), _block_hook(block, lambda h, a=a: swap(h, a)):
                values = _values_with_grad(prob, x_real.expand(len(a), -1, -1))
                for j in range(prob.n_targets):
                    checkpoint()
                    (g,) = torch.autograd.grad(values[:, j] @ w, leaf[0], retain_graph=j < prob.n_targets - 1)
                    total[j, : g.shape[1]] += g.sum(0).float().cpu()
            bar.update(len(a))
    return total, state.cpu(), base.cpu()


def _layer_result(prob: _Problem, method: str, raw: torch.Tensor, params: dict[str, Any], delta=None):
    mask = prob.influence_mask()
    return _result(prob, method, raw * mask[:, :, None], mask, params.get("n_steps"), delta, params)


def _default_layer(prob: _Problem, layer: int | None) -> int:
    return prob.lm.adapter.main.n_layers // 2 if layer is None else layer


@register_method(
    "layer_grad_x_act",
    "gradient x activation at the output of block L: each position's hidden-state contribution, first order",
    aliases=("layer_gradient_x_activation", "layergradientxactivation"),
    options={"layer": None},
)
def layer_grad_x_act(prob: _Problem, batch: int, *, layer: int | None) -> PrimaryAttribution:
    """One forward and one backward per target through the blocks after L.

    Args:
        prob: The attribution problem `attribute_output` builds (embeddings, baseline, targets, scope).
        batch: Unused: one forward pass serves every target.
        layer: The block whose output is attributed, 1..n_layers (None: the middle block, n_layers // 2).

    Returns:
        Gradient x activation at that block's output, with per-dimension `raw` scores (hidden width).
    """
    layer = _default_layer(prob, layer)
    grads, state, _ = _layer_path(prob, layer, np.ones(1), np.ones(1), batch, "layer_grad_x_act")
    return _layer_result(prob, "layer_grad_x_act", grads * state[None], {"layer": layer})


@register_method(
    "layer_ig",
    "integrated gradients at the output of block L, from its state for the baseline input to the real one",
    aliases=("layer_integrated_gradients", "layerintegratedgradients"),
    options={"layer": None, "n_steps": 50, "integration": "gausslegendre"},
)
def layer_ig(prob: _Problem, batch: int, *, layer: int | None, n_steps: int, integration: str) -> PrimaryAttribution:
    """Like captum's LayerIntegratedGradients; `delta` is the completeness error per target.

    Args:
        prob: The attribution problem `attribute_output` builds (embeddings, baseline, targets, scope).
        batch: Interpolation steps per forward pass.
        layer: The block whose output is attributed, 1..n_layers (None: the middle block, n_layers // 2).
        n_steps: Integration steps (>= 1).
        integration: The path-integral rule: "gausslegendre", "riemann_trapezoid", "riemann_middle",
            "riemann_left" or "riemann_right".

    Returns:
        Layer integrated gradients, with per-dimension `raw` scores (hidden width) and `delta`.
    """
    layer = _default_layer(prob, layer)
    alphas, weights = _path_points(n_steps, integration)
    grads, state, base = _layer_path(prob, layer, alphas, weights, batch, "layer_ig")
    raw = grads * (state - base)[None]
    ends = _path_values(prob, layer, state, base)
    delta = (raw.sum(dim=(1, 2)) - (ends[1] - ends[0])).numpy()
    params = {"layer": layer, "n_steps": n_steps, "integration": integration}
    return _layer_result(prob, "layer_ig", raw, params, delta)


def _path_values(prob: _Problem, layer: int, state: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """(2, targets) values with block `layer`'s in-scope output set to the base, then to the real state."""
    dev = prob.lm.device
    both = torch.stack([base, state]).to(dev)
    with torch.no_grad(), _block_hook(_block(prob, layer), lambda h: both[:, : h.shape[1]].to(h.dtype)):
        return _values_with_grad(prob, prob.embeds[None].expand(2, -1, -1).to(dev)).cpu()


# ----- the layers x positions view ------------------------------------------------------------------------


def layer_attributions(
    out: OutputSeq,
    target: int = -1,
    method: str = "grad_x_act",
    *,
    target_kind: str = "prob",
    foil: Any = None,
    scope: str = "prefix",
    baseline: str | int = "zeros",
    n_steps: int = 32,
    layers: Sequence[int] | None = None,
    internal_batch_size: int = 16,
) -> LayerAttribution:
    """How much each position's hidden state at each layer matters to one generated token.

    Args:
        out: a run with generated tokens and its model attached.
        target: which generated token (index into the generated tokens; -1 = the last).
        method: 'grad_x_act' (gradient x activation, one backward pass) or 'ig' (layer IG per layer).
        target_kind: 'prob', 'logprob' or 'logit' (with `foil`, a contrast).
        foil: a token (text or id) to contrast the target with, or None.
        scope: 'prefix' (all earlier positions) or 'prompt' (prompt positions only).
        baseline: the input baseline: 'zeros', 'pad', 'unk', 'eos', 'bos' or a token id (for 'ig').
        n_steps: integration steps per layer (for 'ig').
        layers: which rows to compute: 0 = embeddings, l = output of block l (default: all).
        internal_batch_size: interpolation steps per forward pass (for 'ig').

    Returns:
        A LayerAttribution with (layers, positions) arrays.
    """
    lm = out.require_lm()
    if method not in ("grad_x_act", "ig"):
        raise InputError(f"method must be 'grad_x_act' or 'ig', got {method!r}")
    prob = _problem(lm, out, target_kind, foil, scope, baseline)
    _block(prob, 1)  # refuses non-causal models
    j = _target_index(prob, target)
    n = lm.adapter.main.n_layers
    rows = list(range(n + 1)) if layers is None else sorted({int(x) for x in layers})
    if not rows or rows[0] < 0 or rows[-1] > n:
        raise InputError(f"layers must be in 0..{n} (0 = embeddings, l = output of block l), got {layers!r}")
    single = _single_target(prob, j)
    if method == "grad_x_act":
        raw = _all_layers_grad_x_act(single, rows)
    else:
        raw = torch.stack([_row_ig(single, r, n_steps, internal_batch_size) for r in rows])
    mask = single.influence_mask()[0]
    return LayerAttribution(
        method=method,
        target_kind=_target_label(prob),
        scope=scope,
        tokens=list(out.tokens),
        n_input_tokens=out.n_input_tokens,
        target_position=prob.target_positions[j],
        target_id=prob.target_ids[j],
        layers=np.asarray(rows),
        scores_sum=_masked(raw.sum(-1), mask.expand(len(rows), -1)),
        scores_l2=_normalise(raw.norm(dim=-1), mask.expand(len(rows), -1)),
        params={"n_steps": n_steps} if method == "ig" else {},
    )


def _target_index(prob: _Problem, target: Any) -> int:
    n = prob.n_targets
    if not (is_int(target) and -n <= target < n):  # inline: check_int's "must be ..." cannot say "must index"
        raise InputError(f"target must index one of the {n} generated tokens (0..{n - 1} or negative), got {target!r}")
    return int(target) % n


def _single_target(prob: _Problem, j: int) -> _Problem:
    """The same problem restricted to target j (so one backward pass serves it)."""

    return replace(
        prob,
        target_positions=[prob.target_positions[j]],
        target_ids=[prob.target_ids[j]],
        foil_ids=[prob.foil_ids[j]] if prob.foil_ids is not None else None,
    )


def _all_layers_grad_x_act(prob: _Problem, rows: list[int]) -> torch.Tensor:
    """(rows, L, H) gradient x activation at the embeddings and every block output, from one backward pass."""
    dev = prob.lm.device
    blocks = prob.lm.adapter.main.blocks
    x = prob.embeds[None].to(dev).clone().requires_grad_(True)
    kept: dict[int, torch.Tensor] = {0: x}
    with contextlib.ExitStack() as stack, torch.enable_grad():
        for r in rows:
            if r > 0:
                stack.enter_context(_block_hook(blocks[r - 1], lambda h, r=r: kept.__setitem__(r, h) or None))
        value = _values_with_grad(prob, x)[0, 0]
    grads = torch.autograd.grad(value, [kept[r] for r in rows], allow_unused=True)
    out = torch.zeros(len(rows), *prob.embeds.shape)
    for k, (r, g) in enumerate(zip(rows, grads, strict=True)):
        if g is not None:
            out[k, : g.shape[1]] = (g * kept[r]).detach()[0, : prob.seq_len].float().cpu()
    return out


def _row_ig(prob: _Problem, row: int, n_steps: int, batch: int) -> torch.Tensor:
    """(L, H) integrated gradients at one row: the input embeddings (row 0) or block `row`'s output."""
    checkpoint()
    if row == 0:
        spec = method_info("ig")
        attr = spec.fn(prob, batch, **{**spec.options, "n_steps": n_steps})
    else:
        attr = layer_ig(prob, batch, layer=row, n_steps=n_steps, integration="gausslegendre")
    return torch.from_numpy(attr.raw[0])
