"""Compiled output delta and loss: dL/dz of the output layer and each row's loss."""

import math

from numba import njit, prange

from .cache import load_without_compiler_setup
from .activations import ACT_LOGISTIC, ACT_SOFTMAX
from .codes import (
    LOSS_ABSOLUTE_ERROR,
    LOSS_BINARY_LOG_LOSS,
    LOSS_HUBER,
    LOSS_LOG_LOSS,
    LOSS_POISSON,
    LOSS_SQUARED_ERROR,
)
from .jit import EXACT_PARALLEL


# --------------------------------------------------------------------------
# output delta and loss
# --------------------------------------------------------------------------
@njit(**EXACT_PARALLEL)
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


load_without_compiler_setup(globals())
