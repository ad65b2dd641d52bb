"""MLPRegressor: the scikit-learn drop-in regressor."""

from numbers import Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils import column_or_1d
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ..kernels.losses import REGRESSION_LOSSES
from .stopping import _check_finite
from .solving import _Validation
from ._base import BaseMultilayerPerceptron


class MLPRegressor(RegressorMixin, BaseMultilayerPerceptron):
    """Multi-layer perceptron regressor trained by compiled backpropagation.

    A drop-in replacement for :class:`sklearn.neural_network.MLPRegressor`
    with the same parameters, defaults, attributes and results, trained in
    compiled Numba kernels.

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
    .. shared parameters: written from estimators/parameters.py
    huber_delta : float, default=1.0
        Threshold of the 'huber' loss.

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
        "loss": [StrOptions(set(REGRESSION_LOSSES))],
        "huber_delta": [Interval(Real, 0, None, closed="neither")],
    }

    def _output_activation(self, y):
        return REGRESSION_LOSSES[self.loss].output  # the loss's matched output activation

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
        huber_delta=1.0,
        **parameters,
    ):
        self.huber_delta = huber_delta
        super().__init__(hidden_layer_sizes, activation, loss, **parameters)

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
