"""Tiny configurations that keep the dyndis-learn tests fast while still exercising every code path."""

#: A 16 x 16 GridWorld (5 x 5 positions), a small network and a few short episodes per step.
TINY_ENV_ID = "DynDis/GridWorld-v0"
TINY_ENV_KWARGS: dict = {"image_size": 16}
TINY: dict = {
    "env": {"id": TINY_ENV_ID, "kwargs": TINY_ENV_KWARGS},
    "model": {"latent_dim": 4, "channels": [8, 8], "hidden_dim": 32},
    "data": {"episodes_per_step": 2, "episode_steps": 4},
    "steps": 6,
    "warmup": {
        "steps": 2,
        # 800 random transitions see every edge of the 25 states' graph
        "graph": {"exploration_batches": 1, "exploration_episodes": 32, "exploration_steps": 25},
    },
    "optim": {"dynamics_ramp_steps": 2},
    "logging": {"log_every": 1, "checkpoint_every": 0},
    "threads": 1,
    "evaluation": {"episodes": 2, "horizon": 12, "gif_steps": 4},
}
