"""Stopping and divergence: the non-finite input check, the divergence error and the last
finite state it restores, and the early-stopping / max_time rules of the epoch loop."""

import warnings

import numpy as np
from sklearn import get_config
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import assert_all_finite

from ..engine import cpu


# Dense X of at least this many values is checked for NaN and infinity with a
# matrix-vector product (BLAS) instead of NumPy's sum: on 60,000 x 784 float32
# 5.4 ms against 10.3 ms, one thread each; a partial_fit epoch of workload M
# takes about 240 ms.
_FINITE_CHECK_GEMV_MIN = 1 << 16


def _check_finite(X, estimator_name):
    """scikit-learn's check that dense X holds no NaN or infinity, with its errors.

    The same two passes as scikit-learn's ``_assert_all_finite``: a sum that is
    finite unless X holds a NaN or an infinity (or overflows), then, only if it
    is not, the element-wise check that raises the usual ``ValueError``. The sum
    is a matrix-vector product with ones on large contiguous X (about twice as
    fast as NumPy's pairwise sum).
    """
    if get_config()["assume_finite"] or X.size == 0:
        return
    with np.errstate(over="ignore", invalid="ignore"):
        if X.ndim == 2 and X.size >= _FINITE_CHECK_GEMV_MIN and (X.flags.c_contiguous or X.flags.f_contiguous):
            # one BLAS thread: as fast (memory bound), and no BLAS threads left
            # spinning next to the epoch's threads
            with cpu.compute_context(1, numba_parallel=False):
                total = (X @ np.ones(X.shape[1], dtype=X.dtype)).sum()
        else:
            total = X.sum()
    if not np.isfinite(total):
        assert_all_finite(X, allow_nan=False, estimator_name=estimator_name, input_name="X")


class TrainingDiverged(ValueError):
    """Training produced a non-finite loss or weights (learning rate too large,
    unscaled inputs). The estimator keeps the weights of the last iteration
    whose loss and weights were finite, and stays usable."""

    _fastbp_state_kept = True


# scikit-learn's own words for it: code written for its MLP matches them
NON_FINITE_WEIGHTS = (
    "Solver produced non-finite parameter weights. The input data may contain large values and need to be "
    "preprocessed."
)


def _last_finite_kept(restored):
    """What a diverged fit keeps: the last weights that give a finite loss
    (``restored``: the iteration they are from, 0 for the call's start, None for
    L-BFGS's best point)."""
    if restored is None:
        where = "the best point evaluated"
    else:
        where = f"after iteration {restored}" if restored else "from before this call's first iteration"
    return f"The estimator keeps the last weights that give a finite loss ({where}) and stays usable."


def _divergence_message(estimator, loss, failed, kept, sklearn_sentence=True):
    """The message of a diverged fit: scikit-learn's sentence (for the error,
    not the early-stopping warning), then what happened, what the estimator
    ``kept`` (a sentence) and how to avoid it."""
    what = "loss" if not np.isfinite(loss) else "weights"
    rate = ""
    if estimator.solver not in ("lbfgs", "lm", "rprop"):
        rate = f"lower learning_rate_init (now {estimator.learning_rate_init!r}), "
    return (
        (f"{NON_FINITE_WEIGHTS} " if sklearn_sentence else "")
        + f"Training diverged: the {what} became non-finite ({loss!r}) in iteration {failed}. {kept} "
        f"To fix it, {rate}scale the inputs (for instance with sklearn.preprocessing.StandardScaler), "
        "or increase alpha."
    )


class _LastFinite:
    """Recent states of an iterative fit, to fall back on when it diverges.

    Keeps the state at the start of the call and at the ends of the last two
    iterations: the parameters, the optimizer's buffers and the estimator's
    counters and curves. On divergence, :meth:`restore` goes back to the most
    recent of them whose weights give a finite training loss (the end of the
    last finite iteration can already hold weights too large to use).
    """

    _SCALARS = ("n_iter_", "t_", "loss_", "best_loss_", "_no_improvement_count", "best_validation_score_")
    _MISSING = object()  # an attribute the estimator did not have yet (loss_ before a first fit's first epoch)
    _CURVES = ("loss_curve_", "validation_scores_", "validation_loss_curve_")

    def __init__(self, estimator, flat, optimizer, start_weights=None, start_optimizer=None):
        # The call's start is held by reference where the caller trains on
        # copies and leaves the start's arrays untouched: ``start_weights``
        # writes the start's weights into a flat vector, ``start_optimizer`` is
        # the optimizer as it was. That saves a copy of the parameters and the
        # optimizer's buffers per call (25 MB of fresh memory per partial_fit of
        # a 2M-parameter network).
        self.start_weights = start_weights
        start = {
            "flat": flat.copy() if start_weights is None else None,
            "optimizer": optimizer.copy() if start_optimizer is None else start_optimizer,
        }
        self.states = [self._record(start, estimator)]
        self.recent = []

    def _capture(self, estimator, flat, optimizer, reuse):
        if reuse is None:
            state = {"flat": flat.copy(), "optimizer": optimizer.copy()}
        else:
            state = reuse
            state["flat"][:] = flat
            for name in ("state_1", "state_2", "counters"):
                getattr(state["optimizer"], name)[:] = getattr(optimizer, name)
        state["optimizer"].__dict__.update(
            {k: v for k, v in optimizer.__dict__.items() if k not in ("state_1", "state_2", "counters")}
        )
        return self._record(state, estimator)

    def _record(self, state, estimator):
        """Add the estimator's counters and curve lengths to ``state``."""
        state["scalars"] = {name: getattr(estimator, name, self._MISSING) for name in self._SCALARS}
        state["curves"] = {
            name: None if getattr(estimator, name, None) is None else len(getattr(estimator, name))
            for name in self._CURVES
        }
        return state

    def save(self, estimator, flat, optimizer):
        """Record the end of an iteration (reusing the older record's buffers)."""
        reuse = self.recent.pop(0) if len(self.recent) == 2 else None
        self.recent.append(self._capture(estimator, flat, optimizer, reuse))

    def restore(self, estimator, flat, optimizer, is_finite):
        """Go back to the latest state whose parameters pass ``is_finite(flat)``;
        return its iteration count."""
        for state in reversed(self.states + self.recent):
            if state["flat"] is None:
                self.start_weights(flat)
            else:
                flat[:] = state["flat"]
            if state is self.states[0] or is_finite(flat):
                break
        for name in ("state_1", "state_2", "counters"):
            getattr(optimizer, name)[:] = getattr(state["optimizer"], name)
        optimizer.__dict__.update(
            {k: v for k, v in state["optimizer"].__dict__.items() if k not in ("state_1", "state_2", "counters")}
        )
        for name, value in state["scalars"].items():
            if value is not self._MISSING:
                setattr(estimator, name, value)
            elif hasattr(estimator, name):
                delattr(estimator, name)
        for name, length in state["curves"].items():
            curve = getattr(estimator, name, None)
            if curve is not None and length is not None:
                del curve[length:]
        return estimator.n_iter_


class _StoppingRules:
    """The epoch loop's stopping rules (a part of :class:`BaseMultilayerPerceptron`)."""

    def _best_validation_kept(self):
        """What a diverged fit with early stopping keeps (a sentence)."""
        scores = np.asarray(self.validation_scores_, dtype=float)
        if scores.size and np.isfinite(self.best_validation_score_):
            best = int(np.flatnonzero(scores == self.best_validation_score_)[0]) + 1
            kept = f"the weights of iteration {best}, the best validation score ({self.best_validation_score_!r})"
        else:
            kept = "the weights it started from (no iteration gave a finite validation score)"
        return f"Early stopping ends the fit there and keeps {kept}."

    def _warn_max_time(self):
        warnings.warn(
            f"max_time={self.max_time}s reached after {self.n_iter_} iterations; "
            "the optimization stopped before convergence.",
            ConvergenceWarning,
        )

    def _update_no_improvement_count(self, early_stopping, validation, flat):
        if validation is not None:
            val_score = self._score(validation.X, validation.y_score, sample_weight=validation.sample_weight)
            self.validation_scores_.append(val_score)
            self.validation_loss_curve_.append(validation.loss(flat))
            if self.verbose:
                print("Validation score: %f" % self.validation_scores_[-1])
        if early_stopping:
            last_valid_score = self.validation_scores_[-1]
            if last_valid_score < (self.best_validation_score_ + self.tol):
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if last_valid_score > self.best_validation_score_:
                self.best_validation_score_ = last_valid_score
                self._best_coefs = [c.copy() for c in self.coefs_]
                self._best_intercepts = [i.copy() for i in self.intercepts_]
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]
