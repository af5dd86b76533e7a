"""python3 plots/report.py RESULTS_DIR: RESULTS_DIR/report.md and report.html (self-contained): how the
results were produced, the paper's claims checked against them, the figures with their captions
(experiments/<name>.md), and the points that failed."""
import base64
import csv
import html
import json
import re
import sys
from pathlib import Path

import common as c

if len(sys.argv) != 2:
    sys.exit("usage: python3 plots/report.py RESULTS_DIR")
RESULTS = Path(sys.argv[1])
EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
# Figures in order: (file stem, experiments it reads, caption file in experiments/).
FIGURES = [("fig1_switch_latency", ["switch-latency"], "switch-latency"), ("fig2a_faults", ["faults"], "faults"),
           ("fig2b_region_chunk", ["region-chunk"], "region-chunk"), ("fig3_decode", ["decode"], "decode"),
           ("fig4_sharing", ["sharing", "sharing-servers"], "sharing"),
           ("fig5_nic", ["nic-bandwidth", "nic-latency"], "nic"), ("fig6_cache_policy", ["cache-policy"], "cache-policy"),
           ("fig7_cost", ["cost"], "cost")]


def all_rows(name):
    path = RESULTS / name / "results.csv"
    return c.read_rows(path) if path.is_file() else None


def ok_rows(name):
    rows = all_rows(name)
    rows = [r for r in rows if r.get("status") == "ok"] if rows else []
    return rows or None


def p50(rows, **match):
    hit = [r for r in c.where(rows, **match) if r.get("expert_switch_s.p50")]
    return hit[0]["expert_switch_s.p50"] if hit else None


def nearest(values, target):
    """The value closest to target by ratio (25 and 400 around 200: 400)."""
    return min(values, key=lambda v: (abs(c.math.log(v / target)), v))


def gb(b):
    return f"{b / 1e9:,.1f} GB" if b < 1e12 else f"{b / 1e9:,.0f} GB"

# ---------------------------------------------------------------- claims (each: measured lines, verdict)

def claim_disk():
    rows = ok_rows("switch-latency")
    if not rows:
        return ["no results (switch-latency)"], "no results"
    mmap, read = {}, {}
    for model in dict.fromkeys(r["model"] for r in rows):
        rmai = p50(rows, model=model, tier="rmai")
        if rmai and p50(rows, model=model, tier="disk-mmap"):
            mmap[model] = p50(rows, model=model, tier="disk-mmap") / rmai
        if rmai and p50(rows, model=model, tier="disk-read"):
            read[model] = p50(rows, model=model, tier="disk-read") / rmai
    if not mmap:
        return ["no RMAI and disk-mmap pair in switch-latency"], "no results"
    lines = []
    if "mixtral-8x7b" in mmap:
        line = f"Mixtral-8x7B: disk mmap / RMAI {c.fmt_x(mmap['mixtral-8x7b'])}"
        if "mixtral-8x7b" in read:
            line += f", disk read() / RMAI {c.fmt_x(read['mixtral-8x7b'])}"
        lines.append(line + " (p50 switch)")
    top = max(mmap, key=mmap.get)
    line = f"max over {len(mmap)} models: disk mmap {c.fmt_x(mmap[top])} ({c.model_label(top)})"
    if read:
        top_read = max(read, key=read.get)
        line += f", disk read() {c.fmt_x(read[top_read])} ({c.model_label(top_read)})"
    lines.append(line)
    lines.append("disk mmap / RMAI per model: " + ", ".join(f"{c.model_label(m)} {c.fmt_x(v)}" for m, v in mmap.items()))
    best = mmap[top]
    return lines, "holds" if best >= 8 else "partly" if best >= 3 else "does not hold"


def claim_cxl():
    lines, ratios = [], []
    rows = ok_rows("switch-latency")
    if rows:
        per = {m: p50(rows, model=m, tier="rmai") / p50(rows, model=m, tier="cxl")
               for m in dict.fromkeys(r["model"] for r in rows)
               if p50(rows, model=m, tier="rmai") and p50(rows, model=m, tier="cxl")}
        if per:
            lines.append("p50 RMAI / CXL (whole-expert regions): "
                         + ", ".join(f"{c.model_label(m)} {c.fmt_x(v)}" for m, v in per.items()))
            ratios = list(per.values())
    rows = ok_rows("nic-bandwidth")
    if rows:
        gbps = lambda r: c.si(r, "bandwidth") * 8 / 1e9  # noqa: E731
        speeds = sorted({gbps(r) for r in rows})
        by_speed = {s: [r for r in rows if gbps(r) == s] for s in speeds}
        at = nearest(speeds, 200)
        cxl = p50(by_speed[at], tier="cxl")
        variants = {c.si(r, "region_chunk"): r["expert_switch_s.p50"] / cxl
                    for r in c.where(by_speed[at], tier="rmai") if cxl and r.get("expert_switch_s.p50")}
        if variants:
            ratios = list(variants.values())  # the verdict rests on the best configuration at 200 Gb/s
            lines.append(f"at {at:g} Gb/s, p50 RMAI / CXL: " + ", ".join(
                f"{c.fmt_bytes(k) + ' chunks' if k else 'whole expert'} {c.fmt_x(v)}"
                for k, v in variants.items()) + f"; best {c.fmt_x(min(variants.values()))}")
        reach = [s for s, here in by_speed.items() if p50(here, tier="cxl")
                 and (p50([r for r in here if c.si(r, "region_chunk") == 32 * 2**20], tier="rmai") or 1e300)
                 <= 1.1 * p50(here, tier="cxl")]
        lines.append(f"RMAI with 32 MiB chunks within 10% of CXL from {reach[0]:g} Gb/s" if reach else
                     f"RMAI with 32 MiB chunks never within 10% of CXL up to {speeds[-1]:g} Gb/s")
    if not ratios:
        return ["no results (switch-latency, nic-bandwidth)"], "no results"
    best = min(ratios)
    return lines, "holds" if best <= 1.25 else "partly" if best <= 2.5 else "does not hold"


def faults_per_switch():
    rows = ok_rows("faults")
    if not rows:
        return None
    return {r["tier"]: (c.per_switch(r, "page_faults"), c.per_switch(r, "user_kernel_transitions"))
            for r in rows if r.get("expert_switches")}


def claim_faults():
    per = faults_per_switch()
    if not per:
        return ["no results (faults)"], "no results"
    lines = ["page faults per switch: " + ", ".join(
        f"{c.TIER_LABELS.get(t, t)} {c.fmt_count(per[t][0])}" for t in c.tier_order(per) if t in ("rmai", "page4k", "disk-mmap"))]
    if per.get("rmai", (0,))[0] and "page4k" in per:
        ratio = per["page4k"][0] / per["rmai"][0]
        lines.append(f"4 KiB paging / RMAI: {c.fmt_x(ratio)}")
        return lines, "holds" if ratio >= 1000 else "does not hold"
    return lines + ["no RMAI or no 4 KiB paging point"], "no results"


def claim_transitions():
    per = faults_per_switch()
    if not per:
        return ["no results (faults)"], "no results"
    lines = ["user-kernel transitions per switch: " + ", ".join(
        f"{c.TIER_LABELS.get(t, t)} {c.fmt_count(per[t][1])}" for t in c.tier_order(per))]
    faulting = {t: v[1] for t, v in per.items() if v[0] > 0}
    if "rmai" not in faulting:
        return lines, "no results"
    fewest = min(faulting.values()) == faulting["rmai"]
    lines.append("RMAI has the fewest among the tiers that take page faults" if fewest else
                 "another faulting tier has fewer transitions than RMAI")
    return lines, "holds" if fewest else "does not hold"


def claim_sharing():
    rows = ok_rows("sharing")
    if not rows:
        return ["no results (sharing)"], "no results"
    n = max(r["nodes"] for r in rows)
    shared, private = c.where(rows, tier="rmai", nodes=n), c.where(rows, tier="dram", nodes=n)
    if not shared or not private:
        return [f"no RMAI and DRAM pair at {n:g} nodes"], "no results"
    saved = private[0]["pool_bytes"] / shared[0]["pool_bytes"]
    lines = [f"expert memory at {n:g} nodes: shared pool {gb(shared[0]['pool_bytes'])}, private copies "
             f"{gb(private[0]['pool_bytes'])} ({c.fmt_x(saved)} less)"]
    one, many = p50(rows, tier="rmai", nodes=1.0), shared[0]["expert_switch_s.p50"]
    cost = many / one if one else None
    if cost:
        lines.append(f"cost: p50 switch {c.fmt_ms(many)} at {n:g} nodes vs {c.fmt_ms(one)} at 1 node on one memory "
                     f"server ({c.fmt_x(cost)} slower: the nodes share the server's NIC)")
    servers = ok_rows("sharing-servers")
    if servers:
        m = max(r["nodes"] for r in servers)
        counts = sorted({c.get(r, "memory_servers") for r in servers})
        ref = {s: p50(servers, memory_servers=s, nodes=min(r["nodes"] for r in servers)) for s in counts}
        got = {s: p50(servers, memory_servers=s, nodes=m) for s in counts}
        flat = [s for s in counts if ref[s] and got[s] and got[s] <= 1.25 * ref[s]]
        if flat:
            lines.append(f"{flat[0]:g} memory servers keep {m:g} nodes within 25% of the single-node p50 "
                         f"({c.fmt_ms(got[flat[0]])})")
        elif got[counts[-1]] and ref[counts[-1]]:
            lines.append(f"no tested server count (up to {counts[-1]:g}) keeps {m:g} nodes within 25% of one node: "
                         f"{counts[-1]:g} servers give {c.fmt_ms(got[counts[-1]])} "
                         f"({c.fmt_x(got[counts[-1]] / ref[counts[-1]])} the single-node p50)")
    else:
        lines.append("no results (sharing-servers)")
    verdict = "holds for capacity" if saved >= 10 else \
        f"partly: only {n:g} nodes were run" if saved >= 0.9 * n else "does not hold"
    if cost:
        verdict += f"; switches {c.fmt_x(cost)} slower at {n:g} nodes on one server"
    return lines, verdict


def claim_decode():
    rows = ok_rows("decode")
    if not rows:
        return ["no results (decode)"], "no results"
    g = nearest(sorted({r["gpu_experts"] for r in rows}), 64)
    tps = {r["tier"]: r["tokens_per_s"] for r in rows if r["gpu_experts"] == g and r.get("tokens_per_s")}
    if "rmai" not in tps:
        return [f"no RMAI point at {g:g} GPU slots"], "no results"
    lines = [f"tokens/s at {g:g} GPU expert slots: " + ", ".join(
        f"{c.TIER_LABELS.get(t, t)} {tps[t]:.3g}" for t in c.tier_order(tps))]
    vs_disk = tps["rmai"] / tps["disk-mmap"] if "disk-mmap" in tps else None
    vs_cxl = tps["cxl"] / tps["rmai"] if "cxl" in tps else None
    if vs_disk:
        lines.append(f"RMAI / disk mmap: {c.fmt_x(vs_disk)}")
    if vs_cxl:
        lines.append(f"CXL / RMAI: {c.fmt_x(vs_cxl)}")
    if not vs_disk or not vs_cxl:
        return lines, "no results"
    if vs_disk >= 8 and vs_cxl <= 1.25:
        return lines, "holds"
    return lines, "partly" if vs_disk >= 3 and vs_cxl <= 2.5 else "does not hold"


def claim_cost():
    rows = [r for r in (ok_rows("cost") or []) if r.get("cost.memory_usd_per_node") is not None]
    if not rows:
        return ["no results (cost)"], "no results"
    n = max(r["nodes"] for r in rows)
    at = {r["tier"]: r for r in rows if r["nodes"] == n}
    if "rmai" not in at or "cxl" not in at:
        return [f"no RMAI or CXL point at {n:g} nodes"], "no results"
    memory = {t: r["cost.memory_usd_per_node"] for t, r in at.items()}
    per_token = {t: r["cost.usd_per_million_tokens"] for t, r in at.items()}
    lines = [f"expert memory per node at {n:g} nodes: " + ", ".join(
                 f"{c.TIER_LABELS.get(t, t)} ${memory[t]:,.0f}" for t in c.tier_order(memory)),
             "$ per million tokens: " + ", ".join(
                 f"{c.TIER_LABELS.get(t, t)} {per_token[t]:,.3g}" for t in c.tier_order(per_token)),
             f"prices: '{rows[0]['cost.prices']}' preset, illustrative (models/hardware/prices)"]
    cheaper = memory["rmai"] < memory["cxl"]
    per_token_ratio = per_token["rmai"] / per_token["cxl"]
    lines.append(f"RMAI / CXL: memory {c.fmt_x(memory['rmai'] / memory['cxl'])}, per token {c.fmt_x(per_token_ratio)}")
    if cheaper and per_token_ratio <= 1:
        return lines, "holds"
    return lines, "partly" if cheaper else "does not hold"


CLAIMS = [
    ("Expert switching vs disk", "up to 10x faster than disk-based offloading", claim_disk),
    ("RMAI vs CXL-like memory", "comparable performance", claim_cxl),
    ("Page faults", "one fault per expert-sized region instead of thousands of 4 KiB faults", claim_faults),
    ("User-kernel transitions", "fewer", claim_transitions),
    ("Sharing", "share expert memory across nodes at lower cost", claim_sharing),
    ("End to end", "faster switching carries over to decode: near CXL, well ahead of disk", claim_decode),
    ("Cost", "comparable to CXL-like memory at lower cost", claim_cost),
]
RULES = [
    "Expert switching vs disk: holds if the largest p50 disk mmap / RMAI ratio over the models is >= 8x, partly if >= 3x.",
    "RMAI vs CXL: holds if the best p50 RMAI / CXL ratio (at 200 Gb/s in nic-bandwidth, else over the models) is <= 1.25x, partly if <= 2.5x.",
    "Page faults: holds if 4 KiB paging takes >= 1000x RMAI's faults per switch.",
    "User-kernel transitions: holds if RMAI has the fewest per switch among the tiers that take page faults.",
    "Sharing: holds (for capacity) if the shared pool needs >= 10x less memory than private copies at the largest node count"
    " (partly if fewer than 10 nodes were run but the pool is held once).",
    "End to end: holds if RMAI's tokens/s is >= 8x disk mmap's and CXL's is <= 1.25x RMAI's (64 GPU slots); partly at >= 3x and <= 2.5x.",
    "Cost: holds if, at the most nodes run, RMAI's expert memory per node costs less than CXL's and so does a million tokens;"
    " partly if only the memory is cheaper.",
]

# ---------------------------------------------------------------- the rest of the content

def produced():
    """(lines, table rows) saying how the results were produced."""
    names = sorted({p.parent.name for p in RESULTS.glob("*/results.csv")} | {p.parent.name for p in RESULTS.glob("*/sweep.json")})
    table, quick, revisions, simgrid = [], set(), set(), set()
    for name in names:
        sweep = {}
        try:
            sweep = json.loads((RESULTS / name / "sweep.json").read_text())
        except (OSError, ValueError):
            pass
        if isinstance(sweep, dict) and "quick" in sweep:
            quick.add(bool(sweep["quick"]))
        rows = all_rows(name) or []
        count = {s: sum(r.get("status") == s for r in rows) for s in ("ok", "failed", "missing")}
        wall = sum(r.get("wall_time_s") or 0 for r in rows if r.get("status") == "ok")
        table.append([name, str(len(rows)), str(count["ok"]), str(count["failed"]), str(count["missing"]), f"{wall:.1f}"])
        config = next((RESULTS / name).glob("**/config.resolved.yaml"), None)
        if config:
            text = config.read_text()
            revisions.update(re.findall(r"^\s*git_revision:\s*(\S+)", text, re.M))
            simgrid.update(re.findall(r"^\s*simgrid_version:\s*(\S+)", text, re.M))
    mode = "quick (fewer tokens and points)" if quick == {True} else "full" if quick == {False} else \
        "mixed quick and full" if quick else "not recorded"
    lines = [f"Results in `{RESULTS}`: {len(names)} experiments, one `rmai sweep` each (one simulation per point); "
             f"mode: {mode}.",
             f"Git revision: {', '.join(sorted(revisions)) or 'not recorded'}; "
             f"SimGrid: {', '.join(sorted(simgrid)) or 'not recorded'} (from the points' config.resolved.yaml)."]
    return lines, table


def show(v):
    return f"{v:g}" if isinstance(v, float) else str(v)


def error(log):
    """': <message>' from a failed point's error.log (rmai's own line, else the first), or ''."""
    try:
        lines = [l.strip() for l in log.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    own = [l for l in lines if l.startswith(("rmai: error: ", "rmai: failed: "))]
    return f": {(own or lines or [''])[0][:300]}" if lines else ""


def failures():
    """{experiment: [line]} for failed and missing points, and experiments without results."""
    out = {}
    expected = [p.stem for p in sorted(EXPERIMENTS.glob("*.yaml")) if re.search(r"^sweep:", p.read_text(), re.M)]
    for name in sorted(set(expected) | {p.parent.name for p in RESULTS.glob("*/results.csv")}):
        rows = all_rows(name)
        if rows is None:
            out[name] = ["no results.csv"]
            continue
        bad = [r for r in rows if r.get("status") != "ok"]
        if bad:
            out[name] = [f"point {show(r.get('point'))} ({r.get('status')}): "
                         + ", ".join(f"{k[6:]}={show(v)}" for k, v in r.items() if k.startswith("param."))
                         + error(RESULTS / name / show(r.get("point")) / "error.log") for r in bad]
    return out


def caption(name):
    """(title, paragraphs) of experiments/<name>.md."""
    path = EXPERIMENTS / f"{name}.md"
    if not path.is_file():
        return name, []
    text = path.read_text().strip()
    title, _, body = text.partition("\n")
    return title.lstrip("# ").strip(), [" ".join(p.split()) for p in re.split(r"\n\s*\n", body.strip()) if p.strip()]


def inline_html(text):
    """The markdown of the captions: `code`, **bold**, [text](link) (kept as text)."""
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", html.escape(text, quote=False))
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def unlink(text):
    return re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)

def this_machine():
    """(lines, table) from `rmai validate` on this machine (RESULTS/validate), or why there is none."""
    folder = RESULTS / "validate"
    skipped = folder / "skipped.txt"
    if skipped.is_file():
        return [f"Not run: {skipped.read_text().strip()}"], []
    try:
        with open(folder / "validation.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return ["Not run (no validate/validation.csv)."], []
    value = {(r["tier"], r["metric"]): r for r in rows}
    tiers = list(dict.fromkeys(r["tier"] for r in rows))
    def num(tier, metric, side):
        try:
            return float(value[(tier, metric)][side])
        except (KeyError, ValueError):
            return float("nan")
    table = []
    for t in tiers:
        switches = num(t, "expert_switches", "emul")
        table.append([t, f"{num(t, 'switch_p50_s', 'emul') * 1e3:.3g}", f"{num(t, 'switch_p50_s', 'sim') * 1e3:.3g}",
                      f"{num(t, 'switch_p50_s', 'rel_error'):+.0%}",
                      f"{num(t, 'page_faults', 'emul') / switches:.4g}" if switches else "-",
                      f"{num(t, 'page_faults', 'sim') / switches:.4g}" if switches else "-",
                      f"{num(t, 'replay_s', 'emul'):.3g}", f"{num(t, 'replay_s', 'rel_error'):+.0%}"])
    lines = ["The emulator ran each tier on this machine (real userfaultfd regions served by a memd over libfabric "
             "on loopback, the disk and DRAM baselines) on experiments/validate.yaml, and the simulator ran the same "
             "scaled experts on the `this-vm` platform preset (`rmai validate`; rel. error = (sim - emul) / emul)."]
    rmai = num("rmai", "switch_p50_s", "emul")
    ratios = [f"{t} / rmai {num(t, 'switch_p50_s', 'emul') / rmai:.3g}x" for t in tiers if t != "rmai" and rmai > 0]
    if ratios:
        lines.append("Measured p50 switch ratios on this machine: " + ", ".join(ratios) + ".")
    return lines, table


THIS_MACHINE_HEAD = ["tier", "emul p50 switch (ms)", "sim p50 switch (ms)", "p50 error", "emul faults / switch",
                     "sim faults / switch", "emul replay (s)", "replay error"]

# ---------------------------------------------------------------- writing

claims = [(name, paper, *fn()) for name, paper, fn in CLAIMS]
how, table = produced()
bad = failures()
figdir = RESULTS / "figures"
known = [(stem, cap) for stem, _, cap in FIGURES if (figdir / f"{stem}.png").is_file()]
absent = [(stem, caption(cap)[0], [x for x in exps if not ok_rows(x)]) for stem, exps, cap in FIGURES
          if not (figdir / f"{stem}.png").is_file()]
extra = sorted(p.stem for p in figdir.glob("*.png") if p.stem not in {s for s, _, _ in FIGURES})
TABLE_HEAD = ["experiment", "points", "ok", "failed", "missing", "wall time, sum of points (s)"]

md = ["# RMAI testbed: the paper's claims, reproduced", "", "## How it was produced", "",
      *[x for line in how for x in (line, "")],
      "| " + " | ".join(TABLE_HEAD) + " |", "|" + "---|" * len(TABLE_HEAD),
      *["| " + " | ".join(r) + " |" for r in table], "", "## Claims", "",
      "| Claim | Paper | Measured | Verdict |", "|---|---|---|---|"]
md += [f"| {n} | {p} | {'<br>'.join(m)} | {v} |" for n, p, m, v in claims]
md += ["", "Verdict rules:", "", *[f"- {r}" for r in RULES], ""]
machine_lines, machine_table = this_machine()
md += ["## Measured on this machine", "", *[x for line in machine_lines for x in (line, "")]]
if machine_table:
    md += ["| " + " | ".join(THIS_MACHINE_HEAD) + " |", "|" + "---|" * len(THIS_MACHINE_HEAD),
           *["| " + " | ".join(r) + " |" for r in machine_table], ""]
md += ["## Figures", ""]
for stem, cap in known:
    title, paras = caption(cap)
    md += [f"### {title}", "", f"![{title}](figures/{stem}.png)", "", *[x for p in paras for x in (unlink(p), "")]]
md += [x for stem in extra for x in (f"### {stem}", "", f"![{stem}](figures/{stem}.png)", "")]
md += [f"### {title}: not drawn (no results: {', '.join(exps) or 'see the figure script'})\n" for _, title, exps in absent]
md += ["## Failed and missing points", ""]
md += [x for name, lines in bad.items() for x in (f"**{name}**", "", *[f"- {l}" for l in lines], "")] or ["None.", ""]
(RESULTS / "report.md").write_text("\n".join(md) + "\n")

CSS = """body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.35em .6em;text-align:left;vertical-align:top}th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee}code{background:#f4f4f4;padding:0 .2em}figure{margin:1.5em 0}
.holds{color:#1a7f37;font-weight:600}.partly{color:#9a6700;font-weight:600}
.does-not-hold{color:#cf222e;font-weight:600}.no-results{color:#777}"""
e = html.escape
h = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>RMAI testbed report</title><style>{CSS}</style></head><body>",
     "<h1>RMAI testbed: the paper's claims, reproduced</h1>", "<h2>How it was produced</h2>",
     *[f"<p>{inline_html(l)}</p>" for l in how],
     "<table><tr>" + "".join(f"<th>{e(x)}</th>" for x in TABLE_HEAD) + "</tr>",
     *["<tr>" + "".join(f"<td>{e(x)}</td>" for x in r) + "</tr>" for r in table], "</table>",
     "<h2>Claims</h2><table><tr><th>Claim</th><th>Paper</th><th>Measured</th><th>Verdict</th></tr>"]
for n, p, m, v in claims:
    css = next(k for k in ("holds", "partly", "does-not-hold", "no-results", "") if v.replace(" ", "-").startswith(k))
    h.append(f"<tr><td>{e(n)}</td><td>{e(p)}</td><td>{'<br>'.join(e(x) for x in m)}</td>"
             f"<td class='{css}'>{e(v)}</td></tr>")
h += ["</table><p>Verdict rules:</p><ul>", *[f"<li>{e(r)}</li>" for r in RULES], "</ul>",
      "<h2>Measured on this machine</h2>", *[f"<p>{inline_html(l)}</p>" for l in machine_lines]]
if machine_table:
    h += ["<table><tr>" + "".join(f"<th>{e(x)}</th>" for x in THIS_MACHINE_HEAD) + "</tr>",
          *["<tr>" + "".join(f"<td>{e(x)}</td>" for x in r) + "</tr>" for r in machine_table], "</table>"]
h.append("<h2>Figures</h2>")
for stem, cap in known + [(s, None) for s in extra]:
    title, paras = caption(cap) if cap else (stem, [])
    data = base64.b64encode((figdir / f"{stem}.png").read_bytes()).decode()
    h += [f"<figure><h3>{e(title)}</h3><img alt='{e(title)}' src='data:image/png;base64,{data}'>",
          *[f"<p>{inline_html(p)}</p>" for p in paras], "</figure>"]
h += [f"<h3>{e(title)}: not drawn (no results: {e(', '.join(exps) or 'see the figure script')})</h3>"
      for _, title, exps in absent]
h.append("<h2>Failed and missing points</h2>")
for name, lines in bad.items():
    h += [f"<p><strong>{e(name)}</strong></p><ul>", *[f"<li>{e(l)}</li>" for l in lines], "</ul>"]
if not bad:
    h.append("<p>None.</p>")
h.append("</body></html>")
(RESULTS / "report.html").write_text("\n".join(h) + "\n")
print(f"wrote {RESULTS / 'report.md'} and {RESULTS / 'report.html'}", file=sys.stderr)
