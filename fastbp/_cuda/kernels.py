"""CUDA kernels of backpropagation: the device twins of ``fastbp.kernels``.

Importing this module imports ``numba.cuda``; it is imported only through
``fastbp._cuda`` after :func:`fastbp._cuda.require_cuda` succeeded. Nothing is
compiled at import: every kernel is compiled on its first launch (and cached on
disk, ``cache=True``).

Conventions (the same as the CPU kernels, see ``fastbp.kernels``)
------------------------------------------------------------------
* Every buffer is a flat 1-D device array. Matrices are row-major blocks of
  it, addressed by an offset and their widths; the kernels take ``(buffer,
  offset, ...)`` instead of 2-D views, so one launch needs no view objects.
  Parameters: all W(l) (``fan_in x cols(l)``) then all b(l) at ``w_off`` /
  ``b_off``; workspaces ``pre`` / ``deltas`` (width cols, at ``z_off``) and
  ``acts`` (width units, at ``a_off``) exactly as the CPU ``Workspace``.
* Activations, losses and solvers are the integer codes of ``fastbp.kernels.codes``.
* The elementwise expressions are those of the CPU kernels, in the same order
  and with the same float32 / float64 promotions (a value is written to its
  array and read back where the CPU kernel does so), so the two engines agree
  to rounding (the matrix products sum in another order than BLAS does).
* Reductions (loss sums, the penalty) run in a fixed order: per thread, then a
  tree in shared memory, then serially over the blocks of a fixed grid. No
  atomics anywhere: a fit is reproducible run to run.
* Dropout masks use the CPU's counter-based hash (:func:`dropout_uniform`), so
  a unit is dropped on the GPU exactly when it is dropped on the CPU.
* Launch geometry comes from the module constants below, read at launch time:
  tests patch them small (the simulator runs each thread as a Python thread).
  The constants that shape shared memory (``TILE``, ``TILE_K``, ``MICRO``,
  ``THREADS`` of the reductions) select a kernel built for them by a cached
  factory (one compilation per setting, also cached on disk).
"""

import functools
import math

import numpy as np
from numba import cuda, float64

from ..kernels.codes import C_ADAM_STEP
from ..kernels.optimizers import SOLVER_ADAGRAD, SOLVER_ADAM, SOLVER_ADAMW, SOLVER_RMSPROP, SOLVER_SGD

# --------------------------------------------------------------------------
# launch geometry (read at launch time; tests patch these small)
# --------------------------------------------------------------------------
# GEMM: each block computes a TILE x TILE tile of C, stepping through K by
# TILE_K; each thread computes MICRO x MICRO outputs (register blocking), so a
# block has (TILE // MICRO) ** 2 threads. TILE must be a multiple of MICRO.
TILE = 64
TILE_K = 16
MICRO = 4
# Threads per block of the elementwise and reduction kernels (a power of two).
THREADS = 256
# Most blocks of a grid-stride launch, and of the penalty's partial sums.
MAX_BLOCKS = 4096
REDUCE_BLOCKS = 256

# Solver code of a gradient finishing without an optimizer step.
NO_SOLVER = -1

# Slots of the float64 device scalars ``S`` of a trainer.
S_TOTAL = 0  # running sum of batch_loss * batch_rows (train_epoch's return value)
S_LOSS = 1  # weighted loss sum (of the batch, or accumulated over chunks)
S_WEIGHT = 2  # sum of the sample weights (the rows without sample weights)
S_PENALTY = 3  # alpha/2 ||W||^2 + l1 ||W||_1 (not divided by the weight sum)
S_RATE = 4  # the step's learning rate (Adam's bias-corrected)
S_SKIP = 5  # 1: the batch's weights sum to 0, no step
N_S = 6
# Slots of the device scalars ``SX`` in the parameters' dtype (cast once, as
# the CPU kernels' ``_like``).
X_WEIGHT = 0
X_L1 = 1  # l1 / weight sum
X_RATE = 2
N_X = 3

def grid_1d(n):
    """Blocks of a grid-stride launch over ``n`` items."""
    return max(1, min((int(n) + THREADS - 1) // THREADS, MAX_BLOCKS))


# --------------------------------------------------------------------------
# input layer and targets
# --------------------------------------------------------------------------
@cuda.jit(cache=True)
def gather_dense(X, d, rows, start, m, xb):
    """``xb[i, :] = X[rows[start + i], :]`` for i < m (X C-ordered, d columns)."""
    n = m * d
    for t in range(cuda.grid(1), n, cuda.gridsize(1)):
        i = t // d
        j = t - i * d
        xb[t] = X[rows[start + i] * d + j]


@cuda.jit(cache=True)
def fill(buf, offset, n, value):
    """``buf[offset:offset + n] = value``."""
    for t in range(cuda.grid(1), n, cuda.gridsize(1)):
        buf[offset + t] = value


@cuda.jit(cache=True)
def scatter_sparse(data, indices, indptr, rows, start, m, d, xb):
    """Densify CSR rows ``rows[start:start+m]`` into a zeroed ``xb`` (m, d), one
    thread per row; duplicate column entries add up, as in the CPU kernels."""
    for i in range(cuda.grid(1), m, cuda.gridsize(1)):
        r = rows[start + i]
        base = i * d
        for p in range(indptr[r], indptr[r + 1]):
            xb[base + indices[p]] += data[p]


@cuda.jit(cache=True)
def gather_targets(Y, k, sw, has_sw, rows, start, m, yb, swb):
    """The batch's target rows (and sample weights) into reused buffers."""
    n = m * k
    for t in range(cuda.grid(1), n, cuda.gridsize(1)):
        i = t // k
        j = t - i * k
        r = rows[start + i]
        yb[t] = Y[r * k + j]
        if has_sw and j == 0:
            swb[i] = sw[r]


# --------------------------------------------------------------------------
# matrix product
# --------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _gemm_kernel(tile, tile_k, micro, dtype_name):
    """The GEMM kernel for one tile geometry and dtype (built once, cached)."""
    dt = np.dtype(dtype_name).type
    zero = dt(0)
    side = tile // micro  # threads per block along each axis
    n_threads = side * side
    pad = tile + 1  # shared rows padded by one: no bank conflicts on the stores

    @cuda.jit(cache=True)
    def gemm(A, a_off, B, b_off, C, c_off, M, N, K, trans_a, trans_b, accumulate):
        """``C (+)= op(A) @ op(B)``: op(A) is (M, K), op(B) (K, N), C (M, N).

        A is stored (M, K), or (K, M) with ``trans_a``; B (K, N), or (N, K) with
        ``trans_b``; all row-major at their offsets. Tiles are loaded so that
        consecutive threads read consecutive addresses whatever the transposes.
        """
        sA = cuda.shared.array((tile_k, pad), dt)  # sA[k, r] = op(A)[row0 + r, k0 + k]
        sB = cuda.shared.array((tile_k, pad), dt)  # sB[k, c] = op(B)[k0 + k, col0 + c]
        acc = cuda.local.array((micro, micro), dt)
        a_reg = cuda.local.array(micro, dt)
        b_reg = cuda.local.array(micro, dt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * side + tx
        row0 = cuda.blockIdx.y * tile
        col0 = cuda.blockIdx.x * tile
        for r in range(micro):
            for c in range(micro):
                acc[r, c] = zero
        for k0 in range(0, K, tile_k):
            for e in range(tid, tile * tile_k, n_threads):
                if trans_a:
                    r = e % tile
                    kk = e // tile
                    gr = row0 + r
                    gk = k0 + kk
                    sA[kk, r] = A[a_off + gk * M + gr] if (gr < M and gk < K) else zero
                else:
                    kk = e % tile_k
                    r = e // tile_k
                    gr = row0 + r
                    gk = k0 + kk
                    sA[kk, r] = A[a_off + gr * K + gk] if (gr < M and gk < K) else zero
                if trans_b:
                    kk = e % tile_k
                    c = e // tile_k
                    gc = col0 + c
                    gk = k0 + kk
                    sB[kk, c] = B[b_off + gc * K + gk] if (gc < N and gk < K) else zero
                else:
                    c = e % tile
                    kk = e // tile
                    gc = col0 + c
                    gk = k0 + kk
                    sB[kk, c] = B[b_off + gk * N + gc] if (gc < N and gk < K) else zero
            cuda.syncthreads()
            for kk in range(tile_k):
                for r in range(micro):
                    a_reg[r] = sA[kk, ty + r * side]
                for c in range(micro):
                    b_reg[c] = sB[kk, tx + c * side]
                for r in range(micro):
                    for c in range(micro):
                        acc[r, c] += a_reg[r] * b_reg[c]
            cuda.syncthreads()
        for r in range(micro):
            gr = row0 + ty + r * side
            if gr < M:
                for c in range(micro):
                    gc = col0 + tx + c * side
                    if gc < N:
                        idx = c_off + gr * N + gc
                        if accumulate:
                            C[idx] = C[idx] + acc[r, c]
                        else:
                            C[idx] = acc[r, c]

    return gemm


def gemm(A, a_off, B, b_off, C, c_off, M, N, K, trans_a=False, trans_b=False, accumulate=False):
    """Launch ``C (+)= op(A) @ op(B)`` on flat device buffers (see the kernel)."""
    M, N, K = int(M), int(N), int(K)
    if M <= 0 or N <= 0:
        return
    if K <= 0:
        if not accumulate:
            fill[grid_1d(M * N), THREADS](C, int(c_off), M * N, C.dtype.type(0))
        return
    if TILE % MICRO:
        raise ValueError(f"TILE ({TILE}) must be a multiple of MICRO ({MICRO})")
    kernel = _gemm_kernel(TILE, TILE_K, MICRO, np.dtype(C.dtype).name)
    side = TILE // MICRO
    grid = ((N + TILE - 1) // TILE, (M + TILE - 1) // TILE)
    kernel[grid, (side, side)](
        A, int(a_off), B, int(b_off), C, int(c_off), M, N, K, int(bool(trans_a)), int(bool(trans_b)),
        int(bool(accumulate)),
    )


# --------------------------------------------------------------------------
# gradient pieces
# --------------------------------------------------------------------------
@cuda.jit(cache=True)
def bias_grad(deltas, z_off, m, n_cols, grads, b_off, accumulate, zero):
    """``grads[b_off + c] (+)= sum_i delta[i, c]``: one thread per column, rows
    added in order (the CPU's order). ``zero`` is 0 in the gradient's dtype."""
    for c in range(cuda.grid(1), n_cols, cuda.gridsize(1)):
        acc = grads[b_off + c] if accumulate else zero
        for i in range(m):
            acc += deltas[z_off + i * n_cols + c]
        grads[b_off + c] = acc


@functools.lru_cache(maxsize=None)
def _reduction_kernels(threads):
    """The penalty's partial sums and the per-batch scalar step for blocks of
    ``threads`` threads (a power of two; built once, cached)."""

    @cuda.jit(cache=True)
    def penalty_partials(params, n_weights, partials, n_blocks):
        """Per block: sum of w**2 into ``partials[b]``, of |w| into ``partials[n_blocks + b]``."""
        squares = cuda.shared.array(threads, float64)
        absolutes = cuda.shared.array(threads, float64)
        tid = cuda.threadIdx.x
        sq = 0.0
        ab = 0.0
        for i in range(cuda.blockIdx.x * threads + tid, n_weights, n_blocks * threads):
            w = float(params[i])
            sq += w * w
            ab += abs(w)
        squares[tid] = sq
        absolutes[tid] = ab
        cuda.syncthreads()
        step = threads // 2
        while step > 0:
            if tid < step:
                squares[tid] += squares[tid + step]
                absolutes[tid] += absolutes[tid + step]
            cuda.syncthreads()
            step //= 2
        if tid == 0:
            partials[cuda.blockIdx.x] = squares[0]
            partials[n_blocks + cuda.blockIdx.x] = absolutes[0]

    @cuda.jit(cache=True)
    def batch_scalars(row_loss, swb, has_sw, m, sum_rows, accumulate, partials, n_partials, alpha, l1, train,
                      solver, learning_rate, beta_1, beta_2, S, SX, counters):
        """One block: the batch's loss and weight sums, the penalty, the step's rate.

        ``sum_rows``: sum ``row_loss[:m]`` and the weights into ``S[S_LOSS]`` /
        ``S[S_WEIGHT]`` (added with ``accumulate``). ``n_partials > 0``: the
        penalty from :func:`penalty_partials`. Then the weight sum and
        ``l1 / weight sum`` go to ``SX`` in the parameters' dtype. ``train``:
        skip the step when the weights sum to 0, else advance Adam's counter,
        set the rate and add ``(loss + penalty) / weight * m`` to ``S[S_TOTAL]``
        (the CPU epoch's accounting).
        """
        loss_part = cuda.shared.array(threads, float64)
        weight_part = cuda.shared.array(threads, float64)
        tid = cuda.threadIdx.x
        if sum_rows:
            lo = 0.0
            we = 0.0
            for i in range(tid, m, threads):
                lo += row_loss[i]
                if has_sw:
                    we += swb[i]
            loss_part[tid] = lo
            weight_part[tid] = we
            cuda.syncthreads()
            step = threads // 2
            while step > 0:
                if tid < step:
                    loss_part[tid] += loss_part[tid + step]
                    weight_part[tid] += weight_part[tid + step]
                cuda.syncthreads()
                step //= 2
        if tid == 0:
            if sum_rows:
                weight_sum = weight_part[0] if has_sw else float(m)
                if accumulate:
                    S[S_LOSS] += loss_part[0]
                    S[S_WEIGHT] += weight_sum
                else:
                    S[S_LOSS] = loss_part[0]
                    S[S_WEIGHT] = weight_sum
            penalty = 0.0
            if n_partials > 0:
                squares = 0.0
                absolutes = 0.0
                for b in range(n_partials):
                    squares += partials[b]
                    absolutes += partials[n_partials + b]
                penalty = (0.5 * alpha) * squares + l1 * absolutes
            S[S_PENALTY] = penalty
            weight = S[S_WEIGHT]
            SX[X_WEIGHT] = weight
            SX[X_L1] = l1 / weight if l1 != 0.0 else 0.0
            if train:
                if weight == 0.0:
                    # every sample of this batch has weight 0: no information, no step
                    S[S_SKIP] = 1.0
                else:
                    S[S_SKIP] = 0.0
                    rate = learning_rate
                    if solver == SOLVER_ADAM or solver == SOLVER_ADAMW:
                        counters[C_ADAM_STEP] += 1
                        t = float(counters[C_ADAM_STEP])
                        rate = learning_rate * math.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t)
                    S[S_RATE] = rate
                    SX[X_RATE] = rate
                    S[S_TOTAL] += (S[S_LOSS] / weight + penalty / weight) * m

    return penalty_partials, batch_scalars


def penalty_partials(params, n_weights, partials):
    """Launch the penalty's partial sums; returns the number of partials (0: none)."""
    n_weights = int(n_weights)
    if n_weights <= 0:
        return 0
    n_blocks = max(1, min((n_weights + THREADS - 1) // THREADS, REDUCE_BLOCKS))
    kernel, _ = _reduction_kernels(THREADS)
    kernel[n_blocks, THREADS](params, n_weights, partials, n_blocks)
    return n_blocks


def batch_scalars(row_loss, swb, has_sw, m, sum_rows, accumulate, partials, n_partials, alpha, l1, train, solver,
                  learning_rate, beta_1, beta_2, S, SX, counters):
    """Launch :func:`batch_scalars` (one block of THREADS threads)."""
    _, kernel = _reduction_kernels(THREADS)
    kernel[1, THREADS](
        row_loss, swb, int(has_sw), int(m), int(sum_rows), int(accumulate), partials, int(n_partials),
        float(alpha), float(l1), int(train), int(solver), float(learning_rate), float(beta_1), float(beta_2), S,
        SX, counters,
    )


# --------------------------------------------------------------------------
# gradient finishing and the optimizer step over the flat parameter vector
# --------------------------------------------------------------------------
@cuda.jit(cache=True)
def finish_update(params, grads, state_1, state_2, n_params, n_weights, S, SX, check_skip, alpha, has_l1, solver,
                  nesterov, momentum, beta_1, beta_2, one_minus_beta_1, one_minus_beta_2, rho, one_minus_rho,
                  epsilon, decay):
    """Finish the raw gradient sums, then (``solver >= 0``) take the solver's step.

    ``grad_W = (x.T delta + alpha W) / S + l1 sign(W) / S``, ``grad_b = sum(delta) / S``
    with S = ``SX[X_WEIGHT]``; the finished gradient is written back to
    ``grads``. The hyper-parameters come in the parameters' dtype (the CPU's
    ``_like``); the rate is ``SX[X_RATE]``. ``check_skip``: do nothing when
    ``S[S_SKIP]`` is set (a batch whose weights sum to 0).

    sgd: (Nesterov) momentum on ``state_1``; adam / adamw: moments in
    ``state_1`` / ``state_2`` (adamw first decays the weights by ``decay``);
    rmsprop: mean square in ``state_1``; adagrad: sum of squares in ``state_1``.
    """
    if check_skip and S[S_SKIP] != 0.0:
        return
    s = SX[X_WEIGHT]
    l1r = SX[X_L1]
    rate = SX[X_RATE]
    for i in range(cuda.grid(1), n_params, cuda.gridsize(1)):
        g = grads[i]
        w = params[i]
        if i < n_weights:
            g = (g + alpha * w) / s
            if has_l1:
                if w > 0.0:
                    g = g + l1r
                elif w < 0.0:
                    g = g - l1r
        else:
            g = g / s
        grads[i] = g
        if solver == SOLVER_SGD:
            v = momentum * state_1[i] - rate * g
            state_1[i] = v
            if nesterov:
                params[i] = w + (momentum * v - rate * g)
            else:
                params[i] = w + v
        elif solver == SOLVER_ADAM or solver == SOLVER_ADAMW:
            if solver == SOLVER_ADAMW and i < n_weights:
                # decoupled weight decay with the undecayed rate, on the weights only
                w = w * decay
            mt = beta_1 * state_1[i] + one_minus_beta_1 * g
            vt = beta_2 * state_2[i] + one_minus_beta_2 * (g * g)
            state_1[i] = mt
            state_2[i] = vt
            params[i] = w + ((-rate) * mt) / (math.sqrt(vt) + epsilon)
        elif solver == SOLVER_RMSPROP:
            v = rho * state_1[i] + one_minus_rho * (g * g)
            state_1[i] = v
            params[i] = w - rate * g / (math.sqrt(v) + epsilon)
        elif solver == SOLVER_ADAGRAD:
            v = state_1[i] + g * g
            state_1[i] = v
            params[i] = w - rate * g / (math.sqrt(v) + epsilon)
        elif solver != NO_SOLVER:  # an unknown solver (refused by the engine first): never a silent no-step
            params[i] = math.nan
