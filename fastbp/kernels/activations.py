"""Compiled activations: each one's value (bias + activation, fused) and derivative (the delta
recursion's elementwise factor), and dropout's counter-based masks."""

import math

import numpy as np
from numba import njit, prange

from .cache import load_without_compiler_setup
from .codes import (
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
from .jit import PARALLEL, SERIAL


_INV_SQRT_2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327

# --------------------------------------------------------------------------
# dropout masks: a counter-based generator
# --------------------------------------------------------------------------
@njit(**SERIAL)
def _mix64(x):
    """SplitMix64's finalizer: a bijective 64-bit hash."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(**SERIAL)
def dropout_uniform(seed, batch, row, layer, unit):
    """A uniform number in [0, 1) determined by its counters alone."""
    h = _mix64(np.uint64(seed) + np.uint64(0x9E3779B97F4A7C15) * np.uint64(batch + 1))
    h = _mix64(h ^ np.uint64(row))
    h = _mix64(h ^ (np.uint64(layer) << np.uint64(40)) ^ np.uint64(unit))
    return float(h >> np.uint64(11)) * (1.0 / 9007199254740992.0)

# --------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------
@njit(**SERIAL)
def _logistic(v):
    return 1.0 / (1.0 + math.exp(-v))


@njit(**SERIAL)
def _softplus(v):
    if v > 0.0:
        return v + math.log1p(math.exp(-v))
    return math.log1p(math.exp(v))


@njit(**PARALLEL)
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


@njit(**PARALLEL)
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


@njit(**PARALLEL)
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


load_without_compiler_setup(globals())
