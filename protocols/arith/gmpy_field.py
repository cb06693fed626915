"""GF(p) for any prime p > 2 on numpy object arrays of gmpy2 integers (see protocols.arith.field)."""

from __future__ import annotations

from collections.abc import Sequence

import gmpy2
import numpy as np

from protocols.arith._fieldops import (
    _as_shape,
    _matmul_finish,
    _matmul_prepare,
    _prod,
    _sum_axes,
    _wire_in,
)
from protocols.arith.domain import PrimeField, Shape
from protocols.errors import DomainError, ParameterError, ShapeMismatch
from protocols.prg import CryptoRNG

_OBJ = np.dtype(object)


def _obj(v: object) -> np.ndarray:
    """Make sure a ufunc result on object arrays is an ndarray (0-d results come back bare)."""
    if isinstance(v, np.ndarray):
        return v
    out = np.empty((), dtype=object)
    out[()] = v
    return out


class GmpyField(PrimeField):
    """GF(p) for any prime p > 2, on numpy object arrays of gmpy2 `mpz` in [0, p).

    Wire format: uint8 array of shape (*shape, ceil(bits/8)), each element little-endian;
    `from_wire` rejects values >= p. Costs: one Python-level gmpy2 operation per element per
    op (about 0.1-0.3 us), so roughly 50-100x slower than Mersenne61 for 64-bit-sized p; use it
    for large primes (e.g. 256 bits) and for small exhaustive-test fields. `matmul` is numpy's
    object matmul followed by one reduction; `inv` is gmpy2.invert per element.
    Raises ParameterError unless p is a prime > 2.
    """

    def __init__(self, p: int) -> None:
        p = int(p)
        if p <= 2 or not gmpy2.is_prime(p):
            raise ParameterError(f"GmpyField needs a prime > 2, got {p}")
        self.modulus = p
        self._p = gmpy2.mpz(p)
        self._pobj = _obj(self._p)
        self.bits = p.bit_length()
        self.elem_bytes = (self.bits + 7) // 8
        self.name = f"GF({p})"
        self.dtype = _OBJ
        self._mod = np.frompyfunc(lambda v: gmpy2.mpz(v) % self._p, 1, 1)
        self._inv = np.frompyfunc(lambda v: gmpy2.invert(v, self._p), 1, 1)

    def _red(self, v: object) -> np.ndarray:
        # both operands as object arrays: a bare mpz that fits in int64 would be read as int64
        return _obj(np.remainder(_obj(v), self._pobj))

    def zeros(self, shape: Shape) -> np.ndarray:
        out = np.empty(shape, dtype=object)
        out[...] = gmpy2.mpz(0)
        return out

    def from_int(self, values: int | np.ndarray | Sequence[int]) -> np.ndarray:
        if isinstance(values, np.ndarray):
            if values.dtype.kind in "iub":
                values = values.astype(object)
            elif values.dtype != object:
                raise DomainError(f"{self.name}: cannot read integers from dtype {values.dtype}")
            if values.size == 0:
                return np.empty(values.shape, dtype=object)
            return _obj(self._mod(values))
        if isinstance(values, int | np.integer):
            return _obj(gmpy2.mpz(int(values)) % self._p)
        return self.from_int(np.array(values, dtype=object))

    def to_int(self, x: np.ndarray) -> np.ndarray:
        self.check(x)
        if x.size == 0:
            return np.empty(x.shape, dtype=object)
        return _obj(np.frompyfunc(int, 1, 1)(x))

    def random(self, rng: CryptoRNG, shape: Shape) -> np.ndarray:
        shape = _as_shape(shape)
        p = self.modulus
        if p <= 1 << 64:
            return self.from_int(rng.below(p, shape))
        n = _prod(shape)
        nb = self.elem_bytes
        excess = 8 * nb - self.bits
        out: list[object] = []  # gmpy2.mpz values
        while len(out) < n:
            need = n - len(out)
            raw = np.empty((need, nb), dtype=np.uint8)
            rng.fill(raw)
            raw[:, -1] &= np.uint8(0xFF >> excess)
            for row in raw:
                v = int.from_bytes(row.tobytes(), "little")
                if v < p:
                    out.append(gmpy2.mpz(v))
        arr = np.empty(n, dtype=object)
        arr[:] = out
        return arr.reshape(shape)

    def check(self, x: np.ndarray) -> np.ndarray:
        super().check(x)
        if x.size:
            flat = x.reshape(-1)
            p = self._p
            for v in flat:
                if not (isinstance(v, type(p)) or isinstance(v, int)) or not 0 <= v < p:
                    raise DomainError(f"{self.name}: non-canonical element")
        return x

    def _check_dtype(self, *xs: object) -> None:
        for x in xs:
            if not isinstance(x, np.ndarray) or x.dtype != _OBJ:
                got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
                raise DomainError(f"{self.name}: expected object arrays, got {got}")

    def _bin(self, op: np.ufunc, x: np.ndarray, y: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        self._check_dtype(x, y)
        try:
            r = op(x, y)
        except ValueError as e:
            raise ShapeMismatch(f"{self.name}: shapes {x.shape} and {y.shape} do not broadcast") from e
        r = self._red(r)
        if out is None:
            return r
        if out.shape != r.shape:
            raise ShapeMismatch(f"{self.name}: out has shape {out.shape}, expected {r.shape}")
        out[...] = r
        return out

    def add(self, x: np.ndarray, y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return self._bin(np.add, x, y, out)

    def sub(self, x: np.ndarray, y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return self._bin(np.subtract, x, y, out)

    def mul(self, x: np.ndarray, y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return self._bin(np.multiply, x, y, out)

    def neg(self, x: np.ndarray) -> np.ndarray:
        self._check_dtype(x)
        return self._red(np.negative(x))

    def matmul(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        self._check_dtype(x, y)
        x2, y2, squeeze = _matmul_prepare(self.name, x, y)
        return _matmul_finish(self._red(np.matmul(x2, y2)), squeeze)

    def sum(self, x: np.ndarray, axis: int | tuple[int, ...] | None = None) -> np.ndarray:
        self._check_dtype(x)
        x2, rest = _sum_axes(x, axis)
        if x2.shape[-1] == 0:
            return self.zeros(rest)
        return self._red(np.sum(x2, axis=-1)).reshape(rest)

    def inv(self, x: np.ndarray) -> np.ndarray:
        self.check(x)
        if x.size and any(v == 0 for v in x.reshape(-1)):
            raise DomainError(f"{self.name}: inverse of zero")
        if x.size == 0:
            return x.copy()
        return _obj(self._inv(x))

    def batch_inv(self, x: np.ndarray) -> np.ndarray:
        """gmpy2.invert per element: a C-level extended gcd is cheaper than the three Python-level
        multiplications per element of Montgomery's trick."""
        return self.inv(x)

    def pow(self, x: np.ndarray, e: int) -> np.ndarray:
        self.check(x)
        e = int(e)
        if e < 0:
            x, e = self.inv(x), -e
        if x.size == 0:
            return x.copy()
        p = self._p
        return _obj(np.frompyfunc(lambda v: gmpy2.powmod(v, e, p), 1, 1)(x))

    # -- wire format -------------------------------------------------------------------
    @property
    def wire_dtype(self) -> np.dtype:
        return np.dtype(np.uint8)

    def wire_shape(self, shape: Shape) -> Shape:
        return tuple(shape) + (self.elem_bytes,)

    def to_wire(self, x: np.ndarray) -> np.ndarray:
        self.check(x)
        nb = self.elem_bytes
        buf = b"".join(int(v).to_bytes(nb, "little") for v in x.reshape(-1))
        return np.frombuffer(buf, dtype=np.uint8).reshape(self.wire_shape(x.shape)).copy()

    def from_wire(self, w: np.ndarray, shape: Shape) -> np.ndarray:
        shape = _as_shape(shape)
        w = _wire_in(self.name, w, np.dtype(np.uint8), self.wire_shape(shape))
        nb = self.elem_bytes
        raw = np.ascontiguousarray(w).tobytes()
        p = self.modulus
        vals: list[object] = []  # gmpy2.mpz values
        for i in range(0, len(raw), nb):
            v = int.from_bytes(raw[i : i + nb], "little")
            if v >= p:
                raise DomainError(f"{self.name}: non-canonical element on the wire (>= p)")
            vals.append(gmpy2.mpz(v))
        arr = np.empty(len(vals), dtype=object)
        arr[:] = vals
        return arr.reshape(shape)
