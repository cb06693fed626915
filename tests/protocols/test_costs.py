"""The cost table (protocols.costs): its doctests, literal spot checks of every row (so a
wrong table is caught even where tests compare Stats with it), and the bench's cost model
reading it."""

import doctest

import pytest

from mpc.bench import costmodel
from protocols import comparison, costs
from protocols.costs import Cost


def test_doctests():
    res = doctest.testmod(costs)
    assert res.attempted >= 5 and res.failed == 0


def test_rows_literal():
    assert costs.open_(10, 3, 8) == Cost(1, 160)
    assert costs.input_(10, 3, 8) == Cost(1, 2 * (8 + 80))
    assert costs.mul(10, 4, 16) == Cost(1, 2 * 3 * 10 * 16)
    assert costs.matmul(6, 4, 3, 8) == Cost(1, 2 * 10 * 8)
    assert costs.trunc(7, 2, 16) == Cost(1, 7 * 16)
    assert costs.fixed_mul(10, 4, 8) == Cost(2, 3 * 3 * 10 * 8)
    assert costs.sub_trunc_matmul(40, 6, 3, 8, fused=True) == Cost(1, 2 * (240 + 12) * 8)
    assert costs.sub_trunc_matmul(40, 6, 3, 8, fused=False) == Cost(2, 2 * (240 + 12) * 8)
    assert costs.select(5, 3, 8) == Cost(1, 2 * 2 * 5 * 8)


def test_comparison_rows_literal():
    N = 64
    assert costs.ltz(N, 3, 8, "ring3") == Cost(3, 2 * N * 40)
    assert costs.ltz_mul(N, 3, 8, "ring3") == Cost(3, 2 * N * 48)
    assert costs.ltz(N, 3, 16, "edabits") == Cost(8, 2 * (N * 16 + 189 * 8))
    assert costs.ltz_mul(N, 3, 16, "edabits") == Cost(8, 2 * (N * 16 + 189 * 8 + 2 * N * 16))
    assert costs.eqz(N, 3, 8, "ring3") == costs.eqz(N, 3, 8, "edabits") == Cost(8, 2 * (N * 8 + 127 * 8))
    assert costs.ltz(N, 3, 16, "field_bits") == Cost(7, 2 * N * 251 * 16)
    assert costs.ltz_mul(N, 3, 16, "field_bits") == Cost(8, 2 * N * (251 + 2) * 16)
    assert costs.eqz(N, 3, 16, "field_bits") == Cost(7, 2 * N * 127 * 16)
    assert costs.ltz(N, 3, 16, "field_bits", ell=17) == Cost(5, 2 * N * 59 * 16)
    assert costs.sigmoid(10, 3, 8, "ring3").rounds == 33 and costs.sigmoid(10, 3, 16, "edabits").rounds == 38
    assert costs.reciprocal(10, 3, 8, "ring3").rounds == 21 and costs.reciprocal(10, 3, 16, "edabits").rounds == 26
    with pytest.raises(ValueError):
        costs.ltz(N, 3, 8, "dealer")
    with pytest.raises(ValueError):
        costs.eda_per_peer("lt", 64, N, 8)


def test_one_table():
    """The comparison package and the bench read the same functions (no second formula)."""
    assert comparison.eda_costs is costs.eda_per_peer
    assert comparison.field_costs is costs.field_bits_per_element
    assert costmodel.Cost is Cost
    for field in (False, "edabits", True, "bits"):
        e = 8 if field in (False, "edabits") else 16
        be = costmodel.backend(field)
        assert costmodel.COST_MODEL["compare"](10, 3, e, field) == costs.ltz(10, 3, e, be)
        assert costmodel.COST_MODEL["sigmoid"](10, 3, e, field) == costs.sigmoid(10, 3, e, be)
