"""The code blocks of the docs' extending page run as they are."""

import re
from pathlib import Path

import pytest

from dyndis_learn.registry import METHODS, WARMUPS

PAGE = Path(__file__).parents[2] / "docs" / "extending.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.DOTALL)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test__extending_page_examples_run(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = {registry: set(registry.names()) for registry in (METHODS, WARMUPS)}
    try:
        exec(compile(BLOCKS[index], f"{PAGE.name}[{index}]", "exec"), {"__name__": "docs_example"})
    finally:
        for registry, names in before.items():
            for name in set(registry.names()) - names:
                registry.unregister(name)


def test__the_page_has_both_examples():
    assert len(BLOCKS) == 2 and "register_warmup" in BLOCKS[0] and "register_method" in BLOCKS[1]
