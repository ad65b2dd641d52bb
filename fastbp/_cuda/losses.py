"""The CUDA twin of ``fastbp.kernels.losses``: the output delta ``dL/dz`` and each row's loss,
for every code of the loss registry."""

import math

from numba import cuda

from ..kernels.activations import ACT_LOGISTIC, ACT_SOFTMAX
from ..kernels.losses import (
    LOSS_ABSOLUTE_ERROR,
    LOSS_BINARY_LOG_LOSS,
    LOSS_HUBER,
    LOSS_LOG_LOSS,
    LOSS_POISSON,
    LOSS_SQUARED_ERROR,
)


# --------------------------------------------------------------------------
# output delta and loss
# --------------------------------------------------------------------------
@cuda.jit(cache=True)
def output_delta_loss(acts, a_off, yb, swb, has_sw, out_code, loss_code, poisson_constant, clip, huber_delta,
                      deltas, z_off, row_loss, m, k):
    """Output delta ``dL/dz`` times the sample weight, and ``row_loss[i] = w_i l_i``.

    One thread per row; the expressions of the CPU's ``output_delta_loss``.
    """
    chain = loss_code == LOSS_SQUARED_ERROR and (out_code == ACT_SOFTMAX or out_code == ACT_LOGISTIC)
    for i in range(cuda.grid(1), m, cuda.gridsize(1)):
        w = swb[i] if has_sw else 1.0
        acc = 0.0
        ob = a_off + i * k
        db = z_off + i * k
        for j in range(k):
            p = acts[ob + j]
            t = yb[i * k + j]
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
            deltas[db + j] = g
        if chain:
            if out_code == ACT_LOGISTIC:
                for j in range(k):
                    p = acts[ob + j]
                    deltas[db + j] = deltas[db + j] * p * (1.0 - p)
            else:  # softmax (chain holds for these two only): J^T g = p * (g - <g, p>)
                dot = 0.0
                for j in range(k):
                    dot += deltas[db + j] * acts[ob + j]
                for j in range(k):
                    deltas[db + j] = acts[ob + j] * (deltas[db + j] - dot)
        if has_sw:
            for j in range(k):
                deltas[db + j] = deltas[db + j] * w
        row_loss[i] = acc * w
