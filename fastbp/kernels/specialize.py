"""Branch pruning on literal arguments, for the kernels' compile time.

Numba compiles a separate version of a kernel for each combination of literal
constants it is called with (``gemm(False, True, ...)``, ``batch_gradient(...,
accumulate=False, training=False, ...)`` from the full-batch pass), but its own
dead-branch pruning only folds branches on constants, free variables and
globals, not on literal-typed arguments: each version is still typed, lowered
and optimized with every branch, and compiles every callee of the branches it
never takes. :class:`SpecializingCompiler` adds one pass to Numba's default
pipeline that turns an argument of literal integer or boolean type into that
constant before the pruning. No new versions are compiled; the ones Numba
compiles anyway get smaller. An argument that is not a literal is left alone.

Measured on a first fit of workload S with an empty cache (2 cores): 20.7 s of
compilation before, 18.4 s with it. Results are bit-identical: pruning removes
only code that the constant arguments never run.

This uses Numba's extension point for custom pipelines (``pipeline_class``,
``FunctionPass``, ``register_pass``).
"""

from numba.core import ir, types
from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.core.compiler_machinery import FunctionPass, register_pass
from numba.core.untyped_passes import InlineClosureLikes

from .config import DEFER_MACHINE_CODE
from .deferred_codegen import DEFERRED_LOWERING


@register_pass(mutates_CFG=False, analysis_only=False)
class LiteralArgumentsToConstants(FunctionPass):
    """Replace arguments of literal int or bool type by their constant values."""

    _name = "fastbp_literal_arguments_to_constants"

    def __init__(self):
        FunctionPass.__init__(self)

    def run_pass(self, state):
        changed = False
        for block in state.func_ir.blocks.values():
            for stmt in block.body:
                if isinstance(stmt, ir.Assign) and isinstance(stmt.value, ir.Arg):
                    arg_type = state.args[stmt.value.index]
                    if isinstance(arg_type, (types.IntegerLiteral, types.BooleanLiteral)):
                        stmt.value = ir.Const(arg_type.literal_value, stmt.value.loc)
                        changed = True
        return changed


class SpecializingCompiler(CompilerBase):
    """Numba's nopython pipeline with :class:`LiteralArgumentsToConstants` before the branch pruning."""

    def define_pipelines(self):
        pipeline = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pipeline.add_pass_after(LiteralArgumentsToConstants, InlineClosureLikes)
        # machine code once per kernel tree, in the function Python calls (see deferred_codegen)
        if DEFER_MACHINE_CODE:
            pipeline.passes = [
                (DEFERRED_LOWERING.get(pass_class, pass_class), description)
                for pass_class, description in pipeline.passes
            ]
        pipeline.finalize()
        return [pipeline]
