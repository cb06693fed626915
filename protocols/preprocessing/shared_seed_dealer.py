"""A trusted dealer replicated in every party's process from one shared seed: INSECURE,
for benchmarks and tests of the online phase across processes only.

`mpc.processes.run_processes` (and the node daemon with --insecure) give every party process
one copy, built with the same scheme and seed: the copies generate identical items, each
keeps only its own party's shares and drops the others at once, so the processes agree on
every triple, bit and mask without a dealer process and without talking. Anyone holding
the seed (every party) can derive every party's shares: it offers no privacy whatsoever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from protocols.errors import ParameterError
from protocols.preprocessing.base import Preprocessing
from protocols.preprocessing.trusted_dealer import InsecureTrustedDealer, _Item
from protocols.prg import CryptoRNG
from protocols.sharing.schemes import Scheme

__all__ = ["InsecureSharedSeedDealer"]


class InsecureSharedSeedDealer(InsecureTrustedDealer):
    """INSECURE, benchmarks only: a trusted dealer replicated in every party's process.

    Every process constructs it with the same scheme and the same shared seed, so all copies
    generate identical items; each keeps only its own party's shares and forgets the rest at
    once. Anyone holding the seed (every party) can derive every party's shares, so it offers
    no privacy whatsoever. It only lets separate processes agree on correlated randomness
    without a dealer process, so that the online phase can be measured.
    """

    name = "insecure_shared_seed_dealer"

    def __init__(self, scheme: Scheme, seed: bytes | int | str, pid: int, *, limit: int | None = None):
        super().__init__(scheme, CryptoRNG.from_seed(seed, "shared-seed-dealer"), limit=limit)
        self.pid = pid

    def _own(self, pid: int, key: tuple[Any, ...], got: _Item) -> _Item:
        if pid != self.pid:
            raise ParameterError(f"{self.name} of party {self.pid} asked for party {pid}'s shares")
        k = self._next[pid] - 1
        self._items[k] = (key, None)  # the other parties' shares: dropped right away
        return got

    def take(
        self, pid: int, key: tuple[Any, ...], size: int, make: Callable[[], _Item]
    ) -> _Item:
        return self._own(pid, key, super().take(pid, key, size, make))

    def take_parts(
        self, pid: int, key: tuple[Any, ...], size: int, make: Callable[[], list[_Item]]
    ) -> _Item:
        return self._own(pid, key, super().take_parts(pid, key, size, make))

    def view(self) -> Preprocessing:
        """This process's party's view (the only one it may take)."""
        return self.for_party(self.pid)
