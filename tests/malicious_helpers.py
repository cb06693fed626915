"""Test doubles for malicious-security tests: a cheating channel and a runner that puts a
cheater (the last party) into an otherwise honest run."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses

import numpy as np

from mpc.local import close_sessions, open_sessions
from network.channel import Channel

#: named protocol phases a Cheat can be aimed at: name -> (module, function). While the
#: cheater's party runs inside that function (after `install_phases`), the phase is active in
#: its asyncio context; tasks it starts inherit it.
PHASES = {
    "prepare_horizontal": ("protocols.apps.ml.malicious", "prepare_horizontal"),
    "prepare_vertical": ("protocols.apps.ml.malicious", "prepare_vertical"),
    "sgd": ("protocols.apps.ml.malicious", "sgd"),
    "finish": ("protocols.apps.ml.malicious", "finish"),
    "fraud_score": ("protocols.apps.fraud_malicious", "score"),
    "group_counts": ("protocols.apps.fraud_malicious", "group_counts"),
}
_ACTIVE: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("cheat_phase", default=())


async def run_parties(ss, job) -> list:
    """Every party's `job(s)` concurrently, over sessions `ss`: a party that raises aborts its
    session first (its peers then fail fast instead of waiting out a timeout). Returns each
    party's result or exception, in party order; the sessions are closed."""

    async def one(s):
        try:
            return await job(s)
        except BaseException as e:
            await s.abort(e)
            raise

    out = await asyncio.gather(*(one(s) for s in ss), return_exceptions=True)
    await close_sessions(ss)
    return out


def install_phases(monkeypatch=None) -> None:
    """Wrap every function of PHASES so that it marks its phase active while it runs (with
    `monkeypatch` for a test, else for the process: the cheating node). Idempotent."""
    import importlib

    for name, (mod, fn) in PHASES.items():
        m = importlib.import_module(mod)
        real = getattr(m, fn)
        if getattr(real, "_cheat_phase", None):
            continue

        def wrap(real=real, name=name):
            async def phase(*a, **kw):
                tok = _ACTIVE.set((*_ACTIVE.get(), name))
                try:
                    return await real(*a, **kw)
                finally:
                    _ACTIVE.reset(tok)

            phase._cheat_phase = name  # type: ignore[attr-defined]
            return phase

        if monkeypatch is not None:
            monkeypatch.setattr(m, fn, wrap())
        else:
            setattr(m, fn, wrap())


def parse_target(mode: str) -> tuple[str, str | None, int]:
    """A cheat target: "PREFIX" (the first message whose tag starts with it, anywhere) or
    "phase:NAME:PREFIX[:K]" (the K-th (0-based, default 0) distinct tag starting with PREFIX
    sent while phase NAME of PHASES runs, e.g. "phase:sgd:mking#" = the first DN07 reduction
    (a checked product or re-keying) of the SGD loop). Returns (prefix, phase, k)."""
    if not mode.startswith("phase:"):
        return mode, None, 0
    parts = mode.split(":")
    if len(parts) not in (3, 4) or parts[1] not in PHASES:
        raise ValueError(f"bad cheat target {mode!r}: phase:NAME:PREFIX[:K], NAME in {sorted(PHASES)}")
    return parts[2], parts[1], int(parts[3]) if len(parts) == 4 else 0


class Cheat(Channel):
    """Wraps the cheater's channel: the first non-empty message under a tag starting with
    `prefix` (to `peers`, default all) gets 1 added to its first field element (`domain` None: to its
    first raw wire word, e.g. SPDZ2k's Z_2^128 limbs). With `phase` (a name of PHASES,
    `install_phases` done): only messages sent while that phase runs count, and the `skip`
    first distinct matching tags there are left alone."""

    def __init__(self, inner, domain, prefix: str, peers=None, *, phase: str | None = None, skip: int = 0):
        self.inner, self.D, self.prefix, self.peers = inner, domain, prefix, peers
        self.pid, self.n = inner.pid, inner.n
        self.done_tag = None
        self.phase, self.skip, self.seen = phase, skip, []
        self.hit_phases: tuple[str, ...] = ()

    @property
    def timeout(self):  # type: ignore[override]
        return self.inner.timeout

    async def send(self, peer, tag, payload):
        base = tag.rsplit("/", 1)[-1]
        hit = base.startswith(self.prefix) and (self.peers is None or peer in self.peers)
        if hit and self.phase is not None:
            hit = self.phase in _ACTIVE.get()
            if hit and self.done_tag is None and isinstance(payload, np.ndarray) and payload.size:
                if tag not in self.seen:
                    self.seen.append(tag)
                hit = len(self.seen) > self.skip and tag == self.seen[self.skip]
        if hit and self.done_tag in (None, tag) and isinstance(payload, np.ndarray) and payload.size:
            self.done_tag = tag
            self.hit_phases = _ACTIVE.get()
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

        out = await run_parties(ss, job)
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
