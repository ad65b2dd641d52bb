"""Learning curves on the digits: training loss, validation loss and validation accuracy per epoch.

    python examples/digits_learning_curves.py [--out DIR]

``fit(X, y, X_val=..., y_val=...)`` evaluates a held-out set after every epoch and records
``validation_scores_`` (accuracy) and ``validation_loss_curve_`` (log-loss) next to the training
``loss_curve_``, with or without early stopping (scikit-learn's MLP only records a validation
score with ``early_stopping=True``, on a split it makes itself). Two networks are trained on a
small training set (300 images, so that overfitting shows within 150 epochs): one without
regularization and one with ``dropout=0.5``. The curves show the training loss falling all the
way while the validation loss reaches its lowest point early and then rises again (overfitting);
with dropout the training loss stays higher and, in this run, the validation loss lower.

Writes ``digits_learning_curves.png`` to ``--out`` (default ``examples/output/``).
``FASTBP_EXAMPLE_QUICK=1`` trains a smaller network for fewer epochs.
"""

import argparse
import os
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from fastbp import MLPClassifier  # noqa: E402

QUICK = os.environ.get("FASTBP_EXAMPLE_QUICK", "") not in ("", "0")
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "output")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for the PNG (created if missing)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # max_iter is the plan here

    X, y = load_digits(return_X_y=True)
    X = X / 16.0  # pixels in [0, 1]
    # 300 training images, 500 validation images (monitored every epoch), the rest (997) for the
    # test (touched once, at the end)
    X_train, X_rest, y_train, y_rest = train_test_split(X, y, train_size=300, stratify=y, random_state=0)
    X_val, X_test, y_val, y_test = train_test_split(X_rest, y_rest, train_size=500, stratify=y_rest, random_state=0)

    hidden, epochs = ((32,), 15) if QUICK else ((256,), 150)
    common = dict(
        hidden_layer_sizes=hidden,
        learning_rate_init=0.01,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=epochs,  # run every epoch: the point is to see the whole curve
        random_state=0,
    )
    models = {
        "no regularization (alpha=0)": MLPClassifier(alpha=0.0, **common),
        "dropout=0.5": MLPClassifier(alpha=0.0, dropout=0.5, **common),
    }

    fig, (ax_train, ax_val, ax_acc) = plt.subplots(1, 3, figsize=(14, 4.2))
    for (label, clf), color in zip(models.items(), ("tab:red", "tab:blue")):
        t0 = time.perf_counter()
        clf.fit(X_train, y_train, X_val=X_val, y_val=y_val)
        fit_s = time.perf_counter() - t0
        epoch = np.arange(1, clf.n_iter_ + 1)
        best = int(np.argmin(clf.validation_loss_curve_))
        print(
            f"{label:28s} {clf.n_iter_} epochs in {fit_s:.2f} s; lowest validation loss "
            f"{clf.validation_loss_curve_[best]:.4f} at epoch {best + 1}; final validation accuracy "
            f"{clf.validation_scores_[-1]:.4f}; test accuracy {clf.score(X_test, y_test):.4f}"
        )
        ax_train.plot(epoch, clf.loss_curve_, color=color, label=label)
        ax_val.plot(epoch, clf.validation_loss_curve_, color=color, label=label)
        ax_val.plot(best + 1, clf.validation_loss_curve_[best], "o", color=color)
        ax_acc.plot(epoch, clf.validation_scores_, color=color, label=label)

    ax_train.set(title="training loss (loss_curve_)", xlabel="epoch", ylabel="log-loss", yscale="log")
    ax_val.set(title="validation loss (validation_loss_curve_)\n(dot: lowest)", xlabel="epoch",
               ylabel="log-loss", yscale="log")
    ax_acc.set(title="validation accuracy (validation_scores_)", xlabel="epoch", ylabel="accuracy")
    ax_acc.set_ylim(max(0.0, min(min(m.validation_scores_) for m in models.values()) - 0.02), 1.0)
    for ax in (ax_train, ax_val, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"fastbp MLPClassifier{hidden}, adam lr 0.01, on the digits: {len(X_train)} train / "
        f"{len(X_val)} validation samples",
        fontsize=10,
    )
    fig.tight_layout()
    path = os.path.join(args.out, "digits_learning_curves.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
