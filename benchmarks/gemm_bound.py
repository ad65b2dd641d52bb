"""The GEMM-only bound of a workload's epoch: fastbp's matrix products and nothing else.

For one epoch of a workload this runs exactly the matrix products of fastbp's threaded
(data-parallel) epoch: every batch split into one contiguous row block per thread, each thread
multiplying its block with single-threaded BLAS through ``fastbp.kernels.blas.gemm`` (forward
``x W``, weight gradients ``x.T delta``, delta recursion ``delta W.T``), with the same shapes,
the same split of small products and the same thread count, on buffers of the right sizes. It
leaves out everything else an epoch does (gather, activations, loss, bias gradients, the
optimizer step, Python): the time it takes is a floor under fastbp's epoch as long as the
products run this way. For comparison it also runs the same products on whole batches with
BLAS's own threads (how scikit-learn and PyTorch multiply).

It prints ms per epoch (median and best of ``--repeats``), with fastbp's whole epoch (a
``partial_fit`` call, as ``peers.py`` times it) measured in the same process, and the share of
the GEMM peak measured there too (``peers.gemm_peak``, numbers as in ``peers.py``). Run it as the
peer runner is run, with the OpenBLAS overrides unset for that command only::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/gemm_bound.py --workloads M,L

Nothing is compiled or run at import (asv imports every module of this folder).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from workloads import WORKLOADS, make_data  # noqa: E402


def _kernels():
    """The two product-only epochs, compiled on first call (not cached: a benchmark tool)."""
    from numba import njit, prange

    from fastbp.kernels.blas import gemm

    @njit
    def block_products(rows, weights, xs, zs, grads, dacts, split_work):
        """One row block's products, as fastbp's batch_gradient runs them: forward, then per
        layer from the top the weight gradient and (but for the input layer) the delta below."""
        n_layers = len(weights)
        for layer in range(n_layers):
            gemm(False, False, 1.0, xs[layer][:rows], weights[layer], 0.0, zs[layer][:rows], split_work)
        for layer in range(n_layers - 1, -1, -1):
            gemm(True, False, 1.0, xs[layer][:rows], zs[layer][:rows], 0.0, grads[layer], split_work)
            if layer > 0:
                gemm(False, True, 1.0, zs[layer][:rows], weights[layer], 0.0, dacts[layer - 1][:rows], split_work)

    @njit(parallel=True)
    def data_parallel_epoch(n, batch, parts, weights, xs, zs, grads, dacts, split_work):
        """Every batch split into ``min(parts, rows)`` row blocks as fastbp's parts_gradient
        splits it, one block per thread; each thread has its own buffers."""
        for start in range(0, n, batch):
            m = min(batch, n - start)
            n_parts = min(parts, m)
            for p in prange(n_parts):
                part = np.int64(p)  # (prange's index is unsigned)
                rows = (m * (part + 1)) // n_parts - (m * part) // n_parts
                block_products(rows, weights, xs[part], zs[part], grads[part], dacts[part], split_work)

    @njit
    def whole_batch_epoch(n, batch, weights, xs, zs, grads, dacts, split_work):
        for start in range(0, n, batch):
            block_products(min(batch, n - start), weights, xs, zs, grads, dacts, split_work)

    return data_parallel_epoch, whole_batch_epoch


def _timed(run, repeats):
    """Seconds of ``repeats`` calls of ``run`` after a warm-up call (compilation, caches)."""
    run()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return times


def gemm_bound(workload, dtype="float32", n_jobs=None, repeats=7):
    """Seconds per epoch (list over ``repeats``) of the product-only epochs of a
    workload (a name in ``WORKLOADS`` or a ``Workload``) on ``n_jobs`` threads (None: all
    cores, as fastbp's default): ``{"data parallel": [...], "whole batches, BLAS threads": [...]}``."""
    from numba.typed import List

    from fastbp.engine import cpu as _engine

    w = WORKLOADS[workload] if isinstance(workload, str) else workload
    sizes = w.layer_sizes
    n_layers = len(sizes) - 1
    rng = np.random.default_rng(0)

    def matrices(rows, width_of):
        return List([rng.standard_normal((rows, width_of(layer))).astype(dtype) for layer in range(n_layers)])

    def buffers(rows):
        """(inputs, outputs, weight gradients, deltas below) of a block of ``rows`` rows."""
        return (matrices(rows, lambda i: sizes[i]), matrices(rows, lambda i: sizes[i + 1]),
                List([np.zeros((sizes[i], sizes[i + 1]), dtype) for i in range(n_layers)]),
                matrices(rows, lambda i: sizes[i + 1]))

    weights = List([(0.01 * rng.standard_normal((sizes[i], sizes[i + 1]))).astype(dtype) for i in range(n_layers)])
    threads = _engine.effective_n_jobs(n_jobs)
    per_thread = [buffers(-(-w.batch // threads)) for _ in range(threads)]
    xs, zs, grads, dacts = (List([b[k] for b in per_thread]) for k in range(4))
    whole = buffers(w.batch)
    split_work = _engine.gemm_split_work()
    data_parallel_epoch, whole_batch_epoch = _kernels()

    results = {}
    with _engine.compute_context(n_jobs, data_parallel=True):
        results["data parallel"] = _timed(
            lambda: data_parallel_epoch(w.n, w.batch, threads, weights, xs, zs, grads, dacts, split_work), repeats
        )
    with _engine.compute_context(n_jobs, data_parallel=False):
        results["whole batches, BLAS threads"] = _timed(
            lambda: whole_batch_epoch(w.n, w.batch, weights, *whole, split_work), repeats
        )
    return results


def fastbp_epoch(workload, dtype="float32", repeats=7):
    """Seconds per epoch (list over ``repeats``) of fastbp's own epoch on the workload: the
    epoch of ``peers.py`` (one ``partial_fit`` call, fastbp's default threads) after a warm-up."""
    from peers import _setup_mlp

    w = WORKLOADS[workload]
    epoch, _, _ = _setup_mlp("fastbp", w, *make_data(w, dtype))
    return _timed(epoch, repeats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="S,M,L", help="comma-separated, of S, M, L (default S,M,L)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_info

    from peers import gemm_peak

    peak = gemm_peak(args.dtype)
    kernels = sorted({str(i.get("architecture")) for i in threadpool_info() if i.get("internal_api") == "openblas"})
    print(f"{args.dtype} GEMM peak {peak:.0f} GFLOP/s; OpenBLAS kernels: {', '.join(kernels) or 'none'}")
    print("| workload | products | ms per epoch, median (best) | % of GEMM peak, median (best) |")
    print("|---|---|---|---|")
    for name in args.workloads.split(","):
        w = WORKLOADS[name.strip()]
        if w.batch == 1:
            print(f"| {w.name} | (one-row steps run no BLAS product) | | |")
            continue
        runs = {"fastbp's whole epoch": fastbp_epoch(w.name, args.dtype, args.repeats)}
        runs.update(gemm_bound(w.name, args.dtype, repeats=args.repeats))
        for how, times in runs.items():
            med, best = float(np.median(times)), min(times)
            share = 100 * w.flops_per_epoch / 1e9 / peak
            print(f"| {w.name} | {how} | {med * 1e3:.1f} ({best * 1e3:.1f}) | {share / med:.1f} ({share / best:.1f}) |")


if __name__ == "__main__":
    main()
