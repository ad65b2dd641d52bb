"""A fitted estimator's attributes as the file stores them: which are known, how each is encoded
and checked, and how a loaded model is built from them."""

import math

import numpy as np
from sklearn.preprocessing import LabelBinarizer

from ..kernels.activations import ACT_MAXOUT, HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from ..kernels.optimizers import FULL_BATCH_SOLVERS, OPTIMIZER_BY_NAME, STOCHASTIC_SOLVERS
from ..engine.network import make_network
from ..estimators import MLPClassifier, MLPRegressor
from ..solvers.state import OptimizerState
from .archive import _FLOAT_DTYPES, _MAX_INT, _Unstorable, _encode_float, _encode_value, _is_float, _is_int, _is_number


# The only classes load() ever constructs an estimator from.
_ESTIMATORS = {"MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor}


# Attributes the estimators' fit / partial_fit set.
_INT_ATTRS = {"n_iter_": 0, "t_": 0, "n_outputs_": 1, "n_layers_": 2, "n_features_in_": 0, "_no_improvement_count": 0}


_CURVE_ATTRS = ("loss_curve_", "validation_scores_", "validation_loss_curve_")


# Set together by the initialization of every solver but lbfgs.
_ITERATIVE_GROUP = {
    "loss_curve_", "_no_improvement_count", "best_loss_", "validation_scores_",
    "best_validation_score_", "validation_loss_curve_",
}


_KNOWN_ATTRS = set(_INT_ATTRS) | _ITERATIVE_GROUP | {
    "coefs_", "intercepts_", "_best_coefs", "_best_intercepts", "_fitted_layers", "out_activation_",
    "loss_", "classes_", "_label_binarizer", "feature_names_in_", "_optimizer", "_random_state",
}


_REQUIRED_ATTRS = {
    "coefs_", "intercepts_", "_best_coefs", "_best_intercepts", "_fitted_layers", "out_activation_",
    "n_iter_", "t_", "n_outputs_", "n_layers_", "n_features_in_",
}


# Runtime hooks of scikit-learn's callback API: not model state, never stored.
_CALLBACK_ATTRS = {"_skl_callbacks", "_callback_fit_ctx", "_skl_callbacks_to_teardown"}


_LABEL_BINARIZER_KEYS = {"neg_label", "pos_label", "sparse_output", "y_type_", "sparse_input_", "classes_"}


_OPTIMIZER_SCALARS = ("solver", "learning_rate_init", "learning_rate", "lr_schedule", "power_t", "max_iter")


_OPTIMIZER_ARRAYS = ("state_1", "state_2", "counters")


_SCHEDULES = {"constant", "invscaling", "adaptive", "cosine"}


_OPTIMIZER_SOLVERS = set(STOCHASTIC_SOLVERS) | (set(FULL_BATCH_SOLVERS) - {"lbfgs"})


# ----------------------------------------------------------------------
# save
# ----------------------------------------------------------------------
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


def _check_fitted_network(est, where):
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


def _encode_attributes(est, writer):
    state = {k: v for k, v in vars(est).items() if k not in est.get_params(deep=False) and k not in _CALLBACK_ATTRS}
    unknown = set(state) - _KNOWN_ATTRS
    if unknown:
        raise TypeError(
            f"fastbp.save does not know how to store the attribute(s) {sorted(unknown)} of this "
            f"{type(est).__name__}; refusing to write a file that would lose them."
        )
    out = {}
    for name, value in state.items():
        if name in ("coefs_", "intercepts_"):
            out[name] = writer.array_list(name, value)
        elif name in ("_best_coefs", "_best_intercepts"):
            current = "coefs_" if name == "_best_coefs" else "intercepts_"
            # after early stopping the current weights ARE the best ones (the same list)
            out[name] = "$same" if value is state[current] else writer.array_list(name, value)
        elif name in _CURVE_ATTRS:
            out[name] = writer.curve(name, value)
        elif name == "classes_":
            out[name] = writer.add(name, value)
        elif name == "feature_names_in_":
            if not all(isinstance(v, str) for v in value):
                raise _Unstorable("feature names that are not all strings")
            out[name] = {"$tuple": ["feature_names", [str(v) for v in value]]}
        elif name == "_label_binarizer":
            lb = vars(value)
            if type(value) is not LabelBinarizer or set(lb) != _LABEL_BINARIZER_KEYS:
                raise TypeError(
                    f"fastbp.save cannot store the label binarizer {value!r} (unexpected state {sorted(lb)})."
                )
            fields = {k: _encode_value(v) for k, v in lb.items() if k != "classes_"}
            fields["classes_"] = writer.add("_label_binarizer.classes_", value.classes_)
            out[name] = {"$label_binarizer": fields}
        elif name == "_optimizer":
            opt = vars(value)
            if type(value) is not OptimizerState or set(opt) != set(_OPTIMIZER_SCALARS + _OPTIMIZER_ARRAYS):
                raise TypeError(f"fastbp.save cannot store the solver state (unexpected state {sorted(opt)}).")
            fields = {k: _encode_value(opt[k]) for k in _OPTIMIZER_SCALARS}
            for k in _OPTIMIZER_ARRAYS:
                fields[k] = writer.add(f"_optimizer.{k}", opt[k])
            out[name] = {"$optimizer": fields}
        elif name == "_random_state":
            if type(value) is not np.random.RandomState:
                raise TypeError(f"fastbp.save cannot store the random generator {value!r}.")
            kind, keys, pos, has_gauss, cached = value.get_state(legacy=True)
            out[name] = {"$random_state": {
                "bit_generator": kind, "pos": int(pos), "has_gauss": int(has_gauss),
                "cached_gaussian": _encode_float(cached),
                "keys": writer.add("_random_state.keys", np.asarray(keys, dtype=np.uint32)),
            }}
        else:  # scalars and the fitted-layers tuple
            out[name] = _encode_value(value)
    return out


def _build_params(cls, header, decode, reader):
    raw = header["params"]
    expected = set(cls._get_param_names())
    missing, unknown = sorted(expected - set(raw)), sorted(set(raw) - expected)
    if unknown:
        raise reader.error(f"unknown parameter name(s) {unknown} for {cls.__name__}.")
    if missing:
        raise reader.error(f"missing parameter(s) {missing} of {cls.__name__}.")
    params = {}
    for name, value in raw.items():
        try:
            params[name] = decode(value)
        except ValueError as exc:
            raise reader.error(f"parameter {name!r} {exc}.") from None
    if decode.used:
        raise reader.error("a parameter refers to an array entry.")
    est = cls(**params)
    try:
        est._validate_params()
    except (ValueError, TypeError) as exc:
        raise reader.error(f"invalid parameters: {exc}") from None
    return est


def _want(cond, reader, message):
    if not cond:
        raise reader.error(message)


def _float_arrays(value, reader, name):
    _want(isinstance(value, list) and all(isinstance(a, np.ndarray) for a in value), reader,
          f"{name} must be a list of arrays.")
    return value


def _decode_curve(value, reader, name):
    if value is None:
        return None
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "floats":
        arr = value[1]
        _want(isinstance(arr, np.ndarray) and arr.dtype == np.float64 and arr.ndim == 1, reader,
              f"{name} must be a 1-D float64 array.")
        return [float(v) for v in arr]
    _want(isinstance(value, list) and all(_is_number(v) for v in value), reader, f"{name} must be a list of numbers.")
    return value


def _decode_label_binarizer(value, reader, classifier):
    _want(classifier, reader, "a regressor has no label binarizer.")
    _want(isinstance(value, dict) and set(value) == {"$label_binarizer"}, reader,
          "_label_binarizer must be a $label_binarizer object.")
    fields = value["$label_binarizer"]
    _want(isinstance(fields, dict) and set(fields) == _LABEL_BINARIZER_KEYS, reader,
          f"_label_binarizer must have the fields {sorted(_LABEL_BINARIZER_KEYS)}.")
    return fields


def _decode_optimizer(value, reader, decode):
    _want(isinstance(value, dict) and set(value) == {"$optimizer"}, reader, "_optimizer must be a $optimizer object.")
    fields = value["$optimizer"]
    _want(isinstance(fields, dict) and set(fields) == set(_OPTIMIZER_SCALARS + _OPTIMIZER_ARRAYS), reader,
          f"_optimizer must have the fields {sorted(_OPTIMIZER_SCALARS + _OPTIMIZER_ARRAYS)}.")
    f = {k: decode(v) for k, v in fields.items()}
    _want(isinstance(f["solver"], str) and f["solver"] in _OPTIMIZER_SOLVERS, reader,
          f"_optimizer has the unknown solver {f['solver']!r}.")
    _want(isinstance(f["lr_schedule"], str) and f["lr_schedule"] in _SCHEDULES, reader,
          f"_optimizer has the unknown schedule {f['lr_schedule']!r}.")
    for k in ("learning_rate_init", "learning_rate", "power_t"):
        _want(_is_number(f[k]) and math.isfinite(f[k]), reader, f"_optimizer.{k} must be a finite number.")
    _want(f["learning_rate_init"] > 0, reader, "_optimizer.learning_rate_init must be positive.")
    _want(_is_int(f["max_iter"]) and 1 <= f["max_iter"] <= _MAX_INT, reader,
          "_optimizer.max_iter must be a positive integer.")
    s1, s2, counters = f["state_1"], f["state_2"], f["counters"]
    _want(all(isinstance(a, np.ndarray) for a in (s1, s2, counters)), reader, "_optimizer's buffers must be arrays.")
    _want(s1.dtype in _FLOAT_DTYPES and s1.ndim == 1, reader, "_optimizer.state_1 must be a 1-D float32/float64 array.")
    two = OPTIMIZER_BY_NAME[f["solver"]].state_buffers == 2
    _want(s2.dtype == s1.dtype and s2.shape == ((s1.shape[0],) if two else (0,)), reader,
          f"_optimizer.state_2 must be a {s1.dtype} array of shape {((s1.shape[0],) if two else (0,))} "
          f"for solver {f['solver']!r}, got {s2.dtype} {s2.shape}.")
    _want(counters.dtype == np.int64 and counters.shape == (2,), reader,
          "_optimizer.counters must be an int64 array of shape (2,).")
    _want(np.isfinite(s1).all() and np.isfinite(s2).all(), reader, "the solver state contains NaN or infinity.")
    opt = object.__new__(OptimizerState)
    for k in _OPTIMIZER_SCALARS + _OPTIMIZER_ARRAYS:
        setattr(opt, k, f[k])
    return opt


def _decode_random_state(value, reader, decode):
    _want(isinstance(value, dict) and set(value) == {"$random_state"}, reader,
          "_random_state must be a $random_state object.")
    f = value["$random_state"]
    _want(isinstance(f, dict) and set(f) == {"bit_generator", "keys", "pos", "has_gauss", "cached_gaussian"},
          reader, "_random_state has the wrong fields.")
    keys = decode(f["keys"])
    cached = decode(f["cached_gaussian"])
    _want(f["bit_generator"] == "MT19937", reader, f"unknown random generator {f['bit_generator']!r}.")
    _want(isinstance(keys, np.ndarray) and keys.dtype == np.uint32 and keys.shape == (624,), reader,
          "the random generator's keys must be 624 uint32 words.")
    _want(type(f["pos"]) is int and 0 <= f["pos"] <= 624 and f["has_gauss"] in (0, 1)
          and _is_float(cached) and math.isfinite(cached), reader, "the random generator's state is invalid.")
    rs = np.random.RandomState()
    try:
        rs.set_state(("MT19937", keys, f["pos"], f["has_gauss"], cached))
    except (TypeError, ValueError) as exc:
        raise reader.error(f"the random generator's state is invalid ({exc}).") from None
    return rs


def _build_attributes(est, header, decode, reader):
    raw = header["attributes"]
    classifier = isinstance(est, MLPClassifier)
    unknown = set(raw) - _KNOWN_ATTRS
    _want(not unknown, reader, f"unknown fitted attribute(s) {sorted(unknown)}.")
    required = set(_REQUIRED_ATTRS) | ({"classes_", "_label_binarizer"} if classifier else set())
    missing = required - set(raw)
    _want(not missing, reader, f"missing fitted attribute(s) {sorted(missing)}.")
    group = _ITERATIVE_GROUP & set(raw)
    _want(not group or group == _ITERATIVE_GROUP, reader,
          f"the attributes of the iterative solvers must come together: missing {sorted(_ITERATIVE_GROUP - group)}.")
    _want(classifier or not {"classes_", "_label_binarizer"} & set(raw), reader, "a regressor has no classes_.")
    state = {}
    for name, value in raw.items():
        try:
            if name == "_label_binarizer":
                fields = _decode_label_binarizer(value, reader, classifier)
                state[name] = {k: decode(v) for k, v in fields.items()}
            elif name == "_optimizer":
                state[name] = _decode_optimizer(value, reader, decode)
            elif name == "_random_state":
                state[name] = _decode_random_state(value, reader, decode)
            elif name in ("_best_coefs", "_best_intercepts") and value == "$same":
                state[name] = "$same"
            else:
                state[name] = decode(value)
        except ValueError as exc:
            if str(exc).startswith("cannot load"):
                raise
            raise reader.error(f"attribute {name!r} {exc}.") from None

    for name, low in _INT_ATTRS.items():
        if name in state:
            _want(_is_int(state[name]) and low <= state[name] <= _MAX_INT, reader,
                  f"{name} must be an integer >= {low}.")
    _want(isinstance(state["out_activation_"], str) and state["out_activation_"] in OUTPUT_ACTIVATIONS, reader,
          f"unknown output activation {state['out_activation_']!r}.")
    for name in ("loss_", "best_loss_", "best_validation_score_"):
        if name in state:
            _want(_is_number(state[name]) or (name != "loss_" and state[name] is None), reader,
                  f"{name} must be a number{'' if name == 'loss_' else ' or None'}.")
    for name in _CURVE_ATTRS:
        if name in state:
            state[name] = _decode_curve(state[name], reader, name)
    if "loss_curve_" in state:
        _want(state["loss_curve_"] is not None, reader, "loss_curve_ must be a list.")
    layers = state["_fitted_layers"]
    _want(isinstance(layers, tuple) and len(layers) == 3 and isinstance(layers[0], list)
          and all(isinstance(n, str) for n in layers[0]) and type(layers[1]) is int and type(layers[2]) is float,
          reader, "_fitted_layers must be (list of activation names, int, float).")
    if "feature_names_in_" in state:
        names = state["feature_names_in_"]
        _want(isinstance(names, tuple) and len(names) == 2 and names[0] == "feature_names"
              and isinstance(names[1], list) and all(isinstance(n, str) for n in names[1])
              and len(names[1]) == state["n_features_in_"], reader,
              "feature_names_in_ must list n_features_in_ strings.")
        state["feature_names_in_"] = np.asarray(names[1], dtype=object)

    for name in ("coefs_", "intercepts_"):
        _float_arrays(state[name], reader, name)
    for name in ("_best_coefs", "_best_intercepts"):
        if isinstance(state[name], str) and state[name] == "$same":
            state[name] = None  # set to the current list below
        else:
            _float_arrays(state[name], reader, name)

    if classifier:
        classes = state["classes_"]
        _want(isinstance(classes, np.ndarray) and classes.ndim == 1 and classes.shape[0] >= 1, reader,
              "classes_ must be a non-empty 1-D array.")
        lb = state["_label_binarizer"]
        _want(isinstance(lb["classes_"], np.ndarray) and lb["classes_"].ndim == 1
              and np.array_equal(lb["classes_"], classes), reader,
              "the label binarizer's classes do not match classes_.")
        y_type = lb["y_type_"]
        _want(isinstance(y_type, str) and y_type in ("binary", "multiclass", "multilabel-indicator"), reader,
              f"unknown target type {lb['y_type_']!r}.")
        _want(_is_int(lb["neg_label"]) and _is_int(lb["pos_label"]) and lb["neg_label"] < lb["pos_label"]
              and isinstance(lb["sparse_output"], bool) and isinstance(lb["sparse_input_"], bool), reader,
              "the label binarizer's settings are invalid.")
        n_out = 1 if lb["y_type_"] == "binary" else classes.shape[0]
        _want(state["n_outputs_"] == n_out, reader,
              f"n_outputs_={state['n_outputs_']} does not match {classes.shape[0]} classes ({lb['y_type_']}).")
        binarizer = LabelBinarizer(neg_label=lb["neg_label"], pos_label=lb["pos_label"],
                                   sparse_output=lb["sparse_output"])
        for k in ("y_type_", "sparse_input_", "classes_"):
            setattr(binarizer, k, lb[k])
        state["_label_binarizer"] = binarizer
    return state


def _install(est, state, reader):
    """Set the fitted state on ``est``, check the network, point coefs_ into one flat vector."""
    same_coefs, same_intercepts = state["_best_coefs"] is None, state["_best_intercepts"] is None
    for name, value in state.items():
        setattr(est, name, value)
    if same_coefs:
        est._best_coefs = est.coefs_
    if same_intercepts:
        est._best_intercepts = est.intercepts_
    try:
        _check_fitted_network(est, "the weights do not fit the model")
    except ValueError as exc:
        raise reader.error(str(exc)) from None
    names, pieces, slope = est._fitted_layers
    units = [int(est.n_features_in_)] + [b.shape[0] // (pieces if HIDDEN_ACTIVATIONS[n] == ACT_MAXOUT else 1)
                                         for b, n in zip(est.intercepts_[:-1], names)] + [int(est.n_outputs_)]
    network = make_network(units, names, est.out_activation_, slope, pieces)
    # as fit leaves them: views into one flat parameter vector
    flat = network.pack(est.coefs_, est.intercepts_, est.coefs_[0].dtype)
    est.coefs_, est.intercepts_ = network.views(flat)
    if same_coefs:
        est._best_coefs = est.coefs_
    if same_intercepts:
        est._best_intercepts = est.intercepts_
