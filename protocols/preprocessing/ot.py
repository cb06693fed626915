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
element) over Z_2^64: for each bit k of y_l one correlated OT with correlation x_l * 2^k:
the receiver gets H(t) + y_lk * tau with tau = H(q) + x_l 2^k - H(q ^ s); the sender keeps
-H(q). Summed over k the two shares add up to x_l * y_l. With M > 1 the same OTs multiply a
whole column, which gives matrix triples for (k x d) @ (d x m) from d*m*64 OTs carrying k
words each (communication linear in k*d*m words for the cross terms, as in [MZ17, sec. 4.2]).

Triples (per party p, a_p, b_p uniform): c_p = a_p*b_p + sum_{j != p} (sender share of
a_p*b_j + receiver share of a_j*b_p). Rounds: 2 per batch (+2 once per pair for the base
OTs). Bytes per party per triple: (n-1)*64*(16 + 8) = 1536*(n-1).

[Gil99] N. Gilboa, "Two party RSA key generation", CRYPTO 1999.
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
import hashlib

import nacl.bindings as nb
import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from network.errors import FrameError, SmpcError
from protocols.errors import ConfigError
from protocols.preprocessing.base import Preprocessing, Shape
from protocols.preprocessing.dn07 import offline_session
from protocols.prg import CryptoRNG
from protocols.session import Session

__all__ = ["OTPreprocessing", "make_ot"]

KAPPA = 128
_U64 = np.dtype(np.uint64)
_PT = 32  # ed25519 point bytes


# -- base OT [CO15], semi-honest ---------------------------------------------------------
def _ro(*parts: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=32, person=b"smpc-baseot-v1")
    for p in parts:
        h.update(len(p).to_bytes(4, "little") + p)
    return h.digest()


def _point(raw: bytes, what: str) -> bytes:
    if len(raw) != _PT or not nb.crypto_core_ed25519_is_valid_point(raw):
        raise FrameError(f"base OT: invalid {what} point")
    return raw


# -- fixed-key AES hash (TMMO [GKWY20]) ----------------------------------------------------
class _AES:
    def __init__(self, key: bytes):
        self._enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()

    def __call__(self, blocks: np.ndarray) -> np.ndarray:
        """AES on each 16-byte row of a (m, ..., 16) uint8 array."""
        src = np.ascontiguousarray(blocks)
        out = np.empty(src.nbytes + 15, dtype=np.uint8)
        self._enc.update_into(memoryview(src).cast("B"), out)
        return out[: src.nbytes].reshape(src.shape)


def _hash(aes: _AES, x: np.ndarray, base: int, M: int) -> np.ndarray:
    """H(base + j, x_j) for rows x_j of x (m, 16): M uint64 words per row (tweaks (j, w))."""
    m = x.shape[0]
    nb_ = (M + 1) // 2
    p = aes(x)  # pi(x)
    tw = np.zeros((m, nb_, 2), dtype=_U64)
    tw[:, :, 0] = np.arange(base, base + m, dtype=_U64)[:, None]
    tw[:, :, 1] = np.arange(nb_, dtype=_U64)[None, :]
    y = p[:, None, :] ^ tw.view(np.uint8).reshape(m, nb_, 16)
    out = aes(y) ^ p[:, None, :]  # pi(pi(x) ^ i) ^ pi(x)
    return out.reshape(m, nb_ * 16).view(_U64)[:, :M]


def _transpose(rows: np.ndarray) -> np.ndarray:
    """(128, m/8) packed bit rows -> (m, 16) packed bit columns."""
    return np.packbits(np.unpackbits(rows, axis=1).T, axis=1)


class _Sender:
    """IKNP sender side of one ordered pair (holds s and one seed per base OT)."""

    def __init__(self, s_bits: np.ndarray, seeds: list[bytes]):
        self.s_bits = s_bits
        self.s_packed = np.packbits(s_bits)
        self.prg = [CryptoRNG(k) for k in seeds]
        self.ctr = 0


class _Receiver:
    def __init__(self, pairs: list[tuple[bytes, bytes]]):
        self.prg0 = [CryptoRNG(k0) for k0, _ in pairs]
        self.prg1 = [CryptoRNG(k1) for _, k1 in pairs]
        self.ctr = 0


class OTPreprocessing(Preprocessing):
    """One party's OT-based source (additive sharing over Z_2^64, any n >= 2).

    Construct with the party's online Session; it runs over the same channel under its own
    tag prefix and counts its traffic in `self.stats`. Base OTs run once per pair on first
    use. `batch`: elementwise triples are generated at least `batch` at a time and pooled.
    Security: semi-honest, up to n - 1 corrupt (see the module docstring).
    """

    name = "ot"

    def __init__(self, s: Session, *, batch: int = 1 << 13):
        if getattr(s.scheme, "kind", None) != "additive" or s.domain.modulus != 1 << 64:
            raise ConfigError("ot preprocessing needs the additive scheme over Z_2^64")
        self.s = offline_session(s, "ot")
        self.stats = self.s.stats
        self.D = s.domain
        self.batch = int(batch)
        self.aes = _AES(hashlib.blake2b(s.sid, digest_size=16, person=b"smpc-ot-aes").digest())
        self._send: dict[int, _Sender] = {}
        self._recv: dict[int, _Receiver] = {}
        self._pool: list[np.ndarray] | None = None
        self._lock = asyncio.Lock()

    # -- communication ------------------------------------------------------------------
    async def _bytes_round(self, op: str, out: dict[int, bytes], sizes: dict[int, int]) -> dict[int, bytes]:
        s = self.s
        tag = s.tag(op)
        try:
            for j, b in out.items():
                await s.channel.send(j, tag, b)
            got = {}
            for j, size in sizes.items():
                got[j] = await s.channel.recv_bytes(j, tag, max_len=size)
                if len(got[j]) != size:
                    raise FrameError(f"{op}: expected {size} bytes from party {j}, got {len(got[j])}")
        except SmpcError as e:
            await s.abort(e)
            raise
        s.stats.rounds += 1
        return got

    async def _array_round(
        self, op: str, out: dict[int, np.ndarray], shapes: dict[int, tuple], dtype: np.dtype
    ) -> dict[int, np.ndarray]:
        s = self.s
        tag = s.tag(op)
        try:
            for j, a in out.items():
                await s.channel.send(j, tag, np.ascontiguousarray(a))
            got = {j: await s.channel.recv_array(j, tag, dtype=dtype, shape=sh) for j, sh in shapes.items()}
        except SmpcError as e:
            await s.abort(e)
            raise
        s.stats.rounds += 1
        return got

    # -- base OTs: once per ordered pair --------------------------------------------------
    async def _setup(self) -> None:
        if len(self._send) == self.s.n - 1:
            return
        peers, rng = self.s.peers, self.s.rng
        # I am base-OT sender (IKNP receiver) towards every peer: one A = aG each
        a = {j: nb.crypto_core_ed25519_scalar_reduce(rng.bytes(64)) for j in peers}
        A = {j: nb.crypto_scalarmult_ed25519_base_noclamp(a[j]) for j in peers}
        gotA = await self._bytes_round("baseot-A", A, {j: _PT for j in peers})
        # I am base-OT receiver (IKNP sender) with choice bits s: B_l = b_l G + s_l A
        out, mine = {}, {}
        for j in peers:
            Aj = _point(gotA[j], "A")
            s_bits = (rng.uint64(KAPPA) & np.uint64(1)).astype(np.uint8)
            Bs, keys = [], []
            for l_ in range(KAPPA):
                b = nb.crypto_core_ed25519_scalar_reduce(rng.bytes(64))
                B = nb.crypto_scalarmult_ed25519_base_noclamp(b)
                if s_bits[l_]:
                    B = nb.crypto_core_ed25519_add(B, Aj)
                Bs.append(B)
                keys.append(_ro(l_.to_bytes(2, "little"), Aj, B, nb.crypto_scalarmult_ed25519_noclamp(b, Aj)))
            out[j] = b"".join(Bs)
            mine[j] = (s_bits, keys)
        gotB = await self._bytes_round("baseot-B", out, {j: KAPPA * _PT for j in peers})
        for j in peers:
            pairs = []
            for l_ in range(KAPPA):
                B = _point(gotB[j][l_ * _PT : (l_ + 1) * _PT], "B")
                k0 = _ro(l_.to_bytes(2, "little"), A[j], B, nb.crypto_scalarmult_ed25519_noclamp(a[j], B))
                BmA = nb.crypto_core_ed25519_sub(B, A[j])
                k1 = _ro(l_.to_bytes(2, "little"), A[j], B, nb.crypto_scalarmult_ed25519_noclamp(a[j], BmA))
                pairs.append((k0, k1))
            self._recv[j] = _Receiver(pairs)
            self._send[j] = _Sender(*mine[j])

    # -- Gilboa products with every peer ----------------------------------------------------
    async def cross(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Shares of sum over peers j of (x_me * y_j + x_j * y_me) per element.

        x: (L, M) uint64, y: (L,) uint64 (the same L, M at every party). Returns (L, M): my
        share of sum_{j != me} (x_j[l] * y_me[l] + x_me[l] * y_j[l]) summed over both roles.
        Rounds: 2.  Bytes sent per party: (n-1) * 64 L * (16 + 8 M).
        """
        await self._setup()
        L, M = x.shape
        m = 64 * L
        peers = self.s.peers
        # receiver role: choice bits = bits of y
        r = ((y[:, None] >> np.arange(64, dtype=_U64)[None, :]) & np.uint64(1)).astype(np.uint8).reshape(m)
        r_packed = np.packbits(r)
        U, T = {}, {}
        for j in peers:
            R = self._recv[j]
            t_rows = np.stack([g.fill(np.empty(m // 8, np.uint8)) for g in R.prg0])
            u_rows = np.stack([g.fill(np.empty(m // 8, np.uint8)) for g in R.prg1])
            u_rows ^= t_rows
            u_rows ^= r_packed[None, :]
            U[j] = u_rows
            T[j] = t_rows
        gotU = await self._array_round("ot-u", U, {j: (KAPPA, m // 8) for j in peers}, np.dtype(np.uint8))
        tau, acc = {}, np.zeros((L, M), dtype=_U64)
        shifts = np.arange(64, dtype=_U64)
        for j in peers:
            S = self._send[j]
            q_rows = np.stack([g.fill(np.empty(m // 8, np.uint8)) for g in S.prg])
            q_rows[S.s_bits == 1] ^= gotU[j][S.s_bits == 1]
            q = _transpose(q_rows)
            h0 = _hash(self.aes, q, S.ctr, M)
            h1 = _hash(self.aes, q ^ S.s_packed[None, :], S.ctr, M)
            S.ctr += m
            delta = (x[:, None, :] << shifts[None, :, None]).reshape(m, M)
            tau[j] = h0 + delta - h1
            acc -= h0.reshape(L, 64, M).sum(axis=1, dtype=_U64)
        got_tau = await self._array_round("ot-tau", tau, {j: (m, M) for j in peers}, _U64)
        for j in peers:
            R = self._recv[j]
            t = _transpose(T[j])
            h = _hash(self.aes, t, R.ctr, M)
            R.ctr += m
            h += got_tau[j] * r[:, None].astype(_U64)
            acc += h.reshape(L, 64, M).sum(axis=1, dtype=_U64)
        return acc

    # -- items ------------------------------------------------------------------------------
    async def _gen_triples(self, count: int) -> list[np.ndarray]:
        rng = self.s.rng
        a, b = rng.uint64(count), rng.uint64(count)
        cr = await self.cross(a[:, None], b)
        return [a, b, a * b + cr[:, 0]]

    async def triples(self, shape: Shape):
        shape = tuple(shape)
        k = int(np.prod(shape, dtype=np.int64))
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
            out = [v[:k].reshape(shape) for v in self._pool]
            self._pool = [v[k:] for v in self._pool]
        return out[0], out[1], out[2]

    async def square_pairs(self, shape: Shape):
        """(a, a^2) from a triple (a, b, c): open nothing, a^2 = a*a needs its own cross
        terms, so this spends one Gilboa product with y = a."""
        shape = tuple(shape)
        k = int(np.prod(shape, dtype=np.int64))
        async with self._lock:
            a = self.s.rng.uint64(k)
            cr = await self.cross(a[:, None], a)
        # sum_{i != j} a_i a_j counted once per ordered pair: cross gives both orders
        return a.reshape(shape), (a * a + cr[:, 0]).reshape(shape)

    async def matrix_triples(self, x_shape: Shape, y_shape: Shape):
        x_shape, y_shape = tuple(x_shape), tuple(y_shape)
        if len(x_shape) != 2 or len(y_shape) not in (1, 2) or x_shape[1] != y_shape[0]:
            from protocols.errors import ShapeMismatch

            raise ShapeMismatch(f"matrix triples for {x_shape} @ {y_shape}")
        k, d = x_shape
        m = 1 if len(y_shape) == 1 else y_shape[1]
        rng = self.s.rng
        async with self._lock:
            A = rng.uint64((k, d))
            B = rng.uint64((d, m))
            # element (dd, c): x = A[:, dd] (k words), y = B[dd, c]
            x = np.repeat(A.T, m, axis=0)  # (d*m, k), row dd*m + c = A[:, dd]
            cr = await self.cross(x, B.reshape(-1))
        C = A @ B + cr.reshape(d, m, k).sum(axis=0, dtype=_U64).T
        if len(y_shape) == 1:
            return A, B.reshape(d), C.reshape(k)
        return A, B, C

    async def randoms(self, shape: Shape):
        return self.s.rng.uint64(tuple(shape))  # additive shares of a uniform value

    async def bits(self, shape: Shape):
        """Random shared bits b = XOR of the parties' local bits, arithmetised pairwise with
        square pairs' machinery: b = b_0 + b_1 - 2 b_0 b_1 folded over the parties, each
        product a Gilboa product. Rounds: 2 (n-1)."""
        shape = tuple(shape)
        k = int(np.prod(shape, dtype=np.int64))
        me, n = self.s.pid, self.s.n
        mybit = self.s.rng.bits(k)
        async with self._lock:
            acc = mybit if me == 0 else np.zeros(k, _U64)  # shares of b_0
            for j in range(1, n):
                # shares of acc * b_j: party j's bit is y, everybody's acc share is x; the
                # cross terms give sum_{i != j} acc_i * b_j; party j adds acc_j * b_j itself
                y = mybit if me == j else np.zeros(k, _U64)
                cr = await self.cross(acc[:, None], y)
                prod = cr[:, 0] + acc * y
                bj = mybit if me == j else np.zeros(k, _U64)
                acc = acc + bj - np.uint64(2) * prod
        return acc.reshape(shape)


async def make_ot(s: Session, *, batch: int = 1 << 13) -> OTPreprocessing:
    """Factory for run_local / the node: an OT-based source over `s` (base OTs on first use)."""
    return OTPreprocessing(s, batch=batch)
