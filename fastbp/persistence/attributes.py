"""A fitted estimator's attributes as the file stores them: which are known, how each is encoded
and checked, and how a loaded model is built from them."""

import math

import numpy as np
from sklearn.preprocessing import LabelBinarizer

from ..kernels.activations import OUTPUT_ACTIVATIONS
from ..kernels.optimizers import FULL_BATCH_SOLVERS, HYPER_PARAMETERS, OPTIMIZER_BY_NAME, STOCHASTIC_SOLVERS
from ..estimators import MLPClassifier, MLPRegressor, fitted_state
from ..solvers.state import OptimizerState
from .archive import _FLOAT_DTYPES, _MAX_INT, _Unstorable, _encode_float, _encode_value, _is_float, _is_int, _is_number


# The only classes load() ever constructs an estimator from.
_ESTIMATORS = {"MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor}


def _names_of(declaration, kind):
    return [a.name for a in declaration if a.kind == kind]


_LABEL_BINARIZER_KEYS = {"neg_label", "pos_label", "sparse_output", "y_type_", "sparse_input_", "classes_"}


_OPTIMIZER_SCALARS = ("solver", "learning_rate_init", "learning_rate", "lr_schedule", "power_t", "max_iter")


_OPTIMIZER_ARRAYS = ("state_1", "state_2", "counters")


_SCHEDULES = {"constant", "invscaling", "adaptive", "cosine"}


_OPTIMIZER_SOLVERS = set(STOCHASTIC_SOLVERS) | (set(FULL_BATCH_SOLVERS) - {"lbfgs"})


# ----------------------------------------------------------------------
# save
# ----------------------------------------------------------------------
def _encode_attributes(est, writer):
    declaration = {a.name: a for a in fitted_state.declared(type(est))}
    state = fitted_state.state_of(est)
    unknown = set(state) - set(declaration)
    if unknown:
        raise TypeError(
            f"fastbp.save does not know how to store the attribute(s) {sorted(unknown)} of this "
            f"{type(est).__name__}; refusing to write a file that would lose them."
        )
    out = {}
    for name, value in state.items():
        attribute = declaration[name]
        kind = attribute.kind
        if kind == "weights":
            # after early stopping the current weights ARE the best ones (the same list)
            same = attribute.same_as and value is state.get(attribute.same_as)
            out[name] = "$same" if same else writer.array_list(name, value)
        elif kind in ("curve", "curve_or_none"):
            out[name] = writer.curve(name, value)
        elif kind == "classes":
            out[name] = writer.add(name, value)
        elif kind == "feature_names":
            if not all(isinstance(v, str) for v in value):
                raise _Unstorable("feature names that are not all strings")
            out[name] = {"$tuple": ["feature_names", [str(v) for v in value]]}
        elif kind == "label_binarizer":
            lb = vars(value)
            if type(value) is not LabelBinarizer or set(lb) != _LABEL_BINARIZER_KEYS:
                raise TypeError(
                    f"fastbp.save cannot store the label binarizer {value!r} (unexpected state {sorted(lb)})."
                )
            fields = {k: _encode_value(v) for k, v in lb.items() if k != "classes_"}
            fields["classes_"] = writer.add(f"{name}.classes_", value.classes_)
            out[name] = {"$label_binarizer": fields}
        elif kind == "solver_state":
            opt = vars(value)
            if type(value) is not OptimizerState or set(opt) != set(_OPTIMIZER_SCALARS + _OPTIMIZER_ARRAYS):
                raise TypeError(f"fastbp.save cannot store the solver state (unexpected state {sorted(opt)}).")
            fields = {k: _encode_value(opt[k]) for k in _OPTIMIZER_SCALARS}
            for k in _OPTIMIZER_ARRAYS:
                fields[k] = writer.add(f"{name}.{k}", opt[k])
            out[name] = {"$optimizer": fields}
        elif kind == "random_state":
            if type(value) is not np.random.RandomState:
                raise TypeError(f"fastbp.save cannot store the random generator {value!r}.")
            bit_generator, keys, pos, has_gauss, cached = value.get_state(legacy=True)
            out[name] = {"$random_state": {
                "bit_generator": bit_generator, "pos": int(pos), "has_gauss": int(has_gauss),
                "cached_gaussian": _encode_float(cached),
                "keys": writer.add(f"{name}.keys", np.asarray(keys, dtype=np.uint32)),
            }}
        else:  # scalars and the fitted-layers tuple
            out[name] = _encode_value(value)
    return out


def _build_params(cls, header, decode, reader):
    raw = header["params"]
    expected = fitted_state.parameter_names(cls)
    missing, unknown = sorted(expected - set(raw)), sorted(set(raw) - expected)
    # An optimizer hyper-parameter that the model's solver does not read changes nothing it does:
    # a file without one (saved before the hyper-parameter existed) loads with its default.
    read = OPTIMIZER_BY_NAME[raw["solver"]].hyper_parameters if raw.get("solver") in OPTIMIZER_BY_NAME else ()
    defaults = {hyper.name: hyper.default for hyper in HYPER_PARAMETERS if hyper.name not in read}
    missing = [name for name in missing if name not in defaults]
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
    est = cls(**{**{k: v for k, v in defaults.items() if k in expected}, **params})
    try:
        fitted_state.validate_parameters(est)
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


def _decode_label_binarizer(value, reader, name):
    _want(isinstance(value, dict) and set(value) == {"$label_binarizer"}, reader,
          f"{name} must be a $label_binarizer object.")
    fields = value["$label_binarizer"]
    _want(isinstance(fields, dict) and set(fields) == _LABEL_BINARIZER_KEYS, reader,
          f"{name} must have the fields {sorted(_LABEL_BINARIZER_KEYS)}.")
    return fields


def _decode_optimizer(value, reader, decode, name):
    _want(isinstance(value, dict) and set(value) == {"$optimizer"}, reader, f"{name} must be a $optimizer object.")
    fields = value["$optimizer"]
    _want(isinstance(fields, dict) and set(fields) == set(_OPTIMIZER_SCALARS + _OPTIMIZER_ARRAYS), reader,
          f"{name} must have the fields {sorted(_OPTIMIZER_SCALARS + _OPTIMIZER_ARRAYS)}.")
    f = {k: decode(v) for k, v in fields.items()}
    _want(isinstance(f["solver"], str) and f["solver"] in _OPTIMIZER_SOLVERS, reader,
          f"{name} has the unknown solver {f['solver']!r}.")
    _want(isinstance(f["lr_schedule"], str) and f["lr_schedule"] in _SCHEDULES, reader,
          f"{name} has the unknown schedule {f['lr_schedule']!r}.")
    for k in ("learning_rate_init", "learning_rate", "power_t"):
        _want(_is_number(f[k]) and math.isfinite(f[k]), reader, f"{name}.{k} must be a finite number.")
    _want(f["learning_rate_init"] > 0, reader, f"{name}.learning_rate_init must be positive.")
    _want(_is_int(f["max_iter"]) and 1 <= f["max_iter"] <= _MAX_INT, reader,
          f"{name}.max_iter must be a positive integer.")
    s1, s2, counters = f["state_1"], f["state_2"], f["counters"]
    _want(all(isinstance(a, np.ndarray) for a in (s1, s2, counters)), reader, f"{name}'s buffers must be arrays.")
    _want(s1.dtype in _FLOAT_DTYPES and s1.ndim == 1, reader, f"{name}.state_1 must be a 1-D float32/float64 array.")
    two = OPTIMIZER_BY_NAME[f["solver"]].state_buffers == 2
    _want(s2.dtype == s1.dtype and s2.shape == ((s1.shape[0],) if two else (0,)), reader,
          f"{name}.state_2 must be a {s1.dtype} array of shape {((s1.shape[0],) if two else (0,))} "
          f"for solver {f['solver']!r}, got {s2.dtype} {s2.shape}.")
    _want(counters.dtype == np.int64 and counters.shape == (2,), reader,
          f"{name}.counters must be an int64 array of shape (2,).")
    _want(np.isfinite(s1).all() and np.isfinite(s2).all(), reader, "the solver state contains NaN or infinity.")
    opt = object.__new__(OptimizerState)
    for k in _OPTIMIZER_SCALARS + _OPTIMIZER_ARRAYS:
        setattr(opt, k, f[k])
    return opt


def _decode_random_state(value, reader, decode, name):
    _want(isinstance(value, dict) and set(value) == {"$random_state"}, reader,
          f"{name} must be a $random_state object.")
    f = value["$random_state"]
    _want(isinstance(f, dict) and set(f) == {"bit_generator", "keys", "pos", "has_gauss", "cached_gaussian"},
          reader, f"{name} has the wrong fields.")
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
    declaration = fitted_state.declared(type(est))
    by_name = {a.name: a for a in declaration}
    unknown = set(raw) - set(by_name)
    _want(not unknown, reader, f"unknown fitted attribute(s) {sorted(unknown)}.")
    missing = {a.name for a in declaration if a.required} - set(raw)
    _want(not missing, reader, f"missing fitted attribute(s) {sorted(missing)}.")
    for group in sorted({a.group for a in declaration if a.group}):
        members = {a.name for a in declaration if a.group == group}
        present = members & set(raw)
        _want(not present or present == members, reader,
              f"the attributes of {group} must come together: missing {sorted(members - present)}.")
    state = {}
    for name, value in raw.items():
        attribute = by_name[name]
        try:
            if attribute.kind == "label_binarizer":
                fields = _decode_label_binarizer(value, reader, name)
                state[name] = {k: decode(v) for k, v in fields.items()}
            elif attribute.kind == "solver_state":
                state[name] = _decode_optimizer(value, reader, decode, name)
            elif attribute.kind == "random_state":
                state[name] = _decode_random_state(value, reader, decode, name)
            elif attribute.same_as and value == "$same":
                state[name] = "$same"
            else:
                state[name] = decode(value)
        except ValueError as exc:
            if str(exc).startswith("cannot load"):
                raise
            raise reader.error(f"attribute {name!r} {exc}.") from None

    for attribute in declaration:
        name, kind = attribute.name, attribute.kind
        if name not in state:
            continue
        value = state[name]
        if kind == "int":
            _want(_is_int(value) and attribute.low <= value <= _MAX_INT, reader,
                  f"{name} must be an integer >= {attribute.low}.")
        elif kind == "output_activation":
            _want(isinstance(value, str) and value in OUTPUT_ACTIVATIONS, reader,
                  f"unknown output activation {value!r}.")
        elif kind in ("number", "number_or_none"):
            _want(_is_number(value) or (kind == "number_or_none" and value is None), reader,
                  f"{name} must be a number{'' if kind == 'number' else ' or None'}.")
        elif kind in ("curve", "curve_or_none"):
            state[name] = _decode_curve(value, reader, name)
            if kind == "curve":
                _want(state[name] is not None, reader, f"{name} must be a list.")
        elif kind == "layers":
            _want(isinstance(value, tuple) and len(value) == 3 and isinstance(value[0], list)
                  and all(isinstance(n, str) for n in value[0]) and type(value[1]) is int
                  and type(value[2]) is float, reader, f"{name} must be (list of activation names, int, float).")
        elif kind == "feature_names":
            _want(isinstance(value, tuple) and len(value) == 2 and value[0] == "feature_names"
                  and isinstance(value[1], list) and all(isinstance(n, str) for n in value[1])
                  and len(value[1]) == state["n_features_in_"], reader,
                  f"{name} must list n_features_in_ strings.")
            state[name] = np.asarray(value[1], dtype=object)
        elif kind == "weights":
            if attribute.same_as and isinstance(value, str) and value == "$same":
                state[name] = None  # the very list of attribute.same_as (fitted_state.install)
            else:
                _float_arrays(value, reader, name)

    for classes_name in _names_of(declaration, "classes"):
        classes = state[classes_name]
        _want(isinstance(classes, np.ndarray) and classes.ndim == 1 and classes.shape[0] >= 1, reader,
              f"{classes_name} must be a non-empty 1-D array.")
        for name in _names_of(declaration, "label_binarizer"):
            state[name] = _label_binarizer(state[name], classes, state["n_outputs_"], reader, classes_name)
    return state


def _label_binarizer(lb, classes, n_outputs, reader, classes_name):
    """A LabelBinarizer from its checked fields, which must agree with the classes and outputs."""
    _want(isinstance(lb["classes_"], np.ndarray) and lb["classes_"].ndim == 1
          and np.array_equal(lb["classes_"], classes), reader,
          f"the label binarizer's classes do not match {classes_name}.")
    y_type = lb["y_type_"]
    _want(isinstance(y_type, str) and y_type in ("binary", "multiclass", "multilabel-indicator"), reader,
          f"unknown target type {lb['y_type_']!r}.")
    _want(_is_int(lb["neg_label"]) and _is_int(lb["pos_label"]) and lb["neg_label"] < lb["pos_label"]
          and isinstance(lb["sparse_output"], bool) and isinstance(lb["sparse_input_"], bool), reader,
          "the label binarizer's settings are invalid.")
    n_out = 1 if lb["y_type_"] == "binary" else classes.shape[0]
    _want(n_outputs == n_out, reader,
          f"n_outputs_={n_outputs} does not match {classes.shape[0]} classes ({lb['y_type_']}).")
    binarizer = LabelBinarizer(neg_label=lb["neg_label"], pos_label=lb["pos_label"],
                               sparse_output=lb["sparse_output"])
    for k in ("y_type_", "sparse_input_", "classes_"):
        setattr(binarizer, k, lb[k])
    return binarizer


def _install(est, state, reader):
    """Set the fitted state on ``est``, check the network, point coefs_ into one flat vector."""
    try:
        fitted_state.install(est, state)
    except ValueError as exc:
        raise reader.error(str(exc)) from None
