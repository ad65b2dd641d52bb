"""A network from names: the layer widths and activation names a user gives, as the engine's
:class:`~fastbp.engine.cpu.Network` of integer codes."""

from ..kernels.activations import ACT_MAXOUT, HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from . import cpu


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
    return cpu.Network(units, codes, pieces=pieces, slopes=slopes, dropout=rates)
