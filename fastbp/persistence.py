"""Safe persistence: :func:`save` and :func:`load`.

A saved model is ONE ``.npz`` archive (NumPy's zip of ``.npy`` arrays) that
holds plain numeric / string arrays and one JSON document, and nothing that can
execute code when it is read:

* ``__fastbp__``: a uint8 array, the UTF-8 bytes of a strict JSON document (no
  NaN / Infinity literals) with the format name (``"fastbp-model"``), the format
  version, the fastbp version that wrote it, the estimator class name (only
  ``"MLPClassifier"`` and ``"MLPRegressor"`` are ever accepted), the
  estimator's ``get_params()``, its fitted non-array attributes, and a manifest
  of every array (name, shape, dtype);
* one entry per array: ``coefs_.0``, ``intercepts_.0``, ..., the optimizer's
  buffers, the loss and validation curves, ``classes_``, the state of the
  random generator.

JSON values that plain JSON cannot tell apart are tagged with one-key objects:
``{"$float": "nan"}``, ``{"$numpy": "<f8", "value": ...}`` (a NumPy scalar),
``{"$tuple": [...]}``, ``{"$dict": [[key, value], ...]}``, ``{"$ndarray": ...}``
(a small array parameter), ``{"$array": name}`` (an archive entry) and the
three rebuilt objects ``$label_binarizer``, ``$optimizer`` and
``$random_state``. :func:`load` reads the archive with ``allow_pickle=False``,
constructs nothing but the two estimator classes, a ``LabelBinarizer``, the
solver state and a ``RandomState``, and checks everything before it builds the
estimator (see :func:`load`).
"""

import json
import math
import os
import secrets
import zipfile

import numpy as np
import sklearn
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.validation import check_is_fitted

from .kernels.activations import ACT_MAXOUT, HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from .kernels.codes import FULL_BATCH_SOLVERS, STOCHASTIC_SOLVERS
from .engine.network import make_network
from .estimators import MLPClassifier, MLPRegressor
from .solvers.state import OptimizerState

__all__ = ["save", "load"]

FORMAT_NAME = "fastbp-model"
FORMAT_VERSION = 1
HEADER_KEY = "__fastbp__"

# How this fastbp reads a file of an older format version: ``_UPGRADES[v]``
# turns the header and arrays of version ``v`` (as read, its own manifest
# checked) into those version ``v + 1`` writes, and load applies the steps in
# turn up to FORMAT_VERSION before it checks and builds anything. A change to
# what save writes (a parameter or fitted attribute added, renamed or removed,
# an array stored otherwise) increases FORMAT_VERSION and adds the step from
# the version before, which gives old files the values that reproduce their
# old behaviour (for a new parameter, the default that keeps what the older
# fastbp did). tests/data keeps the files of every version with their expected
# predictions (tests/test_persistence.py loads them all, and checks that every
# version below FORMAT_VERSION has its step). All versions so far share the
# header fields of _HEADER_KEYS; a step that changes them changes that check.
_UPGRADES = {}

# The only classes load() ever constructs an estimator from.
_ESTIMATORS = {"MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor}

_HEADER_KEYS = {
    "format", "format_version", "fastbp_version", "sklearn_version", "numpy_version",
    "estimator", "params", "attributes", "arrays",
}
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
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# dtype kinds an array entry may have: bool, integers, floats, unicode strings.
_ARRAY_KINDS = {"b": "bool", "i": "int", "u": "uint", "f": "float", "U": "str"}
_NUMPY_SCALAR_KINDS = {"b", "i", "u", "f"}
_NPY_HEADER_ALLOWANCE = 1 << 16  # an .npy member's header: at most this much beyond its data
_MAX_JSON_DEPTH = 32
_MAX_INT = 2**63 - 1  # the fitted counters are int64-sized


# ----------------------------------------------------------------------
# JSON values
# ----------------------------------------------------------------------
class _Unstorable(TypeError):
    """A value that has no safe JSON / array form."""


def _encode_float(value):
    value = float(value)
    if math.isnan(value):
        return {"$float": "nan"}
    if math.isinf(value):
        return {"$float": "inf" if value > 0 else "-inf"}
    return value


def _encode_value(value, allow_ndarray=False):
    """JSON form of a plain value (None, bool, int, float, str, NumPy scalar, tuple, list, dict)."""
    if value is None or type(value) in (bool, str):
        return value
    if isinstance(value, np.generic):  # first: np.float64 is a float, np.bool_ is not a bool
        if value.dtype.kind not in _NUMPY_SCALAR_KINDS or value.dtype.itemsize > 8:
            raise _Unstorable(f"a NumPy scalar of dtype {value.dtype}")
        if value.dtype.kind == "f":
            inner = _encode_float(value)
        else:
            inner = value.item()
        return {"$numpy": value.dtype.str, "value": inner}
    if isinstance(value, (bool, str)):
        return bool(value) if isinstance(value, bool) else str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _encode_float(value)
    if isinstance(value, list):
        return [_encode_value(v, allow_ndarray) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [_encode_value(v, allow_ndarray) for v in value]}
    if isinstance(value, dict):
        return {"$dict": [[_encode_value(k), _encode_value(v, allow_ndarray)] for k, v in value.items()]}
    if allow_ndarray and isinstance(value, np.ndarray):
        if value.dtype.kind not in _ARRAY_KINDS or value.ndim > 2 or value.size > 4096:
            raise _Unstorable(f"an array of dtype {value.dtype} and shape {value.shape}")
        data = [_encode_value(v) for v in value.ravel().tolist()]
        return {"$ndarray": value.dtype.str, "shape": list(value.shape), "data": data}
    raise _Unstorable(f"a {type(value).__module__}.{type(value).__qualname__} object")


class _Decoder:
    """Rebuilds the JSON values; resolves ``{"$array": name}`` to the archive's arrays."""

    def __init__(self, arrays):
        self.arrays = arrays
        self.used = set()

    def array(self, name):
        if not isinstance(name, str) or name not in self.arrays:
            raise ValueError(f"refers to the array {name!r}, which the manifest does not list")
        if name in self.used:
            raise ValueError(f"refers to the array {name!r} twice")
        self.used.add(name)
        return self.arrays[name]

    def __call__(self, value):
        if value is None or isinstance(value, (bool, str, int, float)):
            return value
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict) or not value:
            raise ValueError(f"holds an unexpected JSON value {value!r}")
        tag = next(iter(value))
        if len(value) == 1 and tag == "$float":
            names = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
            if value[tag] not in names:
                raise ValueError(f"holds an unknown float {value[tag]!r}")
            return names[value[tag]]
        if len(value) == 1 and tag == "$tuple" and isinstance(value[tag], list):
            return tuple(self(v) for v in value[tag])
        if len(value) == 1 and tag == "$dict" and isinstance(value[tag], list):
            items = value[tag]
            if not all(isinstance(item, list) and len(item) == 2 for item in items):
                raise ValueError("holds a malformed $dict")
            return {self._key(k): self(v) for k, v in items}
        if len(value) == 1 and tag == "$array":
            return self.array(value[tag])
        if set(value) == {"$numpy", "value"}:
            dtype = _plain_dtype(value["$numpy"], _NUMPY_SCALAR_KINDS)
            inner = self(value["value"])
            ok = {
                "b": isinstance(inner, bool),
                "i": _is_int(inner), "u": _is_int(inner),
                "f": _is_number(inner),
            }[dtype.kind]
            if not ok:
                raise ValueError(f"holds a malformed NumPy scalar {value!r}")
            try:
                return dtype.type(inner)
            except OverflowError:
                raise ValueError(f"holds a NumPy scalar out of range {value!r}") from None
        if set(value) == {"$ndarray", "shape", "data"}:
            dtype = _plain_dtype(value["$ndarray"], set(_ARRAY_KINDS))
            shape = value["shape"]
            data = self(value["data"])
            if (not isinstance(shape, list) or len(shape) > 2
                    or not all(type(n) is int and n >= 0 for n in shape)
                    or not isinstance(data, list) or len(data) != math.prod(shape)):
                raise ValueError(f"holds a malformed $ndarray {value!r}")
            return np.array(data, dtype=dtype).reshape(shape)
        raise ValueError(f"holds an unknown JSON object {value!r}")

    def _key(self, key):
        key = self(key)
        if isinstance(key, (list, dict, np.ndarray)):
            raise ValueError(f"holds an unhashable $dict key {key!r}")
        return key


def _plain_dtype(text, kinds):
    try:
        dtype = np.dtype(text) if isinstance(text, str) else None
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in kinds or dtype.hasobject or dtype.fields is not None:
        raise ValueError(f"holds a dtype {text!r} that is not allowed")
    return dtype


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


class _Writer:
    def __init__(self):
        self.arrays = {}

    def add(self, name, array):
        array = np.asarray(array)
        if array.dtype.kind not in _ARRAY_KINDS or array.dtype.hasobject:
            raise _Unstorable(f"an array of dtype {array.dtype}")
        self.arrays[name] = np.ascontiguousarray(array)
        return {"$array": name}

    def array_list(self, name, arrays):
        return [self.add(f"{name}.{i}", a) for i, a in enumerate(arrays)]

    def curve(self, name, values):
        """A list of floats: one float64 array when they are all Python floats, else tagged JSON."""
        if values is None:
            return None
        if all(type(v) is float for v in values):
            return {"$tuple": ["floats", self.add(name, np.array(values, dtype=np.float64))]}
        return _encode_value(list(values))


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


def _fspath(path):
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}.")
    path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError("path must be a text path (str), not bytes.")
    return path


def save(model, path):
    """Save a fitted fastbp estimator to one ``.npz`` file that cannot execute code.

    The file is a NumPy ``.npz`` archive of plain arrays (the weights, the
    solver's buffers, the loss and validation curves, ``classes_``, the random
    generator's state) plus a JSON document with the format name and version,
    the fastbp version, the class name, ``get_params()``, the fitted scalar
    attributes and a manifest of the arrays. :func:`load` rebuilds an estimator
    whose ``predict``, ``predict_proba`` and ``score`` equal the original's bit
    for bit, and whose ``partial_fit`` / ``fit(warm_start=True)`` continue
    exactly as the original's would.

    The file is written atomically: to a temporary file in the same directory,
    then renamed over ``path``, so an interrupted save never leaves a
    half-written model at ``path``. It is written to exactly ``path``, whatever
    its suffix (no ``.npz`` is appended).

    Only parameters that are numbers, strings, booleans, None, or lists,
    tuples and dicts of them can be stored: a parameter holding an object,
    such as a ``numpy.random.RandomState`` instance as ``random_state`` or a
    callable, is refused with a TypeError (it is neither stored as None nor
    replaced: pass an integer seed instead). Callbacks set with
    ``set_callbacks`` are runtime hooks, not model state: they are not stored.

    Parameters
    ----------
    model : MLPClassifier or MLPRegressor
        A fitted fastbp estimator (exactly these classes, not subclasses).
    path : str or os.PathLike
        Where to write the file; an existing file there is replaced.

    Returns
    -------
    None

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``model`` is not fitted.
    TypeError
        If ``model`` is not a fastbp MLPClassifier / MLPRegressor, if ``path``
        is not a str or os.PathLike, or if a parameter or attribute holds an
        object that cannot be stored without pickling.
    ValueError
        If the fitted weights do not match the network the parameters describe
        (parameters changed with ``set_params`` after fitting) or hold NaN or
        infinity.
    OSError
        If the file cannot be written.

    See Also
    --------
    load : Read a model saved by this function.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import fastbp
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    >>> clf = fastbp.MLPClassifier((4,), solver="lbfgs", random_state=0).fit(X, [0, 1, 1, 0])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> fastbp.save(clf, path)
    >>> clone = fastbp.load(path)
    >>> bool(np.array_equal(clone.predict_proba(X), clf.predict_proba(X)))
    True
    """
    if type(model) not in (MLPClassifier, MLPRegressor):
        raise TypeError(
            "fastbp.save stores fastbp.MLPClassifier and fastbp.MLPRegressor estimators, got "
            f"{type(model).__module__}.{type(model).__qualname__}."
        )
    path = _fspath(path)
    check_is_fitted(model)

    params = {}
    for name, value in model.get_params(deep=False).items():
        try:
            params[name] = _encode_value(value, allow_ndarray=True)
        except _Unstorable as exc:
            hint = " Pass an integer seed (or None) as random_state." if name == "random_state" else ""
            raise TypeError(
                f"cannot save parameter {name}={value!r}: it holds {exc}, which the safe format cannot "
                f"store (only numbers, strings, booleans, None and lists / tuples / dicts of them).{hint}"
            ) from None
    _check_fitted_network(model, "cannot save this model")

    writer = _Writer()
    try:
        attributes = _encode_attributes(model, writer)
    except _Unstorable as exc:
        raise TypeError(f"cannot save this model: an attribute holds {exc}.") from None

    from ._version import __version__

    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "fastbp_version": __version__,
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "estimator": type(model).__name__,
        "params": params,
        "attributes": attributes,
        "arrays": {
            name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in sorted(writer.arrays.items())
        },
    }
    document = json.dumps(header, allow_nan=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    arrays = dict(writer.arrays)
    arrays[HEADER_KEY] = np.frombuffer(document, dtype=np.uint8)
    _write_atomically(path, arrays)


def _write_atomically(path, arrays):
    directory, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never follow or reuse an existing file; mode 0o666 minus the umask, like open()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # a file object: numpy appends no ".npz"
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (POSIX)
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# ----------------------------------------------------------------------
# load
# ----------------------------------------------------------------------
class _Reader:
    def __init__(self, path):
        self.path = path

    def error(self, message):
        return ValueError(f"cannot load {self.path!r} as a fastbp model: {message}")


def _read_archive(path, reader):
    """Open ``path`` as an .npz archive: (NpzFile, open file)."""
    try:
        f = open(path, "rb")
    except IsADirectoryError:
        raise reader.error("it is a directory, not a file.") from None
    try:
        magic = f.read(6)
        if not magic:
            raise reader.error("the file is empty.")
        if magic[:1] == b"\x80" and magic[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
            raise reader.error(
                "it is a pickle file, not a fastbp .npz model (fastbp.load never unpickles: pickles can run code)."
            )
        if magic == b"\x93NUMPY":
            raise reader.error("it is a single .npy array, not an .npz archive written by fastbp.save.")
        if magic[:4] != b"PK\x03\x04":
            raise reader.error("it is not a zip (.npz) archive.")
        f.seek(0)
        try:
            npz = np.load(f, allow_pickle=False)
        except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
            raise reader.error(f"the zip (.npz) archive is truncated or corrupt ({exc}).") from None
        if not isinstance(npz, np.lib.npyio.NpzFile):  # pragma: no cover - the magic said zip
            raise reader.error("it is not an .npz archive.")
        return npz, f
    except BaseException:
        f.close()
        raise


def _read_member(npz, name, reader):
    try:
        return npz[name]
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "bject arrays" in str(exc):
            raise reader.error(
                f"the array {name!r} holds Python objects (dtype=object); fastbp.load never unpickles."
            ) from None
        raise reader.error(f"the array {name!r} is corrupt ({exc}).") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
        raise reader.error(f"the array {name!r} is truncated or corrupt ({exc}).") from None


def _json_depth(document):
    """Nesting depth of a parsed JSON document (iteratively: no recursion limit to hit)."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return deepest


def _read_header(npz, reader):
    names = list(npz.files)
    if len(names) != len(set(names)):
        raise reader.error("the archive holds the same entry twice.")
    if HEADER_KEY not in names:
        raise reader.error(f"it has no {HEADER_KEY!r} JSON header: this .npz was not written by fastbp.save.")
    raw = _read_member(npz, HEADER_KEY, reader)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise reader.error(f"the {HEADER_KEY!r} header must be a 1-D uint8 array, got {raw.dtype} {raw.shape}.")

    def refuse_constant(name):
        raise ValueError(f"non-standard JSON constant {name}")

    def finite_float(text):
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"number {text} out of range")
        return value

    try:
        header = json.loads(raw.tobytes().decode("utf-8"), parse_constant=refuse_constant, parse_float=finite_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise reader.error(f"the {HEADER_KEY!r} header is not valid JSON ({exc}).") from None
    if _json_depth(header) > _MAX_JSON_DEPTH:
        raise reader.error(f"the {HEADER_KEY!r} header is nested more than {_MAX_JSON_DEPTH} levels deep.")
    if not isinstance(header, dict):
        raise reader.error(f"the {HEADER_KEY!r} header is not a JSON object.")
    if header.get("format") != FORMAT_NAME:
        raise reader.error(f"wrong format name {header.get('format')!r} (expected {FORMAT_NAME!r}).")
    version = header.get("format_version")
    if type(version) is not int or version < 1:
        raise reader.error(f"unknown format version {version!r}.")
    if version > FORMAT_VERSION:
        raise reader.error(
            f"format version {version} was written by a newer fastbp "
            f"({header.get('fastbp_version')!r}); this fastbp reads format version {FORMAT_VERSION} "
            "and older: upgrade fastbp."
        )
    keys = set(header)
    if keys != _HEADER_KEYS:
        missing, extra = sorted(_HEADER_KEYS - keys), sorted(keys - _HEADER_KEYS)
        raise reader.error(f"the header's fields are wrong (missing {missing}, unknown {extra}).")
    for key, kind in (("params", dict), ("attributes", dict), ("arrays", dict), ("estimator", str)):
        if not isinstance(header[key], kind):
            raise reader.error(f"the header's {key!r} must be a JSON {kind.__name__}.")
    return header


def _member_header(npz, name, reader):
    """(dtype, shape) from an .npy member's header, read before any of its data."""
    try:
        with npz.zip.open(name + ".npy") as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
        raise reader.error(f"the array {name!r} is truncated or corrupt ({exc}).") from None
    return dtype, shape


def _read_arrays(npz, header, reader):
    manifest = header["arrays"]
    stored = set(npz.files) - {HEADER_KEY}
    missing, extra = sorted(set(manifest) - stored), sorted(stored - set(manifest))
    if missing:
        raise reader.error(f"array entries listed in the manifest are missing: {missing}.")
    if extra:
        raise reader.error(f"the archive holds array entries the manifest does not list: {extra}.")
    sizes = {info.filename: info.file_size for info in npz.zip.infolist()}
    arrays = {}
    for name, entry in manifest.items():
        if not isinstance(entry, dict) or set(entry) != {"shape", "dtype"}:
            raise reader.error(f"the manifest entry of {name!r} must be {{'shape': [...], 'dtype': ...}}.")
        shape, dtype_text = entry["shape"], entry["dtype"]
        if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape) or len(shape) > 2:
            raise reader.error(f"the manifest gives {name!r} the invalid shape {shape!r}.")
        if isinstance(dtype_text, str) and "O" in dtype_text:
            raise reader.error(f"the manifest gives {name!r} dtype=object; fastbp never loads Python objects.")
        try:
            dtype = _plain_dtype(dtype_text, set(_ARRAY_KINDS))
        except ValueError:
            raise reader.error(f"the manifest gives {name!r} the dtype {dtype_text!r}, which is not allowed.") from None
        stored_dtype, stored_shape = _member_header(npz, name, reader)
        if stored_dtype.hasobject:
            raise reader.error(
                f"the array {name!r} holds Python objects (dtype=object); fastbp.load never unpickles."
            )
        if stored_dtype != dtype or list(stored_shape) != shape:
            raise reader.error(
                f"the array {name!r} has dtype {stored_dtype.str} and shape {list(stored_shape)}; "
                f"the manifest says {dtype.str} and {shape}."
            )
        # an .npy member is its header and the raw data: nothing much larger is read
        if sizes[name + ".npy"] > math.prod(shape) * dtype.itemsize + _NPY_HEADER_ALLOWANCE:
            raise reader.error(f"the array entry {name!r} is larger than its manifest entry {entry!r} allows.")
        array = _read_member(npz, name, reader)
        if array.dtype != dtype or list(array.shape) != shape:  # pragma: no cover - checked from the header
            raise reader.error(f"the array {name!r} does not match its header.")
        arrays[name] = array
    return arrays


def _upgrade(header, arrays, reader):
    """The header and arrays of a file of any format version, as FORMAT_VERSION writes them."""
    version = header["format_version"]
    while version < FORMAT_VERSION:
        step = _UPGRADES.get(version)
        if step is None:  # (tests/test_persistence.py checks that every version has its step)
            raise reader.error(
                f"format version {version} (written by fastbp {header.get('fastbp_version')!r}) "
                f"cannot be read by this fastbp, which writes format version {FORMAT_VERSION}."
            )
        header, arrays = step(dict(header), dict(arrays))
        version += 1
        header["format_version"] = version
    return header, arrays


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


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_float(v):
    return isinstance(v, (float, np.floating)) and not isinstance(v, bool)


def _is_number(v):
    return _is_int(v) or _is_float(v)


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
    two = f["solver"] in ("adam", "adamw", "rprop", "quickprop")
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


def load(path):
    """Load an estimator saved by :func:`save`, checking the file before anything is built.

    The file is read with ``numpy.load(..., allow_pickle=False)``: nothing in it
    is unpickled or executed, and the only objects constructed are a
    ``MLPClassifier`` or ``MLPRegressor``, a ``LabelBinarizer``, the solver's
    state and a ``numpy.random.RandomState``. Before the estimator is built,
    load checks that the file is a complete zip (``.npz``) archive; that its
    JSON header exists, names the format ``"fastbp-model"`` with a format
    version this fastbp reads, and one of the two estimator classes; that the
    parameters are exactly the class's parameter names and pass scikit-learn's
    parameter validation; that the arrays are exactly those of the manifest,
    with its shapes and dtypes, none of dtype object; that the weights have the
    shapes of the network the parameters describe (``n_features_in_``,
    ``hidden_layer_sizes``, ``activation``, ``maxout_pieces``, ``n_outputs_``),
    a float dtype and finite values; and that the solver state, the label
    binarizer and the random generator's state are consistent. A file of an
    older format version is first upgraded, step by step, to what this
    version writes; a newer one is refused with a message naming both
    versions.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save`.

    Returns
    -------
    model : MLPClassifier or MLPRegressor
        The fitted estimator: predictions equal the saved model's bit for bit,
        and training continues (``partial_fit``, ``fit`` with
        ``warm_start=True``) exactly as it would have from the saved model.

    Raises
    ------
    ValueError
        If the file is not a valid fastbp model file: empty, truncated or
        corrupt, not a zip archive (a pickle, a ``.npy``, any other file), no
        or a malformed header, a wrong format name, an unknown or newer format
        version, an unknown estimator class, unknown, missing or invalid
        parameters, missing or extra arrays, arrays of dtype object, shapes or
        dtypes other than the manifest's or the network's, non-finite weights.
        The message names the problem.
    TypeError
        If ``path`` is not a str or os.PathLike.
    OSError
        If the file cannot be read (for example FileNotFoundError).

    See Also
    --------
    save : Write a model to such a file.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import fastbp
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> reg = fastbp.MLPRegressor(hidden_layer_sizes=(3,), solver="lbfgs", random_state=0).fit(X, X.ravel())
    >>> path = os.path.join(tempfile.mkdtemp(), "regressor.model")
    >>> fastbp.save(reg, path)
    >>> same = fastbp.load(path)
    >>> bool(np.array_equal(same.predict(X), reg.predict(X)))
    True
    """
    path = _fspath(path)
    reader = _Reader(path)
    npz, f = _read_archive(path, reader)
    try:
        with npz:
            header = _read_header(npz, reader)
            cls = _ESTIMATORS.get(header["estimator"])
            if cls is None:
                raise reader.error(
                    f"unknown estimator class {header['estimator']!r} (only {sorted(_ESTIMATORS)} can be loaded)."
                )
            arrays = _read_arrays(npz, header, reader)
    finally:
        f.close()
    header, arrays = _upgrade(header, arrays, reader)
    try:
        est = _build_params(cls, header, _Decoder(arrays), reader)
        decode = _Decoder(arrays)
        state = _build_attributes(est, header, decode, reader)
        unused = sorted(set(arrays) - decode.used)
        _want(not unused, reader, f"the manifest lists arrays that no attribute uses: {unused}.")
        _install(est, state, reader)
    except (TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
        # a value of the wrong kind that no specific check above caught
        raise reader.error(f"the header is malformed ({type(exc).__name__}: {exc}).") from None
    return est
