"""Replicated secret sharing for three parties over Z_2^64 and over 64-bit XOR words: the
engine of protocols.preprocessing.rss3 (which documents the items built with it).

Sharing [Araki, Furukawa, Lindell, Nof, Ohara, CCS 2016; ABY3, Mohassel and Rindal, CCS
2018, sec. 2]: a value x = x_0 + x_1 + x_2 (or x_0 ^ x_1 ^ x_2 for words); party i holds the
pair (x_i, x_{i+1}) (indices mod 3), so any two parties know x and any one misses x_{i+2}.

Randomness [Cramer, Damgard, Ishai, TCC 2005, PRSS]: key K_j is known to parties j and j - 1
(party i holds K_i and K_{i+1}: it draws K_{i+1} and sends it to party i + 1 once, one round,
32 bytes per party). For call number c and label L, component j of a random sharing is the
AES-256-CTR stream of derive_key(K_j, "rss3", L, c): random sharings cost nothing, and
alpha_i = F(K_i) - F(K_{i+1}) (or F(K_i) ^ F(K_{i+1})) is a sharing of zero, pseudo-random
to any single party (it misses K_{i+2}, which masks both other parties' alpha).

Products: z_i = x_i y_i + x_i y_{i+1} + x_{i+1} y_i + alpha_i sums to x y (all nine cross
terms), an additive 3-out-of-3 sharing with no communication, uniform given x y to any one
party (alpha). `reshare` returns it to replicated form: party i sends z_i to party i - 1 (one
word per element to one neighbour, one round) [Araki et al., sec. 3]. Matrix products the
same with @: one word per OUTPUT element. AND is the same over XOR words.

Random bits to arithmetic (`b2a`; the helper trick of honest-majority 3PC): a bit b =
c_0 ^ c_1 ^ c_2 of a replicated word; the leader L knows x = c_L ^ c_{L+1}, parties L + 1 and
L + 2 know c = c_{L+2}, and b = x + c - 2 x c. The product x c: L and L + 1 share K_{L+1} and
so a mask m; L sends x - m to L + 2 (uniform to it: it misses K_{L+1}); L + 2 takes
-2 (x - m) c, L + 1 takes c - 2 m c, L takes x. One round, one word per bit from the leader
(the three parties lead a third of the bits each). Callers re-randomise every output with a
fresh zero sharing (`out`, `xout`): the raw shares are never handed out.

Security: semi-honest, honest majority (one corrupt party of three); computational (AES as
a PRF). Every received array is validated (dtype, length) by the channel.
"""

from __future__ import annotations

import numpy as np

from network.errors import SmpcError
from protocols.errors import ParameterError
from protocols.prg import KEY_BYTES, CryptoRNG, derive_key
from protocols.session import Session

__all__ = ["BLOCK", "Pair", "Replicated"]

#: words per key drawn at once for random and zero sharings
BLOCK = 1 << 16

_U64 = np.dtype(np.uint64)
#: one party's replicated share: (component me, component me + 1)
Pair = tuple[np.ndarray, np.ndarray]


def _shape(shape: int | tuple[int, ...]) -> tuple[int, ...]:
    return (shape,) if isinstance(shape, int) else tuple(shape)


class Replicated:
    """One party's state: its two keys (K_me, K_next) and the call counter that every party
    advances identically (parties must make the same calls in the same order)."""

    def __init__(self, s: Session, k_me: bytes, k_next: bytes):
        if s.n != 3:
            raise ParameterError(f"replicated sharing is for exactly 3 parties, got n = {s.n}")
        if len(k_me) != KEY_BYTES or len(k_next) != KEY_BYTES:
            raise ParameterError("rss3 keys must be 32 bytes")
        self.s, self.me = s, s.pid
        self.prev, self.next = (s.pid - 1) % 3, (s.pid + 1) % 3
        self._keys = (bytes(k_me), bytes(k_next))
        self._calls = 0
        self._bufs: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}

    @classmethod
    async def setup(cls, s: Session) -> Replicated:
        """Agree on the keys (one round): party i draws K_{i+1}, sends it to party i + 1 and
        receives K_i from party i - 1. Bytes: 32 per party."""
        if s.n != 3:
            raise ParameterError(f"replicated sharing is for exactly 3 parties, got n = {s.n}")
        me = s.pid
        k_next = s.rng.bytes(KEY_BYTES)
        tag = s.tag("rss3-keys")
        try:
            await s.channel.send((me + 1) % 3, tag, np.frombuffer(k_next, dtype=np.uint8))
            got = await s.channel.recv_array((me - 1) % 3, tag, dtype=np.uint8, shape=(KEY_BYTES,))
        except SmpcError as e:
            await s.abort(e)
            raise
        s.stats.rounds += 1
        return cls(s, got.tobytes(), k_next)

    # -- streams --------------------------------------------------------------------------
    def streams(self, label: str) -> tuple[CryptoRNG, CryptoRNG]:
        """Fresh generators of keys (K_me, K_next) for the next call (the same streams at
        the other holder of each key)."""
        c = self._calls
        self._calls += 1
        return tuple(CryptoRNG(derive_key(k, "rss3", label, c)) for k in self._keys)  # type: ignore[return-value]

    def words(self, label: str, shape: int | tuple[int, ...]) -> Pair:
        """The next words of the streams of (K_me, K_next) for `label`. Requests up to BLOCK
        words are cut from per-label blocks of BLOCK words (one key derivation per block, not
        per item; every party makes the same requests in the same order, so the blocks stay
        aligned) and are read-only views; larger ones are drawn on their own."""
        shape = _shape(shape)
        count = int(np.prod(shape, dtype=np.int64))
        if count > BLOCK:
            g0, g1 = self.streams(label)
            return g0.uint64(shape), g1.uint64(shape)
        buf = self._bufs.get(label)
        if buf is None or buf[0].size - buf[2] < count:
            g0, g1 = self.streams(label)
            b0, b1 = g0.uint64(BLOCK), g1.uint64(BLOCK)
            b0.flags.writeable = b1.flags.writeable = False
            buf = (b0, b1, 0)
        at = buf[2]
        self._bufs[label] = (buf[0], buf[1], at + count)
        return buf[0][at : at + count].reshape(shape), buf[1][at : at + count].reshape(shape)

    def rand(self, shape: int | tuple[int, ...]) -> Pair:
        """My pair of a uniform replicated value (words, read as Z_2^64 or as XOR words);
        read-only views."""
        return self.words("rand", shape)

    def zero(self, shape: int | tuple[int, ...]) -> np.ndarray:
        """My additive share of 0 (3-out-of-3), pseudo-random to any one party."""
        g0, g1 = self.words("zero", shape)
        return g0 - g1

    def xzero(self, shape: int | tuple[int, ...]) -> np.ndarray:
        """My XOR share of 0 (3-out-of-3), pseudo-random to any one party."""
        g0, g1 = self.words("xzero", shape)
        return g0 ^ g1

    def out(self, v: np.ndarray) -> np.ndarray:
        """An additive share handed out: `v` (my part of the sum) plus a fresh zero sharing."""
        v = np.asarray(v, dtype=_U64)
        return v + self.zero(v.shape)

    def xout(self, v: np.ndarray) -> np.ndarray:
        """An XOR share handed out: `v` XOR a fresh zero sharing."""
        v = np.asarray(v, dtype=_U64)
        return v ^ self.xzero(v.shape)

    # -- local products (no zero sharing: for reshare / out) ------------------------------
    @staticmethod
    def mul_raw(x: Pair, y: Pair) -> np.ndarray:
        """My share of x * y (elementwise, broadcasting) before re-randomisation."""
        t = x[0] * (y[0] + y[1])
        t += x[1] * y[0]
        return t

    @staticmethod
    def and_raw(x: Pair, y: Pair) -> np.ndarray:
        t = x[0] & (y[0] ^ y[1])
        t ^= x[1] & y[0]
        return t

    @staticmethod
    def matmul_raw(x: Pair, y: Pair) -> np.ndarray:
        t = x[0] @ (y[0] + y[1])
        t += x[1] @ y[0]
        return t

    def const(self, c: int, shape: tuple[int, ...]) -> Pair:
        """My pair of the public constant c (component 0 = c)."""
        a = np.zeros(shape, _U64)
        b = np.zeros(shape, _U64)
        if self.me == 0:
            a += np.uint64(c)
        elif self.me == 2:
            b += np.uint64(c)
        return a, b

    # -- communication ----------------------------------------------------------------------
    async def reshare(self, zs: list[np.ndarray], *, boolean: bool = False) -> list[Pair]:
        """Additive (XOR) shares -> replicated pairs: each z re-randomised with a fresh zero
        sharing, sent to party me - 1; party me + 1's arrive. One round for the whole list.
        Bytes: 8 per element of the list, to one neighbour."""
        if not zs:
            return []
        mask = self.xzero if boolean else self.zero
        flat = np.concatenate([z.reshape(-1) for z in zs])
        m = mask(flat.shape)
        flat = flat ^ m if boolean else flat + m
        got = await self._round("rss3-reshare", flat)
        out, at = [], 0
        for z, w in _splits(zs):
            out.append((flat[at : at + w].reshape(z.shape), got[at : at + w].reshape(z.shape)))
            at += w
        return out

    async def _round(self, op: str, send: np.ndarray) -> np.ndarray:
        """Send `send` to the previous party, receive as many words from the next one."""
        s = self.s
        tag = s.tag(op)
        try:
            await s.channel.send(self.prev, tag, np.ascontiguousarray(send, dtype=_U64))
            got = await s.channel.recv_array(self.next, tag, dtype=_U64, shape=send.shape)
        except SmpcError as e:
            await s.abort(e)
            raise
        s.stats.rounds += 1
        return np.asarray(got, dtype=_U64)

    async def b2a(self, c: Pair) -> np.ndarray:
        """My additive share (NOT re-randomised: pass each output through `out`) of every bit
        b = c_0 ^ c_1 ^ c_2 of the 0/1 replicated bit array `c` (flat), by the helper product
        of the module docstring, the three parties leading a third each. One round; bytes: 8
        per bit I lead, to party me - 1."""
        c0, c1 = c
        m = c0.size
        b = [p * m // 3 for p in range(4)]
        part = [(b[p], b[p + 1]) for p in range(3)]
        g0, g1 = self.streams("b2a")  # part p's mask: the stream of K_{p+1}
        me, L1, L2 = self.me, self.prev, self.next
        share = np.empty(m, _U64)
        # part me (I lead): x = c_me ^ c_{me+1}; mask from K_{me+1} (my g1), x - mask to me - 1
        lo, hi = part[me]
        x = c0[lo:hi] ^ c1[lo:hi]
        share[lo:hi] = x
        send = x - g1.uint64(hi - lo)
        # part me - 1 (I am its L + 1): c = c_{me+1} (my second), mask from K_me (my g0)
        lo, hi = part[L1]
        cc = c1[lo:hi]
        share[lo:hi] = cc - np.uint64(2) * (g0.uint64(hi - lo) * cc)
        # part me + 1 (I am its L + 2): x - m from party me + 1, c = c_me (my first)
        lo, hi = part[L2]
        got = await self._b2a_round(send, hi - lo)
        share[lo:hi] = np.uint64(0) - np.uint64(2) * (got * c0[lo:hi])
        return share

    async def b2a_words(self, c: Pair) -> np.ndarray:
        """`b2a` of all 64 bits of every word of the replicated words `c` (W,), the three
        parties leading a third of the WORDS each (compiled kernels, _rss3_jit). Returns my
        raw (NOT re-randomised) per-bit shares (64, W). One round; bytes: 512 per word I
        lead, to party me - 1."""
        from protocols.preprocessing import _rss3_jit as jit

        c0, c1 = (np.ascontiguousarray(v, dtype=_U64) for v in c)
        W = c0.size
        part = [(p * W // 3, (p + 1) * W // 3) for p in range(3)]
        g0, g1 = self.streams("b2a")  # part p's masks: the stream of K_{p+1}
        share = np.empty((64, W), _U64)
        lo, hi = part[self.me]
        send = np.empty(64 * (hi - lo), _U64)
        jit.lead(c0[lo:hi] ^ c1[lo:hi], g1.uint64(64 * (hi - lo)), share, lo, send)
        lo, hi = part[self.prev]
        jit.helper(c1[lo:hi], g0.uint64(64 * (hi - lo)), share, lo)
        lo, hi = part[self.next]
        got = await self._b2a_round(send, 64 * (hi - lo))
        jit.receiver(c0[lo:hi], got, share, lo)
        return share

    async def _b2a_round(self, send: np.ndarray, n_in: int) -> np.ndarray:
        s = self.s
        tag = s.tag("rss3-b2a")
        try:
            await s.channel.send(self.prev, tag, np.ascontiguousarray(send, dtype=_U64))
            got = await s.channel.recv_array(self.next, tag, dtype=_U64, shape=(n_in,))
        except SmpcError as e:
            await s.abort(e)
            raise
        s.stats.rounds += 1
        return np.asarray(got, dtype=_U64)

    # -- monomials ------------------------------------------------------------------------
    async def products(
        self, F: list[Pair], monos: list[tuple[int, ...]], *, boolean: bool
    ) -> dict[tuple[int, ...], Pair]:
        """Replicated pairs of the products of the factors F[i] over every monomial in
        `monos` (index tuples) and of the halves they are built from: a monomial is the
        product of its first and second half, computed a level at a time, each level one
        `reshare`. Rounds: ceil(log2 max degree)."""
        mul = self.and_raw if boolean else self.mul_raw
        have: dict[tuple[int, ...], Pair] = {(i,): f for i, f in enumerate(F)}
        need: dict[tuple[int, ...], int] = {}

        def want(U: tuple[int, ...]) -> int:
            if len(U) == 1:
                return 0
            if U not in need:
                h = len(U) // 2
                need[U] = 1 + max(want(U[:h]), want(U[h:]))
            return need[U]

        for U in monos:
            want(U)
        for depth in range(1, 1 + max(need.values(), default=0)):
            todo = [U for U, d in need.items() if d == depth]
            raw = [mul(have[U[: len(U) // 2]], have[U[len(U) // 2 :]]) for U in todo]
            for U, p in zip(todo, await self.reshare(raw, boolean=boolean), strict=True):
                have[U] = p
        return have

    def final(self, have: dict[tuple[int, ...], Pair], U: tuple[int, ...], *, boolean: bool) -> np.ndarray:
        """My handed-out additive (XOR) share of monomial U from replicated halves: local
        product plus a fresh zero sharing (no communication)."""
        if len(U) == 1:
            return self.xout(have[U][0]) if boolean else self.out(have[U][0])
        h = len(U) // 2
        if boolean:
            return self.xout(self.and_raw(have[U[:h]], have[U[h:]]))
        return self.out(self.mul_raw(have[U[:h]], have[U[h:]]))

    def halves(self, monos: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        """The halves `final` needs in replicated form (for `products`)."""
        out: list[tuple[int, ...]] = []
        for U in monos:
            if len(U) >= 2:
                h = len(U) // 2
                out += [U[:h], U[h:]]
        return out


def _splits(zs: list[np.ndarray]) -> list[tuple[np.ndarray, int]]:
    return [(z, int(z.size)) for z in zs]
