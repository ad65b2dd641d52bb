"""Plain-NumPy reference forward pass and backpropagation.

This module is the one truth the compiled kernels (CPU, and CUDA when present)
are tested against.  It is written straight from the formulas of the contract,
deliberately slow and simple, always computing in float64 whatever the input
dtype, and it imports nothing from fastbp.

Notation: ``coefs[l]`` has shape (fan_in, fan_out), ``intercepts[l]`` has
shape (fan_out,).  For layer l, ``z = a_prev @ W + b``; hidden layers apply
``phi``, the output layer applies the output activation.  A maxout layer with
k pieces has ``fan_out = units * k`` columns: unit u's pieces are the columns
``u*k ... u*k + k - 1`` and the unit outputs the largest of them.

``activation`` is one hidden-activation name for all hidden layers or a list
with one name per hidden layer.  The (output activation, loss) pairs are those
of ``LOSS_PAIRS``; for the matched pairs the output delta is ``y_pred - y``
(absolute error: its sign, Huber: its clipped form), for squared error on
softmax / logistic outputs it goes through the output activation's Jacobian.
"""

from types import SimpleNamespace

import numpy as np
from scipy.special import erf

# The original four hidden activations (the parametrization of test_functional).
HIDDEN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
# Every canonical hidden activation.
ALL_HIDDEN_ACTIVATIONS = (
    "identity", "logistic", "tanh", "relu", "leaky_relu", "swish", "softplus", "elu", "gelu", "maxout",
)
# alias -> canonical name
ACTIVATION_ALIASES = {"sigmoid": "logistic", "silu": "swish"}
# activations whose derivative jumps somewhere (relu, leaky_relu, maxout) or
# whose second derivative does (elu): finite differences must stay off the kink.
KINKED_ACTIVATIONS = ("relu", "leaky_relu", "elu", "maxout")
OUTPUT_ACTIVATIONS = ("identity", "softmax", "logistic", "exp")
# (output activation, loss) pairs for which dL/dz_out = y_pred - y.
MATCHED_PAIRS = (
    ("identity", "squared_error"),
    ("softmax", "log_loss"),
    ("logistic", "log_loss"),
    ("exp", "poisson"),
)
# Every supported (output activation, loss) pair.
LOSS_PAIRS = MATCHED_PAIRS + (
    ("identity", "absolute_error"),
    ("identity", "huber"),
    ("softmax", "squared_error"),
    ("logistic", "squared_error"),
)


def _sigmoid(z):
    # Overflow-free logistic function: 1 / (1 + exp(-z)) == (1 + tanh(z/2)) / 2.
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def canonical_activation(name):
    return ACTIVATION_ALIASES.get(name, name)


def hidden_activation(name, z, negative_slope=0.01, maxout_pieces=2):
    """phi(z) of a hidden layer (maxout: z has units * maxout_pieces columns)."""
    name = canonical_activation(name)
    z = np.asarray(z, dtype=np.float64)
    if name == "identity":
        return z.copy()
    if name == "logistic":
        return _sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.where(z > 0.0, z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0.0, z, negative_slope * z)
    if name == "swish":
        return z * _sigmoid(z)
    if name == "softplus":
        return np.logaddexp(0.0, z)
    if name == "elu":
        return np.where(z > 0.0, z, np.expm1(np.minimum(z, 0.0)))
    if name == "gelu":
        return 0.5 * z * (1.0 + erf(z / np.sqrt(2.0)))
    if name == "maxout":
        n, cols = z.shape
        if cols % maxout_pieces:
            raise ValueError("maxout: columns must be a multiple of the pieces")
        return z.reshape(n, cols // maxout_pieces, maxout_pieces).max(axis=2)
    raise ValueError(f"unknown hidden activation {name!r}")


def hidden_derivative(name, z, negative_slope=0.01):
    """phi'(z), computed from the pre-activation z (not from phi(z)).

    Elementwise activations only (maxout: see :func:`hidden_backward`).
    """
    name = canonical_activation(name)
    z = np.asarray(z, dtype=np.float64)
    if name == "identity":
        return np.ones_like(z)
    if name == "logistic":
        s = _sigmoid(z)
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 / np.cosh(z) ** 2
    if name == "relu":
        return (z > 0.0).astype(np.float64)
    if name == "leaky_relu":
        return np.where(z > 0.0, 1.0, negative_slope)
    if name == "swish":
        s = _sigmoid(z)
        return s + z * s * (1.0 - s)
    if name == "softplus":
        return _sigmoid(z)
    if name == "elu":
        return np.where(z > 0.0, 1.0, np.exp(np.minimum(z, 0.0)))
    if name == "gelu":
        cdf = 0.5 * (1.0 + erf(z / np.sqrt(2.0)))
        pdf = np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
        return cdf + z * pdf
    raise ValueError(f"no elementwise derivative for hidden activation {name!r}")


def hidden_backward(name, z, delta_a, negative_slope=0.01, maxout_pieces=2):
    """dL/dz from dL/da for a hidden layer with pre-activations z."""
    name = canonical_activation(name)
    if name != "maxout":
        return delta_a * hidden_derivative(name, z, negative_slope)
    n, cols = z.shape
    units = cols // maxout_pieces
    winner = z.reshape(n, units, maxout_pieces).argmax(axis=2)  # first max, like the kernels
    delta_z = np.zeros((n, units, maxout_pieces))
    rows, unit_idx = np.meshgrid(np.arange(n), np.arange(units), indexing="ij")
    delta_z[rows, unit_idx, winner] = delta_a
    return delta_z.reshape(n, cols)


def maxout_gaps(z, maxout_pieces):
    """Per unit and sample, the gap between the largest and second-largest piece."""
    n, cols = z.shape
    pieces = np.sort(z.reshape(n, cols // maxout_pieces, maxout_pieces), axis=2)
    if maxout_pieces == 1:
        return np.full(pieces.shape[:2], np.inf)
    return pieces[:, :, -1] - pieces[:, :, -2]


def output_activation(name, z):
    if name == "identity":
        return z.copy()
    if name == "logistic":
        return _sigmoid(z)
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if name == "exp":
        return np.exp(z)
    raise ValueError(f"unknown output activation {name!r}")


def _xlogy(x, y):
    """x * log(y) with 0 * log(0) = 0."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    out = np.zeros(np.broadcast(x, y).shape)
    nz = np.broadcast_to(x != 0, out.shape)
    xb = np.broadcast_to(x, out.shape)
    yb = np.broadcast_to(y, out.shape)
    out[nz] = xb[nz] * np.log(yb[nz])
    return out


def _check_pair(out_activation, loss):
    if (out_activation, loss) not in LOSS_PAIRS:
        raise ValueError(f"unsupported pair {(out_activation, loss)!r}")


def per_sample_loss(out_activation, loss, y_pred, y, huber_delta=1.0):
    """The unweighted loss l_i of every sample, shape (n,)."""
    _check_pair(out_activation, loss)
    r = y_pred - y
    if loss == "squared_error":
        return 0.5 * (r**2).sum(axis=1)
    if loss == "absolute_error":
        return np.abs(r).sum(axis=1)
    if loss == "huber":
        a = np.abs(r)
        return np.where(a <= huber_delta, 0.5 * r**2, huber_delta * (a - 0.5 * huber_delta)).sum(axis=1)
    if out_activation == "softmax":
        return -_xlogy(y, y_pred).sum(axis=1)
    if out_activation == "logistic":
        return -(_xlogy(y, y_pred) + _xlogy(1.0 - y, 1.0 - y_pred)).sum(axis=1)
    # Poisson with y_pred = exp(z): l = sum_k (y_pred - y * log(y_pred)), without
    # the constant xlogy(y, y) - y of the half deviance.
    return (y_pred - _xlogy(y, y_pred)).sum(axis=1)


def output_delta(out_activation, loss, y_pred, y, huber_delta=1.0):
    """dl_i/dz_out per sample (unweighted), shape (n, n_out)."""
    _check_pair(out_activation, loss)
    r = y_pred - y
    if loss == "absolute_error":
        return np.sign(r)
    if loss == "huber":
        return np.clip(r, -huber_delta, huber_delta)
    if loss == "squared_error" and out_activation == "softmax":
        return y_pred * (r - (r * y_pred).sum(axis=1, keepdims=True))
    if loss == "squared_error" and out_activation == "logistic":
        return r * y_pred * (1.0 - y_pred)
    return r  # the matched pairs


def poisson_deviance_constant(y):
    """Per-sample sum_k (xlogy(y, y) - y): half Poisson deviance minus l_i."""
    y = np.asarray(y, dtype=np.float64)
    return (_xlogy(y, y) - y).sum(axis=1)


def _as_f64_list(arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


def hidden_names(activation, n_hidden):
    """One canonical activation name per hidden layer."""
    if isinstance(activation, str):
        names = [activation] * n_hidden
    else:
        names = list(activation)
        if len(names) != n_hidden:
            raise ValueError(f"{len(names)} activation names for {n_hidden} hidden layers")
    return [canonical_activation(name) for name in names]


def forward_with_z(coefs, intercepts, X, activation="relu", out_activation="identity", *,
                   negative_slope=0.01, maxout_pieces=2):
    """Return (activations, pre_activations), both in float64.

    activations = [X, a1, ..., a_out]; pre_activations = [z1, ..., z_out]
    (for a maxout layer z has units * maxout_pieces columns).
    """
    coefs = _as_f64_list(coefs)
    intercepts = _as_f64_list(intercepts)
    names = hidden_names(activation, len(coefs) - 1)
    a = np.asarray(X, dtype=np.float64)
    if hasattr(X, "toarray"):
        a = np.asarray(X.toarray(), dtype=np.float64)
    activations = [a]
    zs = []
    n_layers = len(coefs)
    for l in range(n_layers):
        z = a @ coefs[l] + intercepts[l]
        zs.append(z)
        if l == n_layers - 1:
            a = output_activation(out_activation, z)
        else:
            a = hidden_activation(names[l], z, negative_slope, maxout_pieces)
        activations.append(a)
    return activations, zs


def forward(coefs, intercepts, X, activation="relu", out_activation="identity", *,
            negative_slope=0.01, maxout_pieces=2):
    """[X, a1, ..., a_out] in float64."""
    return forward_with_z(coefs, intercepts, X, activation, out_activation,
                          negative_slope=negative_slope, maxout_pieces=maxout_pieces)[0]


def _weights(n, sample_weight):
    if sample_weight is None:
        return np.ones(n), float(n)
    w = np.asarray(sample_weight, dtype=np.float64)
    return w, float(w.sum())


def penalty(coefs, alpha=0.0, l1=0.0):
    """alpha/2 sum ||W||**2 + l1 sum |W| (weights only; not yet divided by S)."""
    coefs = _as_f64_list(coefs)
    return alpha / 2.0 * sum(float((W**2).sum()) for W in coefs) + l1 * sum(
        float(np.abs(W).sum()) for W in coefs
    )


def loss_value(
    coefs,
    intercepts,
    X,
    Y,
    activation="relu",
    out_activation="identity",
    loss="squared_error",
    alpha=0.0,
    sample_weight=None,
    *,
    l1=0.0,
    huber_delta=1.0,
    negative_slope=0.01,
    maxout_pieces=2,
):
    """The regularised, weighted mean loss only (float)."""
    acts = forward(coefs, intercepts, X, activation, out_activation,
                   negative_slope=negative_slope, maxout_pieces=maxout_pieces)
    Y = np.asarray(Y, dtype=np.float64)
    w, S = _weights(Y.shape[0], sample_weight)
    ell = per_sample_loss(out_activation, loss, acts[-1], Y, huber_delta)
    return float((w * ell).sum() / S + penalty(coefs, alpha, l1) / S)


def backprop(
    coefs,
    intercepts,
    X,
    Y,
    activation="relu",
    out_activation="identity",
    loss="squared_error",
    alpha=0.0,
    sample_weight=None,
    *,
    l1=0.0,
    huber_delta=1.0,
    negative_slope=0.01,
    maxout_pieces=2,
):
    """Loss, gradients, per-sample deltas and activations, all float64.

    Returns a namespace with ``loss``, ``coef_grads``, ``intercept_grads``,
    ``deltas`` (deltas[l] = dL_unnormalised/dz_l per sample, i.e. NOT divided
    by S), ``activations`` and ``pre_activations``.
    """
    _check_pair(out_activation, loss)
    coefs = _as_f64_list(coefs)
    names = hidden_names(activation, len(coefs) - 1)
    acts, zs = forward_with_z(coefs, intercepts, X, names, out_activation,
                              negative_slope=negative_slope, maxout_pieces=maxout_pieces)
    Y = np.asarray(Y, dtype=np.float64)
    w, S = _weights(Y.shape[0], sample_weight)

    ell = per_sample_loss(out_activation, loss, acts[-1], Y, huber_delta)
    value = float((w * ell).sum() / S + penalty(coefs, alpha, l1) / S)

    n_layers = len(coefs)
    deltas = [None] * n_layers
    coef_grads = [None] * n_layers
    intercept_grads = [None] * n_layers
    delta = output_delta(out_activation, loss, acts[-1], Y, huber_delta) * w[:, None]
    for l in range(n_layers - 1, -1, -1):
        deltas[l] = delta
        coef_grads[l] = (acts[l].T @ delta + alpha * coefs[l] + l1 * np.sign(coefs[l])) / S
        intercept_grads[l] = delta.sum(axis=0) / S
        if l > 0:
            delta = hidden_backward(names[l - 1], zs[l - 1], delta @ coefs[l].T,
                                    negative_slope, maxout_pieces)

    return SimpleNamespace(
        loss=value,
        coef_grads=coef_grads,
        intercept_grads=intercept_grads,
        deltas=deltas,
        activations=acts,
        pre_activations=zs,
    )


def finite_difference_gradients(loss_fn, params, step=1e-4):
    """Fourth-order central differences of ``loss_fn(params)`` for every entry.

    ``params`` is a list of float64 arrays (changed in place during the call and
    restored); ``(-f(x+2h) + 8 f(x+h) - 8 f(x-h) + f(x-2h)) / (12 h)``.
    """
    params = [np.array(p, dtype=np.float64) for p in params]
    grads = []
    for p in params:
        g = np.empty_like(p)
        for idx in np.ndindex(p.shape):
            orig = p[idx]
            values = []
            for shift in (2.0, 1.0, -1.0, -2.0):
                p[idx] = orig + shift * step
                values.append(loss_fn(params))
            p[idx] = orig
            g[idx] = (-values[0] + 8.0 * values[1] - 8.0 * values[2] + values[3]) / (12.0 * step)
        grads.append(g)
    return grads
