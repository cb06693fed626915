"""MQTT transport: parties talk through a broker (Mosquitto) they only dial out to.

The broker is untrusted: it sees topics, sizes and timing, never content. Every data record is
AEAD-encrypted end to end under a Noise_KK session per pair of parties, and the handshake goes
through the broker too.

Topics: ``{prefix}/{session hex}/{sender}/{receiver}``, one per direction; each party subscribes
to ``{prefix}/{session hex}/+/{own index}``. QoS 1 throughout.

The wire format, the per-peer link state, the handshake steps and the reliability rules
(acknowledgements, resends, replay window, loss and outage detection) are in network.mqtt_wire.

Anyone who may publish on the broker can put bytes on a session's topics: a record that fails
authentication (garbage; a spoofed, transplanted or forged record, ACK, BYE or handshake) is
dropped and counted (`link_stats()`), never terminal by itself: the link fails on the receive
deadline, or after `max_rejected` (default 64) of them claiming one sender (AuthFailureLimitError).
Replays of records already received are dropped before decryption (counted as duplicates). A
record that authenticates but breaks the protocol comes from the peer and stays terminal.
`username` / `password` log in to the broker (Mosquitto password_file; with per-node topic
ACLs, mpc.node.broker_auth, no other client can publish on a node's topics); refused
credentials raise BrokerRefusedError at once.

`insecure_plaintext=True` sends records in the clear (tests and benchmarks only).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import socket
import time
from collections.abc import Mapping, Sequence

import aiomqtt

from network.channel import Payload
from network.errors import (
    BrokerRefusedError,
    BrokerUnavailableError,
    ChannelAuthError,
    FrameError,
    MessageLossError,
    NetworkError,
    NonceExhaustedError,
    PeerUnavailableError,
)
from network.framing import DEFAULT_MAX_FRAME, build_payload, decode_header, encode_header
from network.mailbox import MailboxChannel
from network.mqtt_wire import (  # noqa: F401 (DATA and the defaults are part of this module's API)
    ACK,
    ACK_HEADER,
    BYE,
    DATA,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_MESSAGE,
    DEFAULT_MAX_REJECTED,
    DEFAULT_MAX_UNACKED,
    DEFAULT_TIMEOUT,
    HS1,
    HS2,
    MAX_EARLY,
    MAX_EARLY_BYTES,
    SEQ_HEADER,
    WINDOW,
    PeerLink,
    answer_handshake,
    finish_handshake,
    not_authorised,
    quickack,
    start_handshake,
)
from network.secure import MAX_NONCE, TAGLEN, SecureSession, make_prologue


class MqttChannel(MailboxChannel):
    """One party's endpoint through an MQTT broker. Create with `open_mqtt_channel` or
    `local_mqtt_mesh`."""

    def __init__(
        self,
        pid: int,
        n: int,
        *,
        session_id: bytes,
        host: str = "127.0.0.1",
        port: int = 1883,
        static_key: bytes | None = None,
        peer_keys: Sequence[bytes] | Mapping[int, bytes] | None = None,
        consortium_id: bytes = b"smpc",
        insecure_plaintext: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_message_size: int = DEFAULT_MAX_MESSAGE,
        max_frame: int = DEFAULT_MAX_FRAME,
        topic_prefix: str = "smpc",
        resend_after: float = 2.0,
        ack_interval: float = 0.05,
        max_unacked: int = DEFAULT_MAX_UNACKED,
        max_rejected: int | None = DEFAULT_MAX_REJECTED,
        username: str | None = None,
        password: str | None = None,
    ):
        super().__init__(pid, n, timeout)
        self.max_rejected = max_rejected
        self._auth = (username, password)
        if not isinstance(session_id, bytes) or not 1 <= len(session_id) <= 64:
            raise ValueError("session_id must be 1..64 bytes")
        if max_message_size < 1024:
            raise ValueError("max_message_size must be at least 1024 bytes")
        self.secure = not insecure_plaintext
        if self.secure and (static_key is None or peer_keys is None):
            raise ValueError("a secure channel needs static_key and peer_keys (or insecure_plaintext=True)")
        self._static_key = static_key
        self._peer_keys = {j: peer_keys[j] for j in range(n) if j != pid} if peer_keys is not None and self.secure else {}
        self.session_id = session_id
        self.consortium_id = consortium_id
        self.host, self.port = host, port
        self.connect_timeout = connect_timeout
        self.max_frame = max_frame
        self.max_message_size = max_message_size
        self.chunk = max_message_size - SEQ_HEADER.size - TAGLEN
        self.resend_after = resend_after
        self.max_unacked = max(max_unacked, max_message_size)
        self.ack_interval = ack_interval
        self._base = f"{topic_prefix}/{session_id.hex()}"
        self._peers = {j: PeerLink() for j in range(n) if j != pid}
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._down_since: float | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._fatal: NetworkError | None = None
        self._publishes: set[asyncio.Task[None]] = set()

    def topic(self, src: int, dst: int) -> str:
        return f"{self._base}/{src}/{dst}"

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to the broker and subscribe (BrokerUnavailableError after connect_timeout)."""
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._run()))
        try:
            await asyncio.wait_for(self._connected.wait(), self.connect_timeout)
        except TimeoutError:
            await self.close()
            raise BrokerUnavailableError(
                f"party {self.pid}: MQTT broker {self.host}:{self.port} unreachable for "
                f"{self.connect_timeout:g}s"
            ) from None
        if self._fatal is not None:
            err = self._fatal
            await self.close()
            raise err
        self._tasks.append(loop.create_task(self._maintain()))

    async def handshake(self) -> None:
        """Authenticate every link (after all parties `start`ed), within connect_timeout."""
        for j in self._peers:
            if j > self.pid:
                self._begin_initiator(j)
        try:
            async with asyncio.timeout(self.connect_timeout):
                for j, peer in self._peers.items():
                    await peer.ready.wait()
                    if j in self._peer_error and not peer.session and self.secure:
                        raise self._peer_error[j]
        except TimeoutError:
            missing = [j for j, p in self._peers.items() if not p.ready.is_set()]
            await self.close()
            raise self._setup_failure(
                missing, f"no handshake (through broker {self.host}:{self.port}) with"
            ) from None
        bad = [j for j in self._peers if j in self._setup_errors and j in self._peer_error]
        if bad:
            err = self._setup_errors[bad[0]]
            await self.close()
            raise err

    async def _run(self) -> None:
        delay = 0.05
        first = True
        while not self.closed:
            client = aiomqtt.Client(
                self.host,
                self.port,
                identifier=f"smpc-{self.session_id.hex()[:16]}-{self.pid}-{os.urandom(4).hex()}",
                clean_session=True,
                timeout=5,
                keepalive=10,
                max_inflight_messages=64,
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
                username=self._auth[0],
                password=self._auth[1],
            )
            client.pending_calls_threshold = 1 << 30  # chunked sends are many publishes by design
            try:
                async with client:
                    await client.subscribe(f"{self._base}/+/{self.pid}", qos=1)
                    self._client = client
                    self._down_since = None
                    delay = 0.05
                    self._connected.set()
                    if not first:
                        self._after_reconnect()
                    first = False
                    async for msg in client.messages:
                        self._on_message(str(msg.topic), msg.payload)
                        quickack(client)
            except aiomqtt.MqttError as e:
                if not_authorised(e):  # retrying cannot help
                    self._fail_all(BrokerRefusedError(f"party {self.pid}: MQTT broker "
                                                      f"{self.host}:{self.port} refused our credentials: {e}"))
                    self._connected.set()
                    return
            except asyncio.CancelledError:
                self._client = None
                raise
            self._client = None
            if self.closed:
                return
            now = time.monotonic()
            if self._down_since is None:
                self._down_since = now
            elif now - self._down_since > max(self.timeout, 0.1) and self._connected.is_set():
                self._fail_all(BrokerUnavailableError(
                    f"party {self.pid}: MQTT broker {self.host}:{self.port} unreachable for "
                    f"more than {self.timeout:g}s"))
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _fail_peer(self, src: int, error: NetworkError) -> None:
        super()._fail_peer(src, error)
        peer = self._peers.get(src)
        if peer is not None:
            peer.acked.set()  # wake a sender waiting for acknowledgements

    def _fail_all(self, err: NetworkError) -> None:
        self._fatal = err
        for j in self._peers:
            self._fail_peer(j, err)

    def _after_reconnect(self) -> None:
        for j, peer in self._peers.items():
            if not peer.ready.is_set():
                if j > self.pid and peer.hs1 is not None:
                    self._publish(j, bytes([HS1]) + peer.hs1)
                continue
            for seq in sorted(peer.outbox):
                self._publish(j, peer.outbox[seq])
            self._send_ack(j, resend=True)

    async def _maintain(self) -> None:
        """Periodic acks, resend requests for gaps, retransmission, loss detection."""
        tick = min(self.ack_interval, 0.05)
        hs_last = 0.0
        while not self.closed:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if self._client is None:
                continue
            for j, peer in self._peers.items():
                if j in self._peer_error:
                    continue
                if not peer.ready.is_set():
                    if j > self.pid and peer.hs1 is not None and now - hs_last > 0.5:
                        self._publish(j, bytes([HS1]) + peer.hs1)
                    continue
                if peer.recv_next != peer.acked_sent:
                    self._send_ack(j)
                if peer.gap_since is not None:
                    if now - peer.gap_since > self.timeout:
                        self._fail_peer(j, MessageLossError(
                            f"party {self.pid}: records from party {j} from seq {peer.recv_next} "
                            f"missing for more than {self.timeout:g}s"))
                        continue
                    if now - peer.gap_since > 0.2 and now - peer.last_nack > 1.0:
                        peer.last_nack = now
                        self._send_ack(j, resend=True)
                if peer.outbox and now - peer.last_ack_progress > self.resend_after:
                    peer.last_ack_progress = now
                    for seq in sorted(peer.outbox):
                        self._publish(j, peer.outbox[seq])
            if now - hs_last > 0.5:
                hs_last = now

    # -- publishing ----------------------------------------------------------------------

    def _publish(self, peer: int, payload: bytes) -> asyncio.Task[None] | None:
        client = self._client
        if client is None:
            return None
        task = asyncio.get_running_loop().create_task(self._publish_one(client, self.topic(self.pid, peer), payload))
        self._publishes.add(task)
        task.add_done_callback(self._publishes.discard)
        return task

    @staticmethod
    async def _publish_one(client: aiomqtt.Client, topic: str, payload: bytes) -> None:
        with contextlib.suppress(aiomqtt.MqttError, asyncio.CancelledError):
            await client.publish(topic, payload, qos=1)
            quickack(client)  # the PUBACK just arrived: acknowledge it at once

    def _send_ack(self, j: int, *, resend: bool = False) -> None:
        peer = self._peers[j]
        body = ACK_HEADER.pack(ACK, peer.recv_next, 1 if resend else 0)
        peer.acked_sent = peer.recv_next
        self._publish(j, body + peer.mac(body, self.pid, j))

    # -- handshake -----------------------------------------------------------------------

    def _prologue(self, initiator: int, responder: int) -> bytes:
        return make_prologue(self.consortium_id, self.session_id, initiator, responder, transport=b"mqtt")

    def _set_ready(self, j: int, session: SecureSession | None) -> None:
        peer = self._peers[j]
        peer.session = session
        peer.ack_key = session.derive_key(b"smpc-mqtt-control") if session else b""
        peer.ready.set()
        early, peer.early, peer.early_bytes = peer.early, [], 0
        for raw in early:
            self._on_data(j, raw)

    def _begin_initiator(self, j: int) -> None:
        peer = self._peers[j]
        if self.secure and self._static_key is not None:
            peer.hs, peer.hs1 = start_handshake(self._prologue(self.pid, j), self._static_key, self._peer_keys[j])
        else:
            peer.hs1 = b""
        self._publish(j, bytes([HS1]) + peer.hs1)

    def _on_hs1(self, j: int, msg: bytes) -> None:
        if j > self.pid:
            self._reject(j, "handshake from a higher index")  # only lower indices initiate
            return
        peer = self._peers[j]
        if peer.hs2 is not None:
            if hmac.compare_digest(msg, peer.hs1 or b""):
                self._publish(j, bytes([HS2]) + peer.hs2)  # our answer was lost: repeat it
            else:
                self._reject(j, "a second, different handshake")
            return
        session: SecureSession | None
        if self.secure and self._static_key is not None:
            try:
                hs2, session = answer_handshake(self._prologue(j, self.pid), self._static_key,
                                                self._peer_keys[j], msg)
            except ChannelAuthError as e:  # spoofed or wrong keys: refuse, keep listening
                self._setup_errors[j] = ChannelAuthError(
                    f"party {self.pid}: handshake from a publisher claiming party {j} failed: {e}")
                self._reject(j, "handshake failed")
                return
        else:
            hs2, session = b"", None
        peer.hs1, peer.hs2 = msg, hs2
        self._publish(j, bytes([HS2]) + hs2)
        self._set_ready(j, session)

    def _on_hs2(self, j: int, msg: bytes) -> None:
        peer = self._peers[j]
        if j < self.pid or peer.ready.is_set() or peer.hs1 is None:
            if not peer.ready.is_set():
                self._reject(j, "unexpected handshake answer")
            return
        if not self.secure:
            self._set_ready(j, None)
            return
        if self._static_key is None or peer.hs is None:  # never a plaintext link when secure
            return
        try:  # a forged answer is undone: the genuine one still completes the handshake
            session = finish_handshake(peer, self._prologue(self.pid, j), self._static_key,
                                       self._peer_keys[j], msg)
        except ChannelAuthError as e:  # spoofed, or the peer holds other keys: keep waiting
            self._setup_errors[j] = ChannelAuthError(
                f"party {self.pid}: handshake answer from party {j} failed: {e}")
            self._reject(j, "handshake answer failed")
            return
        self._set_ready(j, session)

    # -- receiving -----------------------------------------------------------------------

    def _on_message(self, topic: str, payload: object) -> None:
        parts = topic.rsplit("/", 2)
        if len(parts) != 3 or parts[0] != self._base or parts[2] != str(self.pid):
            return
        try:
            src = int(parts[1])
        except ValueError:
            src = -1
        if src not in self._peers:  # on our topics, but from no party: counted, unbounded
            self.rejected[-1] = self.rejected.get(-1, 0) + 1
            return
        if src in self._peer_error:
            return
        if not isinstance(payload, bytes | bytearray) or not payload or not HS1 <= payload[0] <= BYE:
            self._reject(src, "not a record")
            return
        kind = payload[0]
        try:
            if kind == HS1:
                self._on_hs1(src, bytes(payload[1:]))
            elif kind == HS2:
                self._on_hs2(src, bytes(payload[1:]))
            elif kind == DATA:
                if self._peers[src].ready.is_set():
                    self._on_data(src, bytes(payload))
                else:
                    self._peers[src].keep_early(bytes(payload))
            elif kind in (ACK, BYE):
                self._on_control(src, bytes(payload))
        except NetworkError as e:
            self._fail_peer(src, e)
        except Exception as e:  # anything a decoder missed: typed, terminal for this peer only
            self._fail_peer(src, FrameError(f"party {self.pid}: malformed message from party {src}: {e!r}"))

    def _on_control(self, j: int, raw: bytes) -> None:
        peer = self._peers[j]
        if not peer.ready.is_set():
            return
        body, mac = raw[:-16], raw[-16:]
        if len(raw) != ACK_HEADER.size + 16 or not hmac.compare_digest(mac, peer.mac(body, j, self.pid)):
            self._reject(j, "control message failed authentication")  # forged: dropped
            return
        kind, value, flags = ACK_HEADER.unpack(body)
        if kind == BYE:
            peer.bye_at = value
            self._check_bye(j)
            return
        if value > peer.send_seq:
            raise ChannelAuthError(f"party {self.pid}: party {j} acknowledged records never sent")
        peer.acknowledged(value)
        if flags & 1:
            for s in sorted(peer.outbox):
                self._publish(j, peer.outbox[s])

    def _check_bye(self, j: int) -> None:
        peer = self._peers[j]
        if peer.bye_at is not None and peer.recv_next >= peer.bye_at:
            self._fail_peer(j, PeerUnavailableError(f"party {self.pid}: party {j} closed its channel", peer=j))

    def _on_data(self, j: int, raw: bytes) -> None:
        peer = self._peers[j]
        if len(raw) < SEQ_HEADER.size + (TAGLEN if peer.session is not None else 0):
            self._reject(j, "short record")
            return
        _, seq = SEQ_HEADER.unpack_from(raw)
        if seq < peer.recv_next or seq in peer.pending:
            self._duplicate(j)  # QoS 1 duplicate, a replay, or a resend answered twice
            return
        if seq >= peer.recv_next + WINDOW:
            self._reject(j, "record too far ahead")  # a genuine one will be resent
            return
        if peer.session is not None:
            try:  # by explicit nonce: a failed decryption changes no state
                rec = peer.session.recv.decrypt_at(seq, raw[: SEQ_HEADER.size], memoryview(raw)[SEQ_HEADER.size :])
            except ChannelAuthError:
                self._reject(j, f"record seq {seq} failed authentication")
                return
        else:
            rec = raw[SEQ_HEADER.size :]
        peer.pending[seq] = rec
        while peer.recv_next in peer.pending:
            self._consume(j, peer, peer.pending.pop(peer.recv_next))
            peer.recv_next += 1
        peer.gap_since = (peer.gap_since or time.monotonic()) if peer.pending else None
        self._check_bye(j)

    def _consume(self, j: int, peer: PeerLink, rec: bytes) -> None:
        if peer.asm is None:
            hdr = decode_header(rec, max_frame=self.max_frame)
            if hdr.length == 0:
                self._deliver(j, hdr.tag, build_payload(hdr, b""))
            else:
                peer.asm = (hdr, bytearray(hdr.length), 0)
            return
        hdr, buf, off = peer.asm
        end = off + len(rec)
        if end > hdr.length or (end < hdr.length and len(rec) != self.chunk):
            raise FrameError(f"party {self.pid}: record of {len(rec)} bytes does not fit message {hdr.tag!r}")
        buf[off:end] = rec
        if end == hdr.length:
            peer.asm = None
            self._deliver(j, hdr.tag, build_payload(hdr, buf))
        else:
            peer.asm = (hdr, buf, end)

    def _timeout_error(self, peer: int, tag: str) -> NetworkError:
        if self._fatal is not None:
            return self._fatal
        p = self._peers[peer]
        if p.gap_since is not None:
            return MessageLossError(
                f"party {self.pid}: message {tag!r} from party {peer} incomplete: records from "
                f"seq {p.recv_next} missing after {self.timeout:g}s")
        if self._client is None:
            return BrokerUnavailableError(
                f"party {self.pid}: broker unreachable while waiting for {tag!r} from party {peer}")
        return super()._timeout_error(peer, tag)

    # -- sending -------------------------------------------------------------------------

    async def send(self, peer: int, tag: str, payload: Payload) -> None:
        self._check_send(peer, tag)
        p = self._peers[peer]
        if not p.ready.is_set():
            try:
                await asyncio.wait_for(p.ready.wait(), self.connect_timeout)
            except TimeoutError:
                raise PeerUnavailableError(f"party {self.pid}: no session with party {peer}", peer=peer, tag=tag) from None
        if self._fatal is not None:
            raise self._fatal
        head, body = encode_header(tag, payload)
        records = [head] + [body[o : o + self.chunk] for o in range(0, body.nbytes, self.chunk)]
        if p.send_seq + len(records) >= MAX_NONCE:
            raise NonceExhaustedError(f"party {self.pid}: sequence numbers to party {peer} exhausted")
        tasks = []
        for rec in records:
            if p.outbox_bytes > self.max_unacked:
                await self._wait_for_acks(peer, tag)
            seq = p.send_seq
            prefix = SEQ_HEADER.pack(DATA, seq)
            if p.session is not None:
                wire = prefix + p.session.send.encrypt_at(seq, prefix, rec)
            else:
                wire = prefix + bytes(rec)
            p.send_seq = seq + 1
            if not p.outbox:
                p.last_ack_progress = time.monotonic()
            p.outbox[seq] = wire
            p.outbox_bytes += len(wire)
            t = self._publish(peer, wire)
            if t is not None:
                tasks.append(t)
        if tasks:  # backpressure: wait for the broker's PUBACKs (not proof of delivery)
            await asyncio.wait(tasks)

    async def _wait_for_acks(self, peer: int, tag: str) -> None:
        """Backpressure: wait until the receiver acknowledged enough (bounded sender memory)."""
        p = self._peers[peer]
        deadline = time.monotonic() + self.timeout
        while p.outbox_bytes > self.max_unacked:
            p.acked.clear()
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                await asyncio.wait_for(p.acked.wait(), left)
            except TimeoutError:
                err = PeerUnavailableError(
                    f"party {self.pid}: party {peer} acknowledged nothing for {self.timeout:g}s "
                    f"while sending {tag!r} (stopped reading?)", peer=peer, tag=tag)
                self._fail_peer(peer, err)
                raise err from None
            if peer in self._peer_error:
                raise self._error_for(peer, tag)
            if self._fatal is not None:
                raise self._fatal

    async def close(self) -> None:
        if self.closed:
            return
        client = self._client
        if client is not None:
            byes: list[asyncio.Task[None]] = []
            for j, peer in self._peers.items():
                if peer.ready.is_set() and j not in self._peer_error:
                    body = ACK_HEADER.pack(BYE, peer.send_seq, 0)
                    task = self._publish(j, body + peer.mac(body, self.pid, j))
                    if task is not None:
                        byes.append(task)
            if byes:
                await asyncio.wait(byes, timeout=1.0)
        self._close_mailboxes()
        for t in list(self._publishes):
            t.cancel()
        for t in self._tasks:
            t.cancel()
        for t in [*self._tasks, *self._publishes]:
            with contextlib.suppress(BaseException):
                await t
        self._tasks.clear()
        self._client = None


def __getattr__(name: str) -> object:
    """open_mqtt_channel and local_mqtt_mesh live in network.mqtt_mesh; still importable here."""
    if name in ("open_mqtt_channel", "local_mqtt_mesh"):
        from network import mqtt_mesh

        return getattr(mqtt_mesh, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MqttChannel"]
