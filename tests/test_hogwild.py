"""Hogwild! (lock-free parallel online SGD): parameters, the merge kernel, training on threads.

The parallel runs are not deterministic, so they are checked by what holds for
every interleaving (the counters, convergence, nothing lost on errors); the
merge itself is checked exactly on one thread with a crafted shared vector.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from fastbp import MLPClassifier, MLPRegressor
from fastbp.engine import cpu as _engine
from fastbp.kernels import epochs
from fastbp.kernels.losses import LOSS_LOG_LOSS
from fastbp.kernels.codes import C_ADAM_STEP, C_BATCH, F_LEARNING_RATE
from fastbp.kernels.optimizers import SOLVER_ADAM, SOLVER_SGD
from fastbp.functional import make_network


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y


def _hogwild(**params):
    base = dict(hidden_layer_sizes=(32,), batch_size=1, hogwild=True, n_jobs=2, random_state=0, max_iter=3)
    base.update(params)
    return MLPClassifier(**base)


# --------------------------------------------------------------------------
# parameters: clear errors before anything changes
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params, match",
    [
        (dict(solver="lbfgs"), "stochastic solver"),
        (dict(solver="rprop"), "stochastic solver"),
        (dict(batch_size="auto"), "batch_size=1"),
        (dict(batch_size=2), "batch_size=1"),
        (dict(device="cuda"), "CPU threads"),
    ],
)
def test_invalid_combinations_raise(digits, params, match):
    X, y = digits
    with pytest.raises(ValueError, match=match):
        _hogwild(**params).fit(X[:50], y[:50])


@pytest.mark.parametrize("value", [0, -3, 1.5, "16"])
def test_merge_every_must_be_a_positive_integer(digits, value):
    X, y = digits
    with pytest.raises(ValueError, match="hogwild_merge_every"):
        _hogwild(hogwild_merge_every=value).fit(X[:50], y[:50])


def test_invalid_parameter_keeps_the_model(digits):
    X, y = digits
    clf = _hogwild(max_iter=1).fit(X[:200], y[:200])
    coefs = [c.copy() for c in clf.coefs_]
    n_iter, curve = clf.n_iter_, list(clf.loss_curve_)
    clf.set_params(batch_size=5)
    with pytest.raises(ValueError, match="batch_size=1"):
        clf.partial_fit(X[:200], y[:200])
    for before, after in zip(coefs, clf.coefs_):
        assert_array_equal(before, after)
    assert clf.n_iter_ == n_iter and clf.loss_curve_ == curve


def test_parameters_are_listed_with_defaults():
    for cls in (MLPClassifier, MLPRegressor):
        params = cls().get_params()
        assert params["hogwild"] is False and params["hogwild_merge_every"] == 16


# --------------------------------------------------------------------------
# one thread: the ordinary online SGD, bit for bit
# --------------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_one_thread_is_plain_online_sgd(digits, solver):
    X, y = digits
    params = dict(solver=solver, n_jobs=1, max_iter=2, learning_rate_init=1e-3)
    plain = _hogwild(hogwild=False, **params).fit(X[:300], y[:300])
    hog = _hogwild(**params).fit(X[:300], y[:300])
    for a, b in zip(plain.coefs_ + plain.intercepts_, hog.coefs_ + hog.intercepts_):
        assert_array_equal(a, b)
    assert plain.loss_curve_ == hog.loss_curve_


# --------------------------------------------------------------------------
# the merge: a thread adds its change to the shared weights and goes on from the sum
# --------------------------------------------------------------------------
def _row_problem(solver_code):
    rng = np.random.RandomState(3)
    n, d, n_out = 12, 7, 3
    X = rng.randn(n, d).astype(np.float32)
    Y = np.eye(n_out, dtype=np.float32)[rng.randint(0, n_out, n)]
    network = make_network([d, 20, n_out], ["tanh"], "softmax")
    icfg, fcfg = _engine.make_config(LOSS_LOG_LOSS, solver_code=solver_code, alpha=1e-3, momentum=0.0)
    trainer = _engine.Trainer(network, _engine.InputData(X, np.float32), Y, None, icfg, fcfg, batch_rows=1)
    flat = (rng.randn(network.n_params) * 0.3).astype(np.float32)
    return trainer, flat, np.arange(n, dtype=np.int64)


def _steps(trainer, params, rows, first, stop, state_1, state_2, counters, shared=None, snapshot=None, merge=0,
           learning_rate=0.05):
    """train_epoch_rows on one thread (``shared``/``snapshot`` only with ``merge``)."""
    net, ws = trainer.network, trainer.ws
    trainer.fcfg[F_LEARNING_RATE] = learning_rate
    empty = params[:0]
    return epochs.train_epoch_rows(
        *trainer.X.arrays(), trainer.Y, trainer.sw, rows, 1, first, stop, params, ws.grads_parts, state_1,
        state_2, counters, trainer.icfg, trainer.fcfg, *net.tables(), int(net.n_weights), *net.offsets(ws),
        *ws.part_buffers(), 0.0, empty if shared is None else shared, empty if snapshot is None else snapshot,
        merge,
    )


@pytest.mark.parametrize("solver_code", [SOLVER_ADAM, SOLVER_SGD])
def test_merge_adds_the_change_and_continues_from_the_sum(solver_code):
    trainer, w0, rows = _row_problem(solver_code)
    n = w0.shape[0]
    other = (np.random.RandomState(5).randn(n) * 0.01).astype(np.float32)  # another thread's change
    shared0 = w0 + other

    # merge after every step, 3 steps, from w0 with the shared weights at w0 + other
    params, shared, snapshot = w0.copy(), shared0.copy(), w0.copy()
    s1, s2, counters = np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(2, np.int64)
    _steps(trainer, params, rows, 0, 3, s1, s2, counters, shared, snapshot, merge=1)

    # the same by hand: one step, then shared += (new - old), continue from shared
    expected_shared, current = shared0.copy(), w0.copy()
    r1, r2, rc = np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(2, np.int64)
    for step in range(3):
        before = current.copy()
        _steps(trainer, current, rows, step, step + 1, r1, r2, rc)
        expected_shared = expected_shared + (current - before)
        current = expected_shared.copy()
    assert_array_equal(shared, expected_shared)
    assert_array_equal(params, expected_shared)
    assert_array_equal(snapshot, expected_shared)
    assert_array_equal(s1, r1)
    assert_array_equal(counters, rc)
    assert counters[C_BATCH] == 3


def test_merge_every_k_steps_and_after_the_last():
    trainer, w0, rows = _row_problem(SOLVER_ADAM)
    n = w0.shape[0]
    other = np.full(n, 0.01, dtype=np.float32)
    for merge, n_steps in [(4, 10), (100, 7)]:
        params, shared, snapshot = w0.copy(), w0 + other, w0.copy()
        zeros = (np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(2, np.int64))
        _steps(trainer, params, rows, 0, n_steps, *zeros, shared, snapshot, merge=merge)
        # by hand: local steps in groups of `merge`, each group's change added to shared
        expected, current = w0 + other, w0.copy()
        r = (np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(2, np.int64))
        for first in range(0, n_steps, merge):
            before = current.copy()
            _steps(trainer, current, rows, first, min(first + merge, n_steps), *r)
            expected = expected + (current - before)
            current = expected.copy()
        assert_array_equal(shared, expected)
        assert_array_equal(params, expected)


def test_sparse_rows_are_written_densely():
    """A Hogwild! thread on CSR X takes the steps of the dense rows, bit for bit
    (duplicate entries of a non-canonical CSR add up, as in scipy)."""
    trainer, w0, rows = _row_problem(SOLVER_ADAM)
    X = trainer.X.dense.reshape(12, 7).copy()
    X[np.abs(X) < 0.7] = 0.0
    Xs = sp.csr_matrix(X)
    # split each row's first entry in two duplicates
    data, indices, indptr = [], [], [0]
    for r in range(X.shape[0]):
        lo, hi = Xs.indptr[r], Xs.indptr[r + 1]
        for p in range(lo, hi):
            if p == lo:
                data += [Xs.data[p] * 0.25, Xs.data[p] * 0.75]
                indices += [Xs.indices[p], Xs.indices[p]]
            else:
                data.append(Xs.data[p])
                indices.append(Xs.indices[p])
        indptr.append(len(data))
    duplicated = sp.csr_matrix((np.array(data, np.float32), indices, indptr), shape=X.shape)
    assert not duplicated.has_canonical_format
    n = w0.shape[0]
    results = []
    for source in (X, Xs, duplicated):
        data_ = _engine.InputData(source, np.float32)
        one = _engine.Trainer(trainer.network, data_, trainer.Y, None, trainer.icfg, trainer.fcfg, 1,
                              hogwild_threads=2)
        ws = one.hogwild_ws[0]
        params = w0.copy()
        state = (np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(2, np.int64))
        one.fcfg[F_LEARNING_RATE] = 0.05
        loss = epochs.train_epoch_rows(
            *data_.arrays(), one.Y, one.sw, rows[::-1].copy(), 1, 0, 12, params, ws.grads_parts, *state,
            one.icfg, one.fcfg, *one.network.tables(), int(one.network.n_weights), *one.network.offsets(ws),
            *ws.part_buffers(), 0.0, params[:0], params[:0], 0,
        )
        results.append((params, loss))
    for params, loss in results[1:]:
        assert_array_equal(params, results[0][0])
        assert loss == results[0][1]


def test_sparse_input_trains(digits):
    X, y = digits
    X = np.where(np.abs(X) < 0.5, 0.0, X).astype(np.float32)
    params = dict(max_iter=2, learning_rate_init=1e-3)
    one = _hogwild(n_jobs=1, **params).fit(sp.csr_matrix(X[:300]), y[:300])
    plain = _hogwild(n_jobs=1, hogwild=False, **params).fit(sp.csr_matrix(X[:300]), y[:300])
    for a, b in zip(one.coefs_, plain.coefs_):  # one thread: the ordinary path
        assert_array_equal(a, b)
    if _engine.effective_n_jobs(2) > 1:
        two = _hogwild(**params).fit(sp.csc_matrix(X[:300]), y[:300])
        assert np.all(np.isfinite(two.loss_curve_)) and two.score(X[:300], y[:300]) > 0.9
        assert two._optimizer.counters[C_BATCH] == 600


# --------------------------------------------------------------------------
# two threads: what holds for every interleaving
# --------------------------------------------------------------------------
needs_two_threads = pytest.mark.skipif(
    _engine.effective_n_jobs(2) < 2, reason="n_jobs=2 runs one thread on a one-core machine"
)


def test_trainer_threads_share_the_steps_and_average_the_state():
    trainer, w0, rows = _row_problem(SOLVER_ADAM)
    net = trainer.network
    # merging only after a thread's last step: each thread's steps are those of
    # its share alone, from w0, whatever the interleaving
    hog = _engine.Trainer(net, trainer.X, trainer.Y, None, trainer.icfg, trainer.fcfg, 1, hogwild_threads=2,
                          hogwild_merge_every=100)
    n = w0.shape[0]
    flat, s1, s2 = w0.copy(), np.full(n, 0.5, np.float32), np.full(n, 0.25, np.float32)
    counters = np.array([7, 11], dtype=np.int64)
    total = hog.train_epoch(flat, rows, 1, 2, 12, s1, s2, counters, 0.01, running_total=1.5)
    assert counters[C_ADAM_STEP] == 7 + 10 and counters[C_BATCH] == 11 + 10

    changes, moments, losses = [], [], []
    for first, stop in [(2, 7), (7, 12)]:  # the two threads' shares
        params = w0.copy()
        r1, r2 = np.full(n, 0.5, np.float32), np.full(n, 0.25, np.float32)
        rc = np.array([7, 11 + first - 2], dtype=np.int64)
        losses.append(_steps(trainer, params, rows, first, stop, r1, r2, rc, learning_rate=0.01))
        assert rc[C_ADAM_STEP] == 7 + 5 and rc[C_BATCH] == 11 + stop - 2
        changes.append(params - w0)
        moments.append((r1, r2))
    assert_array_equal(s1, np.mean([m[0] for m in moments], axis=0, dtype=np.float64).astype(np.float32))
    assert_array_equal(s2, np.mean([m[1] for m in moments], axis=0, dtype=np.float64).astype(np.float32))
    assert total == pytest.approx(1.5 + sum(losses), rel=1e-12)
    # both changes reach the shared weights (the two merges, a few hundred
    # adds each, would have to overlap in time to lose one)
    assert_allclose(flat, w0 + changes[0] + changes[1], rtol=1e-5, atol=1e-6)

    # a single step: one thread (nothing to share)
    one = w0.copy()
    hog.train_epoch(one, rows, 1, 0, 1, s1.copy(), s2.copy(), np.zeros(2, np.int64), 0.01)
    assert not np.array_equal(one, w0)


@needs_two_threads
@pytest.mark.parametrize("merge_every", [1, 16])
def test_two_threads_train_and_count_every_step(digits, merge_every):
    X, y = digits
    n = 600
    clf = _hogwild(max_iter=4, hogwild_merge_every=merge_every, learning_rate_init=1e-3)
    clf.fit(X[:n], y[:n])
    clf.partial_fit(X[:n], y[:n])
    counters = clf._optimizer.counters
    assert counters[C_ADAM_STEP] == 5 * n and counters[C_BATCH] == 5 * n
    assert np.all(np.isfinite(clf.loss_curve_)) and len(clf.loss_curve_) == 5
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.score(X[:n], y[:n]) > 0.95
    assert clf.score(X[n:], y[n:]) > 0.85


@needs_two_threads
def test_two_threads_with_dropout_weights_and_sgd(digits):
    X, y = digits
    sw = np.random.RandomState(0).rand(400) + 0.5
    sw[::7] = 0.0  # rows of weight 0 make no step
    clf = _hogwild(solver="sgd", momentum=0.9, dropout=0.1, max_iter=3, learning_rate_init=0.001)
    clf.fit(X[:400], y[:400], sample_weight=sw)
    assert clf._optimizer.counters[C_BATCH] == 3 * 400
    assert clf._optimizer.counters[C_ADAM_STEP] == 0  # SGD: no Adam steps
    assert np.all(np.isfinite(clf.loss_curve_)) and clf.score(X[:400], y[:400]) > 0.9
    reg = MLPRegressor(hidden_layer_sizes=(16,), batch_size=1, hogwild=True, n_jobs=2, max_iter=2,
                       random_state=0, learning_rate_init=1e-3)
    reg.fit(X[:400], y[:400].astype(np.float32))
    assert np.all(np.isfinite(reg.loss_curve_)) and reg.loss_curve_[-1] < reg.loss_curve_[0]
