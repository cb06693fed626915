"""Comparison of shared integers: less-than-zero, less-than, equality, select, and ReLU, abs,
max, min, clip on top. Results are shared bits (0/1 in the domain).

The protocols mask x with a random r, open c = x + r, and compare the public c with r's bits
in XOR shares among all n parties (protocols.bitwise: packed bit vectors, one AND gate per
pair of positions per level), then turn the result bit into an arithmetic share with a daBit:

* Z_2^64 with additive sharing, from edaBits [EGKRS20] (r shared in the ring and bit by bit):
      c = open(x + r);  msb(x) = msb(c) XOR msb(r) XOR [c mod 2^63 < r mod 2^63]
  Exact for every int64; perfectly hiding (c is uniform). With `ltz_tuples` preprocessing
  (the dealers) the same carry circuit runs in 3 rounds: radix 4, with the products of the
  mask bits precomputed (protocols.comparison.ring3).
* GF(p), any scheme, from edaBits of l bits and a kappa-bit random r'' [EGKRS20 with the
  statistical masking of Catrina and de Hoogh, SCN 2010]: for y = x + 2^(l-1) in [0, 2^l),
      c = open(y + 2^l r'' + r'),  c* = c mod 2^l = (y + r') mod 2^l,
      msb_l(y) = c*_(l-1) XOR r'_(l-1) XOR [c* mod 2^(l-1) < r' mod 2^(l-1)],  x < 0 iff msb_l(y) = 0
  and x = 0 iff c* - 2^(l-1) = r' mod 2^l (AND of l bit equalities). p > 2^(l+kappa+1) keeps
  c below p; c is within statistical distance 2^-kappa of uniform (kappa = 40).
  Sources without edaBits for fields (the dealer node) take Catrina and de Hoogh's circuit in field
  products instead (protocols.comparison.field: l - 1 shared random bits, a logarithmic
  BitLT prefix of Beaver products; EQZ by a product tree): fewer rounds, ~25x more bytes.
  Inputs |x| < 2^(l-1) with l = truncation.value_bits(domain) (64 on GF(2^127-1), 19 on
  GF(2^61-1)) by default, or l = bits when the caller states |x| < 2^(bits-1) (keyword
  `bits`, 2 <= bits <= that default): fewer random bits, rounds and bytes; a value outside
  the stated range gives a wrong result, so pass it only for a documented bound.
  D. Escudero, S. Ghosh, M. Keller, R. Rachuri, P. Scholl, "Improved Primitives for MPC over
  Mixed Arithmetic-Binary Circuits", CRYPTO 2020; O. Catrina and S. de Hoogh, "Improved
  Primitives for Secure Multiparty Integer Computation", SCN 2010.

Costs for N elements (e = domain.elem_bytes; bytes each party sends to each peer). The
table is protocols.costs (ltz, ltz_mul, eqz by backend name); `eda_costs` and `field_costs`
here are its eda_per_peer and field_bits_per_element:
  from edaBits (`eda_costs(op, l, N, e)`; Z_2^64: l = 64): one opening of N elements, the
  boolean circuit over m positions (ltz: m = l - 1, eqz: m = l; w = 2^ceil(log2 m)), one
  daBit conversion:
      Rounds  2 + ceil(log2 m):  ltz 8 (l = 64, also Z_2^64), 7 (l = 33), 6 (l = 17);
                                 eqz 8 (l = 64, also Z_2^64), 7 (l = 32)
      Bytes   N*e + 8*W, W = opened 64-bit words (bitwise.opened_words), for 64 | N:
              W = N*(3*(w - 2) + 3)/64 (ltz), N*(2*w - 1)/64 (eqz): ltz 189 bits per value
              at l = 64 (Z_2^64: 8 + 23.6 = 31.6 bytes; GF(2^127-1): 16 + 23.6 = 39.6), eqz 127
  ltz/lt  Z_2^64 with ltz_tuples: Rounds 3, Bytes N*40
  ltz_mul Z_2^64 with ltz_tuples: Rounds 3, Bytes N*48; else ltz + one product
  GF(p) from random bits (`field_costs(op, l)`: (rounds, field elements per element)):
      ltz Rounds 1 + ceil(log2(l-1)), elements 251 (l = 64), 123 (l = 33), 59 (l = 17);
      eqz Rounds 1 + ceil(log2 l), elements 127 (l = 64), 63 (l = 32)
  select    Rounds 1, Bytes 2*N*e (one Beaver product)
  relu, absolute, maximum, minimum, clip: one ltz_mul (on 2N elements for clip): on
  Z_2^64 with ltz_tuples 3 rounds, N*48 bytes (96 for clip); from edaBits the rounds of
  ltz, its bytes plus one product's; from random bits ltz + 1 round and one product.
GF(p) random-bit circuits as functions of l (`field_costs`): one opening, then a prefix
circuit over w positions (ltz: w = l - 1, eqz: w = l) whose levels halve the width
(w -> ceil(w/2), an odd width padded with the neutral element), one Beaver round each:
  R_lt(l) = 1 + ceil(log2(l-1)),  B_lt(l) = 1 + 2*(sum over levels w > 2 of 2*ceil(w/2)) + 2
            (the last term only if l > 2);
  R_eq(l) = 1 + ceil(log2 l),     B_eq(l) = 1 + 2*(sum over levels w > 1 of ceil(w/2)).
Preprocessing per element from edaBits: one edaBit (l bits; GF(p) also one kappa-bit
random), one daBit, boolean triples for the AND gates (words: see bitwise), nothing else.
"""

from __future__ import annotations

import numpy as np

from protocols import beaver
from protocols.comparison.backend import backend, width
from protocols.comparison.factor import Factor, OpenWith
from protocols.comparison.ring3 import ltz_tuple_values
from protocols.costs import eda_per_peer as eda_costs
from protocols.costs import field_bits_per_element as field_costs
from protocols.errors import ParameterError
from protocols.session import Session, Share
from protocols.truncation import KAPPA, check_same

__all__ = [
    "OpenWith", "absolute", "clip", "eda_costs", "eq", "eqz", "field_costs", "gt", "lt", "ltz",
    "ltz_mul", "ltz_tuple_values", "maximum", "minimum", "relu", "select",
]


async def ltz(s: Session, x: Share, *, kappa: int = KAPPA, bits: int | None = None) -> Share:
    """[x < 0] as a shared 0/1, x read as a signed integer.

        Z_2^64: c = open(x + r);  msb(x) = c_63 ^ r_63 ^ BitLT(c mod 2^63, r mod 2^63)
        GF(p), edaBits: y = x + 2^(l-1),  c = open(y + 2^l r'' + r'),  m = l - 1,
                ltz = NOT (c_m ^ r'_m ^ BitLT(c mod 2^m, r' mod 2^m))
        GF(p), random bits: c = open(y + 2^m r'' + sum 2^i r_i),
                a = (c mod 2^m) - r' + 2^m BitLT(c mod 2^m, r_i),  ltz = 1 - (y - a)/2^m

    Shapes: x: S; returns S.   Range: Z_2^64 every int64 (exact); GF(p) |x| < 2^(l-1),
    l = bits if given (2 <= bits <= value_bits(domain); ParameterError otherwise), else
    value_bits(domain) (64 on GF(2^127-1)). On Z_2^64 `bits` is only validated (2..64): the
    circuit is exact on every int64 and costs the same.
    Rounds: 3 on Z_2^64 with `ltz_tuples` preprocessing (open, radix-4 level, arithmetic
    radix-4 level). From edaBits (Z_2^64 without ltz_tuples; GF(p) with a source that has
    edaBits for fields: the trusted dealer, dn07): 2 + ceil(log2(l-1)) (open, the packed AND
    levels, the daBit conversion): 8 for l = 64 and on Z_2^64, 7 for l = 33, 6 for l = 17.
    GF(p) from random bits (the dealer node): 1 + ceil(log2(l-1)): 7, 6, 5.
    Bytes (to each peer): N*40 (Z_2^64, ltz_tuples); from edaBits `eda_costs("ltz", l, N, e)`:
    N*e + 189*N/8 for l = 64 and 64 | N (GF(2^127-1): 39.6 per value; Z_2^64: 31.6);
    from random bits N*B_lt(l)*e (`field_costs`): 251 elements for l = 64, 123 for l = 33.
    Preprocessing: Z_2^64: one ltz_tuple (64 words) per element, else one edaBit, one daBit
    and boolean triples for the ANDs; GF(p) from edaBits: one l-bit edaBit, one kappa-bit
    random, one daBit, boolean triples; from random bits: l - 1 random bits, one
    (kappa+1)-bit random, (B_lt(l) - 1)/2 triples per element (125 for l = 64).
    Security: semi-honest; Z_2^64 perfectly hiding, GF(p) statistical 2^-kappa (edaBits) or
    2^-(kappa-1) (random bits); the XOR-shared part is secure against n - 1 parties
    [EGKRS20; DFKNT06; CdH10].   Raises: ParameterError, PreprocessingExhausted (ran out),
    PreprocessingUnsupported (the source supplies no comparison material), errors of `open`.
    """
    check_same(s, x)
    be = backend(s)
    return await be.ltz(s, x, width(s, kappa, bits), kappa)


async def ltz_mul(s: Session, x: Share, y: Factor, *, bits: int | None = None) -> tuple[Share, Share]:
    """([x < 0], [x < 0] * y): the comparison and its product with a shared y.

        Z_2^64 with ltz_tuples: the product rides in the comparison's last round:
        delta = open(y - rho) there, b*y = delta*b + rho*b with rho*b from the dealer's
        monomials times rho (no extra round).
        From edaBits: the comparison's daBit b_a times y is a Beaver product, b = e XOR b_a
        for the opened e, so b*y = (y - b_a*y if e else b_a*y): no extra round. A shared y's
        openings ride in the first message; a y that is not yet a Share (an OpenWith or an
        awaitable) is resolved and its Beaver opening made in a child session while the
        AND levels run (Stats counts that opening as one more round; it is not on the
        critical path).
        Otherwise (GF(p) from random bits): ltz, then one product.

    y may also be an awaitable of a Share (e.g. a running truncation): it is awaited only
    before the last round, so its own rounds overlap the comparison's; or an `OpenWith`,
    whose openings ride in the comparison's first message (Z_2^64 with ltz_tuples; otherwise
    they are opened in a child session concurrently with the comparison's first round).
    Shapes: x, y: S; returns (S, S).   Range: as `ltz` (`bits`); the product is exact mod
    the domain.
    Rounds: 3 (Z_2^64, ltz_tuples); the rounds of ltz from edaBits (+1 in Stats for a y that
    is not yet a Share); ltz + 1 from random bits.
    Bytes (to each peer): N*48 (Z_2^64, ltz_tuples); ltz + 2*N*e otherwise.
    Preprocessing: one ltz_tuple with mul=True (89 words) per element, or ltz + a triple.
    Security, Raises: as `ltz`.
    """
    check_same(s, x)
    be = backend(s)
    return await be.ltz_mul(s, x, y, width(s, KAPPA, bits))


async def eqz(s: Session, x: Share, *, kappa: int = KAPPA, bits: int | None = None) -> Share:
    """[x == 0] as a shared 0/1.

        Z_2^64: c = open(x + r);  eq = AND_i NOT(c_i XOR r_i) (packed AND tree)
        GF(p):  c = open(x + 2^(l-1) + 2^l r'' + r'),  c* = (c - 2^(l-1)) mod 2^l,
                eq = AND_i NOT(c*_i XOR r'_i) (edaBits: packed AND tree and a daBit;
                random bits: prod_i (1 - (c*_i XOR r_i)) by a tree of field products)

    Shapes: x: S; returns S.   Range: Z_2^64 any; GF(p) |x| < 2^(l-1), l as in `ltz`
    (`bits`).   Rounds: from edaBits 2 + ceil(log2 l): 8 on Z_2^64 and for l = 64, 7 for
    l = 32; GF(p) from random bits 1 + ceil(log2 l): 7 for l = 64, 6 for l = 32.
    Bytes (to each peer): from edaBits `eda_costs("eqz", l, N, e)`: N*e + 127*N/8 for
    l = 64 and 64 | N; from random bits N*B_eq(l)*e: 127 elements for l = 64, 63 for l = 32.
    Preprocessing: one edaBit, one daBit and boolean triples; GF(p) from random bits: l random
    bits, one kappa-bit random, (B_eq(l) - 1)/2 triples.
    Security, Raises: as `ltz`.
    """
    check_same(s, x)
    be = backend(s)
    return await be.eqz(s, x, width(s, kappa, bits), kappa)


async def lt(s: Session, x: Share, y: Share | int | np.ndarray, *, bits: int | None = None) -> Share:
    """[x < y] = ltz(x - y, bits=bits). y may be public. Range: x - y an int64 without
    overflow (Z_2^64), |x - y| < 2^(l-1) (GF(p); l = bits if given). Rounds, Bytes: as `ltz`."""
    return await ltz(s, x - y, bits=bits)


async def gt(s: Session, x: Share, y: Share | int | np.ndarray, *, bits: int | None = None) -> Share:
    """[x > y] = ltz(y - x, bits=bits). Costs and ranges as `lt`."""
    return await ltz(s, -(x - y), bits=bits)


async def eq(s: Session, x: Share, y: Share | int | np.ndarray, *, bits: int | None = None) -> Share:
    """[x == y] = eqz(x - y, bits=bits). Costs and ranges as `eqz`."""
    return await eqz(s, x - y, bits=bits)


async def select(s: Session, b: Share, x: Share | int | np.ndarray, y: Share | int | np.ndarray) -> Share:
    """b ? x : y for a shared bit b: y + b * (x - y). Exact (no truncation: b is 0/1).

    Shapes: b, x, y: S (public x or y broadcast); returns S.   Rounds: 1 (0 if x and y are
    both public).   Bytes: 2*(n-1)*N*e (one Beaver product).   Raises: ShapeMismatch.
    """
    check_same(s, b)
    if not isinstance(x, Share) and not isinstance(y, Share):  # b * (x - y) is local
        return b * np.broadcast_to(np.asarray(x, dtype=object) - np.asarray(y, dtype=object), b.shape) + y
    d = x - y
    if not isinstance(d, Share):
        d = Share(s.domain.zeros(b.shape), s) + d
    return await beaver.mul(s, b, d) + y


async def relu(s: Session, x: Share, *, bits: int | None = None) -> Share:
    """max(x, 0) = x - x * ltz(x), one ltz_mul. Exact.  Rounds, Bytes: as `ltz_mul` (3 and
    N*48 per peer on Z_2^64 with ltz_tuples; from edaBits the rounds of ltz and its bytes +
    2*N*e; from random bits ltz + 1 round).  bits: as `ltz` (|x| < 2^(bits-1))."""
    _, nx = await ltz_mul(s, x, x, bits=bits)
    return x - nx


async def absolute(s: Session, x: Share, *, bits: int | None = None) -> Share:
    """|x| = x - 2 x ltz(x), one ltz_mul. Exact.  Rounds, Bytes: as `ltz_mul`; bits as `ltz`."""
    _, nx = await ltz_mul(s, x, x, bits=bits)
    return x - nx * 2


async def maximum(s: Session, x: Share, y: Share, *, bits: int | None = None) -> Share:
    """Elementwise max: x + [x < y] (y - x), one ltz_mul. Exact.  Rounds, Bytes: as
    `ltz_mul`.  Range: as `lt` (bits: |x - y| < 2^(bits-1))."""
    _, p = await ltz_mul(s, x - y, y - x, bits=bits)
    return x + p


async def minimum(s: Session, x: Share, y: Share, *, bits: int | None = None) -> Share:
    """Elementwise min: y + [x < y] (x - y), one ltz_mul. Exact.  Rounds, Bytes: as
    `ltz_mul`.  Range: as `lt` (bits: |x - y| < 2^(bits-1))."""
    _, p = await ltz_mul(s, x - y, x - y, bits=bits)
    return y + p


async def clip(
    s: Session, x: Share, lo: int | np.ndarray, hi: int | np.ndarray, *, bits: int | None = None
) -> Share:
    """Clamp x to [lo, hi] for public integers lo <= hi (fixed-point encoded by the caller):
    x + [x < lo] (lo - x) + [hi < x] (hi - x); both comparisons and products in one batch.
    Exact.

    Shapes: x: S; lo, hi broadcast to S.   Rounds, Bytes: one `ltz_mul` on 2N elements
    (3 rounds, 2*N*48 bytes per peer on Z_2^64 with ltz_tuples; from edaBits the rounds of
    ltz and its bytes on 2N elements plus 4*N*e; from random bits ltz + 1 round).
    Range: x - lo and hi - x as for `lt`
    (bits: |x - lo| and |hi - x| < 2^(bits-1)).
    """
    check_same(s, x)
    lo_a = np.broadcast_to(np.asarray(lo), x.shape)
    hi_a = np.broadcast_to(np.asarray(hi), x.shape)
    if (np.asarray(lo_a, dtype=object) > np.asarray(hi_a, dtype=object)).any():
        raise ParameterError("clip: need lo <= hi")
    both = Share(np.stack([(x - lo_a).data, (-(x - hi_a)).data]), s)
    d = Share(np.stack([(-(x - lo_a)).data, (-(x - hi_a)).data]), s)
    _, p = await ltz_mul(s, both, d, bits=bits)
    return x + p[0] + p[1]
