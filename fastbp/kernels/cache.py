"""fastbp's own Numba cache class: a key that covers every source a kernel
compiles in, and loading without setting up Numba's compiler.

The key
-------
Numba keys an on-disk entry on the signature, the host CPU and the bytecode of
the one function, and drops a file's whole index when that one source file
changes. Constants and helpers a kernel reads from other modules
(``codes``, ``config``, ``blas`` ...) are compiled into its machine code but
are part of neither, so a change there (or an in-place upgrade of fastbp, which
leaves the cache files beside the new sources) silently loaded stale code: swap
two activation codes and "relu" trained tanh. :class:`RuntimeOnlyCache` adds
:func:`kernel_sources_digest` (a SHA-256 of every kernel-side source file,
:data:`KERNEL_SOURCES`, and of the versions of fastbp, Numba, llvmlite, NumPy
and Python) to every entry's key and stamps each index file with it, so an index
written from other sources or versions is never read.

Prebuilt kernels
----------------
A wheel built from the repository carries the kernels of the default fits and
predictions, compiled for the x86-64 baselines (:data:`BASELINES`: x86-64-v4,
AVX-512; x86-64-v3, AVX2 and FMA) in ``fastbp/_prebuilt/<baseline>/`` (see
``setup.py`` and ``python -m fastbp warmup --prebuild``). A lookup tries the
user's cache first (code for this exact CPU, keyed as above), then each
baseline the host CPU fully supports, best first, under a key with the
baseline in place of the host CPU. A baseline folder is used only when its
``manifest.json`` names the same :func:`kernel_sources_digest` (the same
sources, fastbp, Numba, llvmlite, NumPy and Python), so it never loads machine
code for instructions the host lacks or built from other sources. The folder
is only read: a read-only installation works. When a kernel has to be compiled
all the same, one line on stderr says why, once per process.

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

import contextlib
import functools
import hashlib
import json
import os
import platform
import sys

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: saves are not locked
    fcntl = None

from numba.core.caching import FunctionCache, IndexDataCacheFile
from numba.core.registry import CPUDispatcher

from .deferred_codegen import DeferredDispatcher, DeferredEntryPoint
from .._version import __version__

# Every module of the package whose code, constants or helpers the compiled CPU
# kernels contain (the kernels' own files and everything they import from
# fastbp). tests/test_kernel_cache.py checks that these modules import no other
# fastbp module, so the list cannot silently fall behind.
KERNEL_SOURCES = (
    "_version",
    "kernels/__init__", "kernels/activations", "kernels/blas", "kernels/cache", "kernels/codes", "kernels/config",
    "kernels/deferred_codegen", "kernels/epochs", "kernels/jit", "kernels/layers", "kernels/losses",
    "kernels/online", "kernels/optimizers", "kernels/specialize", "kernels/views",
)

# The modules that define CPU kernels (Numba dispatchers), in the order they import each other.
KERNEL_MODULES = ("views", "blas", "activations", "losses", "layers", "optimizers", "online", "epochs")

# the package's folder (this file is in its kernels/)
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Where a wheel's prebuilt kernels are, one folder per baseline.
PREBUILT_DIR = os.path.join(_PACKAGE_DIR, "_prebuilt")
PREBUILT_MANIFEST = "manifest.json"

# The x86-64 baselines kernels are prebuilt for, best first, each with the CPU
# features (LLVM's names) the host must have to run its code.
_V2 = ("cx16", "popcnt", "sahf", "sse3", "sse4.1", "sse4.2", "ssse3")
_V3 = _V2 + ("avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe")
_V4 = _V3 + ("avx512bw", "avx512cd", "avx512dq", "avx512f", "avx512vl")
BASELINES = {"x86-64-v4": _V4, "x86-64-v3": _V3}

# FASTBP_PREBUILT=0: never load the shipped kernels (compile, or use the user's cache).
PREBUILT_SWITCH = "FASTBP_PREBUILT"


@functools.lru_cache(maxsize=None)
def kernel_sources_digest():
    """SHA-256 (hex) of every kernel-side source file and of the versions that
    compiled machine code depends on: part of every cached kernel's key.

    Computed once per process, on the first cache lookup (importing fastbp
    reads no file for it).
    """
    hasher = hashlib.sha256()
    hasher.update(kernel_versions().encode())
    for name in KERNEL_SOURCES:
        with open(os.path.join(_PACKAGE_DIR, *name.split("/")) + ".py", "rb") as source:
            content = source.read()
        hasher.update(f"\0{name}\0{len(content)}\0".encode())
        hasher.update(content)
    return hasher.hexdigest()


def kernel_versions():
    """The versions the kernels' machine code depends on, as one line."""
    import llvmlite
    import numba
    import numpy

    return (
        f"fastbp {__version__}; numba {numba.__version__}; llvmlite {llvmlite.__version__}; "
        f"numpy {numpy.__version__}; python {'.'.join(map(str, sys.version_info[:3]))}"
    )


@functools.lru_cache(maxsize=None)
def host_baselines():
    """The baselines of :data:`BASELINES` this CPU runs, best first (none off x86-64)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return ()
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features()
    return tuple(tag for tag, needed in BASELINES.items() if all(features.get(name, False) for name in needed))


def _read_manifest(tag):
    try:
        with open(os.path.join(PREBUILT_DIR, tag, PREBUILT_MANIFEST)) as manifest:
            return json.load(manifest)
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=None)
def prebuilt_targets():
    """The shipped baselines this process loads kernels from: built from these
    sources and versions, run by this CPU, best first."""
    if os.environ.get(PREBUILT_SWITCH, "1") == "0":
        return ()
    usable = []
    for tag in host_baselines():
        manifest = _read_manifest(tag)
        if manifest is not None and manifest.get("digest") == kernel_sources_digest():
            usable.append(tag)
    return tuple(usable)


def _why_compiling():
    """Why a kernel is compiled in this process instead of loaded (one clause)."""
    if os.environ.get(PREBUILT_SWITCH, "1") == "0":
        return f"the prebuilt kernels are switched off ({PREBUILT_SWITCH}=0)"
    shipped = sorted(tag for tag in BASELINES if os.path.isdir(os.path.join(PREBUILT_DIR, tag)))
    if not shipped:
        return "this installation has no prebuilt kernels (installed from source, or built with FASTBP_PREBUILD=0)"
    if not host_baselines():
        return f"this CPU runs none of the prebuilt baselines ({', '.join(shipped)})"
    if not prebuilt_targets():
        manifest = _read_manifest(shipped[-1]) or {}
        return (
            f"the prebuilt kernels were built for other versions or sources ({manifest.get('versions', '?')}; "
            f"here: {kernel_versions()})"
        )
    return "this call needs a kernel the wheel does not prebuild (a non-default path or dtype)"


_told = []


def _tell_once_compiling():
    if _told or os.environ.get("FASTBP_WARMUP_BUILD") == "1":
        return
    _told.append(True)
    sys.stderr.write(
        f"fastbp: compiling kernels for this machine, {_why_compiling()}; this is done once, "
        f"or ahead of time with `python -m fastbp warmup`.\n"
    )


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

    def _load_overload(self, sig, target_context):
        """The user's cache, then the prebuilt baselines this host runs."""
        data = super()._load_overload(sig, target_context)
        if data is not None or not self._enabled:
            return data
        targets = prebuilt_targets()
        if targets:
            key = list(self._index_key(sig, target_context.codegen()))
            triple = key[1][0]
            stamp = ("fastbp", kernel_sources_digest())
            for tag in targets:
                key[1] = (triple, tag, "")
                shipped = IndexDataCacheFile(os.path.join(PREBUILT_DIR, tag), self._impl.filename_base, stamp)
                data = shipped.load(tuple(key))
                if data is not None:
                    return self._impl.rebuild(target_context, data)
        _tell_once_compiling()
        return None

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
        """Save the compile result for ``sig`` under the full key.

        A kernel whose entry point is deferred (see deferred_codegen) is saved
        on its first call from Python, with the library its wrapper was made
        in. One that only other kernels call is never emitted on its own, and
        its code is saved inside its callers' entries.
        """
        entry_point = getattr(data, "entry_point", None)
        if isinstance(entry_point, DeferredEntryPoint):
            entry_point.when_resolved(lambda cres: cres is not None and self.save_overload(sig, cres))
            return
        self._stamp_index()
        with self._index_lock():
            return super().save_overload(sig, data)

    @contextlib.contextmanager
    def _index_lock(self):
        """An exclusive lock on this function's index while an entry is saved:
        processes compiling at once (the parallel warmup, several workers)
        each read, extend and write the index, and without it one of two
        entries saved at the same moment was lost."""
        if fcntl is None:
            yield
            return
        try:
            self._impl.locator.ensure_cache_path()
            lock = open(self._cache_file._index_path + ".lock", "a")
        except OSError:  # not writable: Numba's save reports nothing either
            yield
            return
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def cache_location():
    """The folder the kernels' cache entries are written to in this process."""
    from .epochs import predict

    return predict._cache.cache_path


def load_without_compiler_setup(namespace):
    """Give every cached Numba CPU dispatcher in ``namespace`` (a module's
    ``globals()``) a :class:`RuntimeOnlyCache`, and make it a
    :class:`DeferredDispatcher` (its entry points may be deferred); returns how
    many were changed."""
    changed = 0
    for value in list(namespace.values()):
        cache = getattr(value, "_cache", None)
        if isinstance(value, CPUDispatcher) and type(cache) is FunctionCache:
            if type(value) is CPUDispatcher:
                value.__class__ = DeferredDispatcher
            # the same object with the loading method overridden: its index
            # and locator stay as Numba set them up
            cache.__class__ = RuntimeOnlyCache
            changed += 1
    return changed
