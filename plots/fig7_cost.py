"""Figure 7 (cost): capital cost per node of the node plus its expert memory, and dollars per million
tokens, per tier against the number of nodes. Each tier has its own marker; tiers whose curves
coincide (within 1%) are drawn dashed with hollow markers over each other and named together."""
import common as c  # first: it finds a python3 with matplotlib

results, figdir = c.args()
rows = [r for r in c.load(results, "cost") if r.get("cost.node_usd") is not None]
tiers = c.tier_order(r["tier"] for r in rows)
nodes = sorted({r["nodes"] for r in rows})
PANELS = ["cost.memory_usd_per_node", "cost.usd_per_million_tokens"]


def same(a, b):
    return len(a) == len(b) and all(abs(x - y) <= 0.01 * max(abs(x), abs(y), 1e-12) for x, y in zip(a, b))


fig, axes = c.plt.subplots(1, 2, figsize=(11.5, 4.6))
for key, ax in zip(PANELS, axes):
    drawn = []  # (tier, xs, ys) in drawing order
    for tier in tiers:
        xs, ys = c.curve(rows, "nodes", key, tier=tier)
        under = [t for t, x0, y0 in drawn if x0 == xs and same(y0, ys)]
        marker = c.MARKERS[c.TIERS.index(tier) % len(c.MARKERS)] if tier in c.TIERS else "o"
        style = dict(color=c.tier_color(tier), marker=marker, label=c.TIER_LABELS.get(tier, tier))
        if under:  # on top of another curve: dashed, hollow and larger, so that both show
            style.update(linestyle="--", markerfacecolor="none", markersize=9, markeredgewidth=1.6)
            names = " = ".join(c.TIER_LABELS.get(t, t) for t in [*under, tier])
            ax.annotate(f"{names} (same values)", (xs[-1], ys[-1]), xytext=(-4, 8), textcoords="offset points",
                        ha="right", fontsize=8.5, color="dimgrey")
        ax.plot(xs, ys, **style)
        drawn.append((tier, xs, ys))
    # Log scales: the memory spans three decades (the NVMe drive to a node's own RMAI server), labelled
    # per decade; the $ per token little more than one, labelled at 1, 2 and 5 with a tick at each end.
    ax.set_yscale("log")
    c.plain_log(ax, dense=ax is axes[1])
    c.log_limits_on_ticks(ax, [y for _, _, ys in drawn for y in ys if y > 0])
    ax.set_xlabel("inference nodes")
    ax.set_xscale("log", base=2)
    ax.set_xticks(nodes, [f"{n:g}" for n in nodes])
    ax.xaxis.set_minor_locator(c.NullLocator())
left, right = axes
node = rows[0]["cost.node_usd"]
left.set_title(f"Expert memory per node (the node itself: ${node / 1e3:,.0f}k)")
left.set_ylabel("capital cost per node ($, log)")
right.set_title("Node and expert memory per million tokens")
right.set_ylabel("$ per million decode tokens (log)")
left.legend()
fig.text(0.5, -0.02, f"prices: preset '{rows[0]['cost.prices']}' (illustrative, models/hardware/prices)",
         ha="center", fontsize=9, color="dimgrey")
c.save(fig, figdir, "fig7_cost")
