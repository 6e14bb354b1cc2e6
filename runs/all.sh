#!/usr/bin/env bash
# Every baseline run behind leaderboard/submissions (about an hour on 2 CPU cores), then submit and render.
set -euo pipefail
cd "$(dirname "$0")/.."
bash runs/md17_baselines.sh xtb-ethanol
bash runs/md17_baselines.sh rmd17-ethanol
bash runs/qm9_flow_baselines.sh
bash runs/voxel_baselines.sh
for f in results/*.json; do .venv/bin/equibench submit "$f" --data-dir ../shared/data/rmd17; done
.venv/bin/equibench leaderboard --readme README.md
