"""The Session (one party's view of one joint computation) and the Share type.

A Session is a value passed first to every protocol function. It carries the party index,
the party count, the arithmetic domain, the sharing scheme, the channel (injected by mpc/),
the preprocessing source (injected), a cryptographic generator, and per-party statistics.

Message tags are derived deterministically from a per-session step counter, so all parties
derive the same tag for the same step without negotiating. Concurrent branches of one
computation must each take a `child(label)` session: its tags are prefixed by the label,
so the order in which the event loop schedules the branches cannot change the tags.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from network.channel import Channel, Payload
from network.errors import SmpcError
from protocols.arith.domain import Domain
from protocols.errors import (
    DomainError,
    MaliciousUnsupportedError,
    ParameterError,
    SessionAbortedError,
    ShapeMismatch,
)
from protocols.prg import CryptoRNG
from protocols.sharing.schemes import Scheme


@dataclass
class Stats:
    """Communication counters of one party. Bytes count payload (array) bytes only; the
    transports add their own framing and encryption overhead on top."""

    rounds: int = 0
    messages_sent: int = 0
    bytes_sent: int = 0
    messages_received: int = 0
    bytes_received: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def __sub__(self, other: Stats) -> Stats:
        return Stats(**{k: v - getattr(other, k) for k, v in self.as_dict().items()})

    def copy(self) -> Stats:
        return Stats(**self.as_dict())


def _nbytes(payload: Payload) -> int:
    return payload.nbytes if isinstance(payload, np.ndarray) else len(payload)


class CountingChannel(Channel):
    """Wraps a channel and counts messages and bytes into a Stats object."""

    def __init__(self, inner: Channel, stats: Stats):
        self.inner, self.stats = inner, stats
        self.pid, self.n = inner.pid, inner.n

    @property
    def timeout(self) -> float:  # type: ignore[override]
        return self.inner.timeout

    async def send(self, peer: int, tag: str, payload: Payload) -> None:
        await self.inner.send(peer, tag, payload)
        self.stats.messages_sent += 1
        self.stats.bytes_sent += _nbytes(payload)

    async def recv(self, peer: int, tag: str) -> Payload:
        got = await self.inner.recv(peer, tag)
        self.stats.messages_received += 1
        self.stats.bytes_received += _nbytes(got)
        return got

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class _State:
    """Mutable per-session state shared by a session and its children."""

    steps: dict[str, int] = field(default_factory=dict)
    aborted: BaseException | None = None
    #: per-session protocol state keyed by protocol (e.g. the malicious compiler's MAC key);
    #: a value with an `on_abort()` method has it called when the session aborts (wipe keys)
    ext: dict[str, Any] = field(default_factory=dict)


#: the values of Session.security: semi-honest (passive) or malicious with abort
SECURITY = ("semi-honest", "malicious")


@dataclass(frozen=True)
class Session:
    pid: int
    n: int
    domain: Domain
    scheme: Scheme
    channel: Channel
    prep: Any  # protocols.preprocessing.Preprocessing (kept loose to avoid an import cycle)
    rng: CryptoRNG
    stats: Stats = field(default_factory=Stats)
    sid: bytes = b""
    prefix: str = ""
    _state: _State = field(default_factory=_State, repr=False)
    #: "semi-honest" or "malicious" (security with abort: protocols.malicious)
    security: str = "semi-honest"

    def __post_init__(self) -> None:
        if self.security not in SECURITY:
            raise ParameterError(f"security must be one of {SECURITY}, got {self.security!r}")
        if self.scheme.domain != self.domain or self.scheme.n != self.n:
            raise ShapeMismatch(f"scheme {self.scheme} does not match domain {self.domain}, n={self.n}")

    # -- tags and branches -------------------------------------------------------------
    def tag(self, op: str) -> str:
        """A fresh deterministic tag for one communication step of `op`."""
        self.check_alive()
        key = self.prefix + op
        k = self._state.steps.get(key, 0)
        self._state.steps[key] = k + 1
        return f"{key}#{k}"

    def child(self, label: str | int) -> Session:
        """A session for a concurrent branch: same party, channel and stats; own tag space.

        The branches share one preprocessing stream. Sources that hand items out in request
        order (DN07, OT, the dealer node) need every party to request in the same order, so
        concurrent branches must fetch their items before they start (e.g. with
        `prep.fill`), not race for them; only the trusted dealer detects a mismatch."""
        return dataclasses.replace(self, prefix=f"{self.prefix}{label}/")

    def require_semi_honest(self, what: str) -> None:
        """Raise MaliciousUnsupportedError if this session is malicious: `what` has no
        maliciously secure version, and must not run semi-honest in its place."""
        if self.security != "semi-honest":
            raise MaliciousUnsupportedError(
                f"{what} is semi-honest only; with security={self.security!r} use "
                "protocols.malicious (input, mul, matmul, open, reveal_to)"
            )

    @property
    def peers(self) -> list[int]:
        return [j for j in range(self.n) if j != self.pid]

    # -- abort -------------------------------------------------------------------------
    def check_alive(self) -> None:
        if self._state.aborted is not None:
            raise SessionAbortedError(
                f"party {self.pid}: session aborted earlier ({self._state.aborted!r}); "
                "start a new session"
            )

    async def abort(self, reason: BaseException) -> None:
        """Terminal: close the channel; every later protocol call raises SessionAbortedError."""
        if self._state.aborted is None:
            self._state.aborted = reason
        for ext in list(self._state.ext.values()):  # protocol state holding local secrets
            wipe = getattr(ext, "on_abort", None)
            if callable(wipe):
                wipe()
        await self.channel.close()

    @property
    def aborted(self) -> bool:
        return self._state.aborted is not None

    # -- communication primitives ------------------------------------------------------
    async def exchange(
        self, tag: str, outgoing: dict[int, np.ndarray], expect: dict[int, tuple[int, ...]]
    ) -> dict[int, np.ndarray]:
        """One round: send outgoing[j] to each j, receive a domain array of shape expect[j]
        from each j. Received arrays are validated (length, canonical elements)."""
        self.check_alive()
        try:
            for j, arr in outgoing.items():
                await self.channel.send(j, tag, self.domain.to_wire(arr))
            got = {}
            for j, shape in expect.items():
                w = await self.channel.recv_array(
                    j, tag, dtype=self.domain.wire_dtype, shape=self.domain.wire_shape(shape)
                )
                got[j] = self.domain.from_wire(w, shape)
        except SmpcError as e:
            await self.abort(e)
            raise
        self.stats.rounds += 1
        return got

    # -- share construction ------------------------------------------------------------
    def share_of(self, data: np.ndarray) -> Share:
        return Share(data, self)

    def public(self, value: int | np.ndarray) -> np.ndarray:
        """A public integer constant as a domain array."""
        return self.domain.from_int(value)

    async def input(self, value: Any, owner: Any, *, f: int | None = None) -> Any:
        """`owner` secret-shares `value` as a typed secret array: SecInt for integers, SecFxp
        for floats (the others pass None). See protocols.secure_types.input."""
        from protocols.secure_types import input as typed_input

        return await typed_input(self, value, owner, f=f)


class Share:
    """This party's share of a secret-shared array, with local (no-communication) linear
    operations. Constants on the right are public integers or integer arrays; they are
    reduced into the domain. Multiplication of two shares needs a protocol (`beaver.mul`)."""

    __slots__ = ("data", "_s")

    #: encoded public integer constants, per (domain, value): Share arithmetic with the same
    #: few constants runs thousands of times per training (only read, never written to)
    _consts: dict[tuple[Domain, int], np.ndarray] = {}

    def __init__(self, data: np.ndarray, session: Session):
        if type(data) is not np.ndarray:
            data = np.asarray(data)  # numpy returns scalars for 0-d results
            if not isinstance(data, np.ndarray):
                raise DomainError(f"share data must be a {session.domain.dtype} array")
        dt = session.domain.dtype
        if data.dtype is not dt and data.dtype != dt:
            raise DomainError(f"share data must be a {dt} array")
        self.data = data
        self._s = session

    # shape bookkeeping
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"Share(shape={self.shape}, party={self._s.pid}, {self._s.scheme.kind})"

    def _wrap(self, data: np.ndarray) -> Share:
        return Share(data, self._s)

    def _other(self, y: Share | int | np.ndarray) -> tuple[np.ndarray, bool]:
        s = self._s
        if isinstance(y, Share):
            t = y._s
            if t is not s and (t.domain != s.domain or t.pid != s.pid):
                raise ShapeMismatch("shares from different sessions or domains")
            return y.data, True
        if isinstance(y, np.ndarray) and y.dtype == s.domain.dtype:
            return y, False  # already a domain element (e.g. an opened value)
        if type(y) is int:
            key = (s.domain, y)
            c = Share._consts.get(key)
            if c is None:
                if len(Share._consts) > 4096:
                    Share._consts.clear()
                c = Share._consts[key] = s.public(y)
                c.flags.writeable = False
            return c, False
        return s.public(y), False

    def _adds_public(self) -> bool:
        return self._s.scheme.adds_public(self._s.pid)

    def _const(self, c: np.ndarray) -> np.ndarray:
        """What this party adds for a public constant: c, or 0 if another party adds it."""
        if self._adds_public():
            return c
        return self._s.domain.zeros(c.shape)

    # linear operations
    def __add__(self, y: Share | int | np.ndarray) -> Share:
        d, shared = self._other(y)
        if not shared and not self._adds_public() and d.shape in ((), self.data.shape):
            return self._wrap(self.data.copy())  # adding 0: no zeros array, no add
        return self._wrap(self._s.domain.add(self.data, d if shared else self._const(d)))

    __radd__ = __add__

    def __sub__(self, y: Share | int | np.ndarray) -> Share:
        d, shared = self._other(y)
        if not shared and not self._adds_public() and d.shape in ((), self.data.shape):
            return self._wrap(self.data.copy())
        return self._wrap(self._s.domain.sub(self.data, d if shared else self._const(d)))

    def __rsub__(self, y: int | np.ndarray) -> Share:
        return (-self) + y

    def __neg__(self) -> Share:
        return self._wrap(self._s.domain.neg(self.data))

    def __mul__(self, c: int | np.ndarray) -> Share:
        if isinstance(c, Share):
            raise TypeError("Share * Share needs communication: use `await beaver.mul(s, x, y)`")
        if type(c) is int:
            return self._wrap(self._s.domain.mul(self.data, self._other(c)[0]))
        return self._wrap(self._s.domain.mul(self.data, self._s.public(c)))

    __rmul__ = __mul__

    def __matmul__(self, c: np.ndarray) -> Share:
        if isinstance(c, Share):
            raise TypeError("Share @ Share needs communication: use `await beaver.matmul(s, x, y)`")
        return self._wrap(self._s.domain.matmul(self.data, self._s.public(c)))

    def __rmatmul__(self, c: np.ndarray) -> Share:
        return self._wrap(self._s.domain.matmul(self._s.public(c), self.data))

    def sum(self, axis: int | tuple[int, ...] | None = None) -> Share:
        return self._wrap(self._s.domain.sum(self.data, axis=axis))

    def __getitem__(self, idx: Any) -> Share:
        return self._wrap(self.data[idx])

    def reshape(self, *shape: Any) -> Share:
        return self._wrap(self.data.reshape(*shape))

    @property
    def T(self) -> Share:  # noqa: N802
        return self._wrap(self.data.T)

    def transpose(self, *axes: int) -> Share:
        return self._wrap(self.data.transpose(*axes))


def concatenate(shares: list[Share], axis: int = 0) -> Share:
    """Concatenate shares of one session along an axis (local)."""
    if not shares:
        raise ShapeMismatch("concatenate needs at least one share")
    s = shares[0]._s
    return Share(np.concatenate([x.data for x in shares], axis=axis), s)
