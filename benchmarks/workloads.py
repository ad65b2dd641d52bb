"""The benchmark workloads of shared/BENCHMARKS.md, shared by the asv suite and ``peers.py``.

Nothing here is a benchmark (asv imports every module of this folder and only collects names
starting with ``time_``, ``peakmem_``, ``track_``, ... ).

Data, exactly as BENCHMARKS.md says, with the order of the draws fixed here::

    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)).astype(dtype)        # 1st draw
    W = rng.standard_normal((d, classes))                # 2nd draw
    noise = rng.standard_normal((n, classes))            # 3rd draw
    y = argmax(X @ W + 0.5 * noise, axis=1)

A held-out set (for accuracy tracking) continues the same generator afterwards, so the training
data does not depend on whether a test set was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Workload:
    name: str
    n: int
    d: int
    hidden: tuple
    classes: int
    batch: int
    stresses: str

    @property
    def layer_sizes(self):
        return (self.d, *self.hidden, self.classes)

    @property
    def n_weights(self):
        """P: the number of weights (biases not counted)."""
        s = self.layer_sizes
        return sum(a * b for a, b in zip(s[:-1], s[1:]))

    @property
    def n_params(self):
        s = self.layer_sizes
        return self.n_weights + sum(s[1:])

    @property
    def flops_per_epoch(self):
        """n * (6 P - 2 d h1): forward 2P, delta recursion 2P less the input layer, gradients 2P."""
        return self.n * (6 * self.n_weights - 2 * self.d * self.hidden[0])

    @property
    def batches_per_epoch(self):
        return -(-self.n // self.batch)


WORKLOADS = {
    "S": Workload("S", 50_000, 64, (128, 128), 10, 128, "small tabular net: per-batch overhead"),
    "M": Workload("M", 60_000, 784, (256, 128), 10, 256, "MNIST-shaped: mixed"),
    "L": Workload("L", 16_384, 1024, (1024, 1024), 10, 512, "wide: GEMM-bound"),
    "O": Workload("O", 5_000, 64, (64,), 10, 1, "online SGD, one sample per step"),
}

# Adam learning rate of every workload (BENCHMARKS.md).
LEARNING_RATE = 1e-3


def make_data(workload, dtype="float32", n_test=0, seed=0):
    """``(X, y)`` or, with ``n_test > 0``, ``(X, y, X_test, y_test)`` for a workload.

    X is C-contiguous of the given dtype; y is int64 class labels in ``range(classes)``.
    """
    w = WORKLOADS[workload] if isinstance(workload, str) else workload
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((w.n, w.d)).astype(dtype)
    W = rng.standard_normal((w.d, w.classes))
    noise = rng.standard_normal((w.n, w.classes))
    y = np.argmax(X.astype(np.float64) @ W + 0.5 * noise, axis=1).astype(np.int64)
    if not n_test:
        return X, y
    X_test = rng.standard_normal((n_test, w.d)).astype(dtype)
    noise_test = rng.standard_normal((n_test, w.classes))
    y_test = np.argmax(X_test.astype(np.float64) @ W + 0.5 * noise_test, axis=1).astype(np.int64)
    return X, y, X_test, y_test


def estimator_params(workload, **overrides):
    """MLPClassifier parameters of a workload, as BENCHMARKS.md gives them for scikit-learn.

    One epoch per ``partial_fit`` call (or per ``fit`` with ``max_iter=1``); tol=0 and an
    infinite ``n_iter_no_change`` so that multi-epoch fits never stop early.
    """
    w = WORKLOADS[workload] if isinstance(workload, str) else workload
    params = dict(
        hidden_layer_sizes=w.hidden,
        activation="relu",
        solver="adam",
        learning_rate_init=LEARNING_RATE,
        batch_size=w.batch,
        shuffle=True,
        random_state=0,
        tol=0.0,
        n_iter_no_change=np.inf,
        max_iter=1,
    )
    params.update(overrides)
    return params
