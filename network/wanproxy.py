"""A delaying, rate-limiting TCP proxy on loopback: a simulated WAN link for real sockets.

`WanProxy(target, latency=, bandwidth=)` listens on a local port and forwards every accepted
connection to `target`, both directions independently, as a link with

* a one-way propagation delay `latency` (seconds): a chunk read at time t is written out no
  earlier than t + latency (plus its serialisation time), and
* a serialisation rate `bandwidth` (bytes per second, per direction of each connection): the
  chunks of one direction leave one after another, each taking len / bandwidth, like a real
  link of that rate (the same model as network/memory.py's simulated links).

So a request-response through the proxy takes at least 2 * latency, and B bytes in one
direction at least B / bandwidth. Bytes are forwarded unchanged and in order (the proxy sees
ciphertext only when the channel is encrypted); `bytes_forwarded` counts them per direction.
The proxy buffers without bound (a sender is never slowed by TCP backpressure from the
simulated link, only its bytes are); it is meant for benchmarks on one machine, not as a
network element. It is an alternative to Linux `tc netem`, which needs network namespaces
and privileges; the benchmark result names which one was used.

Usage for a mesh whose parties dial `addresses[j]` (network.tcp.TcpChannel.connect): start one
proxy per listening party j with `target=addresses[j]` and give the dialers the proxies'
addresses instead (`wan_addresses`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

CHUNK = 1 << 16


class WanProxy:
    """Forward connections to `target` with one-way `latency` s and `bandwidth` B/s (None:
    unlimited) per direction of each connection."""

    def __init__(self, target: tuple[str, int], *, latency: float = 0.0, bandwidth: float | None = None):
        if latency < 0 or (bandwidth is not None and bandwidth <= 0):
            raise ValueError("latency must be >= 0 and bandwidth > 0")
        self.target = (target[0], int(target[1]))
        self.latency = float(latency)
        self.bandwidth = float(bandwidth) if bandwidth is not None else None
        self.address: tuple[str, int] | None = None
        self.bytes_forwarded = {"to_target": 0, "from_target": 0}
        self.connections = 0
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._on_accept, host, port)
        self.address = self._server.sockets[0].getsockname()[:2]
        return self.address

    async def _on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            t_reader, t_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.connections += 1
        self._writers += [writer, t_writer]
        for src, dst, key in ((reader, t_writer, "to_target"), (t_reader, writer, "from_target")):
            task = asyncio.create_task(self._pump(src, dst, key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, key: str) -> None:
        """Read chunks as they come (stamped with their arrival), deliver each after its
        serialisation slot plus the latency."""
        q: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await q.get()
                if data is None:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                dst.write(data)
                self.bytes_forwarded[key] += len(data)
                await dst.drain()
            if dst.can_write_eof():
                dst.write_eof()

        out = asyncio.create_task(deliver())
        self._tasks.add(out)
        out.add_done_callback(self._tasks.discard)
        link_free = 0.0  # when this direction's link finishes sending what is queued
        try:
            while True:
                data = await src.read(CHUNK)
                now = time.monotonic()
                if not data:
                    break
                if self.bandwidth is not None:
                    link_free = max(link_free, now) + len(data) / self.bandwidth
                    due = link_free + self.latency
                else:
                    due = now + self.latency
                q.put_nowait((due, data))
        except (ConnectionError, OSError):
            pass
        finally:
            q.put_nowait((0.0, None))
            try:
                await out
            except (ConnectionError, OSError):
                pass

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            try:
                await t
            except (asyncio.CancelledError, ConnectionError, OSError):
                pass
        for w in self._writers:
            w.close()
        self._writers.clear()

    def describe(self) -> str:
        bw = f"{self.bandwidth:g} B/s" if self.bandwidth is not None else "unlimited bandwidth"
        return f"one-way latency {self.latency:g} s, {bw} per direction"


async def wan_addresses(
    addresses: Sequence[tuple[str, int]], *, latency: float = 0.0, bandwidth: float | None = None,
    host: str = "127.0.0.1",
) -> tuple[list[tuple[str, int]], list[WanProxy]]:
    """One WanProxy in front of each listening address; returns the addresses to dial instead
    (entry 0 unchanged: in network.tcp nobody dials party 0) and the proxies (close them)."""
    out: list[tuple[str, int]] = [(addresses[0][0], addresses[0][1])]
    proxies: list[WanProxy] = []
    try:
        for a in addresses[1:]:
            p = WanProxy((a[0], a[1]), latency=latency, bandwidth=bandwidth)
            out.append(await p.start(host, 0))
            proxies.append(p)
    except BaseException:
        for p in proxies:
            await p.close()
        raise
    return out, proxies


__all__ = ["WanProxy", "wan_addresses"]
