#!/usr/bin/env bash
# Real baseline runs whose results are committed under leaderboard/submissions/.
# Two runs at a time, one thread each (2-core machine). Usage: bash runs/md17_baselines.sh DATASET
set -euo pipefail
dataset=${1:-xtb-ethanol}
extra=()
[ "$dataset" != "${dataset#rmd17}" ] && extra=(--data-dir ../shared/data/rmd17)
run() { .venv/bin/equibench run --task md17 --dataset "$dataset" "${extra[@]}" --threads 1 --no-progress --out results "$@"; }
run --model egnn & run --model nequip_e3nn & wait
run --model transformer & run --model transformer --no-augment & wait
