"""A node's long-lived peer listener: authenticated connections wait for their job.

The daemon (mpc.node) runs one job at a time with the whole consortium. Instead of every node
opening a fresh listener per job and hoping the peers' connect attempts overlap in time, each
node opens ONE `PeerListener` at start and closes it at shutdown. A node that starts job J
dials the higher-indexed peers for J (`dial_parked`); the peer's listener authenticates the
connection at once and *parks* it under (dialer, session id) until the local node reaches J
(`PeerListener.take`), or drops it at the park deadline. No windows that must overlap.

Setup of one parked connection (dialer i < listener j)::

    i -> j : b"SMPL" | u16 version | u8 cipher | u32 i | u32 j | u8 len | sid | dial nonce (16)
    i -> j : u16 len | Noise KK message 1     prologue: consortium, version, sid + dial nonce,
    j -> i : u8 status (0 ok, 1 auth failed, 2 bad hello,     i, j
                        3 cipher refused) | u16 len | KK message 2
    i -> j : AEAD(b"smpc-park-confirm")       key confirmation (first transport record)
    ... parked at j until j starts the job (or the park deadline) ...
    j -> i : AEAD(b"smpc-park-start")         j is on the job: the link is live (tcp.py records)

The cipher byte is 0 on plaintext links, else the Noise cipher of the consortium (1 ChaChaPoly,
what every earlier hello sent as its "secure" flag; 2 AESGCM: network.secure.CIPHER_IDS). The
listener runs the handshake only under its own configured cipher and answers status 3 to any
other, on which the dialer raises CipherMismatchError (a configuration error, named as such);
the cipher is also in the Noise protocol name, so nobody can make two ends agree on a key under
different ciphers.

Why the confirmation record: Noise KK's responder has authenticated message 1 but cannot tell
a replay of a recorded message 1 from the real one until the initiator proves it holds the
ephemeral key (Noise spec rev. 34, section 7.7, "payload security properties": the responder's
first received payload has no replay protection). Only a connection that sends a valid
confirmation is parked, so a recorded message 1 replayed into the listener costs one handshake
and is dropped and counted (`rejected`); it never occupies the genuine dialer's place. The dial
nonce is fresh per dial, so every connect retry runs a handshake under a fresh channel id.

Bounds: at most `max_handshakes` unauthenticated connections in setup at once (each within
`handshake_timeout`), at most `max_parked_per_peer` parked connections per authenticated peer
(the oldest is dropped), each parked at most `park_timeout`. A parked connection that sends
anything or closes is dropped. A stranger is dropped and counted, never aborts anything.

Rounds: 1.5 round trips of setup per link (hello + message 1, message 2, confirmation), plus
the start record. Bytes: 47 + len(sid) hello, 64 + 64 handshake, 17 + 16 confirmation and
start records (secure). Security: mutual authentication against pinned keys (Noise KK),
forward secrecy, replay of message 1 rejected by key confirmation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time
from collections.abc import Mapping, Sequence

from network.errors import (
    ChannelAuthError,
    CipherMismatchError,
    FrameError,
    NetworkError,
    PeerUnavailableError,
)
from network.secure import (
    CIPHER_IDS,
    DEFAULT_CIPHER,
    PROTOCOL_VERSION,
    SecureSession,
    check_cipher,
    kk_handshake,
    make_prologue,
)

PARK_MAGIC = b"SMPL"
_HELLO = struct.Struct("<4sHBII")
_U16 = struct.Struct("<H")
DIAL_NONCE = 16
_OK, _AUTH_FAILED, _BAD_HELLO, _CIPHER_REFUSED = 0, 1, 2, 3
_CONFIRM = b"smpc-park-confirm"
_START = b"smpc-park-start"
_PLAIN_CONFIRM, _PLAIN_START = b"\x07", b"\x08"
STREAM_LIMIT = 4 << 20

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter, SecureSession | None]


class _Parked:
    __slots__ = ("reader", "writer", "session", "since", "watch")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 session: SecureSession | None):
        self.reader, self.writer, self.session = reader, writer, session
        self.since = time.monotonic()
        self.watch: asyncio.Task[None] | None = None


def _channel_id(sid: bytes, dial_nonce: bytes) -> bytes:
    return sid + dial_nonce


class PeerListener:
    """One node's listener for its lower-indexed peers' connections (see the module doc)."""

    def __init__(self, pid: int, n: int, *, static_key: bytes | None,
                 peer_keys: Sequence[bytes] | Mapping[int, bytes] | None,
                 consortium_id: bytes = b"smpc", insecure_plaintext: bool = False,
                 park_timeout: float = 30.0, handshake_timeout: float = 10.0,
                 max_parked_per_peer: int = 4, max_handshakes: int = 64,
                 cipher: str = DEFAULT_CIPHER):
        self.pid, self.n = pid, n
        self.secure = not insecure_plaintext
        #: the Noise cipher this listener runs (the consortium's); any other is refused
        self.cipher = check_cipher(cipher)
        if self.secure and (static_key is None or peer_keys is None):
            raise ValueError("a secure listener needs static_key and peer_keys")
        self._static_key = static_key
        self._peer_keys = {j: peer_keys[j] for j in range(n) if j != pid} if peer_keys else {}
        self.consortium_id = consortium_id
        self.park_timeout = park_timeout
        self.handshake_timeout = handshake_timeout
        self.max_parked_per_peer = max_parked_per_peer
        self.max_handshakes = max_handshakes
        self._parked: dict[tuple[int, bytes], _Parked] = {}
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.address: tuple[str, int] | None = None
        self.rejected = 0      # connections dropped before they were authenticated
        self.expired = 0       # authenticated connections dropped at the park deadline / cap
        self.closed = False

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on host:port (party 0 binds nothing: nobody dials it)."""
        if self.pid == 0:
            self.address = (host, port)
            return self.address
        self._server = await asyncio.start_server(self._on_accept, host, port,
                                                  limit=STREAM_LIMIT)
        self.address = self._server.sockets[0].getsockname()[:2]
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return self.address

    async def close(self) -> None:
        """Stop listening, drop every parked and in-setup connection; the port is free after."""
        if self.closed:
            return
        self.closed = True
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
        tasks = list(self._handlers) + ([self._sweeper] if self._sweeper else [])
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        for key in list(self._parked):
            self._drop(key)
        async with self._arrived:
            self._arrived.notify_all()

    def parked(self) -> int:
        return len(self._parked)

    # -- the local node takes a parked connection ------------------------------------------
    async def take(self, src: int, sid: bytes) -> Conn:
        """Wait (the caller bounds it) for an authenticated connection from `src` for session
        `sid`, tell the dialer the job started here, and hand the connection over."""
        async with self._arrived:
            while True:
                if self.closed:
                    raise PeerUnavailableError(f"party {self.pid}: peer listener closed",
                                               peer=src)
                p = self._parked.pop((src, sid), None)
                if p is not None and not p.writer.is_closing():
                    break
                if p is not None:
                    self._close(p)
                await self._arrived.wait()
        if p.watch is not None:
            p.watch.cancel()
            with contextlib.suppress(BaseException):
                await p.watch
        try:
            if p.session is None:
                p.writer.write(_PLAIN_START)
            else:
                rec = p.session.send.encrypt(b"", _START)
                p.writer.write(_U16.pack(len(rec)) + rec)
            await p.writer.drain()
        except (ConnectionError, RuntimeError) as e:
            p.writer.close()
            raise PeerUnavailableError(f"party {self.pid}: party {src}'s parked connection "
                                       f"was lost: {e}", peer=src) from None
        return p.reader, p.writer, p.session

    # -- accepting ---------------------------------------------------------------------
    async def _on_accept(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._handlers) >= self.max_handshakes or self.closed:
            self.rejected += 1
            writer.close()
            return
        self._handlers.add(task)
        try:
            src, sid, session = await asyncio.wait_for(self._setup(reader, writer),
                                                       self.handshake_timeout)
        except (NetworkError, OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            # not an authenticated peer (a cipher refused included): dropped and counted,
            # never terminal
            self.rejected += 1
            writer.close()
            return
        finally:
            self._handlers.discard(task)
        await self._park(src, sid, _Parked(reader, writer, session))

    async def _setup(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                     ) -> tuple[int, bytes, SecureSession | None]:
        raw = await reader.readexactly(_HELLO.size + 1)
        magic, version, cid, src, dst = _HELLO.unpack_from(raw)
        sid = await reader.readexactly(raw[-1])
        dial_nonce = await reader.readexactly(DIAL_NONCE)
        if (magic != PARK_MAGIC or version != PROTOCOL_VERSION or bool(cid) != self.secure
                or dst != self.pid or not 0 <= src < self.pid or not sid):
            writer.write(bytes([_BAD_HELLO]))
            raise FrameError("bad hello")
        if self.secure and cid != CIPHER_IDS[self.cipher]:
            writer.write(bytes([_CIPHER_REFUSED]))
            await writer.drain()
            raise CipherMismatchError(f"party {src} proposed cipher id {cid}, this listener runs "
                                      f"{self.cipher}")
        if not self.secure:
            writer.write(bytes([_OK]))
            await writer.drain()
            if await reader.readexactly(1) != _PLAIN_CONFIRM:
                raise FrameError("bad confirmation")
            return src, sid, None
        assert self._static_key is not None
        pro = make_prologue(self.consortium_id, _channel_id(sid, dial_nonce), src, self.pid,
                            transport=b"tcp-park")
        msgs: list[bytes] = []

        async def _append(m: bytes) -> None:
            msgs.append(m)

        try:
            session = await kk_handshake(initiator=False, static_key=self._static_key,
                                         peer_public_key=self._peer_keys[src], prologue=pro,
                                         send=_append, recv=lambda: _recv_rec(reader),
                                         cipher=self.cipher)
        except ChannelAuthError:
            writer.write(bytes([_AUTH_FAILED]))
            raise
        writer.write(bytes([_OK]) + _U16.pack(len(msgs[0])) + msgs[0])
        await writer.drain()
        # key confirmation: only the holder of message 1's ephemeral key can send this
        if session.recv.decrypt(b"", await _recv_rec(reader)) != _CONFIRM:
            raise ChannelAuthError("bad key confirmation")
        return src, sid, session

    async def _park(self, src: int, sid: bytes, p: _Parked) -> None:
        async with self._arrived:
            if self.closed:
                self._close(p)
                return
            old = self._parked.pop((src, sid), None)
            if old is not None:  # the peer re-dialled: its newer connection wins
                self._close(old)
            mine = sorted((q.since, k) for k, q in self._parked.items() if k[0] == src)
            while len(mine) >= self.max_parked_per_peer:
                self.expired += 1
                self._drop(mine.pop(0)[1])
            self._parked[(src, sid)] = p
            p.watch = asyncio.get_running_loop().create_task(self._watch(src, sid, p))
            self._arrived.notify_all()

    async def _watch(self, src: int, sid: bytes, p: _Parked) -> None:
        """A parked connection must stay silent; EOF or a byte drops it."""
        with contextlib.suppress(OSError, ConnectionError):
            await p.reader.read(1)
        if self._parked.get((src, sid)) is p:
            del self._parked[(src, sid)]
            self._close(p)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.park_timeout / 4))
            now = time.monotonic()
            for k, p in list(self._parked.items()):
                if now - p.since > self.park_timeout:
                    self.expired += 1
                    self._drop(k)

    def _drop(self, key: tuple[int, bytes]) -> None:
        p = self._parked.pop(key, None)
        if p is not None:
            self._close(p)

    @staticmethod
    def _close(p: _Parked) -> None:
        if p.watch is not None and p.watch is not asyncio.current_task():
            p.watch.cancel()
        p.writer.close()


async def _recv_rec(reader: asyncio.StreamReader) -> bytes:
    (n,) = _U16.unpack(await reader.readexactly(2))
    return await reader.readexactly(n)


async def dial_parked(pid: int, peer: int, address: tuple[str, int], *, sid: bytes,
                      static_key: bytes | None, peer_key: bytes | None,
                      consortium_id: bytes, secure: bool, cipher: str = DEFAULT_CIPHER) -> Conn:
    """Dial `peer`'s PeerListener for session `sid` until it takes the connection (the caller
    bounds the wait). Each attempt uses a fresh dial nonce, hence a fresh Noise channel id;
    a dropped connection (peer restarting, park deadline) is re-dialled. Raises
    ChannelAuthError if the peer's handshake fails (wrong keys or consortium),
    CipherMismatchError if the peer runs another Noise cipher than `cipher`."""
    check_cipher(cipher)
    delay = 0.01
    while True:
        try:
            reader, writer = await asyncio.open_connection(*address, limit=STREAM_LIMIT)
        except OSError:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
            continue
        try:
            return await _dial_once(pid, peer, reader, writer, sid=sid, static_key=static_key,
                                    peer_key=peer_key, consortium_id=consortium_id,
                                    secure=secure, cipher=cipher)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            writer.close()  # dropped (the peer restarted, or the park deadline): dial again
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        except BaseException:
            writer.close()
            raise


async def _dial_once(pid: int, peer: int, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter, *, sid: bytes, static_key: bytes | None,
                     peer_key: bytes | None, consortium_id: bytes, secure: bool,
                     cipher: str = DEFAULT_CIPHER) -> Conn:
    nonce = os.urandom(DIAL_NONCE)
    cid = CIPHER_IDS[cipher] if secure else 0
    writer.write(_HELLO.pack(PARK_MAGIC, PROTOCOL_VERSION, cid, pid, peer)
                 + bytes([len(sid)]) + sid + nonce)
    if not secure:
        await writer.drain()
        await _status(reader, peer)
        writer.write(_PLAIN_CONFIRM)
        await writer.drain()
        if await reader.readexactly(1) != _PLAIN_START:
            raise FrameError(f"party {peer} sent a bad start byte")
        return reader, writer, None
    if static_key is None or peer_key is None:
        raise ChannelAuthError(f"party {pid}: no keys for the handshake")
    pro = make_prologue(consortium_id, _channel_id(sid, nonce), pid, peer, transport=b"tcp-park")

    async def _send(m: bytes) -> None:
        writer.write(_U16.pack(len(m)) + m)
        await writer.drain()

    async def _recv() -> bytes:
        await _status(reader, peer, cipher)
        return await _recv_rec(reader)

    session = await kk_handshake(initiator=True, static_key=static_key,
                                 peer_public_key=peer_key, prologue=pro, send=_send, recv=_recv,
                                 cipher=cipher)
    rec = session.send.encrypt(b"", _CONFIRM)
    writer.write(_U16.pack(len(rec)) + rec)
    await writer.drain()
    if session.recv.decrypt(b"", await _recv_rec(reader)) != _START:  # parked until then
        raise ChannelAuthError(f"party {peer} sent a bad start record")
    return reader, writer, session


async def _status(reader: asyncio.StreamReader, peer: int, cipher: str | None = None) -> None:
    status = (await reader.readexactly(1))[0]
    if status == _CIPHER_REFUSED and cipher is not None:
        raise CipherMismatchError(f"party {peer} refused the cipher {cipher} (configure the same "
                                  "consortium.cipher on every node)")
    if status == _AUTH_FAILED:
        raise ChannelAuthError(f"party {peer} rejected our handshake (keys or session differ)")
    if status != _OK:
        raise ChannelAuthError(f"party {peer} refused the connection (bad hello)")


__all__ = ["PeerListener", "dial_parked", "PARK_MAGIC"]
