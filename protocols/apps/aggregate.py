"""Secure aggregates across parties: sum, count, mean of every party's local data; only the
aggregate is formed (each party inputs its local partial aggregate; the sum of inputs is the
ideal functionality's output), and it is revealed to `reveal_to` only (or to all if None).

Rounds: sum / count: 2 (input, reveal); mean: 2 + reciprocal (26) + 2.
"""

from __future__ import annotations

import numpy as np

from protocols import beaver
from protocols.apps.ml._base import decode, encode, sum_inputs
from protocols.arith.fixedpoint import DEFAULT_F
from protocols.core import open as open_shares
from protocols.core import reveal_to as core_reveal_to
from protocols.nonlinear import reciprocal
from protocols.session import Session, Share
from protocols.truncation import trunc

#: counts are divided by 2^COUNT_SHIFT before the reciprocal (its interval [2^-8, 2^16)
#: then covers counts 1 .. 2^24 - 1)
COUNT_SHIFT = 8


async def _release(s: Session, x: Share, reveal_to: int | None) -> np.ndarray | None:
    if reveal_to is None:
        (v,) = await open_shares(s, x)
        return v
    return await core_reveal_to(s, x, reveal_to)


async def secure_sum(
    s: Session, x_local: np.ndarray, *, axis: int | None = 0, reveal_to: int | None = None,
    f: int = DEFAULT_F, keep_shared: bool = False,
) -> Share | np.ndarray | None:
    """sum over all parties of x_local.sum(axis) (fixed point, f bits). Returns the float
    result at reveal_to (all if None; None elsewhere), or the Share if keep_shared."""
    loc = np.asarray(x_local, dtype=np.float64)
    part = loc.sum(axis=axis) if axis is not None else loc.sum()
    tot = await sum_inputs(s, encode(s, np.atleast_1d(part), f))
    if keep_shared:
        return tot
    v = await _release(s, tot, reveal_to)
    return None if v is None else decode(s, v, f)


async def secure_count(
    s: Session, mask_local: np.ndarray, *, reveal_to: int | None = None, keep_shared: bool = False
) -> Share | int | None:
    """The number of true entries of every party's boolean mask, summed (exact integer)."""
    c = np.array([int(np.count_nonzero(mask_local))], dtype=np.int64)
    tot = await sum_inputs(s, s.public(c))
    if keep_shared:
        return tot
    v = await _release(s, tot, reveal_to)
    return None if v is None else int(s.domain.to_signed(v)[0])


async def secure_mean(
    s: Session, x_local: np.ndarray, *, reveal_to: int | None = None, f: int = DEFAULT_F
) -> np.ndarray | None:
    """Column means of the union of all parties' rows; neither the per-party sums nor the
    total count are revealed: mean = S * 2^-8 / (C 2^-8) with a secure reciprocal
    (relative error ~2e-5, counts below 2^24)."""
    loc = np.asarray(x_local, dtype=np.float64)
    loc2 = loc.reshape(len(loc), -1)
    k = loc2.shape[1]
    part = np.concatenate([loc2.sum(0), [len(loc2) / 2.0**COUNT_SHIFT]])
    tot = await sum_inputs(s, encode(s, part, f))
    inv = await reciprocal(s, tot[k:], f)  # 2^8 / C
    prod = await beaver.mul(s, tot[:k], Share(np.repeat(inv.data, k), s))
    mean = await trunc(s, prod, f + COUNT_SHIFT)
    v = await _release(s, mean, reveal_to)
    return None if v is None else decode(s, v, f).reshape(loc.shape[1:])
