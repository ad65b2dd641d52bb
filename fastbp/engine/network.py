"""The engine's :class:`Network` (layer widths, activation codes, the flat parameter vector's
layout) and :func:`make_network`, which builds one from the names a user gives."""

import numpy as np

from ..kernels.activations import ACT_MAXOUT, HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from ..kernels.codes import LAYER_ACTIVATION, LAYER_DROPOUT, LAYER_PIECES, LAYER_SLOPE, N_LAYER_FLOAT, N_LAYER_INT


def _check_codes(what, codes, registry):
    """Raise ValueError for a code the kernels do not know: every integer code
    reaching a kernel is checked here, once, at the boundary (a kernel's branches
    are chosen by code, and an unknown one must never reach them)."""
    known = {int(code): name for name, code in reversed(registry.items())}
    for code in codes:
        if isinstance(code, (bool, np.bool_)) or not isinstance(code, (int, np.integer)) or int(code) not in known:
            choices = ", ".join(f"{c} ({n})" for c, n in sorted(known.items()))
            raise ValueError(f"unknown {what} code {code!r}; the kernels know {choices}")


class Network:
    """A network's shape: layer widths, per-layer activations, parameter offsets.

    Parameters
    ----------
    layer_units : sequence of int
        Widths of all layers: ``[n_features, *hidden_layer_sizes, n_outputs]``.
    activations : sequence of int
        Activation code of each weight layer (``len(layer_units) - 1`` codes; the
        last one is the output activation).
    pieces : sequence of int, optional
        Linear pieces per unit of each layer (maxout); 1 elsewhere.
    slopes : sequence of float, optional
        Negative slope of each leaky-ReLU layer.
    dropout : sequence of float, optional
        Dropout rate on each layer's output (hidden layers only).
    """

    def __init__(self, layer_units, activations, pieces=None, slopes=None, dropout=None):
        self.units = np.asarray(layer_units, dtype=np.int64)
        if self.units.ndim != 1 or self.units.shape[0] < 2 or np.any(self.units < 1):
            raise ValueError(f"invalid layer widths {list(layer_units)}")
        n_layers = self.units.shape[0] - 1
        if len(activations) != n_layers:
            raise ValueError(f"expected {n_layers} activation codes, got {len(activations)}")
        _check_codes("hidden activation", list(activations)[:-1], HIDDEN_ACTIVATIONS)
        _check_codes("output activation", list(activations)[-1:], OUTPUT_ACTIVATIONS)
        self.layer_int = np.zeros((n_layers, N_LAYER_INT), dtype=np.int64)
        self.layer_float = np.zeros((n_layers, N_LAYER_FLOAT), dtype=np.float64)
        self.layer_int[:, LAYER_ACTIVATION] = activations
        self.layer_int[:, LAYER_PIECES] = 1 if pieces is None else pieces
        self.layer_float[:, LAYER_SLOPE] = 0.0 if slopes is None else slopes
        self.layer_float[:, LAYER_DROPOUT] = 0.0 if dropout is None else dropout
        is_maxout = self.layer_int[:, LAYER_ACTIVATION] == ACT_MAXOUT
        self.layer_int[~is_maxout, LAYER_PIECES] = 1
        self.pieces = self.layer_int[:, LAYER_PIECES].copy()
        self.cols = self.units[1:] * self.pieces  # columns of each W
        w_sizes = self.units[:-1] * self.cols
        self.w_off = np.concatenate(([0], np.cumsum(w_sizes)[:-1])).astype(np.int64)
        self.n_weights = int(w_sizes.sum())
        self.b_off = (self.n_weights + np.concatenate(([0], np.cumsum(self.cols)[:-1]))).astype(np.int64)
        self.n_params = self.n_weights + int(self.cols.sum())
        # Workspaces: layer l (1..L) starts at _a_units[l] * rows in the output
        # buffer and at _z_units[l] * rows in the pre-activation / delta buffers;
        # entry 0 is unused (the input has its own buffer).
        self._a_units = np.concatenate(([0, 0], np.cumsum(self.units[1:-1]))).astype(np.int64)
        self._z_units = np.concatenate(([0, 0], np.cumsum(self.cols[:-1]))).astype(np.int64)

    @property
    def n_layers(self):
        """Number of weight layers (len(coefs_))."""
        return self.units.shape[0] - 1

    @property
    def has_dropout(self):
        return bool(np.any(self.layer_float[:-1, LAYER_DROPOUT] > 0))

    def views(self, flat):
        """``(coefs, intercepts)``: lists of views into the flat vector ``flat``."""
        coefs, intercepts = [], []
        for layer in range(self.n_layers):
            a, b = int(self.units[layer]), int(self.cols[layer])
            w0, b0 = int(self.w_off[layer]), int(self.b_off[layer])
            coefs.append(flat[w0 : w0 + a * b].reshape(a, b))
            intercepts.append(flat[b0 : b0 + b])
        return coefs, intercepts

    def pack(self, coefs, intercepts, dtype, out=None):
        """A new flat vector (or ``out``) holding copies of ``coefs`` and ``intercepts``."""
        if len(coefs) != self.n_layers or len(intercepts) != self.n_layers:
            raise ValueError(
                f"expected {self.n_layers} weight matrices and bias vectors, got "
                f"{len(coefs)} and {len(intercepts)}"
            )
        flat = np.empty(self.n_params, dtype=dtype) if out is None else out
        dst_coefs, dst_intercepts = self.views(flat)
        for dst, src in zip(dst_coefs + dst_intercepts, list(coefs) + list(intercepts)):
            src = np.asarray(src)
            if src.shape != dst.shape:
                raise ValueError(f"parameter of shape {src.shape} where {dst.shape} was expected")
            dst[...] = src
        return flat

    def tables(self):
        return self.layer_int, self.layer_float

    def offsets(self, ws):
        return self.units, self.w_off, self.b_off, ws.a_off, ws.z_off


def check_name(value, options, what):
    """``value`` if it is one of the names in ``options``, else a ValueError naming them."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{what} must be one of {sorted(options)}, got {value!r}.")
    return value


def hidden_activation_names(activation, n_hidden):
    """One validated hidden-activation name per hidden layer."""
    if isinstance(activation, str):
        names = [activation] * n_hidden
    else:
        try:
            names = list(activation)
        except TypeError:
            raise ValueError(
                f"activation must be a name or a list of names, one per hidden layer, got {activation!r}."
            ) from None
        if len(names) != n_hidden:
            raise ValueError(
                f"activation lists {len(names)} names but the network has {n_hidden} hidden layers."
            )
    for name in names:
        check_name(name, HIDDEN_ACTIVATIONS, "activation")
    return names


def make_network(units, activation, out_activation, negative_slope=0.01, maxout_pieces=2, dropout=None):
    """The engine's Network for layer widths ``units`` and activation names."""
    names = hidden_activation_names(activation, len(units) - 2)
    codes = [HIDDEN_ACTIVATIONS[name] for name in names] + [OUTPUT_ACTIVATIONS[out_activation]]
    pieces = [maxout_pieces if code == ACT_MAXOUT else 1 for code in codes]
    slopes = [negative_slope] * len(codes)
    rates = None if dropout is None else list(dropout) + [0.0]
    return Network(units, codes, pieces=pieces, slopes=slopes, dropout=rates)
