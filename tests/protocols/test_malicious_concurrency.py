"""Concurrent branches of one malicious Shamir session (Session.child) with no cheater: one
branch opens (so verifies, which makes the epoch's MAC key r public) while another branch's
product is in flight. Before the fix the product's pair (z, r*z) was recorded after the
verification's snapshot, under the retired key, and the next verification checked it against
the new key: every honest party raised security.cheating_detected ("mac") although nobody
cheated. Now the race is refused with a typed error that blames nobody
(MaliciousUnsupportedError, security.unsupported); joined branches run as before, and a real
cheater in the same job is still caught."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from malicious_helpers import run

from mpc.node.daemon import error_code
from network.errors import SmpcError
from protocols import malicious as mal
from protocols.errors import CheatingDetectedError, MaliciousUnsupportedError

pytestmark = pytest.mark.timeout(120)

XI = np.arange(1, 7, dtype=np.int64)


async def racing(s):
    D = s.domain
    x = await mal.input(s, D.from_int(XI) if s.pid == 0 else None, 0, XI.shape)
    y = await mal.input(s, D.from_int(XI) if s.pid == 1 else None, 1, XI.shape)
    (xv,), z = await asyncio.gather(mal.open(s.child("a"), x), mal.mul(s.child("b"), x, y))
    (zv,) = await mal.open(s, z)
    return D.to_int(xv), D.to_int(zv)


async def joined(s):
    D = s.domain
    x = await mal.input(s, D.from_int(XI) if s.pid == 0 else None, 0, XI.shape)
    y = await mal.input(s, D.from_int(XI) if s.pid == 1 else None, 1, XI.shape)
    z, w = await asyncio.gather(mal.mul(s.child("a"), x, y), mal.mul(s.child("b"), y, x))
    (xv,), (zv, wv) = await asyncio.gather(mal.open(s.child("c"), x), mal.open(s.child("d"), z, w))
    return D.to_int(xv), D.to_int(zv), D.to_int(wv)


def test_a_verification_racing_a_product_is_refused_without_blame():
    res, errs, _ = run(racing)
    assert res == [None] * 3
    assert not any(isinstance(e, CheatingDetectedError) for e in errs), errs
    assert all(isinstance(e, SmpcError) for e in errs), errs
    assert any(isinstance(e, MaliciousUnsupportedError) for e in errs), errs
    assert {error_code(e) for e in errs if isinstance(e, MaliciousUnsupportedError)} == {
        "security.unsupported"}


def test_joined_branches_and_concurrent_opens_still_work():
    res, errs, _ = run(joined)
    assert errs == [None] * 3
    for xv, zv, wv in res:
        assert list(xv) == XI.tolist() and list(zv) == list(wv) == (XI * XI).tolist()


def test_cheater_in_concurrent_branches_still_caught():
    res, errs, _ = run(joined, cheat=("mking", None))
    assert res == [None] * 3
    for pid in (0, 1):
        assert isinstance(errs[pid], CheatingDetectedError), errs[pid]


async def racing_refresh(s):
    """batch.refresh_many (the re-keying the DP samplers and the fraud jobs use) of a stale
    MShare in one branch while another branch verifies."""
    from protocols.malicious.batch import refresh_many

    D = s.domain
    x = await mal.input(s, D.from_int(XI) if s.pid == 0 else None, 0, XI.shape)
    await mal.verify(s)  # x is of a retired epoch now
    y = await mal.input(s, D.from_int(XI) if s.pid == 1 else None, 1, XI.shape)
    (xr,), _ = await asyncio.gather(refresh_many(s.child("a"), x), mal.verify(s.child("b")))
    (yv,) = await mal.open(s, y)
    return D.to_int(yv)


def test_a_verification_racing_refresh_many_is_refused_without_blame():
    """review3 (issue 16): refresh_many appended its pair straight to the pending list,
    skipping `_record`'s guard; on main every honest party raised security.cheating_detected
    ('mac') with no cheater. Now the typed refusal that blames nobody, as for a product."""
    res, errs, _ = run(racing_refresh)
    assert res == [None] * 3
    assert not any(isinstance(e, CheatingDetectedError) for e in errs), errs
    assert any(isinstance(e, MaliciousUnsupportedError) for e in errs), errs
