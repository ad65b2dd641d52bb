"""Write the saved models of tests/data/format-<N>/ for the current format version.

Run once when FORMAT_VERSION (fastbp/persistence/__init__.py) increases, from the
repository root::

    python tests/data/make_saved_models.py

It writes ``format-<N>/classifier.npz``, ``format-<N>/regressor.npz`` and
``format-<N>/expected.json`` (what the models predict on the rows named
there, and what they are). It refuses to overwrite a directory that exists:
the files of a released format version are what that version wrote, and every
later fastbp must keep loading them (tests/test_persistence.py).
"""

import json
import os
import sys
import warnings

import numpy as np
from sklearn.datasets import load_diabetes, load_iris
from sklearn.exceptions import ConvergenceWarning

import fastbp
from fastbp.persistence import FORMAT_VERSION

HERE = os.path.dirname(os.path.abspath(__file__))
# the rows predicted: every 8th (of all three iris classes)
PREDICT_EVERY = 8


def data():
    """The data sets the saved models were fitted on and predict (scikit-learn's bundled ones)."""
    iris = load_iris()
    X_iris = iris.data
    y_iris = iris.target_names[iris.target]  # string labels
    X_diabetes, y_diabetes = load_diabetes(return_X_y=True)
    X_diabetes = 10.0 * X_diabetes  # (its columns have norm 1: about unit variance)
    y_diabetes = (y_diabetes - y_diabetes.mean()) / y_diabetes.std()
    return X_iris, y_iris, X_diabetes, y_diabetes


def main():
    out = os.path.join(HERE, f"format-{FORMAT_VERSION}")
    if os.path.exists(out):
        sys.exit(f"{out} exists: the files of a format version are never rewritten")
    X_iris, y_iris, X_diabetes, y_diabetes = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier = fastbp.MLPClassifier(
            hidden_layer_sizes=(6,), activation="tanh", solver="adam", learning_rate_init=0.02, early_stopping=True,
            validation_fraction=0.2, n_iter_no_change=20, max_iter=200, random_state=0,
        ).fit(X_iris, y_iris)
        regressor = fastbp.MLPRegressor(
            hidden_layer_sizes=(5, 3), activation="relu", solver="sgd", momentum=0.9, learning_rate_init=0.05,
            alpha=1e-3, max_iter=50, random_state=0,
        ).fit(X_diabetes, y_diabetes)
    os.makedirs(out)
    fastbp.save(classifier, os.path.join(out, "classifier.npz"))
    fastbp.save(regressor, os.path.join(out, "regressor.npz"))
    expected = {
        "format_version": FORMAT_VERSION,
        "fastbp_version": fastbp.__version__,
        "predict_every": PREDICT_EVERY,
        "classifier": {
            "data": "iris",
            "classes": classifier.classes_.tolist(),
            "n_iter": classifier.n_iter_,
            "score": classifier.score(X_iris, y_iris),
            "predict": classifier.predict(X_iris[::PREDICT_EVERY]).tolist(),
            "predict_proba": classifier.predict_proba(X_iris[::PREDICT_EVERY]).tolist(),
        },
        "regressor": {
            "data": "diabetes",
            "n_iter": regressor.n_iter_,
            "score": regressor.score(X_diabetes, y_diabetes),
            "predict": regressor.predict(X_diabetes[::PREDICT_EVERY]).tolist(),
        },
    }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
