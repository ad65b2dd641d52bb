"""The package's layers (README "Architecture"): estimators -> engine -> solvers -> kernels, data
flowing down only. No module imports a module of a layer above its own, at its top or inside a
function."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "fastbp"

# Lowest first. A module may import modules of its own layer or of a layer below.
LAYERS = {
    "kernels": 0,  # compiled CPU kernels, their cache, codes and tunables
    "_cuda": 0,  # the CUDA kernels, beside the CPU ones
    "_version": 0,
    "_shutdown": 0,
    "solvers": 1,
    "engine": 2,
    "estimators": 3,
    "functional": 3,  # the algorithm as functions, beside the estimators
    "persistence": 4,  # reads and writes fitted estimators
    "__init__": 5,
    "__main__": 5,
    "_warmup": 5,  # runs fits of the public estimators
}


def _layer(parts):
    """The layer of the module ``fastbp.<parts...>`` (its first component names it)."""
    first = parts[0] if parts else "__init__"
    assert first in LAYERS, f"fastbp.{'.'.join(parts)} belongs to no layer: add it to LAYERS"
    return first


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).with_suffix("").parts
        if "_prebuilt" in relative:
            continue
        yield path, list(relative)


def _imports(path, parts):
    """(line, imported module's parts below fastbp) for every fastbp import in the file."""
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "fastbp":
                target = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:
                candidate = target + [alias.name]
                is_module = (PACKAGE.joinpath(*candidate).with_suffix(".py").is_file()
                             or PACKAGE.joinpath(*candidate).is_dir())
                yield node.lineno, candidate if is_module else target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names = alias.name.split(".")
                if names[0] == "fastbp":
                    yield node.lineno, names[1:]


def test_every_module_belongs_to_a_layer():
    for _, parts in _modules():
        _layer(parts)


@pytest.mark.parametrize("path, parts", list(_modules()), ids=lambda value: "/".join(value) if isinstance(value, list) else None)
def test_no_import_goes_up_a_layer(path, parts):
    own = _layer(parts)
    for line, target in _imports(path, parts):
        imported = _layer(target)
        assert LAYERS[imported] <= LAYERS[own], (
            f"fastbp/{'/'.join(parts)}.py:{line} ({own}) imports fastbp.{'.'.join(target)} ({imported}), a layer above"
        )


def test_the_check_sees_an_upward_import(tmp_path):
    """The AST walk finds relative, absolute and function-level imports (the test can fail)."""
    source = tmp_path / "probe.py"
    source.write_text("from ..estimators import MLPClassifier\n\ndef f():\n    import fastbp.engine.cpu\n")
    found = [target for _, target in _imports(source, ["kernels", "probe"])]
    assert found == [["estimators"], ["engine", "cpu"]]


# --------------------------------------------------------------------------
# the trainers' contract (engine/protocol.py), read from the source: the CUDA
# trainer's module needs numba-cuda to be imported
# --------------------------------------------------------------------------
IMPLEMENTATIONS = {
    "FullBatchObjective": [("engine/dask.py", "BlockObjective")],
    "Trainer": [("engine/cpu.py", "Trainer"), ("engine/cuda.py", "CudaTrainer")],
}


def _class(path, name):
    tree = ast.parse((PACKAGE / path).read_text())
    return next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name)


def _members(cls):
    """{name: parameter names (None for a data attribute)} of a class body, including the
    attributes its methods set on ``self``."""
    members = {}
    for node in cls.body:
        if isinstance(node, ast.FunctionDef):
            is_property = any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list)
            members[node.name] = None if is_property else [a.arg for a in node.args.args + node.args.kwonlyargs]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            members[node.target.id] = None
        elif isinstance(node, ast.Assign):
            members.update({t.id: None for t in node.targets if isinstance(t, ast.Name)})
    for node in ast.walk(cls):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self" \
                and isinstance(node.ctx, ast.Store):
            members.setdefault(node.attr, None)
    return members


def _protocol_members(name):
    cls = _class("engine/protocol.py", name)
    members = {}
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id != "Protocol":
            members.update(_protocol_members(base.id))
    members.update({k: v for k, v in _members(cls).items()})
    return members


@pytest.mark.parametrize("protocol, path, name",
                         [(p, path, name) for p, impls in IMPLEMENTATIONS.items() for path, name in impls])
def test_each_trainer_implements_its_protocol(protocol, path, name):
    implemented = _members(_class(path, name))
    for member, parameters in _protocol_members(protocol).items():
        assert member in implemented, f"{name} ({path}) lacks {protocol}.{member}"
        if parameters is not None:
            assert implemented[member] == parameters, (
                f"{name}.{member}{tuple(implemented[member])} is not {protocol}.{member}{tuple(parameters)}"
            )


def test_the_estimators_do_not_sniff_their_trainers():
    """The estimators call a trainer through the protocol: no hasattr / getattr / isinstance on one."""
    for path in sorted((PACKAGE / "estimators").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in ("hasattr", "getattr", "isinstance") and node.args:
                subject = ast.unparse(node.args[0])
                assert not any(word in subject for word in ("trainer", "objective")), (
                    f"{path.name}:{node.lineno}: {ast.unparse(node)}"
                )


def test_the_runtime_protocols_agree_with_the_cpu_trainer():
    import numpy as np

    from fastbp.engine import cpu, protocol
    from fastbp.engine.network import make_network
    from fastbp.kernels.losses import LOSS_SQUARED_ERROR

    network = make_network([3, 4, 1], ["relu"], "identity")
    icfg, fcfg = cpu.make_config(LOSS_SQUARED_ERROR)
    X = np.zeros((5, 3))
    trainer = cpu.Trainer(network, cpu.InputData(X, np.float64), np.zeros((5, 1)), None, icfg, fcfg, 5)
    assert isinstance(trainer, protocol.Trainer) and isinstance(trainer, protocol.FullBatchObjective)
    assert trainer.workspace is trainer.ws and trainer.gradient is trainer.ws.grads


# --------------------------------------------------------------------------
# the estimators' private members stay in estimators/
# --------------------------------------------------------------------------
def _own_private_names(tree):
    """The private names a module defines itself: functions, classes, methods, attributes set on self."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _estimator_private_names():
    names = set()
    for path in (PACKAGE / "estimators").glob("*.py"):
        names |= _own_private_names(ast.parse(path.read_text()))
    return names


def _private_uses(tree, private):
    """(line, name) of every ``x._name`` and every string ``'_name'`` naming one of ``private``
    that the module does not define itself."""
    foreign = private - _own_private_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in foreign:
            yield node.lineno, node.attr
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in foreign:
            yield node.lineno, node.value


@pytest.mark.parametrize("path, parts", [(p, parts) for p, parts in _modules() if parts[0] != "estimators"],
                         ids=lambda value: "/".join(value) if isinstance(value, list) else None)
def test_no_module_outside_the_estimators_touches_their_private_members(path, parts):
    private = _estimator_private_names()
    uses = sorted(set(_private_uses(ast.parse(path.read_text()), private)))
    assert not uses, f"fastbp/{'/'.join(parts)}.py uses private members of the estimators: {uses}"


def test_the_private_member_check_sees_a_use():
    probe = ast.parse("def f(est):\n    est._optimizer.copy()\n    return getattr(est, '_label_binarizer')\n")
    assert sorted(_private_uses(probe, _estimator_private_names())) == [(2, "_optimizer"), (3, "_label_binarizer")]
