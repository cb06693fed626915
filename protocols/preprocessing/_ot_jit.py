"""Compiled (numba) kernels of the OT extension (protocols.preprocessing._otext) and the
Gilboa products of the OT source (protocols.preprocessing.ot.cross): one pass over the data
each, writing into preallocated outputs, instead of several whole-array numpy passes and
their temporaries. They compute exactly what the numpy references compute (the tests check
it bit for bit): the IKNP bit-matrix transpose [IKNP03, sec. 4], the tweak / fold steps of
the TMMO hash pi(pi(x) ^ i) ^ pi(x) [GKWY20, sec. 7] around the two fixed-key AES passes
(which stay in OpenSSL), and the tiered Gilboa corrections [Gil99]. No randomness here.

All arithmetic wraps mod 2^64. cache=True, and every kernel is run once on tiny inputs at
import (`_warm`), so a node's first extension does not pay the compile inside a peer's
receive deadline (after the first run the compiled code comes from numba's cache).

[IKNP03] Y. Ishai, J. Kilian, K. Nissim, E. Petrank, "Extending oblivious transfers
efficiently", CRYPTO 2003.
[GKWY20] C. Guo, J. Katz, X. Wang, Y. Yu, "Efficient and secure multiparty computation from
fixed-key block ciphers", IEEE S&P 2020.
[Gil99] N. Gilboa, "Two party RSA key generation", CRYPTO 1999.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_kernel = njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
_U = np.uint64
_FF = _U(0xFF)
_M9 = _U(0x0055005500550055)
_M18 = _U(0x0000333300003333)
_M36 = _U(0x000000000F0F0F0F)


@_kernel
def transpose(rows: np.ndarray, out: np.ndarray) -> None:
    """(K, mb) packed bit rows -> out (8 mb, K / 8) packed bit columns (packbits order, MSB
    first): per 8 x 8 bit block, the 8 row bytes as one word (row b in byte b), an
    anti-diagonal word transpose by three delta swaps (Hacker's Delight, sec. 7-3), byte i
    of the result is output row 8 j + i."""
    K, mb = rows.shape
    for c in range(K // 8):
        for j in range(mb):
            x = _U(0)
            for b in range(8):
                x |= _U(rows[8 * c + b, j]) << _U(8 * b)
            t = (x ^ (x >> _U(9))) & _M9
            x ^= t ^ (t << _U(9))
            t = (x ^ (x >> _U(18))) & _M18
            x ^= t ^ (t << _U(18))
            t = (x ^ (x >> _U(36))) & _M36
            x ^= t ^ (t << _U(36))
            for i in range(8):
                out[8 * j + i, c] = np.uint8((x >> _U(8 * i)) & _FF)


_SWAPS = (
    (32, _U(0x00000000FFFFFFFF)), (16, _U(0x0000FFFF0000FFFF)), (8, _U(0x00FF00FF00FF00FF)),
    (4, _U(0x0F0F0F0F0F0F0F0F)), (2, _U(0x3333333333333333)), (1, _U(0x5555555555555555)),
)


@_kernel
def transpose64(R: np.ndarray, out: np.ndarray) -> None:
    """`transpose` for K a multiple of 64 and m/8 of 8, on words: R = rows viewed as
    (K, W) little-endian words, out = the (64 W, K / 8) result viewed as (64 W, K / 64)
    words. Per 64 x 64 bit block the recursive quadrant swap (Hacker's Delight, sec. 7-3,
    6 stages) instead of 64 8 x 8 blocks. packbits order puts column c of a word at bit
    c ^ 7 and row r of an output word at bit r ^ 7, hence the index ^ 7 on both sides."""
    K, W = R.shape
    x = np.empty(64, _U)
    for w in range(W):
        for lb in range(K // 64):
            for r in range(64):
                x[r] = R[64 * lb + (r ^ 7), w]
            for j, m in _SWAPS:
                sj = _U(j)
                for k0 in range(0, 64, 2 * j):
                    for k in range(k0, k0 + j):
                        t = ((x[k] >> sj) ^ x[k + j]) & m
                        x[k] ^= t << sj
                        x[k + j] ^= t
            for c in range(64):
                out[64 * w + c, lb] = x[c ^ 7]


@_kernel
def cot_send(h0: np.ndarray, h1: np.ndarray, x: np.ndarray, tau: np.ndarray, kept: np.ndarray) -> None:
    """Sender of additive correlated OTs (`_finish_add`): tau = h0 + x - h1, kept = -h0."""
    for i in range(x.shape[0]):
        for w in range(x.shape[1]):
            a = h0[i, w]
            tau[i, w] = a + x[i, w] - h1[i, w]
            kept[i, w] = _U(0) - a


@_kernel
def cot_recv(h: np.ndarray, got: np.ndarray, r: np.ndarray) -> None:
    """Receiver of additive correlated OTs: h += r * got (r the 0/1 choices), in place."""
    for i in range(h.shape[0]):
        if r[i]:
            for w in range(h.shape[1]):
                h[i, w] += got[i, w]


@_kernel
def tmmo_tweak(p: np.ndarray, base: np.uint64, y: np.ndarray) -> None:
    """y[j, b] = pi(x_j) ^ (base + j, b) for p = pi(x) as (m, 2) words, y (m, nb, 2)."""
    for j in range(p.shape[0]):
        lo = p[j, 0] ^ (base + _U(j))
        hi = p[j, 1]
        for b in range(y.shape[1]):
            y[j, b, 0] = lo
            y[j, b, 1] = hi ^ _U(b)


@_kernel
def tmmo_fold(e: np.ndarray, p: np.ndarray, out: np.ndarray) -> None:
    """out[j, w] = e[j, w // 2, w % 2] ^ p[j, w % 2] for w < M (out (m, M), e (m, nb, 2))."""
    M = out.shape[1]
    for j in range(out.shape[0]):
        for w in range(M):
            out[j, w] = e[j, w // 2, w % 2] ^ p[j, w % 2]


@_kernel
def gilboa_send(
    h0: np.ndarray, h1: np.ndarray, x: np.ndarray,
    t8: np.ndarray, t4: np.ndarray, t2: np.ndarray, t1: np.ndarray, acc: np.ndarray,
) -> None:
    """Sender side of `cross` for one peer: tau = h0 - h1 + x per OT 64 l + k (h0, h1
    (64 L, M), x (L, M)) into the width tiers (t8 (L, 32, M) for k < 32, t4 (L, 16, M),
    t2 (L, 8, M), t1 (L, 8, M), the low bits only), and acc[l] -= sum_k 2^k h0."""
    L, M = x.shape
    for l_ in range(L):
        for k in range(64):
            i = 64 * l_ + k
            sh = _U(k)
            for w in range(M):
                a = h0[i, w]
                t = a - h1[i, w] + x[l_, w]
                if k < 32:
                    t8[l_, k, w] = t
                elif k < 48:
                    t4[l_, k - 32, w] = np.uint32(t & _U(0xFFFFFFFF))
                elif k < 56:
                    t2[l_, k - 48, w] = np.uint16(t & _U(0xFFFF))
                else:
                    t1[l_, k - 56, w] = np.uint8(t & _FF)
                acc[l_, w] -= a << sh


@_kernel
def gilboa_recv(
    h: np.ndarray, t8: np.ndarray, t4: np.ndarray, t2: np.ndarray, t1: np.ndarray,
    r: np.ndarray, acc: np.ndarray,
) -> None:
    """Receiver side of `cross` for one peer: acc[l] += sum_k 2^k (h + r * tau) per OT
    64 l + k, tau read from the width tiers (zero-extended), r the 0/1 choice bits."""
    L, M = acc.shape
    for l_ in range(L):
        for k in range(64):
            i = 64 * l_ + k
            sh = _U(k)
            ri = r[i]
            for w in range(M):
                v = h[i, w]
                if ri:
                    if k < 32:
                        v += t8[l_, k, w]
                    elif k < 48:
                        v += _U(t4[l_, k - 32, w])
                    elif k < 56:
                        v += _U(t2[l_, k - 48, w])
                    else:
                        v += _U(t1[l_, k - 56, w])
                acc[l_, w] += v << sh


@_kernel
def tmmo_fold_rows(e: np.ndarray, p: np.ndarray, out: np.ndarray) -> None:
    """`tmmo_fold` with e as (m, 2 nb) words (its (m, nb, 2) blocks flattened): out[j, w] =
    e[j, w] ^ p[j, w & 1] for w < M; word pairs without the index arithmetic."""
    m, M = out.shape
    h = M >> 1
    for j in range(m):
        p0 = p[j, 0]
        p1 = p[j, 1]
        for b in range(h):
            out[j, 2 * b] = e[j, 2 * b] ^ p0
            out[j, 2 * b + 1] = e[j, 2 * b + 1] ^ p1
        if M & 1:
            out[j, M - 1] = e[j, M - 1] ^ p0


@_kernel
def gilboa_send_h(
    e0: np.ndarray, p0: np.ndarray, e1: np.ndarray, p1: np.ndarray, lo: int, x: np.ndarray,
    t8: np.ndarray, t4: np.ndarray, t2: np.ndarray, t1: np.ndarray, acc: np.ndarray,
) -> None:
    """`gilboa_send` on one block of hash rows lo .. lo + len(p0) - 1, reading h0 and h1 from
    the TMMO blocks before their fold (h[j, w] = e[j, w] ^ p[j, w & 1], e (rows, 2 nb)
    words): the same outputs, without writing and re-reading the (64 L, M) hash arrays."""
    M = x.shape[1]
    for i in range(p0.shape[0]):
        g = lo + i
        l_ = g >> 6
        k = g & 63
        sh = _U(k)
        for w in range(M):
            a = e0[i, w] ^ p0[i, w & 1]
            t = a - (e1[i, w] ^ p1[i, w & 1]) + x[l_, w]
            if k < 32:
                t8[l_, k, w] = t
            elif k < 48:
                t4[l_, k - 32, w] = np.uint32(t & _U(0xFFFFFFFF))
            elif k < 56:
                t2[l_, k - 48, w] = np.uint16(t & _U(0xFFFF))
            else:
                t1[l_, k - 56, w] = np.uint8(t & _FF)
            acc[l_, w] -= a << sh


@_kernel
def gilboa_recv_h(
    e: np.ndarray, p: np.ndarray, lo: int, t8: np.ndarray, t4: np.ndarray, t2: np.ndarray,
    t1: np.ndarray, r: np.ndarray, acc: np.ndarray,
) -> None:
    """`gilboa_recv` on one block of hash rows lo .. lo + len(p) - 1, h read from the TMMO
    blocks before their fold (see `gilboa_send_h`)."""
    M = acc.shape[1]
    for i in range(p.shape[0]):
        g = lo + i
        l_ = g >> 6
        k = g & 63
        sh = _U(k)
        ri = r[g]
        for w in range(M):
            v = e[i, w] ^ p[i, w & 1]
            if ri:
                if k < 32:
                    v += t8[l_, k, w]
                elif k < 48:
                    v += _U(t4[l_, k - 32, w])
                elif k < 56:
                    v += _U(t2[l_, k - 48, w])
                else:
                    v += _U(t1[l_, k - 56, w])
            acc[l_, w] += v << sh


@_kernel
def cot_send_h(
    e0: np.ndarray, p0: np.ndarray, e1: np.ndarray, p1: np.ndarray, lo: int, x: np.ndarray,
    tau: np.ndarray, kept: np.ndarray,
) -> None:
    """`cot_send` on hash rows lo .. lo + len(p0) - 1 from the TMMO blocks before their fold."""
    M = x.shape[1]
    for i in range(p0.shape[0]):
        g = lo + i
        for w in range(M):
            a = e0[i, w] ^ p0[i, w & 1]
            tau[g, w] = a + x[g, w] - (e1[i, w] ^ p1[i, w & 1])
            kept[g, w] = _U(0) - a


@_kernel
def cot_recv_h(e: np.ndarray, p: np.ndarray, lo: int, got: np.ndarray, r: np.ndarray, out: np.ndarray) -> None:
    """`cot_recv` on hash rows lo .. lo + len(p) - 1 from the TMMO blocks before their fold:
    out = h + r * got."""
    M = out.shape[1]
    for i in range(p.shape[0]):
        g = lo + i
        if r[g]:
            for w in range(M):
                out[g, w] = (e[i, w] ^ p[i, w & 1]) + got[g, w]
        else:
            for w in range(M):
                out[g, w] = e[i, w] ^ p[i, w & 1]


@_kernel
def bitwords(h: np.ndarray, out: np.ndarray) -> None:
    """(64 L, M) hash words -> out (k, L): bit i of out[t, e] is bit t of h[64 e + i] (the
    boolean triples' k-bit OT messages, `_otext._bitwords` is the numpy reference)."""
    k, L = out.shape
    for e in range(L):
        for t in range(k):
            c = t >> 6
            sh = _U(t & 63)
            w = _U(0)
            for i in range(64):
                w |= ((h[64 * e + i, c] >> sh) & _U(1)) << _U(i)
            out[t, e] = w


@_kernel
def scatter_bits(words: np.ndarray, pos: np.ndarray, out: np.ndarray) -> None:
    """(K, W) words holding N * P bits (bit b at word b >> 6, bit b & 63; element e's bits
    e P .. e P + P - 1) -> out (K, N): bit p of element e at position pos[p], others 0
    (protocols.preprocessing._otmixed._scatter; `_scatter_np` is the numpy reference)."""
    K, N = out.shape
    P = pos.shape[0]
    for kk in range(K):
        for e in range(N):
            v = _U(0)
            for p in range(P):
                b = e * P + p
                v |= ((words[kk, b >> 6] >> _U(b & 63)) & _U(1)) << _U(pos[p])
            out[kk, e] = v


def _warm() -> None:
    """Compile (or load from the cache) every kernel on tiny inputs."""
    rows = np.zeros((16, 2), np.uint8)
    transpose(rows, np.empty((16, 2), np.uint8))
    transpose64(np.zeros((64, 1), _U), np.empty((64, 1), _U))
    w = np.zeros((2, 1), _U)
    cot_send(w, w, w, np.empty((2, 1), _U), np.empty((2, 1), _U))
    ro = np.zeros((2, 1), _U)
    ro.setflags(write=False)  # received arrays may be read-only: their own specialisation
    for got in (w, ro):
        cot_recv(w, got, np.zeros(2, np.uint8))
    p = np.zeros((2, 2), _U)
    y = np.empty((2, 2, 2), _U)
    tmmo_tweak(p, _U(0), y)
    tmmo_fold(y, p, np.empty((2, 3), _U))
    for M in (1,):
        h = np.zeros((64, M), _U)
        x = np.zeros((1, M), _U)
        t8, t4 = np.empty((1, 32, M), _U), np.empty((1, 16, M), np.uint32)
        t2, t1 = np.empty((1, 8, M), np.uint16), np.empty((1, 8, M), np.uint8)
        acc = np.zeros((1, M), _U)
        gilboa_send(h, h, x, t8, t4, t2, t1, acc)
        gilboa_recv(h, t8, t4, t2, t1, np.zeros(64, np.uint8), acc)
        for t in (t8, t4, t2, t1):
            t.setflags(write=False)
        gilboa_recv(h, t8, t4, t2, t1, np.zeros(64, np.uint8), acc)
    e2 = np.zeros((64, 2), _U)
    p2 = np.zeros((64, 2), _U)
    tmmo_fold_rows(e2, p2, np.empty((64, 1), _U))
    for M in (1,):
        x = np.zeros((1, M), _U)
        t8, t4 = np.empty((1, 32, M), _U), np.empty((1, 16, M), np.uint32)
        t2, t1 = np.empty((1, 8, M), np.uint16), np.empty((1, 8, M), np.uint8)
        acc = np.zeros((1, M), _U)
        gilboa_send_h(e2, p2, e2, p2, 0, x, t8, t4, t2, t1, acc)
        gilboa_recv_h(e2, p2, 0, t8, t4, t2, t1, np.zeros(64, np.uint8), acc)
        for t in (t8, t4, t2, t1):
            t.setflags(write=False)
        gilboa_recv_h(e2, p2, 0, t8, t4, t2, t1, np.zeros(64, np.uint8), acc)
    scatter_bits(np.zeros((1, 1), _U), np.zeros(2, np.int64), np.empty((1, 3), _U))
    w64 = np.zeros((64, 1), _U)
    bitwords(w64, np.empty((1, 1), _U))
    cot_send_h(e2, p2, e2, p2, 0, w64, np.empty((64, 1), _U), np.empty((64, 1), _U))
    ro64 = np.zeros((64, 1), _U)
    ro64.setflags(write=False)
    for got in (w64, ro64):
        cot_recv_h(e2, p2, 0, got, np.zeros(64, np.uint8), np.empty((64, 1), _U))


_warm()
