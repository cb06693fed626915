"""Comparison of shared integers: less-than-zero, less-than, equality, select, and ReLU, abs,
max, min, clip on top. Results are shared bits (0/1 in the domain).

Two protocol families, chosen by the session's domain:

* Z_2^64 with additive sharing: edaBits [EGKRS20] -- a mask r shared both in the ring and
  bitwise (XOR shares packed in one uint64 word) -- and a logarithmic-depth carry circuit on
  the packed words with boolean Beaver triples:
      c = open(x + r);  msb(x) = msb(c) XOR msb(r) XOR [c mod 2^63 < r mod 2^63]
  The bit comparison is the (generate, propagate) prefix combination of a carry-lookahead
  adder (Brent-Kung / the "BitLT" of Catrina and de Hoogh, SCN 2010, sec. 4), six levels for
  64 bit positions, two ANDs per level that share their left operand (so one opening serves
  both). The boolean result becomes a ring bit with a daBit [Rotaru and Wood, "MArBled
  Circuits", INDOCRYPT 2019]. Exact for every int64 value; perfectly hiding (c is uniform).
  Equality uses the same mask: x = 0 iff all 64 bits of c XOR r are 0 (an AND tree).
  D. Escudero, S. Ghosh, M. Keller, R. Rachuri, P. Scholl, "Improved Primitives for MPC over
  Mixed Arithmetic-Binary Circuits", CRYPTO 2020.

* GF(p), any scheme: Catrina and de Hoogh, "Improved Primitives for Secure Multiparty Integer
  Computation", SCN 2010: LTZ via Mod2m with m = l - 1 shared random bits (sec. 3.2, 4) and
  BitLT as a logarithmic prefix of field multiplications; EQZ by opening x masked with
  random bits and multiplying (1 - bit differences) in a tree (sec. 3.3 "EQZ" with the
  log-round product instead of the constant-round one). Inputs |x| < 2^(l-1) with
  l = truncation.value_bits(domain) (64 on GF(2^127-1), 19 on GF(2^61-1));
  statistically hiding with distance <= 2^-(kappa-1), kappa = 40.

Costs per element (N elements, e = domain.elem_bytes, bytes sent per party):
  ltz/lt    Z_2^64: Rounds 8, Bytes (n-1)*N*152;   GF(p): Rounds 7, Bytes (n-1)*N*251*e
  eqz/eq    Z_2^64: Rounds 8, Bytes (n-1)*N*112;   GF(p): Rounds 7, Bytes (n-1)*N*127*e
  select    Rounds 1, Bytes 2*(n-1)*N*e (one Beaver product)
  relu, absolute, maximum, minimum, clip: ltz + 1 round; bytes of ltz (twice for clip)
  plus one product (two for clip).
(GF(p) counts are for l = 64; in general 1 + 2*(sum of pairs per level) field elements.)
"""

from __future__ import annotations

import numpy as np

from network.errors import SmpcError
from protocols import beaver
from protocols.core import open
from protocols.errors import ConfigError, ShapeMismatch
from protocols.session import Session, Share
from protocols.truncation import KAPPA, check_field_room, is_ring64, public_low_bits, value_bits

_U64 = np.uint64
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
_LOW63 = np.uint64((1 << 63) - 1)
_TOP = np.uint64(1 << 63)
_ONE = np.uint64(1)


# =========================================================================================
# boolean (XOR) shares of packed uint64 words, additive Z_2^64 sessions only
# =========================================================================================
async def _bool_open(s: Session, words: list[np.ndarray]) -> list[np.ndarray]:
    """Open XOR-shared uint64 arrays in one round (one message per peer)."""
    flat = np.concatenate([w.reshape(-1) for w in words])
    tag = s.tag("bopen")
    try:
        for j in s.peers:
            await s.channel.send(j, tag, flat)
        acc = flat.copy()
        for j in s.peers:
            acc ^= await s.channel.recv_array(j, tag, dtype=np.uint64, shape=flat.shape)
    except SmpcError as e:
        await s.abort(e)
        raise
    s.stats.rounds += 1
    out, k = [], 0
    for w in words:
        out.append(acc[k : k + w.size].reshape(w.shape))
        k += w.size
    return out


async def _band(s: Session, x: np.ndarray, ys: list[np.ndarray]) -> list[np.ndarray]:
    """XOR shares of x & y for each y, with k triples sharing their first factor [Beaver91]:
    d = open(x ^ a), e_i = open(y_i ^ b_i), z_i = c_i ^ (d & b_i) ^ (e_i & a) ^ (d & e_i)."""
    a, b, c = await s.prep.bool_triples(x.shape, len(ys))
    d, *es = await _bool_open(s, [x ^ a] + [y ^ b[i] for i, y in enumerate(ys)])
    out = []
    for i, e in enumerate(es):
        z = c[i] ^ (d & b[i]) ^ (e & a)
        if s.pid == 0:
            z ^= d & e
        out.append(z)
    return out


async def _b2a(s: Session, bit: np.ndarray, flip: np.ndarray) -> Share:
    """Ring shares of (bit XOR flip) for XOR shares of a bit (in bit 0) and a public 0/1
    array `flip`, with one daBit (b_a, b_b): e = open(bit ^ b_b) ^ flip,
    result = e + b_a - 2*e*b_a.  Rounds: 1."""
    b_a, b_b = await s.prep.dabits(bit.shape)
    (e,) = await _bool_open(s, [(bit & _ONE) ^ b_b])
    e ^= flip
    sign = np.subtract(_ONE, e << _ONE)  # 1 - 2e mod 2^64 (ufunc: no scalar-wrap warning)
    return Share(b_a * sign, s) + e


async def _ltz_ring(s: Session, x: Share) -> Share:
    S = x.shape
    r_a, r_b = await s.prep.edabits(S)
    (c,) = await open(s, x + Share(r_a, s))
    nc = ~c
    # per bit i < 63: G_i = r_i AND NOT c_i ("r > c here"), E_i = NOT (r_i XOR c_i); bit 63
    # is neutral: G = 0, E = 1
    G = r_b & nc & _LOW63
    E = (r_b ^ nc) if s.pid == 0 else r_b.copy()
    E &= _LOW63
    if s.pid == 0:
        E |= _TOP
    span = 1
    while span < 32:
        t_g, t_e = await _band(s, E >> _U64(span), [G, E])
        G = (G >> _U64(span)) ^ t_g
        E = t_e
        span *= 2
    (t_g,) = await _band(s, E >> _U64(32), [G])
    G = (G >> _U64(32)) ^ t_g  # bit 0: [c mod 2^63 < r mod 2^63]
    return await _b2a(s, G ^ (r_b >> _U64(63)), c >> _U64(63))


async def _eqz_ring(s: Session, x: Share) -> Share:
    S = x.shape
    r_a, r_b = await s.prep.edabits(S)
    (c,) = await open(s, x + Share(r_a, s))
    E = (r_b ^ ~c) if s.pid == 0 else r_b.copy()  # E_i = [r_i == c_i]
    span = 1
    while span < 64:
        (E,) = await _band(s, E >> _U64(span), [E])
        span *= 2
    return await _b2a(s, E, np.zeros(S, dtype=_U64))


# =========================================================================================
# GF(p): Catrina-de Hoogh with shared random bits
# =========================================================================================
def _stack(s: Session, parts: list[Share], axis: int = -1) -> Share:
    return Share(np.concatenate([p.data for p in parts], axis=axis), s)


def _const_share(s: Session, shape: tuple[int, ...], value: int) -> Share:
    return Share(s.domain.zeros(shape), s) + value


async def _prefix_lt(s: Session, G: Share, E: Share) -> Share:
    """Combine (G, E) over the last axis (bit positions, LSB first) from the top:
    (G, E)_hi o (G, E)_lo = (G_hi + E_hi*G_lo, E_hi*E_lo). Returns G of the whole word.
    Rounds: ceil(log2 width)."""
    w = G.shape[-1]
    width = 1 << max(0, (w - 1).bit_length())
    if width != w:
        pad = G.shape[:-1] + (width - w,)
        G = _stack(s, [G, _const_share(s, pad, 0)])
        E = _stack(s, [E, _const_share(s, pad, 1)])
    while G.shape[-1] > 1:
        g_lo, g_hi, e_lo, e_hi = G[..., 0::2], G[..., 1::2], E[..., 0::2], E[..., 1::2]
        if G.shape[-1] > 2:
            prod = await beaver.mul(s, _stack(s, [e_hi, e_hi]), _stack(s, [g_lo, e_lo]))
            h = g_hi.shape[-1]
            G = g_hi + prod[..., :h]
            E = prod[..., h:]
        else:
            G = g_hi + await beaver.mul(s, e_hi, g_lo)
    return G[..., 0]


async def _prod_tree(s: Session, E: Share) -> Share:
    """Product over the last axis in ceil(log2 width) rounds."""
    w = E.shape[-1]
    width = 1 << max(0, (w - 1).bit_length())
    if width != w:
        E = _stack(s, [E, _const_share(s, E.shape[:-1] + (width - w,), 1)])
    while E.shape[-1] > 1:
        E = await beaver.mul(s, E[..., 0::2], E[..., 1::2])
    return E[..., 0]


def _bits_of(c_low: np.ndarray, m: int) -> np.ndarray:
    return (c_low[..., None] >> np.arange(m, dtype=_U64)) & _ONE


def _weighted_sum(s: Session, bits: Share, m: int) -> Share:
    """sum_i 2^i * bits[..., i] (local)."""
    D = s.domain
    pw = D.from_int(np.array([1 << i for i in range(m)], dtype=object))
    return Share(D.sum(D.mul(bits.data, pw), axis=-1), s)


def _field_params(s: Session, kappa: int) -> int:
    ell = value_bits(s.domain, kappa)
    check_field_room(s.domain, ell, kappa, "comparison")
    if ell < 2:
        raise ConfigError(f"comparison on {s.domain} leaves no room for values")
    return ell


async def _ltz_field(s: Session, x: Share, kappa: int) -> Share:
    D = s.domain
    ell = _field_params(s, kappa)
    m = ell - 1
    S = x.shape
    rb = Share(await s.prep.bits(S + (m,)), s)
    rr = Share(await s.prep.bounded_randoms(S, kappa + 1), s)
    r_low = _weighted_sum(s, rb, m)
    y = x + (1 << (ell - 1))  # in [0, 2^ell)
    (c,) = await open(s, y + rr * (1 << m) + r_low)
    c_low = public_low_bits(D, c, m)
    cb = _bits_of(c_low, m)
    # [c_low < r_low]: per bit G = r (1 - c), E = 1 - (c XOR r) = (1 - c) + r (2c - 1)
    G = rb * (_ONE - cb)
    E = rb * (2 * cb.astype(np.int64) - 1) + (_ONE - cb)
    u = await _prefix_lt(s, G, E)
    a = (u * (1 << m) - r_low) + c_low  # y mod 2^m
    nonneg = (y - a) * pow(2, -m, D.modulus)  # floor(y / 2^m) = [x >= 0]
    return 1 - nonneg


async def _eqz_field(s: Session, x: Share, kappa: int) -> Share:
    D = s.domain
    ell = _field_params(s, kappa)
    S = x.shape
    rb = Share(await s.prep.bits(S + (ell,)), s)
    rr = Share(await s.prep.bounded_randoms(S, kappa), s)
    r_low = _weighted_sum(s, rb, ell)
    (c,) = await open(s, x + (1 << (ell - 1)) + rr * (1 << ell) + r_low)
    cs = public_low_bits(D, c, ell) - _U64(1 << (ell - 1))
    if ell < 64:
        cs &= _U64((1 << ell) - 1)
    cb = _bits_of(cs, ell)
    E = rb * (2 * cb.astype(np.int64) - 1) + (_ONE - cb)  # 1 - (c_i XOR r_i)
    return await _prod_tree(s, E)


# =========================================================================================
# public API
# =========================================================================================
def _family(s: Session) -> str:
    D = s.domain
    if is_ring64(D):
        if s.scheme.kind != "additive":
            raise ConfigError("comparison over Z_2^64 needs additive sharing")
        return "ring"
    if D.is_field:
        return "field"
    raise ConfigError(f"no comparison protocol for {D}")


def _check(s: Session, *xs: Share) -> None:
    for x in xs:
        if not isinstance(x, Share):
            raise TypeError(f"expected a Share, got {type(x).__name__}")
        if x._s.pid != s.pid or x._s.domain != s.domain:
            raise ShapeMismatch("share does not belong to this session")


async def ltz(s: Session, x: Share, *, kappa: int = KAPPA) -> Share:
    """[x < 0] as a shared 0/1, x read as a signed integer.

        Z_2^64: c = open(x + r);  msb(x) = msb(c) ^ msb(r) ^ BitLT(c mod 2^63, r mod 2^63)
        GF(p):  c = open(x + 2^(l-1) + 2^m r'' + r'),  m = l - 1,  r' = sum 2^i r_i,
                a = (c mod 2^m) - r' + 2^m BitLT(c mod 2^m, r_i),  ltz = 1 - (x + 2^(l-1) - a)/2^m

    Shapes: x: S; returns S.   Range: Z_2^64 every int64 (exact); GF(p) |x| < 2^(l-1).
    Rounds: 8 (Z_2^64: open, 6 AND levels, daBit conversion); 7 (GF(p), l = 64: open, 6
    multiplication levels).   Bytes: (n-1)*N*152 (Z_2^64); (n-1)*N*251*e (GF(p), l = 64).
    Preprocessing: Z_2^64: one edaBit, 5 double + 1 single boolean triples, one daBit per
    element; GF(p): m random bits, one (kappa+1)-bit random, 125 triples per element.
    Security: semi-honest; Z_2^64 perfectly hiding, GF(p) statistical 2^-(kappa-1)
    [EGKRS20; CdH10].   Raises: ConfigError, PreprocessingExhausted, errors of `open`.
    """
    _check(s, x)
    if _family(s) == "ring":
        return await _ltz_ring(s, x)
    return await _ltz_field(s, x, kappa)


async def eqz(s: Session, x: Share, *, kappa: int = KAPPA) -> Share:
    """[x == 0] as a shared 0/1.

        Z_2^64: c = open(x + r);  eq = AND_i NOT(c_i XOR r_i) (AND tree on the packed word)
        GF(p):  c = open(x + 2^(l-1) + 2^l r'' + r');  eq = prod_i (1 - (c*_i XOR r_i)),
                c* = (c - 2^(l-1)) mod 2^l

    Shapes: x: S; returns S.   Range: Z_2^64 any; GF(p) |x| < 2^(l-1).
    Rounds: 8 (Z_2^64), 7 (GF(p), l = 64).   Bytes: (n-1)*N*112 (Z_2^64);
    (n-1)*N*127*e (GF(p), l = 64).   Security, Raises: as `ltz`.
    """
    _check(s, x)
    if _family(s) == "ring":
        return await _eqz_ring(s, x)
    return await _eqz_field(s, x, kappa)


async def lt(s: Session, x: Share, y: Share | int | np.ndarray) -> Share:
    """[x < y] = ltz(x - y). y may be public. Range: x - y an int64 without overflow
    (Z_2^64), |x - y| < 2^(l-1) (GF(p)). Rounds, Bytes: as `ltz`."""
    return await ltz(s, x - y)


async def gt(s: Session, x: Share, y: Share | int | np.ndarray) -> Share:
    """[x > y] = ltz(y - x). Costs and ranges as `lt`."""
    return await ltz(s, -(x - y))


async def eq(s: Session, x: Share, y: Share | int | np.ndarray) -> Share:
    """[x == y] = eqz(x - y). Costs and ranges as `eqz`."""
    return await eqz(s, x - y)


async def select(s: Session, b: Share, x: Share | int | np.ndarray, y: Share | int | np.ndarray) -> Share:
    """b ? x : y for a shared bit b: y + b * (x - y). Exact (no truncation: b is 0/1).

    Shapes: b, x, y: S (public x or y broadcast); returns S.   Rounds: 1 (0 if x and y are
    both public).   Bytes: 2*(n-1)*N*e (one Beaver product).   Raises: ShapeMismatch.
    """
    _check(s, b)
    if not isinstance(x, Share) and not isinstance(y, Share):  # b * (x - y) is local
        return b * np.broadcast_to(np.asarray(x, dtype=object) - np.asarray(y, dtype=object), b.shape) + y
    d = x - y
    if not isinstance(d, Share):
        d = Share(s.domain.zeros(b.shape), s) + d
    return await beaver.mul(s, b, d) + y


async def relu(s: Session, x: Share) -> Share:
    """max(x, 0) = x - x * ltz(x). Exact.  Rounds: ltz + 1.  Bytes: ltz + 2*(n-1)*N*e."""
    neg = await ltz(s, x)
    return x - await beaver.mul(s, neg, x)


async def absolute(s: Session, x: Share) -> Share:
    """|x| = x - 2 x ltz(x). Exact.  Rounds: ltz + 1.  Bytes: ltz + 2*(n-1)*N*e."""
    neg = await ltz(s, x)
    return x - await beaver.mul(s, neg, x) * 2


async def maximum(s: Session, x: Share, y: Share) -> Share:
    """Elementwise max: x + [x < y] (y - x). Exact.  Rounds: ltz + 1.  Range: as `lt`."""
    b = await lt(s, x, y)
    return x + await beaver.mul(s, b, y - x)


async def minimum(s: Session, x: Share, y: Share) -> Share:
    """Elementwise min: y + [x < y] (x - y). Exact.  Rounds: ltz + 1.  Range: as `lt`."""
    b = await lt(s, x, y)
    return y + await beaver.mul(s, b, x - y)


async def clip(s: Session, x: Share, lo: int | np.ndarray, hi: int | np.ndarray) -> Share:
    """Clamp x to [lo, hi] for public integers lo <= hi (fixed-point encoded by the caller):
    x + [x < lo] (lo - x) + [hi < x] (hi - x); both comparisons in one batch. Exact.

    Shapes: x: S; lo, hi broadcast to S.   Rounds: ltz + 1.   Bytes: twice those of ltz
    on N elements, plus 4*(n-1)*N*e.   Range: x - lo and hi - x as for `lt`.
    """
    _check(s, x)
    lo_a = np.broadcast_to(np.asarray(lo), x.shape)
    hi_a = np.broadcast_to(np.asarray(hi), x.shape)
    if (np.asarray(lo_a, dtype=object) > np.asarray(hi_a, dtype=object)).any():
        raise ConfigError("clip: need lo <= hi")
    both = Share(np.stack([(x - lo_a).data, (-(x - hi_a)).data]), s)
    b = await ltz(s, both)
    d = Share(np.stack([(-(x - lo_a)).data, (-(x - hi_a)).data]), s)
    p = await beaver.mul(s, b, d)
    return x + p[0] + p[1]
