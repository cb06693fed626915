"""The online protocols that need mixed kinds (truncation, fixed-point products, comparisons,
the piecewise sigmoid) run end to end on the dealer-free sources, with the insecure trusted
dealer never asked for anything: DN07 over GF(2^127 - 1) (Shamir, honest majority) and
OT-based preprocessing over Z_2^64 (additive, any n)."""

import numpy as np
import pytest

import mpc
from protocols import comparison, core, costs, fixed, nonlinear, truncation
from protocols.arith.field import Mersenne127
from protocols.arith.fixedpoint import DEFAULT_F

pytestmark = pytest.mark.timeout(60)

F = DEFAULT_F


def inputs(N, seed):
    g = np.random.default_rng(seed)  # plaintext test data only
    X = np.round(g.uniform(-4, 4, N) * 2**F).astype(np.int64)
    Y = np.round(g.uniform(-4, 4, N) * 2**F).astype(np.int64)
    X[:9] = [0, -1, 1, 2**F // 2, -(2**F) // 2, 2**F // 2 + 1, -(2**F) // 2 - 1, 3 << F, -(3 << F)]
    Y[:3] = [0, 5, -7]
    return X, Y


def job_for(X, Y, eq, want_source):
    async def job(s):
        assert s.prep.source.name == want_source
        x = await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
        y = await core.input(s, s.domain.from_int(Y) if s.pid == 1 else None, 1)
        method = "msb" if s.scheme.kind == "additive" else "cs"
        outs = [
            await truncation.trunc(s, x, F, method=method),
            await fixed.mul(s, x, y),
            await comparison.ltz(s, x),
            await nonlinear.sigmoid_piecewise(s, x),
        ]
        if eq:
            outs.append(await comparison.eqz(s, x - y))
        opened = await core.open(s, *outs)
        return [np.array(s.domain.to_signed(v), dtype=object) for v in opened]

    return job


def check(results, X, Y, eq):
    Xo, Yo = X.astype(object), Y.astype(object)
    for out in results:
        t, m, lt, sg = out[:4]
        assert all(v - x // 2**F in (0, 1) for v, x in zip(t, Xo, strict=True))  # stochastic rounding
        assert all(v - (x * y) // 2**F in (0, 1) for v, x, y in zip(m, Xo, Yo, strict=True))
        assert (lt == (X < 0)).all()
        assert (sg == np.clip(Xo + 2 ** (F - 1), 0, 2**F)).all()  # exact on its definition
        if eq:
            assert (out[4] == (X == Y)).all()


def test_shamir_m127_dn07(no_trusted_dealer):
    X, Y = inputs(60, 1)
    Y[20:30] = X[20:30]  # some equal pairs for eqz
    r = mpc.run_local(3, job_for(X, Y, True, "dn07"), scheme="shamir", domain=Mersenne127(), preprocessing="dn07", seed=3)
    check(r.results, X, Y, True)


@pytest.mark.parametrize("n", [2, 3])
def test_additive_ot(n, no_trusted_dealer):
    X, Y = inputs(60, n)
    Y[20:30] = X[20:30]
    r = mpc.run_local(n, job_for(X, Y, True, "ot"), scheme="additive", preprocessing="ot", seed=4)
    check(r.results, X, Y, True)


def test_the_guard_has_power(no_trusted_dealer):
    """The fixture must catch a run that does use the trusted dealer."""
    X, Y = inputs(12, 5)
    with pytest.raises(AssertionError):
        mpc.run_local(2, job_for(X, Y, False, "trusted_dealer"), preprocessing="trusted_dealer", seed=1)


def test_shamir_dn07_comparisons_take_the_edabit_path(no_trusted_dealer):
    """DN07 now supplies daBits, edaBits and boolean triples over GF(p), so dealer-free
    Shamir comparisons use the edaBit circuit, not Catrina-de Hoogh's random bits: ltz and
    eqz are exact AND cost exactly protocols.costs' edabits rows (l = 64, 16-byte elements; the
    random-bit path sends ~25x more), relu is exact and the smooth sigmoid within its bound
    and its edaBit round count (38)."""
    N, n = 64, 3
    X, _ = inputs(N, 7)
    table = {"ltz": costs.ltz(N, n, 16, "edabits"), "eqz": costs.eqz(N, n, 16, "edabits"),
            "relu": costs.ltz_mul(N, n, 16, "edabits"), "sigmoid": costs.sigmoid(N, n, 16, "edabits")}

    async def job(s):
        assert s.prep.source.name == "dn07"
        x = await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
        outs, counts = [], {}
        for op, fn in (("ltz", comparison.ltz), ("eqz", comparison.eqz), ("relu", comparison.relu),
                       ("sigmoid", nonlinear.sigmoid)):
            before = s.stats.copy()
            outs.append(await fn(s, x))
            d = s.stats - before
            counts[op] = (d.rounds, d.bytes_sent)
        opened = await core.open(s, *outs)
        return [np.array(s.domain.to_signed(v), dtype=object) for v in opened], counts

    r = mpc.run_local(n, job, scheme="shamir", domain=Mersenne127(), preprocessing="dn07", seed=5)
    Xo = X.astype(object)
    for (lt, eq, relu, sg), counts in r.results:
        assert (lt == (X < 0)).all() and (eq == (X == 0)).all()
        assert (relu == np.maximum(Xo, 0)).all()
        want = 1 / (1 + np.exp(-X / 2**F))
        assert np.abs(sg.astype(float) / 2**F - want).max() <= 2**-F + 1e-4
        for op, c in table.items():
            assert counts[op] == (c.rounds, c.bytes_per_party), op
        assert counts["ltz"][0] == 8 and counts["eqz"][0] == 8
        assert counts["sigmoid"][0] == 38
