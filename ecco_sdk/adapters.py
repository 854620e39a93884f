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

from .checks import is_int
from .errors import UnsupportedModelError


@dataclass(frozen=True)
class AdapterSpec:
    """Explicit module paths for models whose layout discovery cannot work out (dotted, from the top model).

    Args:
        blocks: the list of Transformer blocks (the decoder's, for encoder-decoder models), e.g. "model.layers".
        ffn_out: the FFN output projection, relative to a block, e.g. "mlp.down_proj".
        final_norm: the norm after the last block, e.g. "model.norm".
        head: the output head (unembedding), e.g. "lm_head".
        encoder_blocks: the encoder's list of blocks (encoder-decoder models).
        encoder_ffn_out: the encoder blocks' FFN output projection (default: `ffn_out`).
    """

    blocks: str | None = None
    ffn_out: str | None = None  # relative to a block, e.g. "mlp.down_proj"
    final_norm: str | None = None
    head: str | None = None
    encoder_blocks: str | None = None
    encoder_ffn_out: str | None = None


@dataclass
class Stack:
    """One stack of Transformer blocks (a causal model has one; T5 has an encoder and a decoder stack).

    Args:
        name: 'main', 'encoder' or 'decoder'.
        blocks_path: dotted path of the block list.
        blocks: the blocks, in order.
        ffn_out_path: the FFN output projection's path inside a block.
        ffn_out: each block's FFN output projection (its input is the neuron activations).
        n_neurons: FFN width.
        final_norm_path: dotted path of the norm after the last block, if any.
        final_norm: that norm, or None.
    """

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


# Fallbacks used only when neither the model nor its config says (each documented where it is read).
DEFAULT_VOCAB_SIZE = 32000  # Llama's vocabulary; reached only when the embeddings have no rows and the config no size
DEFAULT_CONTEXT_LENGTH = 4096  # when neither the config nor the tokenizer names a position limit
DEFAULT_DECODER_START_ID = 0  # T5's start token (its pad), when the config names neither a start nor a pad token
_POSITION_LIMITS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


@dataclass
class Adapter:
    """The parts of one loaded model that ecco_sdk hooks into and reads, and what it knows about the model.

    Every piece of model-specific knowledge the analyses need lives here, found once by `build_adapter`.

    Args:
        kind: 'causal', 'encoder' or 'seq2seq'.
        hidden_size: width of the residual stream (the input embeddings' dimension).
        input_embeddings: the token embedding module.
        stacks: the block stacks by name ('main', or 'encoder' and 'decoder').
        head_path: dotted path of the output head, None if the model has none.
        head: the module mapping final hidden states to vocabulary logits, or None.
        vocab_size: width of the logits (the head's outputs, else the embedding rows).
        context_length: the longest sequence the model accepts, in positions.
        decoder_start_id: the token an encoder-decoder's decoder starts from (None for other kinds).
        head_scale: factor applied to the head's input (fitted by `calibrate_lens`).
        logit_softcap: Gemma-2-style cap c in logits = c * tanh(logits / c), or None.
        lens_checked: whether unembedding the last block reproduced the model's logits.
        notes: what discovery or calibration had to adjust.
    """

    kind: str
    hidden_size: int
    input_embeddings: nn.Module
    stacks: dict[str, Stack]
    head_path: str | None
    head: nn.Module | None
    vocab_size: int = DEFAULT_VOCAB_SIZE
    context_length: int = DEFAULT_CONTEXT_LENGTH
    decoder_start_id: int | None = None
    head_scale: float = 1.0
    logit_softcap: float | None = None
    lens_checked: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def main(self) -> Stack:
        """The stack whose outputs are predicted tokens (decoder for T5, the only stack otherwise)."""
        return self.stacks["decoder"] if "decoder" in self.stacks else self.stacks["main"]

    def unembed(self, hidden: torch.Tensor) -> torch.Tensor:
        """Turn residual-stream states into vocabulary logits the way the model's own head does.

        Args:
            hidden: (..., hidden_size) residual-stream states of the main stack.

        Returns:
            (..., vocab_size) logits: final norm, head scale, head and softcap applied.
        """
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
        return self.cap_logits(self.head(h * self.head_scale if self.head_scale != 1.0 else h))

    def cap_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The head's raw output squashed by the model's final logit softcap (Gemma 2), unchanged without one.

        Args:
            logits: (..., vocab or a few ids) raw head outputs.

        Returns:
            ``cap * tanh(logits / cap)``, or `logits` itself when the model has no softcap.
        """
        cap = self.logit_softcap
        return torch.tanh(logits / cap) * cap if cap else logits

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly summary of what was found, for reprs, logs and error messages.

        Returns:
            A dict of JSON types (module paths, sizes, lens calibration, notes).
        """
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
            "vocab_size": self.vocab_size,
            "context_length": self.context_length,
            "decoder_start_id": self.decoder_start_id,
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
    """(in_features, out_features) of a Linear-like module (nn.Linear or GPT-2's transposed Conv1D).

    Args:
        module: any module.

    Returns:
        The two widths, or None when the module is not Linear-like.
    """
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


def _vocab_size(model: nn.Module, head: nn.Module | None, embeddings: nn.Module) -> int:
    """Width of the logits: the head's outputs, else the embedding rows, else the config's vocab_size."""
    for module in (head, model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None):
        dims = linear_dims(module) if module is not None else None
        if dims:
            return dims[1]
    weight = getattr(embeddings, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.ndim == 2 and weight.shape[0] > 0:
        return int(weight.shape[0])
    size = getattr(getattr(model, "config", None), "vocab_size", None)
    return int(size) if isinstance(size, int) and size > 0 else DEFAULT_VOCAB_SIZE


def _context_length(model: nn.Module, tokenizer: Any) -> int:
    """The config's position limit, else the tokenizer's model_max_length (T5 has relative positions), else 4096."""
    config = getattr(model, "config", None)
    for attr in _POSITION_LIMITS:
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    tok_max = getattr(tokenizer, "model_max_length", None)
    # Tokenizers without a limit report a huge sentinel (int(1e30)).
    return int(tok_max) if isinstance(tok_max, int) and 0 < tok_max < 10**7 else DEFAULT_CONTEXT_LENGTH


def _decoder_start_id(model: nn.Module, kind: str) -> int | None:
    """An encoder-decoder's decoder start token: the config's (or generation config's), else its pad token, else 0."""
    if kind != "seq2seq":
        return None
    for source, attr in (
        (getattr(model, "config", None), "decoder_start_token_id"),
        (getattr(model, "generation_config", None), "decoder_start_token_id"),
        (getattr(model, "config", None), "pad_token_id"),
    ):
        value = getattr(source, attr, None)
        if is_int(value):
            return int(value)
    return DEFAULT_DECODER_START_ID


def build_adapter(model: nn.Module, kind: str, spec: AdapterSpec | None = None, tokenizer: Any = None) -> Adapter:
    """Find the parts ecco_sdk needs in `model`, or say exactly which part is missing and how to name it.

    Args:
        model: a loaded transformers model.
        kind: 'causal', 'encoder' or 'seq2seq'.
        spec: explicit module paths for parts discovery cannot find (optional).
        tokenizer: the model's tokenizer, read for the context length when the config names none (optional).

    Returns:
        The model's `Adapter`, its lens not yet calibrated (see `calibrate_lens`).

    Raises:
        UnsupportedModelError: a part is missing; the message says which `AdapterSpec` field names it.
    """
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
        vocab_size=_vocab_size(model, head, embeddings),
        context_length=_context_length(model, tokenizer),
        decoder_start_id=_decoder_start_id(model, kind),
        logit_softcap=float(softcap) if softcap else None,
    )


def cache_kwargs(model: nn.Module, cache: Any) -> dict[str, Any]:
    """The forward keywords passing a KV cache: `cache` in recent transformers, `past_key_values` in older 5.x.

    Args:
        model: the model whose forward takes the cache.
        cache: the KV cache object.

    Returns:
        Keyword arguments for `model(...)`.
    """
    return {_cache_keyword(type(model)): cache, "use_cache": True}


@functools.cache
def _cache_keyword(model_type: type) -> str:
    return "cache" if "cache" in inspect.signature(model_type.forward).parameters else "past_key_values"


def returned_cache(output: Any) -> Any:
    """The KV cache a forward returned, under either transformers name.

    Args:
        output: a model output.

    Returns:
        The cache object.
    """
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def calibrate_lens(adapter: Adapter, final_hidden: torch.Tensor, logits: torch.Tensor) -> None:
    """Check that unembedding the last block's output reproduces the model's logits, fitting a scale if needed.

    T5 rescales the decoder output before its tied head; other models may do similar things. A
    least-squares scalar is fitted once on a probe input; if even that does not reproduce the logits,
    the lens is marked unchecked and a note says so.

    Args:
        adapter: the adapter to calibrate (its head_scale, lens_checked and notes are set).
        final_hidden: the last block's output on the probe input.
        logits: the model's own logits on the same input.
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

    Args:
        block: one Transformer block.
        hidden: the model's hidden size.
        n_neurons: the FFN width (Linear layers of this width are the FFN's, not attention's).

    Returns:
        (the module, the slice of its output columns holding the values, or None when it holds only them).
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
