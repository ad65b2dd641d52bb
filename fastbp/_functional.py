"""Backpropagation as plain functions: the algorithm at work, one call each."""

from dataclasses import dataclass
from numbers import Real

import numpy as np
from sklearn.utils import check_array

from . import _engine
from ._codes import HIDDEN_ACTIVATIONS, MATCHED_LOSSES, OUTPUT_ACTIVATIONS


@dataclass
class BackpropResult:
    """What :func:`backprop` computes.

    Attributes
    ----------
    loss : float
        Mean loss over the samples (weighted by ``sample_weight``) plus
        ``alpha / (2 S) * sum ||W||**2``.
    coef_grads : list of ndarray
        ``dL/dW(l) = (x(l-1).T @ delta(l) + alpha * W(l)) / S``, shaped like ``coefs``.
    intercept_grads : list of ndarray
        ``dL/db(l) = sum_i delta(l)_i / S``, shaped like ``intercepts``.
    deltas : list of ndarray
        ``delta(l)`` of each layer, shape (n_samples, fan_out): the per-sample
        derivative of the loss with respect to ``z(l)``, times the sample weight
        and not divided by ``S``. ``delta(L) = (y_pred - y) * w`` and
        ``delta(l) = (delta(l+1) @ W(l+1).T) * phi'(z(l))``.
    activations : list of ndarray
        ``[X, x(1), ..., y_pred]`` as returned by :func:`forward`.
    """

    loss: float
    coef_grads: list
    intercept_grads: list
    deltas: list
    activations: list


def _check_name(value, options, what):
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{what} must be one of {sorted(options)}, got {value!r}.")
    return value


def _prepare(coefs, intercepts, X, activation, out_activation):
    """Validate the network and X; return (layout, flat params, X, icfg, dtype)."""
    _check_name(activation, HIDDEN_ACTIVATIONS, "activation")
    _check_name(out_activation, OUTPUT_ACTIVATIONS, "out_activation")
    X = check_array(X, accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32), input_name="X")
    dtype = X.dtype
    if isinstance(coefs, np.ndarray) or isinstance(intercepts, np.ndarray):
        raise TypeError("coefs and intercepts must be lists of arrays, one per layer.")
    coefs = [np.asarray(c) for c in coefs]
    intercepts = [np.asarray(b) for b in intercepts]
    if len(coefs) == 0 or len(coefs) != len(intercepts):
        raise ValueError(
            f"coefs and intercepts must be non-empty lists of the same length, got "
            f"{len(coefs)} and {len(intercepts)}."
        )
    units = [X.shape[1]]
    for layer, (W, b) in enumerate(zip(coefs, intercepts)):
        if W.ndim != 2:
            raise ValueError(f"coefs[{layer}] must be 2-D (fan_in, fan_out), got shape {W.shape}.")
        if W.shape[0] != units[-1]:
            raise ValueError(
                f"coefs[{layer}] has {W.shape[0]} rows but layer {layer} has {units[-1]} units "
                f"({'X has that many features' if layer == 0 else 'previous fan_out'})."
            )
        if b.shape != (W.shape[1],):
            raise ValueError(f"intercepts[{layer}] must have shape ({W.shape[1]},), got {b.shape}.")
        for name, arr in ((f"coefs[{layer}]", W), (f"intercepts[{layer}]", b)):
            if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
                raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}.")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} contains NaN or infinity.")
        units.append(W.shape[1])
    layout = _engine.NetworkLayout(units)
    flat = layout.pack(coefs, intercepts, dtype)
    icfg, _ = _engine.make_config(HIDDEN_ACTIVATIONS[activation], OUTPUT_ACTIVATIONS[out_activation], 0)
    return layout, flat, X, icfg, dtype


def forward(coefs, intercepts, X, activation="relu", out_activation="identity"):
    """Forward pass: every layer's activations.

    ``z(l) = x(l-1) @ W(l) + b(l)``, ``x(l) = phi(z(l))`` in the hidden layers,
    ``y_pred = phi_out(z(L))`` at the output.

    Parameters
    ----------
    coefs : list of ndarray of shape (fan_in, fan_out)
        Weight matrices, scikit-learn's ``coefs_`` layout.
    intercepts : list of ndarray of shape (fan_out,)
        Bias vectors.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Input. float32 stays float32; anything else is computed in float64.
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Hidden-layer activation.
    out_activation : {'identity', 'softmax', 'logistic', 'exp'}, default='identity'
        Output activation.

    Returns
    -------
    activations : list of ndarray
        ``[X, x(1), ..., y_pred]``: ``len(coefs) + 1`` arrays.
    """
    layout, flat, X, icfg, _ = _prepare(coefs, intercepts, X, activation, out_activation)
    return [X] + _engine.forward_all(layout, flat, icfg, X)


def backprop(
    coefs,
    intercepts,
    X,
    Y,
    activation="relu",
    out_activation="identity",
    loss="squared_error",
    alpha=0.0,
    sample_weight=None,
):
    """Loss, gradients and deltas of a network on (X, Y) by backpropagation.

    The output delta of a matched output-activation/loss pair is
    ``delta(L) = (y_pred - y) * w``; deltas flow back as
    ``delta(l) = (delta(l+1) @ W(l+1).T) * phi'(z(l))`` and the gradients are
    ``dL/dW(l) = (x(l-1).T @ delta(l) + alpha * W(l)) / S`` and
    ``dL/db(l) = sum(delta(l)) / S`` with ``S`` the number of samples or the sum
    of the sample weights.

    Parameters
    ----------
    coefs, intercepts, X, activation, out_activation
        As in :func:`forward`.
    Y : array-like of shape (n_samples, n_outputs)
        Targets (one-hot or indicator rows for the log losses).
    loss : {'squared_error', 'log_loss', 'poisson'}, default='squared_error'
        Loss, matched with ``out_activation``: identity + squared_error
        (``1/2 sum_k (y_pred - y)**2``), softmax + log_loss
        (``-sum_k y log y_pred``), logistic + log_loss
        (``-sum_k [y log y_pred + (1 - y) log(1 - y_pred)]``), exp + poisson
        (``sum_k (y_pred - y log y_pred)``). Probabilities are clipped to
        ``[eps, 1 - eps]`` inside the logarithms, as scikit-learn does.
    alpha : float, default=0.0
        L2 penalty on the weights (not the biases).
    sample_weight : array-like of shape (n_samples,), default=None
        Per-sample weights; ``S = sum(sample_weight)``.

    Returns
    -------
    result : BackpropResult
        ``loss``, ``coef_grads``, ``intercept_grads``, ``deltas``, ``activations``.
    """
    layout, flat, X, icfg, dtype = _prepare(coefs, intercepts, X, activation, out_activation)
    if not isinstance(loss, str) or (out_activation, loss) not in MATCHED_LOSSES:
        pairs = ", ".join(f"{a} + {l}" for a, l in MATCHED_LOSSES)
        raise ValueError(
            f"loss {loss!r} is not matched with out_activation {out_activation!r}; "
            f"the matched pairs are: {pairs}."
        )
    if not isinstance(alpha, Real) or isinstance(alpha, bool) or not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}.")
    n = X.shape[0]
    Y = check_array(Y, dtype=dtype, ensure_2d=True, input_name="Y", ensure_min_samples=1)
    if Y.shape != (n, layout.units[-1]):
        raise ValueError(f"Y must have shape ({n}, {layout.units[-1]}), got {Y.shape}.")
    if sample_weight is not None:
        sample_weight = check_array(sample_weight, ensure_2d=False, dtype=dtype, input_name="sample_weight")
        if sample_weight.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), got {sample_weight.shape}.")
        if np.any(sample_weight < 0) or sample_weight.sum() <= 0:
            raise ValueError("sample_weight must be non-negative with a positive sum.")
    if loss == "poisson" and np.any(Y < 0):
        raise ValueError("The poisson loss requires non-negative targets Y.")

    icfg, fcfg = _engine.make_config(
        HIDDEN_ACTIVATIONS[activation], OUTPUT_ACTIVATIONS[out_activation], MATCHED_LOSSES[(out_activation, loss)],
        alpha=float(alpha), clip=float(np.finfo(dtype).eps),
    )
    data = _engine.InputData(X, dtype)
    trainer = _engine.Trainer(layout, data, Y, sample_weight, icfg, fcfg, batch_rows=n)
    rows = np.arange(n, dtype=np.int64)
    with _engine.compute_context(None):
        loss_value = trainer.loss_and_gradient(flat, rows, chunk=n)
    ws = trainer.ws
    coef_grads, intercept_grads = layout.views(ws.grads.copy())
    deltas = [ws.layer(layout, ws.deltas, layer, n).copy() for layer in range(1, layout.n_layers + 1)]
    activations = [X] + [ws.layer(layout, ws.acts, layer, n).copy() for layer in range(1, layout.n_layers + 1)]
    return BackpropResult(float(loss_value), coef_grads, intercept_grads, deltas, activations)
