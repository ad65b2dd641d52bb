"""The CUDA twins of ``fastbp.kernels.activations``: each elementwise activation's value and
derivative as device functions (the same formulas, the same codes), and dropout's
counter-based masks (the CPU's hash, so a unit is dropped on the GPU exactly when it is on
the CPU)."""

import math

import numpy as np
from numba import cuda

from ..kernels.activations import (
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
)

_INV_SQRT_2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


# --------------------------------------------------------------------------
# device functions
# --------------------------------------------------------------------------
@cuda.jit(device=True)
def _mix64(x):
    """SplitMix64's finalizer (as ``fastbp.kernels.activations._mix64``)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@cuda.jit(device=True)
def dropout_uniform(seed, batch, row, layer, unit):
    """The CPU's ``dropout_uniform``: a uniform number in [0, 1) from its counters."""
    h = _mix64(np.uint64(seed) + np.uint64(0x9E3779B97F4A7C15) * np.uint64(batch + 1))
    h = _mix64(h ^ np.uint64(row))
    h = _mix64(h ^ (np.uint64(layer) << np.uint64(40)) ^ np.uint64(unit))
    return float(h >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@cuda.jit(device=True)
def _logistic(v):
    return 1.0 / (1.0 + math.exp(-v))


@cuda.jit(device=True)
def _softplus(v):
    if v > 0.0:
        return v + math.log1p(math.exp(-v))
    return math.log1p(math.exp(v))


@cuda.jit(device=True)
def phi(v, code, slope):
    """An elementwise activation (every code but softmax and maxout)."""
    if code == ACT_LOGISTIC:
        return _logistic(v)
    if code == ACT_TANH:
        return math.tanh(v)
    if code == ACT_RELU:
        # NaN passes through (v < 0 is False), as np.maximum does.
        return 0.0 if v < 0.0 else v
    if code == ACT_LEAKY_RELU:
        return v if v > 0.0 else slope * v
    if code == ACT_SWISH:
        return v * _logistic(v)
    if code == ACT_SOFTPLUS:
        return _softplus(v)
    if code == ACT_ELU:
        return v if v > 0.0 else math.expm1(v)
    if code == ACT_GELU:
        return 0.5 * v * (1.0 + math.erf(v * _INV_SQRT_2))
    if code == ACT_EXP:
        return math.exp(v)
    if code == ACT_IDENTITY:
        return v
    return math.nan  # a code no branch knows (the engine refuses it first)


@cuda.jit(device=True)
def backprop_value(da, v, a, code, slope, keep):
    """``da * phi'(z)`` of an elementwise activation: ``v`` is z, ``a`` the
    (dropout-scaled) output; logistic and tanh read the output."""
    if code == ACT_LOGISTIC:
        s = a * keep
        return da * s * (1.0 - s)
    if code == ACT_TANH:
        t = a * keep
        return da * (1.0 - t * t)
    if code == ACT_RELU:
        return da if v > 0.0 else 0.0
    if code == ACT_LEAKY_RELU:
        return da if v > 0.0 else da * slope
    if code == ACT_SWISH:
        s = _logistic(v)
        return da * (s + v * s * (1.0 - s))
    if code == ACT_SOFTPLUS:
        return da * _logistic(v)
    if code == ACT_ELU:
        return da if v > 0.0 else da * math.exp(v)
    if code == ACT_GELU:
        cdf = 0.5 * (1.0 + math.erf(v * _INV_SQRT_2))
        pdf = _INV_SQRT_2PI * math.exp(-0.5 * v * v)
        return da * (cdf + v * pdf)
    if code == ACT_IDENTITY:
        return da
    return math.nan  # an unknown code (refused by the engine first)


# --------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------
@cuda.jit(cache=True)
def bias_activation(pre, z_off, acts, a_off, params, b_off, m, n_cols, n_units, code, slope, pieces, rate, seed,
                    batch, start, layer):
    """``z += b`` in place, then ``out = phi(z)``, then inverted dropout (``rate > 0``).

    ``pre`` holds z (m, n_cols) at ``z_off``, ``acts`` receives the output (m,
    n_units) at ``a_off``; the bias is ``params[b_off:b_off + n_cols]``. One
    thread per row (softmax), per unit (maxout: its pieces) or per element.
    Dropout draws the mask of (seed, batch, start + row, layer, unit).
    """
    if code == ACT_SOFTMAX:
        n = m
    elif code == ACT_MAXOUT:
        n = m * n_units
    else:
        n = m * n_cols
    scale = 1.0 / (1.0 - rate) if rate > 0.0 else 1.0
    for t in range(cuda.grid(1), n, cuda.gridsize(1)):
        if code == ACT_SOFTMAX:
            i = t
            zb = z_off + i * n_cols
            ab = a_off + i * n_units
            for j in range(n_cols):
                pre[zb + j] += params[b_off + j]
            row_max = pre[zb]
            for j in range(n_cols):
                if pre[zb + j] > row_max:
                    row_max = pre[zb + j]
            total = 0.0
            for j in range(n_cols):
                e = math.exp(pre[zb + j] - row_max)
                acts[ab + j] = e
                total += e
            for j in range(n_cols):
                acts[ab + j] = acts[ab + j] / total
        else:
            if code == ACT_MAXOUT:
                i = t // n_units
                u = t - i * n_units
                c0 = z_off + i * n_cols + u * pieces
                for p in range(pieces):
                    pre[c0 + p] += params[b_off + u * pieces + p]
                best = pre[c0]
                for p in range(1, pieces):
                    v = pre[c0 + p]
                    if v > best:
                        best = v
                acts[a_off + t] = best
            else:
                i = t // n_cols
                u = t - i * n_cols
                idx = z_off + t
                pre[idx] += params[b_off + u]
                acts[a_off + t] = phi(pre[idx], code, slope)
            if rate > 0.0:
                if dropout_uniform(seed, batch, start + i, layer, u) < rate:
                    acts[a_off + t] = 0.0
                else:
                    acts[a_off + t] = acts[a_off + t] * scale


@cuda.jit(cache=True)
def backprop_activation(dact, pre, z_off, acts, a_off, deltas, m, n_units, code, slope, pieces, rate, seed, batch,
                        start, layer):
    """``delta_z = (delta_a * dropout mask) * phi'(z)`` (the CPU's ``backprop_activation``).

    ``dact`` holds dL/d(output) (m, n_units) at offset 0 and is scaled in place
    by the dropout mask; ``pre`` / ``acts`` the layer's z and output at
    ``z_off`` / ``a_off``; ``deltas`` receives dL/dz at ``z_off``. Maxout sends
    the gradient to each unit's first maximal piece.
    """
    n = m * n_units
    if rate > 0.0:
        scale = 1.0 / (1.0 - rate)
        keep = 1.0 - rate  # phi(z) = a * keep for the units that were kept
    else:
        scale = 1.0
        keep = 1.0
    for t in range(cuda.grid(1), n, cuda.gridsize(1)):
        i = t // n_units
        j = t - i * n_units
        if rate > 0.0:
            if dropout_uniform(seed, batch, start + i, layer, j) < rate:
                dact[t] = 0.0
            else:
                dact[t] = dact[t] * scale
        if code == ACT_MAXOUT:
            c0 = z_off + i * n_units * pieces + j * pieces
            best = c0
            for p in range(1, pieces):
                if pre[c0 + p] > pre[best]:
                    best = c0 + p
            for p in range(pieces):
                deltas[c0 + p] = 0.0
            deltas[best] = dact[t]
        else:
            idx = z_off + t
            deltas[idx] = backprop_value(dact[t], pre[idx], acts[a_off + t], code, slope, keep)
