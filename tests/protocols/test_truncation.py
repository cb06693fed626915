"""Truncation and fixed-point products: exact range, rounding within one ulp, rounds and bytes."""

from dataclasses import astuple

import numpy as np
import pytest

import mpc
from protocols import core, costs, fixed, truncation
from protocols.arith.field import Mersenne61, Mersenne127
from protocols.errors import ConfigError

F = 16
# "additive-gf": additive sharing over GF(2^127 - 1), where public terms are party 0's only
CASES = [("additive", 2), ("additive", 3), ("additive", 5), ("shamir", 3), ("shamir", 5),
         ("additive-gf", 3)]


def run(scheme, n, job, seed=11, **kw):
    dom = None if scheme == "additive" else Mersenne127()
    return mpc.run_local(n, job, scheme=scheme.removesuffix("-gf"), seed=seed, domain=dom, **kw)


def signed(dom, v):
    return np.array(dom.to_signed(v), dtype=object)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scheme,n", CASES)
def test_trunc_floor_or_ceil_over_whole_range_with_counts(scheme, n):
    # the whole accepted range: |x| < 2^62 on Z_2^64, |x| < 2^63 on GF(2^127 - 1)
    bound = 2**62 if scheme == "additive" else 2**63
    g = np.random.default_rng(1)
    X = g.integers(-bound + 1, bound, size=10_000).astype(object)
    X[:8] = [0, -1, 1, bound - 1, -bound + 1, 2**F - 1, -(2**F), 2**F]

    async def job(s):
        x = await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
        before = s.stats.copy()
        z = await truncation.trunc(s, x, F)
        delta = s.stats - before
        (out,) = await core.open(s, z)
        return signed(s.domain, out), delta

    res = run(scheme, n, job)
    e = 8 if scheme == "additive" else 16
    for value, delta in res.results:
        diff = value - X // 2**F
        assert set(diff.tolist()) <= {0, 1}
        assert (delta.rounds, delta.bytes_sent) == astuple(costs.trunc(X.size, n, e))
        assert delta.bytes_sent == (n - 1) * X.size * e  # spot check of the table
        assert delta.messages_sent == n - 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scheme,n", [("additive", 3), ("shamir", 3)])
def test_trunc_rounding_is_unbiased(scheme, n):
    # x = k * 2^f + 2^(f-2): rounds up with probability 1/4
    k = np.arange(-20_000, 20_000, dtype=np.int64)
    X = k * 2**F + 2 ** (F - 2)

    async def job(s):
        x = await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
        (out,) = await core.open(s, await truncation.trunc(s, x, F))
        return signed(s.domain, out)

    up = (run(scheme, n, job).results[0] - k).astype(np.int64)
    assert set(up.tolist()) <= {0, 1}
    # 40000 draws, sd of the mean = sqrt(3/16/40000) ~ 0.0022
    assert abs(up.mean() - 0.25) < 0.012


@pytest.mark.timeout(60)
def test_fixed_mul_ten_million_pairs_none_off_by_more_than_rounding():
    """10^7 random in-range pairs (additive, 3 parties): every product within 2^-f."""
    n_chunks, chunk = 10, 10**6
    g = np.random.default_rng(2024)  # plaintext test data only
    # |x~*y~| < 2^30: encoded |X|, |Y| < 2^31; magnitudes spread over all scales
    lim = 2**31 - 1
    scale_x = 2.0 ** g.uniform(0, 31, size=(n_chunks, chunk))
    scale_y = 2.0 ** (31 - np.log2(scale_x)) * g.uniform(0, 1, size=(n_chunks, chunk))
    X = np.clip(np.rint(g.choice([-1, 1], size=(n_chunks, chunk)) * scale_x), -lim, lim).astype(np.int64)
    Y = np.clip(np.rint(g.choice([-1, 1], size=(n_chunks, chunk)) * scale_y), -lim, lim).astype(np.int64)
    assert (np.abs(X.astype(object) * Y.astype(object)) < 2**62).all()

    async def job(s):
        bad = 0
        for i in range(n_chunks):
            x = await core.input(s, s.domain.from_int(X[i]) if s.pid == 0 else None, 0)
            y = await core.input(s, s.domain.from_int(Y[i]) if s.pid == 1 else None, 1)
            z = await fixed.mul(s, x, y)
            out = await core.reveal_to(s, z, 0)
            if out is not None:
                got = out.view(np.int64)
                floor = (X[i] * Y[i]) >> F  # exact in int64, arithmetic shift = floor
                bad += int(((got != floor) & (got != floor + 1)).sum())
        return bad

    assert run("additive", 3, job, seed=7).results[0] == 0


@pytest.mark.timeout(60)
def test_local_truncation_fails_on_large_values_as_documented():
    """The SecureML local truncation (2 parties) errs with probability ~2^(L+1-64) for
    |x| < 2^L: at L = 61 that is 1/8 of the values, at L = 20 none in 10^4."""
    g = np.random.default_rng(3)
    big = g.integers(-(2**61), 2**61, size=10_000)
    small = g.integers(-(2**20), 2**20, size=10_000)

    async def job(s):
        out = []
        for X in (big, small):
            x = await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
            before = s.stats.copy()
            z = await truncation.trunc(s, x, F, method="local")
            assert (s.stats - before).rounds == 0
            (o,) = await core.open(s, z)
            out.append(o.view(np.int64))
        return out

    got_big, got_small = mpc.run_local(2, job, seed=5).results[0]
    wrong_big = np.abs(got_big - (big >> F)) > 1
    assert 0.05 < wrong_big.mean() < 0.2  # the failure the default protocol avoids
    assert (np.abs(got_small - (small >> F)) <= 1).all()


@pytest.mark.parametrize("n", [3])
def test_local_truncation_refuses_more_than_two_parties(n):
    async def job(s):
        x = await core.input(s, s.domain.from_int(np.array([1])) if s.pid == 0 else None, 0)
        await truncation.trunc(s, x, F, method="local")

    with pytest.raises(ConfigError):
        mpc.run_local(n, job, seed=1)


def test_small_field_refused_for_fixed_point():
    async def job(s):
        x = await core.input(s, s.domain.from_int(np.array([1])) if s.pid == 0 else None, 0)
        await fixed.mul(s, x, x)

    with pytest.raises(ConfigError, match="Mersenne127"):
        mpc.run_local(3, job, scheme="shamir", domain=Mersenne61(), seed=1)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scheme,n", CASES)
def test_fixed_mul_square_matmul_mul_public(scheme, n):
    g = np.random.default_rng(4)
    a = g.uniform(-1000, 1000, size=(40, 6))
    b = g.uniform(-1000, 1000, size=(40, 6))
    m = g.uniform(-30, 30, size=(6, 5))
    enc = lambda v: np.rint(v * 2**F).astype(np.int64)  # noqa: E731
    A, B, M = enc(a), enc(b), enc(m)
    at, bt, mt = A / 2**F, B / 2**F, M / 2**F

    async def job(s):
        x = await core.input(s, s.domain.from_int(A) if s.pid == 0 else None, 0)
        y = await core.input(s, s.domain.from_int(B) if s.pid == 1 else None, 1)
        w = await core.input(s, s.domain.from_int(M) if s.pid == 0 else None, 0)
        counts = []
        outs = []
        for op in ("mul", "square", "matmul", "mul_public"):
            before = s.stats.copy()
            if op == "mul":
                z = await fixed.mul(s, x, y)
            elif op == "square":
                z = await fixed.square(s, x)
            elif op == "matmul":
                z = await fixed.matmul(s, x, w)
            else:
                z = await fixed.mul_public(s, x, 0.3)
            counts.append(s.stats - before)
            outs.append(z)
        opened = await core.open(s, *outs)
        return [signed(s.domain, o).astype(np.float64) / 2**F for o in opened], counts

    res = run(scheme, n, job)
    e = 8 if scheme == "additive" else 16
    ulp = 2.0**-F
    for (mul_, sq, mm, mp), counts in res.results:
        assert np.abs(mul_ - at * bt).max() < ulp * (1 + 1e-9) + 1e-6
        assert np.abs(sq - at * at).max() < ulp + 1e-6
        assert np.abs(mm - at @ mt).max() < ulp + 1e-6
        assert np.abs(mp - at * 0.3).max() < ulp + np.abs(at).max() * 2.0 ** -(F + 1)
        N = A.size
        assert [c.rounds for c in counts] == [2, 2, 2, 1]
        assert counts[0].bytes_sent == (n - 1) * 3 * N * e
        assert counts[1].bytes_sent == (n - 1) * 2 * N * e
        assert counts[2].bytes_sent == (n - 1) * (A.size + M.size + 40 * 5) * e
        assert counts[3].bytes_sent == (n - 1) * N * e


@pytest.mark.parametrize("scheme", ["additive", "shamir"])
def test_check_range_detects_overflow_on_every_party(scheme):
    from protocols.arith.fixedpoint import FixedPoint
    from protocols.errors import FixedPointOverflowError

    domain = Mersenne127() if scheme == "shamir" else None

    def job_for(values):
        async def job(s):
            enc = FixedPoint(s.domain).encode(np.array(values)) if s.pid == 0 else None
            x = await core.input(s, enc, 0)
            await fixed.check_range(s, x, 100.0)
            return "ok"

        return job

    assert mpc.run_local(3, job_for([1.5, -99.9, 0.0]), scheme=scheme, domain=domain).results == ["ok"] * 3
    with pytest.raises(FixedPointOverflowError) as ei:
        mpc.run_local(3, job_for([1.5, -100.0, 250.0]), scheme=scheme, domain=domain)
    assert all(isinstance(e, FixedPointOverflowError) for e in ei.value.party_errors)


@pytest.mark.parametrize("bad", [np.nan, np.inf, 2.0**47])
def test_public_constants_out_of_range_refused(bad):
    from protocols.errors import InputRangeError

    async def job(s):
        x = await core.input(s, s.domain.from_int(np.ones(2, dtype=np.int64)) if s.pid == 0 else None, 0)
        return await fixed.mul_public(s, x, bad)

    with pytest.raises(InputRangeError):
        mpc.run_local(2, job)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "prep,n", [("trusted_dealer", 3), ("trusted_dealer", 2), ("ot", 3), ("ot", 2), ("ot-fallback", 3)]
)
def test_sub_trunc_matmul_one_round_and_fallback(prep, n, monkeypatch):
    # y = v - trunc(u, f') and x @ y in one round (dealer, and the dealer-free OT source's
    # matrix_trunc_triples); two rounds with the same words sent when the source has no
    # matrix_trunc_triples (the fallback: "ot-fallback" does not declare them)
    if prep == "ot-fallback":
        from protocols.preprocessing.base import KINDS
        from protocols.preprocessing.ot import OTPreprocessing

        monkeypatch.setattr(OTPreprocessing, "SUPPLIES", frozenset(KINDS) - {"matrix_trunc_triples"})
    fp = F + 20
    g = np.random.default_rng(5)
    k, d = 40, 6
    Xv = g.integers(-(4 << F), 4 << F, size=(k, d))
    Vv = g.integers(-(3 << F), 3 << F, size=d)
    Uv = g.integers(-(2**61), 2**61, size=d).astype(object)
    Uv[:2] = [2**62 - 1, -(2**62) + 1]  # the whole range of trunc

    async def job(s):
        x = await core.input(s, s.domain.from_int(Xv) if s.pid == 0 else None, 0)
        v = await core.input(s, s.domain.from_int(Vv) if s.pid == 1 else None, 1)
        u = await core.input(s, s.domain.from_int(Uv) if s.pid == 0 else None, 0)
        before = s.stats.copy()
        y, z = await truncation.sub_trunc_matmul(s, x, v, u, fp)
        delta = s.stats - before
        oy, oz = await core.open(s, y, z)
        return signed(s.domain, oy), signed(s.domain, oz), delta

    res = mpc.run_local(n, job, seed=7, preprocessing=prep.split("-")[0])
    for oy, oz, delta in res.results:
        assert set((Vv.astype(object) - Uv // 2**fp - oy).tolist()) <= {0, 1}
        assert (oz == Xv.astype(object).dot(oy)).all()  # exactly x @ y for the y returned
        want = costs.sub_trunc_matmul(k, d, n, 8, fused=prep != "ot-fallback")
        assert (delta.rounds, delta.bytes_sent) == astuple(want)
        assert delta.rounds == (2 if prep == "ot-fallback" else 1)
        if prep != "ot-fallback":
            assert delta.messages_sent == n - 1
