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
