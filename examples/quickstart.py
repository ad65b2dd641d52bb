"""fastbp quickstart: switching from scikit-learn is one import.

    python examples/quickstart.py [--out DIR]

The same user code (a function that builds, fits and scores a Pipeline) runs twice: once with
``from sklearn.neural_network import MLPClassifier, MLPRegressor`` and once with
``from fastbp import MLPClassifier, MLPRegressor``. Nothing else changes. For each pair of fits
it prints the largest difference between the two libraries' weights (the same ``random_state``
gives the same weights, up to float64 rounding), the test scores and the fit times.

Data bundled with scikit-learn (no download): a classifier on the digits and a regressor on the
diabetes data set. Runs headless and writes no file (``--out`` is accepted for uniformity with
the other examples). ``FASTBP_EXAMPLE_QUICK=1`` caps the epochs so that it runs in seconds.
"""

import argparse
import os
import time
import warnings

import numpy as np
from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

QUICK = os.environ.get("FASTBP_EXAMPLE_QUICK", "") not in ("", "0")
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "output")


# --- the user's code: written once, it does not know which library it runs on ----------------
def classify(MLPClassifier, X_train, X_test, y_train, y_test):
    clf = make_pipeline(
        StandardScaler(),
        MLPClassifier(hidden_layer_sizes=(64,), max_iter=20 if QUICK else 200, random_state=0),
    )
    t0 = time.perf_counter()
    clf.fit(X_train, y_train)
    fit_s = time.perf_counter() - t0
    return clf, fit_s, clf.score(X_test, y_test)


def regress(MLPRegressor, X_train, X_test, y_train, y_test):
    reg = make_pipeline(
        StandardScaler(),
        MLPRegressor(
            hidden_layer_sizes=(16,),
            learning_rate_init=0.01,
            max_iter=100 if QUICK else 1000,
            early_stopping=True,  # holds out 10% of the training data, stops when it stops improving
            random_state=0,
        ),
    )
    t0 = time.perf_counter()
    reg.fit(X_train, y_train)
    fit_s = time.perf_counter() - t0
    return reg, fit_s, reg.score(X_test, y_test)


# --- comparing the two runs ---------------------------------------------------------------------
def max_weight_difference(a, b):
    return max(float(np.abs(p - q).max()) for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_))


def report(title, metric, sk, fb):
    (sk_model, sk_s, sk_score), (fb_model, fb_s, fb_score) = sk, fb
    sk_mlp, fb_mlp = sk_model[-1], fb_model[-1]
    print(title)
    print(f"  {'':13s}{metric:>10s}  epochs  fit time  speed-up")
    print(f"  {'scikit-learn':13s}{sk_score:10.4f}  {sk_mlp.n_iter_:6d}  {sk_s:7.3f} s")
    print(f"  {'fastbp':13s}{fb_score:10.4f}  {fb_mlp.n_iter_:6d}  {fb_s:7.3f} s  {sk_s / fb_s:7.1f}x")
    print(f"  largest |weight difference| between the two: {max_weight_difference(sk_mlp, fb_mlp):.1e}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (unused: this example writes no file)")
    parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)

    X, y = load_digits(return_X_y=True)
    digits = train_test_split(X, y, stratify=y, random_state=0)
    X, y = load_diabetes(return_X_y=True)
    diabetes = train_test_split(X, y, random_state=0)

    from sklearn.neural_network import MLPClassifier, MLPRegressor  # before

    sk_clf = classify(MLPClassifier, *digits)
    sk_reg = regress(MLPRegressor, *diabetes)

    from fastbp import MLPClassifier, MLPRegressor  # after: the only line that changes

    # The first fit in a fresh process compiles fastbp's kernels (or loads them from Numba's
    # on-disk cache): done once here, untimed, so that the timings below compare training.
    t0 = time.perf_counter()
    classify(MLPClassifier, digits[0][:100], digits[1], digits[2][:100], digits[3])
    regress(MLPRegressor, diabetes[0][:100], diabetes[1], diabetes[2][:100], diabetes[3])
    print(f"fastbp warm-up (compilation or Numba cache), untimed: {time.perf_counter() - t0:.1f} s\n")

    fb_clf = classify(MLPClassifier, *digits)
    fb_reg = regress(MLPRegressor, *diabetes)

    report("MLPClassifier, digits (1347 train / 450 test)", "accuracy", sk_clf, fb_clf)
    report("MLPRegressor, diabetes (331 train / 111 test, early stopping)", "R^2", sk_reg, fb_reg)
    print("\n(wall-clock times of one run on this machine; small data sets: Python overhead dominates)")


if __name__ == "__main__":
    main()
