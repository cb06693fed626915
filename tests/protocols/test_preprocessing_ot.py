"""OT-based preprocessing (additive over Z_2^64, any n): correctness of every item kind, the
distribution of what a receiver sees, and Beaver mul / matmul end to end."""

import numpy as np
import pytest
from preprocessing_helpers import make_scheme, reconstruct, run_all, sessions

from protocols import beaver, core
from protocols.errors import ConfigError
from protocols.preprocessing import ot
from protocols.preprocessing.ot import OTPreprocessing

pytestmark = pytest.mark.timeout(60)


def ot_sessions(n, batch=256):
    sch = make_scheme("additive", n)
    return sch, sessions(n, sch, lambda s: OTPreprocessing(s, batch=batch))


@pytest.mark.parametrize("n", [2, 3, 5])
def test_all_kinds_correct(n):
    sch, ss = ot_sessions(n)

    async def job(s):
        return (
            await s.prep.triples((5, 7)),
            await s.prep.triples((300,)),  # refill beyond the pool
            await s.prep.square_pairs((20,)),
            (await s.prep.bits((400,)),),
            await s.prep.matrix_triples((6, 4), (4, 3)),
            await s.prep.matrix_triples((5, 4), (4,)),
            (await s.prep.randoms((3,)),),
        )

    res = run_all(ss, job)
    rec = lambda k, j: reconstruct(sch, [r[k][j] for r in res])  # noqa: E731
    for k in (0, 1):
        a, b, c = rec(k, 0), rec(k, 1), rec(k, 2)
        assert (a * b == c).all()
    assert len(np.unique(np.concatenate([rec(0, 0).ravel(), rec(1, 0)]))) == 335
    a, a2 = rec(2, 0), rec(2, 1)
    assert (a * a == a2).all()
    bits = rec(3, 0)
    assert set(np.unique(bits).tolist()) == {0, 1} and 130 < int(bits.sum()) < 270
    for k, shape in ((4, (6, 3)), (5, (5,))):
        A, B, C = rec(k, 0), rec(k, 1), rec(k, 2)
        assert C.shape == shape and (A @ B == C).all()


def test_needs_additive_ring():
    sch = make_scheme("shamir", 3)
    with pytest.raises(ConfigError):
        sessions(3, sch, lambda s: OTPreprocessing(s))


@pytest.mark.parametrize("broken", [False, True])
def test_receiver_sees_uniform_corrections(broken, monkeypatch):
    """The corrections tau = H(q) + x 2^k - H(q ^ s) that the sender sends must look
    uniform (they are all the receiver learns about x). Broken variant: a hash that outputs
    zeros, so tau = x 2^k leaks x and has zero low bits for k >= 4; the test must fail."""
    sch, ss = ot_sessions(2, batch=64)
    if broken:
        monkeypatch.setattr(ot, "_hash", lambda aes, x, base, M: np.zeros((x.shape[0], M), np.uint64))
    seen = []
    orig = OTPreprocessing._array_round

    async def spy(self, op, out, shapes, dtype):
        if op == "ot-tau" and self.s.pid == 0:
            seen.extend(v for v in out.values())
        return await orig(self, op, out, shapes, dtype)

    monkeypatch.setattr(OTPreprocessing, "_array_round", spy)
    run_all(ss, lambda s: s.prep.triples((64,)))
    tau = np.concatenate([t.ravel() for t in seen])  # 64 * 64 words
    counts = np.bincount((tau & np.uint64(15)).astype(np.int64), minlength=16)
    exp = tau.size / 16
    chi2 = float(((counts - exp) ** 2 / exp).sum())
    assert (chi2 < 50) != broken


@pytest.mark.parametrize("n", [2, 3])
def test_beaver_end_to_end(n):
    sch, ss = ot_sessions(n, batch=64)
    D = sch.domain
    g = np.random.default_rng(2)  # plaintext test data only
    X, Y = g.integers(-(2**20), 2**20, (6, 5)), g.integers(-(2**20), 2**20, (6, 5))
    M = g.integers(-(2**20), 2**20, (5, 2))

    async def job(s):
        x = await core.input(s, D.from_int(X) if s.pid == 0 else None, 0)
        y = await core.input(s, D.from_int(Y) if s.pid == n - 1 else None, n - 1)
        m = await core.input(s, D.from_int(M) if s.pid == 0 else None, 0)
        z = await beaver.mul(s, x, y)
        w = await beaver.matmul(s, x, m)
        q = await beaver.square(s, y)
        return await core.open(s, z, w, q)

    for z, w, q in run_all(ss, job):
        assert (z.view(np.int64) == X * Y).all()
        assert (w.view(np.int64) == X @ M).all()
        assert (q.view(np.int64) == Y * Y).all()
