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
import hashlib
from dataclasses import dataclass, field

import nacl.bindings as nb
import nacl.exceptions
import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from network.errors import FrameError, SmpcError
from protocols.errors import ConfigError, PreprocessingExhausted
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
    """(K, m/8) packed bit rows -> (m, K/8) packed bit columns (numpy packbits bit order:
    MSB first), K a multiple of 8.

    8 x 8 bit blocks: the 8 bytes of rows 8c..8c+7 in byte column j form one uint64 (row b in
    byte b, column i at bit 7 - i), i.e. element (b, i) at bit 8b + 7 - i; the wanted
    element (i, b) of the transpose then sits at bit 8i + 7 - b = 63 - (8(7 - i) + b), an
    anti-diagonal transpose of the word, done with three delta swaps (Hacker's Delight,
    sec. 7-3). About 40x faster than unpackbits / transpose / packbits."""
    K, mb = rows.shape
    x = np.ascontiguousarray(rows.reshape(K // 8, 8, mb).transpose(0, 2, 1)).view(_U64)[..., 0]
    for sh, mask in ((9, 0x0055005500550055), (18, 0x0000333300003333), (36, 0x000000000F0F0F0F)):
        t = (x ^ (x >> np.uint64(sh))) & np.uint64(mask)
        x ^= t ^ (t << np.uint64(sh))
    y = x.view(np.uint8).reshape(K // 8, mb, 8)  # (c, j, i): byte i = column 8j + i, rows 8c..
    return np.ascontiguousarray(y.transpose(1, 2, 0)).reshape(mb * 8, K // 8)


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


@dataclass
class _Ext:
    """One IKNP extension round's state, per peer (see OTPreprocessing._extend)."""

    t: dict[int, np.ndarray] = field(default_factory=dict)
    r: dict[int, np.ndarray] = field(default_factory=dict)
    rbase: dict[int, int] = field(default_factory=dict)
    q: dict[int, np.ndarray] = field(default_factory=dict)
    sbase: dict[int, int] = field(default_factory=dict)


def _bitwords(h: np.ndarray, L: int, k: int) -> np.ndarray:
    """(64 L, M) hash words -> (k, L) words: bit i of word (t, e) is bit t of h[64 e + i]."""
    out = np.empty((k, L), dtype=_U64)
    for t in range(k):
        bit = ((h[:, t // 64] >> np.uint64(t % 64)) & np.uint64(1)).astype(np.uint8).reshape(L, 64)
        out[t] = np.packbits(bit, axis=1, bitorder="little").view(_U64)[:, 0]
    return out


def _size(shape: Shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


class OTPreprocessing(Preprocessing):
    """One party's OT-based source (additive sharing over Z_2^64, any n >= 2).

    Construct with the party's online Session; it runs over the same channel under its own
    tag prefix and counts its traffic in `self.stats`. Base OTs run once per pair on first
    use. `batch`: elementwise triples are generated at least `batch` at a time and pooled;
    daBits `dabit_chunk` and boolean triples `bool_chunk` words at a time (which also bounds
    the memory of one OT extension). Supplies every kind of base.KINDS.
    Security: semi-honest, up to n - 1 corrupt (see the module docstring).
    Raises: FrameError for a peer's malformed base-OT points or messages (the session is
    aborted), PreprocessingExhausted for parameters no protocol uses (as the dealer).
    """

    name = "ot"

    def __init__(self, s: Session, *, batch: int = 1 << 13, dabit_chunk: int = 1 << 16, bool_chunk: int = 1 << 11):
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
        self._pools: dict[str, list[np.ndarray]] = {}
        self.dabit_chunk = max(8, dabit_chunk)
        self.bool_chunk = max(1, bool_chunk)
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
        try:
            await self._base_ots()
        except nacl.exceptions.CryptoError as e:  # untyped RuntimeError etc. from libsodium
            err = FrameError(f"base OT: libsodium rejected a point or scalar ({type(e).__name__})")
            await self.s.abort(err)
            raise err from e
        except FrameError as e:
            await self.s.abort(e)
            raise

    async def _base_ots(self) -> None:
        """Chou-Orlandi base OTs [CO15] with every peer, both directions, in 2 rounds.
        Raises FrameError for a peer's invalid point (not canonical, not in the prime-order
        subgroup, or B == A, for which B - A is the identity and both keys would be known)."""
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
        recv = {}
        for j in peers:
            pairs = []
            for l_ in range(KAPPA):
                B = _point(gotB[j][l_ * _PT : (l_ + 1) * _PT], "B")
                if B == A[j]:
                    raise FrameError(f"base OT: party {j} sent B = A (B - A is the identity)")
                k0 = _ro(l_.to_bytes(2, "little"), A[j], B, nb.crypto_scalarmult_ed25519_noclamp(a[j], B))
                BmA = nb.crypto_core_ed25519_sub(B, A[j])
                k1 = _ro(l_.to_bytes(2, "little"), A[j], B, nb.crypto_scalarmult_ed25519_noclamp(a[j], BmA))
                pairs.append((k0, k1))
            recv[j] = pairs
        for j in peers:  # only once every peer's points checked out
            self._recv[j] = _Receiver(recv[j])
            self._send[j] = _Sender(*mine[j])

    # -- IKNP extension and correlated OTs ---------------------------------------------
    async def _extend(self, choices: dict[int, np.ndarray], send: dict[int, int]) -> _Ext:
        """One round of IKNP extension [IKNP03, sec. 4]: towards each peer j in `choices` I
        am the receiver of len(choices[j]) OTs with those choice bits (uint8 0/1, length a
        multiple of 8); towards each j in `send` I am the sender of send[j] OTs. Returns the
        rows t_l = q_l ^ r_l s (receiver) and q_l (sender) with their hash tweak bases; the
        correlations go out with `_finish_add` / in `_gen_bool_triples`.
        Bytes sent per party: 16 per OT as receiver (the u matrix)."""
        await self._setup()
        ext = _Ext()
        U = {}
        for j, r in choices.items():
            m = r.size
            R = self._recv[j]
            t_rows = np.stack([g.fill(np.empty(m // 8, np.uint8)) for g in R.prg0])
            u_rows = np.stack([g.fill(np.empty(m // 8, np.uint8)) for g in R.prg1])
            u_rows ^= t_rows
            u_rows ^= np.packbits(r)[None, :]
            U[j] = u_rows
            ext.t[j], ext.r[j], ext.rbase[j] = _transpose(t_rows), r, R.ctr
            R.ctr += m
        got = await self._array_round("ot-u", U, {j: (KAPPA, m // 8) for j, m in send.items()}, np.dtype(np.uint8))
        for j, m in send.items():
            S = self._send[j]
            q_rows = np.stack([g.fill(np.empty(m // 8, np.uint8)) for g in S.prg])
            q_rows[S.s_bits == 1] ^= got[j][S.s_bits == 1]
            ext.q[j], ext.sbase[j] = _transpose(q_rows), S.ctr
            S.ctr += m
        return ext

    async def _finish_add(
        self, ext: _Ext, deltas: dict[int, np.ndarray], recv_words: dict[int, int]
    ) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
        """One round: additive correlated OTs over Z_2^64 [Gil99 / KOS16 style]. As sender to
        j (deltas[j]: (m, M) words) I send tau = H(q) + delta - H(q ^ s) and keep -H(q); as
        receiver from j (recv_words[j] = M) I get H(t) + r * tau. Per OT the two outputs add
        up to r * delta. Returns (received[j], kept[j]). Bytes: 8 M per OT as sender."""
        tau, kept = {}, {}
        for j, x in deltas.items():
            S, q, M = self._send[j], ext.q[j], x.shape[1]
            h0 = _hash(self.aes, q, ext.sbase[j], M)
            h1 = _hash(self.aes, q ^ S.s_packed[None, :], ext.sbase[j], M)
            tau[j] = h0 + x - h1
            kept[j] = -h0
        got = await self._array_round(
            "ot-tau", tau, {j: (ext.t[j].shape[0], M) for j, M in recv_words.items()}, _U64
        )
        out = {}
        for j, M in recv_words.items():
            h = _hash(self.aes, ext.t[j], ext.rbase[j], M)
            h += got[j] * ext.r[j][:, None].astype(_U64)
            out[j] = h
        return out, kept

    # -- Gilboa products with every peer ----------------------------------------------------
    async def cross(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Shares of sum over peers j of (x_me * y_j + x_j * y_me) per element.

        x: (L, M) uint64, y: (L,) uint64 (the same L, M at every party). Returns (L, M): my
        share of sum_{j != me} (x_j[l] * y_me[l] + x_me[l] * y_j[l]) summed over both roles.
        Rounds: 2.  Bytes sent per party: (n-1) * 64 L * (16 + 8 M).
        """
        L, M = x.shape
        m = 64 * L
        peers = self.s.peers
        # receiver role: choice bits = bits of y (OT l = 64 e + k carries bit k of y_e)
        r = ((y[:, None] >> np.arange(64, dtype=_U64)[None, :]) & np.uint64(1)).astype(np.uint8).reshape(m)
        ext = await self._extend({j: r for j in peers}, {j: m for j in peers})
        delta = (x[:, None, :] << np.arange(64, dtype=_U64)[None, :, None]).reshape(m, M)
        got, kept = await self._finish_add(ext, {j: delta for j in peers}, {j: M for j in peers})
        acc = np.zeros((L, M), dtype=_U64)
        for j in peers:
            acc += (got[j] + kept[j]).reshape(L, 64, M).sum(axis=1, dtype=_U64)
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

    async def _gen_bool_triples(self, L: int, k: int) -> list[np.ndarray]:
        """AND triples on 64-bit words [Beaver91] from correlated OTs with k-bit messages:
        a, b_1..b_k XOR-shared, c_t = a & b_t = XOR_{p,q} a_p & b_{t,q}. Each cross term
        a_q & b_{t,p} (q != p) is one OT per bit position: receiver q chooses with its bit of
        a_q, sender p's correlation is the k bits (b_{1,p}, ..., b_{k,p}) at that position:
        tau = H(q) ^ H(q ^ s) ^ delta (k bits, packed 64 OTs to a word), receiver output
        H(t) ^ r & tau, sender output H(q) [IKNP03; ALSZ13 for bit messages].
        Rounds: 2.  Bytes sent per party and a-word: (n - 1) * 64 * 16 (u) + (n - 1) * 8 k."""
        m = 64 * L
        rng, peers = self.s.rng, self.s.peers
        a, b = rng.uint64(L), rng.uint64((k, L))
        r = np.unpackbits(a.view(np.uint8), bitorder="little")  # OT 64 e + i: bit i of a[e]
        ext = await self._extend({j: r for j in peers}, {j: m for j in peers})
        M = -(-k // 64)
        tau, c = {}, a[None, :] & b
        for j in peers:
            q, S = ext.q[j], self._send[j]
            h0 = _bitwords(_hash(self.aes, q, ext.sbase[j], M), L, k)
            h1 = _bitwords(_hash(self.aes, q ^ S.s_packed[None, :], ext.sbase[j], M), L, k)
            tau[j] = h0 ^ h1 ^ b
            c ^= h0
        got = await self._array_round("ot-btau", tau, {j: (k, L) for j in peers}, _U64)
        for j in peers:
            c ^= _bitwords(_hash(self.aes, ext.t[j], ext.rbase[j], M), L, k) ^ (a[None, :] & got[j])
        return [a, b, c]

    async def _take(self, kind: str, count: int, gen, chunk: int) -> list[np.ndarray]:
        """`count` items of a pooled kind along the last axis, generated `chunk` at a time
        (bounded memory per OT batch) and at least `chunk` per refill."""
        async with self._lock:
            pool = self._pools.get(kind)
            have = 0 if pool is None else pool[0].shape[-1]
            parts = [] if pool is None else [pool]
            while have < count:
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
        """Shares of uniform random bits: the arithmetic halves of daBits."""
        shape = tuple(shape)
        a, _ = await self._dabit_bits(_size(shape))
        return a.reshape(shape).copy()

    async def dabits(self, shape: Shape):
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

    async def edabits(self, shape: Shape, bits: int = 64):
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

    async def trunc_triples(self, shape: Shape, f: int):
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

    async def trunc_pairs(self, shape: Shape, f: int, bits: int):
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

    async def bounded_randoms(self, shape: Shape, bits: int):
        """Shares of uniform integers in [0, 2^bits), 0 < bits < 64, as sum_i 2^i b_i over
        `bits` daBits (exact). Security: semi-honest, up to n - 1 corrupt."""
        shape = tuple(shape)
        if not isinstance(bits, int | np.integer) or not 0 < bits < 64:
            raise PreprocessingExhausted(f"{self.name}: cannot supply {bits}-bit randoms in Z_2^64")
        bits = int(bits)
        a, _ = await self._weighted_dabits(shape, bits)
        return (a << np.arange(bits, dtype=_U64)[:, None]).sum(axis=0, dtype=_U64).reshape(shape)

    async def bool_triples(self, shape: Shape, k: int = 1):
        """AND triples on 64-bit words in XOR shares: a of `shape`, b of (k, *shape), c = a & b
        (the trusted dealer's format). See `_gen_bool_triples` (OTs with k-bit messages).
        Security: semi-honest, up to n - 1 corrupt."""
        shape = tuple(shape)
        if not isinstance(k, int | np.integer) or not 1 <= k <= 64:
            raise PreprocessingExhausted(f"{self.name}: boolean triples need 1 <= k <= 64, got {k}")
        k = int(k)
        L = _size(shape)
        a, b, c = await self._take(f"bool{k}", L, lambda L_: self._gen_bool_triples(L_, k), self.bool_chunk)
        return a.reshape(shape).copy(), b.reshape((k, *shape)).copy(), c.reshape((k, *shape)).copy()


async def make_ot(s: Session, *, batch: int = 1 << 13) -> OTPreprocessing:
    """Factory for run_local / the node: an OT-based source over `s` (base OTs on first use)."""
    return OTPreprocessing(s, batch=batch)
