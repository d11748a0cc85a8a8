"""Registry-wide fixtures: every registered DynDis id is tested, with keyword arguments that keep it fast."""

import dyndis_envs

#: Keyword arguments that keep each registered env quick to build in tests; every id must have an entry.
FAST_KWARGS: dict[str, dict] = {
    "DynDis/GridWorld-v0": {},
    # a 2 x 2 x 2 x 2 x 2 x 3 grid at 40 x 40; no frame table, so the renderer serves every image
    "DynDis/Shapes3D-v0": {
        "factors": {"floor_hue": 2, "wall_hue": 2, "object_hue": 2, "scale": 2, "shape": [0, 3], "orientation": 3},
        "image_size": 40,
        "max_table_bytes": 0,
    },
    "DynDis/Cars3D-v0": {"factors": {"object": 2}, "image_size": 40, "cache": False},
}


def pytest_generate_tests(metafunc):
    if "env_id" in metafunc.fixturenames:
        metafunc.parametrize("env_id", dyndis_envs.ENV_IDS)
