"""Field helpers of the DN07 source (protocols.preprocessing.dn07): linear combinations
with small public coefficients, bit weighting by Horner's rule, zero tests, shapes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from protocols.arith.domain import PrimeField
from protocols.preprocessing.base import Shape

_U64 = np.dtype(np.uint64)
_M61 = (1 << 61) - 1
_P61 = np.uint64(_M61)
_S61 = np.uint64(61)


def _matmul_shape(x: Shape, y: Shape) -> Shape:
    if len(x) != 2 or len(y) not in (1, 2) or x[1] != y[0]:
        from protocols.errors import ShapeMismatch

        raise ShapeMismatch(f"matrix triples for {x} @ {y}: need (k, d) @ (d, m) or (d,)")
    return (x[0],) if len(y) == 1 else (x[0], y[1])


def _size(shape: Shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


class _Lin:
    """Linear combinations with public integer coefficients, fast for GF(2^61 - 1) and small
    coefficients: v * c < 2^64 for c < 8, then one Mersenne fold (2^61 = 1)."""

    def __init__(self, F: PrimeField) -> None:
        self.F = F
        self.m61 = F.modulus == _M61 and F.dtype == _U64

    def scale(self, v: np.ndarray, c: int) -> np.ndarray:
        c %= self.F.modulus
        if c == 0:
            return self.F.zeros(v.shape)
        if c == 1:
            return v.copy()
        if self.m61 and c < 8:
            r = v * np.uint64(c)
            t = r >> _S61
            r &= _P61
            r += t  # < 2^61 + 8
            t = r - _P61
            return np.minimum(r, t, out=r)
        if c < 16:  # other fields: double-and-add; the Vandermonde entries and x-coordinates are
            # small. GF(2^127 - 1), 640k elements: numpy kernels add 6 ms, product by a
            # constant 37 ms (edaBits 10^4 x 64, n = 3: 1.9 -> 1.1 s); compiled kernels 1.9
            # vs 2.9 ms, edaBits unchanged within noise (0.77 vs 0.80 s)
            r = v
            for bit in bin(c)[3:]:
                r = self.F.add(r, r)
                if bit == "1":
                    r = self.F.add(r, v)
            return r
        return self.F.mul(v, np.full(v.shape, c, dtype=self.F.dtype) if self.m61 else self.F.from_int(c))

    def comb(self, coeffs: Sequence[int], arrays: Sequence[np.ndarray]) -> np.ndarray:
        acc = None
        for c, a in zip(coeffs, arrays, strict=True):
            c %= self.F.modulus
            if c == 0:
                continue
            if acc is None:
                acc = self.scale(a, c)
            elif c == 1:
                self.F.add(acc, a, out=acc)
            else:
                self.F.add(acc, self.scale(a, c), out=acc)
        return acc if acc is not None else self.F.zeros(arrays[0].shape)


def _nonzero(F: PrimeField, u: np.ndarray) -> np.ndarray:
    """Elementwise u != 0 for canonical elements of any field representation (uint64, the
    two-limb structured dtype of GF(2^127 - 1), or object arrays)."""
    if F.dtype.names is not None:
        return np.logical_or.reduce([u[name] != 0 for name in F.dtype.names])
    if F.dtype == object:
        return np.array([int(v) != 0 for v in u.reshape(-1)], dtype=bool).reshape(u.shape)
    return u != 0


def _weighted(F: PrimeField, b: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """sum_{lo <= j < hi} 2^(j - lo) b[j] over the first axis of b, by Horner's rule."""
    acc = b[hi - 1].copy()
    for j in range(hi - 2, lo - 1, -1):
        acc = F.add(F.add(acc, acc), b[j])
    return acc


def sqrt_bits(F: PrimeField, a: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Shares of b = (a / sqrt(u) + 1) / 2 for shares of a and the opened u = a^2 != 0 (the
    square-root trick; p = 3 mod 4, so sqrt(u) = u^((p + 1) / 4), for Mersenne p = 2^k - 1
    2^(k - 2) squarings in place)."""
    p = F.modulus
    e = (p + 1) // 4
    if e & (e - 1) == 0 and F.dtype != object:
        v = u.copy()
        for _ in range(e.bit_length() - 1):
            F.mul(v, v, out=v)
    else:
        v = F.pow(u, e)
    w = F.mul(a, F.inv(v))  # shares of a / v = +-1
    one = F.from_int(1)
    half = F.from_int((p + 1) // 2)  # 0-d, broadcast
    return F.mul(F.add(w, np.broadcast_to(one, w.shape).copy()), half)
