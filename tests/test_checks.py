"""The shared argument checks: integers, indices and positive numbers, with messages that say what to pass."""

from __future__ import annotations

import numpy as np
import pytest

from ecco_sdk.checks import check_index, check_int, check_positive, is_int
from ecco_sdk.errors import FileFormatError, InputError


def test_is_int_refuses_bools_and_floats():
    assert is_int(3) and is_int(np.int64(3)) and is_int(-1)
    assert not is_int(True) and not is_int(np.bool_(True)) and not is_int(2.0) and not is_int("2")


@pytest.mark.parametrize(
    ("kwargs", "value", "message"),
    [
        ({}, 2.5, "n must be an integer, got 2.5"),
        ({"minimum": 1}, 0, "n must be an integer >= 1, got 0"),
        ({"maximum": 4}, 5, "n must be an integer <= 4, got 5"),
        (
            {"minimum": 0, "maximum": 4, "hint": " (0 = embeddings)"},
            True,
            r"n must be an integer in 0..4 \(0 = embeddings\), got True",
        ),
        (
            {"minimum": 1, "what": "a positive integer", "hint": " or None"},
            -3,
            "n must be a positive integer or None, got -3",
        ),
    ],
)
def test_check_int_messages(kwargs, value, message):
    with pytest.raises(InputError, match=message):
        check_int(value, "n", **kwargs)


def test_check_int_returns_a_python_int_and_cuts_long_values():
    got = check_int(np.int32(7), "n", minimum=7, maximum=7)
    assert got == 7 and type(got) is int
    with pytest.raises(InputError) as info:
        check_int(list(range(1000)), "n")
    assert len(str(info.value)) < 120 and str(info.value).endswith("...")
    with pytest.raises(FileFormatError):
        check_int("1", "version", error=FileFormatError)


def test_check_index_and_check_positive():
    assert check_index(np.int64(-1), "chosen[0]", -1, 3) == -1
    with pytest.raises(InputError, match=r"target=5 is out of range: it must be between 0 and 4\."):
        check_index(5, "target", 0, 4)
    with pytest.raises(InputError, match="target must be an integer"):
        check_index(1.0, "target", 0, 4)
    assert check_positive(np.float32(0.5), "tol") == 0.5
    for bad in (0, -1.0, float("nan"), float("inf"), True, "1"):
        with pytest.raises(InputError, match="tol must be a positive number"):
            check_positive(bad, "tol")


def test_huge_numbers_get_the_package_error():
    with pytest.raises(InputError, match="x must be a positive number"):
        check_positive(10**400, "x")
    with pytest.raises(InputError, match="too many digits"):
        check_int(10**5000, "n", maximum=5)
