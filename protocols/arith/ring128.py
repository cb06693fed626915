"""Arithmetic in Z_2^128 on numpy arrays of two uint64 limbs: an element array of shape S is
a uint64 array of shape (*S, 2) with [..., 0] the low and [..., 1] the high 64 bits (the
same layout on the wire, little-endian limbs). Used by SPDZ2k (protocols.malicious.spdz2k),
whose shares and MACs live in Z_2^(k+s) with k = s = 64.

Products of two 64-bit limbs are split into 32-bit halves (numpy has no 64x64 -> 128-bit
multiply); everything wraps mod 2^64 per limb, with carries propagated explicitly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import numpy as np

from protocols.prg import CryptoRNG

_P = ParamSpec("_P")
_R = TypeVar("_R")

_U64 = np.dtype(np.uint64)
_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)

__all__ = ["add", "from_u64", "lo", "matmul", "mul", "mul_u64", "neg", "random", "shl64", "sub", "sum", "to_ints", "zeros"]


def _wrapping(f: Callable[_P, _R]) -> Callable[_P, _R]:
    """Limb arithmetic wraps mod 2^64 by design: silence numpy's overflow warning on 0-d."""

    @functools.wraps(f)
    def g(*a: _P.args, **k: _P.kwargs) -> _R:
        with np.errstate(over="ignore"):
            return f(*a, **k)

    return g


def zeros(shape: tuple[int, ...]) -> np.ndarray:
    return np.zeros((*shape, 2), dtype=_U64)


def from_u64(x: np.ndarray) -> np.ndarray:
    """Lift uint64 values (0 <= x < 2^64) into Z_2^128."""
    x = np.asarray(x, dtype=_U64)
    out = np.zeros((*x.shape, 2), dtype=_U64)
    out[..., 0] = x
    return out


def lo(x: np.ndarray) -> np.ndarray:
    """x mod 2^64 as a uint64 array."""
    return np.ascontiguousarray(x[..., 0])


def shl64(x: np.ndarray) -> np.ndarray:
    """2^64 * x mod 2^128."""
    out = np.zeros_like(x)
    out[..., 1] = x[..., 0]
    return out


def random(rng: CryptoRNG, shape: tuple[int, ...]) -> np.ndarray:
    return rng.uint64((*shape, 2))


@_wrapping
def add(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = np.broadcast_arrays(x, y)
    out = np.empty(x.shape, dtype=_U64)
    np.add(x[..., 0], y[..., 0], out=out[..., 0])
    carry = out[..., 0] < x[..., 0]
    np.add(x[..., 1], y[..., 1], out=out[..., 1])
    out[..., 1] += carry
    return out


@_wrapping
def sub(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = np.broadcast_arrays(x, y)
    out = np.empty(x.shape, dtype=_U64)
    np.subtract(x[..., 0], y[..., 0], out=out[..., 0])
    borrow = x[..., 0] < y[..., 0]
    np.subtract(x[..., 1], y[..., 1], out=out[..., 1])
    out[..., 1] -= borrow
    return out


def neg(x: np.ndarray) -> np.ndarray:
    return sub(np.zeros_like(x), x)


def _mulhi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The high 64 bits of the 128-bit product of uint64 arrays a and b."""
    a0, a1 = a & _M32, a >> _S32
    b0, b1 = b & _M32, b >> _S32
    p01, p10 = a0 * b1, a1 * b0
    mid = ((a0 * b0) >> _S32) + (p01 & _M32) + (p10 & _M32)
    return a1 * b1 + (p01 >> _S32) + (p10 >> _S32) + (mid >> _S32)


@_wrapping
def mul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x * y mod 2^128 (broadcasting)."""
    x, y = np.broadcast_arrays(x, y)
    x0, x1, y0, y1 = x[..., 0], x[..., 1], y[..., 0], y[..., 1]
    out = np.empty(x.shape, dtype=_U64)
    np.multiply(x0, y0, out=out[..., 0])
    out[..., 1] = _mulhi(x0, y0) + x0 * y1 + x1 * y0
    return out


@_wrapping
def mul_u64(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """x * c mod 2^128 for a uint64 array c (0 <= c < 2^64), broadcasting: one limb
    product fewer than `mul`."""
    x, c = np.broadcast_arrays(x, np.asarray(c, dtype=_U64)[..., None])
    c = c[..., 0]
    out = np.empty(x.shape, dtype=_U64)
    np.multiply(x[..., 0], c, out=out[..., 0])
    out[..., 1] = _mulhi(x[..., 0], c) + x[..., 1] * c
    return out


@_wrapping
def sum(x: np.ndarray, axis: int | tuple[int, ...] | None = None) -> np.ndarray:  # noqa: A001
    """Sum over element axes (not the limb axis) mod 2^128: the limbs are summed in 32-bit
    pieces so that no carry is lost (exact for up to 2^32 terms)."""
    if axis is None:
        x = x.reshape(-1, 2)
        axis = 0
    nd = x.ndim - 1
    ax = tuple(a % nd for a in ((axis,) if isinstance(axis, int) else axis))
    l0 = np.sum(x[..., 0] & _M32, axis=ax, dtype=_U64)
    l1 = np.sum(x[..., 0] >> _S32, axis=ax, dtype=_U64)
    h = np.sum(x[..., 1], axis=ax, dtype=_U64)
    out = np.empty((*np.shape(l0), 2), dtype=_U64)
    # value = l0 + 2^32 l1 + 2^64 h, with l0, l1 < 2^64
    lo_ = l0 + (l1 << _S32)
    carry = (lo_ < l0).astype(_U64) + (l1 >> _S32)
    out[..., 0] = lo_
    out[..., 1] = h + carry
    return out


def matmul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x @ y mod 2^128 for matrices x (m, k, 2) and y (k, n, 2): (m, n, 2) (a compiled
    kernel, protocols.arith._r128_jit.matmul)."""
    from protocols.arith import _r128_jit

    if x.ndim != 3 or y.ndim != 3 or x.shape[1] != y.shape[0]:
        raise ValueError(f"ring128.matmul: cannot multiply {x.shape[:-1]} @ {y.shape[:-1]}")
    out = np.empty((x.shape[0], y.shape[1], 2), dtype=_U64)
    _r128_jit.matmul(np.ascontiguousarray(x), np.ascontiguousarray(y), out)
    return out


def to_ints(x: np.ndarray) -> list[int]:
    """Python integers (tests and debugging)."""
    flat = x.reshape(-1, 2)
    return [int(a) | (int(b) << 64) for a, b in flat]
