"""T09/T10/T11/T14 on TCP: a man-in-the-middle proxy that tampers, replays, reorders, drops,
cuts, reflects and transplants frames; unknown keys; wrong party index; a killed peer."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from network.errors import (
    ChannelAuthError,
    DuplicateTagError,
    FrameError,
    NetworkError,
    PeerUnavailableError,
)
from network.keys import generate_keypair
from network.tcp import TcpChannel, local_tcp_mesh

PAYLOAD = b"0123456789"  # fixed size, so the proxy can cut the stream into messages
KEYS = [generate_keypair() for _ in range(3)]
SKS = [sk for sk, _ in KEYS]
PKS = [pk for _, pk in KEYS]


class Proxy:
    """Forward one TCP connection, cutting each direction into whole messages.

    `hook(direction, index, raw)` returns the list of byte strings to forward instead of raw
    (None: cut the connection). direction is "up" (dialer -> listener) or "down".
    """

    def __init__(self, target, *, secure: bool, session_id: bytes, hook):
        self.target, self.secure, self.hook = target, secure, hook
        hello = 15 + 1 + len(session_id)
        self.setup = {"up": hello + (50 if secure else 0), "down": 1 + (50 if secure else 0)}
        self.body = len(PAYLOAD) + (16 if secure else 0)
        self.writers: dict[str, asyncio.StreamWriter] = {}
        self.server = None
        self.tasks: list[asyncio.Task] = []

    async def start(self):
        self.server = await asyncio.start_server(self._on_client, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[:2]

    async def _on_client(self, cr, cw):
        sr, sw = await asyncio.open_connection(*self.target)
        self.writers = {"up": sw, "down": cw}
        self.tasks = [asyncio.current_task()]
        await asyncio.gather(self._pump("up", cr, sw), self._pump("down", sr, cw),
                             return_exceptions=True)

    async def _pump(self, direction, reader, writer):
        try:
            writer.write(await reader.readexactly(self.setup[direction]))
            i = 0
            while True:
                (h,) = struct.unpack("<I", await reader.readexactly(4))
                raw = struct.pack("<I", h) + await reader.readexactly(h) + await reader.readexactly(self.body)
                out = self.hook(direction, i, raw)
                i += 1
                if out is None:
                    writer.transport.abort()
                    return
                for chunk in out:
                    self.writers[direction].write(chunk)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def close(self):
        self.server.close()
        for w in self.writers.values():
            w.transport.abort()


async def _pair_via_proxy(hook, *, secure=True, session_id=b"sess-A", keys=(SKS, PKS), timeout=3.0):
    sks, pks = keys
    kw = dict(session_id=session_id, insecure_plaintext=not secure, timeout=timeout, connect_timeout=5)
    if secure:
        kw.update(peer_keys=PKS)
    c0 = TcpChannel(0, 2, static_key=sks[0] if secure else None, **kw)
    c1 = TcpChannel(1, 2, static_key=SKS[1] if secure else None, **kw)
    a1 = await c1.listen()
    proxy = Proxy(a1, secure=secure, session_id=session_id, hook=hook)
    pa = await proxy.start()
    await asyncio.gather(c0.connect([("127.0.0.1", 0), pa]), c1.connect([("127.0.0.1", 0), a1]))
    return c0, c1, proxy


async def _teardown(*objs):
    for o in objs:
        await o.close()


def _run(coro):
    asyncio.run(coro)


def _flip(raw, pos=-3):
    b = bytearray(raw)
    b[pos] ^= 0x01
    return bytes(b)


ATTACKS = {
    # name: (hook on the "up" direction over messages 0, 1, 2; expected error at tag m1)
    "flip_body": lambda i, m: [_flip(m)] if i == 1 else [m],
    "flip_header": lambda i, m: [_flip(m, 6)] if i == 1 else [m],
    "flip_length_prefix": lambda i, m: [_flip(m, 0)] if i == 1 else [m],
    "replay": lambda i, m: [m, m] if i == 0 else [m],
    "reorder": lambda i, m: [] if i == 0 else ([m, _SAVED["m0"]] if i == 1 else [m]),
    "drop": lambda i, m: [] if i == 0 else [m],
}
_SAVED: dict[str, bytes] = {}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_mitm_is_detected(attack):
    def hook(direction, i, m):
        if direction == "up":
            if i == 0:
                _SAVED["m0"] = m
            return ATTACKS[attack](i, m)
        return [m]

    async def main():
        c0, c1, proxy = await _pair_via_proxy(hook)
        try:
            for k in range(3):
                await c0.send(1, f"m{k}", PAYLOAD)
            results = []
            for k in range(3):
                try:
                    results.append(await c1.recv(0, f"m{k}"))
                except NetworkError as e:
                    results.append(e)
            errs = [r for r in results if isinstance(r, Exception)]
            assert errs, f"{attack} went unnoticed: {results}"
            first = errs[0]
            if attack == "flip_length_prefix":  # the record boundary moves: auth or frame error
                assert isinstance(first, ChannelAuthError | FrameError | PeerUnavailableError), first
            else:
                assert isinstance(first, ChannelAuthError), first
            # nothing after the attack point was delivered, and nothing wrong ever was
            assert all(r == PAYLOAD for r in results if not isinstance(r, Exception))
            # on an authenticated stream a failed check is terminal, not dropped and counted
            assert 0 in c1._peer_error and c1.link_stats()["rejected"] == 0
        finally:
            await _teardown(c0, c1, proxy)

    _run(main())


@pytest.mark.timeout(20)
def test_plaintext_mode_has_no_such_protection_but_duplicates_are_caught():
    """The insecure mode is not authenticated (by design); a replayed frame still cannot be
    delivered twice under one tag."""

    def hook(direction, i, m):
        return [m, m] if direction == "up" and i == 0 else [m]

    async def main():
        c0, c1, proxy = await _pair_via_proxy(hook, secure=False)
        try:
            await c0.send(1, "m0", PAYLOAD)
            assert await c1.recv(0, "m0") == PAYLOAD
            with pytest.raises(DuplicateTagError):
                await c1.recv(0, "later")
        finally:
            await _teardown(c0, c1, proxy)

    _run(main())


@pytest.mark.timeout(20)
def test_truncation_mid_message():
    def cut(direction, i, m):
        if direction == "up" and i == 1:
            proxy_ref[0].writers["up"].write(m[: len(m) // 2])
            return None
        return [m]

    proxy_ref = []

    async def main():
        c0, c1, proxy = await _pair_via_proxy(cut)
        proxy_ref.append(proxy)
        try:
            await c0.send(1, "m0", PAYLOAD)
            await c0.send(1, "m1", PAYLOAD)
            assert await c1.recv(0, "m0") == PAYLOAD
            t0 = time.monotonic()
            with pytest.raises(PeerUnavailableError, match="cut mid-message|closed"):
                await c1.recv(0, "m1")
            assert time.monotonic() - t0 < 2.0
        finally:
            await _teardown(c0, c1, proxy)

    _run(main())


@pytest.mark.timeout(20)
def test_reflection_is_rejected():
    """A frame party 1 sent to party 0 is reflected back to party 1 as if from party 0."""
    down: list[bytes] = []
    ev = {}

    def hook(direction, i, m):
        if direction == "down":
            down.append(m)
            return [m]
        if i == 0:  # replace party 0's first message with party 1's reflected one
            return [down[0]]
        return [m]

    async def main():
        c0, c1, proxy = await _pair_via_proxy(hook)
        try:
            await c1.send(0, "x", PAYLOAD)
            assert await c0.recv(1, "x") == PAYLOAD
            await c0.send(1, "x", PAYLOAD)
            with pytest.raises(ChannelAuthError):
                await c1.recv(0, "x")
        finally:
            await _teardown(c0, c1, proxy)
        ev["ok"] = True

    _run(main())
    assert ev["ok"]


@pytest.mark.timeout(30)
def test_transplant_from_other_session():
    captured: list[bytes] = []

    def record(direction, i, m):
        if direction == "up":
            captured.append(m)
        return [m]

    def inject(direction, i, m):
        return [captured[0]] if direction == "up" and i == 0 else [m]

    async def main():
        c0, c1, proxy = await _pair_via_proxy(record, session_id=b"sess-A")
        await c0.send(1, "m0", PAYLOAD)
        assert await c1.recv(0, "m0") == PAYLOAD
        await _teardown(c0, c1, proxy)
        c0, c1, proxy = await _pair_via_proxy(inject, session_id=b"sess-B")
        try:
            await c0.send(1, "m0", PAYLOAD)
            with pytest.raises(ChannelAuthError):
                await c1.recv(0, "m0")
        finally:
            await _teardown(c0, c1, proxy)

    _run(main())


@pytest.mark.timeout(30)
def test_transplant_from_other_sender():
    """A frame of link 0->2 injected into link 1->2 (same session, same tag)."""
    captured: list[bytes] = []

    def from0(direction, i, m):
        if direction == "up":
            captured.append(m)
        return [m]

    def into1(direction, i, m):
        return [captured[0]] if direction == "up" and i == 0 else [m]

    async def main():
        sid = b"sess-C"
        kw = dict(session_id=sid, peer_keys=PKS, timeout=3, connect_timeout=5)
        chans = [TcpChannel(i, 3, static_key=SKS[i], **kw) for i in range(3)]
        addrs = [await c.listen() for c in chans]
        pa = Proxy(addrs[2], secure=True, session_id=sid, hook=from0)
        pb = Proxy(addrs[2], secure=True, session_id=sid, hook=into1)
        a0 = list(addrs)
        a0[2] = await pa.start()
        a1 = list(addrs)
        a1[2] = await pb.start()
        await asyncio.gather(chans[0].connect(a0), chans[1].connect(a1), chans[2].connect(addrs))
        try:
            await chans[0].send(2, "open", PAYLOAD)
            assert await chans[2].recv(0, "open") == PAYLOAD
            await chans[1].send(2, "open", PAYLOAD)
            with pytest.raises(ChannelAuthError):
                await chans[2].recv(1, "open")
        finally:
            await _teardown(*chans, pa, pb)

    _run(main())


@pytest.mark.timeout(20)
@pytest.mark.parametrize("case", ["unknown_key", "wrong_pinned_key", "wrong_index", "other_session"])
def test_setup_refused(case):
    """Every failure is a typed error on both sides, within the connect deadline."""
    outsider = generate_keypair()

    async def main():
        n = 3 if case == "wrong_index" else 2
        sks, pks0 = list(SKS[:n]), list(PKS[:n])
        pks1 = list(PKS[:n])
        sid1 = b"sess"
        if case == "unknown_key":
            sks[0] = outsider[0]  # party 0 holds a key nobody pinned
            pks0 = [outsider[1]] + pks0[1:]
        elif case == "wrong_pinned_key":
            pks0[1] = outsider[1]  # party 0 pins the wrong key for party 1
        elif case == "wrong_index":
            sks[0] = SKS[2]  # party 2's key presented as party 0
        elif case == "other_session":
            sid1 = b"other"
        chans = [
            TcpChannel(i, n, session_id=sid1 if i == 1 else b"sess", static_key=sks[i],
                       peer_keys=pks0 if i == 0 else pks1, timeout=2, connect_timeout=1.5)
            for i in range(n)
        ]
        addrs = [await c.listen() for c in chans]
        t0 = time.monotonic()
        res = await asyncio.gather(*(c.connect(addrs) for c in chans[:2]), return_exceptions=True)
        assert time.monotonic() - t0 < 4
        for c in chans:
            await c.close()
        return res

    res = asyncio.run(main())
    assert all(isinstance(r, ChannelAuthError | PeerUnavailableError) for r in res), res
    assert any(isinstance(r, ChannelAuthError) for r in res), res


@pytest.mark.timeout(20)
def test_garbage_connections_do_not_break_setup():
    async def main():
        sid = b"sess"
        chans = [TcpChannel(i, 2, session_id=sid, static_key=SKS[i], peer_keys=PKS, timeout=2,
                            connect_timeout=5) for i in range(2)]
        addrs = [await c.listen() for c in chans]
        for junk in (os.urandom(100), b"SMPH" + os.urandom(40), b""):
            r, w = await asyncio.open_connection(*addrs[1])
            w.write(junk)
            await w.drain()
            w.close()
        await asyncio.gather(*(c.connect(addrs) for c in chans))
        await chans[0].send(1, "t", b"ok")
        assert await chans[1].recv(0, "t") == b"ok"
        t_end = time.monotonic() + 5  # the strangers' handlers may still be finishing
        while chans[1].link_stats()["rejected"] < 3 and time.monotonic() < t_end:
            await asyncio.sleep(0.01)
        # dropped and counted (sender unknown: -1), never charged to a party's link
        assert chans[1].link_stats()["rejected_by_peer"] == {-1: 3}
        assert not chans[1]._peer_error
        for c in chans:
            await c.close()

    asyncio.run(main())


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from network.tcp import open_tcp_channel
    async def main():
        host, p0, p1 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        ch = await open_tcp_channel(1, [(host, p0), (host, p1)], session_id=b"kill",
                                    insecure_plaintext=True, timeout=30)
        await ch.send(0, "hello", b"hi")
        print("ready", flush=True)
        await asyncio.sleep(60)
    asyncio.run(main())
    """
)


@pytest.mark.timeout(30)
def test_killed_peer_process():
    """T14: a peer process is killed mid-job: the honest party gets PeerUnavailableError promptly."""

    async def main():
        c0 = TcpChannel(0, 2, session_id=b"kill", insecure_plaintext=True, timeout=20, connect_timeout=10)

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p1 = s.getsockname()[1]
        s.close()
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        proc = subprocess.Popen([sys.executable, "-c", CHILD, "127.0.0.1", "1", str(p1)],
                                cwd=repo, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": repo})
        try:
            await c0.connect([("127.0.0.1", 1), ("127.0.0.1", p1)])
            assert await c0.recv(1, "hello") == b"hi"
            waiting = asyncio.create_task(c0.recv(1, "result"))
            await asyncio.sleep(0.1)
            proc.kill()
            t0 = time.monotonic()
            with pytest.raises(PeerUnavailableError) as ei:
                await waiting
            assert ei.value.peer == 1 and time.monotonic() - t0 < 2
        finally:
            proc.kill()
            proc.wait()
            await c0.close()

    asyncio.run(main())


@pytest.mark.timeout(20)
def test_rerun_with_new_session_after_failure():
    async def main():
        chans = await local_tcp_mesh(2, session_id=b"first", timeout=1)
        await chans[1].close()
        with pytest.raises(PeerUnavailableError):
            await chans[0].recv(1, "x")
        await chans[0].close()
        chans = await local_tcp_mesh(2, session_id=b"second", timeout=1)
        await chans[1].send(0, "x", b"ok")
        assert await chans[0].recv(1, "x") == b"ok"
        for c in chans:
            await c.close()

    asyncio.run(main())


@pytest.mark.timeout(30)
def test_peer_that_stops_reading():
    """T15: the sender's memory stays bounded (backpressure) and it aborts within ~the deadline."""

    async def main():
        chans = await local_tcp_mesh(2, session_id=b"stall", timeout=1.0)
        try:
            chans[1]._links[0].writer.transport.pause_reading()  # party 1 stops reading
            link = chans[0]._links[1]
            big = np.zeros(16 << 17, dtype=np.uint64)  # 16 MiB per message
            async def flood():
                for k in range(100):
                    await chans[0].send(1, f"m{k}", big)

            t0 = time.monotonic()
            task = asyncio.create_task(flood())
            await asyncio.sleep(0.6)
            assert not task.done()
            assert link.writer.transport.get_write_buffer_size() <= 6 * (1 << 20)
            with pytest.raises(PeerUnavailableError, match="stopped reading"):
                await task
            assert time.monotonic() - t0 < 2 * 1.0 + 0.5
        finally:
            for c in chans:
                await c.close()

    asyncio.run(main())


@pytest.mark.timeout(20)
@pytest.mark.parametrize("peer", ["absent", "silent"])
def test_handshake_deadline(peer):
    """A peer that never listens, or accepts but never answers: PeerUnavailableError in time."""

    async def main():
        server = None
        if peer == "silent":
            server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
            addr = server.sockets[0].getsockname()[:2]
        else:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            addr = s.getsockname()[:2]
            s.close()
        c0 = TcpChannel(0, 2, session_id=b"s", static_key=SKS[0], peer_keys=PKS, connect_timeout=0.8)
        t0 = time.monotonic()
        with pytest.raises(PeerUnavailableError) as ei:
            await c0.connect([("127.0.0.1", 1), addr])
        assert 0.7 < time.monotonic() - t0 < 2.0
        assert ei.value.peer == 1
        if server is not None:
            server.close()
        assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    asyncio.run(main())


@pytest.mark.timeout(20)
def test_nonce_exhaustion_refused_before_writing():
    from network.errors import NonceExhaustedError
    from network.secure import MAX_NONCE

    async def main():
        chans = await local_tcp_mesh(2, session_id=b"nonce", timeout=1)
        try:
            chans[0]._links[1].session.send.n = MAX_NONCE - 3
            chans[1]._links[0].session.recv.n = MAX_NONCE - 3
            with pytest.raises(NonceExhaustedError):
                await chans[0].send(1, "big", np.zeros(3 << 17, dtype=np.uint64))  # 1 + 3 records
            await chans[0].send(1, "small", b"x")  # 2 records still fit; nothing half-written
            assert await chans[1].recv(0, "small") == b"x"
        finally:
            for c in chans:
                await c.close()

    asyncio.run(main())
