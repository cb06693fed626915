"""Malicious Shamir comparisons (Catrina-de Hoogh on checked bits): results equal to the
plaintext and to semi-honest mode, exact costs, cheaters caught on every honest party."""

from __future__ import annotations

import numpy as np
import pytest
from malicious_helpers import run

import mpc
from protocols import comparison, core
from protocols import malicious as mal
from protocols.arith.field import Mersenne127
from protocols.errors import CheatingDetectedError, ParameterError
from protocols.malicious import compare as mc
from protocols.prg import CryptoRNG

pytestmark = pytest.mark.timeout(240)

E = 16  # bytes of a GF(2^127 - 1) element
TOP = (1 << 63) - 1  # |x| < 2^63 = 2^(l-1), l = 64
_rng = CryptoRNG.from_seed(b"test-malicious-compare")
_rand = (_rng.uint64((14,)).astype(np.int64) >> np.int64(1)) * np.array([1, -1] * 7)
X = np.concatenate([np.array([0, 1, -1, 2, -2, TOP, -TOP, 1 << 62, -(1 << 62), 5]), _rand])
# for lt / eq: |x - y| < 2^63
XS = X >> 2
YS = np.concatenate([XS[:4], XS[4:8] + 1, XS[8:12] - 1, _rand[:12] >> 3])


async def mal_job(s):
    D = s.domain
    x = await mal.input(s, D.from_int(X) if s.pid == 0 else None, 0, X.shape, bits=64)
    xs = await mal.input(s, D.from_int(XS) if s.pid == 0 else None, 0, XS.shape, bits=64)
    ys = await mal.input(s, D.from_int(YS) if s.pid == 1 else None, 1, YS.shape, bits=64)
    a = await mc.ltz(s, x)
    b = await mc.eqz(s, x)
    c = await mc.lt(s, xs, ys)
    d = await mc.eq(s, xs, ys)
    e = await mc.relu(s, x)
    f = await mc.select(s, c, xs, ys)
    vals = await mal.open(s, a, b, c, d, e, f)
    return [D.to_signed(v).astype(object) for v in vals]


async def semi_job(s):
    D = s.domain
    x = await core.input(s, D.from_int(X) if s.pid == 0 else None, 0)
    xs = await core.input(s, D.from_int(XS) if s.pid == 0 else None, 0)
    ys = await core.input(s, D.from_int(YS) if s.pid == 1 else None, 1)
    a = await comparison.ltz(s, x)
    b = await comparison.eqz(s, x)
    c = await comparison.lt(s, xs, ys)
    d = await comparison.eq(s, xs, ys)
    e = await comparison.relu(s, x)
    f = await comparison.select(s, c, xs, ys)
    vals = await core.open(s, a, b, c, d, e, f)
    return [D.to_signed(v).astype(object) for v in vals]


def test_results_correct_and_equal_semi_honest():
    """Edge values (0, +-1, +-(2^63 - 1), +-2^62) and random ones: every result equals the
    plaintext and semi-honest mode's, at every party."""
    res, errs, _ = run(mal_job)
    assert errs == [None] * 3
    Xo, XSo, YSo = (v.astype(object) for v in (X, XS, YS))
    want = [
        (Xo < 0).astype(int), (Xo == 0).astype(int), (XSo < YSo).astype(int),
        (XSo == YSo).astype(int), np.where(Xo > 0, Xo, 0), np.where(XSo < YSo, XSo, YSo),
    ]
    semi = mpc.run_local(3, semi_job, scheme="shamir", domain=Mersenne127()).results
    for r in res:
        for got, w, sh in zip(r, want, semi[0], strict=True):
            assert np.array_equal(got, w.astype(object))
            assert np.array_equal(got, sh)


def _reduce_bytes(M: int, n: int, pid: int) -> int:
    """Bytes party `pid` sends in chida18._reduce on M elements: its d-chunks to the other
    kings, its own opened chunk back to every peer."""
    b = np.linspace(0, M, n + 1).astype(np.int64)
    mine = int(b[pid + 1] - b[pid])
    return (M - mine + (n - 1) * mine) * E


def _levels(kind: str, w: int) -> list[int]:
    """Product rows per online level (ltz: BitLT prefix, whose first two levels are local
    from the offline block products, so it starts at width ceil(w / 4); eqz: product tree)."""
    rows = []
    if kind == "eqz":
        while w > 1:
            rows.append((w + 1) // 2)
            w = (w + 1) // 2
        return rows
    w = -(-w // mc.BLOCK)
    while w > 2:
        rows.append(2 * ((w + 1) // 2))
        w = (w + 1) // 2
    return rows + ([1] if w == 2 else [])


@pytest.mark.parametrize("kind,bits", [("ltz", None), ("eqz", None), ("ltz", 17), ("eqz", 32)])
def test_rounds_and_bytes_exact(kind, bits):
    """With prepared masks under the current key: Rounds 1 + 2 * levels (ltz 9 for l = 64:
    the first two BitLT levels are local; eqz 13), Bytes: the opening of c ((n - 1) N e) and
    one reduction of 2 * rows * N per level (ltz 29 products per element, 125 before the
    block products moved the first two levels offline)."""
    N = 6
    xv = X[[0, 1, 2, 3, 4, 9]]  # within 17 bits
    ell = 64 if bits is None else bits
    w = ell - 1 if kind == "ltz" else ell
    assert sum(_levels("ltz", 63)) == 29 and sum(_levels("eqz", 64)) == 63

    async def job(s):
        D = s.domain
        x = await mal.input(s, D.from_int(xv) if s.pid == 0 else None, 0, (N,), bits=64)
        await mc.prepare_compare(s, N, kind, bits=bits)
        assert mc.prepared(s, kind, bits=bits) == N
        x = await mal.refresh(s, x)
        before = s.stats.copy()
        z = await (mc.ltz if kind == "ltz" else mc.eqz)(s, x, bits=bits)
        d = s.stats - before
        (v,) = await mal.open(s, z)
        return d.rounds, d.bytes_sent, D.to_int(v).astype(np.int64)

    res, errs, _ = run(job)
    assert errs == [None] * 3
    levels = _levels(kind, w)
    want = (xv < 0) if kind == "ltz" else (xv == 0)
    for pid, (rounds, nbytes, v) in enumerate(res):
        first = 2 if kind == "ltz" else 0  # ltz: the first two levels are local
        assert rounds == 1 + 2 * len(levels) == 1 + 2 * (int(np.ceil(np.log2(w))) - first)
        assert nbytes == 2 * N * E + sum(_reduce_bytes(2 * r * N, 3, pid) for r in levels)
        assert np.array_equal(v, want.astype(np.int64))


def test_prepared_masks_survive_a_verification():
    """Masks prepared in two batches before another verification are joined and re-MACed
    (refreshed) on use; the inline path (nothing prepared) gives the same results."""

    async def job(s):
        D = s.domain
        x = await mal.input(s, D.from_int(X) if s.pid == 0 else None, 0, X.shape, bits=64)
        await mc.prepare_compare(s, 10, "ltz")  # two batches of two epochs, then a third
        await mc.prepare_compare(s, X.size - 10, "ltz")
        await mal.verify(s)
        a = await mc.ltz(s, x)  # both batches, concatenated and re-MACed
        b = await mc.ltz(s, x)  # none left: prepared inline
        va, vb = await mal.open(s, a, b)
        return D.to_int(va).astype(np.int64), D.to_int(vb).astype(np.int64)

    res, errs, _ = run(job)
    assert errs == [None] * 3
    for va, vb in res:
        assert np.array_equal(va, (X < 0).astype(np.int64)) and np.array_equal(vb, va)


def test_bad_parameters():
    async def job(s):
        D = s.domain
        x = await mal.input(s, D.from_int(X) if s.pid == 0 else None, 0, X.shape, bits=64)
        await mc.ltz(s, x, bits=65)

    _, errs, _ = run(job)
    assert all(isinstance(e, ParameterError) for e in errs)


async def ltz_job(s):
    D = s.domain
    x = await mal.input(s, D.from_int(X) if s.pid == 0 else None, 0, X.shape, bits=64)
    # mking#0 the input, #1 its range check; inline prepare_compare: #2 a, #3 a^2, #4 MACs,
    # #5 the block pair products, #6 the triples and quadruples; #7 refresh x; #8-#11 the
    # BitLT prefix's online levels (16 .. 2)
    z = await mc.ltz(s, x)
    (v,) = await mal.open(s, z)
    return v


async def eqz_job(s):
    D = s.domain
    x = await mal.input(s, D.from_int(X) if s.pid == 0 else None, 0, X.shape, bits=64)
    z = await mc.eqz(s, x)
    (v,) = await mal.open(s, z)
    return v


async def select_job(s):
    D = s.domain
    x = await mal.input(s, D.from_int(XS) if s.pid == 0 else None, 0, XS.shape, bits=64)
    y = await mal.input(s, D.from_int(YS) if s.pid == 1 else None, 1, YS.shape, bits=64)
    b = await mc.lt(s, x, y)
    z = await mc.select(s, b, x, y)
    (v,) = await mal.open(s, z)
    return v


@pytest.mark.parametrize("job,cheat,check", [
    (ltz_job, ("mking#3", None), "mac"),  # a bit's square a^2: caught before c is opened
    (ltz_job, ("mking#2", [0]), "mac"),  # the r-component of the random a behind a bit
    (ltz_job, ("mbits", [1]), "open"),  # its share of an opened square
    (ltz_job, ("mking#4", [0]), "mac"),  # the next key's MAC of a prefix row
    (ltz_job, ("mcmp", [0]), "open"),  # its share of the opened masked value c
    (ltz_job, ("mking#5", [0]), "mac"),  # an offline pair product of a block's bits (local first levels)
    (ltz_job, ("mking#5", [1]), "mac"),  # the same, to the other honest party
    (ltz_job, ("mking#6", [0]), "mac"),  # an offline triple / quadruple product of a block's bits
    (ltz_job, ("mking#7", [0]), "mac"),  # the refresh of x
    (ltz_job, ("mking#8", [0]), "mac"),  # a reshare in the BitLT prefix's first online level
    (ltz_job, ("mking#11", None), "mac"),  # the prefix's last product (w = 2)
    (eqz_job, ("mking#7", [0]), "mac"),  # a reshare in the EQZ product tree
    (eqz_job, ("mcmp", [1]), "open"),
    (select_job, ("mking#16", None), "mac"),  # select's product (inputs 2 + 2 range checks, lt 10, x and y refreshed 2)
])
def test_cheater_caught_on_every_honest_party(job, cheat, check):
    res, errs, _ = run(job, cheat=cheat)
    assert res == [None] * 3
    for pid in (0, 1):
        assert isinstance(errs[pid], CheatingDetectedError), errs[pid]
        assert errs[pid].code == "security.cheating_detected"
    assert any(errs[pid].check == check for pid in (0, 1))


def test_select_and_relu_rounds_and_bytes_exact():
    """select on MShares of the current key: Rounds 2, Bytes one reduction of 2N; relu with
    prepared masks: the value check of the select's product (review5, 5 rounds) + ltz's +
    one product (the ltz result times x)."""
    N = 6

    async def job(s):
        D = s.domain
        x = await mal.input(s, D.from_int(XS[:N]) if s.pid == 0 else None, 0, (N,), bits=64)
        y = await mal.input(s, D.from_int(YS[:N]) if s.pid == 1 else None, 1, (N,), bits=64)
        await mc.prepare_compare(s, 2 * N, "ltz")
        x, y = await mal.refresh(s, x), await mal.refresh(s, y)
        b = await mc.lt(s, x, y)
        b0 = s.stats.copy()
        z = await mc.select(s, b, x, y)
        d1 = s.stats - b0
        b1 = s.stats.copy()
        r = await mc.relu(s, x)
        d2 = s.stats - b1
        zv, rv = await mal.open(s, z, r)
        return (d1.rounds, d1.bytes_sent, d2.rounds, d2.bytes_sent,
                D.to_signed(zv).astype(np.int64), D.to_signed(rv).astype(np.int64))

    res, errs, _ = run(job)
    assert errs == [None] * 3
    lt_bytes = [2 * N * E + sum(_reduce_bytes(2 * r * N, 3, p) for r in _levels("ltz", 63)) for p in range(3)]
    for pid, (r1, b1, r2, b2, zv, rv) in enumerate(res):
        assert (r1, b1) == (2, _reduce_bytes(2 * N, 3, pid))
        # relu follows the select's product: the value check before its masked opening (review5)
        check = 2 * 2 * E + _reduce_bytes(1, 3, pid) + 2 * 33
        assert (r2, b2) == (5 + 9 + 2, check + lt_bytes[pid] + _reduce_bytes(2 * N, 3, pid))
        assert np.array_equal(zv, np.minimum(XS[:N], YS[:N])) and np.array_equal(rv, np.maximum(XS[:N], 0))


@pytest.mark.parametrize("w", [63, 16, 6, 5, 2, 1])
def test_first_levels_compiled_equal_numpy_and_the_prefix_rule(w):
    """ltz's local first BitLT levels (blocks of 4 positions): the compiled kernel equals the
    numpy reference (values and MACs, full and remainder blocks), and on plain bits both
    equal the prefix rule (G_hi + E_hi G_lo, E_hi E_lo) over each block, with G_j = (1 - c_j)
    R_j, E_j = 1 - (c_j XOR R_j)."""
    N = 40
    g = np.random.default_rng(w)  # test data only
    Rb = g.integers(0, 2, (w, N))
    cb = g.integers(0, 2, (w, N)).astype(bool)
    monos = [(b0, k, mm) for b0, k in mc._blocks(w) for mm in mc._block_monos(k)]
    Pb = np.array([np.prod([Rb[b0 + j] for j in range(k) if mm >> j & 1], axis=0) for b0, k, mm in monos],
                  dtype=np.int64).reshape(len(monos), N)

    async def job(s):
        D = s.domain
        key = await mc._key(s)
        rng = CryptoRNG.from_seed(b"first-level", w)
        m = mc._Masks(D.from_int(Rb), D.random(rng, (w, N)), D.zeros((N,)), D.zeros((N,)), D.zeros((N,)),
                      key, D.from_int(Pb), D.random(rng, (len(monos), N)))
        jit = mc._first_level(s, key, m, cb)
        ref = mc._first_level_np(s, key, m.R, m.Rm, m.P, m.Pm, cb)
        return [D.to_int(a) for a in jit], [D.to_int(a) for a in ref]

    res = mpc.run_local(3, job, scheme="shamir", security="malicious").results
    Gb, Eb = (1 - cb) * Rb, np.where(cb, Rb, 1 - Rb)
    want_G, want_E = [], []
    for b0, k in mc._blocks(w):
        G, E = Gb[b0], Eb[b0]
        for j in range(1, k):
            G, E = Gb[b0 + j] + Eb[b0 + j] * G, Eb[b0 + j] * E
        want_G.append(G)
        want_E.append(E)
    for jit, ref in res:
        for a, b in zip(jit, ref, strict=True):
            assert np.array_equal(a, b)
        assert np.array_equal(jit[0].astype(np.int64), np.array(want_G))
        assert np.array_equal(jit[2].astype(np.int64), np.array(want_E))


@pytest.mark.parametrize("w", [63, 7])
def test_first_levels_on_column_slices(w):
    """The masks `_take` hands out are column slices of a prepared batch (strided): the
    compiled first levels read them in place (no copy, malperf2) and equal the numpy
    reference on the same values made contiguous, with random (large) field elements."""
    N, extra = 33, 17
    monos = sum(len(mc._block_monos(k)) for _, k in mc._blocks(w))
    g = np.random.default_rng(w + 100)  # test data only
    cb = g.integers(0, 2, (w, N)).astype(bool)

    async def job(s):
        D = s.domain
        key = await mc._key(s)
        rng = CryptoRNG.from_seed(b"first-level-slices", w)
        R, Rm = D.random(rng, (w, N + extra)), D.random(rng, (w, N + extra))
        P, Pm = D.random(rng, (monos, N + extra)), D.random(rng, (monos, N + extra))
        m = mc._Masks(R, Rm, D.zeros((N + extra,)), D.zeros((N + extra,)), D.zeros((N + extra,)), key, P, Pm)
        part, _ = m.cut(N)
        assert not part.R.flags.c_contiguous and not part.P.flags.c_contiguous
        assert mc._u64(part.P).base is not None and np.shares_memory(mc._u64(part.P), P)
        jit = mc._first_level(s, key, part, cb)
        c = np.ascontiguousarray
        ref = mc._first_level_np(s, key, c(part.R), c(part.Rm), c(part.P), c(part.Pm), cb)
        return [D.to_int(a) for a in jit], [D.to_int(a) for a in ref]

    res = mpc.run_local(3, job, scheme="shamir", security="malicious").results
    for jit, ref in res:
        for a, b in zip(jit, ref, strict=True):
            assert np.array_equal(a, b)
