"""Attention as attribution: raw weights per layer and head, attention rollout, and value-weighted attention.

Each scores target j (predicted at position p_j - 1) by the attention row of that query position, so
the result does not depend on the target token: prob, logprob and logit give the same scores and a
contrast (which asks why one token rather than another) is refused. The weights come from one forward
pass with eager attention (load the model with `attention=True`); the value vectors for the
value-weighted variant from a hook on each block's value projection (found by `adapters.value_projection`).

- attention: A[l, h, q, i] at block `layer` (default the last), one head or the mean over heads.
- attention_rollout (Abnar & Zuidema, 2020): R = Â_L ... Â_1 with Â_l = r I + (1 - r) mean_h A_l
  (r = `residual`, 0.5 as in the paper), the attention flowing from each input position to q.
- value_attention (after Kobayashi et al., 2020): A[l, h, q, i] * ||v_{l,h,i}||, since a weight on a
  near-zero value vector moves nothing; mean over heads or one head.

`token_attention` returns the captured weights of one query position (layers x heads x positions)
for the per-head and per-layer views.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .adapters import value_projection

# The underscore names are attribution.py's internals shared by the analyses (one problem, one result builder).
from .attribution import TARGETS, PrimaryAttribution, _position_result, _Problem, register_method
from .checks import check_int
from .errors import InputError

if TYPE_CHECKING:
    from .lm import LM
    from .output import OutputSeq


@dataclass
class _Pass:
    """Attention weights (layers, heads, n, n) of the real input and, if asked, value norms (layers, n, kv heads)."""

    weights: torch.Tensor
    value_norms: torch.Tensor | None


def _unavailable(lm: LM) -> str | None:
    """Why attention methods cannot run on this model, or None."""
    if lm.kind != "causal":
        return "attention attributions are implemented for causal (decoder-only) models"
    if lm.model.config._attn_implementation != "eager":
        return (
            "attention methods need the attention weights, which only eager attention returns; load the model "
            "with ecco_sdk.from_pretrained(name, attention=True)"
        )
    return None


def _check_model(prob: _Problem) -> None:
    reason = _unavailable(prob.lm)
    if reason:
        raise InputError(reason)


@contextlib.contextmanager
def _value_hooks(prob: _Problem, kept: list[torch.Tensor]) -> Iterator[None]:
    """Keep each block's value vectors (1, n, value width) in `kept`, in block order."""
    stack = prob.lm.adapter.main
    owner = threading.get_ident()  # the model is shared: other threads' forward passes are not ours
    handles = []
    for block in stack.blocks:
        module, cols = value_projection(block, prob.lm.adapter.hidden_size, stack.n_neurons)

        def hook(_mod, _args, output, cols=cols):
            if threading.get_ident() == owner:
                kept.append((output if cols is None else output[..., cols]).detach().float())

        handles.append(module.register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _attention_pass(prob: _Problem, values: bool) -> _Pass:
    """One forward over the inputs (positions before the last target) returning attention, and value norms."""
    _check_model(prob)
    n = prob.target_positions[-1]
    ids = prob.ids[:n][None].to(prob.lm.device)
    kept: list[torch.Tensor] = []
    with torch.no_grad(), _value_hooks(prob, kept) if values else contextlib.nullcontext():
        out = prob.lm.model(input_ids=ids, output_attentions=True)
    weights = torch.stack([a[0].float().cpu() for a in out.attentions])
    norms = None
    if values:
        heads = weights.shape[1]
        head_dim = getattr(prob.lm.model.config, "head_dim", None) or prob.lm.adapter.hidden_size // heads
        norms = torch.stack([v[0].reshape(n, -1, head_dim).norm(dim=-1).cpu() for v in kept])
    return _Pass(weights, norms)


def _layer_index(prob: _Problem, layer: Any) -> int:
    n = prob.lm.adapter.main.n_layers
    layer = n if layer is None else layer
    return check_int(layer, "layer", minimum=1, maximum=n, what=f"a block number 1..{n}")


def _heads(weights: torch.Tensor, head: Any) -> torch.Tensor:
    """(heads, n, n) -> (n, n): one head, or the mean over heads."""
    if head is None:
        return weights.mean(0)
    n = weights.shape[0]
    return weights[check_int(head, "head", minimum=0, maximum=n - 1, what=f"None (mean over heads) or 0..{n - 1}")]


def _rows(prob: _Problem, matrix: torch.Tensor) -> torch.Tensor:
    """(targets, L) scores: the row of each target's query position p_j - 1 (zeros past the inputs)."""
    effects = torch.zeros(prob.n_targets, prob.seq_len)
    for j, p in enumerate(prob.target_positions):
        effects[j, : matrix.shape[1]] = matrix[p - 1]
    return effects


_ATTENTION_TARGETS = TARGETS  # target-independent: a contrast between two tokens cannot be read from attention


@register_method(
    "attention",
    "attention weights of the predicting position at one block (one head or the mean over heads)",
    targets=_ATTENTION_TARGETS,
    aliases=("attention_weights", "attn"),
    options={"layer": None, "head": None},
    unavailable=_unavailable,
)
def attention(prob: _Problem, batch: int, *, layer: int | None, head: int | None) -> PrimaryAttribution:
    """Raw attention weights at block `layer` (default the last).

    Args:
        prob: The attribution problem `attribute_output` builds (its targets and model are read).
        batch: Unused: one forward pass with attention weights serves every target.
        layer: The block whose attention is read, 1..n_layers (None: the last).
        head: One attention head, 0..heads - 1, or None for the mean over heads.

    Returns:
        Each target's scores over the positions before it (the same for every target kind).
    """
    layer = _layer_index(prob, layer)
    weights = _attention_pass(prob, values=False).weights
    effects = _rows(prob, _heads(weights[layer - 1], head))
    return _position_result(prob, "attention", effects, {"layer": layer, "head": head})


def rollout(weights: torch.Tensor, residual: float = 0.5) -> torch.Tensor:
    """Attention rollout of (layers, heads, n, n) weights: (n, n) flow from every input position to every query.

    Args:
        weights: (layers, heads, n, n) attention weights, query rows and key columns, first block first.
        residual: The identity's share r in each block's mixed matrix r I + (1 - r) mean_h A (0.5 as in the paper).

    Returns:
        (n, n): row q holds how much attention flows from each position into query q, rows summing to 1.
    """
    n = weights.shape[-1]
    eye = torch.eye(n, dtype=weights.dtype)
    flow = eye
    for layer in weights:
        mixed = residual * eye + (1 - residual) * layer.mean(0)
        flow = (mixed / mixed.sum(-1, keepdim=True)) @ flow
    return flow


@register_method(
    "attention_rollout",
    "attention rollout: attention multiplied through the layers, with the residual stream as identity",
    targets=_ATTENTION_TARGETS,
    aliases=("rollout",),
    options={"residual": 0.5},
    unavailable=_unavailable,
)
def attention_rollout(prob: _Problem, batch: int, *, residual: float) -> PrimaryAttribution:
    """Rollout over all blocks with the mean over heads.

    Args:
        prob: The attribution problem `attribute_output` builds (its targets and model are read).
        batch: Unused: one forward pass with attention weights serves every target.
        residual: The identity's share in each block, a number in [0, 1).

    Returns:
        Each target's scores over the positions before it (the same for every target kind).
    """
    if isinstance(residual, bool) or not isinstance(residual, int | float) or not 0 <= residual < 1:
        raise InputError(f"residual must be a number in [0, 1), the identity's share, got {residual!r}")
    effects = _rows(prob, rollout(_attention_pass(prob, values=False).weights, float(residual)))
    return _position_result(prob, "attention_rollout", effects, {"residual": residual})


@register_method(
    "value_attention",
    "value-weighted attention: each attention weight times the norm of the value vector it reads",
    targets=_ATTENTION_TARGETS,
    aliases=("value_weighted_attention", "attention_value_norm"),
    options={"layer": None, "head": None},
    unavailable=_unavailable,
)
def value_attention(prob: _Problem, batch: int, *, layer: int | None, head: int | None) -> PrimaryAttribution:
    """Attention x ||value|| at block `layer` (default the last); grouped-query heads share their value head.

    Args:
        prob: The attribution problem `attribute_output` builds (its targets and model are read).
        batch: Unused: one forward pass records the weights and value vectors for every target.
        layer: The block whose weights and value vectors are read, 1..n_layers (None: the last).
        head: One query head, 0..heads - 1 (weighted by its shared value head's norms), or None for the mean.

    Returns:
        Each target's value-weighted attention over the positions before it (the same for every target kind).
    """
    layer = _layer_index(prob, layer)
    run = _attention_pass(prob, values=True)
    weights, norms = run.weights[layer - 1], run.value_norms[layer - 1]  # (H, n, n), (n, kv)
    group = weights.shape[0] // norms.shape[1]
    per_head = weights * norms.T.repeat_interleave(group, dim=0)[:, None, :]
    effects = _rows(prob, _heads(per_head, head))
    return _position_result(prob, "value_attention", effects, {"layer": layer, "head": head})


# ----- the per-layer, per-head weights of one token --------------------------------------------------


@dataclass(eq=False)
class TokenAttention:
    """What one query position attends to: `weights[l, h, i]` at block l + 1, head h, key position i.

    Attributes:
        tokens: The run's tokens that have captured attention (the key positions).
        position: The query position.
        weights: (layers, heads, positions) float32 attention weights of that query.
    """

    tokens: list[str]
    position: int
    weights: np.ndarray

    def per_layer(self) -> np.ndarray:
        """(layers, positions): the mean over heads.

        Returns:
            The mean over heads of `weights`.
        """
        return self.weights.mean(axis=1)

    def per_head(self, layer: int) -> np.ndarray:
        """(heads, positions) at block `layer` (1-based).

        Args:
            layer: The block, 1..layers.

        Returns:
            That block's weights, one row per head.
        """
        n = self.weights.shape[0]
        return self.weights[check_int(layer, "layer", minimum=1, maximum=n, what=f"1..{n}") - 1]


def token_attention(out: OutputSeq, position: int | None = None) -> TokenAttention:
    """The captured attention of one query position over every layer and head.

    Args:
        out: a run generated with `attention=True` (its `attention` array is read; no model needed).
        position: the query position (default: the last token).

    Returns:
        A TokenAttention with (layers, heads, positions) weights.
    """
    if out.attention is None:
        raise InputError("this run has no attention weights; generate with attention=True (model loaded so)")
    if out.meta.get("attention_scope"):
        raise InputError(f"this run holds {out.meta['attention_scope']}, not the generated tokens' attention")
    n = out.attention.shape[-1]
    position = n - 1 if position is None else position
    position = check_int(position, "position", minimum=0, maximum=n - 1, what=f"0..{n - 1}")
    return TokenAttention(list(out.tokens[:n]), position, np.asarray(out.attention[:, :, position, :], np.float32))
