"""Shared fixtures: small data sets, built once per session.

The arrays handed out are float64, C-contiguous and small, so that the suite
compiles few kernel variants and stays fast.  Tests must not modify them in
place (copy first).
"""

import os
import signal
import warnings

import numpy as np
import pytest
from sklearn.datasets import (
    load_digits,
    make_classification,
    make_multilabel_classification,
    make_regression,
)
from sklearn.preprocessing import StandardScaler

# The suite tests the kernels as compiled from this tree and counts compilations
# and cache hits: prebuilt kernels a wheel build left in fastbp/_prebuilt/ are
# not loaded (tests/test_warmup_prebuilt.py turns them on where it tests them).
os.environ.setdefault("FASTBP_PREBUILT", "0")


@pytest.fixture(autouse=True)
def _sigint_handler_kept(request):
    """Each test leaves Python's SIGINT handler as it found it, or it is put back
    with a warning naming the test: processes started while SIGINT is ignored
    inherit that (POSIX), and a subprocess then never sees its Ctrl-C.

    In the CI flow (empty Numba cache) the Ctrl-C test's subprocess once found
    SIGINT ignored while no test had changed Python's handler: the disposition
    was set below Python, which this cannot see; that test's script installs
    its handler itself."""
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before and before is not None:
        signal.signal(signal.SIGINT, before)
        warnings.warn(f"{request.node.nodeid} left SIGINT's handler as {after!r}; put back", RuntimeWarning)


def _standardize(X):
    return StandardScaler().fit_transform(X).astype(np.float64)


@pytest.fixture(scope="session")
def digits():
    """300 digit images, 64 features scaled to [0, 1], 10 classes."""
    X, y = load_digits(return_X_y=True)
    X = np.ascontiguousarray(X[:300] / 16.0, dtype=np.float64)
    return X, y[:300]


@pytest.fixture(scope="session")
def multiclass_data():
    X, y = make_classification(
        n_samples=150,
        n_features=8,
        n_informative=5,
        n_redundant=1,
        n_classes=3,
        random_state=0,
    )
    return _standardize(X), y


@pytest.fixture(scope="session")
def binary_data():
    X, y = make_classification(
        n_samples=120, n_features=6, n_informative=4, n_classes=2, random_state=1
    )
    return _standardize(X), y


@pytest.fixture(scope="session")
def multilabel_data():
    X, Y = make_multilabel_classification(
        n_samples=120, n_features=8, n_classes=4, random_state=2
    )
    return _standardize(X), Y


@pytest.fixture(scope="session")
def regression_data():
    X, y = make_regression(
        n_samples=150, n_features=6, n_informative=4, noise=0.5, random_state=3
    )
    y = (y - y.mean()) / y.std()
    return _standardize(X), y


@pytest.fixture(scope="session")
def multioutput_regression_data():
    X, Y = make_regression(
        n_samples=130, n_features=5, n_targets=3, noise=0.5, random_state=4
    )
    Y = (Y - Y.mean(axis=0)) / Y.std(axis=0)
    return _standardize(X), Y


@pytest.fixture(scope="session")
def poisson_data():
    rng = np.random.RandomState(5)
    X = rng.normal(size=(140, 5))
    w = rng.normal(scale=0.4, size=5)
    y = rng.poisson(np.exp(X @ w + 0.3)).astype(np.float64)
    return X, y
