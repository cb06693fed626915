"""smpc for analysts: run joint computations locally or against running bank nodes.

    >>> import mpc
    >>> async def job(s):
    ...     xs = await s.input(my_value, range(s.n))      # SecFxp for floats, SecInt for ints
    ...     return await (sum(xs) / s.n).reveal()
    >>> mpc.run_local(3, job).results                     # all parties in this process

The typed secret arrays (`SecInt`, `SecFxp`, `where`) live in protocols.secure_types, on top of
the protocol functions (protocols.core, beaver, fixed, comparison, nonlinear), which stay the
engine and can be called directly on `x.share`.
"""

from mpc.fit import FittedModel, fit_local
from mpc.local import LocalRun, run_local
from mpc.node.client import Client
from protocols.secure_types import Pending, SecFxp, SecInt, where

__all__ = [
    "Client",
    "FittedModel",
    "LocalRun",
    "Pending",
    "SecFxp",
    "SecInt",
    "fit_local",
    "run_local",
    "where",
]
