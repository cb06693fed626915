"""SPDZ2k non-linear protocols (protocols.malicious.spdz2k_fixed): truncation, fixed-point
products, ltz / lt, eqz / eq over Z_2^64 with MACed random bits, from the in-process dealer
and from the dealer-free OT source (Spdz2kOT.bits).

Results against plaintext and the semi-honest protocols (random and edge inputs, n = 2 and
3), exact rounds and bytes, and cheats caught with security.cheating_detected on every
honest party with nothing released: an error on an opened c, on a bit share, on the
truncation mask's upper half t, on a Beaver opening of the BitLT, and (OT source) a party
whose input bits are not bits, with a broken bit check (accepting anything) that lets the
non-bit through, so the test can fail. The cheater is the last party.
"""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest
from malicious_helpers import Cheat, run_parties

from mpc.local import close_sessions, open_sessions, run_local
from mpc.node.daemon import error_code
from network.errors import SmpcError
from protocols import comparison, core, truncation
from protocols.arith import ring128 as R
from protocols.errors import CheatingDetectedError, MaliciousUnsupportedError, ParameterError
from protocols.malicious import spdz2k
from protocols.malicious import spdz2k_fixed as F
from protocols.malicious.spdz2k_ot import Spdz2kOT

pytestmark = pytest.mark.timeout(300)

_rng = np.random.default_rng(20261205)
N = 24
#: truncation inputs: |x| < 2^62, with the edges
XT = _rng.integers(-(1 << 45), 1 << 45, N).astype(np.int64)
XT[:8] = [0, -1, 1, (1 << 62) - 1, -(1 << 62) + 1, -(1 << 16), (1 << 16) - 1, 12345]
#: fixed-point factors
XF = _rng.integers(-(1 << 24), 1 << 24, N).astype(np.int64)
YF = _rng.integers(-(1 << 24), 1 << 24, N).astype(np.int64)
#: comparison inputs: every int64, with the edges
XC = _rng.integers(-(1 << 63), (1 << 63) - 1, N, dtype=np.int64, endpoint=True)
XC[:8] = [0, -1, 1, -(1 << 63), (1 << 63) - 1, 0, 2, -2]
YC = XC.copy()
YC[8:16] = _rng.integers(-(1 << 40), 1 << 40, 8)
F_BITS = 16


def u(a):
    return a.view(np.uint64)


async def inputs(s):
    xt = await spdz2k.input(s, u(XT) if s.pid == 0 else None, 0, (N,))
    xf = await spdz2k.input(s, u(XF) if s.pid == 0 else None, 0, (N,))
    yf = await spdz2k.input(s, u(YF) if s.pid == s.n - 1 else None, s.n - 1, (N,))
    xc = await spdz2k.input(s, u(XC) if s.pid == 0 else None, 0, (N,))
    yc = await spdz2k.input(s, u(YC) if s.pid == s.n - 1 else None, s.n - 1, (N,))
    return xt, xf, yf, xc, yc


async def all_ops(s):
    xt, xf, yf, xc, yc = await inputs(s)
    t = await F.trunc(s, xt, F_BITS)
    fm = await F.fixed_mul(s, xf, yf, F_BITS)
    lz = await F.ltz(s, xc)
    lt = await F.lt(s, xc, yc)
    ez = await F.eqz(s, xc)
    eq = await F.eq(s, xc, yc)
    return await spdz2k.open(s, t, fm, lz, lt, ez, eq)


async def semi_ops(s):
    def inp(a, owner):
        return core.input(s, u(a) if s.pid == owner else None, owner)

    xt, xc, yc = await inp(XT, 0), await inp(XC, 0), await inp(YC, s.n - 1)
    t = await truncation.trunc(s, xt, F_BITS)
    lz = await comparison.ltz(s, xc)
    lt = await comparison.lt(s, xc, yc)
    eq = await comparison.eq(s, xc, yc)
    return await core.open(s, t, lz, lt, eq)


def check_results(res):
    t, fm, lz, lt, ez, eq = res
    assert set((t.view(np.int64) - (XT >> F_BITS)).tolist()) <= {0, 1}
    assert t.view(np.int64)[0] == 0 and t.view(np.int64)[1] in (-1, 0)
    prod = XF * YF  # |x y| < 2^48: no wrap
    assert set((fm.view(np.int64) - (prod >> F_BITS)).tolist()) <= {0, 1}
    assert np.array_equal(lz, (XC < 0).astype(np.uint64))
    assert np.array_equal(lt, (XC - YC < 0).astype(np.uint64))  # x - y wraps as int64
    assert np.array_equal(ez, (XC == 0).astype(np.uint64))
    assert np.array_equal(eq, (XC == YC).astype(np.uint64))


def run(job, *, n=3, cheat=None, prep_wrap=None, preprocessing="trusted_dealer", cls=None, batch=None, seed=7):
    """All parties in one loop; party n-1 optionally cheats: its channel wrapped in
    Cheat(prefix, peers) (raw words), its preprocessing view wrapped by `prep_wrap`, or its
    OT source of class `cls` (every source with `batch` if given)."""

    async def main():
        ss = await open_sessions(n, scheme="additive", security="malicious", seed=seed, preprocessing=preprocessing)
        if cheat is not None:
            ss[-1] = dataclasses.replace(ss[-1], channel=Cheat(ss[-1].channel, None, *cheat))
        if preprocessing == "ot" and (cls is not None or batch is not None or cheat is not None):
            for s in ss:
                ctx = s._state.ext["spdz2k"]
                c = cls if (cls is not None and s.pid == n - 1) else Spdz2kOT
                ctx.prep = c(s, batch=batch or 2048).register(s.pid, ctx.alpha)
        if prep_wrap is not None:
            ctx = ss[-1]._state.ext["spdz2k"]
            ctx.prep = prep_wrap(ctx.prep)

        out = await run_parties(ss, job)
        return out, [s.stats for s in ss], ss

    return asyncio.run(main())


def assert_caught(out, ss, checks=None):
    n = len(out)
    for p in range(n - 1):  # every honest party: typed error, nothing released
        e = out[p]
        assert isinstance(e, CheatingDetectedError), (p, e)
        assert error_code(e) == "security.cheating_detected"
        if checks is not None:
            assert e.check in checks, (p, e.check)
        assert ss[p]._state.ext["spdz2k"].alpha is None and ss[p].aborted
    assert all(isinstance(o, SmpcError) for o in out), out  # nobody gets a result


# -- correctness ------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3])
def test_dealer_results_match_plaintext_and_semi_honest(n):
    out, _, _ = run(all_ops, n=n)
    assert not any(isinstance(o, BaseException) for o in out), out
    for p in range(n):
        check_results(out[p])
        assert all(np.array_equal(a, b) for a, b in zip(out[p], out[0], strict=True))
    semi = run_local(n, semi_ops, scheme="additive", seed=3).results[0]
    st, slz, slt, seq = semi
    t, _, lz, lt, _, eq = out[0]
    assert np.array_equal(lz, slz) and np.array_equal(lt, slt) and np.array_equal(eq, seq)
    # the same semantics: floor(x / 2^f) + {0, 1} (the rounding bits are random in both)
    assert set((st.view(np.int64) - (XT >> F_BITS)).tolist()) <= {0, 1}
    assert np.abs(st.view(np.int64) - t.view(np.int64)).max() <= 1


K = 6  # elements per op over the OT source (each bit costs 2n - 1 OT triples)


async def ot_ops(s):
    def inp(a, owner):
        return spdz2k.input(s, u(a[:K]) if s.pid == owner else None, owner, (K,))

    xt, xf, yf, xc = await inp(XT, 0), await inp(XF, 0), await inp(YF, s.n - 1), await inp(XC, 0)
    t = await F.trunc(s, xt, F_BITS)
    fm = await F.fixed_mul(s, xf, yf, F_BITS)
    lz = await F.ltz(s, xc)
    ez = await F.eqz(s, xc)
    return await spdz2k.open(s, t, fm, lz, ez)


@pytest.mark.parametrize("n", [2, 3])
def test_ot_source_results_match_plaintext(n):
    out, _, _ = run(ot_ops, n=n, preprocessing="ot", batch=256)
    assert not any(isinstance(o, BaseException) for o in out), out
    for p in range(n):
        t, fm, lz, ez = out[p]
        assert set((t.view(np.int64) - (XT[:K] >> F_BITS)).tolist()) <= {0, 1}
        assert set((fm.view(np.int64) - ((XF[:K] * YF[:K]) >> F_BITS)).tolist()) <= {0, 1}
        assert np.array_equal(lz, (XC[:K] < 0).astype(np.uint64))
        assert np.array_equal(ez, (XC[:K] == 0).astype(np.uint64))


def test_run_local_keyword_and_shapes():
    X2 = XC[:6].reshape(2, 3)

    async def job(s):
        x = await spdz2k.input(s, u(X2) if s.pid == 1 else None, 1, X2.shape)
        return await spdz2k.open(s, await F.ltz(s, x), await F.trunc(s, x * 4, 2), await F.eqz(s, x))

    lz, t, ez = run_local(2, job, scheme="additive", security="malicious", seed=1).results[0]
    assert lz.shape == t.shape == ez.shape == (2, 3)
    assert np.array_equal(lz, (X2 < 0).astype(np.uint64)) and np.array_equal(ez, (X2 == 0).astype(np.uint64))
    assert np.array_equal(t, u(X2 * 4 >> 2))  # exact: no low bits to round


def test_bits_are_bits_and_maced():
    async def job(s):
        b = await F.random_bits(s, (200,))
        return b.x, b.m, s._state.ext["spdz2k"].alpha.copy()

    for prep in ("trusted_dealer", "ot"):
        out, _, _ = run(job, n=2, preprocessing=prep, batch=256 if prep == "ot" else None)
        x = R.add(out[0][0], out[1][0])
        m = R.add(out[0][1], out[1][1])
        alpha = R.add(out[0][2], out[1][2])
        assert set(R.lo(x).tolist()) == {0, 1}  # both values occur in 200 uniform bits
        assert R.to_ints(m) == R.to_ints(R.mul(x, alpha))


def test_parameter_errors():
    async def job(s):
        x = await spdz2k.input(s, u(XT) if s.pid == 0 else None, 0, (N,))
        with pytest.raises(ParameterError):
            await F.trunc(s, x, 62)
        with pytest.raises(ParameterError):
            await F.prepare_compare(s, 4, "gtz")
        with pytest.raises(ParameterError):
            await F.prepare_trunc(s, 0)
        return True

    assert all(run_local(2, job, scheme="additive", security="malicious", seed=1).results)


def test_source_without_bits_is_refused():
    class NoBits:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            if name == "bits":
                raise AttributeError(name)
            return getattr(self.inner, name)

    async def job(s):
        ctx = s._state.ext["spdz2k"]
        ctx.prep = NoBits(ctx.prep)
        x = await spdz2k.input(s, u(XT) if s.pid == 0 else None, 0, (N,))
        with pytest.raises(MaliciousUnsupportedError):
            await F.ltz(s, x)
        return True

    assert all(run_local(2, job, scheme="additive", security="malicious", seed=1).results)


# -- exact rounds and bytes -------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3])
def test_exact_rounds_and_bytes(n):
    """With prepared masks: trunc 1 round, fixed_mul 2, ltz 7, eqz 6 (no MAC check inside:
    the check runs before the output)."""
    rec = {}

    async def job(s):
        xt, xf, yf, xc, _ = await inputs(s)
        await F.prepare_trunc(s, 2 * N)
        await F.prepare_compare(s, 2 * N)
        await spdz2k.check(s)
        out = {}
        for name, op in (("trunc", lambda: F.trunc(s, xt, F_BITS)), ("fixed_mul", lambda: F.fixed_mul(s, xf, yf, F_BITS)),
                         ("ltz", lambda: F.ltz(s, xc)), ("eqz", lambda: F.eqz(s, xc))):
            before = s.stats.copy()
            await op()
            d = s.stats - before
            out[name] = (d.rounds, d.bytes_sent)
        assert F.prepared(s, "trunc") == 0 and F.prepared(s, "cmp") == 0
        return out

    out, _, _ = run(job, n=n)
    p = n - 1
    for o in out:
        rec = o
        assert rec["trunc"] == (1, p * 16 * N)
        assert rec["fixed_mul"] == (2, p * 16 * N * 3)
        assert rec["ltz"] == (7, p * 16 * N * (1 + 2 * 58))
        assert rec["eqz"] == (6, p * 16 * N * (1 + 2 * 31))


# -- cheats (dealer) --------------------------------------------------------------------------
class BadBits:
    """The cheater's preprocessing view: its share of the first bit is off by one."""

    def __init__(self, inner):
        self.inner, self.done = inner, False

    async def bits(self, shape):
        x, m = await self.inner.bits(shape)
        if not self.done:
            self.done = True
            x = x.copy()
            x.reshape(-1, 2)[0, 0] += np.uint64(1)
        return x, m

    def __getattr__(self, name):
        return getattr(self.inner, name)


class BadT:
    """The cheater's preprocessing view: its value share of the first random (the mask of
    the upper half, t) is off by one."""

    def __init__(self, inner):
        self.inner, self.done = inner, False

    async def randoms(self, shape):
        x, m = await self.inner.randoms(shape)
        if not self.done:
            self.done = True
            x = x.copy()
            x.reshape(-1, 2)[0, 0] += np.uint64(1)
        return x, m

    def __getattr__(self, name):
        return getattr(self.inner, name)


async def trunc_job(s):
    xt, *_ = await inputs(s)
    return await spdz2k.open(s, await F.trunc(s, xt, F_BITS))


async def ltz_job(s):
    *_, xc, _ = await inputs(s)
    await F.prepare_compare(s, N)
    return await spdz2k.open(s, await F.ltz(s, xc))


async def eqz_job(s):
    *_, xc, _ = await inputs(s)
    return await spdz2k.open(s, await F.eqz(s, xc))


CHEATS = {
    "opened c (trunc)": dict(job=trunc_job, cheat=("strunc", None)),
    "opened c (trunc) to one peer": dict(job=trunc_job, cheat=("strunc", [0])),
    "opened c (ltz)": dict(job=ltz_job, cheat=("scmp", None)),
    "opened c (eqz)": dict(job=eqz_job, cheat=("seqz", None)),
    "Beaver opening in BitLT": dict(job=ltz_job, cheat=("sopen", None)),
    "bit share (trunc)": dict(job=trunc_job, prep_wrap=BadBits),
    "bit share (ltz)": dict(job=ltz_job, prep_wrap=BadBits),
    "truncation mask t": dict(job=trunc_job, prep_wrap=BadT),
}


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("case", list(CHEATS))
def test_cheater_caught_on_every_honest_party(case, n):
    kw = dict(CHEATS[case])
    job = kw.pop("job")
    if kw.get("cheat") and kw["cheat"][1] is not None and n == 2:
        kw["cheat"] = (kw["cheat"][0], None)
    out, _, ss = run(job, n=n, **kw)
    assert_caught(out, ss)


# -- cheats (OT source: the bit check) --------------------------------------------------------
def _non_bits(value):
    class NonBit(Spdz2kOT):
        """Inputs `value` instead of its first random bit."""

        def _bit_vector(self, N):
            b = super()._bit_vector(N)
            b[0] = np.uint64(value)
            return b

    return NonBit


class AcceptAll(Spdz2kOT):
    """Deliberately broken: the bit check accepts anything."""

    def _bits_ok(self, low):
        return True


async def bits_job(s):
    b = await F.random_bits(s, (8,))
    (v,) = await spdz2k.open(s, b)
    return v


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("value", [2, 1 << 63, (1 << 64) - 1])
def test_non_bit_input_is_caught_by_the_bit_check(n, value):
    out, _, ss = run(bits_job, n=n, preprocessing="ot", cls=_non_bits(value), batch=16)
    assert_caught(out, ss, {"bit"})


def test_broken_bit_check_lets_the_non_bit_through():
    """Positive control: every party's bit check accepting anything, the cheater's 2 becomes
    a shared 'bit' that is not one (b = b_0 + 2 - 4 b_0 in {2, -1})."""

    class Both(AcceptAll, _non_bits(2)):
        pass

    async def main():
        ss = await open_sessions(2, scheme="additive", security="malicious", seed=7, preprocessing="ot")
        for s in ss:
            ctx = s._state.ext["spdz2k"]
            ctx.prep = (Both if s.pid == 1 else AcceptAll)(s, batch=16).register(s.pid, ctx.alpha)
        out = await asyncio.gather(*(bits_job(s) for s in ss))
        await close_sessions(ss)
        return out

    out = asyncio.run(main())
    assert int(out[0][0]) in (2, (1 << 64) - 1), out[0]


@pytest.mark.parametrize("prefix", ["kbits", "kbmul"])
def test_tampered_bit_check_openings_are_caught(prefix):
    out, _, ss = run(bits_job, n=3, preprocessing="ot", cheat=(prefix, None), batch=16)
    assert_caught(out, ss)


async def small_trunc_job(s):
    x = await spdz2k.input(s, u(XT[:2]) if s.pid == 0 else None, 0, (2,))
    return await spdz2k.open(s, await F.trunc(s, x, F_BITS))


def test_ot_bit_share_error_is_caught_online():
    out, _, ss = run(small_trunc_job, n=2, preprocessing="ot", prep_wrap=BadBits, batch=128)
    assert_caught(out, ss, {"mac"})


def test_prepared_truncation_masks_for_f_and_others():
    """Masks prepared for f = 16 (r >> 16 precomputed), used by a truncation by 16 that needs
    more than were prepared (the rest fetched with r >> 16 too) and by a truncation by 8 (r >> 8
    from the bits): all floor(x / 2^f) + {0, 1}."""

    async def job(s):
        x = await spdz2k.input(s, u(XT[:6]) if s.pid == 0 else None, 0, (6,))
        await F.prepare_trunc(s, 4, F_BITS)
        a = await F.trunc(s, x, F_BITS)
        await F.prepare_trunc(s, 6, F_BITS)
        b = await F.trunc(s, x, 8)
        return await spdz2k.open(s, a, b)

    a, b = run_local(2, job, scheme="additive", security="malicious", seed=2).results[0]
    assert set((a.view(np.int64) - (XT[:6] >> F_BITS)).tolist()) <= {0, 1}
    assert set((b.view(np.int64) - (XT[:6] >> 8)).tolist()) <= {0, 1}
