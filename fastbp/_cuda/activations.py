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
    ACT_RELU,
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
