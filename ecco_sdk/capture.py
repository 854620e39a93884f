"""Per-call capture of hidden states and FFN activations.

Hooks are installed once per model and stay; each one writes into the `Recording` that the calling
thread opened, or does nothing. Two threads running the same shared model therefore each get their
own data, and no hook is ever added or removed while another thread is iterating the hook dicts.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from .adapters import Adapter, Stack

_local = threading.local()
_install_lock = threading.Lock()


@dataclass
class Recording:
    """What one call asked to capture, and the tensors captured so far (chunks along positions).

    Args:
        hidden_states: keep residual-stream states.
        activations: keep FFN neuron activations.
        activation_layers: keep FFN activations of these layers only (None: all).
        hidden: captured states by stack and layer (filled by the hooks).
        ffn: captured activations by stack and layer (filled by the hooks).
    """

    hidden_states: bool = True
    activations: bool = True
    activation_layers: Sequence[int] | None = None
    hidden: dict[str, dict[int, list[torch.Tensor]]] = field(default_factory=dict)
    ffn: dict[str, dict[int, list[torch.Tensor]]] = field(default_factory=dict)

    def _add(self, store: dict[str, dict[int, list[torch.Tensor]]], stack: str, layer: int, t: torch.Tensor) -> None:
        store.setdefault(stack, {}).setdefault(layer, []).append(t.detach().to("cpu", torch.float32))

    def add_hidden(self, stack: str, layer: int, t: torch.Tensor) -> None:
        """Keep a residual-stream state (layer 0 = input of the first block).

        Args:
            stack: the stack's name.
            layer: 0 for the first block's input, i for block i-1's output.
            t: the (batch, positions, hidden) state.
        """
        if self.hidden_states:
            self._add(self.hidden, stack, layer, t)

    def add_ffn(self, stack: str, layer: int, t: torch.Tensor) -> None:
        """Keep the FFN neuron activations of one block, if that layer was asked for.

        Args:
            stack: the stack's name.
            layer: the block's index.
            t: the (batch, positions, neurons) input of its FFN output projection.
        """
        if self.activations and (self.activation_layers is None or layer in self.activation_layers):
            self._add(self.ffn, stack, layer, t)

    def stacked(self, kind: str, stack: str) -> torch.Tensor | None:
        """Everything captured of one kind in one stack, as one tensor.

        Args:
            kind: "hidden" or "ffn".
            stack: the stack's name.

        Returns:
            (layers, batch, positions, width): chunks joined along positions, layers in numeric order; or None.
        """
        store = (self.hidden if kind == "hidden" else self.ffn).get(stack)
        if not store:
            return None
        return torch.stack([torch.cat(store[k], dim=-2) for k in sorted(store)])


def current() -> Recording | None:
    """The recording the calling thread has open, if any.

    Returns:
        The `Recording`, or None.
    """
    return getattr(_local, "recording", None)


@contextlib.contextmanager
def recording(rec: Recording) -> Iterator[Recording]:
    """Route this thread's hook output into `rec` for the duration of the block."""
    previous = current()
    _local.recording = rec
    try:
        yield rec
    finally:
        _local.recording = previous


def _first_arg(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _install_stack(stack: Stack) -> list[torch.utils.hooks.RemovableHandle]:
    name = stack.name
    handles = []

    def block_input(_mod, args, kwargs):
        rec = current()
        if rec is not None:
            rec.add_hidden(name, 0, _first_arg(args, kwargs))

    handles.append(stack.blocks[0].register_forward_pre_hook(block_input, with_kwargs=True))
    for i, block in enumerate(stack.blocks):

        def block_output(_mod, _args, output, layer=i + 1):
            rec = current()
            if rec is not None:
                rec.add_hidden(name, layer, output[0] if isinstance(output, tuple) else output)

        def ffn_input(_mod, args, layer=i):
            rec = current()
            if rec is not None:
                rec.add_ffn(name, layer, args[0])

        handles.append(block.register_forward_hook(block_output))
        handles.append(stack.ffn_out[i].register_forward_pre_hook(ffn_input))
    return handles


def install(model: torch.nn.Module, adapter: Adapter) -> None:
    """Attach the capture hooks to a shared model once; later calls are no-ops.

    Args:
        model: the shared model.
        adapter: its adapter, naming the blocks and FFN projections to hook.
    """
    with _install_lock:
        if getattr(model, "_ecco_sdk_hooks", None):
            return
        handles = []
        for stack in adapter.stacks.values():
            handles.extend(_install_stack(stack))
        model._ecco_sdk_hooks = handles
