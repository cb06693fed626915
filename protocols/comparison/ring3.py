"""Z_2^64 comparison in 3 rounds (additive sharing, `ltz_tuples` preprocessing): the radix-4
carry prefix over precomputed mask monomials, and `ltz_mul`'s product in its last round. The
public functions, costs and ranges are in protocols.comparison, which re-exports
ltz_tuple_values from here (the dealers compute their items with it)."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Awaitable

import numpy as np

from protocols.bitwise import open_words
from protocols.comparison.factor import Factor, OpenWith, resolve
from protocols.session import Session, Share

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

#: a factor of a level's products: ("a", t) the E-input of group offset t, ("b", t) the G-input
Factor3 = tuple[str, int]

_SPANS = {1: 1, 2: 4, 3: 16}
_BLOCK = 2048  # columns per block of a boolean level (see _bool_level)


@functools.cache
def _terms(level: int) -> list[tuple[list[Factor3], bool]]:
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
def _pairs(level: int) -> list[tuple[int, tuple[Factor3, ...]]]:
    """(term index, subset U of its factors) with U containing the mask-only factor."""
    out = []
    for ti, (fs, head_only) in enumerate(_terms(level)):
        for k in range(len(fs) + 1):
            for U in itertools.combinations(fs, k):
                if head_only and fs[0] not in U:
                    continue
                out.append((ti, U))
    return out


def _monomials(level: int) -> list[tuple[Factor3, ...]]:
    """The dealer-supplied monomials of a level, in a fixed order: boolean levels need
    |U| >= 2 (singletons are the masks), the arithmetic level every nonempty U."""
    lo = 2 if level < 3 else 1
    seen: dict[tuple[Factor3, ...], None] = {}
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


def ltz_tuple_values(
    r: np.ndarray, a2: np.ndarray, b2: np.ndarray, a3: np.ndarray, b3: np.ndarray, rho: np.ndarray | None = None
) -> list[tuple[np.ndarray, str]]:
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


def _fidx(f: Factor3) -> int:
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


def _bool_level(
    level: int, d: np.ndarray, masks: np.ndarray, table: np.ndarray, empty: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
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


async def ltz3(s: Session, x: Share, y: Factor | None = None) -> tuple[Share, Share | None]:
    """(ltz(x), ltz(x) * y or None) in 3 rounds from one `ltz_tuples` item (the session's
    source must supply them: comparison.backend chooses this path only then)."""
    if x.ndim == 0 and isinstance(y, OpenWith):  # rare: resolve y first (one more round)
        y = await resolve(s, y)
    if x.ndim == 0:  # numpy scalar arithmetic warns on the (intended) wrap-around: use (1,)
        y1 = None if y is None else (await resolve(s, y)).reshape(1)
        b, by = await ltz3(s, x.reshape(1), y1)
        return b.reshape(()), None if by is None else by.reshape(())
    S = x.shape
    item = await s.prep.ltz_tuples(S, y is not None)
    # flat words: (N,) per value, (k, N) per stacked table
    N = x.size
    flat = [v.reshape(v.shape[0], N) if v.ndim > len(S) else v.reshape(N) for v in item]
    r_a, rl, M1, a2, b2, M2, a3, b3, r63, W3 = flat[:10]
    p0 = s.scheme.adds_public(s.pid)  # the party that adds public constants
    # round 1: c = x + r (and an OpenWith factor's openings, in the same message)
    extra = list(y.shares) if isinstance(y, OpenWith) else []
    _, (c, *opened) = await open_words(s, [], [np.add(x.data.reshape(N), r_a)] + [e.data for e in extra])
    fac: Share | Awaitable[Share] | None = y.then(opened) if isinstance(y, OpenWith) else y
    c63 = c >> _U64(63)
    nc = ~(c & _LOW63)
    empty = np.full((1, N), _ONES if p0 else 0, dtype=_U64)
    # level 1 (local): d_t = nc >> t, g_j = r_j & nc_j
    G1, E1 = _bool_level(1, nc >> _SH1, rl >> _SH1, M1, empty)
    # level 2 (1 round): open the masked level-1 words [E1 ^ a2, G1 ^ b2]
    w2 = np.empty((2, N), dtype=_U64)
    np.bitwise_xor(E1, a2, out=w2[0])
    np.bitwise_xor(G1, b2, out=w2[1])
    (d2,), _ = await open_words(s, [w2], [])
    ab2 = np.stack((a2, b2))
    G2, E2 = _bool_level(2, (d2[:, None] >> _SH2).reshape(8, N), (ab2[:, None] >> _SH2).reshape(8, N), M2, empty)
    # level 3 (1 round, arithmetic): open the masked level-2 words (and y - rho)
    w3 = np.empty((2, N), dtype=_U64)
    np.bitwise_xor(E2, a3, out=w3[0])
    np.bitwise_xor(G2, b3, out=w3[1])
    if fac is not None:
        yv = fac if isinstance(fac, Share) else await fac
        rho_a, r63rho, wrho, W3rho = flat[10:14]
        (d3,), (delta,) = await open_words(s, [w3], [np.subtract(yv.data.reshape(N), rho_a)])
    else:
        (d3,), _ = await open_words(s, [w3], [])
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
    if fac is None:
        return b, None
    rb = np.einsum("kn,kn->n", cm, W3rho)
    rb += r63rho
    rb += wrho * ce
    rb *= sign
    rb += rho_a * c63
    rb += u * delta
    return b, Share(rb.reshape(S), s)
