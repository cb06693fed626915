"""Build n in-process sessions over a MemoryNetwork with a given preprocessing source."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

from network.memory import MemoryNetwork
from protocols.arith.field import Mersenne61
from protocols.arith.ring import Ring64
from protocols.prg import CryptoRNG
from protocols.session import CountingChannel, Session, Stats
from protocols.sharing.schemes import AdditiveScheme, ShamirShares


def make_scheme(kind: str, n: int):
    if kind == "shamir":
        return ShamirShares(Mersenne61(), n, (n - 1) // 2)
    return AdditiveScheme(Ring64(), n)


def sessions(n: int, scheme, make_prep: Callable[[Session], object], *, seed: int = 7, net=None):
    net = net or MemoryNetwork(n, timeout=20)
    out = []
    for pid in range(n):
        st = Stats()
        s = Session(
            pid=pid, n=n, domain=scheme.domain, scheme=scheme,
            channel=CountingChannel(net.channel(pid), st), prep=None,
            rng=CryptoRNG.from_seed(seed, "party", pid), stats=st, sid=b"test-sid",
        )
        out.append(dataclasses.replace(s, prep=make_prep(s)))
    return out


def run_all(ss, job: Callable[[Session], Awaitable]):
    async def main():
        return await asyncio.gather(*(job(s) for s in ss))

    return asyncio.run(main())


def reconstruct(scheme, shares):
    return scheme.reconstruct({i: sh for i, sh in enumerate(shares)})
