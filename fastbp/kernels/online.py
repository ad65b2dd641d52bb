"""Compiled online SGD: one row per step, vector loops whatever the network's width."""

import numpy as np
from numba import njit

from .blas import row_dot
from .cache import load_without_compiler_setup
from .codes import (
    C_BATCH,
    F_ALPHA,
    F_L1,
    I_DROPOUT,
    I_SEED,
    LAYER_ACTIVATION,
    LAYER_DROPOUT,
    LAYER_PIECES,
    LAYER_SLOPE,
)
from .optimizers import F_BETA_1, F_BETA_2, F_EPSILON
from .config import FUSED_MIN_COLS
from .jit import INLINED, PARALLEL
from .views import flat_matrix, flat_vector, scalar_like
from .activations import apply_dropout, backprop_activation, bias_activation
from .layers import batch_output_loss, l1_gradient
from .optimizers import adam_constants, adam_step, fused_adam, step_size


# --------------------------------------------------------------------------
# online SGD: one row per step
# --------------------------------------------------------------------------
@njit(**PARALLEL)
def row_times_matrix(x, W, z, col_squares):
    """``z = x @ W`` for one row ``x`` (1-D), eight rows of W per pass over z;
    also ``col_squares[j] = sum(W[:, j] ** 2)`` (for the L2 penalty, at little
    cost: W is in registers).

    Summing eight products before touching ``z`` keeps the loop from waiting
    on its own stores (a plain row loop is bound by store-to-load latency).
    """
    k, n = W.shape
    for j in range(n):
        z[j] = 0.0
        col_squares[j] = 0.0
    r = 0
    while r + 8 <= k:
        x0, x1, x2, x3 = x[r], x[r + 1], x[r + 2], x[r + 3]
        x4, x5, x6, x7 = x[r + 4], x[r + 5], x[r + 6], x[r + 7]
        for j in range(n):
            w0, w1, w2, w3 = W[r, j], W[r + 1, j], W[r + 2, j], W[r + 3, j]
            w4, w5, w6, w7 = W[r + 4, j], W[r + 5, j], W[r + 6, j], W[r + 7, j]
            z[j] += ((x0 * w0 + x1 * w1) + (x2 * w2 + x3 * w3)) + ((x4 * w4 + x5 * w5) + (x6 * w6 + x7 * w7))
            col_squares[j] += ((w0 * w0 + w1 * w1) + (w2 * w2 + w3 * w3)) + ((w4 * w4 + w5 * w5) + (w6 * w6 + w7 * w7))
        r += 8
    while r < k:
        v = x[r]
        for j in range(n):
            w = W[r, j]
            z[j] += v * w
            col_squares[j] += w * w
        r += 1


@njit(**PARALLEL)
def row_weight_gradient(prev, delta, W, G, alpha, weight_sum):
    """One row's finished weight gradient,
    ``G = (outer(prev, delta) + alpha * W) / weight_sum``."""
    fan_in, n_cols = W.shape
    a = scalar_like(G, alpha)
    s = scalar_like(G, weight_sum)
    for i in range(fan_in):
        p = prev[i]
        if weight_sum == 1.0:
            for j in range(n_cols):
                G[i, j] = p * delta[j] + a * W[i, j]
        else:
            for j in range(n_cols):
                G[i, j] = (p * delta[j] + a * W[i, j]) / s

@njit(**INLINED)
def row_adam_layer(
    prev, delta, params, grads, state_1, state_2, w_lo, b_lo, fan_in, n_cols, alpha, weight_sum, rate, beta_1,
    beta_2, epsilon,
):
    """One row's gradient of a layer and Adam's step on it.

    The same numbers as :func:`row_weight_gradient` followed by
    :func:`adam_step`; on layers of at least FUSED_MIN_COLS columns in one pass
    that never writes the gradient.
    """
    n_w = fan_in * n_cols
    if n_cols >= FUSED_MIN_COLS:
        W = flat_matrix(params, w_lo, fan_in, n_cols)
        M = flat_matrix(state_1, w_lo, fan_in, n_cols)
        V = flat_matrix(state_2, w_lo, fan_in, n_cols)
        a = scalar_like(params, alpha)
        s = scalar_like(params, weight_sum)
        b1, c1, b2, c2, lr, eps = adam_constants(params, rate, beta_1, beta_2, epsilon)
        unit = weight_sum == 1.0
        # two copies of the loop: a test on weight_sum inside it costs a third
        if unit:
            for i in range(fan_in):
                p = prev[i]
                for j in range(n_cols):
                    w = W[i, j]
                    g = p * delta[j] + a * w
                    mt = b1 * M[i, j] + c1 * g
                    vt = b2 * V[i, j] + c2 * (g * g)
                    M[i, j] = mt
                    V[i, j] = vt
                    W[i, j] = w + (lr * mt) / (np.sqrt(vt) + eps)
        else:
            for i in range(fan_in):
                p = prev[i]
                for j in range(n_cols):
                    w = W[i, j]
                    g = (p * delta[j] + a * w) / s
                    mt = b1 * M[i, j] + c1 * g
                    vt = b2 * V[i, j] + c2 * (g * g)
                    M[i, j] = mt
                    V[i, j] = vt
                    W[i, j] = w + (lr * mt) / (np.sqrt(vt) + eps)
    else:
        # too narrow to vectorize along a row: the gradient, then one flat pass
        W = flat_matrix(params, w_lo, fan_in, n_cols)
        row_weight_gradient(prev, delta, W, flat_matrix(grads, w_lo, fan_in, n_cols), alpha, weight_sum)
        adam_step(
            flat_vector(params, w_lo, w_lo + n_w), flat_vector(grads, w_lo, w_lo + n_w),
            flat_vector(state_1, w_lo, w_lo + n_w), flat_vector(state_2, w_lo, w_lo + n_w), rate, beta_1, beta_2, epsilon,
        )
    g_b = flat_vector(grads, b_lo, b_lo + n_cols)
    if weight_sum == 1.0:
        g_b = delta
    else:
        s = scalar_like(params, weight_sum)
        for j in range(n_cols):
            g_b[j] = delta[j] / s
    adam_step(flat_vector(params, b_lo, b_lo + n_cols), g_b, flat_vector(state_1, b_lo, b_lo + n_cols),
              flat_vector(state_2, b_lo, b_lo + n_cols), rate, beta_1, beta_2, epsilon)


@njit(**INLINED)
def row_gradient(
    X, strides, Y, sw, rows, start, params, grads, icfg, fcfg, layer_int, layer_float, units, w_off, b_off,
    a_off, z_off, xb, yb, swb, pre, acts, deltas, dact, row_loss, n_weights, state_1, state_2, counters,
    col_squares,
):
    """Forward, backward and the finished gradient of the row ``rows[start]``, already in ``xb``.

    The one-row case of :func:`batch_gradient` followed by
    :func:`finalize_gradient`, as vector loops: products of one row are
    matrix-vector products, the weight gradient an outer product, finished
    (penalty, division by the weight) while it is written and fused with the
    delta recursion. Returns (loss, weight, penalty) with the penalty already
    divided by the weight; nothing is written when the row's weight is 0.

    For Adam without L1 (``fused``) each layer's gradient is not written: Adam's
    step is taken in the same pass (:func:`row_adam_layer`), after the layer's
    weights were used for the delta of the layer below; the results are the
    same to the bit.
    """
    n_layers = units.shape[0] - 1
    # (at most 30 arguments: Python passes more as *args, which Numba cannot inline)
    training = icfg[I_DROPOUT] != 0
    batch = counters[C_BATCH]
    fused = fused_adam(icfg, fcfg)
    squares = 0.0  # sum of the weights' squares, for the L2 penalty
    for layer in range(n_layers):
        fan_in = units[layer]
        pieces = layer_int[layer, LAYER_PIECES]
        n_cols = units[layer + 1] * pieces
        z_lo = z_off[layer + 1]
        if layer == 0:
            x = flat_vector(xb, 0, fan_in)
        else:
            x = flat_vector(acts, a_off[layer], a_off[layer] + fan_in)
        W = flat_matrix(params, w_off[layer], fan_in, n_cols)
        row_times_matrix(x, W, flat_vector(pre, z_lo, z_lo + n_cols), col_squares)
        for j in range(n_cols):
            squares += col_squares[j]
        a = flat_matrix(acts, a_off[layer + 1], 1, units[layer + 1])
        bias_activation(
            flat_matrix(pre, z_lo, 1, n_cols), flat_vector(params, b_off[layer], b_off[layer] + n_cols), a,
            layer_int[layer, LAYER_ACTIVATION], layer_float[layer, LAYER_SLOPE], pieces,
        )
        rate = layer_float[layer, LAYER_DROPOUT]
        if training and rate > 0.0 and layer < n_layers - 1:
            apply_dropout(a, rate, icfg[I_SEED], batch, start, layer)
    loss_sum, weight_sum = batch_output_loss(
        Y, sw, rows, start, 1, icfg, fcfg, layer_int, units, a_off, z_off, yb, swb, acts, deltas, row_loss
    )
    if weight_sum == 0.0:
        return loss_sum, weight_sum, 0.0
    alpha = fcfg[F_ALPHA]
    s = scalar_like(grads, weight_sum)
    adam_rate = step_size(counters, icfg, fcfg) if fused else 0.0
    for layer in range(n_layers - 1, -1, -1):
        fan_in = units[layer]
        n_cols = units[layer + 1] * layer_int[layer, LAYER_PIECES]
        z_lo = z_off[layer + 1]
        delta = flat_vector(deltas, z_lo, z_lo + n_cols)
        if layer == 0:
            prev = flat_vector(xb, 0, fan_in)
        else:
            prev = flat_vector(acts, a_off[layer], a_off[layer] + fan_in)
        W = flat_matrix(params, w_off[layer], fan_in, n_cols)
        if layer > 0:
            # dL/d(output) of the layer below, with W before the step: W @ delta,
            # one fixed-order dot product per row of W
            delta_row = flat_matrix(deltas, z_lo, 1, n_cols)
            for f in range(fan_in):
                dact[f] = row_dot(W, f, delta_row, 0, n_cols)
        if fused:
            row_adam_layer(
                prev, delta, params, grads, state_1, state_2, w_off[layer], b_off[layer], fan_in, n_cols,
                alpha, weight_sum, adam_rate, fcfg[F_BETA_1], fcfg[F_BETA_2], fcfg[F_EPSILON],
            )
        else:
            row_weight_gradient(prev, delta, W, flat_matrix(grads, w_off[layer], fan_in, n_cols), alpha, weight_sum)
            g_b = flat_vector(grads, b_off[layer], b_off[layer] + n_cols)
            if weight_sum == 1.0:
                for j in range(n_cols):
                    g_b[j] = delta[j]
            else:
                for j in range(n_cols):
                    g_b[j] = delta[j] / s
        if layer > 0:
            below = layer - 1
            pieces = layer_int[below, LAYER_PIECES]
            rate = layer_float[below, LAYER_DROPOUT] if training else 0.0
            backprop_activation(
                flat_matrix(dact, 0, 1, fan_in), flat_matrix(pre, z_off[layer], 1, fan_in * pieces),
                flat_matrix(acts, a_off[layer], 1, fan_in), flat_matrix(deltas, z_off[layer], 1, fan_in * pieces),
                layer_int[below, LAYER_ACTIVATION], layer_float[below, LAYER_SLOPE], pieces,
                rate, icfg[I_SEED], batch, start, below,
            )
    penalty = (0.5 * alpha) * squares if alpha != 0.0 else 0.0
    l1 = fcfg[F_L1]
    if l1 != 0.0:
        penalty += l1 * l1_gradient(params, grads, n_weights, l1, weight_sum)
    return loss_sum, weight_sum, penalty / weight_sum


load_without_compiler_setup(globals())
