"""DN07 (Shamir, honest majority): correctness of every item kind, the distribution of what
the parties see, and Beaver mul / matmul end to end."""

import numpy as np
import pytest
from preprocessing_helpers import make_scheme, reconstruct, run_all, sessions

from protocols import beaver, core
from protocols.errors import ConfigError
from protocols.preprocessing.dn07 import DN07
from protocols.session import Share
from protocols.sharing.schemes import ShamirShares

pytestmark = pytest.mark.timeout(60)


def dn07_sessions(n, batch=1000):
    sch = make_scheme("shamir", n)
    return sch, sessions(n, sch, lambda s: DN07(s, batch=batch))


@pytest.mark.parametrize("n", [3, 5])
def test_all_kinds_correct(n):
    sch, ss = dn07_sessions(n)
    F = sch.field

    async def job(s):
        return (
            await s.prep.triples((7, 11)),
            await s.prep.square_pairs((30,)),
            (await s.prep.bits((2000,)),),
            (await s.prep.randoms((5,)),),
            await s.prep.matrix_triples((6, 4), (4, 3)),
            await s.prep.matrix_triples((5, 4), (4,)),
            await s.prep.trunc_pairs((40,), 8, 48),
            await s.prep.triples((3000,)),  # larger than the batch: refills
        )

    res = run_all(ss, job)
    rec = lambda k, j: reconstruct(sch, [r[k][j] for r in res])  # noqa: E731
    a, b, c = rec(0, 0), rec(0, 1), rec(0, 2)
    assert a.shape == (7, 11) and (F.mul(a, b) == c).all()
    a, a2 = rec(1, 0), rec(1, 1)
    assert (F.mul(a, a) == a2).all()
    bits = rec(2, 0)
    assert set(np.unique(bits).tolist()) == {0, 1}
    assert 850 < int(bits.sum()) < 1150  # 2000 fair bits: 6.7 sigma
    A, B, C = rec(4, 0), rec(4, 1), rec(4, 2)
    assert C.shape == (6, 3) and (F.matmul(A, B) == C).all()
    A, B, C = rec(5, 0), rec(5, 1), rec(5, 2)
    assert C.shape == (5,) and (F.matmul(A, B) == C).all()
    r, hi = rec(6, 0), rec(6, 1)
    assert (r < (1 << 48)).all() and (r >> np.uint64(8) == hi).all()
    a, b, c = rec(7, 0), rec(7, 1), rec(7, 2)
    assert (F.mul(a, b) == c).all()
    # items are never handed out twice: the pooled triples differ
    assert len(np.unique(np.concatenate([rec(0, 0).ravel(), a]))) == 77 + 3000


def test_offline_traffic_counted_apart():
    sch, ss = dn07_sessions(3, batch=600)

    async def job(s):
        await s.prep.triples((600,))
        return s.stats.copy(), s.prep.stats.copy()

    for online, offline in run_all(ss, job):
        assert online.bytes_sent == 0 and online.rounds == 0
        assert offline.rounds == 3
        # 4 sharings of 300 secrets to 2 peers, then king: 2 chunks of 200 out, 200 to 2 back
        assert offline.bytes_sent == 8 * (2 * 4 * 300 + 2 * 200 + 2 * 200)


def test_needs_shamir_honest_majority():
    sch = make_scheme("additive", 3)
    with pytest.raises(ConfigError):
        sessions(3, sch, lambda s: DN07(s))
    sch4 = ShamirShares(make_scheme("shamir", 3).field, 4, 2, multiply=False)
    with pytest.raises(ConfigError):
        sessions(4, sch4, lambda s: DN07(s))


@pytest.mark.parametrize("broken", [False, True])
def test_corrupt_dealer_cannot_bias_output(broken):
    """Party 0 deals fixed secrets (all zero) instead of random ones. With the Vandermonde
    extraction the outputs stay uniform (low 4 bits pass a chi-square test); the broken
    extraction passes party 0's zeros through and must fail."""
    sch, ss = dn07_sessions(3, batch=4000)
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


@pytest.mark.parametrize("n", [3, 5])
def test_beaver_end_to_end(n):
    sch, ss = dn07_sessions(n, batch=500)
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
