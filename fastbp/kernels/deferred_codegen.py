"""Machine code for a kernel only when it runs: LLVM optimizes and emits each
kernel tree once, in the function Python calls.

Numba finalizes every function it compiles as soon as it is lowered: it links
the LLVM modules of all its callees into the function's own module, runs the
full optimization pipeline over the whole closure and emits machine code for
it. A kernel called only by other kernels is then linked into each caller,
where the closure is optimized and emitted again, at every level up to the
entry point Python calls (and once more for each parfor's gufunc and its two
wrappers). Measured on the first fit of ``MLPClassifier()`` on digits with an
empty cache: 17.0 s of LLVM module optimization and code emission, of which
``batch_gradient``'s closure was emitted six times.

:class:`DeferredLibrary` links at finalization and does nothing else. It
optimizes and emits when its own machine code is needed: the first call from
Python (through a :class:`DeferredEntryPoint`), a cache save, or an inspection.
Linked into a caller it hands over its module as linked, and the caller's one
optimization covers it. The kernels' results do not change: no fastmath flag
that lets LLVM reassociate or contract is used (``config.FASTMATH``), so where
code is inlined or optimized does not change what it computes.

Only fastbp's kernels (their pipeline, :class:`DeferredNativeLowering`) and
what Numba builds while lowering them (a parfor's gufunc and wrappers) get
these libraries; every other Numba function in the process is compiled as
Numba compiles it.
"""

import contextlib

from numba.core.codegen import JITCodeLibrary
from numba.core.compiler_lock import global_compiler_lock, require_global_compiler_lock
from numba.core.compiler_machinery import register_pass
from numba.core.registry import CPUDispatcher
from numba.core.typed_passes import NativeLowering, NativeParforLowering


class DeferredLibrary(JITCodeLibrary):
    """A JIT code library that is optimized and emitted on first use of its
    machine code, not when it is finalized."""

    def __init__(self, codegen, name, **kwargs):
        super().__init__(codegen, name, **kwargs)
        self._emitted = False
        # (call helper, release_gil) of CPython and C wrappers not made yet
        # (see _Deferring): DeferredEntryPoint makes them in a library of their own
        self.python_wrappers = None

    def finalize(self):
        """Link the linking libraries' modules in; optimize and emit nothing yet."""
        require_global_compiler_lock()
        self._codegen._check_llvm_bugs()
        self._raise_if_finalized()
        seen = set()
        for library in self._linking_libraries:
            if library not in seen:
                self._reload_init.update(library._reload_init)
                seen.add(library)
                self._final_module.link_in(library._get_module_for_linking(), preserve=True)
        self._finalized = True

    def emit(self):
        """Optimize the linked module and emit its machine code (once)."""
        if self._emitted:
            return
        with global_compiler_lock:
            if self._emitted:
                return
            self._ensure_finalized()
            self._optimize_final_module()
            self._final_module.verify()
            self._finalize_final_module()
            # The module handed to later callers (and saved beside the object code in the
            # cache) must be the optimized one the object code was made from: the one
            # linked before emission still defines functions the optimization removed,
            # and a process loading the entry would record them as present in the JIT
            # (a call through such a symbol crashed).
            self._shared_module = None
            self._emitted = True

    # everything that needs the machine code (or the optimized module) emits first
    def get_pointer_to_function(self, name):
        self.emit()
        return super().get_pointer_to_function(name)

    def _get_compiled_object(self):
        self.emit()
        return super()._get_compiled_object()

    def serialize_using_object_code(self):
        self.emit()
        return super().serialize_using_object_code()

    def serialize_using_bitcode(self):
        self.emit()
        return super().serialize_using_bitcode()

    def get_llvm_str(self):
        self.emit()
        return super().get_llvm_str()

    def get_asm_str(self):
        self.emit()
        return super().get_asm_str()

    def get_function_cfg(self, name, py_func=None, **kwargs):
        self.emit()
        return super().get_function_cfg(name, py_func=py_func, **kwargs)


class DeferredEntryPoint:
    """Stands for a compiled function's Python entry point until it is first
    called: then its CPython wrapper is made (see :class:`_Deferring`), the
    kernel tree optimized and emitted once, in that wrapper's library, and the
    real entry point put in its dispatcher's table (later calls go straight to
    it). The dispatcher's compile result is replaced by one whose library holds
    the wrapper: the one the cache saves."""

    def __init__(self, context, make_executable, library, fndesc, env):
        self._context = context
        self._make_executable = make_executable
        self._library = library
        self._fndesc = fndesc
        self._env = env
        self._cfunc = None
        self._dispatcher = None
        self._args = None
        self._type_codes = None
        self._when_resolved = []

    def attach(self, dispatcher, args, type_codes):
        """The dispatcher (with the argument types and their codes) whose table
        and compile results get the real entry point."""
        self._dispatcher = dispatcher
        self._args = args
        self._type_codes = type_codes

    def when_resolved(self, callback):
        """Run ``callback(compile_result)`` once the real entry point exists,
        with the dispatcher's compile result for it."""
        self._when_resolved.append(callback)

    def _wrapped_library(self):
        """A library with the CPython (and C) wrappers around the function,
        linking the function's own library; or that library when the wrappers
        were made at lowering."""
        wrappers = self._library.python_wrappers
        if wrappers is None:
            return self._library
        call_helper, release_gil = wrappers
        context, fndesc, env = self._context, self._fndesc, self._env
        library = JITCodeLibrary(self._library.codegen, f"{self._library.name}.wrappers")
        library.enable_object_caching()
        library.add_linking_library(self._library)
        type(context).create_cpython_wrapper(context, library, fndesc, env, call_helper, release_gil=release_gil)
        type(context).create_cfunc_wrapper(context, library, fndesc, env, call_helper)
        library.finalize()
        return library

    def resolve(self):
        """The real entry point (making it on the first call)."""
        if self._cfunc is None:
            callbacks, cres = [], None
            with global_compiler_lock:
                if self._cfunc is None:
                    library = self._wrapped_library()
                    cfunc = self._make_executable(library, self._fndesc, self._env)
                    if self._dispatcher is not None:
                        overloads = self._dispatcher.overloads
                        cres = overloads[self._args]._replace(library=library, entry_point=cfunc)
                        overloads[self._args] = cres
                        # callers compiled later find the function by its entry point
                        self._context.insert_user_function(cfunc, self._fndesc, [self._library])
                        self._dispatcher._insert(self._type_codes, cfunc, False)
                    self._cfunc = cfunc
                    callbacks, self._when_resolved = self._when_resolved, []
            for callback in callbacks:
                callback(cres)
        return self._cfunc

    def __call__(self, *args, **kwargs):
        return self.resolve()(*args, **kwargs)


class _Deferring:
    """While a fastbp kernel is lowered: new libraries are deferred, the
    entry points of deferred fastbp functions are :class:`DeferredEntryPoint`,
    and their CPython and C wrappers are not made (a kernel only other kernels
    call never needs them; :meth:`DeferredEntryPoint.resolve` makes them for
    one called from Python). A wrapper unboxes every argument: for the kernels'
    dozens of arrays it was a large share of the lowering."""

    def __init__(self):
        self.depth = 0
        self.saved = None

    @staticmethod
    def _ours(library, fndesc):
        return isinstance(library, DeferredLibrary) and fndesc.modname.startswith("fastbp")

    @contextlib.contextmanager
    def active(self, context, codegen):
        if self.depth == 0:
            make_executable = context.get_executable
            make_python_wrapper = context.create_cpython_wrapper
            make_c_wrapper = context.create_cfunc_wrapper

            def deferred_library(name, **kwargs):
                return DeferredLibrary(codegen, name, **kwargs)

            def deferred_python_wrapper(library, fndesc, env, call_helper, release_gil=False):
                if self._ours(library, fndesc):
                    library.python_wrappers = (call_helper, release_gil)
                else:
                    make_python_wrapper(library, fndesc, env, call_helper, release_gil=release_gil)

            def deferred_c_wrapper(library, fndesc, env, call_helper):
                if not self._ours(library, fndesc):  # (made with the Python one)
                    make_c_wrapper(library, fndesc, env, call_helper)

            def deferred_executable(library, fndesc, env):
                # (a parfor's gufunc is only called by its wrapper, from machine code)
                gufunc = library.name.startswith("__numba_parfor_gufunc")
                if isinstance(library, DeferredLibrary) and (self._ours(library, fndesc) or gufunc):
                    # Linked now, as Numba's get_executable would: the lowering pass reads
                    # the library's reload_init right after this call, and it only holds
                    # the callees' (a parfor's thread-pool launch) once they are linked in.
                    # Without it, a process that loads this entry from the cache before any
                    # parallel kernel ran called a null threading-layer symbol.
                    library._ensure_finalized()
                    return DeferredEntryPoint(context, make_executable, library, fndesc, env)
                return make_executable(library, fndesc, env)

            # instance attributes over the class's methods, removed afterwards
            # (compilation holds the global compiler lock: no other thread sees them)
            context.get_executable = deferred_executable
            context.create_cpython_wrapper = deferred_python_wrapper
            context.create_cfunc_wrapper = deferred_c_wrapper
            codegen.create_library = deferred_library
            self.saved = (context, codegen)
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if self.depth == 0:
                ctx, gen = self.saved
                for name in ("get_executable", "create_cpython_wrapper", "create_cfunc_wrapper"):
                    vars(ctx).pop(name, None)
                vars(gen).pop("create_library", None)
                self.saved = None


_DEFERRING = _Deferring()


class _DeferredLoweringMixin:
    def run_pass(self, state):
        codegen = state.targetctx.codegen()
        if state.library is None:
            state.library = DeferredLibrary(codegen, state.func_id.func_qualname)
            state.library.enable_object_caching()
        with _DEFERRING.active(state.targetctx, codegen):
            return super().run_pass(state)


@register_pass(mutates_CFG=True, analysis_only=False)
class DeferredNativeLowering(_DeferredLoweringMixin, NativeLowering):
    """Numba's native lowering into a :class:`DeferredLibrary`."""

    _name = "fastbp_deferred_native_lowering"


@register_pass(mutates_CFG=True, analysis_only=False)
class DeferredNativeParforLowering(_DeferredLoweringMixin, NativeParforLowering):
    """Numba's native lowering of a function with parfors into a :class:`DeferredLibrary`."""

    _name = "fastbp_deferred_native_parfor_lowering"


# Numba's lowering pass -> the deferred one (see specialize.SpecializingCompiler)
DEFERRED_LOWERING = {NativeLowering: DeferredNativeLowering, NativeParforLowering: DeferredNativeParforLowering}


class DeferredDispatcher(CPUDispatcher):
    """A CPU dispatcher whose overloads may have a :class:`DeferredEntryPoint`:
    it goes into the dispatcher's table when it is first called."""

    def add_overload(self, cres):
        entry = cres.entry_point
        if isinstance(entry, DeferredEntryPoint):
            args = tuple(cres.signature.args)
            entry.attach(self, args, [a._code for a in args])
            self.overloads[args] = cres
        else:
            super().add_overload(cres)
