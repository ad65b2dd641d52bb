"""fastbp: multilayer perceptrons trained by backpropagation in Numba kernels.

Drop-in replacements for scikit-learn's ``MLPClassifier`` and ``MLPRegressor``,
and the algorithm itself as functions: :func:`forward` and :func:`backprop`.
"""

from .functional import BackpropResult, backprop, forward, gradcheck
from .estimators import MLPClassifier, MLPRegressor, TrainingDiverged
from .persistence import load, save
from ._shutdown import install as _install_shutdown_hook
from ._version import __version__

_install_shutdown_hook()

__all__ = [
    "BackpropResult", "MLPClassifier", "MLPRegressor", "TrainingDiverged", "backprop", "forward", "gradcheck", "load", "save",
    "__version__",
]
