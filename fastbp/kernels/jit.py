"""The jit options every CPU kernel is compiled with."""

from .config import FASTMATH, PARALLEL_ELEMENTWISE
from .specialize import SpecializingCompiler


# error_model="numpy": a division by zero gives inf/NaN as in NumPy instead of
# raising, which also lets LLVM vectorize loops that divide (about 10x faster
# optimizer steps).
# pipeline_class: branches on arguments that are literal constants at the call
# site (gemm's transpose flags, batch_gradient's accumulate and training flags
# from gradient_sums, ...) are pruned before typing (see specialize).
PARALLEL = dict(
    cache=True, parallel=PARALLEL_ELEMENTWISE, fastmath=FASTMATH, error_model="numpy",
    pipeline_class=SpecializingCompiler,
)
# Losses keep IEEE semantics (no reassociation).
EXACT_PARALLEL = dict(
    cache=True, parallel=PARALLEL_ELEMENTWISE, error_model="numpy", pipeline_class=SpecializingCompiler
)
SERIAL = dict(cache=True, error_model="numpy", pipeline_class=SpecializingCompiler)
# Small per-step helpers are inlined at Numba's level: a call to a compiled
# function increments and decrements the reference count of every array
# argument (atomic operations), which took about a tenth of a one-sample step.
INLINED = dict(SERIAL, inline="always")
