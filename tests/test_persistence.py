"""fastbp.save / fastbp.load: the safe .npz format.

Round trips (predictions bit for bit, every fitted attribute, continued
training), the refusals of save, and load's checks of foreign, corrupt and
tampered files. Tiny data (20 x 5), tiny networks, a few iterations.
"""

import io
import json
import os
import pathlib
import pickle
import warnings
import zipfile

import joblib
import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier
from sklearn.preprocessing import LabelBinarizer

import fastbp
from fastbp import MLPClassifier, MLPRegressor
from fastbp.solvers.state import OptimizerState

HEADER = "__fastbp__"

_rng = np.random.RandomState(0)
X = _rng.normal(size=(20, 5))
Y_BINARY = np.arange(20) % 2
Y_MULTICLASS = np.arange(20) % 3
Y_MULTILABEL = (_rng.uniform(size=(20, 3)) > 0.5).astype(int)
Y_STRINGS = np.array(["cat", "dog", "emu"])[np.arange(20) % 3]
Y_REG = X @ _rng.normal(size=5)
Y_REG2 = np.column_stack([Y_REG, X[:, 0] - X[:, 1]])
TARGETS = {
    "binary": Y_BINARY, "multiclass": Y_MULTICLASS, "multilabel": Y_MULTILABEL, "strings": Y_STRINGS,
    "reg": Y_REG, "reg2": Y_REG2,
}


def _fit(est, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kwargs)


def _make(kind, **params):
    params = {"hidden_layer_sizes": (4,), "max_iter": 5, "random_state": 0, **params}
    return MLPRegressor(**params) if kind.startswith("reg") else MLPClassifier(**params)


def _same_value(a, b, where):
    """Equal, bit for bit and type for type (what pickle would give)."""
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        assert_array_equal(a, b, err_msg=where, strict=True)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b)):
            _same_value(u, v, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same_value(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (LabelBinarizer, OptimizerState)):
        _same_value(vars(a), vars(b), where)
    elif isinstance(a, np.random.RandomState):
        _same_value(a.get_state(), b.get_state(), where)
    elif isinstance(a, (float, np.floating)) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_state(a, b):
    assert type(a) is type(b)
    _same_value(a.get_params(), b.get_params(), "params")
    assert set(vars(a)) == set(vars(b)), set(vars(a)) ^ set(vars(b))
    for name in vars(a):
        _same_value(getattr(a, name), getattr(b, name), name)


def assert_same_predictions(a, b, X, y):
    assert_array_equal(a.predict(X), b.predict(X), strict=True)
    if hasattr(a, "predict_proba"):
        assert_array_equal(a.predict_proba(X), b.predict_proba(X), strict=True)
    sa, sb = a.score(X, y), b.score(X, y)
    assert sa == sb and type(sa) is type(sb)


def _roundtrip(est, tmp_path, name="model.npz"):
    path = tmp_path / name
    fastbp.save(est, path)
    return fastbp.load(path)


ROUNDTRIP_CASES = [
    ("binary", np.float64, {"solver": "adam"}),
    ("multiclass", np.float32, {"solver": "adam"}),
    ("multilabel", np.float64, {"solver": "adam"}),
    ("strings", np.float64, {"solver": "sgd", "learning_rate": "invscaling"}),
    ("multiclass", np.float64, {"solver": "lbfgs"}),
    ("binary", np.float32, {"solver": "rprop"}),
    ("multiclass", np.float32, {"solver": "sgd", "activation": "maxout", "maxout_pieces": 3, "dropout": 0.25}),
    ("multiclass", np.float64, {"solver": "adam", "hidden_layer_sizes": (4, 3), "activation": ["maxout", "tanh"],
                                "dropout": [0.0, 0.5]}),
    ("multiclass", np.float64, {"solver": "adam", "early_stopping": True, "n_iter_no_change": 2,
                                "validation_fraction": 0.3}),
    ("binary", np.float64, {"solver": "adamw", "class_weight": {0: 2.0, 1: 0.5}, "alpha": np.float64(1e-3)}),
    ("reg", np.float64, {"solver": "adam"}),
    ("reg", np.float32, {"solver": "lbfgs"}),
    ("reg2", np.float64, {"solver": "sgd", "hidden_layer_sizes": [3, 3]}),
    ("reg", np.float32, {"solver": "rprop", "activation": "maxout"}),
    ("reg", np.float64, {"solver": "rmsprop", "dropout": 0.3, "loss": "huber"}),
    ("reg", np.float64, {"solver": "adam", "early_stopping": True, "validation_fraction": 0.3}),
    ("reg", np.float64, {"solver": "lm", "hidden_layer_sizes": ()}),
    ("reg2", np.float64, {"solver": "quickprop", "hidden_layer_sizes": np.array([3, 2]), "loss": "absolute_error"}),
]


@pytest.mark.parametrize("kind, dtype, params", ROUNDTRIP_CASES)
def test_roundtrip_predicts_identically_and_keeps_every_attribute(kind, dtype, params, tmp_path):
    Xd, y = X.astype(dtype), TARGETS[kind]
    est = _fit(_make(kind, **params), Xd, y)
    loaded = _roundtrip(est, tmp_path)
    assert_same_state(est, loaded)
    assert_same_predictions(est, loaded, Xd, y)
    assert loaded.coefs_[0].dtype == dtype


def test_file_format(tmp_path):
    est = _fit(_make("multiclass", solver="adam"), X, Y_MULTICLASS)
    path = tmp_path / "m.npz"
    fastbp.save(est, path)
    with np.load(path, allow_pickle=False) as z:
        files = set(z.files)
        header = json.loads(z[HEADER].tobytes())
        arrays = {k: z[k] for k in files - {HEADER}}
    assert header["format"] == "fastbp-model" and header["format_version"] == 1
    assert header["fastbp_version"] == fastbp.__version__
    assert header["estimator"] == "MLPClassifier"
    assert set(header["params"]) == set(est.get_params())
    assert set(header["arrays"]) == files - {HEADER}
    for name, entry in header["arrays"].items():
        assert entry == {"shape": list(arrays[name].shape), "dtype": arrays[name].dtype.str}
    assert {"coefs_.0", "coefs_.1", "intercepts_.0", "classes_", "loss_curve_", "_optimizer.state_1",
            "_random_state.keys"} <= files
    assert_array_equal(arrays["coefs_.0"], est.coefs_[0])


def test_loaded_weights_are_views_of_one_flat_vector(tmp_path):
    loaded = _roundtrip(_fit(_make("multiclass"), X, Y_MULTICLASS), tmp_path)
    base = loaded.coefs_[0].base
    assert base is not None and all(a.base is base for a in loaded.coefs_ + loaded.intercepts_)


def test_dataframe_feature_names_roundtrip(tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X, columns=list("abcde"))
    est = _fit(_make("binary"), df, Y_BINARY)
    loaded = _roundtrip(est, tmp_path)
    assert_same_state(est, loaded)
    assert loaded.feature_names_in_.dtype == object
    assert_array_equal(loaded.predict_proba(df), est.predict_proba(df), strict=True)
    with pytest.raises(ValueError, match="feature names"):
        loaded.predict(pd.DataFrame(X, columns=list("vwxyz")))


def test_callbacks_are_not_stored(tmp_path):
    est = _fit(_make("binary"), X, Y_BINARY)
    est._skl_callbacks = [object()]  # runtime hooks (set_callbacks), not model state
    loaded = _roundtrip(est, tmp_path)
    assert not hasattr(loaded, "_skl_callbacks")
    assert_same_predictions(est, loaded, X, Y_BINARY)


# ----------------------------------------------------------------------
# continued training
# ----------------------------------------------------------------------
@pytest.mark.parametrize("kind, dtype, params", [
    ("multiclass", np.float64, {"solver": "adam"}),
    ("multiclass", np.float32, {"solver": "sgd", "learning_rate": "adaptive", "dropout": 0.2}),
    ("multilabel", np.float64, {"solver": "adagrad"}),
    ("reg", np.float32, {"solver": "adam", "activation": "maxout"}),
])
def test_partial_fit_continues_identically(kind, dtype, params, tmp_path):
    Xd, y = X.astype(dtype), TARGETS[kind]
    est = _make(kind, **params)
    if kind.startswith("reg"):
        est.partial_fit(Xd, y)
    else:
        est.partial_fit(Xd, y, classes=np.unique(y) if y.ndim == 1 else np.arange(y.shape[1]))
    loaded = _roundtrip(est, tmp_path)
    for _ in range(3):
        est.partial_fit(Xd, y)
        loaded.partial_fit(Xd, y)
    assert_same_state(est, loaded)
    assert_same_predictions(est, loaded, Xd, y)


@pytest.mark.parametrize("kind, dtype, params", [
    ("binary", np.float64, {"solver": "adam"}),
    ("multiclass", np.float32, {"solver": "rprop"}),
    ("multiclass", np.float64, {"solver": "lbfgs"}),
    ("multiclass", np.float64, {"solver": "sgd", "early_stopping": True, "validation_fraction": 0.3}),
    ("reg", np.float64, {"solver": "quickprop"}),
    ("reg", np.float32, {"solver": "adamw", "learning_rate": "cosine", "dropout": 0.2}),
])
def test_warm_start_fit_continues_identically(kind, dtype, params, tmp_path):
    Xd, y = X.astype(dtype), TARGETS[kind]
    est = _fit(_make(kind, **params), Xd, y)
    loaded = _roundtrip(est, tmp_path)
    for model in (est, loaded):
        model.set_params(warm_start=True, max_iter=4)
        _fit(model, Xd, y)
    assert_same_state(est, loaded)
    assert_same_predictions(est, loaded, Xd, y)


# ----------------------------------------------------------------------
# pickle and joblib keep working
# ----------------------------------------------------------------------
def test_pickle_and_joblib_still_work(tmp_path):
    est = _fit(_make("multiclass", solver="adam"), X, Y_MULTICLASS)
    unpickled = pickle.loads(pickle.dumps(est))
    assert_same_predictions(est, unpickled, X, Y_MULTICLASS)
    joblib.dump(est, tmp_path / "m.joblib")
    assert_same_predictions(est, joblib.load(tmp_path / "m.joblib"), X, Y_MULTICLASS)
    # and a model read by fastbp.load pickles too
    loaded = pickle.loads(pickle.dumps(_roundtrip(est, tmp_path)))
    assert_same_predictions(est, loaded, X, Y_MULTICLASS)


# ----------------------------------------------------------------------
# save: refusals, paths, atomic writes
# ----------------------------------------------------------------------
def test_save_unfitted_raises_not_fitted(tmp_path):
    with pytest.raises(NotFittedError, match="not fitted"):
        fastbp.save(MLPClassifier(), tmp_path / "m.npz")
    assert not os.listdir(tmp_path)


def test_save_refuses_random_state_instance(tmp_path):
    est = _fit(_make("binary", random_state=np.random.RandomState(0)), X, Y_BINARY)
    with pytest.raises(TypeError, match=r"random_state=.*RandomState.*integer seed"):
        fastbp.save(est, tmp_path / "m.npz")
    assert not os.listdir(tmp_path)


def test_save_refuses_callable_parameter(tmp_path):
    est = _fit(_make("binary"), X, Y_BINARY)
    est.class_weight = print
    with pytest.raises(TypeError, match="cannot save parameter class_weight"):
        fastbp.save(est, tmp_path / "m.npz")


def test_save_refuses_other_estimators(tmp_path):
    est = _fit(SklearnMLPClassifier((3,), max_iter=2), X, Y_BINARY)
    with pytest.raises(TypeError, match="fastbp.MLPClassifier and fastbp.MLPRegressor"):
        fastbp.save(est, tmp_path / "m.npz")


def test_save_refuses_network_changed_after_fit(tmp_path):
    est = _fit(_make("binary"), X, Y_BINARY).set_params(activation="tanh")
    with pytest.raises(ValueError, match="set_params after fit"):
        fastbp.save(est, tmp_path / "m.npz")
    est.set_params(activation="relu", hidden_layer_sizes=(7,))
    with pytest.raises(ValueError, match=r"coefs_\[0\].*needs \(5, 7\)"):
        fastbp.save(est, tmp_path / "m.npz")


def test_save_refuses_unknown_attribute(tmp_path):
    est = _fit(_make("binary"), X, Y_BINARY)
    est.extra_state_ = object()
    with pytest.raises(TypeError, match=r"does not know how to store the attribute\(s\) \['extra_state_'\]"):
        fastbp.save(est, tmp_path / "m.npz")


def test_save_writes_exactly_the_given_path(tmp_path):
    est = _fit(_make("binary"), X, Y_BINARY)
    fastbp.save(est, str(tmp_path / "model.bin"))
    fastbp.save(est, pathlib.Path(tmp_path / "model"))
    assert sorted(os.listdir(tmp_path)) == ["model", "model.bin"]
    assert_same_predictions(est, fastbp.load(tmp_path / "model.bin"), X, Y_BINARY)
    assert_same_predictions(est, fastbp.load(str(tmp_path / "model")), X, Y_BINARY)
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        fastbp.save(est, io.BytesIO())
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        fastbp.load(123)


def test_save_is_atomic(tmp_path, monkeypatch):
    est = _fit(_make("binary"), X, Y_BINARY)
    path = tmp_path / "m.npz"
    fastbp.save(est, path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    other = _fit(_make("multiclass"), X, Y_MULTICLASS)
    with pytest.raises(OSError, match="disk full"):
        fastbp.save(other, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]  # no temporary file left behind
    monkeypatch.undo()
    fastbp.save(other, path)  # replaces the existing file
    assert fastbp.load(path).classes_.shape == (3,)


# ----------------------------------------------------------------------
# load: foreign, corrupt and tampered files
# ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    est = _fit(_make("multiclass", solver="adam"), X, Y_MULTICLASS)
    path = tmp_path_factory.mktemp("saved") / "model.npz"
    fastbp.save(est, path)
    return est, path


def _read(path):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(arrays.pop(HEADER).tobytes()), arrays


def _write(path, header, arrays, raw_header=None):
    arrays = dict(arrays)
    if raw_header is not None:
        arrays[HEADER] = np.frombuffer(raw_header, dtype=np.uint8)
    elif header is not None:
        arrays[HEADER] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _tampered(saved, tmp_path, edit):
    header, arrays = _read(saved[1])
    edit(header, arrays)
    return _write(tmp_path / "tampered.npz", header, arrays)


def _load_error(path, match):
    with pytest.raises(ValueError, match=match) as info:
        fastbp.load(path)
    assert "cannot load" in str(info.value) and "as a fastbp model" in str(info.value)
    return info


def test_load_random_bytes(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(b"\x01" + np.random.RandomState(1).bytes(999))
    _load_error(path, r"not a zip \(\.npz\) archive")


def test_load_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    _load_error(path, "the file is empty")


def test_load_truncated_file(saved, tmp_path):
    data = saved[1].read_bytes()
    path = tmp_path / "half.npz"
    path.write_bytes(data[: len(data) // 2])
    _load_error(path, "truncated or corrupt")


def test_load_corrupted_member(saved, tmp_path):
    data = bytearray(saved[1].read_bytes())
    start = data.index(b"coefs_.0.npy") + 250  # inside that member's data: its CRC no longer matches
    data[start : start + 8] = b"\xff" * 8
    path = tmp_path / "crc.npz"
    path.write_bytes(bytes(data))
    _load_error(path, "truncated or corrupt")


def test_load_pickle_file(saved, tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(saved[0]))
    _load_error(path, "pickle file.*never unpickles")


def test_load_npy_file(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(3))
    _load_error(path, r"single \.npy array")


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastbp.load(tmp_path / "nothing.npz")


def test_load_npz_without_header(tmp_path):
    path = _write(tmp_path / "plain.npz", None, {"coefs_.0": np.zeros((5, 4))})
    _load_error(path, "no '__fastbp__' JSON header")


def test_load_header_not_json(saved, tmp_path):
    _, arrays = _read(saved[1])
    _load_error(_write(tmp_path / "a.npz", None, arrays, raw_header=b"{not json"), "not valid JSON")
    _load_error(_write(tmp_path / "b.npz", None, arrays, raw_header=b'{"format": NaN}'), "not valid JSON")
    _load_error(_write(tmp_path / "c.npz", None, arrays, raw_header=b"[1, 2]"), "not a JSON object")


def test_load_wrong_format_name(saved, tmp_path):
    path = _tampered(saved, tmp_path, lambda h, a: h.update(format="other-model"))
    _load_error(path, "wrong format name 'other-model'")


def test_load_newer_format_version(saved, tmp_path):
    path = _tampered(saved, tmp_path, lambda h, a: h.update(format_version=99))
    _load_error(path, "format version 99 was written by a newer fastbp")


@pytest.mark.parametrize("version", ["1", 0, 1.0, True, None])
def test_load_unknown_format_version(saved, tmp_path, version):
    path = _tampered(saved, tmp_path, lambda h, a: h.update(format_version=version))
    _load_error(path, "unknown format version")


@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "BaseMultilayerPerceptron", "LabelBinarizer"])
def test_load_unknown_class(saved, tmp_path, name):
    path = _tampered(saved, tmp_path, lambda h, a: h.update(estimator=name))
    _load_error(path, f"unknown estimator class '{name}'")


def test_load_class_swapped_for_the_other_estimator(saved, tmp_path):
    path = _tampered(saved, tmp_path, lambda h, a: h.update(estimator="MLPRegressor"))
    _load_error(path, r"unknown parameter name\(s\) \['class_weight'\]")


def test_load_unknown_and_missing_parameters(saved, tmp_path):
    path = _tampered(saved, tmp_path, lambda h, a: h["params"].update(evil=1))
    _load_error(path, r"unknown parameter name\(s\) \['evil'\]")
    path = _tampered(saved, tmp_path, lambda h, a: h["params"].pop("alpha"))
    _load_error(path, r"missing parameter\(s\) \['alpha'\]")


def test_load_invalid_parameter_value(saved, tmp_path):
    path = _tampered(saved, tmp_path, lambda h, a: h["params"].update(solver="evil"))
    _load_error(path, "invalid parameters: The 'solver' parameter")
    path = _tampered(saved, tmp_path, lambda h, a: h["params"].update(alpha={"$float": "-inf"}))
    _load_error(path, "invalid parameters: The 'alpha' parameter")
    path = _tampered(saved, tmp_path, lambda h, a: h["params"].update(alpha={"__reduce__": "os.system"}))
    _load_error(path, "parameter 'alpha' holds an unknown JSON object")


def test_load_missing_array(saved, tmp_path):
    path = _tampered(saved, tmp_path, lambda h, a: a.pop("intercepts_.1"))
    _load_error(path, r"missing: \['intercepts_.1'\]")


def test_load_extra_array(saved, tmp_path):
    path = _tampered(saved, tmp_path, lambda h, a: a.update(payload=np.zeros(3)))
    _load_error(path, r"the manifest does not list: \['payload'\]")


def test_load_object_array(saved, tmp_path):
    header, arrays = _read(saved[1])
    arrays["classes_"] = np.array([0, 1, {"x": 2}], dtype=object)
    path = tmp_path / "object.npz"
    with open(path, "wb") as f:
        np.savez(f, **arrays, __fastbp__=np.frombuffer(json.dumps(header).encode(), np.uint8))
    _load_error(path, "'classes_' holds Python objects.*never unpickles")

    def declare_object(h, a):
        h["arrays"]["classes_"]["dtype"] = "|O"

    _load_error(_tampered(saved, tmp_path, declare_object), "dtype=object")


def test_load_manifest_mismatch(saved, tmp_path):
    def wrong_dtype(h, a):
        a["coefs_.0"] = a["coefs_.0"].astype(np.float32)

    _load_error(_tampered(saved, tmp_path, wrong_dtype), r"'coefs_.0' has dtype <f4.*the manifest says <f8")

    def wrong_shape(h, a):
        a["coefs_.0"] = a["coefs_.0"][:4]

    _load_error(_tampered(saved, tmp_path, wrong_shape), r"'coefs_.0' has dtype <f8 and shape \[4, 4\]")


def test_load_tampered_shapes(saved, tmp_path):
    def grow(h, a):  # array and manifest agree, the network does not
        a["coefs_.0"] = np.zeros((6, 4))
        h["arrays"]["coefs_.0"]["shape"] = [6, 4]

    _load_error(_tampered(saved, tmp_path, grow), r"coefs_\[0\].*\(6, 4\).*needs \(5, 4\)")

    def hidden(h, a):  # a consistent wider network, but not the one the parameters describe
        for name, shape in (("coefs_.0", (5, 6)), ("intercepts_.0", (6,)), ("coefs_.1", (6, 3))):
            a[name] = np.zeros(shape)
            h["arrays"][name]["shape"] = list(shape)

    _load_error(_tampered(saved, tmp_path, hidden), r"hidden_layer_sizes.*needs \(5, 4\)")

    def features(h, a):
        h["attributes"]["n_features_in_"] = 7

    _load_error(_tampered(saved, tmp_path, features), r"n_features_in_=7")

    def outputs(h, a):
        h["attributes"]["n_outputs_"] = 2

    _load_error(_tampered(saved, tmp_path, outputs), r"n_outputs_=2 does not match 3 classes")


def test_load_member_header_checked_before_its_data(saved, tmp_path):
    """A member whose .npy header claims a huge shape is refused without allocating it."""
    header, arrays = _read(saved[1])
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for name, array in {**arrays, HEADER: np.frombuffer(json.dumps(header).encode(), np.uint8)}.items():
            buf = io.BytesIO()
            if name == "coefs_.0":
                np.lib.format.write_array_header_1_0(
                    buf, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 10**9)}
                )
                buf.write(b"\0" * 64)
            else:
                np.save(buf, array, allow_pickle=False)
            zf.writestr(name + ".npy", buf.getvalue())
    _load_error(path, r"'coefs_.0' has dtype <f8 and shape \[1000000000, 1000000000\]; the manifest says")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_load_non_finite_weight(saved, tmp_path, value):
    def poison(h, a):
        a["coefs_.1"] = a["coefs_.1"].copy()
        a["coefs_.1"][0, 0] = value

    _load_error(_tampered(saved, tmp_path, poison), r"coefs_\[1\] contains NaN or infinity")


def test_load_bad_solver_state(saved, tmp_path):
    def short(h, a):
        a["_optimizer.state_2"] = a["_optimizer.state_2"][:3]
        h["arrays"]["_optimizer.state_2"]["shape"] = [3]

    _load_error(_tampered(saved, tmp_path, short), r"_optimizer.state_2 must be a float64 array of shape \(39,\)")

    def nan(h, a):
        a["_optimizer.state_1"] = np.full_like(a["_optimizer.state_1"], np.nan)

    _load_error(_tampered(saved, tmp_path, nan), "solver state contains NaN or infinity")

    def solver(h, a):
        h["attributes"]["_optimizer"]["$optimizer"]["solver"] = "os.system"

    _load_error(_tampered(saved, tmp_path, solver), "_optimizer has the unknown solver 'os.system'")


def test_load_bad_attributes(saved, tmp_path):
    _load_error(_tampered(saved, tmp_path, lambda h, a: h["attributes"].update(__class__="os.system")),
                r"unknown fitted attribute\(s\) \['__class__'\]")
    _load_error(_tampered(saved, tmp_path, lambda h, a: h["attributes"].pop("n_iter_")),
                r"missing fitted attribute\(s\) \['n_iter_'\]")
    _load_error(_tampered(saved, tmp_path, lambda h, a: h["attributes"].update(t_=-1)), "t_ must be an integer >= 0")
    _load_error(_tampered(saved, tmp_path, lambda h, a: h["attributes"].update(out_activation_="exec")),
                "unknown output activation 'exec'")

    def unused(h, a):
        h["attributes"]["loss_curve_"] = [1.0]

    _load_error(_tampered(saved, tmp_path, unused), r"no attribute uses: \['loss_curve_'\]")

    def twice(h, a):
        h["attributes"]["intercepts_"][1] = {"$array": "intercepts_.0"}

    _load_error(_tampered(saved, tmp_path, twice), "refers to the array 'intercepts_.0' twice")


def test_load_malformed_values(saved, tmp_path):
    _load_error(_tampered(saved, tmp_path, lambda h, a: h["attributes"].update(out_activation_=["softmax"])),
                r"unknown output activation \['softmax'\]")
    _load_error(_tampered(saved, tmp_path, lambda h, a: h["attributes"].update(coefs_={"$array": 5})),
                "refers to the array 5")
    _load_error(_tampered(saved, tmp_path, lambda h, a: h["attributes"].update(_fitted_layers=[1])),
                "_fitted_layers must be")
    _load_error(_tampered(saved, tmp_path, lambda h, a: h["attributes"].update(_optimizer=[])),
                r"_optimizer must be a \$optimizer object")
    _load_error(_tampered(saved, tmp_path, lambda h, a: h["params"].update(alpha={"$numpy": "|O", "value": 1})),
                r"parameter 'alpha' holds a dtype '\|O' that is not allowed")
    deep = [0]
    for _ in range(100):
        deep = [deep]
    _load_error(_tampered(saved, tmp_path, lambda h, a: h["params"].update(alpha=deep)), "nested more than 32")
    header, arrays = _read(saved[1])
    raw = json.dumps(header).replace('"t_":', '"t_": 1e999, "x":').encode()
    _load_error(_write(tmp_path / "big.npz", None, arrays, raw_header=raw), "out of range")
    _load_error(_tampered(saved, tmp_path, lambda h, a: h["attributes"].update(t_=2**70)), "t_ must be an integer")


def test_load_never_unpickles(saved, tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("fastbp.load unpickled something")

    class Forbidden:
        def __init__(self, *args, **kwargs):
            forbidden()

    for name in ("loads", "load"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(pickle, "Unpickler", Forbidden)
    real_load = np.load
    calls = []

    def checked_load(*args, **kwargs):
        calls.append(kwargs.get("allow_pickle"))
        assert kwargs.get("allow_pickle") is False
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", checked_load)

    est, path = saved
    assert_same_predictions(est, fastbp.load(path), X, Y_MULTICLASS)
    assert calls == [False]

    header, arrays = _read(path)
    arrays["classes_"] = np.array([0, 1, 2], dtype=object)
    obj = tmp_path / "object.npz"
    with open(obj, "wb") as f:
        np.savez(f, **arrays, __fastbp__=np.frombuffer(json.dumps(header).encode(), np.uint8))
    _load_error(obj, "holds Python objects")

    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps(est))  # pickle.dumps is not patched
    _load_error(pkl, "pickle file")


# --------------------------------------------------------------------------
# files saved by earlier versions (issue 20): tests/data/format-<N>/
# --------------------------------------------------------------------------
DATA = pathlib.Path(__file__).parent / "data"
SAVED_VERSIONS = sorted(int(p.name.split("-")[1]) for p in DATA.glob("format-*") if p.is_dir())


def _saved_data():
    import sys

    sys.path.insert(0, str(DATA))
    try:
        import make_saved_models
    finally:
        sys.path.remove(str(DATA))
    return make_saved_models.data()


def test_every_format_version_has_saved_files_and_an_upgrade_step():
    from fastbp.persistence import _UPGRADES, FORMAT_VERSION

    assert SAVED_VERSIONS == list(range(1, FORMAT_VERSION + 1))
    assert sorted(_UPGRADES) == list(range(1, FORMAT_VERSION))


@pytest.mark.parametrize("version", SAVED_VERSIONS)
def test_files_saved_by_earlier_versions_load_and_predict_as_saved(version):
    folder = DATA / f"format-{version}"
    expected = json.loads((folder / "expected.json").read_text())
    assert expected["format_version"] == version
    X_iris, y_iris, X_diabetes, y_diabetes = _saved_data()
    every = expected["predict_every"]
    # (tolerances: the forward pass on another CPU's vector width may round differently)
    classifier = fastbp.load(folder / "classifier.npz")
    want = expected["classifier"]
    assert type(classifier) is MLPClassifier and classifier.n_iter_ == want["n_iter"]
    assert classifier.classes_.tolist() == want["classes"]
    assert classifier.predict(X_iris[::every]).tolist() == want["predict"]
    np.testing.assert_allclose(classifier.predict_proba(X_iris[::every]), want["predict_proba"], rtol=1e-10, atol=1e-13)
    assert classifier.score(X_iris, y_iris) == pytest.approx(want["score"], abs=1 / len(y_iris))
    regressor = fastbp.load(folder / "regressor.npz")
    want = expected["regressor"]
    assert type(regressor) is MLPRegressor and regressor.n_iter_ == want["n_iter"]
    np.testing.assert_allclose(regressor.predict(X_diabetes[::every]), want["predict"], rtol=1e-10, atol=1e-13)
    assert regressor.score(X_diabetes, y_diabetes) == pytest.approx(want["score"], rel=1e-9)
    # training goes on from the saved optimizer state (the classifier's early
    # stopping allows no partial_fit, as scikit-learn's: a warm start)
    n_epochs = len(regressor.loss_curve_)
    regressor.partial_fit(X_diabetes, y_diabetes)
    assert len(regressor.loss_curve_) == n_epochs + 1 and regressor.t_ == (n_epochs + 1) * len(y_diabetes)
    n_epochs = len(classifier.loss_curve_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.set_params(warm_start=True, max_iter=3).fit(X_iris, y_iris)
    assert len(classifier.loss_curve_) == n_epochs + classifier.n_iter_ and 1 <= classifier.n_iter_ <= 3
    for model in (classifier, regressor):
        assert all(np.isfinite(c).all() for c in model.coefs_)


def test_an_older_format_version_goes_through_each_upgrade_step(monkeypatch):
    from fastbp import persistence as _persistence

    calls = []

    def step(header, arrays):
        calls.append(header["format_version"])
        return header, arrays

    monkeypatch.setattr(_persistence, "FORMAT_VERSION", 3)
    monkeypatch.setattr(_persistence, "_UPGRADES", {1: step, 2: step})
    model = fastbp.load(DATA / "format-1" / "regressor.npz")
    assert calls == [1, 2] and model.n_iter_ > 0


def test_an_older_format_version_without_an_upgrade_step_is_refused_by_name(monkeypatch):
    from fastbp import persistence as _persistence

    monkeypatch.setattr(_persistence, "FORMAT_VERSION", 2)
    monkeypatch.setattr(_persistence, "_UPGRADES", {})
    _load_error(DATA / "format-1" / "regressor.npz", r"format version 1 \(written by fastbp '0\.1\.0'\) cannot be read")


def test_a_hyper_parameter_the_solver_does_not_read_may_be_absent(saved, tmp_path):
    """A file saved before an optimizer hyper-parameter existed loads with its default when the
    model's solver does not read it; one the solver reads must be there."""
    est, _ = saved
    assert est.solver == "adam"
    loaded = fastbp.load(_tampered(saved, tmp_path, lambda h, a: h["params"].pop("rho")))
    assert loaded.rho == 0.9 and loaded.get_params()["rho"] == 0.9
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    _load_error(_tampered(saved, tmp_path, lambda h, a: h["params"].pop("beta_1")),
                r"missing parameter\(s\) \['beta_1'\]")
