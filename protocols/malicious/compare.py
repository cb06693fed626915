"""Comparisons for malicious Shamir: less-than-zero, less-than, equality, select, ReLU.

The circuits are those of O. Catrina and S. de Hoogh, "Improved Primitives for Secure
Multiparty Integer Computation", SCN 2010 (section 3: LTZ through Mod2m with shared random
bits and a logarithmic BitLT prefix; section 4: EQZ by a product tree of bit equalities),
the semi-honest version of which is protocols.comparison.field. Here every value is an
MShare ([x], [r*x]) of protocols.malicious.chida18 and every product a checked product
[CGHIKLN18, sec. 3], so the comparison is covered by the verification before any output.

Masks (`prepare_compare`, or made inline when none is prepared), for l-bit values
(|x| < 2^(l-1), l = truncation.value_bits(domain) = 64 on GF(2^127 - 1), or `bits`):

    ltz: w = l - 1 bits R_i, a (kappa + 1)-bit r'' (kappa + 1 more bits), r' = sum 2^i R_i
         c = open(x + 2^(l-1) + 2^w r'' + r')                        (no wrap: p > 2^(l+kappa+1))
         u = BitLT(c mod 2^w, R) by the prefix (G, E)_hi o (G, E)_lo = (G_hi + E_hi G_lo, E_hi E_lo),
             its first two levels local (blocks of 4 positions) from the products of every
             subset of >= 2 of a block's bits R_j, made offline
         a = 2^w u - r' + (c mod 2^w) = y mod 2^w;  ltz = 1 - (y - a) / 2^w
    eqz: w = l bits R_i, a kappa-bit r'', c = open(x + 2^(l-1) + 2^l r'' + r')
         eqz = prod_i (1 - (c*_i XOR R_i)),  c* = (c - 2^(l-1)) mod 2^l

The bits are checked random bits (fixed.random_bits, the square-root trick) and pass a full
verification before c is opened: c is opened only masked by bits known to be bits, so it is
within statistical distance 2^-kappa of independent of x (a bit checked only after the
opening could be a non-bit of a form its breaker knows up to the sign, stripping it from
the mask before the abort). The rows that enter a product as its left operand or are added
to a product (ltz: every position, as the first levels are computed locally from them,
and r'; eqz: the even positions) are MACed under the next epoch's key before that
verification (fixed.verify_into_next_key); ltz's block products P are then two checked
products under that key (left operands with those MACs), checked at the verification that
retires it like any online product (P enters only the BitLT, after c is opened, never a
mask). The
others enter a product only as its right operand, whose MAC the product never uses ([x*y], [(r*x)*y]): a
product is checked against the value its right operand's shares define, and those are
fixed, verified bits. c is opened with the consistency check (n = 2t + 1 degree-t shares:
a changed share is seen by every honest party, reported at the next verification).

Costs, for N elements, width w (ltz: w = l - 1 = 63, eqz: w = l = 64 by default), with
prepared masks under the current key and e = domain.elem_bytes:
    ltz  Rounds 1 + 2*(ceil(log2 w) - 2) (9 for l = 64): the opening and one two-round
         DN07 product per prefix level after the first two (local);  products: 2*ceil(w'/2)
         per level w' > 2 (+1 at w' = 2) from w' = ceil(w/4): 29 per element for l = 64
         (125 with every level online, as before the block products)
    eqz  Rounds 1 + 2*ceil(log2 w) (13 for l = 64);  products: ceil(w'/2) per level
    select Rounds 2 (one product);  relu: ltz + 2
Bytes: (n - 1)*N*e for c plus each product's reduction (`chida18._reduce` on 2 * its
element count). Offline (`prepare_compare`): (w + kappa + 1) (ltz) or (w + kappa) (eqz)
checked random bits per element, one product for the MACed rows, one verification; ltz
also 11 checked products per block of 4 mask bits (the pairs, then the triples and the
quadruple: two more products, 4 rounds; 169 per element for l = 64).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from protocols.arith.domain import Domain
from protocols.arith.mersenne127 import Mersenne127
from protocols.comparison.field import _one, _pow2_sum, _public_bits
from protocols.errors import ParameterError
from protocols.malicious.chida18 import (
    MShare,
    _check,
    _Key,
    _key,
    _open_checked,
    _pair_prod,
    _record,
    _reduce,
    _state,
    compress_pending,
    masks_made,
    mul,
    refresh,
    verify_inputs,
)
from protocols.malicious.fixed import random_bits, verify_into_next_key
from protocols.session import Session, Share
from protocols.truncation import KAPPA, check_field_room, public_low_bits, value_bits

_U64 = np.uint64
_POOL = "malicious-compare"
KINDS = ("ltz", "eqz")


@dataclass(eq=False)
class _Masks:
    """Prepared masks for N comparisons: R (w, N) bit shares, the MACs of rows `rows`
    (len(rows), N), the (N,) shares of r' and (ltz) its MAC, r'' (N,) (no MAC), the key;
    ltz also the block products P (`_block_products`: rows block by block) and their MACs Pm."""

    R: np.ndarray
    Rm: np.ndarray
    rlow: np.ndarray
    rlow_m: np.ndarray | None
    rr: np.ndarray
    key: _Key
    P: np.ndarray | None = None
    Pm: np.ndarray | None = None

    @property
    def count(self) -> int:
        return self.R.shape[1]

    def _part(self, sl: slice) -> _Masks:
        def opt(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[..., sl]

        return _Masks(self.R[:, sl], self.Rm[:, sl], self.rlow[sl], opt(self.rlow_m), self.rr[sl],
                      self.key, opt(self.P), opt(self.Pm))

    def cut(self, k: int) -> tuple[_Masks, _Masks]:
        return self._part(slice(None, k)), self._part(slice(k, None))


def _width(s: Session, kind: str, kappa: int, bits: int | None) -> tuple[int, int]:
    """(l, w) for `kind`, checking the range and the field's room."""
    if kind not in KINDS:
        raise ParameterError(f"unknown comparison kind {kind!r}, expected one of {KINDS}")
    D = s.domain
    top = value_bits(D, kappa)
    ell = top if bits is None else int(bits)
    if not 2 <= ell <= top:
        raise ParameterError(f"comparison: need 2 <= bits <= {top} on {D}, got {bits}")
    check_field_room(D, ell, kappa + 1, "comparison")
    return ell, (ell - 1 if kind == "ltz" else ell)


def _mac_rows(kind: str, w: int) -> np.ndarray:
    """Rows whose MAC the circuit uses: eqz the left operands of the product tree's first
    level; ltz every row (its first BitLT levels are local: `_first_level`)."""
    if kind == "eqz":
        return np.arange(0, w, 2)
    return np.arange(w)


def _pool(s: Session) -> dict[tuple[str, int, int], list[_Masks]]:
    return s._state.ext.setdefault(_POOL, {})


def prepared(s: Session, kind: str, *, kappa: int = KAPPA, bits: int | None = None) -> int:
    """How many prepared masks of `kind` ("ltz" or "eqz") for (bits, kappa) remain."""
    ell, _ = _width(s, kind, kappa, bits)
    return sum(m.count for m in _pool(s).get((kind, ell, kappa), []))


async def prepare_compare(s: Session, count: int, kind: str = "ltz", *, kappa: int = KAPPA,
                          bits: int | None = None) -> None:
    """Make the masks of `count` future comparisons of `kind` ("ltz": ltz, lt, relu; "eqz":
    eqz, eq) ahead of time: checked random bits in one batch, the MACed rows (module
    docstring) MACed under the next epoch's key, one verification (which retires the
    current key: MShares made before must be `refresh`ed; mul does it for its left operand).

    Rounds: `random_bits` 5 + 2 + verify 3 + 1 (`compress_pending`: the pairs under the next
    key folded into one) = 11 (eqz), + 4 for ltz's block products = 15, independent of count.
    Bytes: `random_bits` of (w + kappa + 1)*count (ltz) or (w + kappa)*count (eqz), one
    reduction of ceil(w/2)*count (eqz) or (w + 1)*count (ltz: every row and r'), the
    verification's; ltz: those of `_block_products` (the block products).
    Raises: ParameterError, CheatingDetectedError (a cheater caught in the bits)."""
    ell, w = _width(s, kind, kappa, bits)
    count = int(count)
    if count <= 0:
        raise ParameterError(f"prepare_compare: count must be positive, got {count}")
    D = s.domain
    hb = kappa + 1 if kind == "ltz" else kappa
    b = (await random_bits(s, (w + hb, count))).x.data
    R = np.ascontiguousarray(b[:w])
    rlow = _pow2_sum(D, R)
    rr = _pow2_sum(D, b[w:])
    rows = _mac_rows(kind, w)
    vals = R[rows]
    if kind == "ltz":
        vals = np.concatenate([vals, rlow.reshape(1, count)])
    macs, key = await verify_into_next_key(s, vals)
    rlow_m = macs[-1] if kind == "ltz" else None
    Rm = macs[: rows.size]
    P = Pm = None
    if kind == "ltz":
        P, Pm = await _block_products(s, key, R, Rm)
    await compress_pending(s)  # the MACs' and block products' share of the next verification
    masks_made(s)
    _pool(s).setdefault((kind, ell, kappa), []).append(_Masks(R, Rm, rlow, rlow_m, rr, key, P, Pm))


async def _take(s: Session, kind: str, N: int, ell: int, kappa: int) -> _Masks:
    """N masks under the current key: prepared ones (refreshed if a verification ran since
    their preparation), else prepared here for exactly N."""
    chunks = _pool(s).setdefault((kind, ell, kappa), [])
    if sum(m.count for m in chunks) < N:
        await prepare_compare(s, N, kind, kappa=kappa, bits=ell)
    else:
        await verify_inputs(s)  # c is opened only for range-checked inputs
    parts, need = [], N
    while need:
        m = chunks[0]
        k = min(need, m.count)
        a, rest = m.cut(k)
        parts.append(a)
        if rest.count:
            chunks[0] = rest
        else:
            chunks.pop(0)
        need -= k
    def cat(arrs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(arrs, axis=-1) if len(arrs) > 1 else arrs[0]

    rlow_m = P = Pm = None
    if kind == "ltz":
        rlow_m = cat([p.rlow_m for p in parts if p.rlow_m is not None])
        P = cat([p.P for p in parts if p.P is not None])
        Pm = cat([p.Pm for p in parts if p.Pm is not None])
    out = _Masks(cat([p.R for p in parts]), cat([p.Rm for p in parts]), cat([p.rlow for p in parts]),
                 rlow_m, cat([p.rr for p in parts]), parts[0].key, P, Pm)
    key = await _key(s)
    if any(p.key is not key for p in parts):  # a verification ran since: re-MAC the rows
        rows = _mac_rows(kind, out.R.shape[0])
        old = MShare(Share(out.R[rows], s), Share(out.R[rows], s), parts[0].key)  # rx unused
        out.Rm = (await refresh(s, old)).rx.data
        if kind == "ltz":
            out.rlow_m = (await refresh(s, MShare(Share(out.rlow, s), Share(out.rlow, s), old.key))).rx.data
            assert out.P is not None
            out.Pm = (await refresh(s, MShare(Share(out.P, s), Share(out.P, s), old.key))).rx.data
        out.key = key
    return out


# --------------------------------------------------------------------- products ---
async def _pmul(s: Session, key: _Key, lv: np.ndarray, lm: np.ndarray, rv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Checked products of (lv, lm) (an MShare's shares) with shared values rv: one DN07
    reduction of ([lv*rv], [lm*rv]), recorded for the verification. 2 rounds."""
    F = s.domain
    z, tag = await _reduce(s, _pair_prod(F, lv, lm, rv), *await s.prep.double_randoms((2, *lv.shape)))
    _record(s, key, tag, z[0].reshape(-1), z[1].reshape(-1))
    return z[0], z[1]


def _full_macs(s: Session, m: _Masks, kind: str) -> np.ndarray:
    """(w, N) MAC array with the MACed rows filled (the others are never used)."""
    out = s.domain.zeros(m.R.shape)
    out[_mac_rows(kind, m.R.shape[0])] = m.Rm
    return out


async def _prefix_lt(
    s: Session, key: _Key, G: np.ndarray, Gm: np.ndarray, E: np.ndarray, Em: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """protocols.comparison.field._prefix_lt on MShare rows: left operands carry MACs."""
    D = s.domain
    N = G.shape[1]
    w = G.shape[0]
    one_v, one_m = _one(s), key.r
    while w > 2:
        h, q = (w + 1) // 2, w // 2
        lv = np.empty((2 * h, N), dtype=D.dtype)
        lm = np.empty((2 * h, N), dtype=D.dtype)
        rv = np.empty((2 * h, N), dtype=D.dtype)
        lv[:q], lm[:q] = E[1 : 2 * q : 2], Em[1 : 2 * q : 2]
        rv[:q] = G[0 : 2 * q : 2]
        rv[h : h + q] = E[0 : 2 * q : 2]
        if h > q:  # odd width: the top position meets the neutral (0, 1)
            lv[q], lm[q] = one_v, one_m
            rv[q], rv[h + q] = G[w - 1], E[w - 1]
        lv[h:], lm[h:] = lv[:h], lm[:h]
        Pv, Pm = await _pmul(s, key, lv, lm, rv)
        Gv, Gmn = Pv[:h], Pm[:h]
        D.add(Gv[:q], G[1 : 2 * q : 2], out=Gv[:q])
        D.add(Gmn[:q], Gm[1 : 2 * q : 2], out=Gmn[:q])
        G, Gm, E, Em = Gv, Gmn, Pv[h:], Pm[h:]
        w = h
    if w == 2:
        pv, pm = await _pmul(s, key, E[1], Em[1], G[0])
        return D.add(G[1], pv), D.add(Gm[1], pm)
    return G[0], Gm[0]


async def _prod_tree(s: Session, key: _Key, E: np.ndarray, Em: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Product over the rows of E: left operands (even rows at the first level) carry MACs."""
    D = s.domain
    N = E.shape[1]
    one_v = _one(s)
    while E.shape[0] > 1:
        w = E.shape[0]
        h, q = (w + 1) // 2, w // 2
        lv, lm = np.empty((h, N), dtype=D.dtype), np.empty((h, N), dtype=D.dtype)
        rv = np.empty((h, N), dtype=D.dtype)
        lv[:q], lm[:q] = E[0 : 2 * q : 2], Em[0 : 2 * q : 2]
        rv[:q] = E[1 : 2 * q : 2]
        if h > q:
            lv[q], lm[q] = E[w - 1], Em[w - 1]
            rv[q] = one_v
        E, Em = await _pmul(s, key, lv, lm, rv)
    return E[0], Em[0]


#: ltz's first BitLT levels are local over blocks of this many positions (2 levels), from the
#: products of every subset of >= 2 of a block's mask bits made offline (`_block_products`)
BLOCK = 4


def _block_monos(k: int) -> list[int]:
    """The monomials of a block of k positions made offline, as bit masks of positions:
    every subset of >= 2 of them, by degree then mask (k = 4: 6 pairs, 4 triples, 1 quad)."""
    return sorted((m for m in range(1 << k) if bin(m).count("1") >= 2), key=lambda m: (bin(m).count("1"), m))


def _blocks(w: int) -> list[tuple[int, int]]:
    """(first position, size) of each block of a width-w BitLT, lowest first."""
    return [(b, min(BLOCK, w - b)) for b in range(0, w, BLOCK)]


@functools.cache
def _block_table(k: int) -> tuple[np.ndarray, np.ndarray]:
    """(coefG, coefE), each (2^k patterns, 2^k monomials) int64: a block's (G, E) = the
    prefix of its positions (G_hi + E_hi G_lo, E_hi E_lo, lowest first) with G_j = (1 - c_j)
    R_j and E_j = 1 - (c_j XOR R_j), expanded over the monomials prod_{j in mask} R_j (mask 0:
    the constant 1) for the public bits c (pattern bit j = c_j): multilinear, as the R_j are
    distinct variables."""
    def mul(x: dict[int, int], y: dict[int, int]) -> dict[int, int]:
        out: dict[int, int] = {}
        for mx, cx in x.items():
            for my, cy in y.items():
                out[mx | my] = out.get(mx | my, 0) + cx * cy
        return out

    def add(x: dict[int, int], y: dict[int, int]) -> dict[int, int]:
        out = dict(x)
        for m, c in y.items():
            out[m] = out.get(m, 0) + c
        return out

    cg = np.zeros((1 << k, 1 << k), dtype=np.int64)
    ce = np.zeros((1 << k, 1 << k), dtype=np.int64)
    for pat in range(1 << k):
        G: dict[int, int] = {}
        E: dict[int, int] = {0: 1}
        for j in range(k):
            c = (pat >> j) & 1
            Gj = {} if c else {1 << j: 1}
            Ej = {1 << j: 1} if c else {0: 1, 1 << j: -1}
            G, E = add(Gj, mul(Ej, G)), mul(Ej, E)
        for m, c in G.items():
            cg[pat, m] = c
        for m, c in E.items():
            ce[pat, m] = c
    cg.flags.writeable = ce.flags.writeable = False  # cached: shared by every call
    return cg, ce


async def _block_products(s: Session, key: _Key, R: np.ndarray, Rm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The offline half of ltz's first BitLT levels: for every block (`_blocks`), the
    products of each subset of >= 2 of its mask bits (`_block_monos`), rows block by block,
    with their MACs under `key`: the pairs by one checked product (left operands R_b with
    their MACs), then the triples (pair {b, c} times R_a) and the quadruple (pair {2, 3} times
    pair {0, 1}) by a second, each recorded for the verification that retires `key` like
    any product.
    Rounds: 4 (2 if no block has 3 positions).  Bytes: `_reduce` of 2 * 6 * N, then of
    2 * 5 * N, per block of 4.   Returns (P, Pm), (rows, N)."""
    D = s.domain
    N = R.shape[1]
    pairs: list[tuple[int, int]] = []  # (low position, high position)
    higher: list[tuple[int, int, int]] = []  # (index of the pair (left), right: position or ~pair index)
    rows: list[tuple[str, int]] = []  # per output row: ("p", pair index) or ("h", higher index)
    for b0, k in _blocks(R.shape[0]):
        idx: dict[int, int] = {}
        for m in _block_monos(k):
            js = [j for j in range(k) if m >> j & 1]
            if len(js) == 2:
                idx[m] = len(pairs)
                rows.append(("p", len(pairs)))
                pairs.append((b0 + js[0], b0 + js[1]))
            elif len(js) == 3:  # pair of the top two times the lowest bit
                rows.append(("h", len(higher)))
                higher.append((idx[(1 << js[1]) | (1 << js[2])], b0 + js[0], 0))
            else:  # {0, 1, 2, 3}: pair {2, 3} times pair {0, 1}
                rows.append(("h", len(higher)))
                higher.append((idx[0b1100], idx[0b0011], 1))
    if not pairs:
        return D.zeros((0, N)), D.zeros((0, N))
    lo = np.array([p[0] for p in pairs])
    hi = np.array([p[1] for p in pairs])
    Pv, Pm = await _pmul(s, key, np.ascontiguousarray(R[hi]), np.ascontiguousarray(Rm[hi]), np.ascontiguousarray(R[lo]))
    if higher:
        left = np.array([h[0] for h in higher])
        right = np.empty((len(higher), N), dtype=D.dtype)
        for i, (_, r, is_pair) in enumerate(higher):
            right[i] = Pv[r] if is_pair else R[r]
        Hv, Hm = await _pmul(s, key, np.ascontiguousarray(Pv[left]), np.ascontiguousarray(Pm[left]), right)
    out, outm = D.zeros((len(rows), N)), D.zeros((len(rows), N))
    for i, (kind, j) in enumerate(rows):
        out[i], outm[i] = (Pv[j], Pm[j]) if kind == "p" else (Hv[j], Hm[j])
    return out, outm


def _first_level(s: Session, key: _Key, m: _Masks, cb: np.ndarray) -> tuple[np.ndarray, ...]:
    """ltz's first two BitLT levels without communication: a block of k <= BLOCK positions'
    (G, E) is, for public c, a combination with small integer coefficients (`_block_table`,
    chosen by the block's k bits of c) of the monomials 1, R_j and the offline products P of
    >= 2 of its bits; their MACs are the same combination of r, r R_j and r P (MACs are
    linear). Returns (G, Gm, E, Em), each (ceil(w / BLOCK), N). Over GF(2^127 - 1) with the
    compiled kernels: one pass of `_jit.block_level` per block size and component (numpy
    selections of 16-byte elements are slow)."""
    D = s.domain
    R, P, Pm = m.R, m.P, m.Pm
    assert P is not None and Pm is not None
    Rm = m.Rm if m.Rm.shape == R.shape else _full_macs(s, m, "ltz")
    if not (isinstance(D, Mersenne127) and D._kernels() is not None):
        return _first_level_np(s, key, R, Rm, P, Pm, cb)
    from protocols.malicious._jit import block_level

    w, N = R.shape
    blocks = _blocks(w)
    cb8 = np.ascontiguousarray(cb, dtype=np.uint8)
    outs = []
    for Rx, Px, one in ((R, P, _one(s)), (Rm, Pm, key.r)):
        G, E = D.zeros((len(blocks), N)), D.zeros((len(blocks), N))
        Gw, Ew = G.view(np.uint64).reshape(len(blocks), N, 2), E.view(np.uint64).reshape(len(blocks), N, 2)
        Rw, Pw, ow = _u64(Rx), _u64(Px) if Px.shape[0] else np.zeros((1, N, 2), np.uint64), \
            _u64(np.asarray(one).reshape(1))[0]
        i = row = 0
        while i < len(blocks):  # runs of equal block size: full blocks, then the remainder
            k = blocks[i][1]
            j = i
            while j < len(blocks) and blocks[j][1] == k:
                j += 1
            cg, ce = _block_table(k)
            monos = _block_monos(k)
            midx = np.full(1 << k, -1, dtype=np.int64)  # 1: -1, R_j: -(j + 2), P row: its index
            for jj in range(k):
                midx[1 << jj] = -(jj + 2)
            for t, mm in enumerate(monos):
                midx[mm] = t
            block_level(Rw, Pw, cb8, ow, cg, ce, midx, blocks[i][0], row, len(monos), k, j - i,
                        Gw[i:j], Ew[i:j])
            row += (j - i) * len(monos)
            i = j
        outs += [G, E]
    return outs[0], outs[2], outs[1], outs[3]


def _u64(a: np.ndarray) -> np.ndarray:
    """A DT127 array's (lo, hi) words, shape (*a.shape, 2): a view whenever the last axis is
    contiguous (the column slices of prepared masks that `_take` hands out are; copying them,
    (w + 169) rows of 16-byte elements per comparison, was most of the first level's time),
    else a copy. The compiled kernels take strided arrays."""
    if a.ndim == 0 or a.strides[-1] != a.itemsize:
        a = np.ascontiguousarray(a)
    return a.view(np.uint64).reshape(*a.shape, 2)


def _first_level_np(s: Session, key: _Key, R: np.ndarray, Rm: np.ndarray, P: np.ndarray,
                    Pm: np.ndarray, cb: np.ndarray) -> tuple[np.ndarray, ...]:
    """`_first_level` by field products with the per-element coefficients (any field; the
    reference of the compiled one)."""
    D = s.domain
    w, N = R.shape
    blocks = _blocks(w)
    outs = []
    for Rx, Px, one in ((R, P, _one(s)), (Rm, Pm, key.r)):
        G, E = D.zeros((len(blocks), N)), D.zeros((len(blocks), N))
        row = 0
        for bi, (b0, k) in enumerate(blocks):
            cg, ce = _block_table(k)
            monos = _block_monos(k)
            pat = sum(cb[b0 + j].astype(np.int64) << j for j in range(k))
            vals = {0: np.ascontiguousarray(np.broadcast_to(one, (N,)))}
            for j in range(k):
                vals[1 << j] = Rx[b0 + j]
            for t, mm in enumerate(monos):
                vals[mm] = Px[row + t]
            row += len(monos)
            for tab, out in ((cg, G), (ce, E)):
                acc = D.zeros((N,))
                for mm, v in vals.items():
                    acc = D.add(acc, D.mul(np.ascontiguousarray(v), D.from_int(tab[pat, mm].astype(object))))
                out[bi] = acc
        outs += [G, E]
    G, E, Gm, Em = outs
    return G, Gm, E, Em


def _xnor(s: Session, key: _Key, R: np.ndarray, Rm: np.ndarray, cb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1 - (c_i XOR R_i) = (R_i if c_i else 1 - R_i), and its MAC (r*R or r - r*R)."""
    D = s.domain
    E = D.sub(np.broadcast_to(_one(s), R.shape), R)
    np.copyto(E, R, where=cb)
    Em = D.sub(np.ascontiguousarray(np.broadcast_to(key.r, R.shape)), Rm)
    np.copyto(Em, Rm, where=cb)
    return E, Em


def _scaled(D: Domain, v: np.ndarray, k: int) -> np.ndarray:
    """2^k * v (elementwise, shares)."""
    return D.mul(v, D.from_int(np.full(v.shape, 1 << k, dtype=object)))


async def _open_masked(s: Session, v: np.ndarray) -> np.ndarray:
    c, ok = await _open_checked(s, v, "mcmp")
    if not ok:
        ctx = _state(s)
        ctx.failed = ctx.failed or "open"
    return c


# -------------------------------------------------------------------- protocols ---
async def ltz(s: Session, x: MShare, *, kappa: int = KAPPA, bits: int | None = None) -> MShare:
    """[x < 0] as an MShare of 0/1 [CdH10, sec. 3], checked (module docstring).

    Shapes: x: S; returns S.   Range: |x| < 2^(l-1), l = bits (2 <= bits <= value_bits) or
    value_bits(domain) (64 on GF(2^127 - 1)); outside it the result is wrong.
    Rounds: 1 + 2*(ceil(log2(l - 1)) - 2) (9 for l = 64) with prepared masks under the
    current key (+5 for `chida18.check_values` if a product ran since the last check,
    review5); + `prepare_compare` (15) + 2 (refreshing x) if none is prepared.
    Raises: ParameterError, CheatingDetectedError (at the verification before any output)."""
    _check(s, x)
    ell, w = _width(s, "ltz", kappa, bits)
    S, N, D = x.shape, x.size, s.domain
    m = await _take(s, "ltz", N, ell, kappa)
    x = await refresh(s, x)
    key = m.key
    y = x.reshape(N) + (1 << (ell - 1))
    masked = D.add(D.add(y.x.data, _scaled(D, m.rr, w)), m.rlow)
    c = await _open_masked(s, masked)
    c_low = public_low_bits(D, c, w)
    cb = _public_bits(c_low, w)
    G, Gm, E, Em = _first_level(s, key, m, cb)
    uv, um = await _prefix_lt(s, key, G, Gm, E, Em)
    assert m.rlow_m is not None
    u = MShare(Share(uv, s), Share(um, s), key)
    rlow = MShare(Share(m.rlow, s), Share(m.rlow_m, s), key)
    a = (u * (1 << w) - rlow) + D.from_int(c_low.astype(object))
    nonneg = (y - a) * pow(2, -w, D.modulus)
    return (1 - nonneg).reshape(*S)


async def eqz(s: Session, x: MShare, *, kappa: int = KAPPA, bits: int | None = None) -> MShare:
    """[x == 0] as an MShare of 0/1 [CdH10, sec. 4], checked (module docstring).

    Shapes: x: S; returns S.   Range: as `ltz`.
    Rounds: 1 + 2*ceil(log2 l) (13 for l = 64) with prepared masks under the current key
    (+5 for `chida18.check_values` after a product, review5); + `prepare_compare` (11) + 2
    (refreshing x) if none is prepared.
    Raises: ParameterError, CheatingDetectedError."""
    _check(s, x)
    ell, w = _width(s, "eqz", kappa, bits)
    S, N, D = x.shape, x.size, s.domain
    m = await _take(s, "eqz", N, ell, kappa)
    x = await refresh(s, x)
    key = m.key
    shifted = (x.reshape(N) + (1 << (ell - 1))).x.data
    masked = D.add(D.add(shifted, _scaled(D, m.rr, ell)), m.rlow)
    c = await _open_masked(s, masked)
    cs = public_low_bits(D, c, ell) - _U64(1 << (ell - 1))
    if ell < 64:
        cs &= _U64((1 << ell) - 1)
    E, Em = _xnor(s, key, m.R, _full_macs(s, m, "eqz"), _public_bits(cs, ell))
    ev, em = await _prod_tree(s, key, E, Em)
    return MShare(Share(ev, s), Share(em, s), key).reshape(*S)


async def lt(s: Session, x: MShare, y: MShare | int | np.ndarray, *, bits: int | None = None) -> MShare:
    """[x < y] = ltz(x - y). Range: |x - y| < 2^(l-1). Costs as `ltz`."""
    if isinstance(y, MShare):
        x, y = await _same_key(s, x, y)
    return await ltz(s, x - y, bits=bits)


async def eq(s: Session, x: MShare, y: MShare | int | np.ndarray, *, bits: int | None = None) -> MShare:
    """[x == y] = eqz(x - y). Range: |x - y| < 2^(l-1). Costs as `eqz`."""
    if isinstance(y, MShare):
        x, y = await _same_key(s, x, y)
    return await eqz(s, x - y, bits=bits)


async def _same_key(s: Session, x: MShare, y: MShare) -> tuple[MShare, MShare]:
    _check(s, x, y)
    return await refresh(s, x), await refresh(s, y)


async def select(s: Session, b: MShare, x: MShare | int | np.ndarray, y: MShare | int | np.ndarray) -> MShare:
    """b ? x : y = y + b*(x - y) for a shared bit b (one checked product; exact).

    Shapes: b, x, y: S.   Rounds: 2 (+2 per operand of an older epoch).
    Raises: ShapeMismatch."""
    _check(s, b)
    b = await refresh(s, b)
    xs = await refresh(s, x) if isinstance(x, MShare) else x
    ys = await refresh(s, y) if isinstance(y, MShare) else y
    if isinstance(xs, MShare):
        d = xs - ys
    elif isinstance(ys, MShare):
        d = (-ys) + xs
    else:  # both public: local
        diff = np.asarray(xs, dtype=object) - np.asarray(ys, dtype=object)
        return b * s.domain.from_int(np.broadcast_to(diff, b.shape)) + ys
    if d.shape != b.shape:
        d = MShare(Share(np.ascontiguousarray(np.broadcast_to(d.x.data, b.shape)), s),
                   Share(np.ascontiguousarray(np.broadcast_to(d.rx.data, b.shape)), s), d.key)
    return await mul(s, b, d) + ys


async def relu(s: Session, x: MShare, *, bits: int | None = None) -> MShare:
    """max(x, 0) = x - ltz(x)*x (one ltz, one checked product; exact).
    Rounds: those of `ltz` + 2."""
    neg = await ltz(s, x, bits=bits)
    x = await refresh(s, x)
    return x - await mul(s, neg, x)


__all__ = ["KINDS", "eq", "eqz", "lt", "ltz", "prepare_compare", "prepared", "relu", "select"]
