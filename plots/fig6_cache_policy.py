"""Figure 6 (cache-policy): per policy and model against the cache size, the expert switches on demand
per token, the time a token waits for its experts (stall) and tokens/s; prefetchers
(param.cache.prefetch, when swept) as line styles.

Not the hit rate: summary.json's cache_hit_rate counts an access served by a prefetch as a hit even
when the layer waited for that prefetch, so the oracle reads ~97% while tokens/s hardly moves. The
stall (stall_s_per_token) counts those waits."""
import common as c  # first: it finds a python3 with matplotlib

results, figdir = c.args()
rows = c.load(results, "cache-policy")
models = list(dict.fromkeys(r["model"] for r in rows))
policies = list(dict.fromkeys(c.get(r, "policy") for r in rows))
prefetchers = list(dict.fromkeys(r.get("param.cache.prefetch") for r in rows))  # [None] when not swept
COLORS = ["black", "#17becf", "#bcbd22", "#8c564b", "#e377c2"]  # not tier colours: these are all RMAI
STYLES = ["-", "--", ":", "-."]


def demand_per_token(r):
    return (r["expert_switches"] - (r.get("prefetches") or 0)) / r["tokens"]


def stall_ms(r):
    return r["stall_s_per_token"] * 1e3 if r.get("stall_s_per_token") is not None else None


PANELS = [(demand_per_token, "expert switches on demand per token"),
          (stall_ms, "stall per token (ms):\nwaiting for experts"),
          (lambda r: r["tokens_per_s"], "decode throughput (tokens/s)")]

fig, axes = c.plt.subplots(len(PANELS), len(models), figsize=(5.5 * len(models), 10.5), squeeze=False)
for j, model in enumerate(models):
    for i, policy in enumerate(policies):
        for k, pre in enumerate(prefetchers):
            match = {"model": model, "policy": policy}
            if pre is not None:
                match["param.cache.prefetch"] = pre
            style = dict(color=COLORS[i % len(COLORS)], linestyle=STYLES[k % len(STYLES)],
                         marker=c.MARKERS[i % len(c.MARKERS)])
            here = sorted(c.where(rows, **match), key=lambda r: r["gpu_experts"])
            for (value, _), ax in zip(PANELS, (row[j] for row in axes)):
                pts = [(r["gpu_experts"], value(r)) for r in here if value(r) is not None]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], **style)
    slots = sorted({r["gpu_experts"] for r in c.where(rows, model=model)})
    for (_, label), ax in zip(PANELS, (row[j] for row in axes)):
        ax.set_xscale("log")
        ax.set_xticks(slots, [f"{s:g}" for s in slots])
        ax.minorticks_off()
        ax.set_ylim(bottom=0)
        ax.set_ylabel(label)
    axes[0][j].set_title(f"{c.model_label(model)} (RMAI)")
    axes[-1][j].set_xlabel("GPU expert slots")
# Legend: colour and marker = policy; line style = prefetcher (when swept).
Line = c.plt.Line2D
handles = [Line([], [], color=COLORS[i % len(COLORS)], marker=c.MARKERS[i % len(c.MARKERS)], label=p.upper())
           for i, p in enumerate(policies)]
if prefetchers != [None]:
    handles += [Line([], [], color="dimgrey", linestyle=STYLES[k % len(STYLES)], label=f"prefetch: {p}")
                for k, p in enumerate(prefetchers)]
fig.tight_layout()
fig.legend(handles=handles, ncol=len(handles), loc="upper center", bbox_to_anchor=(0.5, 0.0), frameon=False)
fig.text(0.5, -0.035, "Prefetched experts are not counted as hits: a token still waits for a prefetch in flight "
         "(stall), and prefetches share the links with the switches on demand.", ha="center", fontsize=9,
         color="dimgrey")
c.save(fig, figdir, "fig6_cache_policy")
