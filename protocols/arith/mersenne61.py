"""GF(2^61 - 1) on uint64: exact limb products with Mersenne folding (see protocols.arith.field)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from protocols.arith._fieldops import (
    _M32,
    _S1,
    _S21,
    _S30,
    _S31,
    _S32,
    _S42,
    _S61,
    _U64,
    M61,
    _add,
    _and,
    _as_shape,
    _broadcast_operands,
    _finish,
    _ls,
    _matmul_finish,
    _matmul_prepare,
    _mul,
    _rs,
    _Scratch,
    _sub,
    _sum_axes,
    _u,
    _VectorInv,
    _wire_in,
)
from protocols.arith.domain import PrimeField, Shape
from protocols.errors import DomainError
from protocols.prg import CryptoRNG

_P61 = _u(M61)
_M31 = _u((1 << 31) - 1)
_M30 = _u((1 << 30) - 1)
_M21 = _u((1 << 21) - 1)


def _mul61_block(
    x: np.ndarray, y: np.ndarray, o: np.ndarray,
    a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, e: np.ndarray,
) -> None:
    """o = x*y mod 2^61-1 for canonical uint64 x, y (1-d, equal length; o may alias x or y).
    21 numpy passes over the block.

    Split at 31 bits: x = xh*2^31 + xl (xl < 2^31, xh < 2^30), same for y. Then
        x*y = hh*2^62 + mid*2^31 + ll,  hh = xh*yh < 2^60, mid = xh*yl + xl*yh < 2^62,
                                         ll = xl*yl < 2^62,
    and with 2^61 = 1:  hh*2^62 = 2*hh  (< 2^61),
                        mid*2^31 = (mid >> 30)*2^61 + (mid mod 2^30)*2^31
                                 = (mid >> 30) + (mid mod 2^30) << 31  (< 2^32 and < 2^61).
    The sum s of the four terms is < 2^63 + 2^32; s = (s >> 61) + (s & p) < 2^61 + 4, and one
    conditional subtract makes it canonical.
    """
    _and(x, _M31, a)  # xl
    _rs(x, _S31, b)  # xh
    _and(y, _M31, c)  # yl
    _rs(y, _S31, d)  # yh
    _mul(a, c, e)  # ll = xl*yl < 2^62
    _mul(b, c, c)  # xh*yl < 2^61
    _mul(a, d, a)  # xl*yh < 2^61
    _add(c, a, c)  # mid < 2^62
    _mul(b, d, b)  # hh < 2^60
    _ls(b, _S1, b)  # 2*hh < 2^61
    _rs(c, _S30, a)  # mid >> 30 < 2^32
    _and(c, _M30, c)
    _ls(c, _S31, c)  # (mid mod 2^30) << 31 < 2^61
    _add(b, a, b)
    _add(b, c, b)
    _add(b, e, b)  # s < 2^63 + 2^32
    _rs(b, _S61, a)
    _and(b, _P61, b)
    _add(b, a, b)  # < 2^61 + 4
    _sub(b, _P61, a)  # wraps when b < p
    np.minimum(b, a, out=o)


def _canon61(v: np.ndarray) -> np.ndarray:
    """In place: reduce uint64 values (any, < 2^64) to [0, p)."""
    t = v >> _S61
    _and(v, _P61, v)
    _add(v, t, v)  # < 2^61 + 8
    _sub(v, _P61, t)
    return np.minimum(v, t, out=v)


def _rot61(v: np.ndarray, r: int) -> np.ndarray:
    """v * 2^r mod p for canonical v: a rotation of the 61 bits."""
    r %= 61
    if r == 0:
        return v
    return ((v << _u(r)) & _P61) | (v >> _u(61 - r))


class Mersenne61(_VectorInv, PrimeField):
    """GF(p) for the Mersenne prime p = 2^61 - 1.

    Representation: numpy uint64, canonical values in [0, p); wire format: the same uint64
    array (8 bytes per element), `from_wire` rejects any word >= p.

    Costs (this machine, see benchmarks/test_bench_field.py): `mul` about 5 ns per element
    (21 vectorised uint64 passes, on blocks of 2^14 elements that stay in L2, with scratch
    reused across calls); `add`/`sub`/`neg` 3 passes with a conditional subtract (no `%`);
    `matmul` 6 exact uint64 matmuls of 21-bit by 31-bit limbs; `sum` 2 uint64 sums of 32-bit
    limbs; `batch_inv`/`inv` a vectorised product tree, about 3 multiplications per element.

    Reduction: the Mersenne identity 2^61 = 1 (mod p) (see the module docstring); each step of
    `mul` states the bound that keeps it inside uint64.
    """

    name = "GF(2^61-1)"
    modulus = M61
    bits = 61
    dtype = _U64
    elem_bytes = 8

    #: elements per block in mul (2^14: 5 scratch arrays of 128 KiB stay in L2)
    block = 1 << 14
    #: inner-dimension chunk for matmul: 2^12 products of 21 x 31 bits sum below 2^64
    matmul_chunk = 1 << 12

    def __init__(self) -> None:
        self._scratch = _Scratch()

    # -- construction ------------------------------------------------------------------
    def zeros(self, shape: Shape) -> np.ndarray:
        return np.zeros(shape, dtype=_U64)

    def from_int(self, values: int | np.ndarray | Sequence[int]) -> np.ndarray:
        p = self.modulus
        if isinstance(values, np.ndarray):
            kind = values.dtype.kind
            if kind in "bu":
                return np.asarray(np.remainder(values.astype(_U64), _P61), dtype=_U64)
            if kind == "i":
                return np.asarray(np.remainder(values.astype(np.int64), np.int64(p)), dtype=_U64)
            if values.dtype == object:
                return np.vectorize(lambda v: int(v) % p, otypes=[_U64])(values).reshape(values.shape)
            raise DomainError(f"{self.name}: cannot read integers from dtype {values.dtype}")
        if isinstance(values, int | np.integer):
            return np.array(int(values) % p, dtype=_U64)
        return self.from_int(np.array(values, dtype=object))

    def to_int(self, x: np.ndarray) -> np.ndarray:
        return self.check(x).astype(object)

    def random(self, rng: CryptoRNG, shape: Shape) -> np.ndarray:
        return rng.below(self.modulus, _as_shape(shape))

    def check(self, x: np.ndarray) -> np.ndarray:
        super().check(x)
        if x.size and bool((x >= _P61).any()):
            raise DomainError(f"{self.name}: non-canonical element (>= p)")
        return x

    def _has_zero(self, x: np.ndarray) -> bool:
        return bool(x.size) and not bool(x.all())

    # -- arithmetic --------------------------------------------------------------------
    def mul(self, x: np.ndarray, y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        xf, yf, out, of = _broadcast_operands(self, x, y, out)
        n = of.shape[0]
        bs = self.block
        bufs = self._scratch.get(_U64, 5, bs)
        for i in range(0, n, bs):
            j = min(n, i + bs)
            m = j - i
            if m == bs:
                _mul61_block(xf[i:j], yf[i:j], of[i:j], *bufs)
            else:
                _mul61_block(xf[i:j], yf[i:j], of[i:j], *(b[:m] for b in bufs))
        return _finish(out, of)

    def add(self, x: np.ndarray, y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        xf, yf, out, of = _broadcast_operands(self, x, y, out)
        t = _add(xf, yf)  # < 2^62
        _sub(t, _P61, of)
        np.minimum(t, of, out=of)
        return _finish(out, of)

    def sub(self, x: np.ndarray, y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        xf, yf, out, of = _broadcast_operands(self, x, y, out)
        t = _sub(xf, yf)  # wraps when x < y
        _add(t, _P61, of)  # x - y + p, wraps back below p exactly when x < y
        np.minimum(t, of, out=of)
        return _finish(out, of)

    def neg(self, x: np.ndarray) -> np.ndarray:
        self.check_dtype(x)
        t = np.negative(x, out=np.empty(x.shape, _U64))  # 2^64 - x, or 0
        u = _add(t, _P61, out=np.empty(x.shape, _U64))  # p - x (wrapped), or p
        return np.minimum(t, u, out=u)

    def check_dtype(self, x: object) -> None:
        if not isinstance(x, np.ndarray) or x.dtype != self.dtype:
            got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
            raise DomainError(f"{self.name}: expected an array of dtype {self.dtype}, got {got}")

    def matmul(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Exact (x @ y) mod p with numpy's `@` shape rules.

        x is split into three 21-bit limbs (x = x0 + x1*2^21 + x2*2^42), y into two limbs of
        31 and 30 bits (y = y0 + y1*2^31). Each limb product is below 2^52, so numpy's uint64
        matmul sums up to 2^12 of them without overflow (inner dimension chunked by
        `matmul_chunk`). The 6 partial matrices are reduced (s = (s >> 61) + (s & p)), moved to
        their weight 2^(21i + 31j) by a 61-bit rotation (2^61 = 1) and added.
        Measured: (10^4 x 100) @ (100 x 10) in about 40 ms (one uint64 matmul is about 6 ms).
        """
        self.check_dtype(x)
        self.check_dtype(y)
        x2, y2, squeeze = _matmul_prepare(self.name, x, y)
        k = x2.shape[-1]
        acc: np.ndarray | None = None
        for k0 in range(0, max(k, 1), self.matmul_chunk):
            k1 = min(k, k0 + self.matmul_chunk)
            xs, ys = x2[..., k0:k1], y2[..., k0:k1, :]
            xl = (xs & _M21, (xs >> _S21) & _M21, xs >> _S42)
            yl = (ys & _M31, ys >> _S31)
            for i, a in enumerate(xl):
                for j, b in enumerate(yl):
                    part = _rot61(_canon61(np.matmul(a, b)), 21 * i + 31 * j)
                    acc = part if acc is None else self.add(acc, part, out=acc)
        assert acc is not None  # the loops run at least once (6 limb products)
        return _matmul_finish(acc, squeeze)

    def sum(self, x: np.ndarray, axis: int | tuple[int, ...] | None = None) -> np.ndarray:
        """Exact sum mod p along `axis` (all axes when None). The 32-bit low and 29-bit high
        limbs are summed in uint64 (exact for up to 2^32 terms; longer axes are chunked),
        reduced, and recombined as lo + rot(hi, 32)."""
        self.check_dtype(x)
        x2, rest = _sum_axes(x, axis)
        n = x2.shape[-1]
        acc = np.zeros(x2.shape[0], dtype=_U64)
        chunk = 1 << 31
        for k0 in range(0, n, chunk):
            xs = x2[:, k0 : k0 + chunk]
            lo = _canon61(np.asarray(np.sum(xs & _M32, axis=-1, dtype=_U64)))
            hi = _canon61(np.asarray(np.sum(xs >> _S32, axis=-1, dtype=_U64)))
            self.add(acc, self.add(lo, _rot61(hi, 32)), out=acc)
        return acc.reshape(rest)

    # -- wire format -------------------------------------------------------------------
    def to_wire(self, x: np.ndarray) -> np.ndarray:
        self.check_dtype(x)
        return x if x.flags.c_contiguous else x.copy()  # ascontiguousarray makes 0-d 1-d

    def from_wire(self, w: np.ndarray, shape: Shape) -> np.ndarray:
        shape = _as_shape(shape)
        w = _wire_in(self.name, w, _U64, shape)
        if w.size and bool((w >= _P61).any()):
            raise DomainError(f"{self.name}: non-canonical element on the wire (>= p)")
        return w


# =============================================================================================
# GF(2^127 - 1)
# =============================================================================================
