"""The second factor of `ltz_mul` when it is not a Share yet: an `OpenWith` (openings that
ride in the comparison's first message, then a local finish) or an awaitable."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from protocols.core import open
from protocols.session import Session, Share


@dataclass(frozen=True)
class OpenWith:
    """A factor y for `ltz_mul` that is not computed yet: `shares` are opened in the
    comparison's FIRST round (packed into its message, no extra round or message), then
    y = then(opened values) (local). E.g. a truncation: shares = [x + 2^62 + r] from
    truncation.trunc_mask, then = truncation.trunc_finish."""

    shares: tuple[Share, ...]
    then: Callable[[list[np.ndarray]], Share]


#: what `ltz_mul` accepts as its second factor
Factor = Share | OpenWith | Awaitable[Share]


async def resolve(s: Session, y: Factor, child: str = "w") -> Share:
    """y as a Share: awaits an awaitable; opens an OpenWith's shares (in a child session,
    so it may run concurrently with other rounds) and applies its `then`."""
    if isinstance(y, Share):
        return y
    if isinstance(y, OpenWith):
        return y.then(await open(s.child(child), *y.shares))
    return await y
