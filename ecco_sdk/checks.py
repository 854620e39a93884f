"""Checks of user input shared across modules (activation arrays, option names), saying what to change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InputError


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
