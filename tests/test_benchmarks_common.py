"""The benchmarks' shared result file: ``benchmarks/results/<name>.json`` with the machine's description."""

from __future__ import annotations

import json
import platform
import sys

from benchmarks import _common

from dyndis_learn.devices import processor_name


def test__write_json__describes_the_machine_before_the_payload(tmp_path, monkeypatch):
    monkeypatch.setattr(_common, "RESULTS", tmp_path / "results")
    path = _common.write_json("probe", {"rows": [1, 2]})
    assert path == tmp_path / "results" / "probe.json" and [p.name for p in path.parent.iterdir()] == ["probe.json"]
    written = json.loads(path.read_text())
    assert list(written) == ["machine", "rows"] and written["rows"] == [1, 2]
    assert written["machine"]["processor"] == (processor_name() or platform.machine())
    assert written["machine"]["architecture"] == platform.machine()


def test__write_json__runs_without_dyndis_learn(tmp_path, monkeypatch):
    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    monkeypatch.setitem(sys.modules, "dyndis_learn.devices", None)  # as where only dyndis-envs is installed
    monkeypatch.setattr(platform, "processor", lambda: "")
    machine = json.loads(_common.write_json("envs", {}).read_text())["machine"]
    assert machine["processor"] == machine["architecture"] == platform.machine()
