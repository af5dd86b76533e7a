"""Figure 5 (nic-bandwidth, nic-latency): RMAI median switch latency against (a) NIC bandwidth and
(b) network latency, with the tiers that do not use the NIC (the CXL expander, the CXL pool) as
references."""
import common as c  # first: it finds a python3 with matplotlib

results, figdir = c.args()
bw, lat = c.load_some(results, "nic-bandwidth", "nic-latency")
SERIES = c.DEFAULT_TIER  # the paper's path, one line per value of the swept key
COLOR = c.tier_color(SERIES)


def panel(ax, rows, x, key, label, what):
    """One line of the paper's tier per value of `key` (label(row) names it), every other tier of the
    sweep as a horizontal reference; x(row) is the abscissa."""
    if rows is None:
        return c.no_results(ax, what)
    first = {}  # a row of each value of `key`, in sweep order
    for r in c.where(rows, tier=SERIES):
        first.setdefault(c.get(r, key), r)
    for i, (v, row) in enumerate(first.items()):
        xs, y = c.curve(rows, x, "expert_switch_s.p50", tier=SERIES, **{key: v})
        ax.plot(xs, [t * 1e3 for t in y], color=COLOR, linestyle=["-", "--", ":", "-."][i % 4],
                marker=c.MARKERS[i % len(c.MARKERS)], label=label(row))
    for i, tier in enumerate(t for t in c.tier_order(r["tier"] for r in rows) if t != SERIES):
        ref = c.where(rows, tier=tier)  # the NIC does not matter to it: one value
        ax.axhline(ref[0]["expert_switch_s.p50"] * 1e3, color=c.tier_color(tier), linestyle=["-.", ":"][i % 2],
                   label=f"{c.TIER_LABELS.get(tier, tier)} (one node)")
    xs = sorted({x(r) for r in rows})
    ax.set_xscale("log")
    ax.set_yscale("log")
    c.floor_decade(ax, [r["expert_switch_s.p50"] * 1e3 for r in rows])
    c.plain_log(ax, dense=True)
    ax.set_xticks(xs, [f"{v:g}" for v in xs])
    ax.minorticks_off()
    ax.set_ylabel("expert switch latency, p50 (ms)")
    ax.legend()


fig, (a, b) = c.plt.subplots(1, 2, figsize=(12, 4.6))
panel(a, bw, lambda r: c.si(r, "bandwidth") * 8 / 1e9, "region_chunk",
      lambda r: f"RMAI, {c.fmt_bytes(c.si(r, 'region_chunk'))} chunks (pipelined)" if c.si(r, "region_chunk")
      else "RMAI, whole-expert region",
      "nic-bandwidth")
a.set_xlabel("NIC bandwidth (Gb/s)")
a.set_title("(a) NIC bandwidth")
panel(b, lat, lambda r: c.si(r, "latency") * 1e6, "fault_batch",
      lambda r: f"RMAI, {c.get(r, 'fault_batch'):g}-page reads ({c.fmt_bytes(c.get(r, 'fault_batch') * 4096)})",
      "nic-latency")
b.set_xlabel("network latency (us)")
b.set_title("(b) Network latency")
c.save(fig, figdir, "fig5_nic")
