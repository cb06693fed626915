"""DN07 (Shamir, honest majority): correctness of every item kind, the distribution of what
the parties see, and Beaver mul / matmul end to end."""

import numpy as np
import pytest
from preprocessing_helpers import make_scheme, reconstruct, run_all, sessions

from protocols import beaver, core
from protocols.arith.field import Mersenne61, Mersenne127
from protocols.errors import ParameterError, PreprocessingExhausted
from protocols.preprocessing import dn07
from protocols.preprocessing.dn07 import DN07
from protocols.session import Share
from protocols.sharing.schemes import ShamirShares

pytestmark = pytest.mark.timeout(60)


FIELDS = {"M61": Mersenne61, "M127": Mersenne127}


def dn07_sessions(n, batch=1000, field="M61", bit_method="xor", prss=None):
    sch = ShamirShares(FIELDS[field](), n, (n - 1) // 2) if field != "M61" else make_scheme("shamir", n)
    return sch, sessions(n, sch, lambda s: DN07(s, batch=batch, bit_method=bit_method, prss=prss))


@pytest.mark.parametrize("field", ["M61", "M127"])
@pytest.mark.parametrize("n,method", [(3, "xor"), (5, "xor"), (3, "sqrt"), (5, "sqrt")])
def test_bits_both_methods(n, method, field):
    """Both bit generators give fair 0/1 bits over both fields; the default "xor" one folds
    t + 1 dealt bits (t = 2 multiplications at n = 5)."""
    sch, ss = dn07_sessions(n, batch=100, field=field, bit_method=method)
    out = run_all(ss, lambda s: s.prep.bits((3000,)))
    bits = sch.field.to_int(reconstruct(sch, out))
    assert set(np.unique(bits).tolist()) == {0, 1}
    assert 1300 < int(bits.sum()) < 1700  # 3000 fair bits: 7.3 sigma
    with pytest.raises(ParameterError):
        DN07(ss[0], bit_method="nope")


@pytest.mark.parametrize("field", ["M61", "M127"])
@pytest.mark.parametrize("n", [3, 5])
def test_all_kinds_correct(n, field):
    sch, ss = dn07_sessions(n, field=field)
    F = sch.field
    tbits, tf = (48, 8) if field == "M61" else (104, 16)  # CS10 masks on GF(2^127-1): l + kappa

    async def job(s):
        return (
            await s.prep.triples((7, 11)),
            await s.prep.square_pairs((30,)),
            (await s.prep.bits((2000,)),),
            (await s.prep.randoms((5,)),),
            await s.prep.matrix_triples((6, 4), (4, 3)),
            await s.prep.matrix_triples((5, 4), (4,)),
            await s.prep.trunc_pairs((40,), tf, tbits),
            await s.prep.triples((3000,)),  # larger than the batch: refills
            (await s.prep.bounded_randoms((50,), tbits - 7),),
        )

    res = run_all(ss, job)
    rec = lambda k, j: reconstruct(sch, [r[k][j] for r in res])  # noqa: E731
    a, b, c = rec(0, 0), rec(0, 1), rec(0, 2)
    assert a.shape == (7, 11) and (F.mul(a, b) == c).all()
    a, a2 = rec(1, 0), rec(1, 1)
    assert (F.mul(a, a) == a2).all()
    bits = F.to_int(rec(2, 0))
    assert set(np.unique(bits).tolist()) == {0, 1}
    assert 850 < int(bits.sum()) < 1150  # 2000 fair bits: 6.7 sigma
    A, B, C = rec(4, 0), rec(4, 1), rec(4, 2)
    assert C.shape == (6, 3) and (F.matmul(A, B) == C).all()
    A, B, C = rec(5, 0), rec(5, 1), rec(5, 2)
    assert C.shape == (5,) and (F.matmul(A, B) == C).all()
    r, hi = F.to_int(rec(6, 0)), F.to_int(rec(6, 1))
    assert (r < (1 << tbits)).all() and (r >> tf == hi).all()
    assert max(r).bit_length() > tbits - 8  # the top bits are used
    a, b, c = rec(7, 0), rec(7, 1), rec(7, 2)
    assert (F.mul(a, b) == c).all()
    # items are never handed out twice: the pooled triples differ
    assert len(set(F.to_int(np.concatenate([rec(0, 0).ravel(), a])).tolist())) == 77 + 3000
    br = F.to_int(rec(8, 0))
    assert (br < (1 << (tbits - 7))).all() and max(br).bit_length() > tbits - 13


@pytest.mark.parametrize("field", ["M61", "M127"])
def test_bounded_randoms_out_of_range_refused(field):
    sch, ss = dn07_sessions(3, field=field)
    bits = sch.field.modulus.bit_length()
    for bad in (0, bits, -1):
        with pytest.raises(PreprocessingExhausted):
            run_all(ss, lambda s, bad=bad: s.prep.bounded_randoms((2,), bad))


@pytest.mark.parametrize("broken", [False, True])
def test_bounded_randoms_uniform(broken, monkeypatch):
    """Bounded randoms over GF(2^127-1) must be uniform on [0, 2^bits): the top 4 of 44 bits
    pass a chi-square test and every value is below 2^44. Broken variant: Horner without the
    doubling (r = sum of the bits, a binomial), which must fail."""
    if broken:
        monkeypatch.setattr(dn07, "_weighted", lambda F, b, lo, hi: F.sum(b[lo:hi], axis=0))
    sch, ss = dn07_sessions(3, batch=4000, field="M127", prss=False)  # PRSS masks: test_preprocessing_prss
    out = run_all(ss, lambda s: s.prep.bounded_randoms((2000,), 44))
    r = np.array(sch.field.to_int(reconstruct(sch, out)).tolist(), dtype=object)
    assert (r < (1 << 44)).all()
    counts = np.bincount(np.array([int(v) >> 40 for v in r]), minlength=16)
    chi2 = float(((counts - 125.0) ** 2 / 125.0).sum())
    assert (chi2 < 50) != broken  # 15 dof: p ~ 1e-5


@pytest.mark.parametrize("prss", [False, True])
def test_offline_traffic_counted_apart(prss):
    """600 triples at n = 3 over GF(2^61 - 1). Extraction (prss=False): 4 sharings of 300
    secrets to 2 peers (1 round), then the king: 2 chunks of 200 out, 200 to 2 back (2
    rounds). PRSS: the key agreement (1 round; party 0 sends its 2 keys to its 2 peers,
    party 1 one key to party 2: 32 bytes each), no sharing traffic, then the king."""
    sch, ss = dn07_sessions(3, batch=600, prss=prss)

    async def job(s):
        await s.prep.triples((600,))
        return s.stats.copy(), s.prep.stats.copy()

    king = 8 * (2 * 200 + 2 * 200)
    keys = [64, 32, 0]
    for pid, (online, offline) in enumerate(run_all(ss, job)):
        assert online.bytes_sent == 0 and online.rounds == 0
        assert offline.rounds == 3
        assert offline.bytes_sent == (keys[pid] + king if prss else 8 * 2 * 4 * 300 + king)


def test_needs_shamir_honest_majority():
    sch = make_scheme("additive", 3)
    with pytest.raises(ParameterError):
        sessions(3, sch, lambda s: DN07(s))
    sch4 = ShamirShares(make_scheme("shamir", 3).field, 4, 2, multiply=False)
    with pytest.raises(ParameterError):
        sessions(4, sch4, lambda s: DN07(s))


@pytest.mark.parametrize("broken", [False, True])
def test_corrupt_dealer_cannot_bias_output(broken):
    """Party 0 deals fixed secrets (all zero) instead of random ones. With the Vandermonde
    extraction the outputs stay uniform (low 4 bits pass a chi-square test); the broken
    extraction passes party 0's zeros through and must fail."""
    sch, ss = dn07_sessions(3, batch=4000, prss=False)  # the extraction (PRSS deals nothing)
    F = sch.field
    orig = ss[0].prep._deal
    ss[0].prep._deal = lambda secret, deg: orig(F.zeros(secret.shape), deg)
    if broken:
        for s in ss:
            s.prep.V = [[1, 0, 0], [1, 0, 0]]
    out = run_all(ss, lambda s: s.prep.random_sharings(4000, [(1,)]))
    secrets = reconstruct(sch, [o[0][0] for o in out])
    counts = np.bincount((secrets & np.uint64(15)).astype(np.int64), minlength=16)
    chi2 = float(((counts - 250.0) ** 2 / 250.0).sum())
    uniform = chi2 < 50  # 15 dof: p ~ 1e-5
    assert uniform != broken


@pytest.mark.parametrize("field", ["M61", "M127"])
@pytest.mark.parametrize("n", [3, 5])
def test_beaver_end_to_end(n, field):
    sch, ss = dn07_sessions(n, batch=500, field=field)
    F = sch.field
    g = np.random.default_rng(1)  # plaintext test data only
    X, Y = g.integers(0, 1 << 20, (8, 5)), g.integers(0, 1 << 20, (8, 5))
    M = g.integers(0, 1 << 20, (5, 3))

    async def job(s):
        x = await core.input(s, F.from_int(X) if s.pid == 0 else None, 0)
        y = await core.input(s, F.from_int(Y) if s.pid == 1 else None, 1)
        m = await core.input(s, F.from_int(M) if s.pid == 2 else None, 2)
        z = await beaver.mul(s, x, y)
        w = await beaver.matmul(s, x, m)
        q = await beaver.square(s, Share(z.data, s))
        return await core.open(s, z, w, q)

    for z, w, q in run_all(ss, job):
        assert (F.to_int(z) == (X * Y).astype(object)).all()
        assert (F.to_int(w) == (X.astype(object) @ M.astype(object)) % F.modulus).all()
        assert (F.to_int(q) == ((X * Y).astype(object) ** 2) % F.modulus).all()


# -- mixed kinds for GF(p) comparisons: daBits, edaBits, boolean triples ---------------------
def _xor(parts):
    return np.bitwise_xor.reduce(np.stack(parts), axis=0)


@pytest.mark.parametrize("field", ["M61", "M127"])
@pytest.mark.parametrize("n", [3, 5])
def test_mixed_kinds_correct_and_shaped_as_the_dealers(n, field):
    """daBits: Shamir half == XOR half, fair bits; edaBits: Shamir r == packed XOR word, below
    2^bits, top bits used; boolean triples: c == a & b. Shapes and dtypes are the trusted
    dealer's for the same requests."""
    from protocols.preprocessing.trusted_dealer import InsecureTrustedDealer
    from protocols.prg import CryptoRNG

    sch, ss = dn07_sessions(n, batch=700, field=field)
    for s in ss:
        s.prep.bool_chunk = 50  # several OT extensions per request
    F = sch.field
    top = 60 if field == "M61" else 64  # 2^bits < p
    reqs = (
        ("dabits", ((2000,),)),
        ("edabits", ((30, 20), top)),
        ("edabits", ((500,), 40)),
        ("bool_triples", ((120,), 2)),
        ("bool_triples", ((4, 5), 1)),
        ("bits", ((10,),)),  # bits come from the same daBit pool
    )

    async def job(s):
        out = []
        for kind, args in reqs:
            v = await getattr(s.prep, kind)(*args)
            out.append(v if isinstance(v, tuple) else (v,))
        return out

    res = run_all(ss, job)
    dealer = InsecureTrustedDealer(sch, CryptoRNG.from_seed(1, "dealer"))
    ref = run_all(ss, lambda s: job(type("S", (), {"prep": dealer.for_party(s.pid)})()))
    for i, (kind, _) in enumerate(reqs):
        for j, want in enumerate(ref[0][i]):
            assert all(r[i][j].shape == want.shape and r[i][j].dtype == want.dtype for r in res), (kind, j)
    rec = lambda i, j: F.to_int(reconstruct(sch, [r[i][j] for r in res]))  # noqa: E731
    xor = lambda i, j: _xor([r[i][j] for r in res])  # noqa: E731
    b, bx = rec(0, 0), xor(0, 1)
    assert set(np.unique(b).tolist()) == {0, 1} and (b == bx.astype(object)).all()
    assert 850 < int(b.sum()) < 1150  # 2000 fair bits: 6.7 sigma
    for i, bits in ((1, top), (2, 40)):
        r, w = rec(i, 0), xor(i, 1)
        assert (r == w.astype(object)).all() and (r < (1 << bits)).all()
        assert max(r.ravel()).bit_length() > bits - 6
    for i in (3, 4):
        a, bb, c = xor(i, 0), xor(i, 1), xor(i, 2)
        assert (c == (a[None] & bb)).all() and 0.4 < np.unpackbits(a.view(np.uint8)).mean() < 0.6
    assert set(np.unique(rec(5, 0)).tolist()) <= {0, 1}


def test_mixed_kinds_out_of_range_refused():
    sch, ss = dn07_sessions(3)  # GF(2^61 - 1): at most 60-bit edaBits
    for kind, args in (("edabits", ((2,), 61)), ("edabits", ((2,), 0)), ("edabits", ((2,), 65)),
                       ("bool_triples", ((2,), 0)), ("bool_triples", ((2,), 65))):
        with pytest.raises(PreprocessingExhausted):
            run_all(ss, lambda s, k=kind, a=args: getattr(s.prep, k)(*a))


@pytest.mark.parametrize("broken", [False, True])
def test_edabits_uniform(broken, monkeypatch):
    """edaBit masks over GF(2^127 - 1) must be uniform on [0, 2^64) (the comparison hides
    x + r mod 2^l only then): the top 4 bits pass a chi-square test. Broken variant: the top
    daBit replaced by 0 (an off-by-one in the weights), which must fail."""
    if broken:
        orig = DN07._take

        async def short(self, kind, count, gen, batch=None):
            out = await orig(self, kind, count, gen, batch)
            if kind == "dabits" and count == 1600 * 64:
                a, x = out
                a[63 * 1600 :] = self.F.zeros((1600,))
                x[63 * 1600 :] = 0
            return out

        monkeypatch.setattr(DN07, "_take", short)
    sch, ss = dn07_sessions(3, batch=4000, field="M127")
    out = run_all(ss, lambda s: s.prep.edabits((1600,), 64))
    r = sch.field.to_int(reconstruct(sch, [o[0] for o in out]))
    assert (r == _xor([o[1] for o in out]).astype(object)).all()
    counts = np.bincount(np.array([int(v) >> 60 for v in r]), minlength=16)
    chi2 = float(((counts - 100.0) ** 2 / 100.0).sum())
    assert (chi2 < 50) != broken  # 15 dof: p ~ 1e-5


@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize("broken", [False, True])
def test_dabit_hidden_from_t_parties(n, broken):
    """Any t parties' XOR shares must say nothing about the daBit: with t + 1 dealers there
    is always an honest one. Here parties 0..t-1 (t of them) pool their XOR shares and guess
    b; they must be right about half the time. Broken variant: dealer t (the one honest
    dealer) deals zeros, so b is the XOR of the coalition's shares, which must be caught."""
    sch, ss = dn07_sessions(n, batch=4000)
    t = sch.t
    if broken:
        ss[t].prep.s.rng.bits = lambda shape: np.zeros(shape, np.uint64)
    out = run_all(ss, lambda s: s.prep.dabits((4000,)))
    b = sch.field.to_int(reconstruct(sch, [o[0] for o in out])).astype(np.int64)
    guess = _xor([o[1] for o in out[:t]]).astype(np.int64) & 1
    agree = int((guess == b).sum())
    assert (1800 < agree < 2200) != broken  # 4000 fair coins: 6.3 sigma


def test_dabit_costs():
    """Rounds and bytes of one daBit refill as the docstring states them (n = 3, t = 1,
    GF(2^61 - 1), 600 daBits): dealers 0 and 1 send 600 elements to each of 2 peers, every
    party deals one double sharing of 300 secrets (2 degrees to 2 peers) and takes part in
    one king reduction (2 chunks of 200 out, its 200 to 2 peers back). Rounds: the dealing
    and the double sharings go out concurrently (counted as 2 exchanges), then 2 for the
    king: 3 communication rounds, 4 counted. With PRSS the double sharing costs nothing
    but the one-off key agreement (its own counted round, 64 / 32 / 0 bytes)."""
    sch, ss = dn07_sessions(3, batch=600, prss=False)

    async def job(s):
        await s.prep.dabits((600,))
        return s.prep.stats.copy()

    st = run_all(ss, job)
    common = 2 * 2 * 300 + 2 * 200 + 2 * 200
    assert [x.bytes_sent for x in st] == [8 * (2 * 600 + common)] * 2 + [8 * common]
    assert {x.rounds for x in st} == {4}
    sch, ss = dn07_sessions(3, batch=600, prss=True)
    st = run_all(ss, job)
    king = 2 * 200 + 2 * 200
    assert [x.bytes_sent for x in st] == [8 * (2 * 600 + king) + 64, 8 * (2 * 600 + king) + 32, 8 * king]
    assert {x.rounds for x in st} == {4}
