"""Compiled (numba) carry-less products for the KOS15 consistency check of IKNP extension
(protocols.malicious.spdz2k_ot): 128-bit polynomials over GF(2) as two uint64 words (low
word first), their 255-bit products as four words. Compiled on first call (`cache=True`)."""

from __future__ import annotations

import numpy as np
from numba import njit

_U = np.uint64
_ONE = _U(1)
_ZERO = _U(0)


@njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def clmul_sum(chi: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
    """out (4,) ^= XOR over l of chi[l] * rows[l] in GF(2)[X] (no reduction); chi, rows:
    (m, 2) uint64. Branch-free: each bit of chi selects a shifted copy of the row."""
    a0 = a1 = a2 = a3 = _ZERO
    for k in range(chi.shape[0]):
        c0, c1 = chi[k, 0], chi[k, 1]
        r0, r1 = rows[k, 0], rows[k, 1]
        m = _ZERO - (c0 & _ONE)  # bit 0: no shift
        a0 ^= r0 & m
        a1 ^= r1 & m
        m = _ZERO - (c1 & _ONE)  # bit 64: one word up
        a1 ^= r0 & m
        a2 ^= r1 & m
        for i in range(1, 64):
            sh = _U(i)
            back = _U(64 - i)
            lo0, lo1, lo2 = r0 << sh, (r1 << sh) | (r0 >> back), r1 >> back
            m = _ZERO - ((c0 >> sh) & _ONE)
            a0 ^= lo0 & m
            a1 ^= lo1 & m
            a2 ^= lo2 & m
            m = _ZERO - ((c1 >> sh) & _ONE)
            a1 ^= lo0 & m
            a2 ^= lo1 & m
            a3 ^= lo2 & m
    out[0] ^= a0
    out[1] ^= a1
    out[2] ^= a2
    out[3] ^= a3
