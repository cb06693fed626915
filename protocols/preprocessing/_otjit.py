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
