"""Compiled layers: the input layer's gather, the forward pass over one batch, the output loss,
the delta recursion and the gradient products and penalties."""

import numpy as np
from numba import njit, prange

from .blas import gemm, prefetch
from .cache import load_without_compiler_setup
from .codes import (
    F_CLIP,
    F_HUBER_DELTA,
    I_GEMM_SPLIT,
    I_HAS_SAMPLE_WEIGHT,
    I_LOSS,
    I_POISSON_CONSTANT,
    I_SEED,
    I_SPARSE,
    LAYER_ACTIVATION,
    LAYER_DROPOUT,
    LAYER_PIECES,
    LAYER_SLOPE,
)
from .config import COLUMN_BLOCK, GATHER_AHEAD
from .jit import INLINED, PARALLEL, SERIAL
from .views import flat_matrix, scalar_like
from .activations import apply_dropout, backprop_activation, bias_activation
from .losses import output_delta_loss


# --------------------------------------------------------------------------
# input layer
# --------------------------------------------------------------------------
@njit(**INLINED)
def gather_row(base, row_stride, col_stride, row, out):
    """Row ``row`` of a dense X into the vector ``out``.

    X is read through ``base`` (a 1-D view of its memory) and its strides in
    elements (never negative), so C-, Fortran-ordered and strided X share one
    compiled kernel. The offsets are unsigned: a signed index gets a
    negative-index test per element, which kept the copy scalar (workload M's
    gather took 4x as long, 12% of its epoch). Inlined, also into the one-row
    step, where a call cost 4% of the step.
    """
    r0 = np.uint64(row * row_stride)
    if col_stride == 1:
        for j in range(out.shape[0]):
            out[j] = base[r0 + np.uint64(j)]
    else:
        step = np.uint64(col_stride)
        for j in range(out.shape[0]):
            out[j] = base[r0 + np.uint64(j) * step]


@njit(**INLINED)
def prefetch_row(base, row_stride, col_stride, row, n_cols):
    """Start loading row ``row`` of a dense X into the cache (when its elements
    are contiguous), for a later :func:`gather_row`: a random row of an X
    larger than the cache otherwise stalls the copy."""
    if col_stride == 1 and n_cols > 0:
        r0 = np.uint64(row * row_stride)
        line = np.uint64(max(1, 64 // base.itemsize))
        off = np.uint64(0)
        while off < np.uint64(n_cols):
            prefetch(base, r0 + off)
            off += line
        prefetch(base, r0 + np.uint64(n_cols - 1))


@njit(**PARALLEL)
def gather_rows(base, row_stride, col_stride, rows, start, m, out):
    """Copy rows ``rows[start:start+m]`` of a dense X into ``out`` (m, d), a
    :func:`gather_row` each."""
    n_cols = out.shape[1]
    for i in prange(m):
        if i + GATHER_AHEAD < m:
            prefetch_row(base, row_stride, col_stride, rows[start + i + GATHER_AHEAD], n_cols)
        gather_row(base, row_stride, col_stride, rows[start + i], out[i])


@njit(**PARALLEL)
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


@njit(**PARALLEL)
def sparse_rows_weight_grad(data, indices, indptr, rows, start, m, delta, grad, accumulate):
    """``grad (+)= X[rows[start:start+m]].T @ delta`` for X given as CSR arrays.

    Parallel over blocks of output columns, serial over rows: a fixed order.
    """
    n_out = grad.shape[1]
    if not accumulate:
        for j in range(grad.shape[0]):
            for c in range(n_out):
                grad[j, c] = 0.0
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
# gradient pieces
# --------------------------------------------------------------------------

# Lanes of the fixed-order sums below: the values are read as rows of LANES,
# lane l accumulates every LANES-th value (a vectorized loop without any
# reassociation), then the lanes are added in order, then the tail.
_SUM_LANES = 64


@njit(**PARALLEL)
def sum_squares(values, lo, hi):
    """``sum(values[lo:hi] ** 2)`` in float64, in a fixed order (see _SUM_LANES)."""
    n_rows = (hi - lo) // _SUM_LANES
    rows = flat_matrix(values, lo, n_rows, _SUM_LANES)
    lanes = np.zeros(_SUM_LANES)
    for b in range(n_rows):
        for lane in range(_SUM_LANES):
            v = float(rows[b, lane])
            lanes[lane] += v * v
    total = 0.0
    for lane in range(_SUM_LANES):
        total += lanes[lane]
    for i in range(lo + n_rows * _SUM_LANES, hi):
        v = float(values[i])
        total += v * v
    return total


@njit(**PARALLEL)
def sum_abs(values, lo, hi):
    """``sum(abs(values[lo:hi]))`` in float64, in the fixed order of :func:`sum_squares`."""
    n_rows = (hi - lo) // _SUM_LANES
    rows = flat_matrix(values, lo, n_rows, _SUM_LANES)
    lanes = np.zeros(_SUM_LANES)
    for b in range(n_rows):
        for lane in range(_SUM_LANES):
            lanes[lane] += abs(float(rows[b, lane]))
    total = 0.0
    for lane in range(_SUM_LANES):
        total += lanes[lane]
    for i in range(lo + n_rows * _SUM_LANES, hi):
        total += abs(float(values[i]))
    return total


@njit(**PARALLEL)
def bias_grad(delta, grad, accumulate):
    """``grad (+)= delta.sum(axis=0)``, rows added in order (a fixed order)."""
    m, k = delta.shape
    if not accumulate:
        for c in range(k):
            grad[c] = 0.0
    for i in range(m):
        for c in range(k):
            grad[c] += delta[i, c]


@njit(**PARALLEL)
def finalize_gradient(params, grads, n_weights, alpha, l1, scale_sum):
    """Turn raw sums into the gradient of the mean loss; return the penalty.

    ``grad_W = (x.T @ delta + alpha * W + l1 * sign(W)) / S`` and
    ``grad_b = sum(delta) / S``. The penalty ``alpha/2 ||W||^2 + l1 ||W||_1``
    (divided by S by the caller) is read in the same pass; its sums run in an
    order fixed by the compiled code, whatever the number of threads.
    """
    n_params = params.shape[0]
    a = scalar_like(params, alpha)
    s = scalar_like(params, scale_sum)
    for i in range(n_weights):
        grads[i] = (grads[i] + a * params[i]) / s
    penalty = 0.0
    if alpha != 0.0:
        penalty += (0.5 * alpha) * sum_squares(params, 0, n_weights)
    if l1 != 0.0:
        penalty += l1 * l1_gradient(params, grads, n_weights, l1, scale_sum)
    for i in range(n_weights, n_params):
        grads[i] = grads[i] / s
    return penalty

@njit(**PARALLEL)
def l1_gradient(params, grads, n_weights, l1, weight_sum):
    """Add ``l1 * sign(W) / weight_sum`` to the weights' gradient; return ``sum |W|``."""
    r = scalar_like(params, l1 / weight_sum)
    for i in range(n_weights):
        w = params[i]
        if w > 0.0:
            grads[i] += r
        elif w < 0.0:
            grads[i] -= r
    return sum_abs(params, 0, n_weights)

# --------------------------------------------------------------------------
# the network: forward and backward over one batch
# --------------------------------------------------------------------------
@njit(**SERIAL)
def forward_batch(
    X, strides, data, indices, indptr, rows, start, m, params, icfg, layer_int, layer_float,
    units, w_off, b_off, a_off, z_off, xb, pre, acts, training, batch,
):
    """Forward pass of rows ``rows[start:start+m]``; fills ``pre`` and ``acts``.

    With ``training`` the hidden layers' dropout is applied (masks of batch
    number ``batch``).
    """
    n_layers = units.shape[0] - 1
    sparse = icfg[I_SPARSE] != 0
    if not sparse:
        gather_rows(X, strides[0], strides[1], rows, start, m, flat_matrix(xb, 0, m, units[0]))
    for layer in range(n_layers):
        fan_in = units[layer]
        pieces = layer_int[layer, LAYER_PIECES]
        n_cols = units[layer + 1] * pieces
        W = flat_matrix(params, w_off[layer], fan_in, n_cols)
        b = params[b_off[layer] : b_off[layer] + n_cols]
        z = flat_matrix(pre, z_off[layer + 1], m, n_cols)
        if layer == 0:
            if sparse:
                sparse_rows_dot(data, indices, indptr, rows, start, m, W, z)
            else:
                gemm(False, False, 1.0, flat_matrix(xb, 0, m, fan_in), W, 0.0, z, icfg[I_GEMM_SPLIT])
        else:
            gemm(False, False, 1.0, flat_matrix(acts, a_off[layer], m, fan_in), W, 0.0, z, icfg[I_GEMM_SPLIT])
        a = flat_matrix(acts, a_off[layer + 1], m, units[layer + 1])
        bias_activation(z, b, a, layer_int[layer, LAYER_ACTIVATION], layer_float[layer, LAYER_SLOPE], pieces)
        rate = layer_float[layer, LAYER_DROPOUT]
        if training and rate > 0.0 and layer < n_layers - 1:
            apply_dropout(a, rate, icfg[I_SEED], batch, start, layer)


@njit(**INLINED)
def gather_targets(Y, sw, has_sw, rows, start, m, yb, swb):
    """Copy the batch's target rows (and sample weights) into reused buffers
    (unsigned row numbers, as in :func:`gather_rows`)."""
    k = Y.shape[1]
    for i in range(m):
        r = np.uint64(rows[start + i])
        for j in range(k):
            yb[i, j] = Y[r, j]
        if has_sw:
            swb[i] = sw[r]


@njit(**INLINED)
def batch_output_loss(Y, sw, rows, start, m, icfg, fcfg, layer_int, units, a_off, z_off, yb, swb, acts, deltas, row_loss):
    """Output delta and weighted loss sum of a forwarded batch; (loss sum, weight sum)."""
    n_layers = units.shape[0] - 1
    has_sw = icfg[I_HAS_SAMPLE_WEIGHT] != 0
    n_out = units[n_layers]
    y = flat_matrix(yb, 0, m, n_out)
    w = swb[:m]
    gather_targets(Y, sw, has_sw, rows, start, m, y, w)
    loss_sum = output_delta_loss(
        flat_matrix(acts, a_off[n_layers], m, n_out), y, w, has_sw,
        layer_int[n_layers - 1, LAYER_ACTIVATION], icfg[I_LOSS], icfg[I_POISSON_CONSTANT] != 0,
        fcfg[F_CLIP], fcfg[F_HUBER_DELTA], flat_matrix(deltas, z_off[n_layers], m, n_out), row_loss,
    )
    if has_sw:
        weight_sum = 0.0
        for i in range(m):
            weight_sum += w[i]
    else:
        weight_sum = float(m)
    return loss_sum, weight_sum


@njit(**SERIAL)
def batch_gradient(
    X, strides, data, indices, indptr, Y, sw, rows, start, m, params, grads, icfg, fcfg, layer_int, layer_float,
    units, w_off, b_off, a_off, z_off, xb, yb, swb, pre, acts, deltas, dact, row_loss, accumulate, training, batch,
):
    """Forward, output delta and backward for one batch.

    Writes (``accumulate`` False) or adds (True) the raw gradient sums
    ``x.T @ delta`` and ``sum(delta)`` into ``grads``; returns the weighted loss
    sum and the sum of the weights (the batch size without sample weights).
    """
    n_layers = units.shape[0] - 1
    sparse = icfg[I_SPARSE] != 0
    forward_batch(
        X, strides, data, indices, indptr, rows, start, m, params, icfg, layer_int, layer_float,
        units, w_off, b_off, a_off, z_off, xb, pre, acts, training, batch,
    )
    loss_sum, weight_sum = batch_output_loss(
        Y, sw, rows, start, m, icfg, fcfg, layer_int, units, a_off, z_off, yb, swb, acts, deltas, row_loss
    )
    for layer in range(n_layers - 1, -1, -1):
        fan_in = units[layer]
        n_cols = units[layer + 1] * layer_int[layer, LAYER_PIECES]
        delta = flat_matrix(deltas, z_off[layer + 1], m, n_cols)
        grad_W = flat_matrix(grads, w_off[layer], fan_in, n_cols)
        if layer == 0 and sparse:
            sparse_rows_weight_grad(data, indices, indptr, rows, start, m, delta, grad_W, accumulate)
        else:
            if layer == 0:
                prev = flat_matrix(xb, 0, m, fan_in)
            else:
                prev = flat_matrix(acts, a_off[layer], m, fan_in)
            gemm(True, False, 1.0, prev, delta, 1.0 if accumulate else 0.0, grad_W, icfg[I_GEMM_SPLIT])
        bias_grad(delta, grads[b_off[layer] : b_off[layer] + n_cols], accumulate)
        if layer > 0:
            # delta of the layer below: (delta W.T) * phi'(z), through its dropout mask
            below = layer - 1
            pieces = layer_int[below, LAYER_PIECES]
            W = flat_matrix(params, w_off[layer], fan_in, n_cols)
            delta_z = flat_matrix(deltas, z_off[layer], m, fan_in * pieces)
            # dL/d(output) of the layer below goes to its own buffer: computing
            # delta_z in place over it measured 10x slower (aliased loads/stores),
            # and maxout scatters it onto the winning pieces.
            delta_a = flat_matrix(dact, 0, m, fan_in)
            gemm(False, True, 1.0, delta, W, 0.0, delta_a, icfg[I_GEMM_SPLIT])
            rate = layer_float[below, LAYER_DROPOUT] if training else 0.0
            backprop_activation(
                delta_a, flat_matrix(pre, z_off[layer], m, fan_in * pieces), flat_matrix(acts, a_off[layer], m, fan_in),
                delta_z, layer_int[below, LAYER_ACTIVATION], layer_float[below, LAYER_SLOPE], pieces,
                rate, icfg[I_SEED], batch, start, below,
            )
    return loss_sum, weight_sum


load_without_compiler_setup(globals())
