"""Long-term X25519 identity keys of the parties.

Each party has one static key pair. The private key lives in a file of mode 0600 (32 raw key
bytes encoded as one line of hex); the public key is pinned in the consortium config as a short
text form: ``x25519:`` followed by 64 hex digits.

    sk, pk = generate_keypair()
    save_private_key("bank0.key", sk)         # mode 0600; refuses to overwrite
    sk = load_private_key("bank0.key")        # KeyFileError if group/world readable
    text = public_key_text(pk)                # "x25519:8f40..."
    pk = parse_public_key(text)               # KeyFormatError if malformed or low-order

Keys are plain `bytes` of length 32 (private keys are X25519 scalars, public keys are
Montgomery u-coordinates), the form `network.secure` takes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from nacl import bindings

from network.errors import KeyFileError, KeyFormatError

KEY_BYTES = 32
PUBLIC_PREFIX = "x25519:"


def generate_keypair() -> tuple[bytes, bytes]:
    """A fresh (private, public) X25519 key pair from the OS CSPRNG."""
    sk = os.urandom(KEY_BYTES)
    return sk, public_key(sk)


def public_key(private_key: bytes) -> bytes:
    """The public key of an X25519 private key."""
    _check_len(private_key, "private key")
    try:
        return bindings.crypto_scalarmult_base(private_key)
    except Exception as e:  # PyNaCl raises bare RuntimeError/TypeError
        raise KeyFormatError(f"cannot derive public key: {e}") from None


def save_private_key(path: str | os.PathLike[str], private_key: bytes, *, overwrite: bool = False) -> None:
    """Write a private key file with mode 0600 (created atomically with that mode).

    Raises KeyFileError if the file exists (unless overwrite=True) or cannot be written.
    """
    _check_len(private_key, "private key")
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path}: key file exists; refusing to overwrite") from None
    except OSError as e:
        raise KeyFileError(f"{path}: cannot create key file: {e.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # also when overwriting a file that had wider permissions
        os.write(fd, (private_key.hex() + "\n").encode("ascii"))
    finally:
        os.close(fd)


def load_private_key(path: str | os.PathLike[str]) -> bytes:
    """Read a private key file; refuse it if group- or world-accessible.

    Raises KeyFileError (missing, unreadable, permissions wider than 0600) or KeyFormatError.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise KeyFileError(f"{path}: cannot open key file: {e.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"{path}: private key file is accessible by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); run chmod 600 {path}"
            )
        data = os.read(fd, 1024)
    finally:
        os.close(fd)
    try:
        key = bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise KeyFormatError(f"{path}: not a hex-encoded private key") from None
    _check_len(key, f"{path}: private key")
    return key


def public_key_text(public_key: bytes) -> str:
    """The config-file form of a public key: 'x25519:' + 64 lowercase hex digits."""
    _check_len(public_key, "public key")
    return PUBLIC_PREFIX + public_key.hex()


def parse_public_key(text: str) -> bytes:
    """Parse the form produced by `public_key_text` (the prefix is optional).

    Raises KeyFormatError if malformed, or if the key is a low-order point (such a key gives
    an all-zero shared secret and authenticates nobody).
    """
    if not isinstance(text, str):
        raise KeyFormatError(f"public key must be text, got {type(text).__name__}")
    t = text.strip()
    if t.startswith(PUBLIC_PREFIX):
        t = t[len(PUBLIC_PREFIX) :]
    try:
        key = bytes.fromhex(t)
    except ValueError:
        raise KeyFormatError("public key is not 64 hex digits") from None
    _check_len(key, "public key")
    if is_low_order(key):
        raise KeyFormatError("public key is a low-order point")
    return key


def is_low_order(public_key: bytes) -> bool:
    """True if DH with this point gives the all-zero output (a low-order point)."""
    try:
        bindings.crypto_scalarmult(os.urandom(KEY_BYTES), public_key)
    except RuntimeError:
        return True
    return False


def _check_len(key: bytes, what: str) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise KeyFormatError(f"{what} must be {KEY_BYTES} bytes")


def mesh_keys(
    n: int, static_keys: Sequence[bytes] | None, public_keys: Sequence[bytes] | None
) -> tuple[list[bytes], list[bytes]]:
    """Key pairs for n parties of a local mesh (tests, notebooks, benchmarks): fresh ones
    unless given; public keys derived from the private ones when only those are given."""
    if static_keys is None:
        pairs = [generate_keypair() for _ in range(n)]
        return [sk for sk, _ in pairs], [pk for _, pk in pairs]
    if public_keys is None:
        public_keys = [public_key(sk) for sk in static_keys]
    return list(static_keys), list(public_keys)
