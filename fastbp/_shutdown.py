"""A faster interpreter exit in processes that imported Numba.

Numba's typing and compilation machinery keeps hundreds of thousands of Python
objects alive. When the interpreter shuts down it clears module after module
and runs the cyclic garbage collector over the whole heap several times on the
way: measured here, a process that imported fastbp and ran one fit spent about
0.7 s exiting, against 0.1 s for one that imported scikit-learn's MLP.

:func:`_collect_then_freeze` runs at exit (registered when fastbp is
imported): it first collects garbage once, as the interpreter itself does at
the start of its shutdown, so the finalizers of unreachable objects still run;
then it moves every surviving object to the collector's permanent generation
(``gc.freeze``), so the collections during module teardown no longer walk the
objects that are alive anyway. Objects are still freed by reference counting as
the modules are cleared. A process that disabled the collector keeps its
choice: nothing is done there.
"""

import atexit
import gc


def _collect_then_freeze():
    if gc.isenabled():
        gc.collect()
        gc.freeze()


def install():
    """Register the exit hook (once per process)."""
    atexit.unregister(_collect_then_freeze)
    atexit.register(_collect_then_freeze)
