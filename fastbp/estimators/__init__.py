"""scikit-learn drop-in estimators: MLPClassifier and MLPRegressor.

The estimators validate and prepare the data once, run the epoch loop's control
(stopping rules, learning-rate schedules, early stopping, callbacks, verbose
output) in Python, and hand the mini-batches of each epoch to a trainer of the
engine (``fastbp.engine``), which runs the compiled kernels. The random draws
(initialization, the early-stopping split, each epoch's shuffle) are made with
NumPy's ``RandomState`` in scikit-learn's order, so the same ``random_state``
gives the same weights as scikit-learn's MLP.
"""

from .classifier import MLPClassifier
from .regressor import MLPRegressor
from .stopping import TrainingDiverged

__all__ = ["MLPClassifier", "MLPRegressor", "TrainingDiverged"]
