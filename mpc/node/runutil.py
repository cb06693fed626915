"""Helpers of the job runner (mpc.node.runner), kept apart to keep that module short: the
typed abort of a job, the node's computation domain, sealing to the analyst, and a cancel
that is not lost on Python 3.11."""

from __future__ import annotations

import asyncio
import base64
import contextlib

from mpc.node import codes
from network.errors import SmpcError


class JobAbortError(SmpcError):
    """This node aborts the running job with a code (mpc.node.codes) that every node reports
    (the client sees it in JobFailedError.reasons)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


#: deprecated name of JobAbortError
JobFailed = JobAbortError


def domain_for(scheme: str):
    """The domain a node computes in: Z_2^64 (additive) or GF(2^127 - 1) (Shamir: room for
    fixed-point products)."""
    if scheme == "additive":
        from protocols.arith.ring import Ring64

        return Ring64()
    from protocols.arith.field import Mersenne127

    return Mersenne127()


def seal_to_analyst(analyst_key: bytes, data: bytes) -> str:
    from nacl.public import SealedBox
    from nacl.signing import VerifyKey

    try:
        pk = VerifyKey(analyst_key).to_curve25519_public_key()
        return base64.b64encode(SealedBox(pk).encrypt(data)).decode()
    except Exception as e:  # PyNaCl raises untyped errors
        raise JobAbortError(codes.DELIVER_SEAL, f"cannot seal the output to the analyst's key: "
                        f"{type(e).__name__}") from None


async def cancel_until_done(task: asyncio.Task, *, every: float = 0.2) -> None:
    """Cancel `task` and wait for it, cancelling again while it runs: on Python 3.11
    `asyncio.wait_for` swallows a cancellation that arrives as the awaited future completes
    (CPython gh-86296, fixed in 3.12), and the channels' receive path uses wait_for, so a
    single cancel() during busy traffic can be lost and the job would run on after SIGTERM."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every)
    with contextlib.suppress(BaseException):
        task.result()
