"""The README's first example: three banks, private vectors, only the total is revealed."""

from __future__ import annotations

import numpy as np

from protocols import beaver, core
from protocols.session import Session

#: each bank's private vector (in a real deployment each comes from that bank's own data)
BANK_INPUTS = [np.array([120, 45, 300]), np.array([80, 10, 25]), np.array([5, 60, 70])]
WEIGHTS = [1, 2, 3]


async def weighted_sum_job(s: Session):
    """Each bank inputs its vector; the parties compute sum_i w_i x_i and the elementwise
    product x_0 * x_1, and reveal only the total of both."""
    shared = []
    for owner in range(s.n):
        mine = s.domain.from_int(BANK_INPUTS[owner % 3]) if s.pid == owner else None
        shared.append(await core.input(s, mine, owner))
    weighted = shared[0] * WEIGHTS[0]
    for w, x in zip(WEIGHTS[1:], shared[1:], strict=False):
        weighted = weighted + x * w
    product = await beaver.mul(s, shared[0], shared[1])
    (total,) = await core.open(s, weighted.sum() + product.sum())
    return int(s.domain.to_signed(total))


def plaintext_total(n: int) -> int:
    xs = [BANK_INPUTS[i % 3] for i in range(n)]
    weighted = sum(w * x for w, x in zip(WEIGHTS, xs, strict=False))
    return int(weighted.sum() + (xs[0] * xs[1]).sum())
