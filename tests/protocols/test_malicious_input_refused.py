"""Issue 16: an HONEST owner whose own value is outside its declared range refuses it in the
input protocol (a typed status in its delta message, validated on receipt), so that every
party -- not only the owner -- raises InputRangeRefusedError (code input.range) naming the
owner, and nothing is released. Before, only the owner raised (InputRangeError, locally); the
others waited for a delta that never came (a vanished peer / timeout). A malformed status
from an authenticated owner is a deviation (security.cheating_detected, check input.status).
"""

from __future__ import annotations

import numpy as np
import pytest
from malicious_helpers import run

from mpc.bench.e2e import logistic_data
from mpc.local import default_domain
from network.channel import Channel
from protocols import malicious as mal
from protocols.apps import fraud_malicious as fm
from protocols.apps.ml import train
from protocols.errors import CheatingDetectedError, InputRangeError, InputRangeRefusedError

pytestmark = pytest.mark.timeout(300)

LX, LY = logistic_data(60, 3)


def _assert_refused_everywhere(res, errs, owner):
    assert res == [None] * 3, res  # nothing released
    for pid, e in enumerate(errs):
        assert isinstance(e, InputRangeRefusedError) and isinstance(e, InputRangeError), (pid, e)
        assert e.code == "input.range" and e.owners == (owner,), (pid, e)
        assert f"[{owner}]" in str(e), (pid, e)


def test_input_many_refusal_names_the_owner_at_every_party():
    """Three owners input concurrently; owner 1's value is 2^31 (range_bits = 32 signed): every
    party raises the refusal naming 1 only; the other owners' inputs ran and nothing opened."""
    async def job(s):
        D = s.domain
        v = np.array([5, 1 << 31 if s.pid == 1 else -3])
        got = await mal.input_many(s, D.from_int(v), {j: (2,) for j in range(3)})
        return await mal.open(s, *got.values())

    res, errs, _ = run(job)
    _assert_refused_everywhere(res, errs, 1)


def test_horizontal_trainer_refusal_names_the_bank():
    """A bank's feature value 2^15 (f = 16: its encoding is 2^31, just outside the 32-bit range)
    in a horizontal logistic SGD job: every party raises input.range naming that bank."""
    async def job(s):
        idx = np.arange(60)[s.pid::3]
        X = LX[idx].copy()
        if s.pid == 2:
            X[3, 1] = 2.0**15
        m = await train(s, "logistic", X, LY[idx], partition="horizontal", epochs=1, batch_size=20)
        return await m.reveal(s)

    res, errs, _ = run(job)
    _assert_refused_everywhere(res, errs, 2)


def test_fraud_input_bits_refusal_names_the_bank():
    """fraud_malicious.input_bits: bank 1's value does not fit RANGE_BITS (its local check
    used to raise at bank 1 only): every party raises input.range naming bank 1. (review3:
    fraud_malicious.score no longer reaches this with an honest bank's partial score, which
    it saturates: test_fraud_score_saturates_instead_of_refusing.)"""
    vals = [np.zeros(8, dtype=np.int64) for _ in range(3)]
    vals[1][4] = 2**40  # outside [-2^39, 2^39)

    async def job(s):
        return await fm.input_bits(s, vals[s.pid], [0, 1, 2], 8)

    res, errs, _ = run(job)
    _assert_refused_everywhere(res, errs, 1)


def test_fraud_score_saturates_instead_of_refusing():
    """review3 (issue 16): the analyst picks coef, and on main an honest bank whose partial
    score x coef left the input range refused (InputRangeRefusedError naming it, at every
    party and in the job's status): one bit per job about max |x coef|, and a binary search
    over coef recovers one row's value (here 2^24 at bank 1) outside any DP accounting. Now
    the bank saturates its partial to the range and the job runs; the flags are those of the
    saturated scores (bank 1's row 4 scores 2^23 - 2^-16)."""
    rng = np.random.default_rng(3)  # test data only
    XS = [rng.normal(size=(8, 1)) for _ in range(3)]
    XS[1][4, 0] = 2.0**24  # |partial| < 2^23 with f = 16 and coef 1

    async def job(s):
        sc = await fm.score(s, (np.ones(3), 0.0), XS[s.pid], owner=0, threshold=0.5, reveal_to=0, proba=True)
        return sc.revealed_flags

    res, errs, _ = run(job)
    assert errs == [None] * 3, errs
    parts = [fm.saturated_partial(x, np.ones(1)) for x in XS]
    assert parts[1][4] == 2**39 - 1
    want = (sum(p.astype(object) for p in parts) > 0).astype(np.int64)
    assert want[4] == 1
    assert res[0].tolist() == want.tolist(), (res[0], want)
    assert res[1] is None and res[2] is None


class _BadStatus(Channel):
    """The cheater's channel: its status element in every minput-delta message is 2."""

    def __init__(self, inner, D):
        self.inner, self.D, self.pid, self.n = inner, D, inner.pid, inner.n

    @property
    def timeout(self):  # type: ignore[override]
        return self.inner.timeout

    async def send(self, peer, tag, payload):
        if tag.rsplit("/", 1)[-1].startswith("minput-delta") and isinstance(payload, np.ndarray):
            vals = self.D.from_wire(payload, payload.shape[:-1])
            vals[-1:] = self.D.from_int(np.array([2]))
            payload = self.D.to_wire(vals)
        await self.inner.send(peer, tag, payload)

    async def recv(self, peer, tag):
        return await self.inner.recv(peer, tag)

    async def close(self):
        await self.inner.close()


def test_malformed_status_is_a_deviation():
    """The owner (party 2) sends status 2: every honest party raises security.cheating_
    detected, check input.status, and nothing is released."""
    async def job(s):
        D = s.domain
        x = await mal.input(s, D.from_int(np.array([7, 8])) if s.pid == 2 else None, 2, (2,))
        return await mal.open(s, x)

    res, errs, _ = run(job, wrap=lambda ch: _BadStatus(ch, default_domain("shamir")))
    assert res == [None] * 3, res
    for pid in (0, 1):
        assert isinstance(errs[pid], CheatingDetectedError), (pid, errs[pid])
        assert errs[pid].check == "input.status", (pid, errs[pid])

