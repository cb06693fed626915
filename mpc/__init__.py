"""smpc for analysts: run joint computations locally or against running bank nodes.

    >>> import mpc
    >>> res = mpc.run_local(3, job)          # all parties in this process
"""

from mpc.local import LocalRun, run_local

__all__ = ["LocalRun", "run_local"]
