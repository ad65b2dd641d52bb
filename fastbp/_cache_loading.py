"""Loading the kernels from Numba's cache without setting up its compiler.

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

from numba.core.caching import FunctionCache
from numba.core.registry import CPUDispatcher


class RuntimeOnlyCache(FunctionCache):
    """Numba's function cache, loading with the runtime initialized and nothing more."""

    def load_overload(self, sig, target_context):
        """Load and rebuild the cached compile result for ``sig``, or return None."""
        try:
            from numba.core.runtime import rtsys

            guard, load = self._guard_against_spurious_io_errors, self._load_overload
        except (ImportError, AttributeError):  # pragma: no cover - Numba's internals moved: its own way
            return super().load_overload(sig, target_context)
        rtsys.initialize(target_context)
        with guard():
            return load(sig, target_context)


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
