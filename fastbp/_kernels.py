"""Compiled CPU kernels of backpropagation.

Conventions
-----------
* Parameters live in ONE flat vector: every weight matrix W(l) (row-major,
  shape (fan_in, fan_out)) one after the other, then every bias vector b(l).
  ``w_off[l]`` / ``b_off[l]`` give their offsets, ``units`` the layer widths
  (``units[0]`` = n_features, ``units[-1]`` = n_outputs), ``n_weights`` the
  number of weights (the part the L2 penalty applies to).
* Per-batch activations and deltas live in flat workspaces; layer l (1..L)
  starts at ``a_off[l]`` and is viewed as (m, units[l]) for a batch of m rows.
* The input rows of a batch are ``rows[start:start + m]``; dense X is gathered
  through them into a reused C-contiguous buffer ``xb``, sparse X (CSR arrays)
  is read in place.
* Activation, loss and solver are integer codes (see ``_codes``); hyper-parameters
  come in an int vector ``icfg`` and a float vector ``fcfg``.
* Every reduction runs in a fixed order (per-row, per-column-block or
  per-fixed-chunk partials summed serially), so results do not depend on the
  number of threads.
* Nothing here is compiled at import: Numba compiles on first call and caches
  on disk (``cache=True``).
"""

import math

import numpy as np
from numba import njit, prange

from ._codes import (
    ACT_EXP,
    ACT_IDENTITY,
    ACT_LOGISTIC,
    ACT_RELU,
    ACT_SOFTMAX,
    ACT_TANH,
    F_ALPHA,
    F_BETA_1,
    F_BETA_2,
    F_CLIP,
    F_EPSILON,
    F_LEARNING_RATE,
    F_MOMENTUM,
    I_HAS_SAMPLE_WEIGHT,
    I_HIDDEN,
    I_LOSS,
    I_NESTEROV,
    I_OUTPUT,
    I_POISSON_CONSTANT,
    I_SOLVER,
    I_SPARSE,
    LOSS_BINARY_LOG_LOSS,
    LOSS_LOG_LOSS,
    LOSS_POISSON,
    LOSS_SQUARED_ERROR,
    SOLVER_ADAM,
    SOLVER_SGD,
)
from ._blas import gemm
from ._config import COLUMN_BLOCK, FASTMATH, PARALLEL_ELEMENTWISE, SUM_BLOCK

_PARALLEL = dict(cache=True, parallel=PARALLEL_ELEMENTWISE, fastmath=FASTMATH)
# Losses and reductions keep IEEE semantics (no reassociation).
_EXACT_PARALLEL = dict(cache=True, parallel=PARALLEL_ELEMENTWISE)
_SERIAL = dict(cache=True)


# --------------------------------------------------------------------------
# views into flat buffers
# --------------------------------------------------------------------------
@njit(**_SERIAL)
def _matrix(buf, offset, n_rows, n_cols):
    """The (n_rows, n_cols) C-ordered matrix stored at ``buf[offset:]``."""
    return buf[offset : offset + n_rows * n_cols].reshape((n_rows, n_cols))


# --------------------------------------------------------------------------
# input layer
# --------------------------------------------------------------------------
@njit(**_PARALLEL)
def gather_rows(base, row_stride, col_stride, rows, start, m, out):
    """Copy rows ``rows[start:start+m]`` of a dense X into ``out`` (m, d).

    X is read through ``base`` (a 1-D view of its memory) and its strides in
    elements, so C-, Fortran-ordered and strided X share one compiled kernel.
    """
    d = out.shape[1]
    for i in prange(m):
        r0 = rows[start + i] * row_stride
        for j in range(d):
            out[i, j] = base[r0 + j * col_stride]


@njit(**_PARALLEL)
def sparse_rows_dot(data, indices, indptr, rows, start, m, W, out):
    """``out = X[rows[start:start+m]] @ W`` for X given as CSR arrays."""
    n_out = W.shape[1]
    for i in prange(m):
        r = rows[start + i]
        for k in range(n_out):
            out[i, k] = 0.0
        for p in range(indptr[r], indptr[r + 1]):
            j = indices[p]
            v = data[p]
            for k in range(n_out):
                out[i, k] += v * W[j, k]


@njit(**_PARALLEL)
def sparse_rows_weight_grad(data, indices, indptr, rows, start, m, delta, grad, accumulate):
    """``grad (+)= X[rows[start:start+m]].T @ delta`` for X given as CSR arrays.

    Parallel over blocks of output columns, serial over rows: a fixed order.
    """
    n_out = grad.shape[1]
    if not accumulate:
        grad[:, :] = 0.0
    n_blocks = (n_out + COLUMN_BLOCK - 1) // COLUMN_BLOCK
    for blk in prange(n_blocks):
        c0 = blk * COLUMN_BLOCK
        c1 = min(c0 + COLUMN_BLOCK, n_out)
        for i in range(m):
            r = rows[start + i]
            for p in range(indptr[r], indptr[r + 1]):
                j = indices[p]
                v = data[p]
                for c in range(c0, c1):
                    grad[j, c] += v * delta[i, c]


# --------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------
@njit(**_PARALLEL)
def bias_activation(z, b, code):
    """In place: ``z = phi(z + b)`` for the activation ``code``."""
    m, k = z.shape
    if code == ACT_SOFTMAX:
        for i in prange(m):
            row_max = z[i, 0] + b[0]
            for j in range(k):
                v = z[i, j] + b[j]
                z[i, j] = v
                if v > row_max:
                    row_max = v
            total = 0.0
            for j in range(k):
                e = math.exp(z[i, j] - row_max)
                z[i, j] = e
                total += e
            for j in range(k):
                z[i, j] /= total
    elif code == ACT_LOGISTIC:
        for i in prange(m):
            for j in range(k):
                z[i, j] = 1.0 / (1.0 + math.exp(-(z[i, j] + b[j])))
    elif code == ACT_TANH:
        for i in prange(m):
            for j in range(k):
                z[i, j] = math.tanh(z[i, j] + b[j])
    elif code == ACT_RELU:
        for i in prange(m):
            for j in range(k):
                v = z[i, j] + b[j]
                # NaN passes through (v < 0 is False), as np.maximum does.
                if v < 0.0:
                    v = 0.0
                z[i, j] = v
    elif code == ACT_EXP:
        for i in prange(m):
            for j in range(k):
                z[i, j] = math.exp(z[i, j] + b[j])
    else:  # identity
        for i in prange(m):
            for j in range(k):
                z[i, j] += b[j]


@njit(**_PARALLEL)
def multiply_derivative(a, delta, code):
    """In place: ``delta *= phi'(z)``, written in terms of the output ``a = phi(z)``."""
    m, k = a.shape
    if code == ACT_LOGISTIC:
        for i in prange(m):
            for j in range(k):
                delta[i, j] = delta[i, j] * a[i, j] * (1.0 - a[i, j])
    elif code == ACT_TANH:
        for i in prange(m):
            for j in range(k):
                delta[i, j] = delta[i, j] * (1.0 - a[i, j] * a[i, j])
    elif code == ACT_RELU:
        for i in prange(m):
            for j in range(k):
                if a[i, j] == 0.0:
                    delta[i, j] = 0.0
    # identity: nothing to do


# --------------------------------------------------------------------------
# output delta and loss
# --------------------------------------------------------------------------
@njit(**_EXACT_PARALLEL)
def output_delta_loss(out, y, sw, has_sw, loss_code, poisson_constant, clip, delta, row_loss):
    """Output delta ``(y_pred - y) * w`` and the weighted loss sum ``sum_i w_i l_i``.

    ``out`` holds the output activations; the per-row losses go to ``row_loss``
    and are summed serially (a fixed order).
    """
    m, k = out.shape
    for i in prange(m):
        w = sw[i] if has_sw else 1.0
        acc = 0.0
        for j in range(k):
            p = out[i, j]
            t = y[i, j]
            if loss_code == LOSS_SQUARED_ERROR:
                diff = t - p
                acc += diff * diff
            elif loss_code == LOSS_LOG_LOSS:
                if t != 0.0:
                    pc = min(max(p, clip), 1.0 - clip)
                    acc -= t * math.log(pc)
            elif loss_code == LOSS_BINARY_LOG_LOSS:
                pc = min(max(p, clip), 1.0 - clip)
                if t != 0.0:
                    acc -= t * math.log(pc)
                if t != 1.0:
                    acc -= (1.0 - t) * math.log(1.0 - pc)
            else:  # LOSS_POISSON, exp link
                if poisson_constant:
                    # half Poisson deviance: xlogy(y, y / p) - y + p
                    if t != 0.0:
                        acc += t * math.log(t / p)
                    acc += p - t
                else:
                    # p - xlogy(y, p)
                    if t != 0.0:
                        acc -= t * math.log(p)
                    acc += p
            delta[i, j] = (p - t) * w
        if loss_code == LOSS_SQUARED_ERROR:
            acc *= 0.5
        row_loss[i] = acc * w
    total = 0.0
    for i in range(m):
        total += row_loss[i]
    return total


# --------------------------------------------------------------------------
# gradient pieces
# --------------------------------------------------------------------------
@njit(**_EXACT_PARALLEL)
def bias_grad(delta, grad, accumulate):
    """``grad (+)= delta.sum(axis=0)``, column blocks in parallel, rows in order."""
    m, k = delta.shape
    n_blocks = (k + COLUMN_BLOCK - 1) // COLUMN_BLOCK
    for blk in prange(n_blocks):
        c0 = blk * COLUMN_BLOCK
        c1 = min(c0 + COLUMN_BLOCK, k)
        if not accumulate:
            for c in range(c0, c1):
                grad[c] = 0.0
        for i in range(m):
            for c in range(c0, c1):
                grad[c] += delta[i, c]


@njit(**_EXACT_PARALLEL)
def finalize_gradient(params, grads, n_weights, alpha, scale_sum):
    """Turn raw sums into the gradient of the mean loss; return ``sum(W**2)``.

    ``grad_W = (x.T @ delta + alpha * W) / S`` and ``grad_b = sum(delta) / S``.
    The squared norm of the weights (for the L2 term of the loss) is read in the
    same pass, in fixed blocks summed serially.
    """
    n_params = params.shape[0]
    n_blocks = (n_params + SUM_BLOCK - 1) // SUM_BLOCK
    partial = np.zeros(n_blocks)
    for blk in prange(n_blocks):
        lo = blk * SUM_BLOCK
        hi = min(lo + SUM_BLOCK, n_params)
        acc = 0.0
        for i in range(lo, hi):
            if i < n_weights:
                w = params[i]
                acc += w * w
                grads[i] = (grads[i] + alpha * w) / scale_sum
            else:
                grads[i] = grads[i] / scale_sum
        partial[blk] = acc
    total = 0.0
    for blk in range(n_blocks):
        total += partial[blk]
    return total


# --------------------------------------------------------------------------
# optimizer steps over the flat parameter vector
# --------------------------------------------------------------------------
@njit(**_PARALLEL)
def sgd_step(params, grads, velocity, learning_rate, momentum, nesterov):
    """scikit-learn's SGD with (Nesterov) momentum, in one pass."""
    for i in prange(params.shape[0]):
        g = grads[i]
        v = momentum * velocity[i] - learning_rate * g
        velocity[i] = v
        if nesterov:
            params[i] += momentum * v - learning_rate * g
        else:
            params[i] += v


@njit(**_PARALLEL)
def adam_step(params, grads, first_moment, second_moment, step_size, beta_1, beta_2, epsilon):
    """One Adam step (Kingma & Ba) with the bias-corrected ``step_size``."""
    for i in prange(params.shape[0]):
        g = grads[i]
        mt = beta_1 * first_moment[i] + (1.0 - beta_1) * g
        vt = beta_2 * second_moment[i] + (1.0 - beta_2) * (g * g)
        first_moment[i] = mt
        second_moment[i] = vt
        params[i] += (-step_size * mt) / (math.sqrt(vt) + epsilon)


# --------------------------------------------------------------------------
# the network: forward and backward over one batch
# --------------------------------------------------------------------------
@njit(**_SERIAL)
def forward_batch(X, strides, data, indices, indptr, rows, start, m, params, icfg, units, w_off, b_off, a_off, xb, acts):
    """Forward pass of rows ``rows[start:start+m]``; fills the activations."""
    n_layers = units.shape[0] - 1
    sparse = icfg[I_SPARSE] != 0
    if not sparse:
        gather_rows(X, strides[0], strides[1], rows, start, m, _matrix(xb, 0, m, units[0]))
    for layer in range(n_layers):
        fan_in = units[layer]
        fan_out = units[layer + 1]
        W = _matrix(params, w_off[layer], fan_in, fan_out)
        b = params[b_off[layer] : b_off[layer] + fan_out]
        z = _matrix(acts, a_off[layer + 1], m, fan_out)
        if layer == 0:
            if sparse:
                sparse_rows_dot(data, indices, indptr, rows, start, m, W, z)
            else:
                gemm(False, False, 1.0, _matrix(xb, 0, m, fan_in), W, 0.0, z)
        else:
            gemm(False, False, 1.0, _matrix(acts, a_off[layer], m, fan_in), W, 0.0, z)
        code = icfg[I_OUTPUT] if layer == n_layers - 1 else icfg[I_HIDDEN]
        bias_activation(z, b, code)


@njit(**_SERIAL)
def gather_targets(Y, sw, has_sw, rows, start, m, yb, swb):
    """Copy the batch's target rows (and sample weights) into reused buffers."""
    k = Y.shape[1]
    for i in range(m):
        r = rows[start + i]
        for j in range(k):
            yb[i, j] = Y[r, j]
        if has_sw:
            swb[i] = sw[r]


@njit(**_SERIAL)
def batch_gradient(
    X, strides, data, indices, indptr, Y, sw, rows, start, m, params, grads, icfg, fcfg,
    units, w_off, b_off, a_off, xb, yb, swb, acts, deltas, row_loss, accumulate,
):
    """Forward, output delta and backward for one batch.

    Writes (``accumulate`` False) or adds (True) the raw gradient sums
    ``x.T @ delta`` and ``sum(delta)`` into ``grads``; returns the weighted loss
    sum and the sum of the weights (the batch size without sample weights).
    """
    n_layers = units.shape[0] - 1
    sparse = icfg[I_SPARSE] != 0
    has_sw = icfg[I_HAS_SAMPLE_WEIGHT] != 0
    n_out = units[n_layers]

    forward_batch(X, strides, data, indices, indptr, rows, start, m, params, icfg, units, w_off, b_off, a_off, xb, acts)

    y = _matrix(yb, 0, m, n_out)
    w = swb[:m]
    gather_targets(Y, sw, has_sw, rows, start, m, y, w)
    out = _matrix(acts, a_off[n_layers], m, n_out)
    delta_out = _matrix(deltas, a_off[n_layers], m, n_out)
    loss_sum = output_delta_loss(
        out, y, w, has_sw, icfg[I_LOSS], icfg[I_POISSON_CONSTANT] != 0, fcfg[F_CLIP], delta_out, row_loss
    )
    if has_sw:
        weight_sum = 0.0
        for i in range(m):
            weight_sum += w[i]
    else:
        weight_sum = float(m)

    for layer in range(n_layers - 1, -1, -1):
        fan_in = units[layer]
        fan_out = units[layer + 1]
        delta = _matrix(deltas, a_off[layer + 1], m, fan_out)
        grad_W = _matrix(grads, w_off[layer], fan_in, fan_out)
        if layer == 0 and sparse:
            sparse_rows_weight_grad(data, indices, indptr, rows, start, m, delta, grad_W, accumulate)
        else:
            if layer == 0:
                prev = _matrix(xb, 0, m, fan_in)
            else:
                prev = _matrix(acts, a_off[layer], m, fan_in)
            gemm(True, False, 1.0, prev, delta, 1.0 if accumulate else 0.0, grad_W)
        bias_grad(delta, grads[b_off[layer] : b_off[layer] + fan_out], accumulate)
        if layer > 0:
            W = _matrix(params, w_off[layer], fan_in, fan_out)
            delta_prev = _matrix(deltas, a_off[layer], m, fan_in)
            gemm(False, True, 1.0, delta, W, 0.0, delta_prev)
            multiply_derivative(_matrix(acts, a_off[layer], m, fan_in), delta_prev, icfg[I_HIDDEN])
    return loss_sum, weight_sum


# --------------------------------------------------------------------------
# entry points called from Python
# --------------------------------------------------------------------------
@njit(**_SERIAL)
def train_epoch(
    X, strides, data, indices, indptr, Y, sw, rows, batch_size, first_batch, stop_batch,
    params, grads, state_1, state_2, step_count, icfg, fcfg, n_weights,
    units, w_off, b_off, a_off, xb, yb, swb, acts, deltas, row_loss,
):
    """Mini-batches ``first_batch`` .. ``stop_batch - 1`` of one epoch, compiled.

    Batch ``k`` holds rows ``rows[k*batch_size : (k+1)*batch_size]`` (the last
    one may be short, as scikit-learn's ``gen_batches``). Each batch: forward,
    backward, gradient of the mean loss plus the L2 penalty, optimizer step.
    ``state_1``/``state_2`` are the optimizer's buffers (SGD velocity; Adam
    moments) and ``step_count[0]`` Adam's step counter.

    Returns the sum over batches of ``batch_loss * batch_rows``.
    """
    n = rows.shape[0]
    alpha = fcfg[F_ALPHA]
    learning_rate = fcfg[F_LEARNING_RATE]
    solver = icfg[I_SOLVER]
    total = 0.0
    for batch in range(first_batch, stop_batch):
        start = batch * batch_size
        m = min(batch_size, n - start)
        loss_sum, weight_sum = batch_gradient(
            X, strides, data, indices, indptr, Y, sw, rows, start, m, params, grads, icfg, fcfg,
            units, w_off, b_off, a_off, xb, yb, swb, acts, deltas, row_loss, False,
        )
        if weight_sum == 0.0:
            # every sample of this batch has weight 0: no information, no step
            continue
        squared_norm = finalize_gradient(params, grads, n_weights, alpha, weight_sum)
        batch_loss = loss_sum / weight_sum + (0.5 * alpha) * squared_norm / weight_sum
        total += batch_loss * m
        if solver == SOLVER_SGD:
            sgd_step(params, grads, state_1, learning_rate, fcfg[F_MOMENTUM], icfg[I_NESTEROV] != 0)
        elif solver == SOLVER_ADAM:
            step_count[0] += 1
            t = float(step_count[0])
            beta_1 = fcfg[F_BETA_1]
            beta_2 = fcfg[F_BETA_2]
            step_size = learning_rate * math.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t)
            adam_step(params, grads, state_1, state_2, step_size, beta_1, beta_2, fcfg[F_EPSILON])
    return total


@njit(**_SERIAL)
def loss_and_gradient(
    X, strides, data, indices, indptr, Y, sw, rows, chunk, params, grads, icfg, fcfg, n_weights,
    units, w_off, b_off, a_off, xb, yb, swb, acts, deltas, row_loss,
):
    """Mean loss (plus L2 term) and its gradient over all ``rows``, in chunks.

    With ``chunk >= len(rows)`` the workspaces keep every layer's activations
    and deltas of all rows (the functional API reads them).
    """
    n = rows.shape[0]
    loss_sum = 0.0
    weight_sum = 0.0
    first = True
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        part_loss, part_weight = batch_gradient(
            X, strides, data, indices, indptr, Y, sw, rows, start, m, params, grads, icfg, fcfg,
            units, w_off, b_off, a_off, xb, yb, swb, acts, deltas, row_loss, not first,
        )
        loss_sum += part_loss
        weight_sum += part_weight
        first = False
    alpha = fcfg[F_ALPHA]
    squared_norm = finalize_gradient(params, grads, n_weights, alpha, weight_sum)
    return loss_sum / weight_sum + (0.5 * alpha) * squared_norm / weight_sum


@njit(**_SERIAL)
def predict(X, strides, data, indices, indptr, rows, chunk, params, icfg, units, w_off, b_off, a_off, xb, acts, out):
    """Output activations of all ``rows`` into ``out``, ``chunk`` rows at a time."""
    n = rows.shape[0]
    n_layers = units.shape[0] - 1
    n_out = units[n_layers]
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        forward_batch(X, strides, data, indices, indptr, rows, start, m, params, icfg, units, w_off, b_off, a_off, xb, acts)
        last = _matrix(acts, a_off[n_layers], m, n_out)
        for i in range(m):
            for j in range(n_out):
                out[start + i, j] = last[i, j]
