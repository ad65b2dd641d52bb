"""fastbp on NVIDIA GPUs: the CUDA twin of the CPU engine, with numba-cuda.

Importing this package imports NOTHING from CUDA: ``numba.cuda`` is imported
by :func:`require_cuda` / :func:`cuda_available`, and by the CUDA kernels
(``fastbp._cuda.kernels``) that the CUDA trainer (``fastbp.engine.cuda``,
reached through :func:`fastbp.engine.cuda_engine`) imports. The estimators and
``fastbp.forward`` / ``fastbp.backprop`` reach it only for ``device='cuda'``; ``import fastbp`` and ``device='cpu'`` never touch
CUDA.

Requirements: an NVIDIA GPU with a working driver and the numba-cuda package
(``pip install 'fastbp[cuda]'``). The tests run without a GPU on numba-cuda's
simulator (``NUMBA_ENABLE_CUDASIM=1``).

Public names
------------
``cuda_available() -> bool``
    True when device='cuda' can run (numba-cuda importable, a GPU and its
    driver found, or the simulator enabled). Never raises.
``require_cuda() -> None``
    Raise ``RuntimeError`` saying what is missing: "device='cuda' needs an
    NVIDIA GPU with a working driver and the numba-cuda package: pip install
    'fastbp[cuda]'", followed by the cause (numba-cuda not installed; no GPU or
    driver found, with the driver's error; CUDA toolkit libraries (NVVM)
    missing).
``check_solver(solver: str) -> None``
    ``ValueError`` for solvers that do not run on the GPU ('lm'); see below.

``CudaTrainer(network, X, Y, sample_weight, icfg, fcfg, batch_rows, parts=1)``
    The twin of ``fastbp.engine.cpu.Trainer`` (same arguments; ``X`` an
    ``engine.cpu.InputData`` or an array / sparse matrix; ``Y=None`` builds a
    forward-only trainer; ``parts`` is ignored). Methods:

    - ``train_epoch(flat, rows, batch_size, first_batch, stop_batch, state_1,
      state_2, counters, learning_rate, running_total=0.0) -> float``: the
      CPU's semantics (same batches from ``rows``, same returned loss sum, same
      Adam step counter and dropout batch counter in ``counters``), computed on
      the DEVICE copies of ``flat`` / ``state_1`` / ``state_2``.
    - ``to_device(flat, state_1=None, state_2=None)``: upload the parameters
      and optimizer buffers and register these host arrays.
    - ``to_host(flat=None, state_1=None, state_2=None) -> flat``: copy the
      device copies back (into the registered arrays by default).
    - ``release()``, ``resident`` (property).
    - ``loss_and_gradient(flat, rows, chunk=None, deadline=None) -> float``:
      full-batch mean loss with penalties; the gradient lands in the HOST
      array ``trainer.ws.grads`` (raises ``engine.cpu.TimeUp`` past ``deadline``).
    - ``dataset_loss(flat, rows) -> float``: mean loss, no penalty.
    - ``predict(flat, rows=None, chunk=None) -> ndarray (n, n_outputs)``.
    - ``layer_output(layer, m)``, ``layer_delta(layer, m)``: host copies of
      the workspace after a pass; ``forward_rows(flat, rows)``.
    - ``jacobian(...)``: raises (no Levenberg-Marquardt on the GPU).

    Residency contract: after ``to_device`` (or the first ``train_epoch``,
    which calls it when given unregistered arrays) the DEVICE copies are the
    current parameters. ``train_epoch`` never writes the host ``flat`` /
    ``state_1`` / ``state_2``; call ``to_host()`` at the end of fit and
    whenever host weights are needed (early-stopping snapshots, validation
    scores, callbacks, a Ctrl-C). ``loss_and_gradient`` / ``dataset_loss`` /
    ``predict`` given the registered ``flat`` use the device copy; given any
    other array they upload it to a scratch buffer (the full-batch solvers
    pass their host vector every call, which is then always uploaded). After
    changing the registered host arrays, call ``to_device`` again.

``predict_output(network, flat, X, n_jobs=None) -> ndarray``
    Twin of ``engine.cpu.predict_output`` (``n_jobs`` ignored).
``forward_all(network, flat, X) -> list of ndarray``
    Twin of ``engine.cpu.forward_all``: every layer's outputs (1..L).
``backprop_all(network, flat, X, Y, sample_weight, icfg, fcfg) -> (loss, grads, deltas, outputs)``
    Engine-level backprop over all rows: flat gradient, per-layer deltas and outputs.
The functional API on the device is ``fastbp.forward(..., device='cuda')`` /
``fastbp.backprop(..., device='cuda')``, which call the two functions above.

Solvers: sgd (momentum, Nesterov), adam, adamw, rmsprop, adagrad run their
whole step on the device; lbfgs, rprop and quickprop use the device's
``loss_and_gradient`` with their step on the host; lm is not supported (dense
Jacobian and Cholesky on the host: nothing for a GPU to gain).
Sparse X is densified batch by batch on the device (its CSR arrays are
uploaded once).
"""

import importlib.util

__all__ = ["cuda_available", "require_cuda"]

_REQUIREMENT = (
    "device='cuda' needs an NVIDIA GPU with a working driver and the numba-cuda package: "
    "pip install 'fastbp[cuda]'"
)

def _missing():
    """None when CUDA can be used, else the reason it cannot (a sentence)."""
    if importlib.util.find_spec("numba_cuda") is None:
        return "The numba-cuda package is not installed."
    try:
        from numba import cuda
    except Exception as exc:  # a broken installation
        return f"numba.cuda could not be imported: {exc!r}."
    if getattr(cuda, "implementation", None) != "NVIDIA":
        return (
            "numba.cuda is Numba's deprecated built-in CUDA target, not the numba-cuda package "
            "(reinstall numba-cuda so that it provides numba.cuda)."
        )
    # (the simulator is always available)
    try:
        available = cuda.is_available()
    except Exception as exc:
        return f"No NVIDIA GPU or driver was found: {exc!r}."
    if available:
        return None
    try:
        error = cuda.cuda_error()
    except Exception as exc:
        error = repr(exc)
    if error:
        error = " ".join(str(error).split())
        return f"No NVIDIA GPU or driver was found ({error})."
    try:
        from numba.cuda.cudadrv import nvvm

        nvvm_found = nvvm.is_available()
    except Exception:
        nvvm_found = False
    if not nvvm_found:
        return (
            "The CUDA driver works but the CUDA toolkit's NVVM library was not found; install numba-cuda "
            "with its toolkit wheels: pip install 'numba-cuda[cu12]' (or 'numba-cuda[cu13]' with a CUDA 13 "
            "driver)."
        )
    return "No NVIDIA GPU or driver was found (numba.cuda.is_available() is False)."


def cuda_available():
    """True when device='cuda' can be used (the simulator counts). Never raises."""
    try:
        return _missing() is None
    except Exception:
        return False


def require_cuda():
    """Raise RuntimeError, saying what is missing, unless device='cuda' can be used."""
    reason = _missing()
    if reason is not None:
        raise RuntimeError(f"{_REQUIREMENT}. {reason}")

