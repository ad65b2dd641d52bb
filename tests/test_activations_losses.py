"""Every hidden activation and every (output activation, loss) pair: values,
backpropagation against the NumPy reference (tests/naive.py), and central
finite differences in float64, with ``fastbp.gradcheck`` and independently."""

import math
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import LabelBinarizer

import fastbp
from fastbp import MLPClassifier, MLPRegressor
from fastbp.kernels import activations as registry
from fastbp.kernels import losses as loss_registry

from . import naive

# every hidden activation of the registry (tests/naive.py holds each one's reference)
ACTIVATIONS = [activation.name for activation in registry.ACTIVATIONS if activation.hidden]
# every (output activation, loss) pair of the loss registry
PAIRS = list(loss_registry.LOSS_PAIRS)
PAIR_IDS = [f"{a}+{l}" for a, l in PAIRS]
N_OUT = {"identity": 2, "softmax": 3, "logistic": 2, "exp": 2}

FD_RTOL = 1e-6  # the acceptance criterion: relative error of backprop vs finite differences
MARGIN = 1e-2  # distance kept from every kink (pre-activations, maxout ties, residuals, weights)
HUBER_DELTA = 0.7


def test_the_reference_covers_every_activation_of_the_registry():
    """An activation added to the registry needs its plain-NumPy reference in tests/naive.py."""
    assert set(naive.ALL_HIDDEN_ACTIVATIONS) == {a.name for a in registry.ACTIVATIONS if a.hidden}
    assert set(naive.OUTPUT_ACTIVATIONS) == {a.name for a in registry.ACTIVATIONS if a.output}
    assert naive.ACTIVATION_ALIASES == registry.ACTIVATION_ALIASES
    assert len({a.code for a in registry.ACTIVATIONS}) == len(registry.ACTIVATIONS)  # codes are unique


def test_the_reference_covers_every_loss_of_the_registry():
    """A loss added to the registry needs its reference in tests/naive.py, and its matched output
    activation must be an output activation."""
    assert set(naive.LOSS_PAIRS) == set(loss_registry.LOSS_PAIRS)
    assert set(naive.MATCHED_PAIRS) <= {(loss.output, loss.name) for loss in loss_registry.LOSSES}
    assert all(loss.output in registry.OUTPUT_ACTIVATIONS for loss in loss_registry.LOSSES)
    assert len({loss.code for loss in loss_registry.LOSSES}) == len(loss_registry.LOSSES)
    regressor_losses = set(fastbp.MLPRegressor._parameter_constraints["loss"][0].options)
    assert regressor_losses == set(loss_registry.REGRESSION_LOSSES)


# --------------------------------------------------------------------------
# random problems away from every kink
# --------------------------------------------------------------------------


def make_targets(rng, out_activation, loss, n, n_out):
    if out_activation == "softmax":
        Y = np.zeros((n, n_out))
        Y[np.arange(n), rng.randint(0, n_out, size=n)] = 1.0
        return Y
    if out_activation == "logistic":
        return rng.randint(0, 2, size=(n, n_out)).astype(np.float64)
    if out_activation == "exp":
        return rng.poisson(1.5, size=(n, n_out)).astype(np.float64)
    return rng.normal(size=(n, n_out))


def _margins_hold(coefs, intercepts, X, Y, names, pair, *, l1, huber_delta, negative_slope, pieces,
                  margin):
    out_activation, loss = pair
    _, zs = naive.forward_with_z(coefs, intercepts, X, names, out_activation,
                                 negative_slope=negative_slope, maxout_pieces=pieces)
    for name, z in zip(names, zs[:-1]):
        if naive.canonical_activation(name) == "maxout":
            if naive.maxout_gaps(z, pieces).min() < margin:
                return False
        elif np.abs(z).min() < margin:
            return False
    if loss in ("absolute_error", "huber"):
        residual = np.abs(naive.output_activation(out_activation, zs[-1]) - Y)
        if residual.min() < margin:
            return False
        if loss == "huber":
            if np.abs(residual - huber_delta).min() < margin:
                return False
            # both branches of the Huber loss are exercised
            if not ((residual < huber_delta).any() and (residual > huber_delta).any()):
                return False
    if l1 > 0 and min(np.abs(W).min() for W in coefs) < margin:
        return False
    return True


def make_problem(seed, activation, pair, hidden=(4, 3), n=8, n_features=3, *, weighted=False, l1=0.0,
                 huber_delta=HUBER_DELTA, negative_slope=0.01, pieces=2, margin=MARGIN):
    """A small random network and data set, redrawn until it keeps ``margin``
    away from every kink of the activations, losses and the L1 penalty."""
    out_activation, loss = pair
    n_out = N_OUT[out_activation]
    names = naive.hidden_names(activation, len(hidden))
    fan_out = [u * (pieces if naive.canonical_activation(name) == "maxout" else 1)
               for u, name in zip(hidden, names)] + [n_out]
    fan_in = [n_features, *hidden]
    for trial in range(2000):
        rng = np.random.RandomState(seed + 7919 * trial)
        X = rng.normal(size=(n, n_features))
        coefs = [rng.normal(scale=1.0 / np.sqrt(fi), size=(fi, fo)) for fi, fo in zip(fan_in, fan_out)]
        intercepts = [rng.normal(scale=0.3, size=fo) for fo in fan_out]
        Y = make_targets(rng, out_activation, loss, n, n_out)
        sw = None
        if weighted:
            sw = rng.uniform(0.2, 2.5, size=n)
            sw[1] = 0.0  # a zero weight
        if _margins_hold(coefs, intercepts, X, Y, names, pair, l1=l1, huber_delta=huber_delta,
                         negative_slope=negative_slope, pieces=pieces, margin=margin):
            return coefs, intercepts, X, Y, sw
    raise RuntimeError("no random problem keeps the margins")  # pragma: no cover


def loss_options(pair, *, l1=0.0, huber_delta=HUBER_DELTA, negative_slope=0.01, pieces=2):
    options = dict(l1=l1, negative_slope=negative_slope, maxout_pieces=pieces)
    if pair[1] == "huber":
        options["huber_delta"] = huber_delta
    return options


def relative_error(analytic, numeric):
    """max |a - b| / max(|a|, |b|, 1e-3 * max|b|, 1e-8) over all entries."""
    scale = max(1e-8, 1e-3 * max(float(np.abs(b).max()) for b in numeric))
    worst = 0.0
    for a, b in zip(analytic, numeric):
        a = np.asarray(a, dtype=np.float64)
        den = np.maximum(np.maximum(np.abs(a), np.abs(b)), scale)
        worst = max(worst, float((np.abs(a - b) / den).max()))
    return worst


# --------------------------------------------------------------------------
# finite differences: fastbp.gradcheck, every activation x every loss
# --------------------------------------------------------------------------


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradcheck_every_activation_and_loss(activation, pair):
    out_activation, loss = pair
    coefs, intercepts, X, Y, _ = make_problem(10, activation, pair)
    options = loss_options(pair)
    grads = fastbp.backprop(coefs, intercepts, X, Y, activation, out_activation, loss, **options)
    assert max(np.abs(g).max() for g in grads.coef_grads) > 1e-3  # not trivially zero
    err = fastbp.gradcheck(coefs, intercepts, X, Y, activation, out_activation, loss, **options)
    assert err < FD_RTOL, f"max relative error {err:.3g}"


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradcheck_weighted_with_penalties(activation, pair):
    """Sample weights (one of them zero), L2 and L1 together."""
    out_activation, loss = pair
    l1 = 0.05
    coefs, intercepts, X, Y, sw = make_problem(20, activation, pair, weighted=True, l1=l1)
    options = loss_options(pair, l1=l1)
    err = fastbp.gradcheck(coefs, intercepts, X, Y, activation, out_activation, loss, alpha=0.3,
                           sample_weight=sw, **options)
    assert err < FD_RTOL, f"max relative error {err:.3g}"


@pytest.mark.parametrize(
    "activation, hidden, options",
    [
        ("leaky_relu", (4, 3), dict(negative_slope=0.3)),
        ("leaky_relu", (4, 3), dict(negative_slope=0.0)),
        ("maxout", (4, 3), dict(pieces=3)),
        ("maxout", (4, 3), dict(pieces=1)),
        ("maxout", (3,), dict(pieces=4)),
        (["maxout", "gelu"], (4, 3), {}),
        (["elu", "maxout"], (4, 3), dict(pieces=3)),
        (["tanh", "leaky_relu", "softplus"], (4, 3, 3), dict(negative_slope=0.2)),
        (["swish", "relu", "logistic"], (3, 4, 2), {}),
        (["sigmoid", "silu"], (4, 3), {}),
        ("identity", (5,), {}),
    ],
    ids=lambda v: str(v).replace(" ", ""),
)
@pytest.mark.parametrize("pair", [("softmax", "log_loss"), ("identity", "huber")], ids=["softmax", "huber"])
def test_gradcheck_activation_options_and_lists(activation, hidden, options, pair):
    out_activation, loss = pair
    coefs, intercepts, X, Y, sw = make_problem(30, activation, pair, hidden, weighted=True, **options)
    kw = loss_options(pair, **options)
    err = fastbp.gradcheck(coefs, intercepts, X, Y, activation, out_activation, loss, alpha=0.1,
                           sample_weight=sw, **kw)
    assert err < FD_RTOL, f"max relative error {err:.3g}"


@pytest.mark.parametrize("huber_delta", [0.3, 1.0, 2.5])
def test_gradcheck_huber_delta(huber_delta):
    """Residuals on both sides of huber_delta (make_problem redraws until they are)."""
    pair = ("identity", "huber")
    coefs, intercepts, X, Y, _ = make_problem(40, "tanh", pair, n=12, huber_delta=huber_delta)
    err = fastbp.gradcheck(coefs, intercepts, X, Y, "tanh", "identity", "huber", huber_delta=huber_delta)
    assert err < FD_RTOL, f"max relative error {err:.3g}"


def test_gradcheck_no_hidden_layer():
    for pair in PAIRS:
        coefs, intercepts, X, Y, sw = make_problem(50, "relu", pair, hidden=(), weighted=True, l1=0.1)
        err = fastbp.gradcheck(coefs, intercepts, X, Y, "relu", pair[0], pair[1], alpha=0.2, sample_weight=sw,
                               **loss_options(pair, l1=0.1))
        assert err < FD_RTOL, (pair, err)


def test_gradcheck_order_2():
    pair = ("softmax", "squared_error")
    coefs, intercepts, X, Y, _ = make_problem(60, "gelu", pair)
    err4 = fastbp.gradcheck(coefs, intercepts, X, Y, "gelu", "softmax", "squared_error", order=4)
    err2 = fastbp.gradcheck(coefs, intercepts, X, Y, "gelu", "softmax", "squared_error", order=2, step=1e-5)
    assert err4 < FD_RTOL and err2 < 1e-5


def test_gradcheck_detects_a_kink():
    """A pre-activation within the finite-difference step of the relu kink: the
    central differences average the two slopes and gradcheck must say so."""
    pair = ("identity", "squared_error")
    coefs, intercepts, X, Y, _ = make_problem(70, "relu", pair, hidden=(4,))
    assert fastbp.gradcheck(coefs, intercepts, X, Y, "relu", "identity", "squared_error") < FD_RTOL
    intercepts = [b.copy() for b in intercepts]
    z0 = X[0] @ coefs[0][:, 0] + intercepts[0][0]
    intercepts[0][0] -= z0 - 1e-5  # sample 0, unit 0: z = 1e-5, well inside the 4e-4 stencil
    err = fastbp.gradcheck(coefs, intercepts, X, Y, "relu", "identity", "squared_error")
    assert err > 1e-3


def test_gradcheck_detects_a_wrong_gradient(monkeypatch):
    """gradcheck compares against backprop's gradient: a gradient that is off by
    1e-4 (relative) in one entry must be reported."""
    import fastbp.functional as functional

    pair = ("softmax", "log_loss")
    coefs, intercepts, X, Y, _ = make_problem(80, "tanh", pair)
    true_backprop = functional.backprop

    def skewed(*args, **kwargs):
        result = true_backprop(*args, **kwargs)
        g = result.coef_grads[1]
        g.flat[np.argmax(np.abs(g))] *= 1.0 + 1e-4  # the largest entry: above gradcheck's floor
        return result

    monkeypatch.setattr(functional, "backprop", skewed)
    err = fastbp.gradcheck(coefs, intercepts, X, Y, "tanh", "softmax", "log_loss")
    assert 5e-5 < err < 1e-3


@pytest.mark.parametrize("kwargs", [dict(order=3), dict(order=1), dict(step=0.0), dict(step=-1e-4)],
                         ids=lambda d: str(d))
def test_gradcheck_bad_arguments(kwargs):
    coefs, intercepts, X, Y, _ = make_problem(90, "tanh", ("identity", "squared_error"), hidden=(3,))
    with pytest.raises(ValueError):
        fastbp.gradcheck(coefs, intercepts, X, Y, "tanh", "identity", "squared_error", **kwargs)


# --------------------------------------------------------------------------
# independent check: NumPy finite differences of the NumPy reference loss
# --------------------------------------------------------------------------

_FD_SUBSET = (
    [(a, ("identity", "huber")) for a in ACTIVATIONS]
    + [(a, ("softmax", "squared_error")) for a in ACTIVATIONS]
    + [("maxout", p) for p in PAIRS]
    + [("elu", p) for p in PAIRS]
    + [(["leaky_relu", "swish"], ("logistic", "squared_error")),
       (["gelu", "maxout"], ("identity", "absolute_error"))]
)


@pytest.mark.parametrize("activation, pair", _FD_SUBSET,
                         ids=[f"{a}-{p[0]}+{p[1]}".replace(" ", "") for a, p in _FD_SUBSET])
def test_backprop_against_numpy_finite_differences(activation, pair):
    """fastbp.backprop's gradient against NumPy central differences of naive.loss_value
    (nothing of fastbp involved on the finite-difference side)."""
    out_activation, loss = pair
    l1 = 0.05
    coefs, intercepts, X, Y, sw = make_problem(100, activation, pair, weighted=True, l1=l1,
                                               negative_slope=0.1)
    kw = dict(alpha=0.2, sample_weight=sw, l1=l1, huber_delta=HUBER_DELTA, negative_slope=0.1, maxout_pieces=2)
    n_coefs = len(coefs)

    def loss_fn(params):
        return naive.loss_value(params[:n_coefs], params[n_coefs:], X, Y, activation, out_activation, loss, **kw)

    numeric = naive.finite_difference_gradients(loss_fn, list(coefs) + list(intercepts))
    got = fastbp.backprop(coefs, intercepts, X, Y, activation, out_activation, loss, **kw)
    assert max(np.abs(g).max() for g in numeric) > 1e-3
    err = relative_error(list(got.coef_grads) + list(got.intercept_grads), numeric)
    assert err < FD_RTOL, f"max relative error {err:.3g}"
    # the reference's own analytic gradient agrees as well
    ref = naive.backprop(coefs, intercepts, X, Y, activation, out_activation, loss, **kw)
    assert relative_error(list(ref.coef_grads) + list(ref.intercept_grads), numeric) < FD_RTOL


# --------------------------------------------------------------------------
# backprop against the NumPy reference
# --------------------------------------------------------------------------


def _compare(got, ref, rtol=1e-10, atol_factor=1e-12, dtype=np.float64):
    assert_allclose(got.loss, ref.loss, rtol=rtol, atol=atol_factor * abs(ref.loss))
    groups = [("coef_grads", got.coef_grads, ref.coef_grads),
              ("intercept_grads", got.intercept_grads, ref.intercept_grads),
              ("deltas", got.deltas, ref.deltas),
              ("activations", got.activations, ref.activations)]
    for name, gs, rs in groups:
        assert len(gs) == len(rs), name
        for i, (g, r) in enumerate(zip(gs, rs)):
            g = np.asarray(g)
            assert g.dtype == dtype, (name, i)
            assert g.shape == r.shape, (name, i, g.shape, r.shape)
            scale = max(np.abs(r).max(), 1e-300)
            assert_allclose(g, r, rtol=rtol, atol=atol_factor * scale, err_msg=f"{name}[{i}]")


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_backprop_matches_naive(activation, pair):
    out_activation, loss = pair
    coefs, intercepts, X, Y, sw = make_problem(200, activation, pair, weighted=True, l1=0.1, pieces=3)
    kw = dict(alpha=0.4, sample_weight=sw, l1=0.1, huber_delta=HUBER_DELTA, negative_slope=0.05,
              maxout_pieces=3)
    got = fastbp.backprop(coefs, intercepts, X, Y, activation, out_activation, loss, **kw)
    ref = naive.backprop(coefs, intercepts, X, Y, activation, out_activation, loss, **kw)
    _compare(got, ref)
    # the zero-weight sample contributes nothing
    for d in got.deltas:
        assert_array_equal(d[1], 0.0)


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("activation", ["leaky_relu", "swish", "softplus", "elu", "gelu", "maxout"])
def test_backprop_matches_naive_float32(activation, pair):
    out_activation, loss = pair
    coefs, intercepts, X, Y, sw = make_problem(300, activation, pair, weighted=True)
    c32 = [c.astype(np.float32) for c in coefs]
    b32 = [b.astype(np.float32) for b in intercepts]
    kw = dict(alpha=0.2, sample_weight=sw, huber_delta=HUBER_DELTA)
    got = fastbp.backprop(c32, b32, X.astype(np.float32), Y.astype(np.float32), activation, out_activation, loss,
                          **kw)
    ref = naive.backprop(c32, b32, X.astype(np.float32), Y.astype(np.float32), activation, out_activation, loss,
                         **kw)
    _compare(got, ref, rtol=2e-4, atol_factor=2e-5, dtype=np.float32)


def test_backprop_per_layer_activations_match_naive():
    pair = ("softmax", "log_loss")
    names = ["gelu", "maxout", "leaky_relu", "softplus"]
    coefs, intercepts, X, Y, sw = make_problem(400, names, pair, hidden=(5, 4, 3, 4), n=10, weighted=True)
    kw = dict(alpha=0.1, sample_weight=sw, negative_slope=0.2)
    got = fastbp.backprop(coefs, intercepts, X, Y, names, *pair, **kw)
    ref = naive.backprop(coefs, intercepts, X, Y, names, *pair, **kw)
    _compare(got, ref)
    # a tuple works like a list; one name differs from the list
    _compare(fastbp.backprop(coefs, intercepts, X, Y, tuple(names), *pair, **kw), ref)


# --------------------------------------------------------------------------
# forward: values of the activations
# --------------------------------------------------------------------------

_POINTS = np.array([-3.0, -1.0, -0.25, 0.0, 0.5, 1.0, 2.5])


def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


_CLOSED_FORMS = {
    "identity": lambda v: v,
    "logistic": _sigmoid,
    "tanh": math.tanh,
    "relu": lambda v: max(v, 0.0),
    "leaky_relu": lambda v: v if v > 0 else 0.01 * v,
    "swish": lambda v: v * _sigmoid(v),
    "softplus": lambda v: math.log1p(math.exp(v)),
    "elu": lambda v: v if v > 0 else math.exp(v) - 1.0,
    "gelu": lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))),
}


@pytest.mark.parametrize("activation", list(_CLOSED_FORMS))
def test_activation_values(activation):
    """phi at a few points, read through an identity first layer."""
    d = len(_POINTS)
    coefs = [np.eye(d), np.eye(d)]
    intercepts = [np.zeros(d), np.zeros(d)]
    out = fastbp.forward(coefs, intercepts, _POINTS[None, :], activation=activation)
    expected = [_CLOSED_FORMS[activation](v) for v in _POINTS]
    assert_allclose(out[1][0], expected, rtol=1e-13, atol=1e-15)
    assert_allclose(out[2][0], expected, rtol=1e-13, atol=1e-15)


def test_activation_known_constants():
    point = np.array([[1.0, -1.0, 0.0]])
    coefs, intercepts = [np.eye(3), np.eye(3)], [np.zeros(3), np.zeros(3)]

    def hidden(name, **kw):
        return fastbp.forward(coefs, intercepts, point, activation=name, **kw)[1][0]

    assert_allclose(hidden("gelu"), [0.8413447460685429, -0.15865525393145707, 0.0], rtol=1e-14)
    assert_allclose(hidden("softplus")[2], math.log(2.0), rtol=1e-15)
    assert_allclose(hidden("elu")[1], math.exp(-1.0) - 1.0, rtol=1e-14)
    assert_allclose(hidden("leaky_relu", negative_slope=0.25), [1.0, -0.25, 0.0], rtol=1e-15)
    assert_allclose(hidden("leaky_relu", negative_slope=0.0), [1.0, 0.0, 0.0], rtol=1e-15)


def test_maxout_groups_contiguous_pieces():
    """Unit u's pieces are columns u*k ... u*k+k-1 and the unit outputs their max."""
    X = np.array([[1.0, -2.0], [0.5, 3.0]])
    # k = 2 pieces, 2 units: z = [x0, x1, 2*x0, -x0]
    W1 = np.array([[1.0, 0.0, 2.0, -1.0], [0.0, 1.0, 0.0, 0.0]])
    b1 = np.zeros(4)
    W2, b2 = np.eye(2), np.zeros(2)
    out = fastbp.forward([W1, W2], [b1, b2], X, activation="maxout", maxout_pieces=2)
    assert out[1].shape == (2, 2)
    # row 0: z = [1, -2, 2, -1] -> [max(1, -2), max(2, -1)] = [1, 2]
    # row 1: z = [0.5, 3, 1, -0.5] -> [3, 1]
    assert_array_equal(out[1], [[1.0, 2.0], [3.0, 1.0]])
    # with 4 pieces: a single unit, the max of all four columns
    out4 = fastbp.forward([W1, np.ones((1, 1))], [b1, np.zeros(1)], X, activation="maxout", maxout_pieces=4)
    assert_array_equal(out4[1], [[2.0], [3.0]])
    # the gradient of a unit goes to its winning piece only
    res = fastbp.backprop([W1, W2], [b1, b2], X, np.zeros((2, 2)), activation="maxout", maxout_pieces=2)
    d1 = res.deltas[0]
    assert_array_equal(d1[0, [1, 3]], 0.0)  # losing pieces of row 0
    assert_array_equal(d1[1, [0, 3]], 0.0)  # losing pieces of row 1
    assert np.all(d1[0, [0, 2]] != 0) and np.all(d1[1, [1, 2]] != 0)


def test_maxout_with_one_piece_is_identity():
    """maxout_pieces=1: every unit has a single piece, so the layer is linear."""
    pair = ("softmax", "log_loss")
    coefs, intercepts, X, Y, sw = make_problem(450, "identity", pair, weighted=True)
    one = fastbp.backprop(coefs, intercepts, X, Y, "maxout", *pair, alpha=0.1, sample_weight=sw, maxout_pieces=1)
    ident = fastbp.backprop(coefs, intercepts, X, Y, "identity", *pair, alpha=0.1, sample_weight=sw)
    assert_allclose(one.loss, ident.loss, rtol=1e-14)
    for name in ("activations", "deltas", "coef_grads", "intercept_grads"):
        for i, (a, b) in enumerate(zip(getattr(one, name), getattr(ident, name))):
            assert_allclose(a, b, rtol=1e-12, atol=1e-15, err_msg=f"{name}[{i}]")


@pytest.mark.parametrize("out_activation", naive.OUTPUT_ACTIVATIONS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_matches_naive(activation, out_activation):
    pair = {"identity": ("identity", "squared_error"), "softmax": ("softmax", "log_loss"),
            "logistic": ("logistic", "log_loss"), "exp": ("exp", "poisson")}[out_activation]
    coefs, intercepts, X, _, _ = make_problem(500, activation, pair, hidden=(5, 4), pieces=3, margin=0.0)
    got = fastbp.forward(coefs, intercepts, X, activation, out_activation, negative_slope=0.1, maxout_pieces=3)
    ref = naive.forward(coefs, intercepts, X, activation, out_activation, negative_slope=0.1, maxout_pieces=3)
    assert len(got) == len(ref) == 4
    for g, r in zip(got, ref):
        assert g.dtype == np.float64 and g.shape == r.shape
        assert_allclose(g, r, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("activation", ["leaky_relu", "swish", "softplus", "elu", "gelu", "maxout"])
def test_forward_float32_matches_naive(activation):
    coefs, intercepts, X, _, _ = make_problem(600, activation, ("softmax", "log_loss"), margin=0.0)
    c32 = [c.astype(np.float32) for c in coefs]
    b32 = [b.astype(np.float32) for b in intercepts]
    got = fastbp.forward(c32, b32, X.astype(np.float32), activation, "softmax")
    ref = naive.forward(c32, b32, X.astype(np.float32), activation, "softmax")
    for g, r in zip(got, ref):
        assert g.dtype == np.float32
        assert_allclose(g, r, rtol=2e-5, atol=2e-6)


def test_extreme_inputs_stay_finite():
    """Large pre-activations: no overflow to inf / NaN in any activation."""
    X = np.array([[-800.0, -40.0, 0.0, 40.0, 800.0]])
    coefs, intercepts = [np.eye(5), np.eye(5)], [np.zeros(5), np.zeros(5)]
    for activation in ACTIVATIONS:
        if activation == "maxout":  # max of linear pieces: nothing to overflow
            continue
        out = fastbp.forward(coefs, intercepts, X, activation=activation)
        assert np.isfinite(out[1]).all(), activation
    softplus = fastbp.forward(coefs, intercepts, X, activation="softplus")[1][0]
    assert_allclose(softplus[[0, 4]], [0.0, 800.0], atol=1e-300, rtol=1e-15)
    swish = fastbp.forward(coefs, intercepts, X, activation="swish")[1][0]
    assert_allclose(swish[[0, 4]], [0.0, 800.0], atol=1e-300, rtol=1e-15)


@pytest.mark.parametrize("alias, canonical", list(registry.ACTIVATION_ALIASES.items()))
def test_functional_aliases(alias, canonical):
    pair = ("softmax", "log_loss")
    coefs, intercepts, X, Y, _ = make_problem(700, canonical, pair)
    a = fastbp.backprop(coefs, intercepts, X, Y, alias, *pair, alpha=0.1)
    b = fastbp.backprop(coefs, intercepts, X, Y, canonical, *pair, alpha=0.1)
    assert a.loss == b.loss
    for ga, gb in zip(a.coef_grads + a.intercept_grads + a.activations, b.coef_grads + b.intercept_grads
                      + b.activations):
        assert_array_equal(ga, gb)


# --------------------------------------------------------------------------
# losses: closed forms
# --------------------------------------------------------------------------


def _linear_problem(residuals):
    """No hidden layer, identity weights: y_pred = X, so Y = X - residuals."""
    residuals = np.asarray(residuals, dtype=np.float64)
    X = np.array([[0.3, -0.2], [1.0, 0.5], [-0.7, 0.1]])[: residuals.shape[0], : residuals.shape[1]]
    d = residuals.shape[1]
    return [np.eye(d)], [np.zeros(d)], X, X - residuals


def test_absolute_and_huber_closed_form():
    residuals = [[0.5, -2.0], [0.0, 1.5]]
    coefs, intercepts, X, Y = _linear_problem(residuals)
    absolute = fastbp.backprop(coefs, intercepts, X, Y, "relu", "identity", "absolute_error")
    assert_allclose(absolute.loss, (2.5 + 1.5) / 2, rtol=1e-14)
    # subgradient 0 at 0
    assert_array_equal(absolute.deltas[0], [[1.0, -1.0], [0.0, 1.0]])
    huber = fastbp.backprop(coefs, intercepts, X, Y, "relu", "identity", "huber", huber_delta=1.0)
    # 1/2 * 0.25 + 1 * (2 - 1/2) ; 0 + 1 * (1.5 - 1/2)
    assert_allclose(huber.loss, (0.125 + 1.5 + 1.0) / 2, rtol=1e-14)
    assert_allclose(huber.deltas[0], [[0.5, -1.0], [0.0, 1.0]], rtol=1e-14)
    huber2 = fastbp.backprop(coefs, intercepts, X, Y, "relu", "identity", "huber", huber_delta=2.0)
    assert_allclose(huber2.loss, (0.125 + 2.0 + 1.125) / 2, rtol=1e-14)
    assert_allclose(huber2.deltas[0], [[0.5, -2.0], [0.0, 1.5]], rtol=1e-14)
    # huber with a delta above every residual is the squared error
    big = fastbp.backprop(coefs, intercepts, X, Y, "relu", "identity", "huber", huber_delta=10.0)
    sq = fastbp.backprop(coefs, intercepts, X, Y, "relu", "identity", "squared_error")
    assert_allclose(big.loss, sq.loss, rtol=1e-14)
    assert_allclose(big.coef_grads[0], sq.coef_grads[0], rtol=1e-14)


def test_squared_error_on_probabilities_closed_form():
    """softmax / logistic outputs with the squared error: the delta goes through
    the output activation's Jacobian."""
    X = np.array([[0.2, -0.4, 1.0]])
    coefs, intercepts = [np.eye(3)], [np.zeros(3)]
    Y = np.array([[0.0, 1.0, 0.0]])
    res = fastbp.backprop(coefs, intercepts, X, Y, "relu", "softmax", "squared_error")
    p = np.exp(X[0]) / np.exp(X[0]).sum()
    g = p - Y[0]
    assert_allclose(res.loss, 0.5 * (g**2).sum(), rtol=1e-14)
    jac = np.diag(p) - np.outer(p, p)
    assert_allclose(res.deltas[0][0], jac @ g, rtol=1e-12, atol=1e-16)
    res = fastbp.backprop(coefs, intercepts, X, Y, "relu", "logistic", "squared_error")
    s = 1.0 / (1.0 + np.exp(-X[0]))
    assert_allclose(res.loss, 0.5 * ((s - Y[0]) ** 2).sum(), rtol=1e-14)
    assert_allclose(res.deltas[0][0], (s - Y[0]) * s * (1 - s), rtol=1e-12)


def test_l1_penalty_in_loss_and_gradient():
    pair = ("identity", "squared_error")
    coefs, intercepts, X, Y, sw = make_problem(800, "tanh", pair, weighted=True, l1=0.3)
    base = fastbp.backprop(coefs, intercepts, X, Y, "tanh", *pair, sample_weight=sw)
    pen = fastbp.backprop(coefs, intercepts, X, Y, "tanh", *pair, sample_weight=sw, l1=0.3)
    S = sw.sum()
    assert_allclose(pen.loss - base.loss, 0.3 * sum(np.abs(W).sum() for W in coefs) / S, rtol=1e-12)
    for gp, gb, W in zip(pen.coef_grads, base.coef_grads, coefs):
        assert_allclose(gp - gb, 0.3 * np.sign(W) / S, rtol=1e-10, atol=1e-15)
    for gp, gb in zip(pen.intercept_grads, base.intercept_grads):  # biases are not penalised
        assert_allclose(gp, gb, rtol=1e-14, atol=1e-16)


# --------------------------------------------------------------------------
# invalid arguments of the functions
# --------------------------------------------------------------------------


def _small():
    return make_problem(900, "relu", ("identity", "squared_error"), hidden=(4, 3))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(activation=["relu"]),  # one name for two hidden layers
        dict(activation=["relu", "tanh", "relu"]),
        dict(activation=["relu", "foo"]),
        dict(activation=["relu", "softmax"]),
        dict(activation="exp"),
        dict(negative_slope=-0.1),
        dict(negative_slope=float("nan")),
        dict(maxout_pieces=0),
        dict(maxout_pieces=1.5),
        dict(activation="maxout", maxout_pieces=3),  # 4 columns are not a multiple of 3 pieces
        dict(huber_delta=0.0, loss="huber"),
        dict(huber_delta=-1.0, loss="huber"),
        dict(l1=-0.1),
        dict(alpha=-0.1),
    ],
    ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()),
)
def test_backprop_invalid_arguments(kwargs):
    coefs, intercepts, X, Y, _ = _small()
    with pytest.raises(ValueError):
        fastbp.backprop(coefs, intercepts, X, Y, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [dict(activation=["relu"]), dict(activation=["tanh", "nope"]), dict(negative_slope=-1.0),
     dict(maxout_pieces=0), dict(activation="maxout", maxout_pieces=3)],
    ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()),
)
def test_forward_invalid_arguments(kwargs):
    coefs, intercepts, X, _, _ = _small()
    with pytest.raises(ValueError):
        fastbp.forward(coefs, intercepts, X, **kwargs)


@pytest.mark.parametrize(
    "out_activation, loss",
    [("identity", "log_loss"), ("softmax", "absolute_error"), ("softmax", "huber"), ("logistic", "huber"),
     ("exp", "huber"), ("exp", "absolute_error"), ("exp", "squared_error"), ("identity", "poisson")],
)
def test_backprop_unsupported_pairs(out_activation, loss):
    coefs, intercepts, X, Y, _ = _small()
    with pytest.raises(ValueError):
        fastbp.backprop(coefs, intercepts, X, np.abs(Y), out_activation=out_activation, loss=loss)


# --------------------------------------------------------------------------
# the estimators with every loss and activation
# --------------------------------------------------------------------------


def _fit_quietly(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


@pytest.mark.parametrize("loss", ["squared_error", "absolute_error", "huber", "poisson"])
@pytest.mark.parametrize("n_outputs", [1, 2])
def test_regressor_loss_is_the_reference_loss(multioutput_regression_data, loss, n_outputs):
    """lbfgs reports the loss at its final parameters: it must be the reference loss
    (plus the half-deviance constant for poisson) with the L2 penalty."""
    X, Y = multioutput_regression_data
    y = Y[:, :n_outputs] if n_outputs > 1 else Y[:, 0]
    if loss == "poisson":
        y = np.round(np.exp(y / 2))
    est = _fit_quietly(
        MLPRegressor(loss=loss, hidden_layer_sizes=(6,), activation="tanh", solver="lbfgs", max_iter=15,
                     alpha=0.01, huber_delta=0.4, random_state=0), X, y)
    Yt = np.asarray(y, dtype=np.float64).reshape(len(X), -1)
    out_activation = "exp" if loss == "poisson" else "identity"
    expected = naive.loss_value(est.coefs_, est.intercepts_, X, Yt, "tanh", out_activation, loss, alpha=0.01,
                                huber_delta=0.4)
    if loss == "poisson":
        expected += naive.poisson_deviance_constant(Yt).mean()
    assert_allclose(est.loss_, expected, rtol=1e-9)
    assert_allclose(est.predict(X).reshape(len(X), -1),
                    naive.forward(est.coefs_, est.intercepts_, X, "tanh", out_activation)[-1], rtol=1e-12)


@pytest.mark.parametrize("data", ["multiclass_data", "binary_data", "multilabel_data"])
def test_classifier_squared_error_is_the_reference_loss(request, data):
    X, y = request.getfixturevalue(data)
    est = _fit_quietly(MLPClassifier(hidden_layer_sizes=(7,), activation="gelu", solver="lbfgs", loss="squared_error",
                                     max_iter=20, alpha=0.01, random_state=0), X, y)
    Y = LabelBinarizer().fit_transform(y).astype(np.float64)  # one-hot, one column (binary) or indicators
    expected = naive.loss_value(est.coefs_, est.intercepts_, X, Y, "gelu", est.out_activation_, "squared_error",
                                alpha=0.01)
    assert_allclose(est.loss_, expected, rtol=1e-9)
    # a different objective than the default log-loss
    log_est = _fit_quietly(MLPClassifier(hidden_layer_sizes=(7,), activation="gelu", solver="lbfgs", max_iter=20,
                                         alpha=0.01, random_state=0), X, y)
    assert not np.allclose(log_est.coefs_[0], est.coefs_[0])
    assert est.score(X, y) > 0.6


def test_huber_delta_changes_the_fit(regression_data):
    X, y = regression_data
    kw = dict(loss="huber", hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    a = _fit_quietly(MLPRegressor(huber_delta=0.1, **kw), X, y)
    b = _fit_quietly(MLPRegressor(huber_delta=1.0, **kw), X, y)
    c = _fit_quietly(MLPRegressor(huber_delta=100.0, **kw), X, y)
    sq = _fit_quietly(MLPRegressor(**{**kw, "loss": "squared_error"}), X, y)
    assert not np.allclose(a.coefs_[0], b.coefs_[0])
    # a delta above every residual: the squared error's steps exactly
    assert_allclose(c.coefs_[0], sq.coefs_[0], rtol=1e-12, atol=1e-14)


def test_absolute_error_fits_the_median():
    """A constant input: the absolute error's best constant is the median, the
    squared error's the mean (the outliers pull the mean far away)."""
    rng = np.random.RandomState(0)
    y = np.concatenate([rng.normal(1.0, 0.1, size=90), np.full(10, 50.0)])
    X = np.zeros((100, 1))
    kw = dict(hidden_layer_sizes=(2,), activation="identity", solver="rprop", max_iter=400, tol=0,
              learning_rate_init=0.05, random_state=0)
    absolute = _fit_quietly(MLPRegressor(loss="absolute_error", **kw), X, y)
    squared = _fit_quietly(MLPRegressor(loss="squared_error", **kw), X, y)
    assert abs(absolute.predict(X[:1])[0] - np.median(y)) < 0.05
    assert abs(squared.predict(X[:1])[0] - y.mean()) < 0.05


def test_poisson_predictions_are_positive(poisson_data):
    X, y = poisson_data
    est = _fit_quietly(MLPRegressor(loss="poisson", hidden_layer_sizes=(8,), activation="softplus", max_iter=30,
                                    random_state=0), X, y)
    assert est.out_activation_ == "exp"
    assert (est.predict(X) > 0).all()


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_estimator_predicts_with_its_activation(multiclass_data, activation):
    X, y = multiclass_data
    clf = _fit_quietly(MLPClassifier(hidden_layer_sizes=(6, 5), activation=activation, max_iter=3,
                                     negative_slope=0.2, maxout_pieces=3, random_state=0), X, y)
    ref = naive.forward(clf.coefs_, clf.intercepts_, X, activation, "softmax", negative_slope=0.2,
                        maxout_pieces=3)[-1]
    assert_allclose(clf.predict_proba(X), ref, rtol=1e-10, atol=1e-14)
    got = fastbp.forward(clf.coefs_, clf.intercepts_, X, activation, "softmax", negative_slope=0.2,
                         maxout_pieces=3)[-1]
    assert_allclose(clf.predict_proba(X), got, rtol=1e-12, atol=1e-15)
