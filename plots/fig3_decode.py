"""Figure 3 (decode): tokens/s and token latency p50/p99 per tier against the GPU expert cache size."""
import common as c  # first: it finds a python3 with matplotlib

results, figdir = c.args()
rows = c.load(results, "decode")
tiers = c.tier_order(r["tier"] for r in rows)
slots = sorted({r["gpu_experts"] for r in rows})

fig, (left, right) = c.plt.subplots(1, 2, figsize=(12, 4.8))
for tier in tiers:
    color, label = c.tier_color(tier), c.TIER_LABELS.get(tier, tier)
    x, y = c.curve(rows, "gpu_experts", "tokens_per_s", tier=tier)
    left.plot(x, y, marker="o", color=color, label=label)
    x, p50 = c.curve(rows, "gpu_experts", "token_latency_s.p50", tier=tier)
    x, p99 = c.curve(rows, "gpu_experts", "token_latency_s.p99", tier=tier)
    right.plot(x, p50, marker="o", color=color, label=label)
    right.plot(x, p99, marker="o", markerfacecolor="none", linestyle="--", color=color)
right.plot([], [], color="black", label="latency p50")
right.plot([], [], color="black", linestyle="--", label="latency p99")
for ax in (left, right):
    ax.set_yscale("log")
    c.plain_log(ax)
    ax.set_xticks(slots, [f"{s:g}" for s in slots])
    ax.set_xlabel("GPU expert slots (experts cached in HBM)")
left.set_ylabel("decode throughput (tokens/s)")
left.set_title("Throughput")
right.set_ylabel("token latency (s)")
right.set_title("Token latency: p50 (solid), p99 (dashed)")
handles, labels = right.get_legend_handles_labels()
fig.legend(handles, labels, ncol=len(labels), loc="upper center", bbox_to_anchor=(0.5, -0.02), frameon=False)
c.save(fig, figdir, "fig3_decode")
