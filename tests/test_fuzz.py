"""Property-based fuzzing (hypothesis) of shapes, dtypes and values.

Whatever the input, a call either raises a ValueError / TypeError with a
message, or succeeds with outputs of the right shape and finite values; a
fitted model hit by a failing call is unchanged.
"""

import copy
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

import fastbp
from fastbp import MLPClassifier, MLPRegressor

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=True)

DTYPES = ["float64", "float32", "float16", "int64", "int32", "uint8", "bool", "complex128", "object", "str"]
SPECIAL = [np.nan, np.inf, -np.inf, 1e300, -1e300, 0.0, 1e-300]


@st.composite
def matrices(draw, min_rows=1):
    n = draw(st.integers(min_rows, 25))
    d = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.standard_normal((n, d)) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    if draw(st.booleans()):
        # a few special values in random places
        for _ in range(draw(st.integers(1, 3))):
            X[rng.integers(n), rng.integers(d)] = draw(st.sampled_from(SPECIAL))
    dtype = draw(st.sampled_from(DTYPES))
    if dtype == "object":
        X = X.astype(object)
    elif dtype == "str":
        X = X.astype(str)
    else:
        with np.errstate(all="ignore"):
            X = X.astype(dtype)
    layout = draw(st.sampled_from(["C", "F", "strided"]))
    if layout == "F":
        X = np.asfortranarray(X)
    elif layout == "strided":
        X = np.repeat(X, 2, axis=1)[:, ::2]
    return X


def _labels(draw, n):
    kind = draw(st.sampled_from(["int", "str", "float", "one", "nan"]))
    rng = np.random.default_rng(n)
    if kind == "int":
        return rng.integers(0, draw(st.integers(2, 4)), n)
    if kind == "str":
        return np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    if kind == "float":
        return rng.integers(0, 2, n).astype(float)
    if kind == "one":
        return np.zeros(n, dtype=int)
    y = rng.integers(0, 2, n).astype(float)
    y[0] = np.nan
    return y


@st.composite
def estimator_params(draw):
    return dict(
        hidden_layer_sizes=draw(st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple)),
        activation=draw(st.sampled_from(["relu", "tanh", "logistic", "identity", "maxout", "gelu"])),
        solver=draw(st.sampled_from(["adam", "sgd", "lbfgs", "rprop", "rmsprop"])),
        batch_size=draw(st.sampled_from(["auto", 1, 3, 1000])),
        alpha=draw(st.sampled_from([0.0, 1e-4, 1.0])),
        max_iter=draw(st.integers(1, 3)),
        learning_rate_init=draw(st.sampled_from([1e-3, 1.0, 1e6])),
        random_state=0,
    )


def _check_outcome(call):
    """Run ``call``: it succeeds, or raises ValueError/TypeError with a message."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return call(), None
        except (ValueError, TypeError) as error:
            assert str(error), "an error without a message"
            return None, error


@FUZZ
@given(X=matrices(), data=st.data(), params=estimator_params())
def test_fuzz_classifier_fit_predict(X, data, params):
    y = _labels(data.draw, X.shape[0])
    est, error = _check_outcome(lambda: MLPClassifier(**params).fit(X, y))
    if error is not None:
        return
    assert all(np.isfinite(w).all() for w in est.coefs_ + est.intercepts_)
    proba, _ = _check_outcome(lambda: est.predict_proba(X))
    if proba is not None:
        assert proba.shape == (X.shape[0], len(est.classes_)) or len(est.classes_) <= 2
        assert np.isfinite(proba).all()
        assert est.predict(X).shape == (X.shape[0],)
    # the fitted model survives a bad follow-up call unchanged
    before = copy.deepcopy(est.__dict__)
    bad = data.draw(matrices())
    if params["solver"] in ("adam", "sgd", "rmsprop"):
        follow_up = lambda: est.partial_fit(bad, _labels(data.draw, bad.shape[0]))  # noqa: E731
    else:
        follow_up = lambda: est.predict(bad)  # noqa: E731
    _, error = _check_outcome(follow_up)
    if error is not None:
        if "diverged" not in str(error):
            for a, b in zip(before["coefs_"], est.coefs_):
                assert_array_equal(a, b)
            assert before.get("loss_curve_") == getattr(est, "loss_curve_", None)


@FUZZ
@given(X=matrices(), data=st.data(), params=estimator_params())
def test_fuzz_regressor_fit_partial_fit(X, data, params):
    rng = np.random.default_rng(1)
    n_out = data.draw(st.sampled_from([1, 2]))
    y = rng.standard_normal((X.shape[0], n_out)) * data.draw(st.sampled_from([1.0, 1e6]))
    if n_out == 1:
        y = y.ravel()
    if data.draw(st.booleans()):
        y = y.astype(data.draw(st.sampled_from(["float32", "int64", "object"])))
    est, error = _check_outcome(lambda: MLPRegressor(**params).fit(X, y))
    if error is not None:
        return
    pred, _ = _check_outcome(lambda: est.predict(X))
    if pred is not None:
        assert pred.shape == y.shape
        assert np.isfinite(pred).all()
    if params["solver"] in ("adam", "sgd", "rmsprop"):
        _check_outcome(lambda: est.partial_fit(X, y))
        assert all(np.isfinite(w).all() for w in est.coefs_ + est.intercepts_)


@st.composite
def networks(draw):
    d = draw(st.integers(1, 4))
    hidden = draw(st.lists(st.integers(1, 4), min_size=0, max_size=2))
    n_out = draw(st.integers(1, 3))
    units = [d, *hidden, n_out]
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    dtype = draw(st.sampled_from(["float64", "float32"]))
    coefs = [rng.standard_normal((a, b)).astype(dtype) for a, b in zip(units[:-1], units[1:])]
    intercepts = [rng.standard_normal(b).astype(dtype) for b in units[1:]]
    if draw(st.booleans()):  # break one shape or one value
        what = draw(st.sampled_from(["shape", "nan", "dtype", "missing"]))
        if what == "shape":
            coefs[-1] = coefs[-1][:, :-1] if coefs[-1].shape[1] > 1 else coefs[-1][:-1]
        elif what == "nan":
            coefs[0].flat[0] = np.nan
        elif what == "dtype":
            coefs[0] = coefs[0].astype(np.int64)
        else:
            intercepts = intercepts[:-1]
    return coefs, intercepts


@FUZZ
@given(net=networks(), X=matrices(), data=st.data())
def test_fuzz_backprop(net, X, data):
    coefs, intercepts = net
    n_out = coefs[-1].shape[1] if coefs[-1].ndim == 2 else 1
    Y = np.random.default_rng(0).standard_normal((X.shape[0], n_out))
    loss = data.draw(st.sampled_from(["squared_error", "absolute_error", "huber"]))
    activation = data.draw(st.sampled_from(["relu", "tanh", "softplus", "elu"]))
    result, error = _check_outcome(
        lambda: fastbp.backprop(coefs, intercepts, X, Y, activation=activation, loss=loss)
    )
    if result is None:
        return
    assert np.isfinite(result.loss)
    for g, c in zip(result.coef_grads, coefs):
        assert g.shape == c.shape and np.isfinite(g).all()
    for g, b in zip(result.intercept_grads, intercepts):
        assert g.shape == b.shape and np.isfinite(g).all()


@pytest.mark.parametrize("bad", [[[1, 2], [3]], "text", None, 3.0, [[1 + 2j, 0.0]]])
def test_unusable_X_gives_clear_errors(bad):
    with pytest.raises((ValueError, TypeError)):
        MLPClassifier(max_iter=1).fit(bad, [0, 1])
