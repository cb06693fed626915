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
    """trunc without prepared masks: Rounds 14 (prepare_trunc 11: random 2, square 2, the
    bits' opening 1, r2 * r_hi 2, verify 3, the compression coin 1 (malperf2: the pending
    MAC pairs folded into one offline, `chida18.compress_pending`; 13 before); refreshing x
    2; the opening of c 1)."""

    async def job(s):
        D = s.domain
        x = await mal.input(s, D.from_int(XI) if s.pid == 0 else None, 0, XI.shape)
        before = s.stats.copy()
        await mal.trunc(s, x, F16)
        return (s.stats - before).rounds

    res, errs, _ = run(job)
    assert errs == [None] * 3 and res == [14, 14, 14]


@pytest.mark.parametrize("cheat,check", [
    # after x and y with their range checks (#0-#3) and x*y (#4): a (#5) and a^2 (#6)
    (("mking#6", None), "mac"),  # the square a^2 of the bits' candidates
    (("mking#5", [0]), "mac"),  # the r-component of the random a behind the bits
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


# --------------------------------------------------------------- prepared masks ---
#: review5: `chida18.check_values` before a masked opening that follows a product: the coin,
#: one reduction of one element, T, the verdict (n = 3, e = 16)
CHECK_ROUNDS = 5


def check_bytes(pid: int, n: int = 3, e: int = 16) -> int:
    reduce_one = (1 + (n - 2) * (1 if pid == n - 1 else 0)) * e  # party n-1 is the king of one element
    return (n - 1) * e * 2 + reduce_one + (n - 1) * 33


async def prepared_job(s, *, between=False):
    """Inputs, prepare the masks (verifies: x, y become an older epoch), fixed_mul online."""
    D = s.domain
    x = await mal.input(s, D.from_int(XI) if s.pid == 0 else None, 0, XI.shape)
    y = await mal.input(s, D.from_int(YI) if s.pid == 1 else None, 1, YI.shape)
    await mal.prepare_trunc(s, XI.size + 2, F16)
    assert mal.prepared(s, F16) == XI.size + 2
    x = await mal.refresh(s, x)
    if between:  # a verification between preparing and using: r_hi is refreshed online
        await mal.verify(s)
    before = s.stats.copy()
    z = await mal.fixed_mul(s, x, y, F16)
    d = s.stats - before
    left = mal.prepared(s, F16)
    (zv,) = await mal.open(s, z)
    return D.to_signed(zv), d.rounds, d.bytes_sent, left


@pytest.mark.parametrize("between", [False, True])
def test_prepared_fixed_mul(between):
    """With prepared masks: correct (floor + {0, 1}), the same at every party; online
    Rounds 2 + 5 + 1 (+2 for refreshing x and r_hi after a verification in between), exact
    bytes: the product's reduce of 2N + the value check of that product before the masked
    opening (review5: `chida18.check_values`) + the opening of c (n = 3, N = 6, e = 16)."""
    res, errs, _ = run(lambda s: prepared_job(s, between=between))
    assert errs == [None] * 3
    want = (XI * YI) >> F16
    N, e = XI.size, 16
    for pid, (z, rounds, nbytes, left) in enumerate(res):
        d = np.asarray(z, dtype=np.int64) - want
        assert ((d == 0) | (d == 1)).all(), d
        assert left == 2
        if not between:
            assert rounds == 3 + CHECK_ROUNDS
            # reduce of M = 2N = 12 (chunks of 4): 2 * (4 + 4) * e; opening c: 2 * N * e
            assert nbytes == 2 * 2 * 4 * e + check_bytes(pid) + 2 * N * e
        else:
            assert rounds == 3 + 2 + 2 + CHECK_ROUNDS  # refresh x (in mul), refresh r_hi (in trunc)
    assert all(np.array_equal(res[0][0], r[0]) for r in res)


def test_prepared_then_inline_when_exhausted():
    """trunc uses prepared masks while they last and falls back to inline bits after."""

    async def job(s):
        D = s.domain
        x = await mal.input(s, D.from_int(XI) if s.pid == 0 else None, 0, XI.shape)
        await mal.prepare_trunc(s, XI.size, F16)
        x = await mal.refresh(s, x)
        b0 = s.stats.copy()
        z1 = await mal.trunc(s, x, F16)
        r1 = (s.stats - b0).rounds
        b1 = s.stats.copy()
        z2 = await mal.trunc(s, x, F16)
        r2 = (s.stats - b1).rounds
        v1, v2 = await mal.open(s, z1, z2)
        return D.to_signed(v1), D.to_signed(v2), r1, r2

    res, errs, _ = run(job)
    assert errs == [None] * 3
    for v1, v2, r1, r2 in res:
        for v in (v1, v2):
            d = np.asarray(v, dtype=np.int64) - (XI >> F16)
            assert ((d == 0) | (d == 1)).all()
        assert (r1, r2) == (1, 14)  # inline: + compress_pending's coin (malperf2; 13 before)


@pytest.mark.parametrize("cheat,check", [
    # after x, y, the random a (mking#2), its square (mking#3): r2 * r_hi is mking#4,
    # checked under the next epoch's key, at the open's verification
    (("mking#4", [0]), "mac"),
    (("mking#3", None), "mac"),  # the square a^2 behind the bits: caught in prepare_trunc
    (("mtrunc", [0]), "open"),  # its share of the masked value c, to one party
])
def test_cheating_in_prepared_truncation_caught(cheat, check):
    res, errs, _ = run(prepared_job, cheat=cheat)
    assert res == [None] * 3
    for pid in (0, 1):
        assert isinstance(errs[pid], CheatingDetectedError), errs[pid]
        assert errs[pid].code == "security.cheating_detected"
    assert any(errs[pid].check == check for pid in (0, 1))


def test_prepared_masks_from_two_batches():
    """Masks from two prepare_trunc batches (the first of an older epoch, re-MACed on use)
    are joined for one truncation; the pool is then empty."""

    async def job(s):
        D = s.domain
        x = await mal.input(s, D.from_int(XI) if s.pid == 0 else None, 0, XI.shape)
        await mal.prepare_trunc(s, 2, F16)
        await mal.prepare_trunc(s, XI.size - 2, F16)
        z = await mal.trunc(s, x, F16)
        left = mal.prepared(s, F16)
        (v,) = await mal.open(s, z)
        return D.to_signed(v), left

    res, errs, _ = run(job)
    assert errs == [None] * 3
    for v, left in res:
        d = np.asarray(v, dtype=np.int64) - (XI >> F16)
        assert ((d == 0) | (d == 1)).all() and left == 0
