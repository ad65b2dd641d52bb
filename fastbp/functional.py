"""Backpropagation as plain functions: the algorithm at work, one call each."""

from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_array

from .engine import cpu, cuda_engine
from .engine.network import check_name as _check_name, hidden_activation_names, make_network
from .kernels.activations import OUTPUT_ACTIVATIONS
from .kernels.losses import LOSS_PAIRS, needs_nonnegative_targets


@dataclass
class BackpropResult:
    """What :func:`backprop` computes.

    Parameters
    ----------
    loss : float
        Mean loss over the samples (weighted by ``sample_weight``) plus
        ``(alpha / 2 * sum ||W||**2 + l1 * sum |W|) / S``.
    coef_grads : list of ndarray
        ``dL/dW(l) = (x(l-1).T @ delta(l) + alpha * W(l) + l1 * sign(W(l))) / S``,
        shaped like ``coefs``.
    intercept_grads : list of ndarray
        ``dL/db(l) = sum_i delta(l)_i / S``, shaped like ``intercepts``.
    deltas : list of ndarray
        ``delta(l)`` of each layer, shape (n_samples, fan_out): the per-sample
        derivative of the loss with respect to ``z(l)``, times the sample weight
        and not divided by ``S``. For the matched pairs ``delta(L) = (y_pred - y) * w``;
        ``delta(l) = (delta(l+1) @ W(l+1).T) * phi'(z(l))``.
    activations : list of ndarray
        ``[X, x(1), ..., y_pred]`` as returned by :func:`forward`.
    """

    loss: float
    coef_grads: list
    intercept_grads: list
    deltas: list
    activations: list


def _check_positive_real(value, name, minimum=0.0, strict=False):
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    if value < minimum or (strict and value == minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}, got {value!r}.")
    return float(value)


def _prepare(coefs, intercepts, X, activation, out_activation, negative_slope, maxout_pieces):
    """Validate the network and X; return (network, flat params, X, dtype)."""
    _check_name(out_activation, OUTPUT_ACTIVATIONS, "out_activation")
    negative_slope = _check_positive_real(negative_slope, "negative_slope")
    if isinstance(maxout_pieces, bool) or not isinstance(maxout_pieces, Integral) or maxout_pieces < 1:
        raise ValueError(f"maxout_pieces must be an integer >= 1, got {maxout_pieces!r}.")
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
    names = hidden_activation_names(activation, len(coefs) - 1)
    units = [X.shape[1]]
    for layer, (W, b) in enumerate(zip(coefs, intercepts)):
        if W.ndim != 2:
            raise ValueError(f"coefs[{layer}] must be 2-D (fan_in, fan_out), got shape {W.shape}.")
        if W.shape[0] != units[-1]:
            raise ValueError(
                f"coefs[{layer}] has {W.shape[0]} rows but layer {layer} has {units[-1]} units "
                f"({'X has that many features' if layer == 0 else 'previous layer outputs'})."
            )
        if b.shape != (W.shape[1],):
            raise ValueError(f"intercepts[{layer}] must have shape ({W.shape[1]},), got {b.shape}.")
        for name, arr in ((f"coefs[{layer}]", W), (f"intercepts[{layer}]", b)):
            if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
                raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}.")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} contains NaN or infinity.")
        pieces = maxout_pieces if layer < len(names) and names[layer] == "maxout" else 1
        if W.shape[1] % pieces:
            raise ValueError(
                f"coefs[{layer}] feeds a maxout layer with {pieces} pieces per unit, so its "
                f"{W.shape[1]} columns must be a multiple of {pieces}."
            )
        units.append(W.shape[1] // pieces)
    network = make_network(units, names, out_activation, negative_slope, maxout_pieces)
    flat = network.pack(coefs, intercepts, dtype)
    return network, flat, X, dtype


def _check_device(device):
    """Validate ``device``; for 'cuda' load the CUDA twin (a clear error without a GPU)."""
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}.")
    if device == "cpu":
        return None
    return cuda_engine()  # only for device='cuda': the CPU path never imports CUDA


def forward(coefs, intercepts, X, activation="relu", out_activation="identity", *, negative_slope=0.01,
            maxout_pieces=2, device="cpu"):
    """Forward pass: every layer's activations.

    ``z(l) = x(l-1) @ W(l) + b(l)``, ``x(l) = phi(z(l))`` in the hidden layers,
    ``y_pred = phi_out(z(L))`` at the output.

    Parameters
    ----------
    coefs : list of ndarray of shape (fan_in, fan_out)
        Weight matrices, scikit-learn's ``coefs_`` layout. A maxout layer with
        k pieces has ``fan_out = units * k`` columns; unit u's pieces are columns
        ``u*k ... u*k + k - 1``.
    intercepts : list of ndarray of shape (fan_out,)
        Bias vectors.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Input. float32 stays float32; anything else is computed in float64.
    activation : str or list of str, default='relu'
        Hidden-layer activation, one name for all or one per hidden layer:
        'identity', 'logistic' ('sigmoid'), 'tanh', 'relu', 'leaky_relu',
        'swish' ('silu'), 'softplus', 'elu', 'gelu', 'maxout'.
    out_activation : {'identity', 'softmax', 'logistic', 'exp'}, default='identity'
        Output activation.
    negative_slope : float, default=0.01
        Slope of leaky_relu for negative inputs.
    maxout_pieces : int, default=2
        Linear pieces per maxout unit.
    device : {'cpu', 'cuda'}, default='cpu'
        Where to compute: 'cuda' runs the CUDA kernels on an NVIDIA GPU
        (``pip install 'fastbp[cuda]'``; a RuntimeError says what is missing).

    Returns
    -------
    activations : list of ndarray
        ``[X, x(1), ..., y_pred]``: ``len(coefs) + 1`` arrays.
    """
    cuda = _check_device(device)
    network, flat, X, _ = _prepare(coefs, intercepts, X, activation, out_activation, negative_slope, maxout_pieces)
    if cuda is not None:
        return [X] + cuda.forward_all(network, flat, X)
    return [X] + cpu.forward_all(network, flat, X)


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
    *,
    l1=0.0,
    huber_delta=1.0,
    negative_slope=0.01,
    maxout_pieces=2,
    device="cpu",
):
    """Loss, gradients and deltas of a network on (X, Y) by backpropagation.

    The output delta of a matched output-activation/loss pair is
    ``delta(L) = (y_pred - y) * w``; deltas flow back as
    ``delta(l) = (delta(l+1) @ W(l+1).T) * phi'(z(l))`` and the gradients are
    ``dL/dW(l) = (x(l-1).T @ delta(l) + alpha * W(l) + l1 * sign(W(l))) / S`` and
    ``dL/db(l) = sum(delta(l)) / S`` with ``S`` the number of samples or the sum
    of the sample weights.

    Parameters
    ----------
    coefs : list of ndarray of shape (fan_in, fan_out)
        Weight matrices, as in :func:`forward`.
    intercepts : list of ndarray of shape (fan_out,)
        Bias vectors.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Input, as in :func:`forward`.
    Y : array-like of shape (n_samples, n_outputs)
        Targets (one-hot or indicator rows for the classification losses).
    activation : str or list of str, default='relu'
        Hidden-layer activation(s), as in :func:`forward`.
    out_activation : {'identity', 'softmax', 'logistic', 'exp'}, default='identity'
        Output activation; it must go with ``loss`` (below).
    loss : str, default='squared_error'
        The loss and the output activations it goes with:

        - identity + 'squared_error' ``1/2 sum_k (y_pred - y)**2``,
          'absolute_error' ``sum_k |y_pred - y|`` (subgradient 0 at 0),
          'huber' (``1/2 r**2`` for ``|r| <= huber_delta``, else
          ``huber_delta * (|r| - huber_delta / 2)``);
        - softmax + 'log_loss' ``-sum_k y log y_pred``;
        - logistic + 'log_loss' ``-sum_k [y log y_pred + (1 - y) log(1 - y_pred)]``;
        - softmax or logistic + 'squared_error' (the delta goes through the
          output activation's Jacobian);
        - exp + 'poisson' ``sum_k (y_pred - y log y_pred)``.

        Probabilities are clipped to ``[eps, 1 - eps]`` inside the logarithms, as
        scikit-learn does.
    alpha : float, default=0.0
        L2 penalty on the weights (not the biases).
    sample_weight : array-like of shape (n_samples,), default=None
        Per-sample weights; ``S = sum(sample_weight)``.
    l1 : float, default=0.0
        L1 penalty on the weights.
    huber_delta : float, default=1.0
        Threshold of the Huber loss.
    negative_slope : float, default=0.01
        Slope of leaky_relu for negative inputs.
    maxout_pieces : int, default=2
        Linear pieces per maxout unit.
    device : {'cpu', 'cuda'}, default='cpu'
        Where to compute, as in :func:`forward`.

    Returns
    -------
    result : BackpropResult
        ``loss``, ``coef_grads``, ``intercept_grads``, ``deltas``, ``activations``.
    """
    cuda = _check_device(device)
    network, flat, X, dtype = _prepare(
        coefs, intercepts, X, activation, out_activation, negative_slope, maxout_pieces
    )
    if not isinstance(loss, str) or (out_activation, loss) not in LOSS_PAIRS:
        pairs = ", ".join(f"{a} + {l}" for a, l in LOSS_PAIRS)
        raise ValueError(
            f"loss {loss!r} does not go with out_activation {out_activation!r}; the supported pairs are: {pairs}."
        )
    alpha = _check_positive_real(alpha, "alpha")
    l1 = _check_positive_real(l1, "l1")
    huber_delta = _check_positive_real(huber_delta, "huber_delta", strict=True)
    n = X.shape[0]
    n_out = int(network.units[-1])
    Y = check_array(Y, dtype=dtype, ensure_2d=True, input_name="Y", ensure_min_samples=1)
    if Y.shape != (n, n_out):
        raise ValueError(f"Y must have shape ({n}, {n_out}), got {Y.shape}.")
    if sample_weight is not None:
        sample_weight = check_array(sample_weight, ensure_2d=False, dtype=dtype, input_name="sample_weight")
        if sample_weight.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), got {sample_weight.shape}.")
        if np.any(sample_weight < 0) or not sample_weight.sum() > 0:
            raise ValueError("sample_weight must be non-negative with a positive sum.")
    if needs_nonnegative_targets(loss) and np.any(Y < 0):
        raise ValueError(f"The {loss} loss requires non-negative targets Y.")

    icfg, fcfg = cpu.make_config(
        LOSS_PAIRS[(out_activation, loss)], alpha=alpha, l1=l1, huber_delta=huber_delta,
        clip=float(np.finfo(dtype).eps),
    )
    data = cpu.InputData(X, dtype)
    if cuda is not None:
        loss_value, grads, deltas, outputs = cuda.backprop_all(network, flat, data, Y, sample_weight, icfg, fcfg)
        coef_grads, intercept_grads = network.views(grads)
        return BackpropResult(float(loss_value), coef_grads, intercept_grads, deltas, [X] + outputs)
    trainer = cpu.Trainer(network, data, Y, sample_weight, icfg, fcfg, batch_rows=n)
    rows = np.arange(n, dtype=np.int64)
    loss_value = trainer.loss_and_gradient(flat, rows, chunk=n)
    ws = trainer.ws
    coef_grads, intercept_grads = network.views(ws.grads.copy())
    layers = range(1, network.n_layers + 1)
    deltas = [ws.layer_delta(network, layer, n).copy() for layer in layers]
    activations = [X] + [ws.layer_output(network, layer, n).copy() for layer in layers]
    return BackpropResult(float(loss_value), coef_grads, intercept_grads, deltas, activations)


def gradcheck(
    coefs,
    intercepts,
    X,
    Y,
    activation="relu",
    out_activation="identity",
    loss="squared_error",
    alpha=0.0,
    sample_weight=None,
    *,
    step=1e-4,
    order=4,
    atol=1e-8,
    floor=1e-3,
    **loss_options,
):
    """Largest relative error between backprop's gradient and finite differences.

    Every parameter is perturbed in turn and the loss of :func:`backprop`
    differentiated numerically with a central stencil, in float64.

    Parameters
    ----------
    coefs : list of ndarray of shape (fan_in, fan_out)
        Weight matrices, as in :func:`backprop` (converted to float64).
    intercepts : list of ndarray of shape (fan_out,)
        Bias vectors (converted to float64).
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Input (converted to float64).
    Y : array-like of shape (n_samples, n_outputs)
        Targets, as in :func:`backprop`.
    activation : str or list of str, default='relu'
        Hidden-layer activation(s).
    out_activation : {'identity', 'softmax', 'logistic', 'exp'}, default='identity'
        Output activation.
    loss : str, default='squared_error'
        Loss, as in :func:`backprop`.
    alpha : float, default=0.0
        L2 penalty on the weights.
    sample_weight : array-like of shape (n_samples,), default=None
        Per-sample weights.
    step : float, default=1e-4
        Finite-difference step ``h``.
    order : {2, 4}, default=4
        Accuracy order of the central stencil: 2 is ``(f(x+h) - f(x-h)) / 2h``,
        4 is ``(-f(x+2h) + 8 f(x+h) - 8 f(x-h) + f(x-2h)) / 12h`` (truncation
        error of order ``h**4``).
    atol : float, default=1e-8
        Absolute floor of the denominator.
    floor : float, default=1e-3
        Relative floor of the denominator: the error of a parameter is
        ``|g - g_fd| / max(|g|, |g_fd|, atol, floor * max_all |g_fd|)``, so
        gradients many orders of magnitude below the largest one (a dead ReLU's
        exact zeros) are judged against the largest one's scale rather than
        against the finite differences' rounding noise.
    **loss_options
        Passed to :func:`backprop` (``l1``, ``huber_delta``, ``negative_slope``,
        ``maxout_pieces``).

    Returns
    -------
    max_relative_error : float
        The largest error over all weights and biases.
    """
    if order not in (2, 4):
        raise ValueError(f"order must be 2 or 4, got {order!r}.")
    step = _check_positive_real(step, "step", strict=True)
    X = check_array(X, accept_sparse=["csr", "csc"], dtype=np.float64, input_name="X")
    params = [np.array(p, dtype=np.float64) for p in list(coefs) + list(intercepts)]
    n_coefs = len(coefs)

    def loss_at(params):
        return backprop(params[:n_coefs], params[n_coefs:], X, Y, activation, out_activation, loss, alpha,
                        sample_weight, **loss_options).loss

    result = backprop(params[:n_coefs], params[n_coefs:], X, Y, activation, out_activation, loss, alpha,
                      sample_weight, **loss_options)
    analytic = list(result.coef_grads) + list(result.intercept_grads)
    shifts, weights = ((1, -1), (0.5, -0.5)) if order == 2 else ((2, 1, -1, -2), (-1 / 12, 8 / 12, -8 / 12, 1 / 12))
    numeric_grads = []
    for p in params:
        numeric = np.empty_like(p)
        for idx in np.ndindex(p.shape):
            original = p[idx]
            value = 0.0
            for shift, weight in zip(shifts, weights):
                p[idx] = original + shift * step
                value += weight * loss_at(params)
            p[idx] = original
            numeric[idx] = value / step
        numeric_grads.append(numeric)
    scale = max(atol, floor * max(float(np.abs(n).max()) for n in numeric_grads))
    worst = 0.0
    for g, numeric in zip(analytic, numeric_grads):
        denominator = np.maximum(np.maximum(np.abs(g), np.abs(numeric)), scale)
        worst = max(worst, float((np.abs(g - numeric) / denominator).max()))
    return worst
