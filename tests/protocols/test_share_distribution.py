"""T01: shares are uniform and independent of the secret; each check has a broken sharer
that it must catch (a test with no power proves nothing).

Chi-square at alpha = 1e-4 with a 2-of-3 vote over independent trials keeps CI quiet.
"""

import itertools
import pathlib
import re

import numpy as np
import pytest
from scipy.stats import chisquare
from stats_helpers import vote

from protocols.arith.field import GmpyField
from protocols.arith.ring import Ring64
from protocols.prg import CryptoRNG
from protocols.sharing import additive
from protocols.sharing.shamir import ShamirScheme

ALPHA = 1e-4
R = Ring64()


def _uniform_p(codes: np.ndarray, bins: int) -> float:
    counts = np.bincount(codes, minlength=bins)
    return float(chisquare(counts).pvalue)


def _vote(trial) -> bool:
    """True if at least 2 of 3 independent trials look uniform."""
    return vote(lambda k: trial(k) > ALPHA, range(3))


def _top_bits(x: np.ndarray, bits: int) -> np.ndarray:
    return (x >> np.uint64(64 - bits)).astype(np.int64)


def _additive_subsets_uniform(sharer, n: int, secret: int, samples: int = 40_000) -> bool:
    """Every single share and every (n-1)-tuple of shares, binned on top bits."""

    def trial(k):
        rng = CryptoRNG.from_seed(1000 * k + n)
        x = R.from_int(np.full(samples, secret, dtype=np.int64))
        shares = sharer(rng, x, n)
        ps = [_uniform_p(_top_bits(s, 8), 256) for s in shares]
        bits = max(1, 8 // (n - 1))
        for subset in itertools.combinations(range(n), n - 1):
            code = np.zeros(samples, dtype=np.int64)
            for i in subset:
                code = (code << bits) | _top_bits(shares[i], bits)
            ps.append(_uniform_p(code, 1 << (bits * (n - 1))))
        return min(ps) * len(ps)  # Bonferroni over the subsets

    return _vote(trial)


def good_sharer(rng, x, n):
    return additive.share(R, rng, x, n)


def broken_zero_share(rng, x, n):  # one share always 0
    sh = additive.share(R, rng, x, n)
    sh[0], sh[-1] = R.add(sh[0], sh[-1]), R.zeros(x.shape)
    return sh


def broken_excluded_value(rng, x, n):  # randomness never has its top bit set
    rest = [rng.uint64(x.shape) >> np.uint64(1) for _ in range(n - 1)]
    first = x
    for r in rest:
        first = R.sub(first, r)
    return [first, *rest]


def broken_correlated(rng, x, n):  # last share equals the first random share
    rest = [rng.uint64(x.shape) for _ in range(n - 2)]
    rest.append(rest[0].copy())
    first = x
    for r in rest:
        first = R.sub(first, r)
    return [first, *rest]


@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("secret", [0, 12345, -1])
def test_additive_shares_uniform(n, secret):
    assert _additive_subsets_uniform(good_sharer, n, secret)


@pytest.mark.parametrize("broken", [broken_zero_share, broken_excluded_value, broken_correlated])
def test_additive_broken_sharers_caught(broken):
    n = 3
    assert not _additive_subsets_uniform(broken, n, 7)


P = 257
FIELD = GmpyField(P)


def _shamir_t_tuples_uniform(share_fn, n: int, t: int, secret: int, samples: int = 30_000) -> bool:
    def trial(k):
        rng = CryptoRNG.from_seed(77 + k)
        x = FIELD.from_int(np.full(samples, secret))
        shares = [FIELD.to_int(s).astype(np.int64) for s in share_fn(rng, x)]
        ps = []
        for subset in itertools.combinations(range(n), t):
            if t == 1:
                ps.append(_uniform_p(shares[subset[0]], P))
            else:  # joint distribution of the t-tuple on 16 buckets per share
                code = np.zeros(samples, dtype=np.int64)
                for i in subset:
                    code = code * 16 + shares[i] * 16 // P
                counts = np.bincount(code, minlength=16**t)
                sizes = np.bincount(np.arange(P) * 16 // P, minlength=16)  # values per bucket
                expected = np.ones(1)
                for _ in subset:
                    expected = np.outer(expected, sizes).ravel()
                expected = expected / expected.sum() * samples
                ps.append(float(chisquare(counts, expected).pvalue))
        return min(ps) * len(ps)

    return _vote(trial)


@pytest.mark.parametrize("n,t", [(3, 1), (5, 2)])
@pytest.mark.parametrize("secret", [0, 200])
def test_shamir_t_shares_uniform(n, t, secret):
    sch = ShamirScheme(FIELD, n, t)
    assert _shamir_t_tuples_uniform(sch.share, n, t, secret)


def test_shamir_broken_sharer_caught():
    """A sharer whose random coefficient lies in [0, 128) only."""
    n, t = 3, 1
    sch = ShamirScheme(FIELD, n, t)

    class HalfRange:
        def __init__(self, rng):
            self.rng = rng

        def below(self, bound, shape):
            return self.rng.below(bound // 2, shape)

    assert not _shamir_t_tuples_uniform(lambda rng, x: sch.share(HalfRange(rng), x), n, t, 3)


def test_no_insecure_randomness_in_protocols():
    """Share and mask randomness must come from the CSPRNG: no `random` module and no
    numpy.random generator anywhere under protocols/ or network/."""
    root = pathlib.Path(__file__).resolve().parents[2]
    pattern = re.compile(r"^\s*(import random\b|from random import)|np\.random|numpy\.random", re.M)
    offenders = [
        str(p.relative_to(root))
        for pkg in ("protocols", "network")
        for p in (root / pkg).rglob("*.py")
        if pattern.search(p.read_text())
    ]
    assert offenders == []


def test_static_check_has_power(tmp_path):
    pattern = re.compile(r"^\s*(import random\b|from random import)|np\.random|numpy\.random", re.M)
    assert pattern.search("x = 1\nimport random\n")
    assert pattern.search("r = np.random.default_rng(1)")
