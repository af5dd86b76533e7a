"""Figure 1 (switch-latency): median expert-switch latency per model and tier, p99 as a cap."""
import common as c  # first: it finds a python3 with matplotlib
import numpy as np

results, figdir = c.args()
rows = c.load(results, "switch-latency")
models = list(dict.fromkeys(r["model"] for r in rows))  # in sweep order
tiers = c.tier_order(r["tier"] for r in rows)

fig, ax = c.plt.subplots(figsize=(10, 4.6))
width = 0.8 / len(tiers)
for i, tier in enumerate(tiers):
    x, p50, p99 = [], [], []
    for j, model in enumerate(models):
        hit = c.where(rows, model=model, tier=tier)
        if hit:
            x.append(j + (i - (len(tiers) - 1) / 2) * width)
            p50.append(hit[0]["expert_switch_s.p50"] * 1e3)
            p99.append(hit[0]["expert_switch_s.p99"] * 1e3)
    p50, p99 = np.array(p50), np.array(p99)
    ax.bar(x, p50, width, color=c.tier_color(tier), label=c.TIER_LABELS.get(tier, tier))
    ax.errorbar(x, p50, yerr=[np.zeros_like(p50), p99 - p50], fmt="none", ecolor="black", elinewidth=1, capsize=3)

labels = []
for model in models:
    size = c.expert_bytes(c.where(rows, model=model))
    labels.append(c.model_label(model) + (f"\n({size / 1e6:.3g} MB experts)" if size else ""))
ax.set_xticks(range(len(models)), labels)
ax.grid(axis="x", visible=False)
ax.set_yscale("log")
c.floor_decade(ax, [r["expert_switch_s.p50"] * 1e3 for r in rows])
c.plain_log(ax)
ax.set_ylabel("expert switch latency, p50 (ms)")
ax.set_title("Expert-switch latency per tier (bars: p50, caps: p99)")
ax.legend(ncol=len(tiers), loc="upper center", bbox_to_anchor=(0.5, -0.17), frameon=False)
c.save(fig, figdir, "fig1_switch_latency")
