#!/usr/bin/env bash
# QM9 flow-matching baseline runs (full EDM training split, task budget), two at a time, one thread each.
set -euo pipefail
run() { .venv/bin/equibench run --task qm9_flow --threads 1 --no-progress --out results "$@"; }
run --model egnn & run --model transformer & wait
