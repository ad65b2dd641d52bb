"""Compiled activations: each one's value (bias + activation, fused) and derivative (the delta
recursion's elementwise factor), and dropout's counter-based masks."""

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .cache import load_without_compiler_setup
from .jit import INLINED, PARALLEL, SERIAL


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
# the registry: one entry an activation (its names, code and where it may be
# used), then each one's phi and phi' side by side; the two dispatches below
# (bias_activation, backprop_activation) call them by code
# --------------------------------------------------------------------------
class Activation(NamedTuple):
    """One activation of the registry.

    Attributes
    ----------
    name : str
        The name the estimators and the functional API take.
    code : int
        The kernels' integer code.
    aliases : tuple of str
        Other accepted names (scikit-learn's and PyTorch's spellings).
    hidden, output : bool
        Whether a hidden layer / the output layer may use it.
    formula : str
        phi(z), for the documentation.
    """

    name: str
    code: int
    aliases: tuple = ()
    hidden: bool = True
    output: bool = False
    formula: str = ""


ACT_IDENTITY = 0
ACT_LOGISTIC = 1
ACT_TANH = 2
ACT_RELU = 3
ACT_SOFTMAX = 4
ACT_EXP = 5
ACT_LEAKY_RELU = 6
ACT_SWISH = 7
ACT_SOFTPLUS = 8
ACT_ELU = 9
ACT_GELU = 10
ACT_MAXOUT = 11

ACTIVATIONS = (
    Activation("identity", ACT_IDENTITY, output=True, formula="z"),
    Activation("logistic", ACT_LOGISTIC, ("sigmoid",), output=True, formula="1 / (1 + exp(-z))"),
    Activation("tanh", ACT_TANH, formula="tanh(z)"),
    Activation("relu", ACT_RELU, formula="max(z, 0)"),
    Activation("leaky_relu", ACT_LEAKY_RELU, formula="z if z > 0 else negative_slope * z"),
    Activation("swish", ACT_SWISH, ("silu",), formula="z * logistic(z)"),
    Activation("softplus", ACT_SOFTPLUS, formula="log(1 + exp(z))"),
    Activation("elu", ACT_ELU, formula="z if z > 0 else exp(z) - 1"),
    Activation("gelu", ACT_GELU, formula="z * Phi(z) (exact, erf form)"),
    Activation("maxout", ACT_MAXOUT, formula="max over maxout_pieces linear pieces"),
    Activation("softmax", ACT_SOFTMAX, hidden=False, output=True, formula="exp(z) / sum(exp(z)) per row"),
    Activation("exp", ACT_EXP, hidden=False, output=True, formula="exp(z) (Poisson)"),
)

# name (and alias) -> code, for the layers that may use each
HIDDEN_ACTIVATIONS = {name: a.code for a in ACTIVATIONS if a.hidden for name in (a.name, *a.aliases)}
OUTPUT_ACTIVATIONS = {a.name: a.code for a in ACTIVATIONS if a.output}
# alias -> canonical name
ACTIVATION_ALIASES = {alias: a.name for a in ACTIVATIONS for alias in a.aliases}

_INV_SQRT_2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


@njit(**SERIAL)
def _logistic(v):
    return 1.0 / (1.0 + math.exp(-v))


@njit(**SERIAL)
def _softplus(v):
    if v > 0.0:
        return v + math.log1p(math.exp(-v))
    return math.log1p(math.exp(v))


# phi(v) and delta * phi'(v), for the elementwise activations. The derivative
# takes the layer's delta ``d``, the pre-activation ``v`` and the output ``s``
# (logistic and tanh read it from the output), and returns d * phi'(v).
@njit(**INLINED)
def identity_value(v, slope):
    return v


@njit(**INLINED)
def identity_backward(d, v, s, slope):
    return d


@njit(**INLINED)
def logistic_value(v, slope):
    return _logistic(v)


@njit(**INLINED)
def logistic_backward(d, v, s, slope):
    return d * s * (1.0 - s)


@njit(**INLINED)
def tanh_value(v, slope):
    return math.tanh(v)


@njit(**INLINED)
def tanh_backward(d, v, s, slope):
    return d * (1.0 - s * s)


@njit(**INLINED)
def relu_value(v, slope):
    # NaN passes through (v < 0 is False), as np.maximum does.
    return 0.0 if v < 0.0 else v


@njit(**INLINED)
def relu_backward(d, v, s, slope):
    return d if v > 0.0 else 0.0


@njit(**INLINED)
def leaky_relu_value(v, slope):
    return v if v > 0.0 else slope * v


@njit(**INLINED)
def leaky_relu_backward(d, v, s, slope):
    return d if v > 0.0 else d * slope


@njit(**INLINED)
def swish_value(v, slope):
    return v * _logistic(v)


@njit(**INLINED)
def swish_backward(d, v, s, slope):
    g = _logistic(v)
    return d * (g + v * g * (1.0 - g))


@njit(**INLINED)
def softplus_value(v, slope):
    return _softplus(v)


@njit(**INLINED)
def softplus_backward(d, v, s, slope):
    return d * _logistic(v)


@njit(**INLINED)
def elu_value(v, slope):
    return v if v > 0.0 else math.expm1(v)


@njit(**INLINED)
def elu_backward(d, v, s, slope):
    return d if v > 0.0 else d * math.exp(v)


@njit(**INLINED)
def gelu_value(v, slope):
    return 0.5 * v * (1.0 + math.erf(v * _INV_SQRT_2))


@njit(**INLINED)
def gelu_backward(d, v, s, slope):
    cdf = 0.5 * (1.0 + math.erf(v * _INV_SQRT_2))
    pdf = _INV_SQRT_2PI * math.exp(-0.5 * v * v)
    return d * (cdf + v * pdf)


@njit(**INLINED)
def exp_value(v, slope):  # output only (Poisson): its delta comes from the loss
    return math.exp(v)


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
                out[i, j] = logistic_value(z[i, j], slope)
    elif code == ACT_TANH:
        for i in prange(m):
            for j in range(k):
                out[i, j] = tanh_value(z[i, j], slope)
    elif code == ACT_RELU:
        for i in prange(m):
            for j in range(k):
                out[i, j] = relu_value(z[i, j], slope)
    elif code == ACT_LEAKY_RELU:
        for i in prange(m):
            for j in range(k):
                out[i, j] = leaky_relu_value(z[i, j], slope)
    elif code == ACT_SWISH:
        for i in prange(m):
            for j in range(k):
                out[i, j] = swish_value(z[i, j], slope)
    elif code == ACT_SOFTPLUS:
        for i in prange(m):
            for j in range(k):
                out[i, j] = softplus_value(z[i, j], slope)
    elif code == ACT_ELU:
        for i in prange(m):
            for j in range(k):
                out[i, j] = elu_value(z[i, j], slope)
    elif code == ACT_GELU:
        for i in prange(m):
            for j in range(k):
                out[i, j] = gelu_value(z[i, j], slope)
    elif code == ACT_EXP:
        for i in prange(m):
            for j in range(k):
                out[i, j] = exp_value(z[i, j], slope)
    elif code == ACT_IDENTITY:
        for i in prange(m):
            for j in range(k):
                out[i, j] = identity_value(z[i, j], slope)
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
                delta_z[i, j] = logistic_backward(delta_a[i, j], z[i, j], a[i, j] * keep, slope)
    elif code == ACT_TANH:
        for i in prange(m):
            for j in range(n_units):
                delta_z[i, j] = tanh_backward(delta_a[i, j], z[i, j], a[i, j] * keep, slope)
    elif code == ACT_RELU:
        for i in prange(m):
            for j in range(n_units):
                delta_z[i, j] = relu_backward(delta_a[i, j], z[i, j], a[i, j] * keep, slope)
    elif code == ACT_LEAKY_RELU:
        for i in prange(m):
            for j in range(n_units):
                delta_z[i, j] = leaky_relu_backward(delta_a[i, j], z[i, j], a[i, j] * keep, slope)
    elif code == ACT_SWISH:
        for i in prange(m):
            for j in range(n_units):
                delta_z[i, j] = swish_backward(delta_a[i, j], z[i, j], a[i, j] * keep, slope)
    elif code == ACT_SOFTPLUS:
        for i in prange(m):
            for j in range(n_units):
                delta_z[i, j] = softplus_backward(delta_a[i, j], z[i, j], a[i, j] * keep, slope)
    elif code == ACT_ELU:
        for i in prange(m):
            for j in range(n_units):
                delta_z[i, j] = elu_backward(delta_a[i, j], z[i, j], a[i, j] * keep, slope)
    elif code == ACT_GELU:
        for i in prange(m):
            for j in range(n_units):
                delta_z[i, j] = gelu_backward(delta_a[i, j], z[i, j], a[i, j] * keep, slope)
    elif code == ACT_IDENTITY:
        for i in prange(m):
            for j in range(n_units):
                delta_z[i, j] = identity_backward(delta_a[i, j], z[i, j], a[i, j] * keep, slope)
    else:  # an unknown code (refused by the engine first): NaN, never a real derivative
        for i in prange(m):
            for j in range(delta_z.shape[1]):
                delta_z[i, j] = math.nan


load_without_compiler_setup(globals())
