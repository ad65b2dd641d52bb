"""Dask: dask arrays in fit on a real local cluster (two worker processes), dask-ml's
Incremental, GridSearchCV under joblib's dask backend, and the out-of-core example.

Every in-memory reference fit runs before its distributed twin, so the workers
find its kernels in Numba's cache (they inherit NUMBA_CACHE_DIR) instead of
compiling them again.
"""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
import dask  # noqa: E402

from fastbp import MLPClassifier, MLPRegressor  # noqa: E402
from fastbp.engine.dask import is_dask_collection  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 400  # 1500 rows: blocks of 400, 400, 400 and 300


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    client = distributed.Client(cluster)
    # the worker processes inherit the environment: the client's Numba cache is theirs
    cache_dirs = client.run(lambda: os.environ.get("NUMBA_CACHE_DIR"))
    assert set(cache_dirs.values()) == {os.environ.get("NUMBA_CACHE_DIR")}
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def classification():
    X, y = make_classification(
        n_samples=1500, n_features=8, n_informative=6, n_redundant=0, n_classes=3, class_sep=1.5, random_state=0
    )
    sample_weight = np.random.RandomState(1).uniform(0.2, 2.0, size=y.shape[0])
    return X, y, sample_weight


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=1500, n_features=8, n_informative=5, noise=0.5, random_state=2)
    sample_weight = np.random.RandomState(3).uniform(0.2, 2.0, size=y.shape[0])
    return X, y / y.std(), sample_weight


def _quiet_fit(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def _flat(est):
    return np.concatenate([w.ravel() for w in est.coefs_ + est.intercepts_]).astype(np.float64)


def _relative_difference(a, b):
    wa, wb = _flat(a), _flat(b)
    return np.max(np.abs(wa - wb)) / np.max(np.abs(wa))


def _chunked(*arrays):
    return [None if a is None else da.from_array(a, chunks=(CHUNK,) + a.shape[1:]) for a in arrays]


def _assert_same_attributes(a, b):
    for name in ("n_features_in_", "n_outputs_", "n_layers_", "out_activation_", "n_iter_"):
        assert getattr(a, name) == getattr(b, name), name
    if hasattr(a, "classes_"):
        assert_array_equal(a.classes_, b.classes_)
    assert [c.shape for c in a.coefs_] == [c.shape for c in b.coefs_]
    assert all(c.dtype == a.coefs_[0].dtype for c in b.coefs_ + b.intercepts_)


# --------------------------------------------------------------------------
# full batch: the blocks' sums on the workers, the step on the client
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind, dtype, weights",
    [
        ("classifier", np.float64, "dask"),
        ("classifier", np.float32, None),
        ("regressor", np.float64, "numpy"),
        ("regressor", np.float32, "dask"),
    ],
)
def test_lbfgs_equals_in_memory(client, classification, regression, kind, dtype, weights):
    X, y, sw = classification if kind == "classifier" else regression
    X = X.astype(dtype)
    sw = None if weights is None else sw
    Est = MLPClassifier if kind == "classifier" else MLPRegressor
    # float32 rounding grows along the L-BFGS path: a shorter path, a looser bound
    max_iter, rtol = (50, 1e-6) if dtype == np.float64 else (15, 1e-3)
    params = dict(hidden_layer_sizes=(12,), solver="lbfgs", max_iter=max_iter, alpha=1e-3, random_state=0)
    local = _quiet_fit(Est(**params), X, y, sample_weight=sw)
    Xd, yd, swd = _chunked(X, y, sw)
    if weights == "numpy":
        swd = sw  # a NumPy sample_weight is chunked like X
    remote = _quiet_fit(Est(**params), Xd, yd, sample_weight=swd)
    assert _relative_difference(local, remote) < rtol
    assert remote.loss_ == pytest.approx(local.loss_, rel=rtol)
    _assert_same_attributes(local, remote)
    assert remote.coefs_[0].dtype == dtype
    assert not hasattr(remote, "loss_curve_")  # as after an in-memory lbfgs fit


def test_lbfgs_class_weight_and_local_scheduler(client, classification):
    X, y, sw = classification
    params = dict(hidden_layer_sizes=(12,), solver="lbfgs", max_iter=40, class_weight="balanced", random_state=0)
    y = np.where(y == 2, 1, y)  # unbalanced: 500 / 1000
    local = _quiet_fit(MLPClassifier(**params), X, y, sample_weight=sw)
    Xd, yd, swd = _chunked(X, y, sw)
    remote = _quiet_fit(MLPClassifier(**params), Xd, yd, sample_weight=swd)
    assert _relative_difference(local, remote) < 1e-6
    with dask.config.set(scheduler="sync"):  # no cluster: the blocks are computed in this process
        in_process = _quiet_fit(MLPClassifier(**params), Xd, yd, sample_weight=swd)
    assert _relative_difference(local, in_process) < 1e-6


@pytest.mark.parametrize("solver", ["rprop", "quickprop"])
def test_rprop_quickprop_equal_in_memory(client, classification, solver):
    X, y, _ = classification
    params = dict(hidden_layer_sizes=(12,), solver=solver, max_iter=20, learning_rate_init=0.01, random_state=0)
    local = _quiet_fit(MLPClassifier(**params), X, y)
    remote = _quiet_fit(MLPClassifier(**params), *_chunked(X, y))
    assert _relative_difference(local, remote) < 1e-6
    assert_allclose(remote.loss_curve_, local.loss_curve_, rtol=1e-9)
    _assert_same_attributes(local, remote)
    assert remote.t_ == local.t_ == 20 * X.shape[0]


# --------------------------------------------------------------------------
# mini-batches: the blocks stream through the client
# --------------------------------------------------------------------------
def test_adam_over_blocks(client, classification):
    X, y, _ = classification
    params = dict(hidden_layer_sizes=(16,), solver="adam", learning_rate_init=0.01, max_iter=8, random_state=0)
    Xd, yd = _chunked(X, y)
    model = _quiet_fit(MLPClassifier(**params), Xd, yd)
    assert model.score(X, y) > 0.9
    assert model.n_iter_ == len(model.loss_curve_) == 8
    assert model.t_ == 8 * X.shape[0]
    assert model.loss_curve_[-1] < model.loss_curve_[0]
    assert model.n_features_in_ == 8 and list(model.classes_) == [0, 1, 2]
    # the block order and the shuffles come from random_state: reproducible
    again = _quiet_fit(MLPClassifier(**params), Xd, yd)
    assert_array_equal(_flat(model), _flat(again))


def test_adam_one_block_unshuffled_is_the_in_memory_fit(client, classification):
    X, y, _ = classification
    params = dict(hidden_layer_sizes=(16,), solver="adam", max_iter=3, shuffle=False, random_state=0)
    local = _quiet_fit(MLPClassifier(**params), X, y)
    remote = _quiet_fit(MLPClassifier(**params), da.from_array(X, chunks=-1), da.from_array(y, chunks=-1))
    assert_array_equal(_flat(local), _flat(remote))
    assert remote.loss_curve_ == local.loss_curve_


def test_partial_fit_and_validation_data(client, regression):
    X, y, _ = regression
    Xd, yd = _chunked(X, y)
    model = MLPRegressor(hidden_layer_sizes=(8,), learning_rate_init=0.01, random_state=0)
    model.partial_fit(Xd, yd)
    model.partial_fit(Xd, yd)  # one epoch over the blocks per call
    assert model.t_ == 2 * X.shape[0]
    model.partial_fit(Xd.astype(np.float32), yd)
    assert model.coefs_[0].dtype == np.float64  # a fitted model keeps its dtype
    stopped = _quiet_fit(
        MLPRegressor(hidden_layer_sizes=(8,), learning_rate_init=0.01, early_stopping=True, max_iter=30,
                     random_state=0),
        Xd, yd, X_val=X[:200], y_val=y[:200],
    )
    assert len(stopped.validation_scores_) == stopped.n_iter_
    assert stopped.best_validation_score_ > 0.9


@pytest.mark.filterwarnings("ignore:Dask currently has limited support:UserWarning")
def test_dask_dataframe_names_and_string_labels(client, classification):
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X, y, _ = classification
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    labels = pd.Series(np.array(["ant", "bee", "cat"])[y])
    model = _quiet_fit(
        MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=10, random_state=0),
        dd.from_pandas(frame, npartitions=3), dd.from_pandas(labels, npartitions=3),
    )
    assert list(model.feature_names_in_) == list(frame.columns)
    assert list(model.classes_) == ["ant", "bee", "cat"]
    assert set(model.predict(frame)) <= {"ant", "bee", "cat"}


# --------------------------------------------------------------------------
# dask-ml's Incremental and joblib's dask backend: fastbp in the worker processes
# --------------------------------------------------------------------------
def test_incremental_is_partial_fit_over_the_blocks(client, classification):
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, y, _ = classification
    params = dict(hidden_layer_sizes=(8,), learning_rate_init=0.01, random_state=0)
    reference = MLPClassifier(**params)
    for start in range(0, X.shape[0], CHUNK):
        reference.partial_fit(X[start : start + CHUNK], y[start : start + CHUNK], classes=[0, 1, 2])
    Xd, yd = _chunked(X, y)
    incremental = wrappers.Incremental(MLPClassifier(**params), shuffle_blocks=False)
    incremental.fit(Xd, yd, classes=[0, 1, 2])
    assert isinstance(incremental.estimator_, MLPClassifier)
    assert_array_equal(_flat(incremental.estimator_), _flat(reference))
    assert_array_equal(incremental.predict(Xd).compute(), reference.predict(X))


def test_grid_search_with_joblib_dask_backend(client, classification):
    import joblib
    from sklearn.model_selection import GridSearchCV

    X, y, _ = classification
    search = GridSearchCV(
        MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=30, random_state=0),
        {"alpha": [1e-4, 1.0]}, cv=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        local = search.fit(X, y).cv_results_["mean_test_score"]
        with joblib.parallel_backend("dask"), distributed.get_task_stream(client) as tasks:
            remote = search.fit(X, y).cv_results_["mean_test_score"]
    assert len(tasks.data) >= 4  # the fits ran on the workers ...
    assert_array_equal(local, remote)  # ... with the same results


# --------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------
def test_bad_dask_input(client, classification):
    X, y, sw = classification
    Xd, yd = _chunked(X, y)
    model = MLPClassifier(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=3)
    with pytest.raises(ValueError, match="same row chunks"):
        model.fit(Xd, da.from_array(y, chunks=500))
    with pytest.raises(ValueError, match="same row chunks"):
        model.fit(Xd, yd, sample_weight=da.from_array(sw, chunks=300))
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        model.fit(Xd[Xd[:, 0] > 0], yd[Xd[:, 0] > 0])
    with pytest.raises(ValueError, match="rows"):
        model.fit(Xd, y[:-1])
    with pytest.raises(ValueError, match="2D"):
        model.fit(Xd[:, 0], yd)
    with pytest.raises(ValueError, match="solver='lm'"):
        MLPRegressor(solver="lm").fit(Xd, yd.astype(float))
    with pytest.raises(ValueError, match="device='cuda'"):
        MLPClassifier(device="cuda").fit(Xd, yd)
    with pytest.raises(ValueError, match="X_val"):
        MLPClassifier(early_stopping=True).fit(Xd, yd)
    with pytest.raises(TypeError, match="dask arrays"):
        model.fit(dask.delayed(X), yd)
    with pytest.raises(ValueError, match="negative"):
        MLPRegressor(loss="poisson").fit(Xd, yd - 1.0)
    bad = X.copy()
    bad[1234, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(da.from_array(bad, chunks=CHUNK), yd)
    assert not hasattr(model, "coefs_")  # a failed fit leaves the estimator as it was
    fitted = MLPClassifier(hidden_layer_sizes=(4,), random_state=0)
    fitted.partial_fit(Xd, yd, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        fitted.partial_fit(Xd, yd + 1)
    assert fitted.t_ == X.shape[0]


def test_dask_is_imported_only_for_dask_input():
    assert is_dask_collection(da.zeros(3)) and not is_dask_collection(np.zeros(3))
    code = (
        "import sys, numpy as np, fastbp\n"
        "fastbp.MLPRegressor(hidden_layer_sizes=(3,), solver='lbfgs', max_iter=2)"
        ".fit(np.random.rand(30, 3), np.random.rand(30))\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]\n"
    )
    with warnings.catch_warnings():
        subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True, cwd=ROOT, timeout=120)


def test_out_of_core_example_runs():
    env = dict(os.environ, FASTBP_EXAMPLE_QUICK="1")
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "dask_out_of_core.py")],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "lbfgs" in result.stdout and "adam" in result.stdout
    accuracies = [float(line.rsplit(" ", 1)[1]) for line in result.stdout.splitlines() if "accuracy" in line]
    assert len(accuracies) == 2 and min(accuracies) > 0.6


# --------------------------------------------------------------------------
# divergence on the blocks as in memory (issue 20)
# --------------------------------------------------------------------------
SKLEARN_NON_FINITE = "Solver produced non-finite parameter weights."


def _diverging(regression):
    X, y, _ = regression
    X, y = (X * 1e3).astype(np.float32), y.astype(np.float32)
    return X, y, *_chunked(X, y)


def test_divergence_raises_and_keeps_finite_weights(client, regression):
    from fastbp import TrainingDiverged

    X, y, Xd, yd = _diverging(regression)
    params = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=1e12, max_iter=20, random_state=0)
    with pytest.raises(TrainingDiverged) as local:
        MLPRegressor(**params).fit(X, y)
    model = MLPRegressor(**params)
    with pytest.raises(ValueError) as info:
        model.fit(Xd, yd)
    assert isinstance(info.value, TrainingDiverged)
    assert str(info.value).startswith(SKLEARN_NON_FINITE) and "diverged" in str(info.value)
    assert type(info.value) is type(local.value)
    assert all(np.isfinite(w).all() for w in model.coefs_ + model.intercepts_)
    assert np.isfinite(model.predict(Xd)).all()
    # partial_fit: the call's start is kept
    model = MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=1e-3, random_state=0)
    model.partial_fit(*_chunked(X / 1e3, y))
    before = _flat(model)
    model.set_params(learning_rate_init=1e12)
    with pytest.raises(TrainingDiverged):
        model.partial_fit(Xd, yd)
    assert_array_equal(_flat(model), before)


def test_divergence_with_early_stopping_completes_with_a_warning(client, regression):
    X, y, Xd, yd = _diverging(regression)
    model = MLPRegressor(hidden_layer_sizes=(8,), solver="adam", learning_rate_init=1e12, max_iter=20,
                         early_stopping=True, random_state=0)
    with pytest.warns(ConvergenceWarning, match="diverged.*Early stopping ends the fit"):
        model.fit(Xd, yd, X_val=X[:200], y_val=y[:200])
    assert all(np.isfinite(w).all() for w in model.coefs_ + model.intercepts_)
    assert np.isfinite(model.predict(Xd)).all()
