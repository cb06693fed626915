"""Shared vectorised helpers of the prime-field implementations (see protocols.arith.field).

Scratch buffers, broadcasting with `out=`, the wire-format check, matmul and sum plumbing, and
vectorised batch inversion by a product tree.
"""

from __future__ import annotations

import abc
import threading

import numpy as np
import numpy.typing as npt

from protocols.arith.domain import Domain, PrimeField, Shape
from protocols.errors import DomainError, ShapeMismatch

M61 = (1 << 61) - 1
M127 = (1 << 127) - 1

_U64 = np.dtype(np.uint64)
_u = np.uint64

#: shift amounts and masks shared by the Mersenne fields (numpy scalars: no per-call conversion)
_M32 = _u(0xFFFFFFFF)
_S1, _S3, _S21, _S30, _S31, _S32, _S42, _S61 = (_u(s) for s in (1, 3, 21, 30, 31, 32, 42, 61))

_mul = np.multiply
_add = np.add
_sub = np.subtract
_and = np.bitwise_and
_or = np.bitwise_or
_rs = np.right_shift
_ls = np.left_shift


def _as_shape(shape: int | Shape) -> Shape:
    return (shape,) if isinstance(shape, int | np.integer) else tuple(shape)


def _prod(shape: Shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _wire_in(name: str, w: np.ndarray, dtype: np.dtype, wshape: Shape) -> np.ndarray:
    """Accept the wire array in its declared shape or flat with the right length."""
    if not isinstance(w, np.ndarray) or w.dtype != dtype:
        got = w.dtype if isinstance(w, np.ndarray) else type(w).__name__
        raise ShapeMismatch(f"{name}: expected wire dtype {dtype}, got {got}")
    if w.shape != wshape:
        if w.ndim == 1 and w.size == _prod(wshape):
            w = w.reshape(wshape)
        else:
            raise ShapeMismatch(f"{name}: expected wire shape {wshape}, got {w.shape}")
    return w


class _Scratch(threading.local):
    """Per-thread scratch buffers, keyed by (dtype, count)."""

    def __init__(self) -> None:
        self.bufs: dict[tuple[str, int], list[np.ndarray]] = {}

    def get(self, dtype: npt.DTypeLike, count: int, size: int) -> list[np.ndarray]:
        key = (np.dtype(dtype).str, count)
        got = self.bufs.get(key)
        if got is None or got[0].shape[0] < size:
            got = [np.empty(size, dtype=dtype) for _ in range(count)]
            self.bufs[key] = got
        return got


def _broadcast_operands(
    dom: Domain, x: np.ndarray, y: np.ndarray, out: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check dtypes, broadcast, and return flat C-contiguous x, y, the result array and its
    flat view (a temporary when `out` is not contiguous)."""
    for a in (x, y):
        if not isinstance(a, np.ndarray) or a.dtype != dom.dtype:
            got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise DomainError(f"{dom.name}: expected arrays of dtype {dom.dtype}, got {got}")
    if x.shape == y.shape:
        shape = x.shape
    else:
        try:
            shape = np.broadcast_shapes(x.shape, y.shape)
        except ValueError as e:
            raise ShapeMismatch(f"{dom.name}: shapes {x.shape} and {y.shape} do not broadcast") from e
        x = np.broadcast_to(x, shape)
        y = np.broadcast_to(y, shape)
    xf = np.ascontiguousarray(x).reshape(-1)
    yf = np.ascontiguousarray(y).reshape(-1)
    if out is None:
        out = np.empty(shape, dtype=dom.dtype)
    elif not isinstance(out, np.ndarray) or out.dtype != dom.dtype or out.shape != shape:
        raise ShapeMismatch(f"{dom.name}: out must be an array of dtype {dom.dtype} and shape {shape}")
    if out.flags.c_contiguous:
        return xf, yf, out, out.reshape(-1)
    return xf, yf, out, np.empty(_prod(shape), dtype=dom.dtype)


def _finish(out: np.ndarray, of: np.ndarray) -> np.ndarray:
    if not out.flags.c_contiguous:
        np.copyto(out, of.reshape(out.shape))
    return out


def _matmul_prepare(name: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Promote 1-d operands as numpy's matmul does; returns (x2, y2, squeeze_axes)."""
    if x.ndim == 0 or y.ndim == 0:
        raise ShapeMismatch(f"{name}: matmul needs arrays of at least one dimension")
    squeeze: list[int] = []
    if x.ndim == 1:
        x = x[None, :]
        squeeze.append(-2)
    if y.ndim == 1:
        y = y[:, None]
        squeeze.append(-1)
    if x.shape[-1] != y.shape[-2]:
        raise ShapeMismatch(f"{name}: matmul inner dimensions differ: {x.shape} @ {y.shape}")
    try:
        np.broadcast_shapes(x.shape[:-2], y.shape[:-2])
    except ValueError as e:
        raise ShapeMismatch(f"{name}: matmul batch shapes {x.shape} @ {y.shape} do not broadcast") from e
    return x, y, tuple(squeeze)


def _matmul_finish(r: np.ndarray, squeeze: tuple[int, ...]) -> np.ndarray:
    if -1 in squeeze:
        r = r[..., 0]
    if -2 in squeeze:
        r = r[..., 0, :] if -1 not in squeeze else r[..., 0]
    return r.copy() if not r.flags.c_contiguous or r.base is not None else r


def _sum_axes(x: np.ndarray, axis: int | tuple[int, ...] | None) -> tuple[np.ndarray, Shape]:
    """Move the reduced axes last and flatten: returns (x2 of shape (prod(rest), n), rest)."""
    if axis is None:
        return x.reshape(1, x.size), ()
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    axes = tuple(sorted({int(a) % x.ndim if x.ndim else 0 for a in axes}))
    if x.ndim == 0 or any(a >= x.ndim for a in axes):
        raise ShapeMismatch(f"sum: axis {axis} out of range for shape {x.shape}")
    keep = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, keep + list(axes))
    rest = tuple(x.shape[a] for a in keep)
    return moved.reshape(_prod(rest), _prod(tuple(x.shape[a] for a in axes))), rest


class _VectorInv(PrimeField):
    """Vectorised inversion for fields with fast elementwise `mul`: a product tree (Montgomery's
    batch-inversion trick [Montgomery87: "Speeding the Pollard and elliptic curve methods of
    factorization", Math. Comp. 48] arranged as a binary tree so every level
    is one vectorised multiplication). Costs about 3 multiplications per element plus one
    scalar inversion, instead of a Fermat exponentiation (~120 multiplications) per element."""

    @abc.abstractmethod
    def _has_zero(self, x: np.ndarray) -> bool:
        """True when some element of x is zero."""

    def _scalar_inv_int(self, v: int) -> int:
        return pow(v, -1, self.modulus)

    def batch_inv(self, x: np.ndarray) -> np.ndarray:
        self.check(x)
        if self._has_zero(x):
            raise DomainError(f"{self.name}: inverse of zero")
        flat = np.ascontiguousarray(x).reshape(-1)
        if flat.size == 0:
            return x.copy()
        one = self.from_int(np.array([1], dtype=np.int64))
        levels = [flat]
        while levels[-1].shape[0] > 1:
            a = levels[-1]
            if a.shape[0] % 2:
                a = np.concatenate([a, one])
                levels[-1] = a
            levels.append(self.mul(a[0::2], a[1::2]))
        root = int(self.to_int(levels[-1])[0])
        inv = self.from_int(np.array([self._scalar_inv_int(root)], dtype=object))
        for a in reversed(levels[:-1]):
            inv = inv[: a.shape[0] // 2]  # drop the inverse of a padding one
            nxt = np.empty(a.shape[0], dtype=self.dtype)
            nxt[0::2] = self.mul(inv, a[1::2])
            nxt[1::2] = self.mul(inv, a[0::2])
            inv = nxt
        return inv[: flat.shape[0]].reshape(x.shape)

    def inv(self, x: np.ndarray) -> np.ndarray:
        """Elementwise inverse (computed with the batched product tree); DomainError on 0."""
        return self.batch_inv(x)

    def pow(self, x: np.ndarray, e: int) -> np.ndarray:
        """x^e elementwise by square-and-multiply over the whole array (0^0 = 1); a negative
        e inverts first (DomainError on zero)."""
        self.check(x)
        e = int(e)
        if e < 0:
            x, e = self.inv(x), -e
        result = self.from_int(np.ones(x.shape, dtype=np.int64))
        base = x.copy()
        while e:
            if e & 1:
                self.mul(result, base, out=result)
            e >>= 1
            if e:
                self.mul(base, base, out=base)
        return result


# =============================================================================================
# GF(2^61 - 1)
# =============================================================================================
