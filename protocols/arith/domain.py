"""The interface every arithmetic domain implements: Z_2^k rings and prime fields.

Elements live in numpy arrays of `domain.dtype` (uint64 for Z_2^64 and for primes below
2^63; a two-limb structured dtype for GF(2^127 - 1); object arrays of gmpy2 integers for
arbitrary primes). All operations take and return whole arrays; a scalar is a 0-d array.
Operations never modify their inputs unless an `out=` array is given.

Functions of a domain are pure (no session, no I/O). Raises `DomainError` for values that
are not canonical elements and `ShapeMismatch` for shapes that do not broadcast as stated.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np

from protocols.errors import DomainError, ShapeMismatch
from protocols.prg import CryptoRNG

Shape = tuple[int, ...]


class Domain(abc.ABC):
    """A finite commutative ring Z_m (m = 2^k or a prime p) with vectorised operations."""

    #: short name used in configs, benchmarks and file headers ("Z2^64", "GF(2^61-1)", ...)
    name: str
    #: the modulus m as a Python int
    modulus: int
    #: True for prime fields (division exists)
    is_field: bool
    #: numpy dtype of stored elements
    dtype: np.dtype
    #: bytes per element on the wire
    elem_bytes: int

    # -- construction ------------------------------------------------------------------
    @abc.abstractmethod
    def zeros(self, shape: Shape) -> np.ndarray: ...

    @abc.abstractmethod
    def from_int(self, values: int | np.ndarray | Sequence[int]) -> np.ndarray:
        """Reduce integers (Python ints, int64/uint64 or object arrays; negatives allowed)
        into the domain: the element congruent to each value mod m."""

    @abc.abstractmethod
    def to_int(self, x: np.ndarray) -> np.ndarray:
        """Object array of Python ints in [0, m)."""

    def to_signed(self, x: np.ndarray) -> np.ndarray:
        """Centered lift: object array of Python ints in (-m/2, m/2]."""
        ints = self.to_int(x)
        half = self.modulus // 2
        return np.where(ints > half, ints - self.modulus, ints)

    @abc.abstractmethod
    def random(self, rng: CryptoRNG, shape: Shape) -> np.ndarray:
        """Uniform elements from a cryptographic generator."""

    # -- arithmetic --------------------------------------------------------------------
    @abc.abstractmethod
    def add(self, x: np.ndarray, y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray: ...

    @abc.abstractmethod
    def sub(self, x: np.ndarray, y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray: ...

    @abc.abstractmethod
    def neg(self, x: np.ndarray) -> np.ndarray: ...

    @abc.abstractmethod
    def mul(self, x: np.ndarray, y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Elementwise product (numpy broadcasting)."""

    def muladd(
        self,
        c: np.ndarray,
        pairs: Sequence[tuple[np.ndarray, np.ndarray]],
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """c + sum_i x_i * y_i elementwise for 1 to 4 pairs (x_i, y_i) of c's shape (no
        broadcasting); the Beaver recombination c + d*b + e*(a + d) is one call. Domains with
        costly reductions override it to reduce once (Mersenne127)."""
        if not 1 <= len(pairs) <= 4:
            raise ValueError("muladd takes 1 to 4 pairs")
        check_same_shape(c, *(a for pair in pairs for a in pair))
        acc = self.mul(*pairs[0])
        for x, y in pairs[1:]:
            self.add(acc, self.mul(x, y), out=acc)
        return self.add(acc, c, out=acc if out is None else out)  # acc is a fresh array

    @abc.abstractmethod
    def matmul(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Matrix product with numpy's `@` shape rules."""

    @abc.abstractmethod
    def sum(self, x: np.ndarray, axis: int | tuple[int, ...] | None = None) -> np.ndarray: ...

    # -- wire format -------------------------------------------------------------------
    @abc.abstractmethod
    def to_wire(self, x: np.ndarray) -> np.ndarray:
        """A C-contiguous array of a plain numpy dtype (uint64 or uint8) to send."""

    @abc.abstractmethod
    def from_wire(self, w: np.ndarray, shape: Shape) -> np.ndarray:
        """Inverse of to_wire. Validates the length against `shape` and that every element
        is canonical; raises DomainError or ShapeMismatch otherwise."""

    @property
    def wire_dtype(self) -> np.dtype:
        return np.dtype(np.uint64)

    def wire_shape(self, shape: Shape) -> Shape:
        return tuple(shape)

    # -- validation --------------------------------------------------------------------
    def check(self, x: np.ndarray) -> np.ndarray:
        """Raise DomainError unless x is an array of canonical elements of this domain."""
        if not isinstance(x, np.ndarray) or x.dtype != self.dtype:
            got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
            raise DomainError(f"{self.name}: expected an array of dtype {self.dtype}, got {got}")
        return x

    def __repr__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Domain) and (self.name, self.modulus) == (other.name, other.modulus)

    def __hash__(self) -> int:
        return hash((self.name, self.modulus))


def check_same_shape(*arrays: np.ndarray) -> Shape:
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ShapeMismatch(f"expected equal shapes, got {sorted(shapes)}")
    return arrays[0].shape


class PrimeField(Domain):
    """A prime field GF(p): adds inversion to the ring interface."""

    is_field = True

    @abc.abstractmethod
    def inv(self, x: np.ndarray) -> np.ndarray:
        """Elementwise inverse; raises ZeroDivisionError-derived DomainError on zero."""

    def batch_inv(self, x: np.ndarray) -> np.ndarray:
        """Inverse of every element with one field inversion (Montgomery's trick)."""
        flat = x.reshape(-1)
        k = flat.shape[0]
        if k == 0:
            return x.copy()
        prefix = [flat[0:1]]
        for i in range(1, k):
            prefix.append(self.mul(prefix[-1], flat[i : i + 1]))
        acc = self.inv(prefix[-1])
        out: list[np.ndarray] = [flat[0:0]] * k  # every slot is assigned below
        for i in range(k - 1, 0, -1):
            out[i] = self.mul(acc, prefix[i - 1])
            acc = self.mul(acc, flat[i : i + 1])
        out[0] = acc
        return np.concatenate(out).reshape(x.shape)

    @abc.abstractmethod
    def pow(self, x: np.ndarray, e: int) -> np.ndarray: ...

    def lincomb(self, coeffs: Sequence[int], arrays: Sequence[np.ndarray]) -> np.ndarray:
        """sum_j coeffs[j] * arrays[j] for public integer coefficients (equal shapes).

        Coefficients of magnitude at most 3 (mod p) become additions or subtractions: the
        Lagrange coefficients of small party sets are such (points {1, 2}: 2 and -1), and an
        addition costs a fraction of a field multiplication. Fields may override this with a
        fused version (Mersenne127: powers of two as rotations)."""
        p = self.modulus
        acc = None
        for c, a in zip(coeffs, arrays, strict=True):
            c %= p
            if c == 0:
                continue
            neg = p - c <= _SMALL
            k = p - c if neg else c
            if k <= _SMALL:
                if acc is None:
                    acc = self.neg(a) if neg else a.copy()
                    k -= 1
                for _ in range(k):
                    acc = self.sub(acc, a, out=acc) if neg else self.add(acc, a, out=acc)
                continue
            term = self.mul(a, self.from_int(c))
            acc = term if acc is None else self.add(acc, term, out=acc)
        return self.zeros(arrays[0].shape) if acc is None else acc

    def lincomb_checked(
        self,
        coeffs: Sequence[int],
        arrays: Sequence[np.ndarray],
        checks: Sequence[tuple[Sequence[int], np.ndarray]],
    ) -> tuple[np.ndarray, int | None]:
        """(lincomb(coeffs, arrays), failed): failed is the index of the first check
        (coeffs_k, expected_k) with lincomb(coeffs_k, arrays) != expected_k elementwise, None
        when every check holds (Shamir reconstruction with the consistency check of the
        further shares). Fields may fuse the passes (Mersenne127)."""
        out = self.lincomb(coeffs, arrays)
        for k, (c, expected) in enumerate(checks):
            if not _equal(self.lincomb(c, arrays), expected):
                return out, k
        return out, None


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Elementwise equality of two domain arrays; structured dtypes (two-limb fields) are
    compared as their uint64 words, about 3x faster than numpy's field-by-field compare."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.names and a.flags.c_contiguous and b.flags.c_contiguous and a.dtype.itemsize % 8 == 0:
        return bool(np.array_equal(a.reshape(-1).view(np.uint64), b.reshape(-1).view(np.uint64)))
    return bool(np.array_equal(a, b))


#: |coefficient| up to which `PrimeField.lincomb` adds instead of multiplying
_SMALL = 3
