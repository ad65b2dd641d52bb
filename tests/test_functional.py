"""fastbp.forward / fastbp.backprop against the NumPy reference in tests/naive.py,
and against central finite differences of fastbp's own loss."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import fastbp

from . import naive

ACTIVATIONS = list(naive.HIDDEN_ACTIVATIONS)
PAIRS = list(naive.MATCHED_PAIRS)
PAIR_IDS = [f"{a}+{l}" for a, l in PAIRS]
# Hidden layer sizes; () is a network with a single coef matrix.
HIDDEN = [(), (5,), (6, 4), (3, 5, 4)]
HIDDEN_IDS = ["h0", "h1", "h2", "h3"]
# outputs per matched pair
N_OUT = {
    ("identity", "squared_error"): 2,
    ("softmax", "log_loss"): 3,
    ("logistic", "log_loss"): 2,
    ("exp", "poisson"): 2,
}


def make_targets(rng, out_activation, loss, n, n_out):
    if loss == "squared_error":
        return rng.normal(size=(n, n_out))
    if out_activation == "softmax":
        Y = np.zeros((n, n_out))
        Y[np.arange(n), rng.randint(0, n_out, size=n)] = 1.0
        return Y
    if out_activation == "logistic":
        return rng.randint(0, 2, size=(n, n_out)).astype(np.float64)
    return rng.poisson(1.5, size=(n, n_out)).astype(np.float64)


def make_problem(
    seed,
    hidden,
    pair,
    activation,
    n=9,
    n_features=4,
    n_out=None,
    weighted=False,
    relu_margin=None,
):
    """A small random network and data set.

    Weights are scaled so that every pre-activation stays moderate: outputs of
    the log losses stay far from the eps clipping and exp stays small.  With
    ``relu_margin`` the seed is advanced until every hidden pre-activation is
    at least that far from 0 (away from the relu kink).
    """
    out_activation, loss = pair
    if n_out is None:
        n_out = N_OUT[pair]
    units = [n_features, *hidden, n_out]
    for trial in range(1000):
        rng = np.random.RandomState(seed + 7919 * trial)
        X = rng.normal(size=(n, n_features))
        coefs = [
            rng.normal(scale=1.0 / np.sqrt(fi), size=(fi, fo))
            for fi, fo in zip(units[:-1], units[1:])
        ]
        intercepts = [rng.normal(scale=0.3, size=fo) for fo in units[1:]]
        Y = make_targets(rng, out_activation, loss, n, n_out)
        sw = None
        if weighted:
            sw = rng.uniform(0.2, 2.5, size=n)
            sw[1] = 0.0  # a zero weight: its deltas vanish
        if relu_margin is None:
            break
        _, zs = naive.forward_with_z(coefs, intercepts, X, activation, out_activation)
        if all(np.abs(z).min() > relu_margin for z in zs[:-1]):
            break
    else:  # pragma: no cover
        raise RuntimeError("no data set away from the relu kink")
    return coefs, intercepts, X, Y, sw


def _cast(arrays, dtype):
    return [np.asarray(a, dtype=dtype) for a in arrays]


# --------------------------------------------------------------------------
# forward
# --------------------------------------------------------------------------


@pytest.mark.parametrize("hidden", HIDDEN, ids=HIDDEN_IDS)
@pytest.mark.parametrize("out_activation", list(naive.OUTPUT_ACTIVATIONS))
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_matches_naive_float64(activation, out_activation, hidden):
    pair = {
        "identity": ("identity", "squared_error"),
        "softmax": ("softmax", "log_loss"),
        "logistic": ("logistic", "log_loss"),
        "exp": ("exp", "poisson"),
    }[out_activation]
    coefs, intercepts, X, _, _ = make_problem(11, hidden, pair, activation)
    got = fastbp.forward(coefs, intercepts, X, activation=activation, out_activation=out_activation)
    ref = naive.forward(coefs, intercepts, X, activation, out_activation)
    assert isinstance(got, list)
    assert len(got) == len(coefs) + 1
    assert_array_equal(got[0], X)
    for g, r in zip(got, ref):
        assert g.dtype == np.float64
        assert g.shape == r.shape
        assert_allclose(g, r, rtol=1e-12, atol=1e-13)
    if out_activation == "softmax":
        assert_allclose(got[-1].sum(axis=1), 1.0, rtol=1e-12)


def test_forward_default_activations():
    # defaults: activation="relu", out_activation="identity"
    coefs, intercepts, X, _, _ = make_problem(3, (4,), ("identity", "squared_error"), "relu")
    got = fastbp.forward(coefs, intercepts, X)
    ref = naive.forward(coefs, intercepts, X, "relu", "identity")
    assert_allclose(got[-1], ref[-1], rtol=1e-12, atol=1e-13)
    # relu really is applied in the hidden layer
    assert (got[1] >= 0).all() and (got[1] == 0).any()


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_float32(activation):
    coefs, intercepts, X, _, _ = make_problem(5, (6, 4), ("softmax", "log_loss"), activation)
    c32, b32 = _cast(coefs, np.float32), _cast(intercepts, np.float32)
    X32 = X.astype(np.float32)
    got = fastbp.forward(c32, b32, X32, activation=activation, out_activation="softmax")
    ref = naive.forward(c32, b32, X32, activation, "softmax")
    for g, r in zip(got, ref):
        assert g.dtype == np.float32
        assert_allclose(g, r, rtol=2e-5, atol=2e-6)


def test_forward_integer_X_is_float64():
    coefs, intercepts, X, _, _ = make_problem(2, (3,), ("identity", "squared_error"), "tanh")
    Xi = np.round(X * 3).astype(np.int64)
    got = fastbp.forward(coefs, intercepts, Xi, activation="tanh")
    assert got[0].dtype == np.float64
    assert_array_equal(got[0], Xi.astype(np.float64))
    ref = naive.forward(coefs, intercepts, Xi, "tanh", "identity")
    assert_allclose(got[-1], ref[-1], rtol=1e-12, atol=1e-13)


# --------------------------------------------------------------------------
# backprop vs naive
# --------------------------------------------------------------------------


def _compare_backprop(got, ref, rtol, atol_factor, dtype):
    assert isinstance(got.loss, float)
    assert_allclose(got.loss, ref.loss, rtol=rtol, atol=atol_factor * abs(ref.loss))
    assert len(got.coef_grads) == len(ref.coef_grads)
    assert len(got.intercept_grads) == len(ref.intercept_grads)
    assert len(got.deltas) == len(ref.deltas)
    assert len(got.activations) == len(ref.activations)
    groups = [
        ("coef_grads", got.coef_grads, ref.coef_grads),
        ("intercept_grads", got.intercept_grads, ref.intercept_grads),
        ("deltas", got.deltas, ref.deltas),
        ("activations", got.activations, ref.activations),
    ]
    for name, gs, rs in groups:
        for i, (g, r) in enumerate(zip(gs, rs)):
            g = np.asarray(g)
            assert g.dtype == dtype, (name, i, g.dtype)
            assert g.shape == r.shape, (name, i, g.shape, r.shape)
            scale = max(np.abs(r).max(), 1e-300)
            assert_allclose(
                g, r, rtol=rtol, atol=atol_factor * scale, err_msg=f"{name}[{i}]"
            )


@pytest.mark.parametrize(
    "weighted, alpha", [(False, 0.0), (True, 0.0), (False, 0.7), (True, 0.7)],
    ids=["plain", "sw", "alpha", "sw+alpha"],
)
@pytest.mark.parametrize("hidden", HIDDEN, ids=HIDDEN_IDS)
@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_backprop_matches_naive_float64(activation, pair, hidden, weighted, alpha):
    out_activation, loss = pair
    coefs, intercepts, X, Y, sw = make_problem(
        100 + len(hidden), hidden, pair, activation, weighted=weighted
    )
    got = fastbp.backprop(
        coefs, intercepts, X, Y, activation=activation, out_activation=out_activation,
        loss=loss, alpha=alpha, sample_weight=sw,
    )
    ref = naive.backprop(coefs, intercepts, X, Y, activation, out_activation, loss, alpha, sw)
    _compare_backprop(got, ref, rtol=1e-10, atol_factor=1e-12, dtype=np.float64)
    if weighted:
        # the zero-weight sample contributes nothing: its deltas are zero
        for d in got.deltas:
            assert_array_equal(d[1], 0.0)


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_backprop_matches_naive_float32(activation, pair):
    out_activation, loss = pair
    coefs, intercepts, X, Y, sw = make_problem(200, (6, 4), pair, activation, weighted=True)
    c32, b32 = _cast(coefs, np.float32), _cast(intercepts, np.float32)
    X32, Y32, sw32 = X.astype(np.float32), Y.astype(np.float32), sw.astype(np.float32)
    got = fastbp.backprop(
        c32, b32, X32, Y32, activation=activation, out_activation=out_activation,
        loss=loss, alpha=0.3, sample_weight=sw32,
    )
    # reference on the very same float32-representable inputs, computed in float64
    ref = naive.backprop(c32, b32, X32, Y32, activation, out_activation, loss, 0.3, sw32)
    _compare_backprop(got, ref, rtol=1e-4, atol_factor=1e-5, dtype=np.float32)


SINGLE_OUTPUT_PAIRS = [p for p in PAIRS if p[0] != "softmax"]  # softmax of 1 output is 1


@pytest.mark.parametrize(
    "pair", SINGLE_OUTPUT_PAIRS, ids=[f"{a}+{l}" for a, l in SINGLE_OUTPUT_PAIRS]
)
def test_backprop_single_output(pair):
    out_activation, loss = pair
    coefs, intercepts, X, Y, sw = make_problem(
        300, (5,), pair, "tanh", n_out=1, weighted=True
    )
    got = fastbp.backprop(
        coefs, intercepts, X, Y, activation="tanh", out_activation=out_activation,
        loss=loss, alpha=0.1, sample_weight=sw,
    )
    ref = naive.backprop(coefs, intercepts, X, Y, "tanh", out_activation, loss, 0.1, sw)
    _compare_backprop(got, ref, rtol=1e-10, atol_factor=1e-12, dtype=np.float64)


def test_backprop_unit_weights_equal_no_weights():
    pair = ("softmax", "log_loss")
    coefs, intercepts, X, Y, _ = make_problem(9, (5,), pair, "logistic")
    kw = dict(activation="logistic", out_activation="softmax", loss="log_loss", alpha=0.2)
    a = fastbp.backprop(coefs, intercepts, X, Y, **kw)
    b = fastbp.backprop(coefs, intercepts, X, Y, sample_weight=np.ones(len(X)), **kw)
    assert_allclose(a.loss, b.loss, rtol=1e-13)
    for ga, gb in zip(a.coef_grads + a.intercept_grads, b.coef_grads + b.intercept_grads):
        assert_allclose(ga, gb, rtol=1e-12, atol=1e-15)


def test_backprop_integer_weights_equal_repetition():
    pair = ("identity", "squared_error")
    coefs, intercepts, X, Y, _ = make_problem(10, (5, 3), pair, "tanh")
    sw = np.array([0, 1, 2, 3, 1, 0, 2, 1, 1])
    kw = dict(activation="tanh", out_activation="identity", loss="squared_error", alpha=0.5)
    a = fastbp.backprop(coefs, intercepts, X, Y, sample_weight=sw, **kw)
    b = fastbp.backprop(coefs, intercepts, np.repeat(X, sw, axis=0), np.repeat(Y, sw, axis=0), **kw)
    assert_allclose(a.loss, b.loss, rtol=1e-12)
    for ga, gb in zip(a.coef_grads + a.intercept_grads, b.coef_grads + b.intercept_grads):
        assert_allclose(ga, gb, rtol=1e-11, atol=1e-14)


def test_backprop_inputs_not_modified():
    pair = ("logistic", "log_loss")
    coefs, intercepts, X, Y, sw = make_problem(12, (4,), pair, "relu", weighted=True)
    copies = [a.copy() for a in [*coefs, *intercepts, X, Y, sw]]
    fastbp.backprop(coefs, intercepts, X, Y, activation="relu", out_activation="logistic",
                    loss="log_loss", alpha=0.1, sample_weight=sw)
    for a, c in zip([*coefs, *intercepts, X, Y, sw], copies):
        assert_array_equal(a, c)


def test_backprop_results_are_independent_arrays():
    # the result must not alias an internal buffer that a later call overwrites
    pair = ("identity", "squared_error")
    c1, b1, X1, Y1, _ = make_problem(13, (4,), pair, "tanh")
    c2, b2, X2, Y2, _ = make_problem(14, (4,), pair, "tanh")
    kw = dict(activation="tanh", out_activation="identity", loss="squared_error")
    r1 = fastbp.backprop(c1, b1, X1, Y1, **kw)
    saved = [g.copy() for g in r1.coef_grads + r1.intercept_grads + r1.deltas]
    fastbp.backprop(c2, b2, X2, Y2, **kw)
    for g, s in zip(r1.coef_grads + r1.intercept_grads + r1.deltas, saved):
        assert_array_equal(g, s)


# --------------------------------------------------------------------------
# central finite differences on fastbp's own loss, float64
# --------------------------------------------------------------------------

FD_STEP = 1e-4
FD_RTOL = 1e-6


def _fd_gradients(loss_fn, coefs, intercepts, step=FD_STEP):
    """Central differences of loss_fn(coefs, intercepts) for every parameter.

    Fourth-order central stencil
    (-f(x+2h) + 8 f(x+h) - 8 f(x-h) + f(x-2h)) / (12 h): with h = 1e-4 its
    truncation error (~h**4) and its rounding error (~eps/h) are both far
    below the 1e-6 tolerance, so the check can be tight.
    """
    params = [np.array(p, dtype=np.float64) for p in coefs + intercepts]
    n_coefs = len(coefs)
    grads = []
    for p in params:
        g = np.empty_like(p)
        for idx in np.ndindex(p.shape):
            orig = p[idx]
            values = []
            for shift in (2.0, 1.0, -1.0, -2.0):
                p[idx] = orig + shift * step
                values.append(loss_fn(params[:n_coefs], params[n_coefs:]))
            p[idx] = orig
            g[idx] = (-values[0] + 8.0 * values[1] - 8.0 * values[2] + values[3]) / (12.0 * step)
        grads.append(g)
    return grads


def _max_relative_error(analytic, numeric):
    """Max over parameter arrays of ||a - b|| / max(||a||, ||b||, 1e-8), and the
    max over entries of |a - b| / max(|a|, |b|, 1e-3 * max|b|)."""
    worst = 0.0
    for a, b in zip(analytic, numeric):
        a = np.asarray(a, dtype=np.float64).ravel()
        b = np.asarray(b, dtype=np.float64).ravel()
        norm = max(np.linalg.norm(a), np.linalg.norm(b), 1e-8)
        worst = max(worst, np.linalg.norm(a - b) / norm)
        floor = max(1e-3 * np.abs(b).max(), 1e-8)
        elem = np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), floor)
        worst = max(worst, elem.max())
    return worst


def _fd_case(activation, pair, weighted, alpha, seed=400):
    out_activation, loss = pair
    coefs, intercepts, X, Y, sw = make_problem(
        seed, (5, 4), pair, activation, n=8, n_features=3, weighted=weighted,
        relu_margin=1e-2,
    )
    kw = dict(activation=activation, out_activation=out_activation, loss=loss,
              alpha=alpha, sample_weight=sw)

    def loss_fn(c, b):
        return fastbp.backprop(c, b, X, Y, **kw).loss

    res = fastbp.backprop(coefs, intercepts, X, Y, **kw)
    analytic = list(res.coef_grads) + list(res.intercept_grads)
    numeric = _fd_gradients(loss_fn, coefs, intercepts)
    return analytic, numeric


@pytest.mark.parametrize("weighted, alpha", [(False, 0.0), (True, 0.8)], ids=["plain", "sw+alpha"])
@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_finite_differences(activation, pair, weighted, alpha):
    analytic, numeric = _fd_case(activation, pair, weighted, alpha)
    # the gradient is not trivially zero
    assert max(np.abs(g).max() for g in numeric) > 1e-3
    err = _max_relative_error(analytic, numeric)
    assert err < FD_RTOL, f"max relative error {err:.3g}"


def test_finite_difference_check_detects_wrong_gradients():
    """The checker above must fail on slightly wrong gradients."""
    analytic, numeric = _fd_case("tanh", ("softmax", "log_loss"), True, 0.8)
    assert _max_relative_error(analytic, numeric) < FD_RTOL
    # 1e-4 relative error on one entry
    bad = [g.copy() for g in analytic]
    bad[1].flat[0] *= 1 + 1e-4
    assert _max_relative_error(bad, numeric) > FD_RTOL
    # a forgotten L2 term on the first layer
    res_plain = [g.copy() for g in analytic]
    coefs, _, _, _, sw = make_problem(400, (5, 4), ("softmax", "log_loss"), "tanh", n=8,
                                      n_features=3, weighted=True, relu_margin=1e-2)
    res_plain[0] = res_plain[0] - 0.8 * coefs[0] / sw.sum()
    assert _max_relative_error(res_plain, numeric) > FD_RTOL
    # a bias gradient off by a small constant
    shifted = [g.copy() for g in analytic]
    shifted[-1] = shifted[-1] + 1e-5
    assert _max_relative_error(shifted, numeric) > FD_RTOL


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
def test_finite_differences_no_hidden_layer(pair):
    out_activation, loss = pair
    coefs, intercepts, X, Y, sw = make_problem(500, (), pair, "relu", weighted=True)
    kw = dict(activation="relu", out_activation=out_activation, loss=loss, alpha=0.4,
              sample_weight=sw)
    res = fastbp.backprop(coefs, intercepts, X, Y, **kw)
    numeric = _fd_gradients(
        lambda c, b: fastbp.backprop(c, b, X, Y, **kw).loss, coefs, intercepts
    )
    err = _max_relative_error(list(res.coef_grads) + list(res.intercept_grads), numeric)
    assert err < FD_RTOL, f"max relative error {err:.3g}"


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------


def _simple():
    return make_problem(600, (4,), ("identity", "squared_error"), "relu")


@pytest.mark.parametrize(
    "out_activation, loss",
    [
        ("identity", "log_loss"),
        ("identity", "poisson"),
        ("softmax", "poisson"),
        ("softmax", "huber"),
        ("logistic", "poisson"),
        ("logistic", "absolute_error"),
        ("exp", "squared_error"),
        ("exp", "log_loss"),
    ],
)
def test_backprop_unsupported_pairs_raise(out_activation, loss):
    coefs, intercepts, X, Y, _ = _simple()
    with pytest.raises(ValueError):
        fastbp.backprop(coefs, intercepts, X, Y, activation="relu",
                        out_activation=out_activation, loss=loss)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(activation="foo"),
        dict(activation="softmax"),
        dict(out_activation="foo"),
        dict(out_activation="tanh"),
        dict(loss="foo"),
        dict(loss="hinge"),
    ],
    ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()),
)
def test_backprop_bad_names_raise(kwargs):
    coefs, intercepts, X, Y, _ = _simple()
    with pytest.raises(ValueError):
        fastbp.backprop(coefs, intercepts, X, Y, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [dict(activation="foo"), dict(activation="exp"), dict(out_activation="relu"),
     dict(out_activation="bar")],
    ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()),
)
def test_forward_bad_names_raise(kwargs):
    coefs, intercepts, X, _, _ = _simple()
    with pytest.raises(ValueError):
        fastbp.forward(coefs, intercepts, X, **kwargs)


def _bad_shape_cases():
    coefs, intercepts, X, Y, _ = _simple()
    cases = {
        "X-n_features": (coefs, intercepts, X[:, :-1], Y, None),
        "coef-chain": ([coefs[0], coefs[1][:-1]], intercepts, X, Y, None),
        "intercept-length": (coefs, [intercepts[0][:-1], intercepts[1]], X, Y, None),
        "fewer-intercepts": (coefs, intercepts[:1], X, Y, None),
        "no-layers": ([], [], X, Y, None),
        "coef-1d": ([coefs[0].ravel(), coefs[1]], intercepts, X, Y, None),
        "X-1d": (coefs, intercepts, X[:, 0], Y, None),
        "Y-rows": (coefs, intercepts, X, Y[:-1], None),
        "Y-cols": (coefs, intercepts, X, np.hstack([Y, Y]), None),
        "sw-length": (coefs, intercepts, X, Y, np.ones(len(X) + 1)),
        "sw-2d": (coefs, intercepts, X, Y, np.ones((len(X), 2))),
    }
    return cases


@pytest.mark.parametrize("case", list(_bad_shape_cases()))
def test_backprop_bad_shapes_raise(case):
    coefs, intercepts, X, Y, sw = _bad_shape_cases()[case]
    with pytest.raises(ValueError):
        fastbp.backprop(coefs, intercepts, X, Y, activation="relu",
                        out_activation="identity", loss="squared_error", sample_weight=sw)


@pytest.mark.parametrize(
    "case", ["X-n_features", "coef-chain", "intercept-length", "fewer-intercepts", "no-layers"]
)
def test_forward_bad_shapes_raise(case):
    coefs, intercepts, X, _, _ = _bad_shape_cases()[case]
    with pytest.raises(ValueError):
        fastbp.forward(coefs, intercepts, X)


def test_forward_nan_input_raises():
    coefs, intercepts, X, _, _ = _simple()
    X = X.copy()
    X[0, 0] = np.nan
    with pytest.raises(ValueError):
        fastbp.forward(coefs, intercepts, X)


# --------------------------------------------------------------------------
# fuzzing with hypothesis
# --------------------------------------------------------------------------

@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**31 - 1),
    hidden=st.lists(st.integers(1, 6), min_size=0, max_size=3).map(tuple),
    n=st.integers(1, 12),
    n_features=st.integers(1, 5),
    activation=st.sampled_from(ACTIVATIONS),
    pair=st.sampled_from(PAIRS),
    weighted=st.booleans(),
    alpha=st.sampled_from([0.0, 1e-3, 2.0]),
)
def test_backprop_fuzz(seed, hidden, n, n_features, activation, pair, weighted, alpha):
    out_activation, loss = pair
    coefs, intercepts, X, Y, sw = make_problem(
        seed % 100000, hidden, pair, activation, n=n, n_features=n_features,
        weighted=weighted,
    )
    if sw is not None and n > 1:
        sw[1] = 0.3  # keep the weight sum positive with n == 2
    elif sw is not None:
        sw[:] = 1.5
    got = fastbp.backprop(coefs, intercepts, X, Y, activation=activation,
                          out_activation=out_activation, loss=loss, alpha=alpha,
                          sample_weight=sw)
    ref = naive.backprop(coefs, intercepts, X, Y, activation, out_activation, loss, alpha, sw)
    _compare_backprop(got, ref, rtol=1e-10, atol_factor=1e-12, dtype=np.float64)
