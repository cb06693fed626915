"""TCP transport: a full mesh of asyncio streams, Noise-encrypted by default.

Topology: party i listens on addresses[i]; for every pair i < j, party i dials party j (the
lower index dials the higher), retrying with exponential backoff until `connect_timeout`.

Connection setup (per pair)::

    dialer -> listener : hello = b"SMPH" | u16 version | u8 cipher | u32 dialer pid | u32 listener pid
                         | u8 len | session id
    (secure)           : u16 len | Noise KK message 1    (prologue binds consortium, version,
    listener -> dialer : u8 status (0 ok, 1 auth failed,  session id and both indices)
                         2 bad hello / session / index, 3 cipher refused)
    (secure, if ok)    : u16 len | Noise KK message 2

The cipher byte is 0 for a plaintext channel, else the dialer's Noise cipher
(network.secure.CIPHER_IDS: 1 ChaChaPoly, what every earlier hello sent, 2 AESGCM). The listener
runs the handshake with that cipher if it is among its `accept_ciphers` and refuses it with
status 3 otherwise (both ends then raise CipherMismatchError). The cipher is also in the Noise
protocol name the handshake hashes, so a hello whose byte was changed on the way fails the
handshake (ChannelAuthError): it cannot downgrade the channel.

The hello is only a routing hint for the listener (which pinned key to expect); everything it
claims is bound again by the Noise prologue, so a lie fails the handshake.

Messages (each direction, after setup)::

    u32 H | header record (H bytes)  | payload records
    secure:   header record = AEAD(framing header); the payload is cut into RECORD_SIZE chunks,
              each sent as AEAD(chunk) (chunk + 16 bytes). Counter nonces are implicit, so a
              replayed, reordered, dropped or modified record fails authentication.
    insecure: header record = framing header; the payload follows as raw bytes.

The receiver validates the framing header (and its declared length against `max_frame`) before
allocating the payload buffer, then decrypts every record straight into that buffer, and builds
the array with numpy.frombuffer (no further copy).

`insecure_plaintext=True` turns the encryption off; it is for tests and benchmarks only.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Mapping, Sequence

import numpy as np

from network.channel import Payload
from network.errors import (
    ChannelAuthError,
    ChannelClosedError,
    CipherMismatchError,
    FrameError,
    NetworkError,
    NonceExhaustedError,
    PeerUnavailableError,
)
from network.framing import (
    DEFAULT_MAX_FRAME,
    MAX_HEADER_SIZE,
    build_payload,
    decode_header,
    encode_header,
)
from network.mailbox import MailboxChannel
from network.secure import (
    CIPHER_IDS,
    CIPHERS,
    DEFAULT_CIPHER,
    MAX_NONCE,
    PROTOCOL_VERSION,
    TAGLEN,
    SecureSession,
    check_cipher,
    cipher_name,
    kk_handshake,
    make_prologue,
)
from network.tcp_park import PeerListener, dial_parked

RECORD_SIZE = 1 << 20
HELLO_MAGIC = b"SMPH"
_HELLO = struct.Struct("<4sHBII")
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")
STREAM_LIMIT = 4 << 20
DEFAULT_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 30.0
_OK, _AUTH_FAILED, _BAD_HELLO, _CIPHER_REFUSED = 0, 1, 2, 3


class _Link:
    __slots__ = ("reader", "writer", "session", "lock", "task", "inbox")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, session: SecureSession | None):
        self.reader: asyncio.StreamReader = reader
        self.writer: asyncio.StreamWriter = writer
        self.session = session
        self.lock = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None
        self.inbox: _Inbox | None = None


class _Inbox(asyncio.BufferedProtocol):
    """The receive side of an established link: replaces the StreamReaderProtocol after
    setup, so that large records are received straight into the caller's buffer
    (`readinto`, one kernel copy) instead of through StreamReader's growing buffer and a
    bytes copy per read (measured: loopback TCP with Noise spent ~2.7 CPU-ns per byte sent,
    ~0.4 of it in the kernel; issue 15's dealer-free offline phase moves GBs per party).
    Small reads (the length prefix and header record) go through a staging buffer.
    Flow-control and connection-loss callbacks are forwarded to the old protocol, which the
    StreamWriter still uses for drain() and close(); reading pauses when `_HIGH` bytes are
    staged and nobody reads them."""

    _STAGE = 1 << 18
    _HIGH = 1 << 22
    _DIRECT = 1 << 16

    def __init__(self, transport: asyncio.BaseTransport, old: asyncio.BaseProtocol, leftover: bytes):
        self._transport = transport
        self._old = old
        self._stage = bytearray(max(self._STAGE, 2 * len(leftover)))
        self._stage[: len(leftover)] = leftover
        self._start, self._end = 0, len(leftover)
        self._target: memoryview | None = None
        self._tpos = 0
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self._exc: BaseException | None = None
        self._paused = False

    # -- protocol callbacks (event loop) ---------------------------------------------------
    def _direct(self) -> bool:
        """Whether the next receive goes straight into the reader's target (one is waiting,
        not yet full, and nothing is staged before it)."""
        return self._target is not None and self._tpos < len(self._target) and self._start == self._end

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._direct():
            assert self._target is not None
            return self._target[self._tpos :]
        if self._start == self._end:
            self._start = self._end = 0
        elif len(self._stage) - self._end < self._STAGE // 4:
            if self._start:  # compact
                self._stage[: self._end - self._start] = self._stage[self._start : self._end]
                self._end -= self._start
                self._start = 0
            if len(self._stage) - self._end < self._STAGE // 4:
                self._stage.extend(bytes(self._STAGE))
        return memoryview(self._stage)[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        if self._direct():
            assert self._target is not None
            self._tpos += nbytes
            if self._tpos == len(self._target):
                self._wake()
            return
        self._end += nbytes
        if self._end - self._start >= self._HIGH and not self._paused:
            self._paused = True
            self._transport.pause_reading()  # type: ignore[attr-defined]
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._exc = exc
        self._wake()
        self._old.connection_lost(exc)

    def pause_writing(self) -> None:
        self._old.pause_writing()

    def resume_writing(self) -> None:
        self._old.resume_writing()

    # -- reading (the link's read task) ----------------------------------------------------
    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _wait(self) -> None:
        if self._exc is not None:
            raise ConnectionResetError(str(self._exc))
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _take(self, mv: memoryview) -> int:
        """Move staged bytes into mv; return how many."""
        k = min(len(mv), self._end - self._start)
        if k:
            mv[:k] = self._stage[self._start : self._start + k]
            self._start += k
            if self._paused and self._end - self._start < self._HIGH // 2:
                self._paused = False
                self._transport.resume_reading()  # type: ignore[attr-defined]
        return k

    async def readexactly(self, n: int) -> bytes:
        """n bytes (asyncio.IncompleteReadError at end of stream, as StreamReader)."""
        out = bytearray(n)
        await self.readinto(memoryview(out))
        return bytes(out)

    async def readinto(self, mv: memoryview) -> None:
        """Fill mv exactly: staged bytes first, the rest received straight into it (if at
        least `_DIRECT` bytes are missing; else through the staging buffer, so that small
        messages cost one receive call, not one per field)."""
        got = self._take(mv)
        while len(mv) - got < self._DIRECT and got < len(mv):
            if self._start == self._end:
                if self._eof:
                    if self._exc is not None:
                        raise ConnectionResetError(str(self._exc))
                    raise asyncio.IncompleteReadError(bytes(mv[:got]), len(mv))
                await self._wait()
            got += self._take(mv[got:])
        if got == len(mv):
            return
        self._target, self._tpos = mv, got
        try:
            while self._tpos < len(mv):
                if self._start != self._end:  # (staged while no target was set)
                    self._tpos += self._take(mv[self._tpos :])
                    continue
                if self._eof:
                    if self._exc is not None:
                        raise ConnectionResetError(str(self._exc))
                    raise asyncio.IncompleteReadError(bytes(mv[: self._tpos]), len(mv))
                await self._wait()
        finally:
            self._target = None


def _swap_inbox(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> _Inbox:
    """Install an _Inbox as the link's protocol after setup, taking over the bytes the
    StreamReader has already buffered (a peer may send right after its handshake)."""
    tr = writer.transport
    old = tr.get_protocol()
    buf: bytearray = reader._buffer  # type: ignore[attr-defined]  # asyncio's read-ahead: none may be lost
    inbox = _Inbox(tr, old, bytes(buf))
    buf.clear()
    reading = not reader.at_eof()  # (uvloop's transports are not asyncio.ReadTransport subclasses)
    if reading and tr.is_reading():  # type: ignore[attr-defined]
        # uvloop picks its read callback (data_received or get_buffer) when reading starts:
        # stop, swap, start again (harmless on the standard loop)
        tr.pause_reading()  # type: ignore[attr-defined]
    tr.set_protocol(inbox)
    if reader.at_eof():
        inbox._eof = True
    elif reading:
        tr.resume_reading()  # type: ignore[attr-defined]  # (also: paused by the StreamReader's backlog limit)
    return inbox


class TcpChannel(MailboxChannel):
    """One party's endpoint of a TCP mesh. Create with `open_tcp_channel` or `local_tcp_mesh`.

    `cipher`: the Noise cipher this party proposes on the links it dials ("ChaChaPoly", the
    default, or "AESGCM"; network.secure.preferred_cipher() picks by the CPU);
    `accept_ciphers`: the ciphers it runs on links dialed by lower-indexed parties (default:
    both). Raises CipherMismatchError for an unknown cipher name."""

    def __init__(
        self,
        pid: int,
        n: int,
        *,
        session_id: bytes,
        static_key: bytes | None = None,
        peer_keys: Sequence[bytes] | Mapping[int, bytes] | None = None,
        consortium_id: bytes = b"smpc",
        insecure_plaintext: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_frame: int = DEFAULT_MAX_FRAME,
        cipher: str = DEFAULT_CIPHER,
        accept_ciphers: Sequence[str] = CIPHERS,
    ):
        super().__init__(pid, n, timeout)
        self.cipher = check_cipher(cipher)
        self.accept_ciphers = frozenset(check_cipher(c) for c in accept_ciphers)
        if not isinstance(session_id, bytes) or not 1 <= len(session_id) <= 255:
            raise ValueError("session_id must be 1..255 bytes")
        self.secure = not insecure_plaintext
        if self.secure:
            if static_key is None or peer_keys is None:
                raise ValueError("a secure channel needs static_key and peer_keys (or insecure_plaintext=True)")
            self._peer_keys = {j: peer_keys[j] for j in range(n) if j != pid}
        self.session_id = session_id
        self.consortium_id = consortium_id
        self._static_key = static_key
        self.connect_timeout = connect_timeout
        self.max_frame = max_frame
        self._links: dict[int, _Link] = {}
        self._server: asyncio.Server | None = None
        self._all_connected = asyncio.Event()
        self._handlers: set[asyncio.Task[None]] = set()
        self.address: tuple[str, int] | None = None

    def _own_key(self) -> bytes:
        if self._static_key is None:  # secure channels check it at construction
            raise ChannelAuthError(f"party {self.pid}: no static key for the handshake")
        return self._static_key

    # -- setup ---------------------------------------------------------------------------

    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Start accepting connections from lower-indexed parties; return the bound address."""
        if self.pid == 0:  # nobody dials party 0
            self.address = (host, port)
            return self.address
        self._server = await asyncio.start_server(self._on_accept, host, port, limit=STREAM_LIMIT)
        sock = self._server.sockets[0]
        self.address = sock.getsockname()[:2]
        return self.address

    async def connect(self, addresses: Sequence[tuple[str, int]]) -> None:
        """Dial higher-indexed parties and wait for lower ones, within `connect_timeout`."""
        if len(addresses) != self.n:
            raise ValueError(f"need {self.n} addresses, got {len(addresses)}")
        if self.pid > 0 and self._server is None:
            host, port = addresses[self.pid]
            await self.listen(host, port)
        try:
            async with asyncio.timeout(self.connect_timeout):
                async with asyncio.TaskGroup() as tg:
                    for j in range(self.pid + 1, self.n):
                        tg.create_task(self._dial(j, addresses[j]))
                    if self.pid > 0:
                        tg.create_task(self._wait_accepts())
        except* TimeoutError:
            missing = [j for j in range(self.n) if j != self.pid and j not in self._links]
            await self.close()
            raise self._setup_failure(missing, "could not connect to") from None
        except* NetworkError as eg:
            await self.close()
            raise eg.exceptions[0] from None
        if self._server is not None:  # mesh complete: accept nothing more
            self._server.close()
            self._server = None

    async def connect_via(self, listener: PeerListener,
                          addresses: Sequence[tuple[str, int]]) -> None:
        """Join the mesh through the node's long-lived `network.tcp_park.PeerListener`
        instead of a listener of this channel's own: dial the higher-indexed parties' listeners
        (they park the authenticated connection until they reach this session) and take the
        lower-indexed parties' parked connections from `listener`, within `connect_timeout`.
        Raises PeerUnavailableError (a peer not on this session in time) or ChannelAuthError."""
        if len(addresses) != self.n:
            raise ValueError(f"need {self.n} addresses, got {len(addresses)}")

        async def dial(j: int) -> None:
            conn = await dial_parked(
                self.pid, j, addresses[j], sid=self.session_id,
                static_key=self._static_key if self.secure else None,
                peer_key=self._peer_keys[j] if self.secure else None,
                consortium_id=self.consortium_id, secure=self.secure, cipher=self.cipher)
            self._add_link(j, *conn)

        async def take(j: int) -> None:
            self._add_link(j, *await listener.take(j, self.session_id))

        try:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    async with asyncio.TaskGroup() as tg:
                        for j in range(self.n):
                            if j != self.pid:
                                tg.create_task(dial(j) if j > self.pid else take(j))
            except* TimeoutError:
                missing = [j for j in range(self.n) if j != self.pid and j not in self._links]
                raise self._setup_failure(missing, "could not connect to") from None
            except* NetworkError as eg:
                raise eg.exceptions[0] from None
        except BaseException:  # cancelled (job withdrawn, shutdown) included: nothing left open
            await self.close()
            raise

    async def _wait_accepts(self) -> None:
        await self._all_connected.wait()

    def _check_complete(self) -> None:
        if all(j in self._links for j in range(self.pid)):
            self._all_connected.set()

    async def _dial(self, peer: int, address: tuple[str, int]) -> None:
        delay = 0.01
        while True:
            try:
                reader, writer = await asyncio.open_connection(*address, limit=STREAM_LIMIT)
                break
            except OSError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        try:
            cid = CIPHER_IDS[self.cipher] if self.secure else 0
            hello = _HELLO.pack(HELLO_MAGIC, PROTOCOL_VERSION, cid, self.pid, peer)
            writer.write(hello + bytes([len(self.session_id)]) + self.session_id)
            session = None
            if self.secure:
                pro = make_prologue(self.consortium_id, self.session_id, self.pid, peer, transport=b"tcp")
                session = await kk_handshake(
                    initiator=True,
                    static_key=self._own_key(),
                    peer_public_key=self._peer_keys[peer],
                    prologue=pro,
                    send=lambda m: _send_hs(writer, m),
                    recv=lambda: _recv_hs_after_status(reader, peer, self.cipher),
                    cipher=self.cipher,
                )
            else:
                await writer.drain()
                await _read_status(reader, peer)
        except BaseException as e:
            writer.close()
            if isinstance(e, asyncio.IncompleteReadError | ConnectionError):
                raise PeerUnavailableError(f"party {self.pid}: party {peer} dropped the connection during setup", peer=peer) from None
            raise
        self._add_link(peer, reader, writer, session)

    async def _on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # a callback of asyncio.start_server runs in a task
        self._handlers.add(task)
        try:
            await asyncio.wait_for(self._accept(reader, writer), self.connect_timeout)
        except (NetworkError, OSError, asyncio.IncompleteReadError, TimeoutError) as e:
            # not (yet) an authenticated peer: dropped and counted, never terminal (-1: the
            # sender is unknown); a failure on an authenticated link is (_read_loop)
            self._reject(-1, type(e).__name__)
            writer.close()
        finally:
            self._handlers.discard(task)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw = await reader.readexactly(_HELLO.size + 1)
        magic, version, secure, src, dst = _HELLO.unpack_from(raw)
        sid = await reader.readexactly(raw[-1])
        if (
            magic != HELLO_MAGIC
            or version != PROTOCOL_VERSION
            or bool(secure) != self.secure
            or dst != self.pid
            or not 0 <= src < self.pid
            or src in self._links
            or sid != self.session_id
        ):
            writer.write(bytes([_BAD_HELLO]))
            raise FrameError("bad hello")
        session = None
        if self.secure:
            try:
                cipher = cipher_name(secure)
                if cipher not in self.accept_ciphers:
                    raise CipherMismatchError(
                        f"party {self.pid}: party {src} proposed cipher {cipher}, this party accepts only "
                        f"{', '.join(sorted(self.accept_ciphers))}"
                    )
            except CipherMismatchError as e:
                writer.write(bytes([_CIPHER_REFUSED]))
                self._setup_errors[src] = e
                raise
            pro = make_prologue(self.consortium_id, self.session_id, src, self.pid, transport=b"tcp")
            msgs: list[bytes] = []
            try:
                session = await kk_handshake(
                    initiator=False,
                    static_key=self._own_key(),
                    peer_public_key=self._peer_keys[src],
                    prologue=pro,
                    send=lambda m: _append(msgs, m),
                    recv=lambda: _recv_hs(reader),
                    cipher=cipher,
                )
            except ChannelAuthError as e:
                writer.write(bytes([_AUTH_FAILED]))
                self._setup_errors[src] = ChannelAuthError(
                    f"party {self.pid}: handshake from a connection claiming party {src} failed: {e}"
                )
                raise
            writer.write(bytes([_OK]) + _U16.pack(len(msgs[0])) + msgs[0])
        else:
            writer.write(bytes([_OK]))
        await writer.drain()
        if src in self._links or self.closed:
            raise FrameError("duplicate connection")
        self._add_link(src, reader, writer, session)
        self._check_complete()

    def _add_link(
        self, peer: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, session: SecureSession | None
    ) -> None:
        writer.transport.set_write_buffer_limits(high=4 * RECORD_SIZE)
        link = _Link(reader, writer, session)
        link.inbox = _swap_inbox(reader, writer)
        self._links[peer] = link
        link.task = asyncio.get_running_loop().create_task(self._read_loop(peer, link))

    # -- data path -----------------------------------------------------------------------

    async def send(self, peer: int, tag: str, payload: Payload) -> None:
        self._check_send(peer, tag)
        link = self._links.get(peer)
        if link is None:
            raise PeerUnavailableError(f"party {self.pid}: no connection to party {peer}", peer=peer, tag=tag)
        head, body = encode_header(tag, payload)
        w = link.writer
        try:
            async with link.lock, asyncio.timeout(self.timeout):
                if link.session is None:
                    w.write(_U32.pack(len(head)) + head)
                    if body.nbytes:
                        w.write(body)
                else:
                    cs = link.session.send
                    if cs.n + 1 + -(-body.nbytes // RECORD_SIZE) >= MAX_NONCE:
                        raise NonceExhaustedError(
                            f"party {self.pid}: nonces to party {peer} exhausted; start a new session")
                    eh = cs.encrypt(b"", head)
                    if body.nbytes <= RECORD_SIZE:  # small message: one socket write, not two
                        parts = [_U32.pack(len(eh)), eh]
                        if body.nbytes:
                            parts.append(cs.encrypt(b"", body))
                        w.write(b"".join(parts))
                    else:
                        w.write(_U32.pack(len(eh)) + eh)
                        for i, off in enumerate(range(0, body.nbytes, RECORD_SIZE)):
                            w.write(cs.encrypt(b"", body[off : off + RECORD_SIZE]))
                            if i % 4 == 3:  # backpressure: at most ~4 records buffered
                                await w.drain()
                await w.drain()
        except TimeoutError:
            # the peer stopped reading; a half-written message leaves the link unusable
            err = PeerUnavailableError(
                f"party {self.pid}: party {peer} did not take {tag!r} within {self.timeout:g}s "
                f"(stopped reading)",
                peer=peer,
                tag=tag,
            )
            self._fail_peer(peer, err)
            w.transport.abort()
            raise err from None
        except (ConnectionError, RuntimeError) as e:
            if self.closed:
                raise ChannelClosedError(f"party {self.pid}: channel is closed") from None
            raise PeerUnavailableError(
                f"party {self.pid}: connection to party {peer} lost while sending {tag!r}: {e}",
                peer=peer,
                tag=tag,
            ) from None

    async def _read_loop(self, peer: int, link: _Link) -> None:
        reader, session = link.inbox, link.session
        assert reader is not None  # set by _add_link before this task starts
        ct = memoryview(bytearray(RECORD_SIZE + TAGLEN)) if session else memoryview(b"")
        max_head = MAX_HEADER_SIZE + (TAGLEN if session else 0)
        try:
            while True:
                try:
                    (hlen,) = _U32.unpack(await reader.readexactly(4))
                except asyncio.IncompleteReadError as e:
                    if e.partial:
                        raise
                    raise PeerUnavailableError(
                        f"party {self.pid}: party {peer} closed the connection", peer=peer
                    ) from None
                if hlen > max_head:
                    raise FrameError(f"party {self.pid}: header record of {hlen} bytes from {peer}")
                rec = await reader.readexactly(hlen)
                head = session.recv.decrypt(b"", rec) if session else rec
                hdr = decode_header(head, max_frame=self.max_frame)
                length = hdr.length
                # not zero-filled: every byte is written below (received or decrypted into)
                body = np.empty(length, dtype=np.uint8)
                mv = body.data
                if session is None:
                    await reader.readinto(mv)
                else:
                    for off in range(0, length, RECORD_SIZE):
                        m = min(RECORD_SIZE, length - off)
                        rec_ct = ct[: m + TAGLEN]
                        await reader.readinto(rec_ct)
                        session.recv.decrypt_into(b"", rec_ct, mv[off : off + m])
                self._deliver(peer, hdr.tag, build_payload(hdr, mv))
        except asyncio.CancelledError:
            raise
        except asyncio.IncompleteReadError:
            self._fail_peer(peer, PeerUnavailableError(
                f"party {self.pid}: connection from party {peer} cut mid-message", peer=peer))
        except (ConnectionError, OSError) as e:
            self._fail_peer(peer, PeerUnavailableError(
                f"party {self.pid}: connection from party {peer} failed: {e}", peer=peer))
        except NetworkError as e:  # auth, frame, duplicate: terminal for this link
            self._fail_peer(peer, e)
        except Exception as e:  # anything a decoder missed: typed, and still terminal
            self._fail_peer(peer, FrameError(
                f"party {self.pid}: malformed message from party {peer}: {e!r}"))
        link.writer.close()

    # -- teardown ------------------------------------------------------------------------

    async def close(self) -> None:
        if self.closed:
            return
        self._close_mailboxes()
        if self._server is not None:
            self._server.close()
            self._server = None
        for t in list(self._handlers):
            t.cancel()
        tasks = [link.task for link in self._links.values() if link.task is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        for link in self._links.values():
            link.writer.close()
        for link in self._links.values():
            try:
                await asyncio.wait_for(link.writer.wait_closed(), 1.0)
            except (TimeoutError, OSError, ConnectionError):
                link.writer.transport.abort()
        self._links.clear()


async def _append(out: list[bytes], m: bytes) -> None:
    out.append(m)


async def _send_hs(writer: asyncio.StreamWriter, msg: bytes) -> None:
    writer.write(_U16.pack(len(msg)) + msg)
    await writer.drain()


async def _recv_hs(reader: asyncio.StreamReader) -> bytes:
    (n,) = _U16.unpack(await reader.readexactly(2))
    return await reader.readexactly(n)


async def _read_status(reader: asyncio.StreamReader, peer: int, cipher: str = DEFAULT_CIPHER) -> None:
    status = (await reader.readexactly(1))[0]
    if status == _CIPHER_REFUSED:
        raise CipherMismatchError(f"party {peer} refused the cipher {cipher} (configure the same cipher on both)")
    if status == _AUTH_FAILED:
        raise ChannelAuthError(f"party {peer} rejected our handshake (keys or session do not match)")
    if status != _OK:
        raise ChannelAuthError(f"party {peer} refused the connection (wrong session, index or mode)")


async def _recv_hs_after_status(reader: asyncio.StreamReader, peer: int, cipher: str) -> bytes:
    await _read_status(reader, peer, cipher)
    return await _recv_hs(reader)


async def open_tcp_channel(
    pid: int,
    addresses: Sequence[tuple[str, int]],
    *,
    session_id: bytes,
    static_key: bytes | None = None,
    peer_keys: Sequence[bytes] | Mapping[int, bytes] | None = None,
    consortium_id: bytes = b"smpc",
    insecure_plaintext: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    max_frame: int = DEFAULT_MAX_FRAME,
    cipher: str = DEFAULT_CIPHER,
    accept_ciphers: Sequence[str] = CIPHERS,
) -> TcpChannel:
    """One party's channel (for a party in its own OS process): listen on addresses[pid], dial
    the higher-indexed parties, authenticate every link. `peer_keys[j]` is party j's pinned
    public key (own entry ignored). Raises PeerUnavailableError (a peer not reachable within
    connect_timeout) or ChannelAuthError (a handshake failed)."""
    ch = TcpChannel(
        pid, len(addresses), session_id=session_id, static_key=static_key, peer_keys=peer_keys,
        consortium_id=consortium_id, insecure_plaintext=insecure_plaintext, timeout=timeout,
        connect_timeout=connect_timeout, max_frame=max_frame, cipher=cipher, accept_ciphers=accept_ciphers,
    )
    await ch.connect(addresses)
    return ch


async def local_tcp_mesh(
    n: int,
    *,
    session_id: bytes,
    secure: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    static_keys: Sequence[bytes] | None = None,
    public_keys: Sequence[bytes] | None = None,
    consortium_id: bytes = b"smpc",
    host: str = "127.0.0.1",
    max_frame: int = DEFAULT_MAX_FRAME,
    cipher: str = DEFAULT_CIPHER,
) -> list[TcpChannel]:
    """All n parties in this process over loopback TCP (ports chosen by the OS).

    With secure=True (the default) fresh key pairs are generated unless given. Returns the
    channels indexed by party; close each (or use `async with`) when done.
    """
    from network.keys import mesh_keys

    sks, pks = mesh_keys(n, static_keys, public_keys) if secure else ([], [])
    chans = [
        TcpChannel(
            i, n, session_id=session_id,
            static_key=sks[i] if secure else None,
            peer_keys=pks if secure else None,
            consortium_id=consortium_id, insecure_plaintext=not secure, timeout=timeout,
            connect_timeout=connect_timeout, max_frame=max_frame, cipher=cipher,
        )
        for i in range(n)
    ]
    try:
        addresses = [await ch.listen(host, 0) for ch in chans]
        async with asyncio.TaskGroup() as tg:
            for ch in chans:
                tg.create_task(ch.connect(addresses))
    except* NetworkError as eg:
        for ch in chans:
            await ch.close()
        raise eg.exceptions[0] from None
    except* BaseException:
        for ch in chans:
            await ch.close()
        raise
    return chans


__all__ = ["TcpChannel", "open_tcp_channel", "local_tcp_mesh", "RECORD_SIZE"]
