"""Checks of user-given arguments, shared by every dyndis-envs module.

Each check returns the value in its plain Python form (an ``int`` for a NumPy integer) or raises an error
that names the argument, the allowed values and the value received, e.g.
"`image_size` must be an integer >= 16, got 8.". Numeric checks raise ``ValueError`` for a value of the
wrong type as well as for one out of range, so one ``except ValueError`` catches every bad number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeVar, overload

import numpy as np

__all__ = ["check_bool", "check_choice", "check_int", "check_number", "is_integer"]

_T = TypeVar("_T")


def is_integer(value: Any) -> bool:
    """Whether ``value`` is a Python or NumPy integer; bools (Python or NumPy) are not."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _bounds(minimum: float | None, maximum: float | None, *, exclusive_minimum: bool = False) -> str:
    if minimum is not None and maximum is not None:
        return f" in {'(' if exclusive_minimum else '['}{minimum}, {maximum}]"
    if minimum is not None:
        return f" {'>' if exclusive_minimum else '>='} {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


@overload
def check_int(
    name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None, optional: Literal[False] = False
) -> int: ...


@overload
def check_int(
    name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None, optional: bool
) -> int | None: ...


def check_int(
    name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None, optional: bool = False
) -> int | None:
    """Validate an integer argument and return it as a Python ``int`` (or None where ``optional``).

    Args:
        name: The argument's name, for the message.
        value: What the caller passed.
        minimum: The smallest allowed value, or None for no lower bound.
        maximum: The largest allowed value, or None for no upper bound.
        optional: Also accept None (and return it).

    Raises:
        ValueError: Unless ``value`` is an integer (not a bool, not a float) within the bounds, e.g.
            "`num_envs` must be an integer >= 1, got 0.".

    Example:
        >>> check_int("image_size", np.int64(64), minimum=16)
        64
    """
    if optional and value is None:
        return None
    if not is_integer(value) or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        allowed = f"an integer{_bounds(minimum, maximum)}{' or None' if optional else ''}"
        raise ValueError(f"`{name}` must be {allowed}, got {value!r}.")
    return int(value)


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
) -> float:
    """Validate a real-number argument (an int or a float, not a bool) and return it as a ``float``.

    Args:
        name: The argument's name, for the message.
        value: What the caller passed.
        minimum: The lower bound, or None for none.
        maximum: The largest allowed value, or None for no upper bound.
        exclusive_minimum: The value must be strictly greater than ``minimum``.

    Raises:
        ValueError: Unless ``value`` is a real number (not NaN) within the bounds, e.g.
            "`timeout` must be a number > 0, got 0.".
    """
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if ok:
        number = float(value)
        ok = number == number  # NaN compares unequal to itself and satisfies no bound
        if minimum is not None:
            ok = ok and (number > minimum if exclusive_minimum else number >= minimum)
        if maximum is not None:
            ok = ok and number <= maximum
    if not ok:
        allowed = f"a number{_bounds(minimum, maximum, exclusive_minimum=exclusive_minimum)}"
        raise ValueError(f"`{name}` must be {allowed}, got {value!r}.")
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    """Validate a flag: ``True`` or ``False`` (a NumPy bool is accepted and returned as a Python bool).

    Raises:
        TypeError: For anything else, e.g. "`cache` must be True or False, got 'yes'.".
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False, got {value!r}.")
    return bool(value)


def _matches(value: Any, choice: Any) -> bool:
    """Whether ``value`` is ``choice``: equal, and an integer where the choice is one (so 1.0 and True are not 1)."""
    if is_integer(choice):
        return is_integer(value) and value == choice
    if isinstance(value, (bool, np.bool_)) != isinstance(choice, (bool, np.bool_)):
        return False
    try:
        return bool(value == choice)
    except (TypeError, ValueError):  # e.g. an array compared with a string
        return False


@overload
def check_choice(name: str, value: Any, choices: Sequence[_T], *, optional: Literal[False] = False) -> _T: ...


@overload
def check_choice(name: str, value: Any, choices: Sequence[_T], *, optional: bool) -> _T | None: ...


def check_choice(name: str, value: Any, choices: Sequence[_T], *, optional: bool = False) -> _T | None:
    """Validate that ``value`` is one of ``choices`` and return the matching choice.

    Args:
        name: The argument's name, for the message.
        value: What the caller passed.
        choices: The allowed values; the message shows them as given (a tuple or a list).
        optional: Also accept None (and return it).

    Raises:
        ValueError: For any other value, e.g. "Invalid `shape`, expected one of ('square', 'disc'), got
            'triangle'." (with ``optional``: "expected None or one of ...").

    Example:
        >>> check_choice("channels", np.int64(3), (1, 3))
        3
    """
    if optional and value is None:
        return None
    for choice in choices:
        if _matches(value, choice):
            return choice
    expected = f"None or one of {choices!r}" if optional else f"one of {choices!r}"
    raise ValueError(f"Invalid `{name}`, expected {expected}, got {value!r}.")
