"""The run report: figures (PNG), a rollout GIF, ``report.json`` and ``report.md``, written into a folder.

- ``training_curves.png``: every loss term the run used over training steps (log scale), the end of the
  warm-up marked.
- ``angles.png``: per action, its angle in every plane (the dominant plane highlighted, ``+-2 pi / N`` marked);
  not written for a model without rotations (a baseline of :mod:`dyndis_learn.baselines`).
- ``rollout_bce.png``: rollout BCE per step ``k`` with its 95% interval.
- ``rollout.gif``: ground truth (left) next to the decoded latent rollout (right) of one long evaluation
  episode, subsampled to span the whole horizon, labelled, with the step.
- ``report.json``: the evaluation figures (``Evaluation.to_dict()``, keys documented in ``docs/report.md``:
  among them the mean-image BCE, the encoder probe and decoder fidelity, the last dynamics weight, with the
  training summary when the evaluation carries one) plus ``rollout_bce_at``, the representation ``metrics``
  (:func:`report_metrics`), the ``provenance`` (:func:`provenance`) and the list of ``files``.
- ``report.md``: the same, for people.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import math
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from dyndis_learn.baselines.base import PredictiveModel, imagined_frames
from dyndis_learn.devices import module_device, processor_name
from dyndis_learn.fidelity import encode_chunks, evaluation_contract, evaluation_states, judged_imagined_steps
from dyndis_learn.files import atomic_write, write_json_atomic
from dyndis_learn.metrics import summary
from dyndis_learn.model import WorldModel
from dyndis_learn.objective import WARMUP_TERMS
from dyndis_learn.remedies import remedies
from dyndis_learn.results import CRITERIA, Evaluation, Fidelity
from dyndis_learn.rollouts import EpisodeBatch
from dyndis_learn.rotations import plane_pairs
from dyndis_learn.run_log import log_evaluation
from dyndis_learn.warmups import stored_warmup

__all__ = [
    "PROVENANCE_PACKAGES",
    "Progress",
    "angles_figure",
    "git_commit",
    "plot_angles",
    "plot_rollout_bce",
    "plot_training_curves",
    "provenance",
    "report_metrics",
    "rollout_bce_at",
    "rollout_bce_figure",
    "rollout_gif",
    "rollout_strip",
    "tensorboard_scalars",
    "training_curves_figure",
    "write_report",
]

_CURVES = (
    "loss",
    "autoencoder_bce",
    "rollout_bce",
    "neighbour_margin",
    "consistency",
    "target",
    "smoothness",
    "whitening",
    "regularizer",
)
_GIT_TIMEOUT_S = 5.0

#: The packages whose versions :func:`provenance` records.
PROVENANCE_PACKAGES = ("dyndis-envs", "dyndis-learn", "torch", "gymnasium", "numpy")


# -- progress ------------------------------------------------------------------------------------------


class Progress:
    """One short line per phase on stderr (``report: [2/5] metrics on 25 states``); silent when disabled.

    Args:
        enabled: Print the lines; None: only when stderr is a terminal (so tests and pipes stay quiet).
        total: The number of phases (shown as ``[i/total]``; 0 leaves the counter out).
        prefix: The word the lines start with.
    """

    def __init__(self, enabled: bool | None = None, total: int = 0, prefix: str = "report") -> None:
        self.enabled = _stderr_is_terminal() if enabled is None else bool(enabled)
        self.total = total
        self.prefix = prefix
        self.count = 0
        self._start = time.perf_counter()

    @contextlib.contextmanager
    def phase(self, what: str) -> Iterator[None]:
        """Announce ``what``, run the block, and say how long it took once it is done."""
        self.count += 1
        counter = f"[{self.count}/{self.total}] " if self.total else ""
        self._print(f"{counter}{what} ...")
        began = time.perf_counter()
        yield
        self._print(f"{counter}{what}: {time.perf_counter() - began:.1f} s")

    def done(self, what: str) -> None:
        """A closing line with the total time."""
        self._print(f"{what} in {time.perf_counter() - self._start:.1f} s")

    def _print(self, text: str) -> None:
        if self.enabled:
            print(f"{self.prefix}: {text}", file=sys.stderr, flush=True)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


# -- provenance ----------------------------------------------------------------------------------------


def git_commit(folder: str | Path | None = None) -> str | None:
    """``git rev-parse HEAD`` in ``folder`` (default: this package's folder), or None.

    None when the code does not run from a git checkout (an installed wheel), when git is missing, slow
    (more than a few seconds) or fails: the commit is a courtesy, never a reason for a report to fail.
    """
    where = Path(folder) if folder is not None else Path(__file__).resolve().parent
    if "site-packages" in where.parts or "dist-packages" in where.parts:
        return None  # installed, not a checkout: a repository around the virtualenv says nothing of this code
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    if result.returncode != 0 or len(commit) != 40 or any(c not in "0123456789abcdef" for c in commit):
        return None
    return commit


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _device_name(model: torch.nn.Module | None) -> str:
    device = module_device(model) if model is not None else torch.device("cpu")
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return device.type


def provenance(
    model: torch.nn.Module | None = None, *, seed: int | None = None, evaluation_seed: int | None = None
) -> dict[str, Any]:
    """Where a report comes from: the ``provenance`` entry of ``report.json``.

    Keys: ``packages`` (the versions of :data:`PROVENANCE_PACKAGES`, None for one not installed),
    ``git_commit`` (:func:`git_commit`), ``seed`` (the run's), ``evaluation_seed``, ``date`` (UTC, ISO 8601),
    ``device`` (``cpu`` or ``cuda: <device name>``, where the model's parameters live), ``processor`` (the
    CPU's model name, :func:`~dyndis_learn.devices.processor_name`; None where the system does not say),
    ``python`` (its version) and ``command`` (``sys.argv`` joined by spaces).
    """
    return {
        "packages": {name: _version(name) for name in PROVENANCE_PACKAGES},
        "git_commit": git_commit(),
        "seed": seed,
        "evaluation_seed": evaluation_seed,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": _device_name(model),
        "processor": processor_name(),
        "python": platform.python_version(),
        "command": " ".join(sys.argv),
    }


# -- metrics -------------------------------------------------------------------------------------------


@torch.no_grad()
def _encode_states(model: WorldModel | PredictiveModel, images: np.ndarray) -> np.ndarray:
    was_training = model.training
    model.eval()
    try:
        return encode_chunks(model, images).cpu().numpy().astype(np.float64)
    finally:
        model.train(was_training)


def _factor_columns(evaluation: Evaluation, names: Sequence[str], sizes: np.ndarray) -> list[dict[str, Any]] | None:
    """Per factor measured: its column of the states, name, cycle length and coordinates (None where unknown)."""
    if evaluation.factors is not None:
        if any(f.name not in names for f in evaluation.factors):
            return None
        return [
            {"column": list(names).index(f.name), "name": f.name, "N": f.cycle_length, "coordinates": f.coordinates}
            for f in evaluation.factors
        ]
    return [
        {"column": k, "name": names[k], "N": int(sizes[k]), "coordinates": None}
        for k in range(len(sizes))
        if sizes[k] > 1
    ]


def report_metrics(
    model: WorldModel | PredictiveModel, evaluation: Evaluation, *, seed: int = 0, env: Any = None
) -> dict[str, Any] | None:
    """The representation metrics (:func:`dyndis_learn.metrics.summary`) on the environment's evaluation states.

    The states are those of the fidelity check: every state when there are at most
    :data:`~dyndis_learn.fidelity.GRID_STATES`, else :data:`~dyndis_learn.fidelity.SAMPLE_STATES` drawn
    uniformly with ``seed``; their images come from ``render_states`` and are encoded in eval mode. The
    factors are those of the evaluation's factor structure (their cycle lengths from ``env.action_effects``),
    each in its plane: the two latent axes its actions rotate when every factor has exactly two, else the
    planes the metrics module finds. Without action effects every factor with more than one value is measured,
    its number of values as its cycle length, in found planes. The states are split in half: the metrics fit
    on one half and are scored on the other (at most 10,000 and 5,000 states), and DCI uses the logistic
    importance, so a large world stays quick.

    Args:
        model: The world model.
        evaluation: Its evaluation (the env id and kwargs, the factor structure).
        seed: The seed of the sample of states (``EvalConfig.seed``, as the fidelity check) and of the metrics.
        env: An environment to use instead of ``gym.make(evaluation.env_id, **evaluation.env_kwargs)``.

    Returns:
        ``Metrics.to_dict()`` with the set-up (``states``, ``grid``, ``factors``, ``cycle_lengths``,
        ``planes``, ``num_train``, ``num_test``, ``dci_importance``, ``seed``); None without the evaluation
        contract (or fewer than 4 states).
    """
    own = env is None
    if own:
        try:
            env = gym.make(evaluation.env_id, **dict(evaluation.env_kwargs))
        except gym.error.Error:
            return None
    try:
        contract = evaluation_contract(env) or evaluation_contract(getattr(env, "unwrapped", None))
        if contract is None:
            return None
        space = contract.factor_space
        sizes = np.asarray(space.sizes, dtype=np.int64)
        factors = _factor_columns(evaluation, list(space.names), sizes)
        if not factors:
            return None
        states, grid = evaluation_states(space, seed)
        if len(states) < 4:
            return None
        encodings = _encode_states(model, contract.render_states(states))
    finally:
        if own:
            env.close()
    values = states[:, [f["column"] for f in factors]]
    cycle_lengths = [int(f["N"]) for f in factors]
    coordinates = [f["coordinates"] for f in factors]
    planes = None
    if all(c is not None and len(c) == 2 for c in coordinates):
        planes = np.asarray(coordinates, dtype=np.int64)
    num_train = min(10_000, (len(states) + 1) // 2)
    num_test = min(5_000, len(states) - num_train)
    metrics = summary(
        encodings,
        values,
        cycle_lengths,
        planes=planes,
        dci_importance="logistic",
        num_train=num_train,
        num_test=num_test,
        seed=seed,
    )
    return {
        "states": len(states),
        "grid": grid,
        "factors": [f["name"] for f in factors],
        "cycle_lengths": cycle_lengths,
        "planes": None if planes is None else planes.tolist(),
        "num_train": num_train,
        "num_test": num_test,
        "dci_importance": "logistic",
        "seed": seed,
        **metrics.to_dict(),
    }


# -- figures -------------------------------------------------------------------------------------------


def _save_figure(fig: plt.Figure, path: Path) -> Path:
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight"), suffix=path.suffix)
    finally:
        plt.close(fig)


def training_curves_figure(
    history: Sequence[dict[str, float]], warmup_steps: int | None = None, warmup_terms: Sequence[str] | None = None
) -> plt.Figure:
    """Loss terms (absolute values, log scale) and the smallest plane share against the step.

    A term that is 0 (or absent) at every logged step was not used by the run and is left out, and so is a
    warm-up's term (:data:`~dyndis_learn.objective.WARMUP_TERMS`) that is not among ``warmup_terms`` (the
    run's warm-up did not weight it: it was logged only). ``warmup_terms`` None: every logged term.
    ``warmup_steps``: the end of the warm-up, marked by a dashed line on both panels (None: no warm-up).
    """
    fig, (ax_loss, ax_share) = plt.subplots(1, 2, figsize=(11, 3.8))
    steps = [row["step"] for row in history]
    for name in _CURVES:
        if warmup_terms is not None and name in WARMUP_TERMS and name not in warmup_terms:
            continue
        values = np.abs([row.get(name, 0.0) for row in history])  # older runs lack newer terms
        if np.any(values > 0):
            ax_loss.plot(steps, np.where(values > 0, values, np.nan), label=name)
    ax_loss.set(yscale="log", xlabel="step", ylabel="|loss term|", title="training losses")
    ax_share.plot(steps, [row.get("min_plane_share", np.nan) for row in history], color="tab:purple")
    ax_share.set(
        xlabel="step",
        ylabel="share of sum(theta^2)",
        ylim=(0, 1.02),
        title="smallest dominant-plane share over actions",
    )
    if warmup_steps is not None:
        for ax in (ax_loss, ax_share):
            ax.axvline(warmup_steps, color="black", linestyle="--", linewidth=0.8, label="end of warm-up")
    ax_loss.legend(fontsize=8)
    if warmup_steps is not None:
        ax_share.legend(fontsize=8)
    return fig


def plot_training_curves(
    history: Sequence[dict[str, float]],
    path: Path,
    warmup_steps: int | None = None,
    warmup_terms: Sequence[str] | None = None,
) -> Path:
    """Save :func:`training_curves_figure` to ``path``."""
    return _save_figure(training_curves_figure(history, warmup_steps, warmup_terms), path)


def angles_figure(evaluation: Evaluation) -> plt.Figure:
    """One bar chart per action: its angle in every plane ``(i,j)``, the dominant plane in colour.

    For an action with a known cycle length ``N`` the faithful one-step angles ``+-2 pi / N`` are dashed lines.
    """
    actions = evaluation.actions
    pairs = [(int(i), int(j)) for i, j in plane_pairs(evaluation.latent_dim).tolist()]
    columns = max(1, min(len(actions), 4))
    rows = max(1, math.ceil(len(actions) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.9 * rows), squeeze=False)
    labels = [f"({i},{j})" for i, j in pairs]
    for ax, entry in zip(axes.flat, actions, strict=False):  # extra axes stay empty
        angles = np.asarray(entry.angles)
        colours = ["tab:orange" if p == entry.dominant_plane else "tab:gray" for p in pairs]
        ax.bar(range(len(angles)), angles, color=colours)
        ax.set_xticks(range(len(angles)), labels, fontsize=7, rotation=90 if len(angles) > 6 else 0)
        title = f"action {entry.action}"
        if entry.factor is not None:
            sign = "+" if entry.direction is not None and entry.direction > 0 else "-"
            title += f": {entry.factor}{sign}1\n{entry.angle_over_unit:+.4f} x 2pi/{entry.cycle_length}"
        if entry.cycle_length:
            unit = 2 * math.pi / entry.cycle_length
            for k in (1, -1):
                ax.axhline(
                    k * unit,
                    color="tab:blue",
                    linestyle="--",
                    linewidth=0.8,
                    label=f"+-2pi/{entry.cycle_length}" if k == 1 else None,
                )
            ax.legend(fontsize=6, loc="best")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("plane (i,j)", fontsize=8)
        ax.set_ylabel("angle (rad)", fontsize=8)
        ax.axhline(0, color="black", linewidth=0.5)
    for ax in list(axes.flat)[len(actions) :]:
        ax.axis("off")
    fig.suptitle("angle (rad) of each action in each plane (i,j); the dominant plane in orange", fontsize=10)
    fig.tight_layout()
    return fig


def plot_angles(evaluation: Evaluation, path: Path) -> Path:
    """Save :func:`angles_figure` to ``path``."""
    return _save_figure(angles_figure(evaluation), path)


def rollout_bce_figure(evaluation: Evaluation) -> plt.Figure:
    """Mean rollout BCE against the step k, with the 95% interval over episodes."""
    rollout = evaluation.rollout_bce
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.fill_between(rollout.k, rollout.ci95_low, rollout.ci95_high, alpha=0.3, label="95% interval")
    ax.plot(rollout.k, rollout.mean, label=f"mean over {rollout.episodes} episodes")
    if evaluation.mean_image_bce is not None:
        ax.axhline(evaluation.mean_image_bce, color="tab:red", linestyle=":", label="mean image (k = horizon)")
    ax.set(xlabel="rollout step k", ylabel="BCE per pixel", title="latent rollout error", ylim=(0, None))
    ax.legend(fontsize=8)
    return fig


def plot_rollout_bce(evaluation: Evaluation, path: Path) -> Path:
    """Save :func:`rollout_bce_figure` to ``path``."""
    return _save_figure(rollout_bce_figure(evaluation), path)


_STRIP = 14  # pixels of the GIF's caption strips (Pillow's default font is about 11 pixels high)


def _labelled(tile: np.ndarray, panel_width: int, gap: int, step: int, horizon: int) -> Image.Image:
    """The tile with a caption strip above each panel (ground truth / imagined) and the step below."""
    height, width = tile.shape[:2]
    canvas = Image.new("RGB", (width, height + 2 * _STRIP), (255, 255, 255))
    canvas.paste(Image.fromarray(tile), (0, _STRIP))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for text, left in (("ground truth", 0), ("imagined", panel_width + gap)):
        draw.text((left + 2, 1), text, fill=(0, 0, 0), font=font)
    draw.text((2, height + _STRIP + 1), f"step {step} / {horizon}", fill=(0, 0, 0), font=font)
    return canvas


@torch.no_grad()
def _rollout_frames(
    model: WorldModel | PredictiveModel, batch: EpisodeBatch, frames: int, episode: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(steps, truth, imagined, horizon)``: ``frames`` steps of one episode, its frames and the decoded rollout's.

    A model without rotations (:mod:`dyndis_learn.baselines`) gives its own imagined frames, from step 1 for one
    that does not reconstruct its input.
    """
    model.eval()
    device = module_device(model)
    observations = torch.from_numpy(batch.observations[episode : episode + 1]).to(device)
    actions = torch.from_numpy(batch.actions[episode : episode + 1]).to(device)
    horizon = actions.shape[1]
    stride = max(1, horizon // frames)
    steps = np.arange(0, horizon + 1, stride)[:frames]
    if isinstance(model, PredictiveModel):  # its own imagined frames, from its first predicted step
        steps = np.arange(model.first_step, horizon + 1, stride)[:frames]
        predicted = imagined_frames(model, observations[:, 0], actions, steps.tolist())[0]
    else:
        with torch.no_grad():
            latents = model.rollout(model.encode(observations[:, 0]), actions)[0, steps]
            predicted = (model.decode(latents).cpu().numpy() * 255).round().astype(np.uint8)
    return steps, batch.observations[episode, steps], predicted, horizon


def rollout_gif(
    model: WorldModel | PredictiveModel, batch: EpisodeBatch, frames: int, path: Path, episode: int = 0
) -> Path:
    """Ground truth next to the decoded latent rollout of one episode, ``frames`` frames over its horizon.

    A model without rotations (:mod:`dyndis_learn.baselines`) shows its own imagined frames, from step 1 for one
    that does not reconstruct its input. Each frame has a caption strip on top ("ground truth", "imagined") and
    one below with the step.
    """
    steps, truth, predicted, horizon = _rollout_frames(model, batch, frames, episode)
    gap = np.full((len(steps), truth.shape[1], 2, truth.shape[3]), 255, dtype=np.uint8)
    tiles = np.concatenate([truth, gap, predicted], axis=2)
    if tiles.shape[-1] == 1:
        tiles = np.repeat(tiles, 3, axis=-1)
    scale = max(1, 128 // truth.shape[1])
    images = []
    for step, tile in zip(steps, tiles, strict=True):
        big = Image.fromarray(tile).resize((tile.shape[1] * scale, tile.shape[0] * scale), Image.NEAREST)
        images.append(_labelled(np.asarray(big), truth.shape[2] * scale, 2 * scale, int(step), horizon))
    return atomic_write(
        path,
        lambda tmp: images[0].save(tmp, save_all=True, append_images=images[1:], duration=120, loop=0),
        suffix=path.suffix,
    )


def rollout_strip(
    model: WorldModel | PredictiveModel, batch: EpisodeBatch, frames: int, episode: int = 0
) -> np.ndarray:
    """One uint8 image (H', W', 3): ``frames`` ground-truth frames of an episode in a row, its imagined ones below."""
    _, truth, predicted, _ = _rollout_frames(model, batch, frames, episode)
    rows = [np.concatenate(list(row), axis=1) for row in (truth, predicted)]
    gap = np.full((2, rows[0].shape[1], rows[0].shape[2]), 255, dtype=np.uint8)
    strip = np.concatenate([rows[0], gap, rows[1]], axis=0)
    return np.repeat(strip, 3, axis=-1) if strip.shape[-1] == 1 else strip


def tensorboard_scalars(report: Mapping[str, Any]) -> dict[str, float]:
    """The figures of a ``report.json`` as TensorBoard scalars: rollout BCE, criteria (1/0), fidelity, metrics.

    Lists indexed by factor are named by the factor; counts, seeds and settings are left out.
    """
    scalars: dict[str, float] = {f"eval/rollout_bce/k={k}": v for k, v in report.get("rollout_bce_at", {}).items()}
    criteria = report.get("criteria") or {}
    for name in (*CRITERIA, "all"):
        if isinstance(criteria.get(name), bool):
            scalars[f"eval/criteria/{name}"] = float(criteria[name])
    fid = report.get("fidelity") or {}
    factors = fid.get("factors", [])
    for name in ("reconstruction_rate", "imagined_rate", "imagined_rate_last", "seen_fraction"):
        if fid.get(name) is not None:
            scalars[f"eval/fidelity/{name}"] = fid[name]
    for factor, r2 in zip(factors, fid.get("probe_r2", []), strict=False):
        scalars[f"eval/fidelity/probe_r2/{factor}"] = r2
    for part in ("seen", "unseen"):
        if fid.get(part):
            scalars[f"eval/fidelity/{part}/probe_r2_min"] = min(fid[part]["probe_r2"])
            if fid[part]["reconstruction_rate"] is not None:
                scalars[f"eval/fidelity/{part}/reconstruction_rate"] = fid[part]["reconstruction_rate"]
    metrics = report.get("metrics") or {}
    if metrics.get("d_lsbd"):
        scalars["eval/metrics/d_lsbd"] = metrics["d_lsbd"]["value"]
    for coordinates in ("raw", "angles"):
        for metric, values in (metrics.get(coordinates) or {}).items():
            for key, value in values.items():
                if isinstance(value, float) and key not in _NOT_SCALARS:
                    scalars[f"eval/metrics/{coordinates}/{metric}/{key}"] = value
    return scalars


#: Frames of the TensorBoard rollout image (ground truth above, imagined below).
_STRIP_FRAMES = 10
#: Keys of the coordinate metrics that are settings or counts, not figures.
_NOT_SCALARS = frozenset({"active_dims"})


# -- report.md -----------------------------------------------------------------------------------------


def _rounded(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def rollout_bce_at(evaluation: Evaluation) -> dict[str, float]:
    """Mean rollout BCE at k = 1, 10, 100 and the horizon (those evaluated), keyed by ``str(k)``."""
    points = {k: evaluation.rollout_bce.mean_at(k) for k in (1, 10, 100, evaluation.horizon)}
    return {str(k): value for k, value in points.items() if value is not None}


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _imagined_frames_text(fid: Fidelity) -> str:
    """Which imagined frames were judged: "k=10, 20, .., 100 of 320 rollouts" (reports before: "k=1..100")."""
    if fid.imagined_rollouts is None:
        return f"k=1..{fid.imagined_steps}"
    steps = judged_imagined_steps(fid.imagined_steps)
    shown = ", ".join(map(str, steps)) if len(steps) <= 3 else f"{steps[0]}, {steps[1]}, .., {steps[-1]}"
    return f"k={shown} of {fid.imagined_rollouts} rollouts from sampled states"


def _fidelity_lines(evaluation: Evaluation) -> list[str]:
    """The mean-image BCE, the encoder probe, the decoder fidelity and the last dynamics weight (those known)."""
    lines = []
    if evaluation.mean_image_bce is not None and evaluation.frame_entropy is not None:
        lines.append(
            f"- mean image: BCE {evaluation.mean_image_bce:.4f} at k={evaluation.horizon} (the frames' own "
            f"entropy {evaluation.frame_entropy:.4f}); rollout excess over the mean image's "
            f"{_rounded(evaluation.mean_image_ratio)} (limit {evaluation.criteria.mean_image_margin})"
        )
    fid = evaluation.fidelity
    if fid is not None:
        which = "every state" if fid.grid else "a uniform sample of states"
        if fid.synthesis_modes > 1:
            lines.append(
                f"- encodings: decoder-checked (the decoder chooses among {fid.synthesis_modes} modes of each circle "
                "where the encoder hesitates); the encoder's own in brackets"
            )
        lines += [
            f"- encoder: circular-probe R^2 on {fid.probed} states: "
            f"{_probe_text(fid.factors, fid.probe_r2, fid.encoder_probe_r2)} "
            f"(threshold {evaluation.criteria.probe_threshold})",
            f"- decoder: nearest own state's image ({fid.candidates.replace('_', ' ')} as candidates) for "
            f"{_percent(fid.reconstruction_rate)} of reconstructions of {fid.states} states ({which}), "
            f"{_percent(fid.imagined_rate)} of imagined "
            f"frames {_imagined_frames_text(fid)}, {_percent(fid.imagined_rate_last)} at k={fid.imagined_steps} "
            f"(threshold {evaluation.criteria.decoder_threshold:.0%})",
        ]
        if fid.reconstruction_confusion is not None and any(fid.reconstruction_confusion):
            shares = zip(fid.factors, fid.reconstruction_confusion, strict=True)
            wrong = ", ".join(f"{name} {_percent(share)}" for name, share in shares)
            lines.append(f"- reconstructions nearer to another value of a factor than to their own state: {wrong}")
        if fid.seen_fraction == 1:
            lines.append("- training saw every state")
        elif fid.seen_fraction is not None:
            lines.append(f"- training saw {_percent(fid.seen_fraction)} of the states; judged apart:")
            for name, part in (("seen", fid.seen), ("unseen", fid.unseen)):
                if part is None:
                    lines.append(f"    - {name} states: too few to judge")
                    continue
                probe = _probe_text(fid.factors, part.probe_r2, part.encoder_probe_r2)
                lines.append(
                    f"    - {part.states} {name} states: probe R^2 {probe}; reconstructions nearest their own "
                    f"state {_percent(part.reconstruction_rate)}{part.pictures_judged}"
                )
    if evaluation.dynamics_weight is not None:
        lines.append(f"- last logged dynamics weight: {evaluation.dynamics_weight:.3f}")
    return [*lines, ""] if lines else [""]


def _probe_text(factors: Sequence[str], probe: Sequence[float], own: Sequence[float] | None) -> str:
    """``"name R2, ..."``, with the encoder's own R^2 in brackets where the encodings were decoder-checked."""
    if own is None:
        return ", ".join(f"{name} {r2:.4f}" for name, r2 in zip(factors, probe, strict=True))
    return ", ".join(f"{name} {r2:.4f} ({r:.4f})" for name, r2, r in zip(factors, probe, own, strict=True))


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _metrics_lines(metrics: Mapping[str, Any] | None) -> list[str]:
    """The ``## Metrics`` section: D_LSBD and the probe per factor, then the coordinate metrics raw and on angles."""
    lines = ["## Metrics", ""]
    if metrics is None:
        return [
            *lines,
            "Not measured: the environment has no evaluation contract (`factor_space`, `render_states`).",
            "",
        ]
    which = "every state" if metrics["grid"] else "a uniform sample of states"
    planes = "the factor structure's planes" if metrics["planes_given"] else "planes found in the encodings"
    d = metrics["d_lsbd"]
    lines += [
        f"On {metrics['states']} states ({which}), in {planes}; the coordinate metrics fit on "
        f"{metrics['num_train']} and are scored on {metrics['num_test']} (DCI with {metrics['dci_importance']} "
        "importance); the documentation's metrics page describes each metric.",
        "",
        "| factor | N | plane | D_LSBD | frequency k | probe R^2 |",
        "|---|---|---|---|---|---|",
    ]
    for j, name in enumerate(metrics["factors"]):
        plane = "found" if metrics["planes"] is None else "({},{})".format(*metrics["planes"][j])
        lines.append(
            f"| {name} | {metrics['cycle_lengths'][j]} | {plane} | {_number(d['per_factor'][j])} | "
            f"{d['frequencies'][j]} | {_number(metrics['probe_r2'][j])} |"
        )
    lines += [
        f"| **mean** (sum) | | | **{_number(d['value'])}** ({_number(d['total'])}) | | |",
        "",
        "| metric | raw coordinates | angle coordinates |",
        "|---|---|---|",
    ]
    rows = (
        ("MIG", ("mig", "value")),
        ("DCI disentanglement", ("dci", "disentanglement")),
        ("DCI completeness", ("dci", "completeness")),
        ("DCI informativeness (test accuracy)", ("dci", "informativeness_test")),
        ("SAP", ("sap", "value")),
        ("modularity", ("modularity", "modularity")),
        ("explicitness (test ROC AUC)", ("modularity", "explicitness_test")),
        ("FactorVAE score", ("factor_vae", "eval_accuracy")),
    )
    for label, (group, key) in rows:
        raw, angles = (metrics[which_][group][key] for which_ in ("raw", "angles"))
        lines.append(f"| {label} | {_number(raw)} | {_number(angles)} |")
    return [*lines, ""]


def _provenance_lines(origin: Mapping[str, Any]) -> list[str]:
    packages = ", ".join(f"{name} {version or 'n/a'}" for name, version in origin["packages"].items())
    return [
        "## Provenance",
        "",
        f"- packages: {packages}",
        f"- git commit: {origin['git_commit'] or 'n/a (not a git checkout)'}",
        f"- seed: {origin['seed'] if origin['seed'] is not None else 'n/a'}; evaluation seed: "
        f"{origin['evaluation_seed'] if origin['evaluation_seed'] is not None else 'n/a'}",
        f"- date: {origin['date']}; device: {origin['device']}; processor: {origin['processor'] or 'n/a'}; "
        f"Python {origin['python']}",
        f"- command: `{origin['command']}`",
        "",
    ]


def _markdown(evaluation: Evaluation, metrics: Mapping[str, Any] | None, origin: Mapping[str, Any]) -> str:
    criteria = evaluation.criteria
    at = rollout_bce_at(evaluation)
    lines = [
        f"# DynDis world model: {evaluation.env_id}",
        "",
        f"- environment kwargs: `{evaluation.env_kwargs}`; latent dim {evaluation.latent_dim}; "
        f"{evaluation.n_actions} actions",
    ]
    if evaluation.training is not None:
        training = evaluation.training
        # the precision the run trained in ("auto" resolved; absent from configs given by hand)
        precision = {True: ", bfloat16 autocast", False: ", float32"}.get(training.config.get("bf16"), "")
        lines.append(f"- training: {training.steps} steps, {training.train_seconds:.1f} s{precision}")
    lines += [
        f"- rollout BCE: k=1 {at.get('1', float('nan')):.4f}, "
        f"k={evaluation.horizon} {at.get(str(evaluation.horizon), float('nan')):.4f} "
        f"(ratio {_rounded(evaluation.rollout_bce_ratio)}, "
        f"limit {criteria.bce_ratio_limit})",
        *_fidelity_lines(evaluation),
        "## Quality criteria",
        "",
        "| criterion | holds |",
        "|---|---|",
    ]
    for name, value in {**criteria.checks(), "all": criteria.all}.items():
        lines.append(f"| {name} | {'n/a (no rotations)' if name in criteria.not_applicable else value} |")
    advice = remedies(evaluation)
    if advice:
        lines += ["", "What to change:", ""]
        lines += [f"- {', '.join(f'`{name}`' for name in names)}: {text}" for names, text in advice]
    lines += ["", "## Actions", ""]
    if not evaluation.actions:
        lines += [
            "The model has no rotations: no planes, angles or closures to report, and the structure criteria do "
            "not apply to it (so `all` is False).",
            "",
        ]
    else:
        lines += [
            "| action | factor | dir | plane | share | angle / (2pi/N) | faithful | closure | inverse error |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
    for a in evaluation.actions:
        if a.factor is not None:
            lines.append(
                f"| {a.action} | {a.factor} | {a.direction:+d} | {a.dominant_plane} | "
                f"{a.plane_share:.5f} | {a.angle_over_unit:+.5f} (N={a.cycle_length}) | "
                f"{a.faithful} | "
                f"{a.cycle_closure_mean:.2e} | {a.inverse_error:.2e} |"
            )
        else:
            lines.append(f"| {a.action} | | | {a.dominant_plane} | {a.plane_share:.5f} | {a.angle:+.5f} rad | | | |")
    if evaluation.actions:
        lines += ["", f"Different factors in disjoint planes: {evaluation.disjoint_planes}.", ""]
    lines += [
        *_metrics_lines(metrics),
        *_provenance_lines(origin),
        "![training curves](training_curves.png)",
        *(["![angles](angles.png)"] if evaluation.actions else []),
        "![rollout BCE](rollout_bce.png)",
        "![rollout](rollout.gif)",
        "",
    ]
    return "\n".join(lines)


def write_report(
    out_dir: str | Path,
    model: WorldModel | PredictiveModel,
    evaluation: Evaluation,
    history: Sequence[dict[str, float]],
    batch: EpisodeBatch,
    gif_frames: int,
    *,
    seed: int = 0,
    progress: bool | Progress | None = False,
    tensorboard: bool = False,
) -> Path:
    """Write every report file into ``out_dir``; returns the path of ``report.json``.

    ``report.json`` is ``evaluation.to_dict()`` (with ``training`` when the evaluation carries it) plus
    ``rollout_bce_at``, ``metrics`` (:func:`report_metrics`; None without the evaluation contract),
    ``provenance`` (:func:`provenance`) and the list of the other ``files``.

    Args:
        out_dir: Destination folder (created if needed).
        model: The trained model (for the metrics and the GIF).
        evaluation: The result of :func:`~dyndis_learn.evaluate.evaluate_model`, its ``training`` filled in
            by the caller (``dataclasses.replace(evaluation, training=TrainingSummary(...))``); the run's
            configuration in it gives the end of the warm-up on the training curves and the seed.
        history: The training history (for the curves; may be empty).
        batch: The evaluation episodes (the GIF shows the first).
        gif_frames: Frames of the GIF.
        seed: The evaluation seed (``EvalConfig.seed``): the sample of states of the metrics on a large world.
        progress: A line per phase on stderr (True), none (False), only on a terminal (None), or a
            :class:`Progress` to continue.
        tensorboard: Also write the figures (:func:`tensorboard_scalars`) and a rollout image
            (:func:`rollout_strip`, ``eval/rollout``) as TensorBoard events in ``out_dir/tensorboard``, at the
            training step (needs the ``tensorboard`` extra).
    """
    steps = progress if isinstance(progress, Progress) else Progress(progress, total=3)
    if isinstance(progress, Progress):
        steps.total = max(steps.total, steps.count + 3)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = evaluation.to_dict()
    training = data.pop("training", None)
    config = None if evaluation.training is None else evaluation.training.config
    run_seed = (config or {}).get("seed")
    with steps.phase("representation metrics on the evaluation states"):
        metrics = report_metrics(model, evaluation, seed=seed)
    origin = provenance(model, seed=run_seed if isinstance(run_seed, int) else None, evaluation_seed=seed)
    report = {
        **data,
        "rollout_bce_at": rollout_bce_at(evaluation),
        **({} if training is None else {"training": training}),
        "metrics": metrics,
        "provenance": origin,
        "files": [
            "training_curves.png",
            *(["angles.png"] if evaluation.actions else []),  # a model without rotations has no angles
            "rollout_bce.png",
            "rollout.gif",
            "report.md",
        ],
    }
    with steps.phase("figures"):
        if history:
            warmup = stored_warmup(config)
            plot_training_curves(
                history,
                out / "training_curves.png",
                warmup.steps or None if warmup is not None else None,
                warmup.terms if warmup is not None else None,
            )
        if evaluation.actions:
            plot_angles(evaluation, out / "angles.png")
        plot_rollout_bce(evaluation, out / "rollout_bce.png")
    with steps.phase(f"rollout GIF ({gif_frames} frames)"):
        rollout_gif(model, batch, gif_frames, out / "rollout.gif")
    markdown = _markdown(evaluation, metrics, origin)
    atomic_write(out / "report.md", lambda tmp: Path(tmp).write_text(markdown, encoding="utf-8"))
    path = write_json_atomic(out / "report.json", report)
    if tensorboard:
        step = evaluation.training.steps if evaluation.training is not None else 0
        image = rollout_strip(model, batch, min(gif_frames, _STRIP_FRAMES))
        log_evaluation(out / "tensorboard", step, tensorboard_scalars(report), {"eval/rollout": image})
    steps.done(f"wrote {out}")
    return path
