#!/usr/bin/env python3
"""Golden regression of the simulator's latency model.

Runs every case below with `rmai run` on tests/golden/base.yaml and compares each run's
summary.json metrics (every value but wall_time_s) and a digest of its switches.csv with the stored
tests/golden/<case>.json. A metric that moves by more than 1e-9 relative fails the check, and the
report says, per case, which metrics moved, from what to what. The digest of switches.csv is its row
count, a SHA-256 of its rows' exact columns (node, token, layer, expert, tier, bytes, faults; sorted,
so the order rows were written in does not matter) and sums of its times, compared to 1e-9 relative.

  tests/golden/golden.py --rmai build/bin/rmai               # check (CTest runs this)
  tests/golden/golden.py --rmai build/bin/rmai --plain-path  # every case with sim.fast_path=false
                                                             # against the golden files (CTest too)

With --plain-path, a case that several nodes contend in may differ beyond 1e-9: the fluid model
amplifies a difference in the last bit of one date, and SimGrid's own equivalent settings (update
mode Full instead of Lazy, timing precision 1e-10 or 1e-8 instead of 1e-9) move such a case as
well (docs/architecture.md, "The fast path"), as does a change of the contended links' bandwidth by
1e-10 (PERTURBATION). Such a case must keep every count and text equal and its simulated time and
mean switch within SPREADS times the farthest of those runs' results.
  tests/golden/golden.py --rmai build/bin/rmai --update      # rewrite the golden files, same report

Update only when a simulated number changes on purpose, in the commit that changes it, and say why
in its message (README, "Golden regression").
"""
import argparse
import concurrent.futures
import csv
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = os.path.join(HERE, "base.yaml")
RELATIVE_TOLERANCE = 1e-9
SIMGRID_VARIANTS = ["--cfg=network/optim:Full", "--cfg=surf/precision:1e-10", "--cfg=surf/precision:1e-8"]
SPREADS = 2
PERTURBATION = 1e-10  # the contended links this much faster and slower: equivalent runs too
CONTINUOUS = ("simulated_time_s", "expert_switch_s.mean")

# The two models of the set, each with a cache of a quarter of its routed experts.
MODELS = {"mixtral": ["model=mixtral-8x7b", "cache.gpu_experts=64"],
          "olmoe": ["model=olmoe-1b-7b", "cache.gpu_experts=256"]}


def registered_tiers(rmai):
    """The tiers defined in models/tiers, in presentation order (`rmai list tiers --json`)."""
    out = subprocess.run([rmai, "list", "tiers", "--json"], check=True, capture_output=True, text=True).stdout
    return [tier["name"] for tier in json.loads(out)["tiers"]]


def cases(tiers):
    """Case name -> the --set assignments of its run."""
    out = {}
    for tier in tiers:  # every tier on both models, one node and 8 nodes sharing one server
        for model, sets in MODELS.items():
            for nodes in (1, 8):
                out[f"{model}-{tier}-n{nodes}"] = sets + [f"memory.tier={tier}", f"nodes={nodes}"]
    mixtral = MODELS["mixtral"]
    olmoe = MODELS["olmoe"]
    for prefetch in ("next-layer", "oracle"):
        for nodes in (1, 8):
            out[f"mixtral-rmai-{prefetch}-n{nodes}"] = mixtral + [f"cache.prefetch={prefetch}", f"nodes={nodes}"]
    out["olmoe-disk-mmap-next-layer-depth4"] = olmoe + ["memory.tier=disk-mmap", "cache.prefetch=next-layer",
                                                        "cache.prefetch_depth=4"]
    for nodes in (1, 8):  # region chunks: the fetch of one chunk overlaps the GPU copy of the last
        out[f"mixtral-rmai-chunk32MiB-n{nodes}"] = mixtral + ["memory.rmai.region_chunk=32MiB", f"nodes={nodes}"]
    out["mixtral-rmai-chunk32MiB-400g"] = mixtral + ["memory.rmai.region_chunk=32MiB",
                                                     "platform.nic=connectx-7-400g"]
    out["mixtral-rmai-4-servers-n8"] = mixtral + ["nodes=8", "platform.memory_servers=4"]
    for policy in ("lfu", "fifo"):
        out[f"olmoe-rmai-{policy}"] = olmoe + [f"cache.policy={policy}"]
    # Calibrated generators and real sample traces.
    out["mixtral-rmai-gen-mmlu"] = mixtral + ["trace.generator=mixtral-8x7b-mmlu"]
    out["olmoe-page4k-gen-c4-2seq"] = olmoe + ["memory.tier=page4k", "trace.generator=olmoe-1b-7b-c4",
                                               "trace.sequences=2"]
    out["mixtral-disk-read-trace-mmlu"] = mixtral + ["memory.tier=disk-read",
                                                     "trace.file=traces/samples/mixtral-8x7b-mmlu-256.csv"]
    out["olmoe-rmai-trace-c4-n8"] = olmoe + ["trace.file=traces/samples/olmoe-1b-7b-c4-256.csv", "nodes=8"]
    # Serving (docs/architecture.md, "Serving"): batched decode, context, concurrent switches, the
    # host cache, on several nodes sharing the pool.
    out["olmoe-page4k-gen-c4-2seq-batch2"] = olmoe + ["memory.tier=page4k", "trace.generator=olmoe-1b-7b-c4",
                                                      "trace.sequences=2", "serving.batch=2"]
    out["mixtral-rmai-batch8-context4k-n4"] = mixtral + ["trace.sequences=16", "serving.batch=8",
                                                         "serving.context=4096", "nodes=4"]
    out["mixtral-rmai-concurrency4-batch4-n2"] = mixtral + ["trace.sequences=8", "serving.batch=4",
                                                            "memory.rmai.concurrency=4", "nodes=2"]
    out["mixtral-disk-read-host128-n2"] = mixtral + ["memory.tier=disk-read", "cache.host_experts=128", "nodes=2"]
    out["olmoe-disk-mmap-host512-concurrency2"] = olmoe + ["memory.tier=disk-mmap", "cache.host_experts=512",
                                                           "memory.disk-mmap.concurrency=2"]
    # The scaled experts and layers `rmai validate` simulates on this machine's platform.
    for tier in ("rmai", "page4k"):
        out[f"mixtral-{tier}-emulated-this-vm"] = mixtral + [
            f"memory.tier={tier}", "experts=emulated", "emul.layers=0-3", "cache.gpu_experts=8",
            "platform=this-vm"]
    return out


def flatten(value, prefix=""):
    """summary.json as dotted keys (expert_switch_s.p50, bytes.remote, ...)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def switches_digest(path):
    """Row count, SHA-256 of the sorted exact columns, and sums of the times (see the docstring)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    exact = sorted(",".join(r[c] for c in ("node", "token", "layer", "expert", "tier", "bytes", "faults")) for r in rows)
    durations = [float(r["end_s"]) - float(r["start_s"]) for r in rows]
    return {"rows": len(rows), "sha256": hashlib.sha256("\n".join(exact).encode()).hexdigest(),
            "start_s_sum": math.fsum(float(r["start_s"]) for r in rows),
            "end_s_sum": math.fsum(float(r["end_s"]) for r in rows),
            "duration_s_sum": math.fsum(durations),
            "duration_s_sum_of_squares": math.fsum(d * d for d in durations)}


def run_case(rmai, name, sets, workdir, extra_sets, options=()):
    out = os.path.join(workdir, name)
    command = [rmai, "run", BASE, "--out", out, *options]
    for assignment in sets + extra_sets:
        command += ["--set", assignment]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr.strip()}"}
    with open(os.path.join(out, "summary.json")) as f:
        metrics = flatten(json.load(f))
    metrics.pop("wall_time_s")  # measures this machine
    return {"set": sets, "metrics": metrics, "switches_csv": switches_digest(os.path.join(out, "switches.csv"))}


def moved(old, new):
    """True when a metric's value differs beyond the tolerance (exact for text)."""
    if isinstance(old, (int, float)) and isinstance(new, (int, float)) and not isinstance(old, bool):
        if math.isnan(old) or math.isnan(new):
            return not (math.isnan(old) and math.isnan(new))
        return abs(new - old) > RELATIVE_TOLERANCE * max(abs(old), abs(new))
    return old != new


def differences(golden, result):
    """Lines naming what moved between a golden record and a fresh result."""
    lines = []
    if "error" in result:
        return [result["error"]]
    old, new = golden["metrics"], result["metrics"]
    for key in sorted(old.keys() | new.keys()):
        if key not in new:
            lines.append(f"{key}: {old[key]!r} -> (gone)")
        elif key not in old:
            lines.append(f"{key}: (new) -> {new[key]!r}")
        elif moved(old[key], new[key]):
            change = ""
            if isinstance(old[key], (int, float)) and old[key]:
                change = f" ({(new[key] - old[key]) / abs(old[key]):+.3g} relative)"
            lines.append(f"{key}: {old[key]!r} -> {new[key]!r}{change}")
    old, new = golden["switches_csv"], result["switches_csv"]
    for key in sorted(old.keys() | new.keys()):
        if key not in old or key not in new or moved(old[key], new[key]):
            lines.append(f"switches.csv {key}: {old.get(key, '(none)')!r} -> {new.get(key, '(none)')!r}")
    if golden.get("set") != result["set"]:
        lines.append(f"--set: {golden.get('set')} -> {result['set']}")
    return lines


def contended_bandwidths(resolved, scale):
    """--set assignments for the links nodes contend for (the servers' NICs, the pool's ports),
    their bandwidths as the run's config.resolved.yaml has them, times `scale`."""
    assignments, section = [], None
    with open(resolved) as f:
        for line in f:
            if line.startswith("  ") and not line.startswith("   ") and line.rstrip().endswith(":"):
                section = line.strip().rstrip(":")
            match = re.match(r"^    bandwidth: ([0-9.eE+-]+)([A-Za-z]+)$", line.rstrip())
            if match and section in ("nic", "cxl_pool"):
                value = float(match.group(1)) * scale
                assignments.append(f"platform.{section}.bandwidth={value!r}{match.group(2)}")
    if len(assignments) != 2:
        raise RuntimeError(f"{resolved}: no platform nic and cxl_pool bandwidths")
    return assignments


def within_simgrid_spread(rmai, name, sets, golden, result):
    """Lines naming what moved beyond SPREADS times SimGrid's own spread (see the docstring); counts
    and text must not move at all."""
    with tempfile.TemporaryDirectory(prefix="rmai-golden-spread-") as workdir:
        variants = [run_case(rmai, f"{name}-variant{i}", sets, workdir, ["sim.fast_path=false"], [v])
                    for i, v in enumerate(SIMGRID_VARIANTS)]
        if "error" not in variants[0]:
            resolved = os.path.join(workdir, f"{name}-variant0", "config.resolved.yaml")
            for scale in (1 + PERTURBATION, 1 - PERTURBATION):
                variants.append(run_case(rmai, f"{name}-perturbed{scale}", sets, workdir,
                                         ["sim.fast_path=false"] + contended_bandwidths(resolved, scale)))
    lines = [v["error"] for v in variants if "error" in v]
    if lines:
        return lines
    old, new = golden["metrics"], result["metrics"]
    for key in CONTINUOUS:
        spread = max(abs(v["metrics"][key] - old[key]) for v in variants)
        if abs(new[key] - old[key]) > max(SPREADS * spread, RELATIVE_TOLERANCE * abs(old[key])):
            lines.append(f"{key}: {old[key]!r} -> {new[key]!r}, beyond {SPREADS} x SimGrid's spread {spread:.3g}")
    for key in sorted(old.keys() & new.keys()):  # counts and text: exact
        if not isinstance(old[key], float) and old[key] != new[key]:
            lines.append(f"{key}: {old[key]!r} -> {new[key]!r}")
    for key in ("rows", "sha256"):
        if golden["switches_csv"][key] != result["switches_csv"][key]:
            lines.append(f"switches.csv {key} moved")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rmai", required=True, help="the rmai executable")
    parser.add_argument("--update", action="store_true", help="rewrite the golden files (prints the same report)")
    parser.add_argument("--plain-path", action="store_true",
                        help="run every case with sim.fast_path=false: the plain SimGrid path must give the same")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if args.update and args.plain_path:
        parser.error("--update records the default path: leave out --plain-path")
    extra_sets = ["sim.fast_path=false"] if args.plain_path else []

    todo = cases(registered_tiers(args.rmai))
    with tempfile.TemporaryDirectory(prefix="rmai-golden-") as workdir:
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = {name: pool.submit(run_case, args.rmai, name, sets, workdir, extra_sets) for name, sets in todo.items()}
            results = {name: future.result() for name, future in futures.items()}

    failures = 0
    for name, result in results.items():
        path = os.path.join(HERE, name + ".json")
        if os.path.exists(path):
            with open(path) as f:
                golden = json.load(f)
            lines = differences(golden, result)
            if lines and args.plain_path and "error" not in result:
                lines = within_simgrid_spread(args.rmai, name, todo[name], golden, result)
                if not lines:
                    print(f"{name}: under contention, within {SPREADS} x SimGrid's own spread")
        else:
            lines = ["no golden file (new case)"]
        if lines:
            failures += 1
            print(f"{name}:")
            for line in lines:
                print(f"  {line}")
        if args.update and lines and "error" not in result:
            with open(path + ".tmp", "w") as f:
                json.dump(result, f, indent=1, sort_keys=True)
                f.write("\n")
            os.replace(path + ".tmp", path)
    stale = sorted(f[:-5] for f in os.listdir(HERE) if f.endswith(".json") and f[:-5] not in todo)
    for name in stale:
        failures += 1
        print(f"{name}: golden file of no case" + (" (removed)" if args.update else ""))
        if args.update:
            os.remove(os.path.join(HERE, name + ".json"))

    errors = sum("error" in r for r in results.values())
    print(f"golden: {len(todo)} cases, {failures} differ" + (", files updated" if args.update else ""))
    if errors or (failures and not args.update):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
