"""scikit-learn drop-in estimators: MLPClassifier and MLPRegressor.

The estimators validate and prepare the data once, run the epoch loop's control
(stopping rules, learning-rate schedules, early stopping, verbose output) in
Python, and hand every epoch to one compiled kernel call (see ``_engine`` and
``_kernels``). The random draws (initialization, the early-stopping split, each
epoch's shuffle) are made with NumPy's ``RandomState`` in scikit-learn's order,
so the same ``random_state`` gives the same weights as scikit-learn's MLP.
"""

import warnings
from numbers import Integral, Real

import numpy as np
import scipy.optimize
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import _engine
from ._codes import (
    HIDDEN_ACTIVATIONS,
    MATCHED_LOSSES,
    OUTPUT_ACTIVATIONS,
    SOLVER_ADAM,
    SOLVER_SGD,
    STOCHASTIC_SOLVERS,
)

_LOSS_NAMES = {"squared_error", "log_loss", "poisson"}


class _OptimizerState:
    """A stochastic solver's state between epochs and between ``partial_fit`` calls.

    Mirrors scikit-learn's ``SGDOptimizer`` / ``AdamOptimizer``: the current
    learning rate, its schedule and the flat per-parameter buffers (SGD's
    velocity; Adam's first and second moments and step counter).
    """

    def __init__(self, solver, n_params, dtype, learning_rate_init, lr_schedule, power_t):
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule = lr_schedule
        self.power_t = power_t
        self.state_1 = np.zeros(n_params, dtype=dtype)
        self.state_2 = np.zeros(n_params if solver == "adam" else 0, dtype=dtype)
        self.step_count = np.zeros(1, dtype=np.int64)

    def copy(self):
        """An independent copy (a failed call must not touch the fitted state)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.state_1 = self.state_1.copy()
        new.state_2 = self.state_2.copy()
        new.step_count = self.step_count.copy()
        return new

    def base_learning_rate(self):
        """The rate the compiled step starts from (Adam corrects it per step)."""
        return float(self.learning_rate_init) if self.solver == "adam" else self.learning_rate

    def iteration_ends(self, time_step):
        """Update the learning rate at the end of an epoch (invscaling)."""
        if self.solver == "sgd" and self.lr_schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        """True to stop; with the adaptive schedule, divide the rate by 5 instead."""
        if self.solver != "sgd" or self.lr_schedule != "adaptive":
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


class BaseMultilayerPerceptron(BaseEstimator):
    """Shared machinery of :class:`MLPClassifier` and :class:`MLPRegressor`.

    Not to be used directly.
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(HIDDEN_ACTIVATIONS))],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
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
        "n_jobs": [None, Integral],
    }

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
        n_jobs,
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
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------
    # parameters and network description
    # ------------------------------------------------------------------
    def _check_params(self):
        """Validate the constructor parameters; return the hidden layer sizes."""
        self._validate_params()
        if self.n_jobs == 0:
            raise ValueError("n_jobs == 0 has no meaning; use None (all cores), -1, or a positive number.")
        hidden_layer_sizes = self.hidden_layer_sizes
        if not hasattr(hidden_layer_sizes, "__iter__"):
            hidden_layer_sizes = [hidden_layer_sizes]
        hidden_layer_sizes = list(hidden_layer_sizes)
        for size in hidden_layer_sizes:
            if isinstance(size, bool) or not isinstance(size, (Integral, np.integer)) or size <= 0:
                raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}.")
        return [int(size) for size in hidden_layer_sizes]

    def _codes(self):
        """(hidden code, output code, loss code) of the fitted network."""
        loss = self.loss
        return (
            HIDDEN_ACTIVATIONS[self.activation],
            OUTPUT_ACTIVATIONS[self.out_activation_],
            MATCHED_LOSSES[(self.out_activation_, loss)],
        )

    def _layout(self):
        units = [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]
        return _engine.NetworkLayout(units)

    def _packed_parameters(self, dtype):
        """(layout, flat vector) holding a copy of ``coefs_`` and ``intercepts_``."""
        layout = self._layout()
        return layout, layout.pack(self.coefs_, self.intercepts_, dtype)

    def _set_parameters(self, layout, flat):
        """Point ``coefs_`` / ``intercepts_`` at views of the flat vector ``flat``."""
        self.coefs_, self.intercepts_ = layout.views(flat)

    # ------------------------------------------------------------------
    # initialization
    # ------------------------------------------------------------------
    def _initialize(self, y, layer_units, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)

        if not is_classifier(self):
            self.out_activation_ = "exp" if self.loss == "poisson" else "identity"
        elif self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
        else:
            self.out_activation_ = "logistic"

        layout = _engine.NetworkLayout(layer_units)
        flat = np.empty(layout.n_params, dtype=dtype)
        coefs, intercepts = layout.views(flat)
        # Glorot-uniform, drawn in scikit-learn's order: W(l) then b(l), layer by layer.
        factor = 2.0 if self.activation == "logistic" else 6.0
        for W, b in zip(coefs, intercepts):
            fan_in, fan_out = W.shape
            bound = np.sqrt(factor / (fan_in + fan_out))
            W[...] = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
            b[...] = self._random_state.uniform(-bound, bound, fan_out)
        self._set_parameters(layout, flat)

        self._best_coefs = [c.copy() for c in self.coefs_]
        self._best_intercepts = [i.copy() for i in self.intercepts_]

        if self.solver in STOCHASTIC_SOLVERS:
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

    # ------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------
    def _fit(self, X, y, sample_weight=None, incremental=False):
        """Fit, or continue fitting; on any error the estimator is left as it was."""
        snapshot = dict(self.__dict__)
        try:
            return self._fit_unprotected(X, y, sample_weight, incremental)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(snapshot)
            raise

    def _fit_unprotected(self, X, y, sample_weight, incremental):
        hidden_layer_sizes = self._check_params()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)

        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
            if not sample_weight.sum() > 0:
                raise ValueError("sample_weight must have a positive sum.")
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        if not first_pass and self.coefs_[-1].shape[1] != y.shape[1]:
            raise ValueError(
                f"y has {y.shape[1]} outputs but the fitted network has {self.coefs_[-1].shape[1]}."
            )
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("Some value(s) of y are negative which is not allowed for the poisson loss.")

        self.n_outputs_ = y.shape[1]
        layer_units = [n_features] + hidden_layer_sizes + [self.n_outputs_]
        self._random_state = check_random_state(self.random_state)

        if first_pass:
            self._initialize(y, layer_units, X.dtype)
        elif [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_] != layer_units:
            raise ValueError(
                "hidden_layer_sizes changed since the last fit; warm_start and partial_fit "
                "need the same network (fit with warm_start=False to start over)."
            )

        # The parameters now live in one fresh flat vector (a copy): the old
        # arrays stay untouched, so an interrupted call loses nothing.
        layout, flat = self._packed_parameters(X.dtype)
        self._set_parameters(layout, flat)

        with _engine.compute_context(self.n_jobs):
            if self.solver in STOCHASTIC_SOLVERS:
                self._fit_stochastic(X, y, sample_weight, layout, flat, incremental)
            else:
                self._fit_lbfgs(X, y, sample_weight, layout, flat)

        if not all(np.isfinite(w).all() for w in self.coefs_ + self.intercepts_):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may"
                " contain large values and need to be preprocessed."
            )
        return self

    def _config(self, dtype, sparse, has_sample_weight):
        hidden, output, loss = self._codes()
        solver = STOCHASTIC_SOLVERS.get(self.solver, SOLVER_SGD)
        return _engine.make_config(
            hidden,
            output,
            loss,
            poisson_constant=True,
            has_sample_weight=has_sample_weight,
            sparse=sparse,
            solver_code=solver,
            nesterov=bool(self.nesterovs_momentum) and self.momentum > 0,
            alpha=float(self.alpha),
            learning_rate=float(self.learning_rate_init),
            momentum=float(self.momentum),
            beta_1=float(self.beta_1),
            beta_2=float(self.beta_2),
            epsilon=float(self.epsilon),
            clip=float(np.finfo(dtype).eps),
        )

    def _fit_lbfgs(self, X, y, sample_weight, layout, flat):
        dtype = flat.dtype
        data = _engine.InputData(X, dtype)
        icfg, fcfg = self._config(dtype, data.is_sparse, sample_weight is not None)
        n = X.shape[0]
        trainer = _engine.Trainer(
            layout, data, y.astype(dtype), sample_weight, icfg, fcfg, batch_rows=min(n, _engine.CHUNK_ROWS)
        )
        rows = np.arange(n, dtype=np.int64)

        def loss_grad(packed):
            flat[:] = packed
            loss = trainer.loss_and_gradient(flat, rows)
            return loss, trainer.ws.grads.astype(np.float64)

        callback = None
        if self.verbose:

            def callback(intermediate_result):
                print("Iteration %d, loss = %.8f" % (callback.iteration + 1, intermediate_result.fun))
                callback.iteration += 1

            callback.iteration = 0

        opt_res = scipy.optimize.minimize(
            loss_grad,
            flat.astype(np.float64),
            method="L-BFGS-B",
            jac=True,
            callback=callback,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol},
        )
        self.n_iter_ = _check_optimize_result("lbfgs", opt_res, self.max_iter)
        self.loss_ = opt_res.fun
        flat[:] = opt_res.x

    def _fit_stochastic(self, X, y, sample_weight, layout, flat, incremental):
        dtype = flat.dtype
        if not incremental or not hasattr(self, "_optimizer"):
            optimizer = _OptimizerState(
                self.solver, layout.n_params, dtype, self.learning_rate_init, self.learning_rate, self.power_t
            )
        else:
            optimizer = self._optimizer.copy()
        if optimizer.state_1.shape[0] != layout.n_params or optimizer.state_1.dtype != dtype:
            raise ValueError("the optimizer state does not match the network; fit again without warm start.")
        self._optimizer = optimizer

        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        n_total = X.shape[0]
        if early_stopping:
            # Split indices exactly as scikit-learn splits X (same draws), without
            # copying the training rows: the epoch reads X through them.
            should_stratify = is_classifier(self) and self.n_outputs_ == 1
            stratify = y if should_stratify else None
            train_idx, val_idx = train_test_split(
                np.arange(n_total),
                random_state=self._random_state,
                test_size=self.validation_fraction,
                stratify=stratify,
            )
            if val_idx.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' "
                    "or the size of your dataset."
                )
            X_val = X[val_idx]
            y_val = y[val_idx]
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(y_val)
            sample_weight_val = None if sample_weight is None else sample_weight[val_idx]
            train_rows = train_idx.astype(np.int64)
        else:
            train_rows = np.arange(n_total, dtype=np.int64)
            X_val = y_val = sample_weight_val = None

        n_samples = train_rows.shape[0]
        sample_idx = np.arange(n_samples, dtype=int)
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_samples))
        n_batches = (n_samples + batch_size - 1) // batch_size

        data = _engine.InputData(X, dtype)
        icfg, fcfg = self._config(dtype, data.is_sparse, sample_weight is not None)
        trainer = _engine.Trainer(layout, data, y.astype(dtype), sample_weight, icfg, fcfg, batch_rows=batch_size)

        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                if self.shuffle:
                    # sklearn.utils.shuffle's draws (a RandomState.shuffle of
                    # arange(n)) without its per-call validation overhead
                    sample_idx = sample_idx[self._random_state.permutation(n_samples)]
                rows = train_rows[sample_idx] if (self.shuffle or early_stopping) else train_rows
                accumulated_loss = trainer.train_epoch(
                    flat, np.ascontiguousarray(rows, dtype=np.int64), batch_size, 0, n_batches,
                    optimizer.state_1, optimizer.state_2, optimizer.step_count, optimizer.base_learning_rate(),
                )
                if optimizer.solver == "adam":
                    t = optimizer.step_count[0]
                    optimizer.learning_rate = (
                        optimizer.learning_rate_init * np.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
                    )

                self.n_iter_ += 1
                self.loss_ = accumulated_loss / n_samples
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))

                self._update_no_improvement_count(early_stopping, X_val, y_val, sample_weight_val)
                optimizer.iteration_ends(self.t_)

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
                    warnings.warn(
                        "Stochastic Optimizer: Maximum iterations (%d) "
                        "reached and the optimization hasn't converged yet." % self.max_iter,
                        ConvergenceWarning,
                    )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")

        if early_stopping:
            # restore the best weights
            self.coefs_ = self._best_coefs
            self.intercepts_ = self._best_intercepts

    def _update_no_improvement_count(self, early_stopping, X_val, y_val, sample_weight_val):
        if early_stopping:
            val_score = self._score(X_val, y_val, sample_weight=sample_weight_val)
            self.validation_scores_.append(val_score)
            if self.verbose:
                print("Validation score: %f" % self.validation_scores_[-1])
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

    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data. float32 is trained in float32, float64 in float64,
            other numeric types are converted to float64.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values (class labels in classification, real numbers in
            regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            The trained model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

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
        dtype = self.coefs_[0].dtype
        layout, flat = self._packed_parameters(dtype)
        hidden, output, _ = self._codes()
        icfg, _ = _engine.make_config(hidden, output, 0)
        return _engine.predict_output(layout, flat, icfg, X, n_jobs=self.n_jobs)

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
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation function of the hidden layers.
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        The weight optimizer: 'lbfgs' (SciPy's L-BFGS-B on the full batch),
        'sgd' (mini-batch SGD with momentum) or 'adam'.
    alpha : float, default=0.0001
        Strength of the L2 penalty (divided by the batch's sample size or sum of
        sample weights when added to the loss).
    batch_size : int or 'auto', default='auto'
        Mini-batch size of the stochastic solvers; 'auto' is
        ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Learning-rate schedule of 'sgd'.
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
    n_jobs : int or None, default=None
        Threads for the kernels and BLAS during fit and predict. None uses the
        thread pools as they are (all cores by default); -1 all cores.

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
        n_jobs=None,
    ):
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
            loss="log_loss",
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
            n_jobs=n_jobs,
        )

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)

        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
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
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

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
    loss : {'squared_error', 'poisson'}, default='squared_error'
        'squared_error' (half squared error, identity output) or 'poisson'
        (half Poisson deviance with a log link; requires ``y >= 0``). For
        several outputs the reported squared-error loss is summed over the
        outputs (scikit-learn divides it by their number while following the
        gradient of the sum; fastbp reports the loss it differentiates).
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        Neurons per hidden layer.
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation of the hidden layers.
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        Weight optimizer.
    alpha : float, default=0.0001
        L2 penalty strength.
    batch_size : int or 'auto', default='auto'
        Mini-batch size; 'auto' is ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Learning-rate schedule of 'sgd'.
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
    n_jobs : int or None, default=None
        Threads for the kernels and BLAS; None leaves the pools as they are.

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
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

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
        n_jobs=None,
    ):
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
            n_jobs=n_jobs,
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
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

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
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)
