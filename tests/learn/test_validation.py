import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import pytest

from dyndis_learn.validation import Ge, Gt, Le, check_int, validate_fields


@dataclass
class Example:
    count: Annotated[int, Ge(1)] = 1
    rate: Annotated[float, Gt(0), Le(1)] = 0.5
    flag: bool = False
    mode: Literal["a", "b"] = "a"
    limit: Annotated[int, Ge(0)] | None = None
    sizes: Annotated[tuple[int, ...], Ge(1)] = (1, 2)
    options: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        validate_fields(self)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 0}, "Example.count must be an integer >= 1, got 0."),
        ({"count": 2.0}, "Example.count must be an integer >= 1, got 2.0."),
        ({"count": True}, "Example.count must be an integer >= 1, got True."),
        ({"rate": 0.0}, "Example.rate must be a finite number > 0 and <= 1, got 0.0."),
        ({"rate": float("nan")}, "Example.rate must be a finite number > 0 and <= 1, got nan."),
        ({"flag": 1}, "Example.flag must be True or False, got 1."),
        ({"mode": "c"}, "Example.mode must be one of ['a', 'b'], got 'c'."),
        ({"limit": -1}, "Example.limit must be an integer >= 0 (or None), got -1."),
        ({"sizes": (1, 0)}, "Example.sizes[1] must be an integer >= 1, got 0."),
        ({"sizes": "12"}, "Example.sizes must be a non-empty sequence, got '12'."),
        ({"options": [1]}, "Example.options must be a mapping (a dict) (or None), got [1]."),
    ],
)
def test__declared_rules_give_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Example(**kwargs)


def test__valid_values_are_kept_and_normalised():
    example = Example(count=3, rate=1, limit=None, sizes=[4, 5], options={"x": 1})
    assert example.sizes == (4, 5) and example.rate == 1 and example.options == {"x": 1}


def test__check_int():
    assert check_int("n", np.int64(3), minimum=1) == 3
    with pytest.raises(ValueError, match=re.escape("`n` must be a positive integer, got 0.")):
        check_int("n", 0, minimum=1)
    with pytest.raises(ValueError, match=re.escape("`seed` must be a non-negative integer, got -1.")):
        check_int("seed", -1, minimum=0)
    with pytest.raises(ValueError, match=re.escape("`k` must be an integer >= 2 and <= 5, got 7.")):
        check_int("k", 7, minimum=2, maximum=5)
    with pytest.raises(ValueError, match=re.escape("`k` must be a positive integer, got True.")):
        check_int("k", True, minimum=1)


def test__a_union_of_alternatives_names_each_one():
    @dataclass
    class Choice:
        size: Annotated[int, Ge(2)] | Literal["auto"] = "auto"

        def __post_init__(self) -> None:
            validate_fields(self)

    assert Choice().size == "auto" and Choice(size=3).size == 3
    for bad in (1, "big", None):
        with pytest.raises(ValueError, match=re.escape(f"Choice.size must be an integer >= 2 or 'auto', got {bad!r}.")):
            Choice(size=bad)
