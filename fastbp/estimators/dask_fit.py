"""The estimator's side of a fit on dask collections (see ``engine/dask.py`` for what runs where).

:func:`fit_dask` checks the collections and the parameters, sets up the classes, the network,
its parameters and the solver state on the estimator, as an in-memory fit does, and runs the
in-memory loops (``_run_lbfgs``, ``_run_iterations``) over the blocks: their full-batch objective
(``engine.dask.BlockObjective``) or one epoch of the compiled mini-batch steps per block.
"""

import math
import warnings

import numpy as np
from sklearn.base import is_classifier
from sklearn.exceptions import DataConversionWarning
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import _check_feature_names, _check_n_features

from ..engine import cpu, dask as dask_engine
from ..kernels.config import CHUNK_ROWS
from ..kernels.losses import needs_nonnegative_targets
from ..kernels.optimizers import STOCHASTIC_SOLVERS
from ..solvers.state import OptimizerState


def _validate_dask_input(est, X, y, sample_weight, reset):
    """Dask arrays X (2-D, one column chunk, kernels' dtype), y (1-D or 2-D), sample_weight (or None)."""
    # a dask DataFrame's column names: those of its empty pandas meta
    _check_feature_names(est, X._meta if hasattr(X, "to_dask_array") and hasattr(X, "_meta") else X, reset=reset)
    X = dask_engine.as_dask_array(X, "X")
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D dask array as X, got {X.ndim} dimension(s).")
    dask_engine.check_rows(X, "X", X)
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
    y = dask_engine.as_dask_array(y, "y", like=X)
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D or 2-D, got {y.ndim} dimensions.")
    dask_engine.check_rows(y, "y", X)
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
        sample_weight = dask_engine.as_dask_array(sample_weight, "sample_weight", like=X)
        if sample_weight.ndim != 1:
            raise ValueError(f"sample_weight must be 1-D, got shape {sample_weight.shape}.")
        dask_engine.check_rows(sample_weight, "sample_weight", X)
        if sample_weight.dtype.kind not in "biuf":
            raise ValueError(f"sample_weight must hold numbers, got dtype {sample_weight.dtype}.")
    return X, y, sample_weight, dtype


def _class_targets(est, y, incremental, stats):
    """Set up (or check) the classifier's classes like ``MLPClassifier._validate_input``; return
    the target spec for :func:`dask_engine.prepare_block`."""
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


def _block_epochs(est, blocks, client, network, flat, optimizer, batch_size, seed, parts, dtype):
    """One epoch over the blocks (the ``step`` of ``_run_iterations``) for mini-batch solvers."""
    n_blocks = len(blocks)

    def epoch(deadline):
        order = est._random_state.permutation(n_blocks) if est.shuffle else np.arange(n_blocks)
        total, n_seen, timed_out = 0.0, 0, False
        epoch.samples_done = 0
        stream = dask_engine.stream_blocks(blocks, order, client)
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
    if est._validation_given(X_val, y_val, sample_weight_val, incremental):
        X_val, y_val, sample_weight_val = (
            np.asarray(v.compute()) if dask_engine.is_dask_collection(v) else v for v in (X_val, y_val, sample_weight_val)
        )
        validation = est._validate_validation_data(X_val, y_val, sample_weight_val, dtype)

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
            dask.delayed(dask_engine.class_weight_sum)(yb, wb, targets[1], class_weights, dtype)
            for yb, wb in zip(y_blocks, w_blocks)
        ])
        if not math.fsum(weight_sums) > 0:
            raise ValueError("class_weight and sample_weight leave no sample with a positive weight.")
    blocks = [
        dask.delayed(dask_engine.prepare_block)(
            xb, yb, wb, {"dtype": dtype, "block": i, "targets": targets, "class_weights": class_weights}
        )
        for i, (xb, yb, wb) in enumerate(zip(x_blocks, y_blocks, w_blocks))
    ]
    client = dask_engine.distributed_client()
    stochastic = est.solver in STOCHASTIC_SOLVERS
    if not stochastic:
        blocks = list(dask.persist(*blocks))  # made once, kept where they are made
    icfg, fcfg = est._config(dtype, 0)
    objective = dask_engine.BlockObjective(blocks, network, icfg, fcfg, est.n_jobs, client)

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
