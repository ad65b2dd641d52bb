"""Input handling: sparse, dtypes, memory layouts, DataFrames, label types,
reproducibility, parameter and input validation, pickling."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import neural_network as sknn
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError

import fastbp

if not (hasattr(fastbp, "MLPClassifier") and hasattr(fastbp, "MLPRegressor")):
    pytest.fail("fastbp has no MLPClassifier / MLPRegressor", pytrace=False)

from fastbp import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _weights(est):
    return list(est.coefs_) + list(est.intercepts_)


def assert_same_weights(a, b, rtol, atol):
    for i, (wa, wb) in enumerate(zip(_weights(a), _weights(b))):
        assert wa.dtype == wb.dtype
        assert_allclose(wa, wb, rtol=rtol, atol=atol, err_msg=f"parameter array {i}")


def assert_identical_weights(a, b):
    assert len(a.coefs_) == len(b.coefs_)
    for wa, wb in zip(_weights(a), _weights(b)):
        assert wa.dtype == wb.dtype
        assert_array_equal(wa, wb)


CLF = dict(hidden_layer_sizes=(12,), max_iter=4, random_state=0, batch_size=40,
           learning_rate_init=0.01)
REG = dict(hidden_layer_sizes=(10,), max_iter=4, random_state=0, batch_size=40,
           learning_rate_init=0.01)


# --------------------------------------------------------------------------
# sparse
# --------------------------------------------------------------------------


def _sparsify(X):
    X = X.copy()
    X[np.abs(X) < 0.6] = 0.0  # about half the entries
    return X


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_sparse_classifier_equals_dense(multiclass_data, fmt, solver):
    X, y = multiclass_data
    X = _sparsify(X)
    Xs = sp.csr_matrix(X) if fmt == "csr" else sp.csc_matrix(X)
    dense = MLPClassifier(solver=solver, **CLF).fit(X, y)
    sparse = MLPClassifier(solver=solver, **CLF).fit(Xs, y)
    assert sparse.n_iter_ == dense.n_iter_
    assert_same_weights(sparse, dense, rtol=1e-9, atol=1e-12)
    assert_allclose(sparse.predict_proba(Xs), dense.predict_proba(X), rtol=1e-9, atol=1e-12)
    assert_allclose(sparse.predict_proba(X), dense.predict_proba(X), rtol=1e-9, atol=1e-12)
    assert_array_equal(sparse.predict(Xs), dense.predict(X))


ONLINE_CASES = {
    "adam-l2-l1": dict(solver="adam", alpha=1e-2, l1=1e-3),
    "sgd-dropout-maxout": dict(solver="sgd", momentum=0.9, dropout=0.3, activation="maxout",
                               hidden_layer_sizes=(6, 5)),
    "rmsprop-logistic": dict(solver="rmsprop", activation="logistic", learning_rate_init=0.001),
    "adamw-weights": dict(solver="adamw", weight_decay=0.1),
    # Adam without L1 steps inside the one-row backward pass: a layer of 20
    # columns in one pass, the narrow ones through the gradient buffer
    "adam-fused-dropout": dict(solver="adam", alpha=1e-2, dropout=0.2, hidden_layer_sizes=(20, 6)),
    "adam-fused-no-penalty": dict(solver="adam", alpha=0.0, hidden_layer_sizes=(17,)),
    # more parameters than a slice of the batch path's parallel step (PARAM_SLICE):
    # online steps take the one-row path whatever the network's size
    "adam-large-network": dict(solver="adam", alpha=1e-3, hidden_layer_sizes=(600, 120)),
}


@pytest.mark.parametrize("weighted", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", list(ONLINE_CASES))
def test_online_one_row_path_equals_batch_path(multiclass_data, case, dtype, weighted):
    # batch_size=1 on dense X runs the kernels' one-row (vector) path; sparse X
    # runs the general batch path: the same computation, so the same model
    if case == "adam-large-network" and dtype == np.float32:
        # float32 sums of 600 products in BLAS's order and the row path's differ
        # at 1e-7, and Adam's normalized steps amplify that on near-zero
        # gradients; float64 checks the same code to 1e-9
        pytest.skip("float64 only")
    X, y = multiclass_data
    X = _sparsify(X)[:60].astype(dtype)
    y = y[:60]
    params = dict(CLF, batch_size=1, max_iter=3)
    params.update(ONLINE_CASES[case])
    weights = None
    if weighted:
        weights = np.random.default_rng(0).uniform(0.0, 2.0, size=len(y))
        weights[::7] = 0.0  # rows of weight 0 make no step
    dense = MLPClassifier(**params).fit(X, y, sample_weight=weights)
    sparse = MLPClassifier(**params).fit(sp.csr_matrix(X), y, sample_weight=weights)
    rtol, atol = (1e-4, 1e-6) if dtype == np.float32 else (1e-9, 1e-12)
    assert_same_weights(sparse, dense, rtol=rtol, atol=atol)
    assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=rtol)


@pytest.mark.parametrize("container", [sp.csr_matrix, sp.csr_array, sp.csc_array])
def test_sparse_regressor_equals_dense(regression_data, container):
    X, y = regression_data
    X = _sparsify(X)
    dense = MLPRegressor(solver="adam", **REG).fit(X, y)
    sparse = MLPRegressor(solver="adam", **REG).fit(container(X), y)
    assert_same_weights(sparse, dense, rtol=1e-9, atol=1e-12)
    assert_allclose(sparse.predict(container(X)), dense.predict(X), rtol=1e-9, atol=1e-12)


def test_sparse_matches_sklearn(multiclass_data):
    X, y = multiclass_data
    Xs = sp.csr_matrix(_sparsify(X))
    fb = MLPClassifier(solver="sgd", **CLF).fit(Xs, y)
    sk = sknn.MLPClassifier(solver="sgd", **CLF).fit(Xs, y)
    assert_same_weights(fb, sk, rtol=1e-6, atol=1e-10)


# --------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_float32_classifier_stays_float32(multiclass_data, solver):
    X, y = multiclass_data
    X32 = X.astype(np.float32)
    clf = MLPClassifier(solver=solver, **CLF).fit(X32, y)
    for w in _weights(clf):
        assert w.dtype == np.float32
    proba = clf.predict_proba(X32)
    assert proba.dtype == np.float32
    assert clf.predict_log_proba(X32).dtype == np.float32
    assert np.isfinite(clf.loss_)
    if solver != "lbfgs":
        assert np.all(np.isfinite(clf.loss_curve_))
        clf.partial_fit(X32, y)  # incremental training stays in float32 too
        for w in _weights(clf):
            assert w.dtype == np.float32
        clf = MLPClassifier(solver=solver, **CLF).fit(X32, y)
    # close to the float64 fit from the same start
    clf64 = MLPClassifier(solver=solver, **CLF).fit(X, y)
    for w32, w64 in zip(_weights(clf), _weights(clf64)):
        assert_allclose(w32, w64, rtol=1e-3, atol=1e-4)
    assert_allclose(clf.loss_, clf64.loss_, rtol=1e-4)
    assert_allclose(proba, clf64.predict_proba(X), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_float32_regressor_stays_float32(regression_data, solver):
    X, y = regression_data
    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    reg = MLPRegressor(solver=solver, **REG).fit(X32, y32)
    for w in _weights(reg):
        assert w.dtype == np.float32
    pred = reg.predict(X32)
    assert pred.dtype == np.float32
    assert np.isfinite(reg.loss_)
    reg64 = MLPRegressor(solver=solver, **REG).fit(X, y)
    assert_allclose(pred, reg64.predict(X), rtol=1e-3, atol=1e-4)


def test_float32_matches_sklearn_float32(multiclass_data):
    X, y = multiclass_data
    X32 = X.astype(np.float32)
    fb = MLPClassifier(solver="adam", **CLF).fit(X32, y)
    sk = sknn.MLPClassifier(solver="adam", **CLF).fit(X32, y)
    for a, b in zip(_weights(fb), _weights(sk)):
        assert a.dtype == b.dtype == np.float32
        assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert fb.n_iter_ == sk.n_iter_


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float16, bool])
def test_other_dtypes_train_in_float64(multiclass_data, dtype):
    X, y = multiclass_data
    Xo = (X > 0) if dtype is bool else np.round(X * 4).astype(dtype)
    clf = MLPClassifier(solver="adam", **CLF).fit(Xo, y)
    for w in _weights(clf):
        assert w.dtype == np.float64
    ref = MLPClassifier(solver="adam", **CLF).fit(Xo.astype(np.float64), y)
    assert_identical_weights(clf, ref)
    assert clf.predict_proba(Xo).dtype == np.float64


def test_float32_sparse(multiclass_data):
    X, y = multiclass_data
    X32 = _sparsify(X).astype(np.float32)
    dense = MLPClassifier(solver="adam", **CLF).fit(X32, y)
    sparse = MLPClassifier(solver="adam", **CLF).fit(sp.csr_matrix(X32), y)
    for w in _weights(sparse):
        assert w.dtype == np.float32
    assert_same_weights(sparse, dense, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------
# memory layouts
# --------------------------------------------------------------------------


def _layouts(X):
    wide = np.empty((X.shape[0], 2 * X.shape[1]))
    wide[:, ::2] = X
    wide[:, 1::2] = -7.0
    rows = np.empty((2 * X.shape[0], X.shape[1]))
    rows[::2] = X
    rows[1::2] = 3.0
    return {
        "F": np.asfortranarray(X),
        "column-strided": wide[:, ::2],
        "row-strided": rows[::2],
    }


@pytest.mark.parametrize("layout", ["F", "column-strided", "row-strided"])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_layouts_classifier(multiclass_data, layout, solver):
    X, y = multiclass_data
    Xl = _layouts(X)[layout]
    assert not Xl.flags.c_contiguous
    ref = MLPClassifier(solver=solver, **CLF).fit(X, y)
    clf = MLPClassifier(solver=solver, **CLF).fit(Xl, y)
    assert clf.n_iter_ == ref.n_iter_
    assert_same_weights(clf, ref, rtol=1e-10, atol=1e-13)
    assert_allclose(clf.predict_proba(Xl), ref.predict_proba(X), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("layout", ["F", "column-strided"])
def test_layouts_regressor(regression_data, layout):
    X, y = regression_data
    Xl = _layouts(X)[layout]
    ref = MLPRegressor(solver="sgd", **REG).fit(X, y)
    reg = MLPRegressor(solver="sgd", **REG).fit(Xl, y[::1])
    assert_same_weights(reg, ref, rtol=1e-10, atol=1e-13)
    assert_allclose(reg.predict(Xl), ref.predict(X), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layout", ["C", "F", "row-strided"])
@pytest.mark.parametrize("n_rows", [30, 400])  # 400 x 200 values: the matrix-vector first pass
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_X_gives_scikit_learns_error(layout, n_rows, bad):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_rows, 200))
    X[n_rows // 2, 150] = bad
    X = {"C": X, "F": np.asfortranarray(X), "row-strided": np.repeat(X, 2, axis=0)[::2]}[layout]
    y = np.arange(n_rows) % 3
    for ours, theirs, target in [(MLPClassifier, sknn.MLPClassifier, y), (MLPRegressor, sknn.MLPRegressor, y * 0.5)]:
        with pytest.raises(ValueError) as expected:
            theirs(max_iter=1).fit(X, target)
        model = ours(max_iter=1)
        with pytest.raises(ValueError) as raised:
            model.fit(X, target)
        assert str(raised.value) == str(expected.value)
        assert not hasattr(model, "coefs_")
    fitted = MLPClassifier(max_iter=1).fit(np.nan_to_num(X, posinf=0.0, neginf=0.0), y)
    before = [c.copy() for c in fitted.coefs_]
    with pytest.raises(ValueError, match="Input X contains"):
        fitted.partial_fit(X, y)
    for a, b in zip(before, fitted.coefs_):
        assert_array_equal(a, b)


def test_finite_X_whose_sum_overflows_is_accepted():
    # the fast first pass overflows to infinity; the element-wise check clears it
    X = np.full((400, 200), 3e38, dtype=np.float32)
    X[::2] *= -1.0
    assert not np.isfinite((X @ np.ones(200, dtype=np.float32)).sum())
    # past the input checks, the forward pass overflows: the fit reports that
    with pytest.raises(fastbp.TrainingDiverged):
        MLPRegressor(hidden_layer_sizes=(2,), max_iter=1).fit(X, np.zeros(400))


def test_strided_targets_and_weights(regression_data):
    X, y = regression_data
    y2 = np.repeat(y, 2)[::2]
    sw2 = np.repeat(np.linspace(0.5, 1.5, len(y)), 2)[::2]
    assert not y2.flags.c_contiguous
    a = MLPRegressor(solver="adam", **REG).fit(X, y, sample_weight=np.linspace(0.5, 1.5, len(y)))
    b = MLPRegressor(solver="adam", **REG).fit(X, y2, sample_weight=sw2)
    assert_same_weights(a, b, rtol=1e-12, atol=1e-14)


def test_readonly_input(multiclass_data):
    X, y = multiclass_data
    Xr, yr = X.copy(), y.copy()
    Xr.flags.writeable = False
    yr.flags.writeable = False
    ref = MLPClassifier(solver="adam", **CLF).fit(X, y)
    clf = MLPClassifier(solver="adam", **CLF).fit(Xr, yr)
    assert_identical_weights(clf, ref)
    assert_array_equal(clf.predict(Xr), ref.predict(X))


def test_input_not_modified(multiclass_data):
    X, y = multiclass_data
    Xc, yc = X.copy(), y.copy()
    sw = np.linspace(0.1, 2.0, len(y))
    swc = sw.copy()
    clf = MLPClassifier(solver="sgd", **CLF).fit(X, y, sample_weight=sw)
    clf.predict_proba(X)
    assert_array_equal(X, Xc)
    assert_array_equal(y, yc)
    assert_array_equal(sw, swc)


# --------------------------------------------------------------------------
# pandas, labels, multilabel
# --------------------------------------------------------------------------


def test_dataframe_feature_names(multiclass_data):
    pd = pytest.importorskip("pandas")
    X, y = multiclass_data
    columns = [f"feat_{i}" for i in range(X.shape[1])]
    df = pd.DataFrame(X, columns=columns)
    clf = MLPClassifier(solver="adam", **CLF).fit(df, pd.Series(y))
    assert_array_equal(clf.feature_names_in_, columns)
    assert clf.n_features_in_ == X.shape[1]
    ref = MLPClassifier(solver="adam", **CLF).fit(X, y)
    assert not hasattr(ref, "feature_names_in_")
    # a DataFrame's values may come out F-ordered: equal up to rounding
    assert_same_weights(clf, ref, rtol=1e-10, atol=1e-13)
    assert_allclose(clf.predict_proba(df), ref.predict_proba(X), rtol=1e-10, atol=1e-13)
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(X)
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(df[columns[::-1]])


def test_dataframe_regressor(regression_data):
    pd = pytest.importorskip("pandas")
    X, y = regression_data
    df = pd.DataFrame(X, columns=list("abcdef"))
    reg = MLPRegressor(solver="lbfgs", **REG).fit(df, y)
    assert_array_equal(reg.feature_names_in_, list("abcdef"))
    ref = MLPRegressor(solver="lbfgs", **REG).fit(X, y)
    assert_allclose(reg.predict(df), ref.predict(X), rtol=1e-12)


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["cat", "dog", "fish"]),
        np.array(["cat", "dog", "fish"], dtype=object),
        np.array([-1.0, 2.0, 10.0]),  # integral floats; others are "continuous"
        np.array([7, 3, 5]),
    ],
    ids=["str", "object", "float", "int"],
)
def test_label_types(multiclass_data, labels):
    X, y = multiclass_data
    ylab = labels[y]
    clf = MLPClassifier(solver="adam", **CLF).fit(X, ylab)
    assert_array_equal(clf.classes_, np.sort(labels))
    pred = clf.predict(X)
    assert set(np.unique(pred)) <= set(labels)
    # label values do not matter, only their order
    order = np.argsort(labels)
    yrank = np.argsort(order)[y]
    ref = MLPClassifier(solver="adam", **CLF).fit(X, yrank)
    assert_identical_weights(clf, ref)
    assert_array_equal(pred, np.sort(labels)[ref.predict(X)])
    assert clf.score(X, ylab) == ref.score(X, yrank)


def test_binary_string_labels(binary_data):
    X, y = binary_data
    ylab = np.array(["no", "yes"])[y]
    clf = MLPClassifier(solver="lbfgs", **CLF).fit(X, ylab)
    assert_array_equal(clf.classes_, ["no", "yes"])
    assert clf.n_outputs_ == 1
    proba = clf.predict_proba(X)
    assert proba.shape == (len(y), 2)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert_array_equal(clf.predict(X), np.array(["no", "yes"])[proba.argmax(axis=1)])
    assert_allclose(clf.predict_log_proba(X), np.log(proba), rtol=1e-12)


def test_multilabel(multilabel_data):
    X, Y = multilabel_data
    clf = MLPClassifier(solver="adam", **CLF).fit(X, Y)
    assert clf.out_activation_ == "logistic"
    assert clf.n_outputs_ == Y.shape[1]
    assert_array_equal(clf.classes_, np.arange(Y.shape[1]))
    pred = clf.predict(X)
    assert pred.shape == Y.shape
    proba = clf.predict_proba(X)
    assert proba.shape == Y.shape
    assert ((proba > 0) & (proba < 1)).all()
    assert_array_equal(pred, (proba > 0.5).astype(pred.dtype))
    sk = sknn.MLPClassifier(solver="adam", **CLF).fit(X, Y)
    assert_same_weights(clf, sk, rtol=1e-6, atol=1e-10)


def test_multiclass_predict_proba_sums_to_one(digits):
    X, y = digits
    clf = MLPClassifier(solver="adam", **CLF).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(y), 10)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    assert clf.score(X, y) == np.mean(clf.predict(X) == y)


def test_regressor_2d_column_target(regression_data):
    X, y = regression_data
    a = MLPRegressor(solver="adam", **REG).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DataConversionWarning for the column vector
        b = MLPRegressor(solver="adam", **REG).fit(X, y.reshape(-1, 1))
    assert_identical_weights(a, b)
    assert b.predict(X).shape == (len(y),)


# --------------------------------------------------------------------------
# reproducibility
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "est",
    [
        MLPClassifier(solver="adam", hidden_layer_sizes=(40, 20), max_iter=3, batch_size=256,
                      random_state=0),
        MLPClassifier(solver="sgd", hidden_layer_sizes=(40,), max_iter=3, batch_size=100,
                      random_state=0),
        MLPClassifier(solver="lbfgs", hidden_layer_sizes=(40,), max_iter=5, random_state=0),
        MLPRegressor(solver="adam", hidden_layer_sizes=(40,), max_iter=3, batch_size=500,
                     random_state=0),
    ],
    ids=["clf-adam", "clf-sgd", "clf-lbfgs", "reg-adam"],
)
def test_n_jobs_bit_identical(est):
    """Same random_state and n_jobs: bit-identical; other n_jobs: equal to rounding.

    BLAS may split a product differently with another thread count, which can
    change the last bits, so only the same n_jobs promises identical bits.
    """
    rng = np.random.RandomState(0)
    X = rng.normal(size=(3000, 30))
    y = (X[:, :3].sum(axis=1) > 0).astype(int) + (X[:, 3] > 1)
    if isinstance(est, MLPRegressor):
        y = X[:, :4].sum(axis=1) + 0.1 * rng.normal(size=len(X))
    fits = {}
    for key, n_jobs in (("a1", 1), ("a2", 2), ("b1", 1), ("b2", 2)):
        e = est.__class__(**{**est.get_params(), "n_jobs": n_jobs})
        fits[key] = e.fit(X, y)
    assert_identical_weights(fits["a1"], fits["b1"])
    assert_identical_weights(fits["a2"], fits["b2"])
    assert fits["a1"].loss_ == fits["b1"].loss_
    assert fits["a2"].loss_ == fits["b2"].loss_
    for c1, c2 in zip(fits["a1"].coefs_ + fits["a1"].intercepts_, fits["a2"].coefs_ + fits["a2"].intercepts_):
        assert_allclose(c1, c2, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_same_random_state_bit_identical(digits, solver):
    X, y = digits
    a = MLPClassifier(solver=solver, **CLF).fit(X, y)
    b = MLPClassifier(solver=solver, **CLF).fit(X, y)
    assert_identical_weights(a, b)
    assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    if solver != "lbfgs":
        assert a.loss_curve_ == b.loss_curve_
    c = MLPClassifier(solver=solver, **{**CLF, "random_state": 1}).fit(X, y)
    assert not np.allclose(a.coefs_[0], c.coefs_[0])


def test_random_state_instance_like_sklearn(multiclass_data):
    X, y = multiclass_data
    fb = MLPClassifier(solver="sgd", **{**CLF, "random_state": np.random.RandomState(3)})
    sk = sknn.MLPClassifier(solver="sgd", **{**CLF, "random_state": np.random.RandomState(3)})
    fb.fit(X, y)
    sk.fit(X, y)
    assert_same_weights(fb, sk, rtol=1e-6, atol=1e-10)


def test_n_jobs_parameter():
    assert MLPClassifier().n_jobs is None
    assert MLPRegressor().n_jobs is None
    assert MLPClassifier(n_jobs=2).get_params()["n_jobs"] == 2
    assert "n_jobs" in MLPRegressor(n_jobs=-1).get_params()


@pytest.mark.parametrize("cls", ["MLPClassifier", "MLPRegressor"])
def test_same_constructor_as_sklearn(cls):
    """Every scikit-learn parameter with its default; the additions are extra keywords."""
    fb_params = getattr(fastbp, cls)().get_params()
    sk_params = getattr(sknn, cls)().get_params()
    for name, value in sk_params.items():
        assert name in fb_params and fb_params[name] == value, name
    added = {
        "n_jobs": None, "l1": 0.0, "dropout": 0.0, "init": "glorot", "max_time": None,
        "negative_slope": 0.01, "maxout_pieces": 2, "weight_decay": 0.01, "rho": 0.9, "device": "cpu",
        "hogwild": False, "hogwild_merge_every": 16,
    }
    added.update({"loss": "log_loss", "class_weight": None} if cls == "MLPClassifier" else {"huber_delta": 1.0})
    assert {k: v for k, v in fb_params.items() if k not in sk_params} == added


def test_parameter_names_of_a_subclass_are_its_own():
    """The parameter names are read once per class (a cache): a subclass with
    its own constructor lists its own parameters, and clone keeps them."""

    class Wider(MLPClassifier):
        def __init__(self, width=8, alpha=1e-4):
            self.width = width
            super().__init__(hidden_layer_sizes=(width,), alpha=alpha)

    assert Wider().get_params() == {"alpha": 1e-4, "width": 8}
    assert "width" not in MLPClassifier().get_params()
    est = clone(Wider(width=3, alpha=0.5))
    assert est.get_params() == {"alpha": 0.5, "width": 3}
    assert "hogwild" in MLPRegressor().get_params() and "width" not in MLPRegressor().get_params()


# --------------------------------------------------------------------------
# invalid parameters and input
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        dict(hidden_layer_sizes=[0]),
        dict(hidden_layer_sizes=(5, -1)),
        dict(activation="foo"),
        dict(activation="softmax"),
        dict(solver="foo"),
        dict(learning_rate_init=0),
        dict(learning_rate="foo"),
        dict(alpha=-1.0),
        dict(max_iter=0),
        dict(momentum=1.5),
        dict(batch_size=0),
        dict(validation_fraction=1.0),
        dict(beta_1=1.0),
        dict(epsilon=0.0),
        dict(n_iter_no_change=0),
        dict(max_fun=0),
        dict(tol=-1.0),
    ],
    ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()),
)
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_invalid_parameters(multiclass_data, cls, params):
    X, y = multiclass_data
    with pytest.raises(ValueError):
        cls(**params).fit(X, y)


def test_invalid_regressor_loss(regression_data):
    X, y = regression_data
    with pytest.raises(ValueError):
        MLPRegressor(loss="log_loss").fit(X, y)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_non_finite_X_raises(multiclass_data, cls, bad):
    X, y = multiclass_data
    X = X.copy()
    X[3, 2] = bad
    with pytest.raises(ValueError):
        cls(**(CLF if cls is MLPClassifier else REG)).fit(X, y)


def test_non_finite_y_raises(regression_data):
    X, y = regression_data
    y = y.copy()
    y[5] = np.nan
    with pytest.raises(ValueError):
        MLPRegressor(**REG).fit(X, y)


def test_non_finite_X_at_predict_raises(multiclass_data):
    X, y = multiclass_data
    clf = MLPClassifier(**CLF).fit(X, y)
    X2 = X.copy()
    X2[0, 0] = np.nan
    with pytest.raises(ValueError):
        clf.predict(X2)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score"])
def test_wrong_n_features_at_predict(multiclass_data, method):
    X, y = multiclass_data
    clf = MLPClassifier(**CLF).fit(X, y)
    args = (X[:, :-1], y) if method == "score" else (X[:, :-1],)
    with pytest.raises(ValueError, match="features"):
        getattr(clf, method)(*args)


def test_wrong_n_features_partial_fit(regression_data):
    X, y = regression_data
    reg = MLPRegressor(**REG).partial_fit(X, y)
    with pytest.raises(ValueError, match="features"):
        reg.partial_fit(X[:, :-1], y)


@pytest.mark.parametrize(
    "X, y",
    [
        (np.zeros((0, 3)), np.zeros(0)),  # no samples
        (np.ones((5, 0)), np.arange(5)),  # no features
        (np.ones(5), np.arange(5)),  # 1-D X
        (np.ones((5, 3)), np.arange(4)),  # inconsistent lengths
        (np.array([["a", "b"], ["c", "d"]]), np.array([0, 1])),  # strings in X
    ],
    ids=["no-samples", "no-features", "1d-X", "inconsistent", "string-X"],
)
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_bad_input_raises(cls, X, y):
    with pytest.raises(ValueError):
        cls(max_iter=2).fit(X, y)


def test_continuous_target_for_classifier_raises(regression_data):
    X, y = regression_data
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier(**CLF).fit(X, y)


def test_complex_X_raises(multiclass_data):
    X, y = multiclass_data
    with pytest.raises(ValueError):
        MLPClassifier(**CLF).fit(X + 1j, y)


@pytest.mark.parametrize("sw_shape", ["short", "2d"])
def test_bad_sample_weight_raises(multiclass_data, sw_shape):
    X, y = multiclass_data
    sw = np.ones(len(y) - 1) if sw_shape == "short" else np.ones((len(y), 2))
    with pytest.raises(ValueError):
        MLPClassifier(**CLF).fit(X, y, sample_weight=sw)


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("method", ["predict", "score"])
def test_not_fitted(multiclass_data, cls, method):
    X, y = multiclass_data
    est = cls()
    args = (X, y) if method == "score" else (X,)
    with pytest.raises(NotFittedError):
        getattr(est, method)(*args)


def test_not_fitted_proba(multiclass_data):
    X, _ = multiclass_data
    with pytest.raises(NotFittedError):
        MLPClassifier().predict_proba(X)
    with pytest.raises(NotFittedError):
        MLPClassifier().predict_log_proba(X)


def test_partial_fit_errors(multiclass_data):
    X, y = multiclass_data
    # classes are required on the first call
    with pytest.raises(ValueError):
        MLPClassifier(**CLF).partial_fit(X, y)
    clf = MLPClassifier(**CLF).partial_fit(X, y, classes=np.unique(y))
    # labels outside the announced classes
    with pytest.raises(ValueError):
        clf.partial_fit(X, y + 10)
    # early stopping makes no sense incrementally
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=np.unique(y))
    # lbfgs is not an incremental solver
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    assert hasattr(MLPClassifier(solver="sgd"), "partial_fit")


def test_warm_start_with_other_classes_raises(multiclass_data):
    X, y = multiclass_data
    clf = MLPClassifier(warm_start=True, **CLF).fit(X, y)
    with pytest.raises(ValueError, match="warm_start"):
        clf.fit(X[y < 2], y[y < 2])


def test_too_small_validation_set_raises():
    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(10, 3)), rng.normal(size=10)
    with pytest.raises(ValueError, match="validation set is too small"):
        MLPRegressor(early_stopping=True, validation_fraction=0.1).fit(X, y)


def test_non_finite_weights_raise():
    # huge inputs and step sizes blow the weights up: a clear error, not NaN output
    rng = np.random.RandomState(0)
    X = rng.normal(size=(50, 3)) * 1e150
    y = rng.normal(size=50) * 1e150
    with pytest.raises(ValueError, match="non-finite"):
        MLPRegressor(solver="sgd", learning_rate_init=10.0, max_iter=5,
                     random_state=0).fit(X, y)


def test_convergence_warning(multiclass_data):
    X, y = multiclass_data
    with pytest.warns(ConvergenceWarning):
        MLPClassifier(solver="adam", max_iter=2, random_state=0).fit(X, y)
    with pytest.warns(ConvergenceWarning):
        MLPRegressor(solver="lbfgs", max_iter=2, random_state=0).fit(X, y.astype(float))


# --------------------------------------------------------------------------
# pickling
# --------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_pickle_classifier(multiclass_data, solver):
    X, y = multiclass_data
    clf = MLPClassifier(solver=solver, **CLF).fit(X, y)
    clone = pickle.loads(pickle.dumps(clf))
    assert_array_equal(clone.predict(X), clf.predict(X))
    assert_array_equal(clone.predict_proba(X), clf.predict_proba(X))
    assert_identical_weights(clone, clf)
    if solver != "lbfgs":
        # training goes on identically after unpickling
        clf.partial_fit(X, y)
        clone.partial_fit(X, y)
        assert_identical_weights(clone, clf)


def test_pickle_regressor(poisson_data):
    X, y = poisson_data
    reg = MLPRegressor(loss="poisson", solver="adam", **REG).fit(X, y)
    clone = pickle.loads(pickle.dumps(reg))
    assert_array_equal(clone.predict(X), reg.predict(X))


def test_pickle_float32(multiclass_data):
    X, y = multiclass_data
    X32 = X.astype(np.float32)
    clf = MLPClassifier(solver="adam", **CLF).fit(X32, y)
    clone = pickle.loads(pickle.dumps(clf))
    assert clone.coefs_[0].dtype == np.float32
    assert_array_equal(clone.predict_proba(X32), clf.predict_proba(X32))


def test_coefs_are_independent_after_fit(multiclass_data):
    # modifying coefs_ by hand must change the predictions (no stale copies)
    X, y = multiclass_data
    clf = MLPClassifier(solver="adam", **CLF).fit(X, y)
    before = clf.predict_proba(X)
    clf.coefs_[-1][:] = 0.0
    clf.intercepts_[-1][:] = 0.0
    after = clf.predict_proba(X)
    assert_allclose(after, 1.0 / len(clf.classes_), rtol=1e-12)
    assert not np.allclose(before, after)


# --------------------------------------------------------------------------
# fuzzing with hypothesis
# --------------------------------------------------------------------------

@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    data=st.data(),
    n_samples=st.integers(2, 25),
    n_features=st.integers(1, 6),
    solver=st.sampled_from(["adam", "sgd", "lbfgs"]),
    activation=st.sampled_from(["identity", "logistic", "tanh", "relu"]),
    dtype=st.sampled_from([np.float64, np.float32]),
)
def test_fuzz_regressor_matches_sklearn(data, n_samples, n_features, solver, activation, dtype):
    X = data.draw(hnp.arrays(dtype, (n_samples, n_features),
                             elements=st.floats(-10, 10, width=32)))
    y = data.draw(hnp.arrays(np.float64, n_samples, elements=st.floats(-10, 10, width=32)))
    params = dict(solver=solver, activation=activation, hidden_layer_sizes=(3,), max_iter=3,
                  random_state=0, learning_rate_init=1e-3)
    fb = MLPRegressor(**params).fit(X, y)
    sk = sknn.MLPRegressor(**params).fit(X, y)
    pred = fb.predict(X)
    assert pred.shape == (n_samples,)
    assert np.isfinite(pred).all()
    for a, b in zip(_weights(fb), _weights(sk)):
        assert a.dtype == dtype
        if dtype == np.float64:
            tol = 1e-5 if solver == "lbfgs" else 1e-6
            assert_allclose(a, b, rtol=tol, atol=1e-9)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(
    data=st.data(),
    n_samples=st.integers(2, 25),
    n_classes=st.integers(2, 4),
    sparse=st.booleans(),
)
def test_fuzz_classifier_labels(data, n_samples, n_classes, sparse):
    X = data.draw(hnp.arrays(np.float64, (n_samples, 3), elements=st.floats(-5, 5, width=32)))
    y = data.draw(hnp.arrays(np.int64, n_samples, elements=st.integers(0, n_classes - 1)))
    if len(np.unique(y)) < 2:
        y[0], y[-1] = 0, 1
    Xin = sp.csr_matrix(X) if sparse else X
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(Xin, y)
    proba = clf.predict_proba(Xin)
    assert proba.shape == (n_samples, len(np.unique(y)))
    assert np.isfinite(proba).all()
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-10)
    assert set(clf.predict(Xin)) <= set(np.unique(y))
    sk = sknn.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(Xin, y)
    assert_allclose(proba, sk.predict_proba(Xin), rtol=1e-6, atol=1e-10)


def test_dtypes_follow_scikit_learn_when_the_model_and_the_data_differ():
    # a float32 model predicts float64 data in float64; a fitted model keeps
    # its dtype through warm_start and partial_fit (scikit-learn 1.9 alike)
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for cls in (fastbp.MLPClassifier, SkMLPClassifier):
            small = cls(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X.astype(np.float32), y)
            assert small.predict_proba(X).dtype == np.float64
            assert small.predict_proba(X.astype(np.float32)).dtype == np.float32
            warm = cls(hidden_layer_sizes=(4,), max_iter=5, random_state=0, warm_start=True).fit(X, y)
            warm.fit(X.astype(np.float32), y)
            assert warm.coefs_[0].dtype == np.float64
            online = cls(hidden_layer_sizes=(4,), random_state=0).partial_fit(X.astype(np.float32), y, classes=[0, 1])
            online.partial_fit(X, y)
            assert online.coefs_[0].dtype == np.float32
