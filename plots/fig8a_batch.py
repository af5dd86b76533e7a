"""Figure 8a (batch): per model, decode throughput (tokens/s, one node) and time per output token
against the decode batch, one line per tier."""
import common as c  # first: it finds a python3 with matplotlib

results, figdir = c.args()
rows = c.load(results, "batch")
models = list(dict.fromkeys(r["model"] for r in rows))
tiers = c.tier_order(r["tier"] for r in rows)

fig, axes = c.plt.subplots(2, len(models), figsize=(6 * len(models), 8.4), squeeze=False)
for j, model in enumerate(models):
    batches = sorted({c.get(r, "serving.batch") for r in c.where(rows, model=model)})
    for tier in tiers:
        style = dict(marker="o", color=c.tier_color(tier), label=c.TIER_LABELS.get(tier, tier))
        x, y = c.curve(rows, "serving.batch", "tokens_per_s_per_node", model=model, tier=tier)
        axes[0][j].plot(x, y, **style)
        x, y = c.curve(rows, "serving.batch", "tpot_s.mean", model=model, tier=tier)
        axes[1][j].plot(x, y, **style)
    for ax in (axes[0][j], axes[1][j]):
        ax.set_xscale("log")
        ax.set_yscale("log")
        c.plain_log(ax)
        ax.set_xticks(batches, [f"{b:g}" for b in batches])
        ax.minorticks_off()
    axes[0][j].set_title(c.model_label(model))
    axes[0][j].set_ylabel("decode throughput per node (tokens/s)")
    axes[1][j].set_ylabel("time per output token (s)")
    axes[1][j].set_xlabel("decode batch (sequences per step)")
handles, labels = axes[0][0].get_legend_handles_labels()
fig.tight_layout()
fig.legend(handles, labels, ncol=len(labels), loc="upper center", bbox_to_anchor=(0.5, 0.0), frameon=False)
c.save(fig, figdir, "fig8a_batch")
