"""The Channel interface: how protocols talk to peers.

A channel belongs to one party in one session. It moves numpy arrays (and small byte strings
for control messages) to and from the other parties, each message under a *tag*: a short
string that the protocol derives deterministically from its step. A (sender, tag) pair carries
exactly one message per session; a second message under the same pair is an error.

Transports implement this interface: `network.memory` (in-process), `network.tcp`,
`network.mqtt`; `network.secure` adds authentication and encryption underneath.

Ownership: `send` takes ownership of the array; the caller must not modify it afterwards
(transports may deliver it without copying). Arrays returned by `recv` may be read-only;
protocols must not modify them in place.

Raises (every method):
    ChannelClosedError: the local channel was closed.
    PeerIndexError: `peer` is not another party's index.
    PeerUnavailableError: the peer did not deliver before the deadline, or is gone.
    DuplicateTagError: a second message under the same (sender, tag).
    FrameError: a received message is malformed or does not match the expected dtype/shape.
    ChannelAuthError: (secure transports) authentication or decryption failed.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np

from network.errors import FrameError, PeerIndexError

Payload = np.ndarray | bytes

MAX_TAG_BYTES = 255


def check_tag(tag: str) -> bytes:
    """Encode and validate a tag; return its UTF-8 bytes."""
    if not isinstance(tag, str):
        raise FrameError(f"tag must be str, got {type(tag).__name__}")
    raw = tag.encode("utf-8")
    if not raw or len(raw) > MAX_TAG_BYTES:
        raise FrameError(f"tag must be 1..{MAX_TAG_BYTES} bytes, got {len(raw)}")
    return raw


class Channel(abc.ABC):
    """One party's endpoint in one session. See the module docstring for the contract."""

    pid: int
    n: int
    #: seconds to wait for a message before raising PeerUnavailableError
    timeout: float

    @abc.abstractmethod
    async def send(self, peer: int, tag: str, payload: Payload) -> None:
        """Send `payload` (a numpy array or bytes) to `peer` under `tag`."""

    @abc.abstractmethod
    async def recv(self, peer: int, tag: str) -> Payload:
        """Receive the message `peer` sent under `tag` (waits up to `self.timeout`)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close this endpoint; pending and later receives by peers from us fail fast."""

    # -- helpers built on the abstract methods -------------------------------------------

    def check_peer(self, peer: int) -> None:
        if not isinstance(peer, int | np.integer) or not 0 <= peer < self.n or peer == self.pid:
            raise PeerIndexError(
                f"party {self.pid}: peer index must be another party in 0..{self.n - 1}, got {peer!r}"
            )

    async def recv_array(
        self, peer: int, tag: str, *, dtype: np.dtype | type, shape: Sequence[int]
    ) -> np.ndarray:
        """Receive an array and check that its dtype and shape are exactly the expected ones."""
        got = await self.recv(peer, tag)
        if not isinstance(got, np.ndarray):
            raise FrameError(f"from party {peer} under {tag!r}: expected an array, got bytes")
        if got.dtype != np.dtype(dtype) or got.shape != tuple(shape):
            raise FrameError(
                f"from party {peer} under {tag!r}: expected {np.dtype(dtype)}{tuple(shape)}, "
                f"got {got.dtype}{got.shape}"
            )
        return got

    async def recv_bytes(self, peer: int, tag: str, *, max_len: int) -> bytes:
        """Receive a control message of at most `max_len` bytes."""
        got = await self.recv(peer, tag)
        if not isinstance(got, bytes):
            raise FrameError(f"from party {peer} under {tag!r}: expected bytes, got an array")
        if len(got) > max_len:
            raise FrameError(f"from party {peer} under {tag!r}: {len(got)} bytes > {max_len}")
        return got

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
