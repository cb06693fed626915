"""input: the owner secret-shares a plaintext value as SecInt or SecFxp, announcing the type
(one 8-byte word per peer, in the same round as core.input)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np

from network.errors import FrameError, SmpcError
from protocols import core
from protocols.arith.fixedpoint import DEFAULT_F, FixedPoint
from protocols.errors import DomainError, InputRangeError, PartyIndexError
from protocols.secure_types.arrays import Pending, SecFxp, SecInt, SecureArray
from protocols.session import Session, Share

_KIND_INT, _KIND_FXP = 0, 1


# =========================================================================================
# input
# =========================================================================================
def _encode_input(s: Session, value: Any, f: int | None) -> tuple[np.ndarray, int, int]:
    """(domain array, kind, f) of the owner's value. Raises DomainError / InputRangeError."""
    if value is None:
        raise DomainError(f"party {s.pid} owns this input but passed None")
    if isinstance(value, SecureArray | Pending | Share):
        raise DomainError("input takes a plaintext value; this one is already secret")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise DomainError(f"input: not an array of numbers: {e}") from None
    kind = arr.dtype.kind
    if kind == "f":
        ff = DEFAULT_F if f is None else f
        return FixedPoint(s.domain, ff).encode(arr), _KIND_FXP, ff
    if kind in "iub":
        if kind == "u" and arr.size and int(arr.max()) >= 2**63:
            raise InputRangeError("input: unsigned integers >= 2^63 do not fit a signed value")
        ints = arr.astype(np.int64)
        half = s.domain.modulus // 2
        if s.domain.modulus < 2**64 and ints.size and int(np.abs(ints).max()) >= half:
            raise InputRangeError(f"input: integers must satisfy |x| < {half} on {s.domain}")
        return s.domain.from_int(ints), _KIND_INT, 0
    raise DomainError(f"input: expected integers or reals, got dtype {arr.dtype}")


async def _input_one(s: Session, value: Any, owner: int, f: int | None) -> SecureArray:
    if not isinstance(owner, int | np.integer) or isinstance(owner, bool) or not 0 <= owner < s.n:
        raise PartyIndexError(f"owner must be a party index in 0..{s.n - 1}, got {owner!r}")
    owner = int(owner)
    tag = s.tag("input.type")
    if s.pid == owner:
        data, kind, ff = _encode_input(s, value, f)
        word = np.array([kind | (ff << 8)], dtype=np.uint64)
        try:
            for j in s.peers:
                await s.channel.send(j, tag, word)
        except SmpcError as e:
            await s.abort(e)
            raise
        share = await core.input(s, data, owner)
    else:
        if value is not None:
            raise DomainError(f"party {s.pid} passed a value for party {owner}'s input (pass None)")
        try:
            w = await s.channel.recv_array(owner, tag, dtype=np.uint64, shape=(1,))
            kind, ff = int(w[0]) & 0xFF, int(w[0]) >> 8
            if kind not in (_KIND_INT, _KIND_FXP) or ff > 61 or (kind == _KIND_INT and ff):
                raise FrameError(f"party {s.pid}: malformed type word from party {owner}")
        except SmpcError as e:
            await s.abort(e)
            raise
        share = await core.input(s, None, owner)
    return SecInt(share, s) if kind == _KIND_INT else SecFxp(share, ff, s)


async def input(  # noqa: A001
    s: Session, value: Any, owner: int | Sequence[int], *, f: int | None = None
) -> Any:
    """Secret-share `value` of party `owner` as SecInt (integer / bool dtypes) or SecFxp
    (float dtypes, f fractional bits: DEFAULT_F = 16 unless given); the other parties pass
    None and receive the type and the shape. With a sequence of owners every owner passes
    its own value (the others None) and all get a list, in owner order (concurrently: one
    round of latency).

    Shapes: value: any (numpy arrays, scalars, lists, pandas objects); returns that shape.
    Rounds: 1 per owner (Stats counts core.input's round; a sequence runs them concurrently).
    Messages, Bytes: those of core.input plus one 8-byte type word to each peer from the
    owner: (n-1)*(8 + 8*ndim + N*e) bytes sent by the owner, 0 by the others.
    Security: as core.input; the type (integer or fixed point, f) is public, like the shape.
    Raises: DomainError (owner passes None, a non-owner passes a value, wrong dtype),
    InputRangeError (NaN, inf, out of range), PartyIndexError, FrameError.
    """
    if isinstance(owner, int | np.integer):
        return await _input_one(s, value, int(owner), f)
    owners = [int(o) for o in owner]
    if len(set(owners)) != len(owners):
        raise PartyIndexError(f"input: owners repeat: {owners}")
    if s.pid not in owners and value is not None:
        raise DomainError(f"party {s.pid} is not among the owners {owners} but passed a value (pass None)")

    async def one(j: int) -> SecureArray:
        got = await _input_one(s.child(f"input{j}"), value if j == s.pid else None, j, f)
        got._s = s  # the value belongs to the caller's session, not to the branch
        got.share = Share(got.share.data, s)
        return got

    return list(await asyncio.gather(*(one(j) for j in owners)))
