"""Generated-output view: input vs generated tokens and the top-k candidates at every generation step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ecco_sdk.checks import check_index
from ecco_sdk.errors import InputError
from ecco_sdk.render._common import esc, header, inline_token, percent, section
from ecco_sdk.render._validate import float_array, token_list, token_list_like
from ecco_sdk.render.tokens import Decoration, TokenParts, token_tooltip, tokens_html
from ecco_sdk.render.visual import Visual, new_id, wrap

_MAX_LINKED_STEPS = 300


def _candidates(candidate_tokens: Any, candidate_probs: Any, n_steps: int) -> tuple[list[list[str]], np.ndarray]:
    """Validate the per-step candidate lists against the number of generated tokens."""
    steps = token_list_like(candidate_tokens, "candidate_tokens")
    cand = [token_list(c, f"candidate_tokens[{i}]") for i, c in enumerate(steps)]
    if len(cand) != n_steps:
        raise InputError(
            f"candidate_tokens has {len(cand)} steps but there are {n_steps} generated tokens "
            "(len(tokens) - n_input_tokens): pass one candidate list per generated token."
        )
    if n_steps == 0:
        return cand, np.zeros((0, 0))
    probs = float_array(candidate_probs, "candidate_probs", 2)
    if probs.shape[0] != n_steps or any(len(c) != probs.shape[1] for c in cand):
        raise InputError(
            f"candidate_probs has shape {probs.shape} but candidate_tokens is {n_steps} steps x "
            f"{[len(c) for c in cand]} tokens: pass one probability per candidate token."
        )
    if (probs < -1e-6).any() or (probs > 1 + 1e-6).any():
        raise InputError("candidate_probs must be probabilities in [0, 1]; apply softmax to logits first.")
    return cand, np.clip(probs, 0.0, 1.0)


def _chosen(chosen: Sequence[int | None] | None, cand: list[list[str]], generated: list[str]) -> list[int]:
    """Index of the generated token among each step's candidates (-1 when absent)."""
    if chosen is None:
        return [c.index(tok) if tok in c else -1 for c, tok in zip(cand, generated, strict=True)]
    picks = token_list_like(chosen, "chosen")
    if len(picks) != len(cand):
        raise InputError(f"chosen has {len(picks)} entries but there are {len(cand)} steps: pass one per step.")
    out = []
    for i, pick in enumerate(picks):
        k = len(cand[i])
        out.append(-1 if pick is None else check_index(pick, f"chosen[{i}]", -1, k - 1))
    return out


def _card(step: int, position: int, token: str, cand: list[str], probs: np.ndarray, chosen: int) -> str:
    """One step's card: the generated token and its top-k candidates with probability bars."""
    rows = []
    for j, (tok, p) in enumerate(zip(cand, probs, strict=True)):
        cls = "ecco-cand ecco-chosen" if j == chosen else "ecco-cand"
        rows.append(
            f'<div class="{cls}"><span class="ecco-cand-t" title="{esc(repr(tok))}">{inline_token(tok)}</span>'
            f'<span class="ecco-bar"><span style="width:{100 * p:.1f}%"></span></span>'
            f'<span class="ecco-p">{percent(p)}</span></div>'
        )
    return (
        f'<div class="ecco-card" data-step="{step}"><div class="ecco-card-h">'
        f'<span class="ecco-em">{inline_token(token)}</span><span>step {step + 1} · pos {position}</span></div>'
        f"{''.join(rows)}</div>"
    )


def _link_css(root_id: str, n_steps: int) -> str:
    """Pure-CSS hover link between a generated token and its card (works where scripts do not run)."""
    rules = []
    for s in range(min(n_steps, _MAX_LINKED_STEPS)):
        tok, card = f'.ecco-tok[data-step="{s}"]', f'.ecco-card[data-step="{s}"]'
        rules.append(f"#{root_id}:has({tok}:hover) {card}{{outline:2px solid var(--ecco-accent)}}")
        rules.append(f"#{root_id}:has({card}:hover) {tok} .ecco-tt{{outline:2px solid var(--ecco-accent)}}")
    return f"<style>{''.join(rules)}</style>" if rules else ""


def sequence_view(
    tokens: Sequence[str],
    n_input_tokens: int,
    candidate_tokens: Sequence[Sequence[str]],
    candidate_probs: Any,
    chosen: Sequence[int | None] | None = None,
) -> Visual:
    """Show what the model generated and which alternatives it weighed at each step, as static HTML.

    Args:
        tokens: Every token, prompt then generated.
        n_input_tokens: How many tokens are the prompt.
        candidate_tokens: Per generated step, the top candidate tokens.
        candidate_probs: (steps, k) probabilities of those candidates.
        chosen: Per step, the index of the generated token among the candidates, None or -1 when absent
            (None: found by matching the tokens).

    Returns:
        A Visual.
    """
    toks = token_list(tokens)
    n_in = check_index(n_input_tokens, "n_input_tokens", 0, len(toks))
    generated = toks[n_in:]
    cand, probs = _candidates(candidate_tokens, candidate_probs, len(generated))
    picks = _chosen(chosen, cand, generated)

    def decorate(i: int, _parts: TokenParts) -> Decoration:
        """Input or generated styling, with the step and probability in the tooltip."""
        if i < n_in:
            return Decoration(classes=("ecco-input",), title=token_tooltip(toks[i], i, "input"))
        s = i - n_in
        p = f"p={percent(probs[s][picks[s]])}" if picks[s] >= 0 else "not in top candidates"
        tip = token_tooltip(toks[i], i, f"generated step {s + 1} · {p}")
        return Decoration(classes=("ecco-gen",), title=tip, attrs={"data-step": str(s)})

    root_id = new_id()
    key = (
        '<span class="ecco-legend"><span class="ecco-key" style="border:1px solid var(--ecco-border)"></span>input'
        '<span class="ecco-key" style="background:var(--ecco-accent-soft);box-shadow:inset 0 -2px 0 '
        'var(--ecco-accent)"></span>generated</span>'
    )
    caption = f"{n_in} input tokens · {len(generated)} generated"
    body = header("Generated output", esc(caption), key)
    body += f'<div class="ecco-text" data-ecco-text="main">{tokens_html(toks, decorate)}</div>'
    if generated:
        k = len(cand[0]) if cand else 0
        body += section(f"Top {k} candidates at each generated position")
        cards = (_card(s, n_in + s, generated[s], cand[s], probs[s], picks[s]) for s in range(len(generated)))
        body += f'<div class="ecco-steps">{"".join(cards)}</div>' + _link_css(root_id, len(generated))
    return Visual(wrap(root_id, "sequence", body), title="Generated output", kind="sequence")
