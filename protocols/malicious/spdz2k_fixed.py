"""SPDZ2k non-linear protocols over Z_2^64: MACed random bits, probabilistic truncation,
fixed-point products, less-than-zero and equality, all on `spdz2k.AShare`s (shares and MACs
in Z_2^128, k = s = 64), so every opening is covered by the batched MAC check that precedes
any output [CDESX18, Fig. 3].

Masks. An element's mask is 64 MACed random bits R_0..R_63 (r = sum_i 2^i R_i, uniform in
Z_2^64) and one MACed random t; the masked value is opened as [v + r + 2^64 t]: the low 64
bits are v + r mod 2^64 (uniform: they hide v), the upper 64 bits are hidden by 2^64 t (the
upper half of a Z_2^128 sharing can depend on honest parties' secrets, e.g. through a
product's carries; `spdz2k.open` masks it the same way). The MAC check guarantees the
opened value mod 2^64 only, which is all that is used. The bits come from the
preprocessing's `bits` kind: the in-process dealer (`Spdz2kDealer`, insecure) or the
dealer-free `Spdz2kOT.bits` (each party authenticates its own random bits by vOLE, their
bit-ness is checked by opening b_i (b_i - 1) masked by 2^64 t, and b = XOR_i b_i by the
arithmetic XOR; see that method), which hands out only bits that passed its MAC check, so a
value is only ever opened masked by verified bits. Bits are values mod 2^64 (b(b - 1) = 0
mod 2^64 forces b in {0, 1} mod 2^64, b and b - 1 being coprime); the upper half of their
Z_2^128 representatives is don't-care, as in SPDZ2k.
[DEFKSX19] I. Damgard, D. Escudero, T. Frederiksen, M. Keller, P. Scholl, N. Volgushev, "New
primitives for actively-secure MPC over rings with applications to private machine
learning", IEEE S&P 2019 (sec. IV: random bits, truncation and comparison in SPDZ2k).
[EGKRS20] D. Escudero, S. Ghosh, M. Keller, R. Rachuri, P. Scholl, "Improved primitives for
MPC over mixed arithmetic-binary circuits", CRYPTO 2020 (sec. 5.1: truncation with the
top-bit correction; sec. 5.2: comparison by msb(x) = msb(c) ^ msb(r) ^ BitLT).
[CdH10] O. Catrina, S. de Hoogh, "Improved primitives for secure multiparty integer
computation", SCN 2010 (sec. 3: the logarithmic BitLT prefix; sec. 4: EQZ).
[CDESX18] R. Cramer, I. Damgard, D. Escudero, P. Scholl, C. Xing, "SPDZ2k", CRYPTO 2018.

Protocols (N elements; "triples" are SPDZ2k MACed Beaver triples; rounds exclude the MAC
check that `spdz2k.open` runs before any output):
    trunc      y = x + 2^62,  c = open(y + r + 2^64 t) mod 2^64,  c' = c mod 2^63,
               z = (c' >> f) - (r' >> f) + 2^(63-f) (msb(c) ^ R_63) - 2^(62-f),  r' = r mod 2^63
               (the semi-honest `truncation.trunc` "msb" formula, [EGKRS20, 5.1]): z =
               floor(x / 2^f) + u, u in {0, 1}, P(u = 1) = (x mod 2^f) / 2^f, exact for
               |x| < 2^62.  Rounds 1.  Bytes (n - 1) 16 N.  Preprocessing: 64 N bits, N randoms.
    fixed_mul  trunc(mul(x, y), f).  Rounds 2.  Bytes (n - 1) 48 N.  + 1 triple per element.
    ltz        c = open(x + r + 2^64 t) mod 2^64;  ltz = msb(c) ^ R_63 ^ BitLT(c mod 2^63, R_0..62)
               [EGKRS20, 5.2]; BitLT by the prefix (G, E)_hi o (G, E)_lo = (G_hi + E_hi G_lo,
               E_hi E_lo) [CdH10, sec. 3] whose first level is local: a pair's (G, E) is
               affine in R_hi, R_lo and P = R_hi R_lo (public coefficients from c), P made
               with the masks (offline). Exact for every int64.
               Rounds 7 (open 1, prefix levels 32 -> 1: 5, the XOR 1).
               Triples online: 2 (16 + 8 + 4 + 2 + 1) - 5 + 1 = 58 per element; bytes
               (n - 1) 16 N (1 + 2 * 58).  Offline: 64 bits, 1 random, 32 triples (P).
    eqz        c = open(x + r + 2^64 t) mod 2^64;  eqz = prod_i (1 - (c_i ^ R_i)), the first
               level local from P as above [CdH10, sec. 4].  Rounds 6 (open 1, tree 32 -> 1: 5).
               Triples online: 31 per element.  Offline: as ltz.
    lt, eq     ltz(x - y), eqz(x - y) (x - y wraps mod 2^64 as in semi-honest mode).
Security: malicious with abort, up to n - 1 corrupt; an error in any opening (c, a Beaver
opening) or share makes the MAC check before the output fail on every honest party
(CheatingDetectedError, code security.cheating_detected; nothing is released). c reveals
nothing (its low half is uniform, its upper half masked by 2^64 t).

`prepare_trunc` / `prepare_compare` fetch the masks of `count` future operations ahead of
time (offline: the bits, the randoms and, for comparisons, the products P); `trunc`,
`ltz`, `eqz` take prepared masks first and fetch the rest inline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocols.arith import ring128 as R
from protocols.errors import MaliciousUnsupportedError, ParameterError
from protocols.malicious import spdz2k
from protocols.malicious.spdz2k import AShare
from protocols.session import Session
from protocols.truncation import RING_TRUNC_BITS, trunc_public_parts

__all__ = [
    "KINDS", "Masks", "eq", "eqz", "fixed_mul", "lt", "ltz", "prepare_compare", "prepare_trunc",
    "prepared", "random_bits", "trunc",
]

#: mask pools: "trunc" (bits and t) and "cmp" (bits, t and the pair products P)
KINDS = ("trunc", "cmp")
_POOL = "spdz2k-fixed"
_U64 = np.dtype(np.uint64)
_ARANGE64 = np.arange(64, dtype=np.uint64)


# ------------------------------------------------------------------------------ helpers ---
def _cat(xs: list[AShare]) -> AShare:
    """Concatenate AShares along their first axis."""
    s = xs[0]._s
    if len(xs) == 1:
        return xs[0]
    return AShare(np.concatenate([x.x for x in xs]), np.concatenate([x.m for x in xs]), s)


def _weighted(b: AShare, lo: int, hi: int) -> AShare:
    """sum_{lo <= i < hi} 2^(i - lo) b[i] for b of shape (64, N) (local)."""
    w = (np.uint64(1) << np.arange(hi - lo, dtype=np.uint64))[:, None]
    return AShare(R.sum(R.mul_u64(b.x[lo:hi], w), axis=0), R.sum(R.mul_u64(b.m[lo:hi], w), axis=0), b._s)


def _upper(t: AShare) -> AShare:
    """2^64 t (local; the MAC is 2^64 alpha t)."""
    return AShare(R.shl64(t.x), R.shl64(t.m), t._s)


def public_bits(c: np.ndarray) -> np.ndarray:
    """The 64 bits of public uint64 values c (N,), least significant first: (64, N) int64."""
    return ((c[None, :] >> _ARANGE64[:, None]) & np.uint64(1)).astype(np.int64)


# -------------------------------------------------------------------------------- masks ---
@dataclass(eq=False)
class Masks:
    """Masks of N elements: R (64, N) MACed bits, t (N,) a MACed random, P (32, N) the pair
    products R_{2j+1} R_{2j} (comparisons only); r = sum_i 2^i R_i and, for truncations by a
    known f, r_hi = sum_{f <= i < 63} 2^(i - f) R_i, made with the masks (offline: local
    but not free, 64 products in Z_2^128 per element)."""

    R: AShare
    t: AShare
    P: AShare | None = None
    r: AShare | None = None
    f: int | None = None
    rhi: AShare | None = None

    @property
    def count(self) -> int:
        return self.t.size

    def cut(self, k: int) -> tuple[Masks, Masks]:
        def part(sl: slice) -> Masks:
            def opt(a: AShare | None) -> AShare | None:
                return None if a is None else a[sl]

            return Masks(self.R[:, sl], self.t[sl], None if self.P is None else self.P[:, sl],
                         opt(self.r), self.f, opt(self.rhi))

        return part(slice(None, k)), part(slice(k, None))


async def random_bits(s: Session, shape: tuple[int, ...]) -> AShare:
    """Uniform random bits (values in {0, 1} mod 2^64) as an AShare, from the preprocessing's
    `bits` kind (the dealer, or the dealer-free Spdz2kOT: checked before they are handed out).
    Rounds: 0 online.   Raises: MaliciousUnsupportedError (a source without bits)."""
    ctx = spdz2k._ctx(s)
    fetch = getattr(ctx.prep, "bits", None)
    if fetch is None:
        raise MaliciousUnsupportedError(f"SPDZ2k preprocessing {type(ctx.prep).__name__} has no random bits")
    shape = tuple(int(d) for d in shape)
    x, m = await fetch(shape)
    return AShare(x, m, s)


async def _fetch(s: Session, N: int, kind: str, f: int | None = None) -> Masks:
    """N fresh masks of `kind` ("cmp": with the pair products, one Beaver round), with r
    and (f given) r_hi."""
    bits = await random_bits(s, (64, N))
    tx, tm = await spdz2k._ctx(s).prep.randoms((N,))
    P = None
    if kind == "cmp":
        P = await spdz2k.mul(s, bits[1::2], bits[0::2])
    rhi = None if f is None else _weighted(bits, f, 63)
    return Masks(bits, AShare(tx, tm, s), P, _weighted(bits, 0, 64), f, rhi)


def _pool(s: Session) -> dict[str, list[Masks]]:
    return s._state.ext.setdefault(_POOL, {})


def prepared(s: Session, kind: str) -> int:
    """How many prepared masks of `kind` ("trunc" or "cmp") this session holds."""
    return sum(m.count for m in _pool(s).get(kind, []))


async def _prepare(s: Session, count: int, kind: str, f: int | None = None) -> None:
    if kind not in KINDS:
        raise ParameterError(f"unknown mask kind {kind!r}, expected one of {KINDS}")
    count = int(count)
    if count <= 0:
        raise ParameterError(f"prepare: count must be positive, got {count}")
    m = await _fetch(s, count, kind, f)
    _pool(s).setdefault(kind, []).append(m)


async def prepare_trunc(s: Session, count: int, f: int | None = None) -> None:
    """Fetch the masks of `count` future truncations: 64 bits and one random each (any f
    can use them; with f given, r >> f is precomputed for it).
    Rounds: 0 online (the source's own, if it makes them)."""
    if f is not None and not 0 < int(f) < RING_TRUNC_BITS:
        raise ParameterError(f"trunc: need 0 < f < {RING_TRUNC_BITS}, got {f}")
    await _prepare(s, count, "trunc", None if f is None else int(f))


async def prepare_compare(s: Session, count: int, kind: str = "ltz") -> None:
    """Fetch the masks of `count` future comparisons ("ltz" or "eqz": the same masks): 64
    bits, one random and the 32 pair products P (one Beaver round on 32 * count triples)."""
    if kind not in ("ltz", "eqz"):
        raise ParameterError(f"unknown comparison kind {kind!r}, expected 'ltz' or 'eqz'")
    await _prepare(s, count, "cmp")


async def _take(s: Session, kind: str, N: int, f: int | None = None) -> Masks:
    """N masks: prepared ones first, the rest fetched now."""
    chunks = _pool(s).setdefault(kind, [])
    parts, need = [], N
    while need and chunks:
        a, rest = chunks[0].cut(min(need, chunks[0].count))
        parts.append(a)
        if rest.count:
            chunks[0] = rest
        else:
            chunks.pop(0)
        need -= a.count
    if need:
        parts.append(await _fetch(s, need, kind, f))
    if len(parts) == 1:
        return parts[0]

    def cat1(xs: list[AShare]) -> AShare:
        return AShare(np.concatenate([x.x for x in xs], axis=1), np.concatenate([x.m for x in xs], axis=1), s)

    P = cat1([p.P for p in parts if p.P is not None]) if kind == "cmp" else None
    Rb = cat1([p.R for p in parts])
    rs = [p.r for p in parts if p.r is not None]
    r = _cat(rs) if len(rs) == len(parts) else _weighted(Rb, 0, 64)
    hs = [p.rhi for p in parts if p.rhi is not None and p.f == f]
    rhi = _cat(hs) if f is not None and len(hs) == len(parts) else None
    return Masks(Rb, _cat([p.t for p in parts]), P, r, f if rhi is not None else None, rhi)


async def _open_masked(s: Session, op: str, v: AShare, m: Masks) -> np.ndarray:
    """c = (v + r + 2^64 t) mod 2^64 for v of shape (N,): one partial opening (recorded for
    the next MAC check)."""
    r = m.r if m.r is not None else _weighted(m.R, 0, 64)
    masked = v + r + _upper(m.t)
    (c,) = await spdz2k._open_partial(s, op, [masked])
    return R.lo(c)


# ---------------------------------------------------------------------------- truncation ---
async def trunc(s: Session, x: AShare, f: int) -> AShare:
    """Divide by 2^f with probabilistic rounding (module docstring; [EGKRS20, sec. 5.1]).

        c = open(x + 2^62 + r + 2^64 t) mod 2^64;
        z = (c' >> f) - (r' >> f) + 2^(63-f) (msb(c) ^ R_63) - 2^(62-f)

    Result: floor(x / 2^f) + u, u in {0, 1}, P(u = 1) = (x mod 2^f) / 2^f, for |x| < 2^62
    (the semi-honest "msb" truncation's result, bit for bit for the same c and r).
    Shapes: x: S; returns S.   Rounds: 1.   Bytes: (n - 1) * 16 * N per party.
    Preprocessing: prepared masks ("trunc"), else 64 N bits and N randoms fetched now.
    Raises: ParameterError (f out of range); CheatingDetectedError at the next check."""
    spdz2k._check(s, x)
    f = int(f)
    if not 0 < f < RING_TRUNC_BITS:
        raise ParameterError(f"trunc: need 0 < f < {RING_TRUNC_BITS}, got {f}")
    N = x.size
    m = await _take(s, "trunc", N, f)
    c = await _open_masked(s, "strunc", x.reshape(N) + (1 << RING_TRUNC_BITS), m)
    p, q = trunc_public_parts(c, f)
    rhi = m.rhi if m.rhi is not None and m.f == f else _weighted(m.R, f, 63)
    z = m.R[63] * q - rhi + p
    return z.reshape(x.shape)


async def fixed_mul(s: Session, x: AShare, y: AShare, f: int) -> AShare:
    """Fixed-point product trunc(x * y, f).   Rounds: 2 (Beaver 1, truncation 1).
    Bytes: (n - 1) * 48 * N per party.   Preprocessing: one triple and one mask per element."""
    return await trunc(s, await spdz2k.mul(s, x, y), f)


# ---------------------------------------------------------------------------- comparison ---
def _select(cases: list[np.ndarray], opts: list[AShare | None]) -> AShare:
    """Per element, the option of its case (None: 0); the cases partition the elements."""
    ref = next(o for o in opts if o is not None)
    x, m = np.zeros_like(ref.x), np.zeros_like(ref.m)
    for c, o in zip(cases, opts, strict=True):
        if o is not None:
            np.copyto(x, o.x, where=c[..., None])
            np.copyto(m, o.m, where=c[..., None])
    return AShare(x, m, ref._s)


def _pair_level(m: Masks, cb: np.ndarray, w: int) -> tuple[AShare, AShare]:
    """The first prefix level without communication: for the pairs (hi, lo) = (2j + 1, 2j)
    of the w low positions, with G_i = (1 - c_i) R_i and E_i = 1 - (c_i ^ R_i)
    = (1 - c_i) + (2 c_i - 1) R_i,

        G = G_hi + E_hi G_lo = (1 - c_h) R_h + (1 - c_l)(1 - c_h) R_l + (1 - c_l)(2 c_h - 1) P
        E = E_hi E_lo = (1 - c_h)(1 - c_l) + (1 - c_h)(2 c_l - 1) R_l + (2 c_h - 1)(1 - c_l) R_h
            + (2 c_h - 1)(2 c_l - 1) P

    with P = R_h R_l (offline); an odd top position passes through. Returns (G, E),
    (ceil(w / 2), N) each."""
    assert m.P is not None
    q = w // 2
    Rh, Rl, P = m.R[1 : 2 * q : 2], m.R[0 : 2 * q : 2], m.P[:q]
    ch, cl = cb[1 : 2 * q : 2], cb[0 : 2 * q : 2]
    # the coefficients per (c_h, c_l): G = Rh + Rl - P, Rh, P, 0 and E = 1 - (Rh + Rl - P),
    # Rl - P, Rh - P, P for (0, 0), (0, 1), (1, 0), (1, 1): selections, no products
    A = Rh + Rl - P
    cases = [(ch == 0) & (cl == 0), (ch == 0) & (cl == 1), (ch == 1) & (cl == 0), (ch == 1) & (cl == 1)]
    G = _select(cases, [A, Rh, P, None])
    E = _select(cases, [(-A) + 1, Rl - P, Rh - P, P])
    if w % 2:
        c, Rt = cb[w - 1], m.R[w - 1]
        G = _cat([G, (Rt * (1 - c)).reshape(1, -1)])
        E = _cat([E, (Rt * (2 * c - 1) + (1 - c)).reshape(1, -1)])
    return G, E


async def _prefix(s: Session, G: AShare, E: AShare) -> AShare:
    """G of the whole prefix (G_hi + E_hi G_lo, E_hi E_lo), one Beaver round per level; the
    E of the lowest group is never needed and not computed."""
    while G.shape[0] > 1:
        w = G.shape[0]
        q = w // 2
        left, right = [E[1 : 2 * q : 2]], [G[0 : 2 * q : 2]]
        if q > 1:
            left.append(E[3 : 2 * q : 2])
            right.append(E[2 : 2 * q : 2])
        prod = await spdz2k.mul(s, _cat(left), _cat(right))
        Gn = [G[1 : 2 * q : 2] + prod[:q]]
        En = [E[1:2]]  # a placeholder for the lowest group's E (never used)
        if q > 1:
            En.append(prod[q:])
        if w % 2:  # the top position passes through
            Gn.append(G[w - 1 : w])
            En.append(E[w - 1 : w])
        G, E = _cat(Gn), _cat(En)
    return G[0]


async def _prod_tree(s: Session, E: AShare) -> AShare:
    """The product of E's rows, one Beaver round per level."""
    while E.shape[0] > 1:
        w = E.shape[0]
        q = w // 2
        prod = await spdz2k.mul(s, E[1 : 2 * q : 2], E[0 : 2 * q : 2])
        E = _cat([prod, E[w - 1 : w]]) if w % 2 else prod
    return E[0]


async def ltz(s: Session, x: AShare) -> AShare:
    """[x < 0] (x read as a signed int64) as an AShare of 0/1 (module docstring; [EGKRS20,
    sec. 5.2], [CdH10, sec. 3]).

        c = open(x + r + 2^64 t) mod 2^64;  u = BitLT(c mod 2^63, R_0..62);
        ltz = v ^ u = v + u - 2 v u,  v = msb(c) ^ R_63

    Shapes: x: S; returns S.   Range: every int64 (exact).
    Rounds: 7.   Bytes: (n - 1) * 16 * N * (1 + 2 * 58) per party.
    Preprocessing: prepared "cmp" masks (else fetched now: + 1 round for P); 58 triples per
    element online.   Raises: CheatingDetectedError at the next check."""
    spdz2k._check(s, x)
    N = x.size
    m = await _take(s, "cmp", N)
    c = await _open_masked(s, "scmp", x.reshape(N), m)
    cb = public_bits(c)
    G, E = _pair_level(m, cb, 63)
    u = await _prefix(s, G, E)
    c63 = cb[63]
    v = m.R[63] * (1 - 2 * c63) + c63
    vu = await spdz2k.mul(s, v, u)
    return (v + u - vu * 2).reshape(x.shape)


async def eqz(s: Session, x: AShare) -> AShare:
    """[x == 0] as an AShare of 0/1 [CdH10, sec. 4]: x = 0 iff c = r, i.e. every bit of c
    equals R_i.   Shapes: x: S; returns S.   Range: Z_2^64 (exact).   Rounds: 6.
    Bytes: (n - 1) * 16 * N * (1 + 2 * 31).   Preprocessing: as `ltz`; 31 triples online."""
    spdz2k._check(s, x)
    N = x.size
    m = await _take(s, "cmp", N)
    c = await _open_masked(s, "seqz", x.reshape(N), m)
    _, E = _pair_level(m, public_bits(c), 64)
    return (await _prod_tree(s, E)).reshape(x.shape)


async def lt(s: Session, x: AShare, y: AShare | int | np.ndarray) -> AShare:
    """[x < y] = ltz(x - y) (x - y wraps mod 2^64, as in semi-honest mode). Costs: `ltz`."""
    return await ltz(s, x - y)


async def eq(s: Session, x: AShare, y: AShare | int | np.ndarray) -> AShare:
    """[x == y] = eqz(x - y). Costs: `eqz`."""
    return await eqz(s, x - y)

