"""Helpers shared by the attribution-method tests: an independent per-target forward, and input embeddings."""

from __future__ import annotations

import torch


def target_forward(lm, position: int, target_id: int, kind: str = "prob"):
    """The target's value read from the Hugging Face model's own forward on inputs_embeds (no ecco_sdk code)."""

    def f(e):
        logits = lm.model(inputs_embeds=e).logits[:, position - 1].float()
        if kind == "logit":
            return logits[:, target_id]
        logp = torch.log_softmax(logits, -1)[:, target_id]
        return logp if kind == "logprob" else logp.exp()

    return f


def embeds(lm, ids) -> torch.Tensor:
    """(1, n, hidden) float input embeddings of token ids, without gradients."""
    with torch.no_grad():
        return lm.adapter.input_embeddings(torch.as_tensor(ids)[None]).float()
