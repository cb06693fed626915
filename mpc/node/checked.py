"""Delivery of a malicious-security job's outputs (issue 16): outputs are MShares of
protocols.malicious.chida18 [Chida et al., CRYPTO 2018] (Shamir, honest majority) or AShares
of protocols.malicious.spdz2k [Cramer et al., CRYPTO 2018] (additive over Z_2^64, dishonest
majority); every pending input, product and opening is verified (chida18.verify) or
MAC-checked (spdz2k.check) before any share leaves the node (sealed to the analyst or
revealed to a party), so a detected cheat (security.cheating_detected) releases nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np


def is_spdz2k(s: Any) -> bool:
    """Whether the session runs SPDZ2k (malicious security over additive sharing)."""
    return bool(s.security == "malicious" and s.scheme.kind == "additive")


async def verify_before_release(s: Any) -> None:
    """In a malicious session: malicious.verify (Shamir; 3 rounds) or spdz2k.check (SPDZ2k;
    5 rounds), each nothing if nothing is pending; nothing in a semi-honest one."""
    if is_spdz2k(s):
        from protocols.malicious import spdz2k

        await spdz2k.check(s)
    elif s.security == "malicious":
        from protocols.malicious import verify

        await verify(s)


def share_data(share: Any) -> np.ndarray:
    """This node's share of the value, in the domain's wire layout: an MShare's [x] component
    (its [r*x] MAC share stays here), an AShare's value share mod 2^64 (its MAC share and the
    upper 64 bits stay here: the shares mod 2^64 add up to the value mod 2^64, what the
    analyst decodes), or a Share's data. (A SPDZ2k job's outputs to the analyst do not go
    through here: spdz2k.output_to_client seals them masked, with their MAC and key shares.)"""
    from protocols.malicious.chida18 import MShare
    from protocols.malicious.spdz2k import AShare

    if isinstance(share, AShare):
        return share.x[..., 0].copy()  # the low words, shape kept (a 0-d intercept too)
    data: np.ndarray = share.x.data if isinstance(share, MShare) else share.data
    return data


def reveal_fn(share: Any) -> Callable[..., Awaitable[Any]]:
    """The reveal-to-one-party protocol for this share: malicious.reveal_to (verified) for an
    MShare, spdz2k.reveal_to (MAC-checked) for an AShare, core.reveal_to for a Share."""
    from protocols.malicious.chida18 import MShare
    from protocols.malicious.spdz2k import AShare

    if isinstance(share, MShare):
        from protocols.malicious import reveal_to

        return reveal_to
    if isinstance(share, AShare):
        from protocols.malicious import spdz2k

        return spdz2k.reveal_to
    from protocols import core

    return core.reveal_to
