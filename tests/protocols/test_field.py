"""Property tests of the GF(p) domains against Python big integers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.arith.field import (
    M61,
    M127,
    GmpyField,
    Mersenne61,
    Mersenne127,
    field_for,
)
from protocols.errors import ConfigError, DomainError, ShapeMismatch
from protocols.prg import CryptoRNG

P256 = 2**256 - 189  # the largest 256-bit prime
P127_OTHER = 2**127 - 735  # a 127-bit prime that is not Mersenne

FIELDS = {
    "m61": Mersenne61(),
    "m127": Mersenne127(),
    "gmpy127": GmpyField(P127_OTHER),
    "gmpy256": GmpyField(P256),
}
FAST = ("m61", "m127")

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def elem(p: int):
    """Field elements with the edges over-represented: 0, 1, p-1, near 2^k, random."""
    edges = [0, 1, 2, p - 1, p - 2, p // 2, (p + 1) // 2, (1 << (p.bit_length() - 1)) - 1]
    return st.one_of(st.sampled_from(edges), st.integers(0, p - 1))


def vec(p: int, min_size=0, max_size=40):
    return st.lists(elem(p), min_size=min_size, max_size=max_size)


def arr(f, values) -> np.ndarray:
    return f.from_int(np.array(values, dtype=object))


def ints(f, x) -> list[int]:
    return [int(v) for v in f.to_int(x).reshape(-1)]


@pytest.fixture(params=list(FIELDS))
def field(request):
    return FIELDS[request.param]


# -- elementwise ops ------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FIELDS))
@SETTINGS
@given(data=st.data())
def test_elementwise_ops_match_big_ints(name, data):
    f = FIELDS[name]
    p = f.modulus
    a = data.draw(vec(p))
    b = data.draw(st.lists(elem(p), min_size=len(a), max_size=len(a)))
    x, y = arr(f, a), arr(f, b)
    assert ints(f, f.mul(x, y)) == [u * v % p for u, v in zip(a, b, strict=True)]
    assert ints(f, f.add(x, y)) == [(u + v) % p for u, v in zip(a, b, strict=True)]
    assert ints(f, f.sub(x, y)) == [(u - v) % p for u, v in zip(a, b, strict=True)]
    assert ints(f, f.neg(x)) == [-u % p for u in a]
    # inputs untouched
    assert ints(f, x) == a and ints(f, y) == b


@pytest.mark.parametrize("name", FAST)
def test_mul_large_blocked_with_edges(name):
    """More than one block (tail included), edge values everywhere, out= aliasing an input."""
    f = FIELDS[name]
    p = f.modulus
    rng = CryptoRNG.from_seed(7, name)
    n = f.block * 2 + 37
    x = f.random(rng, (n,))
    y = f.random(rng, (n,))
    edges = f.from_int(np.array([0, 1, p - 1, p - 2, p // 2, 2**60, 2**61 - 2], dtype=object))
    x[: edges.size] = edges
    y[: edges.size] = edges[::-1]
    y[-edges.size :] = edges
    xi, yi = f.to_int(x), f.to_int(y)
    want = (xi * yi) % p
    got = f.mul(x, y)
    assert (f.to_int(got) == want).all()
    f.mul(x, y, out=x)  # in place
    assert (f.to_int(x) == want).all()


def test_all_pairs_of_edges(field):
    p = field.modulus
    edges = [0, 1, 2, 3, p - 1, p - 2, p - 3, p // 2, p // 2 + 1, (1 << 32) - 1, 1 << 32, (1 << 31) + 5]
    if p > 1 << 64:
        edges += [(1 << 64) - 1, 1 << 64, (1 << 63) + 1, (1 << 126) + 3]
    pairs = [(u, v) for u in edges for v in edges]
    x = arr(field, [u for u, _ in pairs])
    y = arr(field, [v for _, v in pairs])
    assert ints(field, field.mul(x, y)) == [u * v % p for u, v in pairs]
    assert ints(field, field.add(x, y)) == [(u + v) % p for u, v in pairs]
    assert ints(field, field.sub(x, y)) == [(u - v) % p for u, v in pairs]


def test_broadcasting_scalars_and_out(field):
    p = field.modulus
    x = arr(field, [[1, 2, 3], [p - 1, 0, 5]])
    c = field.from_int(p - 2)  # 0-d
    assert c.shape == ()
    assert ints(field, field.mul(x, c)) == [v * (p - 2) % p for v in ints(field, x)]
    assert ints(field, field.mul(c, c)) == [(p - 2) ** 2 % p]
    assert field.mul(c, c).shape == ()
    row = arr(field, [7, 8, 9])
    assert ints(field, field.add(x, row)) == [(u + v) % p for u, v in zip(ints(field, x), [7, 8, 9] * 2, strict=True)]
    out = field.zeros((2, 3))
    res = field.sub(x, row, out=out)
    assert res is out
    assert ints(field, out) == [(u - v) % p for u, v in zip(ints(field, x), [7, 8, 9] * 2, strict=True)]
    with pytest.raises(ShapeMismatch):
        field.mul(x, arr(field, [1, 2]))


def test_wrong_dtype_rejected():
    with pytest.raises(DomainError):
        Mersenne61().mul(np.arange(3, dtype=np.int64), np.arange(3, dtype=np.int64))
    with pytest.raises(DomainError):
        Mersenne127().add(np.zeros(3, np.uint64), np.zeros(3, np.uint64))
    with pytest.raises(DomainError):
        GmpyField(101).mul(np.zeros(3, np.uint64), np.zeros(3, np.uint64))


# -- matmul and sum ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FIELDS))
@SETTINGS
@given(data=st.data())
def test_matmul_matches_big_ints(name, data):
    f = FIELDS[name]
    p = f.modulus
    m, k, n = (data.draw(st.integers(1, 5)) for _ in range(3))
    a = np.array(data.draw(st.lists(elem(p), min_size=m * k, max_size=m * k)), dtype=object).reshape(m, k)
    b = np.array(data.draw(st.lists(elem(p), min_size=k * n, max_size=k * n)), dtype=object).reshape(k, n)
    got = f.matmul(f.from_int(a), f.from_int(b))
    assert got.shape == (m, n)
    assert ints(f, got) == [int(v) % p for v in a.dot(b).reshape(-1)]


def test_matmul_shapes_and_long_inner_dim(field):
    p = field.modulus
    rng = CryptoRNG.from_seed(3)
    k = 150 if field.modulus > 1 << 128 else 5000  # > one chunk for the fast fields
    if isinstance(field, GmpyField):
        k = 70
    x = field.random(rng, (3, k))
    y = field.random(rng, (k, 2))
    v = field.random(rng, (k,))
    xi, yi, vi = field.to_int(x), field.to_int(y), field.to_int(v)
    assert ints(field, field.matmul(x, y)) == [int(t) % p for t in xi.dot(yi).reshape(-1)]
    mv = field.matmul(x, v)
    assert mv.shape == (3,) and ints(field, mv) == [int(t) % p for t in xi.dot(vi)]
    vm = field.matmul(v, y)
    assert vm.shape == (2,) and ints(field, vm) == [int(t) % p for t in vi.dot(yi)]
    vv = field.matmul(v, v)
    assert vv.shape == () and ints(field, vv) == [int(vi.dot(vi)) % p]
    batch = field.random(rng, (2, 3, 4))
    bi = field.to_int(batch)
    got = field.matmul(batch, y[:4])
    want = [int(t) % p for t in np.stack([bi[i].dot(yi[:4]) for i in range(2)]).reshape(-1)]
    assert got.shape == (2, 3, 2) and ints(field, got) == want
    with pytest.raises(ShapeMismatch):
        field.matmul(x, x)
    with pytest.raises(ShapeMismatch):
        field.matmul(field.from_int(1), x)


def test_m61_matmul_all_max_values():
    """Worst case for limb sums: every entry p-1, inner dimension over one chunk."""
    f = FIELDS["m61"]
    p = f.modulus
    k = f.matmul_chunk + 3
    x = f.from_int(np.full((2, k), p - 1, dtype=object))
    y = f.from_int(np.full((k, 2), p - 1, dtype=object))
    assert ints(f, f.matmul(x, y)) == [k * (p - 1) ** 2 % p] * 4


def test_m127_matmul_all_max_values():
    f = FIELDS["m127"]
    p = f.modulus
    k = f.matmul_chunk * 2 + 1
    x = f.from_int(np.full((2, k), p - 1, dtype=object))
    y = f.from_int(np.full((k, 3), p - 1, dtype=object))
    assert ints(f, f.matmul(x, y)) == [k * (p - 1) ** 2 % p] * 6


@pytest.mark.parametrize("name", list(FIELDS))
@SETTINGS
@given(data=st.data())
def test_sum_matches_big_ints(name, data):
    f = FIELDS[name]
    p = f.modulus
    a = data.draw(vec(p, max_size=60))
    x = arr(f, a)
    s = f.sum(x)
    assert s.shape == () and ints(f, s) == [sum(a) % p]


def test_sum_long_and_axes(field):
    p = field.modulus
    n = 100_000 if field.modulus < 1 << 128 and not isinstance(field, GmpyField) else 3000
    x = field.from_int(np.full(n, p - 1, dtype=object))
    assert ints(field, field.sum(x)) == [n * (p - 1) % p]
    rng = CryptoRNG.from_seed(5)
    y = field.random(rng, (3, 4, 5))
    yi = field.to_int(y)
    for axis in (0, 1, 2, -1, (0, 2)):
        want = np.sum(yi, axis=axis) % p
        got = field.sum(y, axis=axis)
        assert got.shape == want.shape
        assert ints(field, got) == [int(v) for v in np.asarray(want).reshape(-1)]
    assert ints(field, field.sum(field.zeros((0,)))) == [0]


# -- inversion and powers ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FIELDS))
@SETTINGS
@given(data=st.data())
def test_inv_and_batch_inv(name, data):
    f = FIELDS[name]
    p = f.modulus
    a = data.draw(st.lists(elem(p).filter(bool), min_size=1, max_size=33))
    x = arr(f, a)
    want = [pow(v, -1, p) for v in a]
    assert ints(f, f.inv(x)) == want
    assert ints(f, f.batch_inv(x)) == want
    assert ints(f, f.mul(x, f.batch_inv(x))) == [1] * len(a)


def test_batch_inv_shapes_and_zero(field):
    p = field.modulus
    x = arr(field, [[1, 2, 3], [p - 1, 5, 6]])
    inv = field.batch_inv(x)
    assert inv.shape == (2, 3)
    assert ints(field, inv) == [pow(v, -1, p) for v in [1, 2, 3, p - 1, 5, 6]]
    s = field.from_int(7)
    assert ints(field, field.inv(s)) == [pow(7, -1, p)] and field.inv(s).shape == ()
    assert field.batch_inv(field.zeros((0,))).shape == (0,)
    with pytest.raises(DomainError):
        field.batch_inv(arr(field, [1, 0, 2]))
    with pytest.raises(DomainError):
        field.inv(field.from_int(0))


@pytest.mark.parametrize("name", FAST)
def test_batch_inv_large(name):
    f = FIELDS[name]
    rng = CryptoRNG.from_seed(11, name)
    x = f.random(rng, (1001,))
    x[x == f.zeros(())] = f.from_int(1) if name == "m61" else x[0]
    if f._has_zero(x):
        x = f.add(x, f.from_int(1))
    if f._has_zero(x):
        pytest.skip("random zero twice")
    assert ints(f, f.mul(x, f.batch_inv(x))) == [1] * 1001


def test_pow(field):
    p = field.modulus
    a = [0, 1, 2, p - 1, 12345]
    x = arr(field, a)
    for e in (0, 1, 2, 5, 65537, p - 2, p - 1):
        assert ints(field, field.pow(x, e)) == [pow(v, e, p) for v in a]
    nz = arr(field, [1, 2, p - 1])
    assert ints(field, field.pow(nz, -3)) == [pow(v, -3, p) for v in [1, 2, p - 1]]


# -- conversion, randomness, wire ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(FIELDS))
@SETTINGS
@given(vals=st.lists(st.integers(-(2**300), 2**300), max_size=20))
def test_from_int_any_python_int(name, vals):
    f = FIELDS[name]
    p = f.modulus
    assert ints(f, f.from_int(np.array(vals, dtype=object))) == [v % p for v in vals]
    assert ints(f, f.from_int(vals)) == [v % p for v in vals]


@pytest.mark.parametrize("name", list(FIELDS))
@SETTINGS
@given(vals=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=20))
def test_from_int_int64(name, vals):
    f = FIELDS[name]
    p = f.modulus
    got = f.from_int(np.array(vals, dtype=np.int64))
    assert got.dtype == f.dtype
    assert ints(f, got) == [v % p for v in vals]


def test_from_int_scalars_and_signed(field):
    p = field.modulus
    for v in (0, -1, 5, p, p + 3, -p - 1, np.int64(-7), np.uint64(2**64 - 1)):
        x = field.from_int(v)
        assert x.shape == () and ints(field, x) == [int(v) % p]
    u = field.from_int(np.array([2**64 - 1, 0], dtype=np.uint64))
    assert ints(field, u) == [(2**64 - 1) % p, 0]
    assert list(field.to_signed(arr(field, [-3, 4, p // 2, p // 2 + 1]))) == [-3, 4, p // 2, -(p // 2)]
    with pytest.raises(DomainError):
        field.from_int(np.array([1.5]))


def test_random_in_range_and_reproducible(field):
    x = field.random(CryptoRNG.from_seed(1), (200,))
    y = field.random(CryptoRNG.from_seed(1), (200,))
    assert x.shape == (200,) and x.dtype == field.dtype
    xi = ints(field, x)
    assert xi == ints(field, y)
    assert all(0 <= v < field.modulus for v in xi)
    assert len(set(xi)) > 190
    assert field.random(CryptoRNG.from_seed(2), 3).shape == (3,)


def test_random_small_field_uniform():
    """Exhaustive-size field: every value appears, frequencies near uniform (chi-square)."""
    f = GmpyField(13)
    counts = np.bincount(np.array(ints(f, f.random(CryptoRNG.from_seed(9), (13_000,)))), minlength=13)
    chi2 = float(((counts - 1000) ** 2 / 1000).sum())
    assert chi2 < 40  # 12 dof: P(chi2 > 40) ~ 7e-5
    # power check: an off-by-one bound (never p - 1) fails the same test
    broken = np.bincount(CryptoRNG.from_seed(9).below(12, 13_000).astype(np.int64), minlength=13)
    assert float(((broken - 1000) ** 2 / 1000).sum()) > 40


@pytest.mark.parametrize("name", list(FIELDS))
@SETTINGS
@given(data=st.data())
def test_wire_round_trip(name, data):
    f = FIELDS[name]
    shape = data.draw(st.sampled_from([(), (0,), (5,), (2, 3)]))
    n = int(np.prod(shape))
    vals = data.draw(st.lists(elem(f.modulus), min_size=n, max_size=n))
    x = f.from_int(np.array(vals, dtype=object).reshape(shape))
    w = f.to_wire(x)
    assert w.dtype == f.wire_dtype and w.shape == f.wire_shape(shape) and w.flags.c_contiguous
    assert w.nbytes == n * f.elem_bytes
    back = f.from_wire(w.copy(), shape)
    assert back.shape == shape and ints(f, back) == vals
    flat = f.from_wire(w.reshape(-1).copy(), shape)  # a flat buffer of the right length
    assert ints(f, flat) == vals


def _non_canonical_wire(f, values: list[int]) -> np.ndarray:
    """Wire encoding of raw integers (possibly >= p), built without the field."""
    if isinstance(f, Mersenne61):
        return np.array(values, dtype=np.uint64)
    if isinstance(f, Mersenne127):
        return np.array([[v & (2**64 - 1), v >> 64] for v in values], dtype=np.uint64)
    nb = f.elem_bytes
    return np.frombuffer(b"".join(v.to_bytes(nb, "little") for v in values), dtype=np.uint8).reshape(len(values), nb)


def test_from_wire_rejects_non_canonical(field):
    p = field.modulus
    top = (1 << (8 * field.elem_bytes)) - 1 if not isinstance(field, Mersenne127) else 2**128 - 1
    for bad in (p, p + 1, top):
        w = _non_canonical_wire(field, [1, bad, 2])
        with pytest.raises(DomainError):
            field.from_wire(w, (3,))
    ok = _non_canonical_wire(field, [0, p - 1, 2])
    assert ints(field, field.from_wire(ok, (3,))) == [0, p - 1, 2]


def test_from_wire_rejects_wrong_shape_and_dtype(field):
    w = field.to_wire(field.zeros((2, 3)))
    with pytest.raises(ShapeMismatch):
        field.from_wire(w, (3, 3))
    with pytest.raises(ShapeMismatch):
        field.from_wire(w[:-1].copy(), (2, 3))
    with pytest.raises(ShapeMismatch):
        field.from_wire(w.astype(np.float64), (2, 3))


def test_check_rejects_non_canonical():
    f = Mersenne61()
    with pytest.raises(DomainError):
        f.check(np.array([M61], dtype=np.uint64))
    g = Mersenne127()
    bad = np.zeros(1, dtype=g.dtype)
    bad["lo"], bad["hi"] = 2**64 - 1, 2**63 - 1
    with pytest.raises(DomainError):
        g.check(bad)
    h = GmpyField(101)
    with pytest.raises(DomainError):
        h.check(np.array([101], dtype=object))
    assert f.check(f.from_int([1, 2])) is not None


# -- construction -----------------------------------------------------------------------------


def test_field_for_and_names():
    assert isinstance(field_for(M61), Mersenne61)
    assert isinstance(field_for(M127), Mersenne127)
    g = field_for(P256)
    assert isinstance(g, GmpyField) and g.modulus == P256 and g.elem_bytes == 32
    assert field_for(M61) == Mersenne61() and hash(field_for(M61)) == hash(Mersenne61())
    assert field_for(M61) != field_for(M127)
    assert all(f.is_field for f in FIELDS.values())
    assert Mersenne127().wire_shape((4,)) == (4, 2)
    assert GmpyField(P127_OTHER).wire_shape((4,)) == (4, 16)


@pytest.mark.parametrize("bad", [0, 1, 2, 4, 15, 2**61, 2**127 - 3, -7, 561])
def test_non_prime_rejected(bad):
    with pytest.raises(ConfigError):
        GmpyField(bad)
    with pytest.raises(ConfigError):
        field_for(bad)
