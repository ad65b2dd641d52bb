"""The kernels' BLAS product (fastbp.kernels.blas.gemm): plain loops, one BLAS call, or
two on halves of C's rows (the split chosen for OpenBLAS's small-matrix kernel)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from fastbp import MLPClassifier
from fastbp.engine import cpu as _engine
from fastbp.kernels.blas import gemm
from fastbp.kernels.config import SPLIT_GEMM_WORK


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m", [32, 33, 17])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_gemm_split_in_halves_matches_numpy(dtype, trans_a, trans_b, m, beta):
    rng = np.random.default_rng(m)
    n, k = 40, 50  # m * n * k between split_work and twice that: two products of ~half the rows
    A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    C0 = rng.standard_normal((m, n)).astype(dtype)
    expected = 0.5 * ((A.T if trans_a else A).astype(np.float64) @ (B.T if trans_b else B)) + beta * C0
    split_work = np.int64(m * n * k * 2 // 3)
    for work in (np.int64(0), split_work):
        C = C0.copy()
        gemm(trans_a, trans_b, 0.5, A, B, beta, C, work)
        assert_allclose(C, expected, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4 if dtype == np.float32 else 1e-12)


def test_split_work_follows_the_blas_core(monkeypatch):
    cores = {"value": []}

    class Controller:
        def info(self):
            return [{"internal_api": "openblas", "architecture": core} for core in cores["value"]]

    monkeypatch.setattr(_engine, "_blas_controller", lambda: Controller())
    for value, expected in ((["SkylakeX"], SPLIT_GEMM_WORK), (["SkylakeX", "Haswell"], 0), (["Haswell"], 0),
                            (["Zen"], 0), ([], 0), (["SapphireRapids", "Cooperlake"], SPLIT_GEMM_WORK)):
        cores["value"] = value
        monkeypatch.setattr(_engine, "_split_work", None)
        assert _engine.gemm_split_work() == expected, value


def test_training_with_split_products_matches_unsplit(monkeypatch):
    # every hidden product of this network lies in the split window: the weights
    # agree with the unsplit run to rounding
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 30))
    y = rng.integers(0, 3, 400)
    params = dict(hidden_layer_sizes=(40, 40), batch_size=64, max_iter=3, random_state=0, n_jobs=1)
    monkeypatch.setattr(_engine, "_split_work", 0)
    plain = MLPClassifier(**params).fit(X, y)
    monkeypatch.setattr(_engine, "_split_work", 40 * 40 * 64 * 2 // 3)
    split = MLPClassifier(**params).fit(X, y)
    for a, b in zip(plain.coefs_ + plain.intercepts_, split.coefs_ + split.intercepts_):
        assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("m", [1, 7, 8, 9, 40])
def test_gather_rows_with_prefetch_matches_fancy_indexing(dtype, layout, m):
    # the gather requests rows GATHER_AHEAD ahead before copying: batches shorter
    # and longer than that, rows anywhere in X (first, last), every layout
    from fastbp.kernels.config import GATHER_AHEAD
    from fastbp.kernels.layers import gather_rows

    assert 1 < GATHER_AHEAD < 40
    rng = np.random.default_rng(m)
    full = rng.standard_normal((60, 2 * 37)).astype(dtype)
    X = {"C": np.ascontiguousarray(full[:, :37]), "F": np.asfortranarray(full[:, :37]), "strided": full[:, ::2]}[layout]
    rows = rng.permutation(60)
    rows[:2] = (59, 0)
    data = _engine.InputData(X, dtype)  # X's memory and strides, as the kernels read it
    base, strides = data.arrays()[:2]
    assert layout == "C" or strides[1] != 1
    for start in (0, 60 - m):
        out = np.full((m, X.shape[1]), np.nan, dtype=dtype)
        gather_rows(base, strides[0], strides[1], rows, start, m, out)
        np.testing.assert_array_equal(out, X[rows[start:start + m]])


def test_prefetch_compiles_for_any_array_and_has_no_effect():
    from numba import njit

    from fastbp.kernels.blas import prefetch

    @njit(cache=False)
    def touch(a, b, i):
        prefetch(a, i)
        prefetch(b, i * 3)
        prefetch(a, i + 10**9)  # far outside: a prefetch never faults
        return a[i] + b[0, 0]

    a = np.arange(10, dtype=np.float32)
    b = np.ones((4, 3))
    assert touch(a, b, np.uint64(2)) == 3.0
    assert touch(a, b, 2) == 3.0
    np.testing.assert_array_equal(a, np.arange(10, dtype=np.float32))
