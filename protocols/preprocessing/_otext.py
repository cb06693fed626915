"""Pairwise OT extension among n parties, independent of the arithmetic domain: base OTs by
the "simplest OT" of Chou and Orlandi [CO15] on edwards25519 (libsodium via PyNaCl), IKNP
extension [IKNP03, sec. 4] in both directions between every ordered pair, fixed-key AES-128 as
a tweakable correlation-robust hash (TMMO of [GKWY20], sec. 7), additive correlated OTs over
Z_2^64 [Gil99 / KOS16 style] and boolean (AND) triples on 64-bit words XOR-shared among all n
parties from OTs with k-bit messages [IKNP03; ALSZ13].

Shared by the OT-based source (protocols.preprocessing.ot, additive over Z_2^64, which
subclasses OTExtension) and DN07 (protocols.preprocessing.dn07, Shamir over GF(p), which
holds one for its boolean triples): what it produces never touches the arithmetic domain,
so one engine serves both.

Security: semi-honest (passive), up to n - 1 of n parties corrupt; computational: CDH on
edwards25519 in the random-oracle model (base OTs, BLAKE2b as the oracle) and fixed-key
AES-128 as a tweakable correlation-robust hash. Nothing is checked against an actively
corrupt party (KOS15 / MASCOT checks are not implemented). Channels must be private and
authenticated.

[CO15] T. Chou, C. Orlandi, "The simplest protocol for oblivious transfer", LATINCRYPT 2015.
[IKNP03] Y. Ishai, J. Kilian, K. Nissim, E. Petrank, "Extending oblivious transfers
efficiently", CRYPTO 2003.
[ALSZ13] G. Asharov, Y. Lindell, T. Schneider, M. Zohner, "More efficient oblivious transfer
and extensions for faster secure computation", CCS 2013.
[GKWY20] C. Guo, J. Katz, X. Wang, Y. Yu, "Efficient and secure multiparty computation from
fixed-key block ciphers", IEEE S&P 2020.
[Gil99] N. Gilboa, "Two party RSA key generation", CRYPTO 1999.
[KOS16] M. Keller, E. Orsini, P. Scholl, "MASCOT", CCS 2016.
[Beaver91] D. Beaver, "Efficient multiparty protocols using circuit randomization", CRYPTO 1991.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import nacl.bindings as nb
import nacl.exceptions
import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from network.errors import FrameError, SmpcError
from protocols.preprocessing import _ot_jit as _jit
from protocols.prg import KEY_BYTES
from protocols.session import Session

__all__ = ["KAPPA", "OTExtension"]

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
        self._enc.update_into(src.data.cast("B"), out.data)
        return out[: src.nbytes].reshape(src.shape)

    def into(self, src: np.ndarray, buf: np.ndarray) -> np.ndarray:
        """AES of a C-contiguous (k, ..., 16) uint8 array into buf (at least src.nbytes +
        15 bytes, the cipher's requirement); returns the result as buf's head, src's shape."""
        self._enc.update_into(src.data.cast("B"), buf.data)
        return buf[: src.nbytes].reshape(src.shape)


def _hash_np(aes: _AES, x: np.ndarray, base: int, M: int) -> np.ndarray:
    """numpy reference of `_hash` (the tests check the compiled one against it)."""
    m = x.shape[0]
    nb_ = (M + 1) // 2
    p = aes(x)  # pi(x)
    p64 = p.view(_U64)  # (m, 2)
    y = np.empty((m, nb_, 2), dtype=_U64)
    np.bitwise_xor(p64[:, None, 0], np.arange(base, base + m, dtype=_U64)[:, None], out=y[:, :, 0])
    np.bitwise_xor(p64[:, None, 1], np.arange(nb_, dtype=_U64)[None, :], out=y[:, :, 1])
    out = aes(y.view(np.uint8)).view(_U64)  # (m, nb_, 2)
    out ^= p64[:, None, :]
    return out.reshape(m, 2 * nb_)[:, :M]


#: rows per block of `_hash`: its scratch (about 16 (2 + 2 nb) bytes a row) stays in cache
_HASH_ROWS = 1 << 13


def _hash_blocks(aes: _AES, x: np.ndarray, base: int, M: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """TMMO [GKWY20, sec. 7] of the rows x_j of x (m, 16) block by block, before the final
    fold: yields (lo, e, p) per block of rows lo .. lo + len(p) - 1, with p = pi(x_j) as
    (rows, 2) words and e = pi(pi(x_j) ^ (base + j, b)) as (rows, 2 nb) words (nb = the
    blocks per row, (M + 1) // 2); H(base + j, x_j) word w is e[j - lo, w] ^ p[j - lo, w & 1].
    The consumers (the `*_h` kernels of _ot_jit) fold as they read, so the (m, M) hash is
    never written out. `e` and `p` are scratch reused by the next block: use them first.
    Blocks of `_HASH_ROWS` words' worth of rows, so the scratch stays in cache."""
    x = np.ascontiguousarray(x)
    m, nb_ = x.shape[0], (M + 1) // 2
    ch = max(1, _HASH_ROWS // nb_)
    pbuf = np.empty(min(m, ch) * 16 + 15, dtype=np.uint8)
    y = np.empty((min(m, ch), nb_, 2), dtype=_U64)
    ebuf = np.empty(y.nbytes + 15, dtype=np.uint8)
    for lo in range(0, m, ch):
        hi = min(m, lo + ch)
        k = hi - lo
        p64 = aes.into(x[lo:hi], pbuf).view(_U64)  # pi(x), (k, 2)
        yk = y[:k]
        _jit.tmmo_tweak(p64, np.uint64(base + lo), yk)
        e = aes.into(yk.view(np.uint8), ebuf).view(_U64).reshape(k, 2 * nb_)
        yield lo, e, p64


def _hash(aes: _AES, x: np.ndarray, base: int, M: int) -> np.ndarray:
    """H(base + j, x_j) for rows x_j of x (m, 16): M uint64 words per row (tweaks (j, w)),
    C-contiguous (m, M). TMMO [GKWY20, sec. 7]: pi(pi(x) ^ i) ^ pi(x) with the tweak
    i = (base + j, w), one block per two words, computed block by block by `_hash_blocks`
    (the two AES passes in OpenSSL, the tweak and the fold in one compiled pass each,
    _ot_jit; `_hash_np` is the numpy reference, which the tests compare with)."""
    m = x.shape[0]
    out = np.empty((m, M), dtype=_U64)
    for lo, e, p in _hash_blocks(aes, x, base, M):
        _jit.tmmo_fold_rows(e, p, out[lo : lo + p.shape[0]])
    return out


def _hash2_blocks(
    aes: _AES, q: np.ndarray, s_packed: np.ndarray, base: int, M: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The sender's two hashes H(base + j, q_j) and H(base + j, q_j ^ s) in lock-step blocks:
    yields (lo, e0, p0, e1, p1) (see `_hash_blocks`)."""
    qs = q ^ s_packed[None, :]
    for (lo, e0, p0), (_, e1, p1) in zip(_hash_blocks(aes, q, base, M), _hash_blocks(aes, qs, base, M), strict=True):
        yield lo, e0, p0, e1, p1


def _transpose_np(rows: np.ndarray) -> np.ndarray:
    """numpy reference of `_transpose` (same bit layout; the tests compare the two). Copies
    its input (for mb = 1 ascontiguousarray would be a view and the swaps would overwrite
    `rows`)."""
    K, mb = rows.shape
    x = rows.reshape(K // 8, 8, mb).transpose(0, 2, 1).copy().view(_U64)[..., 0]
    for sh, mask in ((9, 0x0055005500550055), (18, 0x0000333300003333), (36, 0x000000000F0F0F0F)):
        t = (x ^ (x >> np.uint64(sh))) & np.uint64(mask)
        x ^= t ^ (t << np.uint64(sh))
    y = x.view(np.uint8).reshape(K // 8, mb, 8)  # (c, j, i): byte i = column 8j + i, rows 8c..
    return np.ascontiguousarray(y.transpose(1, 2, 0)).reshape(mb * 8, K // 8)


def _transpose(rows: np.ndarray) -> np.ndarray:
    """(K, m/8) packed bit rows -> (m, K/8) packed bit columns (numpy packbits bit order:
    MSB first), K a multiple of 8.

    8 x 8 bit blocks: the 8 bytes of rows 8c..8c+7 in byte column j form one uint64 (row b in
    byte b, column i at bit 7 - i), i.e. element (b, i) at bit 8b + 7 - i; the wanted
    element (i, b) of the transpose then sits at bit 8i + 7 - b = 63 - (8(7 - i) + b), an
    anti-diagonal transpose of the word, done with three delta swaps (Hacker's Delight,
    sec. 7-3), in one compiled pass (_ot_jit.transpose; `_transpose_np` is the numpy
    reference)."""
    K, mb = rows.shape
    rows = np.ascontiguousarray(rows)
    if K % 64 == 0 and mb % 8 == 0 and rows.ctypes.data % 8 == 0:  # 64 x 64 blocks on words
        out = np.empty((mb * 8, K // 8), dtype=np.uint8)
        _jit.transpose64(rows.view(_U64), out.view(_U64))
        return out
    out = np.empty((mb * 8, K // 8), dtype=np.uint8)
    _jit.transpose(rows, out)
    return out


def _transpose_into(rows: np.ndarray, out: np.ndarray) -> None:
    """`_transpose` of rows (K, mb), each row C-contiguous, into the C-contiguous out
    (8 mb, K / 8) (the 64 x 64 kernel when rows are whole words: K % 64 == mb % 8 == 0 and
    aligned, else the 8 x 8 one on a contiguous copy)."""
    K, mb = rows.shape
    if (K % 64 == 0 and mb % 8 == 0 and rows.ctypes.data % 8 == 0 and rows.strides[0] % 8 == 0
            and out.ctypes.data % 8 == 0):
        _jit.transpose64(rows.view(_U64), out.view(_U64))
    else:
        _jit.transpose(np.ascontiguousarray(rows), out)


class _SeedPRG:
    """The PRG of one base-OT seed: AES-256-CTR keyed by the seed from counter 0, the very
    construction of protocols.prg.CryptoRNG (the tests check the streams are equal), kept
    here so that `_expand` can run all 128 of a pair through one shared zero buffer."""

    __slots__ = ("_enc",)

    def __init__(self, key: bytes):
        if len(key) != KEY_BYTES:
            raise ValueError(f"base-OT seed must be {KEY_BYTES} bytes")
        self._enc = Cipher(algorithms.AES(key), modes.CTR(b"\0" * 16)).encryptor()


_ZEROS = bytearray(0)


def _expand(prgs: list[_SeedPRG], nbytes: int) -> np.ndarray:
    """The next `nbytes` of each base-OT seed's PRG as the rows of one (len(prgs), nbytes)
    array, written in place (the same stream bytes as one CryptoRNG.fill per seed and a
    stack), the keystream XORed onto one shared, cache-resident zero buffer."""
    global _ZEROS
    out = np.empty((len(prgs), nbytes), dtype=np.uint8)
    if nbytes == 0:
        return out
    if len(_ZEROS) < nbytes:
        _ZEROS = bytearray(nbytes)
    z = memoryview(_ZEROS)[:nbytes]
    for g, row in zip(prgs, out, strict=True):
        g._enc.update_into(z, row.data)
    return out


def _zeros(nbytes: int) -> memoryview:
    """A read-only view of `nbytes` zero bytes (the shared, growing zero buffer)."""
    global _ZEROS
    if len(_ZEROS) < nbytes:
        _ZEROS = bytearray(nbytes)
    return memoryview(_ZEROS)[:nbytes]


#: bytes per row of one column block of an IKNP matrix (8 times as many OTs): a block of
#: the 128 rows (1 MiB) stays in cache from its expansion through its transpose, where the
#: whole (128, m / 8) matrix, 128 streams MBs apart, came from memory (measured, receiver +
#: sender per OT: 45 -> 35 ns at m = 2^19, equal at 2^16; smaller blocks pay more cipher
#: calls, 3 x 128 per block); a multiple of 8 keeps the blocks word-aligned
_EXT_BLOCK = 1 << 13


def _iknp_receiver(R: _Receiver, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IKNP receiver [IKNP03, sec. 4] of len(r) OTs (a multiple of 8) with choice bits r:
    t = G(k0), u = G(k1) ^ t ^ r (rows, sent) and t's transpose (m, 16) (one row per OT),
    block by block (`_EXT_BLOCK`): the keystream of G(k1) is XORed onto t inside the cipher
    (CTR encrypts t), so u costs no extra pass. The same bytes as expanding each seed's
    whole stream at once (`_iknp_receiver_np`, which the tests compare with)."""
    m = r.size
    nbytes = m // 8
    rp = np.packbits(r)
    u = np.empty((KAPPA, nbytes), dtype=np.uint8)
    t = np.empty((m, KAPPA // 8), dtype=np.uint8)
    buf = np.empty((KAPPA, min(nbytes, _EXT_BLOCK)), dtype=np.uint8)
    for c0 in range(0, nbytes, _EXT_BLOCK):
        c1 = min(nbytes, c0 + _EXT_BLOCK)
        tb = buf[:, : c1 - c0] if c1 - c0 < buf.shape[1] else buf
        z = _zeros(c1 - c0)
        for g0, g1, trow, urow in zip(R.prg0, R.prg1, tb, u[:, c0:c1], strict=True):
            g0._enc.update_into(z, trow.data)  # t = G(k0)
            g1._enc.update_into(trow.data, urow.data)  # u = G(k1) ^ t
        u[:, c0:c1] ^= rp[None, c0:c1]
        _transpose_into(tb, t[8 * c0 : 8 * c1])
    R.ctr += m
    return u, t


def _iknp_sender(S: _Sender, u: np.ndarray, m: int) -> np.ndarray:
    """IKNP sender of m OTs from the receiver's u (KAPPA, m / 8): q_l = G(k_{s_l}) ^ s_l u_l,
    transposed to (m, 16), block by block; the rows with s_l = 1 get u_l XORed on inside the
    cipher (CTR encrypts u_l instead of zeros). `_iknp_sender_np` is the reference."""
    nbytes = m // 8
    q = np.empty((m, KAPPA // 8), dtype=np.uint8)
    buf = np.empty((KAPPA, min(nbytes, _EXT_BLOCK)), dtype=np.uint8)
    for c0 in range(0, nbytes, _EXT_BLOCK):
        c1 = min(nbytes, c0 + _EXT_BLOCK)
        qb = buf[:, : c1 - c0] if c1 - c0 < buf.shape[1] else buf
        z = _zeros(c1 - c0)
        for g, s_l, qrow, urow in zip(S.prg, S.s_bits, qb, u[:, c0:c1], strict=True):
            g._enc.update_into(urow.data if s_l else z, qrow.data)
        _transpose_into(qb, q[8 * c0 : 8 * c1])
    S.ctr += m
    return q


def _iknp_receiver_np(R: _Receiver, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference of `_iknp_receiver`: whole streams, then XORs and one transpose."""
    m = r.size
    t_rows = _expand(R.prg0, m // 8)
    u_rows = _expand(R.prg1, m // 8)
    u_rows ^= t_rows
    u_rows ^= np.packbits(r)[None, :]
    R.ctr += m
    return u_rows, _transpose_np(t_rows)


def _iknp_sender_np(S: _Sender, u: np.ndarray, m: int) -> np.ndarray:
    """Reference of `_iknp_sender`."""
    q_rows = _expand(S.prg, m // 8)
    q_rows[S.s_rows] ^= u[S.s_rows]
    S.ctr += m
    return _transpose_np(q_rows)


class _Sender:
    """IKNP sender side of one ordered pair (holds s and one seed per base OT)."""

    def __init__(self, s_bits: np.ndarray, seeds: list[bytes]):
        self.s_bits = s_bits
        self.s_packed = np.packbits(s_bits)
        self.s_rows = np.flatnonzero(s_bits == 1)  # rows of u that enter q (q_l = t_l ^ s_l u_l)
        self.prg = [_SeedPRG(k) for k in seeds]
        self.ctr = 0


class _Receiver:
    def __init__(self, pairs: list[tuple[bytes, bytes]]):
        self.prg0 = [_SeedPRG(k0) for k0, _ in pairs]
        self.prg1 = [_SeedPRG(k1) for _, k1 in pairs]
        self.ctr = 0


@dataclass
class _Ext:
    """One IKNP extension round's state, per peer (see OTExtension._extend)."""

    t: dict[int, np.ndarray] = field(default_factory=dict)
    r: dict[int, np.ndarray] = field(default_factory=dict)
    rbase: dict[int, int] = field(default_factory=dict)
    q: dict[int, np.ndarray] = field(default_factory=dict)
    sbase: dict[int, int] = field(default_factory=dict)


def _bitwords(h: np.ndarray, L: int, k: int) -> np.ndarray:
    """(64 L, M) hash words -> (k, L) words: bit i of word (t, e) is bit t of h[64 e + i]
    (one compiled pass, _ot_jit.bitwords; `_bitwords_np` is the numpy reference)."""
    out = np.empty((k, L), dtype=_U64)
    _jit.bitwords(np.ascontiguousarray(h), out)
    return out


def _bitwords_np(h: np.ndarray, L: int, k: int) -> np.ndarray:
    """numpy reference of `_bitwords` (the tests compare the two)."""
    out = np.empty((k, L), dtype=_U64)
    for t in range(k):
        bit = ((h[:, t // 64] >> np.uint64(t % 64)) & np.uint64(1)).astype(np.uint8).reshape(L, 64)
        out[t] = np.packbits(bit, axis=1, bitorder="little").view(_U64)[:, 0]
    return out


class OTExtension:
    """Pairwise OT extension of one party with every peer over an (offline) session `s`:
    its channel, tag prefix, rng and Stats are used as they are (give it a session of its
    own, e.g. dn07.offline_session). Base OTs run once per pair on first use; the AES key is
    derived from the session id, so all parties of a session agree on it.
    Raises: FrameError for a peer's malformed base-OT points or messages (the session is
    aborted first)."""

    def __init__(self, s: Session):
        self.s = s
        self.aes = _AES(hashlib.blake2b(s.sid, digest_size=16, person=b"smpc-ot-aes").digest())
        self._send: dict[int, _Sender] = {}
        self._recv: dict[int, _Receiver] = {}

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
        self, op: str, out: dict[int, np.ndarray], shapes: dict[int, tuple[int, ...]], dtype: np.dtype
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
        correlations go out with `_finish_add` / in `gen_bool_triples`.
        Bytes sent per party: 16 per OT as receiver (the u matrix)."""
        await self._setup()
        ext = _Ext()
        U = {}
        for j, r in choices.items():
            R = self._recv[j]
            ext.r[j], ext.rbase[j] = r, R.ctr
            U[j], ext.t[j] = _iknp_receiver(R, r)
        got = await self._array_round("ot-u", U, {j: (KAPPA, m // 8) for j, m in send.items()}, np.dtype(np.uint8))
        for j, m in send.items():
            S = self._send[j]
            ext.sbase[j] = S.ctr
            ext.q[j] = _iknp_sender(S, got[j], m)
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
            xc = np.ascontiguousarray(x)
            tau[j], kept[j] = np.empty((q.shape[0], M), _U64), np.empty((q.shape[0], M), _U64)
            for lo, e0, p0, e1, p1 in _hash2_blocks(self.aes, q, S.s_packed, ext.sbase[j], M):
                _jit.cot_send_h(e0, p0, e1, p1, lo, xc, tau[j], kept[j])
        got = await self._array_round(
            "ot-tau", tau, {j: (ext.t[j].shape[0], M) for j, M in recv_words.items()}, _U64
        )
        out = {}
        for j, M in recv_words.items():
            h = np.empty((ext.t[j].shape[0], M), _U64)
            for lo, e, p in _hash_blocks(self.aes, ext.t[j], ext.rbase[j], M):
                _jit.cot_recv_h(e, p, lo, got[j], ext.r[j], h)
            out[j] = h
        return out, kept

    async def gen_bool_triples(self, L: int, k: int) -> list[np.ndarray]:
        """AND triples on 64-bit words [Beaver91]: a (L,), b (k, L) uniform XOR-shared (each
        party's shares drawn locally) and c = a & b from `and_words`.
        Rounds: 2.  Bytes sent per party and a-word: (n - 1) * 64 * 16 (u) + (n - 1) * 8 k."""
        rng = self.s.rng
        a, b = rng.uint64(L), rng.uint64((k, L))
        return [a, b, await self.and_words(a, b)]

    async def and_words(self, a: np.ndarray, b: np.ndarray, ext: _Ext | None = None) -> np.ndarray:
        """XOR shares of a & b_t (t = 1..k) for XOR-shared words a (L,) and b (k, L): the
        local term a_p & b_{t,p} plus every cross term a_q & b_{t,p} (q != p), one OT per
        bit position: receiver q chooses with its bit of a_q, sender p's correlation is the
        k bits (b_{1,p}, ..., b_{k,p}) at that position: tau = H(q) ^ H(q ^ s) ^ delta (k
        bits, packed 64 OTs to a word), receiver output H(t) ^ r & tau, sender output H(q)
        [IKNP03; ALSZ13 for bit messages]. `ext`: OTs extended ahead with the bits of a as
        choices (`extend_words`), to save the extension round; else one is run here.
        Rounds: 2 (1 with `ext`).  Bytes sent per party and a-word: (n - 1) * 64 * 16 (u,
        in the extension) + (n - 1) * 8 k."""
        L, k = a.shape[0], b.shape[0]
        peers = self.s.peers
        if ext is None:
            one = await self.extend_words(a)
            assert isinstance(one, _Ext)  # one word array: one _Ext
            ext = one
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
        return c

    async def extend_words(self, *words: np.ndarray) -> list[_Ext] | _Ext:
        """One IKNP extension round for `and_words` calls to come: OTs with every peer in
        both directions, with the bits of each given XOR-share word array as my choices
        (OT 64 e + i: bit i of word e). Returns one _Ext per array (a single one for one
        array). Rounds: 1.  Bytes sent per party: (n - 1) * 16 per OT."""
        peers = self.s.peers
        r = np.concatenate([np.unpackbits(np.ascontiguousarray(w).view(np.uint8), bitorder="little") for w in words])
        m = r.size
        ext = await self._extend({j: r for j in peers}, {j: m for j in peers})
        if len(words) == 1:
            return ext
        out, at = [], 0
        for w in words:
            mw = 64 * w.shape[0]
            e = _Ext()
            for j in peers:
                e.t[j], e.r[j], e.rbase[j] = ext.t[j][at : at + mw], ext.r[j][at : at + mw], ext.rbase[j] + at
                e.q[j], e.sbase[j] = ext.q[j][at : at + mw], ext.sbase[j] + at
            out.append(e)
            at += mw
        return out
