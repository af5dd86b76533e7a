"""Figure 4 (sharing, sharing-servers): nodes sharing one pool (RMAI's memory server, a CXL pool)
against private DRAM copies: (a) switch latency, (b) memory holding the experts, (c) switch latency
per number of memory servers."""
import common as c  # first: it finds a python3 with matplotlib

results, figdir = c.args()
sharing, servers = c.load_some(results, "sharing", "sharing-servers")

fig, (a, b, cc) = c.plt.subplots(1, 3, figsize=(15, 4.6))
if sharing:
    for tier in c.tier_order(r["tier"] for r in sharing):  # what the sweep holds: pools and private copies
        label = c.TIER_LABELS.get(tier, tier) + (", one shared copy" if c.TIER_SHARED.get(tier) else ", a copy per node")
        x, y = c.curve(sharing, "nodes", "expert_switch_s.p50", tier=tier)
        a.plot(x, [v * 1e3 for v in y], marker="o", color=c.tier_color(tier), label=label)
        x, y = c.curve(sharing, "nodes", "pool_bytes", tier=tier)
        b.plot(x, [v / 1e9 for v in y], marker="o", color=c.tier_color(tier), label=label)
    a.set_title("(a) Switch latency: cost of sharing")
    a.set_ylabel("expert switch latency, p50 (ms)")
    b.set_title("(b) Memory holding the experts")
    b.set_ylabel("expert memory, all nodes (GB)")
    a.legend()
    b.legend()
else:
    c.no_results(a, "sharing")
    c.no_results(b, "sharing")
if servers:
    counts = sorted({c.get(r, "memory_servers") for r in servers})
    for i, n in enumerate(counts):
        x, y = c.curve(servers, "nodes", "expert_switch_s.p50", memory_servers=n)
        cc.plot(x, [v * 1e3 for v in y], marker=c.MARKERS[i % len(c.MARKERS)], color=c.shade(i, len(counts)),
                label=f"{n:g} memory server{'s' if n != 1 else ''}")
    one = min(servers, key=lambda r: (r["nodes"], c.get(r, "memory_servers")))
    cc.axhline(one["expert_switch_s.p50"] * 1.25e3, color="grey", linestyle=":", label="1 node + 25%")
    cc.set_title("(c) Memory servers against contention (RMAI)")
    cc.set_ylabel("expert switch latency, p50 (ms)")
    cc.legend()
else:
    c.no_results(cc, "sharing-servers")
for ax, rows in ((a, sharing), (b, sharing), (cc, servers)):
    if rows:
        nodes = sorted({r["nodes"] for r in rows})
        ax.set_xscale("log")
        ax.set_yscale("log")
        c.plain_log(ax, dense=True)
        ax.set_xticks(nodes, [f"{n:g}" for n in nodes])
        ax.minorticks_off()
        ax.set_xlabel("inference nodes")
c.save(fig, figdir, "fig4_sharing")
