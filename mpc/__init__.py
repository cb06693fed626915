"""smpc for analysts: run joint computations locally or against running bank nodes.

    >>> import mpc
    >>> res = mpc.run_local(3, job)          # all parties in this process
"""

from mpc.fit import FittedModel, fit_local
from mpc.local import LocalRun, run_local

__all__ = ["FittedModel", "LocalRun", "fit_local", "run_local"]

from mpc.node.client import Client  # noqa: E402

__all__ = [*__all__, "Client"]
