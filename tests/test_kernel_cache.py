"""The on-disk kernel cache is keyed on every source a kernel compiles in
(fastbp/kernels/cache.py): a change to any of them, or an in-place upgrade,
never loads the old machine code."""

import ast
import importlib
import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from numba.core.registry import CPUDispatcher

import fastbp
from fastbp.kernels.cache import KERNEL_SOURCES, kernel_sources_digest

PACKAGE = Path(fastbp.__file__).parent

# A fresh process: a relu network's forward pass through the predict kernel,
# with the cache's hits and misses of that kernel.
_CHILD = """
import json
import numpy as np
import fastbp
from fastbp.kernels import epochs
rng = np.random.default_rng(0)
coefs = [rng.standard_normal((5, 7)), rng.standard_normal((7, 3))]
intercepts = [rng.standard_normal(7), rng.standard_normal(3)]
X = rng.standard_normal((11, 5))
out = fastbp.forward(coefs, intercepts, X, activation="relu", out_activation="identity")[-1]
print(json.dumps({
    "hits": sum(epochs.predict.stats.cache_hits.values()),
    "misses": sum(epochs.predict.stats.cache_misses.values()),
    "out": out.tolist(),
    "relu": (np.maximum(X @ coefs[0] + intercepts[0], 0.0) @ coefs[1] + intercepts[1]).tolist(),
    "tanh": (np.tanh(X @ coefs[0] + intercepts[0]) @ coefs[1] + intercepts[1]).tolist(),
}))
"""


def _package_copy(tmp_path):
    root = tmp_path / "site"
    shutil.copytree(PACKAGE, root / "fastbp", ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    return root


def _run(root, cache_dir):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD)], capture_output=True, text=True, timeout=600, env=env,
        cwd=str(root),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _edit(path, pattern, replacement):
    text = path.read_text()
    new, count = re.subn(pattern, replacement, text, flags=re.M)
    assert count == 1, (path, pattern)
    path.write_text(new)


def test_changed_codes_recompile_the_kernel_and_train_the_new_meaning(tmp_path):
    root = _package_copy(tmp_path)
    cache = tmp_path / "cache"
    first = _run(root, cache)  # compiles and saves
    assert first["misses"] >= 1
    np.testing.assert_allclose(first["out"], first["relu"], rtol=1e-12)
    again = _run(root, cache)  # unchanged sources: loaded
    assert again["hits"] >= 1 and again["misses"] == 0
    # swap the values of two activation codes in a file the kernels only import
    codes = root / "fastbp" / "kernels" / "activations.py"
    _edit(codes, r"^ACT_TANH = 2$", "ACT_TANH = 3")
    _edit(codes, r"^ACT_RELU = 3$", "ACT_RELU = 2")
    swapped = _run(root, cache)
    assert swapped["misses"] >= 1 and swapped["hits"] == 0  # recompiled, the old entry not loaded
    np.testing.assert_allclose(swapped["out"], swapped["relu"], rtol=1e-12)  # still relu, not tanh
    assert not np.allclose(swapped["out"], swapped["tanh"])


def test_an_in_place_upgrade_cannot_load_the_old_entries(tmp_path):
    root = _package_copy(tmp_path)
    cache = tmp_path / "cache"
    old = _run(root, cache)
    assert old["misses"] >= 1
    # an upgrade that changes only the version, as pip leaves the cache beside the new files
    _edit(root / "fastbp" / "_version.py", r'^__version__ = ".*"$', '__version__ = "99.0.0"')
    upgraded = _run(root, cache)
    assert upgraded["hits"] == 0 and upgraded["misses"] >= 1
    assert np.array_equal(upgraded["out"], old["out"])
    # and one that changes a tunable in a module the kernels import (not the kernels' own file)
    _edit(root / "fastbp" / "kernels" / "config.py", r"^CHUNK_ROWS = 4096$", "CHUNK_ROWS = 4095")
    tuned = _run(root, cache)
    assert tuned["hits"] == 0 and tuned["misses"] >= 1
    assert np.array_equal(tuned["out"], old["out"])


def _source_name(dotted):
    """``fastbp.kernels.codes`` -> ``kernels/codes`` (a package -> its ``__init__``), as in KERNEL_SOURCES."""
    path = PACKAGE.joinpath(*dotted.split(".")[1:])
    return "/".join(dotted.split(".")[1:] + (["__init__"] if path.is_dir() else []))


def _fastbp_imports(source_name):
    """The fastbp modules (KERNEL_SOURCES names) that ``fastbp/<source_name>.py`` imports."""
    tree = ast.parse((PACKAGE / f"{source_name}.py").read_text())
    package = ["fastbp"] + source_name.split("/")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = base + (node.module.split(".") if node.module else [])
            else:
                module = node.module.split(".")
            if module[0] != "fastbp":
                continue
            for alias in node.names:  # ``from . import name``: a module, or a name of the package
                candidate = module + [alias.name]
                if PACKAGE.joinpath(*candidate[1:]).with_suffix(".py").is_file():
                    found.add(_source_name(".".join(candidate)))
                else:
                    found.add(_source_name(".".join(module)))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "fastbp":
                    found.add(_source_name(alias.name))
    return found


def test_the_kernel_sources_import_only_kernel_sources():
    for name in KERNEL_SOURCES:
        assert (PACKAGE / f"{name}.py").is_file(), name
        outside = _fastbp_imports(name) - set(KERNEL_SOURCES)
        assert not outside, f"fastbp.{name} imports {sorted(outside)}: add them to KERNEL_SOURCES"


def test_every_cpu_kernel_is_defined_in_a_kernel_source():
    for info in pkgutil.walk_packages(fastbp.__path__, "fastbp."):
        if info.name.startswith("fastbp._cuda"):
            continue  # CUDA kernels: not CPU dispatchers
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, CPUDispatcher):
                defined_in = _source_name(value.py_func.__module__)
                assert defined_in in KERNEL_SOURCES, value.py_func.__qualname__


def test_the_digest_covers_the_versions_and_is_stable():
    digest = kernel_sources_digest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert kernel_sources_digest() == digest


_CALLEE_FIRST = """
import numpy as np
from fastbp.kernels import activations
if {callee_first}:
    print(activations.dropout_uniform(1, 2, 3, 4, 5))  # the callee's entry point made from Python first
a = np.arange(1.0, 43.0).reshape(6, 7)
activations.apply_dropout(a, 0.4, 99, 5, 3, 1)  # then a caller compiled after it
print(repr(a.tolist()))
"""


def test_a_kernel_compiled_after_its_callee_was_called_from_python(tmp_path):
    # A deferred kernel's real entry point is made on its first call from Python;
    # callers compiled after that must still find its implementation (they did
    # not: "No definition for lowering dropout_uniform").
    outputs = []
    for callee_first in (True, False):
        env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / f"cache{callee_first}")}
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(_CALLEE_FIRST.format(callee_first=callee_first))],
            capture_output=True, text=True, timeout=600, env=env,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs.append(proc.stdout.strip().splitlines()[-1])
    assert outputs[0] == outputs[1]
    dropped = np.array(eval(outputs[0]))
    assert 0 < np.count_nonzero(dropped == 0) < dropped.size
