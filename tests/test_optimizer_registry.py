"""The optimizers' registry (kernels/optimizers.py) is what the estimators offer: the solver
names, each hyper-parameter as a keyword with its default, its check and its documentation, and
what each optimizer reads of them; the solver state has the buffers its entry declares."""

import inspect
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError

from fastbp import MLPClassifier, MLPRegressor
from fastbp.engine import cpu
from fastbp.kernels import optimizers as registry

ESTIMATORS = [MLPClassifier, MLPRegressor]


def _changed(hyper):
    """A valid value other than the default."""
    if hyper.interval is None:
        return not hyper.default
    return hyper.default / 2 if hyper.default >= 1e-3 else hyper.default * 1e4


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_estimators_take_every_hyper_parameter_with_its_default(cls):
    signature = inspect.signature(cls)
    est = cls()
    for hyper in registry.HYPER_PARAMETERS:
        parameter = signature.parameters[hyper.name]
        assert parameter.kind is parameter.KEYWORD_ONLY and parameter.default == hyper.default
        assert est.get_params()[hyper.name] == hyper.default
        value = _changed(hyper)
        changed = cls(**{hyper.name: value})
        assert getattr(changed, hyper.name) == value and clone(changed).get_params()[hyper.name] == value
        assert f"{hyper.name}=" in repr(changed)
        kind = "bool" if hyper.interval is None else "float"
        assert f"    {hyper.name} : {kind}, default={hyper.default!r}\n" in cls.__doc__
    assert set(cls._parameter_constraints["solver"][0].options) == {o.name for o in registry.OPTIMIZERS}
    for optimizer in registry.OPTIMIZERS:
        assert f"- {optimizer.name!r}: " in cls.__doc__
    assert ".. shared parameters" not in cls.__doc__


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_an_unknown_keyword_is_a_type_error(cls):
    with pytest.raises(TypeError, match=r"__init__\(\) got an unexpected keyword argument 'betta_1'"):
        cls(betta_1=0.9)


@pytest.mark.parametrize("hyper", [h for h in registry.HYPER_PARAMETERS if h.interval is not None],
                         ids=lambda h: h.name)
def test_each_real_hyper_parameter_is_checked(hyper, multiclass_data):
    X, y = multiclass_data
    low, high, closed = hyper.interval
    bad = [low - 1.0, "0.5"]
    if closed in ("right", "neither"):
        bad.append(low)
    if high is not None:
        bad.append(high + 1.0)
        if closed in ("left", "neither"):
            bad.append(high)
    for value in bad:
        est = MLPClassifier(max_iter=1, **{hyper.name: value})
        with pytest.raises(InvalidParameterError, match=f"'{hyper.name}' parameter"):
            est.fit(X, y)
        assert not hasattr(est, "coefs_")


def test_a_boolean_hyper_parameter_is_checked(multiclass_data):
    X, y = multiclass_data
    for hyper in (h for h in registry.HYPER_PARAMETERS if h.interval is None):
        with pytest.raises(InvalidParameterError, match=f"'{hyper.name}' parameter"):
            MLPClassifier(max_iter=1, **{hyper.name: "yes"}).fit(X, y)


def _weights(optimizer, **params):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3))
    y = X[:, 0] - 0.5 * X[:, 1]
    est = MLPRegressor(hidden_layer_sizes=(5,), solver=optimizer, batch_size=10, max_iter=3, random_state=0,
                       learning_rate_init=0.05, shuffle=False, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    return np.concatenate([w.ravel() for w in est.coefs_ + est.intercepts_])


@pytest.mark.parametrize("optimizer", [o for o in registry.OPTIMIZERS if o.code is not None], ids=lambda o: o.name)
def test_an_optimizer_reads_exactly_the_hyper_parameters_its_entry_names(optimizer):
    """Each hyper-parameter reaches the compiled step through its slot: changing one that the
    entry names changes the fit; changing any other leaves it bit for bit."""
    base = _weights(optimizer.name)
    for hyper in registry.HYPER_PARAMETERS:
        changed = _weights(optimizer.name, **{hyper.name: _changed(hyper)})
        if hyper.name in optimizer.hyper_parameters:
            assert not np.array_equal(changed, base), hyper.name
        else:
            np.testing.assert_array_equal(changed, base, err_msg=hyper.name)


@pytest.mark.parametrize("optimizer", [o for o in registry.OPTIMIZERS if o.name != "lbfgs"], ids=lambda o: o.name)
def test_the_solver_state_has_the_declared_buffers(optimizer, regression_data):
    X, y = regression_data
    est = MLPRegressor(hidden_layer_sizes=(4,), solver=optimizer.name, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X[:60], y[:60])
    n_params = sum(w.size for w in est.coefs_ + est.intercepts_)
    assert est._optimizer.state_1.shape == (n_params,)
    assert est._optimizer.state_2.shape == ((n_params,) if optimizer.state_buffers == 2 else (0,))


def test_make_config_refuses_an_unknown_hyper_parameter():
    with pytest.raises(TypeError, match="unknown hyper-parameters \\['gamma'\\]"):
        cpu.make_config(gamma=0.5)


def test_the_registry_is_consistent():
    names = [h.name for h in registry.HYPER_PARAMETERS]
    assert len(set(names)) == len(names)
    assert set(registry.STOCHASTIC_SOLVERS) | set(registry.FULL_BATCH_SOLVERS) == set(registry.OPTIMIZER_BY_NAME)
    assert len(set(registry.STOCHASTIC_SOLVERS.values())) == len(registry.STOCHASTIC_SOLVERS)
    slots = list(registry.HYPER_PARAMETER_SLOTS.values())
    assert len(set(slots)) == len(slots)
    assert max(s for v, s in slots if v == "float") == registry.N_FCONFIG - 1
    assert max(s for v, s in slots if v == "int") == registry.N_ICONFIG - 1
    for o in registry.OPTIMIZERS:
        assert set(o.hyper_parameters) <= set(names)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_every_constructor_parameter_is_documented_once(cls):
    import re

    section = cls.__doc__.split("Parameters\n    ----------\n")[1].split("\n    Attributes\n")[0]
    documented = re.findall(r"^    (\w+) : ", section, flags=re.M)
    assert sorted(documented) == sorted(inspect.signature(cls).parameters)
    assert ".. shared parameters" not in cls.__doc__
