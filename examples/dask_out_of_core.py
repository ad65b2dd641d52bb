"""Training on data that never sits in one process: fastbp with dask.

The data set is a dask array made block by block on the workers (a fixed
"teacher" network labels random inputs), larger than any of its blocks. Two
models learn it on a local dask cluster (two worker processes on 127.0.0.1):

* ``solver='lbfgs'`` (full batch): the blocks are kept on the workers; every
  L-BFGS iteration sends the parameter vector out, each worker computes its
  blocks' loss and gradient with fastbp's compiled kernels, and the client adds
  them up and takes the step. Same weights as an in-memory fit, up to rounding.
* ``solver='adam'`` (mini-batch): the blocks stream through the client, one at
  a time (the next one is made while the current one trains), and are made
  again in every epoch: the data set is never held in memory, anywhere.

Run it with ``python examples/dask_out_of_core.py``; ``FASTBP_EXAMPLE_QUICK=1``
shrinks it to a few seconds (the test suite runs it that way).
"""

import os
import time
import warnings

import numpy as np

QUICK = os.environ.get("FASTBP_EXAMPLE_QUICK") == "1"
N_FEATURES = 20
N_CLASSES = 3
N_SAMPLES = 20_000 if QUICK else 2_000_000  # 160 MB of float32 inputs in full
ROWS_PER_BLOCK = 5_000 if QUICK else 250_000
N_TEST = 5_000 if QUICK else 50_000
LBFGS_ITERATIONS = 20 if QUICK else 100
ADAM_EPOCHS = 2 if QUICK else 5


def teacher_labels(X):
    """Labels of one block: the arg-max of a fixed random two-layer network.

    Parameters
    ----------
    X : ndarray of shape (n_rows, N_FEATURES)
        One block of inputs.

    Returns
    -------
    ndarray of shape (n_rows,)
        Class labels in ``range(N_CLASSES)``.
    """
    rng = np.random.RandomState(1234)
    W1 = rng.normal(size=(X.shape[1], 16))
    W2 = rng.normal(size=(16, N_CLASSES))
    return np.argmax(np.tanh(X @ W1) @ W2, axis=1)


def make_data(n_samples, rows_per_block, seed):
    """A lazy dask data set: X (float32) and its labels, made block by block where computed.

    Parameters
    ----------
    n_samples : int
        Rows.
    rows_per_block : int
        Rows per block (chunk).
    seed : int
        Seed of the inputs' random generator.

    Returns
    -------
    X : dask array of shape (n_samples, N_FEATURES), float32
    y : dask array of shape (n_samples,), int64
    """
    import dask.array as da

    X = da.random.RandomState(seed).standard_normal(
        size=(n_samples, N_FEATURES), chunks=(rows_per_block, N_FEATURES)
    ).astype(np.float32)
    y = X.map_blocks(teacher_labels, drop_axis=1, dtype=np.int64)
    return X, y


def main():
    """Start a two-worker local cluster, train both models on the lazy data, print their scores."""
    from distributed import Client, LocalCluster
    from sklearn.exceptions import ConvergenceWarning

    from fastbp import MLPClassifier

    warnings.simplefilter("ignore", ConvergenceWarning)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster, Client(cluster) as client:
        X, y = make_data(N_SAMPLES, ROWS_PER_BLOCK, seed=0)
        X_test, y_test = (a.compute() for a in make_data(N_TEST, N_TEST, seed=1))
        print(
            f"training set: {X.shape[0]} x {X.shape[1]} float32 ({X.nbytes / 2**20:.0f} MiB) in "
            f"{X.numblocks[0]} blocks of {ROWS_PER_BLOCK} rows; {len(client.scheduler_info()['workers'])} workers"
        )

        tic = time.perf_counter()
        lbfgs = MLPClassifier(hidden_layer_sizes=(32,), solver="lbfgs", max_iter=LBFGS_ITERATIONS, random_state=0)
        lbfgs.fit(X, y)
        print(
            f"lbfgs (full batch on the workers): {lbfgs.n_iter_} iterations in {time.perf_counter() - tic:.1f} s, "
            f"loss {lbfgs.loss_:.4f}, test accuracy {lbfgs.score(X_test, y_test):.3f}"
        )

        tic = time.perf_counter()
        adam = MLPClassifier(
            hidden_layer_sizes=(32,), solver="adam", batch_size=200, learning_rate_init=3e-3,
            max_iter=ADAM_EPOCHS, random_state=0,
        )
        adam.fit(X, y)
        print(
            f"adam (blocks streamed through the client): {adam.n_iter_} epochs in "
            f"{time.perf_counter() - tic:.1f} s, loss {adam.loss_:.4f}, "
            f"test accuracy {adam.score(X_test, y_test):.3f}"
        )


if __name__ == "__main__":  # the worker processes import this file: start the cluster only here
    main()
