"""Figure 8b (host-cache): decode throughput and the share of GPU misses served by the host cache
against its size, per tier (colour) and host policy (line style)."""
import common as c  # first: it finds a python3 with matplotlib

results, figdir = c.args()
rows = c.load(results, "host-cache")
tiers = c.tier_order(r["tier"] for r in rows)
policies = list(dict.fromkeys(c.get(r, "host_policy") for r in rows))
STYLES = ["-", "--", ":"]


def host_share(r):
    misses = r["expert_switches"] - (r.get("prefetches") or 0)
    return 100 * r["serving.host_hits"] / misses if misses else None


fig, (left, right) = c.plt.subplots(1, 2, figsize=(12, 4.8))
for tier in tiers:
    for k, policy in enumerate(policies):
        style = dict(marker="o", color=c.tier_color(tier), linestyle=STYLES[k % len(STYLES)])
        here = sorted(c.where(rows, tier=tier, host_policy=policy), key=lambda r: c.get(r, "host_experts"))
        left.plot([c.get(r, "host_experts") for r in here], [r["tokens_per_s"] for r in here], **style)
        right.plot([c.get(r, "host_experts") for r in here], [host_share(r) for r in here], **style)
left.set_yscale("log")
c.plain_log(left)
left.set_ylabel("decode throughput (tokens/s)")
right.set_ylabel("GPU misses served by the host cache (%)")
right.set_ylim(0, 100)
for ax in (left, right):
    ax.set_xlabel("host cache slots (experts in host DRAM)")
Line = c.plt.Line2D
handles = [Line([], [], color=c.tier_color(t), marker="o", label=c.TIER_LABELS.get(t, t)) for t in tiers]
handles += [Line([], [], color="dimgrey", linestyle=STYLES[k % len(STYLES)], label=f"host {p.upper()}")
            for k, p in enumerate(policies)]
fig.tight_layout()
fig.legend(handles=handles, ncol=len(handles), loc="upper center", bbox_to_anchor=(0.5, 0.0), frameon=False)
c.save(fig, figdir, "fig8b_host_cache")
