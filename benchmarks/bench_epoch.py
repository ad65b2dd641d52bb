"""asv benchmarks of fastbp on the workloads S, M, L, O of shared/BENCHMARKS.md.

What is measured
----------------
``EpochFastbp.time_epoch``
    One training epoch, timed as ONE ``partial_fit(X, y)`` call on an estimator that has already
    done one (the warm-up in ``setup``: compilation or cache loading, buffers, the first epoch).
    ``partial_fit`` was picked over ``fit(max_iter=1, warm_start=False, tol=0,
    n_iter_no_change=np.inf)`` because it is exactly one shuffled pass with Adam and no
    re-initialisation of the weights, no optimizer reset and no ConvergenceWarning, so the timing
    is the epoch and the per-call validation, nothing else; successive repeats simply keep
    training the same network.
``EpochSklearn.time_epoch``
    The same with scikit-learn's MLPClassifier, in the same run (BLAS threads limited to
    ``n_jobs`` with threadpoolctl): the ratio of the two is the number to quote, absolute times are
    not stable on these shared machines.
``FitMemory.peakmem_fit``, ``FitMemory.track_fit_extra_rss``
    ``fit`` with ``max_iter=1``. ``peakmem_`` is asv's whole-process peak RSS (interpreter, data
    and kernels included); ``track_fit_extra_rss`` is the peak RSS during ``fit`` above the RSS
    before it (Linux: the high-water mark is reset through /proc/self/clear_refs), in MiB.
``FirstFit.track_first_fit``
    Wall time of a fresh ``python`` process that imports the library, makes workload S (float32)
    and fits one epoch, timed with ``time.perf_counter`` around ``subprocess.run``; for fastbp
    with an empty Numba cache (``NUMBA_CACHE_DIR`` = a fresh temporary folder) and with a cache
    pre-warmed by one earlier run of the same script; scikit-learn as the reference.
``Convergence.track_loss`` / ``Convergence.track_accuracy``
    ``loss_`` and held-out accuracy after a fit of ``EPOCHS`` epochs, fastbp and scikit-learn.

Running
-------
From the repository root: ``asv check --python=same``, ``asv run --python=same --quick``
(one sample of each, uses the current environment with fastbp installed), or ``asv run`` for
the configured virtualenv. Select with ``-b``, e.g. ``asv run --python=same -b EpochFastbp``.
For numbers to report, unset the OpenBLAS overrides for that command only:
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE asv run ...`` (see BENCHMARKS.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

from .workloads import WORKLOADS, estimator_params, make_data

WORKLOAD_NAMES = list(WORKLOADS)
DTYPES = ["float32", "float64"]
N_JOBS = [1, 2]
EPOCHS = 3  # epochs of the Convergence fits
N_TEST = 5000  # held-out samples for the accuracy


def _classifier(library, workload, **overrides):
    if library in ("fastbp", "fastbp_hogwild"):
        import fastbp

        if library == "fastbp_hogwild":
            overrides["hogwild"] = True
        return fastbp.MLPClassifier(**estimator_params(workload, **overrides))
    if library == "sklearn":
        from sklearn.neural_network import MLPClassifier

        overrides.pop("n_jobs", None)
        return MLPClassifier(**estimator_params(workload, **overrides))
    raise ValueError(library)


def _skip_if_too_many_threads(n_jobs):
    if n_jobs is not None and n_jobs > (os.cpu_count() or 1):
        raise NotImplementedError(f"n_jobs={n_jobs} > {os.cpu_count()} cores")


def _quiet():
    """Silence ConvergenceWarning (max_iter reached is the point here)."""
    warnings.filterwarnings("ignore", message=".*[Mm]aximum iterations.*")
    try:
        from sklearn.exceptions import ConvergenceWarning

        warnings.filterwarnings("ignore", category=ConvergenceWarning)
    except ImportError:  # pragma: no cover
        pass


class _EpochBase:
    number = 1  # one call = one epoch
    repeat = (3, 7, 10.0)  # at least 3, at most 7 samples, no new sample after 10 s
    rounds = 1  # one process per parameter set: the setup (data, warm-up) is paid once
    warmup_time = 0.0  # the warm-up is the partial_fit in setup
    timeout = 600.0
    library = None

    def setup(self, workload, dtype, n_jobs):
        _skip_if_too_many_threads(n_jobs)
        _quiet()
        self.X, self.y = make_data(workload, dtype)
        self.classes = np.arange(WORKLOADS[workload].classes)
        self.est = _classifier(self.library, workload, n_jobs=n_jobs)
        self._limits = None
        if self.library == "sklearn":
            from threadpoolctl import threadpool_limits

            self._limits = threadpool_limits(limits=n_jobs)
        # Warm-up: same dtype, same (C-contiguous) layout, same call as the timed one.
        self.est.partial_fit(self.X, self.y, classes=self.classes)

    def teardown(self, workload, dtype, n_jobs):
        if getattr(self, "_limits", None) is not None:
            self._limits.restore_original_limits()

    def time_epoch(self, workload, dtype, n_jobs):
        self.est.partial_fit(self.X, self.y)


class EpochFastbp(_EpochBase):
    """One epoch (one partial_fit) of fastbp.MLPClassifier; n_jobs is fastbp's thread count."""

    library = "fastbp"
    params = (WORKLOAD_NAMES, DTYPES, N_JOBS)
    param_names = ["workload", "dtype", "n_jobs"]


class EpochSklearn(_EpochBase):
    """The scikit-learn reference of EpochFastbp; n_jobs limits the BLAS threads."""

    library = "sklearn"
    params = (WORKLOAD_NAMES, DTYPES, N_JOBS)
    param_names = ["workload", "dtype", "n_jobs"]


class EpochHogwild(_EpochBase):
    """One epoch of fastbp's opt-in Hogwild! (lock-free online SGD on n_jobs threads)
    on the batch-size-1 workload; not deterministic. Its final loss and accuracy are
    tracked by Convergence (library fastbp_hogwild)."""

    library = "fastbp"
    params = ([name for name in WORKLOAD_NAMES if WORKLOADS[name].batch == 1], DTYPES, N_JOBS)
    param_names = ["workload", "dtype", "n_jobs"]

    def setup(self, workload, dtype, n_jobs):
        _skip_if_too_many_threads(n_jobs)
        _quiet()
        self.X, self.y = make_data(workload, dtype)
        self.classes = np.arange(WORKLOADS[workload].classes)
        self.est = _classifier("fastbp_hogwild", workload, n_jobs=n_jobs)
        self._limits = None
        self.est.partial_fit(self.X, self.y, classes=self.classes)


def _rss_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise NotImplementedError(f"{field} not in /proc/self/status")


class FitMemory:
    """Memory of fit(max_iter=1) on the full workload."""

    params = (WORKLOAD_NAMES, DTYPES, ["fastbp", "sklearn"])
    param_names = ["workload", "dtype", "library"]
    timeout = 600.0

    def setup(self, workload, dtype, library):
        _quiet()
        self.X, self.y = make_data(workload, dtype)
        if library == "fastbp":
            # Load (or compile) the kernels on a slice, so the peak is the fit's, not LLVM's.
            k = max(64, 4 * WORKLOADS[workload].batch)
            _classifier(library, workload).fit(self.X[:k], self.y[:k])

    def peakmem_fit(self, workload, dtype, library):
        _classifier(library, workload).fit(self.X, self.y)

    def track_fit_extra_rss(self, workload, dtype, library):
        """Peak RSS during fit minus RSS before it, MiB (data and kernels excluded)."""
        est = _classifier(library, workload)
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        except OSError as exc:
            raise NotImplementedError(f"cannot reset the RSS high-water mark: {exc}")
        before = _rss_mib("VmRSS")
        est.fit(self.X, self.y)
        return _rss_mib("VmHWM") - before

    track_fit_extra_rss.unit = "MiB"


_FIRST_FIT_SCRIPT = """
import sys, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, {bench_dir!r})
from workloads import estimator_params, make_data
if {library!r} == "fastbp":
    from fastbp import MLPClassifier
else:
    from sklearn.neural_network import MLPClassifier
X, y = make_data("S", "float32")
MLPClassifier(**estimator_params("S", max_iter=1)).fit(X, y)
"""


def _first_fit_seconds(library, cache_dir):
    script = _FIRST_FIT_SCRIPT.format(
        bench_dir=os.path.dirname(os.path.abspath(__file__)), library=library
    )
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"first-fit subprocess failed:\n{proc.stderr[-3000:]}")
    return elapsed


class FirstFit:
    """import + data + one epoch of S (float32) in a fresh process, in seconds."""

    params = ["fastbp_cold_cache", "fastbp_warm_cache", "sklearn"]
    param_names = ["variant"]
    timeout = 900.0

    def setup(self, variant):
        self.cache_dir = tempfile.mkdtemp(prefix="fastbp-numba-cache-")
        if variant == "fastbp_warm_cache":
            _first_fit_seconds("fastbp", self.cache_dir)  # fills the cache, untimed

    def teardown(self, variant):
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    def track_first_fit(self, variant):
        if variant == "sklearn":
            return _first_fit_seconds("sklearn", None)
        return _first_fit_seconds("fastbp", self.cache_dir)

    track_first_fit.unit = "seconds"


def _runs(workload, library):
    return library != "fastbp_hogwild" or WORKLOADS[workload].batch == 1


class Convergence:
    """Training loss_ and held-out accuracy after EPOCHS epochs (fit, max_iter=EPOCHS);
    fastbp_hogwild (hogwild=True) on the batch-size-1 workload only."""

    params = (WORKLOAD_NAMES, DTYPES, ["fastbp", "fastbp_hogwild", "sklearn"])
    param_names = ["workload", "dtype", "library"]
    timeout = 900.0

    def setup_cache(self):
        # One fit per parameter set serves both track_ methods.
        _quiet()
        results = {}
        for workload in WORKLOAD_NAMES:
            for dtype in DTYPES:
                X, y, X_test, y_test = make_data(workload, dtype, n_test=N_TEST)
                for library in ["fastbp", "fastbp_hogwild", "sklearn"]:
                    key = (workload, dtype, library)
                    if not _runs(workload, library):
                        continue
                    try:
                        est = _classifier(library, workload, max_iter=EPOCHS).fit(X, y)
                        results[key] = (float(est.loss_), float(est.score(X_test, y_test)))
                    except Exception as exc:  # reported by the track_ methods
                        results[key] = f"{type(exc).__name__}: {exc}"
        return results

    def setup(self, results, workload, dtype, library):
        if not _runs(workload, library):
            raise NotImplementedError("hogwild=True is online SGD: batch-size-1 workloads only")

    @staticmethod
    def _get(results, key):
        value = results[key]
        if isinstance(value, str):
            raise RuntimeError(value)
        return value

    def track_loss(self, results, workload, dtype, library):
        return self._get(results, (workload, dtype, library))[0]

    track_loss.unit = "loss"

    def track_accuracy(self, results, workload, dtype, library):
        return self._get(results, (workload, dtype, library))[1]

    track_accuracy.unit = "accuracy"
