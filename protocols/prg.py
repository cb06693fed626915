"""A cryptographic pseudo-random generator for shares, masks and preprocessing.

numpy's bit generators (PCG64, Philox, ...) are fast but not cryptographic: their output can
be predicted from a few observed words. Share randomness must be unpredictable, so `CryptoRNG`
expands a 256-bit key with AES-256 in counter mode (OpenSSL via the `cryptography` package,
about 8 GB/s with AES-NI on this machine). The key comes from `os.urandom` unless a seed is
given; a seed is for reproducible tests and is derived into a key with BLAKE2b, so two
different seeds never share a stream.

Every method returns fresh output; the stream position only moves forward.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_BYTES = 32


def derive_key(seed: int | bytes | str, *context: int | str | bytes) -> bytes:
    """A 32-byte key from a seed and a context (e.g. a party index): BLAKE2b-256."""
    h = hashlib.blake2b(digest_size=KEY_BYTES, person=b"smpc-prg-v1")
    for part in (seed, *context):
        if isinstance(part, int):
            raw = part.to_bytes(16, "little", signed=True)
        elif isinstance(part, str):
            raw = part.encode()
        else:
            raw = bytes(part)
        h.update(len(raw).to_bytes(4, "little") + raw)
    return h.digest()


class CryptoRNG:
    """AES-256-CTR keystream as a source of uniform bytes, integers and field elements."""

    def __init__(self, key: bytes | None = None):
        if key is None:
            key = os.urandom(KEY_BYTES)
        if len(key) != KEY_BYTES:
            raise ValueError(f"CryptoRNG key must be {KEY_BYTES} bytes")
        self._enc = Cipher(algorithms.AES(key), modes.CTR(b"\0" * 16)).encryptor()
        self._zeros = bytearray(0)

    @classmethod
    def from_seed(cls, seed: int | bytes | str | None, *context: int | str | bytes) -> CryptoRNG:
        """Seeded (reproducible, tests only) when seed is not None, else from os.urandom."""
        return cls(None if seed is None else derive_key(seed, *context))

    def spawn(self) -> CryptoRNG:
        """An independent generator keyed from this one's stream."""
        return CryptoRNG(self.bytes(KEY_BYTES))

    def fill(self, out: np.ndarray) -> np.ndarray:
        """Overwrite a C-contiguous array with uniform random bytes; return it."""
        if not out.flags.c_contiguous:
            raise ValueError("fill needs a C-contiguous array")
        if out.size == 0:
            return out
        # numpy declares ndarray.__buffer__ for Python >= 3.12 only; the mypy target is 3.11
        buf = memoryview(out.reshape(-1)).cast("B")  # type: ignore[arg-type]
        n = buf.nbytes
        if len(self._zeros) < n:
            self._zeros = bytearray(n)
        self._enc.update_into(memoryview(self._zeros)[:n], buf)
        return out

    def bytes(self, n: int) -> bytes:
        out = np.empty(n, dtype=np.uint8)
        return self.fill(out).tobytes()

    def uint64(self, shape: int | tuple[int, ...]) -> np.ndarray:
        """Uniform 64-bit words."""
        return self.fill(np.empty(shape, dtype=np.uint64))

    def below(self, bound: int, shape: int | tuple[int, ...]) -> np.ndarray:
        """Uniform integers in [0, bound) as uint64, for 2 <= bound <= 2^64, by rejection.

        Draws with a mask of the bound's bit length and redraws the rejected positions, so
        the output is exactly uniform (no modulo bias).
        """
        if not 2 <= bound <= 1 << 64:
            raise ValueError(f"bound must be in [2, 2^64], got {bound}")
        out = self.uint64(shape)
        if bound == 1 << 64:
            return out
        bits = (bound - 1).bit_length()
        mask = np.uint64((1 << bits) - 1)
        ub = np.uint64(bound)
        flat = out.reshape(-1)
        flat &= mask
        bad = np.flatnonzero(flat >= ub)
        while bad.size:
            fresh = self.uint64(bad.size) & mask
            flat[bad] = fresh
            bad = bad[fresh >= ub]
        return out

    def bits(self, shape: int | tuple[int, ...]) -> np.ndarray:
        """Uniform bits as uint64 zeros and ones."""
        return self.uint64(shape) & np.uint64(1)
