"""Figure 5 (nic-bandwidth, nic-latency): RMAI median switch latency against (a) NIC bandwidth and
(b) network latency, with the CXL expander as a reference."""
import common as c  # first: it finds a python3 with matplotlib

results, figdir = c.args()
bw, lat = c.load_some(results, "nic-bandwidth", "nic-latency")
RMAI = c.tier_color("rmai")


def panel(ax, rows, xkey, xparse, key, label, what):
    """One RMAI line per value of `key` (label(value) names it), CXL as a horizontal reference."""
    if rows is None:
        return c.no_results(ax, what)
    values = list(dict.fromkeys(c.get(r, key) for r in c.where(rows, tier="rmai")))  # in sweep order
    for i, v in enumerate(values):
        x, y = c.curve(rows, xkey, "expert_switch_s.p50", tier="rmai", xparse=xparse, **{key: v})
        ax.plot(x, [t * 1e3 for t in y], color=RMAI, linestyle=["-", "--", ":", "-."][i % 4],
                marker=c.MARKERS[i % len(c.MARKERS)], label=label(v))
    cxl = c.where(rows, tier="cxl")
    if cxl:
        ax.axhline(cxl[0]["expert_switch_s.p50"] * 1e3, color=c.tier_color("cxl"), linestyle="-.", label="CXL x8 expander")
    xs = sorted({xparse(c.get(r, xkey)) for r in rows})
    ax.set_xscale("log")
    ax.set_yscale("log")
    c.floor_decade(ax, [r["expert_switch_s.p50"] * 1e3 for r in rows])
    c.plain_log(ax, dense=True)
    ax.set_xticks(xs, [f"{v:g}" for v in xs])
    ax.minorticks_off()
    ax.set_ylabel("expert switch latency, p50 (ms)")
    ax.legend()


fig, (a, b) = c.plt.subplots(1, 2, figsize=(12, 4.6))
panel(a, bw, "bandwidth", c.gbps, "region_chunk",
      lambda v: "RMAI, whole-expert region" if v == "expert" else f"RMAI, {c.fmt_bytes(c.nbytes(v))} chunks (pipelined)",
      "nic-bandwidth")
a.set_xlabel("NIC bandwidth (Gb/s)")
a.set_title("(a) NIC bandwidth")
panel(b, lat, "latency", c.usec, "fault_batch",
      lambda v: f"RMAI, {v:g}-page reads ({c.fmt_bytes(v * 4096)})", "nic-latency")
b.set_xlabel("network latency (us)")
b.set_title("(b) Network latency")
c.save(fig, figdir, "fig5_nic")
