"""Checks of user input shared across modules (activation arrays, option names, texts, seconds from the environment)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import ConfigurationError, InputError

_SURROGATE = re.compile("[\ud800-\udfff]")


def as_real_array(x: Any, name: str, dtype: type = np.float64) -> np.ndarray:
    """`x` as a real-valued numpy array of `dtype`, so that every analysis sees one type and bad input fails early."""
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


def check_choice(value: Any, name: str, allowed: Sequence[str]) -> str:
    """`value` if it is one of the `allowed` option names, else an InputError listing them."""
    if not isinstance(value, str) or value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def check_text(text: Any, name: str = "text", allow_blank: bool = False) -> str:
    """`text` if it is a non-empty string a tokenizer can encode, else an InputError that says what to change.

    A lone surrogate (U+D800..U+DFFF, e.g. from `bytes.decode(errors="surrogateescape")` or a JSON "\\ud800"
    escape) is not a character and cannot be encoded as UTF-8; Hugging Face tokenizers raise a bare TypeError on it.
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
    """A positive finite number of seconds from environment variable `name` (unset or empty: `default`)."""
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
