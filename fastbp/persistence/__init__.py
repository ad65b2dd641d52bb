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

import numpy as np
import sklearn
from sklearn.utils.validation import check_is_fitted

from ..estimators import MLPClassifier, MLPRegressor
from .archive import (
    HEADER_KEY,
    _Decoder,
    _MAX_JSON_DEPTH,
    _Reader,
    _Unstorable,
    _Writer,
    _encode_value,
    _fspath,
    _json_depth,
    _read_archive,
    _read_arrays,
    _read_member,
    _write_atomically,
)
from ..estimators import fitted_state
from .attributes import (
    _ESTIMATORS,
    _build_attributes,
    _build_params,
    _encode_attributes,
    _install,
    _want,
)


__all__ = ["save", "load"]


FORMAT_NAME = "fastbp-model"


FORMAT_VERSION = 1

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

_HEADER_KEYS = {
    "format", "format_version", "fastbp_version", "sklearn_version", "numpy_version",
    "estimator", "params", "attributes", "arrays",
}


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
    fitted_state.check_fitted_network(model, "cannot save this model")

    writer = _Writer()
    try:
        attributes = _encode_attributes(model, writer)
    except _Unstorable as exc:
        raise TypeError(f"cannot save this model: an attribute holds {exc}.") from None

    from .._version import __version__

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
