"""Beaver mul, square and matmul for both schemes: results, exact rounds and bytes."""

import numpy as np
import pytest

import mpc
from mpc.local import default_domain
from protocols import beaver, core
from protocols.errors import ConfigError, ShapeMismatch

CASES = [("additive", 2), ("additive", 3), ("additive", 5), ("shamir", 3), ("shamir", 5)]


def _ints(rng, shape):
    return rng.integers(-(2**20), 2**20, size=shape)


def run(scheme, n, job, **kw):
    return mpc.run_local(n, job, scheme=scheme, seed=11, **kw)


def signed(dom, v):
    return np.array(dom.to_signed(v), dtype=object)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scheme,n", CASES)
@pytest.mark.parametrize("op", ["mul", "square", "matmul"])
def test_products_exact_with_counts(scheme, n, op):
    g = np.random.default_rng(5)  # plaintext test data only
    if op == "matmul":
        X, Y = _ints(g, (6, 4)), _ints(g, (4, 3))
        expected = X.astype(object) @ Y.astype(object)
        opened_elems = X.size + Y.size
    else:
        X, Y = _ints(g, (3, 5)), _ints(g, (3, 5))
        expected = X.astype(object) * (X if op == "square" else Y).astype(object)
        opened_elems = X.size * (1 if op == "square" else 2)

    async def job(s):
        x = await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
        y = await core.input(s, s.domain.from_int(Y) if s.pid == n - 1 else None, n - 1)
        before = s.stats.copy()
        if op == "mul":
            z = await beaver.mul(s, x, y)
        elif op == "square":
            z = await beaver.square(s, x)
        else:
            z = await beaver.matmul(s, x, y)
        delta = s.stats - before
        (out,) = await core.open(s, z)
        return signed(s.domain, out), delta

    res = run(scheme, n, job)
    e = default_domain(scheme).elem_bytes  # 8 on Z_2^64, 16 on GF(2^127 - 1)
    for value, delta in res.results:
        assert (value == expected).all()
        assert delta.rounds == 1
        assert delta.bytes_sent == (n - 1) * opened_elems * e
        assert delta.bytes_received == (n - 1) * opened_elems * e
        assert delta.messages_sent == n - 1  # d and e (small) packed into one message per peer


@pytest.mark.parametrize("scheme,n", CASES)
def test_linear_ops_and_public_constants(scheme, n):
    async def job(s):
        x = await core.input(s, s.domain.from_int(np.array([1, 2, 3])) if s.pid == 0 else None, 0)
        y = await core.input(s, s.domain.from_int(np.array([10, 20, 30])) if s.pid == 1 else None, 1)
        z = (x * 3 - y + 5) * 2
        w = 100 - x
        total = z.sum()
        (a, b, c) = await core.open(s, z, w, total)
        return signed(s.domain, a), signed(s.domain, b), signed(s.domain, c)

    a, b, c = run(scheme, n, job).results[1]
    assert list(a) == [-4, -18, -32] and list(b) == [99, 98, 97] and c == -54


def test_shamir_needs_honest_majority():
    with pytest.raises(ConfigError):
        mpc.run_local(2, lambda s: None, scheme="shamir")
    with pytest.raises(ConfigError):
        mpc.run_local(4, lambda s: None, scheme="shamir", threshold=2)


def test_mul_shape_mismatch_raises_on_every_party():
    async def job(s):
        x = await core.input(s, s.domain.from_int(np.zeros(3, dtype=np.int64)) if s.pid == 0 else None, 0)
        y = await core.input(s, s.domain.from_int(np.zeros(4, dtype=np.int64)) if s.pid == 0 else None, 0)
        return await beaver.mul(s, x, y)

    with pytest.raises(ShapeMismatch) as ei:
        mpc.run_local(3, job)
    assert all(isinstance(e, ShapeMismatch) for e in ei.value.party_errors)


def test_matmul_communication_is_linear_in_operands():
    k, d, m = 200, 30, 4

    async def job(s):
        x = await core.input(s, s.domain.from_int(np.ones((k, d), dtype=np.int64)) if s.pid == 0 else None, 0)
        y = await core.input(s, s.domain.from_int(np.ones((d, m), dtype=np.int64)) if s.pid == 1 else None, 1)
        before = s.stats.copy()
        z = await beaver.matmul(s, x, y)
        (out,) = await core.open(s, z)
        return out, s.stats - before

    out, delta = mpc.run_local(3, job).results[0]
    assert (out == d).all()
    # the product itself: (n-1)(kd + dm) * 8; the open of the (k x m) result: (n-1) k m * 8
    assert delta.bytes_sent == 2 * (k * d + d * m) * 8 + 2 * k * m * 8


@pytest.fixture(params=["memory", "tcp", pytest.param("mqtt", marks=pytest.mark.mqtt)])
def transport(request):
    if request.param == "mqtt":
        request.getfixturevalue("mqtt_broker")
    return request.param


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scheme", ["additive", "shamir"])
def test_mul_and_matmul_over_every_transport(transport, scheme):
    g = np.random.default_rng(9)
    X, Y, M = _ints(g, (4, 3)), _ints(g, (4, 3)), _ints(g, (3, 2))

    async def job(s):
        x = await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
        y = await core.input(s, s.domain.from_int(Y) if s.pid == 1 else None, 1)
        m = await core.input(s, s.domain.from_int(M) if s.pid == 2 else None, 2)
        before = s.stats.copy()
        z = await beaver.mul(s, x, y)
        w = await beaver.matmul(s, x, m)
        delta = s.stats - before
        return [signed(s.domain, v) for v in await core.open(s, z, w)], delta

    res = mpc.run_local(3, job, scheme=scheme, transport=transport, timeout=20)
    for (z, w), delta in res.results:
        assert (z == X.astype(object) * Y.astype(object)).all()
        assert (w == X.astype(object) @ M.astype(object)).all()
        assert delta.rounds == 2
        e = default_domain(scheme).elem_bytes
        assert delta.bytes_sent == 2 * (2 * X.size + X.size + M.size) * e


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "scheme,n,source",
    [("additive", 3, "dealer"), ("additive", 2, "ot"), ("shamir", 3, "dn07"), ("shamir", 5, "dn07")],
)
def test_products_with_every_preprocessing_source(scheme, n, source):
    g = np.random.default_rng(2)
    X, Y, M = _ints(g, (5, 3)), _ints(g, (5, 3)), _ints(g, (3, 2))

    async def job(s):
        x = await core.input(s, s.domain.from_int(X) if s.pid == 0 else None, 0)
        y = await core.input(s, s.domain.from_int(Y) if s.pid == 1 else None, 1)
        m = await core.input(s, s.domain.from_int(M) if s.pid == 0 else None, 0)
        z, q, w = await beaver.mul(s, x, y), await beaver.square(s, x), await beaver.matmul(s, x, m)
        return [signed(s.domain, v) for v in await core.open(s, z, q, w)]

    res = mpc.run_local(n, job, scheme=scheme, preprocessing=source, timeout=30)
    for z, q, w in res.results:
        assert (z == X.astype(object) * Y.astype(object)).all()
        assert (q == X.astype(object) ** 2).all()
        assert (w == X.astype(object) @ M.astype(object)).all()


def test_source_and_scheme_must_fit():
    with pytest.raises(ConfigError):
        mpc.run_local(3, lambda s: None, scheme="additive", preprocessing="dn07")
    with pytest.raises(ConfigError):
        mpc.run_local(3, lambda s: None, scheme="shamir", preprocessing="ot")
    with pytest.raises(ConfigError):
        mpc.run_local(3, lambda s: None, preprocessing="nonsense")
