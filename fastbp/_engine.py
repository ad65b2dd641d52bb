"""The engine between the estimators and the kernels.

A network is its layer widths, its activation codes and ONE flat parameter
vector: all weight matrices (row-major, scikit-learn's (fan_in, fan_out)
shapes), then all bias vectors. ``coefs_`` and ``intercepts_`` are views into
it. The engine allocates the workspaces once per fit and calls the compiled
kernels; it knows nothing about scikit-learn.
"""

import ctypes
from contextlib import contextmanager

import numba
import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from . import _kernels
from ._codes import (
    F_ALPHA,
    F_BETA_1,
    F_BETA_2,
    F_CLIP,
    F_EPSILON,
    F_LEARNING_RATE,
    F_MOMENTUM,
    I_HAS_SAMPLE_WEIGHT,
    I_HIDDEN,
    I_LOSS,
    I_NESTEROV,
    I_OUTPUT,
    I_POISSON_CONSTANT,
    I_SOLVER,
    I_SPARSE,
    N_FCONFIG,
    N_ICONFIG,
)
from ._config import CHUNK_ROWS


class NetworkLayout:
    """Layer widths and the offsets of every weight matrix and bias vector.

    Parameters
    ----------
    layer_units : sequence of int
        Widths of all layers: ``[n_features, *hidden_layer_sizes, n_outputs]``.
    """

    def __init__(self, layer_units):
        self.units = np.asarray(layer_units, dtype=np.int64)
        if self.units.ndim != 1 or self.units.shape[0] < 2 or np.any(self.units < 1):
            raise ValueError(f"invalid layer widths {list(layer_units)}")
        fan_in, fan_out = self.units[:-1], self.units[1:]
        w_sizes = fan_in * fan_out
        self.w_off = np.concatenate(([0], np.cumsum(w_sizes)[:-1])).astype(np.int64)
        self.n_weights = int(w_sizes.sum())
        self.b_off = (self.n_weights + np.concatenate(([0], np.cumsum(fan_out)[:-1]))).astype(np.int64)
        self.n_params = self.n_weights + int(fan_out.sum())
        # Activation / delta workspaces: layer l (1..L) starts at
        # _act_units[l] * rows; entry 0 is unused (the input has its own buffer).
        self._act_units = np.concatenate(([0, 0], np.cumsum(self.units[1:-1]))).astype(np.int64)
        self._act_total = int(self.units[1:].sum())

    @property
    def n_layers(self):
        """Number of weight layers (len(coefs_))."""
        return self.units.shape[0] - 1

    def views(self, flat):
        """``(coefs, intercepts)``: lists of views into the flat vector ``flat``."""
        coefs, intercepts = [], []
        for layer in range(self.n_layers):
            a, b = int(self.units[layer]), int(self.units[layer + 1])
            w0, b0 = int(self.w_off[layer]), int(self.b_off[layer])
            coefs.append(flat[w0 : w0 + a * b].reshape(a, b))
            intercepts.append(flat[b0 : b0 + b])
        return coefs, intercepts

    def pack(self, coefs, intercepts, dtype):
        """A new flat vector holding copies of ``coefs`` and ``intercepts``."""
        flat = np.empty(self.n_params, dtype=dtype)
        dst_coefs, dst_intercepts = self.views(flat)
        if len(coefs) != self.n_layers or len(intercepts) != self.n_layers:
            raise ValueError(
                f"expected {self.n_layers} weight matrices and bias vectors, got "
                f"{len(coefs)} and {len(intercepts)}"
            )
        for dst, src in zip(dst_coefs + dst_intercepts, list(coefs) + list(intercepts)):
            src = np.asarray(src)
            if src.shape != dst.shape:
                raise ValueError(f"parameter of shape {src.shape} where {dst.shape} was expected")
            dst[...] = src
        return flat

    def workspace(self, rows, dtype, dense_input):
        """Buffers for batches of up to ``rows`` rows, allocated once per fit."""
        return Workspace(self, rows, dtype, dense_input)


class Workspace:
    """Reused per-batch buffers: gathered inputs and targets, activations, deltas."""

    def __init__(self, layout, rows, dtype, dense_input):
        rows = max(int(rows), 1)
        self.rows = rows
        self.a_off = (layout._act_units * rows).astype(np.int64)
        size = layout._act_total * rows
        self.acts = np.empty(size, dtype=dtype)
        self.deltas = np.empty(size, dtype=dtype)
        n_features, n_out = int(layout.units[0]), int(layout.units[-1])
        self.xb = np.empty(rows * n_features if dense_input else 0, dtype=dtype)
        self.yb = np.empty(rows * n_out, dtype=dtype)
        self.swb = np.empty(rows, dtype=dtype)
        self.row_loss = np.empty(rows, dtype=np.float64)
        self.grads = np.empty(int(layout.n_params), dtype=dtype)

    def layer(self, layout, buf, layer, m):
        """Layer ``layer``'s (1..L) block of ``buf`` as an (m, width) view."""
        k = int(layout.units[layer])
        off = int(self.a_off[layer])
        return buf[off : off + m * k].reshape(m, k)


def _kernel_view(arr):
    """A writeable 1-D C-contiguous view of ``arr``'s memory, or ``arr`` itself.

    Numba compiles a separate specialization for read-only arrays (memmaps,
    arrays from other libraries). The kernels never write to their inputs, so
    read-only inputs are handed over as a writeable view of the same memory: one
    compiled kernel for all. The caller keeps ``arr`` alive while it is used.
    """
    if arr.flags.writeable or arr.size == 0:
        return arr
    ctype = np.ctypeslib.as_ctypes_type(arr.dtype)
    pointer = ctypes.cast(arr.ctypes.data, ctypes.POINTER(ctype))
    return np.ctypeslib.as_array(pointer, shape=arr.shape)


class InputData:
    """X as the kernels take it: dense rows read in place, or CSR arrays.

    Dense X is never copied when it is already of the kernels' dtype: the kernels
    read it through a 1-D view of its memory and its strides in elements, so C-,
    Fortran-ordered and strided arrays share one compiled kernel. Sparse X is
    turned into CSR (CSC is converted, never densified).
    """

    def __init__(self, X, dtype):
        self._keep_alive = X
        if sp.issparse(X):
            X = X.tocsr()
            if X.dtype != dtype:
                X = X.astype(dtype)
            self._keep_alive = X
            index_dtype = np.int32 if X.nnz < np.iinfo(np.int32).max else np.int64
            self.dense = np.empty(0, dtype=dtype)
            self.strides = np.zeros(2, dtype=np.int64)
            self.data = _kernel_view(np.ascontiguousarray(X.data))
            self.indices = _kernel_view(np.ascontiguousarray(X.indices, dtype=index_dtype))
            self.indptr = _kernel_view(np.ascontiguousarray(X.indptr, dtype=index_dtype))
            self.is_sparse = True
        else:
            X = np.asarray(X)
            itemsize = np.dtype(dtype).itemsize
            if (
                X.dtype != dtype
                or X.ndim != 2
                or any(s < 0 or s % itemsize for s in X.strides)
            ):
                X = np.ascontiguousarray(X, dtype=dtype)
            self._keep_alive = X
            n, d = X.shape
            row_stride, col_stride = (s // itemsize for s in X.strides)
            span = (n - 1) * row_stride + (d - 1) * col_stride + 1 if X.size else 0
            base = np.lib.stride_tricks.as_strided(X, shape=(span,), strides=(itemsize,))
            self.dense = _kernel_view(base)
            self.strides = np.array([row_stride, col_stride], dtype=np.int64)
            self.data = np.empty(0, dtype=dtype)
            self.indices = np.empty(0, dtype=np.int32)
            self.indptr = np.empty(0, dtype=np.int32)
            self.is_sparse = False
        self.n_samples = X.shape[0]

    def arrays(self):
        return self.dense, self.strides, self.data, self.indices, self.indptr


def make_config(
    hidden_code,
    output_code,
    loss_code,
    *,
    poisson_constant=False,
    has_sample_weight=False,
    sparse=False,
    solver_code=0,
    nesterov=False,
    alpha=0.0,
    learning_rate=0.0,
    momentum=0.0,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-8,
    clip=1e-16,
):
    """The integer and float configuration vectors the kernels read."""
    icfg = np.zeros(N_ICONFIG, dtype=np.int64)
    icfg[I_HIDDEN] = hidden_code
    icfg[I_OUTPUT] = output_code
    icfg[I_LOSS] = loss_code
    icfg[I_POISSON_CONSTANT] = int(poisson_constant)
    icfg[I_HAS_SAMPLE_WEIGHT] = int(has_sample_weight)
    icfg[I_SPARSE] = int(sparse)
    icfg[I_SOLVER] = solver_code
    icfg[I_NESTEROV] = int(nesterov)
    fcfg = np.zeros(N_FCONFIG, dtype=np.float64)
    fcfg[F_ALPHA] = alpha
    fcfg[F_LEARNING_RATE] = learning_rate
    fcfg[F_MOMENTUM] = momentum
    fcfg[F_BETA_1] = beta_1
    fcfg[F_BETA_2] = beta_2
    fcfg[F_EPSILON] = epsilon
    fcfg[F_CLIP] = clip
    return icfg, fcfg


# ---------------------------------------------------------------------------
# threads
# ---------------------------------------------------------------------------
def effective_n_jobs(n_jobs):
    """Threads for ``n_jobs``: None or -1 → all cores, -2 → all but one, ..."""
    n_cores = numba.config.NUMBA_NUM_THREADS
    if n_jobs is None:
        return n_cores
    if n_jobs < 0:
        return max(n_cores + 1 + n_jobs, 1)
    return min(int(n_jobs), n_cores)


@contextmanager
def compute_context(n_jobs):
    """Run kernels with ``n_jobs`` threads for Numba and BLAS; restore both after.

    ``n_jobs=None`` leaves both thread pools as they are (all cores by default).
    """
    if n_jobs is None:
        yield
        return
    n_threads = effective_n_jobs(n_jobs)
    previous = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        with threadpool_limits(limits=n_threads, user_api="blas"):
            yield
    finally:
        numba.set_num_threads(previous)


# ---------------------------------------------------------------------------
# calls into the kernels
# ---------------------------------------------------------------------------
def predict_output(layout, flat, icfg, X, n_jobs=None):
    """Output-layer activations for every row of X (dense or sparse)."""
    data = X if isinstance(X, InputData) else InputData(X, flat.dtype)
    n = data.n_samples
    chunk = min(max(n, 1), CHUNK_ROWS)
    ws = Workspace(layout, chunk, flat.dtype, not data.is_sparse)
    icfg = icfg.copy()
    icfg[I_SPARSE] = int(data.is_sparse)
    out = np.empty((n, int(layout.units[-1])), dtype=flat.dtype)
    rows = np.arange(n, dtype=np.int64)
    with compute_context(n_jobs):
        _kernels.predict(
            *data.arrays(), rows, chunk, flat, icfg, layout.units, layout.w_off, layout.b_off,
            ws.a_off, ws.xb, ws.acts, out,
        )
    return out


def forward_all(layout, flat, icfg, X):
    """Every layer's activations for all rows (the functional API)."""
    data = InputData(X, flat.dtype)
    n = data.n_samples
    ws = Workspace(layout, n, flat.dtype, not data.is_sparse)
    icfg = icfg.copy()
    icfg[I_SPARSE] = int(data.is_sparse)
    rows = np.arange(n, dtype=np.int64)
    with compute_context(None):
        _kernels.predict(
            *data.arrays(), rows, max(n, 1), flat, icfg, layout.units, layout.w_off, layout.b_off,
            ws.a_off, ws.xb, ws.acts, np.empty((n, int(layout.units[-1])), dtype=flat.dtype),
        )
    return [ws.layer(layout, ws.acts, layer, n).copy() for layer in range(1, layout.n_layers + 1)]


class Trainer:
    """Owns the data, the workspaces and the configuration of one fit.

    Parameters
    ----------
    layout : NetworkLayout
    X : InputData
    Y : ndarray of shape (n_samples, n_outputs), the kernels' dtype, C-ordered
    sample_weight : ndarray of shape (n_samples,) or None
    icfg, fcfg : configuration vectors from :func:`make_config`
    batch_rows : int
        Largest batch (or chunk) the workspaces must hold.
    """

    def __init__(self, layout, X, Y, sample_weight, icfg, fcfg, batch_rows):
        self.layout = layout
        self.X = X
        self.Y = np.ascontiguousarray(Y)
        dtype = Y.dtype
        if sample_weight is None:
            self.sw = np.empty(0, dtype=dtype)
        else:
            self.sw = np.ascontiguousarray(sample_weight, dtype=dtype)
        self.icfg = icfg.copy()
        self.icfg[I_SPARSE] = int(X.is_sparse)
        self.icfg[I_HAS_SAMPLE_WEIGHT] = int(sample_weight is not None)
        self.fcfg = fcfg.copy()
        self.ws = Workspace(layout, batch_rows, dtype, not X.is_sparse)

    def _common(self):
        L, ws = self.layout, self.ws
        return (L.units, L.w_off, L.b_off, ws.a_off, ws.xb, ws.yb, ws.swb, ws.acts, ws.deltas, ws.row_loss)

    def train_epoch(self, flat, rows, batch_size, first_batch, stop_batch, state_1, state_2, step_count, learning_rate):
        """Run batches ``first_batch..stop_batch-1``; return sum(batch_loss * rows)."""
        self.fcfg[F_LEARNING_RATE] = learning_rate
        return _kernels.train_epoch(
            *self.X.arrays(), self.Y, self.sw, rows, int(batch_size), int(first_batch), int(stop_batch),
            flat, self.ws.grads, state_1, state_2, step_count, self.icfg, self.fcfg,
            int(self.layout.n_weights), *self._common(),
        )

    def loss_and_gradient(self, flat, rows, chunk=None):
        """Mean loss and its gradient (in ``self.ws.grads``) over ``rows``."""
        chunk = self.ws.rows if chunk is None else chunk
        L, ws = self.layout, self.ws
        return _kernels.loss_and_gradient(
            *self.X.arrays(), self.Y, self.sw, rows, int(chunk), flat, ws.grads, self.icfg, self.fcfg,
            int(L.n_weights), *self._common(),
        )

