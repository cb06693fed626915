"""Comparisons from edaBits, for Z_2^64 (additive) and GF(p) (any scheme): mask x with an
edaBit r (shared arithmetically and bit by bit in XOR shares), open c, compare c with r's
bits in packed XOR shares (protocols.bitwise), convert the result bit with a daBit. The
public functions and ranges are in protocols.comparison, the costs in protocols.costs
(eda_per_peer); this module holds the circuits [EGKRS20; CdH10 for the statistical masking over GF(p)].

  Z_2^64: c = open(x + r),  msb(x) = c_63 XOR r_63 XOR [c mod 2^63 < r mod 2^63]
  GF(p):  y = x + 2^(l-1) in [0, 2^l),  c = open(y + 2^l r'' + r') with r' the l-bit edaBit,
          r'' a kappa-bit random; c < 2^(l+kappa+1) < p, so c mod 2^l = (y + r') mod 2^l and
          msb_l(y) = c_(l-1) XOR r'_(l-1) XOR [c mod 2^(l-1) < r' mod 2^(l-1)];  x < 0 iff
          msb_l(y) = 0.  x = 0 iff (c - 2^(l-1)) mod 2^l = r'.

ltz_mul folds the product into the same rounds: with the daBit (b_a, b_b) fetched first,
b_a * y is a Beaver product whose openings ride in the first message, and the result bit is
b = e XOR b_a for the opened e, so b*y = (y - b_a y if e else b_a y): no extra round.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np

from protocols import bitwise
from protocols.core import open
from protocols.errors import ShapeMismatch
from protocols.session import Session, Share
from protocols.truncation import public_low_bits

_U64 = np.uint64
_ONE = _U64(1)


#: an edaBit (arithmetic share, XOR word) and a Beaver triple, as the source hands them out
EdaBit = tuple[np.ndarray, np.ndarray]
Triple = tuple[np.ndarray, np.ndarray, np.ndarray]


async def _fetch(s: Session, shape: tuple[int, ...], ell: int | None, kappa: int) -> tuple[EdaBit, np.ndarray | None]:
    """(edaBit, r'' or None): ell None on Z_2^64 (64-bit edaBits, no r'')."""
    if ell is None:
        return await s.prep.edabits(shape), None
    return await s.prep.edabits(shape, ell), await s.prep.bounded_randoms(shape, kappa)


def _masked(s: Session, x: Share, ell: int | None, eda: EdaBit, rr: np.ndarray | None) -> Share:
    r_a = Share(eda[0], s)
    if ell is None or rr is None:
        return x + r_a
    return x + (1 << (ell - 1)) + Share(rr, s) * (1 << ell) + r_a


def _low(s: Session, c: np.ndarray, ell: int | None) -> np.ndarray:
    c = c.reshape(-1)
    return c if ell is None else public_low_bits(s.domain, c, ell)


def _beaver_parts(s: Session, u: Share, y: Share, triple: Triple) -> tuple[Share, Share]:
    a, b, _ = triple
    D = s.domain
    return Share(D.sub(u.data, a), s), Share(D.sub(y.data, b), s)


def _beaver_finish(s: Session, triple: Triple, d: np.ndarray, e: np.ndarray) -> np.ndarray:
    """c + d*b + e*(a + d) at the party adding public constants, c + d*b + e*a elsewhere."""
    a, b, c = triple
    left = s.domain.add(a, d) if s.scheme.adds_public(s.pid) else a
    return s.domain.muladd(c, [(d, b), (left, e)])


async def ltz(
    s: Session, x: Share, ell: int | None, kappa: int, y: Share | None = None,
    later: Callable[[], Awaitable[Share]] | None = None,
) -> tuple[Share, Share | None]:
    """(ltz(x), ltz(x) * y or None). ell: the value width l on GF(p), None on Z_2^64.

    The factor is either a Share `y` (its Beaver openings ride in the first message) or
    `later`, a function returning an awaitable of the Share (called once the items are
    fetched; its Beaver opening then runs in a child session concurrently with the AND
    levels: no extra round on the critical path, one more opening in Stats)."""
    S = x.shape
    eda, rr = await _fetch(s, S, ell, kappa)
    m = 63 if ell is None else ell - 1
    dabit = await s.prep.dabits(S)
    b_a = Share(dabit[0], s)
    to_open = [_masked(s, x, ell, eda, rr)]
    task = None
    if y is not None or later is not None:
        triple = await s.prep.triples(S)  # fetched before any concurrent branch starts
    if y is not None:
        to_open += _beaver_parts(s, b_a, y, triple)
    elif later is not None:
        task = asyncio.ensure_future(_later_product(s, later, b_a, triple))
    try:
        c, *de = await open(s, *to_open)
        c = _low(s, c, ell)
        r_b = eda[1].reshape(-1)
        u = await bitwise.bitlt(s, c, r_b, m)
        u ^= bitwise.pack_bits(r_b >> _U64(m))
        flip = ((c >> _U64(m)) & _ONE).astype(bool)  # msb = c_m ^ r_m ^ BitLT
        if ell is not None:
            flip = ~flip  # over GF(p) the circuit yields msb(x + 2^(l-1)) = [x >= 0]
        e = await bitwise.b2a_open(s, u, dabit[1], flip)
        if task is not None:
            y, bay = await task
        elif y is not None:
            bay = _beaver_finish(s, triple, *(v.reshape(S) for v in de))
    finally:
        if task is not None and not task.done():
            task.cancel()
    ba = b_a.data.reshape(-1)
    b = bitwise.select_bit(e, (1 - Share(ba, s)).data, ba)
    if y is None:
        return Share(b.reshape(S), s), None
    bay = bay.reshape(-1)
    by = bitwise.select_bit(e, s.domain.sub(y.data.reshape(-1), bay), bay)
    return Share(b.reshape(S), s), Share(by.reshape(S), s)


async def _later_product(
    s: Session, later: Callable[[], Awaitable[Share]], b_a: Share, triple: Triple
) -> tuple[Share, np.ndarray]:
    """(y, b_a * y) for y = await later(), the Beaver opening in a child session."""
    y = await later()
    if not isinstance(y, Share) or y.shape != b_a.shape:
        raise ShapeMismatch(f"ltz_mul: the factor must be a Share of shape {b_a.shape}")
    d, e = await open(s.child("ltzmul"), *_beaver_parts(s, b_a, y, triple))
    return y, _beaver_finish(s, triple, d, e)


async def eqz(s: Session, x: Share, ell: int | None, kappa: int) -> Share:
    """eqz(x). ell: the value width l on GF(p), None on Z_2^64."""
    S = x.shape
    eda, rr = await _fetch(s, S, ell, kappa)
    (c,) = await open(s, _masked(s, x, ell, eda, rr))
    c = _low(s, c, ell)
    if ell is not None:
        c = c - _U64(1 << (ell - 1))  # mod 2^64; only the low l bits are read
    r_b = eda[1].reshape(-1)
    E = (r_b ^ ~c) if s.pid == 0 else r_b.copy()  # E_i = [r_i == c_i]
    return await bitwise.b2a(s, await bitwise.all_ones(s, E, 64 if ell is None else ell), S)
