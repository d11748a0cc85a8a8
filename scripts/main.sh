#!/usr/bin/env bash
# The main job: set up (if needed), then render a GridWorld contact sheet and a random-rollout GIF.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python scripts/preview_env.py --env DynDis/GridWorld-v0 \
    --env-kwargs '{"factors": {"size": "all", "colour": "all", "background": "all"}}' --out outputs/gridworld "$@"
