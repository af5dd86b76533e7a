"""Figure 6 (cache-policy): GPU cache hit rate and tokens/s against the cache size per policy, one
column per model; prefetchers (param.cache.prefetch, when swept) as line styles."""
import common as c  # first: it finds a python3 with matplotlib

results, figdir = c.args()
rows = c.load(results, "cache-policy")
models = list(dict.fromkeys(r["model"] for r in rows))
policies = list(dict.fromkeys(c.get(r, "policy") for r in rows))
prefetchers = list(dict.fromkeys(r.get("param.cache.prefetch") for r in rows))  # [None] when not swept
COLORS = ["black", "#17becf", "#bcbd22", "#8c564b", "#e377c2"]  # not tier colours: these are all RMAI
STYLES = ["-", "--", ":", "-."]

fig, axes = c.plt.subplots(2, len(models), figsize=(5.5 * len(models), 7.6), squeeze=False)
for j, model in enumerate(models):
    top, bottom = axes[0][j], axes[1][j]
    for i, policy in enumerate(policies):
        for k, pre in enumerate(prefetchers):
            match = {"model": model, "policy": policy}
            if pre is not None:
                match["param.cache.prefetch"] = pre
            style = dict(color=COLORS[i % len(COLORS)], linestyle=STYLES[k % len(STYLES)],
                         marker=c.MARKERS[i % len(c.MARKERS)])
            x, y = c.curve(rows, "gpu_experts", "cache_hit_rate", **match)
            top.plot(x, [v * 100 for v in y], **style)
            x, y = c.curve(rows, "gpu_experts", "tokens_per_s", **match)
            bottom.plot(x, y, **style)
    slots = sorted({r["gpu_experts"] for r in c.where(rows, model=model)})
    for ax in (top, bottom):
        ax.set_xscale("log")
        ax.set_xticks(slots, [f"{s:g}" for s in slots])
        ax.minorticks_off()
    top.set_title(f"{c.model_label(model)} (RMAI)")
    top.set_ylabel("GPU cache hit rate (%)")
    top.set_ylim(0, 100)
    bottom.set_ylabel("decode throughput (tokens/s)")
    bottom.set_xlabel("GPU expert slots")
    bottom.set_ylim(bottom=0)
# Legend: colour and marker = policy; line style = prefetcher (when swept).
Line = c.plt.Line2D
handles = [Line([], [], color=COLORS[i % len(COLORS)], marker=c.MARKERS[i % len(c.MARKERS)], label=p.upper())
           for i, p in enumerate(policies)]
if prefetchers != [None]:
    handles += [Line([], [], color="dimgrey", linestyle=STYLES[k % len(STYLES)], label=f"prefetch: {p}")
                for k, p in enumerate(prefetchers)]
fig.legend(handles=handles, ncol=len(handles), loc="upper center", bbox_to_anchor=(0.5, 0.02), frameon=False)
fig.tight_layout()
c.save(fig, figdir, "fig6_cache_policy")
