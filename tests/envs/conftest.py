"""Registry-wide fixtures: every registered DynDis id is tested, with keyword arguments that keep it fast."""

import dyndis_envs

#: Keyword arguments that keep each registered env quick to build in tests; every id must have an entry.
FAST_KWARGS: dict[str, dict] = {
    "DynDis/GridWorld-v0": {},
    "DynDis/Cars3D-v0": {"factors": {"object": 2}, "image_size": 40, "cache": False},
}


def pytest_generate_tests(metafunc):
    if "env_id" in metafunc.fixturenames:
        metafunc.parametrize("env_id", dyndis_envs.ENV_IDS)
