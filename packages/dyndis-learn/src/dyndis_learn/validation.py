"""Validation of arguments and of configuration dataclasses, declared once per field.

A configuration field declares what it accepts in its type: ``int``, ``float``, ``bool``, ``str``, a
``Literal`` of choices, a union of these (``X | None``, ``int | Literal["auto"]``), ``tuple[int, ...]`` or a
``Mapping``, optionally ``Annotated`` with bounds (:class:`Ge`, :class:`Gt`, :class:`Le`) or, for a string, a
pattern (:class:`Matches`). :func:`validate_fields` checks every field of a dataclass against its
declaration (dataclasses call it from ``__post_init__``), and :func:`check_int` checks a single argument of a
function. Every error names the argument, what is allowed and the value received.

Example:
    >>> from dataclasses import dataclass
    >>> from typing import Annotated
    >>> @dataclass
    ... class Example:
    ...     steps: Annotated[int, Ge(1)] = 10
    ...     def __post_init__(self) -> None:
    ...         validate_fields(self)
    >>> Example(steps=0)
    Traceback (most recent call last):
    ...
    ValueError: Example.steps must be an integer >= 1, got 0.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union

import numpy as np

__all__ = ["Ge", "Gt", "Le", "Lt", "Matches", "check_int", "validate_fields"]


@dataclass(frozen=True)
class Ge:
    """Bound: the value must be ``>= minimum``."""

    minimum: float

    def holds(self, value: float) -> bool:
        """Whether ``value`` satisfies the bound."""
        return value >= self.minimum

    def __str__(self) -> str:
        return f">= {self.minimum:g}"


@dataclass(frozen=True)
class Gt:
    """Bound: the value must be ``> minimum``."""

    minimum: float

    def holds(self, value: float) -> bool:
        """Whether ``value`` satisfies the bound."""
        return value > self.minimum

    def __str__(self) -> str:
        return f"> {self.minimum:g}"


@dataclass(frozen=True)
class Le:
    """Bound: the value must be ``<= maximum``."""

    maximum: float

    def holds(self, value: float) -> bool:
        """Whether ``value`` satisfies the bound."""
        return value <= self.maximum

    def __str__(self) -> str:
        return f"<= {self.maximum:g}"


@dataclass(frozen=True)
class Lt:
    """Bound: the value must be ``< maximum``."""

    maximum: float

    def holds(self, value: float) -> bool:
        """Whether ``value`` satisfies the bound."""
        return value < self.maximum

    def __str__(self) -> str:
        return f"< {self.maximum:g}"


@dataclass(frozen=True)
class Matches:
    """Rule for a string: it must match ``pattern`` in full; ``allowed`` says so in words for the error."""

    pattern: str
    allowed: str

    def holds(self, value: str) -> bool:
        """Whether ``value`` matches the pattern in full."""
        return re.fullmatch(self.pattern, value) is not None

    def __str__(self) -> str:
        return self.allowed


_Bound = Ge | Gt | Le | Lt | Matches


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _bounds_text(bounds: tuple[_Bound, ...]) -> str:
    return "".join(f" {'and ' if i else ''}{b}" for i, b in enumerate(bounds))


def _check(owner: str, name: str, value: Any, hint: Any, bounds: tuple[_Bound, ...] = ()) -> Any:
    """Check ``value`` against the type ``hint``; returns it, normalised (sequences to tuples, mappings to dicts)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    where = f"{owner}.{name}"
    if origin is typing.Annotated:
        return _check(owner, name, value, args[0], bounds + tuple(a for a in args[1:] if isinstance(a, _Bound)))
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for inner in (a for a in args if a is not type(None)):
            try:
                return _check(owner, name, value, inner, bounds)
            except ValueError as exc:
                errors.append(str(exc))
        none = " (or None)" if type(None) in args else ""
        head, tail = f"{where} must be ", f", got {value!r}."
        if len(errors) == 1 or not all(e.startswith(head) and e.endswith(tail) for e in errors):
            raise ValueError(errors[0].replace(", got", f"{none}, got", 1)) from None
        allowed = " or ".join(e[len(head) : -len(tail)] for e in errors)  # each "<where> must be <what>, got .."
        raise ValueError(f"{head}{allowed}{none}{tail}") from None
    if origin is Literal:
        if value not in args:
            allowed = repr(args[0]) if len(args) == 1 else f"one of {list(args)}"
            raise ValueError(f"{where} must be {allowed}, got {value!r}.")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be True or False, got {value!r}.")
        return value
    if hint is int:
        if not _is_int(value) or not all(b.holds(value) for b in bounds):
            raise ValueError(f"{where} must be an integer{_bounds_text(bounds)}, got {value!r}.")
        return value
    if hint is float:
        if not _is_number(value) or not all(b.holds(value) for b in bounds):
            raise ValueError(f"{where} must be a finite number{_bounds_text(bounds)}, got {value!r}.")
        return value
    if hint is str:
        rules = [b for b in bounds if isinstance(b, Matches)]
        ok = isinstance(value, str) and bool(value)
        if not ok or not all(rule.holds(value) for rule in rules):
            allowed = " and ".join(map(str, rules)) if rules else "a non-empty string"
            raise ValueError(f"{where} must be {allowed}, got {value!r}.")
        return value
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__") or not list(value):
            raise ValueError(f"{where} must be a non-empty sequence, got {value!r}.")
        return tuple(_check(owner, f"{name}[{i}]", item, args[0], bounds) for i, item in enumerate(value))
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ValueError(f"{where} must be a mapping (a dict), got {value!r}.")
        return dict(value)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, Mapping) and hasattr(hint, "from_dict"):
            return hint.from_dict(value)
        if not isinstance(value, hint):
            raise ValueError(f"{where} must be a {hint.__name__}, got {type(value).__name__}.")
        return value
    raise TypeError(f"{where}: validation does not know the declared type {hint!r}.")  # a bug, not bad input


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def validate_fields(instance: Any) -> None:
    """Check every field of dataclass ``instance`` against its declared type and bounds, in place.

    Sequences declared ``tuple[int, ...]`` are stored as tuples and mappings as dicts.

    Raises:
        ValueError: For the first field whose value is not allowed, naming it, the rule and the value.
    """
    cls = type(instance)
    hints = _hints(cls)
    for field in dataclasses.fields(instance):
        value = _check(cls.__name__, field.name, getattr(instance, field.name), hints[field.name])
        object.__setattr__(instance, field.name, value)


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """Check one integer argument (bools and floats are refused); returns it as a Python int.

    Args:
        name: The argument's name, as the caller spells it.
        value: The value received (Python or NumPy integer).
        minimum: Smallest allowed value (None: no bound).
        maximum: Largest allowed value (None: no bound).

    Raises:
        ValueError: Naming the argument, the allowed range and the value.
    """
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    ok = ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        if minimum == 1 and maximum is None:
            allowed = "a positive integer"
        elif minimum == 0 and maximum is None:
            allowed = "a non-negative integer"
        else:
            bounds = [f">= {minimum}" if minimum is not None else "", f"<= {maximum}" if maximum is not None else ""]
            allowed = "an integer " + " and ".join(b for b in bounds if b)
        raise ValueError(f"`{name}` must be {allowed.strip()}, got {value!r}.")
    return int(value)
