"""Direct BLAS GEMM for the kernels.

``np.dot`` inside ``@njit`` generates a large body of checking code for every
combination of layouts it is called with, which makes compilation slow, and it
cannot accumulate (``beta = 1``). ``gemm`` below calls the same BLAS routine
Numba's ``np.dot`` ends in (Numba's C helper ``numba_xxgemm``, which loads
SciPy's BLAS), with explicit transposition flags and ``alpha``/``beta``.
The helper is resolved by name at link time, so kernels that use it stay
cacheable on disk.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.linalg import ensure_blas

_CHAR = ir.IntType(8)
_VOID_P = ir.IntType(8).as_pointer()


@intrinsic
def _xxgemm(typingctx, kind, trans_a, trans_b, m, n, k, scalars, a, lda, b, ldb, c, ldc):
    """Column-major ``c = scalars[0] * op(a) @ op(b) + scalars[1] * c`` (BLAS order)."""
    ensure_blas()
    sig = types.int32(kind, trans_a, trans_b, m, n, k, scalars, a, lda, b, ldb, c, ldc)

    def codegen(context, builder, signature, args):
        kind_v, ta_v, tb_v, m_v, n_v, k_v, s_v, a_v, lda_v, b_v, ldb_v, c_v, ldc_v = args
        intp = context.get_value_type(types.intp)
        fnty = ir.FunctionType(
            ir.IntType(32),
            [_CHAR, _CHAR, _CHAR, intp, intp, intp, _VOID_P, _VOID_P, intp, _VOID_P, intp, _VOID_P, _VOID_P, intp],
        )
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")

        def data_of(arrty, value):
            return context.make_array(arrty)(context, builder, value=value).data

        s_data = data_of(signature.args[6], s_v)
        alpha = builder.bitcast(s_data, _VOID_P)
        beta = builder.bitcast(builder.gep(s_data, [context.get_constant(types.intp, 1)]), _VOID_P)

        def as_char(v):
            return builder.trunc(v, _CHAR)

        def as_intp(v, ty):
            return context.cast(builder, v, ty, types.intp)

        call_args = (
            as_char(kind_v), as_char(ta_v), as_char(tb_v),
            as_intp(m_v, signature.args[3]), as_intp(n_v, signature.args[4]), as_intp(k_v, signature.args[5]),
            alpha, builder.bitcast(data_of(signature.args[7], a_v), _VOID_P), as_intp(lda_v, signature.args[8]),
            builder.bitcast(data_of(signature.args[9], b_v), _VOID_P), as_intp(ldb_v, signature.args[10]),
            beta, builder.bitcast(data_of(signature.args[11], c_v), _VOID_P), as_intp(ldc_v, signature.args[12]),
        )
        return builder.call(fn, call_args)

    return sig, codegen


_N = ord("n")
_T = ord("t")


@njit(cache=True)
def gemm(trans_a, trans_b, alpha, A, B, beta, C):
    """Row-major ``C = alpha * op(A) @ op(B) + beta * C``.

    ``A``, ``B`` and ``C`` are C-contiguous 2-D arrays of one float dtype;
    ``op(X)`` is ``X.T`` when its flag is set. A row-major product is the
    column-major product of the transposes: ``C.T = op(B).T @ op(A).T``.
    """
    m, n = C.shape
    k = A.shape[0] if trans_a else A.shape[1]
    scalars = np.empty(2, dtype=C.dtype)
    scalars[0] = alpha
    scalars[1] = beta
    kind = ord("s") if C.itemsize == 4 else ord("d")
    status = _xxgemm(
        kind, _T if trans_b else _N, _T if trans_a else _N, n, m, k,
        scalars, B, max(B.shape[1], 1), A, max(A.shape[1], 1), C, max(n, 1),
    )
    if status != 0:
        raise RuntimeError("BLAS gemm could not be loaded from SciPy")
