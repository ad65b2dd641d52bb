"""The CUDA twin of ``fastbp.engine.cpu``: :class:`CudaTrainer`, predict_output, forward_all, backprop_all.

Importing this module imports ``numba.cuda`` (through ``kernels``); it is
reached only through ``fastbp._cuda`` after :func:`fastbp._cuda.require_cuda`.

Solvers on the GPU
------------------
* sgd (momentum, Nesterov), adam, adamw, rmsprop, adagrad: the whole step runs
  on the device (:meth:`CudaTrainer.train_epoch`).
* lbfgs, rprop, quickprop: the full-batch loss and gradient are computed on the
  device (:meth:`CudaTrainer.loss_and_gradient`, gradient copied to
  ``trainer.ws.grads``); the step itself stays on the host (SciPy's L-BFGS, the
  CPU's ``rprop_step`` / ``quickprop_step``): one parameter upload and one
  gradient download per iteration, O(n_params) against O(n_samples x n_params)
  of computing.
* lm (Levenberg-Marquardt) is not supported: it needs the dense Jacobian
  (n_samples * n_outputs x n_params) on the host and a Cholesky factorization
  of its normal equations, a host-bound algorithm for small networks where a GPU
  has nothing to gain. :meth:`CudaTrainer.jacobian` and :func:`check_solver`
  raise a clear error.
"""

import time
import warnings
from contextlib import contextmanager

import numpy as np
from numba import cuda

from . import cpu
from ..kernels.activations import ACT_MAXOUT, ACT_SOFTMAX
from ..kernels.codes import (
    C_ADAM_STEP,
    C_BATCH,
    F_ALPHA,
    F_CLIP,
    F_HUBER_DELTA,
    F_L1,
    F_LEARNING_RATE,
    I_DROPOUT,
    I_HAS_SAMPLE_WEIGHT,
    I_LOSS,
    I_POISSON_CONSTANT,
    I_SEED,
    I_SOLVER,
    I_SPARSE,
    LAYER_ACTIVATION,
    LAYER_DROPOUT,
    LAYER_PIECES,
    LAYER_SLOPE,
    N_COUNTERS,
)
from ..kernels.optimizers import (
    F_BETA_1,
    F_BETA_2,
    F_EPSILON,
    F_MOMENTUM,
    F_RHO,
    F_WEIGHT_DECAY,
    I_NESTEROV,
    STOCHASTIC_SOLVERS,
)
from ..kernels.config import CHUNK_ROWS
from .._cuda import activations as cuda_activations, kernels as K, losses as cuda_losses

# Solvers whose step runs on the device, and those that only need the device's
# full-batch loss and gradient (their step runs on the host).
DEVICE_STEP_SOLVERS = tuple(STOCHASTIC_SOLVERS)
HOST_STEP_SOLVERS = ("lbfgs", "rprop", "quickprop")
UNSUPPORTED_SOLVERS = {
    "lm": (
        "solver='lm' (Levenberg-Marquardt) is not supported with device='cuda': it builds the dense "
        "Jacobian (n_samples * n_outputs x n_params) on the host and factorizes its normal equations with "
        "a Cholesky decomposition, an algorithm for small networks where the GPU has nothing to gain. Use "
        "device='cpu' for it, or solver='lbfgs' (or a stochastic solver) on the GPU."
    ),
}


def check_solver(solver):
    """Raise ValueError when ``solver`` cannot run with device='cuda'."""
    if solver in UNSUPPORTED_SOLVERS:
        raise ValueError(UNSUPPORTED_SOLVERS[solver])
    if solver not in DEVICE_STEP_SOLVERS and solver not in HOST_STEP_SOLVERS:
        raise ValueError(f"unknown solver {solver!r}")


@contextmanager
def _quiet():
    """Silence numba-cuda's low-occupancy warning: small networks launch small
    grids on purpose (one block for the per-batch scalars)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Grid size \d+ will likely result in GPU under-utilization")
        yield


def _device_copy(arr, dtype=None):
    """A device copy of a host array (flattened; at least one element: zero-size
    device arrays are not handed to kernels)."""
    arr = np.ascontiguousarray(arr, dtype=dtype).reshape(-1)
    if arr.size == 0:
        arr = np.zeros(1, dtype=arr.dtype)
    return cuda.to_device(arr)


def _dense_host_rows(X, n_features):
    """The dense X of an ``InputData`` as a C-contiguous flat host array."""
    n = X.n_samples
    if n == 0 or n_features == 0:
        return np.zeros(0, dtype=X.dense.dtype)
    itemsize = X.dense.dtype.itemsize
    row_stride, col_stride = (int(s) * itemsize for s in X.strides)
    view = np.lib.stride_tricks.as_strided(
        X.dense, shape=(n, n_features), strides=(row_stride, col_stride), writeable=False
    )
    return np.ascontiguousarray(view).reshape(-1)


class DeviceWorkspaceInfo:
    """The host side of a :class:`CudaTrainer`'s workspace: what the estimator reads.

    ``rows``: the most rows per batch or chunk; ``grads``: host buffer receiving
    the gradient of :meth:`CudaTrainer.loss_and_gradient`; ``parts``: 1.
    """

    def __init__(self, rows, n_params, dtype):
        self.rows = rows
        self.parts = 1
        self.grads = np.zeros(n_params, dtype=dtype)


class CudaTrainer:
    """The CUDA twin of :class:`fastbp.engine.cpu.Trainer`: same constructor, same methods.

    Parameters
    ----------
    network : fastbp.engine.network.Network
    X : fastbp.engine.cpu.InputData (or an array / sparse matrix, wrapped)
    Y : ndarray of shape (n_samples, n_outputs) in the kernels' dtype, or None
        (forward passes only).
    sample_weight : ndarray of shape (n_samples,) or None
    icfg, fcfg : configuration vectors from :func:`fastbp.engine.cpu.make_config`
    batch_rows : int
        Largest batch (or chunk) the device workspaces must hold.
    parts : int
        Accepted for the CPU's signature and ignored (one device).

    Data
    ----
    X, Y and the sample weights are copied to the device once, here. Dense X is
    stored C-contiguous; sparse X goes up as its CSR arrays and each batch is
    densified on the device into the (batch_rows, n_features) input buffer (so
    a very wide sparse X costs batch_rows * n_features of device memory, not
    n_samples * n_features). Batches are gathered on the device through a
    device copy of ``rows``.

    Residency contract
    ------------------
    Parameters and optimizer buffers live on the device between calls:

    * :meth:`to_device` (flat, state_1, state_2) uploads them and registers
      the host arrays. :meth:`train_epoch` calls it itself when it is handed
      other arrays than the registered ones (its first call, typically).
    * :meth:`train_epoch` updates the DEVICE copies only: the host ``flat``,
      ``state_1`` and ``state_2`` are stale until :meth:`to_host` copies the
      device copies back into them (or into other arrays given). ``counters``
      (Adam's step, the dropout batch counter) IS updated on the host at the end
      of every call, as on the CPU.
    * While arrays are registered, :meth:`loss_and_gradient` and
      :meth:`dataset_loss` given the registered ``flat`` use its device copy
      (the current one); given any other array they upload it into a scratch
      device buffer and leave the resident parameters alone.
    * After changing the host arrays (warm start, a restored snapshot), call
      :meth:`to_device` again; :meth:`release` forgets the registration.

    The estimator calls ``to_host`` at the end of fit and whenever it needs
    host weights (early-stopping snapshots, validation scores, callbacks).
    """

    def __init__(self, network, X, Y, sample_weight, icfg, fcfg, batch_rows, parts=1):
        from .._cuda import require_cuda

        require_cuda()
        net = network
        if Y is not None:
            dtype = np.dtype(Y.dtype)
        elif isinstance(X, cpu.InputData):
            dtype = np.dtype(X.data.dtype if X.is_sparse else X.dense.dtype)
        else:
            dtype = np.dtype(getattr(X, "dtype", np.float64))
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"the CUDA engine computes in float32 or float64, got {dtype}")
        if not isinstance(X, cpu.InputData):
            X = cpu.InputData(X, dtype)
        self.network = net
        self.X = X
        self.dtype = dtype
        self.n_features = int(net.units[0])
        self.n_out = int(net.units[-1])
        self.n_layers = int(net.n_layers)
        self.n_params = int(net.n_params)
        self.n_weights = int(net.n_weights)
        self.icfg = icfg.copy()
        self.icfg[I_SPARSE] = int(X.is_sparse)
        self.icfg[I_HAS_SAMPLE_WEIGHT] = int(sample_weight is not None)
        self.icfg[I_DROPOUT] = int(net.has_dropout)
        self.fcfg = fcfg.copy()
        self.parts = 1
        rows = max(int(batch_rows), 1)
        self.ws = DeviceWorkspaceInfo(rows, self.n_params, dtype)

        # per-layer settings as Python scalars (one kernel type per argument)
        self._units = [int(u) for u in net.units]
        self._cols = [int(c) for c in net.cols]
        self._pieces = [int(p) for p in net.layer_int[:, LAYER_PIECES]]
        self._codes = [int(c) for c in net.layer_int[:, LAYER_ACTIVATION]]
        self._slopes = [float(s) for s in net.layer_float[:, LAYER_SLOPE]]
        self._dropout = [float(r) for r in net.layer_float[:, LAYER_DROPOUT]]
        self._w_off = [int(o) for o in net.w_off]
        self._b_off = [int(o) for o in net.b_off]
        self._a_off = [int(o) for o in net._a_units * rows]
        self._z_off = [int(o) for o in net._z_units * rows]

        with _quiet():
            # the data, once
            if X.is_sparse:
                self._d_data = _device_copy(X.data, dtype)
                self._d_indices = _device_copy(X.indices)
                self._d_indptr = _device_copy(X.indptr)
            else:
                self._d_X = _device_copy(_dense_host_rows(X, self.n_features), dtype)
            self._has_targets = Y is not None
            if Y is not None:
                Y = np.asarray(Y)
                if Y.shape != (X.n_samples, self.n_out):
                    raise ValueError(f"Y must have shape ({X.n_samples}, {self.n_out}), got {Y.shape}")
                self._d_Y = _device_copy(Y, dtype)
            else:
                self._d_Y = _device_copy(np.zeros(1, dtype))
            self._has_sw = sample_weight is not None
            self._d_sw = _device_copy(np.zeros(1, dtype) if sample_weight is None else sample_weight, dtype)

            # workspaces (the CPU Workspace's layout)
            def buf(size, dt=dtype):
                return cuda.device_array(max(int(size), 1), dtype=dt)

            self._d_xb = buf(rows * self.n_features)
            self._d_yb = buf(rows * self.n_out)
            self._d_swb = buf(rows)
            self._d_acts = buf(int(net.units[1:].sum()) * rows)
            self._d_pre = buf(int(net.cols.sum()) * rows)
            self._d_deltas = buf(int(net.cols.sum()) * rows)
            self._d_dact = buf(int(net.units.max()) * rows)
            self._d_row_loss = buf(rows, np.float64)
            self._d_grads = buf(self.n_params)
            self._d_S = buf(K.N_S, np.float64)
            self._d_SX = buf(K.N_X)
            self._d_counters = buf(N_COUNTERS, np.int64)
            self._d_partials = buf(2 * max(int(K.REDUCE_BLOCKS), 1), np.float64)
            self._d_dummy = buf(1)
        self._d_params = None
        self._d_state_1 = None
        self._d_state_2 = None
        self._d_scratch = None
        self._host = None  # the registered host (flat, state_1, state_2)
        self._train_rows_host = None
        self._d_train_rows = None
        self._d_eval_rows = None

    # ------------------------------------------------------------------
    # residency
    # ------------------------------------------------------------------
    def _check_flat(self, flat, name="flat"):
        if flat.shape != (self.n_params,):
            raise ValueError(f"{name} must have shape ({self.n_params},), got {flat.shape}")
        if flat.dtype != self.dtype:
            raise TypeError(f"{name} must be {self.dtype}, got {flat.dtype}")

    @staticmethod
    def _upload(host, device):
        """``host`` into ``device`` (reused when the size matches); the device array."""
        host = np.ascontiguousarray(host).reshape(-1)
        if host.size == 0:
            host = np.zeros(1, dtype=host.dtype)
        if device is not None and device.shape == host.shape and device.dtype == host.dtype:
            device.copy_to_device(host)
            return device
        return cuda.to_device(host)

    def to_device(self, flat, state_1=None, state_2=None):
        """Upload the parameters and optimizer buffers; register the host arrays.

        From now on the device copies are the current ones: :meth:`train_epoch`
        updates them and :meth:`to_host` brings them back.
        """
        self._check_flat(flat)
        empty = np.zeros(0, dtype=self.dtype)
        state_1 = empty if state_1 is None else state_1
        state_2 = empty if state_2 is None else state_2
        with _quiet():
            self._d_params = self._upload(flat, self._d_params)
            self._d_state_1 = self._upload(state_1, self._d_state_1)
            self._d_state_2 = self._upload(state_2, self._d_state_2)
        self._host = (flat, state_1, state_2)

    def to_host(self, flat=None, state_1=None, state_2=None):
        """Copy the device parameters and optimizer buffers into host arrays.

        Into ``flat`` / ``state_1`` / ``state_2`` when given, else into the
        arrays registered by :meth:`to_device`. Returns the parameters' array.
        """
        if self._host is None:
            raise RuntimeError("no parameters on the device: call to_device first")
        targets = (
            self._host[0] if flat is None else flat,
            self._host[1] if state_1 is None else state_1,
            self._host[2] if state_2 is None else state_2,
        )
        with _quiet():
            for host, device in zip(targets, (self._d_params, self._d_state_1, self._d_state_2)):
                if host.size == 0:
                    continue
                if host.size != device.size:
                    raise ValueError(f"host buffer of {host.size} values for a device buffer of {device.size}")
                values = device.copy_to_host()
                if host.flags.c_contiguous and host.ndim == 1:
                    host[:] = values
                else:
                    host[...] = values.reshape(host.shape)
        return targets[0]

    def release(self):
        """Forget the registered host arrays (the device copies stay allocated)."""
        self._host = None

    @property
    def gradient(self):
        """The gradient of the last :meth:`loss_and_gradient`, copied to the host."""
        return self.ws.grads

    # the device's buffers are this trainer's own: nothing for a later call to reuse
    workspace = None

    @property
    def resident(self):
        """True while parameters registered by :meth:`to_device` live on the device."""
        return self._host is not None

    def _params_for(self, flat):
        """The device parameters for ``flat``: the resident copy when ``flat`` is
        the registered array, else ``flat`` uploaded to a scratch buffer."""
        if self._host is not None and flat is self._host[0]:
            return self._d_params
        self._check_flat(flat)
        self._d_scratch = self._upload(flat, self._d_scratch)
        return self._d_scratch

    def _eval_rows(self, rows):
        self._d_eval_rows = self._upload(np.ascontiguousarray(rows, dtype=np.int64), self._d_eval_rows)
        return self._d_eval_rows

    def _train_rows(self, rows, first_batch):
        # A new epoch (first_batch 0) or another array: upload. Chunks of one
        # epoch reuse the device copy.
        if first_batch == 0 or rows is not self._train_rows_host:
            self._d_train_rows = self._upload(np.ascontiguousarray(rows, dtype=np.int64), self._d_train_rows)
            self._train_rows_host = rows
        return self._d_train_rows

    # ------------------------------------------------------------------
    # one batch on the device
    # ------------------------------------------------------------------
    def _forward(self, d_params, d_rows, start, m, training, batch):
        """Forward pass of rows ``rows[start:start+m]`` into the device workspaces."""
        T = K.THREADS
        d = self.n_features
        if self.X.is_sparse:
            K.fill[K.grid_1d(m * d), T](self._d_xb, 0, m * d, self.dtype.type(0))
            K.scatter_sparse[K.grid_1d(m), T](
                self._d_data, self._d_indices, self._d_indptr, d_rows, start, m, d, self._d_xb
            )
        else:
            K.gather_dense[K.grid_1d(m * d), T](self._d_X, d, d_rows, start, m, self._d_xb)
        seed = int(self.icfg[I_SEED])
        for layer in range(self.n_layers):
            fan_in = self._units[layer]
            n_units = self._units[layer + 1]
            n_cols = self._cols[layer]
            code = self._codes[layer]
            if layer == 0:
                src, src_off = self._d_xb, 0
            else:
                src, src_off = self._d_acts, self._a_off[layer]
            K.gemm(src, src_off, d_params, self._w_off[layer], self._d_pre, self._z_off[layer + 1], m, n_cols, fan_in)
            rate = self._dropout[layer] if (training and layer < self.n_layers - 1) else 0.0
            if code == ACT_SOFTMAX:
                items = m
            elif code == ACT_MAXOUT:
                items = m * n_units
            else:
                items = m * n_cols
            cuda_activations.bias_activation[K.grid_1d(items), T](
                self._d_pre, self._z_off[layer + 1], self._d_acts, self._a_off[layer + 1], d_params,
                self._b_off[layer], m, n_cols, n_units, code, self._slopes[layer], self._pieces[layer], rate, seed,
                batch, start, layer,
            )

    def _output_loss(self, d_rows, start, m):
        """Targets of the batch, output delta and per-row weighted losses."""
        if not self._has_targets:
            raise RuntimeError("this trainer was built without targets (Y=None): forward passes only")
        T = K.THREADS
        k = self.n_out
        K.gather_targets[K.grid_1d(m * k), T](
            self._d_Y, k, self._d_sw, int(self._has_sw), d_rows, start, m, self._d_yb, self._d_swb
        )
        L = self.n_layers
        cuda_losses.output_delta_loss[K.grid_1d(m), T](
            self._d_acts, self._a_off[L], self._d_yb, self._d_swb, int(self._has_sw), self._codes[L - 1],
            int(self.icfg[I_LOSS]), int(self.icfg[I_POISSON_CONSTANT] != 0), float(self.fcfg[F_CLIP]),
            float(self.fcfg[F_HUBER_DELTA]), self._d_deltas, self._z_off[L], self._d_row_loss, m, k,
        )

    def _backward(self, d_params, start, m, accumulate, training, batch):
        """Raw gradient sums ``x.T delta`` and ``sum(delta)`` into the device gradient."""
        T = K.THREADS
        seed = int(self.icfg[I_SEED])
        zero = self.dtype.type(0)
        for layer in range(self.n_layers - 1, -1, -1):
            fan_in = self._units[layer]
            n_cols = self._cols[layer]
            if layer == 0:
                prev, prev_off = self._d_xb, 0
            else:
                prev, prev_off = self._d_acts, self._a_off[layer]
            delta_off = self._z_off[layer + 1]
            K.gemm(
                prev, prev_off, self._d_deltas, delta_off, self._d_grads, self._w_off[layer], fan_in, n_cols, m,
                trans_a=True, accumulate=accumulate,
            )
            K.bias_grad[K.grid_1d(n_cols), T](
                self._d_deltas, delta_off, m, n_cols, self._d_grads, self._b_off[layer], int(accumulate), zero
            )
            if layer > 0:
                # delta of the layer below: (delta W.T) * phi'(z), through its dropout mask
                below = layer - 1
                K.gemm(
                    self._d_deltas, delta_off, d_params, self._w_off[layer], self._d_dact, 0, m, fan_in, n_cols,
                    trans_b=True,
                )
                rate = self._dropout[below] if training else 0.0
                cuda_activations.backprop_activation[K.grid_1d(m * fan_in), T](
                    self._d_dact, self._d_pre, self._z_off[layer], self._d_acts, self._a_off[layer], self._d_deltas,
                    m, fan_in, self._codes[below], self._slopes[below], self._pieces[below], rate, seed, batch, start,
                    below,
                )

    def _finish(self, d_params, d_state_1, d_state_2, solver, check_skip):
        """Finish the gradient (and take the solver's step unless ``solver`` is NO_SOLVER)."""
        t = self.dtype.type
        f = self.fcfg
        K.finish_update[K.grid_1d(self.n_params), K.THREADS](
            d_params, self._d_grads, d_state_1, d_state_2, self.n_params, self.n_weights, self._d_S, self._d_SX,
            int(check_skip), t(f[F_ALPHA]), int(f[F_L1] != 0.0), int(solver), int(self.icfg[I_NESTEROV] != 0),
            t(f[F_MOMENTUM]), t(f[F_BETA_1]), t(f[F_BETA_2]), t(1.0 - f[F_BETA_1]), t(1.0 - f[F_BETA_2]), t(f[F_RHO]),
            t(1.0 - f[F_RHO]), t(f[F_EPSILON]), t(1.0 - f[F_LEARNING_RATE] * f[F_WEIGHT_DECAY]),
        )

    def _scalars(self, m, sum_rows, accumulate, n_partials, train):
        f = self.fcfg
        K.batch_scalars(
            self._d_row_loss, self._d_swb, self._has_sw, m, sum_rows, accumulate, self._d_partials, n_partials,
            f[F_ALPHA], f[F_L1], train, int(self.icfg[I_SOLVER]), f[F_LEARNING_RATE], f[F_BETA_1], f[F_BETA_2],
            self._d_S, self._d_SX, self._d_counters,
        )

    def _penalty(self, d_params):
        """Launch the penalty's partial sums when there is a penalty; their number."""
        if self.fcfg[F_ALPHA] == 0.0 and self.fcfg[F_L1] == 0.0:
            return 0
        return K.penalty_partials(d_params, self.n_weights, self._d_partials)

    def _reset_scalars(self, total=0.0):
        S = np.zeros(K.N_S, dtype=np.float64)
        S[K.S_TOTAL] = total
        self._d_S.copy_to_device(S)

    # ------------------------------------------------------------------
    # the Trainer interface
    # ------------------------------------------------------------------
    def train_epoch(
        self, flat, rows, batch_size, first_batch, stop_batch, state_1, state_2, counters, learning_rate,
        running_total=0.0,
    ):
        """Run batches ``first_batch..stop_batch-1`` on the device; return
        ``running_total + sum(batch_loss * batch_rows)``.

        Batch k holds ``rows[k*batch_size:(k+1)*batch_size]``; each batch:
        forward, backward, finished gradient, the solver's step, all on the
        device copies of ``flat`` / ``state_1`` / ``state_2`` (uploaded first
        when these are not the registered arrays; see the class's residency
        contract: the host arrays are NOT updated, call :meth:`to_host`).
        ``counters`` is updated in place on the host as on the CPU.
        """
        solver = int(self.icfg[I_SOLVER])
        if solver not in STOCHASTIC_SOLVERS.values():
            raise ValueError(f"train_epoch runs the stochastic solvers only, got solver code {solver}")
        self.fcfg[F_LEARNING_RATE] = learning_rate
        if self._host is None or flat is not self._host[0] or state_1 is not self._host[1] or (
            state_2 is not self._host[2]
        ):
            self.to_device(flat, state_1, state_2)
        batch_size = int(batch_size)
        n = rows.shape[0]
        training = self.icfg[I_DROPOUT] != 0
        with _quiet():
            d_rows = self._train_rows(rows, int(first_batch))
            self._reset_scalars(float(running_total))
            self._d_counters.copy_to_device(np.ascontiguousarray(counters, dtype=np.int64))
            batch_counter = int(counters[C_BATCH])
            for batch in range(int(first_batch), int(stop_batch)):
                start = batch * batch_size
                m = min(batch_size, n - start)
                self._forward(self._d_params, d_rows, start, m, training, batch_counter)
                self._output_loss(d_rows, start, m)
                self._backward(self._d_params, start, m, False, training, batch_counter)
                batch_counter += 1
                n_partials = self._penalty(self._d_params)
                self._scalars(m, 1, 0, n_partials, 1)
                self._finish(self._d_params, self._d_state_1, self._d_state_2, solver, True)
            S = self._d_S.copy_to_host()
            device_counters = self._d_counters.copy_to_host()
        counters[C_ADAM_STEP] = device_counters[C_ADAM_STEP]
        counters[C_BATCH] = batch_counter
        return float(S[K.S_TOTAL])

    def loss_and_gradient(self, flat, rows, chunk=None, deadline=None):
        """Mean loss (with penalties) over ``rows``; its gradient in ``self.ws.grads`` (host).

        ``chunk`` rows at a time (at most the workspace's rows). Past
        ``deadline`` (a ``time.perf_counter`` value, checked between chunks) the
        pass is abandoned with :class:`fastbp.engine.cpu.TimeUp`. No dropout.
        """
        chunk = self.ws.rows if chunk is None else max(1, min(int(chunk), self.ws.rows))
        n = rows.shape[0]
        with _quiet():
            d_params = self._params_for(flat)
            d_rows = self._eval_rows(rows)
            self._reset_scalars()
            for start in range(0, n, chunk):
                m = min(chunk, n - start)
                self._forward(d_params, d_rows, start, m, False, 0)
                self._output_loss(d_rows, start, m)
                self._backward(d_params, start, m, start > 0, False, 0)
                self._scalars(m, 1, 1, 0, 0)
                if deadline is not None and start + m < n:
                    cuda.synchronize()
                    if time.perf_counter() >= deadline:
                        raise cpu.TimeUp
            n_partials = self._penalty(d_params)
            self._scalars(0, 0, 0, n_partials, 0)
            self._finish(d_params, self._d_dummy, self._d_dummy, K.NO_SOLVER, False)
            self._d_grads.copy_to_host(self.ws.grads)
            S = self._d_S.copy_to_host()
        weight_sum = float(S[K.S_WEIGHT])
        return float(S[K.S_LOSS]) / weight_sum + float(S[K.S_PENALTY]) / weight_sum

    def dataset_loss(self, flat, rows):
        """Mean loss over ``rows`` without penalties (the validation loss)."""
        chunk = self.ws.rows
        n = rows.shape[0]
        with _quiet():
            d_params = self._params_for(flat)
            d_rows = self._eval_rows(rows)
            self._reset_scalars()
            for start in range(0, n, chunk):
                m = min(chunk, n - start)
                self._forward(d_params, d_rows, start, m, False, 0)
                self._output_loss(d_rows, start, m)
                self._scalars(m, 1, 1, 0, 0)
            S = self._d_S.copy_to_host()
        return float(S[K.S_LOSS]) / float(S[K.S_WEIGHT])

    def gives_finite_loss(self, rows):
        """A test of host parameter vectors: is the mean loss over ``rows`` finite?
        (The CPU ``Trainer``'s method of the same name.)"""

        def is_finite(flat):
            with np.errstate(all="ignore"):
                # a copy: the registered host array would be read from its device copy
                return bool(np.isfinite(flat).all() and np.isfinite(self.dataset_loss(flat.copy(), rows)))

        return is_finite

    def jacobian(self, flat, rows, row_scale, out):
        """Not on the GPU: Levenberg-Marquardt is a host algorithm (see the module docstring)."""
        raise NotImplementedError(UNSUPPORTED_SOLVERS["lm"])

    # ------------------------------------------------------------------
    # forward passes and workspace reads (the functional API, prediction)
    # ------------------------------------------------------------------
    def predict(self, flat, rows=None, chunk=None):
        """Output activations of ``rows`` (default: all rows of X), (len(rows), n_outputs), on the host."""
        n_total = self.X.n_samples
        rows = np.arange(n_total, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        n = rows.shape[0]
        chunk = self.ws.rows if chunk is None else max(1, min(int(chunk), self.ws.rows))
        out = np.empty((n, self.n_out), dtype=self.dtype)
        with _quiet():
            d_params = self._params_for(flat)
            d_rows = self._eval_rows(rows)
            for start in range(0, n, chunk):
                m = min(chunk, n - start)
                self._forward(d_params, d_rows, start, m, False, 0)
                out[start : start + m] = self.layer_output(self.n_layers, m)
        return out

    def forward_rows(self, flat, rows):
        """Forward pass of ``rows`` (at most the workspace's rows) into the device workspaces."""
        if rows.shape[0] > self.ws.rows:
            raise ValueError(f"{rows.shape[0]} rows for a workspace of {self.ws.rows}")
        with _quiet():
            self._forward(self._params_for(flat), self._eval_rows(rows), 0, rows.shape[0], False, 0)

    def layer_output(self, layer, m):
        """Layer ``layer``'s (1..L) outputs of the workspace's first m rows, (m, units), on the host."""
        k, off = self._units[layer], self._a_off[layer]
        return self._d_acts[off : off + m * k].copy_to_host().reshape(m, k)

    def layer_delta(self, layer, m):
        """Layer ``layer``'s (1..L) deltas dL/dz of the workspace's first m rows, (m, cols), on the host."""
        k, off = self._cols[layer - 1], self._z_off[layer]
        return self._d_deltas[off : off + m * k].copy_to_host().reshape(m, k)


# ---------------------------------------------------------------------------
# engine-level functions (the twins of cpu.predict_output / forward_all)
# ---------------------------------------------------------------------------
def _forward_config(data):
    icfg, fcfg = cpu.make_config()
    icfg[I_SPARSE] = int(data.is_sparse)
    return icfg, fcfg


def predict_output(network, flat, X, n_jobs=None):
    """Output-layer activations for every row of X (dense or sparse), on the host.

    The twin of ``cpu.predict_output`` (``n_jobs`` is accepted and ignored).
    """
    data = X if isinstance(X, cpu.InputData) else cpu.InputData(X, flat.dtype)
    n = data.n_samples
    chunk = min(max(n, 1), CHUNK_ROWS)
    trainer = CudaTrainer(network, data, None, None, *_forward_config(data), batch_rows=chunk)
    return trainer.predict(flat)


def forward_all(network, flat, X):
    """Every layer's outputs for all rows, no dropout: the twin of ``cpu.forward_all``."""
    data = X if isinstance(X, cpu.InputData) else cpu.InputData(X, flat.dtype)
    n = data.n_samples
    trainer = CudaTrainer(network, data, None, None, *_forward_config(data), batch_rows=n)
    if n == 0:
        return [np.empty((0, int(u)), dtype=flat.dtype) for u in network.units[1:]]
    trainer.forward_rows(flat, np.arange(n, dtype=np.int64))
    return [trainer.layer_output(layer, n) for layer in range(1, network.n_layers + 1)]


def backprop_all(network, flat, X, Y, sample_weight, icfg, fcfg):
    """Loss, gradient and every layer's deltas and outputs over all rows, on the device.

    The engine-level core of :func:`backprop`: ``X`` an ``InputData`` (or
    array), ``Y`` (n, n_outputs) in ``flat``'s dtype, ``icfg`` / ``fcfg`` from
    ``make_config``. Returns ``(loss, grads, deltas, outputs)``: the flat
    gradient (host), ``deltas[l]`` and ``outputs[l]`` of layers 1..L.
    """
    data = X if isinstance(X, cpu.InputData) else cpu.InputData(X, flat.dtype)
    n = data.n_samples
    trainer = CudaTrainer(network, data, Y, sample_weight, icfg, fcfg, batch_rows=n)
    rows = np.arange(n, dtype=np.int64)
    loss = trainer.loss_and_gradient(flat, rows, chunk=n)
    layers = range(1, network.n_layers + 1)
    deltas = [trainer.layer_delta(layer, n) for layer in layers]
    outputs = [trainer.layer_output(layer, n) for layer in layers]
    return loss, trainer.ws.grads.copy(), deltas, outputs
