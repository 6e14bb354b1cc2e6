#!/usr/bin/env bash
# Voxel denoising baseline runs (task budget), two at a time, one thread each.
set -euo pipefail
run() { .venv/bin/equibench run --task voxel_denoise --threads 1 --no-progress --out results "$@"; }
run --model voxel_cnn & run --model voxel_e3nn & wait
