#!/usr/bin/env bash
# The augmented transformer on rMD17 ethanol for 20,000 steps (6.7x the task budget), to follow its
# relative equivariance error past the budget. Not a leaderboard entry (budget differs).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/equibench run --task md17 --dataset rmd17-ethanol --data-dir ../shared/data/rmd17 --model transformer \
  --steps 20000 --threads 1 --no-progress --out runs/extended
