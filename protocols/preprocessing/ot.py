"""Dealer-free preprocessing for additive sharing over Z_2^64, any n >= 2, from oblivious
transfer: Gilboa multiplication [Gil99] over IKNP OT extension [IKNP03], base OTs by the
"simplest OT" of Chou and Orlandi [CO15] on edwards25519 (libsodium via PyNaCl).

Security: semi-honest (passive), up to n - 1 of n parties corrupt (dishonest majority);
computational: CDH on edwards25519 in the random-oracle model (base OTs, BLAKE2b as the
oracle) and fixed-key AES-128 as a tweakable correlation-robust hash (TMMO of [GKWY20],
section 7). Nothing is checked: an actively corrupt party can make triples wrong (MASCOT
[KOS16] adds the checks; not implemented). Channels must be private and authenticated.

Why OT and not Paillier (measured on this machine, gmpy2, 2048-bit N): a Paillier
encryption costs about 9 ms (r^N mod N^2) and the homomorphic product Enc(a)^b with a 64-bit
b about 0.3 ms, and every cross term a_i * b_j needs at least one of each per element
(packing several *results* per ciphertext saves decryptions only), so Paillier stays below
10^3 elementwise triples per second per core. Gilboa over IKNP needs 64 OTs per cross term,
each a few fixed-key AES blocks and bit-matrix transposes that numpy does in bulk: measured
above 10^4 triples per second for 2 parties (benchmarks/test_bench_preprocessing.py).

Gilboa product of x (sender, a vector of M words per element) and y (receiver, one word per
element) over Z_2^64: for each bit k of y_l one correlated OT with correlation x_l over
Z_2^(64-k) (the outputs are multiplied by 2^k): the receiver gets H(t) + y_lk * tau with
tau = H(q) + x_l - H(q ^ s) mod 2^(64-k), sent in an 8/4/2/1-byte tier; the sender keeps
-H(q). Summed over k (times 2^k) the two shares add up to x_l * y_l. With M > 1 the same OTs
multiply a whole column, which gives matrix triples for (k x d) @ (d x m) from d*m*64 OTs
carrying k words each (communication linear in k*d*m words for the cross terms, as in
[MZ17, sec. 4.2]); they are made several per extension and pooled per shape.

Triples (per party p, a_p, b_p uniform): c_p = a_p*b_p + sum_{j != p} (sender share of
a_p*b_j + receiver share of a_j*b_p). Rounds: 2 per batch (+2 once per pair for the base
OTs). Bytes per party per triple: (n-1)*(64*16 + 344) = 1368*(n-1).

ltz_tuples and matrix_trunc_triples (the 3-round comparison's and the merged truncation's
material) come from protocols.preprocessing._otmixed (see there).

Mixed arithmetic-boolean kinds (for comparison.py and truncation.py, same formats as the
trusted dealer's):
- daBits [RW19]: party p's random bit b_p is its XOR share of b = XOR_p b_p; the additive
  sharing of b folds x XOR y = x + y - 2xy over the parties, each product acc * b_j one
  additive correlated OT per element from every party i < j to party j (IKNP with choice b_j,
  correlation acc_i). n rounds, n(n-1)/2 OTs per daBit (1 for n = 2), about 24 bytes each.
  `bits` are the arithmetic halves of daBits (1 OT per bit instead of a 64-OT Gilboa product).
- edaBits [EGKRS20]: r = sum_i 2^i b_i over 64 daBits, the boolean word packs their XOR
  shares (bit i = b_i). trunc_triples (r, (r mod 2^63) >> f, r >> 63), trunc_pairs and
  bounded_randoms are sums of the same daBits' arithmetic halves: exact, the dealer's
  distributions. (EGKRS20's cheaper edaBits, local randomness plus a boolean adder, need
  more ANDs than 64 one-OT daBits for n <= 3.)
- Boolean (AND) triples on 64-bit words [Beaver91]: a, b_1..b_k, c_t = a & b_t XOR-shared;
  every cross term a_q & b_{t,p} is one OT per bit position with receiver q choosing with
  its bit of a_q and sender p's k-bit correlation, tau = H(q) ^ H(q ^ s) ^ delta, packed 64
  OTs to a word [IKNP03; bit-message OTs as in ALSZ13]. 2 rounds, 64 OTs per a-word and
  ordered pair, (16 * 64 + 8 k) bytes.
All of them: semi-honest, up to n - 1 corrupt, as the triples.

[Gil99] N. Gilboa, "Two party RSA key generation", CRYPTO 1999.
[RW19] D. Rotaru, T. Wood, "MArBled circuits: mixing arithmetic and boolean circuits with
active security", INDOCRYPT 2019.
[EGKRS20] D. Escudero, S. Ghosh, M. Keller, R. Rachuri, P. Scholl, "Improved primitives for
MPC over mixed arithmetic-binary circuits", CRYPTO 2020.
[ALSZ13] G. Asharov, Y. Lindell, T. Schneider, M. Zohner, "More efficient oblivious transfer
and extensions for faster secure computation", CCS 2013.
[Beaver91] D. Beaver, "Efficient multiparty protocols using circuit randomization", CRYPTO 1991.
[IKNP03] Y. Ishai, J. Kilian, K. Nissim, E. Petrank, "Extending oblivious transfers
efficiently", CRYPTO 2003.
[CO15] T. Chou, C. Orlandi, "The simplest protocol for oblivious transfer", LATINCRYPT 2015.
[GKWY20] C. Guo, J. Katz, X. Wang, Y. Yu, "Efficient and secure multiparty computation from
fixed-key block ciphers", IEEE S&P 2020.
[KOS16] M. Keller, E. Orsini, P. Scholl, "MASCOT", CCS 2016.
[MZ17] P. Mohassel, Y. Zhang, "SecureML", IEEE S&P 2017.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from protocols.errors import ParameterError, PreprocessingExhausted
from protocols.preprocessing import _ot_jit as _jit
from protocols.preprocessing._otext import KAPPA, OTExtension, _hash2_blocks, _hash_blocks
from protocols.preprocessing._otmixed import OTMixedKinds
from protocols.preprocessing.base import KINDS, Preprocessing, Shape
from protocols.preprocessing.dn07 import offline_session
from protocols.session import Session

__all__ = ["KAPPA", "OTPreprocessing", "make_ot"]

_U64 = np.dtype(np.uint64)


#: Gilboa corrections by bit k of y: (first k, last k + 1, dtype) of each width tier
_TIERS = ((0, 32, np.dtype("<u8")), (32, 48, np.dtype("<u4")), (48, 56, np.dtype("<u2")), (56, 64, np.dtype("u1")))
_TIER_BYTES = sum((b - a) * dt.itemsize for a, b, dt in _TIERS)  # 344 per word and 64 OTs
_SHIFTS = np.arange(64, dtype=_U64)[None, :, None]


def _pack_tiers(t: np.ndarray) -> np.ndarray:
    """(L, 64, M) corrections -> bytes: per tier, the low bits that matter mod 2^(64-k)."""
    return np.concatenate([np.ascontiguousarray(t[:, a:b]).astype(dt).reshape(-1).view(np.uint8) for a, b, dt in _TIERS])


def _unpack_tiers(raw: np.ndarray, L: int, M: int) -> np.ndarray:
    out = np.empty((L, 64, M), dtype=_U64)
    at = 0
    for a, b, dt in _TIERS:
        size = L * (b - a) * M * dt.itemsize
        out[:, a:b] = raw[at : at + size].view(dt).reshape(L, b - a, M)
        at += size
    return out


def _tier_views(raw: np.ndarray, L: int, M: int) -> list[np.ndarray]:
    """The tiers of a (L M _TIER_BYTES,) correction buffer as (L, b - a, M) arrays of their
    dtypes (the layout of `_pack_tiers`), aligned (copied first if `raw` is not)."""
    if raw.ctypes.data % 8:
        raw = raw.copy()
    out, at = [], 0
    for a, b, dt in _TIERS:
        size = L * (b - a) * M * dt.itemsize
        out.append(raw[at : at + size].view(dt).reshape(L, b - a, M))
        at += size
    return out


def _size(shape: Shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


class OTPreprocessing(OTMixedKinds, OTExtension, Preprocessing):
    """One party's OT-based source (additive sharing over Z_2^64, any n >= 2).

    Construct with the party's online Session; it runs over the same channel under its own
    tag prefix and counts its traffic in `self.stats`. The OT machinery (base OTs once per
    pair on first use, IKNP extension, correlated OTs, boolean triples) is inherited from
    protocols.preprocessing._otext.OTExtension, which DN07 shares. `batch`: elementwise triples are generated at least `batch` at a time and pooled;
    daBits `dabit_chunk`, boolean triples `bool_chunk` words and ltz tuples `ltz_chunk`
    elements at a time (which also bounds the memory of one OT extension). Supplies every
    kind of base.KINDS (ltz_tuples and matrix_trunc_triples from
    protocols.preprocessing._otmixed.OTMixedKinds).
    Security: semi-honest, up to n - 1 corrupt (see the module docstring).
    Raises: FrameError for a peer's malformed base-OT points or messages (the session is
    aborted), PreprocessingExhausted for parameters no protocol uses (as the dealer).
    """

    name = "ot"

    def __init__(
        self, s: Session, *, batch: int = 1 << 13, dabit_chunk: int = 1 << 16, bool_chunk: int = 1 << 11,
        ltz_chunk: int = 1 << 12, mat_words: int = 1 << 20,
    ):
        if getattr(s.scheme, "kind", None) != "additive" or s.domain.modulus != 1 << 64:
            raise ParameterError("ot preprocessing needs the additive scheme over Z_2^64")
        OTExtension.__init__(self, offline_session(s, "ot"))
        self.stats = self.s.stats
        self.D = s.domain
        self.batch = int(batch)
        self._pool: list[np.ndarray] | None = None
        self._pools: dict[str, list[np.ndarray]] = {}
        self.dabit_chunk = max(8, dabit_chunk)
        self.bool_chunk = max(1, bool_chunk)
        self.ltz_chunk = max(1, ltz_chunk)
        self.mat_words = int(mat_words)
        self._mpools: dict[tuple[object, ...], deque[Any]] = {}
        self._lock = asyncio.Lock()

    #: what this source supplies (additive Z_2^64 only, checked at construction): every kind
    SUPPLIES = frozenset(KINDS)

    def supports(self, kind: str) -> bool:
        if kind not in KINDS:
            raise ValueError(f"unknown preprocessing kind {kind!r}")
        return kind in self.SUPPLIES

    # -- Gilboa products with every peer ----------------------------------------------------
    async def cross(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Shares of sum over peers j of (x_me * y_j + x_j * y_me) per element.

        x: (L, M) uint64, y: (L,) uint64 (the same L, M at every party). Returns (L, M): my
        share of sum_{j != me} (x_j[l] * y_me[l] + x_me[l] * y_j[l]) summed over both roles.
        The OT for bit k of y_l is an additive correlated OT with correlation x_l over
        Z_2^(64-k) only (its result is multiplied by 2^k, so higher bits vanish mod 2^64, as
        in the C-OT multiplication of Demmler, Schneider, Zohner, "ABY", NDSS 2015, sec.
        III-B): the corrections tau of bits 0-31 go as 8-byte words, 32-47 as 4, 48-55 as
        2 and 56-63 as 1 byte (43 bytes per 64 OTs and word instead of 64).
        Rounds: 2.  Bytes sent per party: (n-1) * L * (64 * 16 + 344 M).
        """
        L, M = x.shape
        if L == 0 or M == 0:  # nothing to multiply (every party has the same L, M): no round
            return np.zeros((L, M), dtype=_U64)
        m = 64 * L
        peers = self.s.peers
        # receiver role: choice bits = bits of y (OT l = 64 e + k carries bit k of y_e)
        r = np.unpackbits(np.ascontiguousarray(y).view(np.uint8), bitorder="little")
        ext = await self._extend({j: r for j in peers}, {j: m for j in peers})
        acc = np.zeros((L, M), dtype=_U64)  # sum_k 2^k (OT outputs of bit k), both roles
        xc = np.ascontiguousarray(x)
        tau = {}
        for j in peers:
            buf = np.empty(L * M * _TIER_BYTES, dtype=np.uint8)
            t8, t4, t2, t1 = _tier_views(buf, L, M)
            for lo, e0, p0, e1, p1 in _hash2_blocks(self.aes, ext.q[j], self._send[j].s_packed, ext.sbase[j], M):
                _jit.gilboa_send_h(e0, p0, e1, p1, lo, xc, t8, t4, t2, t1, acc)
            tau[j] = buf
        got = await self._array_round("ot-gtau", tau, {j: (L * M * _TIER_BYTES,) for j in peers}, np.dtype(np.uint8))
        for j in peers:
            t8, t4, t2, t1 = _tier_views(got[j], L, M)
            for lo, e, p in _hash_blocks(self.aes, ext.t[j], ext.rbase[j], M):
                _jit.gilboa_recv_h(e, p, lo, t8, t4, t2, t1, r, acc)
        return acc

    # -- daBits and boolean triples ---------------------------------------------------------
    async def _gen_dabits(self, count: int) -> list[np.ndarray]:
        """daBits [RW19]: every party's random bit b_p is its XOR share of b = XOR_p b_p; the
        arithmetic sharing folds b_0 XOR ... XOR b_{n-1} with x XOR y = x + y - 2 x y, where
        each product acc * b_j (acc known to parties < j, b_j to party j) is one additive
        correlated OT per element from every party i < j to party j (choice b_j,
        correlation acc_i). Choice bits are random, so all u matrices go out in the first
        round. Rounds: n (1 + one per fold).  OTs per daBit: n (n - 1) / 2.
        Bytes sent per party and daBit: at most (n - 1) * 16 (u) and (n - 1) * 8 (tau)."""
        if count == 0:  # (the same count at every party): no OTs, no round
            return [np.empty(0, _U64), np.empty(0, _U64)]
        m = -(-count // 8) * 8
        me, n = self.s.pid, self.s.n
        mine = self.s.rng.bits(m)
        ext = await self._extend({i: mine.astype(np.uint8) for i in range(me)}, {j: m for j in range(me + 1, n)})
        acc = mine.copy() if me == 0 else np.zeros(m, _U64)
        for j in range(1, n):
            got, kept = await self._finish_add(
                ext, {j: acc[:, None]} if me < j else {}, {i: 1 for i in range(j)} if me == j else {}
            )
            if me < j:
                acc -= np.uint64(2) * kept[j][:, 0]
            elif me == j:  # acc_j = 0 before this fold: the product is all cross terms
                prod = sum((g[:, 0] for g in got.values()), np.zeros(m, _U64))
                acc += mine - np.uint64(2) * prod
        return [acc[:count], mine[:count]]

    async def _take(
        self, kind: str, count: int, gen: Callable[[int], Awaitable[list[np.ndarray]]], chunk: int
    ) -> list[np.ndarray]:
        """`count` items of a pooled kind along the last axis, generated `chunk` at a time
        (bounded memory per OT batch) and at least `chunk` per refill. A request for 0 items
        before the kind's first refill makes one chunk (pooled, not wasted): the empty items
        take their shapes from it."""
        async with self._lock:
            pool = self._pools.get(kind)
            have = 0 if pool is None else pool[0].shape[-1]
            parts = [] if pool is None else [pool]
            while have < count or not parts:
                fresh = await gen(chunk)
                parts.append(fresh)
                have += chunk
            if len(parts) > 1:
                pool = [np.concatenate([p[i] for p in parts], axis=-1) for i in range(len(parts[0]))]
            else:
                pool = parts[0]
            self._pools[kind] = [v[..., count:] for v in pool]
            return [v[..., :count] for v in pool]

    async def _dabit_bits(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        a, x = await self._take("dabits", count, self._gen_dabits, self.dabit_chunk)
        return a, x

    # -- items ------------------------------------------------------------------------------
    async def _gen_triples(self, count: int) -> list[np.ndarray]:
        rng = self.s.rng
        a, b = rng.uint64(count), rng.uint64(count)
        cr = await self.cross(a[:, None], b)
        return [a, b, a * b + cr[:, 0]]

    async def triples(self, shape: Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        shape = tuple(shape)
        k = int(np.prod(shape, dtype=np.int64))
        if k == 0:  # the dealer's empty items
            return np.empty(shape, _U64), np.empty(shape, _U64), np.empty(shape, _U64)
        async with self._lock:
            have = 0 if self._pool is None else self._pool[0].size
            if have < k:
                need = max(self.batch, k - have)
                fresh = [np.empty(0, _U64)] * 3
                for off in range(0, need, self.batch):
                    part = await self._gen_triples(min(self.batch, need - off))
                    fresh = [np.concatenate([f, p]) for f, p in zip(fresh, part, strict=True)]
                self._pool = fresh if self._pool is None else [
                    np.concatenate([o, f]) for o, f in zip(self._pool, fresh, strict=True)
                ]
            pool = self._pool
            assert pool is not None
            out = [v[:k].reshape(shape) for v in pool]
            self._pool = [v[k:] for v in pool]
        return out[0], out[1], out[2]

    async def square_pairs(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        """(a, a^2) from a triple (a, b, c): open nothing, a^2 = a*a needs its own cross
        terms, so this spends one Gilboa product with y = a."""
        shape = tuple(shape)
        k = int(np.prod(shape, dtype=np.int64))
        async with self._lock:
            a = self.s.rng.uint64(k)
            cr = await self.cross(a[:, None], a)
        # sum_{i != j} a_i a_j counted once per ordered pair: cross gives both orders
        return a.reshape(shape), (a * a + cr[:, 0]).reshape(shape)

    async def matrix_triples(self, x_shape: Shape, y_shape: Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(A, B, C = A @ B) by Gilboa products with the columns of A as the sender's
        vectors (see `cross`): 64 d m OTs carrying k words each. Generated `reps` items of
        one shape at a time (reps * 64 d m k about `mat_words`, at most 64: the OT
        messages of a batch, 8 MB by default) and pooled per shape, so a training's thousands of small triples share their OT extensions.
        Rounds: 2 per batch.  Bytes sent per party and item: (n-1) d m (64 * 16 + 344 k)."""
        x_shape, y_shape = tuple(x_shape), tuple(y_shape)
        if len(x_shape) != 2 or len(y_shape) not in (1, 2) or x_shape[1] != y_shape[0]:
            from protocols.errors import ShapeMismatch

            raise ShapeMismatch(f"matrix triples for {x_shape} @ {y_shape}")
        k, d = x_shape
        m = 1 if len(y_shape) == 1 else y_shape[1]
        async with self._lock:
            pool = self._mpools.setdefault(("mat", x_shape, y_shape), deque())
            if not pool:
                reps = max(1, min(64, self.mat_words // max(1, 64 * d * m * k)))  # k d m = 0: no OTs
                A, B, C = await self._gen_matrix(k, d, m, reps)
                pool.extend(zip(A, B, C, strict=True))
            A, B, C = pool.popleft()
        if len(y_shape) == 1:
            return A, B.reshape(d), C.reshape(k)
        return A, B, C

    async def _gen_matrix(self, k: int, d: int, m: int, reps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = self.s.rng
        A = rng.uint64((reps, k, d))
        B = rng.uint64((reps, d, m))
        # element (r, dd, c): x = A[r][:, dd] (k words), y = B[r][dd, c]
        x = np.repeat(A.transpose(0, 2, 1), m, axis=1).reshape(reps * d * m, k)
        cr = await self.cross(x, B.reshape(-1))
        C = A @ B + cr.reshape(reps, d, m, k).sum(axis=1, dtype=_U64).transpose(0, 2, 1)
        return A, B, C

    async def randoms(self, shape: Shape) -> np.ndarray:
        return self.s.rng.uint64(tuple(shape))  # additive shares of a uniform value

    async def bits(self, shape: Shape) -> np.ndarray:
        """Shares of uniform random bits: the arithmetic halves of daBits."""
        shape = tuple(shape)
        a, _ = await self._dabit_bits(_size(shape))
        return a.reshape(shape).copy()

    async def dabits(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        """daBits [RW19]: (arithmetic shares over Z_2^64, XOR shares) of one random bit per
        element; the XOR shares are words whose XOR is 0 or 1 (this source's share is the
        party's own random bit, high bits zero; the trusted dealer randomises the high bits,
        which no consumer reads). See `_gen_dabits` for the construction and costs.
        Security: semi-honest, up to n - 1 corrupt."""
        shape = tuple(shape)
        a, x = await self._dabit_bits(_size(shape))
        return a.reshape(shape).copy(), x.reshape(shape).copy()

    async def _weighted_dabits(self, shape: Shape, nbits: int) -> tuple[np.ndarray, np.ndarray]:
        """(arithmetic, XOR) halves of nbits daBits per element, shaped (nbits, N)."""
        N = _size(shape)
        a, x = await self._dabit_bits(nbits * N)
        return a.reshape(nbits, N), x.reshape(nbits, N)

    async def edabits(self, shape: Shape, bits: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """edaBits [EGKRS20]: r uniform in Z_2^64 shared additively and bit by bit in XOR
        shares packed into one word (bit i of the word = bit i of r), built from 64 daBits
        [RW19]: r = sum_i 2^i b_i (arithmetic), word = sum_i 2^i (b_i XOR share). Cost: 64
        daBits per element (64 OTs for n = 2). Security: semi-honest, up to n - 1 corrupt."""
        if bits != 64:
            raise self._unsupported(f"{bits}-bit edaBits", shape)
        shape = tuple(shape)
        a, x = await self._weighted_dabits(shape, 64)
        sh = np.arange(64, dtype=_U64)[:, None]
        r = (a << sh).sum(axis=0, dtype=_U64)
        word = np.bitwise_or.reduce((x & np.uint64(1)) << sh, axis=0)
        return r.reshape(shape), word.reshape(shape)

    async def trunc_triples(self, shape: Shape, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shares of (r, (r mod 2^63) >> f, r >> 63) for r uniform in Z_2^64, all additive
        (the trusted dealer's format; consumed by truncation.trunc method "msb" [EGKRS20,
        sec. 5.1]), from 64 daBits: r = sum_i 2^i b_i, the others sums of the same bits.
        Needs 0 < f < 63. Security: semi-honest, up to n - 1 corrupt."""
        shape = tuple(shape)
        if not isinstance(f, int | np.integer) or not 0 < f < 63:
            raise PreprocessingExhausted(f"{self.name}: truncation triples need 0 < f < 63, got {f}")
        f = int(f)
        a, _ = await self._weighted_dabits(shape, 64)
        r = (a << np.arange(64, dtype=_U64)[:, None]).sum(axis=0, dtype=_U64)
        hi = (a[f:63] << np.arange(63 - f, dtype=_U64)[:, None]).sum(axis=0, dtype=_U64)
        return r.reshape(shape), hi.reshape(shape), a[63].reshape(shape).copy()

    async def trunc_pairs(self, shape: Shape, f: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
        """Shares of (r, r >> f), r uniform in [0, 2^bits), 0 < f < bits < 64 (the trusted
        dealer's format), from `bits` daBits. Security: semi-honest, up to n - 1 corrupt."""
        shape = tuple(shape)
        if not all(isinstance(v, int | np.integer) for v in (f, bits)) or not 0 < f < bits < 64:
            raise PreprocessingExhausted(f"{self.name}: cannot supply {bits}-bit truncation pairs (f={f})")
        f, bits = int(f), int(bits)
        a, _ = await self._weighted_dabits(shape, bits)
        r = (a << np.arange(bits, dtype=_U64)[:, None]).sum(axis=0, dtype=_U64)
        hi = (a[f:] << np.arange(bits - f, dtype=_U64)[:, None]).sum(axis=0, dtype=_U64)
        return r.reshape(shape), hi.reshape(shape)

    async def bounded_randoms(self, shape: Shape, bits: int) -> np.ndarray:
        """Shares of uniform integers in [0, 2^bits), 0 < bits < 64, as sum_i 2^i b_i over
        `bits` daBits (exact). Security: semi-honest, up to n - 1 corrupt."""
        shape = tuple(shape)
        if not isinstance(bits, int | np.integer) or not 0 < bits < 64:
            raise PreprocessingExhausted(f"{self.name}: cannot supply {bits}-bit randoms in Z_2^64")
        bits = int(bits)
        a, _ = await self._weighted_dabits(shape, bits)
        return (a << np.arange(bits, dtype=_U64)[:, None]).sum(axis=0, dtype=_U64).reshape(shape)

    async def bool_triples(self, shape: Shape, k: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """AND triples on 64-bit words in XOR shares: a of `shape`, b of (k, *shape), c = a & b
        (the trusted dealer's format). See `OTExtension.gen_bool_triples` (OTs with k-bit messages).
        Security: semi-honest, up to n - 1 corrupt."""
        shape = tuple(shape)
        if not isinstance(k, int | np.integer) or not 1 <= k <= 64:
            raise PreprocessingExhausted(f"{self.name}: boolean triples need 1 <= k <= 64, got {k}")
        k = int(k)
        L = _size(shape)
        a, b, c = await self._take(f"bool{k}", L, lambda L_: self.gen_bool_triples(L_, k), self.bool_chunk)
        return a.reshape(shape).copy(), b.reshape((k, *shape)).copy(), c.reshape((k, *shape)).copy()


async def make_ot(s: Session, *, batch: int = 1 << 13) -> OTPreprocessing:
    """Factory for run_local / the node: an OT-based source over `s` (base OTs on first use)."""
    return OTPreprocessing(s, batch=batch)
