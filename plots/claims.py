"""The paper's claims checked against a results folder. plots/claims.json defines each claim (its
words, the tiers it compares, the thresholds of its verdict and the rule); the functions below
compute, from RESULTS_DIR/<experiment>/results.csv, what was measured and the verdict. `evaluate`
returns one dict per claim: id, name, paper, readme, rule, measured (lines), brief (one line, for
README's table), verdict (words) and level (holds, partly, does-not-hold, no-results)."""
import json
import math
from pathlib import Path

import common as c

DEFINITIONS = json.loads((Path(__file__).resolve().parent / "claims.json").read_text())
LEVELS = DEFINITIONS["levels"]


def check_tiers():
    """Exits naming the claim and tier when claims.json names a tier `rmai list tiers` does not have."""
    for claim in DEFINITIONS["claims"]:
        for role, tier in claim["tiers"].items():
            if tier not in c.TIERS:
                raise SystemExit(f"plots/claims.json: claim {claim['id']}: tiers.{role}: unknown tier '{tier}' "
                                 f"(rmai list tiers: {', '.join(c.TIERS)})")


def label(tier):
    return c.TIER_LABELS.get(tier, tier)


def rule(claim):
    """The rule of claims.json in words: thresholds and tier labels filled in."""
    text = claim["rule"]
    for role, tier in claim["tiers"].items():
        text = text.replace("{tier:" + role + "}", label(tier))
    return text.format(**claim["thresholds"])


class Results:
    """The status-ok rows of each experiment's results.csv in a results folder (None when absent)."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def ok(self, name):
        path = self.folder / name / "results.csv"
        rows = [r for r in c.read_rows(path) if r.get("status") == "ok"] if path.is_file() else []
        return rows or None


def p50(rows, **match):
    hit = [r for r in c.where(rows, **match) if r.get("expert_switch_s.p50")]
    return hit[0]["expert_switch_s.p50"] if hit else None


def nearest(values, target):
    """The value closest to target by ratio (25 and 400 around 200: 400)."""
    return min(values, key=lambda v: (abs(math.log(v / target)), v))


def models(rows):
    return list(dict.fromkeys(r["model"] for r in rows))


def gb(b):
    return f"{b / 1e9:,.1f} GB" if b < 1e12 else f"{b / 1e12:,.3g} TB"


def span(values):
    low, high = min(values), max(values)
    return c.fmt_x(low) if c.fmt_x(low) == c.fmt_x(high) else f"{c.fmt_x(low)[:-1]}-{c.fmt_x(high)}"


def no_results(*experiments):
    return [f"no results ({', '.join(experiments)})"], "", "no results", "no-results"


def graded(value, holds, partly, higher_is_better=True):
    """(verdict, level) of a ratio against its two thresholds."""
    good = (lambda t: value >= t) if higher_is_better else (lambda t: value <= t)
    if good(holds):
        return "holds", "holds"
    return ("partly", "partly") if good(partly) else ("does not hold", "does-not-hold")

# ---------------------------------------------------------------- the claims: (measured, brief, verdict, level)


def claim_disk(results, t, th):
    rows = results.ok("switch-latency")
    if not rows:
        return no_results("switch-latency")
    mmap, read = {}, {}
    for model in models(rows):
        subject = p50(rows, model=model, tier=t["subject"])
        if subject and p50(rows, model=model, tier=t["disk"]):
            mmap[model] = p50(rows, model=model, tier=t["disk"]) / subject
        if subject and p50(rows, model=model, tier=t["disk_read"]):
            read[model] = p50(rows, model=model, tier=t["disk_read"]) / subject
    if not mmap:
        return ([f"no {label(t['subject'])} and {label(t['disk'])} pair in switch-latency"], "", "no results",
                "no-results")
    disk, sub, disk_read = label(t["disk"]), label(t["subject"]), label(t["disk_read"])
    first = next(iter(mmap))
    line = f"{c.model_label(first)}: {disk} / {sub} {c.fmt_x(mmap[first])}"
    if first in read:
        line += f", {disk_read} / {sub} {c.fmt_x(read[first])}"
    lines = [line + " (p50 switch)"]
    top = max(mmap, key=mmap.get)
    line = f"max over {len(mmap)} models: {disk} {c.fmt_x(mmap[top])} ({c.model_label(top)})"
    if read:
        top_read = max(read, key=read.get)
        line += f", {disk_read} {c.fmt_x(read[top_read])} ({c.model_label(top_read)})"
    lines.append(line)
    lines.append(f"{disk} / {sub} per model: " + ", ".join(f"{c.model_label(m)} {c.fmt_x(v)}" for m, v in mmap.items()))
    brief = f"p50 switch {disk} / {sub} {c.fmt_x(mmap[first])} ({c.model_label(first)})"
    others = [m for m in mmap if m != first]
    if others:
        brief += f", {span([mmap[m] for m in others])} for {', '.join(c.model_label(m) for m in others)}"
    if first in read:
        brief += f"; {disk_read} / {sub} {c.fmt_x(read[first])}"
    return (lines, brief, *graded(mmap[top], th["holds"], th["partly"]))


def claim_cxl(results, t, th):
    sub, ref = t["subject"], t["reference"]
    lines, brief, whole, chunked = [], [], [], []  # whole-expert and chunked RMAI / CXL ratios
    rows = results.ok("switch-latency")
    if rows:
        per = {m: p50(rows, model=m, tier=sub) / p50(rows, model=m, tier=ref) for m in models(rows)
               if p50(rows, model=m, tier=sub) and p50(rows, model=m, tier=ref)}
        if per:
            lines.append(f"p50 {label(sub)} / {label(ref)} (whole-expert regions): "
                         + ", ".join(f"{c.model_label(m)} {c.fmt_x(v)}" for m, v in per.items()))
            whole += per.values()
            brief.append(f"whole-expert regions {span(per.values())} {label(ref)}")
    rows = results.ok("nic-bandwidth")
    if rows:
        gbps = lambda r: c.si(r, "bandwidth") * 8 / 1e9  # noqa: E731
        speeds = sorted({gbps(r) for r in rows})
        by_speed = {s: [r for r in rows if gbps(r) == s] for s in speeds}
        at = nearest(speeds, th["nic_gbps"])
        cxl = p50(by_speed[at], tier=ref)
        variants = {c.si(r, "region_chunk"): r["expert_switch_s.p50"] / cxl
                    for r in c.where(by_speed[at], tier=sub) if cxl and r.get("expert_switch_s.p50")}
        if variants:
            lines.append(f"at {at:g} Gb/s, p50 {label(sub)} / {label(ref)}: " + ", ".join(
                f"{c.fmt_bytes(k) + ' chunks' if k else 'whole expert'} {c.fmt_x(v)}" for k, v in variants.items()))
            whole += [v for k, v in variants.items() if not k]
            chunked += [v for k, v in variants.items() if k]
        chunk = th["chunk_mib"] * 2**20
        at_chunk = [v for k, v in variants.items() if k == chunk]
        reach = [s for s, here in by_speed.items() if p50(here, tier=ref)
                 and (p50([r for r in here if c.si(r, "region_chunk") == chunk], tier=sub) or math.inf)
                 <= th["within"] * p50(here, tier=ref)]
        within = f"within {th['within'] - 1:.0%} of {label(ref)}"
        lines.append(f"{label(sub)} with {th['chunk_mib']:g} MiB chunks {within} from {reach[0]:g} Gb/s" if reach else
                     f"{label(sub)} with {th['chunk_mib']:g} MiB chunks never {within} up to {speeds[-1]:g} Gb/s")
        if at_chunk:
            brief.append(f"{th['chunk_mib']:g} MiB region chunks (fetch and GPU copy pipelined) {c.fmt_x(at_chunk[0])} at "
                         f"{at:g} Gb/s" + (f", {within} from {reach[0]:g} Gb/s" if reach else ""))
    rows = results.ok("region-chunk")
    cxl = p50(rows, tier=ref) if rows else None
    if cxl:
        points = [(r["expert_switch_s.p50"] / cxl, c.si(r, "region_chunk"), c.get(r, "fault_batch"))
                  for r in c.where(rows, tier=sub) if r.get("expert_switch_s.p50")]
        best = min(points) if points else None
        if best:
            where = f"{c.fmt_bytes(best[1])} chunks" if best[1] else "whole experts"
            lines.append(f"region-chunk: best p50 {label(sub)} / {label(ref)} {c.fmt_x(best[0])} ({where}, "
                         f"{best[2]:g}-page fault batches)")
            (chunked if best[1] else whole).append(best[0])
            brief.append(f"best chunk {c.fmt_x(best[0])} ({where})")
    if not whole and not chunked:
        return no_results("switch-latency", "nic-bandwidth", "region-chunk")
    best_whole, best_chunked = min(whole, default=math.inf), min(chunked, default=math.inf)
    if best_whole <= th["holds"]:
        verdict = ("holds", "holds")
    elif best_chunked <= th["holds"]:
        verdict = ("holds with chunks", "partly")
    else:
        verdict = graded(min(best_whole, best_chunked), th["holds"], th["partly"], higher_is_better=False)
    return (lines, "; ".join(brief), *verdict)


def faults_per_switch(results):
    rows = results.ok("faults")
    if not rows:
        return None
    return {r["tier"]: (c.per_switch(r, "page_faults"), c.per_switch(r, "user_kernel_transitions"))
            for r in rows if r.get("expert_switches")}


def claim_faults(results, t, th):
    per = faults_per_switch(results)
    if not per:
        return no_results("faults")
    shown = [x for x in c.tier_order(per) if x in t.values()]
    listed = ", ".join(f"{label(x)} {c.fmt_count(per[x][0])}" for x in shown)
    lines = [f"page faults per switch: {listed}"]
    if not per.get(t["subject"], (0,))[0] or t["paging"] not in per:
        return lines + [f"no {label(t['subject'])} or no {label(t['paging'])} point"], "", "no results", "no-results"
    ratio = per[t["paging"]][0] / per[t["subject"]][0]
    lines.append(f"{label(t['paging'])} / {label(t['subject'])}: {c.fmt_x(ratio)}")
    return (lines, f"faults per switch: {listed}",
            *(("holds", "holds") if ratio >= th["holds"] else ("does not hold", "does-not-hold")))


def claim_transitions(results, t, th):
    per = faults_per_switch(results)
    if not per:
        return no_results("faults")
    lines = ["user-kernel transitions per switch: " + ", ".join(
        f"{label(x)} {c.fmt_count(per[x][1])}" for x in c.tier_order(per))]
    faulting = {x: v[1] for x, v in per.items() if v[0] > 0}
    if t["subject"] not in faulting:
        return lines, "", "no results", "no-results"
    fewest = min(faulting.values()) == faulting[t["subject"]]
    lines.append(f"{label(t['subject'])} has the fewest among the tiers that take page faults" if fewest else
                 f"another faulting tier has fewer transitions than {label(t['subject'])}")
    brief = "per switch: " + ", ".join(f"{label(x)} {c.fmt_count(v)}"
                                       for x, v in sorted(((x, v[1]) for x, v in per.items() if v[1] > 0),
                                                          key=lambda p: p[1]))
    return (lines, brief, *(("holds", "holds") if fewest else ("does not hold", "does-not-hold")))


def claim_sharing(results, t, th):
    rows = results.ok("sharing")
    if not rows:
        return no_results("sharing")
    n = max(r["nodes"] for r in rows)
    shared, private = c.where(rows, tier=t["subject"], nodes=n), c.where(rows, tier=t["private"], nodes=n)
    if not shared or not private:
        return [f"no {label(t['subject'])} and {label(t['private'])} pair at {n:g} nodes"], "", "no results", "no-results"
    saved = private[0]["pool_bytes"] / shared[0]["pool_bytes"]
    lines = [f"expert memory at {n:g} nodes: shared pool {gb(shared[0]['pool_bytes'])}, private copies "
             f"{gb(private[0]['pool_bytes'])} ({c.fmt_x(saved)} less)"]
    brief = [f"{n:g} nodes hold the {gb(shared[0]['pool_bytes'])} of experts once instead of {gb(private[0]['pool_bytes'])}"]
    one, many = p50(rows, tier=t["subject"], nodes=1.0), shared[0]["expert_switch_s.p50"]
    slowdown = many / one if one else None
    if slowdown:
        lines.append(f"cost: p50 switch {c.fmt_ms(many)} at {n:g} nodes vs {c.fmt_ms(one)} at 1 node on one memory "
                     f"server ({c.fmt_x(slowdown)} slower: the nodes share the server's NIC)")
        if slowdown > th["slowdown"]:
            brief.append(f"but on one server switches get {c.fmt_x(slowdown)} slower")
    servers = results.ok("sharing-servers")
    if servers:
        m = max(r["nodes"] for r in servers)
        counts = sorted({c.get(r, "memory_servers") for r in servers})
        ref = {s: p50(servers, memory_servers=s, nodes=min(r["nodes"] for r in servers)) for s in counts}
        got = {s: p50(servers, memory_servers=s, nodes=m) for s in counts}
        flat = [s for s in counts if ref[s] and got[s] and got[s] <= th["slowdown"] * ref[s]]
        within = f"within {th['slowdown'] - 1:.0%}"
        if flat:
            lines.append(f"{flat[0]:g} memory servers keep {m:g} nodes {within} of the single-node p50 "
                         f"({c.fmt_ms(got[flat[0]])})")
            brief.append(f"{flat[0]:g} servers keep {m:g} nodes {within}")
        elif got[counts[-1]] and ref[counts[-1]]:
            lines.append(f"no tested server count (up to {counts[-1]:g}) keeps {m:g} nodes {within} of one node: "
                         f"{counts[-1]:g} servers give {c.fmt_ms(got[counts[-1]])} "
                         f"({c.fmt_x(got[counts[-1]] / ref[counts[-1]])} the single-node p50)")
            brief.append(f"{counts[-1]:g} servers still leave {c.fmt_x(got[counts[-1]] / ref[counts[-1]])}")
    else:
        lines.append("no results (sharing-servers)")
    if saved >= th["saved"]:
        verdict = ("holds", "holds") if slowdown is None or slowdown <= th["slowdown"] else ("holds for capacity", "partly")
    elif saved >= 0.9 * n:
        verdict = (f"partly: only {n:g} nodes were run", "partly")
    else:
        verdict = ("does not hold", "does-not-hold")
    return (lines, "; ".join(brief[:1]) + ("; " + ", and ".join(brief[1:]) if brief[1:] else ""), *verdict)


def claim_decode(results, t, th):
    rows = results.ok("decode")
    if not rows:
        return no_results("decode")
    g = nearest(sorted({r["gpu_experts"] for r in rows}), th["slots"])
    tps = {r["tier"]: r["tokens_per_s"] for r in rows if r["gpu_experts"] == g and r.get("tokens_per_s")}
    sub, disk, ref = t["subject"], t["disk"], t["reference"]
    if sub not in tps:
        return [f"no {label(sub)} point at {g:g} GPU slots"], "", "no results", "no-results"
    lines = [f"tokens/s at {g:g} GPU expert slots: " + ", ".join(f"{label(x)} {tps[x]:.3g}" for x in c.tier_order(tps))]
    vs_disk = tps[sub] / tps[disk] if disk in tps else None
    vs_ref = tps[ref] / tps[sub] if ref in tps else None
    if vs_disk:
        lines.append(f"{label(sub)} / {label(disk)}: {c.fmt_x(vs_disk)}")
    if vs_ref:
        lines.append(f"{label(ref)} / {label(sub)}: {c.fmt_x(vs_ref)}")
    if not vs_disk or not vs_ref:
        return lines, "", "no results", "no-results"
    brief = (f"tokens/s at {g:g} slots: {label(sub)} {c.fmt_x(vs_disk)} {label(disk)}, "
             f"{label(ref)} {c.fmt_x(vs_ref)} {label(sub)}")
    if vs_disk >= th["holds_disk"] and vs_ref <= th["holds_reference"]:
        return lines, brief, "holds", "holds"
    if vs_disk >= th["partly_disk"] and vs_ref <= th["partly_reference"]:
        return lines, brief, "partly", "partly"
    return lines, brief, "does not hold", "does-not-hold"


def claim_batched(results, t, th):
    rows = results.ok("batch")
    if not rows:
        return no_results("batch")
    sub, disk, ref = t["subject"], t["disk"], t["reference"]
    lines, briefs, levels = [], [], []
    for model in models(rows):
        mine = c.where(rows, model=model)
        batches = sorted({c.get(r, "serving.batch") for r in mine})

        def ratios(batch):
            tps = {r["tier"]: r["tokens_per_s"] for r in mine if c.get(r, "serving.batch") == batch and r.get("tokens_per_s")}
            if sub not in tps or disk not in tps or ref not in tps:
                return None
            return tps[sub] / tps[disk], tps[ref] / tps[sub]

        first, last = ratios(batches[0]), ratios(batches[-1])
        if not last:
            return [f"no {label(sub)}, {label(disk)} and {label(ref)} points for {c.model_label(model)}"], "", \
                "no results", "no-results"
        at = lambda b, r: f"batch {b:g}: {label(sub)} {c.fmt_x(r[0])} {label(disk)}, {label(ref)} {c.fmt_x(r[1])} {label(sub)}"
        lines.append(f"{c.model_label(model)}, tokens/s " + (at(batches[0], first) + "; " if first else "") + at(batches[-1], last))
        briefs.append(f"{c.model_label(model)} at batch {batches[-1]:g}: {label(sub)} {c.fmt_x(last[0])} {label(disk)}, "
                      f"{label(ref)} {c.fmt_x(last[1])} {label(sub)}"
                      + (f" (batch {batches[0]:g}: {c.fmt_x(first[0])}, {c.fmt_x(first[1])})" if first else ""))
        if last[0] >= th["holds_disk"] and last[1] <= th["holds_reference"]:
            levels.append("holds")
        elif last[0] >= th["partly_disk"] and last[1] <= th["partly_reference"]:
            levels.append("partly")
        else:
            levels.append("does-not-hold")
    level = next(l for l in ("does-not-hold", "partly", "holds") if l in levels)
    return lines, "; ".join(briefs), level.replace("-", " "), level


def claim_cost(results, t, th):
    rows = [r for r in (results.ok("cost") or []) if r.get("cost.memory_usd_per_node") is not None]
    if not rows:
        return no_results("cost")
    sub, ref = t["subject"], t["reference"]
    n = max(r["nodes"] for r in rows)
    at = {r["tier"]: r for r in rows if r["nodes"] == n}
    if sub not in at or ref not in at:
        return [f"no {label(sub)} or {label(ref)} point at {n:g} nodes"], "", "no results", "no-results"
    memory = {x: r["cost.memory_usd_per_node"] for x, r in at.items()}
    per_token = {x: r["cost.usd_per_million_tokens"] for x, r in at.items()}
    prices = rows[0]["cost.prices"]
    lines = [f"expert memory per node at {n:g} nodes: " + ", ".join(
                 f"{label(x)} ${memory[x]:,.0f}" for x in c.tier_order(memory)),
             "$ per million tokens: " + ", ".join(f"{label(x)} {per_token[x]:,.3g}" for x in c.tier_order(per_token)),
             f"prices: '{prices}' preset, illustrative (models/hardware/prices)"]
    memory_ratio, per_token_ratio = memory[sub] / memory[ref], per_token[sub] / per_token[ref]
    lines.append(f"{label(sub)} / {label(ref)}: memory {c.fmt_x(memory_ratio)}, per token {c.fmt_x(per_token_ratio)}")
    cheaper_from = min((r["nodes"] for r in rows if r["tier"] == sub and any(
        o["tier"] == ref and o["nodes"] == r["nodes"] and r["cost.memory_usd_per_node"] < o["cost.memory_usd_per_node"]
        for o in rows)), default=None)
    brief = (f"illustrative prices ('{prices}'): expert memory per node {c.fmt_x(memory_ratio)} {label(ref)}'s at {n:g} "
             f"nodes" + (f" (cheaper from {cheaper_from:g} nodes)" if cheaper_from else "")
             + f", {'but ' if per_token_ratio > 1 else ''}a million tokens {c.fmt_x(per_token_ratio)} {label(ref)}'s")
    if memory_ratio < 1 and per_token_ratio <= 1:
        return lines, brief, "holds", "holds"
    return (lines, brief, *(("partly", "partly") if memory_ratio < 1 else ("does not hold", "does-not-hold")))


FUNCTIONS = {"disk": claim_disk, "cxl": claim_cxl, "faults": claim_faults, "transitions": claim_transitions,
             "sharing": claim_sharing, "decode": claim_decode, "batched": claim_batched, "cost": claim_cost}


def evaluate(folder):
    """Every claim of claims.json checked against the results in `folder`, in order."""
    check_tiers()
    results = Results(folder)
    out = []
    for claim in DEFINITIONS["claims"]:
        measured, brief, verdict, level = FUNCTIONS[claim["id"]](results, claim["tiers"], claim["thresholds"])
        assert level in LEVELS, (claim["id"], level)
        out.append({"id": claim["id"], "name": claim["name"], "paper": claim["paper"], "readme": claim["readme"],
                    "rule": rule(claim), "measured": measured, "brief": brief, "verdict": verdict, "level": level})
    return out
