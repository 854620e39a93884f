"""Checks of user input shared across modules (activation arrays, option names, texts, seconds from the environment)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import ConfigurationError, EccoError, InputError

_SURROGATE = re.compile("[\ud800-\udfff]")


def as_real_array(x: Any, name: str, dtype: type = np.float64) -> np.ndarray:
    """`x` as a real-valued numpy array of `dtype`, so that every analysis sees one type and bad input fails early.

    Args:
        x: A numpy array, torch tensor (any device or dtype, bfloat16 included) or nested lists of numbers.
        name: What to call `x` in the error message.
        dtype: The numpy dtype of the result.

    Returns:
        The values as a numpy array of `dtype` (no copy when it already is one).
    """
    if type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach"):
        if x.is_complex():
            raise InputError(f"{name} is a complex tensor; pass real-valued activations.")
        x = x.detach().cpu().double().numpy()  # .double() first: numpy has no bfloat16
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} could not be read as a numeric array ({exc}); pass a numpy array or tensor.") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"{name} has dtype {arr.dtype}; pass numeric activations (a float array or tensor).")
    if np.iscomplexobj(arr):
        raise InputError(f"{name} is complex; pass real-valued activations.")
    return arr.astype(dtype, copy=False)


def as_activations(x: Any, name: str = "activations") -> np.ndarray:
    """A numpy array or torch tensor shaped (layers, neurons, positions) as float32, refusing other shapes early.

    Args:
        x: FFN activations, e.g. `OutputSeq.activations`.
        name: what to call `x` in the error message.

    Returns:
        The activations as a float32 numpy array with at least one layer, neuron and position.
    """
    arr = as_real_array(x, name, np.float32)
    if arr.ndim != 3:
        raise InputError(
            f"{name} must be shaped (layers, neurons, positions), got shape {arr.shape}; for one layer use acts[None]"
        )
    if min(arr.shape) == 0:
        raise InputError(f"{name} is empty (shape {arr.shape}); it needs at least one layer, neuron and position")
    return arr


def check_tokens(tokens: Any, n_positions: int) -> list[str]:
    """One display string per position, so that factors and scores line up with the text.

    Args:
        tokens: the display string of each position.
        n_positions: how many positions the activations hold.

    Returns:
        The tokens as a list of strings.
    """
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise InputError(f"tokens must be a list of strings, got {type(tokens).__name__}")
    toks = list(tokens)
    if not all(isinstance(t, str) for t in toks):
        raise InputError("tokens must all be strings (display text, one per position)")
    if len(toks) != n_positions:
        raise InputError(f"got {len(toks)} tokens for {n_positions} activation positions; pass one token per position")
    return toks


def is_int(value: Any) -> bool:
    """Whether `value` is a Python or numpy integer; True and False are not, so a flag never becomes a count.

    Args:
        value: Any value.

    Returns:
        True for int and numpy integer values other than bool.
    """
    return not isinstance(value, bool | np.bool_) and isinstance(value, int | np.integer)


def short(value: Any, limit: int = 80) -> str:
    """`repr(value)` cut to `limit` characters, so an error never echoes a huge crafted value.

    Args:
        value: The value to show.
        limit: The most characters returned.

    Returns:
        The repr, ending in "..." when it was cut.
    """
    try:
        text = repr(value)
    except ValueError:  # an int over Python's 4300-digit repr limit
        return "(a number with too many digits)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _integer_phrase(minimum: int | None, maximum: int | None) -> str:
    """'an integer' with its bounds, e.g. 'an integer in 0..12' or 'an integer >= 1'."""
    if minimum is not None and maximum is not None:
        return f"an integer in {minimum}..{maximum}"
    if minimum is not None:
        return f"an integer >= {minimum}"
    if maximum is not None:
        return f"an integer <= {maximum}"
    return "an integer"


def check_int(
    value: Any,
    name: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    hint: str = "",
    what: str | None = None,
    error: type[EccoError] = InputError,
) -> int:
    """`value` as an int if it is a whole number within the bounds, else an error that says what to pass.

    The message reads "{name} must be {what}{hint}, got {value!r}", e.g. "top_k must be an integer >= 1 or
    None, got 0". Floats such as 2.0 and booleans are refused, so a flag or a fraction never becomes a count.

    Args:
        value: The argument to check.
        name: The argument's name as the caller wrote it.
        minimum: The smallest allowed value (None: no lower bound).
        maximum: The largest allowed value (None: no upper bound).
        hint: Text added after the bounds, e.g. " or None" or " (0 = embeddings)".
        what: What the value must be, replacing "an integer" and its bounds, e.g. "a positive integer".
        error: The EccoError subclass to raise (FileFormatError for a value read from a file).

    Returns:
        The value as a Python int.
    """
    ok = is_int(value) and (minimum is None or int(value) >= minimum) and (maximum is None or int(value) <= maximum)
    if not ok:
        raise error(f"{name} must be {what or _integer_phrase(minimum, maximum)}{hint}, got {short(value)}")
    return int(value)


def check_positive(value: Any, name: str, *, hint: str = "", error: type[EccoError] = InputError) -> float:
    """`value` as a float if it is a finite real number above zero (a tolerance, a width, a time limit).

    The message reads "{name} must be a positive number{hint}, got {value!r}"; booleans, NaN and infinity
    are refused.

    Args:
        value: The argument to check.
        name: The argument's name as the caller wrote it.
        hint: Text added after "a positive number", e.g. " (an L1 distance, e.g. 0.05)".
        error: The EccoError subclass to raise.

    Returns:
        The value as a Python float.
    """
    real = not isinstance(value, bool | np.bool_) and isinstance(value, int | float | np.integer | np.floating)
    try:
        ok = real and math.isfinite(value) and value > 0
    except OverflowError:  # an int too large for a float
        ok = False
    if not ok:
        raise error(f"{name} must be a positive number{hint}, got {short(value)}")
    return float(value)


def check_index(value: Any, name: str, low: int, high: int) -> int:
    """`value` as an int if it is an integer index in [low, high], so an off-by-one shows up as a clear message.

    Args:
        value: The index to check.
        name: The argument's name as the caller wrote it, e.g. "target_positions[2]".
        low: The smallest valid index.
        high: The largest valid index (inclusive).

    Returns:
        The index as a Python int.
    """
    index = check_int(value, name)
    if not low <= index <= high:
        raise InputError(f"{name}={index} is out of range: it must be between {low} and {high}.")
    return index


def check_choice(value: Any, name: str, allowed: Sequence[str]) -> str:
    """`value` if it is one of the `allowed` option names, else an InputError listing them.

    Args:
        value: The option the caller passed.
        name: The argument's name as the caller wrote it.
        allowed: The valid option names.

    Returns:
        The option name, unchanged.
    """
    if not isinstance(value, str) or value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def check_text(text: Any, name: str = "text", allow_blank: bool = False) -> str:
    """`text` if it is a non-empty string a tokenizer can encode, else an InputError that says what to change.

    A lone surrogate (U+D800..U+DFFF, e.g. from `bytes.decode(errors="surrogateescape")` or a JSON "\\ud800"
    escape) is not a character and cannot be encoded as UTF-8; Hugging Face tokenizers raise a bare TypeError on it.

    Args:
        text: The text the caller passed.
        name: The argument's name as the caller wrote it.
        allow_blank: Accept a string of only whitespace (still not an empty one).

    Returns:
        The text, unchanged.
    """
    if not isinstance(text, str):
        hint = "; decode it first, e.g. data.decode('utf-8')" if isinstance(text, bytes | bytearray) else ""
        raise InputError(f"{name} must be a string, got {type(text).__name__}{hint}")
    if not (text if allow_blank else text.strip()):
        raise InputError(f"{name} is empty; pass at least one word")
    bad = _SURROGATE.search(text)
    if bad is not None:
        raise InputError(
            f"{name} contains a lone surrogate U+{ord(bad.group()):04X} at character {bad.start()}, which is not a "
            "character and cannot be encoded as UTF-8; remove it, or decode the source bytes as UTF-8 with "
            "errors='replace'"
        )
    return text


def seconds_from_env(name: str, default: float) -> float:
    """A positive finite number of seconds from environment variable `name` (unset or empty: `default`).

    Args:
        name: The environment variable, e.g. "ECCO_SDK_CHROMA_TIMEOUT".
        default: The seconds to use when it is unset or empty.

    Returns:
        The seconds; a value that is not a positive finite number raises ConfigurationError.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {raw[:80]!r}")
    return value
