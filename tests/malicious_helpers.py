"""Test doubles for malicious-security tests: a cheating channel and a runner that puts a
cheater (the last party) into an otherwise honest run."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np

from mpc.local import close_sessions, open_sessions
from network.channel import Channel


class Cheat(Channel):
    """Wraps the cheater's channel: the first non-empty message under a tag starting with
    `prefix` (to `peers`, default all) gets 1 added to its first field element (`domain` None: to its
    first raw wire word, e.g. SPDZ2k's Z_2^128 limbs)."""

    def __init__(self, inner, domain, prefix: str, peers=None):
        self.inner, self.D, self.prefix, self.peers = inner, domain, prefix, peers
        self.pid, self.n = inner.pid, inner.n
        self.done_tag = None

    @property
    def timeout(self):  # type: ignore[override]
        return self.inner.timeout

    async def send(self, peer, tag, payload):
        base = tag.rsplit("/", 1)[-1]
        hit = base.startswith(self.prefix) and (self.peers is None or peer in self.peers)
        if hit and self.done_tag in (None, tag) and isinstance(payload, np.ndarray) and payload.size:
            self.done_tag = tag
            if self.D is None:
                payload = payload.copy()
                payload.reshape(-1)[0] += payload.dtype.type(1)
                return await self.inner.send(peer, tag, payload)
            vals = self.D.from_wire(payload, payload.shape[:-1])
            one = self.D.zeros(vals.shape)
            one.reshape(-1)[0:1] = self.D.from_int(np.array([1]))
            payload = self.D.to_wire(self.D.add(vals, one))
        await self.inner.send(peer, tag, payload)

    async def recv(self, peer, tag):
        return await self.inner.recv(peer, tag)

    async def close(self):
        await self.inner.close()


def run(job, *, cheat=None, wrap=None, n=3, domain=None, preprocessing="trusted_dealer", seed=5):
    """run_local's loop with party n-1's channel optionally wrapped in Cheat(prefix, peers)
    and/or by `wrap(channel) -> Channel`. Returns (results, errors, stats)."""

    async def main():
        ss = await open_sessions(n, scheme="shamir", security="malicious", seed=seed, domain=domain,
                                 preprocessing=preprocessing)
        if cheat is not None:
            c = ss[-1]
            ss[-1] = dataclasses.replace(c, channel=Cheat(c.channel, c.domain, *cheat))
        if wrap is not None:
            ss[-1] = dataclasses.replace(ss[-1], channel=wrap(ss[-1].channel))

        async def one(s):
            try:
                return await job(s)
            except BaseException as e:
                await s.abort(e)
                raise

        out = await asyncio.gather(*(one(s) for s in ss), return_exceptions=True)
        await close_sessions(ss)
        return out, [s.stats for s in ss]

    out, stats = asyncio.run(main())
    errs = [o if isinstance(o, BaseException) else None for o in out]
    return [None if e else o for o, e in zip(out, errs, strict=True)], errs, stats


def skip_own_range_check(monkeypatch, cheater: int = 2) -> None:
    """Model a cheating owner (party `cheater`) that skips the local range check of its own
    inputs: each value outside the declared range is decomposed as its clipped value, with the
    excess added to the lowest "bit" (then not 0/1), so the recomposed input is the cheater's
    value exactly. Honest parties run the real code. (On a build without range-checked inputs
    the hook does not exist and the cheater's value goes in as is.)"""
    from protocols.malicious import chida18

    real = getattr(chida18, "_owner_bits", None)

    def owner_bits(s, x, bits, signed):
        if s.pid != cheater:
            return real(s, x, bits, signed)
        D = s.domain
        lo = -(1 << (bits - 1)) if signed else 0
        v = D.to_signed(x)
        clipped = np.clip(v, lo, lo + (1 << bits) - 1)
        B = chida18.decompose(D, D.from_int(clipped), bits, signed)
        B[0] = D.add(B[0], D.from_int(v - clipped))
        return B

    monkeypatch.setattr(chida18, "_owner_bits", owner_bits, raising=False)


def assert_range_cheater_named(errs, cheater: int = 2) -> None:
    """Every honest party raised security.cheating_detected, check input.range, naming the
    cheater."""
    from protocols.errors import CheatingDetectedError

    for pid, e in enumerate(errs):
        if pid == cheater:
            continue
        assert isinstance(e, CheatingDetectedError), (pid, e)
        assert e.code == "security.cheating_detected" and e.check == "input.range", (pid, e)
        assert getattr(e, "owners", None) == (cheater,) and f"[{cheater}]" in str(e), (pid, e)
