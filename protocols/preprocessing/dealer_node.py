"""A dealer node: a separate party role (a "crypto provider") that streams correlated
randomness for additive sharing, with seed compression.

Security: the dealer knows every triple, bit and mask it deals, so it must NOT collude with
any computing party (one dealer + one party learn everything the protocols mask). Against
that non-colluding dealer and up to n - 1 semi-honest parties the items are as good as
from a trusted dealer. Semi-honest only: the dealer is trusted to deal correct items, and
only party 0's requests reach it, so parties that ask for different items are not detected.
Channels dealer <-> party must be private and authenticated (network.secure). The node
daemon must refuse this source unless its config enables it explicitly.

Seed trick (as in SPDZ-style "crypto providers", e.g. the TTP of CrypTen and the dealer of
[Beaver97]-style commodity-based MPC; bandwidth reduction as in [DPSZ12, sec. 6] PRG
compression): at start the dealer sends every party p a 32-byte seed once. Every share that
can be pseudo-random is expanded locally from the seed (a_p, b_p of every party; c_p of
parties 1..n-1); only party 0 receives a correction c_0 = c - sum_{p >= 1} c_p. So an
elementwise triple costs one domain element of traffic, to party 0 only; parties 1..n-1
receive nothing after the seed. Streams are per kind (seed expanded with the kind as
context), so streamed triples and requested items never shift each other.

Flow: elementwise triples are streamed ahead of demand in batches of `batch` with a window
of `window` batches (party 0 returns a credit per consumed batch); other kinds (square
pairs, bits, randoms, matrix triples, truncation pairs) are requested by party 0 and
answered with party 0's corrections.

[Beaver97] D. Beaver, "Commodity-based cryptography", STOC 1997.
[DPSZ12] I. Damgard, V. Pastro, N. Smart, S. Zakarias, "Multiparty computation from
somewhat homomorphic encryption", CRYPTO 2012.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np

from network.channel import Channel
from network.errors import FrameError
from protocols.arith.domain import Domain
from protocols.errors import ConfigError
from protocols.preprocessing.base import Preprocessing, Shape
from protocols.prg import KEY_BYTES, CryptoRNG, derive_key

__all__ = ["DealerClient", "DealerNode"]

MAX_REQ = 1024
#: largest item component a request may ask for (elements), and most dimensions per shape
MAX_ELEMENTS = 1 << 24
MAX_DIMS = 8


def _size(shape: Shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _int_arg(v: object, what: str, lo: int, hi: int) -> int:
    """A JSON integer lo <= v <= hi from the wire (bools and floats refused), else FrameError."""
    if type(v) is not int or not lo <= v <= hi:
        raise FrameError(f"dealer request: {what} must be an integer in [{lo}, {hi}], got {v!r}"[:200])
    return v


def _shape_arg(v: object, what: str = "shape") -> tuple[int, ...]:
    """A shape from the wire: a list of at most MAX_DIMS non-negative integers whose product
    is at most MAX_ELEMENTS, else FrameError (never TypeError or a huge allocation)."""
    if not isinstance(v, list) or len(v) > MAX_DIMS:
        raise FrameError(f"dealer request: {what} must be a list of at most {MAX_DIMS} integers")
    shape = tuple(_int_arg(d, what, 0, MAX_ELEMENTS) for d in v)
    size = 1
    for d in shape:
        size *= d
    if size > MAX_ELEMENTS:
        raise FrameError(f"dealer request: {what} {shape} has more than {MAX_ELEMENTS} elements")
    return shape


_NARGS = {"triples": 1, "square_pairs": 1, "bits": 1, "trunc_pairs": 3, "matrix_triples": 2}


def _shapes(kind: str, args: list) -> list[tuple[tuple[int, ...], bool]]:
    """Components of one item: (shape, free). Free components are pseudo-random for every
    party; the others are dealt (party 0 gets a correction). Validates the request as it
    came from the wire: FrameError for an unknown kind or malformed arguments."""
    if not isinstance(kind, str) or kind not in _NARGS:
        raise FrameError(f"unknown item kind {kind!r}"[:200])
    if not isinstance(args, list) or len(args) != _NARGS[kind]:
        raise FrameError(f"dealer request: {kind} takes {_NARGS[kind]} arguments")
    if kind == "matrix_triples":
        x, y = _shape_arg(args[0], "x shape"), _shape_arg(args[1], "y shape")
        if len(x) != 2 or len(y) not in (1, 2) or x[1] != y[0]:
            raise FrameError(f"matrix triples for {x} @ {y}")
        z = (x[0],) if len(y) == 1 else (x[0], y[1])
        if _size(z) > MAX_ELEMENTS:
            raise FrameError(f"dealer request: product shape {z} has more than {MAX_ELEMENTS} elements")
        return [(x, True), (y, True), (z, False)]
    s = _shape_arg(args[0])
    if kind == "triples":
        return [(s, True), (s, True), (s, False)]
    if kind == "square_pairs":
        return [(s, True), (s, False)]
    if kind == "bits":
        return [(s, False)]
    bits = _int_arg(args[2], "bits", 2, 64)  # trunc_pairs
    _int_arg(args[1], "f", 1, bits - 1)
    return [(s, False), (s, False)]


def _values(D: Domain, rng: CryptoRNG, kind: str, args: list, free: list[np.ndarray]) -> list[np.ndarray]:
    """The dealt (non-free) values of one item, given the free values."""
    if kind == "triples":
        return [D.mul(free[0], free[1])]
    if kind == "square_pairs":
        return [D.mul(free[0], free[0])]
    if kind == "matrix_triples":
        return [D.matmul(free[0], free[1])]
    if kind == "bits":
        return [D.from_int(rng.bits(tuple(args[0])).astype(np.int64))]
    if kind == "trunc_pairs":
        shape, f, bits = tuple(args[0]), int(args[1]), int(args[2])
        r = rng.uint64(shape) >> np.uint64(64 - bits) if bits < 64 else rng.uint64(shape)
        return [D.from_int(r), D.from_int(r >> np.uint64(f))]
    raise FrameError(kind)


class _Expander:
    """One party's pseudo-random shares of one stream (the dealer runs one per party)."""

    def __init__(self, D: Domain, seed: bytes, stream: str):
        self.D, self.rng = D, CryptoRNG(derive_key(seed, "dealer-stream", stream))

    def draw(self, comps, party: int) -> list[np.ndarray | None]:
        """Free components always; dealt components for parties >= 1 (party 0: None)."""
        return [self.D.random(self.rng, s) if (free or party != 0) else None for s, free in comps]


class DealerNode:
    """The dealer's side. `channel`: the dealer's endpoint on a network whose other members
    are the n computing parties 0..n-1 (the dealer's own index is channel.pid). Run
    `await serve()` until party 0 closes.

    Requests are validated as untrusted input: a kind it knows, the right number of
    arguments, shapes as lists of at most MAX_DIMS non-negative integers with at most
    MAX_ELEMENTS elements per component, 0 < f < bits <= 64. Anything else raises FrameError
    from serve() and closes the dealer's channel."""

    def __init__(self, channel: Channel, n: int, domain: Domain, rng: CryptoRNG, *, batch: int = 1 << 16, window: int = 4):
        self.ch, self.n, self.D, self.rng = channel, n, domain, rng
        self.batch, self.window = int(batch), int(window)
        self.parties = [p for p in range(channel.n) if p != channel.pid][:n]
        self.seeds = [rng.bytes(KEY_BYTES) for _ in range(n)]
        self.sent_elements = 0

    async def serve(self) -> None:
        for p, seed in zip(self.parties, self.seeds, strict=True):
            await self.ch.send(p, "dealer-seed", seed)
        streamer = asyncio.create_task(self._stream_triples())
        try:
            await self._answer_requests()
        except FrameError:
            await self.ch.close()  # terminal: the parties fail fast (peer gone), nothing dealt
            raise
        finally:
            streamer.cancel()
            try:
                await streamer
            except (asyncio.CancelledError, Exception):
                pass

    async def _stream_triples(self) -> None:
        D, p0 = self.D, self.parties[0]
        exps = [_Expander(D, s, "triples") for s in self.seeds]
        comps = [((self.batch,), True), ((self.batch,), True), ((self.batch,), False)]
        k = 0
        while True:
            if k >= self.window:
                await self.ch.recv_bytes(p0, f"dealer-credit#{k - self.window}", max_len=1)
            draws = [e.draw(comps, i) for i, e in enumerate(exps)]
            a = draws[0][0]
            b = draws[0][1]
            for d in draws[1:]:
                a, b = D.add(a, d[0]), D.add(b, d[1])
            c0 = D.mul(a, b)
            for d in draws[1:]:
                D.sub(c0, d[2], out=c0)
            await self.ch.send(p0, f"dealer-tri#{k}", D.to_wire(c0))
            self.sent_elements += self.batch
            k += 1

    async def _answer_requests(self) -> None:
        D, p0 = self.D, self.parties[0]
        exps = [_Expander(D, s, "requests") for s in self.seeds]
        k = 0
        while True:
            raw = await self.ch.recv_bytes(p0, f"dealer-req#{k}", max_len=MAX_REQ)
            try:
                req = json.loads(raw)
                kind, args = req["kind"], req["args"]
            except (ValueError, KeyError, TypeError, IndexError, RecursionError) as e:
                raise FrameError("dealer: malformed request") from e
            if kind == "close":
                return
            comps = _shapes(kind, args)
            draws = [e.draw(comps, i) for i, e in enumerate(exps)]
            free = []
            for j, (_, is_free) in enumerate(comps):
                if is_free:
                    v = draws[0][j]
                    for d in draws[1:]:
                        v = D.add(v, d[j])
                    free.append(v)
            dealt = iter(_values(D, self.rng, kind, args, free))
            for j, (_, is_free) in enumerate(comps):
                if not is_free:
                    corr = next(dealt)
                    for d in draws[1:]:
                        corr = D.sub(corr, d[j])
                    await self.ch.send(p0, f"dealer-resp#{k}.{j}", D.to_wire(corr))
                    self.sent_elements += corr.size
            k += 1


class DealerClient(Preprocessing):
    """A computing party's view of a DealerNode. `channel`: this party's endpoint on the
    dealer network; `dealer`: the dealer's index there. Party `pid` 0 talks to the dealer;
    the others only receive their seed. Security: see the module docstring."""

    name = "dealer"

    def __init__(self, pid: int, n: int, domain: Domain, channel: Channel, dealer: int, *, batch: int = 1 << 16):
        if not 0 <= pid < n:
            raise ConfigError(f"party index {pid} outside 0..{n - 1}")
        self.pid, self.n, self.D, self.ch, self.dealer = pid, n, domain, channel, dealer
        self.batch = int(batch)
        self._seed: bytes | None = None
        self._tri: _Expander | None = None
        self._req: _Expander | None = None
        self._rand: _Expander | None = None
        self._pool: list[np.ndarray] | None = None
        self._k_tri = 0
        self._k_req = 0
        self._lock = asyncio.Lock()

    async def _start(self) -> None:
        if self._seed is None:
            seed = await self.ch.recv_bytes(self.dealer, "dealer-seed", max_len=KEY_BYTES)
            if len(seed) != KEY_BYTES:
                raise FrameError("dealer seed has the wrong length")
            self._seed = seed
            self._tri = _Expander(self.D, seed, "triples")
            self._req = _Expander(self.D, seed, "requests")
            self._rand = _Expander(self.D, seed, "randoms")

    async def _next_triple_batch(self) -> list[np.ndarray]:
        comps = [((self.batch,), True), ((self.batch,), True), ((self.batch,), False)]
        a, b, c = self._tri.draw(comps, self.pid)
        k = self._k_tri
        self._k_tri += 1
        if self.pid == 0:
            w = await self.ch.recv_array(
                self.dealer, f"dealer-tri#{k}", dtype=self.D.wire_dtype, shape=self.D.wire_shape((self.batch,))
            )
            c = self.D.from_wire(w, (self.batch,)).copy()
            await self.ch.send(self.dealer, f"dealer-credit#{k}", b"1")
        return [a, b, c]

    async def triples(self, shape: Shape):
        shape = tuple(shape)
        k = _size(shape)
        async with self._lock:
            await self._start()
            parts = [] if self._pool is None else [self._pool]
            have = 0 if self._pool is None else self._pool[0].size
            while have < k:
                fresh = await self._next_triple_batch()
                parts.append(fresh)
                have += self.batch
            pool = [np.concatenate([p[i] for p in parts]) for i in range(3)] if len(parts) > 1 else parts[0]
            out = [v[:k].reshape(shape) for v in pool]
            self._pool = [v[k:] for v in pool]
        return out[0], out[1], out[2]

    async def _request(self, kind: str, args: list) -> list[np.ndarray]:
        async with self._lock:
            await self._start()
            comps = _shapes(kind, args)
            mine = self._req.draw(comps, self.pid)
            k = self._k_req
            self._k_req += 1
            if self.pid == 0:
                await self.ch.send(self.dealer, f"dealer-req#{k}", json.dumps({"kind": kind, "args": args}).encode())
                for j, (shape, free) in enumerate(comps):
                    if not free:
                        w = await self.ch.recv_array(
                            self.dealer, f"dealer-resp#{k}.{j}", dtype=self.D.wire_dtype, shape=self.D.wire_shape(shape)
                        )
                        mine[j] = self.D.from_wire(w, shape)
            return mine

    async def square_pairs(self, shape: Shape):
        a, a2 = await self._request("square_pairs", [list(shape)])
        return a, a2

    async def bits(self, shape: Shape):
        return (await self._request("bits", [list(shape)]))[0]

    async def randoms(self, shape: Shape):
        async with self._lock:
            await self._start()
            return self.D.random(self._rand.rng, tuple(shape))  # shares of a uniform value, no dealer

    async def matrix_triples(self, x_shape: Shape, y_shape: Shape):
        A, B, C = await self._request("matrix_triples", [list(x_shape), list(y_shape)])
        return A, B, C

    async def trunc_pairs(self, shape: Shape, f: int, bits: int):
        if not 0 < f < bits <= 64:
            raise ConfigError(f"trunc pairs need 0 < f < bits <= 64, got f={f}, bits={bits}")
        r, rf = await self._request("trunc_pairs", [list(shape), f, bits])
        return r, rf

    async def close(self) -> None:
        """Party 0 tells the dealer to stop (other parties: no-op)."""
        if self.pid == 0:
            await self.ch.send(self.dealer, f"dealer-req#{self._k_req}", json.dumps({"kind": "close", "args": []}).encode())
            self._k_req += 1
