"""Compiled (numba) kernel of the OT extension's bit-matrix transpose (see
protocols.preprocessing._otext._transpose_numpy, the reference: the same 8 x 8 block
transposes by three delta swaps, Hacker's Delight sec. 7-3, in one cache-blocked pass over
the bytes instead of numpy's whole-array temporaries and copies).

Importing this module imports numba and compiles nothing: the kernel compiles on its first
call (`cache=True`: later processes load numba's on-disk cache)."""

from __future__ import annotations

import numpy as np
from numba import njit

_BLOCK = 256  # byte columns per block: 2048 output rows stay in cache


@njit(cache=True, nogil=True)
def transpose_into(rows: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """rows (K, mb) uint8 packed bit rows (MSB first) -> out (8 mb, K / 8) uint8 columns."""
    K, mb = rows.shape
    for jb in range(0, mb, _BLOCK):
        for c in range(K // 8):
            for j in range(jb, min(jb + _BLOCK, mb)):
                x = np.uint64(0)
                for b in range(8):
                    x |= np.uint64(rows[8 * c + b, j]) << np.uint64(8 * b)
                t = (x ^ (x >> np.uint64(9))) & np.uint64(0x0055005500550055)
                x ^= t ^ (t << np.uint64(9))
                t = (x ^ (x >> np.uint64(18))) & np.uint64(0x0000333300003333)
                x ^= t ^ (t << np.uint64(18))
                t = (x ^ (x >> np.uint64(36))) & np.uint64(0x000000000F0F0F0F)
                x ^= t ^ (t << np.uint64(36))
                for i in range(8):
                    out[8 * j + i, c] = np.uint8((x >> np.uint64(8 * i)) & np.uint64(0xFF))


@njit(cache=True, nogil=True)
def gilboa_send(h0, h1, x, t8, t4, t2, t1, acc):  # pragma: no cover - compiled
    """The Gilboa sender's corrections and kept shares in one pass (see ot.cross): for OT
    row 64 l + k and word w, tau = h0 - h1 + x[e, w] goes to its width tier (t8: k < 32,
    t4: k < 48, t2: k < 56, t1: the rest; (L, count, M) each) and acc[l, w] -= h0 << k."""
    L, M = x.shape
    for e in range(L):
        for k in range(64):
            row = 64 * e + k
            sh = np.uint64(k)
            for w in range(M):
                a = h0[row, w]
                t = a - h1[row, w] + x[e, w]
                acc[e, w] -= a << sh
                if k < 32:
                    t8[e, k, w] = t
                elif k < 48:
                    t4[e, k - 32, w] = np.uint32(t & np.uint64(0xFFFFFFFF))
                elif k < 56:
                    t2[e, k - 48, w] = np.uint16(t & np.uint64(0xFFFF))
                else:
                    t1[e, k - 56, w] = np.uint8(t & np.uint64(0xFF))


@njit(cache=True, nogil=True)
def gilboa_recv(h, r, t8, t4, t2, t1, acc):  # pragma: no cover - compiled
    """The Gilboa receiver's shares in one pass: acc[l, w] += (h + r * tau) << k for OT
    row 64 l + k (tau zero-extended from its tier; higher bits vanish in the shift)."""
    L, M = acc.shape
    for e in range(L):
        for k in range(64):
            row = 64 * e + k
            sh = np.uint64(k)
            rb = np.uint64(r[row])
            for w in range(M):
                if k < 32:
                    t = t8[e, k, w]
                elif k < 48:
                    t = np.uint64(t4[e, k - 32, w])
                elif k < 56:
                    t = np.uint64(t2[e, k - 48, w])
                else:
                    t = np.uint64(t1[e, k - 56, w])
                acc[e, w] += (h[row, w] + rb * t) << sh
