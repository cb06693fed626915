"""SecInt / SecFxp (protocols.secure_types): values, type rules, and costs that are exactly
those of the engine functions underneath (each typed operation is measured against the same
function called directly on the same shares, in the same run)."""

import numpy as np
import pytest

import mpc
from protocols import beaver, comparison, core, costs, fixed, nonlinear
from protocols.errors import (
    DomainError,
    InputRangeError,
    PartyIndexError,
    SessionMismatch,
    ShapeMismatch,
)
from protocols.secure_types import Pending, SecFxp, SecInt, where
from protocols.truncation import trunc

pytestmark = pytest.mark.timeout(120)

CASES = [("additive", 2), ("additive", 3), ("shamir", 3), ("shamir", 5)]
RES = 2.0**-16


async def cost(s, make):
    """(value, Stats delta) of awaiting make()."""
    before = s.stats.copy()
    out = await make()
    return out, s.stats - before


def same_cost(a, b):
    assert a.as_dict() == b.as_dict(), (a, b)


# -- the program ---------------------------------------------------------------
SALARIES = [52.5, 61.25, 48.0, 70.0, 39.5]


@pytest.mark.parametrize("scheme,n", [*CASES, ("additive", 5)])
def test_salary_program(scheme, n):
    async def job(s):
        xs = await s.input(SALARIES[s.pid], range(s.n))
        return await (sum(xs) / s.n).reveal(), await (xs[0] > xs[1]).reveal()

    for mean, richer in mpc.run_local(n, job, scheme=scheme, seed=1).results:
        assert abs(mean - np.mean(SALARIES[:n])) < 1e-3
        assert richer == int(SALARIES[0] > SALARIES[1]) == 0


# -- costs: each typed operation against its engine function ------------------------------
X = np.array([1.5, -2.25, 3.0, 0.75])
Y = np.array([0.5, 4.0, -1.25, 0.75])
P = np.array([2.0, 0.5, 8.0, 1.25])  # positive: divisors
K = np.array([3, -7, 12, 5])
J = np.array([2, 9, -4, 5])


@pytest.mark.parametrize("scheme,n", CASES)
def test_operations_cost_exactly_their_engine_functions(scheme, n):
    async def job(s):
        x = await s.input(X if s.pid == 0 else None, 0)
        y = await s.input(Y if s.pid == n - 1 else None, n - 1)
        p = await s.input(P if s.pid == 1 else None, 1)
        i = await s.input(K if s.pid == 0 else None, 0)
        j = await s.input(J if s.pid == 1 else None, 1)
        assert isinstance(x, SecFxp) and isinstance(i, SecInt) and x.f == 16
        X_, Y_, P_, K_, J_ = x.share, y.share, p.share, i.share, j.share
        checks = [  # (name, typed, engine, expected plaintext, tolerance)
            ("fxp*fxp", lambda: x * y, lambda: fixed.mul(s, X_, Y_), X * Y, 2 * RES),
            ("int*int", lambda: i * j, lambda: beaver.mul(s, K_, J_), K * J, 0),
            ("int*fxp", lambda: i * x, lambda: beaver.mul(s, K_, X_), K * X, 0),
            ("fxp*real", lambda: x * 2.5, lambda: fixed.mul_public(s, X_, 2.5), X * 2.5, 2 * RES),
            ("fxp/real", lambda: x / 4, lambda: fixed.mul_public(s, X_, 0.25), X / 4, 2 * RES),
            ("fxp/fxp", lambda: x / p,
             lambda: _recip_then(s, fixed.mul, X_, P_), X / P, 1e-3),
            ("int/fxp", lambda: i / p,
             lambda: _recip_then(s, lambda s, a, b: beaver.mul(s, b, a), K_, P_), K / P, 1e-3),
            ("fxp<fxp", lambda: x < y, lambda: comparison.lt(s, X_, Y_), X < Y, 0),
            ("fxp<=fxp", lambda: x <= y, lambda: comparison.gt(s, X_, Y_), X <= Y, 0),
            ("fxp>fxp", lambda: x > y, lambda: comparison.gt(s, X_, Y_), X > Y, 0),
            ("fxp>=fxp", lambda: x >= y, lambda: comparison.lt(s, X_, Y_), X >= Y, 0),
            ("fxp==fxp", lambda: x == y, lambda: comparison.eq(s, X_, Y_), X == Y, 0),
            ("int!=int", lambda: i != j, lambda: comparison.eq(s, K_, J_), K != J, 0),
            ("int<real", lambda: i < 4.5, lambda: comparison.lt(s, K_ * 65536, 294912),
             K < 4.5, 0),
            ("abs", lambda: abs(x), lambda: comparison.absolute(s, X_), np.abs(X), 0),
            ("mean", lambda: x.mean(), lambda: fixed.mul_public(s, X_.sum(), 0.25), X.mean(), 2 * RES),
            ("fxp@fxp", lambda: x.reshape(2, 2) @ y.reshape(2, 2),
             lambda: fixed.matmul(s, X_.reshape(2, 2), Y_.reshape(2, 2)),
             X.reshape(2, 2) @ Y.reshape(2, 2), 2 * RES),
            ("int@int", lambda: i.reshape(2, 2) @ j.reshape(2, 2),
             lambda: beaver.matmul(s, K_.reshape(2, 2), J_.reshape(2, 2)),
             K.reshape(2, 2) @ J.reshape(2, 2), 0),
            ("fxp@reals", lambda: x.reshape(2, 2) @ np.array([[0.5, 1.5], [2.5, -1.0]]),
             lambda: trunc(s, X_.reshape(2, 2) @ fixed.encode_public(s, [[0.5, 1.5], [2.5, -1.0]]), 16),
             X.reshape(2, 2) @ np.array([[0.5, 1.5], [2.5, -1.0]]), 2 * RES),
        ]
        out = []
        for name, typed, engine, expected, tol in checks:
            z, dz = await cost(s, lambda typed=typed: typed())
            assert isinstance(z, SecInt | SecFxp), name
            _, de = await cost(s, engine)
            same_cost(dz, de)
            assert dz.rounds >= 1, name
            out.append((name, await z.reveal(), expected, tol))
        b = await (i < j)
        z, dz = await cost(s, lambda: where(b, x, y))
        _, de = await cost(s, lambda: comparison.select(s, b.share, X_, Y_))
        same_cost(dz, de)
        assert dz.rounds == 1
        out.append(("where", await z.reveal(), np.where(K < J, X, Y), 0))
        return out

    for name, got, expected, tol in mpc.run_local(n, job, scheme=scheme, seed=3).results[0]:
        assert np.allclose(got, expected, atol=tol, rtol=0), (name, got, expected)


async def _recip_then(s, prod, a, d):
    r = await nonlinear.reciprocal(s, d)
    return await prod(s, a, r)


@pytest.mark.parametrize("scheme,n", [("additive", 3), ("shamir", 3)])
def test_local_operations_cost_nothing(scheme, n):
    async def job(s):
        x = await s.input(X if s.pid == 0 else None, 0)
        i = await s.input(K if s.pid == 1 else None, 1)
        before = s.stats.copy()
        outs = [x + 1, 1 + x, x - 0.5, 2 - x, -x, x * 3, 3 * x, x * 2.0, i + x, i - 1, i * -2,
                i / 4, i + 0.5, x.sum(), i.mean(), x[1:3], x[0], sum([x, x, i]), i * 1.5,
                np.float64(2) * x, np.array([1, 2, 3, 4]) + i]
        assert s.stats.as_dict() == before.as_dict()  # no communication at all
        assert all(isinstance(o, SecInt | SecFxp) for o in outs)
        return [await o.reveal() for o in outs]

    got = mpc.run_local(n, job, scheme=scheme, seed=4).results[1]
    want = [X + 1, 1 + X, X - 0.5, 2 - X, -X, X * 3, 3 * X, X * 2, K + X, K - 1, K * -2, K / 4,
            K + 0.5, X.sum(), K.mean(), X[1:3], X[0], 2 * X + K, K * 1.5, 2 * X,
            np.array([1, 2, 3, 4]) + K]
    for g, w in zip(got, want, strict=True):
        assert np.allclose(g, w, atol=1e-4, rtol=0), (g, w)
    assert got[0][0] == 2.5  # SecFxp + 1 adds 1.0, not 2^-16


# -- input and output -----------------------------------------------------------------
@pytest.mark.parametrize("scheme,n", CASES)
def test_input_costs_core_input_plus_one_type_word(scheme, n):
    V = np.arange(6, dtype=np.float64).reshape(2, 3)

    async def job(s):
        x, dx = await cost(s, lambda: s.input(V if s.pid == 1 else None, 1))
        e = s.domain.elem_bytes
        raw, dr = await cost(s, lambda: core.input(s, s.domain.from_int(np.zeros((2, 3), dtype=np.int64)) if s.pid == 1 else None, 1))
        return x.shape, type(x).__name__, dx, dr, e

    for pid, (shape, kind, dx, dr, e) in enumerate(mpc.run_local(n, job, scheme=scheme, seed=5).results):
        assert shape == (2, 3) and kind == "SecFxp"
        assert dx.rounds == dr.rounds == 1
        if pid == 1:
            assert dx.bytes_sent == dr.bytes_sent + (n - 1) * 8 == (n - 1) * (8 + 16 + 6 * e)
            assert dx.bytes_sent == costs.typed_input(6, n, e, ndim=2).bytes_per_party
            assert dx.messages_sent == dr.messages_sent + (n - 1)
        else:
            assert dx.bytes_sent == dr.bytes_sent == 0
            assert dx.bytes_received == dr.bytes_received + 8


def test_reveal_costs_open_and_reveal_to():
    async def job(s):
        x = await s.input(np.array([1.25, -3.5]) if s.pid == 0 else None, 0)
        i = await s.input(7 if s.pid == 2 else None, 2)
        v, dv = await cost(s, x.reveal)
        _, do = await cost(s, lambda: core.open(s, x.share))
        w, dw = await cost(s, lambda: i.reveal_to(1))
        _, dt = await cost(s, lambda: core.reveal_to(s, i.share, 1))
        same_cost(dv, do)
        same_cost(dw, dt)
        return v, w

    res = mpc.run_local(3, job, seed=6).results
    assert all(list(v) == [1.25, -3.5] for v, _ in res)
    assert [w for _, w in res] == [None, 7, None] and type(res[1][1]) is int


def test_input_types_from_dtypes_and_pandas():
    pd = pytest.importorskip("pandas")

    async def job(s):
        vals = {0: pd.Series([1.5, 2.5]), 1: pd.DataFrame({"a": [1, 2], "b": [3, 4]}), 2: True}
        xs = await s.input(vals[s.pid], range(3))
        small = await s.input(np.float32(0.5) if s.pid == 0 else None, 0, f=8)
        revealed = [await x.reveal() for x in xs]
        return [type(x).__name__ for x in xs], [x.shape for x in xs], small.f, revealed

    kinds, shapes, f, vals = mpc.run_local(3, job, seed=7).results[2]
    assert kinds == ["SecFxp", "SecInt", "SecInt"] and shapes == [(2,), (2, 2), ()] and f == 8
    assert list(vals[0]) == [1.5, 2.5] and vals[1].tolist() == [[1, 3], [2, 4]] and vals[2] == 1


# -- type rules -----------------------------------------------------------------------
def test_type_rules_and_pending():
    async def job(s):
        x = await s.input(X if s.pid == 0 else None, 0)
        i = await s.input(K if s.pid == 0 else None, 0)
        y8 = await s.input(Y if s.pid == 1 else None, 1, f=8)
        assert isinstance(i + x, SecFxp) and isinstance(i + 1, SecInt) and isinstance(i + 0.5, SecFxp)
        assert isinstance(i * 2.0, SecInt)  # an integral real stays an integer product
        with pytest.raises(TypeError, match="fractional bits"):
            x + y8
        pending = x * x
        assert isinstance(pending, Pending)
        with pytest.raises(TypeError, match="await it first"):
            pending + 1
        with pytest.raises(TypeError, match="await it first"):
            x + pending
        with pytest.raises(TypeError, match="truth value"):
            bool(x)
        with pytest.raises(TypeError, match="await it first"):
            if x < 1:  # noqa: SIM114
                pass
        with pytest.raises(TypeError):
            x + "1"
        with pytest.raises(ZeroDivisionError):
            x / 0
        with pytest.raises(TypeError, match="SecInt bits"):
            where(x, x, i)
        before = s.stats.copy()
        z1 = await pending
        mid = s.stats.copy()
        z2 = await pending  # awaited once only
        assert z1 is z2 and s.stats.as_dict() == mid.as_dict() != before.as_dict()
        assert (await x) is x  # a computed value awaits to itself
        b = await (i > 0)
        assert isinstance(b, SecInt)
        w = await where(b, 1.5, i)  # public real and SecInt -> SecFxp
        return await w.reveal(), await (x + 1).reveal()

    w, x1 = mpc.run_local(3, job, seed=8).results[0]
    assert list(w) == list(np.where(K > 0, 1.5, K)) and list(x1) == list(X + 1)


def test_shape_mismatch():
    async def job(s):
        x = await s.input(np.ones(3) if s.pid == 0 else None, 0)
        y = await s.input(np.ones(2) if s.pid == 0 else None, 0)
        return await (x * y)

    with pytest.raises(ShapeMismatch) as ei:
        mpc.run_local(3, job)
    assert all(isinstance(e, ShapeMismatch) for e in ei.value.party_errors)


def test_mixing_sessions():
    kept = {}

    async def first(s):
        kept[s.pid] = await s.input(1.0 if s.pid == 0 else None, 0)

    async def second(s):
        x = await s.input(2.0 if s.pid == 0 else None, 0)
        return x + kept[s.pid]

    mpc.run_local(3, first)
    with pytest.raises(SessionMismatch) as ei:
        mpc.run_local(3, second)
    assert all(isinstance(e, SessionMismatch) for e in ei.value.party_errors)


@pytest.mark.parametrize("bad,err", [
    ("abc", DomainError), (np.array([1 + 2j]), DomainError), (None, DomainError),
    (np.array([np.nan]), InputRangeError), (np.array([1e30]), InputRangeError),
    (np.array([2**64 - 1], dtype=np.uint64), InputRangeError),
])
def test_bad_inputs_are_typed_errors(bad, err):
    async def job(s):
        return await s.input(bad if s.pid == 0 else None, 0)

    with pytest.raises(err):
        mpc.run_local(3, job, timeout=5)


def test_non_owner_value_and_bad_owner():
    async def extra(s):
        return await s.input(1.0, 0)  # party 1 and 2 pass a value for party 0's input

    with pytest.raises(DomainError, match="passed a value"):
        mpc.run_local(3, extra, timeout=5)

    async def nobody(s):
        return await s.input(1.0, 3)

    with pytest.raises(PartyIndexError):
        mpc.run_local(3, nobody, timeout=5)

    async def outsider(s):
        return await s.input(1.0, [0, 1])  # party 2 is no owner but passes a value

    with pytest.raises(DomainError, match="not among the owners"):
        mpc.run_local(3, outsider, timeout=5)

    async def two_of_three(s):
        xs = await s.input(float(s.pid) if s.pid < 2 else None, [0, 1])
        return [await x.reveal() for x in xs]

    assert mpc.run_local(3, two_of_three).results == [[0.0, 1.0]] * 3


def test_integers_beyond_a_small_field_are_refused():
    from protocols.arith.field import Mersenne61

    async def job(s):
        return await s.input(np.array([2**61]) if s.pid == 0 else None, 0)

    with pytest.raises(InputRangeError):
        mpc.run_local(3, job, scheme="shamir", domain=Mersenne61(), timeout=5)


def test_malformed_type_word_is_a_frame_error():
    from network.errors import FrameError

    async def job(s):
        if s.pid == 0:
            tag = s.tag("input.type")
            for j in s.peers:
                await s.channel.send(j, tag, np.array([7], dtype=np.uint64))
            return None
        return await s.input(None, 0)

    with pytest.raises(FrameError):
        mpc.run_local(3, job, timeout=5)


def test_shamir_fixed_point_without_choosing_a_domain():
    async def job(s):
        x = await s.input(np.array([1.5, -2.0]) if s.pid == 0 else None, 0)
        return await (await (x * x)).reveal(), s.domain.name

    (v, dom), *_ = mpc.run_local(3, job, scheme="shamir").results
    assert dom == "GF(2^127-1)" and np.allclose(v, [2.25, 4.0], atol=2 * RES)


# -- transports and preprocessing sources ------------------------------------------------
@pytest.fixture(params=["tcp", pytest.param("mqtt", marks=pytest.mark.mqtt)])
def transport(request):
    if request.param == "mqtt":
        request.getfixturevalue("mqtt_broker")
    return request.param


async def _salary_job(s):
    xs = await s.input(SALARIES[s.pid], range(s.n))
    return await (sum(xs) / s.n).reveal(), await (xs[0] > xs[1]).reveal()


@pytest.mark.parametrize("scheme", ["additive", "shamir"])
def test_salary_over_real_transports(transport, scheme):
    for mean, richer in mpc.run_local(3, _salary_job, scheme=scheme, transport=transport,
                                      timeout=20).results:
        assert abs(mean - np.mean(SALARIES[:3])) < 1e-3 and richer == 0


@pytest.mark.parametrize("scheme,n,source", [("additive", 2, "ot"), ("shamir", 3, "dn07")])
def test_salary_with_dealer_free_preprocessing(scheme, n, source, no_trusted_dealer):
    for mean, richer in mpc.run_local(n, _salary_job, scheme=scheme, preprocessing=source).results:
        assert abs(mean - np.mean(SALARIES[:n])) < 1e-3 and richer == 0


# -- more operators -----------------------------------------------------------------------
def test_secret_divisors_public_numerators_and_pending_reveals():
    async def job(s):
        i = await s.input(np.array([7, -9, 40]) if s.pid == 0 else None, 0)
        j = await s.input(np.array([2, 3, 8]) if s.pid == 1 else None, 1)
        x = await s.input(np.array([0.5, 4.0, 10.0]) if s.pid == 2 else None, 2)
        q = await (i / j)  # both promoted; reciprocal of j, then an exact int * fxp product
        assert isinstance(q, SecFxp)
        r1 = await (1 / x).reveal()  # public integer numerator: local after the reciprocal
        r2 = await (2.5 / x).reveal()  # real numerator: fixed.mul_public after it
        only = await (x * x).reveal_to(2)
        positive = await (i > 0)
        before = s.stats.copy()
        both_public = await where(positive, 1, 2)  # select of two publics: local
        assert s.stats.as_dict() == before.as_dict()
        return await q.reveal(), r1, r2, only, await both_public.reveal()

    res = mpc.run_local(3, job, scheme="shamir", seed=9).results
    q, r1, r2, only, bp = res[2]
    assert np.allclose(q, [3.5, -3.0, 5.0], atol=1e-3)
    assert np.allclose(r1, [2.0, 0.25, 0.1], atol=1e-3) and np.allclose(r2, [5.0, 0.625, 0.25], atol=1e-3)
    assert np.allclose(only, [0.25, 16.0, 100.0], atol=1e-3) and res[0][3] is None
    assert list(bp) == [1, 2, 1]


def test_matmul_shape_mismatch_and_iteration():
    async def job(s):
        a = await s.input(np.ones((2, 3)) if s.pid == 0 else None, 0)
        assert [r.shape for r in a] == [(3,), (3,)] and len(a) == 2 and a.T.shape == (3, 2)
        with pytest.raises(ShapeMismatch):
            a @ np.ones((2, 2))
        with pytest.raises(ShapeMismatch):
            await (a @ a)
        with pytest.raises(TypeError, match="secret index"):
            a[await (a[0, 0] > 0)]
        return True

    assert mpc.run_local(2, job).results == [True, True]
