"""Contact sheets and rollout pictures of an environment, written atomically as PNG and GIF."""

import gymnasium as gym
import numpy as np
from PIL import Image

from dyndis_envs.preview import factor_rows, factor_sheet, rollout_frames, save_gif, save_png


def test__factor_rows__one_row_per_active_factor_then_random_states():
    env = gym.make("DynDis/GridWorld-v0", image_size=16).unwrapped
    rows = factor_rows(env, base=[0, 0, 0, 0, 0], n_random=3)
    assert [label for label, _ in rows] == ["north_south", "east_west", "random samples"]
    assert [len(images) for _, images in rows] == [5, 5, 3]
    np.testing.assert_array_equal(rows[0][1][0], env.frames.batch(np.zeros((1, 5), dtype=np.int64))[0])


def test__save_png_and_gif__round_trip(tmp_path):
    env = gym.make("DynDis/GridWorld-v0", image_size=16).unwrapped
    sheet = factor_sheet(env, scale=1)
    png = save_png(sheet, tmp_path / "sub" / "sheet.png")
    np.testing.assert_array_equal(np.asarray(Image.open(png).convert("RGB")), sheet)
    frames = rollout_frames(env, 4)
    assert frames.shape == (5, 16, 16, 3)
    gif = save_gif(frames, tmp_path / "rollout.gif", scale=2)
    assert Image.open(gif).n_frames >= 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rollout.gif", "sub"]
