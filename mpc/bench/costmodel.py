"""The cost and error model of `smpc bench`: each protocol's documented rounds and bytes per
party as functions of (size N, parties n, element bytes e, field or ring), read from the
protocols' cost table (protocols.costs). The benchmark prints the prediction next to the
measurement and flags any difference; tests assert equality.
"""

from __future__ import annotations

from collections.abc import Callable

from protocols import costs
from protocols.costs import Cost

#: matmul --size k multiplies (k, MATMUL_D) @ (MATMUL_D, MATMUL_M)
MATMUL_D, MATMUL_M = 10, 10


def backend(field: bool | str) -> str:
    """The comparison backend of a bench run (protocols.costs.BACKENDS) from its `field`
    argument: False: Z_2^64 with ltz_tuples (the dealers) "ring3"; "edabits": Z_2^64 from
    edaBits (the OT source); True: GF(p) (l = 64) from edaBits (the in-process and
    shared-seed dealers, dn07) "edabits"; "bits": GF(p) (l = 64) from random bits
    "field_bits"."""
    return {False: "ring3", "edabits": "edabits", True: "edabits", "bits": "field_bits"}[field]


def _elem(e: int, field: bool | str) -> int:
    return 8 if field == "edabits" else e  # Z_2^64 from edaBits: 8-byte words


def _cost_mul(N, n, e, field=False):
    return costs.mul(N, n, e)


def _cost_matmul(k, n, e, field=False):
    return costs.matmul(k * MATMUL_D, MATMUL_D * MATMUL_M, n, e)


def _cost_inner(N, n, e, field=False):
    return costs.matmul(N, N, n, e)  # (1 x N) @ (N,)


def _cost_open(N, n, e, field=False):
    return costs.open_(N, n, e)


def _cost_input(N, n, e, field=False):
    return costs.input_(N, n, e)


def _cost_triples(N, n, e, field=False):
    return Cost(0, 0)  # dealer-generated: no communication


def _cost_truncate(N, n, e, field=False):
    return costs.trunc(N, n, e)


def _cost_compare(N, n, e, field=False):
    return costs.ltz(N, n, _elem(e, field), backend(field))  # comparison.lt = ltz(x - y)


def _cost_fixed_mul(N, n, e, field=False):
    return costs.fixed_mul(N, n, e)


def _cost_sigmoid_piecewise(N, n, e, field=False):
    return costs.sigmoid_piecewise(N, n, _elem(e, field), backend(field))


def _cost_sigmoid(N, n, e, field=False):
    return costs.sigmoid(N, n, _elem(e, field), backend(field))


def _cost_reciprocal(N, n, e, field=False):
    return costs.reciprocal(N, n, _elem(e, field), backend(field))


def _cost_not_modelled(N, n, e, field=False):
    """End-to-end jobs: protocols.apps.ml documents the rounds of one SGD iteration but only "about
    40" for the secure standardisation before it, and protocols.apps.fraud's Rounds line is not
    exact either; no prediction is made (never one fitted to the measurement)."""
    return None


#: op -> (size, parties, element bytes) -> predicted Cost (None: not modelled); the
#: protocols' documented costs
COST_MODEL: dict[str, Callable[[int, int, int], Cost | None]] = {
    "mul": _cost_mul,
    "matmul": _cost_matmul,
    "inner": _cost_inner,
    "open": _cost_open,
    "input": _cost_input,
    "triples": _cost_triples,
    "truncate": _cost_truncate,
    "fixed_mul": _cost_fixed_mul,
    "compare": _cost_compare,
    "sigmoid_piecewise": _cost_sigmoid_piecewise,
    "sigmoid": _cost_sigmoid,
    "reciprocal": _cost_reciprocal,
    "logistic_regression": _cost_not_modelled,
    "fraud_score": _cost_not_modelled,
    # issue 13: joint DP noise (protocols.apps.dp); not modelled (its ltz's path varies)
    "dp_laplace": _cost_not_modelled,
    "dp_gaussian": _cost_not_modelled,
}


#: fixed-point fractional bits of the fixed-point ops (protocols.arith.fixedpoint.DEFAULT_F)
FIX_F = 16
#: the documented maximum absolute error of each fixed-point op's decoded result, as a
#: function of the (decoded) input x: fixed.mul 2^-f; sigmoid 2^-f + 1e-4 on all of R;
#: reciprocal 2e-5/x + 2^-f on [2^-8, 2^16); compare and sigmoid_piecewise are exact
ERROR_BOUND = {
    "fixed_mul": lambda x: 2.0**-FIX_F,
    "sigmoid": lambda x: 2.0**-FIX_F + 1e-4,
    "reciprocal": lambda x: 2e-5 / x + 2.0**-FIX_F,
    "sigmoid_piecewise": lambda x: 0.0,
    "compare": lambda x: 0.0,
}
