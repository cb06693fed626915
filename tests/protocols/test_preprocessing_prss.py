"""PRSS (Cramer-Damgard-Ishai 2005): random, zero and double sharings and integer masks with
no communication; the one-round key agreement's exact cost; consistency across every t + 1
(or 2t + 1) subset of shares, with a broken key set caught; and DN07's kinds built on it."""

import itertools
import math

import numpy as np
import pytest
from preprocessing_helpers import reconstruct, run_all, sessions

from protocols.arith.field import Mersenne61, Mersenne127
from protocols.errors import ParameterError
from protocols.preprocessing import prss as prss_mod
from protocols.preprocessing.dn07 import DN07
from protocols.preprocessing.prss import PRSS, prss_sets, set_polys
from protocols.sharing.schemes import ShamirShares
from protocols.sharing.shamir import lagrange_coefficients

pytestmark = pytest.mark.timeout(60)

FIELDS = {"M61": Mersenne61, "M127": Mersenne127}


def setup(n, field="M61"):
    sch = ShamirShares(FIELDS[field](), n, (n - 1) // 2)
    ss = sessions(n, sch, lambda s: None)
    gens = run_all(ss, PRSS.setup)
    return sch, ss, gens


def interpolate(F, xs, shares, idx):
    """The value at 0 of the polynomial through the shares of the parties in idx."""
    lag = lagrange_coefficients(F.modulus, tuple(xs[i] for i in idx), 0)
    return F.lincomb(lag, [shares[i] for i in idx])


def consistent(F, xs, shares, deg):
    """True iff every (deg + 1)-subset of the n shares interpolates to the same secrets (all
    n shares lie on one polynomial of degree <= deg); returns (ok, the secret)."""
    n = len(shares)
    subsets = list(itertools.combinations(range(n), deg + 1))
    first = interpolate(F, xs, shares, subsets[0])
    ok = all(np.array_equal(interpolate(F, xs, shares, S), first) for S in subsets[1:])
    return ok, first


@pytest.mark.parametrize("field", ["M61", "M127"])
@pytest.mark.parametrize("n", [3, 5])
def test_randoms_zeros_doubles_consistent(n, field):
    sch, ss, gens = setup(n, field)
    F, t, xs = sch.field, sch.t, sch.xs
    r = [g.randoms(500) for g in gens]
    ok, secret = consistent(F, xs, r, t)
    assert ok
    assert len(set(F.to_int(secret).tolist())) == 500  # distinct: uniform elements
    z = [g.zeros(500) for g in gens]
    ok, zero = consistent(F, xs, z, 2 * t)
    assert ok and (F.to_int(zero) == 0).all()
    assert not consistent(F, xs, z, 2 * t - 1)[0]  # a genuine degree-2t sharing, not lower
    assert len(set(F.to_int(z[0]).tolist())) == 500  # shares of 0 look random
    d = [g.double(500) for g in gens]
    ok_t, s_t = consistent(F, xs, [x[0] for x in d], t)
    ok_2t, s_2t = consistent(F, xs, [x[1] for x in d], 2 * t)
    assert ok_t and ok_2t and np.array_equal(s_t, s_2t)
    # every call draws fresh values
    assert not np.array_equal(consistent(F, xs, [g.randoms(500) for g in gens], t)[1], secret)


@pytest.mark.parametrize("n", [3, 5])
def test_ints_are_the_sum_of_the_set_values(n):
    """ints(w) reconstructs to sum_A psi_A < C(n, t) 2^w; the psi_A come from each set's key
    (recomputed from a copy of the keys), so the mask is exactly the stated sum."""
    sch, ss, gens = setup(n, "M127")
    F, t, xs = sch.field, sch.t, sch.xs
    twins = [PRSS(F, n, t, g.pid, xs, g.keys) for g in gens]
    w = 70  # two limbs
    r = F.to_int(consistent(F, xs, [g.ints(400, w) for g in gens], t)[1])
    vals = {}
    for tw in twins:
        for A, lo in tw.set_values(400, w):
            vals.setdefault(A, lo)
    assert set(vals) == set(prss_sets(n, t))
    assert (r < (len(vals) << w)).all() and max(r).bit_length() > w
    low = np.array([int(v) & ((1 << 64) - 1) for v in r], dtype=object)
    want = sum(v.astype(object) for v in vals.values()) & ((1 << 64) - 1)
    assert (low == want).all()  # the low limb of the sum
    with pytest.raises(ParameterError):
        gens[0].ints(4, 127)  # C(n, t) 2^127 > p


@pytest.mark.parametrize("broken", [False, True])
@pytest.mark.parametrize("n", [3, 5])
def test_key_set_that_omits_a_party_is_caught(n, broken):
    """Broken variant: one member of one set holds a different key (as if the set's key had
    never reached it, so it is not really in the set): its shares no longer lie on the
    others' polynomial, which the subset-consistency check detects."""
    sch, ss, gens = setup(n)
    F, t, xs = sch.field, sch.t, sch.xs
    if broken:
        A = gens[-1].sets[0]
        gens[-1].keys[A] = bytes(32)
    ok, _ = consistent(F, xs, [g.randoms(200) for g in gens], t)
    assert ok != broken
    # n = 2t + 1 shares always fit some degree-2t polynomial: the zero sharing's secret
    # is what goes wrong
    ok, zero = consistent(F, xs, [g.zeros(200) for g in gens], 2 * t)
    assert ok and (F.to_int(zero) == 0).all() != broken


@pytest.mark.parametrize("n", [3, 5, 7])
def test_every_t_set_misses_a_key(n):
    """Privacy's combinatorics: any t parties lack the key of some set (the complement of
    any t-set is a set), and f_A vanishes exactly off A with f_A(0) = 1."""
    t = (n - 1) // 2
    sets = prss_sets(n, t)
    for T in itertools.combinations(range(n), t):
        assert any(not set(A) & set(T) for A in sets)
    p = Mersenne61().modulus
    xs = tuple(range(1, n + 1))
    polys = set_polys(p, xs, n, t)
    for A, vals in polys.items():
        assert all((vals[i] == 0) == (i not in A) for i in range(n))
        # f_A(0) = 1: interpolate the n values with degree t from t + 1 points of A... any
        lag = lagrange_coefficients(p, xs[: t + 1], 0)
        assert sum(c * v for c, v in zip(lag, vals[: t + 1], strict=True)) % p == 1


def test_setup_cost_exact():
    """Key agreement: 1 round; the leader of each set sends 32 bytes to each other member.
    n = 3: party 0 leads {0,1}, {0,2} (64 bytes), party 1 leads {1,2} (32). n = 5, t = 2:
    party 0 leads C(4,2) = 6 sets of 3 (12 keys), party 1 leads 3 (6), party 2 one (2)."""
    for n, want in ((3, [64, 32, 0]), (5, [384, 192, 64, 0, 0])):
        sch = ShamirShares(Mersenne61(), n, (n - 1) // 2)
        ss = sessions(n, sch, lambda s: None)
        run_all(ss, PRSS.setup)
        assert [s.stats.bytes_sent for s in ss] == want
        assert {s.stats.rounds for s in ss} == {1}
        assert len(prss_sets(n, (n - 1) // 2)) == math.comb(n, (n - 1) // 2)


def test_refuses_bad_parameters():
    F = Mersenne61()
    with pytest.raises(ParameterError):
        PRSS(F, 3, 2, 0, (1, 2, 3), {})
    with pytest.raises(ParameterError):
        PRSS(F, 3, 1, 0, (1, 2, 3), {})  # missing keys
    with pytest.raises(ParameterError):
        prss_mod.check_params(15, 7)  # C(15, 7) key sets: too many


# -- DN07 on PRSS --------------------------------------------------------------------------


def dn07(n, batch):
    sch = ShamirShares(Mersenne127(), n, (n - 1) // 2)
    return sch, sessions(n, sch, lambda s: DN07(s, batch=batch))


@pytest.mark.parametrize("n", [3, 5])
def test_dn07_prss_masks(n):
    """trunc_pairs: r < 2^bits, r >> f = hi, r mod 2^f exact f-bit values (all 2^4 low
    nibbles appear); bounded randoms < 2^bits with the top bits in use; both from PRSS."""
    sch, ss = dn07(n, 4000)
    assert all(s.prep.prss for s in ss)
    F = sch.field

    async def job(s):
        return await s.prep.trunc_pairs((3000,), 16, 104), await s.prep.bounded_randoms((3000,), 40)

    res = run_all(ss, job)
    r = F.to_int(reconstruct(sch, [x[0][0] for x in res]))
    hi = F.to_int(reconstruct(sch, [x[0][1] for x in res]))
    assert (r < (1 << 104)).all() and (r >> 16 == hi).all()
    assert max(r).bit_length() >= 103  # n = 5: 10 summands below 2^84 reach 2^87 rarely
    low = np.array([int(v) & 15 for v in r])
    assert set(low.tolist()) == set(range(16))
    m = F.to_int(reconstruct(sch, [x[1] for x in res]))
    assert (m < (1 << 40)).all() and max(m).bit_length() >= 39


def test_dn07_prss_trunc_pairs_cost_exact():
    """3000 truncation pairs (f = 16, 104 bits) at n = 3 over GF(2^127 - 1), batch 48000:
    the key agreement (1 round, 64 / 32 / 0 bytes), then one daBit refill of 48000 bits
    (dealers 0 and 1 send 48000 elements of 16 bytes to 2 peers; the king reduction sends 2
    chunks of 16000 and returns 16000 to 2 peers: 2 rounds) and nothing for the 88-bit
    high parts. Counted rounds: keys 1 + dealing 1 + king 2 = 4."""
    sch, ss = dn07(3, 48000)

    async def job(s):
        await s.prep.trunc_pairs((3000,), 16, 104)
        return s.prep.stats.copy()

    st = run_all(ss, job)
    king = 16 * (2 * 16000 + 2 * 16000)
    deal = 16 * 2 * 48000
    assert [x.bytes_sent for x in st] == [deal + king + 64, deal + king + 32, king]
    assert {x.rounds for x in st} == {4}


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("n", [3, 5])
def test_bool_triples_correct_and_masked(n, k):
    """XOR over the n parties: c = a & b for every word and bit; a, b, c look uniform (about
    half the bits set). Broken variant (zero_mask=False, the unmasked CNF products): party
    1's share of c is then the fixed XOR of the products of the set values it knows,
    which a test recomputing them from the keys detects on every word; masked it matches
    only by chance (never in 2000 words)."""
    sch, ss, gens = setup(n)
    N = 2000
    twins = [PRSS(sch.field, n, sch.t, g.pid, xs=sch.xs, keys=dict(g.keys)) for g in gens]
    out = [g.bool_triples(N, k) for g in gens]
    a = np.bitwise_xor.reduce([o[0] for o in out])
    b = np.bitwise_xor.reduce([o[1] for o in out])
    c = np.bitwise_xor.reduce([o[2] for o in out])
    assert a.shape == (N,) and b.shape == c.shape == (k, N)
    assert (c == (a[None] & b)).all()
    ones = lambda v: int(np.unpackbits(v.view(np.uint8)).sum())  # noqa: E731
    assert abs(ones(a) - 64 * N / 2) < 6 * np.sqrt(64 * N / 4)
    assert abs(ones(c) - k * 64 * N / 4) < 6 * np.sqrt(k * 64 * N * 3 / 16)
    for masked in (True, False):
        shares = [tw.bool_triples(N, k, zero_mask=masked) for tw in twins]
        assert (np.bitwise_xor.reduce([x[2] for x in shares]) == (np.bitwise_xor.reduce([x[0] for x in shares])[None] & np.bitwise_xor.reduce([x[1] for x in shares]))).all()
        unmasked = PRSS(sch.field, n, sch.t, 1, xs=sch.xs, keys=dict(gens[1].keys))
        unmasked._calls = twins[1]._calls - 1
        again = unmasked.bool_triples(N, k, zero_mask=False)[2]
        same = int((again == shares[1][2]).sum())
        assert (same == k * N) == (not masked)
        assert masked is False or same == 0


def test_dn07_bool_triples_from_prss_cost_nothing():
    """DN07 with PRSS: boolean triples need no communication but the key agreement."""
    sch = ShamirShares(Mersenne61(), 3, 1)
    ss = sessions(3, sch, lambda s: DN07(s, batch=1000))

    async def job(s):
        a, b, c = await s.prep.bool_triples((500,), 2)
        return a, b, c, s.prep.stats.copy()

    res = run_all(ss, job)
    a = np.bitwise_xor.reduce([r[0] for r in res])
    b = np.bitwise_xor.reduce([r[1] for r in res])
    c = np.bitwise_xor.reduce([r[2] for r in res])
    assert (c == a[None] & b).all()
    assert [r[3].bytes_sent for r in res] == [64, 32, 0] and {r[3].rounds for r in res} == {1}
