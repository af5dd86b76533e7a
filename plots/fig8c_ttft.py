"""Figure 8c (ttft): time to first token (mean over requests) and time per output token per tier,
one group of bars per model."""
import common as c  # first: it finds a python3 with matplotlib

results, figdir = c.args()
rows = c.load(results, "ttft")
models = list(dict.fromkeys(r["model"] for r in rows))
tiers = c.tier_order(r["tier"] for r in rows)
width = 0.8 / len(tiers)

fig, axes = c.plt.subplots(1, 2, figsize=(12, 4.8))
for ax, key, title in ((axes[0], "ttft_s.mean", "time to first token (s)"),
                       (axes[1], "tpot_s.mean", "time per output token (s)")):
    values = []
    for i, tier in enumerate(tiers):
        for j, model in enumerate(models):
            hit = [r[key] for r in c.where(rows, model=model, tier=tier) if r.get(key)]
            if hit:
                ax.bar(j + (i - (len(tiers) - 1) / 2) * width, hit[0], width, color=c.tier_color(tier),
                       label=c.TIER_LABELS.get(tier, tier) if j == 0 else None)
                values.append(hit[0])
    ax.set_yscale("log")
    c.plain_log(ax)
    ax.set_xticks(range(len(models)), [c.model_label(m) for m in models])
    ax.set_ylabel(title)
prompt = c.get(rows[0], "serving.prompt")
axes[0].set_title(f"prefill of a {prompt:g}-token prompt" if prompt else "prefill")
axes[1].set_title("decode after it, one request at a time")
handles, labels = axes[0].get_legend_handles_labels()
fig.tight_layout()
fig.legend(handles, labels, ncol=len(labels), loc="upper center", bbox_to_anchor=(0.5, 0.0), frameon=False)
c.save(fig, figdir, "fig8c_ttft")
