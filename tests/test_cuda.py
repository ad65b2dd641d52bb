"""The CUDA engine (fastbp._cuda) against tests/naive.py and the CPU engine.

Runs under numba-cuda's simulator (``NUMBA_ENABLE_CUDASIM=1``) or on a real
GPU; skipped otherwise. Sizes are tiny (7 rows, 5 features, hidden (4, 3), 3
outputs) and the launch geometry is patched small (GEMM tiles of 4 with 2x2
outputs per thread, K steps of 2, blocks of 8 threads, reductions over 4
blocks) so that every multi-tile, multi-block and grid-stride path runs.

    NUMBA_ENABLE_CUDASIM=1 NUMBA_CACHE_DIR=/tmp/nbc_cuda python -m pytest -q tests/test_cuda.py -p no:cacheprovider
"""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")

pytest.importorskip("numba_cuda", reason="the CUDA engine needs the numba-cuda package")
if not SIMULATOR:
    from fastbp._cuda import cuda_available

    if not cuda_available():
        pytest.skip("needs NUMBA_ENABLE_CUDASIM=1 or an NVIDIA GPU", allow_module_level=True)

import fastbp  # noqa: E402
from fastbp.engine import cpu as _engine  # noqa: E402
from fastbp.kernels import activations  # noqa: E402
from fastbp.kernels.activations import (  # noqa: E402
    ACT_MAXOUT,
    ACT_SOFTMAX,
    HIDDEN_ACTIVATIONS,
    OUTPUT_ACTIVATIONS,
)
from fastbp.kernels.losses import LOSS_LOG_LOSS, LOSS_PAIRS, LOSS_SQUARED_ERROR  # noqa: E402
from fastbp.kernels.optimizers import STOCHASTIC_SOLVERS  # noqa: E402
from fastbp.engine.network import make_network  # noqa: E402

from . import naive  # noqa: E402

# The simulator computes the dropout hash with NumPy uint64 scalars, whose
# (intended) wrap-around warns.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")

N, D, HIDDEN, N_OUT = 7, 5, (4, 3), 3

from numba import cuda  # noqa: E402  (numba-cuda: skipped above when absent)

from fastbp._cuda import activations as _activations_cuda  # noqa: E402
from fastbp._cuda import losses as _losses_cuda  # noqa: E402


@cuda.jit
def _uniforms(out, seed, batch, start, layer, m, k):
    """The device's dropout uniforms of (seed, batch, start + row, layer, unit), (m, k)."""
    for t in range(cuda.grid(1), m * k, cuda.gridsize(1)):
        i = t // k
        out[t] = _activations_cuda.dropout_uniform(seed, batch, start + i, layer, t - i * k)


@pytest.fixture(scope="module", autouse=True)
def K():
    """The kernels module with a small launch geometry (restored after)."""
    from fastbp._cuda import kernels

    names = ("TILE", "TILE_K", "MICRO", "THREADS", "REDUCE_BLOCKS")
    saved = {name: getattr(kernels, name) for name in names}
    kernels.TILE, kernels.TILE_K, kernels.MICRO, kernels.THREADS, kernels.REDUCE_BLOCKS = 4, 2, 2, 8, 4
    interval = sys.getswitchinterval()
    if SIMULATOR:
        # the simulator polls its block's threads; a shorter GIL switch
        # interval makes a launch about 3x faster
        sys.setswitchinterval(1e-3)
    yield kernels
    sys.setswitchinterval(interval)
    for name, value in saved.items():
        setattr(kernels, name, value)


@pytest.fixture(scope="module")
def cu():
    # the CUDA trainer (engine/cuda.py, reached through engine.cuda_engine()) and the
    # availability checks of fastbp._cuda, under one name
    import types

    from fastbp import _cuda
    from fastbp.engine import cuda_engine

    engine = cuda_engine()
    return types.SimpleNamespace(
        CudaTrainer=engine.CudaTrainer, predict_output=engine.predict_output, check_solver=engine.check_solver,
        require_cuda=_cuda.require_cuda, cuda_available=_cuda.cuda_available,
    )


def _dev(arr):
    from numba import cuda

    return cuda.to_device(np.ascontiguousarray(arr).reshape(-1))


# ---------------------------------------------------------------------------
# the GEMM
# ---------------------------------------------------------------------------
def _gemm_case(K, rng, M, Nc, Kd, trans_a, trans_b, accumulate, dtype):
    a = rng.randn(M, Kd).astype(dtype)
    b = rng.randn(Kd, Nc).astype(dtype)
    c0 = rng.randn(M, Nc).astype(dtype)
    a_stored = a.T.copy() if trans_a else a
    b_stored = b.T.copy() if trans_b else b
    # embed every matrix at an offset inside a bigger flat buffer
    A = np.concatenate([rng.randn(3), a_stored.ravel()]).astype(dtype)
    B = np.concatenate([rng.randn(2), b_stored.ravel(), rng.randn(4)]).astype(dtype)
    C = np.concatenate([np.full(5, 7.0), c0.ravel(), np.full(3, 7.0)]).astype(dtype)
    dA, dB, dC = _dev(A), _dev(B), _dev(C)
    K.gemm(dA, 3, dB, 2, dC, 5, M, Nc, Kd, trans_a=trans_a, trans_b=trans_b, accumulate=accumulate)
    out = dC.copy_to_host()
    expected = a.astype(np.float64) @ b.astype(np.float64) + (c0 if accumulate else 0.0)
    assert_array_equal(out[:5], 7.0)  # nothing written outside C
    assert_array_equal(out[-3:], 7.0)
    return out[5:-3].reshape(M, Nc), expected


def test_gemm_all_transposes_and_ragged_shapes(K):
    rng = np.random.RandomState(0)
    shapes = [(7, 3, 5), (1, 1, 1), (4, 4, 4), (9, 6, 3), (2, 7, 8)]
    for M, Nc, Kd in shapes:
        for trans_a in (False, True):
            for trans_b in (False, True):
                for accumulate in (False, True):
                    got, expected = _gemm_case(K, rng, M, Nc, Kd, trans_a, trans_b, accumulate, np.float64)
                    assert_allclose(got, expected, rtol=1e-12, atol=1e-12,
                                    err_msg=f"{(M, Nc, Kd, trans_a, trans_b, accumulate)}")


def test_gemm_float32_and_other_geometries(K, monkeypatch):
    rng = np.random.RandomState(1)
    got, expected = _gemm_case(K, rng, 7, 5, 6, True, False, False, np.float32)
    assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    for tile, tile_k, micro in ((4, 4, 1), (6, 3, 3)):
        monkeypatch.setattr(K, "TILE", tile)
        monkeypatch.setattr(K, "TILE_K", tile_k)
        monkeypatch.setattr(K, "MICRO", micro)
        for trans_a, trans_b in ((False, False), (True, True)):
            got, expected = _gemm_case(K, rng, 7, 8, 5, trans_a, trans_b, True, np.float64)
            assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# activations and their derivatives
# ---------------------------------------------------------------------------
def _run_activation(K, code, z, bias, n_units, slope=0.01, pieces=1, rate=0.0, seed=0, batch=0, start=0, layer=0):
    m, n_cols = z.shape
    d_pre, d_acts, d_params = _dev(z), _dev(np.zeros((m, n_units))), _dev(np.concatenate([[9.0, 9.0], bias]))
    items = m if code == ACT_SOFTMAX else (m * n_units if code == ACT_MAXOUT else m * n_cols)
    _activations_cuda.bias_activation[K.grid_1d(items), K.THREADS](
        d_pre, 0, d_acts, 0, d_params, 2, m, n_cols, n_units, code, slope, pieces, rate, seed, batch, start, layer
    )
    return d_pre.copy_to_host().reshape(m, n_cols), d_acts.copy_to_host().reshape(m, n_units)


def _run_backprop_activation(K, code, pre, acts, dact, slope=0.01, pieces=1, rate=0.0, seed=0, batch=0, start=0,
                             layer=0):
    m, n_units = dact.shape
    d_dact = _dev(dact)
    # the layer's z and output at nonzero offsets
    d_pre = _dev(np.concatenate([[1.0] * 3, pre.ravel()]))
    d_acts = _dev(np.concatenate([[1.0] * 2, acts.ravel()]))
    d_deltas = _dev(np.concatenate([[5.0] * 3, np.full(pre.size, np.nan)]))
    _activations_cuda.backprop_activation[K.grid_1d(m * n_units), K.THREADS](
        d_dact, d_pre, 3, d_acts, 2, d_deltas, m, n_units, code, slope, pieces, rate, seed, batch, start, layer
    )
    out = d_deltas.copy_to_host()
    assert_array_equal(out[:3], 5.0)
    return out[3:].reshape(pre.shape), d_dact.copy_to_host().reshape(m, n_units)


@pytest.mark.parametrize("name", naive.ALL_HIDDEN_ACTIVATIONS)
def test_hidden_activation_and_derivative_match_naive(K, name):
    rng = np.random.RandomState(2)
    pieces = 2 if name == "maxout" else 1
    units = 3
    z = rng.randn(N, units * pieces) * 2.0
    bias = rng.randn(units * pieces)
    code = HIDDEN_ACTIVATIONS[name]
    pre, acts = _run_activation(K, code, z, bias, units, slope=0.1, pieces=pieces)
    zb = z + bias
    assert_allclose(pre, zb, rtol=0, atol=1e-15)
    assert_allclose(acts, naive.hidden_activation(name, zb, 0.1, pieces), rtol=1e-12, atol=1e-14)
    dact = rng.randn(N, units)
    deltas, _ = _run_backprop_activation(K, code, pre, acts, dact, slope=0.1, pieces=pieces)
    assert_allclose(deltas, naive.hidden_backward(name, zb, dact, 0.1, pieces), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", naive.OUTPUT_ACTIVATIONS)
def test_output_activation_matches_naive(K, name):
    rng = np.random.RandomState(3)
    z = rng.randn(N, N_OUT) * 3.0
    bias = rng.randn(N_OUT)
    _, acts = _run_activation(K, OUTPUT_ACTIVATIONS[name], z, bias, N_OUT)
    assert_allclose(acts, naive.output_activation(name, z + bias), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------
# dropout: the CPU's masks
# ---------------------------------------------------------------------------
def test_dropout_uniforms_are_the_cpus(K):
    from numba import cuda

    m, k = 5, 4
    for seed, batch, start, layer in ((0, 0, 0, 0), (123456789, 17, 40, 2), (2**31 - 1, 3, 7, 1)):
        out = cuda.device_array(m * k)
        _uniforms[K.grid_1d(m * k), K.THREADS](out, seed, batch, start, layer, m, k)
        expected = [activations.dropout_uniform(seed, batch, start + i, layer, j) for i in range(m) for j in range(k)]
        assert_array_equal(out.copy_to_host(), expected)


def test_dropout_forward_and_backward_masks_are_the_cpus(K):
    rng = np.random.RandomState(4)
    rate, seed, batch, start, layer = 0.4, 99, 5, 3, 1
    for name in ("tanh", "relu", "maxout"):
        pieces = 2 if name == "maxout" else 1
        code = HIDDEN_ACTIVATIONS[name]
        z = rng.randn(N, 4 * pieces)
        bias = rng.randn(4 * pieces)
        pre, acts = _run_activation(K, code, z, bias, 4, pieces=pieces, rate=rate, seed=seed, batch=batch,
                                    start=start, layer=layer)
        cpu_pre, cpu_acts = z.copy(), np.empty((N, 4))
        activations.bias_activation(cpu_pre, bias, cpu_acts, code, 0.01, pieces)
        activations.apply_dropout(cpu_acts, rate, seed, batch, start, layer)
        assert_array_equal(acts == 0.0, cpu_acts == 0.0)
        assert (acts == 0.0).any() and (acts != 0.0).any()
        assert_allclose(acts, cpu_acts, rtol=1e-14, atol=1e-15)
        dact = rng.randn(N, 4)
        deltas, scaled = _run_backprop_activation(K, code, pre, acts, dact, pieces=pieces, rate=rate, seed=seed,
                                                  batch=batch, start=start, layer=layer)
        cpu_dact, cpu_deltas = dact.copy(), np.empty_like(cpu_pre)
        activations.backprop_activation(cpu_dact, cpu_pre, cpu_acts, cpu_deltas, code, 0.01, pieces, rate, seed, batch,
                                     start, layer)
        assert_array_equal(scaled == 0.0, cpu_dact == 0.0)
        assert_allclose(deltas, cpu_deltas, rtol=1e-13, atol=1e-15)


# ---------------------------------------------------------------------------
# output delta and loss of every pair
# ---------------------------------------------------------------------------
def _targets(rng, out_activation, loss, shape):
    if out_activation == "softmax":
        return np.eye(shape[1])[rng.randint(0, shape[1], shape[0])]
    if out_activation == "logistic":
        return rng.randint(0, 2, shape).astype(np.float64)
    if loss == "poisson":
        return rng.poisson(2.0, shape).astype(np.float64)
    return rng.randn(*shape)


@pytest.mark.parametrize("out_activation,loss", list(LOSS_PAIRS))
def test_output_delta_and_loss_match_naive(K, out_activation, loss):
    rng = np.random.RandomState(5)
    z = rng.randn(N, N_OUT)
    y_pred = naive.output_activation(out_activation, z)
    Y = _targets(rng, out_activation, loss, (N, N_OUT))
    huber_delta = 0.5
    poisson_constants = (False, True) if loss == "poisson" else (False,)
    for sw in (None, rng.rand(N) + 0.1):
        for constant in poisson_constants:
            d_acts = _dev(np.concatenate([[0.0] * 4, y_pred.ravel()]))
            d_deltas = _dev(np.full(2 + N * N_OUT, np.nan))
            d_row_loss = _dev(np.zeros(N))
            _losses_cuda.output_delta_loss[K.grid_1d(N), K.THREADS](
                d_acts, 4, _dev(Y), _dev(np.ones(N) if sw is None else sw), int(sw is not None),
                OUTPUT_ACTIVATIONS[out_activation], LOSS_PAIRS[(out_activation, loss)], int(constant), 1e-16,
                huber_delta, d_deltas, 2, d_row_loss, N, N_OUT,
            )
            w = np.ones(N) if sw is None else sw
            delta = d_deltas.copy_to_host()[2:].reshape(N, N_OUT)
            expected = naive.output_delta(out_activation, loss, y_pred, Y, huber_delta) * w[:, None]
            assert_allclose(delta, expected, rtol=1e-12, atol=1e-14)
            per_row = naive.per_sample_loss(out_activation, loss, y_pred, Y, huber_delta)
            if constant:
                per_row = per_row + naive.poisson_deviance_constant(Y)
            assert_allclose(d_row_loss.copy_to_host(), per_row * w, rtol=1e-12, atol=1e-13)


UNKNOWN_CODE = 99


def test_an_unknown_code_computes_nan_not_a_real_branch(K):
    # the CPU's rule on the device: a code past the engine's checks that no
    # branch knows gives NaN (activation, derivative, loss) or NaN weights (the
    # solver), never what the last branch computes
    rng = np.random.RandomState(6)
    z = rng.randn(N, 3)
    _, acts = _run_activation(K, UNKNOWN_CODE, z, rng.randn(3), 3)
    assert np.isnan(acts).all()
    deltas, _ = _run_backprop_activation(K, UNKNOWN_CODE, z, np.tanh(z), rng.randn(N, 3))
    assert np.isnan(deltas).all()
    d_deltas, d_row_loss = _dev(np.zeros(N * N_OUT)), _dev(np.zeros(N))
    _losses_cuda.output_delta_loss[K.grid_1d(N), K.THREADS](
        _dev(rng.rand(N, N_OUT)), 0, _dev(rng.rand(N, N_OUT)), _dev(np.ones(N)), 0, OUTPUT_ACTIVATIONS["identity"],
        UNKNOWN_CODE, 0, 1e-16, 1.0, d_deltas, 0, d_row_loss, N, N_OUT,
    )
    assert np.isnan(d_deltas.copy_to_host()).all() and np.isnan(d_row_loss.copy_to_host()).all()
    n = 10
    S, SX = np.zeros(K.N_S), np.zeros(K.N_X)
    SX[K.X_WEIGHT], SX[K.X_RATE] = 1.0, 0.1
    for solver, finite in ((UNKNOWN_CODE, False), (K.NO_SOLVER, True), (STOCHASTIC_SOLVERS["sgd"], True)):
        d_params = _dev(rng.randn(n))
        K.finish_update[K.grid_1d(n), K.THREADS](
            d_params, _dev(rng.randn(n)), _dev(np.zeros(n)), _dev(np.zeros(n)), n, 6, _dev(S), _dev(SX), 0, 0.0, 0,
            solver, 0, 0.9, 0.9, 0.999, 0.1, 0.001, 0.9, 0.1, 1e-8, 1.0,
        )
        assert np.isfinite(d_params.copy_to_host()).all() == finite, solver


# ---------------------------------------------------------------------------
# the functional API against the CPU's
# ---------------------------------------------------------------------------
def _params(rng, units, pieces_of, dtype=np.float64):
    coefs, intercepts = [], []
    for layer in range(len(units) - 1):
        cols = units[layer + 1] * pieces_of(layer)
        coefs.append((rng.randn(units[layer], cols) * 0.7).astype(dtype))
        intercepts.append((rng.randn(cols) * 0.3).astype(dtype))
    return coefs, intercepts


FUNCTIONAL_CASES = [
    # activation, out_activation, loss, dtype, sparse, weighted, alpha, l1
    (["tanh", "maxout"], "softmax", "log_loss", np.float64, False, True, 0.1, 0.01),
    (["gelu", "leaky_relu"], "identity", "huber", np.float64, True, False, 0.0, 0.0),
    ("relu", "logistic", "log_loss", np.float32, False, True, 0.05, 0.0),
]


@pytest.mark.parametrize("case", FUNCTIONAL_CASES, ids=lambda c: f"{c[1]}-{c[2]}-{np.dtype(c[3]).name}")
def test_forward_and_backprop_match_cpu(cu, case):
    activation, out_activation, loss, dtype, sparse, weighted, alpha, l1 = case
    rng = np.random.RandomState(6)
    units = [D, *HIDDEN, N_OUT]
    names = activation if isinstance(activation, list) else [activation] * len(HIDDEN)
    coefs, intercepts = _params(rng, units, lambda l: 2 if l < len(names) and names[l] == "maxout" else 1, dtype)
    X = rng.randn(N, D).astype(dtype)
    if sparse:
        X[rng.rand(N, D) < 0.5] = 0.0
        X = sp.csr_matrix(X)
    Y = _targets(rng, out_activation, loss, (N, N_OUT))
    sw = rng.rand(N) + 0.2 if weighted else None
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)

    cpu_acts = fastbp.forward(coefs, intercepts, X, activation, out_activation)
    gpu_acts = fastbp.forward(coefs, intercepts, X, activation, out_activation, device="cuda")
    assert len(gpu_acts) == len(cpu_acts)
    for got, expected in zip(gpu_acts[1:], cpu_acts[1:]):
        assert got.dtype == expected.dtype
        assert_allclose(got, expected, **tol)

    kwargs = dict(alpha=alpha, sample_weight=sw, l1=l1)
    cpu = fastbp.backprop(coefs, intercepts, X, Y, activation, out_activation, loss, **kwargs)
    gpu = fastbp.backprop(coefs, intercepts, X, Y, activation, out_activation, loss, device="cuda", **kwargs)
    assert_allclose(gpu.loss, cpu.loss, **tol)
    for name in ("coef_grads", "intercept_grads", "deltas"):
        for got, expected in zip(getattr(gpu, name), getattr(cpu, name)):
            assert got.shape == expected.shape and got.dtype == expected.dtype
            assert_allclose(got, expected, **tol, err_msg=name)
    for got, expected in zip(gpu.activations[1:], cpu.activations[1:]):
        assert_allclose(got, expected, **tol)


# ---------------------------------------------------------------------------
# CudaTrainer against the CPU Trainer
# ---------------------------------------------------------------------------
def _problem(dtype, weights="random", dropout=None, sparse=False, seed=7):
    rng = np.random.RandomState(seed)
    X = rng.randn(N, D)
    if sparse:
        X[rng.rand(N, D) < 0.5] = 0.0
        X = sp.csr_matrix(X)
    Y = np.eye(N_OUT)[rng.randint(0, N_OUT, N)]
    if isinstance(weights, str):  # "random"
        sw = (rng.rand(N) + 0.5).astype(dtype)
    elif weights is None:
        sw = None
    else:
        sw = np.asarray(weights, dtype=dtype)
    network = make_network([D, *HIDDEN, N_OUT], ["tanh", "relu"], "softmax", dropout=dropout)
    flat = (rng.randn(network.n_params) * 0.5).astype(dtype)
    return network, X, Y.astype(dtype), sw, flat


def _trainers(cu, network, X, Y, sw, icfg, fcfg, batch_rows, dtype):
    cpu = _engine.Trainer(network, _engine.InputData(X, dtype), Y, sw, icfg, fcfg, batch_rows)
    gpu = cu.CudaTrainer(network, _engine.InputData(X, dtype), Y, sw, icfg, fcfg, batch_rows)
    return cpu, gpu


SOLVER_CASES = [
    # solver, options, dropout on the first hidden layer
    ("sgd", dict(momentum=0.9, nesterovs_momentum=False), False),
    ("sgd", dict(momentum=0.9, nesterovs_momentum=True, l1=1e-3), True),
    ("adam", dict(l1=1e-3), True),
    ("adamw", dict(weight_decay=0.1), False),
    ("rmsprop", dict(rho=0.8), False),
    ("adagrad", dict(), False),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "solver,options,dropout", SOLVER_CASES,
    ids=[f"{s}{'-nesterov' if o.get('nesterovs_momentum') else ''}{'-dropout' if d else ''}" for s, o, d in SOLVER_CASES],
)
def test_train_epoch_matches_cpu(cu, solver, options, dropout, dtype):
    network, X, Y, sw, flat0 = _problem(dtype, dropout=[0.3, 0.0] if dropout else None)
    icfg, fcfg = _engine.make_config(
        LOSS_LOG_LOSS, solver_code=STOCHASTIC_SOLVERS[solver], seed=11, alpha=1e-2, clip=float(np.finfo(dtype).eps),
        **options,
    )
    batch_size = 3
    cpu, gpu = _trainers(cu, network, X, Y, sw, icfg, fcfg, batch_size, dtype)
    two = solver in ("adam", "adamw")
    results = []
    for trainer in (cpu, gpu):
        flat = flat0.copy()
        s1 = np.zeros_like(flat)
        s2 = np.zeros_like(flat) if two else np.zeros(0, dtype)
        counters = _engine.new_counters()
        totals = []
        for epoch, rate in enumerate((0.05, 0.03)):
            rows = np.random.RandomState(epoch).permutation(N).astype(np.int64)
            if epoch == 0:
                totals.append(trainer.train_epoch(flat, rows, batch_size, 0, 3, s1, s2, counters, rate))
            else:  # an epoch in two calls, as the estimator runs long epochs
                total = trainer.train_epoch(flat, rows, batch_size, 0, 1, s1, s2, counters, rate)
                totals.append(trainer.train_epoch(flat, rows, batch_size, 1, 3, s1, s2, counters, rate, total))
        if trainer is gpu:
            assert_array_equal(flat, flat0)  # the host copy is stale until to_host
            gpu.to_host()
        results.append((flat, s1, s2, counters, np.array(totals)))
    (f_cpu, a_cpu, b_cpu, c_cpu, t_cpu), (f_gpu, a_gpu, b_gpu, c_gpu, t_gpu) = results
    tol = dict(rtol=0, atol=1e-10) if dtype == np.float64 else dict(rtol=0, atol=1e-4)
    assert_array_equal(c_gpu, c_cpu)
    assert_allclose(f_gpu, f_cpu, **tol)
    assert_allclose(a_gpu, a_cpu, **tol)
    assert_allclose(b_gpu, b_cpu, **tol)
    assert_allclose(t_gpu, t_cpu, rtol=1e-10 if dtype == np.float64 else 1e-5)
    assert not np.allclose(f_gpu, flat0)


def test_zero_weight_batch_is_skipped_like_cpu(cu):
    dtype = np.float64
    sw = np.array([1.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.5])  # batch 1 (rows 3..5) weighs nothing
    network, X, Y, sw, flat0 = _problem(dtype, weights=sw)
    icfg, fcfg = _engine.make_config(LOSS_LOG_LOSS, solver_code=STOCHASTIC_SOLVERS["adam"], alpha=1e-3)
    cpu, gpu = _trainers(cu, network, X, Y, sw, icfg, fcfg, 3, dtype)
    rows = np.arange(N, dtype=np.int64)
    out = []
    for trainer in (cpu, gpu):
        flat, s1, s2, counters = flat0.copy(), np.zeros_like(flat0), np.zeros_like(flat0), _engine.new_counters()
        total = trainer.train_epoch(flat, rows, 3, 0, 3, s1, s2, counters, 0.01)
        if trainer is gpu:
            gpu.to_host()
        out.append((flat, s2, counters, total))
    assert_array_equal(out[1][2], [2, 3])  # 2 Adam steps, 3 batches
    assert_array_equal(out[1][2], out[0][2])
    assert_allclose(out[1][0], out[0][0], rtol=0, atol=1e-12)
    assert_allclose(out[1][1], out[0][1], rtol=0, atol=1e-12)
    assert_allclose(out[1][3], out[0][3], rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_and_gradient_and_dataset_loss_match_cpu(cu, dtype):
    network, X, Y, sw, flat = _problem(dtype, dropout=[0.5, 0.0])  # no dropout in full-batch passes
    icfg, fcfg = _engine.make_config(LOSS_LOG_LOSS, alpha=0.1, l1=0.01, clip=float(np.finfo(dtype).eps))
    cpu, gpu = _trainers(cu, network, X, Y, sw, icfg, fcfg, 4, dtype)
    rows = np.array([6, 0, 2, 5, 1, 3], dtype=np.int64)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    for chunk in (None, 3, 1):  # several chunks: the gradient sums accumulate
        loss_cpu = cpu.loss_and_gradient(flat, rows, chunk=chunk)
        loss_gpu = gpu.loss_and_gradient(flat, rows, chunk=chunk)
        assert_allclose(loss_gpu, loss_cpu, **tol)
        assert_allclose(gpu.ws.grads, cpu.ws.grads, **tol)
    assert_allclose(gpu.dataset_loss(flat, rows), cpu.dataset_loss(flat, rows), **tol)


def test_sparse_input_matches_cpu(cu):
    dtype = np.float64
    network, X, Y, sw, flat0 = _problem(dtype, sparse=True)
    icfg, fcfg = _engine.make_config(LOSS_LOG_LOSS, solver_code=STOCHASTIC_SOLVERS["sgd"], momentum=0.5,
                                     nesterovs_momentum=False)
    cpu, gpu = _trainers(cu, network, X, Y, sw, icfg, fcfg, 3, dtype)
    rows = np.random.RandomState(3).permutation(N).astype(np.int64)
    flats = []
    for trainer in (cpu, gpu):
        flat, s1, counters = flat0.copy(), np.zeros_like(flat0), _engine.new_counters()
        trainer.train_epoch(flat, rows, 3, 0, 3, s1, np.zeros(0), counters, 0.1)
        if trainer is gpu:
            gpu.to_host()
        flats.append(flat)
    assert_allclose(flats[1], flats[0], rtol=0, atol=1e-12)
    assert_allclose(gpu.loss_and_gradient(flat0, rows), cpu.loss_and_gradient(flat0, rows), rtol=1e-12)
    assert_allclose(gpu.ws.grads, cpu.ws.grads, rtol=1e-10, atol=1e-13)


def test_residency_contract(cu):
    dtype = np.float64
    network, X, Y, sw, flat0 = _problem(dtype, weights=None)
    icfg, fcfg = _engine.make_config(LOSS_SQUARED_ERROR, solver_code=STOCHASTIC_SOLVERS["rmsprop"])
    cpu, gpu = _trainers(cu, network, X, Y, sw, icfg, fcfg, N, dtype)
    rows = np.arange(N, dtype=np.int64)
    flat, s1, counters = flat0.copy(), np.zeros_like(flat0), _engine.new_counters()
    assert not gpu.resident
    gpu.train_epoch(flat, rows, N, 0, 1, s1, np.zeros(0), counters, 0.01)
    assert gpu.resident and counters[1] == 1
    assert_array_equal(flat, flat0)
    # the registered array evaluates the device copy; another array is uploaded
    trained = gpu.to_host(np.empty_like(flat), np.empty_like(s1), np.zeros(0))
    assert_array_equal(flat, flat0)  # to_host into other arrays leaves the registered ones alone
    assert_allclose(gpu.dataset_loss(flat, rows), cpu.dataset_loss(trained, rows), rtol=1e-12)
    assert_allclose(gpu.dataset_loss(flat.copy(), rows), cpu.dataset_loss(flat0, rows), rtol=1e-12)
    assert_allclose(gpu.predict(flat, chunk=3), _engine.predict_output(network, trained, X), rtol=1e-12)
    gpu.to_host()
    assert_array_equal(flat, trained)
    # a changed host vector goes up again with to_device
    flat[:] = flat0
    gpu.to_device(flat, s1, np.zeros(0))
    assert_allclose(gpu.dataset_loss(flat, rows), cpu.dataset_loss(flat0, rows), rtol=1e-12)
    gpu.release()
    assert not gpu.resident
    with pytest.raises(RuntimeError, match="to_device"):
        gpu.to_host()


def test_predict_output_matches_cpu(cu):
    network, X, _, _, flat = _problem(np.float32)
    assert_allclose(cu.predict_output(network, flat, X), _engine.predict_output(network, flat, X), rtol=1e-5,
                    atol=1e-6)


# ---------------------------------------------------------------------------
# unsupported solvers, availability, lazy import
# ---------------------------------------------------------------------------
def test_lm_is_not_supported(cu):
    with pytest.raises(ValueError, match="Levenberg-Marquardt"):
        cu.check_solver("lm")
    for solver in ("sgd", "adam", "adamw", "rmsprop", "adagrad", "lbfgs", "rprop", "quickprop"):
        cu.check_solver(solver)
    network, X, Y, sw, flat = _problem(np.float64)
    icfg, fcfg = _engine.make_config(LOSS_LOG_LOSS)
    trainer = cu.CudaTrainer(network, X, Y, sw, icfg, fcfg, N)
    with pytest.raises(NotImplementedError, match="lm"):
        trainer.jacobian(flat, np.arange(N), np.ones(N), np.empty((N * N_OUT, network.n_params)))


def test_require_cuda_says_what_is_missing(cu, monkeypatch):
    from numba import cuda

    cu.require_cuda()
    assert cu.cuda_available()
    base = (
        "device='cuda' needs an NVIDIA GPU with a working driver and the numba-cuda package: "
        "pip install 'fastbp[cuda]'"
    )

    # no GPU / no driver
    monkeypatch.setattr(cuda, "is_available", lambda: False)
    monkeypatch.setattr(cuda, "cuda_error", lambda: "CUDA driver library cannot be found.")
    with pytest.raises(RuntimeError) as info:
        cu.require_cuda()
    assert str(info.value).startswith(base)
    assert "No NVIDIA GPU or driver was found (CUDA driver library cannot be found.)" in str(info.value)
    assert not cu.cuda_available()
    monkeypatch.undo()

    # numba-cuda not installed
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "numba_cuda" else real_find_spec(name, *a)
    )
    with pytest.raises(RuntimeError) as info:
        cu.require_cuda()
    assert str(info.value).startswith(base)
    assert "The numba-cuda package is not installed." in str(info.value)
    assert not cu.cuda_available()
    from fastbp.engine import cuda_engine

    with pytest.raises(RuntimeError, match="numba-cuda package is not installed"):
        cuda_engine()  # the engine is reached through require_cuda


def test_importing_fastbp_does_not_import_cuda():
    code = (
        "import sys, fastbp, fastbp._cuda\n"
        "fastbp.MLPClassifier(); fastbp._cuda.__doc__\n"
        "bad = [m for m in sys.modules if m == 'numba.cuda' or m.startswith(('numba.cuda.', 'numba_cuda'))]\n"
        "assert not bad, bad\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=root, timeout=300)
