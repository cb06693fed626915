"""Compiled (numba) kernels of malicious Shamir over GF(2^127 - 1):

- `block_level`: the first BitLT levels of the malicious ltz (protocols.malicious.compare.
  _first_level), per block of positions a combination of offline monomials chosen by the
  public bits, in one pass (numpy's selections of 16-byte structured elements are slow);
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
def block_level(R: np.ndarray, P: np.ndarray, cb: np.ndarray, one: np.ndarray, cg: np.ndarray,
                ce: np.ndarray, midx: np.ndarray, pos0: int, row0: int, nmono: int, k: int, nblk: int,
                G: np.ndarray, E: np.ndarray) -> None:
    """The (G, E) of nblk blocks of k positions starting at position pos0 (block b: positions
    pos0 + b k ..; its offline monomials: rows row0 + b nmono .. of P): for each element, the
    pattern of its k public bits cb selects a row of the coefficient tables cg, ce (2^k
    patterns x 2^k monomials, small integers), and G, E are those combinations of the
    monomials (midx[mask]: -1 the constant `one`, -(j + 2) the bit R_j, else P's row).
    R (w, N, 2), P (rows, N, 2), cb (w, N) uint8, G and E (nblk, N, 2)."""
    N = R.shape[1]
    for b in range(nblk):
        p0 = pos0 + b * k
        r0 = row0 + b * nmono
        for n in range(N):
            pat = np.int64(0)
            for j in range(k):
                pat |= np.int64(cb[p0 + j, n]) << np.int64(j)
            gl = gh = el = eh = _ZERO
            for mm in range(1 << k):
                cgv = cg[pat, mm]
                cev = ce[pat, mm]
                if cgv == 0 and cev == 0:
                    continue
                t = midx[mm]
                if t == -1:
                    vl, vh = one[0], one[1]
                elif t < -1:
                    vl, vh = R[p0 - t - 2, n, 0], R[p0 - t - 2, n, 1]
                else:
                    vl, vh = P[r0 + t, n, 0], P[r0 + t, n, 1]
                for _ in range(abs(cgv)):
                    if cgv > 0:
                        gl, gh = _add(gl, gh, vl, vh)
                    else:
                        gl, gh = _sub(gl, gh, vl, vh)
                for _ in range(abs(cev)):
                    if cev > 0:
                        el, eh = _add(el, eh, vl, vh)
                    else:
                        el, eh = _sub(el, eh, vl, vh)
            G[b, n, 0], G[b, n, 1] = gl, gh
            E[b, n, 0], E[b, n, 1] = el, eh
