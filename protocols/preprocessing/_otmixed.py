"""The OT source's correlated kinds for the 3-round comparison and the merged truncation:
`ltz_tuples` and `matrix_trunc_triples` (additive over Z_2^64, any n >= 2), dealer-free.
A mixin of protocols.preprocessing.ot.OTPreprocessing (it uses that class's OT extension,
Gilboa products and daBits).

Two OT-based multiplications of shared values, besides Gilboa's [Gil99] (`cross`):
- `and_words` (protocols.preprocessing._otext): XOR shares of a & b for XOR-shared words,
  the cross terms one bit-OT per bit position with k-bit messages [IKNP03; ALSZ13]. Products
  of more factors are built one factor at a time (`_monomials`): every monomial U (factors
  in a fixed order) is U' & f for its last factor f and U' = U without f, so all monomials
  ending in f take ONE OT per bit of f (its bits are the receiver's choices) carrying the k
  prefixes as the message bits: the number of OT words is the number of distinct last
  factors, not of monomials. The choice words are all known at the start, so one extension
  round serves every level; then one round per last factor.
- `bit_mul`: shares of beta * Y for an XOR-shared bit beta (party p holds b_p) and an
  additively shared vector Y (M words): beta_{<=j} = beta_{<j} XOR b_j = beta_{<j} +
  b_j (1 - 2 beta_{<j}), so acc = beta_{<j} * Y is updated by b_j * Z with Z = Y - 2 acc;
  party j's own term is local and every other party i sends an additive correlated OT with
  choice b_j (at j) and correlation Z_i (M words) [Gil99's correlated OT with the choice a
  shared bit, as the daBit fold of the OT source; the XOR-to-arithmetic conversion of
  Rotaru and Wood, INDOCRYPT 2019, and of Demmler, Schneider, Zohner, "ABY", NDSS 2015,
  sec. III-C, generalised to n parties and to carrying a vector]. n (n - 1) OTs per bit
  (one per ordered pair), (16 + 8 M) bytes each; 1 + n rounds.

ltz_tuples (protocols.comparison.ltz_tuple_values defines the item): r from 63 daBits plus a
random XOR bit r63 (its arithmetic value by `bit_mul` with Y = (1, rho)), the mask words
a2, b2, a3, b3 drawn locally (XOR shares), the monomials of level 1 and 2 by `and_words`,
level 3's by `and_words` on bits packed 64 elements to a word and then made arithmetic and
multiplied by w = 1 - 2 r63 (and rho) with one `bit_mul`. The boolean monomials are supplied
at the bit positions the comparison reads (protocols.comparison.ring3._ltz_ring3: M1 at bit
positions 0 mod 4, where level 2 takes its factors; M2 at positions 0 mod 16, where level 3
takes them); the other positions are 0, which the comparison never reads: their level-1/2
outputs are opened masked by bits of a2 / a3, b3 that no monomial uses (uniform), so the
transcript keeps its distribution. Packing only the read positions makes M1 4x and M2 16x
cheaper than the dealer's whole words.

matrix_trunc_triples ((k, d) @ (d,), f): A, B uniform, C = A @ B by Gilboa with the columns
of A as the sender's vectors (as matrix_triples), the mask r of trunc_triples from 64 daBits,
and A @ r_hi, A * r_msb from ONE `bit_mul` of the daBits' XOR halves f..63 with Y = the
columns of A (r_hi = sum_{i=f}^{62} 2^(i-f) r_i): (64 - f) d bits instead of Gilboa's 64
OTs per element of r_hi and of r_msb. The relation of truncation.sub_trunc_matmul (the
truncation pair of Catrina and Saxena, FC 2010, made exact on Z_2^64 by the top bit as in
[EGKRS20, sec. 5.1], correlated with a matrix triple as ABY3's truncation pairs, Mohassel
and Rindal, CCS 2018, sec. 5.1).

Security: semi-honest, up to n - 1 corrupt, as the rest of the OT source (every value a
party sees is an OT message masked by a correlation-robust hash or a uniform share).

[Gil99] N. Gilboa, "Two party RSA key generation", CRYPTO 1999.
[IKNP03] Y. Ishai, J. Kilian, K. Nissim, E. Petrank, "Extending oblivious transfers
efficiently", CRYPTO 2003.
[ALSZ13] G. Asharov, Y. Lindell, T. Schneider, M. Zohner, "More efficient oblivious transfer
and extensions for faster secure computation", CCS 2013.
[EGKRS20] D. Escudero, S. Ghosh, M. Keller, R. Rachuri, P. Scholl, "Improved primitives for
MPC over mixed arithmetic-binary circuits", CRYPTO 2020.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from protocols.preprocessing import _ot_jit as _jit
from protocols.preprocessing.base import mtt_request

if TYPE_CHECKING:
    from protocols.preprocessing._otext import _Ext
    from protocols.preprocessing.base import Shape
    from protocols.session import Session

_U64 = np.dtype(np.uint64)
_ONE = np.uint64(1)
# bit positions the 3-round comparison reads: level-1 monomials at 4j, level-2 at 16g
_P1 = [4 * j for j in range(16)]
_P2 = [16 * g for g in range(4)]


def _gather(words: np.ndarray, pos: list[int]) -> np.ndarray:
    """(N,) words -> packed words of the N * len(pos) bits at `pos` (element-major), padded."""
    N = words.shape[0]
    bits = np.unpackbits(np.ascontiguousarray(words).view(np.uint8), bitorder="little").reshape(N, 64)
    return _pack(bits[:, pos].reshape(-1))


def _pack(bits: np.ndarray) -> np.ndarray:
    """0/1 uint8 vector -> uint64 words (bit i of word w = bits[64 w + i]), zero-padded."""
    m = -(-bits.size // 64) * 64
    out = np.zeros(m, dtype=np.uint8)
    out[: bits.size] = bits
    return np.packbits(out, bitorder="little").view(_U64)


def _unpack(words: np.ndarray, count: int) -> np.ndarray:
    """Inverse of _pack along the last axis: (..., W) words -> (..., count) 0/1 uint8."""
    b = np.unpackbits(np.ascontiguousarray(words).view(np.uint8), axis=-1, bitorder="little")
    return b[..., :count]


def _scatter(words: np.ndarray, N: int, pos: list[int]) -> np.ndarray:
    """(K, W) packed words of N * len(pos) bits -> (K, N) words with those bits at `pos`
    (one compiled pass, _ot_jit.scatter_bits; `_scatter_np` is the numpy reference)."""
    out = np.empty((words.shape[0], N), dtype=_U64)
    _jit.scatter_bits(np.ascontiguousarray(words), np.asarray(pos, dtype=np.int64), out)
    return out


def _scatter_np(words: np.ndarray, N: int, pos: list[int]) -> np.ndarray:
    """numpy reference of `_scatter` (the tests compare the two)."""
    K = words.shape[0]
    bits = _unpack(words, N * len(pos)).reshape(K, N, len(pos))
    full = np.zeros((K, N, 64), dtype=np.uint8)
    full[:, :, pos] = bits
    return np.packbits(full, axis=-1, bitorder="little").view(_U64)[..., 0]


class OTMixedKinds:
    """Mixin: `ltz_tuples`, `matrix_trunc_triples` and the products they use (see the module
    docstring). Needs OTPreprocessing's s, _extend, _finish_add, extend_words, and_words,
    cross, _gen_dabits, _take and _lock."""

    if TYPE_CHECKING:  # provided by OTPreprocessing / OTExtension
        s: Session
        name: str
        ltz_chunk: int
        mat_words: int
        _lock: asyncio.Lock
        _mpools: dict[tuple[object, ...], deque[Any]]

        async def _extend(self, choices: dict[int, np.ndarray], send: dict[int, int]) -> _Ext: ...
        async def _finish_add(
            self, ext: _Ext, deltas: dict[int, np.ndarray], recv_words: dict[int, int]
        ) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]: ...
        async def extend_words(self, *words: np.ndarray) -> list[_Ext] | _Ext: ...
        async def and_words(self, a: np.ndarray, b: np.ndarray, ext: _Ext | None = None) -> np.ndarray: ...
        async def cross(self, x: np.ndarray, y: np.ndarray) -> np.ndarray: ...
        async def _gen_dabits(self, count: int) -> list[np.ndarray]: ...
        async def _take(
            self, kind: str, count: int, gen: Callable[[int], Awaitable[list[np.ndarray]]], chunk: int
        ) -> list[np.ndarray]: ...

    # -- products -------------------------------------------------------------------------
    async def bit_mul(self, bits: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """Shares of beta_e * Y[e] (Z_2^64) for XOR-shared bits beta (my share `bits`, (N,)
        of 0/1) and additively shared Y (N, M). See the module docstring.
        Rounds: 1 + n.  Bytes sent per party: (n - 1) N 16 (u) + at most (n - 1) N 8 M."""
        N, M = Y.shape
        if N == 0 or M == 0:  # nothing to multiply (the same N, M at every party): no round
            return np.zeros((N, M), dtype=_U64)
        m = -(-N // 8) * 8
        r = np.zeros(m, dtype=np.uint8)
        r[:N] = bits
        peers, me, n = self.s.peers, self.s.pid, self.s.n
        ext = await self._extend({j: r for j in peers}, {j: m for j in peers})
        acc = np.zeros((m, M), dtype=_U64)
        if m == N:
            Yp = np.ascontiguousarray(Y, dtype=_U64)
        else:
            Yp = np.zeros((m, M), dtype=_U64)
            Yp[:N] = Y
        rw = r.astype(_U64)[:, None]
        Z = np.empty((m, M), dtype=_U64)
        for j in range(n):
            np.left_shift(acc, _ONE, out=Z)  # Z = Y - 2 acc, in place (no temporaries)
            np.subtract(Yp, Z, out=Z)
            got, kept = await self._finish_add(
                ext, {} if me == j else {j: Z}, {i: M for i in peers} if me == j else {}
            )
            if me == j:
                Z *= rw
                acc += Z
                for g in got.values():
                    acc += g
            else:
                acc += kept[j]
        return acc[:N]

    async def _monomials(
        self, F: np.ndarray, monos: list[tuple[int, ...]]
    ) -> dict[tuple[int, ...], np.ndarray]:
        """XOR shares of the AND of the factor words F[f] (nf, W) for every monomial in
        `monos` (sorted index tuples, size >= 2), one factor at a time (module docstring).
        Rounds: 1 + the number of distinct last factors."""
        need: set[tuple[int, ...]] = set()
        for U in monos:
            while len(U) >= 2 and U not in need:
                need.add(U)
                U = U[:-1]
        lasts = sorted({U[-1] for U in need})
        got = await self.extend_words(*[F[f] for f in lasts])
        exts = got if isinstance(got, list) else [got]
        val: dict[tuple[int, ...], np.ndarray] = {(f,): F[f] for f in range(F.shape[0])}
        for f, ext in zip(lasts, exts, strict=True):
            todo = sorted(U for U in need if U[-1] == f)
            prods = await self.and_words(F[f], np.stack([val[U[:-1]] for U in todo]), ext)
            for U, p in zip(todo, prods, strict=True):
                val[U] = p
        return val

    # -- ltz_tuples ---------------------------------------------------------------------
    async def _gen_ltz(self, N: int, mul: bool) -> list[np.ndarray]:
        from protocols.comparison.ring3 import _MONO, _fidx

        rng, p0 = self.s.rng, self.s.scheme.adds_public(self.s.pid)
        one = np.full(N, 1 if p0 else 0, dtype=_U64)
        a, x = await self._gen_dabits(63 * N)
        a, x = a.reshape(63, N), x.reshape(63, N) & _ONE
        sh = np.arange(63, dtype=_U64)[:, None]
        r63x = rng.bits(N)
        rl = np.bitwise_or.reduce(x << sh, axis=0)
        rho = rng.uint64(N) if mul else np.zeros(N, dtype=_U64)  # (unused without mul)
        # r63 (and r63 * rho) arithmetic; w = 1 - 2 r63
        P = await self.bit_mul(r63x, np.stack([one, rho], axis=1) if mul else one[:, None])
        r63 = P[:, 0].copy()
        r = (a << sh).sum(axis=0, dtype=_U64) + (r63 << np.uint64(63))
        w = one - np.uint64(2) * r63
        # level 1: factors t = bits 4j + t of rl, monomials at positions 4j
        F1 = np.stack([_gather(rl >> np.uint64(t), _P1) for t in range(4)])
        keys1 = [tuple(_fidx(f) for f in U) for U in _MONO[1]]
        v1 = await self._monomials(F1, keys1)
        M1 = _scatter(np.stack([v1[k] for k in keys1]), N, _P1)
        # level 2: factors a2 / b2 bits 16g + 4t, monomials at positions 16g
        a2, b2, a3, b3 = (rng.uint64(N) for _ in range(4))
        F2 = np.stack([_gather(v >> np.uint64(4 * t), _P2) for v in (a2, b2) for t in range(4)])
        keys2 = [tuple(_fidx(f) for f in U) for U in _MONO[2]]
        v2 = await self._monomials(F2, keys2)
        M2 = _scatter(np.stack([v2[k] for k in keys2]), N, _P2)
        # level 3: factor bits a3 / b3 at 16t, packed 64 elements to a word, then arithmetic
        # times (w, w rho) by bit_mul
        F3 = np.stack([_pack(((v >> np.uint64(16 * t)) & _ONE).astype(np.uint8)) for v in (a3, b3) for t in range(4)])
        keys3 = [tuple(_fidx(f) for f in U) for U in _MONO[3]]
        v3 = await self._monomials(F3, [k for k in keys3 if len(k) >= 2])
        B3 = _unpack(np.stack([v3[k] for k in keys3]), N)  # (K, N) my XOR shares
        K = len(keys3)
        Yw = np.stack([w, rho - np.uint64(2) * P[:, 1]], axis=1) if mul else w[:, None]
        Q = (await self.bit_mul(B3.reshape(-1), np.tile(Yw, (K, 1)))).reshape(K, N, -1)
        out = [r, rl, M1, a2, b2, M2, a3, b3, r63, Q[:, :, 0].copy()]
        if mul:
            out += [rho, P[:, 1].copy(), Yw[:, 1].copy(), Q[:, :, 1].copy()]
        return out

    async def ltz_tuples(self, shape: Shape, mul: bool = False) -> tuple[np.ndarray, ...]:
        """Material of the 3-round ring comparison (protocols.comparison.ltz_tuple_values;
        the boolean monomials at the bit positions the comparison reads, see the module
        docstring), generated `ltz_chunk` elements at a time and pooled per `mul`.
        Cost per element for n = 2: 63 daBits, 48 + 24 + 5/64 bit-OTs for the boolean
        monomials (packed read positions) and 23 bit x vector OTs for the arithmetic ones
        and r63; offline rounds per chunk: 3n + 19 (daBits n, r63's bit_mul 1 + n, the three
        levels' monomials 1 + 3, 1 + 6, 1 + 5, the arithmetic ones' bit_mul 1 + n).
        Security: semi-honest, up to n - 1 corrupt."""
        shape, mul = tuple(shape), bool(mul)
        N = int(np.prod(shape, dtype=np.int64))
        items = await self._take(f"ltz{int(mul)}", N, lambda c: self._gen_ltz(c, mul), self.ltz_chunk)
        return tuple(v.reshape((*v.shape[:-1], *shape)).copy() for v in items)

    # -- matrix_trunc_triples -------------------------------------------------------------
    async def matrix_trunc_triples(
        self, x_shape: Shape, y_shape: Shape, f: int
    ) -> tuple[np.ndarray, ...]:
        """(A, B, C = A @ B, r, r_hi, r_msb, A @ r_hi, A * r_msb) for (k, d) @ (d,), as
        base.Preprocessing says (module docstring for the construction).
        Generated `reps` items of one shape at a time (reps * 64 d k about `mat_words`, at
        most 64) and pooled per (shape, f).
        Rounds per batch: 2 (Gilboa) + n + 1 (daBits) + 1 + n (bit_mul).
        Bytes sent per party and item (n = 2): d (64 * 16 + 344 k) + 64 d * 24 + (64 - f) d (16 + 8 k).
        Security: semi-honest, up to n - 1 corrupt."""
        x_shape, y_shape, f = mtt_request(self.name, x_shape, y_shape, f)
        k, d = x_shape
        async with self._lock:
            pool = self._mpools.setdefault(("mtt", x_shape, f), deque())
            if not pool:
                reps = max(1, min(64, self.mat_words // max(1, 64 * d * k)))
                pool.extend(zip(*await self._gen_mtt(k, d, f, reps), strict=True))
            return pool.popleft()

    async def _gen_mtt(self, k: int, d: int, f: int, reps: int) -> list[np.ndarray]:
        rng = self.s.rng
        A, B = rng.uint64((reps, k, d)), rng.uint64((reps, d))
        AT = np.ascontiguousarray(A.transpose(0, 2, 1)).reshape(reps * d, k)
        cr = await self.cross(AT, B.reshape(-1))  # (reps d, k)
        C = (A @ B[:, :, None])[:, :, 0] + cr.reshape(reps, d, k).sum(axis=1, dtype=_U64)
        a, x = await self._gen_dabits(64 * reps * d)
        a, x = a.reshape(64, reps, d), x.reshape(64, reps, d) & _ONE
        nb = 64 - f
        P = await self.bit_mul(x[f:].reshape(-1), np.tile(AT, (nb, 1)))  # (nb reps d, k)
        P = P.reshape(nb, reps, d, k)
        r = (a << np.arange(64, dtype=_U64)[:, None, None]).sum(axis=0, dtype=_U64)
        w = (np.uint64(1) << np.arange(nb - 1, dtype=_U64))[:, None, None]
        r_hi = (a[f:63] * w).sum(axis=0, dtype=_U64)
        AR = (P[:-1] * w[..., None]).sum(axis=(0, 2), dtype=_U64)  # (reps, k)
        AM = np.ascontiguousarray(P[-1].transpose(0, 2, 1))  # (reps, k, d)
        return [A, B, C, r, r_hi, a[63].copy(), AR, AM]
