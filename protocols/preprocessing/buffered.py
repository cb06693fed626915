"""Ahead-of-demand buffering for any preprocessing source.

`Buffered(source)` fetches items before the online phase needs them (`await buf.fill(...)`),
so the online phase finds them ready; this is how benchmarks separate offline from online
time and how a node can stay ahead of demand. Items are handed out in the order they were
fetched, once each; a request that does not match the next buffered item of its kind falls
through to the source.
"""

from __future__ import annotations

from collections import defaultdict, deque

import numpy as np

from protocols.preprocessing.base import Preprocessing, Shape


class Buffered(Preprocessing):
    def __init__(self, source: Preprocessing):
        self.source = source
        self.name = f"buffered({source.name})"
        self._queues: dict[tuple, deque] = defaultdict(deque)

    async def fill(self, kind: str, *args, count: int = 1) -> None:
        """Fetch `count` items of `kind` ("triples", "matrix_triples", "square_pairs",
        "bits", "randoms", "trunc_pairs") with the given arguments into the buffer."""
        method = getattr(self.source, kind)
        key = (kind, *_freeze(args))
        for _ in range(count):
            self._queues[key].append(await method(*args))

    def buffered(self, kind: str, *args) -> int:
        return len(self._queues.get((kind, *_freeze(args)), ()))

    async def _get(self, kind: str, *args):
        q = self._queues.get((kind, *_freeze(args)))
        if q:
            return q.popleft()
        return await getattr(self.source, kind)(*args)

    async def triples(self, shape: Shape):
        return await self._get("triples", shape)

    async def matrix_triples(self, x_shape: Shape, y_shape: Shape):
        return await self._get("matrix_triples", x_shape, y_shape)

    async def square_pairs(self, shape: Shape):
        return await self._get("square_pairs", shape)

    async def bits(self, shape: Shape) -> np.ndarray:
        return await self._get("bits", shape)

    async def randoms(self, shape: Shape) -> np.ndarray:
        return await self._get("randoms", shape)

    async def trunc_pairs(self, shape: Shape, f: int, bits: int):
        return await self._get("trunc_pairs", shape, f, bits)

    def __getattr__(self, name: str):
        # kinds added to the interface later pass straight through to the source
        return getattr(self.source, name)


def _freeze(args: tuple) -> tuple:
    return tuple(tuple(a) if isinstance(a, list | tuple) else a for a in args)
