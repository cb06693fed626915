"""An in-process trusted dealer: INSECURE, for tests, notebooks and benchmarks only.

It generates every triple, bit and mask in the clear and hands each party its shares, so it
knows all of them: whoever controls it learns every value the protocols mask. It exists
because it is the fastest way to exercise the online phase; real deployments use a dealer
node under a non-collusion assumption or a dealer-free source (see the preprocessing issue).
The node daemon refuses it unless run with --insecure.

All parties of one `run_local` share one dealer object. The k-th request of every party
must be for the same kind and shapes; the dealer generates the item on the first request,
keeps the other parties' shares until they ask, and forgets the item once all have it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from protocols.errors import PreprocessingExhausted, PreprocessingMismatch
from protocols.preprocessing.base import Preprocessing, Shape
from protocols.prg import CryptoRNG
from protocols.sharing.schemes import Scheme


class InsecureTrustedDealer:
    """Generates correlated randomness for all n parties of one in-process run.

    `limit`: total number of elements (summed over all items) it will hand out before it
    raises PreprocessingExhausted; None for no limit.
    """

    name = "trusted_dealer"

    def __init__(self, scheme: Scheme, rng: CryptoRNG, *, limit: int | None = None):
        self.scheme, self.domain, self.n = scheme, scheme.domain, scheme.n
        self.rng = rng
        self.limit = limit
        self.used = 0
        self._items: list[tuple[tuple, list[tuple[np.ndarray, ...]] | None]] = []
        self._taken: list[int] = []  # parties that took item k
        self._next = [0] * self.n  # next item index per party

    def for_party(self, pid: int) -> Preprocessing:
        return _DealerView(self, pid)

    def _share_all(self, values: tuple[np.ndarray, ...]) -> list[tuple[np.ndarray, ...]]:
        per_value = [self.scheme.share(self.rng, v) for v in values]
        return [tuple(sh[p] for sh in per_value) for p in range(self.n)]

    def take(self, pid: int, key: tuple, size: int, make: Callable[[], tuple[np.ndarray, ...]]):
        k = self._next[pid]
        if k < len(self._items):
            want, shares = self._items[k]
            if want != key:
                raise PreprocessingMismatch(
                    f"party {pid} asked for {key} as item {k}, another party for {want}"
                )
        else:
            if self.limit is not None and self.used + size > self.limit:
                raise PreprocessingExhausted(
                    f"{self.name}: {key[0]} of shape {key[1:]} needs {size} elements, "
                    f"{self.limit - self.used} of {self.limit} left"
                )
            self.used += size
            self._items.append((key, self._share_all(make())))
            self._taken.append(0)
            shares = self._items[k][1]
        self._next[pid] = k + 1
        mine = shares[pid]
        self._taken[k] += 1
        if self._taken[k] == self.n:
            self._items[k] = (key, None)  # every party has its shares: forget them
        return mine


class _DealerView(Preprocessing):
    name = "trusted_dealer"

    def __init__(self, dealer: InsecureTrustedDealer, pid: int):
        self.d, self.pid = dealer, pid

    def _rand(self, shape: Shape) -> np.ndarray:
        return self.d.domain.random(self.d.rng, shape)

    async def triples(self, shape: Shape):
        shape = tuple(shape)
        D = self.d.domain

        def make():
            a, b = self._rand(shape), self._rand(shape)
            return a, b, D.mul(a, b)

        return self.d.take(self.pid, ("triples", shape), 3 * _size(shape), make)

    async def matrix_triples(self, x_shape: Shape, y_shape: Shape):
        x_shape, y_shape = tuple(x_shape), tuple(y_shape)
        D = self.d.domain

        def make():
            a, b = self._rand(x_shape), self._rand(y_shape)
            return a, b, D.matmul(a, b)

        size = _size(x_shape) + _size(y_shape)
        return self.d.take(self.pid, ("matrix_triples", x_shape, y_shape), size, make)

    async def square_pairs(self, shape: Shape):
        shape = tuple(shape)
        D = self.d.domain

        def make():
            a = self._rand(shape)
            return a, D.mul(a, a)

        return self.d.take(self.pid, ("square_pairs", shape), 2 * _size(shape), make)

    async def bits(self, shape: Shape):
        shape = tuple(shape)
        D = self.d.domain

        def make():
            return (D.from_int(self.d.rng.bits(shape).astype(np.int64)),)

        return self.d.take(self.pid, ("bits", shape), _size(shape), make)[0]

    async def randoms(self, shape: Shape):
        shape = tuple(shape)
        return self.d.take(self.pid, ("randoms", shape), _size(shape), lambda: (self._rand(shape),))[0]


def _size(shape: Shape) -> int:
    return int(np.prod(shape, dtype=np.int64))
