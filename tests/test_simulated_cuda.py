"""The CUDA tests under numba-cuda's simulator, as part of the normal test run.

``tests/test_cuda.py`` and the device half of ``tests/test_device.py`` need a
GPU or ``NUMBA_ENABLE_CUDASIM=1``, which must be set before Numba is imported:
this test runs them in a child pytest with the simulator on, so that CI (which
has no GPU) exercises the CUDA path on every run.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


@pytest.mark.skipif(SIMULATOR, reason="already under the simulator: the files run directly")
def test_cuda_kernels_under_the_simulator():
    pytest.importorskip("numba_cuda", reason="the CUDA engine needs the numba-cuda package")
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cuda.py", "tests/test_device.py"],
        cwd=root, env=env, capture_output=True, text=True, timeout=1800,
    )
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and "error" not in proc.stdout.splitlines()[-1], tail
