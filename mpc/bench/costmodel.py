"""The cost and error model of `smpc bench`: each protocol's documented rounds and bytes per
party as functions of (size N, parties n, element bytes e, field or ring). The benchmark prints the
prediction next to the measurement and flags any difference; tests assert equality.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from protocols.comparison import eda_costs

#: matmul --size k multiplies (k, MATMUL_D) @ (MATMUL_D, MATMUL_M)
MATMUL_D, MATMUL_M = 10, 10


@dataclass(frozen=True)
class Cost:
    rounds: int
    bytes_per_party: int


def _cost_mul(N, n, e, field=False):
    return Cost(1, 2 * (n - 1) * N * e)  # beaver.mul: d and e opened in one batch


def _cost_matmul(k, n, e, field=False):
    return Cost(1, (n - 1) * (k * MATMUL_D + MATMUL_D * MATMUL_M) * e)  # beaver.matmul


def _cost_inner(N, n, e, field=False):
    return Cost(1, 2 * (n - 1) * N * e)  # beaver.matmul (1 x N) @ (N,): (n-1)(N + N)e


def _cost_open(N, n, e, field=False):
    return Cost(1, (n - 1) * N * e)  # core.open


def _cost_input(N, n, e, field=False):
    return Cost(1, (n - 1) * (8 * 1 + N * e))  # core.input: owner sends shape + shares


def _cost_triples(N, n, e, field=False):
    return Cost(0, 0)  # dealer-generated: no communication


def _cost_truncate(N, n, e, field=False):
    return Cost(1, (n - 1) * N * e)  # truncation.trunc "msb": one open


def _ltz(N, n, e, field):
    """comparison.ltz by the comparison path `field` takes: False: Z_2^64 with ltz_tuples (the
    dealers), 3 rounds, (n-1)*N*40 bytes; "edabits": Z_2^64 from edaBits (dealer-free
    sources); True: GF(p) (l = 64) from edaBits (the in-process and shared-seed dealers);
    "bits": GF(p) (l = 64) from random bits (dn07, the dealer node), 7 rounds,
    (n-1)*N*251*e bytes. From edaBits: comparison.eda_costs."""
    if field == "bits":
        return Cost(7, (n - 1) * N * 251 * e)
    if field is False:
        return Cost(3, (n - 1) * N * 40)
    rounds, per_peer = eda_costs("ltz", 64, N, 8 if field == "edabits" else e)
    return Cost(rounds, (n - 1) * per_peer)


def _ltz_mul(N, n, e, field):
    """comparison.ltz_mul with a shared factor: 3 rounds, (n-1)*N*48 bytes with ltz_tuples;
    from edaBits the Beaver openings of the product ride in the comparison's first message;
    from random bits one more round."""
    if field is False:
        return Cost(3, (n - 1) * N * 48)
    c = _ltz(N, n, e, field)
    e_ = 8 if field == "edabits" else e
    return Cost(c.rounds + (field == "bits"), c.bytes_per_party + 2 * (n - 1) * N * e_)


def _cost_compare(N, n, e, field=False):
    return _ltz(N, n, e, field)  # comparison.lt = ltz(x - y)


def _cost_fixed_mul(N, n, e, field=False):
    return Cost(2, 3 * (n - 1) * N * e)  # fixed.mul: Beaver opening + truncation opening


def _cost_sigmoid_piecewise(N, n, e, field=False):
    return _ltz_mul(2 * N, n, e, field)  # clip: both comparisons and products in one batch


def _cost_sigmoid(N, n, e, field=False):
    # nonlinear.sigmoid: 3 comparisons with their products by x (one ltz_mul on 3N); then 30
    # rounds of products: the degree-6 polynomial (5 fixed products = 15 units of
    # (n-1)*N*e, its truncation 1), 4 squarings (8), mul_public (1), 3 Newton steps (18),
    # trunc (1) and the final product (2): 46 units.  Rounds 33 (Z_2^64, ltz_tuples) / 38
    # (GF(p)) as documented.
    c = _ltz_mul(3 * N, n, e, field)
    return Cost(c.rounds + 30, c.bytes_per_party + 46 * (n - 1) * N * e)


def _cost_reciprocal(N, n, e, field=False):
    # nonlinear.reciprocal: 25 comparisons (every power of two of [2^-8, 2^16]) in one batch;
    # then the clipping product (4 units), x*M and its truncation (3), mul_public (1),
    # 3 Newton steps (18), w*M and its truncation (3): 29 units; rounds ltz + 18.
    c = _ltz(25 * N, n, e, field)
    return Cost(c.rounds + 18, c.bytes_per_party + 29 * (n - 1) * N * e)


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
