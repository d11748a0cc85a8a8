"""The argument checks every dyndis-envs module uses: accepted values, returned types, exact messages."""

import re

import numpy as np
import pytest

from dyndis_envs.validation import check_bool, check_choice, check_int, check_number, is_integer


@pytest.mark.parametrize(("value", "expected"), [(3, True), (np.int64(3), True), (True, False), (np.bool_(True), False),
                                                 (3.0, False), ("3", False), (np.array(3), False)])
def test__is_integer(value, expected):
    assert is_integer(value) is expected


def test__check_int__returns_a_python_int():
    out = check_int("image_size", np.int32(64), minimum=16, maximum=256)
    assert out == 64 and type(out) is int
    assert check_int("steps", None, minimum=1, optional=True) is None
    assert check_int("any", -5) == -5


@pytest.mark.parametrize(
    ("kwargs", "value", "message"),
    [
        ({"minimum": 16}, 8, "`x` must be an integer >= 16, got 8."),
        ({"minimum": 16}, 64.0, "`x` must be an integer >= 16, got 64.0."),
        ({"minimum": 16}, True, "`x` must be an integer >= 16, got True."),
        ({"minimum": 16, "maximum": 256}, 512, "`x` must be an integer in [16, 256], got 512."),
        ({"maximum": 3}, 4, "`x` must be an integer <= 3, got 4."),
        ({}, "1", "`x` must be an integer, got '1'."),
        ({"minimum": 1}, None, "`x` must be an integer >= 1, got None."),
        ({"minimum": 1, "optional": True}, 0, "`x` must be an integer >= 1 or None, got 0."),
    ],
)
def test__check_int__errors_name_the_argument_the_bounds_and_the_value(kwargs, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_int("x", value, **kwargs)


def test__check_number():
    assert check_number("timeout", 2, minimum=0, exclusive_minimum=True) == 2.0
    assert check_number("backoff", 0, minimum=0) == 0.0
    for value, message in [
        (0, "`timeout` must be a number > 0, got 0."),
        (float("nan"), "`timeout` must be a number > 0, got nan."),
        (True, "`timeout` must be a number > 0, got True."),
        ("1", "`timeout` must be a number > 0, got '1'."),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            check_number("timeout", value, minimum=0, exclusive_minimum=True)
    with pytest.raises(ValueError, match=re.escape("`p` must be a number in [0, 1], got 1.5.")):
        check_number("p", 1.5, minimum=0, maximum=1)


def test__check_bool():
    assert check_bool("cache", np.bool_(False)) is False
    with pytest.raises(TypeError, match=re.escape("`cache` must be True or False, got 1.")):
        check_bool("cache", 1)


def test__check_choice__matches_integers_strictly():
    assert check_choice("channels", np.int64(3), (1, 3)) == 3
    assert check_choice("render_mode", None, ["rgb_array"], optional=True) is None
    for value in (True, 1.0, "1", np.array([1])):
        with pytest.raises(ValueError, match=re.escape(f"Invalid `channels`, expected one of (1, 3), got {value!r}.")):
            check_choice("channels", value, (1, 3))
    message = "Invalid `render_mode`, expected None or one of ['rgb_array'], got 'human'."
    with pytest.raises(ValueError, match=re.escape(message)):
        check_choice("render_mode", "human", ["rgb_array"], optional=True)
