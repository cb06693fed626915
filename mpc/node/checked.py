"""Delivery of a malicious-security job's outputs (issue 16): outputs are MShares of
protocols.malicious.chida18 [Chida et al., CRYPTO 2018]; every pending input, product and
opening is verified before any share leaves the node (sealed to the analyst or revealed to a
party), so a detected cheat (security.cheating_detected) releases nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np


async def verify_before_release(s: Any) -> None:
    """malicious.verify in a malicious session (3 rounds; nothing if nothing is pending);
    nothing in a semi-honest one."""
    if s.security == "malicious":
        from protocols.malicious import verify

        await verify(s)


def share_data(share: Any) -> np.ndarray:
    """This node's share of the value: an MShare's [x] component (its [r*x] MAC share stays
    here), or a Share's data."""
    from protocols.malicious.chida18 import MShare

    data: np.ndarray = share.x.data if isinstance(share, MShare) else share.data
    return data


def reveal_fn(share: Any) -> Callable[..., Awaitable[Any]]:
    """The reveal-to-one-party protocol for this share: malicious.reveal_to (verified) for an
    MShare, core.reveal_to for a Share."""
    from protocols.malicious.chida18 import MShare

    if isinstance(share, MShare):
        from protocols.malicious import reveal_to

        return reveal_to
    from protocols import core

    return core.reveal_to
