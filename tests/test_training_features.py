"""Training features of the estimators: per-layer activations and aliases,
maxout, dropout, L1, class_weight, init, validation data, callbacks, verbose
output, and the validation of every new parameter."""

import copy
import re
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.class_weight import compute_sample_weight

from fastbp import MLPClassifier, MLPRegressor

from . import naive

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

CLF = dict(hidden_layer_sizes=(12, 8), max_iter=5, random_state=0, batch_size=40, learning_rate_init=0.01)
REG = dict(hidden_layer_sizes=(10, 6), max_iter=5, random_state=0, batch_size=40, learning_rate_init=0.01)


def _weights(est):
    return list(est.coefs_) + list(est.intercepts_)


def assert_identical_weights(a, b):
    assert len(a.coefs_) == len(b.coefs_)
    for wa, wb in zip(_weights(a), _weights(b)):
        assert wa.dtype == wb.dtype
        assert_array_equal(wa, wb)


def assert_different_weights(a, b):
    assert any(wa.shape != wb.shape or not np.allclose(wa, wb) for wa, wb in zip(_weights(a), _weights(b)))


def one_hot(est, y):
    return LabelBinarizer().fit(est.classes_).transform(y).astype(np.float64)


# --------------------------------------------------------------------------
# activations per layer, aliases, maxout
# --------------------------------------------------------------------------


def test_activation_list_per_layer(multiclass_data):
    X, y = multiclass_data
    names = ["relu", "tanh"]
    clf = MLPClassifier(activation=names, **CLF).fit(X, y)
    assert clf.get_params()["activation"] == names
    ref = naive.forward(clf.coefs_, clf.intercepts_, X, names, "softmax")[-1]
    assert_allclose(clf.predict_proba(X), ref, rtol=1e-10, atol=1e-14)
    # not the same network as either name alone
    assert_different_weights(clf, MLPClassifier(activation="relu", **CLF).fit(X, y))
    assert_different_weights(clf, MLPClassifier(activation="tanh", **CLF).fit(X, y))
    # clone keeps the list
    assert clone(clf).get_params()["activation"] == names


@pytest.mark.parametrize("name", ["tanh", "logistic", "gelu", "maxout"])
def test_activation_list_of_one_name_equals_the_name(multiclass_data, name):
    X, y = multiclass_data
    as_list = MLPClassifier(activation=[name, name], **CLF).fit(X, y)
    as_str = MLPClassifier(activation=name, **CLF).fit(X, y)
    assert_identical_weights(as_list, as_str)


@pytest.mark.parametrize("activation", [["relu"], ["relu", "tanh", "relu"], [], ("tanh",)],
                         ids=["1-for-2", "3-for-2", "empty", "tuple-1-for-2"])
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_activation_list_wrong_length_raises(multiclass_data, cls, activation):
    X, y = multiclass_data
    with pytest.raises(ValueError, match="activation"):
        cls(activation=activation, hidden_layer_sizes=(6, 4), max_iter=2).fit(X, y)


@pytest.mark.parametrize("alias, canonical", [("sigmoid", "logistic"), ("silu", "swish")])
def test_aliases_equal_canonical_names(multiclass_data, regression_data, alias, canonical):
    X, y = multiclass_data
    assert_identical_weights(MLPClassifier(activation=alias, **CLF).fit(X, y),
                             MLPClassifier(activation=canonical, **CLF).fit(X, y))
    assert_identical_weights(MLPClassifier(activation=[alias, "relu"], **CLF).fit(X, y),
                             MLPClassifier(activation=[canonical, "relu"], **CLF).fit(X, y))
    X, y = regression_data
    a = MLPRegressor(activation=alias, solver="lbfgs", **{**REG, "max_iter": 10}).fit(X, y)
    b = MLPRegressor(activation=canonical, solver="lbfgs", **{**REG, "max_iter": 10}).fit(X, y)
    assert_identical_weights(a, b)
    assert_array_equal(a.predict(X), b.predict(X))


def test_negative_slope_is_used(multiclass_data):
    X, y = multiclass_data
    a = MLPClassifier(activation="leaky_relu", negative_slope=0.3, **CLF).fit(X, y)
    ref = naive.forward(a.coefs_, a.intercepts_, X, "leaky_relu", "softmax", negative_slope=0.3)[-1]
    assert_allclose(a.predict_proba(X), ref, rtol=1e-10, atol=1e-14)
    assert_different_weights(a, MLPClassifier(activation="leaky_relu", **CLF).fit(X, y))
    # negative_slope=0 is relu
    assert_identical_weights(MLPClassifier(activation="leaky_relu", negative_slope=0.0, **CLF).fit(X, y),
                             MLPClassifier(activation="relu", **CLF).fit(X, y))


@pytest.mark.parametrize(
    "activation, pieces, expected_cols",
    [("maxout", 3, [15, 9]), ("maxout", 2, [10, 6]), (["maxout", "relu"], 2, [10, 3]),
     (["tanh", "maxout"], 4, [5, 12])],
    ids=["maxout-k3", "maxout-k2", "maxout-relu", "tanh-maxout-k4"],
)
def test_maxout_coef_shapes(multiclass_data, activation, pieces, expected_cols):
    X, y = multiclass_data
    clf = MLPClassifier(hidden_layer_sizes=(5, 3), activation=activation, maxout_pieces=pieces, max_iter=3,
                        random_state=0).fit(X, y)
    n_classes = len(clf.classes_)
    assert [c.shape for c in clf.coefs_] == [(X.shape[1], expected_cols[0]), (5, expected_cols[1]),
                                             (3, n_classes)]
    assert [b.shape for b in clf.intercepts_] == [(expected_cols[0],), (expected_cols[1],), (n_classes,)]
    assert clf.n_layers_ == 4
    ref = naive.forward(clf.coefs_, clf.intercepts_, X, activation, "softmax", maxout_pieces=pieces)[-1]
    assert_allclose(clf.predict_proba(X), ref, rtol=1e-10, atol=1e-14)


def test_maxout_warm_start_with_other_pieces_raises(multiclass_data):
    X, y = multiclass_data
    clf = MLPClassifier(hidden_layer_sizes=(5,), activation="maxout", warm_start=True, max_iter=2,
                        random_state=0).fit(X, y)
    clf.set_params(maxout_pieces=3)
    with pytest.raises(ValueError):
        clf.fit(X, y)


# --------------------------------------------------------------------------
# dropout
# --------------------------------------------------------------------------


def test_dropout_prediction_is_deterministic(multiclass_data):
    X, y = multiclass_data
    clf = MLPClassifier(dropout=0.5, **CLF).fit(X, y)
    p1 = clf.predict_proba(X)
    p2 = clf.predict_proba(X)
    assert_array_equal(p1, p2)
    # no dropout at prediction: the plain forward pass of the fitted weights
    ref = naive.forward(clf.coefs_, clf.intercepts_, X, "relu", "softmax")[-1]
    assert_allclose(p1, ref, rtol=1e-10, atol=1e-14)
    assert_array_equal(clf.predict(X), clf.classes_[np.argmax(p1, axis=1)])


@pytest.mark.parametrize("solver", ["sgd", "adam", "rmsprop", "adagrad", "adamw"])
def test_dropout_reproducible_from_random_state(multiclass_data, solver):
    X, y = multiclass_data
    kw = {**CLF, "solver": solver}
    a = MLPClassifier(dropout=0.3, **kw).fit(X, y)
    b = MLPClassifier(dropout=0.3, **kw).fit(X, y)
    assert_identical_weights(a, b)
    assert all(np.isfinite(w).all() for w in _weights(a))
    other_seed = MLPClassifier(dropout=0.3, **{**kw, "random_state": 1}).fit(X, y)
    assert_different_weights(a, other_seed)
    # dropout does something
    assert_different_weights(a, MLPClassifier(dropout=0.0, **kw).fit(X, y))


def test_dropout_masks_come_from_random_state(multiclass_data):
    """The same starting weights (warm start) and no shuffling: only the dropout
    masks can differ, and they follow random_state."""
    X, y = multiclass_data
    base = MLPClassifier(**{**CLF, "max_iter": 1, "shuffle": False}).fit(X, y)

    def continue_with(seed):
        est = copy.deepcopy(base)
        est.set_params(warm_start=True, dropout=0.3, random_state=seed, max_iter=2)
        return est.fit(X, y)

    assert_identical_weights(continue_with(1), continue_with(1))
    assert_different_weights(continue_with(1), continue_with(2))


def test_dropout_rate_list(multiclass_data):
    X, y = multiclass_data
    first = MLPClassifier(dropout=[0.5, 0.0], **CLF).fit(X, y)
    both = MLPClassifier(dropout=[0.5, 0.5], **CLF).fit(X, y)
    scalar = MLPClassifier(dropout=0.5, **CLF).fit(X, y)
    none = MLPClassifier(dropout=[0.0, 0.0], **CLF).fit(X, y)
    assert_identical_weights(both, scalar)
    assert_identical_weights(none, MLPClassifier(dropout=0.0, **CLF).fit(X, y))
    assert_different_weights(first, both)
    assert_different_weights(first, none)


def test_dropout_training_loss_is_higher(multiclass_data):
    """The training loss is measured on the thinned network: with heavy dropout it
    is well above the loss of the same network evaluated without dropout."""
    X, y = multiclass_data
    clf = MLPClassifier(hidden_layer_sizes=(32,), dropout=0.7, max_iter=40, random_state=0, batch_size=150,
                        learning_rate_init=0.01).fit(X, y)
    clean = naive.loss_value(clf.coefs_, clf.intercepts_, X, one_hot(clf, y), "relu", "softmax", "log_loss",
                             alpha=clf.alpha)
    assert clf.loss_curve_[-1] > clean


def test_inverted_dropout_keeps_the_expected_output():
    """Inverted dropout scales the kept units by 1 / (1 - rate), so the expected
    output is the clean one. A linear network whose targets are its own clean
    outputs: the training loss is then the dropout variance alone,
    E[l_i] = 1/2 sum_j c_ij**2 rate / (1 - rate) with c_ij = a_ij * W2_j, far
    below the loss without the rescaling (which also shifts the mean)."""
    rng = np.random.RandomState(0)
    n, h, rate = 4000, 50, 0.3
    X = rng.uniform(0.5, 1.5, size=(n, 3))
    W1, W2 = rng.uniform(0.1, 0.3, size=(3, h)), rng.uniform(0.5, 1.0, size=(h, 1))
    y = (X @ W1 @ W2).ravel()
    reg = MLPRegressor(hidden_layer_sizes=(h,), activation="identity", solver="sgd", max_iter=1, batch_size=n,
                       shuffle=False, alpha=0.0, momentum=0.0, learning_rate_init=1e-300, random_state=0)
    reg.fit(X, y)
    reg.coefs_, reg.intercepts_ = [W1.copy(), W2.copy()], [np.zeros(h), np.zeros(1)]
    reg.set_params(warm_start=True, dropout=rate)
    reg.fit(X, y)  # one epoch, one batch, the weights do not move: loss_ is the loss under dropout
    assert_array_equal(reg.coefs_[0], W1)
    c = (X @ W1) * W2.ravel()
    inverted = 0.5 * np.mean((c**2).sum(axis=1)) * rate / (1 - rate)
    unscaled = 0.5 * np.mean((rate * c.sum(axis=1)) ** 2 + (c**2).sum(axis=1) * rate * (1 - rate))
    assert unscaled > 5 * inverted
    assert abs(reg.loss_ - inverted) < 0.1 * inverted, (reg.loss_, inverted, unscaled)
    # without dropout the clean targets are met exactly
    reg.set_params(dropout=0.0)
    reg.coefs_, reg.intercepts_ = [W1.copy(), W2.copy()], [np.zeros(h), np.zeros(1)]
    reg.fit(X, y)
    assert reg.loss_ < 1e-20


@pytest.mark.parametrize("solver", ["lbfgs", "rprop", "quickprop", "lm"])
def test_dropout_needs_a_stochastic_solver(regression_data, solver):
    X, y = regression_data
    with pytest.raises(ValueError, match="dropout"):
        MLPRegressor(solver=solver, dropout=0.2, hidden_layer_sizes=(4,)).fit(X, y)
    with pytest.raises(ValueError, match="dropout"):
        MLPRegressor(solver=solver, dropout=[0.0, 0.2], hidden_layer_sizes=(4, 3)).fit(X, y)
    # a zero rate is no dropout
    MLPRegressor(solver=solver, dropout=[0.0, 0.0], hidden_layer_sizes=(4, 3), max_iter=2).fit(X, y)


@pytest.mark.parametrize("dropout", [1.0, -0.1, 1.5, [0.5], [0.1, 0.2, 0.3], [0.2, 1.0], [0.2, -0.5], "high"],
                         ids=str)
def test_dropout_invalid(multiclass_data, dropout):
    X, y = multiclass_data
    with pytest.raises(ValueError):
        MLPClassifier(dropout=dropout, hidden_layer_sizes=(6, 4), max_iter=2).fit(X, y)


# --------------------------------------------------------------------------
# L1
# --------------------------------------------------------------------------


def test_l1_drives_weights_to_zero():
    X, y = make_classification(n_samples=200, n_features=20, n_informative=3, n_redundant=0, shuffle=False,
                               random_state=0)
    kw = dict(hidden_layer_sizes=(10,), max_iter=200, random_state=0, learning_rate_init=0.01)
    plain = MLPClassifier(l1=0.0, **kw).fit(X, y)
    sparse = MLPClassifier(l1=2.0, **kw).fit(X, y)

    def flat(est):
        return np.concatenate([W.ravel() for W in est.coefs_])

    assert np.mean(np.abs(flat(sparse)) < 1e-2) > 0.5  # measured 0.79
    assert np.mean(np.abs(flat(plain)) < 1e-2) < 0.1  # measured 0.01
    assert np.abs(flat(sparse)).sum() < 0.5 * np.abs(flat(plain)).sum()
    # the weights of the 17 noise features shrink most
    W = sparse.coefs_[0]
    assert np.abs(W[3:]).mean() < 0.5 * np.abs(W[:3]).mean()
    assert sparse.score(X, y) > 0.85


def test_l1_in_the_reported_loss(regression_data):
    X, y = regression_data
    reg = MLPRegressor(hidden_layer_sizes=(6,), activation="tanh", solver="lbfgs", max_iter=20, l1=0.05,
                       alpha=0.01, random_state=0).fit(X, y)
    expected = naive.loss_value(reg.coefs_, reg.intercepts_, X, y.reshape(-1, 1), "tanh", "identity",
                                "squared_error", alpha=0.01, l1=0.05)
    assert_allclose(reg.loss_, expected, rtol=1e-9)


# --------------------------------------------------------------------------
# class_weight
# --------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs", "rprop"])
def test_class_weight_dict_equals_sample_weight(multiclass_data, solver):
    X, y = multiclass_data
    cw = {0: 1.0, 1: 3.0, 2: 0.5}
    kw = {**CLF, "solver": solver}
    a = MLPClassifier(class_weight=cw, **kw).fit(X, y)
    b = MLPClassifier(**kw).fit(X, y, sample_weight=np.array([cw[c] for c in y]))
    assert_identical_weights(a, b)
    assert_different_weights(a, MLPClassifier(**kw).fit(X, y))


def test_class_weight_balanced_equals_sample_weight():
    X, y = make_classification(n_samples=150, n_features=6, n_informative=4, n_classes=3,
                               weights=[0.6, 0.3, 0.1], random_state=0)
    a = MLPClassifier(class_weight="balanced", **CLF).fit(X, y)
    counts = np.bincount(y)
    w = len(y) / (3 * counts[y])
    b = MLPClassifier(**CLF).fit(X, y, sample_weight=w)
    assert_identical_weights(a, b)
    assert_allclose(w, compute_sample_weight("balanced", y))


def test_class_weight_times_sample_weight(binary_data):
    X, y = binary_data
    y = np.where(y == 1, "yes", "no")
    cw = {"no": 2.0, "yes": 0.5}
    sw = np.random.RandomState(0).uniform(0.5, 2.0, size=len(y))
    a = MLPClassifier(class_weight=cw, **CLF).fit(X, y, sample_weight=sw)
    b = MLPClassifier(**CLF).fit(X, y, sample_weight=sw * np.array([cw[c] for c in y]))
    assert_identical_weights(a, b)


def test_class_weight_in_partial_fit(multiclass_data):
    X, y = multiclass_data
    cw = {0: 2.0, 1: 1.0, 2: 0.25}
    kw = dict(hidden_layer_sizes=(8,), random_state=0, batch_size=40)
    a = MLPClassifier(class_weight=cw, **kw)
    b = MLPClassifier(**kw)
    for _ in range(2):
        a.partial_fit(X, y, classes=[0, 1, 2])
        b.partial_fit(X, y, classes=[0, 1, 2], sample_weight=np.array([cw[c] for c in y]))
    assert_identical_weights(a, b)
    with pytest.raises(ValueError, match="balanced"):
        MLPClassifier(class_weight="balanced", **kw).partial_fit(X, y, classes=[0, 1, 2])


@pytest.mark.parametrize("class_weight", [{0: 1.0, 7: 2.0}, "balance", {0: 0.0, 1: 0.0, 2: 0.0}],
                         ids=["unknown-class", "bad-string", "all-zero"])
def test_class_weight_invalid(multiclass_data, class_weight):
    X, y = multiclass_data
    with pytest.raises(ValueError):
        MLPClassifier(class_weight=class_weight, **CLF).fit(X, y)


# --------------------------------------------------------------------------
# init
# --------------------------------------------------------------------------


def _initial_weights(est, X, y):
    """The weights right after initialization: one SGD step with a rate so small
    that it cannot change a single bit of a weight."""
    est.set_params(solver="sgd", learning_rate_init=1e-300, momentum=0.0, max_iter=1, shuffle=False)
    return est.fit(X, y)


def _expected_draw(layer_units, bound, random_state=0):
    rs = np.random.RandomState(random_state)
    coefs, intercepts = [], []
    for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
        b = bound(fan_in, fan_out)
        coefs.append(rs.uniform(-b, b, (fan_in, fan_out)))
        intercepts.append(rs.uniform(-b, b, fan_out))
    return coefs, intercepts


_BOUNDS = {
    "glorot": lambda fi, fo: np.sqrt(6.0 / (fi + fo)),
    "he": lambda fi, fo: np.sqrt(6.0 / fi),
    "lecun": lambda fi, fo: np.sqrt(3.0 / fi),
}


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "maxout"])
@pytest.mark.parametrize("init", ["glorot", "he", "lecun"])
def test_init_draws(multiclass_data, init, activation):
    X, y = multiclass_data
    est = _initial_weights(MLPClassifier(hidden_layer_sizes=(7, 5), activation=activation, init=init,
                                         random_state=3), X, y)
    pieces = 2 if activation == "maxout" else 1
    cols = [X.shape[1], 7 * pieces, 5 * pieces, 3]  # weight columns of each layer
    bound = _BOUNDS[init]
    if init == "glorot" and activation == "logistic":  # scikit-learn's factor for logistic networks
        bound = lambda fi, fo: np.sqrt(2.0 / (fi + fo))  # noqa: E731
    fan_in = [X.shape[1], 7, 5]
    rs = np.random.RandomState(3)
    for layer, (W, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        fi, fo = fan_in[layer], cols[layer + 1]
        assert W.shape == (fi, fo)
        limit = bound(fi, fo)
        assert_array_equal(W, rs.uniform(-limit, limit, (fi, fo)))
        assert_array_equal(b, rs.uniform(-limit, limit, fo))
        assert np.abs(W).max() <= limit


def test_init_changes_the_scale(multiclass_data):
    X, y = multiclass_data
    spreads = {}
    for init in ("glorot", "he", "lecun"):
        est = _initial_weights(MLPClassifier(hidden_layer_sizes=(50,), init=init, random_state=0), X, y)
        spreads[init] = np.abs(est.coefs_[0]).max()
    # fan_in = 8, fan_out = 50: he sqrt(6/8) > lecun sqrt(3/8) > glorot sqrt(6/58)
    assert spreads["he"] > spreads["lecun"] > spreads["glorot"]
    assert spreads["he"] <= np.sqrt(6 / 8) and spreads["he"] > 0.9 * np.sqrt(6 / 8)


# --------------------------------------------------------------------------
# validation data and early stopping
# --------------------------------------------------------------------------


def _split(X, y, n_val=40):
    return X[n_val:], y[n_val:], X[:n_val], y[:n_val]


def test_validation_data_is_recorded(multiclass_data):
    X, y = multiclass_data
    Xt, yt, Xv, yv = _split(X, y)
    clf = MLPClassifier(**CLF).fit(Xt, yt, X_val=Xv, y_val=yv)
    assert len(clf.validation_scores_) == len(clf.validation_loss_curve_) == clf.n_iter_ == 5
    assert_allclose(clf.validation_scores_[-1], accuracy_score(yv, clf.predict(Xv)), rtol=1e-12)
    expected = naive.loss_value(clf.coefs_, clf.intercepts_, Xv, one_hot(clf, yv), "relu", "softmax", "log_loss")
    assert_allclose(clf.validation_loss_curve_[-1], expected, rtol=1e-9)  # no penalty term
    assert clf.validation_loss_curve_[0] > clf.validation_loss_curve_[-1]
    # watching does not change the training
    assert_identical_weights(clf, MLPClassifier(**CLF).fit(Xt, yt))


def test_validation_data_with_weights_regressor(regression_data):
    X, y = regression_data
    Xt, yt, Xv, yv = _split(X, y)
    wv = np.linspace(0.5, 2.0, len(yv))
    reg = MLPRegressor(**REG).fit(Xt, yt, X_val=Xv, y_val=yv, sample_weight_val=wv)
    assert len(reg.validation_scores_) == len(reg.validation_loss_curve_) == reg.n_iter_
    assert_allclose(reg.validation_scores_[-1], r2_score(yv, reg.predict(Xv), sample_weight=wv), rtol=1e-10)
    expected = naive.loss_value(reg.coefs_, reg.intercepts_, Xv, yv.reshape(-1, 1), "relu", "identity",
                                "squared_error", sample_weight=wv)
    assert_allclose(reg.validation_loss_curve_[-1], expected, rtol=1e-9)


def test_no_validation_curves_without_validation(regression_data):
    X, y = regression_data
    reg = MLPRegressor(**REG).fit(X, y)
    assert reg.validation_scores_ is None
    assert reg.validation_loss_curve_ is None


def test_early_stopping_on_validation_data(multiclass_data):
    X, y = multiclass_data
    Xt, yt, Xv, yv = _split(X, y)
    kw = dict(hidden_layer_sizes=(16,), max_iter=300, random_state=0, batch_size=40, learning_rate_init=0.05,
              n_iter_no_change=4)
    clf = MLPClassifier(early_stopping=True, **kw).fit(Xt, yt, X_val=Xv, y_val=yv)
    assert clf.n_iter_ < 300
    assert len(clf.validation_scores_) == len(clf.validation_loss_curve_) == clf.n_iter_
    # the whole of X trains (no split of it) ...
    assert clf.t_ == clf.n_iter_ * len(yt)
    # ... and the best weights on the validation data are restored
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert_allclose(clf.score(Xv, yv), clf.best_validation_score_)
    # the internal split is used without validation data: 10 % of X held out
    split = MLPClassifier(early_stopping=True, **kw).fit(Xt, yt)
    n_val = int(np.ceil(0.1 * len(yt)))
    assert split.t_ == split.n_iter_ * (len(yt) - n_val)
    assert len(split.validation_scores_) == len(split.validation_loss_curve_) == split.n_iter_


def test_validation_data_errors(multiclass_data):
    X, y = multiclass_data
    Xt, yt, Xv, yv = _split(X, y)
    clf = MLPClassifier(**CLF)
    with pytest.raises(ValueError):
        clf.fit(Xt, yt, X_val=Xv)
    with pytest.raises(ValueError):
        clf.fit(Xt, yt, y_val=yv)
    with pytest.raises(ValueError):
        clf.fit(Xt, yt, sample_weight_val=np.ones(len(yv)))
    with pytest.raises(ValueError):
        clf.fit(Xt, yt, X_val=Xv[:, :-1], y_val=yv)
    with pytest.raises(ValueError):
        clf.fit(Xt, yt, X_val=Xv, y_val=np.full(len(yv), 9))  # a class not in y
    with pytest.raises(ValueError):
        clf.fit(Xt, yt, X_val=Xv, y_val=yv[:-1])
    assert not hasattr(clf, "coefs_")


# --------------------------------------------------------------------------
# callbacks and verbose output
# --------------------------------------------------------------------------


def test_scoring_monitor_records_every_epoch(multiclass_data):
    callback = pytest.importorskip("sklearn.callback")
    X, y = multiclass_data
    monitor = callback.ScoringMonitor(scoring="accuracy")
    clf = MLPClassifier(**{**CLF, "max_iter": 6}).set_callbacks(monitor)
    clf.fit(X, y)
    rows = monitor.get_logs().data
    epochs = [row for row in rows if len(row["task_id_path"]) == 2]
    assert len(epochs) == clf.n_iter_ == 6
    assert_allclose(epochs[-1]["accuracy"], clf.score(X, y))
    # the callback watches, it does not change the training
    assert_identical_weights(clf, MLPClassifier(**{**CLF, "max_iter": 6}).fit(X, y))


def test_scoring_monitor_full_batch_solver(regression_data):
    callback = pytest.importorskip("sklearn.callback")
    X, y = regression_data
    monitor = callback.ScoringMonitor(scoring="r2")
    reg = MLPRegressor(solver="rprop", max_iter=7, tol=0.0, hidden_layer_sizes=(5,), random_state=0)
    reg.set_callbacks(monitor).fit(X, y)
    epochs = [row for row in monitor.get_logs().data if len(row["task_id_path"]) == 2]
    assert len(epochs) == reg.n_iter_ == 7
    assert_allclose(epochs[-1]["r2"], reg.score(X, y))


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_progress_bar_runs(multiclass_data, solver):
    callback = pytest.importorskip("sklearn.callback")
    pytest.importorskip("rich")
    X, y = multiclass_data
    clf = MLPClassifier(**{**CLF, "solver": solver}).set_callbacks(callback.ProgressBar())
    clf.fit(X, y)
    assert_identical_weights(clf, MLPClassifier(**{**CLF, "solver": solver}).fit(X, y))


_ITERATION = re.compile(r"^Iteration (\d+), loss = (\d+\.\d{8})$")


@pytest.mark.parametrize("solver", ["sgd", "rmsprop", "rprop", "lm"])
def test_verbose_prints_every_epoch(regression_data, capsys, solver):
    X, y = regression_data
    reg = MLPRegressor(hidden_layer_sizes=(5,), solver=solver, max_iter=4, tol=0.0, verbose=True,
                       random_state=0).fit(X, y)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Iteration")]
    assert lines == ["Iteration %d, loss = %.8f" % (i + 1, loss) for i, loss in enumerate(reg.loss_curve_)]
    assert len(lines) == reg.n_iter_ == 4
    assert all(_ITERATION.match(line) for line in lines)


def test_verbose_lbfgs_and_quiet(regression_data, capsys):
    X, y = regression_data
    MLPRegressor(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=4, verbose=True, random_state=0).fit(X, y)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Iteration")]
    assert len(lines) >= 1 and all(_ITERATION.match(line) for line in lines)
    MLPRegressor(hidden_layer_sizes=(5,), max_iter=4, random_state=0).fit(X, y)
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------
# parameter validation
# --------------------------------------------------------------------------

_INVALID_COMMON = [
    dict(activation="foo"),
    dict(activation="softmax"),
    dict(activation=["relu", "foo"]),
    dict(activation=["relu", 3]),
    dict(activation=["relu"]),
    dict(solver="newton"),
    dict(learning_rate="step"),
    dict(negative_slope=-0.1),
    dict(maxout_pieces=0),
    dict(maxout_pieces=1.5),
    dict(l1=-1.0),
    dict(dropout=1.0),
    dict(dropout=-0.1),
    dict(dropout=[0.1]),
    dict(init="xavier"),
    dict(init="he_normal"),
    dict(max_time=0),
    dict(max_time=-1.0),
    dict(max_time="1s"),
    dict(weight_decay=-0.01),
    dict(rho=1.0),
    dict(rho=-0.1),
    dict(solver="lbfgs", dropout=0.1),
    dict(solver="rprop", dropout=[0.1, 0.0]),
]


@pytest.mark.parametrize("params", _INVALID_COMMON, ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()))
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_invalid_new_parameters(multiclass_data, cls, params):
    X, y = multiclass_data
    est = cls(hidden_layer_sizes=(6, 4), max_iter=2, **params)
    with pytest.raises(ValueError):
        est.fit(X, y)
    assert not hasattr(est, "coefs_")


@pytest.mark.parametrize(
    "params",
    [dict(loss="hinge"), dict(loss="huber"), dict(loss="absolute_error"), dict(loss="poisson"),
     dict(class_weight="auto"), dict(class_weight=[1.0, 2.0, 3.0]), dict(solver="lm"),
     dict(solver="lm", loss="log_loss")],
    ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()),
)
def test_invalid_classifier_parameters(multiclass_data, params):
    X, y = multiclass_data
    with pytest.raises(ValueError):
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, **params).fit(X, y)


@pytest.mark.parametrize(
    "params",
    [dict(loss="log_loss"), dict(loss="hinge"), dict(huber_delta=0.0), dict(huber_delta=-1.0),
     dict(loss="huber", huber_delta=0.0), dict(solver="lm", loss="huber")],
    ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()),
)
def test_invalid_regressor_parameters(regression_data, params):
    X, y = regression_data
    with pytest.raises(ValueError):
        MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, **params).fit(X, y)


def test_poisson_rejects_negative_targets(regression_data):
    X, y = regression_data
    with pytest.raises(ValueError):
        MLPRegressor(loss="poisson", hidden_layer_sizes=(4,), max_iter=2).fit(X, y)


def test_valid_edge_values_fit(multiclass_data):
    """Boundary values that are allowed."""
    X, y = multiclass_data
    for params in (dict(negative_slope=0.0, activation="leaky_relu"), dict(maxout_pieces=1, activation="maxout"),
                   dict(l1=0.0), dict(dropout=0.0), dict(rho=0.0, solver="rmsprop"),
                   dict(weight_decay=0.0, solver="adamw"), dict(max_time=1e-9), dict(max_time=1)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = MLPClassifier(hidden_layer_sizes=(4, 3), max_iter=2, random_state=0, **params).fit(X, y)
        assert np.isfinite(clf.predict_proba(X)).all(), params


# --------------------------------------------------------------------------
# partial_fit keeps its batch buffers between calls
# --------------------------------------------------------------------------
@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("sparse", [False, True])
def test_partial_fit_reuses_its_workspace_and_gives_the_same_weights(n_jobs, sparse):
    import gc
    import weakref

    import scipy.sparse as sp

    from fastbp.estimators import solving as mlp

    X, y = make_classification(n_samples=300, n_features=12, n_classes=3, n_informative=6, random_state=0)
    X = sp.csr_matrix(np.where(np.abs(X) > 1.0, X, 0.0)) if sparse else X
    params = dict(hidden_layer_sizes=(16, 8), batch_size=64, random_state=0, n_jobs=n_jobs)
    kept, fresh = MLPClassifier(**params), MLPClassifier(**params)
    kept.partial_fit(X, y, classes=[0, 1, 2])
    workspace = mlp._KEPT_WORKSPACES[kept]
    buffers = [b.ctypes.data for b in workspace.part_buffers()]
    fresh.partial_fit(X, y, classes=[0, 1, 2])
    for _ in range(3):
        kept.partial_fit(X, y)
        assert mlp._KEPT_WORKSPACES[kept] is workspace
        mlp._KEPT_WORKSPACES.pop(fresh)  # the reference allocates anew at every call
        fresh.partial_fit(X, y)
    assert [b.ctypes.data for b in workspace.part_buffers()] == buffers
    for a, b in zip(kept.coefs_ + kept.intercepts_, fresh.coefs_ + fresh.intercepts_):
        assert_array_equal(a, b)
    assert "_partial_fit_workspace" not in vars(kept)  # a cache, not an attribute of the model

    # other shapes get new buffers; fit releases them; so does the estimator's end
    kept.set_params(batch_size=32)
    kept.partial_fit(X, y)
    assert mlp._KEPT_WORKSPACES[kept] is not workspace
    kept.set_params(max_iter=2).fit(X, y)
    assert kept not in mlp._KEPT_WORKSPACES
    kept.partial_fit(X, y)
    kept.set_params(solver="lbfgs", max_iter=2).fit(X, y)
    assert kept not in mlp._KEPT_WORKSPACES
    kept.set_params(solver="adam")
    fresh.partial_fit(X, y)
    assert fresh in mlp._KEPT_WORKSPACES
    alive = weakref.ref(fresh)
    del fresh
    gc.collect()
    assert alive() is None  # the kept buffers do not keep their estimator alive


def _address(array):
    return array.__array_interface__["data"][0]


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_partial_fit_copies_into_the_arrays_of_two_calls_ago_when_nothing_holds_them(solver):
    # each partial_fit trains on copies of the parameters and the optimizer's
    # buffers; they go into the arrays the previous call started from when no
    # view, name or container holds those any more, else into new ones
    from fastbp.estimators import solving as mlp

    X, y = make_classification(n_samples=200, n_features=10, n_classes=3, n_informative=6, random_state=0)
    params = dict(hidden_layer_sizes=(16,), batch_size=32, random_state=0, solver=solver, momentum=0.9)
    est, reference = MLPClassifier(**params), MLPClassifier(**params)
    held = []  # the reference's old coefs_ and optimizer, held: nothing of them may be reused
    flats, moments = [], []
    for call in range(5):
        kwargs = dict(classes=[0, 1, 2]) if call == 0 else {}
        est.partial_fit(X, y, **kwargs)
        flats.append(_address(est.coefs_[0].base))
        moments.append(_address(est._optimizer.state_1))
        reference.partial_fit(X, y, **kwargs)
        held.append((reference.coefs_, reference._optimizer, [c.copy() for c in reference.coefs_],
                     reference._optimizer.state_1.copy()))
    # calls 3, 4, 5 wrote into the arrays of calls 1, 2, 3
    assert flats[2:] == flats[:3] and moments[2:] == moments[:3]
    assert len(set(flats)) == 2
    # the reference reused nothing and its held arrays are as they were
    assert len({_address(coefs[0].base) for coefs, *_ in held}) == 5
    for coefs, optimizer, coefs_then, moment_then in held:
        for a, b in zip(coefs, coefs_then):
            assert_array_equal(a, b)
        assert_array_equal(optimizer.state_1, moment_then)
    for a, b in zip(est.coefs_ + est.intercepts_, reference.coefs_ + reference.intercepts_):
        assert_array_equal(a, b)
    assert_array_equal(est._optimizer.state_1, reference._optimizer.state_1)

    # a shallow copy of the estimator holds the arrays: they stay as they were
    shallow = copy.copy(est)
    coefs_then, moment_then = [c.copy() for c in shallow.coefs_], shallow._optimizer.state_1.copy()
    for _ in range(3):
        est.partial_fit(X, y)
    for a, b in zip(shallow.coefs_, coefs_then):
        assert_array_equal(a, b)
    assert_array_equal(shallow._optimizer.state_1, moment_then)

    # a call that fails changes nothing; the next one goes on as if it had not happened
    state = [c.copy() for c in est.coefs_ + est.intercepts_]
    with pytest.raises(ValueError):
        est.partial_fit(X, np.where(y == 2, 7, y))  # a class not seen in the first call
    for a, b in zip(est.coefs_ + est.intercepts_, state):
        assert_array_equal(a, b)
    for _ in range(3 + 2):  # the shallow copy's three calls, the two below
        reference.partial_fit(X, y)
    for _ in range(2):
        est.partial_fit(X, y)
    for a, b in zip(est.coefs_ + est.intercepts_, reference.coefs_ + reference.intercepts_):
        assert_array_equal(a, b)
    assert est in mlp._SPARE_ARRAYS
    est.set_params(max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert est not in mlp._SPARE_ARRAYS  # fit releases them


def test_take_spare_refuses_arrays_held_elsewhere():
    from fastbp.estimators.solving import _take_spare

    def taken(make, shape=(6,), dtype=np.float64):
        # the dict holds the array ``make`` returns; plain statements, as
        # pytest's assertion rewriting holds intermediate values
        spares = {"flat": make()}
        result = _take_spare(spares, "flat", shape, dtype)
        assert "flat" not in spares
        return result is not None

    def read_only_zeros():
        array = np.zeros(6)
        array.flags.writeable = False
        return array

    unheld = taken(lambda: np.zeros(6))
    assert unheld
    held = np.zeros(6)
    by_name = taken(lambda: held)
    assert not by_name
    view = np.zeros(6)[1:]  # its base is held by the view only
    by_view = taken(lambda: view.base)
    assert not by_view
    wrong_shape = taken(lambda: np.zeros(6), shape=(5,))
    wrong_dtype = taken(lambda: np.zeros(6), dtype=np.float32)
    a_view_itself = taken(lambda: np.zeros(12)[::2])
    frozen = taken(read_only_zeros)
    assert not (wrong_shape or wrong_dtype or a_view_itself or frozen)
    missing = _take_spare({}, "flat", (6,), np.float64)
    assert missing is None


@pytest.mark.parametrize("hogwild", [False, True])
def test_partial_fit_sizes_its_first_kernel_call_from_the_last_call(monkeypatch, hogwild):
    # an epoch runs as kernel calls of about EPOCH_CALL_SECONDS: the first call of
    # a fresh epoch times one batch; a partial_fit that gets its buffers back
    # starts from the previous call's timing (a Hogwild! epoch then starts its
    # threads once); the weights do not depend on how the epoch is cut
    from fastbp.engine import cpu as _engine
    from fastbp.estimators import solving as mlp

    calls = []
    original = _engine.Trainer.train_epoch

    def recording(self, flat, rows, batch_size, first_batch, stop_batch, *args, **kwargs):
        calls.append((int(first_batch), int(stop_batch)))
        return original(self, flat, rows, batch_size, first_batch, stop_batch, *args, **kwargs)

    monkeypatch.setattr(_engine.Trainer, "train_epoch", recording)
    X, y = make_classification(n_samples=400, n_features=10, n_classes=3, n_informative=6, random_state=0)
    params = dict(hidden_layer_sizes=(16,), batch_size=1, random_state=0, n_jobs=2, hogwild=hogwild)
    est = MLPClassifier(**params)
    est.partial_fit(X, y, classes=[0, 1, 2])
    assert calls[0] == (0, 1)  # no timing known yet
    known = mlp._KEPT_WORKSPACES[est].seconds_per_batch
    assert known is not None and known > 0
    calls.clear()
    est.partial_fit(X, y)
    expected = int(max(1, min(400, mlp.EPOCH_CALL_SECONDS / known)))
    assert calls[0] == (0, expected)
    assert calls[-1][1] == 400
    assert all(a[1] == b[0] for a, b in zip(calls, calls[1:]))  # every step, once

    if not hogwild:  # (Hogwild! results depend on how the steps are shared out)
        reference = MLPClassifier(**params)
        reference.partial_fit(X, y, classes=[0, 1, 2])
        mlp._KEPT_WORKSPACES.pop(reference)  # a fresh workspace: the epoch starts with one step
        calls.clear()
        reference.partial_fit(X, y)
        assert calls[0] == (0, 1)
        for a, b in zip(est.coefs_ + est.intercepts_, reference.coefs_ + reference.intercepts_):
            assert_array_equal(a, b)


@pytest.mark.parametrize("labels", [np.arange(4), np.arange(4, dtype=np.uint8), np.array([0, 1, 2, 5]),
                                    np.array([1, 2, 3, 4]), np.array([-1, 0, 1, 2]), np.array(["a", "b", "c", "d"])])
def test_partial_fit_class_positions_for_any_labels(labels):
    # labels 0 .. k-1 are their own positions (no binary search); every kind
    # of labels gives the positions of classes_ and rejects unknown labels
    rng = np.random.default_rng(0)
    y = labels[rng.integers(0, 4, size=50)]
    est = MLPClassifier(hidden_layer_sizes=(3,), random_state=0)
    est.partial_fit(rng.standard_normal((50, 3)), y, classes=labels)
    positions = est._class_positions(y)
    assert_array_equal(est.classes_[positions], y)
    assert positions.dtype == np.intp
    too_high = np.array(["z"] if labels.dtype.kind == "U" else [labels.max() + 1], dtype=y.dtype)
    with pytest.raises(ValueError, match="classes not in"):
        est._class_positions(np.append(y, too_high))
    if labels.dtype.kind == "i":
        with pytest.raises(ValueError, match="classes not in"):
            est._class_positions(np.append(y, labels.min() - 1))
