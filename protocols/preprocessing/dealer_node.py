"""A dealer node: a separate party role (a "crypto provider") that streams correlated
randomness for additive sharing, with seed compression. It supplies every kind of
`base.KINDS` in the formats of `trusted_dealer` (same values, same arithmetic / XOR split,
same shapes), so the online protocols run on it unchanged.

Security: the dealer knows every triple, bit and mask it deals, so it must NOT collude with
any computing party (one dealer + one party learn everything the protocols mask). Against
that non-colluding dealer and up to n - 1 semi-honest parties the items are as good as
from a trusted dealer: every party's shares are uniform given the others' (parties >= 1
hold PRG output; party 0's corrections are the value minus, or XOR, uniform PRG output).
Semi-honest only: the dealer is trusted to deal correct items, and only party 0's requests
reach it, so parties that ask for different items are not detected. Channels dealer <->
party must be private and authenticated (network.secure). The node daemon must refuse this
source unless its config enables it explicitly.

Seed trick (as in SPDZ-style "crypto providers", e.g. the TTP of CrypTen and the dealer of
[Beaver97]-style commodity-based MPC; bandwidth reduction as in [DPSZ12, sec. 6] PRG
compression): at start the dealer sends every party p a 32-byte seed once. Every item is a
list of components, each an arithmetic share (a domain element, added) or an XOR-shared
64-bit word. A component is *free* when its value may be uniform (a, b of a triple, the mask
r of an edaBit or of a truncation triple, the input words of an ltz tuple): every party,
party 0 included, expands its share from the seed and the value is whatever they sum (or
XOR) to. A *dealt* component (c = a*b, bits, r >> f, ...) is expanded from the seed by
parties 1..n-1, and party 0 receives a correction: v - sum_{p >= 1} v_p for arithmetic
components, v XOR (XOR_{p >= 1} v_p) for XOR-shared words. Streams are per use (the seed is
expanded with "triples", "requests" or "randoms" as context), so streamed triples and
requested items never shift each other.

Bandwidth: parties 1..n-1 receive the 32-byte seed and nothing else, ever, and send
nothing. Party 0 receives, per item element (words = 8 bytes on Z_2^64; one domain element
on a field), only the dealt components:

    triples 1, square_pairs 1, bits 1, randoms 0, bounded_randoms 1, trunc_pairs 2,
    trunc_triples 2, edabits 1, dabits 2, bool_triples(k) k, ltz_tuples 57 (mul: 81),
    matrix_triples (k, d) @ (d, m): k*m, matrix_trunc_triples (k, d) @ (d,): k*d + 2k + 2d

and sends one small JSON request per requested item (chunk) plus one credit byte per
streamed triple batch. A trusted dealer without seeds would send every party every word.

Flow: elementwise triples are streamed ahead of demand in batches of `batch` with a window
of `window` batches (party 0 returns a credit per consumed batch); randoms need no dealer
(uniform shares are the PRG output); every other kind is requested by party 0 and answered
with party 0's corrections. Elementwise requests larger than CHUNK_WORDS words are split
into chunks along the flattened shape (every party splits alike).

[Beaver97] D. Beaver, "Commodity-based cryptography", STOC 1997.
[DPSZ12] I. Damgard, V. Pastro, N. Smart, S. Zakarias, "Multiparty computation from
somewhat homomorphic encryption", CRYPTO 2012.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any, overload

import numpy as np

from network.channel import Channel
from network.errors import FrameError
from protocols.arith.domain import Domain
from protocols.errors import ParameterError, PreprocessingExhausted
from protocols.preprocessing.base import KINDS, Preprocessing, Shape
from protocols.preprocessing.trusted_dealer import _from_limbs
from protocols.prg import KEY_BYTES, CryptoRNG, derive_key

__all__ = ["DealerClient", "DealerNode"]

MAX_REQ = 1024
#: largest item component a request may ask for (elements), and most dimensions per shape
MAX_ELEMENTS = 1 << 24
MAX_DIMS = 8
#: most words (domain elements or XOR words) of one requested item, all components together
MAX_ITEM_WORDS = 1 << 25
#: most b-words per a-word of a boolean triple
MAX_BOOL_K = 64
#: elementwise requests above this many words are split into chunks (by every party alike)
CHUNK_WORDS = 1 << 22

_U64 = np.uint64
_LOW63 = _U64((1 << 63) - 1)

#: one component of an item: (shape, how, free); how is "a" (an arithmetic share, a domain
#: element) or "x" (a XOR-shared uint64 word); free components are PRG output for every
#: party, dealt ones are PRG output for parties >= 1 and a correction for party 0
Comp = tuple[tuple[int, ...], str, bool]


def _some(v: np.ndarray | None) -> np.ndarray:
    """A drawn component that is set: free, or dealt to a party >= 1 (see _Expander.draw)."""
    assert v is not None
    return v


def _two(t: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    a, b = t
    return a, b


def _three(t: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b, c = t
    return a, b, c


def _size(shape: Shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _is_ring64(D: Domain) -> bool:
    return not D.is_field and D.modulus == 1 << 64


def _max_bits(D: Domain) -> int:
    """Most bits of a bounded random or truncation mask: 64 on Z_2^64; on a field below the
    modulus' bit length and at most 128 (as the trusted dealer)."""
    if _is_ring64(D):
        return 64
    return min(128, (D.modulus - 1).bit_length() - 1)


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


#: arguments per requested kind (randoms need no dealer)
_NARGS = {
    "triples": 1, "square_pairs": 1, "bits": 1, "bounded_randoms": 2, "trunc_pairs": 3,
    "trunc_triples": 2, "edabits": 1, "dabits": 1, "bool_triples": 2, "ltz_tuples": 2,
    "matrix_triples": 2, "matrix_trunc_triples": 3,
}
#: kinds whose format (XOR words, 2^63 truncation) exists for Z_2^64 only
_RING_ONLY = {"trunc_triples", "edabits", "dabits", "bool_triples", "ltz_tuples", "matrix_trunc_triples"}
#: positions of the uniform input words (r, a2, b2, a3, b3, rho) among an ltz tuple's arrays
_LTZ_FREE = (0, 3, 4, 6, 7, 10)


@functools.cache
def _ltz_layout(mul: bool) -> tuple[tuple[tuple[int, ...], str], ...]:
    """(leading dimensions, how) of every array of an ltz tuple, from the correlation itself."""
    from protocols.comparison import ltz_tuple_values

    words = [np.zeros(1, dtype=_U64) for _ in range(6 if mul else 5)]
    return tuple((v.shape[:-1], how) for v, how in ltz_tuple_values(*words))


def _spec(D: Domain, kind: object, args: object) -> list[Comp]:
    """The components of one item of `kind` with `args` (as sent on the wire). Validates the
    request as untrusted input: FrameError for an unknown kind, a kind this domain has no
    format for, malformed or out-of-range arguments, or more than MAX_ITEM_WORDS words."""
    if not isinstance(kind, str) or kind not in _NARGS:
        raise FrameError(f"unknown item kind {kind!r}"[:200])
    if not isinstance(args, list) or len(args) != _NARGS[kind]:
        raise FrameError(f"dealer request: {kind} takes {_NARGS[kind]} arguments")
    if kind in _RING_ONLY and not _is_ring64(D):
        raise FrameError(f"dealer request: {kind} exist for Z_2^64 only, not {D}")
    if kind in ("matrix_triples", "matrix_trunc_triples"):
        x, y = _shape_arg(args[0], "x shape"), _shape_arg(args[1], "y shape")
        if len(x) != 2 or len(y) not in (1, 2) or x[1] != y[0]:
            raise FrameError(f"matrix triples for {x} @ {y}")
        z = (x[0],) if len(y) == 1 else (x[0], y[1])
        if _size(z) > MAX_ELEMENTS:
            raise FrameError(f"dealer request: product shape {z} has more than {MAX_ELEMENTS} elements")
        if kind == "matrix_triples":
            comps = [(x, "a", True), (y, "a", True), (z, "a", False)]
        else:
            if len(y) != 1:
                raise FrameError(f"matrix truncation triples need (k, d) @ (d,), got {x} @ {y}")
            _int_arg(args[2], "f", 1, 62)
            comps = [(x, "a", True), (y, "a", True), (z, "a", False), (y, "a", True), (y, "a", False),
                     (y, "a", False), (z, "a", False), (x, "a", False)]
    else:
        s = _shape_arg(args[0])
        if kind == "triples":
            comps = [(s, "a", True), (s, "a", True), (s, "a", False)]
        elif kind == "square_pairs":
            comps = [(s, "a", True), (s, "a", False)]
        elif kind == "bits":
            comps = [(s, "a", False)]
        elif kind == "bounded_randoms":
            _int_arg(args[1], "bits", 1, _max_bits(D))
            comps = [(s, "a", False)]
        elif kind == "trunc_pairs":
            bits = _int_arg(args[2], "bits", 2, _max_bits(D))
            _int_arg(args[1], "f", 1, bits - 1)
            comps = [(s, "a", False), (s, "a", False)]
        elif kind == "trunc_triples":
            _int_arg(args[1], "f", 1, 62)
            comps = [(s, "a", True), (s, "a", False), (s, "a", False)]
        elif kind == "edabits":
            comps = [(s, "a", True), (s, "x", False)]
        elif kind == "dabits":
            comps = [(s, "a", False), (s, "x", False)]
        elif kind == "bool_triples":
            ks = (_int_arg(args[1], "k", 1, MAX_BOOL_K), *s)
            comps = [(s, "x", True), (ks, "x", True), (ks, "x", False)]
        else:  # ltz_tuples
            if type(args[1]) is not bool:
                raise FrameError("dealer request: ltz_tuples' mul must be true or false")
            comps = [((*lead, *s), how, i in _LTZ_FREE) for i, (lead, how) in enumerate(_ltz_layout(args[1]))]
    words = sum(_size(c[0]) for c in comps)
    if words > MAX_ITEM_WORDS:
        raise FrameError(f"dealer request: {kind} item of {words} words, more than {MAX_ITEM_WORDS}")
    return comps


@overload
def _bounded(D: Domain, rng: CryptoRNG, shape: Shape, bits: int, f: None = None) -> np.ndarray: ...
@overload
def _bounded(D: Domain, rng: CryptoRNG, shape: Shape, bits: int, f: int) -> tuple[np.ndarray, np.ndarray]: ...
def _bounded(
    D: Domain, rng: CryptoRNG, shape: Shape, bits: int, f: int | None = None
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Uniform integers r in [0, 2^bits) as domain elements (limbs above 64 bits); with f,
    (r, r >> f). Same distribution as the trusted dealer's."""
    lo = rng.uint64(shape)
    if bits < 64:
        lo &= _U64((1 << bits) - 1)
    hi = rng.uint64(shape) & _U64((1 << (bits - 64)) - 1) if bits > 64 else None
    r = _from_limbs(D, lo, hi)
    if f is None:
        return r
    if hi is None:
        return r, _from_limbs(D, lo >> _U64(f), None)
    return r, _from_limbs(D, (lo >> _U64(f)) | (hi << _U64(64 - f)), hi >> _U64(f))


def _values(D: Domain, rng: CryptoRNG, kind: str, args: list[Any], free: list[np.ndarray]) -> list[np.ndarray]:
    """The dealt values of one item (in component order), given its free values; the same
    correlations as trusted_dealer."""
    if kind == "triples":
        return [D.mul(free[0], free[1])]
    if kind == "square_pairs":
        return [D.mul(free[0], free[0])]
    if kind == "matrix_triples":
        return [D.matmul(free[0], free[1])]
    shape = tuple(args[0])
    if kind == "bits":
        return [D.from_int(rng.bits(shape).astype(np.int64))]
    if kind == "bounded_randoms":
        return [_bounded(D, rng, shape, args[1])]
    if kind == "trunc_pairs":
        return list(_bounded(D, rng, shape, args[2], args[1]))
    if kind == "trunc_triples":
        r = free[0]
        return [(r & _LOW63) >> _U64(args[1]), r >> _U64(63)]
    if kind == "edabits":
        return [np.array(free[0], dtype=_U64)]  # the same r, as XOR-shared words
    if kind == "dabits":
        b = rng.bits(shape)
        return [D.from_int(b.astype(np.int64)), b]
    if kind == "bool_triples":
        return [free[0][None] & free[1]]
    if kind == "ltz_tuples":
        from protocols.comparison import ltz_tuple_values

        return [v for i, (v, _) in enumerate(ltz_tuple_values(*free)) if i not in _LTZ_FREE]
    if kind == "matrix_trunc_triples":
        A, B, r = free
        r_hi = (r & _LOW63) >> _U64(args[2])
        r_msb = r >> _U64(63)
        return [D.matmul(A, B), r_hi, r_msb, D.matmul(A, r_hi), A * r_msb]
    raise FrameError(kind)


def _join(D: Domain, how: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x + y (arithmetic) or x XOR y (words)."""
    return D.add(x, y) if how == "a" else np.asarray(np.bitwise_xor(x, y))


def _split(D: Domain, how: str, v: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The share s with _join(s, y) = v: v - y or v XOR y."""
    return D.sub(v, y) if how == "a" else np.asarray(np.bitwise_xor(v, y))


class _Expander:
    """One party's pseudo-random shares of one stream (the dealer runs one per party)."""

    def __init__(self, D: Domain, seed: bytes, stream: str) -> None:
        self.D, self.rng = D, CryptoRNG(derive_key(seed, "dealer-stream", stream))

    def draw(self, comps: list[Comp], party: int) -> list[np.ndarray | None]:
        """Free components always; dealt components for parties >= 1 (party 0: None)."""
        return [
            (self.D.random(self.rng, s) if how == "a" else self.rng.uint64(s)) if (free or party != 0) else None
            for s, how, free in comps
        ]


class DealerNode:
    """The dealer's side. `channel`: the dealer's endpoint on a network whose other members
    are the n computing parties 0..n-1 (the dealer's own index is channel.pid). Run
    `await serve()` until party 0 closes.

    Requests are validated as untrusted input (`_spec`): a kind it knows and has a format
    for in this domain, the right number of arguments, shapes as lists of at most MAX_DIMS
    non-negative integers with at most MAX_ELEMENTS elements per shape and MAX_ITEM_WORDS
    words per item, 0 < f < bits <= 64 (fields: below the modulus' bit length, <= 128),
    0 < f < 63 for the 2^63 truncation kinds, 1 <= k <= MAX_BOOL_K, mul a JSON boolean.
    Anything else raises FrameError from serve() and closes the dealer's channel."""

    def __init__(self, channel: Channel, n: int, domain: Domain, rng: CryptoRNG, *, batch: int = 1 << 16, window: int = 4) -> None:
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
        comps: list[Comp] = [((self.batch,), "a", True), ((self.batch,), "a", True), ((self.batch,), "a", False)]
        k = 0
        while True:
            if k >= self.window:
                await self.ch.recv_bytes(p0, f"dealer-credit#{k - self.window}", max_len=1)
            draws = [e.draw(comps, i) for i, e in enumerate(exps)]
            a = _some(draws[0][0])
            b = _some(draws[0][1])
            for d in draws[1:]:
                a, b = D.add(a, _some(d[0])), D.add(b, _some(d[1]))
            c0 = D.mul(a, b)
            for d in draws[1:]:
                D.sub(c0, _some(d[2]), out=c0)
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
            comps = _spec(D, kind, args)
            draws = [e.draw(comps, i) for i, e in enumerate(exps)]
            free: list[np.ndarray] = []
            for j, (_, how, is_free) in enumerate(comps):
                if is_free:
                    v = _some(draws[0][j])
                    for d in draws[1:]:
                        v = _join(D, how, v, _some(d[j]))
                    free.append(v)
            dealt = iter(_values(D, self.rng, kind, args, free))
            for j, (shape, how, is_free) in enumerate(comps):
                if is_free:
                    continue
                corr = np.asarray(next(dealt)).reshape(shape)
                for d in draws[1:]:
                    corr = _split(D, how, corr, _some(d[j]))
                wire = D.to_wire(corr) if how == "a" else np.array(corr, dtype=_U64, order="C")  # keeps 0-d
                await self.ch.send(p0, f"dealer-resp#{k}.{j}", wire)
                self.sent_elements += corr.size
            k += 1


class DealerClient(Preprocessing):
    """A computing party's view of a DealerNode. `channel`: this party's endpoint on the
    dealer network; `dealer`: the dealer's index there. Party `pid` 0 talks to the dealer;
    the others only receive their seed. Every kind of base.KINDS, in trusted_dealer's
    formats; kinds this domain has no format for (the XOR and 2^63 kinds off Z_2^64: see
    `supports`) raise PreprocessingUnsupported and items above the node's bounds
    PreprocessingExhausted, with nothing sent, alike on every party. Security and bandwidth: see the module
    docstring."""

    name = "dealer"

    def __init__(self, pid: int, n: int, domain: Domain, channel: Channel, dealer: int, *, batch: int = 1 << 16) -> None:
        if not 0 <= pid < n:
            raise ParameterError(f"party index {pid} outside 0..{n - 1}")
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
        comps: list[Comp] = [((self.batch,), "a", True), ((self.batch,), "a", True), ((self.batch,), "a", False)]
        assert self._tri is not None  # set by _start
        a, b, c = self._tri.draw(comps, self.pid)
        k = self._k_tri
        self._k_tri += 1
        if self.pid == 0:
            w = await self.ch.recv_array(
                self.dealer, f"dealer-tri#{k}", dtype=self.D.wire_dtype, shape=self.D.wire_shape((self.batch,))
            )
            c = self.D.from_wire(w, (self.batch,)).copy()
            await self.ch.send(self.dealer, f"dealer-credit#{k}", b"1")
        return [_some(a), _some(b), _some(c)]

    async def triples(self, shape: Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        shape = tuple(shape)
        k = _size(shape)
        async with self._lock:
            await self._start()
            parts: list[list[np.ndarray]] = [] if self._pool is None else [self._pool]
            have = 0 if self._pool is None else self._pool[0].size
            while have < k:
                fresh = await self._next_triple_batch()
                parts.append(fresh)
                have += self.batch
            pool = [np.concatenate([p[i] for p in parts]) for i in range(3)] if len(parts) > 1 else parts[0]
            out = [v[:k].reshape(shape) for v in pool]
            self._pool = [v[k:] for v in pool]
        return out[0], out[1], out[2]

    def supports(self, kind: str) -> bool:
        """Every kind on Z_2^64; on GF(p) the arithmetic kinds only (the dealer node has no
        format for the XOR and 2^63 kinds there)."""
        if kind not in KINDS:
            raise ValueError(f"unknown preprocessing kind {kind!r}")
        return _is_ring64(self.D) or kind not in _RING_ONLY

    def _comps(self, kind: str, args: list[Any]) -> list[Comp]:
        if not self.supports(kind):
            raise self._unsupported(f"{kind} over {self.D}", args)
        try:
            return _spec(self.D, kind, args)
        except FrameError as e:
            raise PreprocessingExhausted(f"{self.name}: cannot supply {kind} {args}: {e}"[:300]) from None

    async def _one(self, kind: str, args: list[Any], comps: list[Comp]) -> list[np.ndarray]:
        """One request (the lock held): this party's shares of one item."""
        assert self._req is not None  # set by _start
        mine = self._req.draw(comps, self.pid)
        k = self._k_req
        self._k_req += 1
        if self.pid == 0:
            await self.ch.send(self.dealer, f"dealer-req#{k}", json.dumps({"kind": kind, "args": args}).encode())
            for j, (shape, how, free) in enumerate(comps):
                if free:
                    continue
                if how == "a":
                    w = await self.ch.recv_array(
                        self.dealer, f"dealer-resp#{k}.{j}", dtype=self.D.wire_dtype, shape=self.D.wire_shape(shape)
                    )
                    mine[j] = self.D.from_wire(w, shape)
                else:
                    mine[j] = await self.ch.recv_array(self.dealer, f"dealer-resp#{k}.{j}", dtype=_U64, shape=shape)
        return [_some(v) for v in mine]

    async def _request(self, kind: str, args: list[Any]) -> tuple[np.ndarray, ...]:
        """A matrix item: one request."""
        comps = self._comps(kind, args)
        async with self._lock:
            await self._start()
            return tuple(await self._one(kind, args, comps))

    async def _elementwise(self, kind: str, shape: Shape, *extra_args: int | bool) -> tuple[np.ndarray, ...]:
        """An elementwise item of `shape` (every component is (*lead, *shape)): one request,
        or chunks of the flattened shape of at most CHUNK_WORDS words each, joined."""
        shape = tuple(int(d) for d in shape)
        extra = list(extra_args)
        unit = self._comps(kind, [[1], *extra])
        per = sum(_size(s) for s, _, _ in unit)
        N = _size(shape)
        async with self._lock:
            await self._start()
            if N * per <= CHUNK_WORDS:
                args = [list(shape), *extra]
                return tuple(await self._one(kind, args, self._comps(kind, args)))
            step = max(1, CHUNK_WORDS // per)
            parts: list[list[np.ndarray]] = []
            for lo in range(0, N, step):
                args = [[min(step, N - lo)], *extra]
                parts.append(await self._one(kind, args, self._comps(kind, args)))
        return tuple(
            np.concatenate([p[j] for p in parts], axis=-1).reshape(*s[:-1], *shape) for j, (s, _, _) in enumerate(unit)
        )

    async def square_pairs(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        return _two(await self._elementwise("square_pairs", shape))

    async def bits(self, shape: Shape) -> np.ndarray:
        return (await self._elementwise("bits", shape))[0]

    async def randoms(self, shape: Shape) -> np.ndarray:
        async with self._lock:
            await self._start()
            assert self._rand is not None  # set by _start
            return self.D.random(self._rand.rng, tuple(shape))  # shares of a uniform value, no dealer

    async def matrix_triples(self, x_shape: Shape, y_shape: Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _three(await self._request("matrix_triples", [[int(d) for d in x_shape], [int(d) for d in y_shape]]))

    async def trunc_pairs(self, shape: Shape, f: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 < f < bits:
            raise ParameterError(f"trunc pairs need 0 < f < bits, got f={f}, bits={bits}")
        return _two(await self._elementwise("trunc_pairs", shape, int(f), int(bits)))

    async def bounded_randoms(self, shape: Shape, bits: int) -> np.ndarray:
        return (await self._elementwise("bounded_randoms", shape, int(bits)))[0]

    async def trunc_triples(self, shape: Shape, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(r, (r mod 2^63) >> f, r >> 63) on Z_2^64, r uniform (free: 2 words to party 0)."""
        return _three(await self._elementwise("trunc_triples", shape, int(f)))

    async def edabits(self, shape: Shape, bits: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """(arithmetic share of r, XOR share of r) for uniform r in Z_2^64 (bits = 64 only;
        the dealer node serves the mixed kinds for Z_2^64, not for fields)."""
        if bits != 64 and self.supports("edabits"):
            raise PreprocessingExhausted(f"{self.name}: edaBits of {bits} bits (the dealer node deals 64)")
        return _two(await self._elementwise("edabits", shape))

    async def dabits(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        """(arithmetic share of b, XOR share of b) for uniform bits b (Z_2^64)."""
        return _two(await self._elementwise("dabits", shape))

    async def bool_triples(self, shape: Shape, k: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """XOR shares of (a, b, a[None] & b), a of `shape`, b and c of (k, *shape)."""
        return _three(await self._elementwise_k(shape, int(k)))

    async def _elementwise_k(self, shape: Shape, k: int) -> tuple[np.ndarray, ...]:
        # bool triples' b and c are (k, *shape): leading k, chunked like any other kind
        return await self._elementwise("bool_triples", shape, k)

    async def ltz_tuples(self, shape: Shape, mul: bool = False) -> tuple[np.ndarray, ...]:
        """protocols.comparison.ltz_tuple_values of uniform words, each array shared as it says."""
        return await self._elementwise("ltz_tuples", shape, bool(mul))

    async def matrix_trunc_triples(self, x_shape: Shape, y_shape: Shape, f: int) -> tuple[np.ndarray, ...]:
        """(A, B, A @ B, r, r_hi, r_msb, A @ r_hi, A * r_msb) as base.Preprocessing says."""
        return await self._request(
            "matrix_trunc_triples", [[int(d) for d in x_shape], [int(d) for d in y_shape], int(f)]
        )

    async def close(self) -> None:
        """Party 0 tells the dealer to stop (other parties: no-op)."""
        if self.pid == 0:
            await self.ch.send(self.dealer, f"dealer-req#{self._k_req}", json.dumps({"kind": "close", "args": []}).encode())
            self._k_req += 1
