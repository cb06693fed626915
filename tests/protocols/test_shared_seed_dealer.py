"""InsecureSharedSeedDealer: copies built from one seed agree on every item (so separate
processes need no dealer), each copy hands out only its own party's shares and keeps none
of the others'."""

import asyncio

import numpy as np
import pytest

from protocols.arith.ring import Ring64
from protocols.errors import ConfigError
from protocols.preprocessing.shared_seed_dealer import InsecureSharedSeedDealer
from protocols.sharing.schemes import AdditiveScheme


def _items(seed, pid, n=3):
    d = InsecureSharedSeedDealer(AdditiveScheme(Ring64(), n), seed, pid)
    v = d.view()

    async def main():
        return await v.triples((4,)), await v.ltz_tuples((2,)), await v.triples((4,))

    return d, asyncio.run(main())


def test_copies_agree_and_keep_only_their_own_shares():
    n = 3
    runs = [_items(b"seed", p, n) for p in range(n)]
    for item in (0, 2):
        a, b, c = (sum(r[1][item][j] for r in runs) for j in range(3))  # wraps mod 2^64
        assert (a * b == c).all()
    assert not np.array_equal(runs[0][1][0][0], runs[0][1][2][0])  # fresh items
    for d, _ in runs:
        assert all(shares is None for _, shares in d._items)  # nothing kept
    # the broken variant: copies from different seeds do not agree
    other = [_items(b"other", p, n) for p in range(n)]
    a, b, c = (runs[0][1][0][j] + other[1][1][0][j] + other[2][1][0][j] for j in range(3))
    assert not (a * b == c).all()


def test_refuses_another_partys_shares():
    d = InsecureSharedSeedDealer(AdditiveScheme(Ring64(), 3), 1, 0)
    with pytest.raises(ConfigError):
        asyncio.run(d.for_party(1).triples((2,)))
