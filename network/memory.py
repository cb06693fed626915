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

from network.channel import Payload
from network.errors import DuplicateTagError, FrameError, PeerUnavailableError
from network.mailbox import MailboxChannel

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


class MemoryChannel(MailboxChannel):
    """Party pid's endpoint: the shared mailbox logic of network.mailbox, fed directly by
    the sender (no bytes, no copies)."""

    def __init__(self, net: MemoryNetwork, pid: int, timeout: float):
        super().__init__(pid, net.n, timeout)
        self.net = net

    def _peer_gone(self, src: int) -> None:
        """`src` closed or crashed: every pending and later receive from it fails."""
        self._fail_peer(
            src,
            PeerUnavailableError(f"party {self.pid}: party {src} closed its channel", peer=src),
        )

    async def send(self, peer: int, tag: str, payload: Payload) -> None:
        self._check_send(peer, tag)
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
            self._fail_peer(src, e)

    async def close(self) -> None:
        if self.closed:
            return
        self._close_mailboxes()
        for other in self.net._channels:
            if other is not self:
                other._peer_gone(self.pid)
