"""Compiled (numba) kernels of malicious Shamir over GF(2^127 - 1):

- `first_level`: the first BitLT level of the malicious ltz (protocols.malicious.compare.
  _first_level), the selections by public bits and the additions in one pass, without
  numpy's slow masked copies of 16-byte structured elements;
- `check_dots`: the verification's two random linear combinations (protocols.malicious.
  chida18.check_value) in one pass, the partially reduced products summed as 32-bit limbs
  (reduced once, by the caller), instead of two products, two temporaries and two limb sums.

Elements are the DT127 layout viewed as uint64 (lo, hi) pairs, canonical in and out
(protocols.arith._m127_jit's helpers). Compiled on first call (`cache=True`)."""

from __future__ import annotations

import numpy as np
from numba import njit

from protocols.arith._m127_jit import _M32, _S32, _add, _mulred, _sub

_ZERO = np.uint64(0)


@njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def check_dots(a: np.ndarray, z: np.ndarray, rz: np.ndarray, n: int, out: np.ndarray) -> None:
    """The two dot products sum_k a_k rz_k and sum_k a_k z_k over n < 2^32 elements (flat
    words, 2n each) as out (8,) uint64: four 32-bit limb sums of each one's partially
    reduced products (value = sum_i out[i] 2^(32 i) mod p for u = out[:4], w = out[4:]);
    carry-free sums, so the loop vectorises."""
    u0 = u1 = u2 = u3 = w0 = w1 = w2 = w3 = _ZERO
    for i in range(n):
        j = 2 * i
        al, ah = a[j], a[j + 1]
        pl, ph = _mulred(al, ah, rz[j], rz[j + 1])
        u0 += pl & _M32
        u1 += pl >> _S32
        u2 += ph & _M32
        u3 += ph >> _S32
        pl, ph = _mulred(al, ah, z[j], z[j + 1])
        w0 += pl & _M32
        w1 += pl >> _S32
        w2 += ph & _M32
        w3 += ph >> _S32
    out[0], out[1], out[2], out[3] = u0, u1, u2, u3
    out[4], out[5], out[6], out[7] = w0, w1, w2, w3


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
