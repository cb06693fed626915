"""Compiled (numba) kernels of rss3's bit conversion (protocols.preprocessing._rss3core.b2a):
one pass per word over its 64 bits instead of a dozen whole-array numpy passes. Layout: the
per-bit shares are (64, W) (row k = bit k of every word); a message carries 64 words per
word, word-major (index 64 w + k). Everything wraps mod 2^64. Compiled on first call."""

from __future__ import annotations

import numpy as np
from numba import njit

_kernel = njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
_U = np.uint64
_ONE = _U(1)
_TWO = _U(2)


@_kernel
def lead(x: np.ndarray, mask: np.ndarray, share: np.ndarray, lo: int, send: np.ndarray) -> None:
    """Leader: bits x_k of words x (n,): share[k, lo + w] = x_k, send[64 w + k] = x_k - m."""
    for w in range(x.shape[0]):
        v = x[w]
        for k in range(64):
            b = (v >> _U(k)) & _ONE
            share[k, lo + w] = b
            send[64 * w + k] = b - mask[64 * w + k]


@_kernel
def helper(c: np.ndarray, mask: np.ndarray, share: np.ndarray, lo: int) -> None:
    """Party L + 1 (knows c and the mask): share = c_k - 2 m c_k."""
    for w in range(c.shape[0]):
        v = c[w]
        for k in range(64):
            if (v >> _U(k)) & _ONE:
                share[k, lo + w] = _ONE - _TWO * mask[64 * w + k]
            else:
                share[k, lo + w] = _U(0)


@_kernel
def receiver(c: np.ndarray, got: np.ndarray, share: np.ndarray, lo: int) -> None:
    """Party L + 2 (knows c, got x - m): share = -2 (x - m) c_k."""
    for w in range(c.shape[0]):
        v = c[w]
        for k in range(64):
            if (v >> _U(k)) & _ONE:
                share[k, lo + w] = _U(0) - _TWO * got[64 * w + k]
            else:
                share[k, lo + w] = _U(0)


@_kernel
def weighted(A: np.ndarray, lo: int, hi: int, out: np.ndarray) -> None:
    """out[w] = sum_{k=lo}^{hi-1} 2^(k-lo) A[k, w] mod 2^64 (per-bit shares -> a value)."""
    for w in range(out.shape[0]):
        out[w] = _U(0)
    for k in range(lo, hi):
        s = _U(k - lo)
        for w in range(out.shape[0]):
            out[w] += A[k, w] << s
