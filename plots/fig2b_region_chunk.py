"""Figure 2b (region-chunk): RMAI median switch latency against the region chunk, one line per fault batch."""
import common as c  # first: it finds a python3 with matplotlib

results, figdir = c.args()
rows = c.load(results, "region-chunk")
expert = c.expert_bytes(rows) or 352321536  # Mixtral-8x7B's expert if the data cannot say
batches = sorted({c.get(r, "fault_batch") for r in rows})

fig, ax = c.plt.subplots(figsize=(8, 4.8))
for i, batch in enumerate(batches):
    x, y = c.curve(rows, lambda r: c.si(r, "region_chunk") or expert, "expert_switch_s.p50", fault_batch=batch)
    ax.plot(x, [v * 1e3 for v in y], marker=c.MARKERS[i % len(c.MARKERS)], color=c.shade(i, len(batches)),
            label=f"{batch:g} page{'s' if batch != 1 else ''} ({c.fmt_bytes(batch * 4096)})")
chunks = sorted({c.si(r, "region_chunk") for r in rows}, key=lambda v: v or expert)  # 0: the whole expert
ax.set_xscale("log")
ax.set_xticks([v or expert for v in chunks],
              [c.fmt_bytes(v) if v else f"expert\n({expert / 1e6:.3g} MB)" for v in chunks])
ax.minorticks_off()
ax.set_ylim(bottom=0)
ax.set_xlabel("region chunk (bytes mapped by one fault)")
ax.set_ylabel("expert switch latency, p50 (ms)")
ax.set_title("RMAI: region chunk and fault batch")
ax.legend(title="fault batch (RDMA read size)", ncol=2)
c.save(fig, figdir, "fig2b_region_chunk")
