"""The names of the computations a node can run: the keys of mpc.node.jobs.REGISTRY.

They live in a module of their own so that the config (which writes them into the demo
consortium's policies) does not import the job runners, which read the config:
config -> computations <- jobs (tests/mpc/test_jobs.py checks the two lists agree).
"""

from __future__ import annotations

#: every computation in the job registry, in registry order
COMPUTATIONS: tuple[str, ...] = (
    "aggregate_sum",
    "aggregate_mean",
    "linear_regression",
    "ridge_regression",
    "logistic_regression",
    "fraud_score",
    "fraud_aggregate",
)
