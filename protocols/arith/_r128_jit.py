"""Compiled (numba) kernels for SPDZ2k's Z_2^128 arithmetic (protocols.arith.ring128 layout:
an array of N elements is a C-contiguous uint64 array of shape (N, 2), [i, 0] the low and
[i, 1] the high word). A 64 x 64 -> 128-bit product is formed from four 32 x 32 -> 64-bit
products (numba has no 128-bit integers), as in protocols.arith._m127_jit; everything wraps
mod 2^64 per word with explicit carries. Compiled on first call (`cache=True`)."""

from __future__ import annotations

import numpy as np
from numba import njit

_U = np.uint64
_M32 = _U(0xFFFFFFFF)
_S32 = _U(32)
_kernel = njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
_inline = njit(inline="always", boundscheck=False, error_model="numpy")


@_inline
def _mulhi(a: np.uint64, b: np.uint64) -> np.uint64:
    a0 = a & _M32
    a1 = a >> _S32
    b0 = b & _M32
    b1 = b >> _S32
    p01 = a0 * b1
    p10 = a1 * b0
    mid = ((a0 * b0) >> _S32) + (p01 & _M32) + (p10 & _M32)
    return a1 * b1 + (p01 >> _S32) + (p10 >> _S32) + (mid >> _S32)


@_inline
def _mul(
    alo: np.uint64, ahi: np.uint64, blo: np.uint64, bhi: np.uint64
) -> tuple[np.uint64, np.uint64]:
    return alo * blo, _mulhi(alo, blo) + alo * bhi + ahi * blo


@_inline
def _add(
    alo: np.uint64, ahi: np.uint64, blo: np.uint64, bhi: np.uint64
) -> tuple[np.uint64, np.uint64]:
    lo = alo + blo
    return lo, ahi + bhi + _U(lo < alo)


@_kernel
def beaver(
    d: np.ndarray,
    e: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    ma: np.ndarray,
    mb: np.ndarray,
    mc: np.ndarray,
    alpha: np.ndarray,
    party0: bool,
    z: np.ndarray,
    mz: np.ndarray,
) -> None:
    """z = c + d b + e a (+ d e at party 0), mz = mc + d mb + e ma + alpha d e (all (N, 2));
    alpha: (2,)."""
    al, ah = alpha[0], alpha[1]
    for i in range(d.shape[0]):
        dl, dh, el, eh = d[i, 0], d[i, 1], e[i, 0], e[i, 1]
        del_, deh = _mul(dl, dh, el, eh)
        lo, hi = _mul(dl, dh, b[i, 0], b[i, 1])
        t0, t1 = _mul(el, eh, a[i, 0], a[i, 1])
        lo, hi = _add(lo, hi, t0, t1)
        lo, hi = _add(lo, hi, c[i, 0], c[i, 1])
        if party0:
            lo, hi = _add(lo, hi, del_, deh)
        z[i, 0], z[i, 1] = lo, hi
        lo, hi = _mul(dl, dh, mb[i, 0], mb[i, 1])
        t0, t1 = _mul(el, eh, ma[i, 0], ma[i, 1])
        lo, hi = _add(lo, hi, t0, t1)
        lo, hi = _add(lo, hi, mc[i, 0], mc[i, 1])
        t0, t1 = _mul(del_, deh, al, ah)
        mz[i, 0], mz[i, 1] = _add(lo, hi, t0, t1)


@_kernel
def dot2(chi: np.ndarray, vals: np.ndarray, macs: np.ndarray, out: np.ndarray) -> None:
    """out[0] += sum chi_j vals_j, out[1] += sum chi_j macs_j (chi: uint64 (N,); out: (2, 2))."""
    yl, yh, ml, mh = out[0, 0], out[0, 1], out[1, 0], out[1, 1]
    for i in range(chi.shape[0]):
        c = chi[i]
        t0, t1 = _mul(vals[i, 0], vals[i, 1], c, _U(0))
        yl, yh = _add(yl, yh, t0, t1)
        t0, t1 = _mul(macs[i, 0], macs[i, 1], c, _U(0))
        ml, mh = _add(ml, mh, t0, t1)
    out[0, 0], out[0, 1], out[1, 0], out[1, 1] = yl, yh, ml, mh


@_kernel
def matmul(x: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
    """out = x @ y mod 2^128 (x: (m, k, 2), y: (k, n, 2), out: (m, n, 2), C-contiguous)."""
    m, k, n = x.shape[0], x.shape[1], y.shape[1]
    for i in range(m):
        for j in range(n):
            lo, hi = _U(0), _U(0)
            for t in range(k):
                p0, p1 = _mul(x[i, t, 0], x[i, t, 1], y[t, j, 0], y[t, j, 1])
                lo, hi = _add(lo, hi, p0, p1)
            out[i, j, 0], out[i, j, 1] = lo, hi
