"""The engine between the estimators and the kernels.

A network is its layer widths, its activation codes and ONE flat parameter
vector: all weight matrices (row-major, scikit-learn's (fan_in, fan_out)
shapes), then all bias vectors. ``coefs_`` and ``intercepts_`` are views into
it. The engine allocates the workspaces once per fit and calls the compiled
kernels; it knows nothing about scikit-learn.
"""

import ctypes
import os
import sys
import threading
import time
from contextlib import ExitStack, contextmanager

import numba
import numpy as np
import scipy.sparse as sp
from threadpoolctl import ThreadpoolController

from ..kernels import epochs, layers
from ..kernels.losses import LOSS_PAIRS
from ..kernels.codes import (
    C_ADAM_STEP,
    C_BATCH,
    F_ALPHA,
    F_CLIP,
    F_HUBER_DELTA,
    F_L1,
    F_LEARNING_RATE,
    I_DROPOUT,
    I_GEMM_SPLIT,
    I_HAS_SAMPLE_WEIGHT,
    I_LOSS,
    I_NO_THREADS,
    I_POISSON_CONSTANT,
    I_SEED,
    I_SOLVER,
    I_SPARSE,
    N_COUNTERS,
)
from ..kernels.optimizers import (
    F_MOMENTUM,
    HYPER_PARAMETER_SLOTS,
    HYPER_PARAMETERS,
    I_NESTEROV,
    N_FCONFIG,
    N_ICONFIG,
    STOCHASTIC_SOLVERS,
)
from ..kernels.config import CHUNK_ROWS, EPOCH_CALL_SECONDS, SMALL_MATRIX_BLAS_CORES, SPLIT_GEMM_WORK
from .network import Network, _check_codes  # noqa: F401  (Network: also the engine's name for it)


_CACHE_LINE = 64


def _isolated_empty(size, dtype):
    """An empty vector that shares no cache line with any other allocation
    (written by one thread while others write theirs: no false sharing).

    It starts on a cache line boundary at least a line into a larger buffer and
    is followed by at least a line of it.
    """
    dtype = np.dtype(dtype)
    per_line = -(-_CACHE_LINE // dtype.itemsize)
    buf = np.empty(size + 3 * per_line, dtype=dtype)
    start = per_line + (-(buf.ctypes.data // dtype.itemsize)) % per_line
    return buf[start : start + size]


def _isolated_copy(values):
    """A copy of a vector in an :func:`_isolated_empty` buffer."""
    copy = _isolated_empty(values.shape[0], values.dtype)
    copy[:] = values
    return copy


class Workspace:
    """Reused per-batch buffers: gathered inputs and targets, activations, deltas.

    ``parts`` sets of buffers (one per thread of the data-parallel epoch), each
    for up to ``rows`` rows, stacked as the rows of 2-D arrays (``acts_parts``
    ...); the 1-D attributes (``acts`` ...) are part 0, which the single-threaded
    kernels use. ``grads`` (part 0's gradient) receives the summed gradient.
    """

    def __init__(self, network, rows, dtype, dense_input, parts=1, backward=True, isolated=False):
        rows = max(int(rows), 1)
        back = rows if backward else 0  # forward-only use (predict) needs no deltas
        self.rows = rows
        self.parts = parts
        self.spec = Workspace._spec(network, rows, dtype, dense_input, parts, backward, isolated)
        # seconds one batch took in the last kernel call of an epoch that used
        # these buffers: a partial_fit that gets them back sizes its first call
        # with it instead of timing a one-batch call first
        self.seconds_per_batch = None
        self.a_off = (network._a_units * rows).astype(np.int64)
        self.z_off = (network._z_units * rows).astype(np.int64)
        n_features, n_out = int(network.units[0]), int(network.units[-1])
        sizes = {
            "acts": int(network.units[1:].sum()) * rows,
            "pre": int(network.cols.sum()) * rows,
            "deltas": int(network.cols.sum()) * back,
            "dact": int(network.units.max()) * back,
            "xb": rows * n_features if dense_input else 0,
            "yb": rows * n_out,
            "swb": rows,
            "grads": int(network.n_params) if backward else 0,
        }
        sizes["row_loss"] = rows
        for name, size in sizes.items():
            item_dtype = np.float64 if name == "row_loss" else dtype
            if isolated:
                stacked = _isolated_empty(parts * size, item_dtype).reshape(parts, size)
            else:
                stacked = np.empty((parts, size), dtype=item_dtype)
            setattr(self, name + "_parts", stacked)
            setattr(self, name, stacked[0])

    @staticmethod
    def _spec(network, rows, dtype, dense_input, parts=1, backward=True, isolated=False):
        return (
            tuple(network.units.tolist()), tuple(network.cols.tolist()), max(int(rows), 1), np.dtype(dtype),
            bool(dense_input), int(parts), bool(backward), bool(isolated),
        )

    @classmethod
    def reuse_or_new(cls, previous, network, rows, dtype, dense_input, parts=1):
        """``previous`` (a Workspace or None) if it has these shapes, else a new one.

        The buffers' contents never carry over (every kernel writes before it
        reads), so a workspace serves any number of fits of the same shapes. Fresh
        memory costs its first touch: the kernel zeroes each page, 5% of an epoch
        of a 2M-parameter network when each partial_fit allocated anew.
        """
        if previous is not None and previous.spec == cls._spec(network, rows, dtype, dense_input, parts):
            return previous
        return cls(network, rows, dtype, dense_input, parts)

    def buffers(self):
        """Part 0's buffers, in the kernels' argument order."""
        return (self.xb, self.yb, self.swb, self.pre, self.acts, self.deltas, self.dact, self.row_loss)

    def part_buffers(self):
        """Every part's buffers (2-D), in the kernels' argument order."""
        return (
            self.xb_parts, self.yb_parts, self.swb_parts, self.pre_parts, self.acts_parts, self.deltas_parts,
            self.dact_parts, self.row_loss_parts,
        )

    def layer_output(self, network, layer, m):
        """Layer ``layer``'s (1..L) outputs of the first m rows, (m, units)."""
        k, off = int(network.units[layer]), int(self.a_off[layer])
        return self.acts[off : off + m * k].reshape(m, k)

    def layer_delta(self, network, layer, m):
        """Layer ``layer``'s (1..L) deltas dL/dz of the first m rows, (m, cols)."""
        k, off = int(network.cols[layer - 1]), int(self.z_off[layer])
        return self.deltas[off : off + m * k].reshape(m, k)


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


# loss code -> name (the output activation / loss pairs name each code)
_LOSS_NAMES = {f"{loss} ({activation} output)": code for (activation, loss), code in LOSS_PAIRS.items()}


def make_config(
    loss_code=0,
    *,
    poisson_constant=False,
    has_sample_weight=False,
    solver_code=0,
    dropout=False,
    seed=0,
    alpha=0.0,
    l1=0.0,
    learning_rate=0.0,
    clip=1e-16,
    huber_delta=1.0,
    **hyper_parameters,
):
    """The integer and float configuration vectors the kernels read.

    ``hyper_parameters``: the optimizers' (``HYPER_PARAMETERS`` of
    ``kernels/optimizers.py``, each at its default when not given); Nesterov's
    momentum is off when ``momentum`` is 0.
    """
    _check_codes("loss", [loss_code], _LOSS_NAMES)
    _check_codes("solver", [solver_code], STOCHASTIC_SOLVERS)
    unknown = sorted(set(hyper_parameters) - set(HYPER_PARAMETER_SLOTS))
    if unknown:
        raise TypeError(f"make_config() got unknown hyper-parameters {unknown}; "
                        f"the optimizers' are {sorted(HYPER_PARAMETER_SLOTS)}")
    icfg = np.zeros(N_ICONFIG, dtype=np.int64)
    icfg[I_LOSS] = loss_code
    icfg[I_POISSON_CONSTANT] = int(poisson_constant)
    icfg[I_HAS_SAMPLE_WEIGHT] = int(has_sample_weight)
    icfg[I_SOLVER] = solver_code
    icfg[I_DROPOUT] = int(dropout)
    icfg[I_SEED] = seed
    icfg[I_GEMM_SPLIT] = gemm_split_work()
    icfg[I_NO_THREADS] = int(not numba_threads_available())
    fcfg = np.zeros(N_FCONFIG, dtype=np.float64)
    fcfg[F_ALPHA] = alpha
    fcfg[F_L1] = l1
    fcfg[F_LEARNING_RATE] = learning_rate
    fcfg[F_CLIP] = clip
    fcfg[F_HUBER_DELTA] = huber_delta
    for hyper in HYPER_PARAMETERS:
        value = hyper_parameters.get(hyper.name, hyper.default)
        vector, slot = HYPER_PARAMETER_SLOTS[hyper.name]
        if vector == "int":
            icfg[slot] = int(bool(value))
        else:
            fcfg[slot] = float(value)
    if not icfg[I_NESTEROV] or not fcfg[F_MOMENTUM] > 0:
        icfg[I_NESTEROV] = 0
    return icfg, fcfg


# ---------------------------------------------------------------------------
# threads
# ---------------------------------------------------------------------------
# Numba's threading layer on GNU OpenMP (the 'omp' layer of the PyPI wheels)
# cannot start threads in a child forked after it started its own: the child's
# first parallel kernel ends the process ("Terminating: fork() called from a
# process already using GNU OpenMP"), and a multiprocessing pool waits for it
# forever. Such a child runs every parallel kernel's work on one thread (BLAS
# keeps its own threads); tbb and workqueue, and GNU OpenMP started in the child
# itself, are fork-safe.
_threads_lost_in_fork = False


def _gnu_openmp_started():
    """Whether this process's Numba threads run on GNU OpenMP and have started
    (read from the modules already loaded: nothing is imported in a fork hook)."""
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    if parallel is None or not getattr(parallel, "_is_initialized", False):
        return False
    try:
        layer = numba.threading_layer()
    except ValueError:  # not started
        return False
    if layer != "omp":
        return False
    omppool = sys.modules.get("numba.np.ufunc.omppool")
    return omppool is None or getattr(omppool, "openmp_vendor", "GNU") == "GNU"


def _after_fork_in_child():
    global _threads_lost_in_fork
    _threads_lost_in_fork = _threads_lost_in_fork or _gnu_openmp_started()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def numba_threads_available():
    """Whether Numba's parallel kernels may start threads in this process (not
    in a child forked after GNU OpenMP started: see ``_threads_lost_in_fork``)."""
    return not _threads_lost_in_fork


def numba_n_jobs(n_jobs):
    """Threads for fastbp's own parallel kernels: :func:`effective_n_jobs`, or 1
    where Numba's threads cannot start."""
    return effective_n_jobs(n_jobs) if numba_threads_available() else 1


def effective_n_jobs(n_jobs):
    """Threads for ``n_jobs``: None or -1 → all cores, -2 → all but one, ..."""
    n_cores = numba.config.NUMBA_NUM_THREADS
    if n_jobs is None:
        return n_cores
    if n_jobs < 0:
        return max(n_cores + 1 + n_jobs, 1)
    return min(int(n_jobs), n_cores)


@contextmanager
def compute_context(n_jobs, data_parallel=False, numba_parallel=True):
    """Run kernels with ``n_jobs`` threads; restore the thread pools after.

    BLAS gets the threads and Numba's parallel kernels (the sliced optimizer
    step of large networks) one: OpenBLAS's threads spin for a while after each
    product, and Numba threads next to them measured 9x slower epochs. For the
    ``data_parallel`` epoch (each thread runs its own share of every batch) it
    is the other way round. ``n_jobs=None`` means all cores; without
    ``data_parallel`` it leaves BLAS's pool as it is. ``numba_parallel=False``
    (calls that run no parallel kernel: predict, a block's loss and gradient)
    leaves Numba's threads alone (not even started).
    """
    if data_parallel:
        numba_threads, blas_threads = numba_n_jobs(n_jobs), 1
    else:
        numba_threads, blas_threads = 1, (None if n_jobs is None else effective_n_jobs(n_jobs))
    with ExitStack() as stack:
        if data_parallel or numba_parallel:
            stack.callback(numba.set_num_threads, numba.get_num_threads())
            numba.set_num_threads(numba_threads)
        if blas_threads is not None:
            stack.enter_context(_blas_controller().limit(limits=blas_threads, user_api="blas"))
        yield


_controller = None
_split_work = None


def gemm_split_work():
    """The kernels' ``split_work`` for the BLAS in use (see config.SPLIT_GEMM_WORK):
    SPLIT_GEMM_WORK when every OpenBLAS loaded runs a core with the small-matrix
    kernel, else 0. Read once per process (OPENBLAS_CORETYPE is read at load)."""
    global _split_work
    if _split_work is None:
        cores = [
            str(info.get("architecture", "")).lower()
            for info in _blas_controller().info()
            if info.get("internal_api") == "openblas"
        ]
        _split_work = SPLIT_GEMM_WORK if cores and all(c in SMALL_MATRIX_BLAS_CORES for c in cores) else 0
    return _split_work


def _blas_controller():
    """One threadpoolctl controller for the process: building one scans the loaded
    libraries (milliseconds), too slow for every fit and predict."""
    global _controller
    if _controller is None:
        import scipy.linalg.cython_blas  # noqa: F401  (the BLAS the kernels call)

        _controller = ThreadpoolController()
    return _controller


# Numba's 'workqueue' threading layer must not be entered from two Python
# threads at once: parallel kernels are launched under this lock unless a
# thread-safe layer (tbb, omp) is in use.
_launch_lock = threading.Lock()


@contextmanager
def _parallel_launch(parallel):
    if not parallel:
        yield
        return
    try:
        unsafe = numba.threading_layer() == "workqueue"
    except ValueError:  # no parallel kernel has run yet: the layer is not chosen
        unsafe = True
    if unsafe:
        with _launch_lock:
            yield
    else:
        yield


# ---------------------------------------------------------------------------
# calls into the kernels
# ---------------------------------------------------------------------------
def _forward_only_config(data):
    icfg, _ = make_config()
    icfg[I_SPARSE] = int(data.is_sparse)
    return icfg


def predict_output(network, flat, X, n_jobs=None):
    """Output-layer activations for every row of X (dense or sparse)."""
    data = InputData(X, flat.dtype)
    n = data.n_samples
    chunk = min(max(n, 1), CHUNK_ROWS)
    ws = Workspace(network, chunk, flat.dtype, not data.is_sparse, backward=False)
    out = np.empty((n, int(network.units[-1])), dtype=flat.dtype)
    rows = np.arange(n, dtype=np.int64)
    with compute_context(n_jobs, numba_parallel=False):
        epochs.predict(
            *data.arrays(), rows, chunk, flat, _forward_only_config(data), *network.tables(),
            *network.offsets(ws), ws.xb, ws.pre, ws.acts, out,
        )
    return out


def forward_all(network, flat, X):
    """Every layer's outputs for all rows (the functional API), no dropout."""
    data = InputData(X, flat.dtype)
    n = data.n_samples
    ws = Workspace(network, n, flat.dtype, not data.is_sparse)
    out = np.empty((n, int(network.units[-1])), dtype=flat.dtype)
    rows = np.arange(n, dtype=np.int64)
    epochs.predict(
        *data.arrays(), rows, max(n, 1), flat, _forward_only_config(data), *network.tables(),
        *network.offsets(ws), ws.xb, ws.pre, ws.acts, out,
    )
    return [ws.layer_output(network, layer, n).copy() for layer in range(1, network.n_layers + 1)]


class TimeUp(Exception):
    """A full-batch pass ran past its deadline and was abandoned."""


class Trainer:
    """Owns the data, the workspaces and the configuration of one fit.

    Parameters
    ----------
    network : Network
    X : InputData
    Y : ndarray of shape (n_samples, n_outputs), the kernels' dtype
    sample_weight : ndarray of shape (n_samples,) or None
    icfg, fcfg : configuration vectors from :func:`make_config`
    batch_rows : int
        Largest batch (or chunk) the workspaces must hold.
    parts : int
        Threads a batch is split over (data parallel).
    hogwild_threads, hogwild_merge_every : int
        Hogwild!'s threads for online steps, and its merge interval.
    workspace : Workspace or None
        An earlier trainer's workspace, used again when it has the shapes this
        one needs (partial_fit's calls).
    """

    def __init__(
        self, network, X, Y, sample_weight, icfg, fcfg, batch_rows, parts=1, hogwild_threads=1, hogwild_merge_every=1,
        workspace=None,
    ):
        self.network = network
        self.X = X
        dtype = Y.dtype
        self.Y = np.ascontiguousarray(Y)
        if sample_weight is None:
            self.sw = np.empty(0, dtype=dtype)
        else:
            self.sw = np.ascontiguousarray(sample_weight, dtype=dtype)
        self.icfg = icfg.copy()
        self.icfg[I_SPARSE] = int(X.is_sparse)
        self.icfg[I_HAS_SAMPLE_WEIGHT] = int(sample_weight is not None)
        self.icfg[I_DROPOUT] = int(network.has_dropout)
        self.fcfg = fcfg.copy()
        self.parts = max(1, min(int(parts), int(batch_rows)))
        rows_per_part = -(-int(batch_rows) // self.parts)
        # Hogwild!: one-row steps on several threads, one set of buffers each
        # (with room for a dense row: a sparse one is written densely)
        self.hogwild_threads = max(1, int(hogwild_threads))
        self.hogwild_merge_every = int(hogwild_merge_every)
        self.ws = Workspace.reuse_or_new(workspace, network, rows_per_part, dtype, not X.is_sparse, self.parts)
        self.hogwild_ws = [
            Workspace(network, 1, dtype, True, isolated=True) for _ in range(self.hogwild_threads)
        ] if self.hogwild_threads > 1 else []
        self._block_rows = None  # rows per kernel call of a full-batch pass

    def _buffers(self):
        return self.ws.buffers()

    # --- engine.protocol.Trainer -------------------------------------------
    @property
    def gradient(self):
        """The gradient of the last :meth:`loss_and_gradient` (the workspace's buffer)."""
        return self.ws.grads

    @property
    def workspace(self):
        """The workspace, which a later trainer of the same shapes may reuse."""
        return self.ws

    def to_device(self, flat, state_1=None, state_2=None):
        """Nothing to do: the CPU kernels work on the host arrays."""

    def to_host(self, flat=None, state_1=None, state_2=None):
        """Nothing to do: the CPU kernels work on the host arrays."""

    def train_epoch(
        self, flat, rows, batch_size, first_batch, stop_batch, state_1, state_2, counters, learning_rate,
        running_total=0.0,
    ):
        """Run batches ``first_batch..stop_batch-1``; return running_total + sum(batch_loss * rows).

        With several parts each batch is split over the threads (data parallel).
        """
        self.fcfg[F_LEARNING_RATE] = learning_rate
        net, ws = self.network, self.ws
        if self.hogwild_threads > 1 and int(batch_size) == 1:
            return self._train_rows_hogwild(
                flat, rows, first_batch, stop_batch, state_1, state_2, counters, running_total
            )
        if self.parts > 1:
            kernel = epochs.train_epoch_parts
        elif int(batch_size) == 1 and not self.X.is_sparse:
            # (any size: on a 300-256-128-10 network one thread's row steps took
            # 63 ms an epoch of 2000 rows against 175 ms for the batch path's
            # one-row products and two-thread step)
            kernel = epochs.train_epoch_rows
        else:
            kernel = epochs.train_epoch
        # (train_epoch_rows's Hogwild! arguments: not used)
        extra = (flat[:0], flat[:0], 0) if kernel is epochs.train_epoch_rows else ()
        # (the optimizer step runs in parallel when it has several slices; the
        # kernels' own rule, run as Python)
        with _parallel_launch(self.parts > 1 or epochs.param_slices.py_func(net.n_params) > 1):
            return kernel(
                *self.X.arrays(), self.Y, self.sw, rows, int(batch_size), int(first_batch), int(stop_batch),
                flat, ws.grads_parts, state_1, state_2, counters, self.icfg, self.fcfg, *net.tables(),
                int(net.n_weights), *net.offsets(ws), *ws.part_buffers(), float(running_total), *extra,
            )

    def _train_rows_hogwild(self, flat, rows, first_batch, stop_batch, state_1, state_2, counters, running_total):
        """Online steps ``first_batch..stop_batch-1`` on several threads at once, lock-free (Hogwild!).

        Each thread runs :func:`epochs.train_epoch_rows` (which releases the
        GIL) on its own contiguous share of the steps. A thread steps on its own
        copy of the weights and adds the change to the shared ``flat`` every
        ``hogwild_merge_every`` steps, without locks, then continues from the
        sum (1: after every step, as in Niu et al.). Each thread has its own
        workspace, its own copy of the optimizer's buffers (as each process of
        PyTorch's Hogwild example has its own optimizer) and its own counters,
        allocated so that no two threads write to one cache line; at the end the
        buffers are averaged back into ``state_1``/``state_2`` and the counters
        advance by the steps taken. A step's dropout mask is the one of its
        position in the epoch, as in a one-thread epoch.
        """
        net = self.network
        n_steps = int(stop_batch) - int(first_batch)
        threads = max(1, min(self.hogwild_threads, n_steps))
        bounds = [int(first_batch) + (n_steps * k) // threads for k in range(threads + 1)]
        shares = []
        for k in range(threads):
            share_counters = _isolated_copy(counters)
            share_counters[C_BATCH] += bounds[k] - int(first_batch)
            shares.append(
                (share_counters, _isolated_copy(state_1), _isolated_copy(state_2), _isolated_copy(flat),
                 _isolated_copy(flat))
            )
        results = [0.0] * threads
        errors = []

        def run(k):
            share_counters, share_1, share_2, local, snapshot = shares[k]
            ws = self.hogwild_ws[k]
            try:
                results[k] = epochs.train_epoch_rows(
                    *self.X.arrays(), self.Y, self.sw, rows, 1, bounds[k], bounds[k + 1], local,
                    ws.grads_parts, share_1, share_2, share_counters, self.icfg, self.fcfg,
                    *net.tables(), int(net.n_weights), *net.offsets(ws), *ws.part_buffers(), 0.0,
                    flat, snapshot, self.hogwild_merge_every,
                )
            except BaseException as error:  # re-raised by the calling thread
                errors.append(error)

        workers = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(1, threads)]
        for worker in workers:
            worker.start()
        interrupted = None
        try:
            run(0)
        finally:
            # the workers write to flat: wait for them even through Ctrl-C
            for worker in workers:
                while worker.is_alive():
                    try:
                        worker.join()
                    except KeyboardInterrupt as error:
                        interrupted = error
        # the steps taken reach the optimizer's state even when a thread was
        # interrupted (flat has them already)
        state_1[...] = np.mean([share[1] for share in shares], axis=0, dtype=np.float64)
        state_2[...] = np.mean([share[2] for share in shares], axis=0, dtype=np.float64)
        start = counters.copy()
        for k, share in enumerate(shares):
            counters[C_ADAM_STEP] += share[0][C_ADAM_STEP] - start[C_ADAM_STEP]
            counters[C_BATCH] += share[0][C_BATCH] - (start[C_BATCH] + bounds[k] - int(first_batch))
        if interrupted is not None:
            raise interrupted
        if errors:
            raise errors[0]
        return float(running_total) + sum(results)

    def loss_and_gradient(self, flat, rows, chunk=None, deadline=None):
        """Mean loss (with penalties) and its gradient (in ``self.ws.grads``) over ``rows``.

        Long passes run as several kernel calls of about ``EPOCH_CALL_SECONDS``
        each; past ``deadline`` (a ``time.perf_counter`` value) the pass is
        abandoned with :class:`TimeUp`.
        """
        chunk = self.ws.rows if chunk is None else int(chunk)
        net = self.network
        n = rows.shape[0]
        loss_sum = weight_sum = 0.0
        start = 0
        block = self._block_rows or chunk
        while start < n:
            stop = min(n, start + block)
            tic = time.perf_counter()
            loss_sum, weight_sum = epochs.gradient_sums(
                *self.X.arrays(), self.Y, self.sw, rows[start:stop], chunk, flat, self.ws.grads, self.icfg,
                self.fcfg, *net.tables(), *net.offsets(self.ws), *self._buffers(), loss_sum, weight_sum,
                start > 0,
            )
            per_row = max(time.perf_counter() - tic, 1e-9) / (stop - start)
            block = max(1, int(EPOCH_CALL_SECONDS / per_row) // chunk) * chunk
            self._block_rows = block
            start = stop
            if deadline is not None and start < n and time.perf_counter() >= deadline:
                raise TimeUp
        penalty = layers.finalize_gradient(
            flat, self.ws.grads, int(net.n_weights), self.fcfg[F_ALPHA], self.fcfg[F_L1], weight_sum
        )
        return loss_sum / weight_sum + penalty / weight_sum

    def dataset_loss(self, flat, rows):
        """Mean loss over ``rows`` without penalties (the validation loss)."""
        net, ws = self.network, self.ws
        loss_sum, weight_sum = epochs.dataset_loss(
            *self.X.arrays(), self.Y, self.sw, rows, ws.rows, flat, self.icfg, self.fcfg, *net.tables(),
            *net.offsets(ws), ws.xb, ws.yb, ws.swb, ws.pre, ws.acts, ws.deltas, ws.row_loss,
        )
        return loss_sum / weight_sum

    def gives_finite_loss(self, rows):
        """A test of parameter vectors: is the mean loss over ``rows`` finite?"""

        def is_finite(flat):
            with np.errstate(all="ignore"):
                return bool(np.isfinite(flat).all() and np.isfinite(self.dataset_loss(flat, rows)))

        return is_finite

    def jacobian(self, flat, rows, row_scale, out):
        """Jacobian of the outputs (rows i * n_out + k) times ``row_scale[i]``, into ``out``."""
        net, ws = self.network, self.ws
        epochs.jacobian(
            *self.X.arrays(), rows, ws.rows, flat, self.icfg, *net.tables(), *net.offsets(ws),
            ws.xb, ws.pre, ws.acts, ws.deltas, ws.dact, row_scale, out,
        )
        return out


def new_counters():
    """The kernels' counters: Adam's step and the dropout batch counter."""
    return np.zeros(N_COUNTERS, dtype=np.int64)
