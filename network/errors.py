"""Typed errors of the network layer.

`SmpcError` is the root of every error smpc raises on purpose; protocols/ and mpc/ derive
their own errors from it, so a caller can catch everything smpc reports with one clause.
"""

from __future__ import annotations


class SmpcError(Exception):
    """Root of all smpc errors."""


class NetworkError(SmpcError):
    """Something went wrong moving bytes between parties."""


class ChannelClosedError(NetworkError):
    """The local channel was closed; no further send or receive is possible."""


class PeerUnavailableError(NetworkError):
    """A peer did not answer before the deadline, closed its channel, or crashed."""

    def __init__(self, message: str, *, peer: int | None = None, tag: str | None = None):
        super().__init__(message)
        self.peer = peer
        self.tag = tag


class PeerIndexError(NetworkError):
    """A party index is out of range, equal to our own where a peer is required, or unknown."""


class FrameError(NetworkError):
    """A frame or message is malformed: bad header, wrong length, dtype or shape."""


class DuplicateTagError(FrameError):
    """A second message arrived under a (sender, tag) that was already used in this session."""


class ChannelAuthError(NetworkError):
    """Authentication or decryption failed: unknown key, bad handshake, tampered frame."""


class CipherMismatchError(ChannelAuthError):
    """The two ends of a channel are configured for different ciphers (or an unknown one):
    the handshake is refused before any key is derived."""


class AuthFailureLimitError(ChannelAuthError):
    """Too many records claiming one peer failed authentication (a flood of forged or
    garbage records on a shared medium such as the MQTT broker): the link gives up."""


class ReplayError(ChannelAuthError):
    """A frame was replayed, reordered or transplanted from another session or sender."""


class MessageLossError(NetworkError):
    """A message was lost in transit (a sequence gap that did not fill before the deadline)."""


class BrokerUnavailableError(NetworkError):
    """The message broker could not be reached for longer than the deadline."""


class BrokerRefusedError(BrokerUnavailableError):
    """The message broker refused this client's credentials (not authorised)."""


class KeyFileError(NetworkError):
    """A key file is missing, unreadable, exists where it must not, or has unsafe permissions."""


class KeyFormatError(NetworkError):
    """A key is malformed (wrong length or encoding) or a low-order point."""


class NonceExhaustedError(ChannelAuthError):
    """A channel's nonce counter reached its limit; the session must end (never wraps)."""
