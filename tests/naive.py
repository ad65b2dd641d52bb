"""Plain-NumPy reference forward pass and backpropagation.

This module is the one truth the compiled kernels (CPU, and CUDA when present)
are tested against.  It is written straight from the formulas of the contract,
deliberately slow and simple, always computing in float64 whatever the input
dtype, and it imports nothing from fastbp.

Notation: ``coefs[l]`` has shape (fan_in, fan_out), ``intercepts[l]`` has
shape (fan_out,).  For layer l, ``z = a_prev @ W + b``; hidden layers apply
``phi``, the output layer applies the output activation.  Only the matched
(output activation, loss) pairs are defined, for which the output delta is
``y_pred - y``.
"""

from types import SimpleNamespace

import numpy as np

HIDDEN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
OUTPUT_ACTIVATIONS = ("identity", "softmax", "logistic", "exp")
# (output activation, loss) pairs for which dL/dz_out = y_pred - y.
MATCHED_PAIRS = (
    ("identity", "squared_error"),
    ("softmax", "log_loss"),
    ("logistic", "log_loss"),
    ("exp", "poisson"),
)


def _sigmoid(z):
    # Overflow-free logistic function: 1 / (1 + exp(-z)) == (1 + tanh(z/2)) / 2.
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def hidden_activation(name, z):
    if name == "identity":
        return z.copy()
    if name == "logistic":
        return _sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.where(z > 0.0, z, 0.0)
    raise ValueError(f"unknown hidden activation {name!r}")


def hidden_derivative(name, z):
    """phi'(z), computed from the pre-activation z (not from phi(z))."""
    if name == "identity":
        return np.ones_like(z)
    if name == "logistic":
        s = _sigmoid(z)
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 / np.cosh(z) ** 2
    if name == "relu":
        return (z > 0.0).astype(np.float64)
    raise ValueError(f"unknown hidden activation {name!r}")


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


def per_sample_loss(out_activation, loss, y_pred, y):
    """The unweighted loss l_i of every sample, shape (n,)."""
    if (out_activation, loss) not in MATCHED_PAIRS:
        raise ValueError(f"unmatched pair {(out_activation, loss)!r}")
    if loss == "squared_error":
        return 0.5 * ((y_pred - y) ** 2).sum(axis=1)
    if out_activation == "softmax":
        return -_xlogy(y, y_pred).sum(axis=1)
    if out_activation == "logistic":
        return -(_xlogy(y, y_pred) + _xlogy(1.0 - y, 1.0 - y_pred)).sum(axis=1)
    # Poisson with y_pred = exp(z): l = sum_k (y_pred - y * log(y_pred)), without
    # the constant xlogy(y, y) - y of the half deviance.
    return (y_pred - _xlogy(y, y_pred)).sum(axis=1)


def poisson_deviance_constant(y):
    """Per-sample sum_k (xlogy(y, y) - y): half Poisson deviance minus l_i."""
    y = np.asarray(y, dtype=np.float64)
    return (_xlogy(y, y) - y).sum(axis=1)


def _as_f64_list(arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


def forward_with_z(coefs, intercepts, X, activation="relu", out_activation="identity"):
    """Return (activations, pre_activations), both in float64.

    activations = [X, a1, ..., a_out]; pre_activations = [z1, ..., z_out].
    """
    coefs = _as_f64_list(coefs)
    intercepts = _as_f64_list(intercepts)
    a = np.asarray(X, dtype=np.float64)
    activations = [a]
    zs = []
    n_layers = len(coefs)
    for l in range(n_layers):
        z = a @ coefs[l] + intercepts[l]
        zs.append(z)
        if l == n_layers - 1:
            a = output_activation(out_activation, z)
        else:
            a = hidden_activation(activation, z)
        activations.append(a)
    return activations, zs


def forward(coefs, intercepts, X, activation="relu", out_activation="identity"):
    """[X, a1, ..., a_out] in float64."""
    return forward_with_z(coefs, intercepts, X, activation, out_activation)[0]


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
):
    """The regularised, weighted mean loss only (float)."""
    acts = forward(coefs, intercepts, X, activation, out_activation)
    Y = np.asarray(Y, dtype=np.float64)
    n = Y.shape[0]
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
    S = float(n) if sample_weight is None else float(w.sum())
    ell = per_sample_loss(out_activation, loss, acts[-1], Y)
    penalty = sum(float((np.asarray(W, np.float64) ** 2).sum()) for W in coefs)
    return float((w * ell).sum() / S + alpha / (2.0 * S) * penalty)


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
):
    """Loss, gradients, per-sample deltas and activations, all float64.

    Returns a namespace with ``loss``, ``coef_grads``, ``intercept_grads``,
    ``deltas`` (deltas[l] = dL_unnormalised/dz_l per sample, i.e. NOT divided
    by S), ``activations`` and ``pre_activations``.
    """
    if (out_activation, loss) not in MATCHED_PAIRS:
        raise ValueError(f"unmatched pair {(out_activation, loss)!r}")
    coefs = _as_f64_list(coefs)
    acts, zs = forward_with_z(coefs, intercepts, X, activation, out_activation)
    Y = np.asarray(Y, dtype=np.float64)
    n = Y.shape[0]
    if sample_weight is None:
        w = np.ones(n)
        S = float(n)
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
        S = float(w.sum())

    ell = per_sample_loss(out_activation, loss, acts[-1], Y)
    penalty = sum(float((W**2).sum()) for W in coefs)
    value = float((w * ell).sum() / S + alpha / (2.0 * S) * penalty)

    n_layers = len(coefs)
    deltas = [None] * n_layers
    coef_grads = [None] * n_layers
    intercept_grads = [None] * n_layers
    delta = (acts[-1] - Y) * w[:, None]
    for l in range(n_layers - 1, -1, -1):
        deltas[l] = delta
        coef_grads[l] = (acts[l].T @ delta + alpha * coefs[l]) / S
        intercept_grads[l] = delta.sum(axis=0) / S
        if l > 0:
            delta = (delta @ coefs[l].T) * hidden_derivative(activation, zs[l - 1])

    return SimpleNamespace(
        loss=value,
        coef_grads=coef_grads,
        intercept_grads=intercept_grads,
        deltas=deltas,
        activations=acts,
        pre_activations=zs,
    )
