"""Direct BLAS GEMM for the kernels.

``np.dot`` inside ``@njit`` generates a large body of checking code for every
combination of layouts it is called with, which makes compilation slow, and it
cannot accumulate (``beta = 1``). ``gemm`` below calls the same BLAS routine
Numba's ``np.dot`` ends in (Numba's C helper ``numba_xxgemm``, which loads
SciPy's BLAS), with explicit transposition flags and ``alpha``/``beta``.
The helper is resolved by name at link time, so kernels that use it stay
cacheable on disk.
"""

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array
from numba.np.linalg import ensure_blas

from .cache import load_without_compiler_setup
from .config import FASTMATH, SMALL_GEMM_WORK
from .specialize import SpecializingCompiler

_CHAR = ir.IntType(8)
_VOID_P = ir.IntType(8).as_pointer()


@intrinsic
def _xxgemm(typingctx, kind, trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc):
    """Column-major ``c = alpha * op(a) @ op(b) + beta * c`` (BLAS argument order),
    each matrix starting ``*_off`` elements into its array's data.

    ``alpha`` and ``beta`` are scalars of the arrays' dtype, passed to BLAS by
    pointer from the stack (no allocation per call).
    """
    ensure_blas()
    sig = types.int32(kind, trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc)

    def codegen(context, builder, signature, args):
        (kind_v, ta_v, tb_v, m_v, n_v, k_v, alpha_v, a_v, a_off_v, lda_v, b_v, b_off_v, ldb_v, beta_v, c_v, c_off_v,
         ldc_v) = args
        intp = context.get_value_type(types.intp)
        fnty = ir.FunctionType(
            ir.IntType(32),
            [_CHAR, _CHAR, _CHAR, intp, intp, intp, _VOID_P, _VOID_P, intp, _VOID_P, intp, _VOID_P, _VOID_P, intp],
        )
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        dtype = signature.args[14].dtype

        def data_of(arrty, value, off_v, off_ty):
            data = context.make_array(arrty)(context, builder, value=value).data
            return builder.bitcast(builder.gep(data, [as_intp(off_v, off_ty)]), _VOID_P)

        def scalar_slot(value, ty):
            slot = cgutils.alloca_once_value(builder, context.cast(builder, value, ty, dtype))
            return builder.bitcast(slot, _VOID_P)

        def as_char(v):
            return builder.trunc(v, _CHAR)

        def as_intp(v, ty):
            return context.cast(builder, v, ty, types.intp)

        call_args = (
            as_char(kind_v), as_char(ta_v), as_char(tb_v),
            as_intp(m_v, signature.args[3]), as_intp(n_v, signature.args[4]), as_intp(k_v, signature.args[5]),
            scalar_slot(alpha_v, signature.args[6]), data_of(signature.args[7], a_v, a_off_v, signature.args[8]),
            as_intp(lda_v, signature.args[9]), data_of(signature.args[10], b_v, b_off_v, signature.args[11]),
            as_intp(ldb_v, signature.args[12]), scalar_slot(beta_v, signature.args[13]),
            data_of(signature.args[14], c_v, c_off_v, signature.args[15]), as_intp(ldc_v, signature.args[16]),
        )
        return builder.call(fn, call_args)

    return sig, codegen


@intrinsic
def prefetch(typingctx, buf, offset):
    """Hint the CPU to load the cache line ``offset`` elements into ``buf``'s data.

    LLVM's ``llvm.prefetch`` (a read, kept in all cache levels): no result, no
    fault on any address, so ``offset`` needs no bounds check. The kernels
    read X's rows in a random order: requested ahead of their copy (a step
    ahead in online SGD, a few rows ahead in a batch), their cache misses no
    longer stall the copy.
    """
    if not (isinstance(buf, types.Array) and isinstance(offset, types.Integer)):
        return None
    sig = types.void(buf, offset)

    def codegen(context, builder, signature, args):
        buf_v, offset_v = args
        data = make_array(signature.args[0])(context, builder, buf_v).data
        address = builder.bitcast(
            builder.gep(data, [context.cast(builder, offset_v, signature.args[1], types.intp)]), _VOID_P
        )
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [_VOID_P, i32, i32, i32]), "llvm.prefetch.p0i8"
        )
        # read (0), highest locality (3), data cache (1)
        builder.call(fn, [address, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def matrix_view(typingctx, buf, offset, n_rows, n_cols):
    """The (n_rows, n_cols) C-ordered view of ``buf[offset : offset + n_rows * n_cols]``.

    What ``buf[a:b].reshape((n_rows, n_cols))`` gives, without the reshape's
    run-time helper call (about 35 ns, twenty-odd times per one-sample step of
    online SGD). The caller guarantees the range lies inside ``buf`` (1-D, C).

    The view holds no reference to ``buf``'s memory (its meminfo is null), so
    making, passing and dropping it costs no atomic reference-count updates:
    they took a quarter of a one-sample step of online SGD. The caller
    guarantees that ``buf`` outlives the view and that the view never leaves
    compiled code: the kernels take views of their arguments only, which the
    Python caller keeps alive for the whole call.
    """
    if not (isinstance(buf, types.Array) and buf.ndim == 1 and buf.layout == "C"):
        return None
    view_type = types.Array(buf.dtype, 2, "C")
    sig = view_type(buf, offset, n_rows, n_cols)

    def codegen(context, builder, signature, args):
        buf_v, offset_v, rows_v, cols_v = args
        source = make_array(signature.args[0])(context, builder, buf_v)
        view = make_array(signature.return_type)(context, builder)

        def as_intp(v, ty):
            return context.cast(builder, v, ty, types.intp)

        rows = as_intp(rows_v, signature.args[2])
        cols = as_intp(cols_v, signature.args[3])
        itemsize = source.itemsize
        populate_array(
            view,
            data=builder.gep(source.data, [as_intp(offset_v, signature.args[1])]),
            shape=cgutils.pack_array(builder, [rows, cols]),
            strides=cgutils.pack_array(builder, [builder.mul(cols, itemsize), itemsize]),
            itemsize=itemsize,
            meminfo=cgutils.get_null_value(source.meminfo.type),
            parent=cgutils.get_null_value(source.parent.type),
        )
        return impl_ret_borrowed(context, builder, signature.return_type, view._getvalue())

    return sig, codegen


@intrinsic
def borrowed(typingctx, arr):
    """``arr`` itself, as a view that holds no reference (see :func:`matrix_view`).

    A kernel that rebinds its array arguments to borrowed views at the top makes
    every later assignment, slice and call of them free of atomic
    reference-count updates. The caller keeps the arguments alive for the call
    (they come from Python), and the views never leave compiled code.
    """
    if not isinstance(arr, types.Array):
        return None
    sig = arr(arr)

    def codegen(context, builder, signature, args):
        source = make_array(signature.args[0])(context, builder, args[0])
        view = make_array(signature.return_type)(context, builder)
        populate_array(
            view,
            data=source.data,
            shape=source.shape,
            strides=source.strides,
            itemsize=source.itemsize,
            meminfo=cgutils.get_null_value(source.meminfo.type),
            parent=cgutils.get_null_value(source.parent.type),
        )
        return impl_ret_borrowed(context, builder, signature.return_type, view._getvalue())

    return sig, codegen


@intrinsic
def vector_view(typingctx, buf, lo, n):
    """``buf[lo : lo + n]`` (1-D, C), holding no reference like :func:`matrix_view`.

    The caller guarantees ``0 <= lo`` and ``lo + n <= len(buf)``, that ``buf``
    outlives the view and that the view never leaves compiled code.
    """
    if not (isinstance(buf, types.Array) and buf.ndim == 1 and buf.layout == "C"):
        return None
    sig = buf(buf, lo, n)

    def codegen(context, builder, signature, args):
        buf_v, lo_v, n_v = args
        source = make_array(signature.args[0])(context, builder, buf_v)
        view = make_array(signature.return_type)(context, builder)
        size = context.cast(builder, n_v, signature.args[2], types.intp)
        itemsize = source.itemsize
        populate_array(
            view,
            data=builder.gep(source.data, [context.cast(builder, lo_v, signature.args[1], types.intp)]),
            shape=cgutils.pack_array(builder, [size]),
            strides=cgutils.pack_array(builder, [itemsize]),
            itemsize=itemsize,
            meminfo=cgutils.get_null_value(source.meminfo.type),
            parent=cgutils.get_null_value(source.parent.type),
        )
        return impl_ret_borrowed(context, builder, signature.return_type, view._getvalue())

    return sig, codegen


# inlined: it runs once per output element, where a call would cost as much as the work
@njit(cache=True, fastmath=FASTMATH, error_model="numpy", pipeline_class=SpecializingCompiler, inline="always")
def row_dot(A, i, B, j, k):
    """``A[i, :k] @ B[j, :k]`` in a fixed order: eight interleaved partial sums
    (independent, so the loop runs at full speed without reassociation), then
    added pairwise, then the tail."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = A.dtype.type(0.0)
    r = 0
    while r + 8 <= k:
        s0 += A[i, r] * B[j, r]
        s1 += A[i, r + 1] * B[j, r + 1]
        s2 += A[i, r + 2] * B[j, r + 2]
        s3 += A[i, r + 3] * B[j, r + 3]
        s4 += A[i, r + 4] * B[j, r + 4]
        s5 += A[i, r + 5] * B[j, r + 5]
        s6 += A[i, r + 6] * B[j, r + 6]
        s7 += A[i, r + 7] * B[j, r + 7]
        r += 8
    total = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    while r < k:
        total += A[i, r] * B[j, r]
        r += 1
    return total


_N = ord("n")
_T = ord("t")


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", pipeline_class=SpecializingCompiler)
def _small_gemm(trans_a, alpha, A, B, trans_b, beta, C):
    """``gemm`` as plain loops, for products too small to pay for a BLAS call."""
    m, n = C.shape
    k = A.shape[0] if trans_a else A.shape[1]
    a = C.dtype.type(alpha)
    if beta != 1.0:
        b = C.dtype.type(beta)
        for i in range(m):
            for j in range(n):
                C[i, j] = 0.0 if beta == 0.0 else C[i, j] * b
    if not trans_a and not trans_b:
        for i in range(m):
            for r in range(k):
                v = a * A[i, r]
                for j in range(n):
                    C[i, j] += v * B[r, j]
    elif trans_a and not trans_b:
        for r in range(k):
            for i in range(m):
                v = a * A[r, i]
                for j in range(n):
                    C[i, j] += v * B[r, j]
    elif not trans_a and trans_b:
        for i in range(m):
            for j in range(n):
                C[i, j] += a * row_dot(A, i, B, j, k)
    else:
        for i in range(m):
            for j in range(n):
                acc = C.dtype.type(0.0)
                for r in range(k):
                    acc += A[r, i] * B[j, r]
                C[i, j] += a * acc


@njit(cache=True, pipeline_class=SpecializingCompiler)
def gemm(trans_a, trans_b, alpha, A, B, beta, C, split_work):
    """Row-major ``C = alpha * op(A) @ op(B) + beta * C``.

    ``A``, ``B`` and ``C`` are C-contiguous 2-D arrays of one float dtype;
    ``op(X)`` is ``X.T`` when its flag is set. A row-major product is the
    column-major product of the transposes: ``C.T = op(B).T @ op(A).T``. Products
    of at most SMALL_GEMM_WORK multiply-adds run as plain loops (a BLAS call costs
    more than the work there: online SGD's one-row batches). Products of more
    than ``split_work`` multiply-adds, up to twice that, run as two BLAS calls on
    halves of C's rows (``split_work`` 0: never; see config.SPLIT_GEMM_WORK).
    """
    m, n = C.shape
    k = A.shape[0] if trans_a else A.shape[1]
    # products against B.T are dot products, summed in a fixed order by the
    # loops without vectorizing: long ones go to BLAS
    if m * n * k <= SMALL_GEMM_WORK and not (trans_b and k > 16):
        _small_gemm(trans_a, alpha, A, B, trans_b, beta, C)
        return
    kind = ord("s") if C.itemsize == 4 else ord("d")
    lda = max(A.shape[1], 1)
    pieces = 1
    if 0 < split_work < m * n * k <= 2 * split_work and not (trans_b and not trans_a) and m >= 16:
        # just above OpenBLAS's small-matrix limit: two halves of C's rows, each
        # within it (not for op(B) = B.T alone: the kernel's limits there are
        # tighter, a C of at most 1200 entries)
        pieces = 2
    rows = (m + pieces - 1) // pieces
    for i0 in range(0, m, rows):
        m_piece = min(rows, m - i0)
        status = _xxgemm(
            kind, _T if trans_b else _N, _T if trans_a else _N, n, m_piece, k,
            alpha, B, 0, max(B.shape[1], 1), A, i0 if trans_a else i0 * lda, lda, beta, C, i0 * n, max(n, 1),
        )
        if status != 0:
            raise RuntimeError("BLAS gemm could not be loaded from SciPy")


# Cached kernels load without Numba's compiler set-up (see cache).
load_without_compiler_setup(globals())
