#!/usr/bin/env bash
# Train GridWorld 5x5 on CUDA, write its report, and print the SGD step time and the encoder's images/s.
# Skips (exit 0) where torch.cuda.is_available() is False. Extra arguments go to `dyndis-learn train`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-outputs/gpu_check}
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: skipped: torch.cuda.is_available() is False on this machine (no CUDA GPU or a CPU-only torch)."
    exit 0
fi
rm -rf "$OUT"
"$PY" -m dyndis_learn train --device cuda --out "$OUT" --quiet "$@"
"$PY" - "$OUT" <<'PYEOF'
import json
import sys
import time
from pathlib import Path

import torch

from dyndis_learn import load_model
from dyndis_learn.checkpoint import CHECKPOINT_NAME, read_checkpoint

out = Path(sys.argv[1])
checkpoint = read_checkpoint(out / CHECKPOINT_NAME)
print(f"gpu_check: {torch.cuda.get_device_name(0)}; trained {checkpoint.step} steps on {checkpoint.config['device']}")
print(f"gpu_check: SGD step time {1000 * checkpoint.train_seconds / max(checkpoint.step, 1):.2f} ms")
report = out / "report.json"
if report.is_file():
    print(f"gpu_check: report {report} (device: {json.loads(report.read_text())['provenance']['device']})")
model = load_model(out / CHECKPOINT_NAME, device="cuda")
images = torch.randint(0, 256, (1024, 64, 64, model.image_shape[2]), dtype=torch.uint8, device="cuda")
if tuple(model.image_shape[:2]) != (64, 64):
    images = torch.randint(0, 256, (1024, *model.image_shape), dtype=torch.uint8, device="cuda")
with torch.no_grad():
    for _ in range(3):
        model.encode(images)
    torch.cuda.synchronize()
    runs = 10
    start = time.perf_counter()
    for _ in range(runs):
        model.encode(images)
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / runs
shape = "x".join(map(str, images.shape[1:3]))
print(f"gpu_check: encoder {images.shape[0] / seconds:,.0f} images/s ({images.shape[0]} images of {shape} per batch)")
PYEOF
