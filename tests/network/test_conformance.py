"""T14-style transport conformance suite, run against every transport (see conftest.TRANSPORTS)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from net_helpers import close_all, leftover_tasks, make_mesh

from network.errors import (
    ChannelClosedError,
    DuplicateTagError,
    FrameError,
    PeerIndexError,
    PeerUnavailableError,
)

U64 = np.uint64


def run(coro):
    return asyncio.run(coro)


@pytest.mark.timeout(30)
def test_frame_boundaries(transport):
    shapes = [(), (0,), (1,), (3, 4), (2, 0, 5), (1, 1, 1, 1), (1000,), (7, 131)]

    async def main():
        chans = await make_mesh(transport, 3)
        try:
            rng = np.random.default_rng(1)
            sent = {}
            for k, shape in enumerate(shapes):
                for dtype in (np.uint64, np.uint8):
                    a = rng.integers(0, 2**63, size=shape, dtype=np.uint64).astype(dtype)
                    sent[(k, np.dtype(dtype).name)] = a
                    await chans[0].send(1, f"s{k}-{np.dtype(dtype).name}", a.copy())
            for blob in (b"", b"x", bytes(range(256)) * 3):
                await chans[2].send(1, f"b{len(blob)}", blob)
            # receive in reverse order: boundaries must not depend on arrival order
            for (k, name), a in reversed(sent.items()):
                got = await chans[1].recv_array(0, f"s{k}-{name}", dtype=a.dtype, shape=a.shape)
                assert got.dtype == a.dtype and got.shape == a.shape
                np.testing.assert_array_equal(got, a)
            for blob in (bytes(range(256)) * 3, b"x", b""):
                assert await chans[1].recv_bytes(2, f"b{len(blob)}", max_len=1000) == blob
        finally:
            await close_all(chans)

    run(main())


@pytest.mark.timeout(60)
def test_large_frame(transport):
    mib = 16 if transport.startswith("mqtt") else 64  # MQTT: 16 MiB keeps the broker test short

    async def main():
        chans = await make_mesh(transport, 2, timeout=30)
        try:
            a = np.arange(mib * (1 << 17), dtype=U64)
            send = asyncio.create_task(chans[0].send(1, "big", a))
            got = await chans[1].recv_array(0, "big", dtype=U64, shape=a.shape)
            await send
            assert got[0] == 0 and got[-1] == a.size - 1
            np.testing.assert_array_equal(got[:: 1 << 12], a[:: 1 << 12])
            assert int(got.sum(dtype=U64)) == int(a.sum(dtype=U64))
        finally:
            await close_all(chans)

    run(main())


@pytest.mark.timeout(30)
def test_concurrent_tags_all_pairs(transport):
    n, per = 3, 20

    async def party(ch):
        async def one(peer, k):
            await ch.send(peer, f"t{k}", np.full(k + 1, ch.pid * 1000 + k, dtype=U64))
            got = await ch.recv_array(peer, f"t{k}", dtype=U64, shape=(k + 1,))
            assert (got == peer * 1000 + k).all()

        async with asyncio.TaskGroup() as tg:
            for peer in range(n):
                if peer != ch.pid:
                    for k in range(per):
                        tg.create_task(one(peer, k))

    async def main():
        chans = await make_mesh(transport, n)
        try:
            await asyncio.gather(*(party(ch) for ch in chans))
        finally:
            await close_all(chans)

    run(main())


@pytest.mark.timeout(30)
def test_errors_on_bad_use(transport):
    async def main():
        chans = await make_mesh(transport, 2)
        try:
            with pytest.raises(PeerIndexError):
                await chans[0].send(0, "t", b"x")
            with pytest.raises(PeerIndexError):
                await chans[0].recv(5, "t")
            await chans[0].send(1, "dup", b"x")
            with pytest.raises(DuplicateTagError):
                await chans[0].send(1, "dup", b"y")
            assert await chans[1].recv(0, "dup") == b"x"
            with pytest.raises(DuplicateTagError):
                await chans[1].recv(0, "dup")
            await chans[0].send(1, "shape", np.zeros(3, dtype=U64))
            with pytest.raises(FrameError):
                await chans[1].recv_array(0, "shape", dtype=U64, shape=(4,))
            with pytest.raises(FrameError):
                await chans[0].send(1, "", b"x")
        finally:
            await close_all(chans)

    run(main())


@pytest.mark.timeout(30)
def test_receive_deadline_names_peer_and_tag(transport):
    async def main():
        chans = await make_mesh(transport, 2, timeout=0.5)
        try:
            t0 = time.monotonic()
            with pytest.raises(PeerUnavailableError) as ei:
                await chans[1].recv(0, "never-sent")
            assert 0.4 < time.monotonic() - t0 < 1.0  # within 2x the deadline (T15)
            assert ei.value.peer == 0 and ei.value.tag == "never-sent"
            assert "never-sent" in str(ei.value)
        finally:
            await close_all(chans)

    run(main())


@pytest.mark.timeout(30)
def test_close_and_vanished_peer(transport):
    async def main():
        chans = await make_mesh(transport, 3, timeout=10)
        await chans[0].send(1, "before", b"delivered")
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(chans[1].recv(0, "after"))
        waiting2 = asyncio.create_task(chans[2].recv(0, "after"))
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        await chans[0].close()
        for w in (waiting, waiting2):
            with pytest.raises(PeerUnavailableError) as ei:
                await w
            assert ei.value.peer == 0
        assert time.monotonic() - t0 < 3.0  # promptly, not at the 10 s deadline
        # a message sent before the close is still readable
        assert await chans[1].recv(0, "before") == b"delivered"
        with pytest.raises(ChannelClosedError):
            await chans[0].send(1, "x", b"x")
        with pytest.raises(ChannelClosedError):
            await chans[0].recv(1, "x")
        with pytest.raises(PeerUnavailableError):
            await chans[1].recv(0, "later")
        # the others still talk
        await chans[1].send(2, "ok", b"ok")
        assert await chans[2].recv(1, "ok") == b"ok"
        pending = asyncio.create_task(chans[2].recv(1, "pending"))
        await asyncio.sleep(0.01)
        await close_all(chans)
        with pytest.raises((ChannelClosedError, PeerUnavailableError)):
            await pending
        await asyncio.sleep(0.05)
        assert not leftover_tasks(), leftover_tasks()

    run(main())
