"""The run report: figures (PNG), a rollout GIF, ``report.json`` and ``report.md``, written into a folder.

- ``training_curves.png``: every loss term over training steps (log scale).
- ``angles.png``: per action, its angle in every plane (the dominant plane highlighted).
- ``rollout_bce.png``: rollout BCE per step ``k`` with its 95% interval.
- ``rollout.gif``: ground truth (left) next to the decoded latent rollout (right) of one long evaluation
  episode, subsampled to span the whole horizon.
- ``report.json``: the evaluation figures (``Evaluation.to_dict()``, keys documented in ``docs/report.md``:
  among them the mean-image BCE, the encoder probe and decoder fidelity, the last dynamics weight, with the
  training summary when the evaluation carries one) plus ``rollout_bce_at`` and the list of ``files``.
- ``report.md``: the same, for people.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from dyndis_learn.files import atomic_write, write_json_atomic
from dyndis_learn.model import WorldModel
from dyndis_learn.results import Evaluation
from dyndis_learn.rollouts import EpisodeBatch
from dyndis_learn.rotations import plane_pairs

__all__ = [
    "plot_angles",
    "plot_rollout_bce",
    "plot_training_curves",
    "rollout_bce_at",
    "rollout_gif",
    "write_report",
]

_CURVES = ("loss", "autoencoder_bce", "rollout_bce", "consistency", "target", "smoothness", "whitening", "regularizer")


def _save_figure(fig: plt.Figure, path: Path) -> Path:
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight"), suffix=path.suffix)
    finally:
        plt.close(fig)


def plot_training_curves(history: Sequence[dict[str, float]], path: Path) -> Path:
    """Loss terms (absolute values, log scale) and the smallest plane share against the step."""
    fig, (ax_loss, ax_share) = plt.subplots(1, 2, figsize=(11, 3.8))
    steps = [row["step"] for row in history]
    for name in _CURVES:
        values = np.abs([row.get(name, 0.0) for row in history])  # older runs lack newer terms
        if np.any(values > 0):
            ax_loss.plot(steps, np.where(values > 0, values, np.nan), label=name)
    ax_loss.set(yscale="log", xlabel="step", title="training losses")
    ax_loss.legend(fontsize=8)
    ax_share.plot(steps, [row["min_plane_share"] for row in history], color="tab:purple")
    ax_share.set(xlabel="step", ylim=(0, 1.02), title="smallest dominant-plane share over actions")
    return _save_figure(fig, path)


def plot_angles(evaluation: Evaluation, path: Path) -> Path:
    """One bar chart per action: its angle in every plane, the dominant plane in colour."""
    actions = evaluation.actions
    pairs = [(int(i), int(j)) for i, j in plane_pairs(evaluation.latent_dim).tolist()]
    columns = min(len(actions), 4)
    rows = math.ceil(len(actions) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.8 * rows), squeeze=False)
    labels = [f"{i}{j}" for i, j in pairs]
    for ax, entry in zip(axes.flat, actions, strict=False):  # extra axes stay empty
        angles = np.asarray(entry.angles)
        colours = ["tab:orange" if p == entry.dominant_plane else "tab:gray" for p in pairs]
        ax.bar(range(len(angles)), angles, color=colours)
        ax.set_xticks(range(len(angles)), labels, fontsize=7, rotation=90 if len(angles) > 12 else 0)
        title = f"action {entry.action}"
        if entry.factor is not None:
            sign = "+" if entry.direction is not None and entry.direction > 0 else "-"
            title += f": {entry.factor}{sign}1\n{entry.angle_over_unit:+.4f} x 2pi/{entry.cycle_length}"
        ax.set_title(title, fontsize=9)
        ax.axhline(0, color="black", linewidth=0.5)
    for ax in list(axes.flat)[len(actions) :]:
        ax.axis("off")
    fig.suptitle("angle (rad) per plane (i j)", fontsize=10)
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_rollout_bce(evaluation: Evaluation, path: Path) -> Path:
    """Mean rollout BCE against the step k, with the 95% interval over episodes."""
    rollout = evaluation.rollout_bce
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.fill_between(rollout.k, rollout.ci95_low, rollout.ci95_high, alpha=0.3, label="95% interval")
    ax.plot(rollout.k, rollout.mean, label=f"mean over {rollout.episodes} episodes")
    ax.set(xlabel="rollout step k", ylabel="BCE", title="latent rollout error", ylim=(0, None))
    ax.legend(fontsize=8)
    return _save_figure(fig, path)


@torch.no_grad()
def rollout_gif(model: WorldModel, batch: EpisodeBatch, frames: int, path: Path, episode: int = 0) -> Path:
    """Ground truth next to the decoded latent rollout of one episode, ``frames`` frames over its horizon."""
    model.eval()
    observations = torch.from_numpy(batch.observations[episode : episode + 1])
    actions = torch.from_numpy(batch.actions[episode : episode + 1])
    horizon = actions.shape[1]
    stride = max(1, horizon // frames)
    steps = np.arange(0, horizon + 1, stride)[:frames]
    latents = model.rollout(model.encode(observations[:, 0]), actions)[0, steps]
    predicted = (model.decode(latents).numpy() * 255).round().astype(np.uint8)
    truth = batch.observations[episode, steps]
    gap = np.full((len(steps), truth.shape[1], 2, truth.shape[3]), 255, dtype=np.uint8)
    tiles = np.concatenate([truth, gap, predicted], axis=2)
    if tiles.shape[-1] == 1:
        tiles = np.repeat(tiles, 3, axis=-1)
    scale = max(1, 128 // truth.shape[1])
    images = [Image.fromarray(t).resize((t.shape[1] * scale, t.shape[0] * scale), Image.NEAREST) for t in tiles]
    return atomic_write(
        path,
        lambda tmp: images[0].save(tmp, save_all=True, append_images=images[1:], duration=120, loop=0),
        suffix=path.suffix,
    )


def _rounded(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def rollout_bce_at(evaluation: Evaluation) -> dict[str, float]:
    """Mean rollout BCE at k = 1, 10, 100 and the horizon (those evaluated), keyed by ``str(k)``."""
    points = {k: evaluation.rollout_bce.mean_at(k) for k in (1, 10, 100, evaluation.horizon)}
    return {str(k): value for k, value in points.items() if value is not None}


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


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
        probe = ", ".join(f"{name} {r2:.4f}" for name, r2 in zip(fid.factors, fid.probe_r2, strict=True))
        lines += [
            f"- encoder: circular-probe R^2 on {fid.states} states ({which}): {probe} "
            f"(threshold {evaluation.criteria.probe_threshold})",
            f"- decoder: nearest own state's image ({fid.candidates.replace('_', ' ')} as candidates) for "
            f"{_percent(fid.reconstruction_rate)} of reconstructions, {_percent(fid.imagined_rate)} of imagined "
            f"frames k=1..{fid.imagined_steps}, {_percent(fid.imagined_rate_last)} at k={fid.imagined_steps} "
            f"(threshold {evaluation.criteria.decoder_threshold:.0%})",
        ]
    if evaluation.dynamics_weight is not None:
        lines.append(f"- last logged dynamics weight: {evaluation.dynamics_weight:.3f}")
    return [*lines, ""] if lines else [""]


def _markdown(evaluation: Evaluation) -> str:
    criteria = evaluation.criteria
    at = rollout_bce_at(evaluation)
    lines = [
        f"# DynDis world model: {evaluation.env_id}",
        "",
        f"- environment kwargs: `{evaluation.env_kwargs}`; latent dim {evaluation.latent_dim}; "
        f"{evaluation.n_actions} actions",
    ]
    if evaluation.training is not None:
        lines.append(f"- training: {evaluation.training.steps} steps, {evaluation.training.train_seconds:.1f} s")
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
        lines.append(f"| {name} | {value} |")
    lines += [
        "",
        "## Actions",
        "",
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
    lines += [
        "",
        f"Different factors in disjoint planes: {evaluation.disjoint_planes}.",
        "",
        "![training curves](training_curves.png)",
        "![angles](angles.png)",
        "![rollout BCE](rollout_bce.png)",
        "![rollout](rollout.gif)",
        "",
    ]
    return "\n".join(lines)


def write_report(
    out_dir: str | Path,
    model: WorldModel,
    evaluation: Evaluation,
    history: Sequence[dict[str, float]],
    batch: EpisodeBatch,
    gif_frames: int,
) -> Path:
    """Write every report file into ``out_dir``; returns the path of ``report.json``.

    ``report.json`` is ``evaluation.to_dict()`` (with ``training`` when the evaluation carries it) plus
    ``rollout_bce_at`` and the list of the other ``files``.

    Args:
        out_dir: Destination folder (created if needed).
        model: The trained model (for the GIF).
        evaluation: The result of :func:`~dyndis_learn.evaluate.evaluate_model`, its ``training`` filled in
            by the caller (``dataclasses.replace(evaluation, training=TrainingSummary(...))``).
        history: The training history (for the curves; may be empty).
        batch: The evaluation episodes (the GIF shows the first).
        gif_frames: Frames of the GIF.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = evaluation.to_dict()
    training = data.pop("training", None)
    report = {
        **data,
        "rollout_bce_at": rollout_bce_at(evaluation),
        **({} if training is None else {"training": training}),
        "files": ["training_curves.png", "angles.png", "rollout_bce.png", "rollout.gif", "report.md"],
    }
    if history:
        plot_training_curves(history, out / "training_curves.png")
    plot_angles(evaluation, out / "angles.png")
    plot_rollout_bce(evaluation, out / "rollout_bce.png")
    rollout_gif(model, batch, gif_frames, out / "rollout.gif")
    atomic_write(out / "report.md", lambda tmp: Path(tmp).write_text(_markdown(evaluation), encoding="utf-8"))
    return write_json_atomic(out / "report.json", report)
