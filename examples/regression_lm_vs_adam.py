"""Levenberg–Marquardt against Adam on a small 1-D regression (a noisy sine).

    python examples/regression_lm_vs_adam.py [--out DIR]

``MLPRegressor(hidden_layer_sizes=(20,), activation="tanh")`` fitted to ``y = sin(x) + noise``
with ``solver="lm"`` (Levenberg–Marquardt: a damped Gauss–Newton step on the whole training set
per iteration, from the Jacobian of the residuals; for ``loss="squared_error"`` and networks
small enough for that Jacobian) and with ``solver="adam"`` (mini-batches, one iteration = one
epoch). One figure: the training loss against the iteration for both (log scale), and the two
fitted curves over the data and the true function. Prints each solver's iterations, fit time
and R² on a noiseless test grid.

Writes ``regression_lm_vs_adam.png`` to ``--out`` (default ``examples/output/``).
``FASTBP_EXAMPLE_QUICK=1`` caps the iterations.
"""

import argparse
import os
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

from fastbp import MLPRegressor  # noqa: E402

QUICK = os.environ.get("FASTBP_EXAMPLE_QUICK", "") not in ("", "0")
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "output")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for the PNG (created if missing)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)

    rng = np.random.RandomState(0)
    n_train = 200
    X = np.sort(rng.uniform(-np.pi, np.pi, n_train))[:, None]
    y = np.sin(X[:, 0]) + 0.1 * rng.standard_normal(n_train)
    X_test = np.linspace(-np.pi, np.pi, 500)[:, None]
    y_test = np.sin(X_test[:, 0])

    lm_iter, adam_iter = (30, 100) if QUICK else (200, 2000)
    common = dict(hidden_layer_sizes=(20,), activation="tanh", alpha=0.0, tol=0.0, random_state=0)
    models = {
        "lm": MLPRegressor(solver="lm", max_iter=lm_iter, n_iter_no_change=lm_iter, **common),
        "adam": MLPRegressor(
            solver="adam", learning_rate_init=0.01, batch_size=32, max_iter=adam_iter,
            n_iter_no_change=adam_iter, **common,
        ),
    }

    fig, (ax_loss, ax_fit) = plt.subplots(1, 2, figsize=(12, 4.5))
    ax_fit.scatter(X[:, 0], y, s=8, color="0.6", label=f"training data ({n_train} points)")
    ax_fit.plot(X_test[:, 0], y_test, color="k", lw=1, ls="--", label="sin(x)")
    for (solver, reg), color in zip(models.items(), ("tab:red", "tab:blue")):
        t0 = time.perf_counter()
        reg.fit(X, y)
        fit_s = time.perf_counter() - t0
        r2 = reg.score(X_test, y_test)
        what = "full-batch LM steps" if solver == "lm" else "epochs of batch 32"
        print(f"solver={solver!r:7s} {reg.n_iter_:5d} {what:20s} {fit_s:6.2f} s   final loss {reg.loss_:.3e}   "
              f"test R^2 {r2:.5f}")
        label = f"solver='{solver}' (R² {r2:.4f}, {fit_s:.2f} s)"
        ax_loss.plot(np.arange(1, reg.n_iter_ + 1), reg.loss_curve_, color=color, label=label)
        ax_fit.plot(X_test[:, 0], reg.predict(X_test), color=color, lw=2, label=label)

    ax_loss.set(
        title="training loss (loss_curve_)", xlabel="iteration (lm: one step on all data; adam: one epoch)",
        ylabel="squared error / 2", xscale="log", yscale="log",
    )
    ax_fit.set(title="fitted curves", xlabel="x", ylabel="y")
    for ax in (ax_loss, ax_fit):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("fastbp MLPRegressor(hidden_layer_sizes=(20,), activation='tanh') on a noisy sine", fontsize=10)
    fig.tight_layout()
    path = os.path.join(args.out, "regression_lm_vs_adam.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
