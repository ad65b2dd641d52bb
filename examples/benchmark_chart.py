"""Chart of the peer benchmark: milliseconds per epoch, per workload and library, log scale.

    python examples/benchmark_chart.py [--json benchmarks/results/peers.json] [--out DIR]

Reads the raw results that ``benchmarks/peers.py`` writes (``peers.json``: the machine, the
dtype, the number of timed epochs, and one record per workload and library with its epoch times
in ``times_s``; a library that failed has an ``error`` instead) and draws one group of bars per
workload, one bar per library, at the median epoch time, on a log axis (the workloads span three
orders of magnitude), with the min–max of the timed epochs as a whisker and the value on top.
Nothing is measured here: to measure, run ``python benchmarks/peers.py``.

Writes ``benchmark_chart.png`` to ``--out`` (default ``examples/output/``). There is nothing to
shrink in quick mode (``FASTBP_EXAMPLE_QUICK=1``): the chart is drawn the same way.
"""

import argparse
import json
import os
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_JSON = os.path.join(ROOT, "benchmarks", "results", "peers.json")
DEFAULT_OUT = os.path.join(HERE, "output")

# Display names and colours (those of benchmarks/peers.py's own chart); unknown libraries are
# shown under their own name in a default colour.
NAMES = {"fastbp": "fastbp", "sklearn": "scikit-learn", "torch": "PyTorch", "jax": "JAX"}
COLORS = {"fastbp": "#d62728", "sklearn": "#1f77b4", "torch": "#ff7f0e", "jax": "#2ca02c"}


def workload_labels(names):
    """``S: 50,000x64, (128, 128), batch 128`` from benchmarks/workloads.py when it is importable."""
    sys.path.insert(0, ROOT)
    try:
        from benchmarks.workloads import WORKLOADS
    except Exception:  # the chart does not need it
        WORKLOADS = {}
    finally:
        sys.path.remove(ROOT)
    labels = {}
    for name in names:
        w = WORKLOADS.get(name)
        labels[name] = name if w is None else f"{name}: {w.n:,}×{w.d}\n{w.hidden}, batch {w.batch}"
    return labels


def load(path):
    with open(path) as f:
        data = json.load(f)
    rows = {}  # (workload, library) -> (median, min, max) in ms
    versions = {}
    for r in data["results"]:
        if "error" in r or not r.get("times_s"):
            print(f"skipped {r.get('library')} on {r.get('workload')}: {r.get('error', 'no times')}")
            continue
        ms = [t * 1e3 for t in r["times_s"]]
        rows[r["workload"], r["library"]] = (statistics.median(ms), min(ms), max(ms))
        versions.setdefault(r["library"], (r.get("info") or {}).get("version"))
    return data, rows, versions


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=DEFAULT_JSON, help="peers.json written by benchmarks/peers.py")
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for the PNG (created if missing)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    data, rows, versions = load(args.json)
    if not rows:
        sys.exit(f"{args.json}: no results to chart")
    workloads = list(dict.fromkeys(w for w, _ in rows))
    libraries = [lib for lib in NAMES if lib in versions] + [lib for lib in versions if lib not in NAMES]
    labels = workload_labels(workloads)

    width = 0.8 / len(libraries)
    x = np.arange(len(workloads))
    fig, ax = plt.subplots(figsize=(2.2 + 2.3 * len(workloads), 4.8))
    for i, lib in enumerate(libraries):
        pos = [x[j] + (i - (len(libraries) - 1) / 2) * width for j, w in enumerate(workloads) if (w, lib) in rows]
        med, lo, hi = zip(*[rows[w, lib] for w in workloads if (w, lib) in rows])
        name = NAMES.get(lib, lib) + (f" {versions[lib]}" if versions[lib] else "")
        ax.bar(pos, med, width, color=COLORS.get(lib, "0.5"), label=name,
               yerr=[np.subtract(med, lo), np.subtract(hi, med)], capsize=2, error_kw={"lw": 0.8})
        for p, m, top in zip(pos, med, hi):  # the value above the whisker
            ax.annotate(f"{m:.0f}" if m >= 10 else f"{m:.1f}", (p, top), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7)
        for w in workloads:
            if (w, lib) in rows:
                print(f"{w}  {name:24s} {rows[w, lib][0]:9.1f} ms/epoch (median)")
    ax.set_yscale("log")
    ax.set_xticks(x, [labels[w] for w in workloads], fontsize=8)
    ax.set_ylabel("ms per epoch (median; whisker: min–max)")
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    lowest = min(lo for _, lo, _ in rows.values())
    ax.set_ylim(bottom=lowest / 2, top=ax.get_ylim()[1] * 2)  # room for the labels and the legend
    machine = data.get("machine", {})
    ax.set_title(
        f"one training epoch, {data.get('dtype', '?')}, Adam; {machine.get('cpu', '?')}, "
        f"{machine.get('usable_cores', machine.get('cores', '?'))} cores; median of {data.get('repeats', '?')} epochs",
        fontsize=9,
    )
    fig.tight_layout()
    path = os.path.join(args.out, "benchmark_chart.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
