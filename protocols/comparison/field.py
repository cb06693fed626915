"""Comparison over GF(p) for any sharing scheme: Catrina and de Hoogh, "Improved Primitives
for Secure Multiparty Integer Computation", SCN 2010 (LTZ via Mod2m with shared random bits
and a logarithmic BitLT prefix; EQZ by a product tree). The public functions, costs and
ranges are in protocols.comparison, the costs in protocols.costs (field_bits_per_element);
this module holds the field circuits."""

from __future__ import annotations

import numpy as np

from protocols import beaver
from protocols.arith.domain import Domain
from protocols.core import open
from protocols.session import Session, Share
from protocols.truncation import public_low_bits

_U64 = np.uint64
_LOW63 = np.uint64((1 << 63) - 1)
_ONE = np.uint64(1)

# =========================================================================================
# GF(p): Catrina-de Hoogh with shared random bits
# =========================================================================================
# Layout: the bit positions are the FIRST axis, (width, N) for N flattened elements, so a
# level's lo/hi positions are strided row views whose rows are contiguous, and every
# product of a level is one contiguous (rows, N) block filled in place (no per-element
# gathers, no concatenation of Share wrappers).


def _one(s: Session) -> np.ndarray:
    """This party's share of the public constant 1 (0-d)."""
    return (Share(s.domain.zeros(()), s) + 1).data


def _public_bits(c_low: np.ndarray, m: int) -> np.ndarray:
    """(m, N) bool: bit i of c_low (N,) in row i."""
    return ((c_low[None, :] >> np.arange(m, dtype=_U64)[:, None]) & _ONE).astype(bool)


def _xnor_bits(s: Session, R: np.ndarray, cb: np.ndarray) -> np.ndarray:
    """Shares of 1 - (c_i XOR r_i) = (r_i if c_i else 1 - r_i) for shared bits R and public
    bits cb (both (w, N)): a selection, no multiplication."""
    D = s.domain
    E = D.sub(np.broadcast_to(_one(s), R.shape), R)
    np.copyto(E, R, where=cb)
    return E


def _pow2_sum(D: Domain, R: np.ndarray) -> np.ndarray:
    """sum_i 2^i R[i] over the first axis (local, exact mod p). On GF(2^127 - 1) the
    product by 2^i is a rotation of the 127-bit value (2^127 = 1), then a tree of adds."""
    m = R.shape[0]
    if D.dtype.names == ("lo", "hi") and m <= 64:  # GF(2^127 - 1) limbs
        V = np.empty_like(R)
        lo, hi = R["lo"], R["hi"]
        V[:1] = R[:1]
        if m > 1:
            i = np.arange(1, m, dtype=_U64)[:, None]
            V["lo"][1:] = (lo[1:] << i) | (hi[1:] >> (_U64(63) - i))
            V["hi"][1:] = ((hi[1:] << i) | (lo[1:] >> (_U64(64) - i))) & _LOW63
    else:
        pw = D.from_int(np.array([1 << i for i in range(m)], dtype=object))
        V = D.mul(R, pw.reshape((m,) + (1,) * (R.ndim - 1)))
    while V.shape[0] > 1:
        k = V.shape[0] // 2
        top = D.add(V[:k], V[k : 2 * k])
        if V.shape[0] % 2:
            D.add(top[:1], V[2 * k :], out=top[:1])
        V = top
    return V[0]


async def _prefix_lt(s: Session, G: np.ndarray, E: np.ndarray) -> np.ndarray:
    """Combine shares (G, E) of shape (w, N) over the positions (rows, LSB first), pairs
    (2k, 2k+1) per level: (G, E)_hi o (G, E)_lo = (G_hi + E_hi*G_lo, E_hi*E_lo); an odd
    top position is paired with the neutral (0, 1). Returns G of the whole word, (N,).
    Rounds: ceil(log2 w) (w >= 1)."""
    D = s.domain
    N = G.shape[1]
    w = G.shape[0]
    while w > 2:
        h, q = (w + 1) // 2, w // 2
        left = np.empty((2 * h, N), dtype=D.dtype)  # [E_hi; E_hi]
        right = np.empty((2 * h, N), dtype=D.dtype)  # [G_lo; E_lo]
        left[:q] = E[1 : 2 * q : 2]
        right[:q] = G[0 : 2 * q : 2]
        right[h : h + q] = E[0 : 2 * q : 2]
        if h > q:  # odd width: the top position meets the neutral element (0, 1)
            left[q] = _one(s)
            right[q] = G[w - 1]
            right[h + q] = E[w - 1]
        left[h:] = left[:h]
        P = (await beaver.mul(s, Share(left, s), Share(right, s))).data
        Gn = P[:h]
        D.add(Gn[:q], G[1 : 2 * q : 2], out=Gn[:q])  # + G_hi (the neutral top adds 0)
        G, E = Gn, P[h:]
        w = h
    if w == 2:
        p = (await beaver.mul(s, Share(E[1], s), Share(G[0], s))).data
        return D.add(G[1], p)
    return G[0]


async def _prod_tree(s: Session, E: np.ndarray) -> np.ndarray:
    """Product over the rows of E (w, N) in ceil(log2 w) rounds (odd widths padded with 1)."""
    D = s.domain
    N = E.shape[1]
    while E.shape[0] > 1:
        w = E.shape[0]
        h, q = (w + 1) // 2, w // 2
        left = np.empty((h, N), dtype=D.dtype)
        right = np.empty((h, N), dtype=D.dtype)
        left[:q] = E[0 : 2 * q : 2]
        right[:q] = E[1 : 2 * q : 2]
        if h > q:
            left[q] = E[w - 1]
            right[q] = _one(s)
        E = (await beaver.mul(s, Share(left, s), Share(right, s))).data
    return E[0]


# -- from random bits [CdH10]: the whole comparison in field products
async def ltz_bits(s: Session, x: Share, kappa: int, ell: int) -> Share:
    D = s.domain
    m = ell - 1
    S, N = x.shape, x.size
    rbits = await s.prep.bits(S + (m,))
    rr = Share(await s.prep.bounded_randoms(S, kappa + 1), s)
    R = np.ascontiguousarray(rbits.reshape(N, m).T)  # (m, N): position i in row i
    r_low = Share(_pow2_sum(D, R), s)
    y = x.reshape(N) + (1 << (ell - 1))  # in [0, 2^ell)
    (c,) = await open(s, y + rr.reshape(N) * (1 << m) + r_low)
    c_low = public_low_bits(D, c, m)
    cb = _public_bits(c_low, m)
    # [c_low < r_low]: per bit G = r (1 - c) (r where c = 0, else 0), E = 1 - (c XOR r)
    G = R.copy()
    np.copyto(G, D.zeros(()), where=cb)
    E = _xnor_bits(s, R, cb)
    u = Share(await _prefix_lt(s, G, E), s)
    a = (u * (1 << m) - r_low) + c_low  # y mod 2^m
    nonneg = (y - a) * pow(2, -m, D.modulus)  # floor(y / 2^m) = [x >= 0]
    return (1 - nonneg).reshape(S)


async def eqz_bits(s: Session, x: Share, kappa: int, ell: int) -> Share:
    D = s.domain
    S, N = x.shape, x.size
    rbits = await s.prep.bits(S + (ell,))
    rr = Share(await s.prep.bounded_randoms(S, kappa), s)
    R = np.ascontiguousarray(rbits.reshape(N, ell).T)
    r_low = Share(_pow2_sum(D, R), s)
    (c,) = await open(s, x.reshape(N) + (1 << (ell - 1)) + rr.reshape(N) * (1 << ell) + r_low)
    cs = public_low_bits(D, c, ell) - _U64(1 << (ell - 1))
    if ell < 64:
        cs &= _U64((1 << ell) - 1)
    E = _xnor_bits(s, R, _public_bits(cs, ell))  # 1 - (c_i XOR r_i)
    return Share(await _prod_tree(s, E), s).reshape(S)
