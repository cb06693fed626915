"""Comparisons: exact results on random and edge values, exact rounds and bytes per docstring."""

import numpy as np
import pytest

import mpc
from protocols import comparison as C
from protocols import core, costs
from protocols.arith.field import Mersenne61, Mersenne127
from protocols.errors import ConfigError

# (scheme, n, points): GF(2^127-1) comparisons are ~100x slower in-process, fewer points at n=5
CASES = [("additive", 2, 10_000), ("additive", 3, 10_000), ("additive", 5, 10_000),
         ("shamir", 3, 10_000), ("shamir", 5, 10_000), ("shamir-bits", 3, 2_000),
         ("shamir-bits", 5, 500)]


def run(scheme, n, job, **kw):
    dom = Mersenne127() if scheme == "shamir" else None
    return mpc.run_local(n, job, scheme=scheme, seed=21, domain=dom, **kw)


@pytest.fixture
def path(request):
    """'shamir-bits' cases run GF(p) with the random-bit circuit (no field edaBits)."""
    scheme = request.node.callspec.params.get("scheme", "")
    if scheme.endswith("-bits"):
        request.getfixturevalue("field_random_bits")
        return "bits"
    return "eda"


def signed(dom, v):
    return np.array(dom.to_signed(v), dtype=object)


#: the comparison backend each case takes (protocols.comparison.backend)
BACKEND = {"additive": "ring3", "shamir": "edabits", "shamir-bits": "field_bits"}


def expected_counts(scheme, op, N, n):
    """(rounds, bytes sent per party) from the cost table (protocols.costs)."""
    e = 8 if scheme == "additive" else 16
    c = (costs.ltz if op == "ltz" else costs.eqz)(N, n, e, BACKEND[scheme])
    return c.rounds, c.bytes_per_party


def test_expected_counts_spot_checks():
    """Literal values, so that a wrong table is caught here."""
    assert expected_counts("additive", "ltz", 64, 3) == (3, 2 * 64 * 40)
    assert expected_counts("additive", "eqz", 64, 3) == (8, 2 * (64 * 8 + 127 * 8))
    assert expected_counts("shamir", "ltz", 64, 3) == (8, 2 * (64 * 16 + 189 * 8))
    assert expected_counts("shamir-bits", "eqz", 10, 5) == (7, 4 * 10 * 127 * 16)


def values(scheme, N, g):
    lim = 2**63  # int64 / |x| < 2^(l-1), l = 64
    X = g.integers(-lim, lim, size=N, dtype=np.int64).astype(object)
    X[N // 2 :] = g.integers(-5, 6, size=N - N // 2)  # many near zero, many exact zeros
    X[:8] = [0, -1, 1, lim - 1, -lim, 2**62, -(2**62), 2]
    return X


def test_eda_costs_values():
    """The documented per-value counts: ltz opens 189 bits, eqz 127, besides the masked value."""
    N = 6400
    assert C.eda_costs("ltz", 64, N, 16) == (8, N * 16 + N * 189 // 8)
    assert C.eda_costs("ltz", 64, N, 8) == (8, N * 8 + N * 189 // 8)
    assert C.eda_costs("eqz", 64, N, 8) == (8, N * 8 + N * 127 // 8)
    assert C.eda_costs("ltz", 33, N, 16) == (7, N * 16 + N * 93 // 8)
    assert C.eda_costs("eqz", 32, N, 16) == (7, N * 16 + N * 63 // 8)
    assert C.eda_costs("ltz", 2, N, 16) == (2, N * 16 + N // 8)  # m = 1: no AND, only the daBit
    assert C.eda_costs("ltz", 64, 3, 16) == (8, 3 * 16 + 8 * 21)  # openings in whole words
    with pytest.raises(ValueError):
        C.eda_costs("lt", 64, N, 16)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scheme,n,N", CASES)
def test_ltz_eqz_exact_with_counts(scheme, n, N, path):
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

    for (lt0, eq0), counts in run(scheme.removesuffix("-bits"), n, job).results:
        assert (lt0 == (X < 0)).all()
        assert (eq0 == (X == 0)).all()
        for op, c in zip(("ltz", "eqz"), counts, strict=True):
            rounds, sent = expected_counts(scheme, op, N, n)
            assert c.rounds == rounds
            assert c.bytes_sent == sent == c.bytes_received


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scheme,n", [("additive", 3), ("shamir", 3), ("shamir-bits", 3)])
def test_derived_operations(scheme, n, path):
    g = np.random.default_rng(9)
    N = 500
    X = g.integers(-(2**40), 2**40, size=N)
    Y = np.where(g.random(N) < 0.3, X, g.integers(-(2**40), 2**40, size=N))
    Y[:3] = X[:3] + np.array([1, -1, 0])
    B = g.integers(0, 2, size=N)
    lo, hi = -(2**35), 2**36
    X[3:6] = [lo, hi, lo - 1]
    ltz_rounds = {"additive": 3, "shamir": 8, "shamir-bits": 7}[scheme]
    eqz_rounds = 7 if scheme == "shamir-bits" else 8
    # ltz_mul: the product rides in the comparison's rounds except on the random-bit circuit
    fold = 1 if scheme == "shamir-bits" else 0

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

    res, rounds = run(scheme.removesuffix("-bits"), n, job).results[0]
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


def test_field_costs_formula():
    """The cost table of the docstrings: (rounds, field elements per element and peer)."""
    assert C.field_costs("ltz", 64) == (7, 251) and C.field_costs("eqz", 64) == (7, 127)
    assert C.field_costs("ltz", 33) == (6, 123) and C.field_costs("eqz", 32) == (6, 63)
    assert C.field_costs("ltz", 17) == (5, 59) and C.field_costs("eqz", 17) == (6, 41)
    assert C.field_costs("ltz", 2) == (1, 1) and C.field_costs("ltz", 3) == (2, 3)
    assert C.field_costs("eqz", 2) == (2, 3)


# (bits, ltz (rounds, elements), eqz (rounds, elements)) as the docstrings state them
BITS_CASES = [(64, (7, 251), (7, 127)), (33, (6, 123), (7, 75)), (17, (5, 59), (6, 41)),
              (2, (1, 1), (2, 3))]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scheme", ["shamir", "shamir-bits"])
@pytest.mark.parametrize("bits,lt_cost,eq_cost", BITS_CASES)
def test_declared_width_exact_at_range_edges_with_counts(bits, lt_cost, eq_cost, scheme, path):
    n, N = 3, 2_000
    lim = 2 ** (bits - 1)  # declared: |x| < 2^(bits-1), i.e. -lim <= x <= lim - 1
    g = np.random.default_rng(bits)
    X = np.array([int(v) for v in g.integers(-lim, lim, size=N)], dtype=object)
    edges = [0, -1, 1, lim - 1, -lim, lim - 2, -lim + 1, lim // 2, -(lim // 2)]
    X[: len(edges)] = edges[: N]

    async def job(s):
        x = await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
        out, counts = [], []
        for op in (C.ltz, C.eqz):
            before = s.stats.copy()
            out.append(await op(s, x, bits=bits))
            counts.append(s.stats - before)
        opened = await core.open(s, *out)
        return [signed(s.domain, o) for o in opened], counts

    for (lt0, eq0), counts in run("shamir", n, job).results:
        assert (lt0 == (X < 0)).all()
        assert (eq0 == (X == 0)).all()
        for op, (rounds, elems), c in zip(("ltz", "eqz"), (lt_cost, eq_cost), counts, strict=True):
            if path == "eda":
                rounds, per_peer = C.eda_costs(op, bits, N, 16)
            else:
                per_peer = N * elems * 16
            assert c.rounds == rounds
            assert c.bytes_sent == (n - 1) * per_peer == c.bytes_received


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scheme", ["shamir", "shamir-bits"])
def test_declared_width_derived_operations(scheme, path):
    """lt / eq / relu / clip / ltz_mul / max with bits: exact in range; rounds of ltz(l)."""
    g = np.random.default_rng(3)
    N, bits = 300, 24
    X = g.integers(-(2**21), 2**21, size=N)
    Y = np.where(g.random(N) < 0.3, X, g.integers(-(2**21), 2**21, size=N))
    lo, hi = -(2**20), 2**20

    async def job(s):
        x = await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
        y = await core.input(s, s.domain.from_int(Y) if s.pid == 1 else None, 1)
        ops = {
            "lt": lambda: C.lt(s, x, y, bits=bits), "gt": lambda: C.gt(s, x, y, bits=bits),
            "eq": lambda: C.eq(s, x, y, bits=bits), "relu": lambda: C.relu(s, x, bits=bits),
            "abs": lambda: C.absolute(s, x, bits=bits),
            "max": lambda: C.maximum(s, x, y, bits=bits),
            "min": lambda: C.minimum(s, x, y, bits=bits),
            "clip": lambda: C.clip(s, x, lo, hi, bits=bits),
            "mul": lambda: C.ltz_mul(s, x, y, bits=bits),
        }
        outs, rounds = {}, {}
        for k, f in ops.items():
            before = s.stats.copy()
            r = await f()
            outs[k] = r[1] if k == "mul" else r
            rounds[k] = (s.stats - before).rounds
        opened = await core.open(s, *outs.values())
        return {k: signed(s.domain, o) for k, o in zip(outs, opened, strict=True)}, rounds

    res, rounds = run("shamir", 3, job).results[0]
    Xo, Yo = X.astype(object), Y.astype(object)
    assert (res["lt"] == (X < Y)).all() and (res["gt"] == (X > Y)).all()
    assert (res["eq"] == (X == Y)).all()
    assert (res["relu"] == np.maximum(Xo, 0)).all() and (res["abs"] == np.abs(Xo)).all()
    assert (res["max"] == np.maximum(Xo, Yo)).all() and (res["min"] == np.minimum(Xo, Yo)).all()
    assert (res["clip"] == np.clip(Xo, lo, hi)).all()
    assert (res["mul"] == np.where(X < 0, Yo, 0)).all()
    costs = C.eda_costs if path == "eda" else (lambda op, ell, *_: C.field_costs(op, ell))
    ltz_r, eqz_r = costs("ltz", bits, N, 16)[0], costs("eqz", bits, N, 16)[0]
    assert (ltz_r, eqz_r) == ((7, 7) if path == "eda" else (6, 6))
    fold = 0 if path == "eda" else 1  # from edaBits the products ride in the comparison
    assert rounds == {"lt": ltz_r, "gt": ltz_r, "eq": eqz_r, "relu": ltz_r + fold,
                      "abs": ltz_r + fold, "max": ltz_r + fold, "min": ltz_r + fold,
                      "clip": ltz_r + fold, "mul": ltz_r + fold}


@pytest.mark.parametrize("scheme,dom,bad", [("shamir", Mersenne127(), [1, 0, 65, -3, 2.5, True]),
                                            ("shamir", Mersenne61(), [1, 20]),
                                            ("additive", None, [1, 65])])
def test_declared_width_validated(scheme, dom, bad):
    X = np.array([0, -1, 5])

    async def job(s):
        x = await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
        for b in bad:
            for op in (C.ltz, C.eqz):
                with pytest.raises(ConfigError):
                    await op(s, x, bits=b)
        top = 19 if isinstance(dom, Mersenne61) else 64
        a, e = await core.open(s, await C.ltz(s, x, bits=top), await C.eqz(s, x, bits=top))
        return signed(s.domain, a), signed(s.domain, e)

    for a, e in mpc.run_local(3, job, scheme=scheme, domain=dom, seed=2).results:
        assert (a == (X < 0)).all() and (e == (X == 0)).all()


@pytest.mark.parametrize("scheme", ["shamir", "shamir-bits"])
def test_small_field_default_counts(scheme, path):
    """GF(2^61-1): the default l = 19 (random bits: prefix over 18 positions:
    18 -> 9 -> 5 -> 3 -> 2 -> 1; edaBits: 18 positions padded to 32, 5 AND levels)."""
    assert C.field_costs("ltz", 19) == (6, 79) and C.field_costs("eqz", 19) == (6, 43)
    N, n = 50, 3
    X = np.arange(-25, 25)

    async def job(s):
        x = await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
        before = s.stats.copy()
        b = await C.ltz(s, x)
        d = s.stats - before
        (o,) = await core.open(s, b)
        return signed(s.domain, o), d

    for o, d in mpc.run_local(n, job, scheme="shamir", domain=Mersenne61(), seed=4).results:
        assert (o == (X < 0)).all()
        if path == "eda":
            assert d.rounds == 7 and d.bytes_sent == (n - 1) * C.eda_costs("ltz", 19, N, 8)[1]
        else:
            assert d.rounds == 6 and d.bytes_sent == (n - 1) * N * 79 * 8
