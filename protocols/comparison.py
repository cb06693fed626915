"""Comparison of shared integers: less-than-zero, less-than, equality, select, and ReLU, abs,
max, min, clip on top. Results are shared bits (0/1 in the domain).

The protocols mask x with a random r, open c = x + r, and compare the public c with r's bits
in XOR shares among all n parties (protocols.bitwise: packed bit vectors, one AND gate per
pair of positions per level), then turn the result bit into an arithmetic share with a daBit:

* Z_2^64 with additive sharing, from edaBits [EGKRS20] (r shared in the ring and bit by bit):
      c = open(x + r);  msb(x) = msb(c) XOR msb(r) XOR [c mod 2^63 < r mod 2^63]
  Exact for every int64; perfectly hiding (c is uniform). With `ltz_tuples` preprocessing
  (the dealers) the same carry circuit runs in 3 rounds: radix 4, with the products of the
  mask bits precomputed (see "Z_2^64 in 3 rounds" below).
* GF(p), any scheme, from edaBits of l bits and a kappa-bit random r'' [EGKRS20 with the
  statistical masking of Catrina and de Hoogh, SCN 2010]: for y = x + 2^(l-1) in [0, 2^l),
      c = open(y + 2^l r'' + r'),  c* = c mod 2^l = (y + r') mod 2^l,
      msb_l(y) = c*_(l-1) XOR r'_(l-1) XOR [c* mod 2^(l-1) < r' mod 2^(l-1)],  x < 0 iff msb_l(y) = 0
  and x = 0 iff c* - 2^(l-1) = r' mod 2^l (AND of l bit equalities). p > 2^(l+kappa+1) keeps
  c below p; c is within statistical distance 2^-kappa of uniform (kappa = 40).
  Sources without edaBits for fields (dn07) take Catrina and de Hoogh's circuit in field
  products instead (protocols.comparison_field: l - 1 shared random bits, a logarithmic
  BitLT prefix of Beaver products; EQZ by a product tree): fewer rounds, ~25x more bytes.
  Inputs |x| < 2^(l-1) with l = truncation.value_bits(domain) (64 on GF(2^127-1), 19 on
  GF(2^61-1)) by default, or l = bits when the caller states |x| < 2^(bits-1) (keyword
  `bits`, 2 <= bits <= that default): fewer random bits, rounds and bytes; a value outside
  the stated range gives a wrong result, so pass it only for a documented bound.
  D. Escudero, S. Ghosh, M. Keller, R. Rachuri, P. Scholl, "Improved Primitives for MPC over
  Mixed Arithmetic-Binary Circuits", CRYPTO 2020; O. Catrina and S. de Hoogh, "Improved
  Primitives for Secure Multiparty Integer Computation", SCN 2010.

Costs for N elements (e = domain.elem_bytes; bytes each party sends to each peer):
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
  Z_2^64 with ltz_tuples 3 rounds, N*48 bytes (96 for clip); otherwise ltz + 1 round,
  bytes of ltz (twice for clip) plus one product (two for clip).
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

import asyncio
import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from network.errors import SmpcError
from protocols import beaver, bitwise, comparison_eda
from protocols.comparison_field import _ring_bits, eqz_bits, field_costs, field_params, ltz_bits
from protocols.core import open
from protocols.errors import ConfigError, PreprocessingExhausted, ShapeMismatch
from protocols.session import Session, Share
from protocols.truncation import KAPPA, is_ring64

_U64 = np.uint64
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
_LOW63 = np.uint64((1 << 63) - 1)
_ONE = np.uint64(1)
# shifts of the 3-round ltz's levels: bit t, nibble t, 16-bit group t (as columns)
_SH1 = np.arange(4, dtype=_U64)[:, None]
_SH2 = 4 * _SH1
_SH3 = 16 * _SH1


# =========================================================================================
# Z_2^64 in 3 rounds: radix-4 carry prefix from precomputed mask monomials
# =========================================================================================
# The same BitLT as _ltz_ring, [c' < r'] = sum_i g_i prod_{t>i} e_i over the 63 low bit
# positions (g_i = r_i AND NOT c_i, e_i = NOT (r_i XOR c_i); the terms are mutually
# exclusive, so XOR = sum), but with radix 4 and multi-input products in one round each:
# a product of k masked bits prod (d_t XOR m_t) with the d_t opened expands into the
# monomials m_U of the masks (U a subset of the k factors) with public coefficients, and the
# dealer supplies the shares of every monomial needed [the "multiplicative tuples" of
# Damgard, Fitzi, Kiltz, Nielsen and Toft, TCC 2006, sec. 4; the radix/fan-in trade-off of
# the carry circuit as in Catrina and de Hoogh, SCN 2010, sec. 4.2]:
#   level 1 (local): groups of 4 bits; e_t, g_t are literals of the edaBit's bits r_t with
#            the public c_t, so every product is a sum of monomials of r: no opening;
#   level 2 (1 round): groups of 4 level-1 groups, boolean, masks alpha2 (E), beta2 (G);
#   level 3 (1 round): the 4 level-2 groups, ARITHMETIC output: x = d + (1 - 2d) m for a
#            masked bit, the dealer's monomials are shared in Z_2^64 and pre-multiplied by
#            (1 - 2 r_63), so msb(x) = c63 XOR r63 XOR BLT comes out as a ring bit (no daBit).
# Optionally the same last round multiplies the result bit by a shared y: with
# delta = open(y - rho) in that round, b*y = delta*b + rho*b and rho*b expands with the
# dealer's monomials times rho.  Words are packed: bit i of a word is position i.

_SPANS = {1: 1, 2: 4, 3: 16}
_BLOCK = 2048  # columns per block of a boolean level (see _bool_level)


@functools.cache
def _terms(level: int) -> list[tuple[list[tuple[str, int]], bool]]:
    """Per level the products summed: (factors, first_is_mask_only). Factor ('a', t): the
    E-input of group offset t (level 1: the edaBit bit r_t); ('b', j): the G-input.
    Level 1's g_j = r_j AND nc_j is the mask r_j alone (times the public nc_j)."""
    out = []
    for j in range(4):
        head = ("a", j) if level == 1 else ("b", j)
        out.append(([head] + [("a", t) for t in range(j + 1, 4)], level == 1))
    if level < 3:
        out.append(([("a", t) for t in range(4)], False))  # E
    return out


@functools.cache
def _pairs(level: int) -> list[tuple[int, tuple]]:
    """(term index, subset U of its factors) with U containing the mask-only factor."""
    out = []
    for ti, (fs, head_only) in enumerate(_terms(level)):
        for k in range(len(fs) + 1):
            for U in itertools.combinations(fs, k):
                if head_only and fs[0] not in U:
                    continue
                out.append((ti, U))
    return out


def _monomials(level: int) -> list[tuple]:
    """The dealer-supplied monomials of a level, in a fixed order: boolean levels need
    |U| >= 2 (singletons are the masks), the arithmetic level every nonempty U."""
    lo = 2 if level < 3 else 1
    seen: dict[tuple, None] = {}
    for _, U in _pairs(level):
        key = tuple(sorted(U))
        if len(key) >= lo:
            seen.setdefault(key, None)
    return list(seen)


_MONO = {lv: _monomials(lv) for lv in (1, 2, 3)}


@functools.cache
def _mono_index(level: int) -> np.ndarray:
    """(L, K): for each monomial of the level its factor rows (_fidx order), padded with the
    row after the last factor (a row of ones)."""
    keys = _MONO[level]
    L = max(len(U) for U in keys)
    nf = 4 if level == 1 else 8
    return np.array([[_fidx(f) for f in U] + [nf] * (L - len(U)) for U in keys]).T.copy()


def _mono_stack(level: int, F: np.ndarray) -> np.ndarray:
    """(K, N): the AND of the factor words of each monomial of the level, for the factor
    words F (nf, N) stacked in _fidx order."""
    idx = _mono_index(level)
    Fx = np.empty((F.shape[0] + 1, F.shape[1]), dtype=_U64)
    Fx[:-1] = F
    Fx[-1] = _ONES
    out = Fx[idx[0]]
    for row in idx[1:]:
        out &= Fx[row]
    return out


def ltz_tuple_values(r, a2, b2, a3, b3, rho=None) -> list[tuple[np.ndarray, str]]:
    """The plaintext correlation behind one `ltz_tuples` item (pure; the dealer draws the
    uniform words r, a2, b2, a3, b3 (and rho for mul=True) and shares each value as marked:
    "a" additively in Z_2^64, "x" by XOR). Order = the order of the item's arrays."""
    S, N = r.shape, r.size
    rl = r & _LOW63
    r63 = r >> _U64(63)
    w = np.subtract(_ONE, r63 << _ONE)  # 1 - 2 r63
    M1 = _mono_stack(1, rl.reshape(1, N) >> _SH1)
    ab2 = np.stack((a2.reshape(N), b2.reshape(N)))
    M2 = _mono_stack(2, (ab2[:, None] >> _SH2).reshape(8, N))
    ab3 = np.stack((a3.reshape(N), b3.reshape(N)))
    W3 = _mono_stack(3, ((ab3[:, None] >> _SH3) & _ONE).reshape(8, N))  # AND of 0/1 = product
    W3 *= w.reshape(N)
    M1, M2, W3 = (m.reshape(m.shape[0], *S) for m in (M1, M2, W3))
    out = [(r, "a"), (rl, "x"), (M1, "x"), (a2, "x"), (b2, "x"), (M2, "x"), (a3, "x"),
           (b3, "x"), (r63, "a"), (W3, "a")]
    if rho is not None:
        out += [(rho, "a"), (r63 * rho, "a"), (w * rho, "a"), (W3 * rho, "a")]
    return out


def _fidx(f: tuple[str, int]) -> int:
    """Row of factor f in the stacked factor words: ('a', t) -> t, ('b', t) -> 4 + t."""
    return f[1] if f[0] == "a" else 4 + f[1]


@functools.cache
def _bool_plan(level: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Index arrays that evaluate a boolean level (1 or 2) in a few whole-array operations:
    per pair (term, U) the row of the mask word m_U in [table, singleton masks, empty]
    (the empty monomial is a row of ones at party 0, zeros elsewhere), the subset of the
    'a' factors and the 'b' factor (4: none) whose public words multiply it (the factors not
    in U, plus level 1's public nc_j of g_j = r_j AND nc_j), and where the E term's pairs
    start (the G terms' pairs come first and are XORed together)."""
    index = {U: i for i, U in enumerate(_MONO[level])}
    K, F = len(_MONO[level]), (4 if level == 1 else 8)
    midx, amask, bidx = [], [], []
    n_g = 0
    for ti, U in _pairs(level):
        fs, _ = _terms(level)[ti]
        key = tuple(sorted(U))
        midx.append(index[key] if len(key) >= 2 else (K + _fidx(key[0]) if key else K + F))
        public = [f for f in fs if f not in U]
        if level == 1 and ti < 4:
            public.append(("a", ti))  # g_j's public factor nc_j
        bs = [f[1] for f in public if f[0] == "b"]
        assert len(bs) <= 1
        amask.append(sum(1 << f[1] for f in public if f[0] == "a"))
        bidx.append(bs[0] if bs else 4)
        n_g += ti < 4
    return np.array(midx), np.array(amask), np.array(bidx), n_g


def _bool_level(level: int, d: np.ndarray, masks: np.ndarray, table: np.ndarray, empty: np.ndarray):
    """XOR shares of (G, E) of a boolean level: G = XOR over the G terms, E the E term, each
    term the sum over its pairs of m_U AND prod_{f not in U} d_f. d, masks: the public and
    mask words of the factors stacked as rows (_fidx order); table: the dealer's monomials;
    empty: this party's share of the empty monomial (one row of ones or zeros).
    Large batches go in column blocks of _BLOCK, so the gathered (pairs, block) temporaries
    stay in cache (10^5 columns: ~5x faster than one pass)."""
    N = d.shape[1]
    if N > _BLOCK:
        G, E = np.empty(N, dtype=_U64), np.empty(N, dtype=_U64)
        for a in range(0, N, _BLOCK):
            c = slice(a, a + _BLOCK)
            G[c], E[c] = _bool_level(level, d[:, c], masks[:, c], table[:, c], empty[:, c])
        return G, E
    midx, amask, bidx, n_g = _bool_plan(level)
    # AND of every subset of the 'a' factors: row m = AND of d[t] for the bits t of m
    asub = np.empty((16, N), dtype=_U64)
    asub[0] = _ONES
    k = 1
    for t in range(4):
        np.bitwise_and(asub[:k], d[t], out=asub[k : 2 * k])
        k *= 2
    vals = np.concatenate([table, masks, empty])[midx]
    vals &= asub[amask]
    if level == 2:
        bext = np.empty((5, N), dtype=_U64)
        bext[:4] = d[4:]
        bext[4] = _ONES
        vals &= bext[bidx]
    # (numpy's reduceat along the first axis is slow on these short columns)
    return np.bitwise_xor.reduce(vals[:n_g], axis=0), np.bitwise_xor.reduce(vals[n_g:], axis=0)


@functools.cache
def _arith_plan() -> tuple[np.ndarray, list[tuple[int, int, np.ndarray]]]:
    """Level 3 (arithmetic): per pair the rows of its four factors in [bits (8), signs
    1 - 2 bit (8), ones] (the sign if the factor is in U, else the bit; ones pad), ordered so
    that the first K + 1 pairs are one per monomial of [_MONO[3]..., empty] in that order;
    the remaining pairs come in layers (start, end, monomials), each monomial at most once
    per layer, to be added to the coefficients (whole-row adds: numpy's reduceat and cumsum
    along the first axis are slow on these short columns)."""
    index = {U: i for i, U in enumerate(_MONO[3])}
    K = len(_MONO[3])
    layers: list[list[tuple[int, list[int]]]] = []
    seen: dict[int, int] = {}
    for ti, U in _pairs(3):
        fs, _ = _terms(3)[ti]
        r = [8 + _fidx(f) if f in U else _fidx(f) for f in fs]
        key = tuple(sorted(U))
        m = index[key] if key else K
        k = seen.get(m, 0)
        seen[m] = k + 1
        while len(layers) <= k:
            layers.append([])
        layers[k].append((m, r + [16] * (4 - len(r))))
    layers[0].sort()
    assert [m for m, _ in layers[0]] == list(range(K + 1))
    rows, spans, at = [], [], 0
    for li, layer in enumerate(layers):
        rows += [r for _, r in layer]
        if li:
            spans.append((at, at + len(layer), np.array([m for m, _ in layer])))
        at += len(layer)
    return np.array(rows).T.copy(), spans


async def _open_words(s: Session, xor_words: list[np.ndarray], add_words: list[np.ndarray]):
    """Open XOR-shared and additively shared uint64 arrays in one round, one message per
    peer."""
    parts = [w.reshape(-1) for w in xor_words] + [w.reshape(-1) for w in add_words]
    flat = np.concatenate(parts) if len(parts) > 1 else parts[0].copy()
    nx = sum(w.size for w in xor_words)
    tag = s.tag("wopen")
    try:
        for j in s.peers:
            await s.channel.send(j, tag, flat)
        acc = flat.copy()
        for j in s.peers:
            got = await s.channel.recv_array(j, tag, dtype=np.uint64, shape=flat.shape)
            acc[:nx] ^= got[:nx]
            acc[nx:] += got[nx:]
    except SmpcError as e:
        await s.abort(e)
        raise
    s.stats.rounds += 1
    out, k = [], 0
    for w in xor_words + add_words:
        out.append(acc[k : k + w.size].reshape(w.shape))
        k += w.size
    return out[: len(xor_words)], out[len(xor_words) :]


@dataclass(frozen=True)
class OpenWith:
    """A factor y for `ltz_mul` that is not computed yet: `shares` are opened in the
    comparison's FIRST round (packed into its message, no extra round or message), then
    y = then(opened values) (local). E.g. a truncation: shares = [x + 2^62 + r] from
    truncation.trunc_mask, then = truncation.trunc_finish."""

    shares: tuple[Share, ...]
    then: Callable[[list[np.ndarray]], Share]


async def _resolve(s: Session, y, child: str = "w"):
    """y as a Share: awaits an awaitable; opens an OpenWith's shares (in a child session,
    so it may run concurrently with other rounds) and applies its `then`."""
    if isinstance(y, Share):
        return y
    if isinstance(y, OpenWith):
        return y.then(await open(s.child(child), *y.shares))
    return await y


async def _ltz_ring3(s: Session, x: Share, y=None) -> tuple[Share, Share | None] | None:
    """(ltz(x), ltz(x) * y or None) in 3 rounds; None (nothing sent) if the session's
    preprocessing does not supply ltz_tuples."""
    if x.ndim == 0 and isinstance(y, OpenWith):  # rare: resolve y first (one more round)
        y = await _resolve(s, y)
    if x.ndim == 0:  # numpy scalar arithmetic warns on the (intended) wrap-around: use (1,)
        y1 = y if (y is None or not isinstance(y, Share)) else y.reshape(1)
        if y1 is not None and not isinstance(y1, Share):
            y1 = (await y1).reshape(1)
        res = await _ltz_ring3(s, x.reshape(1), y1)
        return None if res is None else (res[0].reshape(()), None if y is None else res[1].reshape(()))
    S = x.shape
    try:
        item = await s.prep.ltz_tuples(S, y is not None)
    except PreprocessingExhausted:
        return None
    # flat words: (N,) per value, (k, N) per stacked table
    N = x.size
    flat = [v.reshape(v.shape[0], N) if v.ndim > len(S) else v.reshape(N) for v in item]
    r_a, rl, M1, a2, b2, M2, a3, b3, r63, W3 = flat[:10]
    p0 = s.scheme.adds_public(s.pid)  # the party that adds public constants
    # round 1: c = x + r (and an OpenWith factor's openings, in the same message)
    extra = list(y.shares) if isinstance(y, OpenWith) else []
    _, (c, *opened) = await _open_words(s, [], [np.add(x.data.reshape(N), r_a)] + [e.data for e in extra])
    if extra:
        y = y.then(opened)
    c63 = c >> _U64(63)
    nc = ~(c & _LOW63)
    empty = np.full((1, N), _ONES if p0 else 0, dtype=_U64)
    # level 1 (local): d_t = nc >> t, g_j = r_j & nc_j
    G1, E1 = _bool_level(1, nc >> _SH1, rl >> _SH1, M1, empty)
    # level 2 (1 round): open the masked level-1 words [E1 ^ a2, G1 ^ b2]
    w2 = np.empty((2, N), dtype=_U64)
    np.bitwise_xor(E1, a2, out=w2[0])
    np.bitwise_xor(G1, b2, out=w2[1])
    (d2,), _ = await _open_words(s, [w2], [])
    ab2 = np.stack((a2, b2))
    G2, E2 = _bool_level(2, (d2[:, None] >> _SH2).reshape(8, N), (ab2[:, None] >> _SH2).reshape(8, N), M2, empty)
    # level 3 (1 round, arithmetic): open the masked level-2 words (and y - rho)
    w3 = np.empty((2, N), dtype=_U64)
    np.bitwise_xor(E2, a3, out=w3[0])
    np.bitwise_xor(G2, b3, out=w3[1])
    if y is not None:
        if not isinstance(y, Share):
            y = await y
        rho_a, r63rho, wrho, W3rho = flat[10:14]
        (d3,), (delta,) = await _open_words(s, [w3], [np.subtract(y.data.reshape(N), rho_a)])
    else:
        (d3,), _ = await _open_words(s, [w3], [])
    # the 8 opened level-2 bits, their signs 1 - 2 bit and a row of ones, as small ints
    # (every coefficient is a sum of a few products of 0, 1, -1)
    rows, spans = _arith_plan()
    V = np.empty((17, N), dtype=np.int8)
    V[:8] = ((d3[:, None] >> _SH3) & _ONE).reshape(8, N)
    np.subtract(1, V[:8] + V[:8], out=V[8:16])
    V[16] = 1
    # coefficient of each monomial (empty last): sum over its pairs of the factor products
    P = V[rows[0]] * V[rows[1]]
    P *= V[rows[2]]
    P *= V[rows[3]]
    for a, e, ms in spans:
        P[ms] += P[a:e]
    coefs = P[: len(_MONO[3]) + 1].astype(_U64)  # -1 -> 2^64 - 1
    cm, ce = coefs[:-1], coefs[-1]
    # u = r63 XOR BLT = r63 + (1 - 2 r63) BLT, BLT = sum coef_U m_U
    w_empty = np.negative(r63 << _ONE)
    if p0:
        w_empty += _ONE
    u = np.einsum("kn,kn->n", cm, W3)
    u += r63
    u += w_empty * ce
    sign = np.subtract(_ONE, c63 << _ONE)
    u *= sign
    if p0:
        u += c63
    b = Share(u.reshape(S), s)
    if y is None:
        return b, None
    rb = np.einsum("kn,kn->n", cm, W3rho)
    rb += r63rho
    rb += wrho * ce
    rb *= sign
    rb += rho_a * c63
    rb += u * delta
    return b, Share(rb.reshape(S), s)


# =========================================================================================
# public API
# =========================================================================================
def eda_costs(op: str, ell: int, N: int, elem_bytes: int) -> tuple[int, int]:
    """(rounds, bytes each party sends to each peer) of `ltz` ("ltz") or `eqz` ("eqz") on N
    values from edaBits with value width l = ell (Z_2^64: ell = 64, elem_bytes = 8): one
    opening of N elements, the boolean circuit over m positions (ltz: m = l - 1, eqz:
    m = l), one daBit conversion (bitwise.opened_words counts the words). `ltz_mul` with a
    shared y adds 2*N*elem_bytes to the first message and no round."""
    if op not in ("ltz", "eqz"):
        raise ValueError(f"eda_costs: op must be 'ltz' or 'eqz', got {op!r}")
    m = ell - 1 if op == "ltz" else ell
    words = bitwise.opened_words("lt" if op == "ltz" else "eq", m, N)
    return 2 + bitwise.levels(m), N * elem_bytes + 8 * words

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


async def ltz(s: Session, x: Share, *, kappa: int = KAPPA, bits: int | None = None) -> Share:
    """[x < 0] as a shared 0/1, x read as a signed integer.

        Z_2^64: c = open(x + r);  msb(x) = c_63 ^ r_63 ^ BitLT(c mod 2^63, r mod 2^63)
        GF(p), edaBits: y = x + 2^(l-1),  c = open(y + 2^l r'' + r'),  m = l - 1,
                ltz = NOT (c_m ^ r'_m ^ BitLT(c mod 2^m, r' mod 2^m))
        GF(p), random bits: c = open(y + 2^m r'' + sum 2^i r_i),
                a = (c mod 2^m) - r' + 2^m BitLT(c mod 2^m, r_i),  ltz = 1 - (y - a)/2^m

    Shapes: x: S; returns S.   Range: Z_2^64 every int64 (exact); GF(p) |x| < 2^(l-1),
    l = bits if given (2 <= bits <= value_bits(domain); ConfigError otherwise), else
    value_bits(domain) (64 on GF(2^127-1)). On Z_2^64 `bits` is only validated (2..64): the
    circuit is exact on every int64 and costs the same.
    Rounds: 3 on Z_2^64 with `ltz_tuples` preprocessing (open, radix-4 level, arithmetic
    radix-4 level). From edaBits (Z_2^64 without ltz_tuples; GF(p) with a source that has
    edaBits for fields: the trusted dealer): 2 + ceil(log2(l-1)) (open, the packed AND
    levels, the daBit conversion): 8 for l = 64 and on Z_2^64, 7 for l = 33, 6 for l = 17.
    GF(p) from random bits (dn07): 1 + ceil(log2(l-1)): 7, 6, 5.
    Bytes (to each peer): N*40 (Z_2^64, ltz_tuples); from edaBits `eda_costs("ltz", l, N, e)`:
    N*e + 189*N/8 for l = 64 and 64 | N (GF(2^127-1): 39.6 per value; Z_2^64: 31.6);
    from random bits N*B_lt(l)*e (`field_costs`): 251 elements for l = 64, 123 for l = 33.
    Preprocessing: Z_2^64: one ltz_tuple (64 words) per element, else one edaBit, one daBit
    and boolean triples for the ANDs; GF(p) from edaBits: one l-bit edaBit, one kappa-bit
    random, one daBit, boolean triples; from random bits: l - 1 random bits, one
    (kappa+1)-bit random, (B_lt(l) - 1)/2 triples per element (125 for l = 64).
    Security: semi-honest; Z_2^64 perfectly hiding, GF(p) statistical 2^-kappa (edaBits) or
    2^-(kappa-1) (random bits); the XOR-shared part is secure against n - 1 parties
    [EGKRS20; DFKNT06; CdH10].   Raises: ConfigError, PreprocessingExhausted, errors of `open`.
    """
    _check(s, x)
    if _family(s) == "ring":
        _ring_bits(bits)
        res = await _ltz_ring3(s, x)
        return res[0] if res is not None else (await comparison_eda.ltz(s, x, None, kappa))[0]
    ell = field_params(s, kappa, bits)
    res = await comparison_eda.ltz(s, x, ell, kappa)
    return res[0] if res is not None else await ltz_bits(s, x, kappa, ell)


async def ltz_mul(s: Session, x: Share, y, *, bits: int | None = None) -> tuple[Share, Share]:
    """([x < 0], [x < 0] * y): the comparison and its product with a shared y.

        Z_2^64 with ltz_tuples: the product rides in the comparison's last round:
        delta = open(y - rho) there, b*y = delta*b + rho*b with rho*b from the dealer's
        monomials times rho (no extra round).
        From edaBits (shared y): the comparison's daBit b_a times y is a Beaver product
        opened in the first message; b = e XOR b_a for the opened e, so
        b*y = (y - b_a*y if e else b_a*y): no extra round.
        Otherwise (GF(p) from random bits, or y not yet a Share): ltz, then one product.

    y may also be an awaitable of a Share (e.g. a running truncation): it is awaited only
    before the last round, so its own rounds overlap the comparison's; or an `OpenWith`,
    whose openings ride in the comparison's first message (Z_2^64 with ltz_tuples; otherwise
    they are opened in a child session concurrently with the comparison's first round).
    Shapes: x, y: S; returns (S, S).   Range: as `ltz` (`bits`); the product is exact mod
    the domain.
    Rounds: 3 (Z_2^64, ltz_tuples); the rounds of ltz (from edaBits, y a Share); rounds of
    ltz + 1 otherwise.
    Bytes (to each peer): N*48 (Z_2^64, ltz_tuples); ltz + 2*N*e otherwise.
    Preprocessing: one ltz_tuple with mul=True (89 words) per element, or ltz + a triple.
    Security, Raises: as `ltz`.
    """
    _check(s, x)
    ring = _family(s) == "ring"
    if ring:
        _ring_bits(bits)
        res = await _ltz_ring3(s, x, y)
        if res is not None:
            return res
    if isinstance(y, Share):  # from edaBits: the product rides in the comparison's rounds
        _check(s, y)
        if y.shape != x.shape:
            raise ShapeMismatch(f"ltz_mul: shapes differ: {x.shape} and {y.shape}")
        ell = None if ring else field_params(s, KAPPA, bits)
        res = await comparison_eda.ltz(s, x, ell, KAPPA, y)
        if res is not None:
            return res
    if isinstance(y, OpenWith):  # open it concurrently with the comparison's first round
        y = asyncio.ensure_future(_resolve(s, y))
    try:
        b = await ltz(s, x, bits=bits)
        y = await _resolve(s, y)
    finally:
        if isinstance(y, asyncio.Future):
            y.cancel()
    return b, await beaver.mul(s, b, y)


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
    _check(s, x)
    if _family(s) == "ring":
        _ring_bits(bits)
        return await comparison_eda.eqz(s, x, None, kappa)
    ell = field_params(s, kappa, bits)
    res = await comparison_eda.eqz(s, x, ell, kappa)
    return res if res is not None else await eqz_bits(s, x, kappa, ell)


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
    _check(s, b)
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
    _check(s, x)
    lo_a = np.broadcast_to(np.asarray(lo), x.shape)
    hi_a = np.broadcast_to(np.asarray(hi), x.shape)
    if (np.asarray(lo_a, dtype=object) > np.asarray(hi_a, dtype=object)).any():
        raise ConfigError("clip: need lo <= hi")
    both = Share(np.stack([(x - lo_a).data, (-(x - hi_a)).data]), s)
    d = Share(np.stack([(-(x - lo_a)).data, (-(x - hi_a)).data]), s)
    _, p = await ltz_mul(s, both, d, bits=bits)
    return x + p[0] + p[1]


__all__ = [
    "OpenWith", "absolute", "clip", "eq", "eqz", "field_costs", "gt", "lt", "ltz", "ltz_mul",
    "ltz_tuple_values", "maximum", "minimum", "relu", "select", "eda_costs",
]
