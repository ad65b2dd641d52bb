"""Compiled CPU kernels of backpropagation.

Conventions
-----------
* Parameters live in ONE flat vector: every weight matrix W(l) (row-major,
  shape (fan_in, n_cols(l))) one after the other, then every bias vector b(l).
  ``w_off[l]`` / ``b_off[l]`` give their offsets and ``n_weights`` the number of
  weights (the part the L2 / L1 penalties apply to).
* ``units[l]`` is the width of layer l's output (``units[0]`` = n_features,
  ``units[-1]`` = n_outputs). A maxout layer has ``pieces`` linear pieces per unit:
  its W has ``units * pieces`` columns, unit u's pieces are columns
  ``u*pieces ... u*pieces + pieces - 1``; ``cols[l] = units[l+1] * pieces[l]``.
* Per-batch workspaces are flat buffers viewed as matrices for a batch of m
  rows: ``acts`` (layer outputs, width units, at ``a_off``), ``pre`` (the
  pre-activations z = x W + b, width cols, at ``z_off``) and ``deltas``
  (dL/dz, width cols, at ``z_off``).
* The input rows of a batch are ``rows[start:start + m]``; dense X is gathered
  through them into a reused C-contiguous buffer ``xb``, sparse X (CSR arrays)
  is read in place.
* Activations, losses and solvers are integer codes (see ``codes``); per-layer
  settings come in the tables ``layer_int`` / ``layer_float``, the rest in an
  int vector ``icfg`` and a float vector ``fcfg``.
* Every reduction runs in a fixed order (per row, per column block, per fixed
  chunk, summed serially), so results do not depend on the number of threads.
* Dropout masks come from a counter-based hash of (seed, batch, row, layer,
  unit): reproducible, and recomputed in the backward pass instead of stored.
* Nothing here is compiled at import: Numba compiles on first call and caches
  on disk (``cache=True``).


Modules: ``views`` (flat-buffer views), ``activations`` (phi and its derivative, dropout masks),
``losses`` (output delta and loss), ``layers`` (gather, forward, delta recursion, gradient
products), ``optimizers`` (steps over the flat vector), ``online`` (one-row steps), ``epochs``
(the entry points called from Python), ``blas`` (direct GEMM calls), ``cache`` (the cache key and
prebuilt-kernel loading), ``codes`` and ``config`` (integer codes, tunables), ``jit`` (jit options),
``specialize`` and ``deferred_codegen`` (compile-time passes). Importing this package compiles nothing.
"""
