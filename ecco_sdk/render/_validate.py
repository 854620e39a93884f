"""Argument checks shared by the render functions, so bad input fails early with a message saying what to change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ecco_sdk.errors import InputError


def token_list(tokens: Any, name: str = "tokens", *, allow_empty: bool = False) -> list[str]:
    """Accept any sequence of strings as tokens, because callers pass lists, tuples or numpy string arrays.

    Args:
        tokens: The tokens the caller passed.
        name: The argument's name for error messages.
        allow_empty: Accept an empty sequence.

    Returns:
        The tokens as a list of str.
    """
    if isinstance(tokens, str) or not isinstance(tokens, Sequence | np.ndarray):
        raise InputError(f"{name} must be a list of strings (one per token), got {type(tokens).__name__}.")
    out = list(tokens)
    for i, tok in enumerate(out):
        if isinstance(tok, np.str_):
            out[i] = str(tok)
        elif not isinstance(tok, str):
            raise InputError(f"{name}[{i}] must be a string, got {type(tok).__name__}; decode token ids first.")
    if not out and not allow_empty:
        raise InputError(f"{name} is empty: pass at least one token.")
    return out


def float_array(values: Any, name: str, ndim: int, *, allow_nan: bool = False) -> np.ndarray:
    """Turn array-likes into a float array of a fixed rank, so shape errors are reported in the caller's terms.

    Args:
        values: An array, tensor-like or nested lists of numbers.
        name: The argument's name for error messages.
        ndim: The required number of dimensions.
        allow_nan: Accept NaN values (infinity is always refused).

    Returns:
        A non-empty float array with `ndim` dimensions.
    """
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be numeric (an array or nested lists of numbers): {exc}") from exc
    if arr.ndim != ndim:
        shape = "(n,)" if ndim == 1 else "(rows, columns)"
        raise InputError(f"{name} must be {ndim}-dimensional {shape}, got shape {arr.shape}.")
    if arr.size == 0:
        raise InputError(f"{name} is empty (shape {arr.shape}): pass at least one value.")
    if np.isinf(arr).any():
        raise InputError(f"{name} contains infinite values: replace them with finite numbers.")
    if not allow_nan and np.isnan(arr).any():
        raise InputError(f"{name} contains NaN values: replace them with numbers.")
    return arr


def label_list(labels: Any, name: str, expected: int) -> list[str]:
    """Check axis labels count against the data, because a silent mismatch mislabels a figure.

    Args:
        labels: The labels the caller passed.
        name: The argument's name for error messages.
        expected: How many rows or columns the data has.

    Returns:
        The labels as strings.
    """
    out = [str(x) for x in token_list_like(labels, name)]
    if len(out) != expected:
        raise InputError(f"{name} has {len(out)} labels but the data has {expected}: pass one label per row/column.")
    return out


def token_list_like(values: Any, name: str) -> list[Any]:
    """Accept a sequence but not a bare string, since a string would be split into characters by mistake.

    Args:
        values: The sequence the caller passed.
        name: The argument's name for error messages.

    Returns:
        The values as a list.
    """
    if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray):
        raise InputError(f"{name} must be a list, got {type(values).__name__}.")
    return list(values)
