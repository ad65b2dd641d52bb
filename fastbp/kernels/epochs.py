"""Compiled entry points called from Python: the epochs (threaded, one-thread, per-row), the
full-batch gradient and loss, predict and the Jacobian."""

import math

import numpy as np
from numba import njit, prange

from .blas import borrowed, gemm, prefetch
from .cache import load_without_compiler_setup
from .activations import ACT_EXP, ACT_IDENTITY, ACT_LOGISTIC, ACT_SOFTMAX
from .codes import (
    C_BATCH,
    F_ALPHA,
    F_L1,
    I_DROPOUT,
    I_NO_THREADS,
    I_SPARSE,
    LAYER_ACTIVATION,
    LAYER_PIECES,
    LAYER_SLOPE,
)
from .specialize import SpecializingCompiler
from .config import PARALLEL_STEP_MIN_PARAMS, PARAM_SLICE
from .jit import INLINED, SERIAL
from .views import flat_matrix, flat_vector
from .activations import backprop_activation
from .layers import batch_gradient, batch_output_loss, forward_batch, gather_row, prefetch_row
from .optimizers import finish_update_slice, fused_adam, step_size, update_slice
from .online import row_gradient


# --------------------------------------------------------------------------
# entry points called from Python
# --------------------------------------------------------------------------

@njit(**SERIAL)
def warm_blas(work):
    """A 1x1 product: loads SciPy's GEMM for this dtype (which takes the GIL) before
    any thread needs it."""
    one = flat_matrix(work, 0, 1, 1)
    gemm(False, False, 1.0, one, one, 0.0, one, np.int64(0))


@njit(cache=True, parallel=True, error_model="numpy", pipeline_class=SpecializingCompiler)
def parts_gradient(
    X, strides, data, indices, indptr, Y, sw, rows, start, m, parts, params, part_grads, icfg, fcfg,
    layer_int, layer_float, units, w_off, b_off, a_off, z_off, xb, yb, swb, pre, acts, deltas, dact, row_loss,
    training, batch, part_loss, part_weight,
):
    """Forward and backward of a batch split into ``parts`` contiguous row blocks,
    one per thread, each into its own workspace and gradient (``part_grads[p]``)."""
    for part in prange(parts):
        lo = start + (m * part) // parts
        hi = start + (m * (part + 1)) // parts
        part_loss[part], part_weight[part] = batch_gradient(
            X, strides, data, indices, indptr, Y, sw, rows, lo, hi - lo, params, part_grads[part], icfg, fcfg,
            layer_int, layer_float, units, w_off, b_off, a_off, z_off, xb[part], yb[part], swb[part], pre[part],
            acts[part], deltas[part], dact[part], row_loss[part], False, training, batch,
        )


@njit(**INLINED)
def param_slices(n_params):
    """Number of equal slices of the flat parameters for the finishing and the
    step: slices of at most PARAM_SLICE, an even number when there are several,
    so two threads get the same work, and two from PARALLEL_STEP_MIN_PARAMS
    parameters on (the count depends on n_params only)."""
    n_slices = (n_params + PARAM_SLICE - 1) // PARAM_SLICE
    if n_slices > 1:
        n_slices += n_slices % 2
    elif n_params >= PARALLEL_STEP_MIN_PARAMS:
        n_slices = 2
    return n_slices


@njit(cache=True, parallel=True, error_model="numpy", pipeline_class=SpecializingCompiler)
def parallel_finish_update(
    n_slices, params, part_grads, parts, n_weights, alpha, l1, weight_sum, state_1, state_2, icfg, fcfg, rate,
    slice_penalty,
):
    """:func:`finish_update_slice` on every slice, the slices in parallel."""
    for k in prange(n_slices):
        # (prange's index is unsigned: as int64, the call is the one of finish_and_step)
        slice_penalty[k] = finish_update_slice(
            np.int64(k), n_slices, params, part_grads, parts, n_weights, alpha, l1, weight_sum, state_1, state_2,
            icfg, fcfg, rate,
        )


@njit(**SERIAL)
def finish_and_step(
    params, part_grads, parts, n_weights, alpha, l1, weight_sum, state_1, state_2, counters, icfg, fcfg,
    slice_penalty,
):
    """Finish a batch's gradient (parts summed in order) and take the solver's step;
    return the penalty (not yet divided by the weight sum).

    Each slice (:func:`param_slices`) is finished and stepped on while it is in
    cache, the slices in parallel when there are several.
    """
    n_slices = slice_penalty.shape[0]
    rate = step_size(counters, icfg, fcfg)
    if n_slices == 1 or icfg[I_NO_THREADS] != 0:
        # the call of parallel_finish_update (a loop index, not the constant 0:
        # a literal argument would compile another version); every slice in
        # turn where no thread may start (the same slices: the same bits)
        for k in range(n_slices):
            slice_penalty[k] = finish_update_slice(
                k, n_slices, params, part_grads, parts, n_weights, alpha, l1, weight_sum, state_1, state_2, icfg,
                fcfg, rate,
            )
    else:
        parallel_finish_update(
            n_slices, params, part_grads, parts, n_weights, alpha, l1, weight_sum, state_1, state_2, icfg,
            fcfg, rate, slice_penalty,
        )
    penalty = 0.0
    for k in range(n_slices):
        penalty += slice_penalty[k]
    return penalty


# The epoch comes in three entry points, so that a fit compiles only the one it
# runs (a first fit with an empty cache compiles for seconds per entry point):
# train_epoch (one thread's batches), train_epoch_parts (each batch split over
# the threads) and train_epoch_rows (online SGD, one dense row per step).
# They share this contract:
#
# Mini-batches ``first_batch`` .. ``stop_batch - 1`` of one epoch, compiled.
#
# Batch ``k`` holds rows ``rows[k*batch_size : (k+1)*batch_size]`` (the last
# one may be short, as scikit-learn's ``gen_batches``). Each batch: forward,
# backward, gradient of the mean loss plus the penalties, optimizer step.
# ``state_1``/``state_2`` are the optimizer's buffers (SGD's velocity, Adam's
# moments, RMSProp's / Adagrad's squares); ``counters`` Adam's step and the
# dropout batch counter (dropout masks depend on a row's position in the
# batch, not on the threads). The workspaces come in parts, one row per
# thread (``xb``, ``acts``, ..., ``part_grads`` are 2-D).
#
# Returns ``running_total`` plus the sum over these batches of
# ``batch_loss * batch_rows`` (added in batch order, so an epoch run in several
# calls sums exactly as in one). A batch whose weights are all 0 makes no step.


@njit(**SERIAL)
def train_epoch(
    X, strides, data, indices, indptr, Y, sw, rows, batch_size, first_batch, stop_batch,
    params, part_grads, state_1, state_2, counters, icfg, fcfg, layer_int, layer_float, n_weights,
    units, w_off, b_off, a_off, z_off, xb, yb, swb, pre, acts, deltas, dact, row_loss, running_total,
):
    """One thread's mini-batches of an epoch (the contract above)."""
    n = rows.shape[0]
    n_slices = param_slices(params.shape[0])
    training = icfg[I_DROPOUT] != 0
    slice_penalty = np.zeros(n_slices)
    total = running_total
    for batch in range(first_batch, stop_batch):
        start = batch * batch_size
        m = min(batch_size, n - start)
        loss_sum, weight_sum = batch_gradient(
            X, strides, data, indices, indptr, Y, sw, rows, start, m, params, part_grads[0], icfg,
            fcfg, layer_int, layer_float, units, w_off, b_off, a_off, z_off, xb[0], yb[0], swb[0],
            pre[0], acts[0], deltas[0], dact[0], row_loss[0], False, training, counters[C_BATCH],
        )
        counters[C_BATCH] += 1
        if weight_sum == 0.0:
            continue
        penalty = finish_and_step(
            params, part_grads, 1, n_weights, fcfg[F_ALPHA], fcfg[F_L1], weight_sum, state_1, state_2, counters,
            icfg, fcfg, slice_penalty,
        )
        total += (loss_sum / weight_sum + penalty / weight_sum) * m
    return total


@njit(**SERIAL)
def train_epoch_parts(
    X, strides, data, indices, indptr, Y, sw, rows, batch_size, first_batch, stop_batch,
    params, part_grads, state_1, state_2, counters, icfg, fcfg, layer_int, layer_float, n_weights,
    units, w_off, b_off, a_off, z_off, xb, yb, swb, pre, acts, deltas, dact, row_loss, running_total,
):
    """Mini-batches split over the threads (the contract above)."""
    # A batch is split into as many contiguous row blocks as there are parts,
    # each block's forward and backward run on its own thread with
    # single-threaded BLAS (parts_gradient), and the blocks' gradients are added
    # in block order: the result depends on the number of parts, never on timing.
    n = rows.shape[0]
    n_parts = part_grads.shape[0]
    n_slices = param_slices(params.shape[0])
    training = icfg[I_DROPOUT] != 0
    part_loss = np.zeros(n_parts)
    part_weight = np.zeros(n_parts)
    slice_penalty = np.zeros(n_slices)
    warm_blas(pre[0])
    total = running_total
    for batch in range(first_batch, stop_batch):
        start = batch * batch_size
        m = min(batch_size, n - start)
        parts = min(n_parts, m)
        parts_gradient(
            X, strides, data, indices, indptr, Y, sw, rows, start, m, parts, params, part_grads, icfg, fcfg,
            layer_int, layer_float, units, w_off, b_off, a_off, z_off, xb, yb, swb, pre, acts, deltas, dact,
            row_loss, training, counters[C_BATCH], part_loss, part_weight,
        )
        counters[C_BATCH] += 1
        loss_sum = 0.0
        weight_sum = 0.0
        for part in range(parts):
            loss_sum += part_loss[part]
            weight_sum += part_weight[part]
        if weight_sum == 0.0:
            continue
        penalty = finish_and_step(
            params, part_grads, parts, n_weights, fcfg[F_ALPHA], fcfg[F_L1], weight_sum, state_1, state_2,
            counters, icfg, fcfg, slice_penalty,
        )
        total += (loss_sum / weight_sum + penalty / weight_sum) * m
    return total


# nogil: the Hogwild! epoch runs it on several Python threads at once
@njit(nogil=True, **SERIAL)
def train_epoch_rows(
    X, strides, data, indices, indptr, Y, sw, rows, batch_size, first_batch, stop_batch,
    params, part_grads, state_1, state_2, counters, icfg, fcfg, layer_int, layer_float, n_weights,
    units, w_off, b_off, a_off, z_off, xb, yb, swb, pre, acts, deltas, dact, row_loss, running_total,
    shared, snapshot, merge_every,
):
    """Online SGD, one row per step (the contract above): a dense row is
    gathered into ``xb``, a sparse one written densely there.

    With ``merge_every`` > 0 (a Hogwild! thread) the steps update ``params``,
    this thread's copy of the weights, and every ``merge_every`` steps (and
    after the last) the change since the last merge is added to ``shared``,
    the weights all threads update without locks; ``params`` and ``snapshot``
    then take ``shared``'s values. ``shared`` and ``snapshot`` are not used
    when ``merge_every`` is 0.
    """
    # batch_size is 1, each step runs the vector path of row_gradient (one
    # thread, whatever the network's size). Sparse X comes here from Hogwild!
    # threads only: one-thread online SGD on sparse X runs train_epoch.
    n_params = params.shape[0]
    # borrowed views: the arrays handed down every step cost no atomic
    # reference counting (the caller keeps them alive)
    X, strides, Y, sw, rows = borrowed(X), borrowed(strides), borrowed(Y), borrowed(sw), borrowed(rows)
    params, state_1, state_2 = borrowed(params), borrowed(state_1), borrowed(state_2)
    shared, snapshot = borrowed(shared), borrowed(snapshot)
    counters, icfg, fcfg = borrowed(counters), borrowed(icfg), borrowed(fcfg)
    layer_int, layer_float, units = borrowed(layer_int), borrowed(layer_float), borrowed(units)
    w_off, b_off, a_off, z_off = borrowed(w_off), borrowed(b_off), borrowed(a_off), borrowed(z_off)
    grads, xb_0, yb_0, swb_0 = borrowed(part_grads[0]), borrowed(xb[0]), borrowed(yb[0]), borrowed(swb[0])
    pre_0, acts_0, deltas_0 = borrowed(pre[0]), borrowed(acts[0]), borrowed(deltas[0])
    dact_0, row_loss_0 = borrowed(dact[0]), borrowed(row_loss[0])
    fused = fused_adam(icfg, fcfg)
    sparse = icfg[I_SPARSE] != 0
    col_squares = np.zeros(units[1:].max() * layer_int[:, LAYER_PIECES].max())
    total = running_total
    for start in range(first_batch, stop_batch):
        if sparse:
            scatter_sparse_row(data, indices, indptr, rows[start], flat_vector(xb_0, 0, units[0]))
        else:
            if start + 1 < stop_batch:
                # the next step's row, while this one computes
                following = rows[start + 1]
                prefetch_row(X, strides[0], strides[1], following, units[0])
                prefetch(Y, np.uint64(following * Y.shape[1]))
            gather_row(X, strides[0], strides[1], rows[start], flat_vector(xb_0, 0, units[0]))
        loss_sum, weight_sum, penalty = row_gradient(
            X, strides, Y, sw, rows, start, params, grads, icfg, fcfg, layer_int, layer_float,
            units, w_off, b_off, a_off, z_off, xb_0, yb_0, swb_0, pre_0, acts_0, deltas_0, dact_0,
            row_loss_0, n_weights, state_1, state_2, counters, col_squares,
        )
        counters[C_BATCH] += 1
        if weight_sum != 0.0:
            if not fused:
                rate = step_size(counters, icfg, fcfg)
                update_slice(0, n_params, params, grads, state_1, state_2, icfg, fcfg, n_weights, rate)
            total += loss_sum / weight_sum + penalty
        if merge_every > 0 and ((start + 1 - first_batch) % merge_every == 0 or start + 1 == stop_batch):
            merge_weights(params, shared, snapshot)
    return total


@njit(**INLINED)
def scatter_sparse_row(data, indices, indptr, row, out):
    """Row ``row`` of a CSR X written densely into ``out`` (duplicate entries add up)."""
    for j in range(out.shape[0]):
        out[j] = 0.0
    for p in range(indptr[row], indptr[row + 1]):
        out[indices[p]] += data[p]


@njit(**INLINED)
def merge_weights(params, shared, snapshot):
    """Add this thread's change (params - snapshot) to the shared weights, lock-free; take the sum."""
    for i in range(params.shape[0]):
        merged = shared[i] + (params[i] - snapshot[i])
        shared[i] = merged
        params[i] = merged
        snapshot[i] = merged


@njit(**SERIAL)
def gradient_sums(
    X, strides, data, indices, indptr, Y, sw, rows, chunk, params, grads, icfg, fcfg, layer_int, layer_float,
    units, w_off, b_off, a_off, z_off, xb, yb, swb, pre, acts, deltas, dact, row_loss,
    loss_sum, weight_sum, accumulate,
):
    """Raw gradient sums over ``rows``, ``chunk`` rows at a time, for full-batch solvers.

    Adds ``x.T @ delta`` and ``sum(delta)`` of every row into ``grads`` (over-
    writing it first unless ``accumulate``) and returns the running
    ``(loss_sum, weight_sum)``; :func:`finalize_gradient` then turns the sums
    into the gradient of the mean loss. A data set can be walked through in
    several calls (chunk-aligned) with the same result as in one. No dropout: a
    deterministic objective. With ``chunk >= len(rows)`` the workspaces keep
    every layer's activations and deltas of all rows (the functional API reads
    them).
    """
    n = rows.shape[0]
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        part_loss, part_weight = batch_gradient(
            X, strides, data, indices, indptr, Y, sw, rows, start, m, params, grads, icfg, fcfg, layer_int,
            layer_float, units, w_off, b_off, a_off, z_off, xb, yb, swb, pre, acts, deltas, dact, row_loss,
            accumulate, False, 0,
        )
        loss_sum += part_loss
        weight_sum += part_weight
        accumulate = True
    return loss_sum, weight_sum


@njit(**SERIAL)
def dataset_loss(
    X, strides, data, indices, indptr, Y, sw, rows, chunk, params, icfg, fcfg, layer_int, layer_float,
    units, w_off, b_off, a_off, z_off, xb, yb, swb, pre, acts, deltas, row_loss,
):
    """(weighted loss sum, weight sum) over ``rows``: no gradient, no penalty."""
    n = rows.shape[0]
    loss_sum = 0.0
    weight_sum = 0.0
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        forward_batch(
            X, strides, data, indices, indptr, rows, start, m, params, icfg, layer_int, layer_float,
            units, w_off, b_off, a_off, z_off, xb, pre, acts, False, 0,
        )
        part_loss, part_weight = batch_output_loss(
            Y, sw, rows, start, m, icfg, fcfg, layer_int, units, a_off, z_off, yb, swb, acts, deltas, row_loss
        )
        loss_sum += part_loss
        weight_sum += part_weight
    return loss_sum, weight_sum


@njit(**SERIAL)
def predict(
    X, strides, data, indices, indptr, rows, chunk, params, icfg, layer_int, layer_float,
    units, w_off, b_off, a_off, z_off, xb, pre, acts, out,
):
    """Output activations of all ``rows`` into ``out``, ``chunk`` rows at a time."""
    n = rows.shape[0]
    n_layers = units.shape[0] - 1
    n_out = units[n_layers]
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        forward_batch(
            X, strides, data, indices, indptr, rows, start, m, params, icfg, layer_int, layer_float,
            units, w_off, b_off, a_off, z_off, xb, pre, acts, False, 0,
        )
        last = flat_matrix(acts, a_off[n_layers], m, n_out)
        for i in range(m):
            for j in range(n_out):
                out[start + i, j] = last[i, j]


@njit(**SERIAL)
def jacobian(
    X, strides, data, indices, indptr, rows, chunk, params, icfg, layer_int, layer_float,
    units, w_off, b_off, a_off, z_off, xb, pre, acts, deltas, dact, row_scale, J,
):
    """Rows of the Jacobian of the outputs with respect to all parameters.

    Row ``i * n_out + k`` of ``J`` holds ``row_scale[i] * d y_pred[i, k] / d theta``
    (theta the flat parameter vector), computed by backpropagating a unit
    output delta through sample i alone. For Levenberg-Marquardt.
    """
    n = rows.shape[0]
    n_layers = units.shape[0] - 1
    n_out = units[n_layers]
    out_code = layer_int[n_layers - 1, LAYER_ACTIVATION]
    sparse = icfg[I_SPARSE] != 0
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        forward_batch(
            X, strides, data, indices, indptr, rows, start, m, params, icfg, layer_int, layer_float,
            units, w_off, b_off, a_off, z_off, xb, pre, acts, False, 0,
        )
        y_pred = flat_matrix(acts, a_off[n_layers], m, n_out)
        for i in range(m):
            for k in range(n_out):
                row = J[(start + i) * n_out + k]
                for c in range(row.shape[0]):
                    row[c] = 0.0
                # d y_pred[i, k] / d z(L): the output activation's Jacobian column
                d_out = flat_matrix(deltas, z_off[n_layers], 1, n_out)
                for j in range(n_out):
                    d_out[0, j] = 0.0
                if out_code == ACT_SOFTMAX:
                    for j in range(n_out):
                        d_out[0, j] = -y_pred[i, k] * y_pred[i, j]
                    d_out[0, k] += y_pred[i, k]
                elif out_code == ACT_LOGISTIC:
                    d_out[0, k] = y_pred[i, k] * (1.0 - y_pred[i, k])
                elif out_code == ACT_EXP:
                    d_out[0, k] = y_pred[i, k]
                elif out_code == ACT_IDENTITY:
                    d_out[0, k] = 1.0
                else:  # an unknown output activation (refused by Network first)
                    d_out[0, k] = math.nan
                for layer in range(n_layers - 1, -1, -1):
                    fan_in = units[layer]
                    n_cols = units[layer + 1] * layer_int[layer, LAYER_PIECES]
                    delta = flat_matrix(deltas, z_off[layer + 1], 1, n_cols)
                    w0 = w_off[layer]
                    if layer == 0 and sparse:
                        r = rows[start + i]
                        for p in range(indptr[r], indptr[r + 1]):
                            v = data[p]
                            base = w0 + indices[p] * n_cols
                            for c in range(n_cols):
                                row[base + c] = v * delta[0, c]
                    else:
                        if layer == 0:
                            prev = flat_matrix(xb, 0, m, fan_in)
                        else:
                            prev = flat_matrix(acts, a_off[layer], m, fan_in)
                        for f in range(fan_in):
                            v = prev[i, f]
                            base = w0 + f * n_cols
                            for c in range(n_cols):
                                row[base + c] = v * delta[0, c]
                    b0 = b_off[layer]
                    for c in range(n_cols):
                        row[b0 + c] = delta[0, c]
                    if layer > 0:
                        below = layer - 1
                        pieces = layer_int[below, LAYER_PIECES]
                        W = flat_matrix(params, w0, fan_in, n_cols)
                        delta_z = flat_matrix(deltas, z_off[layer], 1, fan_in * pieces)
                        delta_a = flat_matrix(dact, 0, 1, fan_in)
                        for f in range(fan_in):
                            acc = 0.0
                            for c in range(n_cols):
                                acc += delta[0, c] * W[f, c]
                            delta_a[0, f] = acc
                        backprop_activation(
                            delta_a, flat_matrix(pre, z_off[layer] + i * fan_in * pieces, 1, fan_in * pieces),
                            flat_matrix(acts, a_off[layer] + i * fan_in, 1, fan_in), delta_z,
                            layer_int[below, LAYER_ACTIVATION], layer_float[below, LAYER_SLOPE], pieces,
                            0.0, 0, 0, 0, below,
                        )
                scale = row_scale[start + i]
                if scale != 1.0:
                    for c in range(row.shape[0]):
                        row[c] *= scale


# Cached kernels load without Numba's compiler set-up (see cache).


load_without_compiler_setup(globals())
