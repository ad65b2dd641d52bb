"""Tunables of the compiled kernels, in one place."""

# fastmath flags of the kernels. Named, never nnan/ninf: NaN and infinity
# detection must survive (a diverging fit is reported, not hidden). Never
# reassoc either: with it LLVM re-associates sums differently depending on
# where a function is inlined, and a freshly compiled kernel and the same kernel
# loaded from the cache gave results one rounding apart. Reductions are written
# with a fixed set of interleaved partial sums instead (see blas.row_dot). No
# contract (FMA fusion) either, for the same reason: a compiled function is
# linked into every caller as a weak copy that LLVM re-optimizes there, the
# copies may fuse multiply-adds differently, and which copy runs depends on
# the order the libraries were loaded in (fresh compile or cache). Measured
# without it: no change on O (10.4-10.9 ms against 11.1-11.8) or S.
FASTMATH = {"nsz"}

# Rows per chunk when a kernel walks through a whole data set (prediction,
# the full-batch loss and gradient of L-BFGS): bounds the workspace memory.
CHUNK_ROWS = 4096

# Columns per parallel task in column-blocked reductions (bias gradients, the
# sparse first-layer weight gradient): each task owns its columns, so sums run
# in a fixed order whatever the number of threads.
COLUMN_BLOCK = 32

# Most parameters per slice of the gradient's finishing and the optimizer step:
# the slices run in parallel in the threaded epoch, and the penalty is summed
# slice by slice in order, so the result does not depend on the number of
# threads. The slices are of equal length, an even number of them
# (epochs.param_slices): with 2 threads, 4 slices of 64k, 64k, 64k and 38k
# parameters (workload M) kept one thread 26% longer than the other.
PARAM_SLICE = 1 << 16
# ... and a network of fewer parameters than PARAM_SLICE still gets two slices
# (one per thread) from this many on: workload S's 26k parameters were stepped
# on by one thread while the other waited, 7% of the epoch's CPU time; in two
# slices the epoch took 29.6-38.1 ms against 30.9-40.4 (8 alternating pairs of
# processes, 7 faster). A parallel launch costs about a microsecond.
PARALLEL_STEP_MIN_PARAMS = 1 << 13

# prange inside the elementwise kernels. Measured on 2 cores: a parallel launch
# per elementwise pass costs more than it saves at these batch sizes, and
# parallel kernels take about 3x longer to compile. Multi-core speed comes from
# the data-parallel epoch below (one launch per batch).
PARALLEL_ELEMENTWISE = False

# A long epoch runs as several kernel calls of about this many seconds each, so
# Python regains control often enough to honour max_time and Ctrl-C.
EPOCH_CALL_SECONDS = 0.1

# Data-parallel epochs (each thread runs forward and backward on its share of
# every batch with single-threaded BLAS; the gradients are summed in thread
# order): used when every thread gets at least this many rows of a batch ...
DATA_PARALLEL_MIN_ROWS = 8
# ... and the network has at most this many parameters. Measured on workload L
# (2.1M parameters, 2 cores): data parallel 497 ms/epoch, BLAS's own threads
# 495 ms; on M data parallel 221 ms, BLAS threads 251 ms: no limit needed yet.
DATA_PARALLEL_MAX_PARAMS = 10**9

# A batch's gather requests the cache lines of the row this many rows ahead
# before copying a row (X's rows come in a random order, so the hardware
# prefetcher cannot guess them). One thread's epoch of gathers, 128-row
# batches: 60,000 x 784 float32 13.2 -> 10.0 ms (2 rows ahead: 12.7, 16 or 32:
# 10.9); 16,384 x 1024 4.8 -> 4.1-4.5 ms; 50,000 x 64 unchanged (noise).
GATHER_AHEAD = 8

# Matrix products of at most this many multiply-adds (m * n * k) run as plain
# compiled loops instead of a BLAS call, whose fixed cost dominates there
# (online SGD multiplies one row at a time).
SMALL_GEMM_WORK = 1 << 15

# Online Adam takes its step in the same pass as a layer's gradient when the
# layer has at least this many columns (then the row loop vectorizes);
# narrower layers write the gradient, then step in one flat pass. Measured on
# one-row steps, float32: 64x64 in one pass 0.65 us against 0.84; 64x10 in
# one pass 0.50 us against 0.34.
FUSED_MIN_COLS = 16

# OpenBLAS's AVX-512 kernels (cores SkylakeX, Cooperlake, SapphireRapids)
# multiply matrices of at most 100**3 multiply-adds with an unpacked "small
# matrix" kernel: about 225 GFLOP/s a core here, against 160-180 for the packed
# path just above that size. With those kernels a product of up to twice this
# work runs as two products on halves of C's rows (blas.gemm): workload S 10%
# faster an epoch. With OpenBLAS's AVX2 kernels (no small-matrix kernel) the
# halves measured 6% slower, so other BLAS cores never split.
SPLIT_GEMM_WORK = 100**3
SMALL_MATRIX_BLAS_CORES = ("skylakex", "cooperlake", "sapphirerapids")

# Kernel trees optimized and emitted once, in their entry point, CPython wrappers
# only for the kernels Python calls (deferred_codegen): a default fit's first
# compilation 27.3 s (Zen 5) -> 10.5 s (Zen 4; 16.5 s on Zen 5 before the lazy
# wrappers and deferred gufuncs). The same bits either way. False: every kernel is
# compiled as Numba compiles it (finalized, optimized and emitted at each level).
DEFER_MACHINE_CODE = True
