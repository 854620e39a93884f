"""Input coercion by name: each endpoint argument is checked, and an error names the field and the range.

Gradio's own conversion is off for the endpoints (space/app.py), so a number sent as text or a null reaches
these functions, which accept what is unambiguous and refuse the rest with an `InputError` that repeats at
most `ECHO_CHARS` characters of what was sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import InputError

#: Most characters of a caller's input an error message repeats.
ECHO_CHARS = 80


def shown(value: Any, limit: int = ECHO_CHARS) -> str:
    """A caller's value as an error message repeats it: its repr, cut to `limit` characters.

    Args:
        value: anything a caller sent.
        limit: most characters of the repr kept.

    Returns:
        The repr, or its first `limit` characters and the full length.
    """
    try:
        text = repr(value)
    except ValueError:  # an int too long to print (Python refuses over 4300 digits)
        return "(a number with too many digits)"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _number(value: Any) -> Any:
    """A number typed as text ("8", " 0.5 ") becomes that number; anything else is left for the range check."""
    if isinstance(value, str) and len(value) <= 40:
        text = value.strip()
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
    return value


def as_int(value: Any, name: str, lo: int, hi: int, hint: str = "", default: int | None = None) -> int:
    """An integer in [lo, hi] (integral floats and numeric text accepted; None: `default`), else a message.

    Args:
        value: what the caller sent.
        name: the field's name, as the message says it.
        lo: smallest allowed value.
        hi: largest allowed value.
        hint: text appended to the range in the message (e.g. " (this app's limit)").
        default: the value of a missing (None) field; None makes the field required.

    Returns:
        The integer.

    Raises:
        InputError: the value is missing, not an integer, or out of range.
    """
    if value is None and default is not None:
        return default
    if value is None:
        raise InputError(f"{name} is missing: give an integer from {lo} to {hi}{hint}")
    number = _number(value)
    if isinstance(number, float) and number.is_integer() and abs(number) < 2**53:
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int) or not lo <= number <= hi:
        raise InputError(f"{name} must be an integer from {lo} to {hi}{hint}, got {shown(value)}")
    return number


def as_float(value: Any, name: str, lo: float, hi: float, default: float | None = None) -> float:
    """A number in [lo, hi] (numeric text accepted; NaN refused; None: `default`), else a message with the range.

    Args:
        value: what the caller sent.
        name: the field's name, as the message says it.
        lo: smallest allowed value.
        hi: largest allowed value.
        default: the value of a missing (None) field; None makes the field required.

    Returns:
        The number as a float.

    Raises:
        InputError: the value is missing, not a number, NaN or out of range.
    """
    if value is None and default is not None:
        return default
    if value is None:
        raise InputError(f"{name} is missing: give a number from {lo} to {hi}")
    number = _number(value)
    if isinstance(number, bool) or not isinstance(number, int | float) or not lo <= number <= hi:
        raise InputError(f"{name} must be a number from {lo} to {hi}, got {shown(value)}")
    return float(number)


def as_bool(value: Any, name: str, default: bool | None = None) -> bool:
    """A checkbox value: true/false (or 1/0, "true"/"false" as text; None: `default`), else a message.

    Args:
        value: what the caller sent.
        name: the field's name, as the message says it.
        default: the value of a missing (None) field; None makes the field required.

    Returns:
        The boolean.

    Raises:
        InputError: the value is not one of the accepted spellings.
    """
    if value is None and default is not None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise InputError(f"{name} must be true or false, got {shown(value)}")


def as_text(value: Any, name: str, max_chars: int, default: str | None = "") -> str:
    """Text of at most `max_chars` characters that is valid Unicode (None: `default`, when one is given).

    Args:
        value: what the caller sent.
        name: the field's name, as the message says it.
        max_chars: most characters accepted.
        default: the value of a missing (None) field; None makes the field required.

    Returns:
        The text, unchanged.

    Raises:
        InputError: the value is not text, too long, or holds a lone surrogate.
    """
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise InputError(f"{name} must be text, got {shown(value)}")
    if len(value) > max_chars:
        raise InputError(f"{name} is {len(value)} characters; this app accepts at most {max_chars}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = value[err.start]
        raise InputError(f"{name} holds a lone surrogate {bad!r} at character {err.start}, which is not text") from None
    return value


def as_choice(value: Any, name: str, allowed: Sequence[str], default: str | None = None) -> str:
    """One of the `allowed` option names (spaces around ignored; None: `default`), else a message listing them.

    Args:
        value: what the caller sent.
        name: the field's name, as the message says it.
        allowed: the option names.
        default: the value of a missing (None) field; None makes the field required.

    Returns:
        The option name, stripped.

    Raises:
        InputError: the value is not one of `allowed`.
    """
    if value is None and default is not None:
        return default
    if isinstance(value, str) and value.strip() in allowed:
        return value.strip()
    raise InputError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {shown(value)}")


def layer_bounds(from_layer: Any, to_layer: Any) -> tuple[int | None, int | None]:
    """API layer range: integers; to_layer -1 means 'through the last layer' (the SDK checks the bounds).

    Args:
        from_layer: first layer, 0-based.
        to_layer: end layer, exclusive; -1 for through the last layer.

    Returns:
        (from_layer, to_layer) for the SDK, with -1 as None.

    Raises:
        InputError: either bound is not an integer.
    """
    lo = as_int(from_layer, "from_layer", -(10**6), 10**6)
    hi = as_int(to_layer, "to_layer", -(10**6), 10**6)
    return lo, (None if hi == -1 else hi)


def _items(value: Any, name: str, max_items: int, split: Callable[[str], list[str]]) -> list[str]:
    """Non-empty text items of a text box (split) or of a list, bounded in number and length before use."""
    if isinstance(value, str):
        items = split(as_text(value, name, max_items * 4096))
    elif isinstance(value, list | tuple):
        items = [as_text(v, f"each of {name}", 4096) for v in value[: max_items + 1]]
    else:
        raise InputError(f"{name} must be text or a list of texts, got {shown(value)}")
    return [t for t in items if t.strip()]


def watch_list(watch: str | Sequence[str], limit: int) -> list[str]:
    """Watched tokens from a list or a comma-separated string (spaces kept: ' is, are' -> [' is', ' are']).

    Args:
        watch: a comma-separated string or a list of token texts.
        limit: most tokens accepted.

    Returns:
        The non-empty tokens, leading spaces kept.

    Raises:
        InputError: more than `limit` tokens, or an item that is not text.
    """
    items = _items(watch, "watch", limit * 2, lambda text: text.split(","))
    if len(items) > limit:
        raise InputError(f"at most {limit} watched tokens, got {len(items)}")
    return items


def text_lines(text: str | Sequence[str], max_items: int = 64) -> list[str]:
    """Non-empty lines of a text box (or the items of a list), named held_out in messages.

    Args:
        text: one text per line, or a list of texts.
        max_items: bound on the items read (the caller checks its own, smaller limit).

    Returns:
        The non-empty lines.

    Raises:
        InputError: the value is not text or a list of texts, or an item is too long.
    """
    return _items(text, "held_out", max_items, str.splitlines)
