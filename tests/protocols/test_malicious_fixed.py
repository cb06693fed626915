"""Malicious Shamir fixed point: checked random bits, truncation, fixed_mul; cheaters caught."""

from __future__ import annotations

import numpy as np
import pytest
from malicious_helpers import run

from protocols import malicious as mal
from protocols.errors import CheatingDetectedError

pytestmark = pytest.mark.timeout(180)

F16 = 16
XF = np.array([3.25, -1.5, 0.1, 100.0, -7.75, 2.0])
YF = np.array([2.0, 2.5, -3.0, 0.01, 1.0, -0.5])
XI = np.rint(XF * 2**F16).astype(np.int64)
YI = np.rint(YF * 2**F16).astype(np.int64)


async def fixed_job(s):
    D = s.domain
    x = await mal.input(s, D.from_int(XI) if s.pid == 0 else None, 0, XI.shape)
    y = await mal.input(s, D.from_int(YI) if s.pid == 1 else None, 1, YI.shape)
    z = await mal.fixed_mul(s, x, y, F16)
    b = await mal.random_bits(s, (300,))
    zv, bv = await mal.open(s, z, b)
    return D.to_signed(zv), D.to_int(bv)


def test_fixed_mul_and_bits():
    """z = floor(x*y / 2^f) + u, u in {0, 1}, on the encodings; the bits are 0/1 (and not
    constant)."""
    res, errs, _ = run(fixed_job)
    assert errs == [None] * 3
    want = (XI * YI) >> F16  # exact floor of the product's encoding
    for z, b in res:
        d = np.asarray(z, dtype=np.int64) - want
        assert ((d == 0) | (d == 1)).all(), d
        bits = np.asarray(b, dtype=np.int64)
        assert set(bits.tolist()) == {0, 1}
    assert all(np.array_equal(res[0][0], r[0]) for r in res)


def test_trunc_rounds():
    """trunc: Rounds 6 (random 2, square 2, the bits' opening 1, the opening of c 1)."""

    async def job(s):
        D = s.domain
        x = await mal.input(s, D.from_int(XI) if s.pid == 0 else None, 0, XI.shape)
        before = s.stats.copy()
        await mal.trunc(s, x, F16)
        return (s.stats - before).rounds

    res, errs, _ = run(job)
    assert errs == [None] * 3 and res == [6, 6, 6]


@pytest.mark.parametrize("cheat,check", [
    (("mking#4", None), "mac"),  # the square a^2 of the bits' candidates (after x, y, x*y, a)
    (("mking#3", [0]), "mac"),  # the r-component of the random a behind the bits
    (("mbits", [1]), "open"),  # its share of an opened square, to one party
    (("mtrunc", [0]), "open"),  # its share of the masked value c, to one party
])
def test_cheating_in_truncation_caught(cheat, check):
    res, errs, _ = run(fixed_job, cheat=cheat)
    assert res == [None] * 3
    for pid in (0, 1):
        assert isinstance(errs[pid], CheatingDetectedError), errs[pid]
        assert errs[pid].code == "security.cheating_detected"
    assert any(errs[pid].check == check for pid in (0, 1))
