"""The node's long-lived peer listener (network.tcp_park): connections wait for their job,
strangers are dropped and counted, a replayed Noise message 1 does not block the retries."""

from __future__ import annotations

import asyncio
import os
import struct

import numpy as np
import pytest

from network.errors import ChannelAuthError, PeerUnavailableError
from network.keys import generate_keypair
from network.tcp import TcpChannel
from network.tcp_park import PeerListener

pytestmark = pytest.mark.timeout(60)

N = 3
KEYS = [generate_keypair() for _ in range(N)]
SKS = [sk for sk, _ in KEYS]
PKS = [pk for _, pk in KEYS]


async def _listeners(n=N, **kw) -> list[PeerListener]:
    out = []
    for i in range(n):
        li = PeerListener(i, n, static_key=SKS[i], peer_keys=PKS, consortium_id=b"c", **kw)
        await li.start("127.0.0.1", 0)
        out.append(li)
    return out


def _chan(i, sid, timeout=10.0, n=N):
    return TcpChannel(i, n, session_id=sid, static_key=SKS[i], peer_keys=PKS,
                      consortium_id=b"c", timeout=5.0, connect_timeout=timeout)


async def _exchange(chans):
    for c in chans:
        for j in range(len(chans)):
            if j != c.pid:
                await c.send(j, "x", np.arange(4, dtype=np.int64) + c.pid)
    for c in chans:
        for j in range(len(chans)):
            if j != c.pid:
                got = await c.recv(j, "x")
                assert got.tolist() == [j, j + 1, j + 2, j + 3]


def test_parties_starting_seconds_apart_meet_without_windows():
    async def main():
        lis = await _listeners()
        addrs = [li.address for li in lis]
        sid = os.urandom(16)
        chans = [_chan(i, sid) for i in range(N)]
        try:
            tasks = [asyncio.create_task(chans[0].connect_via(lis[0], addrs))]
            await asyncio.sleep(1.5)  # party 0's connection waits, parked at 1 and 2
            assert lis[1].parked() == 1 and lis[2].parked() == 1
            tasks.append(asyncio.create_task(chans[2].connect_via(lis[2], addrs)))
            await asyncio.sleep(1.0)
            tasks.append(asyncio.create_task(chans[1].connect_via(lis[1], addrs)))
            await asyncio.gather(*tasks)
            await _exchange(chans)
            assert all(li.rejected == 0 and li.parked() == 0 for li in lis)
        finally:
            for c in chans:
                await c.close()
            for li in lis:
                await li.close()

    asyncio.run(main())


def test_connections_for_other_sessions_wait_and_do_not_interfere():
    """Party 0 is on job B already while party 1 finishes job A: B's connection waits."""
    async def main():
        lis = await _listeners(2)
        addrs = [li.address for li in lis]
        a, b = os.urandom(16), os.urandom(16)
        ca = [_chan(i, a, n=2) for i in range(2)]
        cb = [_chan(i, b, n=2) for i in range(2)]
        try:
            t_b0 = asyncio.create_task(cb[0].connect_via(lis[0], addrs))
            await asyncio.sleep(0.3)
            await asyncio.gather(ca[0].connect_via(lis[0], addrs), ca[1].connect_via(lis[1], addrs))
            await _exchange(ca)
            assert not t_b0.done()
            await cb[1].connect_via(lis[1], addrs)
            await t_b0
            await _exchange(cb)
        finally:
            for c in ca + cb:
                await c.close()
            for li in lis:
                await li.close()

    asyncio.run(main())


def test_strangers_are_dropped_and_counted_never_abort():
    async def main():
        lis = await _listeners(2, handshake_timeout=1.0)
        addrs = [li.address for li in lis]
        sid = os.urandom(16)
        chans = [_chan(i, sid, n=2) for i in range(2)]
        stranger_sk, stranger_pk = generate_keypair()
        try:
            # garbage, a bad magic, a wrong index, and a stranger's key claiming party 0
            for raw in (os.urandom(64), b"SMPH" + bytes(40)):
                _, w = await asyncio.open_connection(*addrs[1])
                w.write(raw)
                await w.drain()
                w.close()
            from network.tcp_park import dial_parked
            with pytest.raises(ChannelAuthError):
                await asyncio.wait_for(dial_parked(
                    0, 1, addrs[1], sid=sid, static_key=stranger_sk, peer_key=PKS[1],
                    consortium_id=b"c", secure=True), 5)
            await asyncio.sleep(0.3)
            assert lis[1].rejected >= 3 and lis[1].parked() == 0
            await asyncio.gather(*(c.connect_via(li, addrs) for c, li in zip(chans, lis, strict=True)))
            await _exchange(chans)
        finally:
            for c in chans:
                await c.close()
            for li in lis:
                await li.close()

    asyncio.run(main())


def test_per_peer_cap_and_park_deadline():
    async def main():
        lis = await _listeners(2, park_timeout=1.0, max_parked_per_peer=2)
        addrs = [li.address for li in lis]
        chans = [_chan(0, os.urandom(16), n=2, timeout=30) for _ in range(4)]
        try:
            tasks = [asyncio.create_task(c.connect_via(lis[0], addrs)) for c in chans]
            await asyncio.sleep(0.5)
            assert lis[1].parked() == 2  # the cap: the oldest were dropped
            await asyncio.sleep(1.5)
            assert lis[1].expired >= 2
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for li in lis:
                await li.close()

    asyncio.run(main())


def test_replayed_message_1_during_retries_does_not_block_them():
    """The attacker sits between party 0 and party 1: it records party 0's hello and Noise
    message 1 of the job's first dial and cuts it (party 0 re-dials), then floods party 1's
    listener with replays of the recorded message 1 before and while party 1 starts the job.
    Every replay is dropped and counted (it cannot send the key confirmation); the genuine
    re-dial (fresh dial nonce) is the connection party 1 takes."""
    async def main():
        lis = await _listeners(2, handshake_timeout=2.0)
        real = lis[1].address
        sid = os.urandom(16)
        recorded: list[bytes] = []
        first = asyncio.Event()

        async def pipe(r, w):
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.close()

        async def proxy(r, w):
            if not recorded:
                head = await r.readexactly(16)
                rest = await r.readexactly(head[-1] + 16)
                (n,) = struct.unpack("<H", await r.readexactly(2))
                recorded.append(head + rest + struct.pack("<H", n) + await r.readexactly(n))
                first.set()
                w.close()  # cut: party 0 dials again
                return
            r2, w2 = await asyncio.open_connection(*real)
            await asyncio.gather(pipe(r, w2), pipe(r2, w))

        px = await asyncio.start_server(proxy, "127.0.0.1", 0)
        addrs = [lis[0].address, px.sockets[0].getsockname()[:2]]
        c0, c1 = _chan(0, sid, n=2, timeout=8), _chan(1, sid, n=2, timeout=8)
        replays = []

        async def replay():
            r, w = await asyncio.open_connection(*real)
            w.write(recorded[0])
            await w.drain()
            replays.append(w)
            await r.read(4096)  # message 2 arrives; the attacker cannot confirm

        async def flood():
            while True:
                rt.append(asyncio.create_task(replay()))
                await asyncio.sleep(0.02)

        rt: list[asyncio.Task] = []
        try:
            t0 = asyncio.create_task(c0.connect_via(lis[0], addrs))
            await first.wait()
            while lis[1].parked() == 0:  # party 0's re-dial waits at party 1
                await asyncio.sleep(0.01)
            fl = asyncio.create_task(flood())
            await asyncio.sleep(0.5)
            t1 = asyncio.create_task(c1.connect_via(lis[1], addrs))
            await asyncio.gather(t0, t1)
            await _exchange([c0, c1])
            fl.cancel()
            for w in replays:
                w.close()
            await asyncio.wait(rt, timeout=5)
            for _ in range(100):  # each replay is dropped once it cannot confirm
                if lis[1].rejected >= len(rt) >= 20:
                    break
                await asyncio.sleep(0.05)
            assert lis[1].rejected >= len(rt) >= 20 and lis[1].parked() == 0
        finally:
            for c in (c0, c1):
                await c.close()
            px.close()
            for li in lis:
                await li.close()

    asyncio.run(main())


def test_close_frees_the_port_and_fails_waiters():
    async def main():
        li = PeerListener(1, 2, static_key=SKS[1], peer_keys=PKS[:2], consortium_id=b"c")
        host, port = await li.start("127.0.0.1", 0)
        waiter = asyncio.create_task(li.take(0, b"s"))
        await asyncio.sleep(0.1)
        await li.close()
        with pytest.raises(PeerUnavailableError):
            await waiter
        srv = await asyncio.start_server(lambda r, w: None, host, port)  # the port is free
        srv.close()

    asyncio.run(main())


def _cipher_chan(i, sid, cipher, n=2):
    return TcpChannel(i, n, session_id=sid, static_key=SKS[i], peer_keys=PKS,
                      consortium_id=b"c", timeout=5.0, connect_timeout=5.0, cipher=cipher,
                      accept_ciphers=(cipher,))


def test_parked_links_run_the_consortium_cipher():
    """Issue 15: the node's parked links run Noise AESGCM when the consortium says so (they ran
    ChaChaPoly whatever the configuration before): both ends' transport keys are AES-GCM and
    records flow; the hello's cipher byte 1 is the ChaChaPoly of every earlier hello."""
    from network.secure import AESGCM_NAME, CHACHAPOLY

    async def main(cipher):
        lis = await _listeners(2, cipher=cipher)
        sid = os.urandom(16)
        chans = [_cipher_chan(i, sid, cipher) for i in range(2)]
        try:
            await asyncio.gather(*(c.connect_via(li, [li.address for li in lis])
                                   for c, li in zip(chans, lis, strict=True)))
            await _exchange(chans)
            return [(c._links[1 - c.pid].session.send.cipher, c._links[1 - c.pid].session.recv.cipher)
                    for c in chans]
        finally:
            for c in chans:
                await c.close()
            for li in lis:
                await li.close()

    assert asyncio.run(main(AESGCM_NAME)) == [(AESGCM_NAME, AESGCM_NAME)] * 2
    assert asyncio.run(main(CHACHAPOLY)) == [(CHACHAPOLY, CHACHAPOLY)] * 2


def test_cipher_mismatch_is_named_on_the_dialer_and_counted_by_the_listener():
    """A dialer configured for another cipher than the listener gets CipherMismatchError (a
    configuration error, named), not a generic authentication failure; the listener drops and
    counts it (never terminal for the listener), and its own-cipher peers still connect."""
    from network.errors import CipherMismatchError
    from network.tcp_park import dial_parked

    async def main():
        lis = await _listeners(2, cipher="ChaChaPoly")
        addrs = [li.address for li in lis]
        sid = os.urandom(16)
        try:
            with pytest.raises(CipherMismatchError, match="refused the cipher AESGCM"):
                await asyncio.wait_for(dial_parked(
                    0, 1, addrs[1], sid=sid, static_key=SKS[0], peer_key=PKS[1],
                    consortium_id=b"c", secure=True, cipher="AESGCM"), 5)
            await asyncio.sleep(0.2)
            assert lis[1].rejected == 1 and lis[1].parked() == 0
            chans = [_cipher_chan(i, sid, "ChaChaPoly") for i in range(2)]
            try:
                await asyncio.gather(*(c.connect_via(li, addrs) for c, li in zip(chans, lis, strict=True)))
                await _exchange(chans)
            finally:
                for c in chans:
                    await c.close()
        finally:
            for li in lis:
                await li.close()

    asyncio.run(main())
