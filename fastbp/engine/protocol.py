"""What the estimators ask of a trainer: the contract the CPU, CUDA and Dask trainers implement.

The estimators (``estimators/solving.py``, ``_base.py``) call a trainer only through these members;
none is looked for with ``hasattr``. ``tests/test_architecture.py`` checks that each trainer class
defines every member with the declared parameters.

* :class:`FullBatchObjective`: the loss and gradient over a set of rows, which L-BFGS, Rprop and
  Quickprop step from. ``engine.dask.BlockObjective`` (the blocks of a dask collection, summed
  on the workers) implements it.
* :class:`Trainer`: a full-batch objective that also runs the compiled mini-batch epochs, the
  Jacobian of Levenberg-Marquardt and, for a device, the parameters' round trip.
  ``engine.cpu.Trainer`` and ``engine.cuda.CudaTrainer`` implement it.
"""

from typing import Callable, Optional, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class FullBatchObjective(Protocol):
    """The loss and gradient of a network's parameters over rows of one data set.

    Attributes
    ----------
    network : engine.network.Network
        The layers, their activations and the flat parameter vector's layout.
    gradient : ndarray of shape (n_params,)
        The gradient of the last :meth:`loss_and_gradient` (a host array the
        next call overwrites).
    """

    network: object

    @property
    def gradient(self) -> np.ndarray: ...

    def loss_and_gradient(self, flat: np.ndarray, rows: Optional[np.ndarray], chunk: Optional[int] = None,
                          deadline: Optional[float] = None) -> float:
        """The mean loss with penalties over ``rows`` at ``flat``; its gradient into :attr:`gradient`.

        Raises ``engine.cpu.TimeUp`` once ``time.perf_counter()`` passes ``deadline``.
        """

    def dataset_loss(self, flat: np.ndarray, rows: Optional[np.ndarray]) -> float:
        """The mean loss with penalties over ``rows`` at ``flat`` (no gradient)."""

    def gives_finite_loss(self, rows: Optional[np.ndarray]) -> Callable[[np.ndarray], bool]:
        """A test of a parameter vector: does its loss over ``rows`` come out finite?"""


@runtime_checkable
class Trainer(FullBatchObjective, Protocol):
    """A full-batch objective that also trains: mini-batch epochs, the Jacobian, the device round trip.

    Attributes
    ----------
    workspace : object or None
        Host buffers a later trainer of the same shapes may reuse
        (``partial_fit`` keeps them between calls); None when there are none.
    """

    workspace: object

    def train_epoch(self, flat: np.ndarray, rows: np.ndarray, batch_size: int, first_batch: int, stop_batch: int,
                    state_1: np.ndarray, state_2: np.ndarray, counters: np.ndarray, learning_rate: float,
                    running_total: float = 0.0) -> float:
        """Run batches ``first_batch..stop_batch-1`` of ``rows`` with the solver's compiled step,
        updating ``flat``, the solver's buffers and ``counters`` in place; return
        ``running_total + sum(batch_loss * batch_rows)``."""

    def jacobian(self, flat: np.ndarray, rows: np.ndarray, row_scale: np.ndarray, out: np.ndarray) -> None:
        """The Jacobian of the scaled residuals over ``rows`` into ``out`` (Levenberg-Marquardt)."""

    def to_device(self, flat: np.ndarray, state_1: Optional[np.ndarray] = None,
                  state_2: Optional[np.ndarray] = None) -> None:
        """Before an epoch: the host's parameters and solver buffers where the epoch runs."""

    def to_host(self, flat: Optional[np.ndarray] = None, state_1: Optional[np.ndarray] = None,
                state_2: Optional[np.ndarray] = None) -> None:
        """After an epoch (also when it raised): the parameters and buffers back in the host arrays."""
