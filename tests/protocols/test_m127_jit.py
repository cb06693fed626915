"""GF(2^127-1): the compiled kernels (protocols.arith._m127_jit) against the numpy code and
Python integers mod p, on random and edge values, with out= aliasing and odd shapes."""

from __future__ import annotations

import random

import numpy as np
import pytest

from protocols.arith.mersenne127 import DT127, Mersenne127
from protocols.errors import DomainError
from protocols.sharing.shamir import ShamirScheme

pytest.importorskip("numba")

P = (1 << 127) - 1
EDGE = [
    0, 1, 2, 3, P - 1, P - 2, P - 3, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**64 + 1,
    2**126, 2**126 - 1, 2**127 - 2**64, (2**63 - 1) << 64, ((2**63 - 2) << 64) | (2**64 - 1),
    0x5555555555555555_5555555555555555 % P, 0x2AAAAAAAAAAAAAAA_AAAAAAAAAAAAAAAA,
]


def field(jit: bool) -> Mersenne127:
    F = Mersenne127()
    F.use_jit = jit
    return F


JIT, NP = field(True), field(False)


def words(a) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1).view(np.uint64)


def ints(F, a) -> list[int]:
    return [int(v) for v in F.to_int(a).reshape(-1)]


def elems(values, shape=None) -> np.ndarray:
    a = NP.from_int(np.array([v % P for v in values], dtype=object))
    return a if shape is None else a.reshape(shape)


@pytest.fixture(scope="module")
def xy():
    """Every pair of edge values, then random pairs."""
    rnd = random.Random(127)
    xs = [a for a in EDGE for _ in EDGE] + [rnd.randrange(P) for _ in range(3000)]
    ys = [b for _ in EDGE for b in EDGE] + [rnd.randrange(P) for _ in range(3000)]
    return xs, ys


def both(op, *args, **kw):
    """op on the compiled and the numpy field; asserts they agree exactly, returns ints."""
    r_jit = getattr(JIT, op)(*args, **kw)
    r_np = getattr(NP, op)(*args, **kw)
    assert r_jit.dtype == DT127 and r_jit.shape == r_np.shape
    assert np.array_equal(words(r_jit), words(r_np)), op
    JIT.check(r_jit)
    return ints(NP, r_jit)


@pytest.mark.parametrize(
    "op, f",
    [
        ("mul", lambda a, b: a * b),
        ("add", lambda a, b: a + b),
        ("sub", lambda a, b: a - b),
    ],
)
def test_binary_ops(xy, op, f):
    xs, ys = xy
    X, Y = elems(xs), elems(ys)
    assert both(op, X, Y) == [f(a, b) % P for a, b in zip(xs, ys, strict=True)]


def test_neg(xy):
    xs, _ = xy
    assert both("neg", elems(xs)) == [-a % P for a in xs]


@pytest.mark.parametrize("c", EDGE)
@pytest.mark.parametrize("op, f", [("mul", lambda a, b: a * b), ("add", lambda a, b: a + b),
                                    ("sub", lambda a, b: a - b)])
def test_constant_operand(xy, c, op, f):
    """A single element against an array (stride-0 path), on either side, 0-d or (1,)."""
    xs = xy[0][:500]
    X = elems(xs)
    C0, C1 = elems([c], ()), elems([c], (1,))
    assert both(op, X, C0) == [f(a, c) % P for a in xs]
    assert both(op, C1, X) == [f(c, a) % P for a in xs]


@pytest.mark.parametrize("npairs", [1, 2, 3, 4])
def test_muladd(xy, npairs):
    xs, ys = xy
    rnd = random.Random(npairs)
    cs = [rnd.randrange(P) for _ in xs]
    vals = [xs, ys, ys[::-1], xs[::-1], EDGE * (len(xs) // len(EDGE)) + xs[: len(xs) % len(EDGE)]]
    pairs = [(elems(vals[q]), elems(vals[(q + 1) % 5])) for q in range(npairs)]
    got = both("muladd", elems(cs), pairs)
    want = [(cs[i] + sum(vals[q][i] * vals[(q + 1) % 5][i] for q in range(npairs))) % P
            for i in range(len(xs))]
    assert got == want


def lagrange_like():
    """Coefficient lists of the kinds Shamir uses: Lagrange coefficients of small party sets
    (+-2^k: rotations, others: multiplications), powers of x for sharing, zeros, and sums of
    more than 4 terms."""
    return [
        [2, P - 1], [P - 1, 2], [1, 1], [1, 2], [1, 3], [3, P - 3, 1], [1, 4, 16],
        [0, 5], [0, 0], [2**63, P - 2**63], [2**64, 1], [P - 1], [7],
        [1, 2, 4, 8, P - 1], [3, 5, 7, 11, 13, 17], [1, 0, P - 2, 2**62, 9, 1, 1, P - 1, 2],
    ]


@pytest.mark.parametrize("coeffs", lagrange_like())
def test_lincomb(xy, coeffs):
    xs, ys = xy
    rnd = random.Random(len(coeffs))
    cols = [xs, ys] + [[rnd.randrange(P) for _ in xs] for _ in range(len(coeffs) - 2)]
    cols = cols[: len(coeffs)]
    got = both("lincomb", coeffs, [elems(c) for c in cols])
    assert got == [sum(c * col[i] for c, col in zip(coeffs, cols, strict=True)) % P for i in range(len(xs))]


@pytest.mark.parametrize("coeffs", lagrange_like())
def test_lincomb_checked(xy, coeffs):
    xs, ys = xy
    rnd = random.Random(len(coeffs))
    cols = ([xs, ys] + [[rnd.randrange(P) for _ in xs] for _ in range(len(coeffs))])[: len(coeffs)]
    arrays = [elems(c) for c in cols]
    checks_c = [list(reversed(coeffs)), [(c * 3) % P for c in coeffs]]
    expected = [NP.lincomb(c, arrays) for c in checks_c]
    for F in (JIT, NP):
        out, failed = F.lincomb_checked(coeffs, arrays, list(zip(checks_c, expected, strict=True)))
        assert failed is None
        assert ints(F, out) == ints(NP, NP.lincomb(coeffs, arrays))
        for bad in range(2):
            wrong = [e.copy() for e in expected]
            if wrong[bad].size:
                flat = wrong[bad].reshape(-1)
                flat[len(xs) // 2 : len(xs) // 2 + 1] = NP.add(flat[len(xs) // 2 : len(xs) // 2 + 1], NP.from_int(1))
                _, failed = F.lincomb_checked(coeffs, arrays, list(zip(checks_c, wrong, strict=True)))
                assert failed == bad


def test_shamir_reconstruct_both_paths():
    """3 parties, t = 1 (the fused reconstruct-and-check pass) and 5 parties, t = 2; a
    tampered share is caught on both paths."""
    from protocols.errors import ShareInconsistencyError
    from protocols.prg import CryptoRNG

    for n, t in ((3, 1), (5, 2)):
        for F in (JIT, NP):
            S = ShamirScheme(F, n, t)
            secret = elems(EDGE * 3, (3, len(EDGE)))
            shares = S.share(CryptoRNG(b"\x01" * 32), secret)
            got = S.reconstruct(dict(enumerate(shares)))
            assert ints(F, got) == ints(F, secret)
            bad = [s.copy() for s in shares]
            bad[n - 1][1, 2:3] = F.add(bad[n - 1][1, 2:3], F.from_int(1))
            with pytest.raises(ShareInconsistencyError):
                S.reconstruct(dict(enumerate(bad)))


@pytest.mark.parametrize("shape", [(), (0,), (5, 0), (1,), (7,), (3, 4), (2, 3, 5)])
def test_shapes(shape):
    rnd = random.Random(sum(shape) + len(shape))
    size = int(np.prod(shape, dtype=np.int64))
    xs = [rnd.choice(EDGE + [rnd.randrange(P)]) for _ in range(size)]
    ys = [rnd.choice(EDGE + [rnd.randrange(P)]) for _ in range(size)]
    X, Y = elems(xs, shape), elems(ys, shape)
    for op, f in (("mul", lambda a, b: a * b), ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b)):
        assert both(op, X, Y) == [f(a, b) % P for a, b in zip(xs, ys, strict=True)]
    assert both("neg", X) == [-a % P for a in xs]
    assert both("muladd", X, [(X, Y), (Y, Y)]) == [(a + a * b + b * b) % P for a, b in zip(xs, ys, strict=True)]
    assert both("lincomb", [2, P - 1], [X, Y]) == [(2 * a - b) % P for a, b in zip(xs, ys, strict=True)]
    assert both("lincomb", [3, 5], [X, Y]) == [(3 * a + 5 * b) % P for a, b in zip(xs, ys, strict=True)]
    w = JIT.to_wire(X)
    assert np.array_equal(words(JIT.from_wire(w, shape)), words(NP.from_wire(w, shape)))


def test_non_contiguous_inputs_and_outputs(xy):
    xs, ys = xy
    m = 40 * 30
    X, Y = elems(xs[:m], (40, 30)), elems(ys[:m], (40, 30))
    Xt, Ys = X.T, Y.T[:, ::2]  # transposed / strided views
    Yt = Y.T
    got = both("mul", Xt, Yt)
    assert got == [(a * b) % P for a, b in zip(ints(NP, Xt.copy()), ints(NP, Yt.copy()), strict=True)]
    both("add", Xt[:, :20], Ys)
    both("sub", Ys, Xt[:, :20])
    both("neg", Ys)
    both("muladd", Xt, [(Yt, Xt)])
    both("lincomb", [2, P - 1], [Xt, Yt])
    both("lincomb", [3, 1], [Ys, Xt[:, :20]])
    # non-contiguous out
    for F in (JIT, NP):
        buf = np.zeros((30, 80), dtype=DT127)
        out = buf[:, ::2]
        r = F.mul(Xt, Yt, out=out)
        assert r is out
        assert ints(F, out) == got
        assert not words(buf[:, 1::2]).any()


@pytest.mark.parametrize("op", ["mul", "add", "sub"])
def test_out_aliasing(xy, op):
    xs, ys = xy
    f = {"mul": lambda a, b: a * b, "add": lambda a, b: a + b, "sub": lambda a, b: a - b}[op]
    want = [f(a, b) % P for a, b in zip(xs, ys, strict=True)]
    for F in (JIT, NP):
        X, Y = elems(xs), elems(ys)
        assert getattr(F, op)(X, Y, out=X) is X and ints(F, X) == want
        X, Y = elems(xs), elems(ys)
        assert getattr(F, op)(X, Y, out=Y) is Y and ints(F, Y) == want
        X = elems(xs)
        assert ints(F, getattr(F, op)(X, X, out=X)) == [f(a, a) % P for a in xs]
        # the output overlapping an input shifted by one element: as numpy's ufuncs, the
        # result is that of a copied input
        buf = elems(xs + [5])
        a, o = buf[:-1], buf[1:]
        want_shift = [f(x, y) % P for x, y in zip(xs, ys, strict=True)]
        if F is JIT:
            getattr(F, op)(a, elems(ys), out=o)
            assert ints(F, o) == want_shift


def test_muladd_aliasing(xy):
    """beaver.square passes out= one of the pair operands."""
    xs, ys = xy
    for F in (JIT, NP):
        C, T, D = elems(ys[::-1]), elems(xs), elems(ys)
        want = [(c + t * d) % P for c, t, d in zip(ys[::-1], xs, ys, strict=True)]
        assert F.muladd(C, [(T, D)], out=T) is T
        assert ints(F, T) == want
        C, T, D = elems(ys[::-1]), elems(xs), elems(ys)
        F.muladd(C, [(T, D), (D, T)], out=C)
        assert ints(F, C) == [(c + 2 * t * d) % P for c, t, d in zip(ys[::-1], xs, ys, strict=True)]


def test_wire_and_check_reject_noncanonical():
    for F in (JIT, NP):
        for bad in ([2**64 - 1, 2**63 - 1], [0, 2**63], [5, 2**64 - 1], [2**64 - 2, 2**63]):
            w = np.array([[1, 0], bad, [3, 0]], dtype=np.uint64)
            with pytest.raises(DomainError):
                F.from_wire(w, (3,))
            with pytest.raises(DomainError):
                F.check(w.reshape(-1).view(DT127))
        ok = np.array([[2**64 - 2, 2**63 - 1], [2**64 - 1, 2**63 - 2]], dtype=np.uint64)
        assert ints(F, F.from_wire(ok.reshape(-1), (2,))) == [P - 1, P - 2**64]


def test_env_switch(monkeypatch):
    """SMPC_NO_JIT=1 selects the numpy code for fields that do not choose explicitly."""
    from protocols.arith import mersenne127

    monkeypatch.setattr(mersenne127, "_JIT_KERNELS", None)
    monkeypatch.setenv("SMPC_NO_JIT", "1")
    assert Mersenne127()._kernels() is None
    monkeypatch.setattr(mersenne127, "_JIT_KERNELS", None)
    monkeypatch.delenv("SMPC_NO_JIT")
    assert Mersenne127()._kernels() is not None
    assert field(False)._kernels() is None
