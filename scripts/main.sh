#!/usr/bin/env bash
# The main job: set up (if needed), then train the rotation world model on GridWorld 5x5 with the default
# recipe and write its report (PNGs, GIF, report.json, report.md) into outputs/gridworld/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/dyndis-learn train --env.id DynDis/GridWorld-v0 --out outputs/gridworld "$@"
