"""Kernels load from Numba's cache without Numba's compiler set-up (fastbp/kernels/cache.py)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
from numba.core.caching import FunctionCache

from fastbp import _warmup
from fastbp.kernels import epochs
from fastbp.kernels.cache import RuntimeOnlyCache, load_without_compiler_setup

# A fresh process: counts Numba's target-context refreshes (the compiler's
# set-up) and the cache's hits while it runs fastbp's forward pass.
_CHILD = """
import json, sys
import numpy as np
from numba.core import base
refreshes = []
original = base.BaseContext.refresh
def counting_refresh(self):
    refreshes.append(type(self).__name__)
    return original(self)
base.BaseContext.refresh = counting_refresh

import fastbp
from fastbp.kernels import epochs
rng = np.random.default_rng(0)
coefs = [rng.standard_normal((5, 7)), rng.standard_normal((7, 3))]
intercepts = [rng.standard_normal(7), rng.standard_normal(3)]
X = rng.standard_normal((11, 5))
out = fastbp.forward(coefs, intercepts, X, activation="tanh", out_activation="softmax")[-1]
print(json.dumps({
    "refreshes": len(refreshes),
    "hits": sum(epochs.predict.stats.cache_hits.values()),
    "misses": sum(epochs.predict.stats.cache_misses.values()),
    "out": out.tolist(),
}))
"""


def _child(cache_dir):
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD)], capture_output=True, text=True, timeout=600,
        env={**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_cached_kernel_has_the_runtime_only_cache():
    dispatchers = _warmup._kernel_dispatchers()  # every kernel module's
    assert len(dispatchers) > 40
    for dispatcher in dispatchers:
        assert type(dispatcher._cache) is RuntimeOnlyCache, dispatcher.py_func.__name__


def test_only_numbas_own_function_caches_are_changed():
    class Other:
        _cache = FunctionCache(epochs.predict.py_func)

    namespace = {"other": Other(), "plain": 1, "kernel": epochs.predict}
    assert load_without_compiler_setup(namespace) == 0  # predict is already changed
    assert type(Other._cache) is FunctionCache


def test_a_warm_cache_runs_without_the_compiler_setup(tmp_path):
    first = _child(tmp_path)  # compiles and saves
    assert first["misses"] >= 1 and first["refreshes"] >= 1
    second = _child(tmp_path)  # loads
    assert second["hits"] >= 1 and second["misses"] == 0
    assert second["refreshes"] == 0
    assert np.array_equal(np.array(second["out"]), np.array(first["out"]))
