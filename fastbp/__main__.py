"""``python -m fastbp``: fastbp against scikit-learn on the digits data set;
``python -m fastbp warmup``: build this machine's kernels into the on-disk cache
(see ``fastbp._warmup``).

Trains ``fastbp.MLPClassifier`` and ``sklearn.neural_network.MLPClassifier`` with the same
parameters on scikit-learn's bundled digits (pixels scaled to [0, 1], stratified 75/25 split,
``random_state=0``) and prints, for both, the test accuracy, the epochs run (``n_iter_``), the fit
time and the speed-up. fastbp is first fitted once, untimed, on a small slice so that Numba's
compilation (or loading its on-disk cache) is not counted in the timed fit.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings


def _parse(argv):
    p = argparse.ArgumentParser(
        prog="python -m fastbp",
        description="fastbp vs scikit-learn MLPClassifier on the digits data set "
        "(python -m fastbp warmup --help: build the kernels ahead of time).",
    )
    p.add_argument("--quick", action="store_true", help="50 epochs at most instead of 200")
    p.add_argument("--max-iter", type=int, default=None, help="epochs at most (default 200)")
    p.add_argument("--hidden", default="64", help="hidden layer sizes, comma list (default 64)")
    p.add_argument("--solver", default="adam", choices=["adam", "sgd", "lbfgs"])
    p.add_argument("--float32", action="store_true", help="train on float32 data")
    p.add_argument("--n-jobs", type=int, default=None, help="fastbp threads (default: all cores)")
    args = p.parse_args(argv)
    if args.max_iter is None:
        args.max_iter = 50 if args.quick else 200
    try:
        args.hidden = tuple(int(h) for h in args.hidden.split(",") if h.strip())
    except ValueError:
        p.error(f"--hidden: expected a comma list of integers, got {args.hidden!r}")
    return args


def _timed_fit(est, X, y):
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        t0 = time.perf_counter()
        est.fit(X, y)
        elapsed = time.perf_counter() - t0
    hit_max = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return elapsed, hit_max


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["warmup"]:
        from fastbp._warmup import main as warmup

        return warmup(argv[1:])
    args = _parse(argv)

    import numpy as np
    import sklearn
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier

    import fastbp

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    if args.float32:
        X = X.astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)

    params = dict(
        hidden_layer_sizes=args.hidden,
        solver=args.solver,
        max_iter=args.max_iter,
        random_state=0,
    )
    shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
    print(
        f"fastbp {getattr(fastbp, '__version__', '?')} vs scikit-learn {sklearn.__version__}: "
        f"digits, {X.shape[0]} samples x {X.shape[1]} features, 10 classes, "
        f"{len(y_train)} train / {len(y_test)} test (stratified, random_state=0), {X.dtype}"
    )
    print(f"both: MLPClassifier({shown}); fastbp n_jobs={args.n_jobs} ({os.cpu_count()} cores)")

    # Untimed warm-up: compiles fastbp's kernels (or loads them from Numba's cache) for this
    # dtype, layout and solver, so the timed fit below measures training only.
    k = 200
    warm = fastbp.MLPClassifier(**{**params, "max_iter": 2}, n_jobs=args.n_jobs)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm.fit(X_train[:k], y_train[:k])
    print(
        f"fastbp warm-up (compilation / Numba cache), untimed and not counted below: "
        f"{time.perf_counter() - t0:.2f} s (2 epochs on {k} samples)"
    )
    print()

    rows = []
    for name, est in [
        ("scikit-learn", SkMLPClassifier(**params)),
        ("fastbp", fastbp.MLPClassifier(**params, n_jobs=args.n_jobs)),
    ]:
        seconds, hit_max = _timed_fit(est, X_train, y_train)
        rows.append(
            {
                "name": name,
                "acc": est.score(X_test, y_test),
                "epochs": int(est.n_iter_),
                "seconds": seconds,
                "ms_epoch": 1e3 * seconds / max(int(est.n_iter_), 1),
                "loss": float(est.loss_) if getattr(est, "loss_", None) is not None else float("nan"),
                "stop": "max_iter reached" if hit_max else "converged (tol)",
            }
        )

    header = f"{'library':<14}{'test accuracy':>14}{'epochs':>8}{'fit time':>11}{'ms/epoch':>10}{'final loss':>12}  stopped"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['name']:<14}{r['acc']:>14.4f}{r['epochs']:>8d}{r['seconds']:>10.3f}s"
            f"{r['ms_epoch']:>10.2f}{r['loss']:>12.4f}  {r['stop']}"
        )
    sk, fb = rows
    print()
    print(
        f"speed-up of fastbp: {sk['seconds'] / fb['seconds']:.1f}x per fit, "
        f"{sk['ms_epoch'] / fb['ms_epoch']:.1f}x per epoch "
        f"(accuracy {fb['acc'] - sk['acc']:+.4f} vs scikit-learn)"
    )
    print("(times are wall clock on this machine; fastbp's compilation is excluded, see above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
