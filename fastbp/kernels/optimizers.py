"""The optimizers: their registry (name, code, hyper-parameters with defaults and checks, state
buffers), their compiled steps over the flat parameter vector, and the per-slice finish + step of
the threaded epoch.

Adding a mini-batch optimizer: its entry in ``OPTIMIZERS`` (and any new hyper-parameter's in
``HYPER_PARAMETERS``: the estimators then take it as a keyword with its default, check it,
document it and pass it down in the configuration vectors), its step below with a branch in
:func:`update_slice` (and :func:`step_size` if its rate is corrected per step), and its CUDA twin in
``_cuda/kernels.py`` (``finish_update``, which ``engine/cuda.py`` hands the hyper-parameters).
"""

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .cache import load_without_compiler_setup
from .codes import C_ADAM_STEP, F_L1, F_LEARNING_RATE, I_SOLVER, N_BASE_FCONFIG, N_BASE_ICONFIG
from .jit import INLINED, PARALLEL, SERIAL
from .views import flat_vector, scalar_like
from .layers import finalize_gradient, sum_squares


# --------------------------------------------------------------------------
# the registry
# --------------------------------------------------------------------------
class HyperParameter(NamedTuple):
    """An optimizer's hyper-parameter: an estimator parameter of the same name.

    ``interval`` is the check of a real value, ``(low, high, closed)`` as
    scikit-learn's ``Interval(Real, low, high, closed=closed)``; None for a
    boolean. ``doc`` is its numpydoc description in the estimators' docstrings.
    """

    name: str
    default: float
    interval: tuple
    doc: str


class Optimizer(NamedTuple):
    """One solver.

    ``code`` selects a mini-batch solver's compiled step (``SOLVER_*``); None for
    the full-batch solvers, whose step runs between full-batch passes
    (``estimators/solving.py``). ``hyper_parameters`` names the entries of
    ``HYPER_PARAMETERS`` it reads; ``state_buffers`` is how many per-parameter
    buffers it keeps between iterations (``state_1``, and ``state_2`` when 2).
    """

    name: str
    code: int
    hyper_parameters: tuple
    state_buffers: int
    summary: str


SOLVER_SGD = 0
SOLVER_ADAM = 1
SOLVER_RMSPROP = 2
SOLVER_ADAGRAD = 3
SOLVER_ADAMW = 4

HYPER_PARAMETERS = (
    HyperParameter("momentum", 0.9, (0, 1, "both"), "Momentum of 'sgd'."),
    HyperParameter("nesterovs_momentum", True, None, "Use Nesterov's momentum ('sgd' with ``momentum > 0``)."),
    HyperParameter("beta_1", 0.9, (0, 1, "left"), "Decay of the first-moment estimate of 'adam' and 'adamw'."),
    HyperParameter("beta_2", 0.999, (0, 1, "left"), "Decay of the second-moment estimate of 'adam' and 'adamw'."),
    HyperParameter("epsilon", 1e-8, (0, None, "neither"),
                   "Numerical-stability constant of 'adam', 'adamw', 'rmsprop' and 'adagrad'."),
    HyperParameter("weight_decay", 0.01, (0, None, "left"),
                   "Decoupled weight decay of 'adamw' (weights only, not biases)."),
    HyperParameter("rho", 0.9, (0, 1, "left"), "Decay of the running mean square of 'rmsprop'."),
)

OPTIMIZERS = (
    Optimizer("sgd", SOLVER_SGD, ("momentum", "nesterovs_momentum"), 1,
              "stochastic gradient descent with (Nesterov) momentum; ``batch_size=1`` is online SGD, "
              "``batch_size=n_samples`` full-batch gradient descent"),
    Optimizer("adam", SOLVER_ADAM, ("beta_1", "beta_2", "epsilon"), 2, "Adam (Kingma & Ba)"),
    Optimizer("rmsprop", SOLVER_RMSPROP, ("rho", "epsilon"), 1, "RMSProp (Tieleman & Hinton)"),
    Optimizer("adagrad", SOLVER_ADAGRAD, ("epsilon",), 1, "Adagrad (Duchi et al.)"),
    Optimizer("adamw", SOLVER_ADAMW, ("beta_1", "beta_2", "epsilon", "weight_decay"), 2,
              "Adam with decoupled weight decay (Loshchilov & Hutter)"),
    Optimizer("lbfgs", None, (), 1, "full batch: SciPy's L-BFGS-B"),
    Optimizer("rprop", None, (), 2, "full batch: iRprop- (initial step ``learning_rate_init``)"),
    Optimizer("quickprop", None, (), 2, "full batch: Fahlman's Quickprop (gradient term ``learning_rate_init``)"),
    Optimizer("lm", None, (), 1,
              "full batch: Levenberg-Marquardt, for ``loss='squared_error'`` and small networks (the "
              "Jacobian must fit in memory)"),
)

STOCHASTIC_SOLVERS = {o.name: o.code for o in OPTIMIZERS if o.code is not None}
FULL_BATCH_SOLVERS = tuple(o.name for o in OPTIMIZERS if o.code is None)
OPTIMIZER_BY_NAME = {o.name: o for o in OPTIMIZERS}

# Each hyper-parameter's slot: a boolean one's in the integer configuration vector, a real one's
# in the float vector, after the base slots of codes.py.
_BOOLEAN = tuple(h.name for h in HYPER_PARAMETERS if h.interval is None)
_REAL = tuple(h.name for h in HYPER_PARAMETERS if h.interval is not None)
HYPER_PARAMETER_SLOTS = {
    **{name: ("int", N_BASE_ICONFIG + i) for i, name in enumerate(_BOOLEAN)},
    **{name: ("float", N_BASE_FCONFIG + i) for i, name in enumerate(_REAL)},
}
N_ICONFIG = N_BASE_ICONFIG + len(_BOOLEAN)
N_FCONFIG = N_BASE_FCONFIG + len(_REAL)
I_NESTEROV = HYPER_PARAMETER_SLOTS["nesterovs_momentum"][1]
F_MOMENTUM = HYPER_PARAMETER_SLOTS["momentum"][1]
F_BETA_1 = HYPER_PARAMETER_SLOTS["beta_1"][1]
F_BETA_2 = HYPER_PARAMETER_SLOTS["beta_2"][1]
F_EPSILON = HYPER_PARAMETER_SLOTS["epsilon"][1]
F_WEIGHT_DECAY = HYPER_PARAMETER_SLOTS["weight_decay"][1]
F_RHO = HYPER_PARAMETER_SLOTS["rho"][1]


def _check_registry():
    names = [h.name for h in HYPER_PARAMETERS]
    assert len(set(names)) == len(names), "a hyper-parameter is listed twice"
    assert len(OPTIMIZER_BY_NAME) == len(OPTIMIZERS), "an optimizer is listed twice"
    codes = list(STOCHASTIC_SOLVERS.values())
    assert len(set(codes)) == len(codes), "two optimizers share a code"
    for o in OPTIMIZERS:
        assert set(o.hyper_parameters) <= set(names), f"{o.name} reads an unlisted hyper-parameter"
        assert o.state_buffers in (1, 2), f"{o.name}: state_buffers must be 1 or 2"


_check_registry()


# --------------------------------------------------------------------------
# optimizer steps over the flat parameter vector
# --------------------------------------------------------------------------
@njit(**PARALLEL)
def sgd_step(params, grads, velocity, learning_rate, momentum, nesterov):
    """scikit-learn's SGD with (Nesterov) momentum, in one pass."""
    lr = scalar_like(params, learning_rate)
    mu = scalar_like(params, momentum)
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


@njit(**INLINED)
def adam_constants(params, step_size, beta_1, beta_2, epsilon):
    """Adam's constants in the parameters' dtype: (b1, c1, b2, c2, -step_size, eps),
    ``c = 1 - b``. Every Adam loop below rounds with these."""
    return (
        scalar_like(params, beta_1), scalar_like(params, 1.0 - beta_1), scalar_like(params, beta_2), scalar_like(params, 1.0 - beta_2),
        scalar_like(params, -step_size), scalar_like(params, epsilon),
    )


@njit(**PARALLEL)
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


@njit(**PARALLEL)
def rmsprop_step(params, grads, mean_square, learning_rate, rho, epsilon):
    """RMSProp (Tieleman & Hinton): divide by a running RMS of the gradient."""
    lr = scalar_like(params, learning_rate)
    r = scalar_like(params, rho)
    c = scalar_like(params, 1.0 - rho)
    eps = scalar_like(params, epsilon)
    for i in range(params.shape[0]):
        g = grads[i]
        v = r * mean_square[i] + c * (g * g)
        mean_square[i] = v
        params[i] -= lr * g / (np.sqrt(v) + eps)


@njit(**PARALLEL)
def adagrad_step(params, grads, sum_square, learning_rate, epsilon):
    """Adagrad (Duchi et al.): divide by the root of the summed squared gradients."""
    lr = scalar_like(params, learning_rate)
    eps = scalar_like(params, epsilon)
    for i in range(params.shape[0]):
        g = grads[i]
        s = sum_square[i] + g * g
        sum_square[i] = s
        params[i] -= lr * g / (np.sqrt(s) + eps)


@njit(**PARALLEL)
def decay_weights(params, n_weights, factor):
    """AdamW's decoupled weight decay: ``W *= factor`` (weights, not biases)."""
    f = scalar_like(params, factor)
    for i in range(n_weights):
        params[i] *= f


@njit(**PARALLEL)
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


@njit(**PARALLEL)
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

@njit(**INLINED)
def fused_adam(icfg, fcfg):
    """Whether Adam's step is taken in the same pass as the gradient's last stage
    (:func:`row_adam_layer`, :func:`adam_two_parts`): Adam without L1."""
    return icfg[I_SOLVER] == SOLVER_ADAM and fcfg[F_L1] == 0.0

@njit(**INLINED)
def step_size(counters, icfg, fcfg):
    """The step's learning rate: Adam's is bias-corrected (its step counter advances)."""
    solver = icfg[I_SOLVER]
    learning_rate = fcfg[F_LEARNING_RATE]
    if solver == SOLVER_ADAM or solver == SOLVER_ADAMW:
        counters[C_ADAM_STEP] += 1
        t = float(counters[C_ADAM_STEP])
        return learning_rate * math.sqrt(_bias_correction(fcfg[F_BETA_2], t)) / _bias_correction(fcfg[F_BETA_1], t)
    return learning_rate


@njit(**INLINED)
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


@njit(**INLINED)
def update_slice(lo, hi, params, grads, state_1, state_2, icfg, fcfg, n_weights, rate):
    """The solver's step on parameters ``lo:hi`` with the finished gradient."""
    solver = icfg[I_SOLVER]
    p = flat_vector(params, lo, hi)
    g = flat_vector(grads, lo, hi)
    s_1 = flat_vector(state_1, lo, hi)
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
        adam_step(p, g, s_1, flat_vector(state_2, lo, hi), rate, fcfg[F_BETA_1], fcfg[F_BETA_2], fcfg[F_EPSILON])
    else:  # an unknown solver (refused by the engine first): NaN weights, never a silent no-step
        for i in range(p.shape[0]):
            p[i] = math.nan


@njit(**SERIAL)
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


@njit(**PARALLEL)
def adam_two_parts(params, g_0, g_1, first_moment, second_moment, lo, hi, alpha, weight_sum, rate, beta_1, beta_2,
                   epsilon):
    """Adam's step on weights ``lo:hi`` from two parts' raw gradient sums, in one
    pass that writes no gradient.

    The same numbers as :func:`finish_slice` (``g = ((g_0 + g_1) + alpha * w) / S``)
    followed by :func:`adam_step`.
    The loops index views of the slice: indexing the whole arrays at ``lo + i``
    kept them from vectorizing (3x slower).
    """
    a = scalar_like(params, alpha)
    s = scalar_like(params, weight_sum)
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


@njit(**SERIAL)
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


load_without_compiler_setup(globals())
