"""``python -m fastbp warmup``: build this machine's kernels into the on-disk cache.

A kernel is compiled the first time a fit or a prediction needs it and then
loaded from Numba's on-disk cache (keyed on fastbp's sources, the versions and
this CPU: see ``kernels.cache``). The warmup runs tiny fits that take every
path a group of uses takes, so that container images, CI jobs and fresh virtual
environments pay the compilation once, ahead of time, instead of in a user's
first fit. The kernels' signatures depend on the dtype and the entry point, not
on the data's size, layout or the network's shape, so tiny fits build exactly
what real ones load.

Groups (``--paths``):

* ``default``: what ``MLPClassifier()`` / ``MLPRegressor()`` with their default
  parameters use to fit and predict, on any number of cores (the threaded and
  the one-thread epoch);
* ``all``: also online SGD (``batch_size=1``, Hogwild!), full-batch L-BFGS,
  Levenberg-Marquardt, Rprop, Quickprop, early stopping, sparse input and the
  functional API.

With ``--jobs`` above 1 the dtypes are built in parallel processes (saving an
entry takes a lock on its index file), then one pass in this process checks that
every case loads.

``--prebuild DIR`` builds the kernels a wheel ships instead (``setup.py`` runs
it): for each baseline of ``--targets`` (x86-64-v3 and x86-64-v4; LLVM builds
for a CPU it does not run on) and each dtype, a process with ``NUMBA_CPU_NAME``
set to the baseline (only in that process: it changes the code of every Numba
library there) compiles the default paths into a fresh cache, whose entries are
then copied to ``DIR/<baseline>/`` with a ``manifest.json`` naming the sources'
digest and the versions (see ``kernels.cache``).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import tempfile
import sys
import time
import warnings

DTYPES = ("float64", "float32")
PATH_GROUPS = ("default", "all")


def _data(dtype, n_classes=3):
    import numpy as np

    rng = np.random.RandomState(0)
    X = rng.uniform(-1.0, 1.0, size=(24, 5)).astype(dtype)
    y = np.arange(24) % n_classes
    target = (X[:, 0] - X[:, 1]).astype(dtype)
    return X, y, target


def _fit_predict(estimator, X, y):
    estimator.fit(X, y)
    estimator.predict(X)
    if hasattr(estimator, "predict_proba"):
        estimator.predict_proba(X)


def _classifier(X, y, target, **params):
    from . import MLPClassifier

    _fit_predict(MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0, **params), X, y)


def _regressor(X, y, target, **params):
    from . import MLPRegressor

    _fit_predict(MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0, **params), X, target)


def _sparse_classifier(X, y, target):
    import scipy.sparse as sp

    _classifier(sp.csr_matrix(X), y, target)


def _functional(X, y, target):
    import numpy as np

    from . import backprop, forward

    rng = np.random.RandomState(0)
    coefs = [rng.standard_normal((X.shape[1], 4)).astype(X.dtype), rng.standard_normal((4, 3)).astype(X.dtype)]
    intercepts = [np.zeros(4, X.dtype), np.zeros(3, X.dtype)]
    Y = np.eye(3, dtype=X.dtype)[y]
    forward(coefs, intercepts, X, activation="relu", out_activation="softmax")
    backprop(coefs, intercepts, X, Y, activation="relu", out_activation="softmax", loss="log_loss")


# (name, group, function(X, y, target)): "default" cases are in "all" too
CASES = (
    ("MLPClassifier() fit, predict", "default", _classifier),
    ("MLPClassifier(n_jobs=1)", "default", lambda X, y, t: _classifier(X, y, t, n_jobs=1)),
    ("MLPRegressor() fit, predict", "default", _regressor),
    ("MLPRegressor(n_jobs=1)", "default", lambda X, y, t: _regressor(X, y, t, n_jobs=1)),
    ("online SGD (batch_size=1)", "all", lambda X, y, t: _classifier(X, y, t, solver="sgd", batch_size=1)),
    ("Hogwild!", "all", lambda X, y, t: _classifier(X, y, t, solver="sgd", batch_size=1, hogwild=True, n_jobs=2)),
    ("L-BFGS", "all", lambda X, y, t: _classifier(X, y, t, solver="lbfgs")),
    ("Levenberg-Marquardt", "all", lambda X, y, t: _regressor(X, y, t, solver="lm")),
    ("Rprop", "all", lambda X, y, t: _classifier(X, y, t, solver="rprop")),
    ("Quickprop", "all", lambda X, y, t: _regressor(X, y, t, solver="quickprop")),
    ("early stopping", "all", lambda X, y, t: _classifier(X, y, t, early_stopping=True, validation_fraction=0.25)),
    ("sparse X", "all", _sparse_classifier),
    ("forward, backprop", "all", _functional),
)


def cases_for(paths):
    """The cases of a path group, in order."""
    if paths not in PATH_GROUPS:
        raise ValueError(f"paths must be one of {PATH_GROUPS}, got {paths!r}")
    return [case for case in CASES if paths == "all" or case[1] == "default"]


class _Progress:
    """One line per case on ``stream``: a bar, the count, what was built and how long it took."""

    def __init__(self, total, stream, width=24):
        self.total, self.stream, self.width, self.done = total, stream, width, 0

    def step(self, label, seconds):
        self.done += 1
        filled = self.width * self.done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"[{bar}] {self.done:>2}/{self.total} {label} ({seconds:.1f} s)\n")
        self.stream.flush()


def _kernel_dispatchers():
    from numba.core.registry import CPUDispatcher

    import importlib

    from .kernels.cache import KERNEL_MODULES

    found = {}
    for name in KERNEL_MODULES:
        module = importlib.import_module(f"{__package__}.kernels.{name}")
        for value in vars(module).values():
            if isinstance(value, CPUDispatcher):
                found.setdefault(id(value), value)  # a kernel imported by another module counts once
    return list(found.values())


def _compiled_and_loaded():
    """(signatures compiled, signatures loaded from the cache) in this process so far."""
    compiled = loaded = 0
    for dispatcher in _kernel_dispatchers():
        compiled += sum(dispatcher.stats.cache_misses.values())
        loaded += sum(dispatcher.stats.cache_hits.values())
    return compiled, loaded


def run_cases(dtypes, paths, stream):
    """Run every case of ``paths`` for each dtype in this process; (compiled, loaded)."""
    cases = cases_for(paths)
    progress = _Progress(len(cases) * len(dtypes), stream)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for dtype in dtypes:
            X, y, target = _data(dtype)
            for name, _, run in cases:
                tic = time.perf_counter()
                run(X, y, target)
                progress.step(f"{name}, {dtype}", time.perf_counter() - tic)
    return _compiled_and_loaded()


def _parse(argv):
    parser = argparse.ArgumentParser(
        prog="python -m fastbp warmup",
        description="Build this machine's fastbp kernels into the on-disk cache (for container images and CI).",
    )
    parser.add_argument(
        "--dtypes", default=",".join(DTYPES),
        help=f"comma list of the data dtypes to build for (default {','.join(DTYPES)})",
    )
    parser.add_argument(
        "--paths", choices=PATH_GROUPS, default="default",
        help="default: what default fits and predictions use; all: every solver, online SGD, sparse input, "
        "early stopping and the functional API (default: default)",
    )
    parser.add_argument(
        "--jobs", type=int, default=None,
        help="processes building at once, one per dtype (default: as many as cores and dtypes allow)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary line")
    parser.add_argument(
        "--prebuild", metavar="DIR", default=None,
        help="build the kernels a wheel ships into DIR/<baseline>/ instead of this machine's cache",
    )
    parser.add_argument(
        "--reuse", metavar="DIR", default=None,
        help="with --prebuild: take the kernels from DIR if an earlier build of the same sources and versions "
        "left them there, else build and leave a copy there",
    )
    parser.add_argument(
        "--targets", default=None,
        help="with --prebuild: comma list of baselines (default x86-64-v3,x86-64-v4)",
    )
    args = parser.parse_args(argv)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    unknown = sorted(set(dtypes) - set(DTYPES))
    if not dtypes or unknown:
        parser.error(f"--dtypes: expected a comma list of {', '.join(DTYPES)}, got {args.dtypes!r}")
    args.dtypes = list(dict.fromkeys(dtypes))
    from .kernels.cache import BASELINES

    targets = [t.strip() for t in (args.targets or "x86-64-v3,x86-64-v4").split(",") if t.strip()]
    if (args.targets is not None or args.reuse is not None) and args.prebuild is None:
        parser.error("--targets and --reuse go with --prebuild")
    if not targets or set(targets) - set(BASELINES):
        parser.error(f"--targets: expected a comma list of {', '.join(sorted(BASELINES))}, got {args.targets!r}")
    args.targets = list(dict.fromkeys(targets))
    if args.jobs is None:
        parallel = len(args.dtypes) * (len(args.targets) if args.prebuild is not None else 1)
        args.jobs = max(1, min(parallel, os.cpu_count() or 1))
    elif args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    return args


def _build_env(target, cache_dir):
    env = {
        **os.environ,
        "NUMBA_CPU_NAME": target,
        "NUMBA_CPU_FEATURES": "",
        "NUMBA_CACHE_DIR": cache_dir,
        "FASTBP_PREBUILT": "0",
        "FASTBP_WARMUP_BUILD": "1",
    }
    # the build processes must compile the fastbp of this process (a build folder, say)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return env


def _copy_prebuilt(source, into, targets):
    for target in targets:
        shutil.rmtree(os.path.join(into, target), ignore_errors=True)
        shutil.copytree(os.path.join(source, target), os.path.join(into, target))


def _reusable(folder, targets, dtypes):
    """Whether ``folder`` holds a finished prebuild of these targets and dtypes for these sources."""
    from .kernels.cache import PREBUILT_MANIFEST, kernel_sources_digest

    for target in targets:
        try:
            with open(os.path.join(folder, target, PREBUILT_MANIFEST)) as manifest:
                info = json.load(manifest)
        except (OSError, ValueError):
            return False
        if info.get("digest") != kernel_sources_digest() or set(dtypes) - set(info.get("dtypes", ())):
            return False
    return True


def prebuild(into, targets, dtypes, jobs, stream, reuse=None):
    """Build the default paths' kernels for each baseline of ``targets`` into
    ``into/<baseline>/`` (entries and a manifest); returns the entries' count.

    With ``reuse``, a folder: kernels an earlier prebuild of the same sources and
    versions left in ``reuse/<digest>/`` are copied instead of built (a second
    ``pip install`` of the same tree builds nothing), and a new build leaves a
    copy there.
    """
    from .kernels.cache import PREBUILT_MANIFEST, kernel_sources_digest, kernel_versions

    tic = time.perf_counter()
    if reuse is not None:
        kept = os.path.join(reuse, kernel_sources_digest())
        if _reusable(kept, targets, dtypes):
            _copy_prebuilt(kept, into, targets)
            stream.write(f"prebuilt kernels: reused the build of the same sources in {kept}\n")
            return sum(len(glob.glob(os.path.join(into, t, "*.nbc"))) for t in targets)
        count = prebuild(into, targets, dtypes, jobs, stream)
        try:
            shutil.rmtree(reuse, ignore_errors=True)  # older builds' kernels: never loadable again
            _copy_prebuilt(into, kept, targets)
        except OSError as error:
            stream.write(f"prebuilt kernels: not kept for reuse ({error})\n")
        return count
    caches = {target: tempfile.mkdtemp(prefix=f"fastbp-prebuild-{target}-") for target in targets}
    try:
        pending = [(target, dtype) for target in targets for dtype in dtypes]
        running = []
        failed = []
        while pending or running:
            while pending and len(running) < jobs:
                target, dtype = pending.pop(0)
                command = [sys.executable, "-m", "fastbp", "warmup", "--jobs", "1", "--quiet", "--paths", "default",
                           "--dtypes", dtype]
                running.append((target, dtype, time.perf_counter(), subprocess.Popen(
                    command, env=_build_env(target, caches[target]), stdout=subprocess.DEVNULL,
                )))
            time.sleep(0.05)
            for job in list(running):
                target, dtype, started, proc = job
                if proc.poll() is not None:
                    running.remove(job)
                    if proc.returncode != 0:
                        failed.append(f"{target} {dtype} (exit status {proc.returncode})")
                    stream.write(f"prebuilt {target} {dtype}: {time.perf_counter() - started:.1f} s\n")
                    stream.flush()
        if failed:
            raise RuntimeError(f"building the prebuilt kernels failed for {', '.join(failed)}")
        count = 0
        for target in targets:
            folder = os.path.join(into, target)
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
            for path in glob.glob(os.path.join(caches[target], "**", "*.nb[ic]"), recursive=True):
                shutil.copy2(path, folder)
                count += path.endswith(".nbc")
            with open(os.path.join(folder, PREBUILT_MANIFEST), "w") as manifest:
                json.dump({
                    "target": target, "digest": kernel_sources_digest(), "versions": kernel_versions(),
                    "dtypes": list(dtypes), "paths": "default",
                }, manifest, indent=1)
        stream.write(f"prebuilt kernels: {count} entries for {', '.join(targets)} in {into} "
                     f"({time.perf_counter() - tic:.1f} s)\n")
        return count
    finally:
        for folder in caches.values():
            shutil.rmtree(folder, ignore_errors=True)


def main(argv=None):
    """Entry point of ``python -m fastbp warmup``; returns the exit status."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    # (the cache's "compiling kernels" line is for a user's first fit, not for the warmup)
    os.environ["FASTBP_WARMUP_BUILD"] = "1"
    if args.prebuild is not None:
        try:
            prebuild(args.prebuild, args.targets, args.dtypes, args.jobs, sys.stderr, reuse=args.reuse)
        except RuntimeError as error:
            sys.stderr.write(f"fastbp warmup: {error}\n")
            return 1
        return 0
    tic = time.perf_counter()
    out = open(os.devnull, "w") if args.quiet else sys.stderr
    try:
        if args.jobs > 1 and len(args.dtypes) > 1:
            # one process per dtype (each compiles on one core), then one pass here that loads them all
            workers = [
                subprocess.Popen(
                    [sys.executable, "-m", "fastbp", "warmup", "--jobs", "1", "--paths", args.paths,
                     "--dtypes", dtype] + (["--quiet"] if args.quiet else []),
                )
                for dtype in args.dtypes
            ]
            failed = [w.args for w in workers if w.wait() != 0]
            if failed:
                sys.stderr.write(f"fastbp warmup: a build process failed: {failed[0]}\n")
                return 1
            out.write("checking that every kernel loads from the cache\n")
        compiled, loaded = run_cases(args.dtypes, args.paths, out)
    finally:
        if out is not sys.stderr:
            out.close()
    from .kernels.cache import cache_location

    print(
        f"fastbp warmup: {args.paths} paths, {', '.join(args.dtypes)}: {compiled} kernel signatures compiled, "
        f"{loaded} loaded from the cache, {time.perf_counter() - tic:.1f} s; cache: {cache_location()}"
    )
    return 0
