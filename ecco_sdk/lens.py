"""The logit lens: what each layer would predict if the model stopped there.

Each layer's residual-stream state goes through the model's own final norm and unembedding (the
original ecco skipped the norm, which makes early layers meaningless on most models). States are
those captured at generation time; the weights come from the attached `LM`. Everything is
vectorised over layers and positions, in row chunks that bound memory.

Positions: `position` is the index in `out.tokens` of the token being predicted. A causal model
predicts it from the state at `position - 1` (so `position == len(tokens)` asks what would come
next); a masked-LM encoder predicts it from the state at `position` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .checks import check_int
from .errors import InputError, UnsupportedModelError

if TYPE_CHECKING:
    from .output import OutputSeq

_ROW_ELEMENTS = 2**25  # logits computed at once (rows x vocab), about 128 MB of fp32


@dataclass
class LayerPredictions:
    """Top-k tokens each layer would predict at one position, with their probabilities.

    Attributes:
        position: The index into out.tokens of the predicted token.
        layers: The hidden-state rows read (0 = embeddings, L = last block).
        token_ids: (layers, k) token ids, most likely first.
        tokens: The same tokens as strings, one list per layer.
        probs: (layers, k) probabilities.
    """

    position: int
    layers: list[int]
    token_ids: np.ndarray  # (layers, k)
    tokens: list[list[str]]
    probs: np.ndarray  # (layers, k)

    def plot(self, **kw: Any):
        """Heatmap of each layer's top predictions (matplotlib Figure).

        Args:
            **kw: Passed on to `ecco_sdk.render.layer_predictions_figure`.
        """
        from .render import (
            layer_predictions_figure,
        )  # render imports matplotlib (0.7 s measured): only when a figure is drawn

        return layer_predictions_figure(self.tokens, self.probs, [f"L{i}" for i in self.layers], **kw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable view.

        Returns:
            The fields as a dict, arrays as nested lists.
        """
        return _jsonable(asdict(self))


@dataclass
class Rankings:
    """How each layer ranked the token that actually came at each position (1 = top choice).

    Attributes:
        layers: The hidden-state rows read (0 = embeddings, L = last block).
        positions: The indices into out.tokens that were ranked.
        token_ids: (positions,) the actual token ids.
        tokens: The actual tokens as strings.
        ranks: (layers, positions) int ranks, 1 = the layer's top choice.
        probs: (layers, positions) the actual token's probability under each layer.
    """

    layers: list[int]
    positions: list[int]
    token_ids: np.ndarray  # (positions,)
    tokens: list[str]
    ranks: np.ndarray  # (layers, positions), int
    probs: np.ndarray  # (layers, positions)

    def plot(self, **kw: Any):
        """Rank heatmap, layers x tokens (matplotlib Figure).

        Args:
            **kw: Passed on to `ecco_sdk.render.rankings_figure`.
        """
        from .render import rankings_figure  # render imports matplotlib (0.7 s measured): only when a figure is drawn

        return rankings_figure(self.ranks, [f"L{i}" for i in self.layers], self.tokens, **kw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable view.

        Returns:
            The fields as a dict, arrays as nested lists.
        """
        return _jsonable(asdict(self))


@dataclass
class RankingsWatch:
    """How each layer ranked a few watched candidate tokens at one position.

    Attributes:
        position: The index into out.tokens where the candidates were ranked.
        layers: The hidden-state rows read (0 = embeddings, L = last block).
        watch_ids: (watch,) the watched token ids.
        watch_tokens: The watched tokens as strings.
        ranks: (layers, watch) int ranks, 1 = the layer's top choice.
        probs: (layers, watch) probabilities.
    """

    position: int
    layers: list[int]
    watch_ids: np.ndarray  # (watch,)
    watch_tokens: list[str]
    ranks: np.ndarray  # (layers, watch)
    probs: np.ndarray  # (layers, watch)

    def plot(self, **kw: Any):
        """Rank heatmap, layers x watched tokens (matplotlib Figure).

        Args:
            **kw: Passed on to `ecco_sdk.render.rankings_watch_figure`.
        """
        from .render import (
            rankings_watch_figure,
        )  # render imports matplotlib (0.7 s measured): only when a figure is drawn

        return rankings_watch_figure(self.ranks, [f"L{i}" for i in self.layers], self.watch_tokens, **kw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable view.

        Returns:
            The fields as a dict, arrays as nested lists.
        """
        return _jsonable(asdict(self))


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in d.items()}


# ----- reading states -------------------------------------------------------------------------------


def _check_lens(out: OutputSeq):
    lm = out.require_lm()
    if lm.adapter.head is None:
        raise UnsupportedModelError(
            f"{lm.name!r} has no output head, so there is nothing to read layers out with; the logit lens needs "
            "a model with an LM head (causal, masked-LM or encoder-decoder)"
        )
    if not lm.adapter.lens_checked:
        notes = "; ".join(lm.adapter.notes) or "the head could not be verified"
        raise UnsupportedModelError(f"the logit lens is not reliable for {lm.name!r}: {notes}")
    if out.hidden_states is None:
        raise InputError("this run has no hidden states; load the model with hidden_states=True")
    return lm


def _layer_rows(out: OutputSeq, layer: int | None, include_embeddings: bool) -> list[int]:
    """Hidden-state rows to read: 1..L are block outputs, 0 the embedding output."""
    n = out.hidden_states.shape[0] - 1
    if layer is not None:
        return [check_int(layer, "layer", minimum=0, maximum=n, hint=f" (0 = embeddings, {n} = last block)")]
    return list(range(0 if include_embeddings else 1, n + 1))


def _state_index(out: OutputSeq, position: int) -> int:
    """Row of the hidden-state array that predicts the token at `position` (see module docstring)."""
    n_tokens = len(out.tokens)
    if out.kind == "seq2seq":
        lo, hi = out.n_input_tokens + 1, n_tokens
        what = f"a decoder position in {lo}..{hi} (index into out.tokens)"
        return check_int(position, "position", minimum=lo, maximum=hi, what=what) - out.n_input_tokens - 1
    if out.kind == "encoder":
        return check_int(position, "position", minimum=0, maximum=n_tokens - 1, what=f"in 0..{n_tokens - 1}")
    what = f"an index into out.tokens in 1..{n_tokens} (the predicted token; {n_tokens} = what comes next)"
    return check_int(position, "position", minimum=1, maximum=n_tokens, what=what) - 1


def _default_position(out: OutputSeq) -> int:
    if out.n_generated:
        return out.generated_positions[0]
    return len(out.tokens) if out.kind == "causal" else 0


def _states(out: OutputSeq, rows: list[int], state_idx: Sequence[int]) -> torch.Tensor:
    """(len(rows) * len(state_idx), hidden) float32 states, layer-major."""
    hs = torch.from_numpy(np.ascontiguousarray(out.hidden_states[rows][:, list(state_idx)]))
    return hs.reshape(-1, hs.shape[-1])


def _logit_chunks(lm, states: torch.Tensor):
    """Yield (start, logits) over row chunks small enough to bound memory.

    The yielded tensor is a view of a buffer reused from chunk to chunk (fresh large allocations
    cost page faults that rival the matmul), so callers must consume it before asking for the next.
    """
    vocab = _vocab_size(lm)
    step = max(1, _ROW_ELEMENTS // vocab)
    fast = _plain_head(lm)
    with torch.inference_mode():
        if fast is None:
            for s in range(0, states.shape[0], step):
                yield s, lm.adapter.unembed(states[s : s + step].to(lm.device)).float()
            return
        weight, bias = fast
        normed = _normed(lm, states.to(lm.device))
        buf = torch.empty(min(step, normed.shape[0]), weight.shape[0], dtype=normed.dtype, device=normed.device)
        for s in range(0, normed.shape[0], step):
            rows = normed[s : s + step]
            out = buf[: rows.shape[0]]
            if bias is None:
                torch.mm(rows, weight.t(), out=out)
            else:
                torch.addmm(bias, rows, weight.t(), out=out)
            yield s, out


def _plain_head(lm) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """(weight, bias) when the head is a plain fp32 Linear with no soft-capping, so logits are one matmul."""
    adapter = lm.adapter
    head = adapter.head
    if not isinstance(head, torch.nn.Linear) or adapter.logit_softcap or head.weight.dtype != torch.float32:
        return None
    if head._forward_hooks or head._forward_pre_hooks:
        return None
    if type(head).forward is not torch.nn.Linear.forward or "forward" in vars(head):
        return None
    return head.weight, head.bias


def _normed(lm, states: torch.Tensor) -> torch.Tensor:
    """States through the final norm and head scale, once for all rows (row-wise, so chunking changes nothing)."""
    adapter = lm.adapter
    norm = adapter.main.final_norm
    h = norm(states) if norm is not None else states
    return (h * adapter.head_scale if adapter.head_scale != 1.0 else h).float()


def _vocab_size(lm) -> int:
    return lm.adapter.vocab_size


# ----- analyses ---------------------------------------------------------------------------------------


def layer_predictions(
    out: OutputSeq,
    position: int | None = None,
    topk: int = 10,
    layer: int | None = None,
    include_embeddings: bool = False,
) -> LayerPredictions:
    """The top-k tokens each layer (or one `layer`) would predict for the token at `position`.

    Args:
        out: A run of a model loaded with hidden states (`lm.generate(...)` or `lm(...)`).
        position: The index into out.tokens of the token to predict (None: the first generated token,
            else what comes next).
        topk: How many tokens per layer, 1..vocabulary size.
        layer: Only this hidden-state row, 0..L (None: every block).
        include_embeddings: Also read the embedding output (row 0).

    Returns:
        The LayerPredictions.
    """
    lm = _check_lens(out)
    position = _default_position(out) if position is None else position
    idx = _state_index(out, position)
    topk = check_int(topk, "topk", minimum=1, maximum=_vocab_size(lm))
    rows = _layer_rows(out, layer, include_embeddings)
    states = _states(out, rows, [idx])
    ids, probs = [], []
    for _, logits in _logit_chunks(lm, states):
        # top-k of the logits is the top-k of the softmax; only k probabilities are needed.
        top = torch.topk(logits, topk, dim=-1)
        ids.append(top.indices.cpu())
        probs.append((top.values - torch.logsumexp(logits, dim=-1, keepdim=True)).exp().cpu())
    token_ids = torch.cat(ids).numpy()
    return LayerPredictions(
        position=position,
        layers=rows,
        token_ids=token_ids,
        tokens=[lm.token_strings(r) for r in token_ids],
        probs=torch.cat(probs).numpy(),
    )


def _ranks_of(lm, states: torch.Tensor, targets: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Rank (1 = top) and probability of targets[r, j] under each state row r: (rows, j) arrays.

    A rank is a count of strictly larger logits, not a sort; it is counted as a float sum of a 0/1
    mask written into a reused buffer (exact below 2**24 entries): far cheaper than a bool or float64 sum.
    """
    ranks, probs = [], []
    scratch: torch.Tensor | None = None
    for s, logits in _logit_chunks(lm, states):
        n = logits.shape[0]
        if scratch is None or scratch.shape[0] < n or scratch.device != logits.device:
            scratch = torch.empty_like(logits)
        buf = scratch[:n]
        tgt = targets[s : s + n].to(logits.device)
        chosen = logits.gather(1, tgt)
        counts = torch.empty(chosen.shape, dtype=torch.long, device=logits.device)
        for j in range(chosen.shape[1]):
            torch.gt(logits, chosen[:, j : j + 1], out=buf)
            counts[:, j] = buf.sum(-1).long()  # fp32 sums of 0/1 are exact while the vocabulary is below 2**24
        ranks.append(counts.cpu() + 1)
        torch.ops.aten._softmax.out(logits, -1, False, out=buf)
        probs.append(buf.gather(1, tgt).cpu())
    return torch.cat(ranks).numpy(), torch.cat(probs).numpy()


def rankings(
    out: OutputSeq, positions: Sequence[int] | str | None = None, include_embeddings: bool = False
) -> Rankings:
    """Rank of each actual token under every layer: generated tokens by default, `positions="all"` for all.

    Args:
        out: A run of a model loaded with hidden states.
        positions: Indices into out.tokens, "all", or None for the generated tokens.
        include_embeddings: Also read the embedding output (row 0).

    Returns:
        The Rankings.
    """
    lm = _check_lens(out)
    if positions is None:
        positions = out.generated_positions
        if not positions:
            raise InputError("this run generated nothing; pass positions='all' to rank the input tokens")
    elif positions == "all":
        first = out.n_input_tokens + 1 if out.kind == "seq2seq" else (0 if out.kind == "encoder" else 1)
        positions = list(range(first, len(out.tokens)))
    positions = [int(p) for p in positions]
    idx = [_state_index(out, p) for p in positions]
    if any(p >= len(out.tokens) for p in positions):
        raise InputError(f"rankings need actual tokens: positions must be < {len(out.tokens)}")
    rows = _layer_rows(out, None, include_embeddings)
    states = _states(out, rows, idx)
    token_ids = torch.as_tensor(out.token_ids[positions], dtype=torch.long)
    targets = token_ids.repeat(len(rows))[:, None]
    ranks, probs = _ranks_of(lm, states, targets)
    shape = (len(rows), len(positions))
    return Rankings(
        layers=rows,
        positions=positions,
        token_ids=token_ids.numpy(),
        tokens=[out.tokens[p] for p in positions],
        ranks=ranks.reshape(shape).astype(np.int64),
        probs=probs.reshape(shape).astype(np.float32),
    )


def rankings_watch(
    out: OutputSeq, watch: Sequence[str | int], position: int | None = None, include_embeddings: bool = False
) -> RankingsWatch:
    """Rank of each watched token (e.g. ' is' vs ' are') under every layer at one position.

    Args:
        out: A run of a model loaded with hidden states.
        watch: The candidate tokens, as strings that are one token each or as token ids.
        position: The index into out.tokens where they are ranked (None: the first generated token, else
            what comes next).
        include_embeddings: Also read the embedding output (row 0).

    Returns:
        The RankingsWatch.
    """
    lm = _check_lens(out)
    if isinstance(watch, str | int) or not watch:
        raise InputError("watch must be a non-empty list of tokens or token ids, e.g. [' is', ' are']")
    ids = [lm.token_id(w, "watch token") for w in watch]
    vocab = _vocab_size(lm)
    bad = [i for i in ids if not 0 <= i < vocab]
    if bad:
        raise InputError(f"watch token ids {bad} are outside the vocabulary 0..{vocab - 1}")
    position = _default_position(out) if position is None else position
    idx = _state_index(out, position)
    rows = _layer_rows(out, None, include_embeddings)
    states = _states(out, rows, [idx])
    targets = torch.tensor(ids)[None].repeat(len(rows), 1)
    ranks, probs = _ranks_of(lm, states, targets)
    return RankingsWatch(
        position=position,
        layers=rows,
        watch_ids=np.asarray(ids),
        watch_tokens=lm.token_strings(ids),
        ranks=ranks.astype(np.int64),
        probs=probs.astype(np.float32),
    )
