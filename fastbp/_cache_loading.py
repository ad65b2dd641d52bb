"""fastbp's own Numba cache class: a key that covers every source a kernel
compiles in, and loading without setting up Numba's compiler.

The key
-------
Numba keys an on-disk entry on the signature, the host CPU and the bytecode of
the one function, and drops a file's whole index when that one source file
changes. Constants and helpers a kernel reads from other modules
(``_codes``, ``_config``, ``_blas`` ...) are compiled into its machine code but
are part of neither, so a change there (or an in-place upgrade of fastbp, which
leaves the cache files beside the new sources) silently loaded stale code: swap
two activation codes and "relu" trained tanh. :class:`RuntimeOnlyCache` adds
:func:`kernel_sources_digest` (a SHA-256 of every kernel-side source file,
:data:`KERNEL_SOURCES`, and of the versions of fastbp, Numba, llvmlite, NumPy
and Python) to every entry's key and stamps each index file with it, so an index
written from other sources or versions is never read.

Loading
-------
Numba's :class:`numba.core.caching.FunctionCache` refreshes the whole CPU
target context before it looks in the cache: it imports and installs every
typing and lowering registry of Numba and runs the third-party extensions'
entry points. Compiling needs them; loading machine code that was compiled
before does not. It needs the Numba runtime (NRT), whose memory functions the
cached code calls, and Numba's C helpers, which are registered when Numba is
imported. Measured here in a fresh process with a warm cache: the refresh is
0.17 s (NRT 0.02 s, the registries 0.15 s), about a tenth of importing
fastbp and running a first one-epoch fit of workload S.

:class:`RuntimeOnlyCache` initializes the runtime only and then loads. When
the cache has no entry for a signature nothing else changes: the dispatcher
compiles, and Numba's compiler refreshes the context itself before typing.
"""

import functools
import hashlib
import os
import sys

from numba.core.caching import FunctionCache
from numba.core.registry import CPUDispatcher

from ._version import __version__

# Every module of the package whose code, constants or helpers the compiled CPU
# kernels contain (the kernels' own files and everything they import from
# fastbp). tests/test_kernel_cache.py checks that these modules import no other
# fastbp module, so the list cannot silently fall behind.
KERNEL_SOURCES = ("_blas", "_cache_loading", "_codes", "_config", "_kernels", "_specialize", "_version")

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


@functools.lru_cache(maxsize=None)
def kernel_sources_digest():
    """SHA-256 (hex) of every kernel-side source file and of the versions that
    compiled machine code depends on: part of every cached kernel's key.

    Computed once per process, on the first cache lookup (importing fastbp
    reads no file for it).
    """
    import llvmlite
    import numba
    import numpy

    hasher = hashlib.sha256()
    versions = (
        f"fastbp {__version__}; numba {numba.__version__}; llvmlite {llvmlite.__version__}; "
        f"numpy {numpy.__version__}; python {sys.version_info[:3]}"
    )
    hasher.update(versions.encode())
    for name in KERNEL_SOURCES:
        with open(os.path.join(_PACKAGE_DIR, name + ".py"), "rb") as source:
            content = source.read()
        hasher.update(f"\0{name}\0{len(content)}\0".encode())
        hasher.update(content)
    return hasher.hexdigest()


class RuntimeOnlyCache(FunctionCache):
    """Numba's function cache keyed on all kernel-side sources
    (:func:`kernel_sources_digest`), loading with the runtime initialized and
    nothing more."""

    def _stamp_index(self):
        # The index file is stamped with the digest instead of the one source
        # file's hash: an index from other sources or versions reads as empty
        # (and is replaced by the next save), whatever file changed.
        self._cache_file._source_stamp = ("fastbp", kernel_sources_digest())

    def _index_key(self, sig, codegen):
        """Numba's key (signature, target CPU, bytecode) and the sources' digest."""
        return super()._index_key(sig, codegen) + (kernel_sources_digest(),)

    def load_overload(self, sig, target_context):
        """Load and rebuild the cached compile result for ``sig``, or return None."""
        self._stamp_index()
        try:
            from numba.core.runtime import rtsys

            guard, load = self._guard_against_spurious_io_errors, self._load_overload
        except (ImportError, AttributeError):  # pragma: no cover - Numba's internals moved: its own way
            return super().load_overload(sig, target_context)
        rtsys.initialize(target_context)
        with guard():
            return load(sig, target_context)

    def save_overload(self, sig, data):
        """Save the compile result for ``sig`` under the full key."""
        self._stamp_index()
        return super().save_overload(sig, data)


def load_without_compiler_setup(namespace):
    """Give every cached Numba CPU dispatcher in ``namespace`` (a module's
    ``globals()``) a :class:`RuntimeOnlyCache`; returns how many were changed."""
    changed = 0
    for value in list(namespace.values()):
        cache = getattr(value, "_cache", None)
        if isinstance(value, CPUDispatcher) and type(cache) is FunctionCache:
            # the same object with the loading method overridden: its index
            # and locator stay as Numba set them up
            cache.__class__ = RuntimeOnlyCache
            changed += 1
    return changed
