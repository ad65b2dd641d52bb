"""Decision boundaries of one network shape across hidden activations, on two 2-D toy problems.

    python examples/decision_boundaries.py [--out DIR]

``MLPClassifier(hidden_layer_sizes=(16, 16), solver="lbfgs")`` on scikit-learn's ``make_moons``
and ``make_circles``, with every hidden activation fastbp has (scikit-learn's identity,
logistic, tanh and relu, and leaky_relu, elu, softplus, gelu, swish, maxout) and one network
with a different activation per hidden layer (``activation=["maxout", "tanh"]``). Each panel
shows the predicted probability of class 1 over the plane, the training points, and the
accuracy on a held-out test set: identity gives a straight line, relu and maxout piecewise-linear
boundaries, the smooth activations smooth ones.

Writes ``decision_boundaries.png`` to ``--out`` (default ``examples/output/``).
``FASTBP_EXAMPLE_QUICK=1`` uses fewer points, fewer iterations and a coarser grid.
"""

import argparse
import os
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import make_circles, make_moons  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from fastbp import MLPClassifier  # noqa: E402

QUICK = os.environ.get("FASTBP_EXAMPLE_QUICK", "") not in ("", "0")
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "output")

ACTIVATIONS = [
    "identity", "logistic", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu", "swish", "maxout",
    ["maxout", "tanh"],
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for the PNG (created if missing)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)

    n_samples, max_iter, grid_n = (120, 100, 60) if QUICK else (400, 1000, 200)
    datasets = {
        "moons": make_moons(n_samples=n_samples, noise=0.2, random_state=0),
        "circles": make_circles(n_samples=n_samples, noise=0.15, factor=0.5, random_state=1),
    }

    fig, axes = plt.subplots(
        len(datasets), len(ACTIVATIONS), figsize=(1.9 * len(ACTIVATIONS), 2.0 * len(datasets) + 0.5), squeeze=False
    )
    t_total = time.perf_counter()
    for row, (name, (X, y)) in enumerate(datasets.items()):
        X = StandardScaler().fit_transform(X)
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, stratify=y, random_state=0)
        lo, hi = X.min(axis=0) - 0.5, X.max(axis=0) + 0.5
        xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], grid_n), np.linspace(lo[1], hi[1], grid_n))
        grid = np.column_stack([xx.ravel(), yy.ravel()])
        for col, activation in enumerate(ACTIVATIONS):
            clf = MLPClassifier(
                hidden_layer_sizes=(16, 16), activation=activation, solver="lbfgs", alpha=0.1,
                max_iter=max_iter, random_state=0,
            )
            clf.fit(X_train, y_train)
            accuracy = clf.score(X_test, y_test)
            proba = clf.predict_proba(grid)[:, 1].reshape(xx.shape)
            ax = axes[row, col]
            ax.contourf(xx, yy, proba, levels=np.linspace(0, 1, 11), cmap="RdBu", alpha=0.8)
            ax.contour(xx, yy, proba, levels=[0.5], colors="k", linewidths=0.8)
            ax.scatter(X_train[:, 0], X_train[:, 1], c=y_train, cmap="RdBu", edgecolors="k", linewidths=0.4, s=10)
            ax.text(0.97, 0.03, f"{accuracy:.2f}", transform=ax.transAxes, ha="right", va="bottom", fontsize=9,
                    bbox=dict(facecolor="white", alpha=0.7, edgecolor="none", pad=1))
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(activation if isinstance(activation, str) else " + ".join(activation), fontsize=9)
            if col == 0:
                ax.set_ylabel(name)
            print(f"{name:8s} {str(activation):22s} test accuracy {accuracy:.3f}  ({clf.n_iter_} L-BFGS iterations)")
    print(f"{len(datasets) * len(ACTIVATIONS)} fits and grids in {time.perf_counter() - t_total:.1f} s")

    fig.suptitle(
        "fastbp MLPClassifier(hidden_layer_sizes=(16, 16), solver='lbfgs') by hidden activation: "
        "P(class 1) over the plane, training points, test accuracy (bottom right)",
        fontsize=10,
    )
    fig.tight_layout()
    path = os.path.join(args.out, "decision_boundaries.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
