"""One place that builds a party's Session: run_local, the party processes and the node daemon
all call `new_session` (counted channel, fresh Stats, CSPRNG) and `with_source` (the
preprocessing source wrapped in `Buffered`, guarded by the session's abort state)."""

from __future__ import annotations

import dataclasses

from protocols.preprocessing.buffered import Buffered
from protocols.prg import CryptoRNG
from protocols.session import CountingChannel, Session, Stats


def new_session(pid: int, n: int, scheme, channel, *, sid: bytes, seed=None, prep=None,
                security: str = "semi-honest") -> Session:
    """Party `pid`'s session over `channel` (wrapped to count rounds, messages and bytes).
    `seed` None (production) draws the party's randomness from the OS CSPRNG."""
    stats = Stats()
    return Session(pid=pid, n=n, domain=scheme.domain, scheme=scheme,
                   channel=CountingChannel(channel, stats), prep=prep,
                   rng=CryptoRNG.from_seed(seed, "party", pid), stats=stats, sid=sid,
                   security=security)


def with_source(s: Session, source, *, guard: bool = True) -> Session:
    """`s` with `source` as its preprocessing, buffered (fetch ahead with `s.prep.fill`)."""
    return dataclasses.replace(s, prep=Buffered(source, guard=s.check_alive if guard else None))
