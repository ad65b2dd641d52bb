"""The asv suite in ``benchmarks/`` imports and validates (``asv check``)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def test_asv_check_passes():
    pytest.importorskip("asv")
    root = Path(__file__).resolve().parent.parent
    asv = shutil.which("asv") or str(Path(sys.executable).with_name("asv"))
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(
        [asv, "check", "--python=same"], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "No problems found" in out, out[-4000:]


def test_gemm_bound_runs_the_epochs_products():
    """benchmarks/gemm_bound.py's product-only epoch computes, per thread's row block of a
    batch, the forward, weight-gradient and delta products of the threaded epoch."""
    import numpy as np
    from numba.typed import List

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    try:
        import gemm_bound
        from workloads import Workload
    finally:
        sys.path.pop(0)
    data_parallel_epoch, whole_batch_epoch = gemm_bound._kernels()
    sizes = (7, 5, 3)
    rng = np.random.default_rng(1)
    batch, parts = 9, 2
    block_rows = (4, 5)  # rows of the two blocks of a 9-row batch

    def matrices(rows, width_of):
        return List([rng.standard_normal((rows, width_of(i))).astype(np.float64) for i in range(2)])

    weights = List([rng.standard_normal((sizes[i], sizes[i + 1])) for i in range(2)])
    xs = List([matrices(5, lambda i: sizes[i]) for _ in range(parts)])
    zs = List([matrices(5, lambda i: sizes[i + 1]) for _ in range(parts)])
    grads = List([List([np.zeros((sizes[i], sizes[i + 1])) for i in range(2)]) for _ in range(parts)])
    dacts = List([matrices(5, lambda i: sizes[i + 1]) for _ in range(parts)])
    x_in = [[x.copy() for x in xs[p]] for p in range(parts)]
    data_parallel_epoch(batch, batch, parts, weights, xs, zs, grads, dacts, 0)
    for p, rows in enumerate(block_rows):
        for layer in range(2):
            z = x_in[p][layer][:rows] @ weights[layer]
            np.testing.assert_allclose(zs[p][layer][:rows], z, rtol=1e-12)
            np.testing.assert_allclose(grads[p][layer], x_in[p][layer][:rows].T @ z, rtol=1e-12)
        np.testing.assert_allclose(dacts[p][0][:rows], zs[p][1][:rows] @ weights[1].T, rtol=1e-12)
    tiny = Workload("tiny", 40, 7, (5,), 3, 16, "test")
    times = gemm_bound.gemm_bound(tiny, dtype="float64", n_jobs=2, repeats=2)
    assert set(times) == {"data parallel", "whole batches, BLAS threads"}
    assert all(len(t) == 2 and min(t) > 0 for t in times.values())


def test_cold_start_scripts_and_table():
    """benchmarks/cold_start.py: every process it starts runs valid Python, and its table has a row per run."""
    from benchmarks import cold_start

    for library in ("fastbp", "sklearn", "torch"):
        compile(cold_start._fit_code(library, epochs=3), f"<{library}>", "exec")
    table = cold_start.table({"fastbp, no cache": [(9.0, 1.0, 8.0), (11.0, 1.2, 9.8)], "import fastbp": [(1.3, None, None)]})
    lines = table.splitlines()
    assert lines[0].startswith("| new process |") and len(lines) == 4
    assert "10.00 s (9.00-11.00)" in lines[2] and lines[3].endswith("|  |  |")
