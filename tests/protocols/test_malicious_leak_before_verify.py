"""review5 (issue 16): an additive error multiplied by a secret, then a masked opening, before
the verification -- a leak that the abort comes too late to prevent (malicious Shamir).

Chida et al.'s checked product lets a cheater add any error delta to a product's output (here
through its degree-2t share sent to the DN07 king of the product's value), caught
at the next verification. The statistically masked openings of truncation and comparison
(c = v + 2^(l-1) + r, r below 2^(l + kappa): fixed.trunc, compare.ltz) hide v only while
|v| < 2^(l-1). Nothing verified the products before such an opening, so if the erroneous
output is multiplied by a secret x before one, v = x * delta + ... and the top bits of c are
x: the cheater read an honest party's input from c, and the verification that followed (which
does catch the error: every honest party raises CheatingDetectedError) came too late. The same
holds in the trainers (an error on the sigmoid's product p reaches X^T (p - y) in the next
matmul, then the update's truncation opens it) and at every comparison width, the default
64 bits as malperf2's proven shorter ones (a cheater's error is not bounded by any proof).
The input range checks already follow this rule (`_open_checked` refuses a masked opening
while a range check is pending, so a cheater's out-of-range input is caught first); products
did not. The fix: `chida18.check_values` (called by `verify_inputs` before every masked
opening that follows a product) checks the products' values, the MAC key kept secret.
SPDZ2k is not affected: its masks are uniform mod 2^64 (spdz2k_fixed).

The job: party 0 inputs a secret x (16 bits, range-checked); the truncation masks are prepared
ahead (as the trainers do); p = x * 1 (the cheater, party 2, adds delta = 2^110 to p through
its share to the king); q = x * p; trunc(q). On main the cheater reconstructs c from the shares
it received and c >> 110 = x (these tests failed on main); now the check aborts every party
before c is opened, and with the check disabled (a broken compiler) the leak is back. The same with a comparison at malperf2's proven width of 39 bits
(compare.ltz(bits=39), masks from prepare_batch(ltz_bits=...)) in place of the truncation.
"""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest
from malicious_helpers import run_parties

from mpc.local import open_sessions
from network.channel import Channel
from protocols import malicious as mal
from protocols.errors import CheatingDetectedError
from protocols.malicious import compare, fixed
from protocols.malicious.batch import const, prepare_batch
from protocols.malicious.chida18 import mul, refresh
from protocols.sharing.shamir import lagrange_coefficients

pytestmark = pytest.mark.timeout(60)

CHEATER, OWNER, KING = 2, 0, 1
_MASKED = ("mtrunc", "mcmp")
SHORT = 39  # malperf2's proven width of the standardised rows' clip
SHIFT = 110  # delta = 2^SHIFT: x * delta < 2^126 < p for x < 2^16; the rest of c < 2^105
F_BITS = 16


class _KingCheat(Channel):
    """Party 2's channel: once armed, its first `mking` message to the king of the product's
    value (party 1 for a one-element product: DN07 chunks [0, 0), [0, 1), [1, 2) of (z, rz))
    gets 2^SHIFT added to its degree-2t share (Lagrange coefficient 1 at x = 3 for the points
    1, 2, 3: the king reconstructs d + 2^SHIFT and sends it to all, so every share stays
    consistent); every share of a masked opening (`mtrunc`, `mcmp`) it sends or receives is recorded
    (what the cheater learns)."""

    def __init__(self, inner, domain):
        self.inner, self.D = inner, domain
        self.pid, self.n = inner.pid, inner.n
        self.armed, self.done = False, None
        self.trunc: dict[int, np.ndarray] = {}

    @property
    def timeout(self):  # type: ignore[override]
        return self.inner.timeout

    async def send(self, peer, tag, payload):
        base = tag.rsplit("/", 1)[-1]
        if self.armed and base.startswith("mking#") and peer == KING and self.done in (None, tag):
            self.done = tag
            vals = self.D.from_wire(payload, payload.shape[:-1])
            err = self.D.zeros(vals.shape)
            err.reshape(-1)[0:1] = self.D.from_int(np.array([1 << SHIFT], dtype=object))
            payload = self.D.to_wire(self.D.add(vals, err))
        if base.startswith(_MASKED):
            self.trunc[self.pid] = self.D.from_wire(payload, payload.shape[:-1])
        await self.inner.send(peer, tag, payload)

    async def recv(self, peer, tag):
        got = await self.inner.recv(peer, tag)
        if tag.rsplit("/", 1)[-1].startswith(_MASKED):
            self.trunc[peer] = self.D.from_wire(got, got.shape[:-1])
        return got

    async def close(self):
        await self.inner.close()


def _attack(x_secret: int, op: str):
    async def job(s):
        D = s.domain
        x = await mal.input(s, D.from_int(np.array([x_secret])) if s.pid == OWNER else None, OWNER, (1,),
                            bits=F_BITS + 1)
        # masks ahead, as the trainers prepare theirs (one verification, which also settles x's range)
        await prepare_batch(s, {F_BITS: 1} if op == "trunc" else {}, 0,
                            ltz_bits={SHORT: 1} if op == "ltz" else None)
        x = await refresh(s, x)
        one = await const(s, 1, (1,))
        if s.pid == CHEATER:
            s.channel.armed = True
        p = await mul(s, x, one)  # the cheater's error: p = x + 2^SHIFT
        if s.pid == CHEATER:
            s.channel.armed = False
        q = await mul(s, x, p)  # x^2 + x 2^SHIFT: the error times a secret
        if op == "trunc":
            out = await fixed.trunc(s, q, F_BITS)  # masked opening of q
        else:  # a short comparison: c = q + 2^38 + r, r below 2^(38 + 41 + 1)
            out = await compare.ltz(s, q, bits=SHORT)
        return await mal.open(s, out)

    async def main():
        ss = await open_sessions(3, scheme="shamir", security="malicious", seed=11,
                                 preprocessing="trusted_dealer")
        cheat = _KingCheat(ss[CHEATER].channel, ss[CHEATER].domain)
        ss[CHEATER] = dataclasses.replace(ss[CHEATER], channel=cheat)
        out = await run_parties(ss, job)
        return out, cheat, ss[0].domain, ss[0]

    return asyncio.run(main())


def _cheater_reads(cheat: _KingCheat, D, s0) -> int | None:
    """What the cheater decodes from the masked truncation's shares it saw (None: no opening)."""
    if len(cheat.trunc) < 3:
        return None
    lag = lagrange_coefficients(D.modulus, tuple(s0.scheme.xs[:3]), 0)
    c = int(D.to_int(D.lincomb(lag, [cheat.trunc[j] for j in range(3)]))[0])
    return c >> SHIFT


@pytest.mark.parametrize("op", ["trunc", "ltz"])
def test_product_error_times_secret_does_not_leak_through_a_masked_opening(op):
    x_secret = 0xBEEF  # honest party 0's 16-bit input
    res, cheat, D, s0 = _attack(x_secret, op)
    # the error is caught: every honest party aborts with cheating_detected, nothing is output
    for pid in (0, 1):
        assert isinstance(res[pid], CheatingDetectedError), res[pid]
        assert res[pid].check == "mac"
    # ... and before any masked opening: the cheater saw no share of c, so learnt nothing of x
    assert not cheat.trunc and _cheater_reads(cheat, D, s0) is None


def test_broken_value_check_lets_the_leak_through(monkeypatch):
    """Power: with `check_values` disabled (the schedule main had), the same attack reads x
    from the masked truncation before the verification aborts."""
    from protocols.malicious import chida18

    async def no_value_check(s):
        chida18._state(s).values = 0

    monkeypatch.setattr(chida18, "check_values", no_value_check)
    res, cheat, D, s0 = _attack(0xBEEF, "trunc")
    assert all(isinstance(res[pid], CheatingDetectedError) for pid in (0, 1)), res
    assert _cheater_reads(cheat, D, s0) == 0xBEEF


def test_control_without_the_error_the_cheater_reads_nothing():
    """Power check for the decoder: the same run with nobody cheating finishes (the result is
    x^2 / 2^16) and c >> 110 is 0, not x: the attack's read-out comes from the error only."""

    async def job(s):
        D = s.domain
        x = await mal.input(s, D.from_int(np.array([0xBEEF])) if s.pid == OWNER else None, OWNER, (1,),
                            bits=F_BITS + 1)
        await fixed.prepare_trunc(s, 1, F_BITS)
        x = await refresh(s, x)
        one = await const(s, 1, (1,))
        p = await mul(s, x, one)
        q = await mul(s, x, p)
        t = await fixed.trunc(s, q, F_BITS)
        (v,) = await mal.open(s, t)
        return int(D.to_signed(v)[0])

    async def main():
        ss = await open_sessions(3, scheme="shamir", security="malicious", seed=11,
                                 preprocessing="trusted_dealer")
        spy = _KingCheat(ss[CHEATER].channel, ss[CHEATER].domain)  # never armed: only records
        ss[CHEATER] = dataclasses.replace(ss[CHEATER], channel=spy)
        out = await run_parties(ss, job)
        return out, spy, ss[0].domain, ss[0]

    out, spy, D, s0 = asyncio.run(main())
    assert all(abs(v - (0xBEEF * 0xBEEF >> F_BITS)) <= 1 for v in out), out
    assert _cheater_reads(spy, D, s0) == 0


@pytest.mark.parametrize("cheat,check", [
    (("mvcoin", [0]), "open"),  # its share of the value check's coin, to one party
    (("mvcheck", [1]), "open"),  # its share of T, to one party
    (("mvcheck", None), "open"),  # the same wrong share of T to both (off the polynomial)
])
def test_cheater_in_the_value_check_caught(cheat, check):
    """The value check's own messages (party 2 adds 1 to one): every honest party raises
    cheating_detected at the check's verdict, before the masked opening (nothing released)."""
    from malicious_helpers import run

    async def job(s):
        D = s.domain
        x = await mal.input(s, D.from_int(np.array([0xBEEF])) if s.pid == OWNER else None, OWNER, (1,),
                            bits=F_BITS + 1)
        await fixed.prepare_trunc(s, 1, F_BITS)
        x = await refresh(s, x)
        q = await mul(s, x, x)
        return await mal.open(s, await fixed.trunc(s, q, F_BITS))

    res, errs, _ = run(job, cheat=cheat)
    assert res == [None] * 3
    for pid in (0, 1):
        assert isinstance(errs[pid], CheatingDetectedError), errs[pid]
        assert errs[pid].code == "security.cheating_detected"
    assert any(errs[pid].check == check for pid in (0, 1)), [e.check for e in errs[:2]]
