"""Dask arrays in ``fit``: training on data that lives in a dask cluster.

``MLPClassifier.fit`` / ``MLPRegressor.fit`` (and ``partial_fit``) hand a dask
collection X to ``estimators/dask_fit.py`` (the hook at the top of
``BaseMultilayerPerceptron._fit_unprotected``), which drives the fit with the
pieces here: the checks of the collections, the prepared blocks, the blocks'
full-batch objective and their stream. Nothing here knows an estimator. dask is
imported only then: :func:`is_dask_collection` looks at the object's type
without importing it.

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

import numpy as np
import scipy.sparse as sp

from . import cpu
from ..kernels import epochs, layers
from ..kernels.codes import F_ALPHA, F_L1
from ..kernels.config import CHUNK_ROWS

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
def as_dask_array(obj, name, like=None):
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


def check_rows(arr, name, X):
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


def prepare_block(X, y, sample_weight, spec):
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
        A prepared block from :func:`prepare_block`.
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
        A prepared block from :func:`prepare_block`.
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


def class_weight_sum(y, sample_weight, classes, class_weights, dtype):
    """Sum of the combined class and sample weights of one block of labels."""
    weights = class_weights[_label_positions(np.asarray(y), classes)].astype(dtype)
    if sample_weight is not None:
        weights = weights * np.asarray(sample_weight).astype(dtype)
    return float(weights.sum(dtype=np.float64))


# ---------------------------------------------------------------------------
# the client's side
# ---------------------------------------------------------------------------
def distributed_client():
    """The distributed Client dask computes with now, or None (a local scheduler)."""
    import dask.base

    scheduler = dask.base.get_scheduler()
    client = getattr(scheduler, "__self__", None)
    if client is not None and type(client).__module__.split(".")[0] == "distributed":
        return client
    return None


class BlockObjective:
    """The training loss over all blocks, with the interface the in-memory solvers use.

    Implements ``engine.protocol.FullBatchObjective``, which ``_run_lbfgs``,
    ``_make_step`` (rprop, quickprop) and ``_run_iterations`` call:
    ``loss_and_gradient`` (the gradient lands in ``gradient``), ``dataset_loss``
    and ``gives_finite_loss``. The ``rows`` they pass are ignored: all rows count.

    Parameters
    ----------
    blocks : list of dask.delayed.Delayed
        The prepared blocks (persisted for the full-batch solvers).
    network : engine.network.Network
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
        self.gradient = None  # (engine.protocol.FullBatchObjective)

    def _map(self, func, flat):
        """``func(block, flat, spec)`` on every block where it lives; results in block order."""
        import dask

        flat = flat.copy()  # the solvers change theirs in place
        if self.client is not None:
            flat = self.client.scatter(flat, hash=False)  # sent once, read by every block's task
        tasks = [dask.delayed(func, pure=False)(block, flat, self.spec) for block in self.blocks]
        return dask.compute(*tasks)

    def loss_and_gradient(self, flat, rows=None, chunk=None, deadline=None):
        """Mean loss (with penalties) over all blocks; its gradient into ``gradient``.

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
        if self.gradient is None or self.gradient.dtype != flat.dtype:
            self.gradient = np.empty(self.network.n_params, dtype=flat.dtype)
        grads = self.gradient
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


def stream_blocks(blocks, order, client):
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


