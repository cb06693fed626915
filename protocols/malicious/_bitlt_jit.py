"""Compiled (numba) first BitLT level of the malicious ltz (protocols.malicious.compare.
_first_level) over GF(2^127 - 1): the selections by public bits and the additions of one
pass, without numpy's slow masked copies of 16-byte structured elements. Elements are the
DT127 layout viewed as uint64 (lo, hi) pairs, canonical in and out (protocols.arith.
_m127_jit's helpers). Compiled on first call (`cache=True`)."""

from __future__ import annotations

import numpy as np
from numba import njit

from protocols.arith._m127_jit import _add, _sub

_ZERO = np.uint64(0)


@njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def first_level(R: np.ndarray, P: np.ndarray, cb: np.ndarray, one: np.ndarray,
                G: np.ndarray, E: np.ndarray) -> None:
    """R (w, N, 2), P (w // 2, N, 2), cb (w, N) uint8, one (2,); writes G, E (ceil(w/2), N, 2):
    for pair i (lo = 2i, hi = 2i + 1), by (c_hi, c_lo):
    (0, 0) G = R_hi + R_lo - P, E = one - G;  (0, 1) G = R_hi, E = R_lo - P;
    (1, 0) G = P, E = R_hi - P;  (1, 1) G = 0, E = P;
    an odd top row j: G = 0 if c_j else R_j, E = R_j if c_j else one - R_j."""
    w, N = R.shape[0], R.shape[1]
    q = w // 2
    ol, oh = one[0], one[1]
    for i in range(q):
        lo, hi = 2 * i, 2 * i + 1
        for k in range(N):
            ch, cl = cb[hi, k], cb[lo, k]
            hl, hh = R[hi, k, 0], R[hi, k, 1]
            ll, lh = R[lo, k, 0], R[lo, k, 1]
            pl, ph = P[i, k, 0], P[i, k, 1]
            if ch == 0 and cl == 0:
                sl, sh = _add(hl, hh, ll, lh)
                gl, gh = _sub(sl, sh, pl, ph)
                el, eh = _sub(ol, oh, gl, gh)
            elif ch == 0:
                gl, gh = hl, hh
                el, eh = _sub(ll, lh, pl, ph)
            elif cl == 0:
                gl, gh = pl, ph
                el, eh = _sub(hl, hh, pl, ph)
            else:
                gl, gh = _ZERO, _ZERO
                el, eh = pl, ph
            G[i, k, 0], G[i, k, 1] = gl, gh
            E[i, k, 0], E[i, k, 1] = el, eh
    if w > 2 * q:
        j = w - 1
        for k in range(N):
            tl, th = R[j, k, 0], R[j, k, 1]
            if cb[j, k]:
                G[q, k, 0], G[q, k, 1] = _ZERO, _ZERO
                E[q, k, 0], E[q, k, 1] = tl, th
            else:
                G[q, k, 0], G[q, k, 1] = tl, th
                el, eh = _sub(ol, oh, tl, th)
                E[q, k, 0], E[q, k, 1] = el, eh
