"""The estimators' shared base: parameters, validation, the fit loop's control (initialization,
continuation, the epoch loop), prediction."""

import inspect
import time
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import _check_sample_weight, validate_data

from ..engine import cpu, cuda_engine, dask
from ..kernels.activations import HIDDEN_ACTIVATIONS
from ..kernels.losses import LOSS_PAIRS, needs_nonnegative_targets
from ..kernels.optimizers import HYPER_PARAMETERS, OPTIMIZER_BY_NAME, STOCHASTIC_SOLVERS
from ..kernels.config import DATA_PARALLEL_MAX_PARAMS, DATA_PARALLEL_MIN_ROWS
from ..engine.network import hidden_activation_names, make_network
from ..solvers.state import OptimizerState
from .stopping import TrainingDiverged, _LastFinite, _StoppingRules, _divergence_message, _last_finite_kept
from . import dask_fit
from .fitted_state import SHARED_FITTED_STATE
from .parameters import DOC_MARK, KEYWORD_DEFAULTS, hyper_parameter_constraint, parameters_doc
from .callbacks import CallbackSupportMixin, _FitCallbacks, with_callbacks
from .solving import _KEPT_WORKSPACES, _SPARE_ARRAYS, _SolverSteps, _Validation, _keep, _take_kept, _take_spare


class BaseMultilayerPerceptron(CallbackSupportMixin, _StoppingRules, _SolverSteps, BaseEstimator):
    """Shared machinery of :class:`MLPClassifier` and :class:`MLPRegressor`.

    Not to be used directly.
    """

    # every attribute fit / partial_fit set (fitted_state.py; fastbp.persistence stores these)
    FITTED_STATE = SHARED_FITTED_STATE

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(HIDDEN_ACTIVATIONS)), "array-like"],
        "solver": [StrOptions(set(OPTIMIZER_BY_NAME))],
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
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "l1": [Interval(Real, 0, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left"), "array-like"],
        "init": [StrOptions({"glorot", "he", "lecun"})],
        "max_time": [None, Interval(Real, 0, None, closed="neither")],
        "negative_slope": [Interval(Real, 0, None, closed="left")],
        "maxout_pieces": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [None, Integral],
        "hogwild": ["boolean"],
        "hogwild_merge_every": [Interval(Integral, 1, None, closed="left")],
        "device": [StrOptions({"cpu", "cuda"})],
        **{hyper.name: [hyper_parameter_constraint(hyper)] for hyper in HYPER_PARAMETERS},
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

    def __init__(self, hidden_layer_sizes, activation, loss, **parameters):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.loss = loss
        unknown = [name for name in parameters if name not in KEYWORD_DEFAULTS]
        if unknown:
            raise TypeError(f"{type(self).__name__}.__init__() got an unexpected keyword argument {unknown[0]!r}")
        for name, default in KEYWORD_DEFAULTS.items():
            setattr(self, name, parameters.get(name, default))

    def __init_subclass__(cls, **kwargs):
        """A subclass whose ``__init__`` forwards the shared keyword parameters
        (``**parameters``: ``solver``, those of ``parameters.SHARED_PARAMETERS`` and
        the optimizers' hyper-parameters) gets a signature that lists each with its default
        (scikit-learn's ``get_params``, ``clone`` and ``repr`` read it), and its
        docstring the entries of ``solver`` and the hyper-parameters from the
        optimizers' registry."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        signature = None if init is None else inspect.signature(init)
        forwards = signature is not None and any(
            p.kind is p.VAR_KEYWORD and p.name == "parameters" for p in signature.parameters.values()
        )
        if forwards:  # (a subclass with a constructor of its own keeps its signature)
            parameters = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
            parameters += [
                inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
                for name, default in KEYWORD_DEFAULTS.items()
            ]
            init.__signature__ = signature.replace(parameters=parameters)
        if cls.__doc__ and DOC_MARK in cls.__doc__:
            default = inspect.signature(cls).parameters["solver"].default
            cls.__doc__ = cls.__doc__.replace(DOC_MARK, parameters_doc(default))

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
        # --- dask input (issue 7): fit over the blocks where they live, see dask_fit.py and
        # fastbp/engine/dask.py (dask itself is imported only for a dask collection) ---
        if dask.is_dask_collection(X):
            return dask_fit.fit_dask(self, X, y, sample_weight, incremental, X_val, y_val, sample_weight_val,
                                     start_time)
        # --- end of dask input ---
        hidden_layer_sizes, names, rates = self._check_params()
        if self.device == "cuda":
            cuda_engine().check_solver(self.solver)  # only for device='cuda': the CPU path never imports CUDA
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
        if needs_nonnegative_targets(self.loss) and np.any(y < 0):
            raise ValueError(f"Some value(s) of y are negative which is not allowed for the {self.loss} loss.")
        self.n_outputs_ = y.shape[1]
        validation = None
        if self._validation_given(X_val, y_val, sample_weight_val, incremental):
            validation = self._validate_validation_data(X_val, y_val, sample_weight_val, X.dtype)

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
        with cpu.compute_context(self.n_jobs, data_parallel=parts > 1 or bool(self.hogwild)):
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

    @staticmethod
    def _validation_given(X_val, y_val, sample_weight_val, incremental):
        """Whether held-out data is given (X_val and y_val together, not to partial_fit)."""
        if X_val is not None or y_val is not None:
            if X_val is None or y_val is None:
                raise ValueError("X_val and y_val must be given together.")
            if incremental:
                raise ValueError("partial_fit takes no validation data; pass it to fit.")
            return True
        if sample_weight_val is not None:
            raise ValueError("sample_weight_val is given without X_val and y_val.")
        return False

    def _combined_sample_weight(self, sample_weight, X, y_labels, incremental):
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype, ensure_non_negative=True)
            if not sample_weight.sum() > 0:
                raise ValueError("sample_weight must have a positive sum.")
        return sample_weight

    def _config(self, dtype, seed):
        return cpu.make_config(
            self._loss_code(),
            poisson_constant=True,
            solver_code=STOCHASTIC_SOLVERS.get(self.solver, 0),
            seed=seed,
            alpha=float(self.alpha),
            l1=float(self.l1),
            clip=float(np.finfo(dtype).eps),
            huber_delta=float(getattr(self, "huber_delta", 1.0)),
            **{hyper.name: getattr(self, hyper.name) for hyper in HYPER_PARAMETERS},
        )

    def _trainer(self, network, X, Y, sample_weight, dtype, seed, batch_rows, parts=1, hogwild=False,
                 workspace=None):
        """The kernels' driver for one data set; ``hogwild``: the training data's, which runs
        Hogwild! epochs when the estimator asks for them (``hogwild=True``, several threads);
        ``workspace``: an earlier trainer's, reused if it fits."""
        data = X if isinstance(X, cpu.InputData) else cpu.InputData(X, dtype)
        icfg, fcfg = self._config(dtype, seed)
        if self.device == "cuda":
            return cuda_engine().CudaTrainer(network, data, Y.astype(dtype), sample_weight, icfg, fcfg, batch_rows=batch_rows)
        hogwild_threads = cpu.effective_n_jobs(self.n_jobs) if hogwild and self.hogwild else 1
        return cpu.Trainer(
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
        trainer = self._trainer(network, X_val, Y_val, sw_val, dtype, 0, min(val_idx.shape[0], cpu.CHUNK_ROWS))
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
        threads = cpu.numba_n_jobs(self.n_jobs)
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
                min(validation.X.shape[0], cpu.CHUNK_ROWS),
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
            batch_size = min(n_samples, cpu.CHUNK_ROWS)  # full batch, computed in chunks
        data = cpu.InputData(X, dtype)
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
        if incremental and trainer.workspace is not None:
            # (kept once the call is done: never shared with a call still running)
            _keep(_KEPT_WORKSPACES, self, trainer.workspace)
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
                except cpu.TimeUp:  # a full-batch pass abandoned: the last iterate stands
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
            the cluster's blocks: see ``fastbp.engine.dask`` and the README.
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
            return cuda_engine().predict_output(network, flat, X)
        return cpu.predict_output(network, flat, X, n_jobs=self.n_jobs)

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
