#!/usr/bin/env bash
# The main job on the shipped defaults: builds (installing missing packages), runs
# experiments/tiers-mixtral.yaml once per memory tier, and prints the expert-switch latency table
# with each tier's ratio to RMAI. Results: results/tiers-mixtral/<tier>/ and results/tiers-mixtral/table.md.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/build.sh" >/dev/null
out=${1:-$top/results/tiers-mixtral}
tiers=(dram cxl rmai page4k disk-read disk-mmap)
for tier in "${tiers[@]}"; do
  "$top/build/bin/rmai" run "$top/experiments/tiers-mixtral.yaml" --set memory.tier="$tier" --out "$out/$tier"
done
python3 - "$out" "${tiers[@]}" <<'PY'
import json, sys
out, tiers = sys.argv[1], sys.argv[2:]
s = {t: json.load(open(f"{out}/{t}/summary.json")) for t in tiers}
rmai = s["rmai"]["expert_switch_s"]["p50"]
lines = ["| tier | switch p50 (ms) | p99 (ms) | x RMAI | faults/switch | transitions/switch | tokens/s |",
         "|---|---|---|---|---|---|---|"]
for t in tiers:
    d, n = s[t], max(s[t]["expert_switches"], 1)
    lines.append(f"| {t} | {d['expert_switch_s']['p50']*1e3:.2f} | {d['expert_switch_s']['p99']*1e3:.2f} | "
                 f"{d['expert_switch_s']['p50']/rmai:.2f} | {d['page_faults']/n:.0f} | "
                 f"{d['user_kernel_transitions']/n:.0f} | {d['tokens_per_s']:.3f} |")
text = "\n".join(lines) + "\n"
open(f"{out}/table.md", "w").write(text)
print(text, end="")
PY
