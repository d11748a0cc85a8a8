"""Registries of the learner's pluggable parts, by name: warm-ups and methods.

A part is one class registered under a name (``@WARMUPS.register("graph")``); the configuration names it
(``warmup.kind``, ``model.method``) and is checked against the registry when it is built, so a part
registered by user code is as selectable as a built-in one. This module imports nothing of the learner,
so the configuration can check names without importing the parts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["METHODS", "WARMUPS", "Registry"]

_C = TypeVar("_C", bound=type)


class Registry(Generic[_C]):
    """Classes registered by name; each registered class gets the name as its ``name`` attribute.

    Args:
        what: What the registry holds, for error messages (``"warm-up"``).
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._classes: dict[str, _C] = {}

    def register(self, name: str) -> Callable[[_C], _C]:
        """Class decorator: register the class under ``name`` (a name is taken once)."""

        def register(cls: _C) -> _C:
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"A {self.what} is already registered as {name!r}: {self._classes[name].__name__}.")
            cls.name = name
            self._classes[name] = cls
            return cls

        return register

    def unregister(self, name: str) -> None:
        """Remove ``name`` (e.g. a test's temporary class)."""
        del self._classes[name]

    def check(self, field: str, name: str) -> str:
        """``name`` if it is registered, else a ValueError naming ``field`` and the registered names."""
        if name not in self._classes:
            raise ValueError(f"{field} must be one of the registered {sorted(self._classes)}, got {name!r}.")
        return name

    def __getitem__(self, name: str) -> _C:
        return self._classes[name]

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._classes)


#: The warm-ups (:class:`~dyndis_learn.warmups.Warmup` subclasses), selected by ``TrainConfig.warmup.kind``.
WARMUPS: Registry = Registry("warm-up")
#: The methods (:class:`~dyndis_learn.methods.Method` subclasses), selected by ``TrainConfig.model.method``.
METHODS: Registry = Registry("method")
