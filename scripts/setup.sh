#!/usr/bin/env bash
# One-time (and idempotent) set-up: a virtual environment in .venv with both DynDis packages installed
# editable, plus the development tools. CPU-only machines get a CPU build of PyTorch, never a multi-GB
# CUDA build: a CPU wheel on local disk is used when pip can find one, else PyTorch's CPU package index
# (override it with $DYNDIS_TORCH_INDEX). Re-running is cheap: nothing is installed twice.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.13.0
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check)

stamp=.venv/.dyndis-setup
want=$(cat scripts/setup.sh requirements-dev.txt packages/*/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    exit 0
fi

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1; then
        "${pip[@]}" install "torch==$TORCH_VERSION"
    else
        wheels=$(mktemp -d)
        trap 'rm -rf "$wheels"' EXIT
        if "${pip[@]}" download --quiet --no-deps --no-index -d "$wheels" "torch==$TORCH_VERSION" >/dev/null 2>&1; then
            "${pip[@]}" install "torch==$TORCH_VERSION"       # a CPU wheel lies on this machine's disk
        else
            "${pip[@]}" install "torch==$TORCH_VERSION" \
                --index-url "${DYNDIS_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
        fi
    fi
fi

packages=(-e packages/dyndis-envs)
[ -d packages/dyndis-learn ] && packages+=(-e "packages/dyndis-learn[rl,tensorboard,distributed]")
"${pip[@]}" install "${packages[@]}" -r requirements-dev.txt
echo "$want" > "$stamp"
