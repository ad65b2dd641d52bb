"""The constructor parameters both estimators take: their defaults (scikit-learn's), their
documentation, and the optimizers' hyper-parameters from their registry (kernels/optimizers.py);
the ``activation`` and ``solver`` entries of the docstrings list the registries' names.

Each estimator's ``__init__`` names only its own parameters and forwards ``**parameters``;
``BaseMultilayerPerceptron.__init_subclass__`` gives it the full signature and puts
:func:`parameters_doc` in its docstring where the line ``DOC_MARK`` stands.
"""

import textwrap
from numbers import Real
from typing import NamedTuple

from sklearn.utils._param_validation import Interval

from ..kernels.activations import ACTIVATIONS
from ..kernels.optimizers import HYPER_PARAMETERS, OPTIMIZERS


class SharedParameter(NamedTuple):
    """A keyword parameter of both estimators: its default, its numpydoc type and description."""

    name: str
    default: object
    type: str
    doc: str


SHARED_PARAMETERS = (
    SharedParameter("alpha", 0.0001, "float", (
        "Strength of the L2 penalty (divided by the batch's sample size or sum of sample weights "
        "when added to the loss)."
    )),
    SharedParameter("batch_size", "auto", "int or 'auto'", (
        "Mini-batch size of the stochastic solvers; 'auto' is ``min(200, n_samples)``."
    )),
    SharedParameter("learning_rate", "constant", "{'constant', 'invscaling', 'adaptive', 'cosine'}", (
        "Learning-rate schedule of the mini-batch solvers: scikit-learn's three (which its 'adam' "
        "ignores, and so does fastbp's) and 'cosine' annealing from ``learning_rate_init`` to 0 "
        "over ``max_iter`` epochs (all mini-batch solvers)."
    )),
    SharedParameter("learning_rate_init", 0.001, "float", (
        "Initial learning rate ('sgd', 'adam')."
    )),
    SharedParameter("power_t", 0.5, "float", (
        "Exponent of the 'invscaling' schedule."
    )),
    SharedParameter("max_iter", 200, "int", (
        "Maximum number of epochs (stochastic solvers) or iterations (lbfgs)."
    )),
    SharedParameter("shuffle", True, "bool", (
        "Whether to shuffle the samples in each epoch."
    )),
    SharedParameter("random_state", None, "int, RandomState instance or None", (
        "Seeds the weight initialization, the early-stopping split and the shuffling, in scikit-"
        "learn's order."
    )),
    SharedParameter("tol", 1e-4, "float", (
        "Tolerance of the stopping rule."
    )),
    SharedParameter("verbose", False, "bool", (
        "Print progress messages."
    )),
    SharedParameter("warm_start", False, "bool", (
        "Reuse the previous solution as initialization."
    )),
    SharedParameter("early_stopping", False, "bool", (
        "Hold out ``validation_fraction`` of the data and stop when the validation score (accuracy "
        "for a classifier, R² for a regressor) stops improving; the best weights are restored."
    )),
    SharedParameter("validation_fraction", 0.1, "float", (
        "Share of the training data held out for early stopping."
    )),
    SharedParameter("n_iter_no_change", 10, "int", (
        "Epochs without a ``tol`` improvement before stopping."
    )),
    SharedParameter("max_fun", 15000, "int", (
        "Maximum number of loss evaluations of 'lbfgs'."
    )),
    SharedParameter("l1", 0.0, "float", (
        "Strength of the L1 penalty on the weights (scaled like ``alpha``)."
    )),
    SharedParameter("dropout", 0.0, "float or list of float", (
        "Inverted-dropout rate of the hidden layers' outputs, one for all or one per hidden layer; "
        "off in prediction; reproducible from ``random_state``. Stochastic solvers only."
    )),
    SharedParameter("init", "glorot", "{'glorot', 'he', 'lecun'}", (
        "Uniform weight initialization: Glorot (scikit-learn's), He (``sqrt(6 / fan_in)``) or LeCun"
        " (``sqrt(3 / fan_in)``)."
    )),
    SharedParameter("max_time", None, "float or None", (
        "Stop after this many seconds (checked between groups of mini-batches, a fraction of a "
        "second apart, and between iterations)."
    )),
    SharedParameter("negative_slope", 0.01, "float", (
        "Slope of 'leaky_relu' for negative inputs."
    )),
    SharedParameter("maxout_pieces", 2, "int", (
        "Linear pieces per 'maxout' unit: a maxout layer's weights have ``units * maxout_pieces`` "
        "columns."
    )),
    SharedParameter("n_jobs", None, "int or None", (
        "Threads of a fit: the mini-batch solvers split every batch over them (each thread runs its"
        " rows with single-threaded BLAS; the gradients are summed in a fixed order, so the same "
        "``random_state`` and ``n_jobs`` give the same weights bit for bit); the full-batch solvers"
        " and predict give them to BLAS. None: all cores (predict then leaves the thread pools as "
        "they are); -1 all cores, -2 all but one."
    )),
    SharedParameter("hogwild", False, "bool", (
        "Lock-free parallel online SGD (Hogwild!, Niu et al. 2011) for ``batch_size=1`` with a "
        "stochastic solver, on ``n_jobs`` threads: each thread takes the steps of its own share of "
        "every epoch's samples and adds them to the shared weights without locks, while the others "
        "do the same. Each thread keeps its own optimizer state (momentum, Adam's moments), "
        "averaged between the threads at the end of each call into the kernels (about every tenth "
        "of a second). Sparse X is written into a dense row per step. **Not deterministic**: the "
        "result depends on how the threads interleave, so the same ``random_state`` gives different"
        " weights from run to run (and two threads can add to one weight at the same moment, when "
        "one of the two changes is lost, as in Hogwild! without atomic adds). With one thread "
        "(``n_jobs=1``) it is the ordinary, reproducible online SGD."
    )),
    SharedParameter("hogwild_merge_every", 16, "int", (
        "Steps a Hogwild! thread takes on its own copy of the weights before it adds their change "
        "to the shared weights and continues from the sum. 1 updates the shared weights at every "
        "step, as in Niu et al.; larger values let the threads move fewer cache lines between the "
        "cores (measured on 2 cores, a 64-64-10 network: 1.2x the one-thread speed with 1, 1.6x "
        "with 16) at the price of staler weights."
    )),
    SharedParameter("device", "cpu", "{'cpu', 'cuda'}", (
        "Where fit and predict run. 'cuda' runs the kernels' CUDA twins on an NVIDIA GPU (``pip "
        "install 'fastbp[cuda]'``): the data, the parameters and the optimizer state stay on the "
        "GPU during fit (the weights are copied back once per epoch for the stopping rules), "
        "``coefs_`` are host arrays. Every solver but 'lm' runs there. Without a GPU, fit raises a "
        "RuntimeError saying what is missing."
    )),
)
SHARED_DEFAULTS = {p.name: p.default for p in SHARED_PARAMETERS}
# every keyword parameter both estimators take, with its default
KEYWORD_DEFAULTS = {
    "solver": "adam", **SHARED_DEFAULTS, **{hyper.name: hyper.default for hyper in HYPER_PARAMETERS},
}
DOC_MARK = "    .. shared parameters: written from estimators/parameters.py\n"


def hyper_parameter_constraint(hyper):
    """scikit-learn's parameter check of an optimizer hyper-parameter."""
    if hyper.interval is None:
        return "boolean"
    low, high, closed = hyper.interval
    return Interval(Real, low, high, closed=closed)


def _entry(name, type_, default, doc):
    return [f"    {name} : {type_}, default={default!r}"] + textwrap.wrap(
        doc, 80, initial_indent=" " * 8, subsequent_indent=" " * 8)


def _activation_name(activation):
    aliases = ", ".join(repr(alias) for alias in activation.aliases)
    return f"{activation.name!r}" + (f" (alias {aliases})" if aliases else "")


def parameters_doc(default_solver):
    """The numpydoc entries of ``activation`` (from the activations' registry), ``solver``, the
    optimizers' hyper-parameters and the shared parameters."""
    names = ", ".join(_activation_name(a) for a in ACTIVATIONS if a.hidden)
    lines = _entry("activation", "str or list of str", "relu",
                   f"Activation of the hidden layers, one name for all or one per hidden layer: {names}.")
    lines += [f"    solver : {{{', '.join(repr(o.name) for o in OPTIMIZERS)}}}, default={default_solver!r}",
             "        The weight optimizer:", ""]
    for optimizer in OPTIMIZERS:
        lines += textwrap.wrap(f"- {optimizer.name!r}: {optimizer.summary}.", 80, initial_indent=" " * 8,
                               subsequent_indent=" " * 10)
    lines.append("")
    for hyper in HYPER_PARAMETERS:
        lines += _entry(hyper.name, "bool" if hyper.interval is None else "float", hyper.default, hyper.doc)
    for parameter in SHARED_PARAMETERS:
        lines += _entry(parameter.name, parameter.type, parameter.default, parameter.doc)
    return "\n".join(lines) + "\n"
