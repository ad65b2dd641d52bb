"""The engine: a network's flat parameter buffer, its workspaces and the trainers that run the
compiled kernels over them (``cpu``; ``dask`` for dask collections; ``cuda``, imported only
for ``device='cuda'``)."""


def cuda_engine():
    """The CUDA trainer module (``engine/cuda.py``), once CUDA is known to be usable.

    Raises
    ------
    RuntimeError
        When numba-cuda or a GPU (or the simulator) is missing, saying which.
    """
    from .._cuda import require_cuda

    require_cuda()
    from . import cuda

    return cuda
