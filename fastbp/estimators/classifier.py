"""MLPClassifier: the scikit-learn drop-in classifier."""


import numpy as np
import scipy.sparse as sp
from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import column_or_1d
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .fitted_state import CLASSIFIER_FITTED_STATE
from .stopping import _check_finite
from .solving import _Validation
from ._base import BaseMultilayerPerceptron


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
    .. shared parameters: written from estimators/parameters.py
    loss : {'log_loss', 'squared_error'}, default='log_loss'
        Cross-entropy on the softmax (multiclass) or logistic (binary,
        multilabel) outputs, or the squared error on those probabilities.
    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes, multiplied into ``sample_weight``; 'balanced'
        uses ``n_samples / (n_classes * np.bincount(y))``. Not available in
        ``partial_fit`` with 'balanced' (the class counts of one call are not
        those of the data).

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
        loss="log_loss",
        class_weight=None,
        **parameters,
    ):
        self.class_weight = class_weight
        super().__init__(hidden_layer_sizes, activation, loss, **parameters)

    FITTED_STATE = CLASSIFIER_FITTED_STATE  # the shared state and the classes

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
