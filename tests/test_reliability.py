"""Reliability: a failed call changes nothing, divergence keeps a usable model,
Ctrl-C keeps the last completed step and propagates, concurrent predictions,
determinism, memory-mapped input."""

import copy
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning

from fastbp import MLPClassifier, MLPRegressor
from fastbp.engine import cpu as _engine
from fastbp import TrainingDiverged

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n=120, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.integers(0, classes, n)
    return X, y


def assert_same_state(before, after, path="estimator"):
    """Recursive equality of two estimator states (``__dict__`` deep copies)."""
    if isinstance(before, dict):
        assert isinstance(after, dict), path
        assert list(before) == list(after), f"{path}: keys {sorted(set(before) ^ set(after))}"
        for key in before:
            assert_same_state(before[key], after[key], f"{path}.{key}")
    elif isinstance(before, (list, tuple)):
        assert type(before) is type(after) and len(before) == len(after), path
        for i, (a, b) in enumerate(zip(before, after)):
            assert_same_state(a, b, f"{path}[{i}]")
    elif isinstance(before, np.ndarray):
        assert isinstance(after, np.ndarray) and before.dtype == after.dtype, path
        assert_array_equal(before, after, err_msg=path)
    elif isinstance(before, np.random.RandomState):
        assert_same_state(before.get_state(legacy=False), after.get_state(legacy=False), path)
    elif hasattr(before, "__dict__") and not isinstance(before, type):
        assert type(before) is type(after), path
        assert_same_state(vars(before), vars(after), path)
    elif isinstance(before, float) and np.isnan(before):
        assert np.isnan(after), path
    else:
        assert before == after, path


def _state(est):
    return copy.deepcopy(est.__dict__)


def _fitted(solver="adam", **params):
    X, y = _data()
    base = dict(hidden_layer_sizes=(7,), solver=solver, max_iter=5, random_state=0, learning_rate_init=0.01)
    base.update(params)
    return MLPClassifier(**base).fit(X, y), X, y


# --------------------------------------------------------------------------
# a failed call leaves a fitted model exactly as it was
# --------------------------------------------------------------------------
BAD_CALLS = {
    "nan-in-X": lambda est, X, y: est.partial_fit(np.where(X > 1.5, np.nan, X), y),
    "inf-in-X": lambda est, X, y: est.fit(np.where(X > 1.5, np.inf, X), y),
    "wrong-n-features": lambda est, X, y: est.partial_fit(X[:, :-1], y),
    "unknown-class": lambda est, X, y: est.partial_fit(X, np.where(y == 0, 7, y)),
    "bad-sample-weight": lambda est, X, y: est.partial_fit(X, y, sample_weight=-np.ones(len(y))),
    "bad-param": lambda est, X, y: est.set_params(learning_rate_init=-1.0).partial_fit(X, y),
    "changed-network": lambda est, X, y: est.set_params(warm_start=True, hidden_layer_sizes=(3,)).fit(X, y),
    "y-length": lambda est, X, y: est.partial_fit(X, y[:-1]),
    "validation-data": lambda est, X, y: est.fit(X, y, X_val=X[:, :2], y_val=y),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_leaves_fitted_model_unchanged(case):
    est, X, y = _fitted()
    before = _state(est)
    with pytest.raises((ValueError, TypeError)):
        BAD_CALLS[case](est, X, y)
    state = _state(est)
    # set_params changed a parameter on purpose: compare the fitted state only
    for name in ("learning_rate_init", "warm_start", "hidden_layer_sizes"):
        state[name] = before[name]
    assert_same_state(before, state)


@pytest.mark.parametrize("method", ["fit-warm", "partial_fit", "fit-cold"])
@pytest.mark.parametrize("solver", ["adam", "sgd", "rprop"])
def test_failure_during_training_leaves_model_unchanged(monkeypatch, method, solver):
    if method == "partial_fit" and solver == "rprop":
        pytest.skip("full-batch solvers have no partial_fit")
    est, X, y = _fitted(solver=solver, random_state=np.random.RandomState(3))
    before = _state(est)
    calls = {"n": 0}
    name = "train_epoch" if solver != "rprop" else "loss_and_gradient"
    original = getattr(_engine.Trainer, name)

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        result = original(self, *args, **kwargs)
        if calls["n"] == 2:
            raise RuntimeError("injected failure")
        return result

    monkeypatch.setattr(_engine.Trainer, name, failing)
    with pytest.raises(RuntimeError, match="injected"):
        if method == "partial_fit":
            est.set_params(max_iter=5)
            est.partial_fit(X, y)
            est.partial_fit(X, y)
        else:
            est.set_params(warm_start=method == "fit-warm")
            est.fit(X, y)
    if method == "partial_fit":
        # the first partial_fit succeeded: compare against a model given the same one call
        monkeypatch.setattr(_engine.Trainer, name, original)
        reference, _, _ = _fitted(solver=solver, random_state=np.random.RandomState(3))
        reference.set_params(max_iter=5)
        reference.partial_fit(X, y)
        before = _state(reference)
    state = _state(est)
    state["warm_start"] = before["warm_start"]
    assert_same_state(before, state)
    assert est.predict(X).shape == y.shape


# --------------------------------------------------------------------------
# numerical blow-up
# --------------------------------------------------------------------------
def _regression(scale=100.0):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5)) * scale
    return X, X @ rng.standard_normal(5)


@pytest.mark.parametrize("solver", ["sgd", "adam", "rmsprop", "adagrad"])
def test_divergence_keeps_last_finite_weights(solver):
    X, y = _regression(1e3)
    X, y = X.astype(np.float32), y.astype(np.float32)  # float32 overflows sooner
    est = MLPRegressor(hidden_layer_sizes=(8,), solver=solver, learning_rate_init=1e12, max_iter=50,
                       random_state=0, momentum=0.9)
    with pytest.raises(ValueError, match="diverged.*learning_rate_init.*StandardScaler") as info:
        est.fit(X, y)
    assert isinstance(info.value, TrainingDiverged)
    assert all(np.isfinite(w).all() for w in est.coefs_ + est.intercepts_)
    assert np.isfinite(est.predict(X)).all()
    assert len(est.loss_curve_) == est.n_iter_ and np.isfinite(est.loss_curve_).all()
    assert np.isfinite(est.score(X, y))
    # still usable: training goes on with a small enough learning rate
    est.set_params(learning_rate_init=1e-12, max_iter=2, warm_start=True)
    est.fit(X, y)
    assert np.isfinite(est.predict(X)).all()


SKLEARN_NON_FINITE = (
    "Solver produced non-finite parameter weights. The input data may contain large values and need to be "
    "preprocessed."
)


def test_divergence_error_starts_with_scikit_learns_sentence():
    X, y = _regression(1e3)
    est = MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=1e12, max_iter=50, random_state=0)
    with pytest.raises(ValueError) as info:
        est.fit(X.astype(np.float32), y.astype(np.float32))
    assert str(info.value).startswith(SKLEARN_NON_FINITE + " ")
    assert "diverged" in str(info.value)


def test_divergence_with_early_stopping_keeps_the_best_weights_as_scikit_learn():
    # scikit-learn's issue #29504: the fit completes with the best validation
    # weights (fastbp stops at the divergence and says so in a ConvergenceWarning)
    from sklearn.datasets import load_iris
    from sklearn.neural_network import MLPRegressor as SkMLPRegressor

    X, y = load_iris(return_X_y=True)
    params = dict(hidden_layer_sizes=100, activation="identity", solver="sgd", learning_rate_init=1, max_iter=20,
                  early_stopping=True, n_iter_no_change=10, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = MLPRegressor(**params).fit(X, y)
    diverged = [w for w in caught if issubclass(w.category, ConvergenceWarning) and "diverged" in str(w.message)]
    assert len(diverged) == 1 and "best validation score" in str(diverged[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = SkMLPRegressor(**params).fit(X, y)
    assert all(np.isfinite(w).all() for w in est.coefs_ + est.intercepts_)
    np.testing.assert_allclose(est.predict(X), reference.predict(X), rtol=1e-9)
    assert est.best_validation_score_ == pytest.approx(reference.best_validation_score_, rel=1e-9)


@pytest.mark.parametrize("solver", ["sgd", "adam", "rmsprop", "adagrad"])
def test_divergence_with_early_stopping_completes_in_every_solver(solver):
    X, y = _regression(1e3)
    X, y = X.astype(np.float32), y.astype(np.float32)
    est = MLPRegressor(hidden_layer_sizes=(8,), solver=solver, learning_rate_init=1e12, max_iter=50,
                       random_state=0, momentum=0.9, early_stopping=True)
    with pytest.warns(ConvergenceWarning, match="diverged.*Early stopping ends the fit"):
        est.fit(X, y)
    assert all(np.isfinite(w).all() for w in est.coefs_ + est.intercepts_)
    assert np.isfinite(est.predict(X)).all()


def test_divergence_in_first_iteration_of_warm_start_keeps_the_fitted_weights():
    X, y = _regression(1.0)
    est = MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=1e-3, max_iter=3,
                       random_state=0).fit(X, y)
    coefs = [c.copy() for c in est.coefs_]
    est.set_params(warm_start=True, learning_rate_init=1e12)
    with pytest.raises(TrainingDiverged, match="before this call"):
        est.fit(X * 1e200, y)
    for a, b in zip(coefs, est.coefs_):
        assert_array_equal(a, b)


@pytest.mark.parametrize("warm", [False, True])
def test_divergence_restores_loss_with_the_weights(warm):
    # loss_ goes back with the curves: never the loss of an iteration the
    # curves no longer hold (the probe found 3.6e300 left in loss_)
    X, y = _regression(1.0)
    est = MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=1e-3, max_iter=3, random_state=0)
    if warm:
        est.fit(X, y)
        loss, curve, t = est.loss_, list(est.loss_curve_), est.t_
    est.set_params(warm_start=warm, learning_rate_init=1e6, max_iter=20)
    with pytest.raises(TrainingDiverged):
        est.fit(X * 1e150, y * 1e150)
    if warm:
        assert (est.loss_, est.loss_curve_, est.t_) == (loss, curve, t)
    elif est.loss_curve_:
        assert est.loss_ == est.loss_curve_[-1]
    else:
        assert not hasattr(est, "loss_")


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_divergence_in_partial_fit_restores_the_call_start(solver):
    # the call's start is held by reference (the fit trains on copies): the
    # weights and the optimizer's state come back exactly, and the next call
    # continues as if the failed one never happened
    X, y = _regression(1.0)
    params = dict(hidden_layer_sizes=(8,), solver=solver, learning_rate_init=1e-3, random_state=0, momentum=0.9)
    est, reference = MLPRegressor(**params), MLPRegressor(**params)
    for model in (est, reference):
        model.partial_fit(X, y)
        model.partial_fit(X, y)
    held = est.coefs_ + est.intercepts_  # the arrays a user may hold
    weights = [w.copy() for w in held]
    moments = est._optimizer.state_1.copy(), est._optimizer.state_2.copy(), est._optimizer.counters.copy()
    est.set_params(learning_rate_init=1e12)
    with pytest.raises(TrainingDiverged, match="before this call"):
        est.partial_fit(X * 1e200, y)
    for before, old, now in zip(weights, held, est.coefs_ + est.intercepts_):
        assert_array_equal(before, old)
        assert_array_equal(before, now)
    for before, now in zip(moments, (est._optimizer.state_1, est._optimizer.state_2, est._optimizer.counters)):
        assert_array_equal(before, now)
    assert est.t_ == reference.t_ and est.loss_curve_ == reference.loss_curve_
    est.set_params(learning_rate_init=1e-3)
    est.partial_fit(X, y)
    reference.partial_fit(X, y)
    for a, b in zip(est.coefs_ + est.intercepts_, reference.coefs_ + reference.intercepts_):
        assert_array_equal(a, b)


def test_divergence_lbfgs_restores_a_finite_point():
    X, y = _regression(1e150)
    est = MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=20, random_state=0)
    with pytest.raises(TrainingDiverged, match="non-finite"):
        est.fit(X, y)
    assert all(np.isfinite(w).all() for w in est.coefs_ + est.intercepts_)
    assert est.predict(X[:5] / 1e150).shape == (5,)


# --------------------------------------------------------------------------
# Ctrl-C
# --------------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["adam", "sgd", "rprop", "lbfgs"])
def test_keyboard_interrupt_propagates_and_keeps_last_step(monkeypatch, solver):
    X, y = _data(n=300)
    est = MLPClassifier(hidden_layer_sizes=(7,), solver=solver, max_iter=50, random_state=0,
                        learning_rate_init=0.01, batch_size=20)
    name = "train_epoch" if solver in ("adam", "sgd") else "loss_and_gradient"
    original = getattr(_engine.Trainer, name)
    calls = {"n": 0}

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        result = original(self, *args, **kwargs)
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(_engine.Trainer, name, interrupted)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y)
    monkeypatch.setattr(_engine.Trainer, name, original)
    # the steps taken so far are kept, and the model works
    assert est.n_iter_ >= 1 if solver != "lbfgs" else est.n_iter_ >= 0
    assert all(np.isfinite(w).all() for w in est.coefs_ + est.intercepts_)
    assert est.predict(X).shape == y.shape
    fresh = MLPClassifier(**{**est.get_params(), "max_iter": 1}).fit(X, y)
    assert any(not np.array_equal(a, b) for a, b in zip(est.coefs_, fresh.coefs_)) or solver == "lbfgs"
    if solver in ("adam", "sgd"):
        assert len(est.loss_curve_) == est.n_iter_
        est.partial_fit(X, y)  # and training continues


SIGINT_SCRIPT = textwrap.dedent(
    """
    import signal, sys, time, numpy as np, fastbp
    # a program started from a terminal has Python's handler; one started while
    # SIGINT is ignored inherits that and Python leaves it ignored (see conftest)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60000, 64)).astype(np.float32)
    y = rng.integers(0, 10, 60000)
    solver = sys.argv[1]
    params = dict(hidden_layer_sizes=(256, 256), solver=solver, batch_size=64, random_state=0,
                  max_iter=10000, tol=0.0, n_iter_no_change=10**6)
    fastbp.MLPClassifier(**{**params, "max_iter": 1}).fit(X[:200], y[:200])  # compile first
    est = fastbp.MLPClassifier(**params)
    print("READY", flush=True)
    try:
        est.fit(X, y)
    except KeyboardInterrupt:
        caught = time.time()
        ok = all(np.isfinite(w).all() for w in est.coefs_) and est.predict(X[:10]).shape == (10,)
        print("CAUGHT %.6f %s" % (caught, ok), flush=True)
        raise
    print("FINISHED", flush=True)
    """
)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_sigint_during_long_fit(tmp_path, solver):
    script = tmp_path / "long_fit.py"
    script.write_text(SIGINT_SCRIPT)
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, str(script), solver], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "READY", line + proc.stderr.read()
        time.sleep(1.5)  # well inside the fit's compiled epochs
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "CAUGHT" in out, out + err
    _, ok = out.split("CAUGHT")[1].split()[:2]
    assert ok == "True"
    # the interrupt ended the fit (its latency is measured, not asserted: see the notes)
    assert "FINISHED" not in out
    assert proc.returncode != 0 and "KeyboardInterrupt" in err


# --------------------------------------------------------------------------
# threads and determinism
# --------------------------------------------------------------------------
@pytest.mark.parametrize("n_jobs", [1, 2, None])
def test_concurrent_predict_matches_serial(n_jobs):
    X, y = _data(n=3000, d=20, classes=4)
    est = MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=3, random_state=0, n_jobs=n_jobs).fit(X, y)
    proba, labels = est.predict_proba(X), est.predict(X)
    barrier = threading.Barrier(8)

    def work(i):
        barrier.wait()
        rows = slice(None) if i % 2 else slice(i * 100, i * 100 + 700)
        return rows, est.predict_proba(X[rows]), est.predict(X[rows])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    for rows, p, lab in results:
        assert_array_equal(p, proba[rows])
        assert_array_equal(lab, labels[rows])


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_same_seed_and_n_jobs_give_identical_bits(n_jobs, solver):
    X, y = _data(n=400, d=10)
    params = dict(hidden_layer_sizes=(16, 8), solver=solver, max_iter=4, random_state=5, n_jobs=n_jobs,
                  batch_size=32, dropout=0.2 if solver != "lbfgs" else 0.0)
    a = MLPClassifier(**params).fit(X, y)
    b = MLPClassifier(**params).fit(X, y)
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert_array_equal(wa, wb)


# --------------------------------------------------------------------------
# memory-mapped X
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_memmap_is_read_in_place(tmp_path, dtype):
    rng = np.random.default_rng(0)
    n, d = 40000, 50
    path = tmp_path / "X.dat"
    X = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n, d))
    X[:] = rng.standard_normal((n, d))
    X.flush()
    y = rng.integers(0, 3, n)
    del X
    X = np.load(path, mmap_mode="r")
    params = dict(hidden_layer_sizes=(8,), max_iter=2, random_state=0, batch_size=256)
    MLPClassifier(**params).fit(X[:300], y[:300]).predict_proba(X[:10])  # compile outside the measurement
    tracemalloc.start()
    est = MLPClassifier(**params).fit(X, y)
    proba = est.predict_proba(X)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # no copy of X: far less than X itself (the outputs, n x 3, are allowed)
    assert peak < 0.25 * X.nbytes + proba.nbytes * 3
    in_memory = MLPClassifier(**params).fit(np.array(X), y)
    for a, b in zip(est.coefs_, in_memory.coefs_):
        assert_array_equal(a, b)


FRESH_SCRIPT = textwrap.dedent(
    """
    import hashlib, warnings, numpy as np, fastbp
    from fastbp.engine import cpu as _engine
    from fastbp.kernels.losses import LOSS_LOG_LOSS
    from fastbp.engine.network import make_network
    from fastbp.solvers.state import STOCHASTIC_SOLVERS
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 12)); y = rng.integers(0, 3, 300)
    digests = []
    # first in the process: an epoch kernel whose parfors are in its callees (a
    # process loading it must start the thread pool: its entry's reload_init)
    network = make_network([12, 16, 8, 3], ["relu", "relu"], "softmax")
    icfg, fcfg = _engine.make_config(LOSS_LOG_LOSS, solver_code=STOCHASTIC_SOLVERS["sgd"], seed=0, momentum=0.9,
                                       nesterovs_momentum=False)
    Y = np.eye(3)[y]
    trainer = _engine.Trainer(network, _engine.InputData(X, np.float64), Y, np.ones(300), icfg, fcfg, 32)
    flat = rng.standard_normal(network.n_params) * 0.3
    state = np.zeros_like(flat)
    total = trainer.train_epoch(flat, np.arange(300, dtype=np.int64), 32, 0, 10, state, np.zeros(0),
                                _engine.new_counters(), 0.01)
    digests.append(hashlib.sha1(flat.tobytes() + np.float64(total).tobytes()).hexdigest())
    for dtype in (np.float64, np.float32):
        for solver, batch in (("sgd", 1), ("sgd", 32), ("adam", 64)):
            m = fastbp.MLPClassifier(hidden_layer_sizes=(16, 8), solver=solver, batch_size=batch, max_iter=2,
                                     alpha=1e-3, random_state=0).fit(X.astype(dtype), y)
            data = b"".join(c.tobytes() for c in m.coefs_ + m.intercepts_) + np.float64(m.loss_).tobytes()
            digests.append(hashlib.sha1(data).hexdigest())
    print(" ".join(digests))
    """
)


def test_fresh_compilation_and_cache_give_the_same_bits(tmp_path):
    # the same fit in a process that compiles the kernels and in one that loads
    # them from the cache: identical weights and loss (no reassociation)
    script = tmp_path / "fit.py"
    script.write_text(FRESH_SCRIPT)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    runs = [
        subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


# --------------------------------------------------------------------------
# unknown integer codes stop at the engine's boundary (issue 20)
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda: _engine.make_config(99),
        lambda: _engine.make_config(-1),
        lambda: _engine.make_config(0, solver_code=17),
        lambda: _engine.make_config(1.0),
        lambda: _engine.Network([3, 4, 2], [3, 99]),
        lambda: _engine.Network([3, 4, 2], [4, 0]),  # softmax is an output activation only
        lambda: _engine.Network([3, 4, 2], [3, 3]),  # relu is a hidden activation only
        lambda: _engine.Network([3, 4, 2], [True, 0]),
    ],
)
def test_unknown_codes_never_reach_a_kernel(make):
    with pytest.raises(ValueError, match="unknown .* code .*the kernels know"):
        make()


def test_every_registered_code_passes_the_boundary():
    from fastbp.kernels.activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
    from fastbp.kernels.losses import LOSS_PAIRS
    from fastbp.kernels.optimizers import STOCHASTIC_SOLVERS

    for loss in set(LOSS_PAIRS.values()):
        for solver in STOCHASTIC_SOLVERS.values():
            _engine.make_config(loss, solver_code=solver)
    for hidden in HIDDEN_ACTIVATIONS.values():
        for out in OUTPUT_ACTIVATIONS.values():
            _engine.Network([3, 4, 2], [hidden, out])


def _epoch_with_codes(hidden=None, output=None, loss=None, solver=None):
    """One compiled epoch of a tiny network whose codes were changed after the
    engine's checks (as a mistake inside fastbp could); (loss, weights, outputs)."""
    from fastbp.kernels.activations import ACT_RELU, ACT_SOFTMAX
    from fastbp.kernels.losses import LOSS_LOG_LOSS
    from fastbp.kernels.codes import I_LOSS, I_SOLVER, LAYER_ACTIVATION, N_COUNTERS
    from fastbp.kernels.optimizers import SOLVER_SGD

    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 4))
    Y = np.eye(3)[rng.integers(0, 3, 12)]
    net = _engine.Network([4, 5, 3], [ACT_RELU, ACT_SOFTMAX])
    icfg, fcfg = _engine.make_config(LOSS_LOG_LOSS, solver_code=SOLVER_SGD, learning_rate=0.1, momentum=0.0)
    trainer = _engine.Trainer(net, _engine.InputData(X, np.float64), Y, None, icfg, fcfg, 12)
    if hidden is not None:
        net.layer_int[0, LAYER_ACTIVATION] = hidden
    if output is not None:
        net.layer_int[1, LAYER_ACTIVATION] = output
    if loss is not None:
        trainer.icfg[I_LOSS] = loss
    if solver is not None:
        trainer.icfg[I_SOLVER] = solver
    flat = rng.normal(scale=0.3, size=net.n_params)
    state = np.zeros(net.n_params)
    counters = np.zeros(N_COUNTERS, dtype=np.int64)
    total = trainer.train_epoch(flat, np.arange(12, dtype=np.int64), 12, 0, 1, state, state[:0], counters, 0.1)
    outputs = _engine.predict_output(net, flat, X)
    return total, flat, outputs


def test_valid_codes_train_finite_weights():
    total, flat, outputs = _epoch_with_codes()
    assert np.isfinite(total) and np.isfinite(flat).all() and np.isfinite(outputs).all()


@pytest.mark.parametrize(
    "codes",
    [{"hidden": 99}, {"output": 99}, {"loss": 99}, {"solver": 99}],
    ids=["hidden-activation", "output-activation", "loss", "solver"],
)
def test_an_unknown_code_inside_a_kernel_computes_nan_not_a_real_branch(codes):
    # each dispatch's last branch is a named code; a code that reached a kernel
    # past the boundary gives NaN weights (the divergence check then stops the
    # fit), never the silent result of another activation, loss or solver
    total, flat, outputs = _epoch_with_codes(**codes)
    assert np.isnan(flat).any()
    if "solver" not in codes:
        assert np.isnan(total)


@pytest.mark.parametrize(
    "first, then, y_then, match",
    [
        ({}, {}, "two", "y has 2 output column.* fitted with 1"),
        ({}, {"early_stopping": True}, "one", "early_stopping=True cannot continue .* early_stopping=False"),
        ({"early_stopping": True}, {"early_stopping": False}, "one", "early_stopping=False cannot continue"),
    ],
    ids=["outputs", "early-stopping-on", "early-stopping-off"],
)
def test_a_warm_start_that_cannot_continue_says_why_and_changes_nothing(first, then, y_then, match):
    # scikit-learn fails here with a matmul shape error or an AttributeError
    # from inside its loop, after it changed the estimator
    X, y = _regression(1.0)
    est = MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0, warm_start=True, **first)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    before = {k: (v.copy() if isinstance(v, list) else v) for k, v in vars(est).items() if k.endswith("_")}
    coefs = [c.copy() for c in est.coefs_]
    est.set_params(**then)
    with pytest.raises(ValueError, match=match):
        est.fit(X, np.c_[y, -y] if y_then == "two" else y)
    assert all(np.array_equal(a, b) for a, b in zip(coefs, est.coefs_))
    assert est.loss_curve_ == before["loss_curve_"] and est.n_iter_ == before["n_iter_"]


def test_a_warm_start_after_a_fit_with_validation_data_continues():
    # validation data without early stopping records validation scores but
    # follows the training loss: continuing it is allowed
    X, y = _regression(1.0)
    est = MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y, X_val=X[:20], y_val=y[:20])
        est.fit(X, y)
    assert len(est.loss_curve_) == 6
