"""python3 plots/report.py RESULTS_DIR: RESULTS_DIR/report.md and report.html (self-contained): how the
results were produced, the paper's claims checked against them (plots/claims.py, with the definitions
of plots/claims.json), the emulator on this machine, the figures with their captions
(experiments/<name>.md) and notes computed from the results, and the points that failed; and
RESULTS_DIR/report.json, the same claims and measurements as data (plots/readme.py reads it)."""
import base64
import datetime
import html
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import common as c
import claims as cl

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


# ---------------------------------------------------------------- notes under figures (computed from the results)

def prefetch_note():
    """Why prefetching does what it does in figure 6, in the numbers of this run: per model, the first
    policy at the middle cache size, without prefetching against each prefetcher."""
    rows = ok_rows("cache-policy")
    if not rows or not any(r.get("param.cache.prefetch") for r in rows):
        return []
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        here = c.where(rows, model=model)
        slots = sorted({r["gpu_experts"] for r in here})
        g, policy = slots[len(slots) // 2], c.get(here[0], "policy")
        at = {c.get(r, "prefetch"): r for r in c.where(here, gpu_experts=g, policy=policy)}
        base = at.get("none")
        if not base or base.get("stall_s_per_token") is None:
            continue
        demand = lambda r: (r["expert_switches"] - r["prefetches"]) / r["tokens"]  # noqa: E731
        parts = []
        for name, r in at.items():
            if name == "none":
                continue
            used = r["prefetch_hits"] / r["prefetches"] if r["prefetches"] else 0
            parts.append(f"{name}: hit rate {base['cache_hit_rate']:.0%} -> {r['cache_hit_rate']:.0%} (prefetched counted "
                         f"as hits), {used:.0%} of its prefetches used; switches on demand per token "
                         f"{demand(base):.3g} -> {demand(r):.3g}; median switch {c.fmt_ms(base['expert_switch_s.p50'])} -> "
                         f"{c.fmt_ms(r['expert_switch_s.p50'])}; stall per token {c.fmt_ms(base['stall_s_per_token'])} -> "
                         f"{c.fmt_ms(r['stall_s_per_token'])}; tokens/s {base['tokens_per_s']:.3g} -> {r['tokens_per_s']:.3g}")
        if parts:
            out.append(f"In this run, {c.model_label(model)} at {g:g} slots ({str(policy).upper()}), against no "
                       f"prefetching: " + "; ".join(parts) + ".")
    return out


NOTES = {"fig6_cache_policy": prefetch_note}

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
    mode = "quick" if quick == {True} else "full" if quick == {False} else "mixed" if quick else "not recorded"
    try:  # what `rmai reproduce` was asked: its --set overrides, passed to every sweep
        sets = json.loads((RESULTS / "reproduce.json").read_text())["sets"]
    except (OSError, ValueError, KeyError, TypeError):
        sets = None
    lines = [f"Results in `{RESULTS}`: {len(names)} experiments, one `rmai sweep` each (one simulation per point); "
             f"mode: {mode}{' (fewer tokens and points)' if mode == 'quick' else ''}.",
             "Overrides (`rmai reproduce --set`, in every sweep): "
             + ("none: the shipped defaults" if sets == [] else ", ".join(f"`{x}`" for x in sets) if sets
                else "not recorded (no reproduce.json)") + ".",
             f"Git revision: {', '.join(sorted(revisions)) or 'not recorded'}; "
             f"SimGrid: {', '.join(sorted(simgrid)) or 'not recorded'} (from the points' config.resolved.yaml)."]
    points = sum(int(r[1]) for r in table)
    return lines, table, {"mode": mode, "sets": sets, "experiments": len(names), "points": points,
                          "revisions": sorted(revisions), "simgrid": sorted(simgrid)}


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

def validation_figure(folder):
    """folder/validation.png, drawn by plots/validation.py when it is missing or older than validation.csv
    (`rmai reproduce` runs only the fig*.py scripts); None when it cannot be drawn (the script says why)."""
    png, table = folder / "validation.png", folder / "validation.csv"
    if not png.is_file() or png.stat().st_mtime < table.stat().st_mtime:
        done = subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "validation.py"), str(folder)])
        if done.returncode != 0:
            return None
    return png


def finite(v):
    """v when a finite number, else None (report.json stays JSON: no NaN)."""
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def cell(v, spec):
    v = finite(v)
    return "-" if v is None else format(v, spec)


def this_machine():
    """(lines, table, record for report.json, figure or None) from `rmai validate` on this machine
    (RESULTS/validate), or why there is none."""
    folder = RESULTS / "validate"
    skipped = folder / "skipped.txt"
    if skipped.is_file():
        why = skipped.read_text().strip()
        return [f"Not run: {why}"], [], {"skipped": why}, None
    try:
        got = c.validation(folder)
    except ValueError as error:
        return [f"Not read: {error}."], [], {"skipped": f"malformed {error}"}, None
    if got is None:
        return ["Not run (no validate/validation.csv)."], [], {"skipped": "no validate/validation.csv"}, None
    value = lambda tier, metric, key: finite(got[tier].get(metric, {}).get(key))  # noqa: E731
    ms = lambda v: None if v is None else v * 1e3  # noqa: E731

    def per_switch(tier, metric, side):
        switches, n = value(tier, "expert_switches", side), value(tier, metric, side)
        return n / switches if switches and n is not None else None

    table, tiers = [], []
    for t in got:
        p50 = {k: value(t, "switch_p50_s", k) for k in ("emul", "emul_min", "emul_max", "sim", "rel_error")}
        faults = {side: per_switch(t, "page_faults", side) for side in ("emul", "sim")}
        moves = {side: per_switch(t, "user_kernel_transitions", side) for side in ("emul", "sim")}
        handler = per_switch(t, "handler_system_calls", "emul")  # the emulator's user-space handler only
        tiers.append({"tier": t, "layout": got[t]["layout"], "repeats": got[t]["repeats"], "emul_p50_s": p50["emul"],
                      "emul_p50_min_s": p50["emul_min"], "emul_p50_max_s": p50["emul_max"], "sim_p50_s": p50["sim"],
                      "emul_faults_per_switch": faults["emul"], "sim_faults_per_switch": faults["sim"],
                      "emul_transitions_per_switch": moves["emul"], "sim_transitions_per_switch": moves["sim"],
                      "handler_system_calls_per_switch": handler, "switches": value(t, "expert_switches", "emul")})
        spread = (f"{p50['emul_min'] * 1e3:.3g}-{p50['emul_max'] * 1e3:.3g}"
                  if got[t]["repeats"] > 1 and None not in (p50["emul_min"], p50["emul_max"]) else "-")
        table.append([t, got[t]["layout"] or "-", cell(ms(p50["emul"]), ".3g"), spread,
                      cell(ms(p50["sim"]), ".3g"), cell(p50["rel_error"], "+.0%"),
                      cell(faults["emul"], ".4g"), cell(faults["sim"], ".4g"),
                      f"{cell(moves['emul'], '.4g')} / {cell(moves['sim'], '.4g')}", cell(handler, ".4g"),
                      cell(value(t, "replay_s", "emul"), ".3g"), cell(value(t, "replay_s", "rel_error"), "+.0%")])
    when = datetime.datetime.fromtimestamp((folder / "validation.csv").stat().st_mtime, datetime.timezone.utc)
    counts = sorted({got[t]["repeats"] for t in got})
    n = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    runs = ("The emulator ran each tier once: its medians move by up to 2x with the host's load "
            "(`rmai validate --repeats N` takes the median of N runs)." if counts == [1] else
            f"The emulator ran each tier {n} times (`--repeats {n}`): emul is the median of the runs, the range "
            "their minimum and maximum; the simulator ran once (it is deterministic).")
    lines = ["The emulator ran each tier on this machine (real userfaultfd regions served by a memd over libfabric "
             "on loopback, the disk and DRAM baselines) on experiments/validate.yaml, and the simulator ran the same "
             "scaled experts on this machine's platform as `rmai calibrate` measured it right before each emulator run "
             "(validate/platforms/TIER/K.yaml, or `this-vm` when absent; `rmai validate --calibrate`, finished "
             f"{when:%Y-%m-%d %H:%M} UTC; rel. error = (sim - emul) / emul). " + runs]
    if any("handler_system_calls" in got[t] for t in got):  # before it, the emulator counted its handler's calls too
        lines.append("Transitions are user-kernel transitions per switch, counted the same way in both (fault traps "
                     "and the system calls of the thread that reads the expert); handler system calls are those of "
                     "the emulator's user-space fault handler, which an in-kernel RMAI does not make.")
    base = c.DEFAULT_TIER
    ratios = [f"{t} / {base} {value(t, 'switch_p50_s', 'emul') / value(base, 'switch_p50_s', 'emul'):.3g}x"
              for t in got if t != base and base in got and (value(base, "switch_p50_s", "emul") or 0) > 0
              and value(t, "switch_p50_s", "emul") is not None]
    if ratios:
        lines.append("Measured p50 switch ratios on this machine: " + ", ".join(ratios) + ".")
    return (lines, table, {"measured_at": f"{when:%Y-%m-%d %H:%M} UTC", "cores": os.cpu_count(), "repeats": max(counts),
                           "tiers": tiers}, validation_figure(folder))


THIS_MACHINE_HEAD = ["tier", "emulated as", "emul p50 switch (ms)", "emul p50 range (ms)", "sim p50 switch (ms)",
                     "p50 error", "emul faults / switch", "sim faults / switch", "transitions / switch (emul / sim)",
                     "handler system calls / switch", "emul replay (s)", "replay error"]
VALIDATION_CAPTION = ("The simulator against the emulator (plots/validation.py): top, the emulator's median with the "
                      "min-max of its repeats and the simulator hatched beside it; bottom, the relative error with the "
                      "±15% the validation aims at (error bars: against the fastest and the slowest repeat), and the "
                      "counts.")

# ---------------------------------------------------------------- writing

claims = cl.evaluate(RESULTS)
how, table, provenance = produced()
bad = failures()
figdir = RESULTS / "figures"
known = [(stem, cap) for stem, _, cap in FIGURES if (figdir / f"{stem}.png").is_file()]
absent = [(stem, caption(cap)[0], [x for x in exps if not ok_rows(x)]) for stem, exps, cap in FIGURES
          if not (figdir / f"{stem}.png").is_file()]
extra = sorted(p.stem for p in figdir.glob("*.png") if p.stem not in {s for s, _, _ in FIGURES})
notes = {stem: NOTES[stem]() for stem, _ in known if stem in NOTES}
TABLE_HEAD = ["experiment", "points", "ok", "failed", "missing", "wall time, sum of points (s)"]
machine_lines, machine_table, machine_record, machine_figure = this_machine()

md = ["# RMAI testbed: the paper's claims, reproduced", "", "## How it was produced", "",
      *[x for line in how for x in (line, "")],
      "| " + " | ".join(TABLE_HEAD) + " |", "|" + "---|" * len(TABLE_HEAD),
      *["| " + " | ".join(r) + " |" for r in table], "", "## Claims", "",
      "| Claim | Paper | Measured | Verdict |", "|---|---|---|---|"]
md += [f"| {x['name']} | {x['paper']} | {'<br>'.join(x['measured'])} | {x['verdict']} |" for x in claims]
md += ["", "Verdict rules (plots/claims.json):", "", *[f"- {x['name']}: {x['rule']}" for x in claims], ""]
md += ["## Measured on this machine", "", *[x for line in machine_lines for x in (line, "")]]
if machine_table:
    md += ["| " + " | ".join(THIS_MACHINE_HEAD) + " |", "|" + "---|" * len(THIS_MACHINE_HEAD),
           *["| " + " | ".join(r) + " |" for r in machine_table], ""]
if machine_figure:  # report.md sits in RESULTS, the figure in RESULTS/validate
    md += [f"![The simulator against the emulator]({machine_figure.relative_to(RESULTS).as_posix()})", "",
           VALIDATION_CAPTION, ""]
md += ["## Figures", ""]
for stem, cap in known:
    title, paras = caption(cap)
    md += [f"### {title}", "", f"![{title}](figures/{stem}.png)", "",
           *[x for p in paras + notes.get(stem, []) for x in (unlink(p), "")]]
md += [x for stem in extra for x in (f"### {stem}", "", f"![{stem}](figures/{stem}.png)", "")]
md += [f"### {title}: not drawn (no results: {', '.join(exps) or 'see the figure script'})\n" for _, title, exps in absent]
md += ["## Failed and missing points", ""]
md += [x for name, lines in bad.items() for x in (f"**{name}**", "", *[f"- {l}" for l in lines], "")] or ["None.", ""]
(RESULTS / "report.md").write_text("\n".join(md) + "\n")

# The same claims and measurements for other readers (plots/readme.py writes README's tables from a full run's).
record = {"schema": 1, "results": str(RESULTS), **provenance, "claims": claims, "this_machine": machine_record}
(RESULTS / "report.json").write_text(json.dumps(record, indent=1) + "\n")

# Verdict colours by level: holds green, partly (a partial or mixed verdict) amber, does not hold red.
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
for x in claims:
    h.append(f"<tr><td>{e(x['name'])}</td><td>{e(x['paper'])}</td><td>{'<br>'.join(e(m) for m in x['measured'])}</td>"
             f"<td class='{x['level']}'>{e(x['verdict'])}</td></tr>")
h += ["</table><p>Verdict rules (plots/claims.json):</p><ul>",
      *[f"<li>{e(x['name'])}: {e(x['rule'])}</li>" for x in claims], "</ul>",
      "<h2>Measured on this machine</h2>", *[f"<p>{inline_html(l)}</p>" for l in machine_lines]]
if machine_table:
    h += ["<table><tr>" + "".join(f"<th>{e(x)}</th>" for x in THIS_MACHINE_HEAD) + "</tr>",
          *["<tr>" + "".join(f"<td>{e(x)}</td>" for x in r) + "</tr>" for r in machine_table], "</table>"]
if machine_figure:
    data = base64.b64encode(machine_figure.read_bytes()).decode()
    h += [f"<figure><img alt='The simulator against the emulator' src='data:image/png;base64,{data}'>",
          f"<p>{inline_html(VALIDATION_CAPTION)}</p></figure>"]
h.append("<h2>Figures</h2>")
for stem, cap in known + [(s, None) for s in extra]:
    title, paras = caption(cap) if cap else (stem, [])
    data = base64.b64encode((figdir / f"{stem}.png").read_bytes()).decode()
    h += [f"<figure><h3>{e(title)}</h3><img alt='{e(title)}' src='data:image/png;base64,{data}'>",
          *[f"<p>{inline_html(p)}</p>" for p in paras + notes.get(stem, [])], "</figure>"]
h += [f"<h3>{e(title)}: not drawn (no results: {e(', '.join(exps) or 'see the figure script')})</h3>"
      for _, title, exps in absent]
h.append("<h2>Failed and missing points</h2>")
for name, lines in bad.items():
    h += [f"<p><strong>{e(name)}</strong></p><ul>", *[f"<li>{e(l)}</li>" for l in lines], "</ul>"]
if not bad:
    h.append("<p>None.</p>")
h.append("</body></html>")
(RESULTS / "report.html").write_text("\n".join(h) + "\n")
print(f"wrote {RESULTS / 'report.md'}, report.html and report.json", file=sys.stderr)
