"""Generation controls for the local explainer: stop at the end of the one-line answer, never loop on a phrase.

A 135M instruct model, asked for one sentence, tends to run on (a second line, another "user" turn)
or to repeat a phrase until max_tokens. Three controls, all applied only to the *generated* tokens
(the prompt's few-shot explanations and the factor's own tokens may be quoted freely):

* `LineStop`: stop once the reply has a complete first line (newline after some text) or a stop string;
* `NoRepeatInReply`: ban any token that would repeat an n-gram already generated in this reply;
* the same processor divides positive logits (multiplies negative ones) of tokens already generated
  by a mild repetition penalty.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import InputError

#: Strings after which the reply is over (a new chat turn leaking into plain text).
STOP_STRINGS: tuple[str, ...] = ("\n", "<|im_end|>", "<|endoftext|>", "user:", "User:")


def _stopping_base() -> type:
    from transformers import StoppingCriteria  # heavy: transformers adds ~1.5 s to `import ecco_sdk`

    return StoppingCriteria


def _processor_base() -> type:
    from transformers import LogitsProcessor  # heavy: transformers adds ~1.5 s to `import ecco_sdk`

    return LogitsProcessor


def make_line_stop(tokenizer: Any, prompt_len: int, stops: Sequence[str] = STOP_STRINGS) -> Any:
    """A stopping criterion: the generated text holds a stop string after some non-blank text.

    Args:
        tokenizer: the model's tokenizer, to decode the reply.
        prompt_len: the prompt's length in tokens; only tokens after it are checked.
        stops: strings that end the reply.

    Returns:
        A ``transformers.StoppingCriteria`` for ``generate(stopping_criteria=[...])``.
    """

    class LineStop(_stopping_base()):
        """Stops a batch of one when the reply's first line is complete."""

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            import torch  # torch only for the local backend's generation

            text = tokenizer.decode(input_ids[0, prompt_len:], skip_special_tokens=False).lstrip()
            done = any(s in text for s in stops)
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    return LineStop()


def make_no_repeat(prompt_len: int, ngram: int = 3, penalty: float = 1.2) -> Any:
    """A logits processor: no repeated n-gram and a repetition penalty, both within the reply only.

    Args:
        prompt_len: the prompt's length in tokens; only tokens after it count as the reply.
        ngram: the n-gram size that may not repeat (0: off).
        penalty: divisor of positive (multiplier of negative) logits of tokens already generated (1.0: off).

    Returns:
        A ``transformers.LogitsProcessor`` for ``generate(logits_processor=[...])``.

    Raises:
        InputError: ngram < 0 or penalty < 1.0 (it is a ValueError too).
    """
    if ngram < 0 or penalty < 1.0:
        raise InputError("ngram must be >= 0 (0 = off) and penalty >= 1.0 (1.0 = off)")

    class NoRepeatInReply(_processor_base()):
        """Bans n-gram repeats and damps already-used tokens of the generated part."""

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            for row in range(input_ids.shape[0]):
                reply = input_ids[row, prompt_len:].tolist()
                if reply and penalty > 1.0:
                    used = sorted(set(reply))
                    vals = scores[row, used]
                    scores[row, used] = vals.where(vals < 0, vals / penalty).where(vals >= 0, vals * penalty)
                for token in banned_next(reply, ngram):
                    scores[row, token] = float("-inf")
            return scores

    return NoRepeatInReply()


def banned_next(reply: Sequence[int], n: int) -> set[int]:
    """Tokens that would complete an n-gram already present in `reply`.

    Args:
        reply: the token ids generated so far.
        n: the n-gram size (below 1: nothing is banned).

    Returns:
        The token ids to ban as the next token.
    """
    if n < 1 or len(reply) < n:
        return set()
    head = tuple(reply[len(reply) - n + 1 :]) if n > 1 else ()
    return {reply[i + n - 1] for i in range(len(reply) - n + 1) if tuple(reply[i : i + n - 1]) == head}
