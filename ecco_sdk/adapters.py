"""Architecture adapters: where a model keeps its embeddings, blocks, FFN neurons, final norm and unembedding.

Everything is found structurally (module shapes and registration order), never from a table of model
ids, so a new architecture that follows the usual Transformer layout works without code changes. When
discovery fails, `AdapterSpec` names the parts explicitly by their dotted module paths.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .errors import UnsupportedModelError


@dataclass(frozen=True)
class AdapterSpec:
    """Explicit module paths for models whose layout discovery cannot work out (dotted, from the top model)."""

    blocks: str | None = None
    ffn_out: str | None = None  # relative to a block, e.g. "mlp.down_proj"
    final_norm: str | None = None
    head: str | None = None
    encoder_blocks: str | None = None
    encoder_ffn_out: str | None = None


@dataclass
class Stack:
    """One stack of Transformer blocks (a causal model has one; T5 has an encoder and a decoder stack)."""

    name: str
    blocks_path: str
    blocks: list[nn.Module]
    ffn_out_path: str
    ffn_out: list[nn.Module]
    n_neurons: int
    final_norm_path: str | None
    final_norm: nn.Module | None

    @property
    def n_layers(self) -> int:
        """Number of blocks in this stack."""
        return len(self.blocks)


@dataclass
class Adapter:
    """The parts of one loaded model that ecco_sdk hooks into and reads."""

    kind: str
    hidden_size: int
    input_embeddings: nn.Module
    stacks: dict[str, Stack]
    head_path: str | None
    head: nn.Module | None
    head_scale: float = 1.0
    logit_softcap: float | None = None
    lens_checked: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def main(self) -> Stack:
        """The stack whose outputs are predicted tokens (decoder for T5, the only stack otherwise)."""
        return self.stacks["decoder"] if "decoder" in self.stacks else self.stacks["main"]

    def unembed(self, hidden: torch.Tensor) -> torch.Tensor:
        """Turn residual-stream states into vocabulary logits the way the model's own head does."""
        if self.head is None:
            raise UnsupportedModelError(
                "this model has no output head (unembedding) that maps hidden states to tokens, so the logit lens "
                "cannot run; load a model with an LM head (…ForCausalLM, …ForMaskedLM, …ForConditionalGeneration) "
                "or pass AdapterSpec(head='path.to.head')"
            )
        weight = getattr(self.head, "weight", None)
        if isinstance(weight, torch.Tensor) and hidden.dtype != weight.dtype:
            # fp32 states recorded from a bf16 model: cast back before the norm, as the model's own path runs
            # (casting after it left a 0.25% logit error on qwen2.5-coder-1.5b-instruct; this way it passes 1e-3).
            hidden = hidden.to(weight.dtype)
        norm = self.main.final_norm
        h = norm(hidden) if norm is not None else hidden
        logits = self.head(h * self.head_scale if self.head_scale != 1.0 else h)
        if self.logit_softcap:
            logits = torch.tanh(logits / self.logit_softcap) * self.logit_softcap
        return logits

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly summary of what was found, for reprs, logs and error messages."""
        return {
            "kind": self.kind,
            "hidden_size": self.hidden_size,
            "stacks": {
                k: {
                    "blocks": s.blocks_path,
                    "layers": s.n_layers,
                    "ffn_out": s.ffn_out_path,
                    "neurons": s.n_neurons,
                    "final_norm": s.final_norm_path,
                }
                for k, s in self.stacks.items()
            },
            "head": self.head_path,
            "head_scale": self.head_scale,
            "logit_softcap": self.logit_softcap,
            "lens_checked": self.lens_checked,
            "notes": list(self.notes),
        }


def _get(model: nn.Module, path: str) -> nn.Module:
    try:
        return model.get_submodule(path)
    except AttributeError as err:
        raise UnsupportedModelError(f"module path {path!r} does not exist in {type(model).__name__}") from err


def linear_dims(module: nn.Module) -> tuple[int, int] | None:
    """(in_features, out_features) of a Linear-like module (nn.Linear or GPT-2's transposed Conv1D)."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    weight = getattr(module, "weight", None)
    if type(module).__name__ == "Conv1D" and isinstance(weight, torch.Tensor) and weight.ndim == 2:
        return int(weight.shape[0]), int(weight.shape[1])
    return None


def _block_lists(model: nn.Module) -> list[tuple[str, nn.ModuleList]]:
    """ModuleLists of identical blocks that hold Linear layers, outermost first (nested lists dropped)."""
    found: list[tuple[str, nn.ModuleList]] = []
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.ModuleList) or len(mod) == 0:
            continue
        if len({type(b) for b in mod}) != 1:
            continue
        if not any(linear_dims(m) for m in mod[0].modules()):
            continue
        if any(name.startswith(outer + ".") for outer, _ in found):
            continue
        found.append((name, mod))
    return found


def _ffn_out_path(block: nn.Module, hidden: int) -> tuple[str, int]:
    """The FFN's output projection: the last Linear that maps a wider space back to the hidden size."""
    widening = [(n, d) for n, m in block.named_modules() if (d := linear_dims(m)) and d[1] == hidden and d[0] > hidden]
    if not widening:
        widening = [
            (n, d) for n, m in block.named_modules() if (d := linear_dims(m)) and d[1] == hidden and d[0] != hidden
        ]
    if not widening:
        raise UnsupportedModelError(
            f"no FFN output projection found in {type(block).__name__}: expected a Linear from the FFN width to the "
            f"hidden size {hidden}; pass AdapterSpec(ffn_out='path.inside.block')"
        )
    name, dims = widening[-1]
    return name, dims[0]


def _final_norm(model: nn.Module, blocks_path: str, hidden: int) -> tuple[str | None, nn.Module | None]:
    """The norm registered right after the blocks in the same container (ln_f, norm, final_layer_norm)."""
    parent_path, _, list_name = blocks_path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    after = False
    for name, child in parent.named_children():
        if name == list_name:
            after = True
            continue
        if after and _is_norm(child, hidden):
            return (f"{parent_path}.{name}" if parent_path else name), child
    return None, None


def _is_norm(module: nn.Module, hidden: int) -> bool:
    params = list(module.parameters(recurse=False))
    has_children = any(True for _ in module.children())
    return bool(params) and not has_children and all(p.ndim == 1 and p.shape[0] == hidden for p in params)


def _head(model: nn.Module) -> tuple[str | None, nn.Module | None]:
    """The module mapping final hidden states to logits: the output embedding or a head that wraps it."""
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if out is None:
        return None, None
    for name, child in model.named_children():
        if child is out:
            return name, child
    for name, child in model.named_children():
        if any(m is out for m in child.modules()) and not any(isinstance(m, nn.ModuleList) for m in child.modules()):
            return name, child
    return None, None


def _stack(model: nn.Module, name: str, path: str, hidden: int, ffn_spec: str | None) -> Stack:
    blocks = list(_get(model, path))
    if ffn_spec:
        ffn_path = ffn_spec
        dims = linear_dims(_get(blocks[0], ffn_spec))
        neurons = dims[0] if dims else 0
    else:
        ffn_path, neurons = _ffn_out_path(blocks[0], hidden)
    norm_path, norm = _final_norm(model, path, hidden)
    return Stack(
        name=name,
        blocks_path=path,
        blocks=blocks,
        ffn_out_path=ffn_path,
        ffn_out=[_get(b, ffn_path) for b in blocks],
        n_neurons=neurons,
        final_norm_path=norm_path,
        final_norm=norm,
    )


def _encoder_path(model: nn.Module, lists: list[tuple[str, nn.ModuleList]]) -> str:
    encoder = model.get_encoder() if hasattr(model, "get_encoder") else None
    for path, mod in lists:
        if encoder is not None and any(m is mod for m in encoder.modules()):
            return path
    return lists[0][0]


def build_adapter(model: nn.Module, kind: str, spec: AdapterSpec | None = None) -> Adapter:
    """Find the parts ecco_sdk needs in `model`, or say exactly which part is missing and how to name it."""
    spec = spec or AdapterSpec()
    try:
        embeddings = model.get_input_embeddings()
    except (AttributeError, NotImplementedError) as err:
        raise UnsupportedModelError(f"{type(model).__name__} exposes no input embeddings") from err
    hidden = int(embeddings.embedding_dim)
    lists = _block_lists(model)
    if not lists and not spec.blocks:
        raise UnsupportedModelError(
            f"no list of Transformer blocks found in {type(model).__name__}; pass AdapterSpec(blocks='path.to.layers')"
        )
    stacks: dict[str, Stack] = {}
    if kind == "seq2seq":
        enc_path = spec.encoder_blocks or _encoder_path(model, lists)
        dec_candidates = [p for p, _ in lists if p != enc_path]
        dec_path = spec.blocks or (dec_candidates[0] if dec_candidates else None)
        if dec_path is None:
            raise UnsupportedModelError("encoder-decoder model without a separate decoder block list")
        stacks["encoder"] = _stack(model, "encoder", enc_path, hidden, spec.encoder_ffn_out or spec.ffn_out)
        stacks["decoder"] = _stack(model, "decoder", dec_path, hidden, spec.ffn_out)
    else:
        stacks["main"] = _stack(model, "main", spec.blocks or lists[0][0], hidden, spec.ffn_out)
    if spec.final_norm:
        main = stacks.get("decoder") or stacks["main"]
        main.final_norm_path, main.final_norm = spec.final_norm, _get(model, spec.final_norm)
    head_path, head = (spec.head, _get(model, spec.head)) if spec.head else _head(model)
    softcap = getattr(getattr(model, "config", None), "final_logit_softcapping", None)
    return Adapter(
        kind=kind,
        hidden_size=hidden,
        input_embeddings=embeddings,
        stacks=stacks,
        head_path=head_path,
        head=head,
        logit_softcap=float(softcap) if softcap else None,
    )


def cache_kwargs(model: nn.Module, cache: Any) -> dict[str, Any]:
    """The forward keywords passing a KV cache: `cache` in recent transformers, `past_key_values` in older 5.x."""
    return {_cache_keyword(type(model)): cache, "use_cache": True}


@functools.cache
def _cache_keyword(model_type: type) -> str:
    return "cache" if "cache" in inspect.signature(model_type.forward).parameters else "past_key_values"


def returned_cache(output: Any) -> Any:
    """The KV cache a forward returned, under either transformers name."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def calibrate_lens(adapter: Adapter, final_hidden: torch.Tensor, logits: torch.Tensor) -> None:
    """Check that unembedding the last block's output reproduces the model's logits, fitting a scale if needed.

    T5 rescales the decoder output before its tied head; other models may do similar things. A
    least-squares scalar is fitted once on a probe input; if even that does not reproduce the logits,
    the lens is marked unchecked and a note says so.
    """
    if adapter.head is None:
        adapter.notes.append("no output head: logit lens unavailable")
        return
    with torch.no_grad():
        adapter.head_scale = 1.0
        softcap, adapter.logit_softcap = adapter.logit_softcap, None
        raw = adapter.unembed(final_hidden).double().flatten()
        adapter.logit_softcap = softcap
        target = logits.double().flatten()
        if softcap:
            target = torch.atanh((target / softcap).clamp(-1 + 1e-7, 1 - 1e-7)) * softcap
        scale = float((raw @ target) / (raw @ raw).clamp_min(1e-30))
        if math.isfinite(scale) and abs(scale - 1.0) > 1e-3 and adapter.head_scale == 1.0:
            adapter.head_scale = scale
            adapter.notes.append(f"head input rescaled by {scale:.6g} to match the model's logits")
        got = adapter.unembed(final_hidden).double().flatten()
        err = float((got - logits.double().flatten()).norm() / logits.double().flatten().norm().clamp_min(1e-30))
    adapter.lens_checked = err < 1e-3
    if not adapter.lens_checked:
        adapter.head_scale = 1.0
        adapter.notes[:] = [
            f"unembedding {adapter.head_path!r} does not reproduce the model's logits (relative "
            f"error {err:.2g}): the head is more than one module; pass AdapterSpec(head=...)"
        ]


def value_projection(block: nn.Module, hidden: int, n_neurons: int) -> tuple[nn.Module, slice | None]:
    """The module whose output holds a block's self-attention value vectors, and their columns if fused.

    Found structurally: among the block's Linear layers that read the hidden state and do not widen
    it to the FFN width, the first three are query, key and value (registration order, as in Llama,
    Qwen, Gemma, BERT and T5; key and value have the same width). GPT-2 fuses them into one Conv1D
    whose output is [query | key | value]. Fused Linear layouts (GPT-NeoX interleaves q, k, v per
    head) are refused rather than guessed.
    """
    cands = [(m, d) for _, m in block.named_modules() if (d := linear_dims(m)) and d[0] == hidden and d[1] != n_neurons]
    if len(cands) >= 3 and cands[1][1][1] == cands[2][1][1]:
        return cands[2][0], None
    if cands and type(cands[0][0]).__name__ == "Conv1D" and cands[0][1][1] % 3 == 0:
        width = cands[0][1][1] // 3
        return cands[0][0], slice(2 * width, 3 * width)
    raise UnsupportedModelError(
        f"no separate value projection found in {type(block).__name__} (expected query, key and value Linear "
        "layers reading the hidden state, or GPT-2's fused Conv1D); value-weighted attention needs the value vectors"
    )
