"""Comparisons: exact results on random and edge values, exact rounds and bytes per docstring."""

import numpy as np
import pytest

import mpc
from protocols import comparison as C
from protocols import core
from protocols.arith.field import Mersenne61, Mersenne127
from protocols.errors import ConfigError

# (scheme, n, points): GF(2^127-1) comparisons are ~100x slower in-process, fewer points at n=5
CASES = [("additive", 2, 10_000), ("additive", 3, 10_000), ("additive", 5, 10_000),
         ("shamir", 3, 10_000), ("shamir", 5, 1_000)]


def run(scheme, n, job, **kw):
    dom = Mersenne127() if scheme == "shamir" else None
    return mpc.run_local(n, job, scheme=scheme, seed=21, domain=dom, **kw)


def signed(dom, v):
    return np.array(dom.to_signed(v), dtype=object)


def expected_counts(scheme, op, N, n):
    """(rounds, bytes sent per party) as the docstrings state them."""
    if scheme == "additive":
        return {"ltz": 3, "eqz": 8}[op], (n - 1) * N * {"ltz": 40, "eqz": 112}[op]
    return 7, (n - 1) * N * {"ltz": 251, "eqz": 127}[op] * 16


def values(scheme, N, g):
    lim = 2**63 if scheme == "additive" else 2**63  # int64 / |x| < 2^(l-1), l = 64
    X = g.integers(-lim, lim, size=N, dtype=np.int64).astype(object)
    X[N // 2 :] = g.integers(-5, 6, size=N - N // 2)  # many near zero, many exact zeros
    X[:8] = [0, -1, 1, lim - 1, -lim, 2**62, -(2**62), 2]
    return X


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scheme,n,N", CASES)
def test_ltz_eqz_exact_with_counts(scheme, n, N):
    X = values(scheme, N, np.random.default_rng(n))

    async def job(s):
        x = await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
        out, counts = [], []
        for op in (C.ltz, C.eqz):
            before = s.stats.copy()
            out.append(await op(s, x))
            counts.append(s.stats - before)
        opened = await core.open(s, *out)
        return [signed(s.domain, o) for o in opened], counts

    for (lt0, eq0), counts in run(scheme, n, job).results:
        assert (lt0 == (X < 0)).all()
        assert (eq0 == (X == 0)).all()
        for op, c in zip(("ltz", "eqz"), counts, strict=True):
            rounds, sent = expected_counts(scheme, op, N, n)
            assert c.rounds == rounds
            assert c.bytes_sent == sent == c.bytes_received


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scheme,n", [("additive", 3), ("shamir", 3)])
def test_derived_operations(scheme, n):
    g = np.random.default_rng(9)
    N = 500
    X = g.integers(-(2**40), 2**40, size=N)
    Y = np.where(g.random(N) < 0.3, X, g.integers(-(2**40), 2**40, size=N))
    Y[:3] = X[:3] + np.array([1, -1, 0])
    B = g.integers(0, 2, size=N)
    lo, hi = -(2**35), 2**36
    X[3:6] = [lo, hi, lo - 1]
    ltz_rounds = 3 if scheme == "additive" else 7
    eqz_rounds = 8 if scheme == "additive" else 7
    fold = 0 if scheme == "additive" else 1  # ltz_mul: the product rides in ltz's last round

    async def job(s):
        x = await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
        y = await core.input(s, s.domain.from_int(Y) if s.pid == 1 else None, 1)
        b = await core.input(s, s.domain.from_int(B) if s.pid == 0 else None, 0)
        ops = {
            "lt": lambda: C.lt(s, x, y), "gt": lambda: C.gt(s, x, y), "eq": lambda: C.eq(s, x, y),
            "select": lambda: C.select(s, b, x, y), "relu": lambda: C.relu(s, x),
            "abs": lambda: C.absolute(s, x), "max": lambda: C.maximum(s, x, y),
            "min": lambda: C.minimum(s, x, y), "clip": lambda: C.clip(s, x, lo, hi),
            "select_pub": lambda: C.select(s, b, 7, -3), "lt_pub": lambda: C.lt(s, x, 12345),
        }
        outs, rounds = {}, {}
        for k, f in ops.items():
            before = s.stats.copy()
            outs[k] = await f()
            rounds[k] = (s.stats - before).rounds
        opened = await core.open(s, *outs.values())
        return {k: signed(s.domain, o) for k, o in zip(outs, opened, strict=True)}, rounds

    res, rounds = run(scheme, n, job).results[0]
    Xo, Yo = X.astype(object), Y.astype(object)
    assert (res["lt"] == (X < Y)).all() and (res["gt"] == (X > Y)).all()
    assert (res["eq"] == (X == Y)).all()
    assert (res["select"] == np.where(B == 1, Xo, Yo)).all()
    assert (res["select_pub"] == np.where(B == 1, 7, -3)).all()
    assert (res["lt_pub"] == (X < 12345)).all()
    assert (res["relu"] == np.maximum(Xo, 0)).all()
    assert (res["abs"] == np.abs(Xo)).all()
    assert (res["max"] == np.maximum(Xo, Yo)).all() and (res["min"] == np.minimum(Xo, Yo)).all()
    assert (res["clip"] == np.clip(Xo, lo, hi)).all()
    assert rounds == {"lt": ltz_rounds, "gt": ltz_rounds, "eq": eqz_rounds, "select": 1,
                      "relu": ltz_rounds + fold, "abs": ltz_rounds + fold,
                      "max": ltz_rounds + fold, "min": ltz_rounds + fold,
                      "clip": ltz_rounds + fold, "select_pub": 0,
                      "lt_pub": ltz_rounds}


def test_small_field_range_and_refusals():
    # GF(2^61-1) leaves l = 19 bits: comparisons of |x| < 2^18 still work
    X = np.array([0, -1, 1, 2**18 - 1, -(2**18), 77, -77])

    async def job(s):
        x = await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
        a, e = await core.open(s, await C.ltz(s, x), await C.eqz(s, x))
        return signed(s.domain, a), signed(s.domain, e)

    a, e = mpc.run_local(3, job, scheme="shamir", domain=Mersenne61(), seed=1).results[0]
    assert (a == (X < 0)).all() and (e == (X == 0)).all()

    async def bad_clip(s):
        x = await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
        await C.clip(s, x, 5, 4)

    with pytest.raises(ConfigError):
        mpc.run_local(2, bad_clip, seed=1)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("transport", ["tcp", pytest.param("mqtt", marks=pytest.mark.mqtt)])
@pytest.mark.parametrize("scheme", ["additive", "shamir"])
def test_ltz_and_relu_over_real_transports(transport, scheme, request):
    """The same protocols, unchanged, over encrypted TCP and through the MQTT broker."""
    if transport == "mqtt":
        request.getfixturevalue("mqtt_broker")
    X = np.array([0, -1, 1, -(2**40), 2**40, 7, -7, 123456789], dtype=np.int64)

    async def job(s):
        x = await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
        lt, r = await C.ltz(s, x), await C.relu(s, x)
        return [signed(s.domain, v) for v in await core.open(s, lt, r)]

    for lt, r in run(scheme, 3, job, transport=transport, timeout=30).results:
        assert list(lt) == [int(v < 0) for v in X]
        assert list(r) == [max(int(v), 0) for v in X]
