"""Additive and Shamir sharing: round trips, linearity, thresholds, parameter validation."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.arith.field import GmpyField, Mersenne61
from protocols.arith.ring import Ring64
from protocols.errors import ConfigError, PartyIndexError, ShareInconsistencyError
from protocols.prg import CryptoRNG
from protocols.sharing import additive
from protocols.sharing.shamir import ShamirScheme

R, F = Ring64(), Mersenne61()
shapes = st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, n=st.sampled_from([2, 3, 5, 7]), seed=st.integers(0, 2**32), ring=st.booleans())
def test_additive_round_trip_and_linearity(shape, n, seed, ring):
    D = R if ring else F
    rng = CryptoRNG.from_seed(seed)
    x, y = D.random(rng, shape), D.random(rng, shape)
    sx, sy = additive.share(D, rng, x, n), additive.share(D, rng, y, n)
    assert len(sx) == n
    assert (additive.reconstruct(D, sx) == x).all()
    summed = [D.add(a, b) for a, b in zip(sx, sy, strict=True)]
    assert (additive.reconstruct(D, summed) == D.add(x, y)).all()
    scaled = [D.mul(a, D.from_int(5)) for a in sx]
    assert (additive.reconstruct(D, scaled) == D.mul(x, D.from_int(5))).all()


@settings(max_examples=40, deadline=None)
@given(shape=shapes, n=st.sampled_from([3, 5, 7]), seed=st.integers(0, 2**32), data=st.data())
def test_shamir_any_t_plus_1_reconstruct(shape, n, seed, data):
    t = data.draw(st.integers(1, (n - 1) // 2))
    sch = ShamirScheme(F, n, t)
    rng = CryptoRNG.from_seed(seed)
    x = F.random(rng, shape)
    shares = sch.share(rng, x)
    subset = data.draw(st.sets(st.integers(0, n - 1), min_size=t + 1, max_size=n))
    assert (sch.reconstruct({i: shares[i] for i in subset}) == x).all()


def test_shamir_all_subsets_small_case():
    sch = ShamirScheme(F, 5, 2)
    x = F.from_int(np.arange(10))
    shares = sch.share(CryptoRNG.from_seed(1), x)
    for k in (3, 4, 5):
        for subset in itertools.combinations(range(5), k):
            assert (sch.reconstruct({i: shares[i] for i in subset}) == x).all()


def test_shamir_inconsistent_shares_detected():
    sch = ShamirScheme(F, 5, 2)
    shares = sch.share(CryptoRNG.from_seed(2), F.from_int(np.arange(6)))
    shares[4] = F.add(shares[4], F.from_int(np.array([0, 0, 1, 0, 0, 0])))
    with pytest.raises(ShareInconsistencyError):
        sch.reconstruct(dict(enumerate(shares)))
    # without the corrupted share the rest still reconstructs
    assert (sch.reconstruct({i: shares[i] for i in range(4)}) == F.from_int(np.arange(6))).all()


def test_shamir_too_few_shares():
    sch = ShamirScheme(F, 3, 1)
    shares = sch.share(CryptoRNG(), F.from_int(np.arange(3)))
    with pytest.raises(ConfigError):
        sch.reconstruct({0: shares[0]})


@pytest.mark.parametrize(
    "n,t,xs,multiply,err",
    [
        (3, 0, None, True, ConfigError),  # t < 1
        (3, 3, None, False, ConfigError),  # t >= n
        (4, 2, None, True, ConfigError),  # 2t >= n where multiplication is needed
        (3, 1, [1, 2, 0], True, PartyIndexError),  # x = 0
        (3, 1, [1, 2, 2], True, PartyIndexError),  # duplicate
        (3, 1, [1, 2, 2**61], True, PartyIndexError),  # 2^61 = 1 mod p: duplicate of x = 1
        (3, 1, [1, 2, 2**61 - 1], True, PartyIndexError),  # = 0 mod p
        (3, 1, [1, 2], True, PartyIndexError),  # wrong count
        (1, 1, None, False, ConfigError),
    ],
)
def test_shamir_parameter_validation(n, t, xs, multiply, err):
    with pytest.raises(err):
        ShamirScheme(F, n, t, xs, multiply=multiply)


def test_shamir_without_multiplication_allows_dishonest_threshold():
    sch = ShamirScheme(F, 4, 3, multiply=False)
    x = F.from_int(np.arange(4))
    assert (sch.reconstruct(dict(enumerate(sch.share(CryptoRNG(), x)))) == x).all()


class _EnumeratingRNG:
    """Stands in for CryptoRNG and returns, for the k-th coefficient array, the k-th digit
    in base p of 0 .. p^t - 1: sharing an array of p^t copies of a secret then runs the real
    sharing code over every possible polynomial exactly once."""

    def __init__(self, p: int, t: int):
        self.p, self.t, self.k = p, t, 0

    def below(self, bound, shape):
        assert bound == self.p
        idx = np.arange(int(np.prod(shape)), dtype=np.uint64)
        digit = (idx // np.uint64(self.p**self.k)) % np.uint64(self.p)
        self.k += 1
        return digit.reshape(shape)

    def uint64(self, shape):  # pragma: no cover - GF(257) draws through `below`
        raise AssertionError("unexpected draw")


@pytest.mark.parametrize("n,t", [(3, 1), (5, 2)])
def test_shamir_t_shares_identically_distributed_exhaustive_gf257(n, t):
    """T02: over all polynomials, every t-subset of shares takes every value in GF(257)^t
    exactly once, whatever the secret."""
    p = 257
    field = GmpyField(p)
    sch = ShamirScheme(field, n, t)
    secrets = [0, 1, 100, 256]
    for secret in secrets:
        x = field.from_int(np.full(p**t, secret))
        shares = [field.to_int(s).astype(np.int64) for s in sch.share(_EnumeratingRNG(p, t), x)]
        for subset in itertools.combinations(range(n), t):
            code = np.zeros(p**t, dtype=np.int64)
            for i in subset:
                code = code * p + shares[i]
            assert np.array_equal(np.sort(code), np.arange(p**t)), (secret, subset)
        # and any t + 1 of them determine the secret
        assert (sch.reconstruct({i: field.from_int(shares[i]) for i in range(t + 1)}) == x).all()


def test_broken_sharer_is_caught_by_the_exhaustive_check():
    """Power check: a degree-t polynomial whose top coefficient is forced to be non-zero
    leaves t-tuples non-uniform, and the same exhaustive check sees it."""
    p, n, t = 257, 3, 1
    field = GmpyField(p)
    sch = ShamirScheme(field, n, t)

    class Broken(_EnumeratingRNG):
        def below(self, bound, shape):
            d = super().below(bound, shape)
            return np.where(d == 0, 1, d).astype(np.uint64)  # never the zero coefficient

    x = field.from_int(np.full(p, 5))
    shares = field.to_int(sch.share(Broken(p, t), x)[0]).astype(np.int64)
    assert not np.array_equal(np.sort(shares), np.arange(p))
