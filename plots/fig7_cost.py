"""Figure 7 (cost): capital cost per node of the node plus its expert memory, and dollars per million
tokens, per tier against the number of nodes."""
import common as c  # first: it finds a python3 with matplotlib

results, figdir = c.args()
rows = [r for r in c.load(results, "cost") if r.get("cost.node_usd") is not None]
tiers = c.tier_order(r["tier"] for r in rows)
fig, (left, right) = c.plt.subplots(1, 2, figsize=(11, 4.4))
for tier in tiers:
    xs, memory = c.curve(rows, "nodes", "cost.memory_usd_per_node", tier=tier)
    _, per_token = c.curve(rows, "nodes", "cost.usd_per_million_tokens", tier=tier)
    style = dict(color=c.tier_color(tier), marker="o", label=c.TIER_LABELS.get(tier, tier))
    left.plot(xs, [m / 1e3 for m in memory], **style)
    right.plot(xs, per_token, **style)
node = rows[0]["cost.node_usd"]
left.set_title(f"Expert memory per node (the node itself: ${node / 1e3:,.0f}k)")
left.set_ylabel("capital cost per node (thousand $)")
right.set_title("Node and expert memory per million tokens")
right.set_ylabel("$ per million decode tokens")
right.set_yscale("log")
c.plain_log(right)
for ax in (left, right):
    ax.set_xlabel("inference nodes")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({r["nodes"] for r in rows}), [f"{n:g}" for n in sorted({r["nodes"] for r in rows})])
left.legend()
fig.text(0.5, -0.02, f"prices: preset '{rows[0]['cost.prices']}' (illustrative, models/hardware/prices)",
         ha="center", fontsize=9, color="dimgrey")
c.save(fig, figdir, "fig7_cost")
