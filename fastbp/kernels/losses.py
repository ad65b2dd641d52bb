"""Compiled output delta and loss: dL/dz of the output layer and each row's loss."""

import math
from typing import NamedTuple

from numba import njit, prange

from .cache import load_without_compiler_setup
from .activations import ACT_LOGISTIC, ACT_SOFTMAX
from .jit import EXACT_PARALLEL


# --------------------------------------------------------------------------
# the registry: one entry a loss (its name, code, matched output activation
# and what it asks of the targets); its output delta and loss are the branch
# of its code in output_delta_loss below (its CUDA twin: _cuda/losses.py)
# --------------------------------------------------------------------------
class Loss(NamedTuple):
    """One loss of the registry.

    Attributes
    ----------
    name : str
        The name the estimators (``loss=``) and the functional API take.
    code : int
        The kernels' integer code.
    output : str
        Its matched output activation: the output delta is ``y_pred - y`` (absolute error: its
        sign; Huber: its clipped form).
    regression : bool
        Whether MLPRegressor offers it (the classifier's loss is always 'log_loss').
    nonnegative_targets : bool
        Whether the targets must be >= 0.
    formula : str
        The loss of one row, for the documentation.
    """

    name: str
    code: int
    output: str
    regression: bool = True
    nonnegative_targets: bool = False
    formula: str = ""


LOSS_SQUARED_ERROR = 0
LOSS_LOG_LOSS = 1  # softmax + categorical cross-entropy
LOSS_BINARY_LOG_LOSS = 2  # logistic + binary cross-entropy (binary, multilabel)
LOSS_POISSON = 3  # exp + Poisson
LOSS_ABSOLUTE_ERROR = 4
LOSS_HUBER = 5

LOSSES = (
    Loss("squared_error", LOSS_SQUARED_ERROR, "identity", formula="(y_pred - y)**2 / 2"),
    Loss("log_loss", LOSS_LOG_LOSS, "softmax", regression=False, formula="-sum(y * log(p))"),
    Loss("log_loss", LOSS_BINARY_LOG_LOSS, "logistic", regression=False,
         formula="-sum(y * log(p) + (1 - y) * log(1 - p))"),
    Loss("poisson", LOSS_POISSON, "exp", nonnegative_targets=True, formula="y_pred - y * log(y_pred)"),
    Loss("absolute_error", LOSS_ABSOLUTE_ERROR, "identity", formula="|y_pred - y|"),
    Loss("huber", LOSS_HUBER, "identity",
         formula="r**2 / 2 for |r| <= huber_delta, else huber_delta * (|r| - huber_delta / 2)"),
)

# (output activation, loss name) -> loss code: the matched pairs, then squared error on softmax /
# logistic outputs, which goes through the output activation's Jacobian.
LOSS_PAIRS = {(loss.output, loss.name): loss.code for loss in LOSSES}
LOSS_PAIRS.update({("softmax", "squared_error"): LOSS_SQUARED_ERROR, ("logistic", "squared_error"): LOSS_SQUARED_ERROR})
# MLPRegressor's losses, by name
REGRESSION_LOSSES = {loss.name: loss for loss in LOSSES if loss.regression}


def needs_nonnegative_targets(name):
    """Whether the loss ``name`` takes only targets >= 0 (False for a name it does not know)."""
    return any(loss.nonnegative_targets for loss in LOSSES if loss.name == name)


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
