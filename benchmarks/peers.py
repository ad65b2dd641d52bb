#!/usr/bin/env python
"""Peer runner: fastbp against scikit-learn, PyTorch and JAX on the workloads of BENCHMARKS.md.

    python benchmarks/peers.py [--workloads S,M,L,O] [--libs fastbp,sklearn,torch,jax]
                               [--repeats 5] [--dtype float32] [--out benchmarks/results]

For numbers to report, unset the OpenBLAS overrides for that one command (this script never
changes them itself, it only says whether they are set)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/peers.py

Everything is measured in ONE run, because these machines are shared and noisy and only ratios
measured together are stable: the float32 (or float64) GEMM peak (2048x2048, best of a few,
through NumPy's matmul and SciPy's BLAS gemm, the larger counts) in this process, then, for
each workload and each importable library, a worker subprocess (same interpreter, same
environment) that makes the data, builds the model, runs one warm-up epoch (compilation, JIT,
caches) and then ``--repeats`` timed epochs; the median is reported. One process per (workload, library) keeps the libraries' thread pools (OpenMP, XLA,
Numba, OpenBLAS) from competing with one another. Libraries that are not importable are skipped
with a note.

The loops (BENCHMARKS.md): Adam lr 1e-3, shuffling on, ReLU hidden layers, softmax /
cross-entropy output.

* fastbp / scikit-learn: ``MLPClassifier(hidden, solver="adam", batch_size=batch, tol=0,
  n_iter_no_change=inf)``; one epoch = one ``partial_fit(X, y)`` call (one shuffled pass, no
  re-initialisation, no ConvergenceWarning). Both keep scikit-learn's default L2 ``alpha=1e-4``.
  "fastbp (hogwild=True)" is the same estimator with the opt-in lock-free parallel online SGD,
  timed on the workloads of batch size 1 (O) only; its results are not deterministic.
* PyTorch (CPU, eager): ``nn.Sequential`` of ``Linear``/``ReLU``, ``torch.optim.Adam``,
  ``nn.CrossEntropyLoss``, batches by ``torch.randperm`` indexing.
* JAX: parameters as a pytree of ``(W, b)``, ``jax.grad`` of a log-softmax loss, Adam written
  with ``jax.tree_util.tree_map``, the whole epoch ``jax.jit``-compiled over ``lax.scan`` of the
  full batches (plus one step for the remainder batch, so every sample is seen once).

FLOPs per epoch = n * (6 P - 2 d h1), P the number of weights, h1 the first hidden width.
The "train loss" column is the mean cross-entropy on the whole training set after the timed
epochs, computed the same way for all (no L2 term): a sanity check that every loop trains.

Output: a markdown report on stdout and in ``<out>/peers.md``, the raw numbers in
``<out>/peers.json`` and a bar chart in ``<out>/peers.png`` (needs matplotlib).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np

try:  # imported by asv as benchmarks.peers
    from .workloads import LEARNING_RATE, WORKLOADS, estimator_params, make_data
except ImportError:  # run as a script: benchmarks/ is sys.path[0]
    from workloads import LEARNING_RATE, WORKLOADS, estimator_params, make_data

LIBRARIES = ["fastbp", "fastbp_hogwild", "sklearn", "torch", "jax"]
MODULE = {"fastbp": "fastbp", "fastbp_hogwild": "fastbp", "sklearn": "sklearn", "torch": "torch", "jax": "jax"}
LABEL = {
    "fastbp": "fastbp",
    "fastbp_hogwild": "fastbp (hogwild=True)",
    "sklearn": "scikit-learn",
    "torch": "PyTorch (CPU eager)",
    "jax": "JAX (jit, lax.scan)",
}
# fastbp's goals against JAX, BENCHMARKS.md: (max ratio fastbp/JAX, min share of GEMM peak)
GOALS = {"S": (0.5, None), "M": (0.7, None), "L": (0.95, 0.85), "O": (0.33, None)}
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
MARK = "@@PEERS_RESULT@@ "
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


# --------------------------------------------------------------------------------------------
# Workers: one library, one workload, in a process of its own.
# Each _setup_* returns (epoch, train_loss, info): epoch() trains one epoch and returns when it
# is done; train_loss() is the mean cross-entropy on (X, y); info describes the library.


def _setup_mlp(library, w, X, y):
    if library in ("fastbp", "fastbp_hogwild"):
        import fastbp

        # the opt-in Hogwild! variant (lock-free online SGD on n_jobs threads, not
        # deterministic) is timed on the one-sample-per-step workload only
        est = fastbp.MLPClassifier(**estimator_params(w), hogwild=library == "fastbp_hogwild")
        version = fastbp.__version__ if hasattr(fastbp, "__version__") else "?"
    else:
        import sklearn
        from sklearn.neural_network import MLPClassifier

        est = MLPClassifier(**estimator_params(w))
        version = sklearn.__version__
    classes = np.arange(w.classes)
    state = {"first": True}

    def epoch():
        if state["first"]:
            est.partial_fit(X, y, classes=classes)
            state["first"] = False
        else:
            est.partial_fit(X, y)

    def train_loss():
        from sklearn.metrics import log_loss

        return log_loss(y, est.predict_proba(X), labels=classes)

    info = {"version": version}
    if library in ("fastbp", "fastbp_hogwild"):
        info["n_jobs"] = est.get_params().get("n_jobs")
        try:
            import numba

            info["numba"] = numba.__version__
            info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
            info["numba_threading_layer"] = numba.config.THREADING_LAYER
        except Exception:  # pragma: no cover
            pass
    return epoch, train_loss, info


def _setup_torch(w, X, y):
    import torch
    from torch import nn

    torch.manual_seed(0)
    dtype = torch.float64 if X.dtype == np.float64 else torch.float32
    sizes = w.layer_sizes
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    model = nn.Sequential(*layers).to(dtype)
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y.astype(np.int64))
    n, bs = w.n, w.batch

    def epoch():
        perm = torch.randperm(n)
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()

    def train_loss():
        with torch.no_grad():
            return float(loss_fn(model(Xt), yt))

    info = {"version": torch.__version__, "threads": torch.get_num_threads()}
    try:
        info["mkl"] = bool(torch.backends.mkl.is_available())
        info["parallel_info"] = [
            line.strip()
            for line in torch.__config__.parallel_info().splitlines()
            if "MKL" in line or "OpenMP" in line or "backend" in line
        ]
    except Exception:  # pragma: no cover
        pass
    return epoch, train_loss, info


def _setup_jax(w, X, y):
    import jax

    if X.dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax.tree_util import tree_map

    dtype = jnp.float64 if X.dtype == np.float64 else jnp.float32
    sizes = w.layer_sizes
    key = jax.random.PRNGKey(0)
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        key, sub = jax.random.split(key)
        bound = math.sqrt(6.0 / (a + b))  # Glorot uniform, as scikit-learn
        params.append(
            (jax.random.uniform(sub, (a, b), dtype, -bound, bound), jnp.zeros((b,), dtype))
        )

    def loss_fn(params, xb, yb):
        h = xb
        for W, b in params[:-1]:
            h = jax.nn.relu(h @ W + b)
        W, b = params[-1]
        logp = jax.nn.log_softmax(h @ W + b)
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    grad_fn = jax.grad(loss_fn)
    b1, b2, eps = 0.9, 0.999, 1e-8

    def adam(params, m, v, t, g):
        t = t + 1
        m = tree_map(lambda m_, g_: b1 * m_ + (1 - b1) * g_, m, g)
        v = tree_map(lambda v_, g_: b2 * v_ + (1 - b2) * g_ * g_, v, g)
        lr_t = LEARNING_RATE * jnp.sqrt(1 - b2**t) / (1 - b1**t)
        params = tree_map(lambda p, m_, v_: p - lr_t * m_ / (jnp.sqrt(v_) + eps), params, m, v)
        return params, m, v, t

    n, bs = w.n, w.batch
    full, rem = divmod(n, bs)

    @jax.jit
    def run_epoch(state, Xj, yj):
        params, m, v, t, key = state
        key, sub = jax.random.split(key)
        perm = jax.random.permutation(sub, n)

        def body(carry, idx):
            params, m, v, t = carry
            g = grad_fn(params, Xj[idx], yj[idx])
            return adam(params, m, v, t, g), None

        carry = (params, m, v, t)
        carry, _ = jax.lax.scan(body, carry, perm[: full * bs].reshape(full, bs))
        if rem:
            carry, _ = body(carry, perm[full * bs :])
        return (*carry, key)

    zeros = tree_map(jnp.zeros_like, params)
    Xj = jnp.asarray(X)
    yj = jnp.asarray(y.astype(np.int32))
    box = {"state": (params, zeros, zeros, jnp.zeros((), dtype), jax.random.PRNGKey(1))}

    def epoch():
        box["state"] = run_epoch(box["state"], Xj, yj)
        jax.block_until_ready(box["state"])

    loss_jit = jax.jit(loss_fn)

    def train_loss():
        return float(loss_jit(box["state"][0], Xj, yj))

    info = {
        "version": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
    }
    return epoch, train_loss, info


def _blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    out = []
    for entry in threadpool_info():
        out.append(
            {
                "user_api": entry.get("user_api"),
                "internal_api": entry.get("internal_api"),
                "version": entry.get("version"),
                "architecture": entry.get("architecture"),
                "threading_layer": entry.get("threading_layer"),
                "num_threads": entry.get("num_threads"),
                "library": os.path.basename(entry.get("filepath") or ""),
                "package": os.path.basename(os.path.dirname(entry.get("filepath") or "")),
                "prefix": entry.get("prefix"),
            }
        )
    return out


def worker(library, workload, dtype, repeats):
    warnings.filterwarnings("ignore")  # ConvergenceWarning & co.
    w = WORKLOADS[workload]
    X, y = make_data(w, dtype)
    t0 = time.perf_counter()
    if library in ("fastbp", "fastbp_hogwild", "sklearn"):
        epoch, train_loss, info = _setup_mlp(library, w, X, y)
    elif library == "torch":
        epoch, train_loss, info = _setup_torch(w, X, y)
    elif library == "jax":
        epoch, train_loss, info = _setup_jax(w, X, y)
    else:
        raise ValueError(library)
    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    epoch()  # warm-up: compilation / JIT / caches / first-touch of buffers
    warmup_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t0)
    result = {
        "library": library,
        "workload": workload,
        "dtype": dtype,
        "times_s": times,
        "warmup_s": warmup_s,
        "setup_s": setup_s,
        "train_loss": float(train_loss()),
        "info": info,
        "blas": _blas_info(),
    }
    print(MARK + json.dumps(result), flush=True)


# --------------------------------------------------------------------------------------------
# The parent: peak, workers, report.


def gemm_peak(dtype="float32", size=2048, repeats=5, via="numpy"):
    """Best GFLOP/s of a size x size GEMM in this process, through NumPy's or SciPy's BLAS."""
    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((size, size)).astype(dtype))
    b = np.asfortranarray(rng.standard_normal((size, size)).astype(dtype))
    c = np.zeros_like(a, order="F")
    if via == "numpy":
        def product():
            np.matmul(a, b, out=c)
    else:
        from scipy.linalg import blas

        gemm = blas.sgemm if np.dtype(dtype) == np.float32 else blas.dgemm

        def product():
            gemm(1.0, a, b, beta=0.0, c=c, overwrite_c=True)

    product()  # warm-up: threads, pages
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        product()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size**3 / best / 1e9


def machine_info():
    model, flags = None, ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model is None:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1]
    except OSError:
        pass
    model = model or platform.processor() or platform.machine()
    simd = [s for s in ("avx512f", "avx2", "fma") if f" {s} " in f" {flags} "]
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cores": affinity,
        "simd": simd,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _loadavg():
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def _busy_cores(interval=0.5):
    """Cores kept busy by other processes, from /proc/stat over ``interval`` s (this one sleeps)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
        return sum(v[:8]), idle

    try:
        t0, i0 = snap()
        time.sleep(interval)
        t1, i1 = snap()
    except (OSError, ValueError, IndexError):
        return None
    if t1 == t0:
        return None
    return round((1.0 - (i1 - i0) / (t1 - t0)) * (os.cpu_count() or 1), 2)


def _cpu_busy_seconds():
    """CPU seconds all processes have spent busy (not idle/iowait), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _children_cpu_seconds():
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_worker(library, workload, dtype, repeats, timeout):
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        library,
        "--workloads",
        workload,
        "--dtype",
        dtype,
        "--repeats",
        str(repeats),
    ]
    busy0, own0, t0 = _cpu_busy_seconds(), _children_cpu_seconds(), time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"library": library, "workload": workload, "error": f"timed out after {timeout} s"}
    busy1, own1, t1 = _cpu_busy_seconds(), _children_cpu_seconds(), time.perf_counter()
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            result = json.loads(line[len(MARK) :])
            # Cores kept busy by OTHER processes while this worker ran (all CPU time of the
            # machine less the worker's own): a contamination gauge for the row.
            if busy0 is not None and busy1 is not None and t1 > t0:
                result["others_busy_cores"] = max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0)
            return result
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
    return {
        "library": library,
        "workload": workload,
        "error": f"exit code {proc.returncode}: " + " | ".join(tail),
    }


def _fmt(x, spec):
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def summarise(results, peak):
    rows = []
    for r in results:
        if "error" in r:
            continue
        w = WORKLOADS[r["workload"]]
        med = statistics.median(r["times_s"])
        gflops = w.flops_per_epoch / med / 1e9
        rows.append(
            {
                "workload": r["workload"],
                "library": r["library"],
                "ms": med * 1e3,
                "ms_min": min(r["times_s"]) * 1e3,
                "ms_max": max(r["times_s"]) * 1e3,
                "samples_s": w.n / med,
                "gflops": gflops,
                "peak_share": gflops / peak if peak else None,
                "warmup_s": r["warmup_s"],
                "train_loss": r["train_loss"],
                "others": r.get("others_busy_cores"),
            }
        )
    for wl in {row["workload"] for row in rows}:
        fastest = min(row["ms"] for row in rows if row["workload"] == wl)
        for row in rows:
            if row["workload"] == wl:
                row["x_fastest"] = row["ms"] / fastest
    return rows


def blas_lines(results, parent_blas):
    seen = {}
    for who, entries in [("GEMM peak", parent_blas)] + [
        (f"{LABEL[r['library']]} / {r['workload']}", r.get("blas", []))
        for r in results
        if "error" not in r
    ]:
        for e in entries:
            if e.get("user_api") != "blas":
                continue
            key = (e["library"], e.get("package"), e["internal_api"], e["version"], e["architecture"])
            seen.setdefault(key, {"users": [], "threads": e.get("num_threads"), "entry": e})
            short = who.split(" / ")[0]
            if short not in seen[key]["users"]:
                seen[key]["users"].append(short)
    lines = [
        "| BLAS library | in | internal_api | version | architecture (kernel) | threads | loaded by |",
        "|---|---|---|---|---|---|---|",
    ]
    for (lib, pkg, api, ver, arch), v in seen.items():
        lines.append(
            f"| {lib} | {pkg or '–'} | {api} | {ver} | {arch or '–'} | {v['threads']} |"
            f" {', '.join(v['users'])} |"
        )
    lines += [
        "",
        "Which BLAS does the work: fastbp's GEMMs go through Numba's `numba_xxgemm`, i.e. SciPy's "
        "BLAS (scipy.libs); scikit-learn's through NumPy's (numpy.libs); the GEMM peak above is "
        "NumPy's (and SciPy's where measured). PyTorch's MKL is linked in statically and JAX runs "
        "XLA's own kernels: threadpoolctl sees neither, the rows only list what each worker loaded.",
    ]
    return lines


def report(args, machine, peaks, results, rows, parent_blas, notes):
    peak = max(peaks.values())
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    env = ", ".join(
        f"`{k}={os.environ[k]}`" if k in os.environ else f"`{k}` unset" for k in OPENBLAS_VARS
    )
    md = [
        f"# fastbp peer benchmark ({args.dtype})",
        "",
        f"- date: {now}",
        f"- machine: {machine['cpu']}, {machine['cores']} cores"
        + (f" ({machine['usable_cores']} usable)" if machine["usable_cores"] else "")
        + (f", {'/'.join(machine['simd'])}" if machine["simd"] else "")
        + f"; {machine['platform']}; Python {machine['python']}"
        + f"; cores busy with other work before / after: {machine.get('busy_start')} / "
        f"{machine.get('busy_end')} (1-min load average {machine.get('load_start')} / "
        f"{machine.get('load_end')})",
        f"- OpenBLAS overrides: {env}"
        + (
            "  (set: OpenBLAS is forced onto the kernels they name; for reported numbers run "
            "with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`)"
            if any(k in os.environ for k in OPENBLAS_VARS)
            else ""
        ),
        f"- {args.dtype} GEMM peak (2048×2048, best of {args.gemm_repeats}): **{peak:.0f} GFLOP/s**"
        f" ({', '.join(f'{k} {v:.0f}' for k, v in peaks.items())}: NumPy's matmul and SciPy's "
        f"BLAS {'s' if args.dtype == 'float32' else 'd'}gemm); the \"% of GEMM peak\" column "
        "uses the larger",
        f"- one epoch after a warm-up epoch, median of {args.repeats}; Adam lr {LEARNING_RATE:g},"
        " shuffle on; each library in its own worker process, all in this one run",
    ]
    versions = []
    for lib in LIBRARIES:
        for r in results:
            if r["library"] == lib and "error" not in r:
                extra = ""
                info = r["info"]
                if lib == "fastbp" and "numba" in info:
                    extra = (
                        f" (numba {info['numba']}, n_jobs={info.get('n_jobs')}, "
                        f"{info.get('numba_threads')} Numba threads)"
                    )
                elif lib == "torch":
                    extra = f" ({info.get('threads')} threads, MKL: {info.get('mkl')})"
                elif lib == "jax":
                    extra = f" (backend {info.get('backend')})"
                versions.append(f"{LABEL[lib]} {info.get('version')}{extra}")
                break
    if versions:
        md.append("- versions: " + "; ".join(versions))
    md += [
        "",
        "| workload | library | ms/epoch (median) | min–max ms | samples/s | GFLOP/s |"
        " % of GEMM peak | × fastest | warm-up epoch s | train loss | other load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = {lib: i for i, lib in enumerate(LIBRARIES)}
    wl_order = {wl: i for i, wl in enumerate(WORKLOADS)}
    for row in sorted(rows, key=lambda r: (wl_order[r["workload"]], order[r["library"]])):
        md.append(
            f"| {row['workload']} | {LABEL[row['library']]} | {row['ms']:.1f} | "
            f"{row['ms_min']:.1f}–{row['ms_max']:.1f} | {row['samples_s']:,.0f} | "
            f"{row['gflops']:.1f} | {_fmt(100 * row['peak_share'], '.1f')}% | "
            f"{row['x_fastest']:.2f} | {row['warmup_s']:.2f} | {row['train_loss']:.4f} | "
            f"{_fmt(row['others'], '.2f')} |"
        )
    md += [
        "",
        "*other load*: cores kept busy by other processes while that row's worker ran "
        "(machine CPU time less the worker's own, over its wall time); above ~0.25 the row is "
        "contaminated by other work, rerun it.",
    ]
    # fastbp's goals (BENCHMARKS.md) and its ratio to scikit-learn.
    goal_lines = []
    for wl in WORKLOADS:
        by = {r["library"]: r for r in rows if r["workload"] == wl}
        for lib in ("fastbp", "fastbp_hogwild"):
            if lib not in by:
                continue
            fb = by[lib]
            vs_jax = fb["ms"] / by["jax"]["ms"] if "jax" in by else None
            vs_sk = by["sklearn"]["ms"] / fb["ms"] if "sklearn" in by else None
            max_ratio, min_peak = GOALS[wl]
            goal = f"≤ {max_ratio} × JAX" + (f", ≥ {min_peak:.0%} of peak" if min_peak else "")
            if vs_jax is None:
                met = "no JAX in this run"
            else:
                ok = vs_jax <= max_ratio and (min_peak is None or fb["peak_share"] >= min_peak)
                met = "yes" if ok else "**no**"
            name = wl if lib == "fastbp" else f"{wl}, hogwild=True"
            goal_lines.append(
                f"| {name} | {_fmt(vs_jax, '.2f')} | {goal} | {met} | "
                f"{_fmt(100 * fb['peak_share'], '.1f')}% | {_fmt(vs_sk, '.2f')}× |"
            )
    if goal_lines:
        md += [
            "",
            "| workload | fastbp / JAX | goal | met | fastbp % of peak | speed-up vs scikit-learn |",
            "|---|---:|---|---|---:|---:|",
            *goal_lines,
        ]
    md += ["", "BLAS in use (threadpoolctl.threadpool_info()):", ""]
    md += blas_lines(results, parent_blas)
    if notes:
        md += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(md) + "\n"


def chart(rows, path, title):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no chart (pip install matplotlib)"
    wls = [wl for wl in WORKLOADS if any(r["workload"] == wl for r in rows)]
    if not wls:
        return "nothing to chart"
    colors = {
        "fastbp": "#d62728", "fastbp_hogwild": "#9467bd", "sklearn": "#1f77b4", "torch": "#ff7f0e", "jax": "#2ca02c",
    }
    fig, axes = plt.subplots(1, len(wls), figsize=(max(6.0, 3.6 * len(wls)), 3.8), squeeze=False)
    for ax, wl in zip(axes[0], wls):
        sel = [r for r in rows if r["workload"] == wl]
        sel.sort(key=lambda r: LIBRARIES.index(r["library"]))
        names = ["fastbp\nhogwild" if r["library"] == "fastbp_hogwild" else LABEL[r["library"]].split(" (")[0]
                 for r in sel]
        ms = [r["ms"] for r in sel]
        bars = ax.bar(names, ms, color=[colors[r["library"]] for r in sel])
        for bar, r in zip(bars, sel):
            ax.annotate(
                f"{r['ms']:.0f}" if r["ms"] >= 10 else f"{r['ms']:.1f}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        w = WORKLOADS[wl]
        ax.set_title(f"{wl}: n={w.n:,} d={w.d} h={w.hidden} bs={w.batch}", fontsize=8)
        ax.set_ylabel("ms / epoch (median)")
        ax.set_ylim(0, max(ms) * 1.15)
        ax.tick_params(axis="x", labelsize=8, rotation=20)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma list, e.g. S,M,L,O")
    p.add_argument("--libs", default=",".join(LIBRARIES), help="comma list of " + ",".join(LIBRARIES))
    p.add_argument("--repeats", type=int, default=5, help="timed epochs after the warm-up")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--out", default=DEFAULT_OUT, help="folder for peers.md/.json/.png")
    p.add_argument("--gemm-repeats", type=int, default=5)
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per worker")
    p.add_argument("--worker", choices=LIBRARIES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    workloads = [s.strip().upper() for s in args.workloads.split(",") if s.strip()]
    unknown = [wl for wl in workloads if wl not in WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
    if args.repeats < 1:
        p.error("--repeats must be >= 1")

    if args.worker:
        worker(args.worker, workloads[0], args.dtype, args.repeats)
        return 0

    libs = [s.strip() for s in args.libs.split(",") if s.strip()]
    bad = [lib for lib in libs if lib not in LIBRARIES]
    if bad:
        p.error(f"unknown librar(y/ies) {bad}; choose from {LIBRARIES}")

    notes = []
    for k in OPENBLAS_VARS:
        print(f"{k}: {'= ' + os.environ[k] if k in os.environ else 'unset'}")
    if any(k in os.environ for k in OPENBLAS_VARS):
        notes.append(
            "OpenBLAS overrides are set in this environment (see above): OpenBLAS ran the "
            "kernels they force. Run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` "
            "for numbers to report."
        )
    available = []
    for lib in libs:
        if importlib.util.find_spec(MODULE[lib]) is None:
            msg = f"{LABEL[lib]} skipped: `{MODULE[lib]}` is not importable in {sys.executable}"
            print(msg)
            notes.append(msg)
        else:
            available.append(lib)

    machine = machine_info()
    machine["busy_start"] = _busy_cores()
    machine["load_start"] = _loadavg()
    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores; busy with other work: "
        f"{machine['busy_start']} cores; load average {machine['load_start']}"
    )
    peaks = {"numpy": gemm_peak(args.dtype, repeats=args.gemm_repeats)}
    if importlib.util.find_spec("scipy") is not None:
        peaks["scipy"] = gemm_peak(args.dtype, repeats=args.gemm_repeats, via="scipy")
    peak = max(peaks.values())
    parent_blas = _blas_info()
    print(f"{args.dtype} GEMM peak: " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()) + " GFLOP/s")

    results = []
    for wl in workloads:
        for lib in available:
            if lib == "fastbp_hogwild" and WORKLOADS[wl].batch != 1:
                continue  # Hogwild! is online SGD (batch_size=1)
            print(f"  {wl} / {LABEL[lib]} ...", end=" ", flush=True)
            t0 = time.perf_counter()
            r = run_worker(lib, wl, args.dtype, args.repeats, args.timeout)
            results.append(r)
            if "error" in r:
                print(f"FAILED ({r['error']})")
                notes.append(f"{wl} / {LABEL[lib]} failed: {r['error']}")
            else:
                med = statistics.median(r["times_s"]) * 1e3
                others = r.get("others_busy_cores")
                print(
                    f"{med:.1f} ms/epoch  ({time.perf_counter() - t0:.0f} s"
                    + (f"; other load {others:.2f} cores)" if others is not None else ")")
                )

    machine["busy_end"] = _busy_cores()
    machine["load_end"] = _loadavg()
    busy = [b for b in (machine["busy_start"], machine["busy_end"]) if b is not None]
    busy += [r["others_busy_cores"] for r in results if r.get("others_busy_cores") is not None]
    if busy and max(busy) > 0.25:
        notes.append(
            f"other processes kept up to {max(busy):.2f} cores busy (see the *other load* "
            "column and the machine line): multi-threaded loops (PyTorch's "
            "OpenMP above all, also OpenBLAS and Numba) slow down badly when a core is taken. "
            "Rerun on a quiet machine for numbers to report."
        )
    rows = summarise(results, peak)
    md = report(args, machine, peaks, results, rows, parent_blas, notes)
    os.makedirs(args.out, exist_ok=True)
    md_path = os.path.join(args.out, "peers.md")
    with open(md_path, "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "peers.json"), "w") as f:
        json.dump(
            {"machine": machine, "gemm_peak_gflops": peaks, "dtype": args.dtype,
             "repeats": args.repeats, "results": results, "parent_blas": parent_blas,
             "openblas_env": {k: os.environ.get(k) for k in OPENBLAS_VARS}},
            f,
            indent=1,
        )
    arch = sorted({e["architecture"] for e in parent_blas if e.get("architecture")})
    msg = chart(
        rows,
        os.path.join(args.out, "peers.png"),
        f"fastbp vs peers, one epoch, {args.dtype}, {datetime.date.today()}\n"
        f"{machine['cpu']}, {machine['cores']} cores, GEMM peak {peak:.0f} GFLOP/s "
        f"(OpenBLAS {','.join(arch) or '?'})",
    )
    print()
    print(md)
    print(f"wrote {md_path}" + ("" if msg else " and peers.png") + ", peers.json")
    if msg:
        print(msg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
