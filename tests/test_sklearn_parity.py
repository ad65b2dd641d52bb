"""Same random_state, float64 data, a few epochs: fastbp's estimators reproduce
scikit-learn's MLPClassifier / MLPRegressor (weights, n_iter_, loss curves,
early stopping, partial_fit, warm_start, warnings)."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import neural_network as sknn
from sklearn.exceptions import ConvergenceWarning

import fastbp

RTOL = 1e-6
RTOL_LBFGS = 1e-5
ATOL = 1e-10

PAIRS = {
    "clf": (fastbp.MLPClassifier, sknn.MLPClassifier) if hasattr(fastbp, "MLPClassifier") else None,
    "reg": (fastbp.MLPRegressor, sknn.MLPRegressor) if hasattr(fastbp, "MLPRegressor") else None,
}


def _classes(kind):
    if PAIRS[kind] is None:
        pytest.fail(f"fastbp has no {'MLPClassifier' if kind == 'clf' else 'MLPRegressor'}")
    return PAIRS[kind]


def _call(method, *args, **kwargs):
    """Call and report whether a ConvergenceWarning was emitted."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always", ConvergenceWarning)
        method(*args, **kwargs)
    return any(issubclass(w.category, ConvergenceWarning) for w in record)


def fit_both(kind, X, y, fit_kwargs=None, **params):
    fb_cls, sk_cls = _classes(kind)
    fit_kwargs = fit_kwargs or {}
    fb = fb_cls(**params)
    sk = sk_cls(**params)
    warned_fb = _call(fb.fit, X, y, **fit_kwargs)
    warned_sk = _call(sk.fit, X, y, **fit_kwargs)
    assert warned_fb == warned_sk, "ConvergenceWarning emitted by only one of the two"
    return fb, sk


def assert_same_model(fb, sk, X, rtol=RTOL, atol=ATOL, loss_factor=1.0):
    assert fb.n_iter_ == sk.n_iter_
    assert fb.n_layers_ == sk.n_layers_
    assert fb.n_outputs_ == sk.n_outputs_
    assert fb.out_activation_ == sk.out_activation_
    assert fb.n_features_in_ == sk.n_features_in_
    assert len(fb.coefs_) == len(sk.coefs_)
    assert len(fb.intercepts_) == len(sk.intercepts_)
    for i, (a, b) in enumerate(zip(fb.coefs_, sk.coefs_)):
        assert a.dtype == b.dtype == np.float64
        assert a.shape == b.shape
        assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"coefs_[{i}]")
    for i, (a, b) in enumerate(zip(fb.intercepts_, sk.intercepts_)):
        assert a.shape == b.shape
        assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"intercepts_[{i}]")
    assert_allclose(fb.loss_, loss_factor * sk.loss_, rtol=rtol)
    assert hasattr(fb, "loss_curve_") == hasattr(sk, "loss_curve_")
    if sk.solver in ("sgd", "adam"):
        assert fb.t_ == sk.t_
        assert len(fb.loss_curve_) == len(sk.loss_curve_)
        assert_allclose(fb.loss_curve_, loss_factor * np.asarray(sk.loss_curve_), rtol=rtol)
        if sk.early_stopping:
            assert fb.best_loss_ is None
            assert_allclose(fb.validation_scores_, sk.validation_scores_, rtol=rtol)
            assert_allclose(fb.best_validation_score_, sk.best_validation_score_, rtol=rtol)
        else:
            assert_allclose(fb.best_loss_, loss_factor * sk.best_loss_, rtol=rtol)
            assert fb.validation_scores_ is None
            assert fb.best_validation_score_ is None
    if hasattr(sk, "classes_"):
        assert_array_equal(fb.classes_, sk.classes_)
        assert_allclose(fb.predict_proba(X), sk.predict_proba(X), rtol=rtol, atol=atol)
        assert_array_equal(fb.predict(X), sk.predict(X))
    else:
        assert_allclose(fb.predict(X), sk.predict(X), rtol=rtol, atol=1e-8)


# --------------------------------------------------------------------------
# classifier
# --------------------------------------------------------------------------

CLF_SGD_CASES = {
    "nesterov-constant": dict(
        hidden_layer_sizes=(16,), learning_rate_init=0.05, momentum=0.9,
        nesterovs_momentum=True, batch_size=50,
    ),
    "momentum-invscaling-tanh": dict(
        hidden_layer_sizes=(12, 8), activation="tanh", learning_rate="invscaling",
        learning_rate_init=0.5, power_t=0.25, momentum=0.8, nesterovs_momentum=False,
        batch_size=40,
    ),
    "no-momentum-logistic": dict(
        hidden_layer_sizes=(10,), activation="logistic", momentum=0.0,
        learning_rate_init=0.3, batch_size=64,
    ),
    # tol so large that the loss never "improves": the learning rate is divided
    # by 5 every second epoch
    "adaptive": dict(
        hidden_layer_sizes=(16,), learning_rate="adaptive", learning_rate_init=0.1,
        tol=0.5, n_iter_no_change=1, max_iter=7, batch_size=100,
    ),
    "online-nesterov": dict(
        hidden_layer_sizes=(9,), learning_rate_init=0.01, momentum=0.9, batch_size=1, max_iter=2,
    ),
    "no-shuffle-identity": dict(
        hidden_layer_sizes=(8,), activation="identity", shuffle=False,
        learning_rate_init=0.02, batch_size=70,
    ),
    # 12,010 parameters: the step runs as two slices, one per thread (PARALLEL_STEP_MIN_PARAMS)
    "two-step-slices-nesterov": dict(
        hidden_layer_sizes=(160,), learning_rate_init=0.01, momentum=0.9, batch_size=64,
    ),
}


@pytest.mark.parametrize("case", list(CLF_SGD_CASES))
def test_classifier_sgd(digits, case):
    X, y = digits
    params = dict(solver="sgd", max_iter=5, random_state=0, alpha=1e-3)
    params.update(CLF_SGD_CASES[case])
    fb, sk = fit_both("clf", X, y, **params)
    assert sk.n_iter_ == params["max_iter"]
    assert_same_model(fb, sk, X)


def test_classifier_sgd_stops_on_tol(digits):
    # the tol / n_iter_no_change rule: stop after n_iter_no_change + 2 epochs,
    # without a ConvergenceWarning
    X, y = digits
    fb, sk = fit_both(
        "clf", X, y, solver="sgd", hidden_layer_sizes=(16,), learning_rate_init=0.05,
        tol=0.5, n_iter_no_change=2, max_iter=30, random_state=1,
    )
    assert sk.n_iter_ == 4
    assert_same_model(fb, sk, X)


ADAM_CASES = {
    "digits-relu-2layers": ("digits", dict(hidden_layer_sizes=(20, 10), batch_size=64)),
    "multiclass-logistic": ("multiclass", dict(hidden_layer_sizes=(12,), activation="logistic",
                                                learning_rate_init=0.01, batch_size=32)),
    "multiclass-tanh-custom-betas": ("multiclass", dict(
        hidden_layer_sizes=(10,), activation="tanh", beta_1=0.8, beta_2=0.99, epsilon=1e-6,
        learning_rate_init=0.02, batch_size=45)),
    "binary-identity": ("binary", dict(hidden_layer_sizes=(6,), activation="identity",
                                       learning_rate_init=0.01, batch_size=25)),
    "binary-relu-auto-batch": ("binary", dict(hidden_layer_sizes=(7, 5), learning_rate_init=0.01)),
    "multilabel-relu": ("multilabel", dict(hidden_layer_sizes=(10,), learning_rate_init=0.01,
                                           batch_size=30)),
    # online: one row per step (the kernels' one-row path)
    "online-binary-tanh": ("binary", dict(hidden_layer_sizes=(6, 5), activation="tanh",
                                          learning_rate_init=0.01, batch_size=1)),
    "online-multiclass-relu": ("multiclass", dict(hidden_layer_sizes=(12,), learning_rate_init=0.01,
                                                  batch_size=1)),
    # 24 columns: Adam's step runs inside the one-row backward pass
    "online-multiclass-wide": ("multiclass", dict(hidden_layer_sizes=(24, 8), learning_rate_init=0.01,
                                                  batch_size=1)),
    # 12,010 parameters: the step runs as two slices, one per thread (PARALLEL_STEP_MIN_PARAMS)
    "digits-two-step-slices": ("digits", dict(hidden_layer_sizes=(160,), batch_size=64)),
}


def _clf_data(name, digits, multiclass_data, binary_data, multilabel_data):
    return {"digits": digits, "multiclass": multiclass_data, "binary": binary_data,
            "multilabel": multilabel_data}[name]


@pytest.mark.parametrize("case", list(ADAM_CASES))
def test_classifier_adam(case, digits, multiclass_data, binary_data, multilabel_data):
    data_name, extra = ADAM_CASES[case]
    X, y = _clf_data(data_name, digits, multiclass_data, binary_data, multilabel_data)
    params = dict(solver="adam", max_iter=5, random_state=42, alpha=1e-4)
    params.update(extra)
    fb, sk = fit_both("clf", X, y, **params)
    assert_same_model(fb, sk, X)
    if data_name == "multilabel":
        assert fb.out_activation_ == "logistic"
        assert fb.predict(X).shape == y.shape
    elif data_name == "binary":
        assert fb.out_activation_ == "logistic" and fb.n_outputs_ == 1
    else:
        assert fb.out_activation_ == "softmax"


def test_batch_size_larger_than_n_samples(multiclass_data):
    # clipped to n_samples, with scikit-learn's UserWarning
    X, y = multiclass_data
    fb_cls, sk_cls = _classes("clf")
    params = dict(solver="adam", hidden_layer_sizes=(6,), batch_size=1000, max_iter=3,
                  random_state=8, learning_rate_init=0.01)
    fb, sk = fb_cls(**params), sk_cls(**params)
    for est in (fb, sk):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            with pytest.warns(UserWarning, match="batch_size"):
                est.fit(X, y)
    assert_same_model(fb, sk, X)


def test_classifier_multilabel_sgd(multilabel_data):
    X, Y = multilabel_data
    fb, sk = fit_both("clf", X, Y, solver="sgd", hidden_layer_sizes=(9,), activation="tanh",
                      learning_rate_init=0.1, batch_size=20, max_iter=5, random_state=3)
    assert_same_model(fb, sk, X)


LBFGS_CASES = {
    "digits-relu": ("digits", dict(hidden_layer_sizes=(16,), max_iter=5)),
    "multiclass-tanh-2layers": ("multiclass", dict(hidden_layer_sizes=(8, 6), activation="tanh",
                                                  max_iter=5)),
    "binary-logistic": ("binary", dict(hidden_layer_sizes=(5,), activation="logistic",
                                       max_iter=5)),
    "multilabel": ("multilabel", dict(hidden_layer_sizes=(8,), max_iter=5)),
    # the function-evaluation budget ends the run before max_iter
    "max_fun": ("multiclass", dict(hidden_layer_sizes=(8,), max_iter=100, max_fun=6)),
}


@pytest.mark.parametrize("case", list(LBFGS_CASES))
def test_classifier_lbfgs(case, digits, multiclass_data, binary_data, multilabel_data):
    data_name, extra = LBFGS_CASES[case]
    X, y = _clf_data(data_name, digits, multiclass_data, binary_data, multilabel_data)
    params = dict(solver="lbfgs", random_state=7, alpha=1e-3)
    params.update(extra)
    fb, sk = fit_both("clf", X, y, **params)
    if case == "max_fun":
        assert sk.n_iter_ < 100
    assert_same_model(fb, sk, X, rtol=RTOL_LBFGS)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_classifier_early_stopping(digits, solver):
    X, y = digits
    fb, sk = fit_both(
        "clf", X, y, solver=solver, hidden_layer_sizes=(16,), early_stopping=True,
        validation_fraction=0.2, n_iter_no_change=3, tol=1e-3, max_iter=12,
        learning_rate_init=0.01 if solver == "adam" else 0.1, batch_size=60,
        random_state=11,
    )
    assert len(sk.validation_scores_) == sk.n_iter_
    assert_same_model(fb, sk, X)


def test_classifier_early_stopping_restores_best_weights(digits):
    # large steps make the validation score wander; the weights returned are
    # those of the best epoch, not the last one
    X, y = digits
    fb, sk = fit_both(
        "clf", X, y, solver="sgd", hidden_layer_sizes=(16,), early_stopping=True,
        validation_fraction=0.25, n_iter_no_change=2, tol=0.0, max_iter=15,
        learning_rate_init=0.9, momentum=0.95, batch_size=30, random_state=5,
    )
    # the best epoch is not the last one, so restoring matters
    assert np.argmax(sk.validation_scores_) < sk.n_iter_ - 1
    assert_same_model(fb, sk, X)
    assert_allclose(fb.best_validation_score_, max(fb.validation_scores_), rtol=1e-12)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_classifier_sample_weight(digits, solver):
    X, y = digits
    sw = np.random.RandomState(0).uniform(0.0, 3.0, size=len(y))
    sw[::7] = 0.0
    params = dict(solver=solver, hidden_layer_sizes=(12,), max_iter=5, random_state=2,
                  batch_size=64, learning_rate_init=0.01 if solver == "adam" else 0.1)
    fb, sk = fit_both("clf", X, y, fit_kwargs=dict(sample_weight=sw), **params)
    assert_same_model(fb, sk, X, rtol=RTOL_LBFGS if solver == "lbfgs" else RTOL)
    # the weights matter
    unweighted = fastbp.MLPClassifier(**params)
    _call(unweighted.fit, X, y)
    assert not np.allclose(unweighted.coefs_[0], fb.coefs_[0], rtol=1e-3)


def test_classifier_sample_weight_early_stopping(multiclass_data):
    X, y = multiclass_data
    sw = np.random.RandomState(1).uniform(0.5, 2.0, size=len(y))
    fb, sk = fit_both(
        "clf", X, y, fit_kwargs=dict(sample_weight=sw), solver="adam",
        hidden_layer_sizes=(8,), early_stopping=True, validation_fraction=0.2,
        max_iter=6, learning_rate_init=0.02, random_state=4,
    )
    assert_same_model(fb, sk, X)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_classifier_partial_fit(digits, solver):
    X, y = digits
    fb_cls, sk_cls = _classes("clf")
    params = dict(solver=solver, hidden_layer_sizes=(16,), random_state=9, batch_size=32,
                  learning_rate_init=0.05 if solver == "sgd" else 0.005)
    fb, sk = fb_cls(**params), sk_cls(**params)
    classes = np.unique(y)
    chunks = [slice(0, 40), slice(40, 160), slice(160, 300), slice(0, 300)]
    rng = np.random.RandomState(0)
    for k, chunk in enumerate(chunks):
        sw = rng.uniform(0.5, 1.5, size=chunk.stop - chunk.start) if k == 2 else None
        kw = dict(classes=classes) if k == 0 else {}
        fb.partial_fit(X[chunk], y[chunk], sample_weight=sw, **kw)
        sk.partial_fit(X[chunk], y[chunk], sample_weight=sw, **kw)
        assert len(fb.loss_curve_) == k + 1
        assert_same_model(fb, sk, X)


def test_classifier_partial_fit_multilabel(multilabel_data):
    X, Y = multilabel_data
    fb_cls, sk_cls = _classes("clf")
    params = dict(solver="adam", hidden_layer_sizes=(8,), random_state=0,
                  learning_rate_init=0.01)
    fb, sk = fb_cls(**params), sk_cls(**params)
    for chunk in [slice(0, 60), slice(60, 120)]:
        fb.partial_fit(X[chunk], Y[chunk], classes=np.arange(Y.shape[1]))
        sk.partial_fit(X[chunk], Y[chunk], classes=np.arange(Y.shape[1]))
        assert_same_model(fb, sk, X)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_classifier_warm_start(multiclass_data, solver):
    X, y = multiclass_data
    params = dict(solver=solver, hidden_layer_sizes=(10,), max_iter=3, random_state=6,
                  warm_start=True, learning_rate_init=0.01 if solver == "adam" else 0.1)
    fb, sk = fit_both("clf", X, y, **params)
    rtol = RTOL_LBFGS if solver == "lbfgs" else RTOL
    assert_same_model(fb, sk, X, rtol=rtol)
    first = [c.copy() for c in fb.coefs_]
    # second fit continues from the current weights (and optimizer state)
    assert _call(fb.fit, X, y) == _call(sk.fit, X, y)
    assert_same_model(fb, sk, X, rtol=rtol)
    assert not np.allclose(first[0], fb.coefs_[0])
    if solver != "lbfgs":
        assert len(fb.loss_curve_) == 6
    # warm_start=False starts over: same as a fresh fit
    fb.set_params(warm_start=False)
    sk.set_params(warm_start=False)
    assert _call(fb.fit, X, y) == _call(sk.fit, X, y)
    assert_same_model(fb, sk, X, rtol=rtol)


# --------------------------------------------------------------------------
# regressor
# --------------------------------------------------------------------------

REG_CASES = {
    "sgd-nesterov": dict(solver="sgd", hidden_layer_sizes=(10,), learning_rate_init=0.01,
                         batch_size=32),
    "sgd-momentum-invscaling-tanh": dict(
        solver="sgd", hidden_layer_sizes=(8, 6), activation="tanh", nesterovs_momentum=False,
        learning_rate="invscaling", learning_rate_init=0.1, power_t=0.3, batch_size=40),
    "sgd-adaptive": dict(solver="sgd", hidden_layer_sizes=(10,), learning_rate="adaptive",
                         learning_rate_init=0.01, tol=10.0, n_iter_no_change=1, max_iter=7),
    "adam-relu": dict(solver="adam", hidden_layer_sizes=(16, 8), learning_rate_init=0.01,
                      batch_size=50),
    "adam-logistic-no-shuffle": dict(solver="adam", hidden_layer_sizes=(10,),
                                     activation="logistic", shuffle=False,
                                     learning_rate_init=0.02, batch_size=64),
    "adam-identity-auto-batch": dict(solver="adam", hidden_layer_sizes=(5,),
                                     activation="identity", learning_rate_init=0.02),
}


@pytest.mark.parametrize("case", list(REG_CASES))
def test_regressor_squared_error(regression_data, case):
    X, y = regression_data
    params = dict(max_iter=5, random_state=13, alpha=1e-3)
    params.update(REG_CASES[case])
    fb, sk = fit_both("reg", X, y, **params)
    assert fb.out_activation_ == "identity"
    assert_same_model(fb, sk, X)


def test_regressor_stops_on_tol(regression_data):
    X, y = regression_data
    fb, sk = fit_both("reg", X, y, solver="adam", hidden_layer_sizes=(10,), tol=10.0,
                      n_iter_no_change=3, max_iter=50, random_state=0)
    assert sk.n_iter_ == 5
    assert_same_model(fb, sk, X)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_regressor_lbfgs(regression_data, activation):
    X, y = regression_data
    fb, sk = fit_both("reg", X, y, solver="lbfgs", hidden_layer_sizes=(10,),
                      activation=activation, max_iter=5, random_state=14, alpha=1e-2)
    assert_same_model(fb, sk, X, rtol=RTOL_LBFGS)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_regressor_poisson(poisson_data, solver):
    X, y = poisson_data
    fb, sk = fit_both(
        "reg", X, y, loss="poisson", solver=solver, hidden_layer_sizes=(8,),
        activation="tanh", learning_rate_init=0.01 if solver == "sgd" else 0.005,
        batch_size=32, max_iter=5, random_state=15, alpha=1e-3,
    )
    assert fb.out_activation_ == "exp"
    assert_same_model(fb, sk, X, rtol=RTOL_LBFGS if solver == "lbfgs" else RTOL)
    assert (fb.predict(X) > 0).all()


def test_regressor_poisson_zero_counts(poisson_data):
    # y == 0 rows exercise the xlogy(y, y) = 0 convention of the deviance
    X, y = poisson_data
    y = y.copy()
    y[::3] = 0.0
    fb, sk = fit_both("reg", X, y, loss="poisson", solver="adam", hidden_layer_sizes=(6,),
                      learning_rate_init=0.01, max_iter=4, random_state=16)
    assert_same_model(fb, sk, X)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_regressor_early_stopping(regression_data, solver):
    X, y = regression_data
    fb, sk = fit_both(
        "reg", X, y, solver=solver, hidden_layer_sizes=(12,), early_stopping=True,
        validation_fraction=0.2, n_iter_no_change=2, max_iter=10, batch_size=30,
        learning_rate_init=0.01, random_state=17,
    )
    assert_same_model(fb, sk, X)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_regressor_sample_weight(regression_data, solver):
    X, y = regression_data
    sw = np.random.RandomState(3).randint(0, 4, size=len(y)).astype(float)
    fb, sk = fit_both(
        "reg", X, y, fit_kwargs=dict(sample_weight=sw), solver=solver,
        hidden_layer_sizes=(10,), max_iter=5, batch_size=40, learning_rate_init=0.01,
        random_state=18,
    )
    assert_same_model(fb, sk, X, rtol=RTOL_LBFGS if solver == "lbfgs" else RTOL)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_regressor_partial_fit(regression_data, solver):
    X, y = regression_data
    fb_cls, sk_cls = _classes("reg")
    params = dict(solver=solver, hidden_layer_sizes=(10,), random_state=19, batch_size=25,
                  learning_rate_init=0.01)
    fb, sk = fb_cls(**params), sk_cls(**params)
    rng = np.random.RandomState(1)
    for k, chunk in enumerate([slice(0, 50), slice(50, 150), slice(0, 150)]):
        sw = rng.uniform(0.5, 2.0, size=chunk.stop - chunk.start) if k == 1 else None
        fb.partial_fit(X[chunk], y[chunk], sample_weight=sw)
        sk.partial_fit(X[chunk], y[chunk], sample_weight=sw)
        assert len(fb.loss_curve_) == k + 1
        assert_same_model(fb, sk, X)


def test_regressor_warm_start(regression_data):
    X, y = regression_data
    fb, sk = fit_both("reg", X, y, solver="sgd", hidden_layer_sizes=(10,), max_iter=3,
                      warm_start=True, learning_rate_init=0.01, random_state=20)
    assert_same_model(fb, sk, X)
    assert _call(fb.fit, X, y) == _call(sk.fit, X, y)
    assert_same_model(fb, sk, X)
    assert len(fb.loss_curve_) == 6


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_regressor_multioutput_loss_not_divided(multioutput_regression_data, solver):
    """Multi-output squared_error: the same gradient, hence the same weights, as
    scikit-learn, but loss_ is the undivided 0.5 * sum over outputs (mean over
    samples): scikit-learn's loss_ times n_outputs (alpha = 0 makes this exact)."""
    X, Y = multioutput_regression_data
    fb, sk = fit_both(
        "reg", X, Y, solver=solver, hidden_layer_sizes=(10,), alpha=0.0, max_iter=5,
        batch_size=30, learning_rate_init=0.01, random_state=21,
    )
    assert fb.n_outputs_ == Y.shape[1] == 3
    assert_same_model(fb, sk, X, loss_factor=Y.shape[1])
    assert fb.predict(X).shape == Y.shape


def test_regressor_multioutput_with_alpha_same_weights(multioutput_regression_data):
    X, Y = multioutput_regression_data
    fb, sk = fit_both("reg", X, Y, solver="adam", hidden_layer_sizes=(10,), alpha=1e-2,
                      max_iter=4, learning_rate_init=0.01, random_state=22)
    # weights and predictions as scikit-learn's; the loss only approximately
    # n_outputs times scikit-learn's (the L2 term is not divided by n_outputs)
    assert fb.n_iter_ == sk.n_iter_
    for a, b in zip(fb.coefs_ + fb.intercepts_, sk.coefs_ + sk.intercepts_):
        assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    assert_allclose(fb.loss_, Y.shape[1] * sk.loss_, rtol=1e-2)


def test_regressor_multioutput_lbfgs_minimizes_undivided_loss(
    multioutput_regression_data, monkeypatch
):
    """L-BFGS sees the loss value as well as the gradient, so with several
    outputs it follows scikit-learn's path only when scikit-learn is given the
    same, undivided loss (its own divided value is inconsistent with its
    gradient and steers the line search elsewhere)."""
    import sklearn.neural_network._multilayer_perceptron as skmlp
    from sklearn.neural_network._base import squared_loss

    def undivided(y_true, y_pred, sample_weight=None):
        return squared_loss(y_true, y_pred, sample_weight) * y_true.shape[1]

    monkeypatch.setitem(skmlp.LOSS_FUNCTIONS, "squared_error", undivided)
    X, Y = multioutput_regression_data
    fb, sk = fit_both("reg", X, Y, solver="lbfgs", hidden_layer_sizes=(10,), alpha=1e-3,
                      max_iter=6, random_state=23)
    assert_same_model(fb, sk, X, rtol=RTOL_LBFGS)
