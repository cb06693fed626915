"""Dealer-free preprocessing for three parties, additive sharing over Z_2^64, from replicated
secret sharing: `rss3`.

Security: semi-honest, honest majority (one corrupt party of three); computational (AES-256
as a PRF for the pseudo-random secret sharing). Nothing is checked: an actively corrupt party
can make items wrong. Channels must be private and authenticated.

Construction (the engine is protocols.preprocessing._rss3core):
- Replicated sharing of Araki, Furukawa, Lindell, Nof, Ohara, "High-throughput semi-honest
  secure three-party computation with an honest majority", CCS 2016, and of ABY3 (Mohassel,
  Rindal, CCS 2018): random values, zero sharings and random words cost nothing once each
  pair of parties shares a PRG key (pseudo-random secret sharing, Cramer, Damgard, Ishai,
  TCC 2005); a product of two replicated values is an additive 3-out-of-3 sharing with no
  communication; one word per product to one neighbour (one round) makes it replicated again.
- Every item is handed out in the dealer's format as ADDITIVE (or XOR) shares: a replicated
  value's first component plus a fresh zero sharing, a product's local cross terms plus a
  fresh zero sharing. So any one party's share is its own, and the other two are uniform
  given the item's values: the trusted dealer's distribution (pseudo-randomly).

Items and costs (bytes per party; N elements; W = ceil(N / 64)):
- triples, square_pairs, matrix_triples (any (k, d) @ (d,) or (d, m)), randoms,
  bool_triples: no communication at all (local cross terms; matrix products cost one local
  product of k x d by d x m per item, not one per input word as Gilboa's).
- edaBit words [Escudero, Ghosh, Keller, Rachuri, Scholl, CRYPTO 2020]: a random replicated
  word; each of its 64 bits made arithmetic by `Replicated.b2a_words` (one round, 8 bytes
  per bit from the word's leader: 512 bytes per word led, 171 per word and party on
  average). Pooled `word_chunk` at a time.
  edabits, dabits, bits, trunc_triples (r, (r mod 2^63) >> f, r >> 63), trunc_pairs and
  bounded_randoms are sums of one word's bits: exact, the dealer's distributions.
- ltz_tuples (protocols.comparison.ltz_tuple_values, in full words as the dealer): r from one
  edaBit word; the boolean monomials M1 (of rl's shifted words) and M2 (of a2, b2's) as AND
  products of replicated words (degree <= 4: the degree-2 halves reshared, one round, then
  local); level 3: the 8 factor bits of a3, b3 made arithmetic (b2a) and reshared with r63,
  their monomials times w = 1 - 2 r63 (and rho) by replicated products. Rounds per chunk of
  `ltz_chunk` elements: 5 (+1 when the word pool refills). Bytes per element and party:
  8 x 36 reshared words (11 degree-2 halves of levels 1-2, 8 bits and r63, 16 level-3
  products with mul) + the 8 level-3 bits' b2a (64 bytes from their leaders) + one word.
- matrix_trunc_triples: A, B random, C = A @ B local; r from edaBit words, r_hi and r_msb
  reshared (one round) and A @ r_hi, A * r_msb local. `reps` items of a shape per batch.

Offline rounds: 1 (keys, once) + 1 per word-pool refill + 5 per ltz chunk + 1 per
matrix-truncation batch. n must be 3 (ConfigError = ParameterError otherwise).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from protocols.errors import ParameterError, PreprocessingExhausted, ShapeMismatch
from protocols.preprocessing._offline import offline_session
from protocols.preprocessing._rss3core import Pair, Replicated
from protocols.preprocessing.base import KINDS, SHAMIR_KINDS, Preprocessing, Shape, mtt_request
from protocols.session import Session

__all__ = ["RSS3Preprocessing", "make_rss3"]

_U64 = np.dtype(np.uint64)
_SH = np.arange(64, dtype=_U64)[:, None]
_LOW63 = np.uint64((1 << 63) - 1)
_ONE = np.uint64(1)


def _size(shape: Shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _weighted(A: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """sum_{k=lo}^{hi-1} 2^(k-lo) A[k] mod 2^64 for per-bit shares A (64, ...)."""
    from protocols.preprocessing._rss3_jit import weighted

    flat = A.reshape(64, -1)
    out = np.empty(flat.shape[1], _U64)
    weighted(flat, lo, hi, out)
    return out.reshape(A.shape[1:])


class RSS3Preprocessing(Preprocessing):
    """One party's rss3 source (3 parties, additive sharing over Z_2^64). Construct with the
    party's online Session; it runs over the same channel under its own tag prefix and
    counts its traffic in `self.stats`; the keys are agreed on first use (one round).
    Supplies every kind of base.KINDS. Security: semi-honest, honest majority (one corrupt
    party of three). Raises ParameterError (= ConfigError) unless n = 3, additive, Z_2^64;
    FrameError for a peer's malformed message (the session is aborted);
    PreprocessingExhausted for parameters no protocol uses (as the dealer)."""

    name = "rss3"
    SUPPLIES = frozenset(KINDS)

    def __init__(self, s: Session, *, word_chunk: int = 1 << 13, ltz_chunk: int = 1 << 13, mat_words: int = 1 << 18):
        if s.n != 3:
            raise ParameterError(f"rss3 preprocessing is for exactly 3 parties (honest majority), got n = {s.n}")
        if getattr(s.scheme, "kind", None) != "additive" or s.domain.is_field or s.domain.modulus != 1 << 64:
            raise ParameterError("rss3 preprocessing needs the additive scheme over Z_2^64")
        self.s = offline_session(s, "rss3")
        self.stats = self.s.stats
        self.word_chunk = max(1, int(word_chunk))
        self.ltz_chunk = max(1, int(ltz_chunk))
        self.mat_words = int(mat_words)
        self._r: Replicated | None = None
        self._words: list[np.ndarray] | None = None  # (A (64, P), c0 (P,), c1 (P,))
        self._pools: dict[Any, list[np.ndarray]] = {}
        self._mpools: dict[Any, deque[Any]] = {}
        self._lock = asyncio.Lock()

    def supports(self, kind: str) -> bool:
        """Every kind of base.KINDS; not the Shamir-only double sharings."""
        if kind in SHAMIR_KINDS:
            return False
        if kind not in KINDS:
            raise ValueError(f"unknown preprocessing kind {kind!r}")
        return kind in self.SUPPLIES

    async def _rss(self) -> Replicated:
        if self._r is None:
            self._r = await Replicated.setup(self.s)
        return self._r

    # -- edaBit words -----------------------------------------------------------------------
    async def _gen_words(self, W: int) -> list[np.ndarray]:
        """W random replicated words and raw additive shares of their 64 bits (64, W)."""
        R = await self._rss()
        c0, c1 = R.rand(W)
        return [await R.b2a_words((c0, c1)), c0, c1]

    async def _take_words(self, count: int) -> list[np.ndarray]:
        """`count` edaBit words from the pool (refilled `word_chunk` at a time): raw per-bit
        shares (64, count) and my two components (count,). Caller holds the lock."""
        pool = self._words
        if pool is None and count == 0:
            pool = [np.empty((64, 0), _U64), np.empty(0, _U64), np.empty(0, _U64)]
        have = 0 if pool is None else pool[1].shape[0]
        parts = [] if pool is None else [pool]
        while have < count:
            W = max(self.word_chunk, count - have)
            parts.append(await self._gen_words(W))
            have += W
        pool = parts[0] if len(parts) == 1 else [np.concatenate([p[i] for p in parts], axis=-1) for i in range(3)]
        self._words = [v[..., count:] for v in pool]
        return [v[..., :count] for v in pool]

    async def _word_items(
        self, N: int, make: Callable[[np.ndarray, np.ndarray], list[np.ndarray]]
    ) -> list[np.ndarray]:
        """make(per-bit shares (64, c), my first components (c,)) over N edaBit words, at most
        `word_chunk` at a time (bounded temporaries), concatenated. Caller holds the lock."""
        outs = []
        for lo in range(0, max(N, 1), self.word_chunk):  # N = 0: one empty batch (the shapes)
            A, c0, _ = await self._take_words(min(self.word_chunk, N - lo))
            outs.append(make(A, c0))
        if len(outs) == 1:
            return outs[0]
        return [np.concatenate(parts, axis=-1) for parts in zip(*outs, strict=True)]

    # -- local items ------------------------------------------------------------------------
    async def triples(self, shape: Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(a, b, a b): local cross terms plus zero sharings. No communication."""
        shape = tuple(shape)
        async with self._lock:
            R = await self._rss()
            a, b = R.rand(shape), R.rand(shape)
            return R.out(a[0]), R.out(b[0]), R.out(R.mul_raw(a, b))

    async def square_pairs(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        shape = tuple(shape)
        async with self._lock:
            R = await self._rss()
            a = R.rand(shape)
            return R.out(a[0]), R.out(R.mul_raw(a, a))

    async def matrix_triples(self, x_shape: Shape, y_shape: Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(A, B, A @ B) for (k, d) @ (d,) or (d, m): local, no communication."""
        x_shape, y_shape = tuple(x_shape), tuple(y_shape)
        if len(x_shape) != 2 or len(y_shape) not in (1, 2) or x_shape[1] != y_shape[0]:
            raise ShapeMismatch(f"matrix triples for {x_shape} @ {y_shape}")
        async with self._lock:
            R = await self._rss()
            A, B = R.rand(x_shape), R.rand(y_shape)
            return R.out(A[0]), R.out(B[0]), R.out(R.matmul_raw(A, B))

    async def randoms(self, shape: Shape) -> np.ndarray:
        return self.s.rng.uint64(tuple(shape))  # additive shares of a uniform value

    async def bool_triples(self, shape: Shape, k: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(a, b, a & b) on words, XOR-shared, a of `shape`, b and c of (k, *shape): local
        AND of replicated words plus zero sharings. No communication."""
        shape = tuple(shape)
        if not isinstance(k, int | np.integer) or not 1 <= k <= 64:
            raise PreprocessingExhausted(f"{self.name}: boolean triples need 1 <= k <= 64, got {k}")
        k = int(k)
        async with self._lock:
            R = await self._rss()
            a, b = R.rand(shape), R.rand((k, *shape))
            c = R.and_raw((a[0][None], a[1][None]), b)
            return R.xout(a[0]), R.xout(b[0]), R.xout(c)

    # -- items from edaBit words --------------------------------------------------------
    async def _bits_of(self, N: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw per-bit arithmetic shares and my XOR component bits of N random bits."""
        A, c0, _ = await self._take_words(-(-N // 64))
        return A.reshape(-1)[:N], ((c0[None, :] >> _SH) & _ONE).reshape(-1)[:N]

    async def bits(self, shape: Shape) -> np.ndarray:
        shape = tuple(shape)
        async with self._lock:
            a, _ = await self._bits_of(_size(shape))
            R = await self._rss()
            return R.out(a).reshape(shape)

    async def dabits(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        """(arithmetic share of b, XOR share of b in bit 0 of a word) for uniform bits b."""
        shape = tuple(shape)
        async with self._lock:
            a, x = await self._bits_of(_size(shape))
            R = await self._rss()
            return R.out(a).reshape(shape), R.xout(x).reshape(shape)

    async def edabits(self, shape: Shape, bits: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """(arithmetic share of r, XOR share of r's bits in one word), r uniform in
        [0, 2^bits), 1 <= bits <= 64: one edaBit word per element."""
        shape = tuple(shape)
        if not isinstance(bits, int | np.integer) or not 1 <= bits <= 64:
            raise PreprocessingExhausted(f"{self.name}: no {bits}-bit edaBits in Z_2^64")
        bits = int(bits)
        N = _size(shape)
        mask = np.uint64((1 << bits) - 1) if bits < 64 else ~np.uint64(0)
        async with self._lock:
            R = await self._rss()
            r, x = await self._word_items(N, lambda A, c0: [R.out(_weighted(A, 0, bits)), R.xout(c0 & mask)])
            return r.reshape(shape), x.reshape(shape)

    async def trunc_triples(self, shape: Shape, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(r, (r mod 2^63) >> f, r >> 63), r uniform in Z_2^64, all additive; 0 < f < 63."""
        shape = tuple(shape)
        if not isinstance(f, int | np.integer) or not 0 < f < 63:
            raise PreprocessingExhausted(f"{self.name}: truncation triples need 0 < f < 63, got {f}")
        f = int(f)
        async with self._lock:
            R = await self._rss()
            r, hi, msb = await self._word_items(
                _size(shape), lambda A, _: [R.out(_weighted(A, 0, 64)), R.out(_weighted(A, f, 63)), R.out(A[63])]
            )
            return r.reshape(shape), hi.reshape(shape), msb.reshape(shape)

    async def trunc_pairs(self, shape: Shape, f: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
        """(r, r >> f), r uniform in [0, 2^bits), 0 < f < bits < 64."""
        shape = tuple(shape)
        if not all(isinstance(v, int | np.integer) for v in (f, bits)) or not 0 < f < bits < 64:
            raise PreprocessingExhausted(f"{self.name}: cannot supply {bits}-bit truncation pairs (f={f})")
        f, bits = int(f), int(bits)
        async with self._lock:
            R = await self._rss()
            r, hi = await self._word_items(
                _size(shape), lambda A, _: [R.out(_weighted(A, 0, bits)), R.out(_weighted(A, f, bits))]
            )
            return r.reshape(shape), hi.reshape(shape)

    async def bounded_randoms(self, shape: Shape, bits: int) -> np.ndarray:
        """Uniform integers in [0, 2^bits), 0 < bits < 64."""
        shape = tuple(shape)
        if not isinstance(bits, int | np.integer) or not 0 < bits < 64:
            raise PreprocessingExhausted(f"{self.name}: cannot supply {bits}-bit randoms in Z_2^64")
        bits = int(bits)
        async with self._lock:
            R = await self._rss()
            (r,) = await self._word_items(_size(shape), lambda A, _: [R.out(_weighted(A, 0, bits))])
            return r.reshape(shape)

    # -- ltz_tuples ---------------------------------------------------------------------
    async def ltz_tuples(self, shape: Shape, mul: bool = False) -> tuple[np.ndarray, ...]:
        """protocols.comparison.ltz_tuple_values in the dealer's format (module docstring),
        generated `ltz_chunk` elements at a time and pooled per `mul`."""
        shape, mul = tuple(shape), bool(mul)
        N = _size(shape)
        async with self._lock:
            key = ("ltz", mul)
            pool = self._pools.get(key)
            have = 0 if pool is None else pool[0].shape[-1]
            parts = [] if pool is None else [pool]
            while have < N or not parts:  # an empty request still needs the shapes: one chunk
                c = max(self.ltz_chunk, N - have)
                parts.append(await self._gen_ltz(c, mul))
                have += c
            pool = parts[0] if len(parts) == 1 else [
                np.concatenate([p[i] for p in parts], axis=-1) for i in range(len(parts[0]))
            ]
            self._pools[key] = [v[..., N:] for v in pool]
            return tuple(v[..., :N].reshape((*v.shape[:-1], *shape)).copy() for v in pool)

    async def _gen_ltz(self, N: int, mul: bool) -> list[np.ndarray]:
        from protocols.comparison.ring3 import _MONO, _fidx

        R = await self._rss()
        A, c0, c1 = await self._take_words(N)
        r = R.out(_weighted(A, 0, 64))
        rl = (c0 & _LOW63, c1 & _LOW63)
        # levels 1 and 2: boolean monomials of shifted replicated words (one reshare round)
        F: list[Pair] = [(rl[0] >> np.uint64(t), rl[1] >> np.uint64(t)) for t in range(4)]
        a2, b2, a3, b3 = (R.rand(N) for _ in range(4))
        F += [(v[0] >> np.uint64(4 * t), v[1] >> np.uint64(4 * t)) for v in (a2, b2) for t in range(4)]
        keys1 = [tuple(_fidx(f) for f in U) for U in _MONO[1]]
        keys2 = [tuple(4 + _fidx(f) for f in U) for U in _MONO[2]]
        have = await R.products(F, R.halves(keys1 + keys2), boolean=True)
        M1 = np.stack([R.final(have, U, boolean=True) for U in keys1])
        M2 = np.stack([R.final(have, U, boolean=True) for U in keys2])
        # level 3: factor bits 16 t of a3, b3 made arithmetic, reshared with r63
        sh3 = (16 * np.arange(4, dtype=_U64))[:, None]
        fb = [np.concatenate([(v[i][None] >> sh3) & _ONE for v in (a3, b3)]).reshape(-1) for i in (0, 1)]
        g = await R.b2a((fb[0], fb[1]))  # (8 N,) raw
        gp, r63p = await R.reshare([g.reshape(8, N), A[63]])
        one = R.const(1, (N,))
        w = (one[0] - np.uint64(2) * r63p[0], one[1] - np.uint64(2) * r63p[1])
        F3: list[Pair] = [(gp[0][t], gp[1][t]) for t in range(8)] + [w]
        rho = R.rand(N) if mul else None
        if rho is not None:
            F3.append(rho)
        keys3 = [tuple(_fidx(f) for f in U) for U in _MONO[3]]
        want = [U for U in keys3 if len(U) >= 2] + ([(8, 9)] if mul else [])
        have3 = await R.products(F3, want, boolean=False)
        W3 = np.stack([R.out(R.mul_raw(have3[U], w)) for U in keys3])
        out = [r, R.xout(rl[0]), M1, R.xout(a2[0]), R.xout(b2[0]), M2, R.xout(a3[0]), R.xout(b3[0]),
               R.out(A[63]), W3]
        if rho is not None:
            wr = have3[(8, 9)]
            out += [R.out(rho[0]), R.out(R.mul_raw(r63p, rho)), R.out(R.mul_raw(w, rho)),
                    np.stack([R.out(R.mul_raw(have3[U], wr)) for U in keys3])]
        return out

    # -- matrix_trunc_triples -------------------------------------------------------------
    async def matrix_trunc_triples(self, x_shape: Shape, y_shape: Shape, f: int) -> tuple[np.ndarray, ...]:
        """(A, B, C = A @ B, r, r_hi, r_msb, A @ r_hi, A * r_msb) for (k, d) @ (d,), as
        base.Preprocessing says; `reps` items of one (shape, f) per batch, pooled.
        Rounds per batch: 1 (reshare r_hi, r_msb) + the word pool's refills.
        Bytes per item and party: 16 d (reshare) + about 171 d (edaBit words)."""
        x_shape, y_shape, f = mtt_request(self.name, x_shape, y_shape, f)
        k, d = x_shape
        async with self._lock:
            pool = self._mpools.setdefault(("mtt", x_shape, f), deque())
            if not pool:
                reps = max(1, min(64, self.mat_words // max(1, k * d)))
                pool.extend(zip(*await self._gen_mtt(k, d, f, reps), strict=True))
            return tuple(pool.popleft())

    async def _gen_mtt(self, k: int, d: int, f: int, reps: int) -> list[np.ndarray]:
        R = await self._rss()
        A, B = R.rand((reps, k, d)), R.rand((reps, d, 1))
        C = R.out(R.matmul_raw(A, B)[..., 0])
        Aw, _, _ = await self._take_words(reps * d)
        Aw = Aw.reshape(64, reps, d)
        hi_raw, msb_raw = _weighted(Aw, f, 63), Aw[63]
        hi, msb = await R.reshare([hi_raw, msb_raw])
        AR = R.out(R.matmul_raw(A, (hi[0][..., None], hi[1][..., None]))[..., 0])
        AM = R.out(R.mul_raw(A, (msb[0][:, None, :], msb[1][:, None, :])))
        return [R.out(A[0]), R.out(B[0][..., 0]), C, R.out(_weighted(Aw, 0, 64)), R.out(hi_raw),
                R.out(msb_raw), AR, AM]


async def make_rss3(s: Session) -> RSS3Preprocessing:
    """Factory for run_local / the node: an rss3 source over `s` (keys agreed on first use)."""
    return RSS3Preprocessing(s)
