"""What a fitted estimator holds, as each estimator declares it.

``BaseMultilayerPerceptron.FITTED_STATE`` (and ``MLPClassifier.FITTED_STATE``, which adds the
classes) lists every attribute a fit or partial_fit sets: its name, its kind (how it is stored
and checked), whether every fit sets it, the group of attributes set together, and, for the best
weights, the list they may be the very same object as. ``fastbp.persistence`` stores and checks
what is declared, by kind, and goes through the functions below for the rest: it knows no
private attribute of an estimator by name.
"""

from typing import NamedTuple

import numpy as np

from ..engine.network import make_network
from ..kernels.activations import ACT_MAXOUT, HIDDEN_ACTIVATIONS


class FittedAttribute(NamedTuple):
    """One attribute of the fitted state.

    ``kind``: 'weights' (a list of float arrays, one a layer), 'int' (at least
    ``low``), 'number', 'number_or_none', 'curve' (a list of numbers),
    'curve_or_none', 'output_activation', 'layers' (the fitted activations,
    maxout pieces and negative slope), 'classes', 'feature_names',
    'label_binarizer', 'solver_state' (``solvers.state.OptimizerState``),
    'random_state' (``numpy.random.RandomState``). ``required``: every fit sets
    it. ``group``: attributes of one group come together (its description).
    ``same_as``: the attribute may be the very list this one names (stored once).
    """

    name: str
    kind: str
    required: bool = False
    group: str = ""
    low: int = 0
    same_as: str = ""


_ITERATIVE = "the iterative solvers"  # set together by every solver but lbfgs

SHARED_FITTED_STATE = (
    FittedAttribute("coefs_", "weights", required=True),
    FittedAttribute("intercepts_", "weights", required=True),
    FittedAttribute("_best_coefs", "weights", required=True, same_as="coefs_"),
    FittedAttribute("_best_intercepts", "weights", required=True, same_as="intercepts_"),
    FittedAttribute("_fitted_layers", "layers", required=True),
    FittedAttribute("out_activation_", "output_activation", required=True),
    FittedAttribute("n_iter_", "int", required=True),
    FittedAttribute("t_", "int", required=True),
    FittedAttribute("n_outputs_", "int", required=True, low=1),
    FittedAttribute("n_layers_", "int", required=True, low=2),
    FittedAttribute("n_features_in_", "int", required=True),
    FittedAttribute("feature_names_in_", "feature_names"),
    FittedAttribute("loss_", "number"),
    FittedAttribute("loss_curve_", "curve", group=_ITERATIVE),
    FittedAttribute("_no_improvement_count", "int", group=_ITERATIVE),
    FittedAttribute("best_loss_", "number_or_none", group=_ITERATIVE),
    FittedAttribute("validation_scores_", "curve_or_none", group=_ITERATIVE),
    FittedAttribute("best_validation_score_", "number_or_none", group=_ITERATIVE),
    FittedAttribute("validation_loss_curve_", "curve_or_none", group=_ITERATIVE),
    FittedAttribute("_optimizer", "solver_state"),
    FittedAttribute("_random_state", "random_state"),
)

CLASSIFIER_FITTED_STATE = SHARED_FITTED_STATE + (
    FittedAttribute("classes_", "classes", required=True),
    FittedAttribute("_label_binarizer", "label_binarizer", required=True),
)

# Runtime hooks of scikit-learn's callback API: not model state, never stored.
RUNTIME_ATTRIBUTES = frozenset({"_skl_callbacks", "_callback_fit_ctx", "_skl_callbacks_to_teardown"})


def declared(estimator_class):
    """The fitted state ``estimator_class`` declares (a tuple of :class:`FittedAttribute`)."""
    return estimator_class.FITTED_STATE


def state_of(estimator):
    """The fitted estimator's state: every instance attribute that is neither a parameter nor a
    runtime hook (declared or not: the caller refuses what it cannot store)."""
    params = estimator.get_params(deep=False)
    return {k: v for k, v in vars(estimator).items() if k not in params and k not in RUNTIME_ATTRIBUTES}


def parameter_names(estimator_class):
    """The constructor parameters of ``estimator_class`` (scikit-learn's ``get_params`` names)."""
    return set(estimator_class._get_param_names())


def validate_parameters(estimator):
    """scikit-learn's parameter checks (InvalidParameterError, a ValueError)."""
    estimator._validate_params()


def _network_of_params(est):
    """(hidden widths, activation names, maxout pieces, negative slope) the parameters describe."""
    hidden, names, _ = est._check_params()
    return hidden, names, int(est.maxout_pieces), float(est.negative_slope)


def _expected_shapes(est, hidden, names, pieces):
    units = [int(est.n_features_in_)] + list(hidden) + [int(est.n_outputs_)]
    shapes = []
    for layer in range(len(units) - 1):
        p = pieces if layer < len(names) and HIDDEN_ACTIVATIONS[names[layer]] == ACT_MAXOUT else 1
        cols = units[layer + 1] * p
        shapes.append(((units[layer], cols), (cols,)))
    return shapes


_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_fitted_network(est, where):
    """The fitted weights must be the network the parameters describe (ValueError otherwise)."""
    try:
        hidden, names, pieces, slope = _network_of_params(est)
    except ValueError as exc:
        raise ValueError(f"{where}: the parameters are invalid: {exc}") from None
    if tuple(est._fitted_layers) != (names, pieces, slope):
        raise ValueError(
            f"{where}: the model was fitted with activations / maxout_pieces / negative_slope "
            f"{tuple(est._fitted_layers)!r} but its parameters now say {(names, pieces, slope)!r} "
            "(set_params after fit); refit, or restore those parameters."
        )
    shapes = _expected_shapes(est, hidden, names, pieces)
    if est.n_layers_ != len(shapes) + 1:
        raise ValueError(f"{where}: n_layers_={est.n_layers_} but the parameters describe {len(shapes) + 1} layers.")
    for what in (("coefs_", "intercepts_"), ("_best_coefs", "_best_intercepts")):
        coefs, intercepts = getattr(est, what[0]), getattr(est, what[1])
        if len(coefs) != len(shapes) or len(intercepts) != len(shapes):
            raise ValueError(
                f"{where}: {what[0]} / {what[1]} hold {len(coefs)} / {len(intercepts)} layers, "
                f"the network has {len(shapes)}."
            )
        for layer, ((w_shape, b_shape), W, b) in enumerate(zip(shapes, coefs, intercepts)):
            if W.shape != w_shape or b.shape != b_shape:
                raise ValueError(
                    f"{where}: {what[0]}[{layer}] / {what[1]}[{layer}] have shapes {W.shape} / {b.shape}; "
                    f"the network implied by n_features_in_={est.n_features_in_}, hidden_layer_sizes, "
                    f"activation, maxout_pieces and n_outputs_={est.n_outputs_} needs {w_shape} / {b_shape}."
                )
            for name, arr in ((f"{what[0]}[{layer}]", W), (f"{what[1]}[{layer}]", b)):
                if arr.dtype not in _FLOAT_DTYPES:
                    raise ValueError(f"{where}: {name} has dtype {arr.dtype}; float32 or float64 expected.")
                if not np.isfinite(arr).all():
                    raise ValueError(f"{where}: {name} contains NaN or infinity (non-finite weights are refused).")
    dtype = est.coefs_[0].dtype
    if any(a.dtype != dtype for a in list(est.coefs_) + list(est.intercepts_)):
        raise ValueError(f"{where}: coefs_ and intercepts_ mix float32 and float64.")


def install(est, state):
    """Set a loaded fitted state on ``est`` (an attribute with ``same_as`` whose value is None is
    that list itself), check the network (ValueError) and point the weights into one flat vector,
    as fit leaves them."""
    aliases = {a.name: a.same_as for a in declared(type(est)) if a.same_as and a.name in state and state[a.name] is None}
    for name, value in state.items():
        setattr(est, name, value)
    for name, same_as in aliases.items():
        setattr(est, name, getattr(est, same_as))
    check_fitted_network(est, "the weights do not fit the model")
    names, pieces, slope = est._fitted_layers
    units = [int(est.n_features_in_)] + [b.shape[0] // (pieces if HIDDEN_ACTIVATIONS[n] == ACT_MAXOUT else 1)
                                         for b, n in zip(est.intercepts_[:-1], names)] + [int(est.n_outputs_)]
    network = make_network(units, names, est.out_activation_, slope, pieces)
    flat = network.pack(est.coefs_, est.intercepts_, est.coefs_[0].dtype)
    est.coefs_, est.intercepts_ = network.views(flat)
    for name, same_as in aliases.items():
        setattr(est, name, getattr(est, same_as))
