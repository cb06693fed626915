"""Per-(peer, tag) mailboxes shared by the socket transports (TCP, MQTT).

A transport's reader tasks call `_deliver(peer, tag, payload)` for every complete message and
`_fail_peer(peer, error)` when a link ends or a check fails; `recv` waits on the mailbox with
the channel's deadline. A failure is terminal for that peer: every pending and later receive
from it raises the error (messages delivered before the failure remain readable).

What fails authentication BEFORE a peer is authenticated on that path (a stranger's garbage
connection, a spoofed or garbage publish on a shared broker, a replayed record) is not a
failure of the link: the transport calls `_reject` / `_duplicate`, which drop it and count it
(`link_stats()`); `max_rejected` bounds the forged records accepted per claimed sender before
the link fails with AuthFailureLimitError. A check failure on an authenticated stream (TCP
after the handshake) stays terminal.
"""

from __future__ import annotations

import asyncio

from network.channel import Channel, Payload, check_tag
from network.errors import (
    AuthFailureLimitError,
    ChannelClosedError,
    DuplicateTagError,
    NetworkError,
    PeerUnavailableError,
)


class MailboxChannel(Channel):
    def __init__(self, pid: int, n: int, timeout: float):
        if n < 2 or not 0 <= pid < n:
            raise ValueError(f"bad party index {pid} for {n} parties")
        self.pid = pid
        self.n = n
        self.timeout = timeout
        self.closed = False
        self._box: dict[tuple[int, str], asyncio.Future[Payload]] = {}
        self._consumed: set[tuple[int, str]] = set()
        self._sent: set[tuple[int, str]] = set()
        self._peer_error: dict[int, NetworkError] = {}
        #: handshake failures seen during setup, by peer (socket transports fill it)
        self._setup_errors: dict[int, NetworkError] = {}
        #: socket transports set their setup deadline (seconds)
        self.connect_timeout: float = timeout
        #: dropped before authentication (by claimed sender) and dropped duplicates / replays
        self.rejected: dict[int, int] = {}
        self.duplicates: dict[int, int] = {}
        #: forged records accepted per claimed sender before its link fails (None: no bound)
        self.max_rejected: int | None = None

    def _reject(self, src: int, why: str) -> None:
        """Drop and count a record claiming to come from `src` that did not authenticate;
        past `max_rejected` of them the link from `src` fails (AuthFailureLimitError)."""
        k = self.rejected[src] = self.rejected.get(src, 0) + 1
        if self.max_rejected is not None and k > self.max_rejected:
            self._fail_peer(src, AuthFailureLimitError(
                f"party {self.pid}: {k} records claiming party {src} failed authentication "
                f"(limit {self.max_rejected}; last: {why})"))

    def _duplicate(self, src: int) -> None:
        self.duplicates[src] = self.duplicates.get(src, 0) + 1

    def link_stats(self) -> dict[str, int | dict[int, int]]:
        """Counters for metrics: records dropped unauthenticated, duplicates dropped."""
        return {"rejected": sum(self.rejected.values()),
                "duplicates": sum(self.duplicates.values()),
                "rejected_by_peer": dict(sorted(self.rejected.items())),
                "duplicates_by_peer": dict(sorted(self.duplicates.items()))}

    # -- called by transports ------------------------------------------------------------

    def _slot(self, src: int, tag: str) -> asyncio.Future[Payload]:
        key = (src, tag)
        fut = self._box.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._box[key] = fut
        return fut

    def _deliver(self, src: int, tag: str, payload: Payload) -> None:
        """Hand a received message to its mailbox; DuplicateTagError if the slot was used."""
        if self.closed:
            return
        key = (src, tag)
        fut = self._box.get(key)
        if key in self._consumed or (fut is not None and fut.done()):
            raise DuplicateTagError(f"party {self.pid}: second message from {src} under {tag!r}")
        self._slot(src, tag).set_result(payload)

    def _error_for(self, src: int, tag: str) -> NetworkError:
        err = self._peer_error[src]
        if isinstance(err, PeerUnavailableError):
            return PeerUnavailableError(f"{err} (waiting for {tag!r})", peer=src, tag=tag)
        return err

    def _fail_peer(self, src: int, error: NetworkError) -> None:
        """Terminal failure of the link from `src`: fail its pending receives."""
        if src in self._peer_error:
            return
        self._peer_error[src] = error
        for (s, tag), fut in self._box.items():
            if s == src and not fut.done():
                fut.set_exception(self._error_for(src, tag))
                fut.exception()  # mark retrieved: a waiter may not exist yet

    def _timeout_error(self, peer: int, tag: str) -> NetworkError:
        return PeerUnavailableError(
            f"party {self.pid}: no message from party {peer} under {tag!r} within {self.timeout:g}s",
            peer=peer,
            tag=tag,
        )

    def _check_send(self, peer: int, tag: str) -> None:
        if self.closed:
            raise ChannelClosedError(f"party {self.pid}: channel is closed")
        self.check_peer(peer)
        check_tag(tag)
        if peer in self._peer_error:
            raise self._error_for(peer, tag)
        key = (peer, tag)
        if key in self._sent:
            raise DuplicateTagError(f"party {self.pid}: second message to {peer} under {tag!r}")
        self._sent.add(key)

    # -- Channel -------------------------------------------------------------------------

    async def recv(self, peer: int, tag: str) -> Payload:
        if self.closed:
            raise ChannelClosedError(f"party {self.pid}: channel is closed")
        self.check_peer(peer)
        check_tag(tag)
        key = (peer, tag)
        if key in self._consumed:
            raise DuplicateTagError(f"party {self.pid}: tag {tag!r} from {peer} already received")
        fut = self._slot(peer, tag)
        if not fut.done() and peer in self._peer_error:
            self._box.pop(key, None)
            raise self._error_for(peer, tag)
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that races with the message's arrival (CPython gh-86296)
            async with asyncio.timeout(self.timeout):
                return await asyncio.shield(fut)
        except TimeoutError:
            raise self._timeout_error(peer, tag) from None
        finally:
            if fut.done():
                self._box.pop(key, None)
                self._consumed.add(key)

    def _setup_failure(self, missing: list[int], what: str) -> NetworkError:
        """The error for a setup deadline: a recorded handshake failure of a missing peer
        (e.g. a wrong key) if there is one, else PeerUnavailableError naming them all.
        For socket transports, which have a `connect_timeout`."""
        for j in missing:
            if j in self._setup_errors:
                return self._setup_errors[j]
        return PeerUnavailableError(
            f"party {self.pid}: {what} parties {missing} within {self.connect_timeout:g}s",
            peer=missing[0] if missing else None,
        )

    def _close_mailboxes(self) -> None:
        self.closed = True
        for fut in self._box.values():
            if not fut.done():
                fut.set_exception(ChannelClosedError(f"party {self.pid}: channel is closed"))
                fut.exception()
        self._box.clear()
