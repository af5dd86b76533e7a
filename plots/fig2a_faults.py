"""Figure 2a (faults): page faults and user-kernel transitions per expert switch, per tier."""
import common as c  # first: it finds a python3 with matplotlib

results, figdir = c.args()
rows = [r for r in c.load(results, "faults") if r["expert_switches"]]  # per switch needs switches
tiers = c.tier_order(r["tier"] for r in rows)
metrics = [("page_faults", "page faults", None), ("user_kernel_transitions", "user-kernel transitions", "//")]

fig, ax = c.plt.subplots(figsize=(8, 4.6))
width = 0.38
zero = False
top = max(c.per_switch(r, m) for r in rows for m, _, _ in metrics)
for i, tier in enumerate(tiers):
    row = c.where(rows, tier=tier)[0]
    for k, (metric, _, hatch) in enumerate(metrics):
        x = i + (k - 0.5) * width
        v = c.per_switch(row, metric)
        if v > 0:
            ax.bar(x, v, width, color=c.tier_color(tier), hatch=hatch, edgecolor="white", linewidth=0)
            ax.text(x, v * 1.15, f"{v:,.3g}" if v < 10 else f"{v:,.0f}", ha="center", va="bottom", fontsize=9)
        else:  # a log axis cannot draw 0: say it
            ax.text(x, 0.6, "0*", ha="center", va="bottom", fontsize=10, color=c.tier_color(tier))
            zero = True
for _, label, hatch in metrics:  # legend by fill pattern only
    ax.bar([0], [0], color="grey", hatch=hatch, edgecolor="white", label=label + " per switch")
ax.set_yscale("log")
ax.set_ylim(0.5, top * 8)
c.plain_log(ax)
ax.set_xticks(range(len(tiers)), [c.TIER_LABELS.get(t, t) for t in tiers])
ax.grid(axis="x", visible=False)
ax.set_ylabel("count per expert switch")
ax.set_title("Page faults and user-kernel transitions per expert switch")
ax.legend(loc="upper right")
if zero:
    ax.annotate("* 0: none (a log axis cannot draw 0)", (0, 0), xytext=(0, -38), xycoords="axes fraction",
                textcoords="offset points", fontsize=9, color="dimgrey")
c.save(fig, figdir, "fig2a_faults")
