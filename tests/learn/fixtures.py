"""Tiny configurations that keep the dyndis-learn tests fast while still exercising every code path, and a
helper that edits a checkpoint's header as a user would."""

#: A 16 x 16 GridWorld (5 x 5 positions), a small network and a few short episodes per step.
TINY_ENV_ID = "DynDis/GridWorld-v0"
TINY_ENV_KWARGS: dict = {"image_size": 16}
TINY: dict = {
    "env": {"id": TINY_ENV_ID, "kwargs": TINY_ENV_KWARGS},
    "model": {"latent_dim": 4, "channels": [8, 8], "hidden_dim": 32, "angle_bins": None},  # no "auto" to resolve
    "data": {"episodes_per_step": 2, "episode_steps": 4},
    "steps": 6,
    "warmup": {
        "kind": "graph",  # the cycles warm-up (the default) has tests of its own with its own tiny settings
        "steps": 2,
        # 800 random transitions see every edge of the 25 states' graph
        "graph": {"exploration_batches": 1, "exploration_episodes": 32, "exploration_steps": 25},
    },
    "optim": {"dynamics_ramp_steps": 2},
    "logging": {"log_every": 1, "checkpoint_every": 0},
    "threads": 1,
    # the tests compare runs bit for bit, which CUDA kernels do not promise: CUDA has tests of its own
    # (test_cuda.py), and the rest run on the CPU on every machine
    "device": "cpu",
    "bf16": False,  # no "auto" to resolve (float32, as the graph warm-up's "auto" would choose)
    "evaluation": {"episodes": 2, "horizon": 12, "gif_steps": 4},
}


def rewrite_checkpoint_header(path, edit, *, resign: bool = True, drop_digests: bool = False) -> None:
    """Edit the JSON state in a checkpoint's header in place, as a user with a text editor would.

    Args:
        path: The safetensors checkpoint.
        edit: Called with the state dict (``config``, ``step``, ...); changes it in place.
        resign: Recompute the header's digest afterwards, so only the checks behind the digests see the edit.
        drop_digests: Remove the digests and write format 2 (a file of the format before digests).
    """
    import hashlib
    import json
    import struct
    from pathlib import Path

    data = Path(path).read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    metadata = header["__metadata__"]
    state = json.loads(metadata["dyndis_learn"])
    edit(state)
    if drop_digests:
        state["format"] = 2
        metadata.pop("dyndis_learn.digests", None)
    metadata["dyndis_learn"] = json.dumps(state)
    if resign and "dyndis_learn.digests" in metadata:
        digests = json.loads(metadata["dyndis_learn.digests"])
        digests["header"] = hashlib.sha256(metadata["dyndis_learn"].encode()).hexdigest()
        metadata["dyndis_learn.digests"] = json.dumps(digests)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + data[8 + size :])


def check_cpu_facing_api(learner) -> None:
    """``Learner.encode/decode/predict`` give NumPy arrays and the planner searches on the CPU, wherever the
    model lives."""
    import numpy as np
    import torch

    from dyndis_learn.planner import LatentPlanner

    images = learner.trainer.collector.collect(0).observations[0]
    latents = learner.encode(images)
    assert isinstance(latents, np.ndarray) and latents.dtype == np.float32
    assert learner.decode(latents).dtype == np.uint8
    assert learner.predict(images[:1], [[0, 1]]).shape == (1, 3, *images.shape[1:])
    planner = LatentPlanner.from_model(learner.model)  # encodes on the model's device
    assert planner.action_matrices.device == torch.device("cpu")
    assert isinstance(planner.plan(images[0], images[1]), list)
