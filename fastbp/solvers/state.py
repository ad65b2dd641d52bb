"""Solver state between epochs (and between ``partial_fit`` calls), and the
Levenberg-Marquardt step.

The per-parameter buffers are flat vectors aligned with the network's flat
parameter vector; the compiled kernels update them in place.
"""

import math
import os

import numpy as np
import scipy.linalg

from ..kernels.optimizers import OPTIMIZER_BY_NAME, STOCHASTIC_SOLVERS

# Fahlman's maximum growth factor of a Quickprop step.
QUICKPROP_MAX_GROWTH = 1.75
# iRprop- constants (Igel & Huesken 2000; Riedmiller & Braun 1993).
RPROP_ETA_MINUS = 0.5
RPROP_ETA_PLUS = 1.2
RPROP_STEP_MIN = 1e-6
RPROP_STEP_MAX = 50.0


class OptimizerState:
    """A solver's learning rate, its schedule and its flat per-parameter buffers.

    Mirrors scikit-learn's ``SGDOptimizer`` / ``AdamOptimizer`` for the rate
    (invscaling updates it at the end of an epoch, adaptive divides it by 5 when
    progress stalls) and adds 'cosine' annealing from ``learning_rate_init`` to 0
    over ``max_iter`` epochs. 'adam' follows scikit-learn and ignores the
    invscaling and adaptive schedules (cosine applies).

    Buffers (``state_buffers`` of the optimizer's registry entry: ``state_1``,
    and ``state_2`` when 2): sgd velocity; adam / adamw first and second moments;
    rmsprop mean square; adagrad sum of squares; rprop previous gradient and step
    sizes; quickprop previous gradient and previous step. ``counters`` holds
    Adam's step and the dropout batch counter.
    """

    def __init__(self, solver, n_params, dtype, learning_rate_init, lr_schedule, power_t, max_iter):
        self.solver = solver
        self.learning_rate_init = float(learning_rate_init)
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule = lr_schedule
        self.power_t = power_t
        self.max_iter = max_iter
        two_buffers = OPTIMIZER_BY_NAME[solver].state_buffers == 2
        self.state_1 = np.zeros(n_params, dtype=dtype)
        self.state_2 = np.zeros(n_params if two_buffers else 0, dtype=dtype)
        if solver == "rprop":
            self.state_2[:] = learning_rate_init  # initial step sizes
        self.counters = np.zeros(2, dtype=np.int64)

    def copy(self, out_1=None, out_2=None):
        """An independent copy (a failed call must not touch the fitted state);
        the buffers are copied into ``out_1`` / ``out_2`` when given (arrays of
        their shape and dtype that nothing else uses), else into new arrays."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.state_1 = _copied(self.state_1, out_1)
        new.state_2 = _copied(self.state_2, out_2)
        new.counters = self.counters.copy()
        return new

    def matches(self, solver, n_params, dtype):
        return self.solver == solver and self.state_1.shape[0] == n_params and self.state_1.dtype == dtype

    def _scheduled(self, name):
        if name == "cosine":
            return self.solver in STOCHASTIC_SOLVERS
        return self.solver in STOCHASTIC_SOLVERS and self.solver != "adam"

    def epoch_learning_rate(self, epoch):
        """The rate the compiled steps use in epoch ``epoch`` (0-based).

        Adam corrects it per step for its moments' bias, inside the kernel.
        """
        if self.lr_schedule == "cosine" and self._scheduled("cosine"):
            progress = min(epoch / max(self.max_iter, 1), 1.0)
            return self.learning_rate_init * 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.solver == "adam":
            return self.learning_rate_init
        return self.learning_rate

    def iteration_ends(self, time_step):
        """Update the learning rate at the end of an epoch (invscaling)."""
        if self.lr_schedule == "invscaling" and self._scheduled("invscaling"):
            self.learning_rate = self.learning_rate_init / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        """True to stop; with the adaptive schedule, divide the rate by 5 instead."""
        if not (self.lr_schedule == "adaptive" and self._scheduled("adaptive")):
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False


def available_memory_bytes():
    """Physical memory of this machine (a bound for Levenberg-Marquardt's Jacobian)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 2**30


def check_lm_memory(n_rows, n_params, itemsize):
    """Raise a clear error when the Jacobian and normal equations would not fit."""
    needed = n_rows * n_params * max(itemsize, 8) + 3 * n_params * n_params * 8
    limit = available_memory_bytes() // 2
    if needed > limit:
        raise ValueError(
            f"solver='lm' needs the full Jacobian ({n_rows} residuals x {n_params} parameters) and "
            f"{n_params}x{n_params} normal equations: about {needed / 2**30:.1f} GiB, more than half "
            f"of this machine's memory ({limit / 2**30:.1f} GiB). Levenberg-Marquardt is for small "
            "networks and data sets; use solver='lbfgs' or a stochastic solver instead."
        )


def lm_step(J, gradient, n_weights, l2_scale, damping):
    """Solve ``(J.T J + l2_scale * D + damping * I) step = -gradient``.

    ``D`` is 1 on the weights, 0 on the biases (the Hessian of the L2 term).
    Returns None when the system is not positive definite.
    """
    A = J.T @ J
    diag = np.einsum("ii->i", A)
    diag[:n_weights] += l2_scale
    diag += damping
    try:
        factor = scipy.linalg.cho_factor(A, lower=True, check_finite=False)
        return -scipy.linalg.cho_solve(factor, gradient, check_finite=False)
    except (np.linalg.LinAlgError, ValueError):
        return None


def _copied(array, out):
    """``array`` copied into ``out`` (same shape and dtype) or, without ``out``, into a new array."""
    if out is None:
        return array.copy()
    if out.shape != array.shape or out.dtype != array.dtype:
        raise ValueError(f"cannot copy an array of {array.shape} {array.dtype} into {out.shape} {out.dtype}")
    np.copyto(out, array)
    return out
