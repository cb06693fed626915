"""The secure channel: Noise handshakes and AEAD transport records.

We implement the Noise Protocol Framework (revision 34, https://noiseprotocol.org/noise.html)
for the DH function 25519, the ciphers ChaChaPoly and AESGCM and the hashes BLAKE2b and
SHA256, with the handshake patterns NN, KK, IK and XX (the last three only for the test
vectors; smpc itself uses **Noise_KK_25519_ChaChaPoly_BLAKE2b**, or
**Noise_KK_25519_AESGCM_BLAKE2b** where the channel is configured for it: both parties know
each other's pinned static key in advance, so KK mutually authenticates in one round trip, and
the ephemeral-ephemeral DH gives forward secrecy).

The cipher is part of the Noise protocol name, which the handshake hashes first, so two sides
configured with different ciphers never agree on a key: their handshake fails. The transports
carry the dialer's cipher in their hello so that the listener can refuse a cipher it does not
accept with `CipherMismatchError` (a clear error instead of a failed tag). AESGCM (AES-256-GCM,
Noise spec sec. 12.4: the nonce is 4 zero bytes and the 64-bit counter big-endian) runs about
3x faster than ChaCha20-Poly1305 where the CPU has AES and carry-less multiply instructions
(AES-NI + PCLMULQDQ, ARMv8 AES + PMULL; `aes_hardware()`); ChaChaPoly stays the default and
the choice where they are absent (a software AES is slower and, if table-based, leaks timing).

Primitives: X25519 from PyNaCl (`crypto_scalarmult`; a low-order peer point makes libsodium
refuse the all-zero result, which we report as `ChannelAuthError`); ChaCha20-Poly1305 (IETF,
RFC 8439) and AES-256-GCM from `cryptography` (OpenSSL), ChaCha byte-identical to libsodium's and about 3x faster on
large records, with `encrypt_into` / `decrypt_into` that write into preallocated buffers;
HASH / HMAC / HKDF from hashlib. Every crypto failure surfaces as `ChannelAuthError` (or its
subclass); nothing untyped escapes.

The prologue binds the consortium id, the protocol version, the session id and both party
indices (`make_prologue`), so a handshake or frame cannot be moved into another consortium,
session or sender slot: the keys would differ and decryption would fail.

Transport: each direction is a Noise CipherState with a counter nonce (4 zero bytes followed by
the 64-bit counter, little-endian for ChaChaPoly, big-endian for AESGCM). A record that fails to decrypt does not advance the counter.
At 2^64 - 1 the channel refuses to continue (`NonceExhaustedError`); it never wraps. Streams
(TCP) use the implicit counter, so a replayed, reordered or dropped record fails to decrypt.
Datagram-like transports (MQTT) send the counter with the record and use a replay window on top
(`CipherState.decrypt_at`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from nacl import bindings

from network.errors import ChannelAuthError, CipherMismatchError, NonceExhaustedError

#: what the AEAD accepts and writes into
BytesLike = bytes | bytearray | memoryview

PROTOCOL_NAME = b"Noise_KK_25519_ChaChaPoly_BLAKE2b"
#: the Noise cipher names we implement, and the byte that names each in a transport's hello
#: (0 is "no encryption"; 1 is ChaChaPoly, what every earlier hello sent)
CHACHAPOLY, AESGCM_NAME = "ChaChaPoly", "AESGCM"
CIPHER_IDS: dict[str, int] = {CHACHAPOLY: 1, AESGCM_NAME: 2}
CIPHERS: tuple[str, ...] = tuple(CIPHER_IDS)
DEFAULT_CIPHER = CHACHAPOLY
PROTOCOL_VERSION = 1
DHLEN = 32
TAGLEN = 16
#: Noise reserves 2^64 - 1; we stop there
MAX_NONCE = (1 << 64) - 1
_PAD4 = b"\0\0\0\0"

PATTERNS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, ...], ...]]] = {
    # name: (initiator pre-message, responder pre-message, message patterns)
    "NN": ((), (), (("e",), ("e", "ee"))),
    "KK": (("s",), ("s",), (("e", "es", "ss"), ("e", "ee", "se"))),
    "IK": ((), ("s",), (("e", "es", "s", "ss"), ("e", "ee", "se"))),
    "XX": ((), (), (("e",), ("e", "ee", "s", "es"), ("s", "se"))),
}


def make_prologue(
    consortium_id: bytes,
    session_id: bytes,
    initiator: int,
    responder: int,
    *,
    version: int = PROTOCOL_VERSION,
    transport: bytes = b"",
) -> bytes:
    """The handshake prologue: binds consortium, version, session, both party indices."""
    if len(consortium_id) > 255 or len(session_id) > 255 or len(transport) > 255:
        raise ValueError("consortium id, session id and transport name must be <= 255 bytes")
    return (
        b"smpc-channel\0"
        + struct.pack("<HII", version, initiator, responder)
        + bytes([len(consortium_id)]) + consortium_id
        + bytes([len(session_id)]) + session_id
        + bytes([len(transport)]) + transport
    )


# -- primitives ---------------------------------------------------------------------------


def dh(private_key: bytes, public_key: bytes) -> bytes:
    """X25519; a low-order / invalid public key raises ChannelAuthError (never RuntimeError)."""
    if len(public_key) != DHLEN:
        raise ChannelAuthError("peer public key has the wrong length")
    try:
        out = bindings.crypto_scalarmult(private_key, public_key)
    except Exception as e:  # libsodium refuses an all-zero result (low-order point)
        raise ChannelAuthError(f"X25519 failed (low-order or invalid point): {e}") from None
    if out == bytes(DHLEN):  # belt and braces
        raise ChannelAuthError("X25519 gave the all-zero result (low-order point)")
    return out


def _public(private_key: bytes) -> bytes:
    try:
        return bindings.crypto_scalarmult_base(private_key)
    except Exception as e:
        raise ChannelAuthError(f"bad private key: {e}") from None


class _Hash:
    def __init__(self, name: str):
        self.fn: Callable[[bytes], Any]
        if name == "BLAKE2b":
            self.fn, self.hashlen, self.hname = hashlib.blake2b, 64, "blake2b"
        elif name == "SHA256":
            self.fn, self.hashlen, self.hname = hashlib.sha256, 32, "sha256"
        else:
            raise ValueError(f"unsupported Noise hash {name!r}")

    def hash(self, data: bytes) -> bytes:
        return bytes(self.fn(data).digest())

    def hmac(self, key: bytes, data: bytes) -> bytes:
        return hmac.new(key, data, self.hname).digest()

    def hkdf(self, ck: bytes, ikm: bytes, n: int) -> list[bytes]:
        temp = self.hmac(ck, ikm)
        out, prev = [], b""
        for i in range(1, n + 1):
            prev = self.hmac(temp, prev + bytes([i]))
            out.append(prev)
        return out


def check_cipher(cipher: str) -> str:
    """`cipher` if it is a Noise cipher name we implement; else CipherMismatchError."""
    if cipher not in CIPHER_IDS:
        raise CipherMismatchError(f"unsupported Noise cipher {cipher!r} (supported: {', '.join(CIPHERS)})")
    return cipher


def cipher_name(cipher_id: int) -> str:
    """The cipher a hello's cipher byte names; CipherMismatchError for an unknown byte."""
    for name, i in CIPHER_IDS.items():
        if i == cipher_id:
            return name
    raise CipherMismatchError(f"unknown cipher id {cipher_id} in hello")


def aes_hardware(cpuinfo: str | None = None) -> bool:
    """True if the CPU has AES and carry-less multiplication instructions (x86: the `aes` and
    `pclmulqdq` flags; ARMv8: `aes` and `pmull`), from /proc/cpuinfo (or the given text);
    False where that cannot be read (then ChaChaPoly is the right choice)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
                cpuinfo = f.read(1 << 16)
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, val = line.partition(":")
        if key.strip() in ("flags", "Features"):
            words = set(val.split())
            return "aes" in words and ("pclmulqdq" in words or "pmull" in words)
    return False


def preferred_cipher() -> str:
    """AESGCM where the CPU has AES-NI / ARMv8 AES (about 3x ChaChaPoly's throughput there),
    else ChaChaPoly."""
    return AESGCM_NAME if aes_hardware() else CHACHAPOLY


def _nonce(n: int) -> bytes:
    return _PAD4 + n.to_bytes(8, "little")


def _nonce_be(n: int) -> bytes:
    return _PAD4 + n.to_bytes(8, "big")


class CipherState:
    """Noise CipherState: a ChaCha20-Poly1305 or AES-256-GCM key and a 64-bit counter nonce
    (Noise sec. 12.3 / 12.4: 4 zero bytes, then the counter little-endian for ChaChaPoly,
    big-endian for AESGCM)."""

    __slots__ = ("_aead", "n", "has_key", "_nonce", "cipher")

    def __init__(self, key: bytes | None = None, cipher: str = DEFAULT_CIPHER):
        self.n = 0
        self.has_key = key is not None
        self.cipher = check_cipher(cipher)
        aes = cipher == AESGCM_NAME
        self._nonce = _nonce_be if aes else _nonce
        self._aead: AESGCM | ChaCha20Poly1305 | None = None
        if key is not None:
            self._aead = AESGCM(key) if aes else ChaCha20Poly1305(key)

    def _key(self) -> AESGCM | ChaCha20Poly1305:
        if self._aead is None:
            raise ChannelAuthError("cipher state has no key yet")
        return self._aead

    def _next(self) -> int:
        n = self.n
        if n >= MAX_NONCE:
            raise NonceExhaustedError("channel nonce counter exhausted; start a new session")
        return n

    def encrypt(self, ad: bytes, plaintext: BytesLike) -> bytes:
        if self._aead is None:
            return bytes(plaintext)
        n = self._next()
        ct = self._aead.encrypt(self._nonce(n), plaintext, ad or None)
        self.n = n + 1
        return ct

    def encrypt_into(self, ad: bytes, plaintext: BytesLike, out: BytesLike) -> None:
        """Encrypt into `out` (len(plaintext) + 16 writable bytes)."""
        n = self._next()
        self._key().encrypt_into(self._nonce(n), plaintext, ad or None, out)
        self.n = n + 1

    def decrypt(self, ad: bytes, ciphertext: BytesLike) -> bytes:
        if self._aead is None:
            return bytes(ciphertext)
        n = self._next()
        try:
            pt = self._aead.decrypt(self._nonce(n), ciphertext, ad or None)
        except (InvalidTag, ValueError, OverflowError):
            raise ChannelAuthError(
                "record failed authentication (tampered, replayed, reordered or dropped)"
            ) from None
        self.n = n + 1  # only after success
        return pt

    def decrypt_into(self, ad: bytes, ciphertext: BytesLike, out: BytesLike) -> None:
        """Decrypt into `out` (len(ciphertext) - 16 writable bytes); state advances on success."""
        n = self._next()
        try:
            self._key().decrypt_into(self._nonce(n), ciphertext, ad or None, out)
        except (InvalidTag, ValueError, OverflowError):
            raise ChannelAuthError(
                "record failed authentication (tampered, replayed, reordered or dropped)"
            ) from None
        self.n = n + 1

    def encrypt_at(self, n: int, ad: bytes, plaintext: BytesLike) -> bytes:
        """Encrypt with an explicit nonce (for transports that carry the counter)."""
        if not 0 <= n < MAX_NONCE:
            raise NonceExhaustedError("nonce out of range")
        return self._key().encrypt(self._nonce(n), plaintext, ad or None)

    def decrypt_at(self, n: int, ad: bytes, ciphertext: BytesLike) -> bytes:
        """Decrypt with an explicit nonce; the caller keeps the replay window."""
        if not 0 <= n < MAX_NONCE:
            raise ChannelAuthError("nonce out of range")
        try:
            return self._key().decrypt(self._nonce(n), ciphertext, ad or None)
        except (InvalidTag, ValueError, OverflowError):
            raise ChannelAuthError("record failed authentication") from None


class SymmetricState:
    def __init__(self, protocol_name: bytes, hash_name: str, cipher: str = DEFAULT_CIPHER):
        self.H = _Hash(hash_name)
        self.cipher = check_cipher(cipher)
        hl = self.H.hashlen
        self.h = protocol_name.ljust(hl, b"\0") if len(protocol_name) <= hl else self.H.hash(protocol_name)
        self.ck = self.h
        self.cs = CipherState(cipher=cipher)

    def mix_key(self, ikm: bytes) -> None:
        self.ck, temp_k = self.H.hkdf(self.ck, ikm, 2)
        self.cs = CipherState(temp_k[:32], self.cipher)

    def mix_hash(self, data: bytes) -> None:
        self.h = self.H.hash(self.h + data)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ct = self.cs.encrypt(self.h, plaintext)
        self.mix_hash(ct)
        return ct

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        pt = self.cs.decrypt(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return pt

    def split(self) -> tuple[CipherState, CipherState]:
        k1, k2 = self.H.hkdf(self.ck, b"", 2)
        return CipherState(k1[:32], self.cipher), CipherState(k2[:32], self.cipher)


class HandshakeState:
    """One side of a Noise handshake (patterns NN, KK, IK, XX; DH 25519; cipher ChaChaPoly or
    AESGCM, named in the protocol name, so the two sides must use the same one).

    `s`, `e` are private keys (e is generated if not given; tests pass fixed ones), `rs`, `re`
    the peer's public keys where the pattern needs them in advance. Call `write_message` /
    `read_message` in turn; after the last message `complete` is True and `split()` gives
    (send, receive) cipher states for this side.
    """

    def __init__(
        self,
        pattern: str,
        initiator: bool,
        prologue: bytes,
        *,
        s: bytes | None = None,
        e: bytes | None = None,
        rs: bytes | None = None,
        re: bytes | None = None,
        hash_name: str = "BLAKE2b",
        cipher: str = DEFAULT_CIPHER,
    ):
        if pattern not in PATTERNS:
            raise ValueError(f"unsupported handshake pattern {pattern!r}")
        name = f"Noise_{pattern}_25519_{check_cipher(cipher)}_{hash_name}".encode()
        self.ss = SymmetricState(name, hash_name, cipher)
        self.initiator = initiator
        self.s, self.e, self.rs, self.re = s, e, rs, re
        self.s_pub = _public(s) if s is not None else None
        self.ss.mix_hash(prologue)
        pre_i, pre_r, self.messages = PATTERNS[pattern]
        for pre, mine in ((pre_i, initiator), (pre_r, not initiator)):
            for _tok in pre:  # only "s" occurs in our pre-messages
                key = self.s_pub if mine else self.rs
                if key is None:
                    raise ValueError(f"pattern {pattern} needs a static key {'of ours' if mine else 'of the peer'}")
                self.ss.mix_hash(key)
        self.index = 0

    @property
    def complete(self) -> bool:
        return self.index >= len(self.messages)

    @property
    def handshake_hash(self) -> bytes:
        return self.ss.h

    def _my_turn(self) -> bool:
        return (self.index % 2 == 0) == self.initiator

    def _dh_token(self, tok: str) -> None:
        a, b = tok[0], tok[1]  # initiator's key letter, responder's key letter
        mine, theirs = (a, b) if self.initiator else (b, a)
        priv = self.e if mine == "e" else self.s
        pub = self.re if theirs == "e" else self.rs
        if priv is None or pub is None:
            raise ChannelAuthError(f"handshake token {tok} without the needed keys")
        self.ss.mix_key(dh(priv, pub))

    def write_message(self, payload: bytes = b"") -> bytes:
        if self.complete or not self._my_turn():
            raise ChannelAuthError("handshake message written out of turn")
        out = bytearray()
        for tok in self.messages[self.index]:
            if tok == "e":
                if self.e is None:
                    self.e = os.urandom(DHLEN)
                epub = _public(self.e)
                out += epub
                self.ss.mix_hash(epub)
            elif tok == "s":
                if self.s_pub is None:
                    raise ChannelAuthError("handshake pattern sends a static key this party lacks")
                out += self.ss.encrypt_and_hash(self.s_pub)
            else:
                self._dh_token(tok)
        out += self.ss.encrypt_and_hash(payload)
        self.index += 1
        return bytes(out)

    def read_message(self, message: bytes) -> bytes:
        if self.complete or self._my_turn():
            raise ChannelAuthError("handshake message received out of turn")
        message = bytes(message)
        pos = 0
        for tok in self.messages[self.index]:
            if tok == "e":
                if len(message) - pos < DHLEN:
                    raise ChannelAuthError("handshake message truncated")
                self.re = message[pos : pos + DHLEN]
                pos += DHLEN
                self.ss.mix_hash(self.re)
            elif tok == "s":
                n = DHLEN + (TAGLEN if self.ss.cs.has_key else 0)
                if len(message) - pos < n:
                    raise ChannelAuthError("handshake message truncated")
                rs = self.ss.decrypt_and_hash(message[pos : pos + n])
                pos += n
                if self.rs is not None and not hmac.compare_digest(rs, self.rs):
                    raise ChannelAuthError("peer presented an unexpected static key")
                self.rs = rs
            else:
                self._dh_token(tok)
        if self.ss.cs.has_key and len(message) - pos < TAGLEN:
            raise ChannelAuthError("handshake message truncated")
        payload = self.ss.decrypt_and_hash(message[pos:])
        self.index += 1
        return payload

    def split(self) -> tuple[CipherState, CipherState]:
        """(send, receive) cipher states for this side."""
        if not self.complete:
            raise ChannelAuthError("handshake not complete")
        c1, c2 = self.ss.split()
        return (c1, c2) if self.initiator else (c2, c1)

    def aux_secret(self) -> bytes:
        """A 32-byte secret shared by both sides for auxiliary keys (e.g. MQTT control MACs).

        HKDF of the final chaining key with its own input ("smpc-aux-v1"), so it is secret
        (unlike the handshake hash, which mixes only public values) and independent of the
        transport keys `split` derives with an empty input."""
        if not self.complete:
            raise ChannelAuthError("handshake not complete")
        return self.ss.H.hkdf(self.ss.ck, b"smpc-aux-v1", 1)[0][:32]


class SecureSession:
    """The result of a handshake: one cipher state per direction, the (public) handshake
    hash, and a secret for auxiliary keys (`HandshakeState.aux_secret`)."""

    __slots__ = ("send", "recv", "handshake_hash", "_aux")

    def __init__(self, send: CipherState, recv: CipherState, handshake_hash: bytes, aux: bytes):
        if len(aux) != 32:
            raise ChannelAuthError("auxiliary secret must be 32 bytes")
        self.send, self.recv, self.handshake_hash, self._aux = send, recv, handshake_hash, aux

    def derive_key(self, label: bytes) -> bytes:
        """A 32-byte secret key bound to this session for an auxiliary purpose (MQTT acks).
        Keyed by the secret from the chaining key: an observer of the handshake cannot
        compute it."""
        return hashlib.blake2b(label, key=self._aux, digest_size=32).digest()


async def kk_handshake(
    *,
    initiator: bool,
    static_key: bytes,
    peer_public_key: bytes,
    prologue: bytes,
    send: Callable[[bytes], Awaitable[None]],
    recv: Callable[[], Awaitable[bytes]],
    cipher: str = DEFAULT_CIPHER,
) -> SecureSession:
    """Run Noise_KK_25519_<cipher>_BLAKE2b (ChaChaPoly by default, or AESGCM) over a message
    pipe (send/recv whole messages).

    The caller applies the deadline (e.g. asyncio.timeout). Raises ChannelAuthError if the peer
    does not hold the private key of `peer_public_key`, the prologue differs, the peer runs
    another cipher, or a point is bad.
    """
    hs = HandshakeState("KK", initiator, prologue, s=static_key, rs=peer_public_key, cipher=cipher)
    if initiator:
        await send(hs.write_message())
        hs.read_message(await recv())
    else:
        hs.read_message(await recv())
        await send(hs.write_message())
    send_cs, recv_cs = hs.split()
    return SecureSession(send_cs, recv_cs, hs.handshake_hash, hs.aux_secret())
