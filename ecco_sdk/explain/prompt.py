"""Prompts: the explainer's system prompt and few-shot turns, packed to a token budget; plus the scorers' prompts.

Explainer chat: system prompt, then one (user, assistant) pair per packed example, then the factor.
Each user turn shows a compact activation view (see `records`) and the strongest tokens widened to
whole words ("Strongest: Bergen, Oslo": sub-word pieces read as the words they belong to), each
assistant turn one explanation.
Examples are chosen in rank order while they fit the budget (a too-long one is skipped, the next is
tried) and placed so that the best-ranked example sits right before the factor. If the factor's own
view does not fit, weaker tokens and context are dropped step by step (the chosen threshold is kept).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import InputError
from ..tokens import is_special, same_run, token_words
from .library import Example, Library
from .records import ActivationRecord

Message = dict[str, str]
CountFn = Callable[[Sequence[Message]], int]

NO_PATTERN = "no clear pattern"

SYSTEM_PROMPT = (
    "You explain what a feature inside a language model responds to. You see text where the feature's "
    "active tokens are marked [token:N]; N from 1 to 10 is how strongly it fires (10 = strongest). "
    "Unmarked tokens are inactive; … marks skipped text; ↵ is a line break. "
    "Worked examples, if any, are about other features: describe this feature's own marked tokens in your own "
    "words, naming the kind of token they are (for example digits, city names, closing brackets). "
    "Reply with one short phrase (at most 15 words) saying what the marked tokens have in common. "
    f"If the marked tokens share no clear pattern, reply exactly: {NO_PATTERN}."
)

USER_TEMPLATE = "Feature activations:\n{view}\n\nStrongest: {top}\n\nWhat does this feature respond to?"

#: Ways to shrink a factor's view that is too long for the budget: (min_level, context) from mild to harsh.
SHRINK_STEPS: tuple[tuple[int, int], ...] = ((1, 3), (1, 1), (3, 1), (5, 1), (5, 0), (8, 0), (10, 0))


@dataclass
class Prompt:
    """A packed explainer chat, with what went into it.

    Args:
        messages: the chat: system prompt, worked (user, assistant) pairs, then the factor's user turn.
        example_ids: the packed worked examples, in prompt order (the best-ranked last).
        tokens: the chat's size as the budget's counter measured it.
        min_level: the lowest activation level shown for the factor (raised when it did not fit).
        context: tokens shown either side of each active token (lowered when it did not fit).
    """

    messages: list[Message]
    example_ids: list[str] = field(default_factory=list)
    tokens: int = 0
    min_level: int = 1
    context: int = 3


def user_turn(record: ActivationRecord, min_level: int = 1, context: int = 3) -> Message:
    """The user message that shows one record."""
    view = record.compact(context=context, min_level=min_level) or "(no active tokens)"
    top = ", ".join(word for word, _ in record.top_words(5, min_level=min_level)) or "(none)"
    return {"role": "user", "content": USER_TEMPLATE.format(view=view, top=top)}


def example_turns(example: Example) -> list[Message]:
    """A library example as a worked (user, assistant) pair."""
    return [user_turn(example.record), {"role": "assistant", "content": example.explanation}]


def build_messages(
    record: ActivationRecord,
    examples: Sequence[Example],
    *,
    min_level: int = 1,
    context: int = 3,
    system: str = SYSTEM_PROMPT,
) -> list[Message]:
    """System prompt, example pairs in the given order, then the factor."""
    msgs: list[Message] = [{"role": "system", "content": system}]
    for ex in examples:
        msgs.extend(example_turns(ex))
    msgs.append(user_turn(record, min_level=min_level, context=context))
    return msgs


def pack_prompt(
    record: ActivationRecord,
    candidates: Sequence[Example],
    *,
    count: CountFn,
    budget: int,
    n_examples: int,
    context: int = 3,
    system: str = SYSTEM_PROMPT,
) -> Prompt:
    """Fit the factor plus as many ranked examples as `budget` (counted with `count`) and n_examples allow.

    Args:
        record: the factor's record.
        candidates: worked examples, best first (an example that does not fit is skipped, the next tried).
        count: counts a chat's tokens in the backend's units (e.g. ``backend.count_messages``).
        budget: most tokens of the whole chat.
        n_examples: most worked examples to pack.
        context: tokens shown either side of each active token, at most.
        system: the system prompt.

    Returns:
        The `Prompt`, the best-ranked example placed right before the factor.

    Raises:
        InputError: `budget` is not positive, or too small for the factor alone even at its most shrunk view.
    """
    if budget <= 0:
        raise InputError(f"token_budget must be positive, got {budget}")
    steps = [(lv, min(ctx, context)) for lv, ctx in SHRINK_STEPS]
    level, ctx = steps[0]
    base_tokens = None
    for level, ctx in steps:
        base_tokens = count(build_messages(record, [], min_level=level, context=ctx, system=system))
        if base_tokens <= budget:
            break
    else:
        raise InputError(
            f"token_budget={budget} is too small: even the factor alone needs {base_tokens} tokens; raise token_budget"
        )
    chosen: list[Example] = []
    tokens = base_tokens
    for ex in candidates:
        if len(chosen) >= n_examples:
            break
        placed = list(reversed([*chosen, ex]))  # best-ranked last, next to the factor
        trial_tokens = count(build_messages(record, placed, min_level=level, context=ctx, system=system))
        if trial_tokens <= budget:
            chosen.append(ex)
            tokens = trial_tokens
    ordered = list(reversed(chosen))
    messages = build_messages(record, ordered, min_level=level, context=ctx, system=system)
    return Prompt(messages=messages, example_ids=[ex.id for ex in ordered], tokens=tokens, min_level=level, context=ctx)


_CLAUSE = re.compile(r"(\s*[;,]\s*|\s+(?:and|or)\s+)")
_REPEATED_WORDS = re.compile(r"\b(\w+(?:\s+\w+){0,3})(?:\s+\1\b)+", re.IGNORECASE)


def dedupe_clauses(text: str) -> str:
    """Drop clauses and word runs a small model repeated ("commas, commas and commas" -> "commas")."""
    text = _REPEATED_WORDS.sub(r"\1", text)
    parts = _CLAUSE.split(text)
    kept: list[str] = []
    seen: set[str] = set()
    for i in range(0, len(parts), 2):
        clause = parts[i]
        key = re.sub(r"\W+", " ", clause).strip().lower()
        if key and key in seen:
            continue
        seen.add(key)
        if kept:
            kept.append(parts[i - 1])
        kept.append(clause)
    return "".join(kept).strip()


def clean_explanation(raw: str, max_chars: int = 200) -> str:
    """The first sentence of a reply, without labels, quotes or repeats; empty replies become 'no clear pattern'."""
    lines = [ln.strip() for ln in raw.strip().splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    for label in ("explanation:", "answer:", "assistant:", "the feature responds to:"):
        if text.lower().startswith(label):
            text = text[len(label) :].strip()
    text = text.strip("*_ ")
    for stop in (". ", "! ", "? "):
        if stop in text:
            text = text.split(stop, 1)[0]
    text = text.strip().rstrip(".").strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":  # quoted as a whole
        text = text[1:-1].strip().rstrip(".").strip()
    text = dedupe_clauses(text).rstrip(",;: ").strip()
    if len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0] + "…"
    return text or NO_PATTERN


# --------------------------------------------------------------------------------------------------
# Scoring prompts

SIMULATION_SYSTEM = (
    "A feature inside a language model fires on certain tokens. Given an explanation of the feature, "
    "predict how strongly it fires on each token of a text, from 0 (not at all) to 10 (strongest). "
    "Most tokens are usually 0. Reply with one line per token, in the given order: the token, a tab, "
    "the number."
)

DETECTION_SYSTEM = (
    "A feature inside a language model is described by an explanation. Decide whether the feature fires "
    "anywhere in a text: answer Yes if the text contains what the explanation describes, otherwise No. "
    "Answer with one word: Yes or No."
)

#: Used as the simulator's worked example when no library is available.
FALLBACK_SIMULATION_EXAMPLE = Example(
    id="builtin-commas",
    category="punctuation",
    tokens=("I", " love", " apples", ",", " pears", ",", " and", " plums", "."),
    activations=(0, 0, 0, 10, 0, 9, 1, 0, 2),
    explanation="commas separating items in a list",
)


#: Categories whose examples teach the simulator little (diffuse or positional patterns).
_WEAK_SIMULATION_CATEGORIES = ("no-pattern", "position")


def _clear_example(ex: Example, max_tokens: int) -> bool:
    active = sum(1 for a in ex.activations if a > 0)
    return (
        len(ex.tokens) <= max_tokens
        and 0 < active <= len(ex.tokens) // 2
        and ex.category not in _WEAK_SIMULATION_CATEGORIES
        and not any(is_special(t) for t in ex.tokens)
    )


def simulation_examples(library: Library | None, k: int = 2, max_tokens: int = 24) -> list[Example]:
    """Short, clear worked examples for the simulator (sparse, distinct categories), chosen deterministically."""
    if library is None or len(library) == 0:
        return [FALLBACK_SIMULATION_EXAMPLE]
    pool = sorted((ex for ex in library if _clear_example(ex, max_tokens)), key=lambda ex: (len(ex.tokens), ex.id))
    chosen: list[Example] = []
    seen: set[str] = set()
    for ex in pool:
        if ex.category not in seen:
            chosen.append(ex)
            seen.add(ex.category)
        if len(chosen) >= k:
            break
    return chosen or [FALLBACK_SIMULATION_EXAMPLE]


def _token_list(display: Sequence[str]) -> str:
    return "\n".join(display)


def simulation_user(explanation: str, display: Sequence[str]) -> Message:
    """The written simulator's question for one text: the explanation and the text's tokens, one per line."""
    return {"role": "user", "content": f"Explanation: {explanation}\nTokens:\n{_token_list(display)}\n\nActivations:"}


def simulation_messages(explanation: str, display: Sequence[str], examples: Sequence[Example]) -> list[Message]:
    """Chat for simulating one text: system, worked examples (with true levels), then the question."""
    msgs: list[Message] = [{"role": "system", "content": SIMULATION_SYSTEM}]
    for ex in examples:
        rec = ex.record
        msgs.append(simulation_user(ex.explanation, rec.display))
        msgs.append({"role": "assistant", "content": rec.lines()})
    msgs.append(simulation_user(explanation, display))
    return msgs


#: The local simulator's question (see `naming_messages`).
NAMING_SYSTEM = (
    "You check which words of a text match the description of a feature of a language model. Answer with the "
    "words of the text that match the description, copied exactly, in text order, separated by commas. "
    "If no word matches, answer exactly: None"
)
#: How the local simulator says that no word matches.
NONE_SPELLINGS: tuple[str, ...] = ("None", " None", "none")


def naming_messages(explanation: str, text: str) -> list[Message]:
    """Chat asking which words of a text an explanation describes; the text comes first, so it is a shared prefix."""
    return [
        {"role": "system", "content": NAMING_SYSTEM},
        {
            "role": "user",
            "content": f"Text: {text}\nDescription: {explanation}\nWhich words of the text match the description?",
        },
    ]


def naming_choices(display: Sequence[str]) -> list[list[str]]:
    """Per display token, how a reply that names it could start (each spelling bare or after a space).

    Its word; for the first token of an unspaced run (the "</" of "</li>") also the whole run. Later tokens of
    a run keep only their word, so the comma of "Red," does not inherit the probability of naming "Red".
    """
    words, runs = token_words(display), token_words(display, glue=same_run)
    out = []
    for i, (word, run) in enumerate(zip(words, runs, strict=True)):
        starts_run = i == 0 or not same_run(display[i - 1], display[i])
        spellings = (word, " " + word, run, " " + run) if starts_run else (word, " " + word)
        out.append(list(dict.fromkeys(spellings)))
    return out


#: How many of the strongest tokens an explanation quotes after its phrase.
CITED_TOKENS = 3


def with_cited_tokens(text: str, record: ActivationRecord, k: int = CITED_TOKENS) -> str:
    """The explanation followed by its record's strongest tokens, quoted, so a reader (and the simulator) sees them.

    A phrase alone names a kind of token ("digits"), and the local simulator reads lists of tokens far worse
    than their literal matches (on bench/explain.py's 30 factors: 0.04 for the top-tokens baseline, against
    0.29 for marking its quoted tokens literally, a /tmp diagnostic); quoting the strongest tokens keeps both
    the phrase's generalisation and the tokens' exactness.
    """
    quoted = _quoted_top_tokens(record, k) if k > 0 and text.strip() != NO_PATTERN else []
    return f"{text.rstrip().rstrip('.')} (strongest: {', '.join(quoted)})" if quoted else text


def _quoted_top_tokens(record: ActivationRecord, k: int) -> list[str]:
    """The record's k strongest tokens, each quoted as a JSON string (a quote or line break inside stays readable)."""
    return [json.dumps(tok, ensure_ascii=False) for tok, _ in record.top_tokens(k)]


def top_tokens_explanation(record: ActivationRecord, k: int = 5) -> str:
    """An LLM-free explanation naming the factor's most active tokens (a baseline, and the copy fallback).

    Args:
        record: the factor's record.
        k: how many tokens to name at most.

    Returns:
        ``the tokens "a", "b" and "c"``, or `NO_PATTERN` when no token is active.
    """
    quoted = _quoted_top_tokens(record, k)
    if not quoted:
        return NO_PATTERN
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
    return f"the token{'s' if len(quoted) > 1 else ''} {listed}"


def detection_messages(explanation: str, snippet: str) -> list[Message]:
    """Chat asking whether one snippet matches an explanation."""
    return [
        {"role": "system", "content": DETECTION_SYSTEM},
        {
            "role": "user",
            "content": f"Explanation: {explanation}\nText: {snippet}\n\nDoes the feature fire on this text?",
        },
    ]
