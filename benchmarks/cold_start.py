"""A new user's first fit: import + ``MLPClassifier(random_state=0).fit`` on digits, each in a new process.

Rows (medians and ranges over ``--repeats`` runs; every run is a new ``python`` process, timed
from outside with ``time.perf_counter`` around ``subprocess.run``, its import and fit also timed
inside it):

* ``import fastbp``: the import alone;
* fastbp, no cache: an empty ``NUMBA_CACHE_DIR`` (every kernel compiles, as after a source install);
* fastbp, after ``python -m fastbp warmup``: the cache built ahead of time by the warmup command
  (what a container image or CI job that runs it gets);
* fastbp, prebuilt kernels: the kernels shipped inside the installed package (a wheel built from
  the repository), with an empty user cache; shown only when the installed fastbp has them;
* fastbp, warm cache: a second process on the cache the no-cache run wrote;
* scikit-learn: its import and the same fit;
* PyTorch (when installed): the same network (64 features, 100 relu units, 10 softmax outputs),
  Adam with scikit-learn's defaults, mini-batches of 200, for as many epochs as fastbp's fit ran.

Run from the repository root: ``python benchmarks/cold_start.py [--repeats 3]``; prints a
markdown table. Nothing is compiled when this module is imported (asv imports the folder).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

_FIT = r"""
import json, time, warnings
t0 = time.perf_counter()
{imports}
t1 = time.perf_counter()
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
warnings.simplefilter("ignore")
{fit}
t2 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "fit": t2 - t1, "epochs": int(epochs)}}))
"""

_LIBRARIES = {
    "fastbp": (
        "import fastbp",
        "model = fastbp.MLPClassifier(random_state=0).fit(X, y); epochs = model.n_iter_",
    ),
    "sklearn": (
        "from sklearn.neural_network import MLPClassifier",
        "model = MLPClassifier(random_state=0).fit(X, y); epochs = model.n_iter_",
    ),
    "torch": (
        "import torch",
        """
torch.manual_seed(0)
Xt = torch.tensor(X, dtype=torch.float64); yt = torch.tensor(y)
net = torch.nn.Sequential(torch.nn.Linear(64, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10)).double()
opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4)
epochs = {epochs}
for epoch in range(epochs):
    order = torch.randperm(len(Xt))
    for start in range(0, len(Xt), 200):
        rows = order[start:start + 200]
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(Xt[rows]), yt[rows])
        loss.backward()
        opt.step()
""",
    ),
}


def _run(code, env=None):
    """(wall seconds of the whole process, its own JSON report)."""
    tic = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - tic
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark process failed:\n{proc.stderr[-3000:]}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def _fit_code(library, epochs=0):
    imports, fit = _LIBRARIES[library]
    return _FIT.format(imports=imports, fit=fit.replace("{epochs}", str(epochs)))


def _env(cache_dir, prebuilt=False):
    # the rows other than the wheel's do not load the shipped kernels (FASTBP_PREBUILT=0)
    return {**os.environ, "NUMBA_CACHE_DIR": cache_dir, "FASTBP_PREBUILT": "1" if prebuilt else "0"}


def _has_prebuilt():
    code = "import json, fastbp.kernels.cache as c; print(json.dumps(bool(c.prebuilt_targets())))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env("", prebuilt=True))
    return proc.returncode == 0 and json.loads(proc.stdout.strip().splitlines()[-1])


def _cpu():
    model, flags = "?", set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name") and model == "?":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
    return f"{model}, {os.cpu_count()} logical CPUs, {vector}"


def measure(repeats, with_torch=True):
    """{row name: list of (wall, import, fit) per repeat}, and the fit's epochs."""
    rows = {}

    def add(name, wall, report):
        rows.setdefault(name, []).append((wall, report["import"], report["fit"]))

    epochs = 0
    has_prebuilt = _has_prebuilt()
    for _ in range(repeats):
        tic = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import fastbp"], check=True)
        rows.setdefault("import fastbp", []).append((time.perf_counter() - tic, None, None))
        cold = tempfile.mkdtemp(prefix="fastbp-cold-")
        warmed = tempfile.mkdtemp(prefix="fastbp-warmup-")
        empty = tempfile.mkdtemp(prefix="fastbp-empty-")
        try:
            wall, report = _run(_fit_code("fastbp"), _env(cold))
            add("fastbp, no cache (compiles every kernel)", wall, report)
            epochs = report["epochs"]
            wall, report = _run(_fit_code("fastbp"), _env(cold))
            add("fastbp, warm cache (a second process)", wall, report)
            subprocess.run(
                [sys.executable, "-m", "fastbp", "warmup", "--quiet"], env=_env(warmed), check=True,
                capture_output=True,
            )
            wall, report = _run(_fit_code("fastbp"), _env(warmed))
            add("fastbp, after `python -m fastbp warmup`", wall, report)
            if has_prebuilt:
                wall, report = _run(_fit_code("fastbp"), _env(empty, prebuilt=True))
                add("fastbp, prebuilt kernels of the wheel (empty user cache)", wall, report)
        finally:
            for folder in (cold, warmed, empty):
                shutil.rmtree(folder, ignore_errors=True)
        wall, report = _run(_fit_code("sklearn"))
        add("scikit-learn", wall, report)
        if with_torch:
            try:
                wall, report = _run(_fit_code("torch", epochs))
            except RuntimeError as error:
                if "No module named 'torch'" not in str(error):
                    raise
                with_torch = False
            else:
                add(f"PyTorch ({epochs} epochs, as fastbp's fit)", wall, report)
    return rows, epochs


def _cell(values):
    values = [v for v in values if v is not None]
    if not values:
        return ""
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.2f} s"
    return f"{median:.2f} s ({min(values):.2f}-{max(values):.2f})"


def table(rows):
    """The markdown table of :func:`measure`'s rows."""
    lines = [
        "| new process | import + first fit, wall | import | fit |",
        "|---|---:|---:|---:|",
    ]
    for name, runs in rows.items():
        walls, imports, fits = zip(*runs)
        lines.append(f"| {name} | {_cell(walls)} | {_cell(imports)} | {_cell(fits)} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each row (default 3)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    import numba

    import fastbp

    rows, _ = measure(args.repeats, with_torch=not args.no_torch)
    print(
        f"fastbp {fastbp.__version__}, numba {numba.__version__}; {_cpu()}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; medians (ranges) of {args.repeats}"
    )
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
