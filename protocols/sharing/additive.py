"""Additive n-of-n secret sharing over any domain (Z_2^64 or GF(p)).

x = x_0 + x_1 + ... + x_{n-1} (mod m). Any n - 1 shares are uniformly random and
independent of x, because n - 1 of them are drawn uniformly and the last one absorbs x.
"""

from __future__ import annotations

import numpy as np

from protocols.arith.domain import Domain
from protocols.errors import ParameterError, ShapeMismatch
from protocols.prg import CryptoRNG


def share(domain: Domain, rng: CryptoRNG, x: np.ndarray, n: int) -> list[np.ndarray]:
    """Split x into n additive shares; shares 1..n-1 are uniform, share 0 = x - sum(rest)."""
    if n < 1:
        raise ParameterError(f"additive sharing needs n >= 1, got {n}")
    x = domain.check(np.asarray(x))  # a numpy scalar (a 0-d result) becomes a 0-d array
    rest = [domain.random(rng, x.shape) for _ in range(n - 1)]
    first = x
    for r in rest:
        first = domain.sub(first, r)
    return [first if n > 1 else x.copy(), *rest]


def reconstruct(domain: Domain, shares: list[np.ndarray]) -> np.ndarray:
    """Sum of all n shares."""
    if not shares:
        raise ParameterError("reconstruct needs at least one share")
    shapes = {s.shape for s in shares}
    if len(shapes) != 1:
        raise ShapeMismatch(f"additive shares have different shapes: {sorted(shapes)}")
    acc = shares[0]
    for s in shares[1:]:
        acc = domain.add(acc, s)
    return acc if len(shares) > 1 else acc.copy()
