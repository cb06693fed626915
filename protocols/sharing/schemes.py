"""The scheme objects a Session carries: how a party shares, opens and adds constants."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from protocols.arith.domain import Domain
from protocols.errors import ParameterError, PartyIndexError
from protocols.prg import CryptoRNG
from protocols.sharing import additive
from protocols.sharing.shamir import ShamirScheme


class AdditiveScheme:
    """n-of-n additive sharing over `domain`; public constants are added by party 0 only."""

    kind = "additive"

    def __init__(self, domain: Domain, n: int):
        if n < 2:
            raise ParameterError(f"additive sharing between parties needs n >= 2, got {n}")
        self.domain, self.n = domain, n

    def __repr__(self) -> str:
        return f"AdditiveScheme({self.domain}, n={self.n})"

    @property
    def threshold(self) -> int:
        return self.n - 1

    def adds_public(self, pid: int) -> bool:
        return pid == 0

    def share(self, rng: CryptoRNG, x: np.ndarray) -> list[np.ndarray]:
        return additive.share(self.domain, rng, x, self.n)

    def reconstruct(self, shares: Mapping[int, np.ndarray]) -> np.ndarray:
        if sorted(shares) != list(range(self.n)):
            raise PartyIndexError(f"additive reconstruction needs all {self.n} shares")
        return additive.reconstruct(self.domain, [shares[i] for i in range(self.n)])


class ShamirShares(ShamirScheme):
    """Shamir t-of-n as a Session scheme; public constants are added by every party."""

    kind = "shamir"

    @property
    def domain(self) -> Domain:
        return self.field

    @property
    def threshold(self) -> int:
        return self.t

    def adds_public(self, pid: int) -> bool:
        return True


Scheme = AdditiveScheme | ShamirShares
