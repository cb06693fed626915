"""SPDZ2k matrix products (protocols.malicious.spdz2k_matmul): equal to numpy's product mod
2^64 for several shapes (dealer matrix triples, and matrix triples built from the OT source's
element triples), exact rounds and bytes, and a cheater (a changed share of an opened
difference, a changed matrix-triple share, a changed MAC share) caught with
CheatingDetectedError on every honest party, nothing released. The cheater is the last party.
"""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest
from malicious_helpers import Cheat as _Cheat
from malicious_helpers import run_parties

from mpc.local import open_sessions, run_local
from mpc.node.daemon import error_code
from protocols.arith import ring128 as R
from protocols.errors import CheatingDetectedError, ShapeMismatch
from protocols.malicious import spdz2k
from protocols.malicious.spdz2k_matmul import matmul

pytestmark = pytest.mark.timeout(120)


def _mat(shape, seed):
    return (np.arange(1, int(np.prod(shape)) + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15 + seed)).reshape(shape)


def _ref(x, y):
    """x @ y mod 2^64 with Python integers."""
    xo, yo = x.astype(object), y.astype(object)
    return (xo @ yo % (1 << 64)).astype(np.uint64)


class BadMatrixTriple:
    """The cheater's preprocessing view: its share of the first matrix triple's C is off by one."""

    def __init__(self, inner):
        self.inner, self.done = inner, False

    async def matrix_triples(self, dims):
        a, ma, b, mb, c, mc = await self.inner.matrix_triples(dims)
        if not self.done:
            self.done = True
            c = c.copy()
            c[0, 0, 0] += np.uint64(1)
        return a, ma, b, mb, c, mc

    def __getattr__(self, name):
        return getattr(self.inner, name)


def run(job, *, n=3, cheat=None, bad_triple=False, preprocessing="trusted_dealer"):
    async def main():
        ss = await open_sessions(n, scheme="additive", security="malicious", seed=11, preprocessing=preprocessing)
        if cheat is not None:
            c = ss[-1]
            ss[-1] = dataclasses.replace(c, channel=_Cheat(c.channel, None, *cheat))
        if bad_triple:
            ctx = ss[-1]._state.ext["spdz2k"]
            ctx.prep = BadMatrixTriple(ctx.prep)

        out = await run_parties(ss, job)
        return out, [s.stats for s in ss], ss

    return asyncio.run(main())


def mm_job(X, Y, tamper=None):
    async def job(s):
        x = await spdz2k.input(s, X if s.pid == 0 else None, 0, X.shape)
        y = await spdz2k.input(s, Y if s.pid == s.n - 1 else None, s.n - 1, Y.shape)
        if tamper is not None and s.pid == s.n - 1:
            tamper(x, y)
        return await spdz2k.open(s, await matmul(s, x, y))

    return job


SHAPES = [((1, 1), (1, 1)), ((3, 4), (4, 5)), ((6, 2), (2,)), ((5, 7), (7, 1)), ((2, 9), (9, 3))]


@pytest.mark.parametrize("xs,ys", SHAPES)
def test_matches_numpy(xs, ys):
    X, Y = _mat(xs, 1), _mat(ys, 2)
    out = run_local(3, mm_job(X, Y), scheme="additive", security="malicious", seed=2).results
    assert all(np.array_equal(o[0], _ref(X, Y)) for o in out)
    assert out[0][0].shape == _ref(X, Y).shape


@pytest.mark.parametrize("n", [2, 3])
def test_ot_source_matrix_triples_from_element_triples(n):
    """The dealer-free source has no matrix_triples kind: the triple is made from m k n
    sacrificed element triples (one Beaver round on the broadcast A, B)."""
    X, Y = _mat((3, 4), 3), _mat((4, 2), 4)
    out, _, _ = run(mm_job(X, Y), n=n, preprocessing="ot")
    assert all(np.array_equal(o[0], _ref(X, Y)) for o in out)


@pytest.mark.parametrize("n", [2, 3])
def test_exact_rounds_and_bytes(n):
    X, Y = _mat((3, 4), 5), _mat((4, 5), 6)
    m, k, q = 3, 4, 5
    _, stats, _ = run(mm_job(X, Y), n=n)
    check = 5
    # input, input, matmul (1); open: check, masked opening, check
    assert [st.rounds for st in stats] == [3 + check + 1 + check] * n
    per_check = (n - 1) * (32 + (16 + 16) + 32 + (16 + 16) + 33)
    mm = (m * k + k * q) * 16 * (n - 1)  # D and E, 16 bytes per element per peer
    base = mm + m * q * 16 * (n - 1) + 2 * per_check
    want = [base + 16 * (n - 1) * (X.size * (p == 0) + Y.size * (p == n - 1)) for p in range(n)]
    assert [st.bytes_sent for st in stats] == want


def _bump_share(x, y):
    x.x.reshape(-1, 2)[0, 0] += np.uint64(1)


def _bump_mac(x, y):
    y.m.reshape(-1, 2)[0, 0] += np.uint64(1)


CASES = {
    "opened difference": dict(cheat=("smm", None)),
    "opened difference to one peer": dict(cheat=("smm", [0])),
    "matrix triple share": dict(bad_triple=True),
    "MAC share": dict(tamper=_bump_mac),
    "value share": dict(tamper=_bump_share),
}


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_cheater_caught_on_every_honest_party(case, n):
    kw = dict(CASES[case])
    tamper = kw.pop("tamper", None)
    X, Y = _mat((3, 4), 7), _mat((4, 2), 8)
    out, _, ss = run(mm_job(X, Y, tamper), n=n, **kw)
    for p in range(n - 1):
        assert isinstance(out[p], CheatingDetectedError), (case, p, out[p])
        assert error_code(out[p]) == "security.cheating_detected"
        ctx = ss[p]._state.ext["spdz2k"]
        assert ctx.alpha is None and ss[p].aborted
    assert not any(isinstance(o, list) for o in out)  # nothing released


def test_shape_errors():
    async def job(s):
        x = await spdz2k.input(s, _mat((2, 3), 1) if s.pid == 0 else None, 0, (2, 3))
        with pytest.raises(ShapeMismatch):
            await matmul(s, x, x)
        return True

    assert run_local(2, job, scheme="additive", security="malicious").results == [True, True]


def test_ring128_matmul_kernel():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 2**63, (3, 4, 2), dtype=np.uint64)
    b = rng.integers(0, 2**63, (4, 2, 2), dtype=np.uint64)
    got = R.to_ints(R.matmul(a, b))
    ai = [[int(a[i, t, 0]) + (int(a[i, t, 1]) << 64) for t in range(4)] for i in range(3)]
    bi = [[int(b[t, j, 0]) + (int(b[t, j, 1]) << 64) for j in range(2)] for t in range(4)]
    want = [sum(ai[i][t] * bi[t][j] for t in range(4)) % (1 << 128) for i in range(3) for j in range(2)]
    assert got == want
