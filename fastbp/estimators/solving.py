"""What the fit loop runs: one solver iteration, the held-out validation set, the full-batch
L-BFGS run, the compiled step of every solver, and the buffers partial_fit keeps between calls."""

import math
import sys
import time
import warnings
import weakref

import numpy as np
import scipy.optimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.optimize import _check_optimize_result

from ..engine import cpu
from ..kernels import optimizers
from ..kernels.optimizers import STOCHASTIC_SOLVERS
from ..kernels.config import EPOCH_CALL_SECONDS
from ..solvers.state import (
    QUICKPROP_MAX_GROWTH,
    RPROP_ETA_MINUS,
    RPROP_ETA_PLUS,
    RPROP_STEP_MAX,
    RPROP_STEP_MIN,
    check_lm_memory,
    lm_step,
)
from .stopping import TrainingDiverged, _divergence_message, _last_finite_kept


class _Iteration:
    """A solver's iteration function, ``run(deadline)``, with ``samples_done``:
    the samples the iteration under way has trained on (``progress``'s entry)."""

    __slots__ = ("run", "progress")

    def __init__(self, run, progress):
        self.run = run
        self.progress = progress

    def __call__(self, deadline):
        return self.run(deadline)

    @property
    def samples_done(self):
        return self.progress["samples_done"]


# What partial_fit keeps between its calls for each estimator (freed with it):
# caches, not model state, so not attributes (never pickled, saved, copied or
# compared with the model). Its batch buffers ...
_KEPT_WORKSPACES = weakref.WeakKeyDictionary()
# ... and the arrays of the state before its last call (the flat parameter
# vector and the optimizer's buffers): the next call copies the current state
# into them instead of into fresh memory when nothing else holds them (see
# _take_spare). Fresh memory is cleared by the operating system page by page:
# 18 ms of a 490 ms partial_fit epoch of a 2.1M-parameter network (three
# 8.4 MB copies).
_SPARE_ARRAYS = weakref.WeakKeyDictionary()


def _take_kept(store, estimator):
    """What ``estimator``'s last partial_fit kept in ``store`` (None if nothing), released."""
    try:
        return store.pop(estimator, None)
    except TypeError:  # an unhashable subclass: nothing kept
        return None


def _keep(store, estimator, value):
    try:
        store[estimator] = value
    except TypeError:
        pass


def _take_spare(spares, name, shape, dtype):
    """``spares[name]`` (removed from ``spares``) if it is a C-contiguous,
    writeable array of ``shape`` and ``dtype`` owning its memory that nothing
    but this function references (no view of it, no other name or container:
    writing into it can change nothing anyone can see); else None."""
    candidate = spares.pop(name, None)
    if (
        type(candidate) is not np.ndarray
        or candidate.base is not None
        or candidate.shape != shape
        or candidate.dtype != dtype
        or not candidate.flags.c_contiguous
        or not candidate.flags.writeable
    ):
        return None
    probe = np.empty(0)  # held the same way: by one local name
    if sys.getrefcount(candidate) != sys.getrefcount(probe):
        return None
    return candidate


class _Validation:
    """A held-out set monitored after every epoch: score and loss."""

    def __init__(self, X, y_score, Y, sample_weight, trainer):
        self.X = X
        self.y_score = y_score
        self.Y = Y
        self.sample_weight = sample_weight
        self.trainer = trainer
        self.rows = np.arange(X.shape[0], dtype=np.int64)

    def loss(self, flat):
        return self.trainer.dataset_loss(flat, self.rows)


class _SolverSteps:
    """L-BFGS's run and each solver's step (a part of :class:`BaseMultilayerPerceptron`)."""

    def _fit_lbfgs(self, X, y, sample_weight, network, flat, deadline):
        dtype = flat.dtype
        n = X.shape[0]
        trainer = self._trainer(network, X, y, sample_weight, dtype, 0, min(n, cpu.CHUNK_ROWS))
        rows = np.arange(n, dtype=np.int64)
        self._run_lbfgs(trainer, rows, flat, deadline)

    def _run_lbfgs(self, trainer, rows, flat, deadline):
        """SciPy's L-BFGS-B on ``trainer.loss_and_gradient(flat, rows)``; the result lands in ``flat``.

        ``trainer``: an ``engine.protocol.FullBatchObjective`` (a CPU or CUDA
        trainer, or the dask path's block objective).
        """
        best = {"loss": np.inf, "x": None}

        def loss_grad(packed):
            flat[:] = packed
            loss = trainer.loss_and_gradient(flat, rows, deadline=deadline)
            if loss < best["loss"]:
                best["loss"], best["x"] = loss, packed.copy()
            if deadline is not None and time.perf_counter() >= deadline:
                raise cpu.TimeUp
            return loss, trainer.gradient.astype(np.float64)

        def callback(intermediate_result):
            callback.iteration += 1
            callback.x, callback.fun = intermediate_result.x, intermediate_result.fun
            if self.verbose:
                print("Iteration %d, loss = %.8f" % (callback.iteration, intermediate_result.fun))

        callback.iteration = 0
        x0 = flat.astype(np.float64)
        callback.x, callback.fun = x0, np.nan
        try:
            opt_res = scipy.optimize.minimize(
                loss_grad,
                x0,
                method="L-BFGS-B",
                jac=True,
                callback=callback,
                options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol},
            )
        except cpu.TimeUp:
            warnings.warn(
                f"max_time={self.max_time}s reached after {callback.iteration} L-BFGS iterations; "
                "the optimization stopped before convergence (the best point evaluated is kept).",
                ConvergenceWarning,
            )
            self.n_iter_ = callback.iteration
            if best["x"] is None:  # not even one full evaluation: keep the start
                flat[:] = x0
                self.loss_ = np.nan
            else:
                flat[:] = best["x"]
                self.loss_ = best["loss"]
            return
        except KeyboardInterrupt as error:
            # Ctrl-C: keep the last accepted iterate, let the exception go on
            flat[:] = callback.x
            self.n_iter_ = callback.iteration
            self.loss_ = callback.fun
            error._fastbp_state_kept = True
            raise
        self.n_iter_ = _check_optimize_result("lbfgs", opt_res, self.max_iter)
        self.loss_ = opt_res.fun
        flat[:] = opt_res.x
        if not (np.isfinite(opt_res.fun) and np.isfinite(flat).all()):
            # the best finite point evaluated, or the start when there was none
            flat[:] = x0 if best["x"] is None else best["x"]
            self.loss_ = np.nan if best["x"] is None else best["loss"]
            restored = 0 if best["x"] is None else None
            error = TrainingDiverged(
                _divergence_message(self, opt_res.fun, self.n_iter_ + 1, _last_finite_kept(restored))
            )
            error._fastbp_state_kept = True
            raise error

    def _make_step(self, trainer, network, flat, train_rows, batch_size, optimizer, sample_weight, y):
        """A function running one iteration: (loss, samples seen, timed out, converged)."""
        n_samples = train_rows.shape[0]
        solver = self.solver
        if solver in STOCHASTIC_SOLVERS:
            n_batches = (n_samples + batch_size - 1) // batch_size
            # batches per kernel call: one to start with, then as many as take
            # about EPOCH_CALL_SECONDS (a partial_fit whose buffers come from the
            # previous call starts from that call's timing; a Hogwild! epoch then
            # starts its threads once, not three times)
            workspace = trainer.workspace  # (the device trainers keep none)

            def batches_per_call(seconds_per_batch):
                return int(max(1, min(n_batches, EPOCH_CALL_SECONDS / seconds_per_batch)))

            known = getattr(workspace, "seconds_per_batch", None)
            state = {
                "sample_idx": np.arange(n_samples, dtype=int), "chunk": batches_per_call(known) if known else 1,
                "samples_done": 0,
            }

            def stochastic_epoch(deadline):
                if self.shuffle:
                    # sklearn.utils.shuffle's draws (RandomState.shuffle of
                    # arange(n)) without its per-call validation overhead
                    state["sample_idx"] = state["sample_idx"][self._random_state.permutation(n_samples)]
                    rows = np.ascontiguousarray(train_rows[state["sample_idx"]], dtype=np.int64)
                else:
                    rows = train_rows
                learning_rate = optimizer.epoch_learning_rate(self.n_iter_)
                state["samples_done"] = 0
                # the host arrays may have changed since the last epoch (a restore)
                trainer.to_device(flat, optimizer.state_1, optimizer.state_2)
                try:
                    total, batch, timed_out = run_batches(learning_rate, rows, deadline)
                finally:  # the epoch's weights back to the host (also on Ctrl-C)
                    trainer.to_host(flat, optimizer.state_1, optimizer.state_2)
                n_seen = min(batch * batch_size, n_samples)
                return total / n_seen, n_seen, timed_out, False

            def run_batches(learning_rate, rows, deadline):
                total, batch, timed_out = 0.0, 0, False
                while batch < n_batches:
                    # Python regains control every EPOCH_CALL_SECONDS or so: max_time
                    # and Ctrl-C are honoured inside long epochs.
                    stop = min(n_batches, batch + state["chunk"])
                    tic = time.perf_counter()
                    total = trainer.train_epoch(
                        flat, rows, batch_size, batch, stop, optimizer.state_1, optimizer.state_2,
                        optimizer.counters, learning_rate, total,
                    )
                    elapsed = max(time.perf_counter() - tic, 1e-9)
                    per_batch = elapsed / (stop - batch)
                    state["chunk"] = batches_per_call(per_batch)
                    if stop - batch > 1 and workspace is not None:
                        workspace.seconds_per_batch = per_batch
                    batch = stop
                    state["samples_done"] = min(batch * batch_size, n_samples)
                    if not math.isfinite(total):  # diverged: no point in going on
                        break
                    if deadline is not None and time.perf_counter() >= deadline:
                        timed_out = True
                        break
                return total, batch, timed_out

            # (an object, not an attribute the function sets on itself: that
            # reference cycle kept the call's arrays alive until the cyclic
            # garbage collector ran, after the next partial_fit had started)
            return _Iteration(stochastic_epoch, state)

        if solver in ("rprop", "quickprop"):

            def full_batch_iteration(deadline):
                loss = trainer.loss_and_gradient(flat, train_rows, deadline=deadline)
                grads = trainer.gradient
                if solver == "rprop":
                    optimizers.rprop_step(
                        flat, grads, optimizer.state_1, optimizer.state_2, RPROP_ETA_MINUS, RPROP_ETA_PLUS,
                        RPROP_STEP_MIN, RPROP_STEP_MAX,
                    )
                else:
                    optimizers.quickprop_step(
                        flat, grads, optimizer.state_1, optimizer.state_2, float(self.learning_rate_init),
                        QUICKPROP_MAX_GROWTH,
                    )
                timed_out = deadline is not None and time.perf_counter() >= deadline
                return loss, n_samples, timed_out, False

            return full_batch_iteration

        # Levenberg-Marquardt
        n_out = int(network.units[-1])
        check_lm_memory(n_samples * n_out, network.n_params, flat.dtype.itemsize)
        weights = np.ones(n_samples) if sample_weight is None else sample_weight[train_rows].astype(np.float64)
        weight_sum = weights.sum()
        row_scale = np.sqrt(weights / weight_sum).astype(flat.dtype)
        jac = np.empty((n_samples * n_out, network.n_params), dtype=flat.dtype)
        l2_scale = float(self.alpha) / weight_sum
        state = {"damping": None}

        def lm_iteration(deadline):
            loss = trainer.loss_and_gradient(flat, train_rows, deadline=deadline)
            gradient = trainer.gradient.astype(np.float64)
            trainer.jacobian(flat, train_rows, row_scale, jac)
            J = jac.astype(np.float64, copy=False)
            if state["damping"] is None:
                state["damping"] = 1e-3 * max(float(np.mean(np.einsum("ij,ij->j", J, J))), 1e-12)
            accepted = False
            for _ in range(30):
                step = lm_step(J, gradient, network.n_weights, l2_scale, state["damping"])
                if step is not None:
                    candidate = (flat.astype(np.float64) + step).astype(flat.dtype)
                    new_loss = trainer.loss_and_gradient(candidate, train_rows, deadline=deadline)
                    if np.isfinite(new_loss) and new_loss < loss:
                        flat[:] = candidate
                        state["damping"] = max(state["damping"] / 10.0, 1e-15)
                        accepted = True
                        break
                state["damping"] *= 10.0
                if state["damping"] > 1e15:
                    break
            timed_out = deadline is not None and time.perf_counter() >= deadline
            return loss, n_samples, timed_out, not accepted

        return lm_iteration
