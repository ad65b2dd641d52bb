"""``device=`` on the estimators and the functional API.

Without a GPU (and without the simulator) ``device='cuda'`` must fail with a
clear error before anything changes. Under numba-cuda's simulator
(``NUMBA_ENABLE_CUDASIM=1``, a step of ``.ci/run``) or on a GPU, the estimators
trained on the device agree with the CPU within float32 rounding.
"""

import copy
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

import fastbp
from fastbp import MLPClassifier, MLPRegressor

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
]


def _has_device():
    try:
        from fastbp._cuda import cuda_available
    except ImportError:  # pragma: no cover
        return False
    return cuda_available()


def _data(n=24, d=5, classes=3, dtype=np.float32):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)).astype(dtype)
    return X, rng.integers(0, classes, n)


def test_device_is_validated():
    X, y = _data()
    with pytest.raises(ValueError, match="device"):
        MLPClassifier(device="gpu", max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="device"):
        fastbp.forward([np.ones((5, 2))], [np.zeros(2)], X, device="tpu")


def test_cpu_path_never_imports_cuda():
    code = (
        "import sys, numpy as np, fastbp\n"
        "X = np.random.default_rng(0).standard_normal((30, 3)); y = np.arange(30) % 2\n"
        "m = fastbp.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2).fit(X, y); m.predict(X)\n"
        "fastbp.forward(m.coefs_, m.intercepts_, X)\n"
        "assert not any(k.startswith(('numba.cuda', 'numba_cuda')) for k in sys.modules), 'CUDA imported'\n"
    )
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True)


@pytest.mark.skipif(SIMULATOR or _has_device(), reason="a CUDA device (or the simulator) is present")
def test_cuda_without_a_gpu_is_a_clear_error():
    X, y = _data()
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
    before = copy.deepcopy(est.coefs_)
    est.set_params(device="cuda", warm_start=True)
    with pytest.raises(RuntimeError, match=r"device='cuda' needs an NVIDIA GPU.*pip install 'fastbp\[cuda\]'"):
        est.fit(X, y)
    for a, b in zip(before, est.coefs_):
        assert np.array_equal(a, b)
    with pytest.raises(RuntimeError, match="needs an NVIDIA GPU"):
        est.predict(X)
    with pytest.raises(RuntimeError, match="needs an NVIDIA GPU"):
        fastbp.backprop(est.coefs_, est.intercepts_, X, np.ones((len(X), 3)), out_activation="softmax",
                        loss="log_loss", device="cuda")
    # the same model keeps working on the CPU
    est.set_params(device="cpu")
    assert est.predict(X).shape == y.shape


# --------------------------------------------------------------------------
# on the device (simulator or GPU)
# --------------------------------------------------------------------------
needs_device = pytest.mark.skipif(not (SIMULATOR or _has_device()), reason="needs NUMBA_ENABLE_CUDASIM=1 or a GPU")


@pytest.fixture
def small_launch():
    """Small GEMM tiles so that multi-tile paths run at these sizes (as tests/test_cuda.py)."""
    from fastbp._cuda import kernels

    names = ("TILE", "TILE_K", "MICRO", "THREADS", "REDUCE_BLOCKS")
    saved = {name: getattr(kernels, name) for name in names}
    kernels.TILE, kernels.TILE_K, kernels.MICRO, kernels.THREADS, kernels.REDUCE_BLOCKS = 4, 2, 2, 8, 4
    interval = sys.getswitchinterval()
    if SIMULATOR:
        sys.setswitchinterval(1e-3)
    yield
    sys.setswitchinterval(interval)
    for name, value in saved.items():
        setattr(kernels, name, value)


def _fit_both(cls, X, y, **params):
    cpu = cls(**params).fit(X, y)
    gpu = cls(device="cuda", **params).fit(X, y)
    return cpu, gpu


@needs_device
@pytest.mark.parametrize(
    "params",
    [
        dict(solver="adam", batch_size=8),
        dict(solver="sgd", batch_size=5, momentum=0.9, dropout=0.25),
        dict(solver="rmsprop", batch_size=10, activation="tanh", alpha=1e-2),
    ],
    ids=["adam", "sgd-dropout", "rmsprop-tanh"],
)
def test_classifier_two_epochs_match_cpu(small_launch, params):
    X, y = _data()
    common = dict(hidden_layer_sizes=(6, 4), max_iter=2, random_state=0, learning_rate_init=0.01, n_jobs=1)
    cpu, gpu = _fit_both(MLPClassifier, X, y, **common, **params)
    for a, b in zip(cpu.coefs_ + cpu.intercepts_, gpu.coefs_ + gpu.intercepts_):
        assert isinstance(b, np.ndarray) and b.dtype == np.float32
        assert np.max(np.abs(a - b)) < 1e-4
    assert gpu.n_iter_ == cpu.n_iter_ == 2
    assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-4)
    assert_allclose(gpu.predict_proba(X), cpu.predict_proba(X), atol=1e-4)


@needs_device
@pytest.mark.parametrize("solver", ["lbfgs", "rprop"])
def test_regressor_full_batch_matches_cpu(small_launch, solver):
    X, _ = _data(dtype=np.float64)
    y = X @ np.arange(1.0, 6.0)
    cpu, gpu = _fit_both(MLPRegressor, X, y, hidden_layer_sizes=(5,), solver=solver, max_iter=5, random_state=0)
    for a, b in zip(cpu.coefs_, gpu.coefs_):
        assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    assert_allclose(gpu.predict(X), cpu.predict(X), rtol=1e-8, atol=1e-10)


@needs_device
def test_early_stopping_and_lm_on_device(small_launch):
    X, y = _data(n=40)
    params = dict(hidden_layer_sizes=(4,), max_iter=3, random_state=0, early_stopping=True,
                  validation_fraction=0.25, n_iter_no_change=10, batch_size=10)
    cpu, gpu = _fit_both(MLPClassifier, X, y, **params)
    assert_allclose(gpu.validation_scores_, cpu.validation_scores_)
    for a, b in zip(cpu.coefs_, gpu.coefs_):
        assert np.max(np.abs(a - b)) < 1e-4
    with pytest.raises(ValueError, match="lm"):
        MLPRegressor(solver="lm", device="cuda").fit(X, y.astype(float))


@needs_device
def test_functional_api_on_device(small_launch):
    X, y = _data(dtype=np.float64)
    Y = np.eye(3)[y]
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cpu = fastbp.backprop(est.coefs_, est.intercepts_, X, Y, out_activation="softmax", loss="log_loss")
        gpu = fastbp.backprop(est.coefs_, est.intercepts_, X, Y, out_activation="softmax", loss="log_loss",
                              device="cuda")
    assert_allclose(gpu.loss, cpu.loss, rtol=1e-10)
    for a, b in zip(cpu.coef_grads + cpu.deltas, gpu.coef_grads + gpu.deltas):
        assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    outs = fastbp.forward(est.coefs_, est.intercepts_, X, out_activation="softmax", device="cuda")
    assert_allclose(outs[-1], est.predict_proba(X), rtol=1e-8)
