#!/usr/bin/env bash
# Rebuilds the calibrated generator presets in models/synthetic/ from the real count tables in
# models/routing/ (see its README). Deterministic: running it again rewrites the same files.
set -euo pipefail
cd "$(dirname "$0")/.."
rmai=build/bin/rmai
[[ -x $rmai ]] || scripts/build.sh
tables=models/routing

# Adjacent reuse is not in the tables. source: docs/reference.md "Routing statistics": Mixtral decode
# shares 0.37 of a token's experts with the previous token; for OLMoE we take Qwen3's 39% adjacent
# overlap, the closest fine-grained model measured (weak: not measured on OLMoE itself).
mixtral_reuse=0.37
olmoe_reuse=0.39

for domain in arxiv book c4 github wikipedia; do
  $rmai trace fit --counts $tables/expert_counts_olmoe_repo.csv --pairs $tables/crosslayer_pairs_olmoe_repo.csv \
    --where model=olmoe-1b-7b --where domain=$domain --model olmoe-1b-7b --reuse $olmoe_reuse \
    --description "OLMoE-1B-7B on $domain text: measured popularity of layers 0/7/15 and pairs 0->7->15" \
    -o models/synthetic/olmoe-1b-7b-$domain.yaml
  $rmai trace fit --counts $tables/expert_counts_olmoe_repo.csv --pairs $tables/crosslayer_pairs_olmoe_repo.csv \
    --where model=mixtral-8x7b --where domain=$domain --model mixtral-8x7b --reuse $mixtral_reuse \
    --description "Mixtral-8x7B on $domain text: measured popularity of layers 0/7/15 and pairs 0->7->15" \
    -o models/synthetic/mixtral-8x7b-$domain.yaml
done
# All 32 layers measured (seven MMLU subjects pooled); pairs 0->7->15 from the five text domains.
$rmai trace fit --counts $tables/expert_popularity_fiddler_mixtral.csv --pairs $tables/crosslayer_pairs_olmoe_repo.csv \
  --where model=mixtral-8x7b --where variant=instruct --model mixtral-8x7b --reuse $mixtral_reuse \
  --description "Mixtral-8x7B-Instruct on MMLU: measured popularity of all 32 layers, pairs 0->7->15 from text" \
  -o models/synthetic/mixtral-8x7b-mmlu.yaml
