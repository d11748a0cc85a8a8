"""Registry-wide parametrisation: a test that takes ``env_id`` runs for every plain DynDis id."""

import dyndis_envs


def pytest_generate_tests(metafunc):
    if "env_id" in metafunc.fixturenames:
        metafunc.parametrize("env_id", dyndis_envs.ENV_IDS)
