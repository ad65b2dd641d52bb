"""scikit-learn drop-in estimators: MLPClassifier and MLPRegressor.

The estimators validate and prepare the data once, run the epoch loop's control
(stopping rules, learning-rate schedules, early stopping, callbacks, verbose
output) in Python, and hand the mini-batches of each epoch to compiled kernel
calls (see ``_engine`` and ``_kernels``). The random draws (initialization, the
early-stopping split, each epoch's shuffle) are made with NumPy's
``RandomState`` in scikit-learn's order, so the same ``random_state`` gives the
same weights as scikit-learn's MLP.
"""

import math
import sys
import time
import warnings
import weakref
from numbers import Integral, Real

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import assert_all_finite, check_random_state, column_or_1d
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import _dask, _engine, _kernels
from ._codes import FULL_BATCH_SOLVERS, HIDDEN_ACTIVATIONS, LOSS_PAIRS, STOCHASTIC_SOLVERS
from ._config import DATA_PARALLEL_MAX_PARAMS, DATA_PARALLEL_MIN_ROWS, EPOCH_CALL_SECONDS
from ._functional import hidden_activation_names, make_network
from ._optimizers import (
    QUICKPROP_MAX_GROWTH,
    RPROP_ETA_MINUS,
    RPROP_ETA_PLUS,
    RPROP_STEP_MAX,
    RPROP_STEP_MIN,
    OptimizerState,
    check_lm_memory,
    lm_step,
)


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
            with _engine.compute_context(1, numba_parallel=False):
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


try:  # scikit-learn's callback API (1.9 and later)
    from sklearn.callback import CallbackSupportMixin, with_callbacks
except ImportError:  # pragma: no cover - older scikit-learn

    class CallbackSupportMixin:
        """Placeholder: this scikit-learn has no callback API."""

    def with_callbacks(method):
        return method


_ALL_SOLVERS = set(STOCHASTIC_SOLVERS) | set(FULL_BATCH_SOLVERS)

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


class _FitCallbacks:
    """scikit-learn callback hooks of one fit: the root task and one subtask per iteration."""

    def __init__(self, estimator, X, y, sample_weight):
        self.estimator = estimator
        self.X = X
        self.y = y
        self.metadata = None if sample_weight is None else {"sample_weight": sample_weight}
        iterative = estimator.solver != "lbfgs"
        self.ctx = estimator._init_callback_context(max_subtasks=estimator.max_iter if iterative else 0)
        self.ctx.call_on_fit_task_begin(estimator=estimator, X=X, y=y, metadata=self.metadata)
        self.iteration_ctx = None

    def _fitted_state(self):
        est = self.estimator
        return {"coefs_": [c.copy() for c in est.coefs_], "intercepts_": [b.copy() for b in est.intercepts_]}

    def begin_iteration(self):
        self.iteration_ctx = self.ctx.subcontext(task_name="iteration")
        self.iteration_ctx.call_on_fit_task_begin(
            estimator=self.estimator, X=self.X, y=self.y, metadata=self.metadata,
            reconstruction_attributes=self._fitted_state,
        )

    def end_iteration(self):
        """Call the iteration's end hooks; True when a callback asks to stop."""
        return self.iteration_ctx.call_on_fit_task_end(
            estimator=self.estimator, X=self.X, y=self.y, metadata=self.metadata,
            reconstruction_attributes=self._fitted_state,
        )

    def end(self):
        self.ctx.call_on_fit_task_end(
            estimator=self.estimator, X=self.X, y=self.y, metadata=self.metadata,
            reconstruction_attributes=self._fitted_state,
        )


class BaseMultilayerPerceptron(CallbackSupportMixin, BaseEstimator):
    """Shared machinery of :class:`MLPClassifier` and :class:`MLPRegressor`.

    Not to be used directly.
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(HIDDEN_ACTIVATIONS)), "array-like"],
        "solver": [StrOptions(_ALL_SOLVERS)],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive", "cosine"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "l1": [Interval(Real, 0, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left"), "array-like"],
        "init": [StrOptions({"glorot", "he", "lecun"})],
        "max_time": [None, Interval(Real, 0, None, closed="neither")],
        "negative_slope": [Interval(Real, 0, None, closed="left")],
        "maxout_pieces": [Interval(Integral, 1, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "rho": [Interval(Real, 0, 1, closed="left")],
        "n_jobs": [None, Integral],
        "hogwild": ["boolean"],
        "hogwild_merge_every": [Interval(Integral, 1, None, closed="left")],
        "device": [StrOptions({"cpu", "cuda"})],
    }

    @classmethod
    def _get_param_names(cls):
        """scikit-learn's parameter names, read once per class: scikit-learn reads
        the constructor's signature at every ``get_params``, which every ``fit``
        and ``partial_fit`` calls (a tenth of a millisecond each)."""
        names = cls.__dict__.get("_param_names_cache")
        if names is None:
            names = tuple(super()._get_param_names())
            cls._param_names_cache = names
        return list(names)

    def __init__(
        self,
        hidden_layer_sizes,
        activation,
        solver,
        alpha,
        batch_size,
        learning_rate,
        learning_rate_init,
        power_t,
        max_iter,
        loss,
        shuffle,
        random_state,
        tol,
        verbose,
        warm_start,
        momentum,
        nesterovs_momentum,
        early_stopping,
        validation_fraction,
        beta_1,
        beta_2,
        epsilon,
        n_iter_no_change,
        max_fun,
        l1,
        dropout,
        init,
        max_time,
        negative_slope,
        maxout_pieces,
        weight_decay,
        rho,
        n_jobs,
        hogwild,
        hogwild_merge_every,
        device,
    ):
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.l1 = l1
        self.dropout = dropout
        self.init = init
        self.max_time = max_time
        self.negative_slope = negative_slope
        self.maxout_pieces = maxout_pieces
        self.weight_decay = weight_decay
        self.rho = rho
        self.n_jobs = n_jobs
        self.hogwild = hogwild
        self.hogwild_merge_every = hogwild_merge_every
        self.device = device

    # ------------------------------------------------------------------
    # parameters and network description
    # ------------------------------------------------------------------
    def _check_params(self):
        """Validate the constructor parameters; return (hidden sizes, activation names, dropout rates)."""
        self._validate_params()
        if self.n_jobs == 0:
            raise ValueError("n_jobs == 0 has no meaning; use None (all cores), -1, or a positive number.")
        if self.hogwild:
            if self.solver not in STOCHASTIC_SOLVERS:
                raise ValueError(
                    f"hogwild=True is parallel online SGD: it needs a stochastic solver "
                    f"({sorted(STOCHASTIC_SOLVERS)}), got solver={self.solver!r}."
                )
            if isinstance(self.batch_size, str) or self.batch_size != 1:
                raise ValueError(
                    f"hogwild=True is parallel online SGD (one sample per step): it needs batch_size=1, "
                    f"got batch_size={self.batch_size!r}."
                )
            if self.device != "cpu":
                raise ValueError(
                    f"hogwild=True runs on CPU threads; it is not available with device={self.device!r}."
                )
        hidden_layer_sizes = self.hidden_layer_sizes
        if not hasattr(hidden_layer_sizes, "__iter__"):
            hidden_layer_sizes = [hidden_layer_sizes]
        hidden_layer_sizes = list(hidden_layer_sizes)
        for size in hidden_layer_sizes:
            if isinstance(size, bool) or not isinstance(size, (Integral, np.integer)) or size <= 0:
                raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}.")
        n_hidden = len(hidden_layer_sizes)
        names = hidden_activation_names(self.activation, n_hidden)
        if isinstance(self.dropout, Real):
            rates = [float(self.dropout)] * n_hidden
        else:
            rates = list(self.dropout)
            if len(rates) != n_hidden:
                raise ValueError(
                    f"dropout lists {len(rates)} rates but the network has {n_hidden} hidden layers."
                )
            for rate in rates:
                if isinstance(rate, bool) or not isinstance(rate, Real) or not 0 <= rate < 1:
                    raise ValueError(f"dropout rates must be numbers in [0, 1), got {self.dropout!r}.")
            rates = [float(rate) for rate in rates]
        if any(rates) and self.solver not in STOCHASTIC_SOLVERS:
            raise ValueError(
                f"dropout needs a stochastic solver ({sorted(STOCHASTIC_SOLVERS)}); solver={self.solver!r} "
                "optimizes a deterministic full-batch objective."
            )
        if self.solver == "lm" and self.loss != "squared_error":
            raise ValueError(
                f"solver='lm' (Levenberg-Marquardt) minimizes a sum of squares: it needs "
                f"loss='squared_error', got loss={self.loss!r}."
            )
        return [int(size) for size in hidden_layer_sizes], names, rates

    def _network(self, layer_units, names, rates):
        return make_network(
            layer_units, names, self.out_activation_, float(self.negative_slope), int(self.maxout_pieces), rates
        )

    def _fitted_network(self):
        """The network of the fitted parameters (as it was fitted)."""
        names, pieces, slope = self._fitted_layers
        units = [self.coefs_[0].shape[0]] + [b.shape[0] // (pieces if name == "maxout" else 1)
                                              for b, name in zip(self.intercepts_, names + [None])]
        return make_network(units, names, self.out_activation_, slope, pieces)

    def _set_parameters(self, network, flat):
        """Point ``coefs_`` / ``intercepts_`` at views of the flat vector ``flat``."""
        self.coefs_, self.intercepts_ = network.views(flat)

    def _loss_code(self):
        return LOSS_PAIRS[(self.out_activation_, self.loss)]

    # ------------------------------------------------------------------
    # initialization
    # ------------------------------------------------------------------
    def _initialize(self, y, network, names, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = network.n_layers + 1

        flat = np.empty(network.n_params, dtype=dtype)
        coefs, intercepts = network.views(flat)
        for layer, (W, b) in enumerate(zip(coefs, intercepts)):
            fan_in, fan_out = W.shape
            if self.init == "glorot":
                # scikit-learn's rule: factor 2 for logistic networks, else 6
                if isinstance(self.activation, str):
                    logistic = HIDDEN_ACTIVATIONS[self.activation] == HIDDEN_ACTIVATIONS["logistic"]
                else:
                    feeds = names[min(layer, len(names) - 1)] if names else "identity"
                    logistic = HIDDEN_ACTIVATIONS[feeds] == HIDDEN_ACTIVATIONS["logistic"]
                bound = np.sqrt((2.0 if logistic else 6.0) / (fan_in + fan_out))
            elif self.init == "he":
                bound = np.sqrt(6.0 / fan_in)
            else:  # lecun
                bound = np.sqrt(3.0 / fan_in)
            # drawn in scikit-learn's order: W(l) then b(l), layer by layer
            W[...] = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
            b[...] = self._random_state.uniform(-bound, bound, fan_out)
        self._set_parameters(network, flat)

        self._best_coefs = [c.copy() for c in self.coefs_]
        self._best_intercepts = [i.copy() for i in self.intercepts_]

        if self.solver != "lbfgs":
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None
            self.validation_loss_curve_ = None

    # ------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------
    def _fit(self, X, y, sample_weight=None, incremental=False, X_val=None, y_val=None, sample_weight_val=None):
        """Fit, or continue fitting; on any error the estimator is left as it was.

        Two exceptions leave the model at a consistent later state instead (see
        :class:`TrainingDiverged` and Ctrl-C in the class docstring): they carry
        ``_fastbp_state_kept``.
        """
        snapshot = self._snapshot()
        try:
            return self._fit_unprotected(X, y, sample_weight, incremental, X_val, y_val, sample_weight_val)
        except BaseException as error:
            if not getattr(error, "_fastbp_state_kept", False):
                self._restore(snapshot)
            raise

    def _snapshot(self):
        """What :meth:`_restore` needs to undo a call: the attributes, the lists the
        fit appends to (copied), and the state of a RandomState given as random_state."""
        attributes = {key: list(value) if isinstance(value, list) else value for key, value in self.__dict__.items()}
        rng = self.random_state if isinstance(self.random_state, np.random.RandomState) else None
        return attributes, rng, None if rng is None else rng.get_state()

    def _check_continuation(self, network):
        """Raise ValueError (before anything changes) when a warm start or
        partial_fit cannot continue the fitted model with ``network`` and the
        current parameters."""
        start_over = "fit with warm_start=False to start over"
        fitted = [c.shape for c in self.coefs_]
        wanted = [(int(a), int(b)) for a, b in zip(network.units[:-1], network.cols)]
        if fitted[:-1] + [fitted[-1][0]] == wanted[:-1] + [wanted[-1][0]] and fitted != wanted:
            raise ValueError(
                f"y has {wanted[-1][1]} output column(s) but the model was fitted with {fitted[-1][1]}; "
                f"warm_start and partial_fit continue the same network ({start_over})."
            )
        if fitted != wanted:
            raise ValueError(
                "the network changed since the last fit (hidden_layer_sizes, activation or maxout_pieces); "
                f"warm_start and partial_fit continue the same network ({start_over})."
            )
        if self.solver == "lbfgs":
            return
        if not hasattr(self, "loss_curve_"):
            raise ValueError(f"solver={self.solver!r} cannot continue a model fitted with solver='lbfgs'.")
        # the records the stopping rule reads
        records = ("validation_scores_", "best_validation_score_") if self.early_stopping else ("best_loss_",)
        if any(getattr(self, name, None) is None for name in records):
            raise ValueError(
                f"early_stopping={self.early_stopping} cannot continue a model fitted with "
                f"early_stopping={not self.early_stopping} (its best-loss or validation records do not exist); "
                f"{start_over}."
            )

    def _restore(self, snapshot):
        attributes, rng, rng_state = snapshot
        self.__dict__.clear()
        self.__dict__.update(attributes)
        if rng is not None:
            rng.set_state(rng_state)

    def _fit_unprotected(self, X, y, sample_weight, incremental, X_val, y_val, sample_weight_val):
        start_time = time.perf_counter()
        # --- dask input (issue 7): fit over the blocks where they live, see fastbp/_dask.py
        # (dask itself is imported only for a dask collection) ---
        if _dask.is_dask_collection(X):
            return _dask.fit_dask(self, X, y, sample_weight, incremental, X_val, y_val, sample_weight_val, start_time)
        # --- end of dask input ---
        hidden_layer_sizes, names, rates = self._check_params()
        if self.device == "cuda":
            from . import _cuda  # only for device='cuda': the CPU path never imports CUDA

            _cuda.require_cuda()
            _cuda.check_solver(self.solver)
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)

        X, y, y_labels = self._validate_input(X, y, incremental, reset=first_pass)
        if not first_pass and X.dtype != self.coefs_[0].dtype:
            # a fitted model keeps its dtype (as scikit-learn's warm_start / partial_fit)
            X = X.astype(self.coefs_[0].dtype)
        n_samples, n_features = X.shape
        sample_weight = self._combined_sample_weight(sample_weight, X, y_labels, incremental)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("Some value(s) of y are negative which is not allowed for the poisson loss.")
        self.n_outputs_ = y.shape[1]
        validation = None
        if X_val is not None or y_val is not None:
            if X_val is None or y_val is None:
                raise ValueError("X_val and y_val must be given together.")
            if incremental:
                raise ValueError("partial_fit takes no validation data; pass it to fit.")
            validation = self._validate_validation_data(X_val, y_val, sample_weight_val, X.dtype)
        elif sample_weight_val is not None:
            raise ValueError("sample_weight_val is given without X_val and y_val.")

        layer_units = [n_features] + hidden_layer_sizes + [self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self.out_activation_ = self._output_activation(y)
        network = self._network(layer_units, names, rates)
        if first_pass:
            self._initialize(y, network, names, X.dtype)
        else:
            self._check_continuation(network)
        self._fitted_layers = (names, int(self.maxout_pieces), float(self.negative_slope))

        # The parameters now live in one fresh flat vector (a copy): the old
        # arrays stay untouched, so a failed call loses nothing (and they are
        # the call's start, should the fit diverge).
        start_params = (list(self.coefs_), list(self.intercepts_))
        # what the last partial_fit kept (batch buffers, spare arrays): reused
        # by this partial_fit, released by fit (any solver)
        kept, spares = _take_kept(_KEPT_WORKSPACES, self), _take_kept(_SPARE_ARRAYS, self) or {}
        if not incremental:
            kept, spares = None, {}
        flat = network.pack(*start_params, X.dtype, out=_take_spare(spares, "flat", (network.n_params,), X.dtype))
        self._set_parameters(network, flat)

        def start_weights(out):
            network.pack(*start_params, out.dtype, out=out)

        seed = int(self._random_state.randint(np.iinfo(np.int32).max)) if network.has_dropout else 0

        parts = self._thread_parts(network, n_samples)
        # (Hogwild!'s threads run single-threaded kernels, as the data-parallel epoch's)
        with _engine.compute_context(self.n_jobs, data_parallel=parts > 1 or bool(self.hogwild)):
            callback_ctx = self._begin_callbacks(X, y_labels, sample_weight)
            deadline = None if self.max_time is None else start_time + float(self.max_time)
            if self.solver == "lbfgs":
                self._fit_lbfgs(X, y, sample_weight, network, flat, deadline)
            else:
                self._fit_iterative(
                    X, y, sample_weight, network, flat, incremental, validation, seed, deadline, callback_ctx,
                    parts, start_weights, kept, spares, start_params[0][0].base if start_params[0] else None,
                )
            if callback_ctx is not None:
                callback_ctx.end()

        return self

    def _combined_sample_weight(self, sample_weight, X, y_labels, incremental):
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype, ensure_non_negative=True)
            if not sample_weight.sum() > 0:
                raise ValueError("sample_weight must have a positive sum.")
        return sample_weight

    def _config(self, dtype, seed):
        solver = STOCHASTIC_SOLVERS.get(self.solver, 0)
        return _engine.make_config(
            self._loss_code(),
            poisson_constant=True,
            solver_code=solver,
            nesterov=bool(self.nesterovs_momentum) and self.momentum > 0,
            seed=seed,
            alpha=float(self.alpha),
            l1=float(self.l1),
            momentum=float(self.momentum),
            beta_1=float(self.beta_1),
            beta_2=float(self.beta_2),
            epsilon=float(self.epsilon),
            clip=float(np.finfo(dtype).eps),
            huber_delta=float(getattr(self, "huber_delta", 1.0)),
            weight_decay=float(self.weight_decay),
            rho=float(self.rho),
        )

    def _trainer(self, network, X, Y, sample_weight, dtype, seed, batch_rows, parts=1, hogwild=False,
                 workspace=None):
        """The kernels' driver for one data set; ``hogwild``: the training data's, which runs
        Hogwild! epochs when the estimator asks for them (``hogwild=True``, several threads);
        ``workspace``: an earlier trainer's, reused if it fits."""
        data = X if isinstance(X, _engine.InputData) else _engine.InputData(X, dtype)
        icfg, fcfg = self._config(dtype, seed)
        if self.device == "cuda":
            from ._cuda import CudaTrainer

            return CudaTrainer(network, data, Y.astype(dtype), sample_weight, icfg, fcfg, batch_rows=batch_rows)
        hogwild_threads = _engine.effective_n_jobs(self.n_jobs) if hogwild and self.hogwild else 1
        return _engine.Trainer(
            network, data, Y.astype(dtype), sample_weight, icfg, fcfg, batch_rows=batch_rows, parts=parts,
            hogwild_threads=hogwild_threads, hogwild_merge_every=self.hogwild_merge_every, workspace=workspace,
        )

    # --- callbacks ---------------------------------------------------------
    def _begin_callbacks(self, X, y, sample_weight):
        """The fit's callback context (None without callbacks): the fit is the root
        task, each epoch / iteration of the iterative solvers a subtask."""
        if not getattr(self, "_skl_callbacks", None):
            return None
        return _FitCallbacks(self, X, y, sample_weight)

    # --- L-BFGS ------------------------------------------------------------
    def _fit_lbfgs(self, X, y, sample_weight, network, flat, deadline):
        dtype = flat.dtype
        n = X.shape[0]
        trainer = self._trainer(network, X, y, sample_weight, dtype, 0, min(n, _engine.CHUNK_ROWS))
        rows = np.arange(n, dtype=np.int64)
        self._run_lbfgs(trainer, rows, flat, deadline)

    def _run_lbfgs(self, trainer, rows, flat, deadline):
        """SciPy's L-BFGS-B on ``trainer.loss_and_gradient(flat, rows)``; the result lands in ``flat``.

        ``trainer`` is an :class:`_engine.Trainer` or anything with its
        ``loss_and_gradient`` and ``ws.grads`` (the dask path's block objective).
        """
        best = {"loss": np.inf, "x": None}

        def loss_grad(packed):
            flat[:] = packed
            loss = trainer.loss_and_gradient(flat, rows, deadline=deadline)
            if loss < best["loss"]:
                best["loss"], best["x"] = loss, packed.copy()
            if deadline is not None and time.perf_counter() >= deadline:
                raise _engine.TimeUp
            return loss, trainer.ws.grads.astype(np.float64)

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
        except _engine.TimeUp:
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

    # --- every other solver: one iteration (epoch) at a time -----------------
    def _split_validation(self, X, y, sample_weight, dtype, network):
        """scikit-learn's early-stopping split, as row indices (X is not copied)."""
        should_stratify = is_classifier(self) and self.n_outputs_ == 1
        stratify = y if should_stratify else None
        train_idx, val_idx = train_test_split(
            np.arange(X.shape[0]),
            random_state=self._random_state,
            test_size=self.validation_fraction,
            stratify=stratify,
        )
        if val_idx.shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the size of your dataset."
            )
        X_val = X[val_idx]
        Y_val = y[val_idx]
        y_score = self._label_binarizer.inverse_transform(Y_val) if is_classifier(self) else Y_val
        if not is_classifier(self) and y_score.shape[1] == 1:
            y_score = y_score.ravel()
        sw_val = None if sample_weight is None else sample_weight[val_idx]
        trainer = self._trainer(network, X_val, Y_val, sw_val, dtype, 0, min(val_idx.shape[0], _engine.CHUNK_ROWS))
        return train_idx.astype(np.int64), _Validation(X_val, y_score, Y_val, sw_val, trainer)

    def _thread_parts(self, network, n_samples):
        """Threads of the data-parallel epoch (1: single-threaded kernels, threaded BLAS).

        Mini-batch solvers split each batch over the threads when every thread
        gets at least DATA_PARALLEL_MIN_ROWS rows and the network is small
        enough that summing the threads' gradients costs little next to the
        products (DATA_PARALLEL_MAX_PARAMS); otherwise BLAS's own threads share
        each product.
        """
        if self.solver not in STOCHASTIC_SOLVERS:
            return 1
        threads = _engine.numba_n_jobs(self.n_jobs)
        batch = min(200, n_samples) if self.batch_size == "auto" else min(int(self.batch_size), n_samples)
        if threads > 1 and batch >= threads * DATA_PARALLEL_MIN_ROWS and network.n_params <= DATA_PARALLEL_MAX_PARAMS:
            return threads
        return 1

    def _fit_iterative(self, X, y, sample_weight, network, flat, incremental, validation, seed, deadline,
                       callback_ctx, parts, start_weights, kept, spares, start_flat):
        """Iterate a mini-batch or full-batch solver (all but lbfgs) from ``flat``.

        partial_fit's calls (``incremental``) pass what the last call kept:
        ``kept`` (its batch buffers, or None) and ``spares`` (arrays the copies
        may be written into, :func:`_take_spare`), and ``start_flat``, the array
        the start's parameters are views of (None if not known); a successful
        call keeps its buffers and its start's arrays for the next one.
        """
        dtype = flat.dtype
        n_params = network.n_params
        start_optimizer = None
        if incremental and hasattr(self, "_optimizer") and self._optimizer.matches(self.solver, n_params, dtype):
            # trains on a copy: the old state stays as it was, the call's start
            start_optimizer = self._optimizer
            optimizer = start_optimizer.copy(
                _take_spare(spares, "state_1", start_optimizer.state_1.shape, dtype),
                _take_spare(spares, "state_2", start_optimizer.state_2.shape, dtype),
            )
        else:
            optimizer = OptimizerState(
                self.solver, n_params, dtype, self.learning_rate_init, self.learning_rate, self.power_t,
                self.max_iter,
            )
        self._optimizer = optimizer

        early_stopping = self.early_stopping
        if validation is not None:
            validation.trainer = self._trainer(
                network, validation.X, validation.Y, validation.sample_weight, dtype, 0,
                min(validation.X.shape[0], _engine.CHUNK_ROWS),
            )
            train_rows = np.arange(X.shape[0], dtype=np.int64)
        elif early_stopping:
            train_rows, validation = self._split_validation(X, y, sample_weight, dtype, network)
        else:
            train_rows = np.arange(X.shape[0], dtype=np.int64)
        if validation is not None:
            if self.validation_scores_ is None:
                self.validation_scores_ = []
            if getattr(self, "validation_loss_curve_", None) is None:
                self.validation_loss_curve_ = []

        n_samples = train_rows.shape[0]
        if self.solver in STOCHASTIC_SOLVERS:
            if self.batch_size == "auto":
                batch_size = min(200, n_samples)
            else:
                if self.batch_size > n_samples:
                    warnings.warn(
                        "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped"
                    )
                batch_size = int(np.clip(self.batch_size, 1, n_samples))
        else:
            batch_size = min(n_samples, _engine.CHUNK_ROWS)  # full batch, computed in chunks
        data = _engine.InputData(X, dtype)
        # partial_fit keeps its batch buffers for the next call (no fresh memory
        # to fault in at every call)
        trainer = self._trainer(
            network, data, y, sample_weight, dtype, seed, batch_size, parts, hogwild=True, workspace=kept
        )
        step = self._make_step(trainer, network, flat, train_rows, batch_size, optimizer, sample_weight, y)
        self._run_iterations(
            trainer, step, flat, optimizer, train_rows, early_stopping, validation, incremental, deadline,
            callback_ctx, start_weights, start_optimizer,
        )
        if incremental and isinstance(trainer, _engine.Trainer):
            # (kept once the call is done: never shared with a call still running)
            _keep(_KEPT_WORKSPACES, self, trainer.ws)
        if incremental and start_optimizer is not None:
            # the state this call started from, for the next call's copies
            spares = {"state_1": start_optimizer.state_1, "state_2": start_optimizer.state_2}
            if isinstance(start_flat, np.ndarray):
                spares["flat"] = start_flat
            _keep(_SPARE_ARRAYS, self, spares)

    def _run_iterations(self, trainer, step, flat, optimizer, train_rows, early_stopping, validation, incremental,
                        deadline, callback_ctx, start_weights=None, start_optimizer=None):
        """The iteration loop of every solver but lbfgs: ``step(deadline)`` per iteration, then the
        curves, stopping rules, divergence fallback and callbacks.

        ``trainer`` is only asked for ``gives_finite_loss(train_rows)`` (divergence, Ctrl-C); the
        dask path passes its block objective. ``start_weights`` and ``start_optimizer``: the call's
        start, held by reference (see :class:`_LastFinite`); copied when not given.
        """
        diverged = None
        self.n_iter_ = 0
        last_finite = _LastFinite(self, flat, optimizer, start_weights, start_optimizer)
        try:
            for _ in range(self.max_iter):
                if callback_ctx is not None:
                    callback_ctx.begin_iteration()
                try:
                    loss, n_seen, timed_out, converged = step(deadline)
                except _engine.TimeUp:  # a full-batch pass abandoned: the last iterate stands
                    self._warn_max_time()
                    break
                if not (np.isfinite(loss) and np.isfinite(flat).all()):
                    failed = self.n_iter_ + 1
                    restored = last_finite.restore(self, flat, optimizer, trainer.gives_finite_loss(train_rows))
                    diverged = (loss, failed, restored)
                    break
                self.n_iter_ += 1
                self.loss_ = loss
                self.t_ += n_seen
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))

                self._update_no_improvement_count(early_stopping, validation, flat)
                optimizer.iteration_ends(self.t_)
                if not (incremental or self.n_iter_ == self.max_iter):
                    # (the loop ends after this iteration otherwise: nothing to fall back on)
                    last_finite.save(self, flat, optimizer)

                if callback_ctx is not None and callback_ctx.end_iteration():
                    break
                if timed_out:
                    self._warn_max_time()
                    break
                if converged:
                    break
                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = (
                            "Validation score did not improve more than "
                            "tol=%f for %d consecutive epochs." % (self.tol, self.n_iter_no_change)
                        )
                    else:
                        msg = (
                            "Training loss did not improve more than tol=%f"
                            " for %d consecutive epochs." % (self.tol, self.n_iter_no_change)
                        )
                    if optimizer.trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0

                if incremental:
                    break

                if self.n_iter_ == self.max_iter:
                    kind = "Stochastic Optimizer" if self.solver in STOCHASTIC_SOLVERS else f"Solver {self.solver!r}"
                    warnings.warn(
                        "%s: Maximum iterations (%d) reached and the optimization hasn't converged yet."
                        % (kind, self.max_iter),
                        ConvergenceWarning,
                    )
        except KeyboardInterrupt as error:
            # Ctrl-C: the model keeps the last completed step (the kernels return
            # to Python every EPOCH_CALL_SECONDS or so) and the exception goes on
            if not np.isfinite(flat).all():
                last_finite.restore(self, flat, optimizer, trainer.gives_finite_loss(train_rows))
            else:
                self.t_ += getattr(step, "samples_done", 0)
            error._fastbp_state_kept = True
            raise

        if early_stopping:
            # restore the best weights
            self.coefs_ = self._best_coefs
            self.intercepts_ = self._best_intercepts
        if diverged is not None:
            loss, failed, restored = diverged
            if not early_stopping:
                raise TrainingDiverged(_divergence_message(self, loss, failed, _last_finite_kept(restored)))
            # as scikit-learn (its issue #29504): the fit completes with the best
            # validation weights; a warning says what happened
            warnings.warn(
                _divergence_message(self, loss, failed, self._best_validation_kept(), sklearn_sentence=False),
                ConvergenceWarning,
            )

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
            workspace = getattr(trainer, "ws", None)  # (the device trainers keep none)

            def batches_per_call(seconds_per_batch):
                return int(max(1, min(n_batches, EPOCH_CALL_SECONDS / seconds_per_batch)))

            known = getattr(workspace, "seconds_per_batch", None)
            state = {
                "sample_idx": np.arange(n_samples, dtype=int), "chunk": batches_per_call(known) if known else 1,
                "samples_done": 0,
            }
            on_device = hasattr(trainer, "to_device")

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
                if on_device:  # the host arrays may have changed since the last epoch (a restore)
                    trainer.to_device(flat, optimizer.state_1, optimizer.state_2)
                try:
                    total, batch, timed_out = run_batches(learning_rate, rows, deadline)
                finally:
                    if on_device:  # the epoch's weights back to the host (also on Ctrl-C)
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
                grads = trainer.ws.grads
                if solver == "rprop":
                    _kernels.rprop_step(
                        flat, grads, optimizer.state_1, optimizer.state_2, RPROP_ETA_MINUS, RPROP_ETA_PLUS,
                        RPROP_STEP_MIN, RPROP_STEP_MAX,
                    )
                else:
                    _kernels.quickprop_step(
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
            gradient = trainer.ws.grads.astype(np.float64)
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

    @with_callbacks
    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None, sample_weight_val=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            The input data. float32 is trained in float32, float64 in float64,
            other numeric types are converted to float64. A NumPy memmap is
            read batch by batch, never copied. With a dask array (and dask
            arrays or NumPy arrays for y and sample_weight) the fit runs on
            the cluster's blocks: see ``fastbp._dask`` and the README.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values (class labels in classification, real numbers in
            regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        X_val : {array-like, sparse matrix} of shape (n_val_samples, n_features), default=None
            Validation data. When given, the validation score and loss are
            recorded after every epoch (``validation_scores_``,
            ``validation_loss_curve_``); with ``early_stopping=True`` they decide
            when to stop, instead of a split of X.
        y_val : array-like of shape (n_val_samples,) or (n_val_samples, n_outputs), default=None
            Validation targets.
        sample_weight_val : array-like of shape (n_val_samples,), default=None
            Validation sample weights.

        Returns
        -------
        self : object
            The trained model.
        """
        return self._fit(
            X, y, sample_weight=sample_weight, incremental=False, X_val=X_val, y_val=y_val,
            sample_weight_val=sample_weight_val,
        )

    def _check_solver(self):
        if self.solver not in STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. %s is not stochastic." % self.solver
            )
        return True

    # ------------------------------------------------------------------
    # prediction
    # ------------------------------------------------------------------
    def _forward_pass_fast(self, X, check_input=True):
        """Output-layer activations for X (validated unless ``check_input`` is False)."""
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False, dtype=(np.float64, np.float32))
        network = self._fitted_network()
        # as scikit-learn's products: float64 when X or the weights are float64
        dtype = np.result_type(getattr(X, "dtype", np.float64), self.coefs_[0].dtype)
        flat = network.pack(self.coefs_, self.intercepts_, dtype)
        if getattr(self, "device", "cpu") == "cuda":
            from . import _cuda

            _cuda.require_cuda()
            return _cuda.predict_output(network, flat, X)
        return _engine.predict_output(network, flat, X, n_jobs=self.n_jobs)

    def _score_with_function(self, X, y, sample_weight, score_function):
        """Score without input validation (keeps feature names out of the way)."""
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class MLPClassifier(ClassifierMixin, BaseMultilayerPerceptron):
    """Multi-layer perceptron classifier trained by compiled backpropagation.

    A drop-in replacement for :class:`sklearn.neural_network.MLPClassifier`:
    the same parameters, defaults, attributes and results (the same
    ``random_state`` gives the same weights in float64), with every epoch run in
    compiled Numba kernels. It optimizes the log-loss with L-BFGS, SGD or Adam.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of neurons in the ith hidden layer.
    activation : str or list of str, default='relu'
        Activation of the hidden layers, one name for all or one per hidden
        layer: 'identity', 'logistic' (alias 'sigmoid'), 'tanh', 'relu',
        'leaky_relu', 'swish' (alias 'silu'), 'softplus', 'elu', 'gelu' (exact
        erf form), 'maxout'.
    solver : str, default='adam'
        The weight optimizer. Mini-batch: 'sgd' (momentum, Nesterov;
        ``batch_size=1`` is online SGD, ``batch_size=n_samples`` full-batch
        gradient descent), 'adam', 'adamw' (decoupled weight decay), 'rmsprop',
        'adagrad'. Full batch: 'lbfgs' (SciPy's L-BFGS-B), 'rprop' (iRprop-,
        initial step ``learning_rate_init``), 'quickprop' (Fahlman's, gradient
        term ``learning_rate_init``), 'lm' (Levenberg-Marquardt, for
        ``loss='squared_error'`` and small networks: the Jacobian must fit in
        memory).
    alpha : float, default=0.0001
        Strength of the L2 penalty (divided by the batch's sample size or sum of
        sample weights when added to the loss).
    batch_size : int or 'auto', default='auto'
        Mini-batch size of the stochastic solvers; 'auto' is
        ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive', 'cosine'}, default='constant'
        Learning-rate schedule of the mini-batch solvers: scikit-learn's three
        (which its 'adam' ignores, and so does fastbp's) and 'cosine' annealing
        from ``learning_rate_init`` to 0 over ``max_iter`` epochs (all
        mini-batch solvers).
    learning_rate_init : float, default=0.001
        Initial learning rate ('sgd', 'adam').
    power_t : float, default=0.5
        Exponent of the 'invscaling' schedule.
    max_iter : int, default=200
        Maximum number of epochs (stochastic solvers) or iterations (lbfgs).
    shuffle : bool, default=True
        Whether to shuffle the samples in each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialization, the early-stopping split and the
        shuffling, in scikit-learn's order.
    tol : float, default=1e-4
        Tolerance of the stopping rule.
    verbose : bool, default=False
        Print progress messages.
    warm_start : bool, default=False
        Reuse the previous solution as initialization.
    momentum : float, default=0.9
        Momentum of 'sgd'.
    nesterovs_momentum : bool, default=True
        Use Nesterov's momentum ('sgd' with momentum > 0).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop when the
        validation score stops improving; the best weights are restored.
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping.
    beta_1 : float, default=0.9
        Adam's first-moment decay.
    beta_2 : float, default=0.999
        Adam's second-moment decay.
    epsilon : float, default=1e-8
        Adam's numerical-stability constant.
    n_iter_no_change : int, default=10
        Epochs without a ``tol`` improvement before stopping.
    max_fun : int, default=15000
        Maximum number of loss evaluations of 'lbfgs'.
    loss : {'log_loss', 'squared_error'}, default='log_loss'
        Cross-entropy on the softmax (multiclass) or logistic (binary,
        multilabel) outputs, or the squared error on those probabilities.
    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes, multiplied into ``sample_weight``; 'balanced'
        uses ``n_samples / (n_classes * np.bincount(y))``. Not available in
        ``partial_fit`` with 'balanced' (the class counts of one call are not
        those of the data).
    l1 : float, default=0.0
        Strength of the L1 penalty on the weights (scaled like ``alpha``).
    dropout : float or list of float, default=0.0
        Inverted-dropout rate of the hidden layers' outputs, one for all or one
        per hidden layer; off in prediction; reproducible from ``random_state``.
        Stochastic solvers only.
    init : {'glorot', 'he', 'lecun'}, default='glorot'
        Uniform weight initialization: Glorot (scikit-learn's), He
        (``sqrt(6 / fan_in)``) or LeCun (``sqrt(3 / fan_in)``).
    max_time : float or None, default=None
        Stop after this many seconds (checked between groups of mini-batches,
        a fraction of a second apart, and between iterations).
    negative_slope : float, default=0.01
        Slope of 'leaky_relu' for negative inputs.
    maxout_pieces : int, default=2
        Linear pieces per 'maxout' unit: a maxout layer's weights have
        ``units * maxout_pieces`` columns.
    weight_decay : float, default=0.01
        Decoupled weight decay of 'adamw' (weights only, not biases).
    rho : float, default=0.9
        Decay of the running mean square of 'rmsprop'.
    n_jobs : int or None, default=None
        Threads of a fit: the mini-batch solvers split every batch over them
        (each thread runs its rows with single-threaded BLAS; the gradients are
        summed in a fixed order, so the same ``random_state`` and ``n_jobs``
        give the same weights bit for bit); the full-batch solvers and predict
        give them to BLAS. None: all cores (predict then leaves the thread pools
        as they are); -1 all cores, -2 all but one.
    hogwild : bool, default=False
        Lock-free parallel online SGD (Hogwild!, Niu et al. 2011) for
        ``batch_size=1`` with a stochastic solver, on ``n_jobs`` threads: each
        thread takes the steps of its own share of every epoch's samples and
        adds them to the shared weights without locks, while the others do the
        same. Each thread keeps its own optimizer state (momentum, Adam's
        moments), averaged between the threads at the end of each call into
        the kernels (about every tenth of a second). Sparse X is written into
        a dense row per step.
        **Not deterministic**: the result depends on how the threads
        interleave, so the same ``random_state`` gives different weights from
        run to run (and two threads can add to one weight at the same moment,
        when one of the two changes is lost, as in Hogwild! without atomic
        adds). With one thread (``n_jobs=1``) it is the ordinary, reproducible
        online SGD.
    hogwild_merge_every : int, default=16
        Steps a Hogwild! thread takes on its own copy of the weights before it
        adds their change to the shared weights and continues from the sum.
        1 updates the shared weights at every step, as in Niu et al.; larger
        values let the threads move fewer cache lines between the cores
        (measured on 2 cores, a 64-64-10 network: 1.2x the one-thread speed
        with 1, 1.6x with 16) at the price of staler weights.
    device : {'cpu', 'cuda'}, default='cpu'
        Where fit and predict run. 'cuda' runs the kernels' CUDA twins on an
        NVIDIA GPU (``pip install 'fastbp[cuda]'``): the data, the parameters
        and the optimizer state stay on the GPU during fit (the weights are
        copied back once per epoch for the stopping rules), ``coefs_`` are
        host arrays. Every solver but 'lm' runs there. Without a GPU, fit
        raises a RuntimeError saying what is missing.

    Attributes
    ----------
    classes_ : ndarray or list of ndarray of shape (n_classes,)
        Class labels for each output.
    loss_ : float
        The current loss.
    best_loss_ : float or None
        The minimum loss reached (None with early stopping).
    loss_curve_ : list of shape (n_iter_,)
        Training loss after each epoch (stochastic solvers).
    validation_scores_ : list of shape (n_iter_,) or None
        Validation accuracy after each epoch (early stopping only).
    best_validation_score_ : float or None
        The best validation accuracy (early stopping only).
    t_ : int
        Number of training samples seen.
    coefs_ : list of shape (n_layers - 1,)
        Weight matrices, (fan_in, fan_out) each: views into one flat vector.
    intercepts_ : list of shape (n_layers - 1,)
        Bias vectors.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names seen during fit (string column names only).
    n_iter_ : int
        Number of iterations run.
    n_layers_ : int
        Number of layers.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        Output activation: 'softmax' (multiclass) or 'logistic' (binary, multilabel).

    See Also
    --------
    MLPRegressor : The regressor.
    sklearn.neural_network.MLPClassifier : The scikit-learn original.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastbp import MLPClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(64,), random_state=0).fit(X / 16, y)
    >>> clf.score(X / 16, y) > 0.95
    True
    """

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        loss="log_loss",
        class_weight=None,
        l1=0.0,
        dropout=0.0,
        init="glorot",
        max_time=None,
        negative_slope=0.01,
        maxout_pieces=2,
        weight_decay=0.01,
        rho=0.9,
        n_jobs=None,
        hogwild=False,
        hogwild_merge_every=16,
        device="cpu",
    ):
        self.class_weight = class_weight
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            loss=loss,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            l1=l1,
            dropout=dropout,
            init=init,
            max_time=max_time,
            negative_slope=negative_slope,
            maxout_pieces=maxout_pieces,
            weight_decay=weight_decay,
            rho=rho,
            n_jobs=n_jobs,
            hogwild=hogwild,
            hogwild_merge_every=hogwild_merge_every,
            device=device,
        )

    _parameter_constraints: dict = {
        **BaseMultilayerPerceptron._parameter_constraints,
        "loss": [StrOptions({"log_loss", "squared_error"})],
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def _output_activation(self, y):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _combined_sample_weight(self, sample_weight, X, y_labels, incremental):
        sample_weight = super()._combined_sample_weight(sample_weight, X, y_labels, incremental)
        if self.class_weight is None:
            return sample_weight
        if incremental and self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' is not available in partial_fit: the class counts of one "
                "call are not those of the data. Pass the weights as a dict."
            )
        if isinstance(self.class_weight, dict):
            unknown = set(self.class_weight) - set(self.classes_.tolist())
            if unknown:
                raise ValueError(f"class_weight names classes that are not in the data: {sorted(map(str, unknown))}.")
        weights = compute_sample_weight(self.class_weight, y_labels).astype(X.dtype)
        if sample_weight is not None:
            weights = weights * sample_weight
        if not weights.sum() > 0:
            raise ValueError("class_weight and sample_weight leave no sample with a positive weight.")
        return weights

    def _validate_validation_data(self, X_val, y_val, sample_weight_val, dtype):
        X_val, y_val = validate_data(
            self, X_val, y_val, accept_sparse=["csr", "csc"], multi_output=True, dtype=dtype, reset=False
        )
        if y_val.ndim == 2 and y_val.shape[1] == 1:
            y_val = column_or_1d(y_val, warn=True)
        unknown = np.setdiff1d(unique_labels(y_val), self.classes_)
        if len(unknown):
            raise ValueError(f"y_val has classes not in the training data: {unknown}.")
        Y_val = self._label_binarizer.transform(y_val).astype(dtype)
        if sample_weight_val is not None:
            sample_weight_val = _check_sample_weight(sample_weight_val, X_val, dtype=dtype)
        return _Validation(X_val, y_val, Y_val, sample_weight_val, None)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            dtype=(np.float64, np.float32),
            reset=reset,
            ensure_all_finite=sp.issparse(X),  # dense X: _check_finite below
        )
        if not sp.issparse(X):
            _check_finite(X, type(self).__name__)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        y_labels = y

        one_of_k = y.ndim == 1
        positions = None  # of the labels in classes_, when already known
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        elif not self.warm_start and one_of_k and self._label_binarizer.y_type_ in ("binary", "multiclass"):
            # partial_fit on known classes: check membership by binary search
            # (np.unique of every call's labels costs more than the epoch on small data)
            positions = self._class_positions(y)
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same "
                        "classes as in the previous call to fit. Previously "
                        f"got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    "`y` has classes not in `self.classes_`. "
                    f"`self.classes_` has {self.classes_}. 'y' has {classes}."
                )
        if one_of_k and self._label_binarizer.y_type_ in ("binary", "multiclass"):
            y = self._one_hot(self._class_positions(y) if positions is None else positions)
        else:
            y = self._label_binarizer.transform(y).astype(bool)
        return X, y, y_labels

    def _class_positions(self, y):
        """Index of each label of 1-D ``y`` in ``classes_``; ValueError for unknown labels."""
        classes = self.classes_
        k = classes.shape[0]
        if y.dtype.kind in "iu" and classes.dtype.kind in "iu" and k and classes[0] == 0 and classes[k - 1] == k - 1:
            # classes_ (sorted and unique) is 0 .. k-1: a label is its own
            # position, and known when it lies in that range (two reductions
            # instead of a binary search per label: 0.1 ms of a partial_fit
            # epoch of 5,000 one-sample steps)
            if y.size == 0 or (y.min() >= 0 and y.max() <= k - 1):
                return y.astype(np.intp, copy=False)
        try:
            positions = np.searchsorted(classes, y)
        except TypeError:
            positions = None
        known = positions is not None and np.all(classes[np.minimum(positions, len(classes) - 1)] == y)
        if not known:
            unknown = np.setdiff1d(unique_labels(y), classes)
            raise ValueError(
                f"`y` has classes not in `self.classes_`. `self.classes_` has {classes}. 'y' has {unknown}."
            )
        return positions

    def _one_hot(self, positions):
        """What ``LabelBinarizer.transform`` gives for 1-D labels at ``positions`` (bool)."""
        n, k = positions.shape[0], len(self.classes_)
        if self._label_binarizer.y_type_ == "multiclass":
            Y = np.zeros((n, k), dtype=bool)
            Y[np.arange(n), positions] = True
            return Y
        if k == 1:  # one class seen: LabelBinarizer's all-negative column
            return np.zeros((n, 1), dtype=bool)
        return (positions == 1).reshape(-1, 1)

    def predict(self, X):
        """Predict using the multi-layer perceptron classifier.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_classes)
            The predicted classes.
        """
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight=sample_weight, score_function=accuracy_score)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with a single epoch over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        classes : array of shape (n_classes,), default=None
            Classes across all calls to partial_fit; required on the first call.

        Returns
        -------
        self : object
            The trained model.

        Notes
        -----
        The batch buffers (gathered rows, activations, deltas, the threads'
        gradients) are kept from one call to the next, so a loop of partial_fit
        calls allocates them once; ``fit`` and deleting the estimator release
        them. They are not part of the model: never pickled, saved or copied.
        Each call trains on copies of the parameters and the optimizer's state
        (a call that fails leaves the model as it was); the arrays the previous
        call started from are kept too, and the copies go into them when
        nothing else holds them (no view of the old ``coefs_``, no other
        reference), so the loop does not fault in fresh memory at every call.
        Between calls this holds about three more copies of the parameters.
        """
        snapshot = dict(self.__dict__)
        try:
            if _check_partial_fit_first_call(self, classes):
                self._label_binarizer = LabelBinarizer()
                if type_of_target(y).startswith("multilabel"):
                    self._label_binarizer.fit(y)
                else:
                    self._label_binarizer.fit(classes)
            return self._fit(X, y, sample_weight=sample_weight, incremental=True)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(snapshot)
            raise

    def predict_log_proba(self, X):
        """Log of the probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        log_y_prob : ndarray of shape (n_samples, n_classes)
            ``log(predict_proba(X))``.
        """
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
            Probability of each class, in the order of ``classes_``.
        """
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, BaseMultilayerPerceptron):
    """Multi-layer perceptron regressor trained by compiled backpropagation.

    A drop-in replacement for :class:`sklearn.neural_network.MLPRegressor`
    with the same parameters, defaults, attributes and results (see
    :class:`MLPClassifier` for the shared parameters), trained in compiled
    Numba kernels.

    Parameters
    ----------
    loss : {'squared_error', 'absolute_error', 'huber', 'poisson'}, default='squared_error'
        'squared_error' (half squared error), 'absolute_error' (subgradient 0
        at 0), 'huber' (quadratic within ``huber_delta``, linear beyond), all
        with an identity output, or 'poisson' (half Poisson deviance with a log
        link; requires ``y >= 0``). For several outputs the reported loss is
        summed over the outputs (for squared_error scikit-learn divides it by
        their number while following the gradient of the sum; fastbp reports the
        loss it differentiates).
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        Neurons per hidden layer.
    activation : str or list of str, default='relu'
        Activation of the hidden layers (see :class:`MLPClassifier`).
    solver : str, default='adam'
        Weight optimizer (see :class:`MLPClassifier`).
    alpha : float, default=0.0001
        L2 penalty strength.
    batch_size : int or 'auto', default='auto'
        Mini-batch size; 'auto' is ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive', 'cosine'}, default='constant'
        Learning-rate schedule of the mini-batch solvers: scikit-learn's three
        (which its 'adam' ignores, and so does fastbp's) and 'cosine' annealing
        from ``learning_rate_init`` to 0 over ``max_iter`` epochs (all
        mini-batch solvers).
    learning_rate_init : float, default=0.001
        Initial learning rate.
    power_t : float, default=0.5
        Exponent of 'invscaling'.
    max_iter : int, default=200
        Maximum number of epochs or L-BFGS iterations.
    shuffle : bool, default=True
        Shuffle the samples in each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds initialization, early-stopping split and shuffling.
    tol : float, default=1e-4
        Tolerance of the stopping rule.
    verbose : bool, default=False
        Print progress messages.
    warm_start : bool, default=False
        Reuse the previous solution.
    momentum : float, default=0.9
        Momentum of 'sgd'.
    nesterovs_momentum : bool, default=True
        Nesterov's momentum.
    early_stopping : bool, default=False
        Stop on a held-out validation score (R²); restores the best weights.
    validation_fraction : float, default=0.1
        Held-out share for early stopping.
    beta_1, beta_2, epsilon : float
        Adam's constants (0.9, 0.999, 1e-8).
    n_iter_no_change : int, default=10
        Epochs without improvement before stopping.
    max_fun : int, default=15000
        Maximum number of loss evaluations of 'lbfgs'.
    huber_delta : float, default=1.0
        Threshold of the 'huber' loss.
    l1 : float, default=0.0
        Strength of the L1 penalty on the weights (scaled like ``alpha``).
    dropout : float or list of float, default=0.0
        Inverted-dropout rate of the hidden layers' outputs, one for all or one
        per hidden layer; off in prediction; reproducible from ``random_state``.
        Stochastic solvers only.
    init : {'glorot', 'he', 'lecun'}, default='glorot'
        Uniform weight initialization: Glorot (scikit-learn's), He
        (``sqrt(6 / fan_in)``) or LeCun (``sqrt(3 / fan_in)``).
    max_time : float or None, default=None
        Stop after this many seconds (checked between groups of mini-batches,
        a fraction of a second apart, and between iterations).
    negative_slope : float, default=0.01
        Slope of 'leaky_relu' for negative inputs.
    maxout_pieces : int, default=2
        Linear pieces per 'maxout' unit: a maxout layer's weights have
        ``units * maxout_pieces`` columns.
    weight_decay : float, default=0.01
        Decoupled weight decay of 'adamw' (weights only, not biases).
    rho : float, default=0.9
        Decay of the running mean square of 'rmsprop'.
    n_jobs : int or None, default=None
        Threads of fit and predict (see :class:`MLPClassifier`).
    hogwild : bool, default=False
        Lock-free parallel online SGD on ``n_jobs`` threads for
        ``batch_size=1``; not deterministic (see :class:`MLPClassifier`).
    hogwild_merge_every : int, default=16
        Steps a Hogwild! thread takes between adding its change to the shared
        weights (see :class:`MLPClassifier`).
    device : {'cpu', 'cuda'}, default='cpu'
        Where fit and predict run. 'cuda' runs the kernels' CUDA twins on an
        NVIDIA GPU (``pip install 'fastbp[cuda]'``): the data, the parameters
        and the optimizer state stay on the GPU during fit (the weights are
        copied back once per epoch for the stopping rules), ``coefs_`` are
        host arrays. Every solver but 'lm' runs there. Without a GPU, fit
        raises a RuntimeError saying what is missing.

    Attributes
    ----------
    loss_, best_loss_, loss_curve_, validation_scores_, best_validation_score_,
    t_, coefs_, intercepts_, n_features_in_, feature_names_in_, n_iter_,
    n_layers_, n_outputs_, out_activation_
        As in :class:`MLPClassifier`; validation scores are R².

    See Also
    --------
    MLPClassifier : The classifier.
    sklearn.neural_network.MLPRegressor : The scikit-learn original.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp import MLPRegressor
    >>> X = np.linspace(-1, 1, 200).reshape(-1, 1)
    >>> reg = MLPRegressor((16,), solver="lbfgs", random_state=0).fit(X, X.ravel() ** 2)
    >>> reg.score(X, X.ravel() ** 2) > 0.95
    True
    """

    _parameter_constraints: dict = {
        **BaseMultilayerPerceptron._parameter_constraints,
        "loss": [StrOptions({"squared_error", "absolute_error", "huber", "poisson"})],
        "huber_delta": [Interval(Real, 0, None, closed="neither")],
    }

    def _output_activation(self, y):
        return "exp" if self.loss == "poisson" else "identity"

    def _validate_validation_data(self, X_val, y_val, sample_weight_val, dtype):
        X_val, y_val = validate_data(
            self, X_val, y_val, accept_sparse=["csr", "csc"], multi_output=True, y_numeric=True, dtype=dtype,
            reset=False,
        )
        y_val = np.asarray(y_val, dtype=dtype)
        Y_val = y_val.reshape(-1, 1) if y_val.ndim == 1 else y_val
        if Y_val.shape[1] != self.n_outputs_:
            raise ValueError(f"y_val has {Y_val.shape[1]} outputs, y has {self.n_outputs_}.")
        if sample_weight_val is not None:
            sample_weight_val = _check_sample_weight(sample_weight_val, X_val, dtype=dtype)
        return _Validation(X_val, y_val, Y_val, sample_weight_val, None)

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        huber_delta=1.0,
        l1=0.0,
        dropout=0.0,
        init="glorot",
        max_time=None,
        negative_slope=0.01,
        maxout_pieces=2,
        weight_decay=0.01,
        rho=0.9,
        n_jobs=None,
        hogwild=False,
        hogwild_merge_every=16,
        device="cpu",
    ):
        self.huber_delta = huber_delta
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            loss=loss,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            l1=l1,
            dropout=dropout,
            init=init,
            max_time=max_time,
            negative_slope=negative_slope,
            maxout_pieces=maxout_pieces,
            weight_decay=weight_decay,
            rho=rho,
            n_jobs=n_jobs,
            hogwild=hogwild,
            hogwild_merge_every=hogwild_merge_every,
            device=device,
        )

    def predict(self, X):
        """Predict using the multi-layer perceptron model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predicted values.
        """
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight=sample_weight, score_function=r2_score)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            y_numeric=True,
            dtype=(np.float64, np.float32),
            reset=reset,
            ensure_all_finite=sp.issparse(X),  # dense X: _check_finite below
        )
        if not sp.issparse(X):
            _check_finite(X, type(self).__name__)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y, y

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with a single epoch over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            The trained model.

        Notes
        -----
        The batch buffers and the arrays of the state the last call started
        from are kept from one call to the next (see
        :meth:`MLPClassifier.partial_fit`); ``fit`` and deleting the estimator
        release them.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)
