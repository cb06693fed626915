"""The MQTT transport's wire format and per-peer link state (network.mqtt holds the channel).

MQTT payloads (first byte = type)::

    HS1  0x01 | Noise KK message 1      (lower index -> higher index; repeated until answered)
    HS2  0x02 | Noise KK message 2      (cached; re-sent when a duplicate HS1 arrives)
    DATA 0x03 | u64 seq | AEAD(key, nonce=seq, ad=first 9 bytes, record)
    ACK  0x04 | u64 next expected seq | u8 flags (1 = please resend from there) | mac16
    BYE  0x05 | u64 records sent in total | mac16   (graceful close)
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import aiomqtt

from network.framing import FrameHeader
from network.secure import HandshakeState, SecureSession

HS1, HS2, DATA, ACK, BYE = 1, 2, 3, 4, 5
SEQ_HEADER = struct.Struct("<BQ")
ACK_HEADER = struct.Struct("<BQB")
DEFAULT_MAX_MESSAGE = 1 << 20
WINDOW = 1 << 16  # records buffered ahead of the next expected one
MAX_EARLY = 256  # unauthenticated records kept while our handshake with that peer completes
MAX_EARLY_BYTES = 8 << 20  # ... and at most this many bytes of them (they are unauthenticated)
#: a sender stops (backpressure) while this many bytes to one peer are unacknowledged
DEFAULT_MAX_UNACKED = 64 << 20
DEFAULT_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 30.0


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def quickack(client: aiomqtt.Client) -> None:
    """Send the pending TCP ACK to the broker now (TCP_QUICKACK), after each packet we handle.

    Mosquitto's default (set_tcp_nodelay false) runs Nagle on its side: a PUBLISH to us waits
    while its previous small packet to us (a PUBACK) is unacknowledged, and our kernel delays
    that ACK by up to 40 ms. Acknowledging at once removes that stall (round trips drop from
    ~45 ms to ~1 ms). Brokers configured with set_tcp_nodelay true do not need this.
    """
    if _QUICKACK is None:
        return
    try:
        sock = client._client.socket()  # aiomqtt wraps a paho client; no public accessor
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
    except Exception:  # an optimisation only: never let it break the transport
        return


class PeerLink:
    """The state of one party's link to one peer: handshake, send window, receive window."""

    def __init__(self) -> None:
        self.session: SecureSession | None = None
        self.hs: HandshakeState | None = None
        self.hs1: bytes | None = None  # our HS1 (initiator) or the HS1 we answered (responder)
        self.hs2: bytes | None = None
        self.ready = asyncio.Event()
        self.ack_key = b""
        # sending
        self.send_seq = 0
        self.outbox: dict[int, bytes] = {}
        self.outbox_bytes = 0
        self.acked = asyncio.Event()  # set whenever an acknowledgement frees outbox space
        self.last_ack_progress = time.monotonic()
        # receiving
        self.recv_next = 0
        self.pending: dict[int, bytes] = {}
        self.early: list[bytes] = []  # DATA that arrived before our handshake finished
        self.early_bytes = 0
        self.gap_since: float | None = None
        self.last_nack = 0.0
        self.acked_sent = 0
        self.asm: tuple[FrameHeader, bytearray, int] | None = None  # (header, buffer, offset) of a message being assembled
        self.bye_at: int | None = None
