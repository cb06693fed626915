"""In-process transport: all parties in one event loop, messages handed over as objects.

Arrays are delivered without a copy, as read-only views (the channel contract forbids the
sender from modifying them after `send`). Optional `latency` (seconds, one way) and
`bandwidth` (bytes per second per directed link, serialised like a real link) simulate a
network for what-if runs; the result then arrives after `latency + size / bandwidth`, with
transfers on one link queued behind each other.

This transport has no adversary to defend against: it is for tests, notebooks and
benchmarks, where all parties share one process anyway.
"""

from __future__ import annotations

import asyncio

import numpy as np

from network.channel import Channel, Payload, check_tag
from network.errors import (
    ChannelClosedError,
    DuplicateTagError,
    FrameError,
    PeerUnavailableError,
)

DEFAULT_TIMEOUT = 60.0


class MemoryNetwork:
    """The shared medium of n in-process parties. `channel(pid)` is party pid's endpoint."""

    def __init__(
        self,
        n: int,
        *,
        latency: float = 0.0,
        bandwidth: float | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ):
        if n < 2:
            raise ValueError(f"a network needs at least 2 parties, got {n}")
        if latency < 0 or (bandwidth is not None and bandwidth <= 0):
            raise ValueError("latency must be >= 0 and bandwidth > 0")
        self.n = n
        self.latency = float(latency)
        self.bandwidth = bandwidth
        self._channels = [MemoryChannel(self, pid, timeout) for pid in range(n)]
        self._link_free_at: dict[tuple[int, int], float] = {}

    def channel(self, pid: int) -> MemoryChannel:
        return self._channels[pid]

    @property
    def channels(self) -> list[MemoryChannel]:
        return list(self._channels)

    def _delay(self, src: int, dst: int, nbytes: int) -> float:
        """Seconds until a message of nbytes sent now on src->dst is delivered."""
        if self.bandwidth is None:
            return self.latency
        now = asyncio.get_running_loop().time()
        start = max(now, self._link_free_at.get((src, dst), now))
        done = start + nbytes / self.bandwidth
        self._link_free_at[(src, dst)] = done
        return done - now + self.latency


class MemoryChannel(Channel):
    def __init__(self, net: MemoryNetwork, pid: int, timeout: float):
        self.net = net
        self.pid = pid
        self.n = net.n
        self.timeout = timeout
        self.closed = False
        # (sender, tag) -> future holding the payload; created by whichever side comes first
        self._box: dict[tuple[int, str], asyncio.Future] = {}
        self._consumed: set[tuple[int, str]] = set()

    def _slot(self, src: int, tag: str) -> asyncio.Future:
        key = (src, tag)
        fut = self._box.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._box[key] = fut
        return fut

    def _deliver(self, src: int, tag: str, payload: Payload) -> None:
        if self.closed:
            return
        key = (src, tag)
        if key in self._consumed:
            raise DuplicateTagError(f"party {self.pid}: second message from {src} under {tag!r}")
        fut = self._slot(src, tag)
        if fut.done():
            raise DuplicateTagError(f"party {self.pid}: second message from {src} under {tag!r}")
        fut.set_result(payload)

    def _peer_gone(self, src: int) -> None:
        """Fail every receive still waiting on `src` (it closed or crashed)."""
        for (s, tag), fut in self._box.items():
            if s == src and not fut.done():
                fut.set_exception(
                    PeerUnavailableError(
                        f"party {self.pid}: party {src} closed its channel before sending {tag!r}",
                        peer=src,
                        tag=tag,
                    )
                )

    async def send(self, peer: int, tag: str, payload: Payload) -> None:
        if self.closed:
            raise ChannelClosedError(f"party {self.pid}: channel is closed")
        self.check_peer(peer)
        check_tag(tag)
        if isinstance(payload, np.ndarray):
            view = payload.view()
            view.flags.writeable = False
            payload, nbytes = view, payload.nbytes
        elif isinstance(payload, bytes | bytearray | memoryview):
            payload = bytes(payload)
            nbytes = len(payload)
        else:
            raise FrameError(f"payload must be a numpy array or bytes, got {type(payload).__name__}")
        dst = self.net.channel(peer)
        if dst.closed:
            raise PeerUnavailableError(
                f"party {self.pid}: party {peer} has closed its channel", peer=peer, tag=tag
            )
        delay = self.net._delay(self.pid, peer, nbytes)
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, dst._deliver_later, self.pid, tag, payload)
        else:
            dst._deliver(self.pid, tag, payload)

    def _deliver_later(self, src: int, tag: str, payload: Payload) -> None:
        try:
            self._deliver(src, tag, payload)
        except DuplicateTagError as e:  # surfaced to the receiver, not lost in the loop
            fut = self._box.get((src, tag))
            if fut is not None and not fut.done():
                fut.set_exception(e)

    async def recv(self, peer: int, tag: str) -> Payload:
        if self.closed:
            raise ChannelClosedError(f"party {self.pid}: channel is closed")
        self.check_peer(peer)
        check_tag(tag)
        key = (peer, tag)
        if key in self._consumed:
            raise DuplicateTagError(f"party {self.pid}: tag {tag!r} from {peer} already received")
        fut = self._slot(peer, tag)
        if not fut.done() and self.net.channel(peer).closed:
            self._box.pop(key, None)
            raise PeerUnavailableError(
                f"party {self.pid}: party {peer} closed its channel before sending {tag!r}",
                peer=peer,
                tag=tag,
            )
        try:
            async with asyncio.timeout(self.timeout):  # (wait_for can lose a cancellation)
                payload = await asyncio.shield(fut)
        except TimeoutError:
            raise PeerUnavailableError(
                f"party {self.pid}: no message from party {peer} under {tag!r} "
                f"within {self.timeout:g}s",
                peer=peer,
                tag=tag,
            ) from None
        finally:
            if fut.done():
                self._box.pop(key, None)
                self._consumed.add(key)
        return payload

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for fut in self._box.values():
            if not fut.done():
                fut.set_exception(ChannelClosedError(f"party {self.pid}: channel is closed"))
        self._box.clear()
        for other in self.net._channels:
            if other is not self:
                other._peer_gone(self.pid)
