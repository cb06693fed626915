"""Issue 16 (hard4): an owner that equivocates its input status. The status of the input
protocol (chida18.input_announced: 0 its input follows, 1 refused) is sent by the owner to
each party separately; on main nothing echoed it, so a modified owner could tell party 0
"refused" and party 1 "accepted": party 0 raised InputRangeRefusedError naming the owner
while party 1 went on and ended on a vanished peer (different verdicts, the job's status
differing between the honest banks). Now every party echoes the statuses it received
(chida18.agree_statuses; in input_many inside the coin's messages, no extra round) and every
honest party raises security.cheating_detected, check input.status."""

from __future__ import annotations

import numpy as np
import pytest
from malicious_helpers import run

from mpc.local import default_domain
from network.channel import Channel
from protocols import malicious as mal
from protocols.apps import fraud_malicious as fm
from protocols.errors import CheatingDetectedError, InputRangeRefusedError
from protocols.malicious import chida18

pytestmark = pytest.mark.timeout(300)


class _Equivocate(Channel):
    """The owner's (party 2's) channel: its minput-delta messages to `to` carry status
    `status` (with the delta zeroed when 1, as an honest refusal); to the other peer they
    go unchanged (status 0: accepted)."""

    def __init__(self, inner, D, to=0, status=1):
        self.inner, self.D, self.to, self.status = inner, D, to, status
        self.pid, self.n = inner.pid, inner.n
        self.hits = 0

    @property
    def timeout(self):  # type: ignore[override]
        return self.inner.timeout

    async def send(self, peer, tag, payload):
        if (peer == self.to and tag.rsplit("/", 1)[-1].startswith("minput-delta")
                and isinstance(payload, np.ndarray)):
            vals = self.D.from_wire(payload, payload.shape[:-1])
            if self.status == 1:
                vals[:] = self.D.zeros(vals.shape)
            vals[-1:] = self.D.from_int(np.array([self.status]))
            payload = self.D.to_wire(vals)
            self.hits += 1
        await self.inner.send(peer, tag, payload)

    async def recv(self, peer, tag):
        return await self.inner.recv(peer, tag)

    async def close(self):
        await self.inner.close()


def _wrap(**kw):
    return lambda ch: _Equivocate(ch, default_domain("shamir"), **kw)


def _assert_status_cheating_everywhere(res, errs):
    assert res == [None] * 3, res  # nothing released
    for pid in (0, 1):
        e = errs[pid]
        assert isinstance(e, CheatingDetectedError), (pid, e)
        assert not isinstance(e, InputRangeRefusedError), (pid, e)
        assert e.code == "security.cheating_detected" and e.check == "input.status", (pid, e)


@pytest.mark.parametrize("status", [1, 2])
def test_input_status_equivocation_same_verdict(status):
    """mal.input (input_many, one owner): owner 2 tells party 0 "refused" (or a malformed
    status 2) and party 1 "accepted": both honest parties raise input.status."""
    async def job(s):
        D = s.domain
        x = await mal.input(s, D.from_int(np.array([7, 8])) if s.pid == 2 else None, 2, (2,))
        return await mal.open(s, x)

    res, errs, _ = run(job, wrap=_wrap(status=status))
    _assert_status_cheating_everywhere(res, errs)


def test_input_many_status_equivocation_same_verdict():
    """Three owners input concurrently; owner 2 equivocates toward party 1."""
    async def job(s):
        D = s.domain
        got = await mal.input_many(s, D.from_int(np.array([5, -3])), {j: (2,) for j in range(3)})
        return await mal.open(s, *got.values())

    res, errs, _ = run(job, wrap=_wrap(to=1))
    _assert_status_cheating_everywhere(res, errs)


def test_fraud_input_bits_status_equivocation_same_verdict():
    """fraud_malicious.input_bits (owners one after the other): owner 2 equivocates."""
    async def job(s):
        return await fm.input_bits(s, np.zeros(8, dtype=np.int64), [0, 1, 2], 8)

    res, errs, _ = run(job, wrap=_wrap())
    _assert_status_cheating_everywhere(res, errs)


def test_input_unchecked_announced_status_equivocation_same_verdict():
    """input_unchecked(announce=True) on its own echoes the status too."""
    async def job(s):
        D = s.domain
        x = await mal.input_unchecked(s, D.from_int(np.array([1, 2])) if s.pid == 2 else None, 2,
                                      (2,), announce=True)
        return await mal.open(s, x)

    res, errs, _ = run(job, wrap=_wrap())
    _assert_status_cheating_everywhere(res, errs)


def test_status_echo_costs_no_round_in_input_many():
    """input_many's rounds (Stats counts each owner's concurrent input: 3 x 4) are 12 + 1
    (coin, with the status echo) + 2 (reduction) = 15, as before the echo; a refusal is
    raised at every party right after the coin round (13 rounds)."""
    async def job(s, bad):
        D = s.domain
        v = np.array([5, (1 << 31) if bad and s.pid == 1 else -3])
        try:
            await mal.input_many(s, D.from_int(v), {j: (2,) for j in range(3)})
        except InputRangeRefusedError as e:
            return ("refused", e.owners, s.stats.rounds)
        return ("ok", (), s.stats.rounds)

    res, errs, _ = run(lambda s: job(s, False))
    assert errs == [None] * 3 and res == [("ok", (), 15)] * 3, (res, errs)
    res, errs, _ = run(lambda s: job(s, True))
    assert errs == [None] * 3 and res == [("refused", (1,), 13)] * 3, (res, errs)


def test_status_echo_is_one_round_in_input_bits():
    """fraud_malicious.input_bits: 4 rounds per owner (one after the other) + 1 (the echo)
    before its range check; an agreed refusal is raised right after the echo."""
    async def job(s, bad):
        v = np.zeros(8, dtype=np.int64)
        if bad and s.pid == 1:
            v[4] = 2**40
        try:
            await fm.input_bits(s, v, [0, 1, 2], 8)
        except InputRangeRefusedError as e:
            return ("refused", e.owners, s.stats.rounds)
        return ("ok", (), s.stats.rounds)

    res, errs, _ = run(lambda s: job(s, True))
    assert errs == [None] * 3 and res == [("refused", (1,), 3 * 4 + 1)] * 3, (res, errs)


def test_status_verdict_pure():
    """The verdict's table: equal views of 0/1 -> the refusing owners; any difference or a
    malformed entry -> a deviation."""
    v = chida18.status_verdict
    same = {0: np.array([0, 1]), 1: np.array([0, 1]), 2: np.array([0, 1])}
    assert v([0, 2], same) == (False, (2,))
    assert v([0, 2], {**same, 1: np.array([0, 0])}) == (True, ())
    assert v([0, 2], {j: np.array([0, 2]) for j in range(3)}) == (True, ())
    assert v([0, 2], {j: np.array([0, 0]) for j in range(3)}) == (False, ())
