"""Sweeps: a grid of runs (seeds, methods, any config field) trained on Ray or in local processes, resumable.

A sweep is a base :class:`~dyndis_learn.config.TrainConfig` and a grid: named axes, each a config field
(``seed``, ``model.method``, ``optim.lr``, or a key inside ``env.kwargs``) with a list of values. Every
point of the grid's product is one run, trained in a normal run folder under the sweep folder (the layout
``dyndis-learn train --out`` makes: ``config.json``, ``train_log.csv``, ``checkpoint.safetensors`` and the
report), named after its grid values (``seed=0,model.method=rotation``).

:meth:`Sweep.from_grid` checks the whole grid before anything runs: every axis names a config field, holds
at least one value and no value twice, every run's config passes the config's validation, and every
distinct environment of the runs can be made. Running
(:meth:`Sweep.run`) is resumable: a run folder that holds a report of the run's full length is skipped, one
with a checkpoint continues from it (exact resume, :meth:`~dyndis_learn.trainer.Trainer.load`), any other
starts afresh; a run folder whose ``config.json`` says another config is refused up front. Each run is a
task of an executor: :class:`RayExecutor` (a Ray task per run, with its CPUs and GPUs declared; Ray is the
``dyndis-learn[distributed]`` extra) or :class:`ProcessExecutor` (``jobs`` spawned processes on this
machine). A failed run does not stop the others; a rerun retries it.

The sweep folder holds ``sweep.json`` (the base config, the grid and the runs) and the summary, rewritten
after every run: ``summary.csv`` and ``summary.json`` (one row per run: its grid values, status and every
scalar figure of its ``report.json``) and ``summary.md`` (the headline figures, and a table grouped over
seeds when ``seed`` is an axis).
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import hashlib
import itertools
import json
import multiprocessing
import re
import socket
import statistics
import time
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Literal, Protocol

from dyndis_learn.api import Learner
from dyndis_learn.checkpoint import CHECKPOINT_NAME, CONFIG_NAME
from dyndis_learn.config import RESOLVED_BY_TRAINER, TrainConfig
from dyndis_learn.files import atomic_write, read_json_or_yaml, write_json_atomic
from dyndis_learn.rollouts import make_vector_env

__all__ = [
    "RAY_EXTRA",
    "Executor",
    "ProcessExecutor",
    "RayExecutor",
    "RunOutcome",
    "Sweep",
    "SweepRun",
    "load_grid_file",
    "parse_grid",
    "report_figures",
    "train_run",
]

#: The pip extra that installs Ray.
RAY_EXTRA = "dyndis-learn[distributed]"

#: The files a sweep writes into its folder: the sweep's record, and the summary as CSV, JSON and Markdown.
SWEEP_NAME = "sweep.json"
SUMMARY_CSV, SUMMARY_JSON, SUMMARY_MD = "summary.csv", "summary.json", "summary.md"
_REPORT_NAME = "report.json"

#: The columns of ``summary.md``: (header, summary key); ``rollout_bce_at.H`` is k = horizon.
_HEADLINE = (
    ("steps", "training.steps"),
    ("train s", "training.train_seconds"),
    ("BCE k=1", "rollout_bce_at.1"),
    ("BCE k=H", "rollout_bce_at.H"),
    ("ratio", "rollout_bce_ratio"),
    ("min share", "min_plane_share"),
    ("max angle err", "max_angle_relative_error"),
    ("min probe R²", "min_probe_r2"),
    ("recon", "fidelity.reconstruction_rate"),
    ("imagined", "fidelity.imagined_rate"),
    ("D_LSBD", "metrics.d_lsbd.value"),
    ("all", "criteria.all"),
)


# -- the grid ------------------------------------------------------------------------------------------


def parse_grid(entries: Sequence[str]) -> dict[str, list[Any]]:
    """Axes from ``FIELD=V1,V2,...`` texts (the ``--grid`` flags), in order.

    Values are split at the commas outside brackets, braces and quotes, and each is read as JSON where it
    is JSON (``0``, ``1e-3``, ``true``, ``null``, ``[8, 8]``, ``{"image_size": 32}``), else taken as text
    (``rotation``); a value of a field declared ``str`` is always text. So ``model.channels=[8,8],[16,16]`` is
    two values, each a list. The values are checked against the config by :meth:`Sweep.from_grid`.

    Raises:
        ValueError: For an entry without ``=``, an empty field or list, or a field given twice.
    """
    axes: dict[str, list[Any]] = {}
    for entry in entries:
        key, sep, text = entry.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--grid {entry!r}: expected FIELD=V1,V2,... (e.g. seed=0,1,2).")
        parts = _split_values(text)
        if not parts:
            raise ValueError(f"--grid {key}: the list of values is empty; give at least one (e.g. {key}=V1,V2).")
        if key in axes:
            raise ValueError(f"--grid {key} is given twice; give all its values in one list.")
        text_only = _field_is_text(key)
        axes[key] = [part if text_only else _value(part) for part in parts]
    return axes


def load_grid_file(path: str | Path) -> dict[str, list[Any]]:
    """Axes from a JSON or YAML file mapping fields to lists of values (``{"seed": [0, 1, 2]}``).

    Files ending in ``.yaml`` or ``.yml`` are read as YAML, all others as JSON.

    Raises:
        FileNotFoundError: If there is no file at ``path``.
        ValueError: If it is not valid JSON/YAML or not a mapping of fields to non-empty lists.
    """
    data = read_json_or_yaml(path, "grid file")
    if not isinstance(data, Mapping):
        raise ValueError(f"Grid file {str(path)!r} must map fields to lists of values, got {data!r}.")
    axes: dict[str, list[Any]] = {}
    for key, values in data.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"Grid file {str(path)!r}: {key!r} must be a non-empty list of values, got {values!r}.")
        axes[str(key)] = values
    return axes


def _split_values(text: str) -> list[str]:
    """``text`` split at the commas outside brackets, braces and double quotes, each part stripped."""
    parts, current, depth, quoted = [], [], 0, False
    for i, char in enumerate(text):
        if quoted:
            quoted = not (char == '"' and text[i - 1] != "\\")
        elif char == '"':
            quoted = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [] if parts == [""] else parts


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _field_is_text(key: str) -> bool:
    """Whether ``key`` names a config field declared ``str`` (an unknown key is not; it is refused later)."""
    try:
        _, hint = _resolve(key)
    except ValueError:
        return False
    return hint is str


def _resolve(key: str) -> tuple[tuple[str, ...], Any]:
    """The path of grid key ``key`` in the config dict and its field's declared type (without Annotated).

    Field names may be written with dashes, as flags are (``model.latent-dim``); inside a mapping field
    (``env.kwargs.image_size``) the rest of the key is the mapping's keys, as written.

    Raises:
        ValueError: For a key that is not a field (with a suggestion), a section, or goes below a plain field.
    """
    parts = key.split(".")
    cls: type = TrainConfig
    path: list[str] = []
    for i, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        name = part.replace("-", "_")
        if name not in fields:
            where = ".".join(path) or "the config"
            close = difflib.get_close_matches(name, list(fields), n=1)
            hint = f" (did you mean {'.'.join([*path, close[0]])!r}?)" if close else ""
            raise ValueError(f"--grid {key}: {where} has no field {part!r}{hint}; its fields: {list(fields)}.")
        path.append(name)
        hint = _plain(typing.get_type_hints(cls)[name])
        rest = parts[i + 1 :]
        if dataclasses.is_dataclass(hint):
            if not rest:
                raise ValueError(
                    f"--grid {key}: {key!r} is a section; name one of its fields, e.g. "
                    f"{key}.{dataclasses.fields(hint)[0].name}."
                )
            cls = hint
            continue
        if rest and typing.get_origin(hint) is not dict and hint is not dict:
            raise ValueError(f"--grid {key}: {'.'.join(path)!r} is a plain field; nothing lies below it.")
        return (*path, *rest), (None if rest else hint)
    raise AssertionError("unreachable: a key has at least one part")


def _plain(hint: Any) -> Any:
    """``hint`` without ``Annotated`` (the validation rules are checked by the config itself)."""
    while typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    return hint


def _with(config: dict[str, Any], path: Sequence[str], value: Any) -> dict[str, Any]:
    """A copy of config dict ``config`` with the leaf at ``path`` set to ``value`` (dicts created on the way)."""
    head, *rest = path
    copy = dict(config)
    copy[head] = _with(copy.get(head) or {}, rest, value) if rest else value
    return copy


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _run_names(points: Sequence[Mapping[str, Any]]) -> list[str]:
    """Folder names ``key=value,key=value``.

    Brackets, braces, quotes and spaces are left out (``channels=[8,8]`` gives ``channels=8,8``), other
    characters unsafe in file names become ``-`` (``env.id=DynDis-GridWorld-v0``), and a short hash of the
    point is appended where that leaves two names equal or a name longer than 100 characters.
    """
    names = [",".join(f"{key}={_text(value)}" for key, value in point.items()) for point in points]
    names = [re.sub(r"[^A-Za-z0-9._=,+-]", "-", re.sub(r"[][{}\"' ]", "", name)) for name in names]
    out = []
    for name, point in zip(names, points, strict=True):
        if names.count(name) > 1 or len(name) > 100:
            name = f"{name[:90]}-{hashlib.sha256(_canonical(point).encode()).hexdigest()[:8]}"
        out.append(name)
    return out


# -- the sweep -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SweepRun:
    """One run of a sweep.

    Attributes:
        name: Its folder's name under the sweep folder.
        point: Its grid values, by grid key.
        config: Its full configuration: the base config with the grid values set.
    """

    name: str
    point: dict[str, Any]
    config: TrainConfig


#: What a run needs when the sweep starts: nothing (a report of its full length exists), a resume from its
#: checkpoint, or a start from scratch.
RunState = Literal["finished", "resume", "start"]


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What one task of a sweep did (what :func:`train_run` returns).

    Attributes:
        action: ``"started"``, ``"resumed"`` (from a checkpoint) or ``"skipped"`` (already finished).
        start_step: The step training started from (0 for a new run; a skipped run's last step).
        seconds: Wall time of the task, training and report.
        host: The machine that ran it.
        report: The run's ``report.json`` content (None if it failed).
        error: ``"ExceptionType: message"`` if it failed, else None.
    """

    action: str
    start_step: int
    seconds: float
    host: str
    report: dict[str, Any] | None
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A checked grid of runs in a sweep folder (build it with :meth:`from_grid`).

    Attributes:
        out: The sweep folder.
        base: The base configuration.
        axes: The grid: each key's values, in the order given (the first axis varies slowest).
        runs: One run per point of the grid's product.
    """

    out: Path
    base: TrainConfig
    axes: dict[str, list[Any]]
    runs: tuple[SweepRun, ...]

    @classmethod
    def from_grid(cls, out: str | Path, base: TrainConfig, axes: Mapping[str, Sequence[Any]]) -> Sweep:
        """Check the grid against ``base`` and build every run's config; nothing is written.

        Every distinct environment of the runs is made once (and closed), so that environment keyword
        arguments, which the config does not check, are checked too.

        Raises:
            ValueError: For no axis, an axis that is not a config field (with a suggestion), two axes of
                the same field (or one inside the other), an empty list, a value given twice, or a value (or
                a run's combination of values) the config or the environment refuses, naming the grid key
                and value (or the run).
        """
        if not isinstance(base, TrainConfig):
            raise TypeError(f"`base` must be a TrainConfig, got {type(base).__name__}.")
        if not axes:
            raise ValueError("A sweep needs a grid: give at least one --grid FIELD=V1,V2,... or a --grid-file.")
        base_dict = base.to_dict()
        paths = {}
        for key, values in axes.items():
            paths[key], _ = _resolve(key)
            if isinstance(values, (str, bytes, Mapping)) or not list(values):
                raise ValueError(f"--grid {key}: expected a non-empty list of values, got {values!r}.")
            seen = [_canonical(v) for v in values]
            twice = sorted({_text(v) for v, c in zip(values, seen, strict=True) if seen.count(c) > 1})
            if twice:
                raise ValueError(f"--grid {key}: value(s) {', '.join(twice)} given twice.")
            for value in values:  # one axis at a time, so that the error names the value at fault
                try:
                    TrainConfig.from_dict(_with(base_dict, paths[key], value))
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"--grid {key}={_text(value)}: {exc}") from None
        for (key, path), (other, other_path) in itertools.combinations(paths.items(), 2):
            if path[: len(other_path)] == other_path or other_path[: len(path)] == path:
                raise ValueError(f"--grid {key} and --grid {other} set the same field; give one of them.")
        grid = {key: list(values) for key, values in axes.items()}
        points = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]
        runs = []
        for name, point in zip(_run_names(points), points, strict=True):
            config = base_dict
            for key, value in point.items():
                config = _with(config, paths[key], value)
            try:
                runs.append(SweepRun(name, point, TrainConfig.from_dict(config)))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"run {name!r} of the grid: {exc}") from None
        _check_envs(runs)
        return cls(Path(out), base, grid, tuple(runs))

    def run_dir(self, run: SweepRun) -> Path:
        """The run's folder."""
        return self.out / run.name

    def state(self, run: SweepRun) -> RunState:
        """What ``run`` needs (see :data:`RunState`), judged from its folder.

        Raises:
            ValueError: If the run's folder is a file, or holds a ``config.json`` of another config
                (naming the fields that differ).
        """
        folder = self.run_dir(run)
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"run {run.name!r}: {str(folder)!r} is a file, not a run folder.")
        stored, steps = folder / CONFIG_NAME, run.config.steps
        if stored.is_file():
            stored_config = _read_json(stored)
            differing = _differences(stored_config, run.config.to_dict())
            if differing:
                shown = "; ".join(f"{key}: {a!r} there, {b!r} in this sweep" for key, a, b in differing[:5])
                raise ValueError(
                    f"run {run.name!r}: its folder {str(folder)!r} holds a run of another config ({shown}); "
                    f"give the sweep the config it was started with, or another --out."
                )
            if steps == "auto":
                steps = stored_config.get("steps", "auto")  # what the run's trainer chose
        report = folder / _REPORT_NAME
        trained = (_read_json(report).get("training") or {}).get("steps", 0) if report.is_file() else 0
        if steps != "auto" and trained >= steps:
            return "finished"
        return "resume" if (folder / CHECKPOINT_NAME).is_file() else "start"

    def run(self, executor: Executor, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
        """Train every run that is not finished, as tasks of ``executor``; returns the summary's rows.

        Writes ``sweep.json`` first, then the summary files after every finished task. ``log`` gets one
        line per run and one at the start and end.

        Raises:
            ValueError: If a run's folder refuses the run (see :meth:`state`); checked before any task starts.
        """
        states = [self.state(run) for run in self.runs]
        self.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.out / SWEEP_NAME, self.to_dict())
        outcomes: list[RunOutcome | None] = [None] * len(self.runs)
        for i, (run, state) in enumerate(zip(self.runs, states, strict=True)):
            if state == "finished":
                report = _read_json(self.run_dir(run) / _REPORT_NAME)
                outcomes[i] = RunOutcome("skipped", report["training"]["steps"], 0.0, "", report)
        todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
        counts = {s: states.count(s) for s in ("start", "resume", "finished")}
        log(
            f"sweep: {len(self.runs)} runs in {self.out} ({counts['start']} to start, {counts['resume']} to resume, "
            f"{counts['finished']} finished) on {executor.describe()}"
        )
        self.write_summary(outcomes)
        # absolute paths: a Ray worker's working folder need not be this process's
        tasks = [(str(self.run_dir(self.runs[i]).absolute()), self.runs[i].config.to_dict()) for i in todo]
        cpus = [_threads(self.runs[i].config) for i in todo]
        for done, (index, outcome) in enumerate(executor.results(tasks, cpus), start=1):
            i = todo[index]
            outcomes[i] = outcome
            log(f"[{done}/{len(todo)}] {self.runs[i].name}: {_describe(outcome)}")
            self.write_summary(outcomes)
        failed = sum(1 for outcome in outcomes if outcome is not None and outcome.error is not None)
        log(f"sweep: {len(self.runs) - failed} of {len(self.runs)} runs done; summary: {self.out / SUMMARY_MD}")
        return self.rows(outcomes)

    # -- records ---------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """``sweep.json``: the base config, the grid, and every run's name and grid values."""
        return {
            "base": self.base.to_dict(),
            "grid": self.axes,
            "runs": [{"name": run.name, "point": run.point} for run in self.runs],
        }

    def rows(self, outcomes: Sequence[RunOutcome | None]) -> list[dict[str, Any]]:
        """The summary's rows: per run its name, grid values, status and report figures (see the module)."""
        rows = []
        for run, outcome in zip(self.runs, outcomes, strict=True):
            row: dict[str, Any] = {"run": run.name, **run.point}
            if outcome is None:
                row["status"] = "pending"
            else:
                row.update(
                    status="failed" if outcome.error is not None else "done",
                    action=outcome.action,
                    start_step=outcome.start_step,
                    task_seconds=round(outcome.seconds, 3) if outcome.action != "skipped" else None,
                    host=outcome.host or None,
                    error=outcome.error,
                )
                if outcome.report is not None:
                    row.update(report_figures(outcome.report))
            rows.append(row)
        return rows

    def write_summary(self, outcomes: Sequence[RunOutcome | None]) -> None:
        """Write ``summary.csv``, ``summary.json`` and ``summary.md`` (atomically) for ``outcomes`` so far."""
        rows = self.rows(outcomes)
        columns = list(dict.fromkeys(key for row in rows for key in row))

        def write_csv(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                writer = csv.DictWriter(f, columns)
                writer.writeheader()
                writer.writerows({key: _cell(row.get(key)) for key in columns} for row in rows)

        atomic_write(self.out / SUMMARY_CSV, write_csv)
        write_json_atomic(self.out / SUMMARY_JSON, {"sweep": self.to_dict(), "runs": rows})
        markdown = _markdown(rows, list(self.axes))
        atomic_write(self.out / SUMMARY_MD, lambda tmp: Path(tmp).write_text(markdown, encoding="utf-8"))


def _check_envs(runs: Sequence[SweepRun]) -> None:
    """Make (and close) each distinct environment of ``runs`` as the trainer does; a ValueError names a run."""
    checked = set()
    for run in runs:
        env, data = run.config.env, run.config.data
        key = _canonical([env.id, env.kwargs, data.episode_steps])
        if key in checked:
            continue
        checked.add(key)
        try:
            make_vector_env(env.id, 1, data.episode_steps, env.kwargs).close()
        except Exception as exc:  # any error of an environment's constructor is a bad value of the grid
            raise ValueError(f"run {run.name!r}: its environment {env.id!r} refuses {env.kwargs}: {exc}") from None


def report_figures(report: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar figures of a ``report.json``, as dotted keys, and the derived ones.

    Every number, boolean and string at any depth is kept (``criteria.all``, ``rollout_bce_at.500``,
    ``metrics.raw.mig.value``, ...), lists are left out, and so is the run's config (``training.config``,
    which the sweep's grid says). Derived from the lists: ``min_plane_share`` and
    ``max_angle_relative_error`` over the actions, ``min_probe_r2`` over the factors (``fidelity.probe_r2``).
    """
    figures = {key: value for key, value in _flatten(report).items() if not key.startswith("training.config.")}
    figures = {key: value for key, value in figures.items() if not isinstance(value, list)}
    actions = report.get("actions") or []
    probes = [r for r in (report.get("fidelity") or {}).get("probe_r2") or [] if r is not None]
    errors = [a["angle_relative_error"] for a in actions if a.get("angle_relative_error") is not None]
    derived = {
        "min_plane_share": min((a["plane_share"] for a in actions), default=None),
        "max_angle_relative_error": max(errors, default=None),
        "min_probe_r2": min(probes, default=None),
    }
    return {**figures, **derived}


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one dict of dotted keys (lists kept as values)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _differences(run: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(dotted key, the run's value, the wanted value)`` of every leaf where a run's config is not the wanted one.

    A setting the trainer chooses (``"auto"``, :data:`RESOLVED_BY_TRAINER`) matches whatever it chose.
    """
    flat_a, flat_b = _flatten(_normalised(run)), _flatten(_normalised(wanted))
    return [
        (key, flat_a.get(key), flat_b.get(key))
        for key in sorted(set(flat_a) | set(flat_b))
        if flat_a.get(key) != flat_b.get(key) and flat_b.get(key) not in RESOLVED_BY_TRAINER.get(key, ())
    ]


def _normalised(config: Mapping[str, Any]) -> dict[str, Any]:
    """A stored config dict as the current layout writes it (older layouts migrated), where it is valid."""
    try:
        return TrainConfig.from_dict(config).to_dict()
    except (ValueError, TypeError):
        return dict(config)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON ({exc}); remove it to start that run afresh.") from None


def _threads(config: TrainConfig) -> float:
    """The CPUs a run uses: its torch threads (1 for 0, torch's default)."""
    return float(config.threads or 1)


def _describe(outcome: RunOutcome) -> str:
    if outcome.error is not None:
        return f"failed after {outcome.seconds:.1f} s: {outcome.error}"
    how = f"resumed from step {outcome.start_step}" if outcome.action == "resumed" else outcome.action
    where = f" on {outcome.host}" if outcome.host else ""
    criteria = (outcome.report or {}).get("criteria") or {}
    return f"done in {outcome.seconds:.1f} s ({how}{where}), all={criteria.get('all')}"


def _cell(value: Any) -> Any:
    """A CSV cell: lists and dicts as JSON, None empty."""
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return _text(value)


def _headline(row: Mapping[str, Any], key: str) -> Any:
    if key == "rollout_bce_at.H":
        return row.get(f"rollout_bce_at.{row.get('horizon')}")
    return row.get(key)


def _markdown(rows: Sequence[Mapping[str, Any]], axes: Sequence[str]) -> str:
    """``summary.md``: a table of every run's headline figures.

    When ``seed`` is an axis among others, a second table gives their means over the seeds for each
    combination of the other axes.
    """
    headers = ["run", *axes, "status", *(header for header, _ in _HEADLINE)]
    lines = ["# Sweep summary", "", _table_row(headers), _table_row(["---"] * len(headers))]
    for row in rows:
        cells = [row["run"], *(row[axis] for axis in axes), row["status"]]
        cells += [_headline(row, key) for _, key in _HEADLINE]
        lines.append(_table_row([_shown(cell) for cell in cells]))
    others = [axis for axis in axes if axis != "seed"]
    if "seed" in axes and others:
        lines += ["", "## Over the seeds", "", "Means over the runs done; `all`: the runs passing every criterion.", ""]
        means = [(header, key) for header, key in _HEADLINE if key not in ("training.steps", "criteria.all")]
        headers = [*others, "runs done", "all", *(f"mean {header}" for header, _ in means)]
        lines += [_table_row(headers), _table_row(["---"] * len(headers))]
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for row in rows:
            groups.setdefault(_canonical([row[axis] for axis in others]), []).append(row)
        for members in groups.values():
            done = [row for row in members if row["status"] == "done"]
            cells = [members[0][axis] for axis in others]
            cells += [f"{len(done)}/{len(members)}", sum(1 for row in done if row.get("criteria.all") is True)]
            cells += [_mean([_headline(row, key) for row in done]) for _, key in means]
            lines.append(_table_row([_shown(cell) for cell in cells]))
    return "\n".join(lines) + "\n"


def _mean(values: Sequence[Any]) -> float | None:
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return statistics.fmean(numbers) if numbers else None


def _table_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


# -- one run -------------------------------------------------------------------------------------------


def train_run(run_dir: str, config: dict[str, Any]) -> RunOutcome:
    """Train one run of a sweep to its end in ``run_dir`` and write its report: the task of every executor.

    The run continues from the checkpoint in ``run_dir`` where there is one (its config must be
    ``config``), else starts. Any exception is caught and returned as the outcome's ``error``, so that one
    failed run does not stop a sweep.
    """
    started, folder, host = time.perf_counter(), Path(run_dir), socket.gethostname()
    checkpoint = folder / CHECKPOINT_NAME
    resumed = checkpoint.is_file()
    action = "resumed" if resumed else "started"
    try:
        want = TrainConfig.from_dict(config)
        learner = Learner.load(checkpoint, run_dir=folder) if resumed else Learner(want, run_dir=folder)
        try:
            differing = _differences(learner.config.to_dict(), want.to_dict())
            if differing:
                raise ValueError(f"the checkpoint {str(checkpoint)!r} holds a run of another config: {differing[:5]}")
            start = learner.trainer.step
            learner.train(progress=False)
            report = _read_json(learner.report(progress=False))
        finally:
            learner.close()
    except Exception as exc:  # reported in the summary; the other runs go on)
        error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        return RunOutcome(action, 0, time.perf_counter() - started, host, None, error)
    return RunOutcome(action, start, time.perf_counter() - started, host, report)


# -- executors -----------------------------------------------------------------------------------------

#: A task of a sweep: the arguments of :func:`train_run`, ``(run folder, config dict)``.
Task = tuple[str, dict[str, Any]]


class Executor(Protocol):
    """Runs the tasks of a sweep: :func:`train_run` on each ``(run_dir, config dict)``."""

    def describe(self) -> str:
        """Where the tasks run, in words, for the sweep's first line."""
        ...

    def results(self, tasks: Sequence[Task], cpus: Sequence[float]) -> Iterator[tuple[int, RunOutcome]]:
        """Run every task; yields ``(task index, outcome)`` as each finishes. ``cpus``: each task's threads."""
        ...


@dataclasses.dataclass(frozen=True)
class ProcessExecutor:
    """Runs the tasks on this machine, ``jobs`` at a time, each in a process of its own; no Ray needed.

    The processes are started with ``spawn`` and reused from one task to the next.
    """

    jobs: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1:
            raise ValueError(f"--jobs must be a positive integer, got {self.jobs!r}.")

    def describe(self) -> str:
        """``"N local processes"``."""
        return f"{self.jobs} local process{'es' if self.jobs > 1 else ''}"

    def results(self, tasks: Sequence[Task], cpus: Sequence[float]) -> Iterator[tuple[int, RunOutcome]]:
        """Run every task in the pool; a process that dies (killed, out of memory) fails its task."""
        if not tasks:
            return
        context = multiprocessing.get_context("spawn")
        # spawn, not fork: a fork would copy torch's threads and the parent's state
        with ProcessPoolExecutor(min(self.jobs, len(tasks)), mp_context=context) as pool:
            futures = {pool.submit(train_run, *task): i for i, task in enumerate(tasks)}
            for future in as_completed(futures):
                try:
                    yield futures[future], future.result()
                except Exception as exc:  # the worker process died
                    yield futures[future], RunOutcome("started", 0, 0.0, "", None, f"{type(exc).__name__}: {exc}")


@dataclasses.dataclass(frozen=True)
class RayExecutor:
    """Runs every task as a Ray task, with its resources declared.

    Args:
        address: The Ray cluster to connect to (``"host:6379"``, ``"ray://host:10001"``, ``"auto"``, or
            ``"local"`` for a new local instance); None, by ``ray.init``'s rules: the one ``$RAY_ADDRESS``
            names, else one started on this machine with ``ray start``, else a new local instance. A Ray
            already initialised in this process (``ray.init`` called before) is used as it is.
        cpus_per_run: CPUs Ray reserves for each run; None: the run's ``threads`` (1 for 0).
        gpus_per_run: GPUs Ray reserves for each run (fractions share a GPU); Ray makes the assigned ones
            the run's visible devices, which ``device="auto"`` picks.

    Raises:
        ImportError: If Ray is not installed, naming the extra that installs it.
    """

    address: str | None = None
    cpus_per_run: float | None = None
    gpus_per_run: float = 0.0

    def __post_init__(self) -> None:
        if self.cpus_per_run is not None and not self.cpus_per_run > 0:
            raise ValueError(f"--cpus-per-run must be a number > 0, got {self.cpus_per_run!r}.")
        if not self.gpus_per_run >= 0:
            raise ValueError(f"--gpus-per-run must be a number >= 0, got {self.gpus_per_run!r}.")
        _import_ray()

    def describe(self) -> str:
        """The cluster and the resources per run."""
        if _import_ray().is_initialized():
            where = "the Ray this process is connected to"
        else:
            where = f"the Ray cluster at {self.address}" if self.address else "Ray (by ray.init's rules)"
        cpus = "the run's threads" if self.cpus_per_run is None else f"{self.cpus_per_run:g}"
        return f"{where}, CPUs per run: {cpus}, GPUs per run: {self.gpus_per_run:g}"

    def results(self, tasks: Sequence[Task], cpus: Sequence[float]) -> Iterator[tuple[int, RunOutcome]]:
        """Submit every task at once; Ray starts each when its resources are free."""
        if not tasks:
            return
        ray = _import_ray()
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address)
        try:
            remote = ray.remote(train_run)
            pending = {}
            for i, task in enumerate(tasks):
                options = {"num_cpus": self.cpus_per_run or cpus[i], "num_gpus": self.gpus_per_run}
                pending[remote.options(**options).remote(*task)] = i
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                index = pending.pop(ref)
                try:
                    yield index, ray.get(ref)
                except Exception as exc:  # the worker died: killed, out of memory, node lost
                    yield index, RunOutcome("started", 0, 0.0, "", None, f"{type(exc).__name__}: {exc}")
        finally:
            if started_here:
                ray.shutdown()


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError(
            f"Ray is not installed: install the extra with pip install '{RAY_EXTRA}', or run the sweep on this "
            "machine without Ray with --jobs N."
        ) from None
    return ray
