"""Views into the flat parameter and workspace buffers, and scalars of an array's dtype."""

from numba import njit

from .blas import matrix_view, vector_view
from .cache import load_without_compiler_setup
from .jit import INLINED, SERIAL


# --------------------------------------------------------------------------
# views into flat buffers
# --------------------------------------------------------------------------
@njit(**INLINED)
def flat_matrix(buf, offset, n_rows, n_cols):
    """The (n_rows, n_cols) C-ordered matrix stored at ``buf[offset:]``."""
    return matrix_view(buf, offset, n_rows, n_cols)


@njit(**INLINED)
def flat_vector(buf, lo, hi):
    """``buf[lo:hi]`` as a view that takes no reference (see ``matrix_view``):
    for the hot paths, where a slice's atomic reference counting shows."""
    return vector_view(buf, lo, hi - lo)

@njit(**SERIAL)
def scalar_like(arr, value):
    """``value`` as a scalar of ``arr``'s dtype, so float32 kernels stay in float32."""
    return arr.dtype.type(value)


load_without_compiler_setup(globals())
