"""Dask arrays in ``fit``: training on data that lives in a dask cluster.

``MLPClassifier.fit`` / ``MLPRegressor.fit`` (and ``partial_fit``) hand a dask
collection X to :func:`fit_dask` (the hook at the top of
``BaseMultilayerPerceptron._fit_unprotected``). dask is imported here only
then: :func:`is_dask_collection` looks at the object's type without importing
it.

What runs where
---------------
The row blocks of X, y and sample_weight (matching row chunks) become one
*prepared block* each, made where the data lives: X in the kernels' dtype, the
targets as the kernels' matrix (one-hot classes, float outputs), the combined
sample and class weights. Then:

* Full-batch solvers ('lbfgs', 'rprop', 'quickprop'): the prepared blocks are
  persisted on the workers once. Each loss-and-gradient evaluation sends only
  the parameter vector (scattered once per evaluation); every worker runs
  fastbp's own kernel (``epochs.gradient_sums`` through an
  ``cpu.Trainer`` on its block) and returns ``(loss sum, weight sum, raw
  gradient sums)``. The client adds the blocks' sums in block order (so the
  result does not depend on timing), adds the penalty and divides by the weight
  sum with ``layers.finalize_gradient`` (as ``Trainer.loss_and_gradient``
  does), and takes the solver's step with the in-memory code itself
  (``_run_lbfgs``: SciPy's L-BFGS-B with the same options; ``_make_step`` and
  ``_run_iterations`` for Rprop and Quickprop). The weights equal those of an
  in-memory fit up to float rounding (the sums are added in another order).
* Mini-batch solvers ('sgd', 'adam', ...): the blocks stream through the
  client, one at a time (the next one is fetched while the current one trains):
  an epoch runs the estimator's own compiled epoch on each block in turn, in
  order, or in a new random order per epoch with ``shuffle=True`` (drawn from
  the estimator's random state, as are the shuffles within each block), with
  one optimizer state across blocks. It is the same algorithm as an in-memory
  fit but not the same result: a mini-batch never crosses a block boundary
  (each block's last batch may be short) and the shuffles stay within blocks.
  ``partial_fit`` with a dask array runs one such epoch.

The classes of a classifier come from one pass over y (``da.unique``) before
training, so ``classes=`` is not needed (``partial_fit`` asks for it on its
first call, as in memory); ``class_weight='balanced'`` counts them in the same
pass.

Each full-batch iteration costs a round trip to the workers (some tens of
milliseconds on a local cluster) on top of the kernels' time: worth it for data
that does not fit one machine, not for small data.

Not available with dask input: device='cuda', solver='lm' (it needs the
Jacobian of all rows in memory) and early stopping on a split of X (pass a
held-out ``X_val`` / ``y_val`` instead, which is brought into memory).
"""

import math
import types
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.base import is_classifier
from sklearn.exceptions import DataConversionWarning
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import _check_feature_names, _check_n_features

from . import cpu
from ..kernels import epochs, layers
from ..kernels.codes import F_ALPHA, F_L1
from ..kernels.optimizers import STOCHASTIC_SOLVERS
from ..kernels.losses import needs_nonnegative_targets
from ..kernels.config import CHUNK_ROWS
from ..solvers.state import OptimizerState

_DASK_MODULES = ("dask", "dask_expr")


def is_dask_collection(obj):
    """Whether ``obj`` is a dask collection (array, DataFrame, ...), without importing dask.

    Parameters
    ----------
    obj : object
        Anything passed as X.

    Returns
    -------
    bool
        True when the object's type comes from dask and has ``__dask_graph__``.
    """
    cls = type(obj)
    module = getattr(cls, "__module__", None) or ""
    return module.split(".")[0] in _DASK_MODULES and callable(getattr(cls, "__dask_graph__", None))


# ---------------------------------------------------------------------------
# input validation (client side, lazy where it can be)
# ---------------------------------------------------------------------------
def _as_dask_array(obj, name, like=None):
    """``obj`` as a dask array: dask DataFrames and Series through ``to_dask_array``,
    NumPy-like arrays chunked as ``like``'s rows."""
    import dask.array as da

    if is_dask_collection(obj):
        if hasattr(obj, "to_dask_array"):  # dask DataFrame / Series: partition lengths are computed
            obj = obj.to_dask_array(lengths=True)
        if not isinstance(obj, da.Array):
            raise TypeError(
                f"{name} is a {type(obj).__name__}; fastbp takes dask arrays (or dask DataFrames) as {name}."
            )
        return obj
    if like is None:  # pragma: no cover - X always is a dask collection here
        raise TypeError(f"{name} must be a dask array.")
    arr = np.asarray(obj)
    if arr.ndim == 0 or arr.shape[0] != like.shape[0]:
        raise ValueError(
            f"{name} has {arr.shape[0] if arr.ndim else 0} rows but X has {like.shape[0]}."
        )
    return da.from_array(arr, chunks=(like.chunks[0],) + tuple((s,) for s in arr.shape[1:]))


def _check_rows(arr, name, X):
    """Known row chunks, equal to X's."""
    if any(math.isnan(c) for axis_chunks in arr.chunks for c in axis_chunks):
        raise ValueError(
            f"{name} has unknown chunk sizes (nan), as after boolean indexing or from a dask DataFrame's "
            f"values; call {name}.compute_chunk_sizes() (or DataFrame.to_dask_array(lengths=True)) first."
        )
    if arr is not X and arr.shape[0] != X.shape[0]:
        raise ValueError(f"X and {name} have different numbers of rows: {X.shape[0]} and {arr.shape[0]}.")
    if arr is not X and arr.chunks[0] != X.chunks[0]:
        raise ValueError(
            f"X and {name} must have the same row chunks, got {X.chunks[0]} and {arr.chunks[0]}; "
            f"rechunk it with {name}.rechunk({{0: X.chunks[0]}})."
        )


def _validate_dask_input(est, X, y, sample_weight, reset):
    """Dask arrays X (2-D, one column chunk, kernels' dtype), y (1-D or 2-D), sample_weight (or None)."""
    # a dask DataFrame's column names: those of its empty pandas meta
    _check_feature_names(est, X._meta if hasattr(X, "to_dask_array") and hasattr(X, "_meta") else X, reset=reset)
    X = _as_dask_array(X, "X")
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D dask array as X, got {X.ndim} dimension(s).")
    _check_rows(X, "X", X)
    if X.shape[0] < 1:
        raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
    if X.shape[1] < 1:
        raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"X must hold numbers, got dtype {X.dtype}.")
    _check_n_features(est, X, reset=reset)
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})

    if y is None:
        raise ValueError(f"{type(est).__name__} requires y to be passed, but the target y is None.")
    y = _as_dask_array(y, "y", like=X)
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D or 2-D, got {y.ndim} dimensions.")
    _check_rows(y, "y", X)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. Please change the shape of y to "
            "(n_samples, ), for example using ravel().",
            DataConversionWarning,
            stacklevel=4,
        )
        y = y.ravel().rechunk((X.chunks[0],))
    elif y.ndim == 2 and len(y.chunks[1]) > 1:
        y = y.rechunk({1: -1})

    if sample_weight is not None:
        sample_weight = _as_dask_array(sample_weight, "sample_weight", like=X)
        if sample_weight.ndim != 1:
            raise ValueError(f"sample_weight must be 1-D, got shape {sample_weight.shape}.")
        _check_rows(sample_weight, "sample_weight", X)
        if sample_weight.dtype.kind not in "biuf":
            raise ValueError(f"sample_weight must hold numbers, got dtype {sample_weight.dtype}.")
    return X, y, sample_weight, dtype


def _class_targets(est, y, incremental, stats):
    """Set up (or check) the classifier's classes like ``MLPClassifier._validate_input``; return
    the target spec for :func:`_prepare_block`."""
    if y.ndim == 1:
        labels = stats["classes"]
        one_of_k = True
    else:  # multilabel indicator: every value 0 or 1
        values = stats["classes"]
        if not set(values.tolist()) <= {0, 1}:
            raise ValueError("Multioutput target data is not supported with label binarization")
        labels = np.arange(y.shape[1])
        one_of_k = False
    if (not hasattr(est, "classes_")) or (not est.warm_start and not incremental):
        est._label_binarizer = LabelBinarizer()
        if one_of_k:
            est._label_binarizer.fit(labels)  # the same fit as on y: sorted labels and y's type
        else:
            est._label_binarizer.fit(np.eye(y.shape[1], dtype=int))  # y has >= 2 columns here
        est.classes_ = est._label_binarizer.classes_
    elif est.warm_start:
        if set(labels.tolist()) != set(np.asarray(est.classes_).tolist()):
            raise ValueError(
                "warm_start can only be used where `y` has the same classes as in the previous call to fit. "
                f"Previously got {est.classes_}, `y` has {labels}"
            )
    else:
        unknown = np.setdiff1d(labels, est.classes_)
        if len(unknown):
            raise ValueError(
                f"`y` has classes not in `self.classes_`. `self.classes_` has {est.classes_}. 'y' has {unknown}."
            )
    y_type = est._label_binarizer.y_type_
    if one_of_k and y_type in ("binary", "multiclass"):
        return ("labels", np.asarray(est.classes_), y_type)
    return ("binarizer", est._label_binarizer, y_type)


def _class_weights(est, y, incremental, stats):
    """Per-class weights (float64, aligned with ``classes_``) of ``class_weight``, or None."""
    class_weight = getattr(est, "class_weight", None)
    if class_weight is None:
        return None
    if y.ndim != 1:
        raise ValueError("class_weight with a 2-D (multilabel) dask y is not supported; pass sample_weight.")
    if incremental and class_weight == "balanced":
        raise ValueError(
            "class_weight='balanced' is not available in partial_fit: the class counts of one "
            "call are not those of the data. Pass the weights as a dict."
        )
    classes = np.asarray(est.classes_)
    if isinstance(class_weight, dict):
        unknown = set(class_weight) - set(classes.tolist())
        if unknown:
            raise ValueError(f"class_weight names classes that are not in the data: {sorted(map(str, unknown))}.")
        return compute_class_weight(class_weight, classes=classes, y=classes).astype(np.float64)
    # 'balanced': n_samples / (n_classes * count), as compute_class_weight over the classes present
    present, counts = stats["classes"], stats["counts"].astype(np.float64)
    recip_freq = counts.sum() / (present.shape[0] * counts)
    weights = np.zeros(classes.shape[0], dtype=np.float64)
    weights[np.searchsorted(classes, present)] = recip_freq
    return weights


# ---------------------------------------------------------------------------
# work on one block (runs on the workers, or on the client for mini-batches)
# ---------------------------------------------------------------------------
def _writeable(arr):
    """``arr``, copied when read-only (deserialized data): one compiled kernel for all."""
    return arr if arr is None or arr.flags.writeable else arr.copy()


def _label_positions(y, classes):
    positions = np.searchsorted(classes, y)
    known = np.all(classes[np.minimum(positions, len(classes) - 1)] == y)
    if not known:
        unknown = np.setdiff1d(np.unique(y), classes)
        raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {classes}. 'y' has {unknown}.")
    return positions


def _prepare_block(X, y, sample_weight, spec):
    """One row block as the kernels take it: ``(X, Y, sample weights or None)``.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (m, n_features)
        The block of X.
    y : ndarray of shape (m,) or (m, n_outputs)
        The block of y.
    sample_weight : ndarray of shape (m,) or None
        The block of sample_weight.
    spec : dict
        ``dtype``, ``block`` (its index, for messages), ``targets`` (the target
        spec) and ``class_weights`` (per-class weights or None).

    Returns
    -------
    tuple
        X in the kernels' dtype (dense or CSR), the target matrix Y of shape
        (m, n_outputs) in that dtype, and the combined weights in that dtype or
        None.
    """
    dtype = spec["dtype"]
    if sp.issparse(X):
        X = X.tocsr().astype(dtype, copy=False)
        finite = np.isfinite(X.data).all()
    else:
        X = np.asarray(X)
        if X.dtype != dtype:
            X = X.astype(dtype)
        finite = np.isfinite(X).all()
    if not finite:
        raise ValueError(f"Input X contains NaN or infinity (in row block {spec['block']}).")
    y = np.asarray(y)
    kind = spec["targets"][0]
    positions = None
    if kind == "regression":
        Y = y.astype(dtype)
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
    elif kind == "labels":  # 1-D class labels: one-hot rows (one column for two classes)
        classes, y_type = spec["targets"][1], spec["targets"][2]
        positions = _label_positions(y, classes)
        m, k = y.shape[0], classes.shape[0]
        if y_type == "multiclass":
            Y = np.zeros((m, k), dtype=dtype)
            Y[np.arange(m), positions] = 1
        elif k == 1:
            Y = np.zeros((m, 1), dtype=dtype)
        else:
            Y = (positions == 1).astype(dtype).reshape(-1, 1)
    else:  # a LabelBinarizer (multilabel indicator)
        Y = spec["targets"][1].transform(y).astype(bool).astype(dtype)
    Y = np.ascontiguousarray(Y)
    weights = None
    if sample_weight is not None:
        weights = np.ascontiguousarray(np.asarray(sample_weight), dtype=dtype)
    if spec["class_weights"] is not None:
        if positions is None:
            positions = _label_positions(y, spec["targets"][1])
        class_weights = spec["class_weights"][positions].astype(dtype)
        weights = class_weights if weights is None else class_weights * weights
    return X, Y, weights


def _block_trainer(block, flat, spec):
    """An ``cpu.Trainer`` over a whole prepared block (no dropout: full-batch)."""
    X, Y, weights = block
    network, icfg, fcfg = spec["network"], spec["icfg"], spec["fcfg"]
    m = Y.shape[0]
    return cpu.Trainer(
        network, cpu.InputData(X, flat.dtype), _writeable(Y), _writeable(weights), icfg, fcfg,
        batch_rows=min(m, CHUNK_ROWS),
    )


def _block_gradient_sums(block, flat, spec):
    """``(loss sum, weight sum, raw gradient sums)`` of one prepared block at ``flat``.

    Parameters
    ----------
    block : tuple
        A prepared block from :func:`_prepare_block`.
    flat : ndarray of shape (n_params,)
        The parameter vector.
    spec : dict
        ``network``, ``icfg``, ``fcfg`` (the fit's kernel configuration) and
        ``n_jobs``.

    Returns
    -------
    tuple
        The weighted loss sum and weight sum (floats) and the raw gradient sums
        (``x.T @ delta`` and ``sum(delta)``, no penalty, not divided), or None
        for an empty block.
    """
    m = block[1].shape[0]
    if m == 0:
        return 0.0, 0.0, None
    flat = _writeable(flat)
    trainer = _block_trainer(block, flat, spec)
    network, ws = trainer.network, trainer.ws
    rows = np.arange(m, dtype=np.int64)
    with cpu.compute_context(spec["n_jobs"], numba_parallel=False):
        loss_sum, weight_sum = epochs.gradient_sums(
            *trainer.X.arrays(), trainer.Y, trainer.sw, rows, ws.rows, flat, ws.grads, trainer.icfg,
            trainer.fcfg, *network.tables(), *network.offsets(ws), *ws.buffers(), 0.0, 0.0, False,
        )
    return loss_sum, weight_sum, ws.grads.copy()


def _block_loss_sums(block, flat, spec):
    """``(loss sum, weight sum)`` of one prepared block at ``flat``: no gradient, no penalty.

    Parameters
    ----------
    block : tuple
        A prepared block from :func:`_prepare_block`.
    flat : ndarray of shape (n_params,)
        The parameter vector.
    spec : dict
        As for :func:`_block_gradient_sums`.

    Returns
    -------
    tuple of float
    """
    m = block[1].shape[0]
    if m == 0:
        return 0.0, 0.0
    flat = _writeable(flat)
    trainer = _block_trainer(block, flat, spec)
    network, ws = trainer.network, trainer.ws
    with cpu.compute_context(spec["n_jobs"], numba_parallel=False):
        return epochs.dataset_loss(
            *trainer.X.arrays(), trainer.Y, trainer.sw, np.arange(m, dtype=np.int64), ws.rows, flat,
            trainer.icfg, trainer.fcfg, *network.tables(), *network.offsets(ws), ws.xb, ws.yb, ws.swb, ws.pre,
            ws.acts, ws.deltas, ws.row_loss,
        )


def _class_weight_sum(y, sample_weight, classes, class_weights, dtype):
    """Sum of the combined class and sample weights of one block of labels."""
    weights = class_weights[_label_positions(np.asarray(y), classes)].astype(dtype)
    if sample_weight is not None:
        weights = weights * np.asarray(sample_weight).astype(dtype)
    return float(weights.sum(dtype=np.float64))


# ---------------------------------------------------------------------------
# the client's side
# ---------------------------------------------------------------------------
def _distributed_client():
    """The distributed Client dask computes with now, or None (a local scheduler)."""
    import dask.base

    scheduler = dask.base.get_scheduler()
    client = getattr(scheduler, "__self__", None)
    if client is not None and type(client).__module__.split(".")[0] == "distributed":
        return client
    return None


class _BlockObjective:
    """The training loss over all blocks, with the interface the in-memory solvers use.

    Duck-types the parts of ``cpu.Trainer`` that ``_run_lbfgs``,
    ``_make_step`` (rprop, quickprop) and ``_run_iterations`` call:
    ``loss_and_gradient`` (the gradient lands in ``ws.grads``) and
    ``gives_finite_loss``. The ``rows`` they pass are ignored: all rows count.

    Parameters
    ----------
    blocks : list of dask.delayed.Delayed
        The prepared blocks (persisted for the full-batch solvers).
    network : cpu.Network
    icfg, fcfg : ndarray
        The kernels' configuration (``est._config``).
    n_jobs : int or None
        Threads of each block's kernel call on its worker.
    client : distributed.Client or None
        Where the parameter vector is scattered; None for a local scheduler.
    """

    def __init__(self, blocks, network, icfg, fcfg, n_jobs, client):
        self.blocks = blocks
        self.network = network
        self.fcfg = fcfg
        self.client = client
        self.spec = {"network": network, "icfg": icfg, "fcfg": fcfg, "n_jobs": n_jobs}
        self.ws = types.SimpleNamespace(grads=None)

    def _map(self, func, flat):
        """``func(block, flat, spec)`` on every block where it lives; results in block order."""
        import dask

        flat = flat.copy()  # the solvers change theirs in place
        if self.client is not None:
            flat = self.client.scatter(flat, hash=False)  # sent once, read by every block's task
        tasks = [dask.delayed(func, pure=False)(block, flat, self.spec) for block in self.blocks]
        return dask.compute(*tasks)

    def loss_and_gradient(self, flat, rows=None, chunk=None, deadline=None):
        """Mean loss (with penalties) over all blocks; its gradient into ``ws.grads``.

        Parameters
        ----------
        flat : ndarray of shape (n_params,)
            The parameter vector.
        rows, chunk, deadline : ignored
            ``Trainer.loss_and_gradient``'s arguments (a pass over the blocks
            is not abandoned half-way).

        Returns
        -------
        float
            ``(loss sum + penalty) / weight sum``, as ``Trainer.loss_and_gradient``.
        """
        if self.ws.grads is None or self.ws.grads.dtype != flat.dtype:
            self.ws.grads = np.empty(self.network.n_params, dtype=flat.dtype)
        grads = self.ws.grads
        loss_sum = weight_sum = 0.0
        first = True
        for block_loss, block_weight, block_grads in self._map(_block_gradient_sums, flat):
            if block_grads is None:
                continue
            loss_sum += block_loss
            weight_sum += block_weight
            if first:
                grads[:] = block_grads
                first = False
            else:
                grads += block_grads  # in block order: the same sum whatever finishes first
        penalty = layers.finalize_gradient(
            flat, grads, int(self.network.n_weights), self.fcfg[F_ALPHA], self.fcfg[F_L1], weight_sum
        )
        return loss_sum / weight_sum + penalty / weight_sum

    def dataset_loss(self, flat, rows=None):
        """Mean loss over all blocks without penalties.

        Parameters
        ----------
        flat : ndarray of shape (n_params,)
            The parameter vector.
        rows : ignored

        Returns
        -------
        float
        """
        loss_sum = weight_sum = 0.0
        for block_loss, block_weight in self._map(_block_loss_sums, flat):
            loss_sum += block_loss
            weight_sum += block_weight
        return loss_sum / weight_sum

    def gives_finite_loss(self, rows=None):
        """A test of parameter vectors: is the mean loss over all blocks finite?

        Parameters
        ----------
        rows : ignored

        Returns
        -------
        callable
            ``is_finite(flat) -> bool``.
        """

        def is_finite(flat):
            with np.errstate(all="ignore"):
                return bool(np.isfinite(flat).all() and np.isfinite(self.dataset_loss(flat)))

        return is_finite


def _stream(blocks, order, client):
    """Yield the prepared blocks in ``order``, computed; with a distributed client the next
    block is already being fetched while the current one trains."""
    import dask

    if client is None:
        for i in order:
            yield dask.compute(blocks[i])[0]
        return
    order = list(order)
    pending = client.compute(blocks[order[0]]) if order else None
    try:
        for k in range(len(order)):
            current = pending
            pending = client.compute(blocks[order[k + 1]]) if k + 1 < len(order) else None
            yield current.result()
            del current
    finally:
        if pending is not None:
            pending.cancel()


def _block_epochs(est, blocks, client, network, flat, optimizer, batch_size, seed, parts, dtype):
    """One epoch over the blocks (the ``step`` of ``_run_iterations``) for mini-batch solvers."""
    n_blocks = len(blocks)

    def epoch(deadline):
        order = est._random_state.permutation(n_blocks) if est.shuffle else np.arange(n_blocks)
        total, n_seen, timed_out = 0.0, 0, False
        epoch.samples_done = 0
        stream = _stream(blocks, order, client)
        try:
            for X, Y, weights in stream:
                m = Y.shape[0]
                if m == 0:
                    continue
                data = cpu.InputData(X, dtype)
                trainer = est._trainer(network, data, Y, weights, dtype, seed, min(batch_size, m), parts, hogwild=True)
                rows = np.arange(m, dtype=np.int64)
                step = est._make_step(trainer, network, flat, rows, batch_size, optimizer, weights, Y)
                try:
                    loss, seen, timed_out, _ = step(deadline)
                except KeyboardInterrupt:
                    epoch.samples_done = n_seen + getattr(step, "samples_done", 0)
                    raise
                total += loss * seen
                n_seen += seen
                epoch.samples_done = n_seen
                if not math.isfinite(loss) or timed_out:
                    break
        finally:
            stream.close()
        return total / n_seen, n_seen, timed_out, False

    epoch.samples_done = 0
    return epoch


def fit_dask(est, X, y, sample_weight, incremental, X_val, y_val, sample_weight_val, start_time):
    """Fit ``est`` on dask arrays: what ``_fit_unprotected`` does for in-memory data.

    Parameters
    ----------
    est : MLPClassifier or MLPRegressor
        The estimator (its ``_fit`` restores it when this raises).
    X : dask array or dask DataFrame of shape (n_samples, n_features)
        The input data; its row chunks are the blocks.
    y : dask array of shape (n_samples,) or (n_samples, n_outputs)
        Targets with X's row chunks (a NumPy array is chunked like X).
    sample_weight : dask array of shape (n_samples,) or None
        Sample weights with X's row chunks (a NumPy array is chunked like X).
    incremental : bool
        True for ``partial_fit`` (one epoch, mini-batch solvers).
    X_val, y_val, sample_weight_val : array-like or None
        Held-out data, brought into memory (dask arrays are computed).
    start_time : float
        ``time.perf_counter()`` at the call's start (``max_time``).

    Returns
    -------
    est : object
        The fitted estimator, with the attributes of an in-memory fit.
    """
    import dask
    import dask.array as da

    hidden_layer_sizes, names, rates = est._check_params()
    if incremental and est.early_stopping:
        raise ValueError("partial_fit does not support early_stopping=True")
    if getattr(est, "device", "cpu") != "cpu":
        raise ValueError(
            f"device={est.device!r} is not available with dask input: the blocks are trained with the CPU "
            "kernels (on the workers for the full-batch solvers, on the client for the mini-batch ones); "
            "use device='cpu'."
        )
    if est.solver == "lm":
        raise ValueError(
            "solver='lm' (Levenberg-Marquardt) needs the Jacobian of all rows in memory and is not available "
            "with dask input; use solver='lbfgs', 'rprop' or 'quickprop' (full batch, computed on the "
            "workers) or a mini-batch solver."
        )
    if est.early_stopping and X_val is None:
        raise ValueError(
            "early_stopping=True with dask input needs a held-out set: pass X_val and y_val (a random "
            "split of a dask array is not made)."
        )
    first_pass = not hasattr(est, "coefs_") or (not est.warm_start and not incremental)
    X, y, sample_weight, dtype = _validate_dask_input(est, X, y, sample_weight, reset=first_pass)
    if not first_pass:
        dtype = est.coefs_[0].dtype  # a fitted model keeps its dtype (as in memory)
    n_samples, n_features = X.shape
    classifier = is_classifier(est)

    # one pass over y and sample_weight: classes, counts, checks
    stats = {}
    if classifier:
        if y.ndim == 1 and getattr(est, "class_weight", None) == "balanced":
            stats["classes"], stats["counts"] = da.unique(y, return_counts=True)
        else:
            stats["classes"] = da.unique(y)
    else:
        if y.dtype.kind not in "biuf":
            raise ValueError(f"y must hold numbers for a regressor, got dtype {y.dtype}.")
        stats["y_finite"] = da.isfinite(y).all()
        if needs_nonnegative_targets(est.loss):
            stats["y_min"] = y.min()
    if sample_weight is not None:
        stats["sw_sum"] = sample_weight.sum(dtype=np.float64)
        stats["sw_finite"] = da.isfinite(sample_weight).all()
    stats = dict(zip(stats, dask.compute(*stats.values())))
    if not classifier and not stats["y_finite"]:
        raise ValueError("Input y contains NaN or infinity.")
    if "y_min" in stats and stats["y_min"] < 0:
        raise ValueError(f"Some value(s) of y are negative which is not allowed for the {est.loss} loss.")
    if sample_weight is not None:
        if not stats["sw_finite"]:
            raise ValueError("Input sample_weight contains NaN or infinity.")
        if not stats["sw_sum"] > 0:
            raise ValueError("sample_weight must have a positive sum.")

    if classifier:
        targets = _class_targets(est, y, incremental, stats)
        class_weights = _class_weights(est, y, incremental, stats)
        n_outputs = 1 if targets[2] == "binary" else len(est.classes_)
    else:
        targets, class_weights = ("regression",), None
        n_outputs = 1 if y.ndim == 1 else int(y.shape[1])
    est.n_outputs_ = n_outputs

    validation = None
    if X_val is not None or y_val is not None:
        if X_val is None or y_val is None:
            raise ValueError("X_val and y_val must be given together.")
        if incremental:
            raise ValueError("partial_fit takes no validation data; pass it to fit.")
        X_val, y_val, sample_weight_val = (
            np.asarray(v.compute()) if is_dask_collection(v) else v for v in (X_val, y_val, sample_weight_val)
        )
        validation = est._validate_validation_data(X_val, y_val, sample_weight_val, dtype)
    elif sample_weight_val is not None:
        raise ValueError("sample_weight_val is given without X_val and y_val.")

    # the network and its parameters: as _fit_unprotected
    layer_units = [n_features] + hidden_layer_sizes + [n_outputs]
    est._random_state = check_random_state(est.random_state)
    if first_pass:
        est.out_activation_ = est._output_activation(y)
    network = est._network(layer_units, names, rates)
    if first_pass:
        est._initialize(np.empty((0, n_outputs)), network, names, dtype)
    else:
        est._check_continuation(network)
    est._fitted_layers = (names, int(est.maxout_pieces), float(est.negative_slope))
    flat = network.pack(est.coefs_, est.intercepts_, dtype)
    est._set_parameters(network, flat)
    seed = int(est._random_state.randint(np.iinfo(np.int32).max)) if network.has_dropout else 0

    # the prepared blocks (lazy): X in dtype, target matrix, combined weights
    x_blocks = X.to_delayed()[:, 0]
    y_blocks = y.to_delayed() if y.ndim == 1 else y.to_delayed()[:, 0]
    w_blocks = [None] * len(x_blocks) if sample_weight is None else sample_weight.to_delayed()
    if class_weights is not None:
        weight_sums = dask.compute(*[
            dask.delayed(_class_weight_sum)(yb, wb, targets[1], class_weights, dtype)
            for yb, wb in zip(y_blocks, w_blocks)
        ])
        if not math.fsum(weight_sums) > 0:
            raise ValueError("class_weight and sample_weight leave no sample with a positive weight.")
    blocks = [
        dask.delayed(_prepare_block)(
            xb, yb, wb, {"dtype": dtype, "block": i, "targets": targets, "class_weights": class_weights}
        )
        for i, (xb, yb, wb) in enumerate(zip(x_blocks, y_blocks, w_blocks))
    ]
    client = _distributed_client()
    stochastic = est.solver in STOCHASTIC_SOLVERS
    if not stochastic:
        blocks = list(dask.persist(*blocks))  # made once, kept where they are made
    icfg, fcfg = est._config(dtype, 0)
    objective = _BlockObjective(blocks, network, icfg, fcfg, est.n_jobs, client)

    parts = est._thread_parts(network, n_samples)
    with cpu.compute_context(est.n_jobs, data_parallel=parts > 1 or bool(est.hogwild)):
        callback_ctx = est._begin_callbacks(X, y, sample_weight)
        deadline = None if est.max_time is None else start_time + float(est.max_time)
        if est.solver == "lbfgs":
            est._run_lbfgs(objective, None, flat, deadline)
        else:
            _fit_iterative_blocks(
                est, objective, blocks, client, network, flat, incremental, validation, seed, deadline,
                callback_ctx, parts, dtype, n_samples,
            )
        if callback_ctx is not None:
            callback_ctx.end()

    return est


def _fit_iterative_blocks(est, objective, blocks, client, network, flat, incremental, validation, seed, deadline,
                          callback_ctx, parts, dtype, n_samples):
    """``_fit_iterative`` over blocks: the optimizer, validation and step set up as there, then
    the shared iteration loop ``_run_iterations``."""
    n_params = network.n_params
    if incremental and hasattr(est, "_optimizer") and est._optimizer.matches(est.solver, n_params, dtype):
        optimizer = est._optimizer.copy()
    else:
        optimizer = OptimizerState(
            est.solver, n_params, dtype, est.learning_rate_init, est.learning_rate, est.power_t, est.max_iter,
        )
    est._optimizer = optimizer

    if validation is not None:
        validation.trainer = est._trainer(
            network, validation.X, validation.Y, validation.sample_weight, dtype, 0,
            min(validation.X.shape[0], CHUNK_ROWS),
        )
        if est.validation_scores_ is None:
            est.validation_scores_ = []
        if getattr(est, "validation_loss_curve_", None) is None:
            est.validation_loss_curve_ = []

    # the rows are only counted by the shared code: a stand-in of n_samples entries, no memory
    all_rows = np.broadcast_to(np.int64(0), (n_samples,))
    if est.solver in STOCHASTIC_SOLVERS:
        if est.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if est.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
            batch_size = int(np.clip(est.batch_size, 1, n_samples))
        step = _block_epochs(est, blocks, client, network, flat, optimizer, batch_size, seed, parts, dtype)
    else:  # rprop, quickprop: the in-memory step on the blocks' full-batch gradient
        step = est._make_step(objective, network, flat, all_rows, n_samples, optimizer, None, None)
    est._run_iterations(
        objective, step, flat, optimizer, all_rows, est.early_stopping, validation, incremental, deadline,
        callback_ctx,
    )
