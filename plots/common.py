"""Shared code of the figure scripts and the report: results.csv loading, units, style, saving.

Each figure script is `python3 plots/<script>.py RESULTS_DIR FIG_DIR` and reads only
RESULTS_DIR/<experiment>/results.csv, as written by `rmai sweep` (one row per point: point, status,
param.<key>... with param_si.<key> beside each parameter that has a unit (its value in bytes, bytes/s
or s, as rmai parses it), then the summary.json leaves flattened with dots).
"""
import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

try:
    import matplotlib
except ImportError:  # another python3 (e.g. pyenv) first on PATH: use Debian's, which has matplotlib
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
    raise
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator  # noqa: E402

# ---------------------------------------------------------------- results

def _value(text):
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def read_rows(path):
    """Every row of a results.csv (any status), numbers as floats, empty cells as None."""
    with open(path, newline="") as f:
        return [{k: _value(v) for k, v in row.items()} for row in csv.DictReader(f)]


def args():
    """(RESULTS_DIR, FIG_DIR) from the command line."""
    if len(sys.argv) != 3:
        sys.exit(f"usage: python3 {sys.argv[0]} RESULTS_DIR FIG_DIR")
    return Path(sys.argv[1]), Path(sys.argv[2])


NO_RESULTS = 3  # the exit code of a figure whose experiments have no results (cli/reproduce.cpp)


def exit_without_results(why):
    print(f"{Path(sys.argv[0]).stem}: {why}", file=sys.stderr)
    sys.exit(NO_RESULTS)


def load(results_dir, experiment, required=True):
    """The status-ok rows of RESULTS_DIR/<experiment>/results.csv. When the file is missing (or has no
    ok point): exits NO_RESULTS with a one-line message if required, else returns None."""
    path = Path(results_dir) / experiment / "results.csv"
    rows = [r for r in read_rows(path) if r.get("status") == "ok"] if path.is_file() else []
    if rows or not required:
        return rows or None
    exit_without_results(f"{'no ok point in' if path.is_file() else 'missing'} {path}")


def load_some(results_dir, *experiments):
    """The ok rows of each experiment (None where missing) for a figure drawing several: exits NO_RESULTS naming
    the missing files if none has results; one line on stderr if some do not."""
    got = {e: load(results_dir, e, required=False) for e in experiments}
    missing = [str(Path(results_dir) / e / "results.csv") for e, rows in got.items() if rows is None]
    if len(missing) == len(experiments):
        exit_without_results(f"missing {' and '.join(missing)}")
    if missing:
        print(f"{Path(sys.argv[0]).stem}: missing {' and '.join(missing)}: drawn without it", file=sys.stderr)
    return [got[e] for e in experiments]


def get(row, key):
    """A parameter or metric by name: the column param.<key>, else the summary column <key>, else the
    swept column ending in .<key> (get(r, "region_chunk") reads param.memory.rmai.region_chunk)."""
    for col in ("param." + key, key):
        if col in row:
            return row[col]
    for col in row:
        if col.startswith("param.") and col.endswith("." + key):
            return row[col]
    return None


def si(row, key):
    """A swept parameter with a unit in SI base units (bytes, bytes/s, s; 'expert' is 0): the column
    param_si.<key>, else the one ending in .<key> (si(r, "bandwidth") reads param_si.platform.nic.bandwidth)."""
    if "param_si." + key in row:
        return row["param_si." + key]
    for col in row:
        if col.startswith("param_si.") and col.endswith("." + key):
            return row[col]
    return None


def where(rows, **match):
    """Rows whose get(row, key) equals value for every key=value given."""
    return [r for r in rows if all(get(r, k) == v for k, v in match.items())]


def curve(rows, x, ykey, **match):
    """(xs, ys) of ykey against x sorted by x, over the rows matching `match`; x is a key read with
    get, or a function of the row (lambda r: si(r, "bandwidth") * 8 / 1e9)."""
    xof = x if callable(x) else (lambda r: get(r, x))
    pts = sorted((xof(r), r[ykey]) for r in where(rows, **match) if r.get(ykey) is not None)
    return [p[0] for p in pts], [p[1] for p in pts]


def per_switch(row, key):
    n = row.get("expert_switches") or 0
    return row[key] / n if n else None


def expert_bytes(rows):
    """Bytes of one expert, from the data: bytes moved over PCIe per expert switch."""
    for r in rows:
        if r.get("expert_switches") and r.get("bytes.pcie"):
            return r["bytes.pcie"] / r["expert_switches"]
    return None


VALIDATION_COLUMNS = ("tier", "metric", "emul", "sim", "rel_error")
VALIDATION_SPREAD = ("emul_min", "emul_max", "repeats")  # since `rmai validate --repeats`


def _validation_number(path, line, column, text):
    try:
        return float(text)  # "nan" included: a metric rmai could not compute
    except (TypeError, ValueError):
        raise ValueError(f"{path}: line {line}: {column} is {text!r}, not a number") from None


def validation(folder):
    """What `rmai validate` wrote into `folder`, per tier in its order: {tier: {"layout": how the emulator
    served it (from emul/<tier>/1/summary.json, or emul/<tier>/summary.json before --repeats), "repeats":
    the emulator's runs, metric: {"emul" (the median of the runs), "sim", "rel_error", "emul_min",
    "emul_max", "repeats"} as floats ("repeats" an int)}}. A folder from before --repeats reads as one run
    (emul_min = emul_max = emul). None without validation.csv; ValueError naming the file when it is
    malformed."""
    folder = Path(folder)
    path = folder / "validation.csv"
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            head = reader.fieldnames or []
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{path}: {error}") from None
    missing = [k for k in VALIDATION_COLUMNS if k not in head]
    spread = [k for k in VALIDATION_SPREAD if k in head]
    if missing or spread and len(spread) != len(VALIDATION_SPREAD):
        lacks = missing or [k for k in VALIDATION_SPREAD if k not in head]
        raise ValueError(f"{path}: no column {', '.join(lacks)} (header: {','.join(head) or 'empty'})")
    if not rows:
        raise ValueError(f"{path}: no rows")
    out = {}
    for line, r in enumerate(rows, start=2):
        if None in r or any(r[k] is None for k in head) or not r["tier"] or not r["metric"]:
            raise ValueError(f"{path}: line {line}: not one value per column of the header")
        got = {k: _validation_number(path, line, k, r[k]) for k in ("emul", "sim", "rel_error")}
        if spread:
            got["emul_min"] = _validation_number(path, line, "emul_min", r["emul_min"])
            got["emul_max"] = _validation_number(path, line, "emul_max", r["emul_max"])
            repeats = _validation_number(path, line, "repeats", r["repeats"])
            if not (math.isfinite(repeats) and repeats >= 1 and repeats == int(repeats)):
                raise ValueError(f"{path}: line {line}: repeats is {r['repeats']!r}, not a count of runs")
            got["repeats"] = int(repeats)
        else:
            got.update(emul_min=got["emul"], emul_max=got["emul"], repeats=1)
        out.setdefault(r["tier"], {})[r["metric"]] = got
    for tier, metrics in out.items():
        emul = {}
        for summary in (folder / "emul" / tier / "1" / "summary.json", folder / "emul" / tier / "summary.json"):
            try:
                emul = json.loads(summary.read_text()).get("emul", {})
                break
            except (OSError, ValueError, AttributeError):
                continue
        emul = emul if isinstance(emul, dict) else {}  # the layout is a label: never worth failing over
        layout = str(emul.get("layout", "")).split(",")[0].split(":")[0]
        transport = str(emul.get("source", "")).partition(" via ")[2].split(" ")[0]
        metrics["repeats"] = max(m["repeats"] for m in metrics.values())
        metrics["layout"] = ", ".join(x for x in (layout, transport) if x)
    return out

# ---------------------------------------------------------------- formatting

def fmt_bytes(b):
    """Binary units for powers of two, decimal otherwise: 64 KiB, 32 MiB, 352 MB."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= scale and b % scale == 0:
            return f"{b / scale:g} {unit}"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{b:g} B"


def fmt_count(n):
    return f"{n:,.0f}" if n >= 10 else f"{n:.3g}"


def fmt_ms(seconds):
    return f"{seconds * 1e3:.3g} ms" if seconds * 1e3 < 1000 else f"{seconds * 1e3:.0f} ms"


def fmt_x(ratio):
    return f"{ratio:.3g}x" if ratio < 100 else f"{ratio:,.0f}x"

# ---------------------------------------------------------------- style

def _tier_definitions():
    """The tiers as models/tiers defines them, in presentation order: `rmai list tiers --json`, with
    the rmai of $RMAI_BIN (set by `rmai reproduce`) or of the build tree."""
    rmai = os.environ.get("RMAI_BIN") or str(Path(__file__).resolve().parent.parent / "build" / "bin" / "rmai")
    out = subprocess.run([rmai, "list", "tiers", "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["tiers"]


_DEFINITIONS = _tier_definitions()
TIERS = [t["name"] for t in _DEFINITIONS]
TIER_COLORS = {t["name"]: t["colour"] for t in _DEFINITIONS}
TIER_LABELS = {t["name"]: t["label"] for t in _DEFINITIONS}
TIER_SHARED = {t["name"]: t["shared"] for t in _DEFINITIONS}  # one copy serves every node (a pool)
DEFAULT_TIER = next(t["name"] for t in _DEFINITIONS if t["default"])  # the paper's path
MODEL_LABELS = {"mixtral-8x7b": "Mixtral-8x7B", "mixtral-8x22b": "Mixtral-8x22B", "deepseek-v2-lite": "DeepSeek-V2-Lite",
                "deepseek-v3": "DeepSeek-V3", "olmoe-1b-7b": "OLMoE-1B-7B", "qwen3-30b-a3b": "Qwen3-30B-A3B",
                "qwen1.5-moe-a2.7b": "Qwen1.5-MoE-A2.7B", "gpt-oss-120b": "gpt-oss-120b",
                "switch-base-128": "Switch-Base-128"}
# Variants of one tier (fault batches, servers, policies): shades, never another tier's colour.
SHADES = plt.get_cmap("Reds")
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]

plt.rcParams.update({
    "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "xtick.labelsize": 10,
    "ytick.labelsize": 10, "legend.fontsize": 9.5, "legend.framealpha": 0.9, "axes.grid": True,
    "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False, "lines.linewidth": 1.8,
    "lines.markersize": 5.5, "savefig.bbox": "tight", "pdf.fonttype": 42,
})


def tier_order(tiers):
    return sorted(set(tiers), key=lambda t: TIERS.index(t) if t in TIERS else len(TIERS))


def tier_color(tier):
    return TIER_COLORS.get(tier, "black")


def shade(i, n):
    """The i-th of n shades of the RMAI red, light to dark."""
    return SHADES(0.4 + 0.55 * (i / max(n - 1, 1)))


def model_label(model):
    return MODEL_LABELS.get(model, str(model))


def plain_log(ax, axis="y", dense=False):
    """Log axis with plain numbers (0.1, 1, 10, 1,000) instead of powers of ten; dense also labels
    2x and 5x (for ranges of two or three decades)."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    if dense:
        target.set_major_locator(LogLocator(subs=(1, 2, 5)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.10g}" if v >= 1 else f"{v:.10g}"))
    target.set_minor_formatter(NullFormatter())


def log_limits_on_ticks(ax, values, axis="y", subs=(1, 2, 5)):
    """Sets a log axis's limits to the ticks (1, 2, 5 x 10^k by default) just outside the values, so
    that a tick is labelled at each end."""
    def steps(v):
        decade = 10 ** math.floor(math.log10(v))
        return [s * decade * f for f in (0.1, 1, 10) for s in subs]
    low = max(t for t in steps(min(values)) if t <= min(values) * (1 + 1e-9))
    high = min(t for t in steps(max(values)) if t >= max(values) * (1 - 1e-9))
    (ax.set_ylim if axis == "y" else ax.set_xlim)(low / 1.08, high * 1.08)


def floor_decade(ax, values, axis="y"):
    """Starts a log axis at the power of ten below the smallest value, so that one is labelled."""
    low = 10 ** math.floor(math.log10(min(values)))
    (ax.set_ylim if axis == "y" else ax.set_xlim)(low, None)


def no_results(ax, what):
    ax.text(0.5, 0.5, f"no results\n({what})", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.axis("off")


def save(fig, figdir, name):
    """Writes FIG_DIR/name.png (150 dpi) and name.pdf."""
    figdir = Path(figdir)
    figdir.mkdir(parents=True, exist_ok=True)
    fig.savefig(figdir / f"{name}.png", dpi=150)
    fig.savefig(figdir / f"{name}.pdf")
    plt.close(fig)
    print(f"wrote {figdir / name}.png and .pdf", file=sys.stderr)
