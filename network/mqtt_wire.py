"""The MQTT transport's wire format, per-peer link state, handshake steps and reliability rules
(network.mqtt holds the channel).

MQTT payloads (first byte = type)::

    HS1  0x01 | Noise KK message 1      (lower index -> higher index; repeated until answered)
    HS2  0x02 | Noise KK message 2      (cached; re-sent when a duplicate HS1 arrives)
    DATA 0x03 | u64 seq | AEAD(key, nonce=seq, ad=first 9 bytes, record)
    ACK  0x04 | u64 next expected seq | u8 flags (1 = please resend from there) | mac16
    BYE  0x05 | u64 records sent in total | mac16   (graceful close)

A channel message is a run of records with consecutive sequence numbers: the framing header,
then the payload cut into chunks so that every MQTT message stays below `max_message_size`.

Reliability, since QoS 1 gives at-least-once delivery per connection only:
- the receiver keeps a replay window: a seq below the next expected one, or already buffered,
  is dropped before decryption (QoS 1 duplicates are never delivered twice); records are
  consumed strictly in sequence order;
- the sender keeps every record until the receiver acknowledges it (ACK, end to end; a PUBACK
  is never taken as proof of delivery), resends unacknowledged records after each reconnect,
  on a resend request (a receiver that sees a gap or reconnected asks for one), and when no
  acknowledgement arrived for `resend_after` seconds;
- a gap that is not filled within the receive deadline is reported as MessageLossError;
- after a broker restart the client reconnects with backoff; if the broker stays unreachable
  for longer than the deadline, every receive fails with BrokerUnavailableError.

Handshake: Noise KK through the broker; the lower index sends HS1 (repeated until answered),
the higher one answers HS2 (cached, re-sent when a duplicate HS1 arrives). A forged answer
that fails is undone (`finish_handshake` rebuilds the initiator's state from its ephemeral
key), so it cannot spoil the genuine one.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import struct
import time

import aiomqtt

from network.errors import ChannelAuthError
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
#: records that fail authentication accepted per claimed sender before the link fails
DEFAULT_MAX_REJECTED = 64


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

    def mac(self, body: bytes, src: int, dst: int) -> bytes:
        """The MAC of a control message (ACK, BYE) from src to dst (zeros when insecure)."""
        if not self.ack_key:
            return bytes(16)
        return hashlib.blake2b(struct.pack("<II", src, dst) + body, key=self.ack_key, digest_size=16).digest()

    def keep_early(self, raw: bytes) -> None:
        """Keep a DATA record that arrived before our handshake finished (bounded)."""
        if len(self.early) < MAX_EARLY and self.early_bytes + len(raw) <= MAX_EARLY_BYTES:
            self.early.append(raw)
            self.early_bytes += len(raw)

    def acknowledged(self, value: int) -> None:
        """The peer received every record below `value`: free them from the outbox."""
        done = [s for s in self.outbox if s < value]
        if done:
            self.last_ack_progress = time.monotonic()
            for s in done:
                self.outbox_bytes -= len(self.outbox.pop(s))
            self.acked.set()


def start_handshake(prologue: bytes, static_key: bytes, peer_key: bytes,
                    e: bytes | None = None) -> tuple[HandshakeState, bytes]:
    """The initiator's state after writing HS1, and HS1. With `e` (the ephemeral key of an
    earlier call) the same state again: how a failed answer is undone."""
    hs = HandshakeState("KK", True, prologue, s=static_key, rs=peer_key, e=e)
    return hs, hs.write_message()


def answer_handshake(prologue: bytes, static_key: bytes, peer_key: bytes,
                     msg: bytes) -> tuple[bytes, SecureSession]:
    """The responder's HS2 and session for HS1 `msg` (ChannelAuthError if it fails)."""
    hs = HandshakeState("KK", False, prologue, s=static_key, rs=peer_key)
    hs.read_message(msg)
    hs2 = hs.write_message()
    send, recv = hs.split()
    return hs2, SecureSession(send, recv, hs.handshake_hash, hs.aux_secret())


def finish_handshake(peer: PeerLink, prologue: bytes, static_key: bytes, peer_key: bytes,
                     msg: bytes) -> SecureSession:
    """The initiator's session from HS2 `msg`. If it fails (ChannelAuthError), `peer.hs` is
    restored to the state after our HS1, since reading mixes the message into the state."""
    hs = peer.hs
    assert hs is not None
    try:
        hs.read_message(msg)
    except ChannelAuthError:
        peer.hs = start_handshake(prologue, static_key, peer_key, hs.e)[0]
        raise
    send, recv = hs.split()
    peer.hs = None
    return SecureSession(send, recv, hs.handshake_hash, hs.aux_secret())


def not_authorised(e: aiomqtt.MqttError) -> bool:
    """The broker refused our credentials (CONNACK 4/5 in MQTT 3.1.1, 134/135 in MQTT 5)."""
    rc = getattr(e, "rc", None)
    return isinstance(e, aiomqtt.MqttCodeError) and getattr(rc, "value", rc) in (4, 5, 134, 135)
