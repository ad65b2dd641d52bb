"""The solvers and learning-rate schedules: accuracy on digits, the
Levenberg-Marquardt and Rprop fits of a smooth curve, step-by-step agreement
with NumPy re-implementations on a tiny full-batch problem, stopping rules and
max_time."""

import math
import time
import warnings

import numpy as np
import pytest
import scipy.sparse
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

import fastbp.solvers.state
from fastbp.kernels.activations import ACTIVATIONS as ACTIVATION_REGISTRY
from fastbp.kernels.optimizers import FULL_BATCH_SOLVERS, STOCHASTIC_SOLVERS
from fastbp import MLPClassifier, MLPRegressor

from . import naive

STOCHASTIC = list(STOCHASTIC_SOLVERS)
FULL_BATCH = list(FULL_BATCH_SOLVERS)


def _fit_quietly(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def _weights(est):
    return list(est.coefs_) + list(est.intercepts_)


def assert_identical_weights(a, b):
    for wa, wb in zip(_weights(a), _weights(b)):
        assert_array_equal(wa, wb)


# --------------------------------------------------------------------------
# digits: every solver and every activation learns
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_split():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)


# (name, parameters, minimum test accuracy); measured: sgd 0.976, adam 0.978,
# lbfgs 0.965, rmsprop 0.976, adagrad 0.978, adamw 0.978, rprop 0.952,
# quickprop 0.969, online sgd 0.976, full-batch sgd 0.974
_DIGITS_SOLVERS = [
    ("sgd", dict(solver="sgd", learning_rate_init=0.1), 0.95),
    ("adam", dict(solver="adam"), 0.95),
    ("lbfgs", dict(solver="lbfgs"), 0.95),
    ("rmsprop", dict(solver="rmsprop"), 0.95),
    ("adagrad", dict(solver="adagrad", learning_rate_init=0.05), 0.95),
    ("adamw", dict(solver="adamw"), 0.95),
    ("rprop", dict(solver="rprop", learning_rate_init=0.01), 0.93),
    ("quickprop", dict(solver="quickprop", learning_rate_init=0.1), 0.90),
    ("online-sgd", dict(solver="sgd", batch_size=1, learning_rate_init=0.01, momentum=0.0), 0.95),
    ("full-batch-sgd", dict(solver="sgd", batch_size="n", learning_rate_init=0.5), 0.95),
]


@pytest.mark.parametrize("params, minimum", [(p, m) for _, p, m in _DIGITS_SOLVERS],
                         ids=[name for name, _, _ in _DIGITS_SOLVERS])
def test_digits_accuracy_per_solver(digits_split, params, minimum):
    X_train, X_test, y_train, y_test = digits_split
    params = dict(params)
    if params.get("batch_size") == "n":
        params["batch_size"] = X_train.shape[0]
    clf = _fit_quietly(MLPClassifier(hidden_layer_sizes=(64,), random_state=0, max_iter=300, **params),
                       X_train, y_train)
    assert clf.score(X_test, y_test) >= minimum
    assert 1 <= clf.n_iter_ <= 300


@pytest.mark.parametrize("activation", [a.name for a in ACTIVATION_REGISTRY if a.hidden])
def test_digits_accuracy_per_activation(digits_split, activation):
    X_train, X_test, y_train, y_test = digits_split
    clf = _fit_quietly(MLPClassifier(hidden_layer_sizes=(64,), activation=activation, random_state=0,
                                     max_iter=300), X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.94


# --------------------------------------------------------------------------
# Levenberg-Marquardt and Rprop on a smooth curve
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def curve():
    x = np.linspace(-3.0, 3.0, 200)
    return x.reshape(-1, 1), np.sin(2.0 * x) + 0.1 * x**2


def test_lm_fits_the_curve(curve):
    X, y = curve
    reg = _fit_quietly(MLPRegressor(hidden_layer_sizes=(12,), activation="tanh", solver="lm", max_iter=100, tol=0,
                                    random_state=0), X, y)
    assert reg.n_iter_ <= 100
    assert reg.score(X, y) >= 0.999
    assert len(reg.loss_curve_) == reg.n_iter_
    # Levenberg-Marquardt only accepts steps that lower the loss
    assert np.all(np.diff(reg.loss_curve_) <= 0)


def test_rprop_fits_the_curve(curve):
    X, y = curve
    reg = _fit_quietly(MLPRegressor(hidden_layer_sizes=(12,), activation="tanh", solver="rprop",
                                    learning_rate_init=0.01, max_iter=1000, tol=0, random_state=0), X, y)
    assert reg.score(X, y) >= 0.99


def test_lm_with_weights_and_alpha(curve):
    """LM minimizes the weighted, L2-penalised mean squared error: the integer
    weights equal repeating the samples."""
    X, y = curve
    X, y = X[::4], y[::4]
    w = np.tile([1.0, 2.0, 3.0], len(y))[: len(y)]
    kw = dict(hidden_layer_sizes=(5,), activation="tanh", solver="lm", max_iter=30, tol=0, alpha=0.1,
              random_state=0)
    weighted = _fit_quietly(MLPRegressor(**kw), X, y, sample_weight=w)
    repeated = _fit_quietly(MLPRegressor(**kw), np.repeat(X, w.astype(int), axis=0), np.repeat(y, w.astype(int)))
    for a, b in zip(_weights(weighted), _weights(repeated)):
        assert_allclose(a, b, rtol=1e-6, atol=1e-8)


def test_lm_multioutput_and_classifier(multioutput_regression_data, binary_data):
    X, Y = multioutput_regression_data
    reg = _fit_quietly(MLPRegressor(hidden_layer_sizes=(6,), solver="lm", max_iter=30, random_state=0), X, Y)
    assert reg.score(X, Y) > 0.9
    X, y = binary_data
    clf = _fit_quietly(MLPClassifier(hidden_layer_sizes=(6,), solver="lm", loss="squared_error", max_iter=30,
                                     random_state=0), X, y)
    assert clf.score(X, y) > 0.9


@pytest.mark.parametrize("loss", ["absolute_error", "huber", "poisson"])
def test_lm_needs_squared_error_regressor(regression_data, loss):
    X, y = regression_data
    with pytest.raises(ValueError, match="squared_error"):
        MLPRegressor(loss=loss, solver="lm").fit(X, np.abs(y))


def test_lm_needs_squared_error_classifier(multiclass_data):
    X, y = multiclass_data
    with pytest.raises(ValueError, match="squared_error"):
        MLPClassifier(solver="lm").fit(X, y)  # the default loss is log_loss


def test_lm_jacobian_too_large_raises(monkeypatch, regression_data):
    X, y = regression_data
    monkeypatch.setattr(fastbp.solvers.state, "available_memory_bytes", lambda: 10_000)
    reg = MLPRegressor(hidden_layer_sizes=(20,), solver="lm", max_iter=5)
    with pytest.raises(ValueError, match="(?i)jacobian"):
        reg.fit(X, y)
    assert not hasattr(reg, "coefs_")
    # with the machine's real memory the same fit runs
    monkeypatch.undo()
    _fit_quietly(reg, X, y)
    assert reg.n_iter_ >= 1


# --------------------------------------------------------------------------
# step-by-step agreement with NumPy re-implementations (tiny full-batch problem)
# --------------------------------------------------------------------------

N_TINY = 20
HIDDEN_TINY = 5
ALPHA_TINY = 1e-3


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(N_TINY, 3))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] - 0.3 * X[:, 2] ** 2
    return X, y


def glorot_draw(random_state, layer_units, factor=6.0, bound_rule=None):
    """scikit-learn's initialization draws: W then b, layer by layer."""
    rs = np.random.RandomState(random_state)
    coefs, intercepts = [], []
    for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
        bound = np.sqrt(factor / (fan_in + fan_out)) if bound_rule is None else bound_rule(fan_in, fan_out)
        coefs.append(rs.uniform(-bound, bound, (fan_in, fan_out)))
        intercepts.append(rs.uniform(-bound, bound, fan_out))
    return coefs, intercepts


def _tiny_estimator(solver, max_iter, **params):
    return MLPRegressor(hidden_layer_sizes=(HIDDEN_TINY,), activation="tanh", solver=solver, alpha=ALPHA_TINY,
                        batch_size=N_TINY, shuffle=False, max_iter=max_iter, tol=0.0,
                        n_iter_no_change=max_iter + 10, random_state=0, **params)


def reference_trajectory(X, y, max_iter, update):
    """Run ``update(epoch, coefs, intercepts, grads)`` on the full-batch gradient
    of the reference loss; return the final parameters and the loss curve."""
    coefs, intercepts = glorot_draw(0, [X.shape[1], HIDDEN_TINY, 1])
    Y = y.reshape(-1, 1)
    losses = []
    for epoch in range(max_iter):
        res = naive.backprop(coefs, intercepts, X, Y, "tanh", "identity", "squared_error", alpha=ALPHA_TINY)
        losses.append(res.loss)
        update(epoch, coefs, intercepts, res.coef_grads, res.intercept_grads)
    return coefs, intercepts, losses


def _assert_matches_reference(est, coefs, intercepts, losses, rtol=1e-8):
    assert est.n_iter_ == len(losses)
    assert_allclose(est.loss_curve_, losses, rtol=rtol)
    for got, ref in zip(_weights(est), coefs + intercepts):
        assert_allclose(got, ref, rtol=rtol, atol=rtol * 1e-2)


def _elementwise(step):
    """An update rule applied to every parameter array with its own state."""
    state = {}

    def update(epoch, coefs, intercepts, coef_grads, intercept_grads):
        for key, params, grads, is_weight in [(("W", i), W, g, True) for i, (W, g) in enumerate(zip(coefs, coef_grads))] + [
            (("b", i), b, g, False) for i, (b, g) in enumerate(zip(intercepts, intercept_grads))
        ]:
            params[...] = step(epoch, params, grads, state.setdefault(key, {}), is_weight)

    return update


def cosine_rate(lr, epoch, max_iter):
    return lr * 0.5 * (1.0 + math.cos(math.pi * epoch / max_iter))


@pytest.mark.parametrize("schedule", ["constant", "cosine", "invscaling"])
def test_sgd_full_batch_matches_reference(tiny, schedule):
    X, y = tiny
    T, lr, power_t = 25, 0.2, 0.5

    def rate(epoch):
        if schedule == "cosine":
            return cosine_rate(lr, epoch, T)
        if schedule == "invscaling":  # scikit-learn: updated after each epoch from the samples seen
            return lr if epoch == 0 else lr / (N_TINY * epoch + 1) ** power_t
        return lr

    coefs, intercepts, losses = reference_trajectory(
        X, y, T, _elementwise(lambda e, p, g, s, w: p - rate(e) * g))
    est = _fit_quietly(_tiny_estimator("sgd", T, learning_rate=schedule, learning_rate_init=lr, momentum=0.0,
                                       power_t=power_t), X, y)
    _assert_matches_reference(est, coefs, intercepts, losses)


def test_cosine_schedule_anneals_to_zero(tiny):
    """Cosine differs from constant, and its last epochs barely move the weights."""
    X, y = tiny
    T = 40
    kw = dict(learning_rate_init=0.2, momentum=0.0)
    cosine = _fit_quietly(_tiny_estimator("sgd", T, learning_rate="cosine", **kw), X, y)
    constant = _fit_quietly(_tiny_estimator("sgd", T, learning_rate="constant", **kw), X, y)
    assert not np.allclose(cosine.coefs_[0], constant.coefs_[0])
    assert cosine_rate(0.2, T - 1, T) < 0.01 * 0.2
    # the loss still falls under the constant rate but has flattened under cosine
    drop_cosine = cosine.loss_curve_[-2] - cosine.loss_curve_[-1]
    drop_constant = constant.loss_curve_[-2] - constant.loss_curve_[-1]
    assert 0 <= drop_cosine < 0.05 * drop_constant


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_rmsprop_matches_reference(tiny, schedule):
    X, y = tiny
    T, lr, rho, eps = 15, 0.01, 0.8, 1e-8

    def step(epoch, p, g, s, is_weight):
        rate = cosine_rate(lr, epoch, T) if schedule == "cosine" else lr
        s["v"] = rho * s.get("v", 0.0) + (1 - rho) * g * g
        return p - rate * g / (np.sqrt(s["v"]) + eps)

    coefs, intercepts, losses = reference_trajectory(X, y, T, _elementwise(step))
    est = _fit_quietly(_tiny_estimator("rmsprop", T, learning_rate=schedule, learning_rate_init=lr, rho=rho), X, y)
    _assert_matches_reference(est, coefs, intercepts, losses)


def test_adagrad_matches_reference(tiny):
    X, y = tiny
    T, lr, eps = 15, 0.05, 1e-8

    def step(epoch, p, g, s, is_weight):
        s["sum"] = s.get("sum", 0.0) + g * g
        return p - lr * g / (np.sqrt(s["sum"]) + eps)

    coefs, intercepts, losses = reference_trajectory(X, y, T, _elementwise(step))
    est = _fit_quietly(_tiny_estimator("adagrad", T, learning_rate_init=lr), X, y)
    _assert_matches_reference(est, coefs, intercepts, losses)


def _adam_step(lr_of_epoch, weight_decay=0.0, b1=0.9, b2=0.999, eps=1e-8):
    """scikit-learn's Adam (bias correction folded into the step size); AdamW
    first decays the weights (not the biases) by ``1 - lr * weight_decay``."""

    def step(epoch, p, g, s, is_weight):
        lr = lr_of_epoch(epoch)
        t = s["t"] = s.get("t", 0) + 1
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
        if is_weight:
            p = p * (1.0 - lr * weight_decay)
        size = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        return p - size * s["m"] / (np.sqrt(s["v"]) + eps)

    return step


@pytest.mark.parametrize("solver, weight_decay, schedule",
                         [("adam", 0.0, "constant"), ("adam", 0.0, "cosine"), ("adamw", 0.5, "constant"),
                          ("adamw", 0.5, "cosine")])
def test_adam_and_adamw_match_reference(tiny, solver, weight_decay, schedule):
    X, y = tiny
    T, lr = 15, 0.05

    def lr_of_epoch(epoch):
        return cosine_rate(lr, epoch, T) if schedule == "cosine" else lr

    coefs, intercepts, losses = reference_trajectory(X, y, T, _elementwise(_adam_step(lr_of_epoch, weight_decay)))
    params = dict(learning_rate=schedule, learning_rate_init=lr)
    if solver == "adamw":
        params["weight_decay"] = weight_decay
    est = _fit_quietly(_tiny_estimator(solver, T, **params), X, y)
    _assert_matches_reference(est, coefs, intercepts, losses)


def test_rprop_matches_reference(tiny):
    """iRprop-: steps grow by 1.2 while the gradient keeps its sign, shrink by 0.5
    and skip the update when it flips; the first step is learning_rate_init."""
    X, y = tiny
    T, lr = 30, 0.02

    def step(epoch, p, g, s, is_weight):
        prev = s.get("prev", np.zeros_like(g))
        size = s.get("size", np.full_like(g, lr))
        sign_change = g * prev
        size = np.where(sign_change > 0, np.minimum(size * 1.2, 50.0), size)
        size = np.where(sign_change < 0, np.maximum(size * 0.5, 1e-6), size)
        g = np.where(sign_change < 0, 0.0, g)
        s["prev"], s["size"] = g, size
        return p - np.sign(g) * size

    coefs, intercepts, losses = reference_trajectory(X, y, T, _elementwise(step))
    est = _fit_quietly(_tiny_estimator("rprop", T, learning_rate_init=lr), X, y)
    _assert_matches_reference(est, coefs, intercepts, losses)


def test_quickprop_first_step_is_gradient_descent(tiny):
    X, y = tiny
    lr = 0.3
    coefs, intercepts, losses = reference_trajectory(X, y, 1, _elementwise(lambda e, p, g, s, w: p - lr * g))
    est = _fit_quietly(_tiny_estimator("quickprop", 1, learning_rate_init=lr), X, y)
    _assert_matches_reference(est, coefs, intercepts, losses)
    # and it keeps lowering the loss on this smooth problem
    est = _fit_quietly(_tiny_estimator("quickprop", 30, learning_rate_init=lr), X, y)
    assert est.loss_curve_[-1] < 0.5 * est.loss_curve_[0]


# --------------------------------------------------------------------------
# AdamW, schedules, partial_fit
# --------------------------------------------------------------------------


def test_adamw_without_decay_is_adam(multiclass_data):
    X, y = multiclass_data
    kw = dict(hidden_layer_sizes=(10, 6), batch_size=32, max_iter=8, random_state=0, learning_rate_init=0.01)
    adam = _fit_quietly(MLPClassifier(solver="adam", **kw), X, y)
    adamw = _fit_quietly(MLPClassifier(solver="adamw", weight_decay=0.0, **kw), X, y)
    assert_identical_weights(adam, adamw)
    assert adam.loss_curve_ == adamw.loss_curve_
    decayed = _fit_quietly(MLPClassifier(solver="adamw", weight_decay=0.1, **kw), X, y)
    assert sum(np.abs(W).sum() for W in decayed.coefs_) < sum(np.abs(W).sum() for W in adam.coefs_)


def test_adam_ignores_invscaling_and_adaptive(multiclass_data):
    X, y = multiclass_data
    kw = dict(hidden_layer_sizes=(8,), batch_size=50, max_iter=6, random_state=0, solver="adam")
    constant = _fit_quietly(MLPClassifier(learning_rate="constant", **kw), X, y)
    for schedule in ("invscaling", "adaptive"):
        assert_identical_weights(constant, _fit_quietly(MLPClassifier(learning_rate=schedule, **kw), X, y))
    # but honours cosine
    cosine = _fit_quietly(MLPClassifier(learning_rate="cosine", **kw), X, y)
    assert not np.allclose(cosine.coefs_[0], constant.coefs_[0])


@pytest.mark.parametrize("solver", ["sgd", "rmsprop", "adagrad", "adamw"])
def test_schedules_change_the_other_minibatch_solvers(multiclass_data, solver):
    X, y = multiclass_data
    kw = dict(hidden_layer_sizes=(8,), batch_size=50, max_iter=6, random_state=0, solver=solver,
              learning_rate_init=0.05)
    constant = _fit_quietly(MLPClassifier(learning_rate="constant", **kw), X, y)
    for schedule in ("invscaling", "cosine"):
        other = _fit_quietly(MLPClassifier(learning_rate=schedule, **kw), X, y)
        assert not np.allclose(other.coefs_[0], constant.coefs_[0]), schedule


@pytest.mark.parametrize("solver", ["rmsprop", "adagrad", "adamw"])
def test_partial_fit_continues_the_solver_state(regression_data, solver):
    """k calls of partial_fit = fit with max_iter=k (no shuffling): the solver's
    buffers carry over between calls."""
    X, y = regression_data
    kw = dict(hidden_layer_sizes=(7,), solver=solver, batch_size=40, shuffle=False, random_state=0,
              learning_rate_init=0.01)
    fitted = _fit_quietly(MLPRegressor(max_iter=4, tol=0.0, **kw), X, y)
    partial = MLPRegressor(**kw)
    for _ in range(4):
        partial.partial_fit(X, y)
    assert_identical_weights(fitted, partial)


@pytest.mark.parametrize("solver", ["lbfgs", "rprop", "quickprop", "lm"])
def test_no_partial_fit_for_full_batch_solvers(solver):
    assert not hasattr(MLPRegressor(solver=solver), "partial_fit")
    assert not hasattr(MLPClassifier(solver=solver, loss="squared_error"), "partial_fit")


# --------------------------------------------------------------------------
# input types with the new solvers
# --------------------------------------------------------------------------

_SOLVER_PARAMS = {
    "sgd": {}, "adam": {}, "rmsprop": {}, "adagrad": dict(learning_rate_init=0.05), "adamw": {},
    "lbfgs": {}, "rprop": dict(learning_rate_init=0.01), "quickprop": dict(learning_rate_init=0.05), "lm": {},
}


@pytest.mark.parametrize("solver", list(_SOLVER_PARAMS))
def test_sparse_equals_dense(regression_data, solver):
    X, y = regression_data
    X = X.copy()
    X[np.abs(X) < 0.6] = 0.0
    kw = dict(hidden_layer_sizes=(6,), activation="tanh", solver=solver, max_iter=6, random_state=0,
              **_SOLVER_PARAMS[solver])
    dense = _fit_quietly(MLPRegressor(**kw), X, y)
    sparse = _fit_quietly(MLPRegressor(**kw), scipy.sparse.csr_matrix(X), y)
    assert dense.n_iter_ == sparse.n_iter_
    for a, b in zip(_weights(dense), _weights(sparse)):
        assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("solver", list(_SOLVER_PARAMS))
def test_float32_stays_float32(multiclass_data, solver):
    X, y = multiclass_data
    kw = dict(hidden_layer_sizes=(6,), solver=solver, max_iter=6, random_state=0, **_SOLVER_PARAMS[solver])
    if solver == "lm":
        kw["loss"] = "squared_error"
    clf = _fit_quietly(MLPClassifier(**kw), X.astype(np.float32), y)
    assert all(w.dtype == np.float32 for w in _weights(clf))
    assert clf.predict_proba(X.astype(np.float32)).dtype == np.float32
    ref = _fit_quietly(MLPClassifier(**kw), X, y)
    assert all(w.dtype == np.float64 for w in _weights(ref))
    for a, b in zip(_weights(clf), _weights(ref)):
        assert_allclose(a, b, rtol=1e-2, atol=1e-3)


# --------------------------------------------------------------------------
# stopping
# --------------------------------------------------------------------------


@pytest.mark.parametrize("solver", STOCHASTIC + ["rprop", "quickprop", "lm"])
def test_tol_and_n_iter_no_change(regression_data, solver):
    """scikit-learn's rule: stop when the loss has not improved by tol for more
    than n_iter_no_change epochs (here: never, so after n_iter_no_change + 2)."""
    X, y = regression_data
    reg = MLPRegressor(hidden_layer_sizes=(5,), solver=solver, tol=1e3, n_iter_no_change=3, max_iter=50,
                       random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # stopped by tol, not by max_iter
        reg.fit(X, y)
    assert reg.n_iter_ == 5
    assert len(reg.loss_curve_) == 5


@pytest.mark.parametrize("solver", ["rmsprop", "rprop", "quickprop", "lm"])
def test_max_iter_reached_warns(regression_data, solver):
    X, y = regression_data
    reg = MLPRegressor(hidden_layer_sizes=(5,), solver=solver, tol=0.0, max_iter=3, random_state=0)
    with pytest.warns(ConvergenceWarning):
        reg.fit(X, y)
    assert reg.n_iter_ == 3


class _VirtualClock:
    """``time`` as the fit's modules see it, with a ``perf_counter`` that advances
    one virtual second per reading: when a fit stops is decided by the clock
    readings it makes, not by how fast this machine is."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 1.0
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_max_time_stops_a_long_fit_at_its_first_reading_past_the_deadline(monkeypatch, solver):
    """max_time is checked inside an epoch (every chunk of batches) and inside a
    full-batch pass: a fit that would run 10,000 epochs stops within the first."""
    from fastbp.engine import cpu as _engine
    from fastbp.estimators import _base, solving

    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(2000, 5)), rng.normal(size=2000)
    _fit_quietly(MLPRegressor(hidden_layer_sizes=(4, 3), solver=solver, max_iter=2, random_state=0), X, y)
    clock = _VirtualClock()
    monkeypatch.setattr(_base, "time", clock)
    monkeypatch.setattr(solving, "time", clock)
    monkeypatch.setattr(_engine, "time", clock)
    reg = MLPRegressor(hidden_layer_sizes=(4, 3), solver=solver, max_iter=10_000, tol=0.0, max_time=12,
                       random_state=0)
    with pytest.warns(ConvergenceWarning, match="max_time"):
        reg.fit(X, y)
    start = 1.0  # the fit's first reading
    assert start + 12 <= clock.now <= start + 12 + 3  # the first check past the deadline stopped it
    assert reg.n_iter_ <= 1
    if solver == "adam":
        assert reg.t_ < X.shape[0]  # inside the first epoch
    assert all(np.isfinite(w).all() for w in _weights(reg))
    assert np.isfinite(reg.predict(X[:5])).all()


@pytest.mark.parametrize("beta_1, beta_2", [(0.9, 0.999), (0.0, 0.5), (0.99, 0.9999), (0.5, 0.0)])
def test_adam_step_size_is_scikit_learns_at_every_step(beta_1, beta_2):
    # the kernels skip the power in 1 - beta ** t once it is exactly 1: the
    # learning rate must stay scikit-learn's to the bit at every step
    from fastbp.kernels.codes import C_ADAM_STEP, F_LEARNING_RATE, I_SOLVER, N_COUNTERS
    from fastbp.kernels.optimizers import F_BETA_1, F_BETA_2, SOLVER_ADAM
    from fastbp.engine.cpu import make_config
    from fastbp.kernels.optimizers import step_size

    icfg, fcfg = make_config()
    icfg[I_SOLVER] = SOLVER_ADAM
    fcfg[F_BETA_1], fcfg[F_BETA_2], fcfg[F_LEARNING_RATE] = beta_1, beta_2, 1e-3
    counters = np.zeros(N_COUNTERS, dtype=np.int64)
    steps = list(range(1, 2000)) + list(range(40_000, 46_000)) + list(range(400_000, 1_000_000, 997))
    for t in steps:
        counters[C_ADAM_STEP] = t - 1
        rate = step_size(counters, icfg, fcfg)
        assert counters[C_ADAM_STEP] == t
        expected = 1e-3 * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)  # scikit-learn's AdamOptimizer
        assert rate == expected, (t, rate, expected)
