#!/usr/bin/env bash
# The main job on the shipped defaults: builds (installing missing packages), then runs every paper
# experiment (experiments/*.yaml with a sweep), draws the figures and writes the report:
# results/reproduce/report.md and report.html. Options go to `rmai reproduce` (e.g. --quick, --jobs N,
# --out DIR, --only NAME, --set KEY=VALUE).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/build.sh" >/dev/null
cd "$top"
exec "$top/build/bin/rmai" reproduce "$@"
