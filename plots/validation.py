"""python3 plots/validation.py DIR [FIG_DIR]: the simulator against the emulator, tier by tier, from the
DIR/validation.csv of `rmai validate EXP.yaml --out DIR [--repeats N]`; writes FIG_DIR/validation.png and
.pdf (FIG_DIR defaults to DIR). Top: switch p50, token p50 and replay time per tier, the emulator's median
over its repeats with their min-max as error bars, the simulator (one run: it is deterministic) hatched
beside it. Bottom: the relative error (sim - emul) / emul of each time metric against the +-15% the
validation aims at, its error bars the error against the fastest and the slowest repeat; and the counts,
which must agree exactly. Exit 2 naming the file when validation.csv is missing or malformed."""
import math
import sys
from pathlib import Path

import common as c  # first: it finds a python3 with matplotlib
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

GOAL = 0.15  # the validation's aim: the simulator within 15% of the emulator
TIMES = [("switch_p50_s", "expert switch, p50"), ("token_p50_s", "token latency, p50"), ("replay_s", "replay time")]
ERRORS = [("switch_p50_s", "switch\np50"), ("switch_p99_s", "switch\np99"), ("switch_mean_s", "switch\nmean"),
          ("token_p50_s", "token\np50"), ("replay_s", "replay")]
COUNTS = [("expert_switches", "switches"), ("page_faults", "page faults"),
          ("user_kernel_transitions", "user-kernel\ntransitions"),
          ("handler_system_calls", "handler system\ncalls (emul)")]


def fail(message):
    print(f"validation: {message}", file=sys.stderr)
    sys.exit(2)


if len(sys.argv) not in (2, 3):
    sys.exit("usage: python3 plots/validation.py DIR [FIG_DIR]")
folder = Path(sys.argv[1])
figdir = Path(sys.argv[2]) if len(sys.argv) == 3 else folder
try:
    got = c.validation(folder)
except ValueError as error:
    fail(f"malformed {error}")
if got is None:
    fail(f"missing {folder / 'validation.csv'} (rmai validate EXP.yaml --out {folder})")
tiers = c.tier_order(got)
repeats = sorted({got[t]["repeats"] for t in tiers})


def value(tier, metric, key):
    """A finite number or None (a metric the csv lacks, or nan)."""
    v = got[tier].get(metric, {}).get(key)
    return v if isinstance(v, float) and math.isfinite(v) else None


def label(tier):
    return c.TIER_LABELS.get(tier, tier)


fig = c.plt.figure(figsize=(12, 8.6))
rows = fig.add_gridspec(2, 1, height_ratios=[1, 1.05], hspace=0.5)
top, bottom = rows[0].subgridspec(1, 3, wspace=0.28), rows[1].subgridspec(1, 2, width_ratios=[1.4, 1], wspace=0.08)

# Times: log ms, two bars per tier. A bar needs a positive value on a log axis; a missing one is left out.
width, times = 0.38, []
for k, (metric, title) in enumerate(TIMES):
    ax = fig.add_subplot(top[0, k])
    for i, tier in enumerate(tiers):
        emul, lo, hi = (value(tier, metric, x) for x in ("emul", "emul_min", "emul_max"))
        sim = value(tier, metric, "sim")
        if emul is not None and emul > 0:
            lo, hi = lo if lo is not None else emul, hi if hi is not None else emul
            ax.bar(i - width / 2, emul * 1e3, width, color=c.tier_color(tier))
            if hi > lo:  # one run (or identical ones) has no spread to draw
                ax.errorbar(i - width / 2, emul * 1e3, yerr=[[max(emul - lo, 0) * 1e3], [max(hi - emul, 0) * 1e3]],
                            fmt="none", ecolor="black", elinewidth=1, capsize=3)
            times += [x * 1e3 for x in (emul, lo, hi) if x > 0]
        if sim is not None and sim > 0:
            ax.bar(i + width / 2, sim * 1e3, width, color=c.tier_color(tier), alpha=0.45, hatch="//",
                   edgecolor="white", linewidth=0)
            times.append(sim * 1e3)
    ax.set_xticks(range(len(tiers)), [label(t) for t in tiers], rotation=30, ha="right")
    ax.grid(axis="x", visible=False)
    ax.set_yscale("log")
    c.plain_log(ax)
    ax.set_title(title)
    if k == 0:
        ax.set_ylabel("ms (log)")
shared = [x for x in times if x > 0]
for ax in fig.axes:  # one scale for the three, so that heights compare across panels
    if shared:
        c.floor_decade(ax, shared)
        ax.set_ylim(None, max(shared) * 1.6)

# Relative errors: the bar against the median, its error bar against the fastest and slowest repeats
# ((sim - emul_min) / emul_min is the highest, (sim - emul_max) / emul_max the lowest).
ax = fig.add_subplot(bottom[0, 0])
ax.axhspan(-GOAL, GOAL, color="#2ca02c", alpha=0.12, lw=0, label=f"±{GOAL:.0%}: the goal")
ax.axhline(0, color="black", lw=0.8)
bar = 0.8 / len(tiers)
for i, tier in enumerate(tiers):
    for j, (metric, _) in enumerate(ERRORS):
        emul, lo, hi, sim = (value(tier, metric, x) for x in ("emul", "emul_min", "emul_max", "sim"))
        err = value(tier, metric, "rel_error")
        x = j + (i - (len(tiers) - 1) / 2) * bar
        if err is None:
            continue
        ax.bar(x, err, bar, color=c.tier_color(tier), label=label(tier) if j == 0 else None)
        if sim is not None and lo and hi and 0 < lo < hi:
            high, low = (sim - lo) / lo, (sim - hi) / hi
            ax.errorbar(x, err, yerr=[[max(err - low, 0)], [max(high - err, 0)]], fmt="none", ecolor="black",
                        elinewidth=1, capsize=2)
ax.set_xticks(range(len(ERRORS)), [name for _, name in ERRORS])
ax.grid(axis="x", visible=False)
ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
ax.set_ylabel("(sim - emul) / emul")
ax.set_title("Relative error of the simulator")
ax.legend(ncol=len(tiers) + 1, fontsize=8.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)

# Counts: a table, since they must agree exactly: '=' when they do, else both values.
ax = fig.add_subplot(bottom[0, 1])
ax.axis("off")
cells = []
for tier in tiers:
    row = []
    for metric, _ in COUNTS:
        emul, sim = value(tier, metric, "emul"), value(tier, metric, "sim")
        if emul is None:
            row.append("-")
        elif metric == "handler_system_calls":  # the emulator's user-space handler only: nothing to compare
            row.append(c.fmt_count(emul))
        elif sim == emul:
            row.append(f"{c.fmt_count(emul)} =")
        else:
            row.append(f"{c.fmt_count(emul)}\nsim {c.fmt_count(sim) if sim is not None else '-'}")
    cells.append(row)
table = ax.table(cellText=cells, rowLabels=[label(t) for t in tiers], colLabels=[name for _, name in COUNTS],
                 cellLoc="center", bbox=[0.2, 0, 0.8, 1])  # inside the axes: room for the row labels
table.auto_set_font_size(False)
table.set_fontsize(7.5)
for (r, col), cell in table.get_celld().items():
    cell.set_edgecolor("#cccccc")
    if r > 0 and col >= 0 and cells[r - 1][col].endswith(" ="):
        cell.set_facecolor("#e6f4ea")  # equal: green as in the report's verdicts
    elif r > 0 and col >= 0 and "\nsim" in cells[r - 1][col]:
        cell.set_facecolor("#fdecea")
ax.set_title("Counts: emul (= when sim agrees)", fontsize=11)

if repeats == [1]:
    runs = "one run"
else:
    runs = f"median of {repeats[0]}{'-' + str(repeats[-1]) if len(repeats) > 1 else ''} runs; error bars: min-max"
fig.legend(handles=[Patch(color="grey", label=f"emulator ({runs})"),
                    Patch(facecolor="grey", alpha=0.45, hatch="//", edgecolor="white", label="simulator")],
           ncol=2, loc="upper center", bbox_to_anchor=(0.5, 0.965), frameon=False)
fig.suptitle("rmai validate: the simulator against the emulator on this machine", y=1.0)
c.save(fig, figdir, "validation")
