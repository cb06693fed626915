"""Getting values in and out of secret-shared form: input, open, reveal_to.

Bytes are payload bytes per party, with e = domain.elem_bytes (8 for Z_2^64 and
GF(2^61 - 1)) and N the number of elements.
"""

from __future__ import annotations

import numpy as np

from network.errors import FrameError, SmpcError
from protocols.errors import DomainError, PartyIndexError, ShapeMismatch
from protocols.session import Session, Share

#: largest number of dimensions / elements a party accepts for another party's input
MAX_NDIM = 32
MAX_ELEMENTS = 1 << 31


def _check_party(s: Session, party: int, what: str) -> None:
    if not isinstance(party, int | np.integer) or not 0 <= party < s.n:
        raise PartyIndexError(f"{what} must be a party index in 0..{s.n - 1}, got {party!r}")


async def input(s: Session, x: np.ndarray | None, owner: int) -> Share:  # noqa: A001
    """The owner secret-shares its array x; the others learn only its shape.

        owner: shares_j = scheme.share(x), sends shares_j to party j

    Shapes: x: S (given by the owner only; others pass None); returns a Share of shape S.
    Rounds: 1.  Messages: the owner sends 2(n-1) (shape, then shares); others send none.
    Bytes: owner sends (n-1)*(8*ndim + N*e); the others send 0.
    Security: a coalition without the owner sees at most n-1 additive shares (or t Shamir
    shares), uniformly distributed and independent of x.  Raises: DomainError,
    PartyIndexError, FrameError (a malformed shape announcement), MaliciousUnsupportedError
    (a malicious session: use protocols.malicious.input).
    """
    s.require_semi_honest("core.input")
    return await _input(s, x, owner)


async def _input(s: Session, x: np.ndarray | None, owner: int) -> Share:
    """core.input without the security guard (protocols.malicious builds on it)."""
    _check_party(s, owner, "owner")
    tag = s.tag("input")
    dom = s.domain
    if s.pid == owner:
        if x is None:
            raise DomainError(f"party {owner} owns this input but passed None")
        dom.check(x)
        if x.ndim > MAX_NDIM or x.size > MAX_ELEMENTS:
            raise ShapeMismatch(f"input too large: shape {x.shape}")
        shares = s.scheme.share(s.rng, x)
        header = np.array(x.shape, dtype=np.uint64)
        try:
            for j in s.peers:
                await s.channel.send(j, tag + ".shape", header)
        except SmpcError as e:
            await s.abort(e)
            raise
        await s.exchange(tag, {j: shares[j] for j in s.peers}, {})
        return Share(shares[owner], s)
    if x is not None:
        raise DomainError(f"party {s.pid} passed a value for party {owner}'s input")
    try:
        announced = await s.channel.recv(owner, tag + ".shape")
        if (
            not isinstance(announced, np.ndarray)
            or announced.dtype != np.uint64
            or announced.ndim != 1
            or announced.size > MAX_NDIM
        ):
            raise FrameError(f"party {s.pid}: malformed shape announcement from party {owner}")
        shape = tuple(int(d) for d in announced)
        if int(np.prod(shape, dtype=object)) > MAX_ELEMENTS:
            raise FrameError(f"party {s.pid}: announced input shape {shape} is too large")
    except SmpcError as e:
        await s.abort(e)
        raise
    got = await s.exchange(tag, {}, {owner: shape})
    return Share(got[owner], s)


#: a batch of openings whose wire arrays total at most this many bytes travels as one
#: message per peer (per-message costs dominate small opens: a training iteration opens
#: several small arrays per round)
PACK_BYTES = 1 << 19


async def open(s: Session, *xs: Share) -> list[np.ndarray]:  # noqa: A001
    """Reveal several shared arrays to every party in one round.

        every party sends its share of each x to every other party and reconstructs

    Shapes: any; returns one array per input, same shapes.
    Rounds: 1 (all arrays batched).  Messages: n-1 sent per party when the k >= 2 arrays
    total at most PACK_BYTES (512 KiB) on the wire (packed into one message per peer),
    otherwise k(n-1).   Bytes: (n-1) * sum(N_i) * e sent per party.
    Security: reveals the values (only call on what may be public). Shamir opening checks
    that all n shares lie on one degree-t polynomial: ShareInconsistencyError otherwise.
    Raises: ShareInconsistencyError, FrameError, DomainError, PeerUnavailableError,
    MaliciousUnsupportedError (a malicious session: use protocols.malicious.open).
    """
    s.require_semi_honest("core.open")
    if not xs:
        return []
    D = s.domain
    wires = [D.to_wire(x.data) for x in xs]
    packed = len(xs) > 1 and sum(w.nbytes for w in wires) <= PACK_BYTES
    # one message (or one per array), all sent before any is awaited: one round in all
    try:
        if packed:
            tag = s.tag("open")
            flat = np.concatenate([w.reshape(-1) for w in wires])
            for j in s.peers:
                await s.channel.send(j, tag, flat)
            bounds, k = [], 0
            for w in wires:
                bounds.append((k, k + w.size, w.shape))
                k += w.size
            received = {}
            for j in s.peers:
                got = await s.channel.recv_array(j, tag, dtype=D.wire_dtype, shape=flat.shape)
                # slices, not np.split (which costs more than the arrays here are worth)
                received[j] = [got[a:b].reshape(shape) for a, b, shape in bounds]
        else:
            tags = [s.tag("open") for _ in xs]
            for tag, wire in zip(tags, wires, strict=True):
                for j in s.peers:
                    await s.channel.send(j, tag, wire)
            received = {j: [] for j in s.peers}
            for tag, w in zip(tags, wires, strict=True):
                for j in s.peers:
                    received[j].append(
                        await s.channel.recv_array(j, tag, dtype=D.wire_dtype, shape=w.shape)
                    )
        out = []
        for i, x in enumerate(xs):
            shares = {s.pid: x.data}
            for j in s.peers:
                shares[j] = D.from_wire(received[j][i], x.shape)
            out.append(_reconstruct(s, shares))
    except SmpcError as e:
        await s.abort(e)
        raise
    s.stats.rounds += 1
    return out


def _reconstruct(s: Session, shares: dict[int, np.ndarray]) -> np.ndarray:
    if s.scheme.kind == "additive":
        dom = s.domain
        acc = dom.add(shares[0], shares[1])
        for j in range(2, s.n):
            dom.add(acc, shares[j], out=acc)
        return acc
    return s.scheme.reconstruct(shares)


async def reveal_to(s: Session, x: Share, party: int) -> np.ndarray | None:
    """Reveal x to `party` only; every other party gets None and learns nothing.

    Shapes: x: S; returns S at `party`, None elsewhere.
    Rounds: 1.  Bytes: N*e sent by every party but `party`, which sends nothing.
    Security: only `party` receives shares. Raises: PartyIndexError, ShareInconsistencyError,
    MaliciousUnsupportedError (a malicious session: use protocols.malicious.reveal_to).
    """
    s.require_semi_honest("core.reveal_to")
    _check_party(s, party, "party")
    tag = s.tag("reveal")
    if s.pid != party:
        await s.exchange(tag, {party: x.data}, {})
        return None
    got = await s.exchange(tag, {}, {j: x.shape for j in s.peers})
    got[s.pid] = x.data
    try:
        return _reconstruct(s, got)
    except SmpcError as e:
        await s.abort(e)
        raise

