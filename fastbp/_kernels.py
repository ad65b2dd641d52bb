"""Compiled CPU kernels of backpropagation.

Conventions
-----------
* Parameters live in ONE flat vector: every weight matrix W(l) (row-major,
  shape (fan_in, n_cols(l))) one after the other, then every bias vector b(l).
  ``w_off[l]`` / ``b_off[l]`` give their offsets and ``n_weights`` the number of
  weights (the part the L2 / L1 penalties apply to).
* ``units[l]`` is the width of layer l's output (``units[0]`` = n_features,
  ``units[-1]`` = n_outputs). A maxout layer has ``pieces`` linear pieces per unit:
  its W has ``units * pieces`` columns, unit u's pieces are columns
  ``u*pieces ... u*pieces + pieces - 1``; ``cols[l] = units[l+1] * pieces[l]``.
* Per-batch workspaces are flat buffers viewed as matrices for a batch of m
  rows: ``acts`` (layer outputs, width units, at ``a_off``), ``pre`` (the
  pre-activations z = x W + b, width cols, at ``z_off``) and ``deltas``
  (dL/dz, width cols, at ``z_off``).
* The input rows of a batch are ``rows[start:start + m]``; dense X is gathered
  through them into a reused C-contiguous buffer ``xb``, sparse X (CSR arrays)
  is read in place.
* Activations, losses and solvers are integer codes (see ``_codes``); per-layer
  settings come in the tables ``layer_int`` / ``layer_float``, the rest in an
  int vector ``icfg`` and a float vector ``fcfg``.
* Every reduction runs in a fixed order (per row, per column block, per fixed
  chunk, summed serially), so results do not depend on the number of threads.
* Dropout masks come from a counter-based hash of (seed, batch, row, layer,
  unit): reproducible, and recomputed in the backward pass instead of stored.
* Nothing here is compiled at import: Numba compiles on first call and caches
  on disk (``cache=True``).
"""

import math

import numpy as np
from numba import njit, prange

from ._blas import borrowed, gemm, matrix_view, prefetch, row_dot, vector_view
from ._cache_loading import load_without_compiler_setup
from ._codes import (
    ACT_ELU,
    ACT_EXP,
    ACT_GELU,
    ACT_IDENTITY,
    ACT_LEAKY_RELU,
    ACT_LOGISTIC,
    ACT_MAXOUT,
    ACT_RELU,
    ACT_SOFTMAX,
    ACT_SOFTPLUS,
    ACT_SWISH,
    ACT_TANH,
    C_ADAM_STEP,
    C_BATCH,
    F_ALPHA,
    F_BETA_1,
    F_BETA_2,
    F_CLIP,
    F_EPSILON,
    F_HUBER_DELTA,
    F_L1,
    F_LEARNING_RATE,
    F_MOMENTUM,
    F_RHO,
    F_WEIGHT_DECAY,
    I_DROPOUT,
    I_GEMM_SPLIT,
    I_HAS_SAMPLE_WEIGHT,
    I_LOSS,
    I_NESTEROV,
    I_NO_THREADS,
    I_POISSON_CONSTANT,
    I_SEED,
    I_SOLVER,
    I_SPARSE,
    LAYER_ACTIVATION,
    LAYER_DROPOUT,
    LAYER_PIECES,
    LAYER_SLOPE,
    LOSS_ABSOLUTE_ERROR,
    LOSS_BINARY_LOG_LOSS,
    LOSS_HUBER,
    LOSS_LOG_LOSS,
    LOSS_POISSON,
    LOSS_SQUARED_ERROR,
    SOLVER_ADAGRAD,
    SOLVER_ADAM,
    SOLVER_ADAMW,
    SOLVER_RMSPROP,
    SOLVER_SGD,
)
from ._specialize import SpecializingCompiler
from ._config import (
    COLUMN_BLOCK, FASTMATH, FUSED_MIN_COLS, GATHER_AHEAD, PARALLEL_ELEMENTWISE, PARALLEL_STEP_MIN_PARAMS, PARAM_SLICE,
)

# error_model="numpy": a division by zero gives inf/NaN as in NumPy instead of
# raising, which also lets LLVM vectorize loops that divide (about 10x faster
# optimizer steps).
# pipeline_class: branches on arguments that are literal constants at the call
# site (gemm's transpose flags, batch_gradient's accumulate and training flags
# from gradient_sums, ...) are pruned before typing (see _specialize).
_PARALLEL = dict(
    cache=True, parallel=PARALLEL_ELEMENTWISE, fastmath=FASTMATH, error_model="numpy",
    pipeline_class=SpecializingCompiler,
)
# Losses keep IEEE semantics (no reassociation).
_EXACT_PARALLEL = dict(
    cache=True, parallel=PARALLEL_ELEMENTWISE, error_model="numpy", pipeline_class=SpecializingCompiler
)
_SERIAL = dict(cache=True, error_model="numpy", pipeline_class=SpecializingCompiler)
# Small per-step helpers are inlined at Numba's level: a call to a compiled
# function increments and decrements the reference count of every array
# argument (atomic operations), which took about a tenth of a one-sample step.
_INLINED = dict(_SERIAL, inline="always")

_INV_SQRT_2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


# --------------------------------------------------------------------------
# views into flat buffers
# --------------------------------------------------------------------------
@njit(**_INLINED)
def _matrix(buf, offset, n_rows, n_cols):
    """The (n_rows, n_cols) C-ordered matrix stored at ``buf[offset:]``."""
    return matrix_view(buf, offset, n_rows, n_cols)


@njit(**_INLINED)
def _vector(buf, lo, hi):
    """``buf[lo:hi]`` as a view that takes no reference (see ``matrix_view``):
    for the hot paths, where a slice's atomic reference counting shows."""
    return vector_view(buf, lo, hi - lo)


# --------------------------------------------------------------------------
# dropout masks: a counter-based generator
# --------------------------------------------------------------------------
@njit(**_SERIAL)
def _mix64(x):
    """SplitMix64's finalizer: a bijective 64-bit hash."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(**_SERIAL)
def dropout_uniform(seed, batch, row, layer, unit):
    """A uniform number in [0, 1) determined by its counters alone."""
    h = _mix64(np.uint64(seed) + np.uint64(0x9E3779B97F4A7C15) * np.uint64(batch + 1))
    h = _mix64(h ^ np.uint64(row))
    h = _mix64(h ^ (np.uint64(layer) << np.uint64(40)) ^ np.uint64(unit))
    return float(h >> np.uint64(11)) * (1.0 / 9007199254740992.0)


# --------------------------------------------------------------------------
# input layer
# --------------------------------------------------------------------------
@njit(**_INLINED)
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


@njit(**_INLINED)
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


@njit(**_PARALLEL)
def gather_rows(base, row_stride, col_stride, rows, start, m, out):
    """Copy rows ``rows[start:start+m]`` of a dense X into ``out`` (m, d), a
    :func:`gather_row` each."""
    n_cols = out.shape[1]
    for i in prange(m):
        if i + GATHER_AHEAD < m:
            prefetch_row(base, row_stride, col_stride, rows[start + i + GATHER_AHEAD], n_cols)
        gather_row(base, row_stride, col_stride, rows[start + i], out[i])


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
# activations
# --------------------------------------------------------------------------
@njit(**_SERIAL)
def _logistic(v):
    return 1.0 / (1.0 + math.exp(-v))


@njit(**_SERIAL)
def _softplus(v):
    if v > 0.0:
        return v + math.log1p(math.exp(-v))
    return math.log1p(math.exp(v))


@njit(**_PARALLEL)
def bias_activation(z, b, out, code, slope, pieces):
    """``z += b`` in place, then ``out = phi(z)`` for the activation ``code``.

    ``z`` keeps the pre-activations (the backward pass of swish, GELU, ELU,
    leaky ReLU and maxout reads them). For maxout, ``z`` has ``pieces`` columns
    per output unit and ``out`` the max of each unit's pieces.
    """
    m, k = z.shape
    for i in prange(m):
        for j in range(k):
            z[i, j] += b[j]
    if code == ACT_MAXOUT:
        n_units = out.shape[1]
        for i in prange(m):
            for u in range(n_units):
                best = z[i, u * pieces]
                for p in range(1, pieces):
                    v = z[i, u * pieces + p]
                    if v > best:
                        best = v
                out[i, u] = best
    elif code == ACT_SOFTMAX:
        for i in prange(m):
            row_max = z[i, 0]
            for j in range(k):
                if z[i, j] > row_max:
                    row_max = z[i, j]
            total = 0.0
            for j in range(k):
                e = math.exp(z[i, j] - row_max)
                out[i, j] = e
                total += e
            for j in range(k):
                out[i, j] /= total
    elif code == ACT_LOGISTIC:
        for i in prange(m):
            for j in range(k):
                out[i, j] = _logistic(z[i, j])
    elif code == ACT_TANH:
        for i in prange(m):
            for j in range(k):
                out[i, j] = math.tanh(z[i, j])
    elif code == ACT_RELU:
        for i in prange(m):
            for j in range(k):
                v = z[i, j]
                # NaN passes through (v < 0 is False), as np.maximum does.
                out[i, j] = 0.0 if v < 0.0 else v
    elif code == ACT_LEAKY_RELU:
        for i in prange(m):
            for j in range(k):
                v = z[i, j]
                out[i, j] = v if v > 0.0 else slope * v
    elif code == ACT_SWISH:
        for i in prange(m):
            for j in range(k):
                v = z[i, j]
                out[i, j] = v * _logistic(v)
    elif code == ACT_SOFTPLUS:
        for i in prange(m):
            for j in range(k):
                out[i, j] = _softplus(z[i, j])
    elif code == ACT_ELU:
        for i in prange(m):
            for j in range(k):
                v = z[i, j]
                out[i, j] = v if v > 0.0 else math.expm1(v)
    elif code == ACT_GELU:
        for i in prange(m):
            for j in range(k):
                v = z[i, j]
                out[i, j] = 0.5 * v * (1.0 + math.erf(v * _INV_SQRT_2))
    elif code == ACT_EXP:
        for i in prange(m):
            for j in range(k):
                out[i, j] = math.exp(z[i, j])
    elif code == ACT_IDENTITY:
        for i in prange(m):
            for j in range(k):
                out[i, j] = z[i, j]
    else:  # a code no branch knows (the engine refuses it first): NaN, never a real activation
        for i in prange(m):
            for j in range(out.shape[1]):
                out[i, j] = math.nan


@njit(**_PARALLEL)
def apply_dropout(a, rate, seed, batch, start, layer):
    """Inverted dropout in place: drop with probability ``rate``, scale the rest."""
    m, k = a.shape
    scale = 1.0 / (1.0 - rate)
    for i in prange(m):
        for j in range(k):
            if dropout_uniform(seed, batch, start + i, layer, j) < rate:
                a[i, j] = 0.0
            else:
                a[i, j] *= scale


@njit(**_PARALLEL)
def backprop_activation(delta_a, z, a, delta_z, code, slope, pieces, rate, seed, batch, start, layer):
    """``delta_z = (delta_a * dropout mask) * phi'(z)``.

    ``delta_a`` is dL/d(output) of the layer; ``a`` its (dropout-scaled) output;
    logistic and tanh derivatives are read from the output, the others from the
    pre-activation ``z``. For maxout the gradient goes to each unit's winning
    piece (the first maximal one). ``delta_a`` is scaled in place by the
    dropout mask; ``delta_z`` must be another array.
    """
    m, n_units = delta_a.shape
    if rate > 0.0:
        scale = 1.0 / (1.0 - rate)
        for i in prange(m):
            for j in range(n_units):
                if dropout_uniform(seed, batch, start + i, layer, j) < rate:
                    delta_a[i, j] = 0.0
                else:
                    delta_a[i, j] *= scale
        keep = 1.0 - rate  # phi(z) = a * keep for the units that were kept
    else:
        keep = 1.0
    if code == ACT_MAXOUT:
        for i in prange(m):
            for u in range(n_units):
                c0 = u * pieces
                best = c0
                for p in range(1, pieces):
                    if z[i, c0 + p] > z[i, best]:
                        best = c0 + p
                for p in range(pieces):
                    delta_z[i, c0 + p] = 0.0
                delta_z[i, best] = delta_a[i, u]
    elif code == ACT_LOGISTIC:
        for i in prange(m):
            for j in range(n_units):
                s = a[i, j] * keep
                delta_z[i, j] = delta_a[i, j] * s * (1.0 - s)
    elif code == ACT_TANH:
        for i in prange(m):
            for j in range(n_units):
                t = a[i, j] * keep
                delta_z[i, j] = delta_a[i, j] * (1.0 - t * t)
    elif code == ACT_RELU:
        for i in prange(m):
            for j in range(n_units):
                delta_z[i, j] = delta_a[i, j] if z[i, j] > 0.0 else 0.0
    elif code == ACT_LEAKY_RELU:
        for i in prange(m):
            for j in range(n_units):
                delta_z[i, j] = delta_a[i, j] if z[i, j] > 0.0 else delta_a[i, j] * slope
    elif code == ACT_SWISH:
        for i in prange(m):
            for j in range(n_units):
                v = z[i, j]
                s = _logistic(v)
                delta_z[i, j] = delta_a[i, j] * (s + v * s * (1.0 - s))
    elif code == ACT_SOFTPLUS:
        for i in prange(m):
            for j in range(n_units):
                delta_z[i, j] = delta_a[i, j] * _logistic(z[i, j])
    elif code == ACT_ELU:
        for i in prange(m):
            for j in range(n_units):
                v = z[i, j]
                delta_z[i, j] = delta_a[i, j] if v > 0.0 else delta_a[i, j] * math.exp(v)
    elif code == ACT_GELU:
        for i in prange(m):
            for j in range(n_units):
                v = z[i, j]
                cdf = 0.5 * (1.0 + math.erf(v * _INV_SQRT_2))
                pdf = _INV_SQRT_2PI * math.exp(-0.5 * v * v)
                delta_z[i, j] = delta_a[i, j] * (cdf + v * pdf)
    elif code == ACT_IDENTITY:
        for i in prange(m):
            for j in range(n_units):
                delta_z[i, j] = delta_a[i, j]
    else:  # an unknown code (refused by the engine first): NaN, never a real derivative
        for i in prange(m):
            for j in range(delta_z.shape[1]):
                delta_z[i, j] = math.nan


# --------------------------------------------------------------------------
# output delta and loss
# --------------------------------------------------------------------------
@njit(**_EXACT_PARALLEL)
def output_delta_loss(out, y, sw, has_sw, out_code, loss_code, poisson_constant, clip, huber_delta, delta, row_loss):
    """Output delta ``dL/dz`` times the sample weight, and ``sum_i w_i l_i``.

    Matched pairs give ``y_pred - y`` (absolute error: its sign; Huber: its
    clipped form); squared error on softmax or logistic outputs goes through the
    output activation's Jacobian. Per-row losses go to ``row_loss`` and are
    summed serially (a fixed order).
    """
    m, k = out.shape
    chain = loss_code == LOSS_SQUARED_ERROR and (out_code == ACT_SOFTMAX or out_code == ACT_LOGISTIC)
    for i in prange(m):
        w = sw[i] if has_sw else 1.0
        acc = 0.0
        for j in range(k):
            p = out[i, j]
            t = y[i, j]
            g = p - t
            if loss_code == LOSS_SQUARED_ERROR:
                acc += 0.5 * (g * g)
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
            elif loss_code == LOSS_POISSON:
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
            elif loss_code == LOSS_ABSOLUTE_ERROR:
                acc += abs(g)
                g = 1.0 if g > 0.0 else (-1.0 if g < 0.0 else 0.0)
            elif loss_code == LOSS_HUBER:
                if abs(g) <= huber_delta:
                    acc += 0.5 * (g * g)
                else:
                    acc += huber_delta * (abs(g) - 0.5 * huber_delta)
                    g = huber_delta if g > 0.0 else -huber_delta
            else:  # an unknown code (refused by the engine first): NaN, never a real loss
                acc = math.nan
                g = math.nan
            delta[i, j] = g
        if chain:
            if out_code == ACT_LOGISTIC:
                for j in range(k):
                    p = out[i, j]
                    delta[i, j] = delta[i, j] * p * (1.0 - p)
            else:  # softmax (chain holds for these two only): J^T g = p * (g - <g, p>)
                dot = 0.0
                for j in range(k):
                    dot += delta[i, j] * out[i, j]
                for j in range(k):
                    delta[i, j] = out[i, j] * (delta[i, j] - dot)
        if has_sw:
            for j in range(k):
                delta[i, j] *= w
        row_loss[i] = acc * w
    total = 0.0
    for i in range(m):
        total += row_loss[i]
    return total


# --------------------------------------------------------------------------
# gradient pieces
# --------------------------------------------------------------------------
@njit(**_SERIAL)
def _like(arr, value):
    """``value`` as a scalar of ``arr``'s dtype, so float32 kernels stay in float32."""
    return arr.dtype.type(value)


# Lanes of the fixed-order sums below: the values are read as rows of LANES,
# lane l accumulates every LANES-th value (a vectorized loop without any
# reassociation), then the lanes are added in order, then the tail.
_SUM_LANES = 64


@njit(**_PARALLEL)
def sum_squares(values, lo, hi):
    """``sum(values[lo:hi] ** 2)`` in float64, in a fixed order (see _SUM_LANES)."""
    n_rows = (hi - lo) // _SUM_LANES
    rows = _matrix(values, lo, n_rows, _SUM_LANES)
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


@njit(**_PARALLEL)
def sum_abs(values, lo, hi):
    """``sum(abs(values[lo:hi]))`` in float64, in the fixed order of :func:`sum_squares`."""
    n_rows = (hi - lo) // _SUM_LANES
    rows = _matrix(values, lo, n_rows, _SUM_LANES)
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


@njit(**_PARALLEL)
def bias_grad(delta, grad, accumulate):
    """``grad (+)= delta.sum(axis=0)``, rows added in order (a fixed order)."""
    m, k = delta.shape
    if not accumulate:
        for c in range(k):
            grad[c] = 0.0
    for i in range(m):
        for c in range(k):
            grad[c] += delta[i, c]


@njit(**_PARALLEL)
def finalize_gradient(params, grads, n_weights, alpha, l1, scale_sum):
    """Turn raw sums into the gradient of the mean loss; return the penalty.

    ``grad_W = (x.T @ delta + alpha * W + l1 * sign(W)) / S`` and
    ``grad_b = sum(delta) / S``. The penalty ``alpha/2 ||W||^2 + l1 ||W||_1``
    (divided by S by the caller) is read in the same pass; its sums run in an
    order fixed by the compiled code, whatever the number of threads.
    """
    n_params = params.shape[0]
    a = _like(params, alpha)
    s = _like(params, scale_sum)
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


# --------------------------------------------------------------------------
# optimizer steps over the flat parameter vector
# --------------------------------------------------------------------------
@njit(**_PARALLEL)
def sgd_step(params, grads, velocity, learning_rate, momentum, nesterov):
    """scikit-learn's SGD with (Nesterov) momentum, in one pass."""
    lr = _like(params, learning_rate)
    mu = _like(params, momentum)
    if nesterov:
        for i in range(params.shape[0]):
            g = grads[i]
            v = mu * velocity[i] - lr * g
            velocity[i] = v
            params[i] += mu * v - lr * g
    else:
        for i in range(params.shape[0]):
            v = mu * velocity[i] - lr * grads[i]
            velocity[i] = v
            params[i] += v


@njit(**_INLINED)
def adam_constants(params, step_size, beta_1, beta_2, epsilon):
    """Adam's constants in the parameters' dtype: (b1, c1, b2, c2, -step_size, eps),
    ``c = 1 - b``. Every Adam loop below rounds with these."""
    return (
        _like(params, beta_1), _like(params, 1.0 - beta_1), _like(params, beta_2), _like(params, 1.0 - beta_2),
        _like(params, -step_size), _like(params, epsilon),
    )


@njit(**_PARALLEL)
def adam_step(params, grads, first_moment, second_moment, step_size, beta_1, beta_2, epsilon):
    """One Adam step (Kingma & Ba) with the bias-corrected ``step_size``."""
    b1, c1, b2, c2, lr, eps = adam_constants(params, step_size, beta_1, beta_2, epsilon)
    for i in range(params.shape[0]):
        g = grads[i]
        mt = b1 * first_moment[i] + c1 * g
        vt = b2 * second_moment[i] + c2 * (g * g)
        first_moment[i] = mt
        second_moment[i] = vt
        params[i] += (lr * mt) / (np.sqrt(vt) + eps)


@njit(**_PARALLEL)
def rmsprop_step(params, grads, mean_square, learning_rate, rho, epsilon):
    """RMSProp (Tieleman & Hinton): divide by a running RMS of the gradient."""
    lr = _like(params, learning_rate)
    r = _like(params, rho)
    c = _like(params, 1.0 - rho)
    eps = _like(params, epsilon)
    for i in range(params.shape[0]):
        g = grads[i]
        v = r * mean_square[i] + c * (g * g)
        mean_square[i] = v
        params[i] -= lr * g / (np.sqrt(v) + eps)


@njit(**_PARALLEL)
def adagrad_step(params, grads, sum_square, learning_rate, epsilon):
    """Adagrad (Duchi et al.): divide by the root of the summed squared gradients."""
    lr = _like(params, learning_rate)
    eps = _like(params, epsilon)
    for i in range(params.shape[0]):
        g = grads[i]
        s = sum_square[i] + g * g
        sum_square[i] = s
        params[i] -= lr * g / (np.sqrt(s) + eps)


@njit(**_PARALLEL)
def decay_weights(params, n_weights, factor):
    """AdamW's decoupled weight decay: ``W *= factor`` (weights, not biases)."""
    f = _like(params, factor)
    for i in range(n_weights):
        params[i] *= f


@njit(**_PARALLEL)
def rprop_step(params, grads, previous_grads, step_sizes, eta_minus, eta_plus, step_min, step_max):
    """One iRprop- step (Igel & Huesken) on the full-batch gradient.

    Each parameter's step grows by ``eta_plus`` while its gradient keeps its
    sign and shrinks by ``eta_minus`` when it flips; after a flip the gradient
    is treated as zero (no step, no adaptation on the next iteration).
    """
    for i in prange(params.shape[0]):
        g = grads[i]
        sign_change = g * previous_grads[i]
        if sign_change > 0.0:
            step_sizes[i] = min(step_sizes[i] * eta_plus, step_max)
        elif sign_change < 0.0:
            step_sizes[i] = max(step_sizes[i] * eta_minus, step_min)
            g = 0.0
        if g > 0.0:
            params[i] -= step_sizes[i]
        elif g < 0.0:
            params[i] += step_sizes[i]
        previous_grads[i] = g


@njit(**_PARALLEL)
def quickprop_step(params, grads, previous_grads, previous_steps, learning_rate, max_growth):
    """One Quickprop step (Fahlman 1988) on the full-batch gradient.

    Each weight jumps to the minimum of a parabola through its last two
    gradients, at most ``max_growth`` times its previous step, plus a
    gradient-descent term while the slope keeps the previous step's direction
    (and alone when the previous step was zero).
    """
    shrink = max_growth / (1.0 + max_growth)
    for i in prange(params.shape[0]):
        slope = -grads[i]  # downhill direction
        previous_slope = -previous_grads[i]
        previous_step = previous_steps[i]
        step = 0.0
        if previous_step > 0.0:
            if slope > 0.0:
                step += learning_rate * slope
            if slope > shrink * previous_slope:
                step += max_growth * previous_step
            else:
                step += previous_step * slope / (previous_slope - slope)
        elif previous_step < 0.0:
            if slope < 0.0:
                step += learning_rate * slope
            if slope < shrink * previous_slope:
                step += max_growth * previous_step
            else:
                step += previous_step * slope / (previous_slope - slope)
        else:
            step = learning_rate * slope
        params[i] += step
        previous_steps[i] = step
        previous_grads[i] = grads[i]


# --------------------------------------------------------------------------
# the network: forward and backward over one batch
# --------------------------------------------------------------------------
@njit(**_SERIAL)
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
        gather_rows(X, strides[0], strides[1], rows, start, m, _matrix(xb, 0, m, units[0]))
    for layer in range(n_layers):
        fan_in = units[layer]
        pieces = layer_int[layer, LAYER_PIECES]
        n_cols = units[layer + 1] * pieces
        W = _matrix(params, w_off[layer], fan_in, n_cols)
        b = params[b_off[layer] : b_off[layer] + n_cols]
        z = _matrix(pre, z_off[layer + 1], m, n_cols)
        if layer == 0:
            if sparse:
                sparse_rows_dot(data, indices, indptr, rows, start, m, W, z)
            else:
                gemm(False, False, 1.0, _matrix(xb, 0, m, fan_in), W, 0.0, z, icfg[I_GEMM_SPLIT])
        else:
            gemm(False, False, 1.0, _matrix(acts, a_off[layer], m, fan_in), W, 0.0, z, icfg[I_GEMM_SPLIT])
        a = _matrix(acts, a_off[layer + 1], m, units[layer + 1])
        bias_activation(z, b, a, layer_int[layer, LAYER_ACTIVATION], layer_float[layer, LAYER_SLOPE], pieces)
        rate = layer_float[layer, LAYER_DROPOUT]
        if training and rate > 0.0 and layer < n_layers - 1:
            apply_dropout(a, rate, icfg[I_SEED], batch, start, layer)


@njit(**_INLINED)
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


@njit(**_INLINED)
def batch_output_loss(Y, sw, rows, start, m, icfg, fcfg, layer_int, units, a_off, z_off, yb, swb, acts, deltas, row_loss):
    """Output delta and weighted loss sum of a forwarded batch; (loss sum, weight sum)."""
    n_layers = units.shape[0] - 1
    has_sw = icfg[I_HAS_SAMPLE_WEIGHT] != 0
    n_out = units[n_layers]
    y = _matrix(yb, 0, m, n_out)
    w = swb[:m]
    gather_targets(Y, sw, has_sw, rows, start, m, y, w)
    loss_sum = output_delta_loss(
        _matrix(acts, a_off[n_layers], m, n_out), y, w, has_sw,
        layer_int[n_layers - 1, LAYER_ACTIVATION], icfg[I_LOSS], icfg[I_POISSON_CONSTANT] != 0,
        fcfg[F_CLIP], fcfg[F_HUBER_DELTA], _matrix(deltas, z_off[n_layers], m, n_out), row_loss,
    )
    if has_sw:
        weight_sum = 0.0
        for i in range(m):
            weight_sum += w[i]
    else:
        weight_sum = float(m)
    return loss_sum, weight_sum


@njit(**_SERIAL)
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
        delta = _matrix(deltas, z_off[layer + 1], m, n_cols)
        grad_W = _matrix(grads, w_off[layer], fan_in, n_cols)
        if layer == 0 and sparse:
            sparse_rows_weight_grad(data, indices, indptr, rows, start, m, delta, grad_W, accumulate)
        else:
            if layer == 0:
                prev = _matrix(xb, 0, m, fan_in)
            else:
                prev = _matrix(acts, a_off[layer], m, fan_in)
            gemm(True, False, 1.0, prev, delta, 1.0 if accumulate else 0.0, grad_W, icfg[I_GEMM_SPLIT])
        bias_grad(delta, grads[b_off[layer] : b_off[layer] + n_cols], accumulate)
        if layer > 0:
            # delta of the layer below: (delta W.T) * phi'(z), through its dropout mask
            below = layer - 1
            pieces = layer_int[below, LAYER_PIECES]
            W = _matrix(params, w_off[layer], fan_in, n_cols)
            delta_z = _matrix(deltas, z_off[layer], m, fan_in * pieces)
            # dL/d(output) of the layer below goes to its own buffer: computing
            # delta_z in place over it measured 10x slower (aliased loads/stores),
            # and maxout scatters it onto the winning pieces.
            delta_a = _matrix(dact, 0, m, fan_in)
            gemm(False, True, 1.0, delta, W, 0.0, delta_a, icfg[I_GEMM_SPLIT])
            rate = layer_float[below, LAYER_DROPOUT] if training else 0.0
            backprop_activation(
                delta_a, _matrix(pre, z_off[layer], m, fan_in * pieces), _matrix(acts, a_off[layer], m, fan_in),
                delta_z, layer_int[below, LAYER_ACTIVATION], layer_float[below, LAYER_SLOPE], pieces,
                rate, icfg[I_SEED], batch, start, below,
            )
    return loss_sum, weight_sum


# --------------------------------------------------------------------------
# online SGD: one row per step
# --------------------------------------------------------------------------
@njit(**_PARALLEL)
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


@njit(**_PARALLEL)
def row_weight_gradient(prev, delta, W, G, alpha, weight_sum):
    """One row's finished weight gradient,
    ``G = (outer(prev, delta) + alpha * W) / weight_sum``."""
    fan_in, n_cols = W.shape
    a = _like(G, alpha)
    s = _like(G, weight_sum)
    for i in range(fan_in):
        p = prev[i]
        if weight_sum == 1.0:
            for j in range(n_cols):
                G[i, j] = p * delta[j] + a * W[i, j]
        else:
            for j in range(n_cols):
                G[i, j] = (p * delta[j] + a * W[i, j]) / s


@njit(**_PARALLEL)
def l1_gradient(params, grads, n_weights, l1, weight_sum):
    """Add ``l1 * sign(W) / weight_sum`` to the weights' gradient; return ``sum |W|``."""
    r = _like(params, l1 / weight_sum)
    for i in range(n_weights):
        w = params[i]
        if w > 0.0:
            grads[i] += r
        elif w < 0.0:
            grads[i] -= r
    return sum_abs(params, 0, n_weights)


@njit(**_INLINED)
def fused_adam(icfg, fcfg):
    """Whether Adam's step is taken in the same pass as the gradient's last stage
    (:func:`row_adam_layer`, :func:`adam_two_parts`): Adam without L1."""
    return icfg[I_SOLVER] == SOLVER_ADAM and fcfg[F_L1] == 0.0


@njit(**_INLINED)
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
        W = _matrix(params, w_lo, fan_in, n_cols)
        M = _matrix(state_1, w_lo, fan_in, n_cols)
        V = _matrix(state_2, w_lo, fan_in, n_cols)
        a = _like(params, alpha)
        s = _like(params, weight_sum)
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
        W = _matrix(params, w_lo, fan_in, n_cols)
        row_weight_gradient(prev, delta, W, _matrix(grads, w_lo, fan_in, n_cols), alpha, weight_sum)
        adam_step(
            _vector(params, w_lo, w_lo + n_w), _vector(grads, w_lo, w_lo + n_w),
            _vector(state_1, w_lo, w_lo + n_w), _vector(state_2, w_lo, w_lo + n_w), rate, beta_1, beta_2, epsilon,
        )
    g_b = _vector(grads, b_lo, b_lo + n_cols)
    if weight_sum == 1.0:
        g_b = delta
    else:
        s = _like(params, weight_sum)
        for j in range(n_cols):
            g_b[j] = delta[j] / s
    adam_step(_vector(params, b_lo, b_lo + n_cols), g_b, _vector(state_1, b_lo, b_lo + n_cols),
              _vector(state_2, b_lo, b_lo + n_cols), rate, beta_1, beta_2, epsilon)


@njit(**_INLINED)
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
            x = _vector(xb, 0, fan_in)
        else:
            x = _vector(acts, a_off[layer], a_off[layer] + fan_in)
        W = _matrix(params, w_off[layer], fan_in, n_cols)
        row_times_matrix(x, W, _vector(pre, z_lo, z_lo + n_cols), col_squares)
        for j in range(n_cols):
            squares += col_squares[j]
        a = _matrix(acts, a_off[layer + 1], 1, units[layer + 1])
        bias_activation(
            _matrix(pre, z_lo, 1, n_cols), _vector(params, b_off[layer], b_off[layer] + n_cols), a,
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
    s = _like(grads, weight_sum)
    adam_rate = step_size(counters, icfg, fcfg) if fused else 0.0
    for layer in range(n_layers - 1, -1, -1):
        fan_in = units[layer]
        n_cols = units[layer + 1] * layer_int[layer, LAYER_PIECES]
        z_lo = z_off[layer + 1]
        delta = _vector(deltas, z_lo, z_lo + n_cols)
        if layer == 0:
            prev = _vector(xb, 0, fan_in)
        else:
            prev = _vector(acts, a_off[layer], a_off[layer] + fan_in)
        W = _matrix(params, w_off[layer], fan_in, n_cols)
        if layer > 0:
            # dL/d(output) of the layer below, with W before the step: W @ delta,
            # one fixed-order dot product per row of W
            delta_row = _matrix(deltas, z_lo, 1, n_cols)
            for f in range(fan_in):
                dact[f] = row_dot(W, f, delta_row, 0, n_cols)
        if fused:
            row_adam_layer(
                prev, delta, params, grads, state_1, state_2, w_off[layer], b_off[layer], fan_in, n_cols,
                alpha, weight_sum, adam_rate, fcfg[F_BETA_1], fcfg[F_BETA_2], fcfg[F_EPSILON],
            )
        else:
            row_weight_gradient(prev, delta, W, _matrix(grads, w_off[layer], fan_in, n_cols), alpha, weight_sum)
            g_b = _vector(grads, b_off[layer], b_off[layer] + n_cols)
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
                _matrix(dact, 0, 1, fan_in), _matrix(pre, z_off[layer], 1, fan_in * pieces),
                _matrix(acts, a_off[layer], 1, fan_in), _matrix(deltas, z_off[layer], 1, fan_in * pieces),
                layer_int[below, LAYER_ACTIVATION], layer_float[below, LAYER_SLOPE], pieces,
                rate, icfg[I_SEED], batch, start, below,
            )
    penalty = (0.5 * alpha) * squares if alpha != 0.0 else 0.0
    l1 = fcfg[F_L1]
    if l1 != 0.0:
        penalty += l1 * l1_gradient(params, grads, n_weights, l1, weight_sum)
    return loss_sum, weight_sum, penalty / weight_sum


# --------------------------------------------------------------------------
# entry points called from Python
# --------------------------------------------------------------------------
@njit(**_INLINED)
def step_size(counters, icfg, fcfg):
    """The step's learning rate: Adam's is bias-corrected (its step counter advances)."""
    solver = icfg[I_SOLVER]
    learning_rate = fcfg[F_LEARNING_RATE]
    if solver == SOLVER_ADAM or solver == SOLVER_ADAMW:
        counters[C_ADAM_STEP] += 1
        t = float(counters[C_ADAM_STEP])
        return learning_rate * math.sqrt(_bias_correction(fcfg[F_BETA_2], t)) / _bias_correction(fcfg[F_BETA_1], t)
    return learning_rate


@njit(**_INLINED)
def _bias_correction(beta, t):
    """``1 - beta ** t`` (0 <= beta < 1), without the power once it is exactly 1.

    When ``beta ** t < 2**-64`` (judged from ``t * log2(beta)`` with a margin far
    beyond its rounding), ``1 - beta ** t`` rounds to 1. Skipping the power then
    (after about 400 steps for beta = 0.9) saves libm's ``pow``, whose result
    eventually underflows through its slow path: 2% of a one-sample step.
    """
    if t * math.log2(beta) < -64.0:
        return 1.0
    return 1.0 - beta ** t


@njit(**_INLINED)
def update_slice(lo, hi, params, grads, state_1, state_2, icfg, fcfg, n_weights, rate):
    """The solver's step on parameters ``lo:hi`` with the finished gradient."""
    solver = icfg[I_SOLVER]
    p = _vector(params, lo, hi)
    g = _vector(grads, lo, hi)
    s_1 = _vector(state_1, lo, hi)
    if solver == SOLVER_SGD:
        sgd_step(p, g, s_1, rate, fcfg[F_MOMENTUM], icfg[I_NESTEROV] != 0)
    elif solver == SOLVER_RMSPROP:
        rmsprop_step(p, g, s_1, rate, fcfg[F_RHO], fcfg[F_EPSILON])
    elif solver == SOLVER_ADAGRAD:
        adagrad_step(p, g, s_1, rate, fcfg[F_EPSILON])
    elif solver == SOLVER_ADAM or solver == SOLVER_ADAMW:
        if solver == SOLVER_ADAMW:
            # decoupled weight decay with the undecayed rate, on the weights only
            decay_weights(p, min(max(n_weights - lo, 0), hi - lo), 1.0 - fcfg[F_LEARNING_RATE] * fcfg[F_WEIGHT_DECAY])
        adam_step(p, g, s_1, _vector(state_2, lo, hi), rate, fcfg[F_BETA_1], fcfg[F_BETA_2], fcfg[F_EPSILON])
    else:  # an unknown solver (refused by the engine first): NaN weights, never a silent no-step
        for i in range(p.shape[0]):
            p[i] = math.nan


@njit(**_SERIAL)
def finish_slice(lo, hi, params, part_grads, parts, n_weights, alpha, l1, weight_sum):
    """Sum the parts' gradients on ``lo:hi`` (in part order) and finish them; the slice's penalty."""
    grads = part_grads[0]
    summed = grads[lo:hi]  # (a view: indexing at lo + i does not vectorize)
    for part in range(1, parts):
        other = part_grads[part][lo:hi]
        for i in range(hi - lo):
            summed[i] += other[i]
    local_weights = min(max(n_weights - lo, 0), hi - lo)
    return finalize_gradient(params[lo:hi], grads[lo:hi], local_weights, alpha, l1, weight_sum)


@njit(**_PARALLEL)
def adam_two_parts(params, g_0, g_1, first_moment, second_moment, lo, hi, alpha, weight_sum, rate, beta_1, beta_2,
                   epsilon):
    """Adam's step on weights ``lo:hi`` from two parts' raw gradient sums, in one
    pass that writes no gradient.

    The same numbers as :func:`finish_slice` (``g = ((g_0 + g_1) + alpha * w) / S``)
    followed by :func:`adam_step`.
    The loops index views of the slice: indexing the whole arrays at ``lo + i``
    kept them from vectorizing (3x slower).
    """
    a = _like(params, alpha)
    s = _like(params, weight_sum)
    b1, c1, b2, c2, lr, eps = adam_constants(params, rate, beta_1, beta_2, epsilon)
    p = params[lo:hi]
    x_0 = g_0[lo:hi]
    x_1 = g_1[lo:hi]
    m = first_moment[lo:hi]
    v = second_moment[lo:hi]
    for i in range(hi - lo):
        w = p[i]
        g = ((x_0[i] + x_1[i]) + a * w) / s
        mt = b1 * m[i] + c1 * g
        vt = b2 * v[i] + c2 * (g * g)
        m[i] = mt
        v[i] = vt
        p[i] = w + (lr * mt) / (np.sqrt(vt) + eps)


@njit(**_SERIAL)
def finish_update_slice(k, n_slices, params, part_grads, parts, n_weights, alpha, l1, weight_sum, state_1, state_2,
                        icfg, fcfg, rate):
    """:func:`finish_slice` then :func:`update_slice` on slice ``k`` of ``n_slices``
    equal slices; the slice's penalty.

    Adam without L1 on two parts (the threaded epoch on 2 cores) runs on the
    slice's weights as one pass (:func:`adam_two_parts`): their data is read once
    and the summed gradient never written. Biases (few) take the general path.
    """
    n_params = params.shape[0]
    slice_len = (n_params + n_slices - 1) // n_slices
    lo = k * slice_len
    hi = min(lo + slice_len, n_params)
    penalty = 0.0
    if parts == 2 and fused_adam(icfg, fcfg):
        split = lo + min(max(n_weights - lo, 0), hi - lo)
        if alpha != 0.0:
            # (a view and 0, as finalize_gradient calls it: one compiled version)
            penalty = (0.5 * alpha) * sum_squares(params[lo:split], 0, split - lo)
        adam_two_parts(
            params, part_grads[0], part_grads[1], state_1, state_2, lo, split, alpha, weight_sum, rate,
            fcfg[F_BETA_1], fcfg[F_BETA_2], fcfg[F_EPSILON],
        )
        lo = split  # the slice's biases, if any
        if lo == hi:
            return penalty
    penalty += finish_slice(lo, hi, params, part_grads, parts, n_weights, alpha, l1, weight_sum)
    update_slice(lo, hi, params, part_grads[0], state_1, state_2, icfg, fcfg, n_weights, rate)
    return penalty


@njit(**_SERIAL)
def warm_blas(work):
    """A 1x1 product: loads SciPy's GEMM for this dtype (which takes the GIL) before
    any thread needs it."""
    one = _matrix(work, 0, 1, 1)
    gemm(False, False, 1.0, one, one, 0.0, one, np.int64(0))


@njit(cache=True, parallel=True, error_model="numpy", pipeline_class=SpecializingCompiler)
def parts_gradient(
    X, strides, data, indices, indptr, Y, sw, rows, start, m, parts, params, part_grads, icfg, fcfg,
    layer_int, layer_float, units, w_off, b_off, a_off, z_off, xb, yb, swb, pre, acts, deltas, dact, row_loss,
    training, batch, part_loss, part_weight,
):
    """Forward and backward of a batch split into ``parts`` contiguous row blocks,
    one per thread, each into its own workspace and gradient (``part_grads[p]``)."""
    for part in prange(parts):
        lo = start + (m * part) // parts
        hi = start + (m * (part + 1)) // parts
        part_loss[part], part_weight[part] = batch_gradient(
            X, strides, data, indices, indptr, Y, sw, rows, lo, hi - lo, params, part_grads[part], icfg, fcfg,
            layer_int, layer_float, units, w_off, b_off, a_off, z_off, xb[part], yb[part], swb[part], pre[part],
            acts[part], deltas[part], dact[part], row_loss[part], False, training, batch,
        )


@njit(**_INLINED)
def param_slices(n_params):
    """Number of equal slices of the flat parameters for the finishing and the
    step: slices of at most PARAM_SLICE, an even number when there are several,
    so two threads get the same work, and two from PARALLEL_STEP_MIN_PARAMS
    parameters on (the count depends on n_params only)."""
    n_slices = (n_params + PARAM_SLICE - 1) // PARAM_SLICE
    if n_slices > 1:
        n_slices += n_slices % 2
    elif n_params >= PARALLEL_STEP_MIN_PARAMS:
        n_slices = 2
    return n_slices


@njit(cache=True, parallel=True, error_model="numpy", pipeline_class=SpecializingCompiler)
def parallel_finish_update(
    n_slices, params, part_grads, parts, n_weights, alpha, l1, weight_sum, state_1, state_2, icfg, fcfg, rate,
    slice_penalty,
):
    """:func:`finish_update_slice` on every slice, the slices in parallel."""
    for k in prange(n_slices):
        # (prange's index is unsigned: as int64, the call is the one of finish_and_step)
        slice_penalty[k] = finish_update_slice(
            np.int64(k), n_slices, params, part_grads, parts, n_weights, alpha, l1, weight_sum, state_1, state_2,
            icfg, fcfg, rate,
        )


@njit(**_SERIAL)
def finish_and_step(
    params, part_grads, parts, n_weights, alpha, l1, weight_sum, state_1, state_2, counters, icfg, fcfg,
    slice_penalty,
):
    """Finish a batch's gradient (parts summed in order) and take the solver's step;
    return the penalty (not yet divided by the weight sum).

    Each slice (:func:`param_slices`) is finished and stepped on while it is in
    cache, the slices in parallel when there are several.
    """
    n_slices = slice_penalty.shape[0]
    rate = step_size(counters, icfg, fcfg)
    if n_slices == 1 or icfg[I_NO_THREADS] != 0:
        # the call of parallel_finish_update (a loop index, not the constant 0:
        # a literal argument would compile another version); every slice in
        # turn where no thread may start (the same slices: the same bits)
        for k in range(n_slices):
            slice_penalty[k] = finish_update_slice(
                k, n_slices, params, part_grads, parts, n_weights, alpha, l1, weight_sum, state_1, state_2, icfg,
                fcfg, rate,
            )
    else:
        parallel_finish_update(
            n_slices, params, part_grads, parts, n_weights, alpha, l1, weight_sum, state_1, state_2, icfg,
            fcfg, rate, slice_penalty,
        )
    penalty = 0.0
    for k in range(n_slices):
        penalty += slice_penalty[k]
    return penalty


# The epoch comes in three entry points, so that a fit compiles only the one it
# runs (a first fit with an empty cache compiles for seconds per entry point):
# train_epoch (one thread's batches), train_epoch_parts (each batch split over
# the threads) and train_epoch_rows (online SGD, one dense row per step).
# They share this contract:
#
# Mini-batches ``first_batch`` .. ``stop_batch - 1`` of one epoch, compiled.
#
# Batch ``k`` holds rows ``rows[k*batch_size : (k+1)*batch_size]`` (the last
# one may be short, as scikit-learn's ``gen_batches``). Each batch: forward,
# backward, gradient of the mean loss plus the penalties, optimizer step.
# ``state_1``/``state_2`` are the optimizer's buffers (SGD's velocity, Adam's
# moments, RMSProp's / Adagrad's squares); ``counters`` Adam's step and the
# dropout batch counter (dropout masks depend on a row's position in the
# batch, not on the threads). The workspaces come in parts, one row per
# thread (``xb``, ``acts``, ..., ``part_grads`` are 2-D).
#
# Returns ``running_total`` plus the sum over these batches of
# ``batch_loss * batch_rows`` (added in batch order, so an epoch run in several
# calls sums exactly as in one). A batch whose weights are all 0 makes no step.


@njit(**_SERIAL)
def train_epoch(
    X, strides, data, indices, indptr, Y, sw, rows, batch_size, first_batch, stop_batch,
    params, part_grads, state_1, state_2, counters, icfg, fcfg, layer_int, layer_float, n_weights,
    units, w_off, b_off, a_off, z_off, xb, yb, swb, pre, acts, deltas, dact, row_loss, running_total,
):
    """One thread's mini-batches of an epoch (the contract above)."""
    n = rows.shape[0]
    n_slices = param_slices(params.shape[0])
    training = icfg[I_DROPOUT] != 0
    slice_penalty = np.zeros(n_slices)
    total = running_total
    for batch in range(first_batch, stop_batch):
        start = batch * batch_size
        m = min(batch_size, n - start)
        loss_sum, weight_sum = batch_gradient(
            X, strides, data, indices, indptr, Y, sw, rows, start, m, params, part_grads[0], icfg,
            fcfg, layer_int, layer_float, units, w_off, b_off, a_off, z_off, xb[0], yb[0], swb[0],
            pre[0], acts[0], deltas[0], dact[0], row_loss[0], False, training, counters[C_BATCH],
        )
        counters[C_BATCH] += 1
        if weight_sum == 0.0:
            continue
        penalty = finish_and_step(
            params, part_grads, 1, n_weights, fcfg[F_ALPHA], fcfg[F_L1], weight_sum, state_1, state_2, counters,
            icfg, fcfg, slice_penalty,
        )
        total += (loss_sum / weight_sum + penalty / weight_sum) * m
    return total


@njit(**_SERIAL)
def train_epoch_parts(
    X, strides, data, indices, indptr, Y, sw, rows, batch_size, first_batch, stop_batch,
    params, part_grads, state_1, state_2, counters, icfg, fcfg, layer_int, layer_float, n_weights,
    units, w_off, b_off, a_off, z_off, xb, yb, swb, pre, acts, deltas, dact, row_loss, running_total,
):
    """Mini-batches split over the threads (the contract above)."""
    # A batch is split into as many contiguous row blocks as there are parts,
    # each block's forward and backward run on its own thread with
    # single-threaded BLAS (parts_gradient), and the blocks' gradients are added
    # in block order: the result depends on the number of parts, never on timing.
    n = rows.shape[0]
    n_parts = part_grads.shape[0]
    n_slices = param_slices(params.shape[0])
    training = icfg[I_DROPOUT] != 0
    part_loss = np.zeros(n_parts)
    part_weight = np.zeros(n_parts)
    slice_penalty = np.zeros(n_slices)
    warm_blas(pre[0])
    total = running_total
    for batch in range(first_batch, stop_batch):
        start = batch * batch_size
        m = min(batch_size, n - start)
        parts = min(n_parts, m)
        parts_gradient(
            X, strides, data, indices, indptr, Y, sw, rows, start, m, parts, params, part_grads, icfg, fcfg,
            layer_int, layer_float, units, w_off, b_off, a_off, z_off, xb, yb, swb, pre, acts, deltas, dact,
            row_loss, training, counters[C_BATCH], part_loss, part_weight,
        )
        counters[C_BATCH] += 1
        loss_sum = 0.0
        weight_sum = 0.0
        for part in range(parts):
            loss_sum += part_loss[part]
            weight_sum += part_weight[part]
        if weight_sum == 0.0:
            continue
        penalty = finish_and_step(
            params, part_grads, parts, n_weights, fcfg[F_ALPHA], fcfg[F_L1], weight_sum, state_1, state_2,
            counters, icfg, fcfg, slice_penalty,
        )
        total += (loss_sum / weight_sum + penalty / weight_sum) * m
    return total


# nogil: the Hogwild! epoch runs it on several Python threads at once
@njit(nogil=True, **_SERIAL)
def train_epoch_rows(
    X, strides, data, indices, indptr, Y, sw, rows, batch_size, first_batch, stop_batch,
    params, part_grads, state_1, state_2, counters, icfg, fcfg, layer_int, layer_float, n_weights,
    units, w_off, b_off, a_off, z_off, xb, yb, swb, pre, acts, deltas, dact, row_loss, running_total,
    shared, snapshot, merge_every,
):
    """Online SGD, one row per step (the contract above): a dense row is
    gathered into ``xb``, a sparse one written densely there.

    With ``merge_every`` > 0 (a Hogwild! thread) the steps update ``params``,
    this thread's copy of the weights, and every ``merge_every`` steps (and
    after the last) the change since the last merge is added to ``shared``,
    the weights all threads update without locks; ``params`` and ``snapshot``
    then take ``shared``'s values. ``shared`` and ``snapshot`` are not used
    when ``merge_every`` is 0.
    """
    # batch_size is 1, each step runs the vector path of row_gradient (one
    # thread, whatever the network's size). Sparse X comes here from Hogwild!
    # threads only: one-thread online SGD on sparse X runs train_epoch.
    n_params = params.shape[0]
    # borrowed views: the arrays handed down every step cost no atomic
    # reference counting (the caller keeps them alive)
    X, strides, Y, sw, rows = borrowed(X), borrowed(strides), borrowed(Y), borrowed(sw), borrowed(rows)
    params, state_1, state_2 = borrowed(params), borrowed(state_1), borrowed(state_2)
    shared, snapshot = borrowed(shared), borrowed(snapshot)
    counters, icfg, fcfg = borrowed(counters), borrowed(icfg), borrowed(fcfg)
    layer_int, layer_float, units = borrowed(layer_int), borrowed(layer_float), borrowed(units)
    w_off, b_off, a_off, z_off = borrowed(w_off), borrowed(b_off), borrowed(a_off), borrowed(z_off)
    grads, xb_0, yb_0, swb_0 = borrowed(part_grads[0]), borrowed(xb[0]), borrowed(yb[0]), borrowed(swb[0])
    pre_0, acts_0, deltas_0 = borrowed(pre[0]), borrowed(acts[0]), borrowed(deltas[0])
    dact_0, row_loss_0 = borrowed(dact[0]), borrowed(row_loss[0])
    fused = fused_adam(icfg, fcfg)
    sparse = icfg[I_SPARSE] != 0
    col_squares = np.zeros(units[1:].max() * layer_int[:, LAYER_PIECES].max())
    total = running_total
    for start in range(first_batch, stop_batch):
        if sparse:
            scatter_sparse_row(data, indices, indptr, rows[start], _vector(xb_0, 0, units[0]))
        else:
            if start + 1 < stop_batch:
                # the next step's row, while this one computes
                following = rows[start + 1]
                prefetch_row(X, strides[0], strides[1], following, units[0])
                prefetch(Y, np.uint64(following * Y.shape[1]))
            gather_row(X, strides[0], strides[1], rows[start], _vector(xb_0, 0, units[0]))
        loss_sum, weight_sum, penalty = row_gradient(
            X, strides, Y, sw, rows, start, params, grads, icfg, fcfg, layer_int, layer_float,
            units, w_off, b_off, a_off, z_off, xb_0, yb_0, swb_0, pre_0, acts_0, deltas_0, dact_0,
            row_loss_0, n_weights, state_1, state_2, counters, col_squares,
        )
        counters[C_BATCH] += 1
        if weight_sum != 0.0:
            if not fused:
                rate = step_size(counters, icfg, fcfg)
                update_slice(0, n_params, params, grads, state_1, state_2, icfg, fcfg, n_weights, rate)
            total += loss_sum / weight_sum + penalty
        if merge_every > 0 and ((start + 1 - first_batch) % merge_every == 0 or start + 1 == stop_batch):
            merge_weights(params, shared, snapshot)
    return total


@njit(**_INLINED)
def scatter_sparse_row(data, indices, indptr, row, out):
    """Row ``row`` of a CSR X written densely into ``out`` (duplicate entries add up)."""
    for j in range(out.shape[0]):
        out[j] = 0.0
    for p in range(indptr[row], indptr[row + 1]):
        out[indices[p]] += data[p]


@njit(**_INLINED)
def merge_weights(params, shared, snapshot):
    """Add this thread's change (params - snapshot) to the shared weights, lock-free; take the sum."""
    for i in range(params.shape[0]):
        merged = shared[i] + (params[i] - snapshot[i])
        shared[i] = merged
        params[i] = merged
        snapshot[i] = merged


@njit(**_SERIAL)
def gradient_sums(
    X, strides, data, indices, indptr, Y, sw, rows, chunk, params, grads, icfg, fcfg, layer_int, layer_float,
    units, w_off, b_off, a_off, z_off, xb, yb, swb, pre, acts, deltas, dact, row_loss,
    loss_sum, weight_sum, accumulate,
):
    """Raw gradient sums over ``rows``, ``chunk`` rows at a time, for full-batch solvers.

    Adds ``x.T @ delta`` and ``sum(delta)`` of every row into ``grads`` (over-
    writing it first unless ``accumulate``) and returns the running
    ``(loss_sum, weight_sum)``; :func:`finalize_gradient` then turns the sums
    into the gradient of the mean loss. A data set can be walked through in
    several calls (chunk-aligned) with the same result as in one. No dropout: a
    deterministic objective. With ``chunk >= len(rows)`` the workspaces keep
    every layer's activations and deltas of all rows (the functional API reads
    them).
    """
    n = rows.shape[0]
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        part_loss, part_weight = batch_gradient(
            X, strides, data, indices, indptr, Y, sw, rows, start, m, params, grads, icfg, fcfg, layer_int,
            layer_float, units, w_off, b_off, a_off, z_off, xb, yb, swb, pre, acts, deltas, dact, row_loss,
            accumulate, False, 0,
        )
        loss_sum += part_loss
        weight_sum += part_weight
        accumulate = True
    return loss_sum, weight_sum


@njit(**_SERIAL)
def dataset_loss(
    X, strides, data, indices, indptr, Y, sw, rows, chunk, params, icfg, fcfg, layer_int, layer_float,
    units, w_off, b_off, a_off, z_off, xb, yb, swb, pre, acts, deltas, row_loss,
):
    """(weighted loss sum, weight sum) over ``rows``: no gradient, no penalty."""
    n = rows.shape[0]
    loss_sum = 0.0
    weight_sum = 0.0
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        forward_batch(
            X, strides, data, indices, indptr, rows, start, m, params, icfg, layer_int, layer_float,
            units, w_off, b_off, a_off, z_off, xb, pre, acts, False, 0,
        )
        part_loss, part_weight = batch_output_loss(
            Y, sw, rows, start, m, icfg, fcfg, layer_int, units, a_off, z_off, yb, swb, acts, deltas, row_loss
        )
        loss_sum += part_loss
        weight_sum += part_weight
    return loss_sum, weight_sum


@njit(**_SERIAL)
def predict(
    X, strides, data, indices, indptr, rows, chunk, params, icfg, layer_int, layer_float,
    units, w_off, b_off, a_off, z_off, xb, pre, acts, out,
):
    """Output activations of all ``rows`` into ``out``, ``chunk`` rows at a time."""
    n = rows.shape[0]
    n_layers = units.shape[0] - 1
    n_out = units[n_layers]
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        forward_batch(
            X, strides, data, indices, indptr, rows, start, m, params, icfg, layer_int, layer_float,
            units, w_off, b_off, a_off, z_off, xb, pre, acts, False, 0,
        )
        last = _matrix(acts, a_off[n_layers], m, n_out)
        for i in range(m):
            for j in range(n_out):
                out[start + i, j] = last[i, j]


@njit(**_SERIAL)
def jacobian(
    X, strides, data, indices, indptr, rows, chunk, params, icfg, layer_int, layer_float,
    units, w_off, b_off, a_off, z_off, xb, pre, acts, deltas, dact, row_scale, J,
):
    """Rows of the Jacobian of the outputs with respect to all parameters.

    Row ``i * n_out + k`` of ``J`` holds ``row_scale[i] * d y_pred[i, k] / d theta``
    (theta the flat parameter vector), computed by backpropagating a unit
    output delta through sample i alone. For Levenberg-Marquardt.
    """
    n = rows.shape[0]
    n_layers = units.shape[0] - 1
    n_out = units[n_layers]
    out_code = layer_int[n_layers - 1, LAYER_ACTIVATION]
    sparse = icfg[I_SPARSE] != 0
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        forward_batch(
            X, strides, data, indices, indptr, rows, start, m, params, icfg, layer_int, layer_float,
            units, w_off, b_off, a_off, z_off, xb, pre, acts, False, 0,
        )
        y_pred = _matrix(acts, a_off[n_layers], m, n_out)
        for i in range(m):
            for k in range(n_out):
                row = J[(start + i) * n_out + k]
                for c in range(row.shape[0]):
                    row[c] = 0.0
                # d y_pred[i, k] / d z(L): the output activation's Jacobian column
                d_out = _matrix(deltas, z_off[n_layers], 1, n_out)
                for j in range(n_out):
                    d_out[0, j] = 0.0
                if out_code == ACT_SOFTMAX:
                    for j in range(n_out):
                        d_out[0, j] = -y_pred[i, k] * y_pred[i, j]
                    d_out[0, k] += y_pred[i, k]
                elif out_code == ACT_LOGISTIC:
                    d_out[0, k] = y_pred[i, k] * (1.0 - y_pred[i, k])
                elif out_code == ACT_EXP:
                    d_out[0, k] = y_pred[i, k]
                elif out_code == ACT_IDENTITY:
                    d_out[0, k] = 1.0
                else:  # an unknown output activation (refused by Network first)
                    d_out[0, k] = math.nan
                for layer in range(n_layers - 1, -1, -1):
                    fan_in = units[layer]
                    n_cols = units[layer + 1] * layer_int[layer, LAYER_PIECES]
                    delta = _matrix(deltas, z_off[layer + 1], 1, n_cols)
                    w0 = w_off[layer]
                    if layer == 0 and sparse:
                        r = rows[start + i]
                        for p in range(indptr[r], indptr[r + 1]):
                            v = data[p]
                            base = w0 + indices[p] * n_cols
                            for c in range(n_cols):
                                row[base + c] = v * delta[0, c]
                    else:
                        if layer == 0:
                            prev = _matrix(xb, 0, m, fan_in)
                        else:
                            prev = _matrix(acts, a_off[layer], m, fan_in)
                        for f in range(fan_in):
                            v = prev[i, f]
                            base = w0 + f * n_cols
                            for c in range(n_cols):
                                row[base + c] = v * delta[0, c]
                    b0 = b_off[layer]
                    for c in range(n_cols):
                        row[b0 + c] = delta[0, c]
                    if layer > 0:
                        below = layer - 1
                        pieces = layer_int[below, LAYER_PIECES]
                        W = _matrix(params, w0, fan_in, n_cols)
                        delta_z = _matrix(deltas, z_off[layer], 1, fan_in * pieces)
                        delta_a = _matrix(dact, 0, 1, fan_in)
                        for f in range(fan_in):
                            acc = 0.0
                            for c in range(n_cols):
                                acc += delta[0, c] * W[f, c]
                            delta_a[0, f] = acc
                        backprop_activation(
                            delta_a, _matrix(pre, z_off[layer] + i * fan_in * pieces, 1, fan_in * pieces),
                            _matrix(acts, a_off[layer] + i * fan_in, 1, fan_in), delta_z,
                            layer_int[below, LAYER_ACTIVATION], layer_float[below, LAYER_SLOPE], pieces,
                            0.0, 0, 0, 0, below,
                        )
                scale = row_scale[start + i]
                if scale != 1.0:
                    for c in range(row.shape[0]):
                        row[c] *= scale


# Cached kernels load without Numba's compiler set-up (see _cache_loading).
load_without_compiler_setup(globals())
