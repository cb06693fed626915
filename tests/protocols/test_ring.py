import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.arith.ring import Ring64
from protocols.errors import DomainError, ShapeMismatch
from protocols.prg import CryptoRNG

R = Ring64()
M = 1 << 64
u64 = st.integers(0, M - 1)


@given(st.lists(st.tuples(u64, u64), min_size=1, max_size=20))
def test_ops_match_python_ints(pairs):
    x = np.array([a for a, _ in pairs], dtype=np.uint64)
    y = np.array([b for _, b in pairs], dtype=np.uint64)
    for op, ref in [(R.add, lambda a, b: a + b), (R.sub, lambda a, b: a - b), (R.mul, lambda a, b: a * b)]:
        got = op(x, y).astype(object)
        assert list(got) == [ref(a, b) % M for a, b in pairs]
    assert list(R.neg(x).astype(object)) == [(-a) % M for a, _ in pairs]
    assert int(R.sum(x)) == sum(a for a, _ in pairs) % M


@given(st.lists(st.integers(-(2**70), 2**70), min_size=1, max_size=10))
def test_from_int_reduces_negatives_and_big_ints(vals):
    got = R.from_int(np.array(vals, dtype=object))
    assert list(got.astype(object)) == [v % M for v in vals]
    assert list(R.to_signed(got)) == [((v + 2**63) % M) - 2**63 for v in vals]


def test_matmul_exact_against_python():
    rng = CryptoRNG.from_seed(3)
    x, y = rng.uint64((7, 13)), rng.uint64((13, 5))
    ref = (x.astype(object) @ y.astype(object)) % M
    assert (R.matmul(x, y).astype(object) == ref).all()
    with pytest.raises(ShapeMismatch):
        R.matmul(x, x)


def test_wire_validates_shape_and_dtype():
    x = R.from_int(np.arange(6).reshape(2, 3))
    assert (R.from_wire(R.to_wire(x), (2, 3)) == x).all()
    with pytest.raises(ShapeMismatch):
        R.from_wire(R.to_wire(x), (3, 2))
    with pytest.raises(DomainError):
        R.check(np.arange(3))
