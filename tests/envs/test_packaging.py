"""Packaging of both packages: the Apache-2.0 license file, py.typed markers shipped as package data, metadata."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {"dyndis-envs": "dyndis_envs", "dyndis-learn": "dyndis_learn"}


def test__license_is_the_full_apache_2_text():
    text = (REPO / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text and "APPENDIX: How to apply the Apache License" in text


@pytest.mark.parametrize(("project", "package"), PACKAGES.items())
def test__each_package_ships_py_typed_and_the_license(project, package):
    folder = REPO / "packages" / project
    assert (folder / "src" / package / "py.typed").is_file()
    assert (folder / "LICENSE").read_text() == (REPO / "LICENSE").read_text()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is new in Python 3.11")
@pytest.mark.parametrize(("project", "package"), PACKAGES.items())
def test__metadata(project, package):
    import tomllib

    config = tomllib.loads((REPO / "packages" / project / "pyproject.toml").read_text())
    meta = config["project"]
    assert meta["license"] == "Apache-2.0" and meta["license-files"] == ["LICENSE"]
    assert meta["authors"] == [{"name": "DynDis developers"}]
    assert set(meta["urls"]) == {"Homepage", "Documentation", "Issues"}
    python = "Programming Language :: Python :: "
    versions = [c[len(python) :] for c in meta["classifiers"] if c.startswith(python + "3.")]
    assert versions == ["3.10", "3.11", "3.12", "3.13"]
    assert "Typing :: Typed" in meta["classifiers"]
    assert config["tool"]["setuptools"]["package-data"][package] == ["py.typed"]
