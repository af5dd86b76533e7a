"""Figure 2b (region-chunk): RMAI median switch latency against the region chunk, one line per fault
batch, with CXL-like memory as the reference; below, what the lines above hide where they coincide:
each batch's latency above the largest batch's."""
import common as c  # first: it finds a python3 with matplotlib

results, figdir = c.args()
rows = c.load(results, "region-chunk")
rmai = c.where(rows, tier=c.DEFAULT_TIER)
cxl = [r["expert_switch_s.p50"] for r in c.where(rows, tier="cxl") if r.get("expert_switch_s.p50")]
expert = c.expert_bytes(rmai) or 352321536  # Mixtral-8x7B's expert if the data cannot say
batches = sorted({c.get(r, "fault_batch") for r in rmai})
chunk = lambda r: c.si(r, "region_chunk") or expert  # noqa: E731  (0: the whole expert)

fig, (top, bottom) = c.plt.subplots(2, 1, figsize=(8, 7.6), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
curves = {}
for i, batch in enumerate(batches):
    x, y = c.curve(rmai, chunk, "expert_switch_s.p50", fault_batch=batch)
    curves[batch] = dict(zip(x, y))
    top.plot(x, [v * 1e3 for v in y], marker=c.MARKERS[i % len(c.MARKERS)], color=c.shade(i, len(batches)),
             label=f"{batch:g} page{'s' if batch != 1 else ''} ({c.fmt_bytes(batch * 4096)})")
if cxl:
    ref = min(cxl)
    top.axhline(ref * 1e3, color=c.tier_color("cxl"), linestyle="--", label=f"{c.TIER_LABELS.get('cxl', 'CXL')} (reference)")
    best_chunk, best = min(((x, v) for curve in curves.values() for x, v in curve.items()), key=lambda p: p[1])
    top.annotate(f"best RMAI: {c.fmt_x(best / ref)} CXL", (best_chunk, best * 1e3), xytext=(0, -28),
                 textcoords="offset points", ha="center", fontsize=9, arrowprops=dict(arrowstyle="->", color="grey"))
top.set_ylim(bottom=0)
top.set_ylabel("expert switch latency, p50 (ms)")
top.set_title("RMAI: region chunk and fault batch")
top.legend(title="fault batch (RDMA read size)", ncol=2, loc="upper left")

# Below: where the lines above coincide, how far each batch is from the largest one.
largest = curves[batches[-1]]
for i, batch in enumerate(batches[:-1]):
    pts = [(x, (v - largest[x]) * 1e3) for x, v in sorted(curves[batch].items()) if x in largest and v > largest[x]]
    bottom.plot([p[0] for p in pts], [p[1] for p in pts], marker=c.MARKERS[i % len(c.MARKERS)],
                color=c.shade(i, len(batches)))
bottom.set_yscale("log")
c.plain_log(bottom, dense=True)
above = [v for line in bottom.get_lines() for v in line.get_ydata()]
if above:
    c.log_limits_on_ticks(bottom, above)
bottom.set_title(f"Where the lines above coincide: each batch's p50 above {batches[-1]:g} pages' "
                 "(no point: as fast)", fontsize=10)
bottom.set_ylabel("difference (ms, log)")
chunks = sorted({chunk(r) for r in rmai})
bottom.set_xscale("log")
bottom.set_xticks(chunks, [c.fmt_bytes(v) if v != expert else f"expert\n({expert / 1e6:.3g} MB)" for v in chunks])
bottom.minorticks_off()
bottom.set_xlabel("region chunk (bytes mapped by one fault)")
c.save(fig, figdir, "fig2b_region_chunk")
