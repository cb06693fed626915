"""network.tcp._Inbox: the receive protocol installed on a link after setup. Bytes the
StreamReader had already buffered are taken over, large reads land straight in the caller's
buffer, small ones go through the staging buffer, reading pauses and resumes with a backlog,
and the end of the stream is an IncompleteReadError (as StreamReader's)."""

import asyncio

import numpy as np
import pytest

from network import tcp


def _broken_swap(reader, writer):
    """Broken variant: the StreamReader's read-ahead bytes are dropped."""
    reader._buffer.clear()
    return tcp._swap_inbox(reader, writer)


async def _roundtrip(swap, sizes):
    """A peer sends a prefix and a stream of pieces at once; the receiver reads 1 byte with
    its StreamReader (so the rest of what arrived is read-ahead), swaps in the inbox and reads
    the pieces back. Returns (sent, received) pieces."""
    rng = np.random.default_rng(7)
    pieces = [rng.integers(0, 256, k, dtype=np.uint8).tobytes() for k in sizes]
    got_conn: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_accept(reader, writer):
        got_conn.set_result((reader, writer))

    server = await asyncio.start_server(on_accept, "127.0.0.1", 0)
    addr = server.sockets[0].getsockname()[:2]
    _, w = await asyncio.open_connection(*addr)
    reader, writer = await got_conn
    w.write(b"P" + pieces[0])  # arrives with the prefix: read ahead by the StreamReader
    await w.drain()
    assert await reader.readexactly(1) == b"P"
    await asyncio.sleep(0.05)

    async def send_rest():
        for p in pieces[1:]:
            w.write(p)
            await w.drain()

    sender = asyncio.create_task(send_rest())
    await asyncio.sleep(0.05)  # let a backlog build up (pauses reading past _HIGH)
    inbox = swap(reader, writer)
    out = []
    for k in sizes:
        if k < 64:
            out.append(await inbox.readexactly(k))
        else:
            buf = bytearray(k)
            await inbox.readinto(memoryview(buf))
            out.append(bytes(buf))
    await sender
    w.close()
    with pytest.raises(asyncio.IncompleteReadError):
        await inbox.readexactly(4)
    writer.close()
    server.close()
    return pieces, out


SIZES = [300, 4, 1 << 20, 60, 3, (1 << 16) + 5, 1 << 23, 17, 9 << 20]


def _runners():
    out = [asyncio.run]
    try:  # the party processes and the node run on uvloop when it is installed
        import uvloop

        out.append(uvloop.run)
    except ImportError:
        pass
    return out


@pytest.mark.parametrize("run", _runners())
def test_inbox_delivers_every_byte_in_order(run):
    sent, got = run(_roundtrip(tcp._swap_inbox, SIZES))
    assert got == sent


@pytest.mark.parametrize("run", _runners())
def test_inbox_broken_variant_is_caught(run):
    async def main():
        try:
            sent, got = await asyncio.wait_for(_roundtrip(_broken_swap, SIZES), 3)
        except (TimeoutError, asyncio.IncompleteReadError):
            return False
        return got == sent

    assert not run(main())


class _Transport:
    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


def test_get_buffer_never_empty_after_a_filled_target():
    """A read event between a direct read's completion and the reader's wake-up must get a
    staging buffer, not the filled target's empty tail (asyncio refuses an empty buffer and
    kills the connection: seen in a 3-process bench before this test)."""

    async def main():
        inbox = tcp._Inbox(_Transport(), asyncio.Protocol(), b"")
        target = bytearray(1 << 17)
        task = asyncio.create_task(inbox.readinto(memoryview(target)))
        await asyncio.sleep(0)  # the reader sets its target and waits
        buf = inbox.get_buffer(-1)
        buf[: len(target)] = b"x" * len(target)
        inbox.buffer_updated(len(target))
        nxt = inbox.get_buffer(-1)  # before the reader runs again
        assert len(nxt) > 0
        nxt[:3] = b"abc"
        inbox.buffer_updated(3)
        await task
        assert target == b"x" * len(target)
        assert await inbox.readexactly(3) == b"abc"

    asyncio.run(main())
