"""Ahead-of-demand buffering for any preprocessing source.

`Buffered(source)` fetches items before the online phase needs them (`await buf.fill(...)`),
so the online phase finds them ready; this is how benchmarks separate offline from online
time and how a node can stay ahead of demand. Items are handed out in the order they were
fetched, once each; a request that does not match the next buffered item of its kind falls
through to the source.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Coroutine
from typing import Any

from protocols.errors import PreprocessingExhausted
from protocols.preprocessing.base import KINDS, SHAMIR_KINDS, Preprocessing


class Buffered(Preprocessing):
    """`guard` (e.g. a session's `check_alive`) runs before every request, so an aborted
    session cannot draw (and waste) further items."""

    def __init__(self, source: Preprocessing, *, guard: Callable[[], None] | None = None):
        self.source = source
        self.guard = guard
        self.name = f"buffered({source.name})"
        self._queues: dict[tuple[Any, ...], deque[Any]] = defaultdict(deque)
        #: when a list, every request is appended to it as (kind, args): `replay` fetches the
        #: same sequence again, which is how benchmarks prefetch exactly what a protocol uses
        self.log: list[tuple[str, tuple[Any, ...]]] | None = None

    def supports(self, kind: str) -> bool:
        """The source's declaration (buffering adds no kind)."""
        return self.source.supports(kind)

    async def fill(self, kind: str, *args: Any, count: int = 1) -> None:
        """Fetch `count` items of `kind` (one of base.KINDS) with the given arguments into
        the buffer. Callers must later ask with the same positional arguments.
        Raises PreprocessingUnsupported (nothing fetched) for a kind the source does not supply."""
        if not self.supports(kind):  # ValueError for an unknown kind
            raise self._unsupported(kind, args)
        method = getattr(self.source, kind)
        key = (kind, *_freeze(args))
        for _ in range(count):
            self._queues[key].append(await method(*args))

    def buffered(self, kind: str, *args: Any) -> int:
        return len(self._queues.get((kind, *_freeze(args)), ()))

    async def replay(self, requests: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Fetch one item for each logged request, in order."""
        for kind, args in requests:
            await self.fill(kind, *args)

    async def _get(self, kind: str, *args: Any) -> Any:
        if self.guard is not None:
            self.guard()
        entry = (kind, args)
        if self.log is not None:
            self.log.append(entry)
        q = self._queues.get((kind, *_freeze(args)))
        if q:
            return q.popleft()
        try:
            return await getattr(self.source, kind)(*args)
        except PreprocessingExhausted:
            # a request the source refused (the job then fails) is not one to replay
            if self.log is not None and any(e is entry for e in self.log):
                del self.log[next(i for i, e in enumerate(self.log) if e is entry)]
            raise


def _buffered_kind(kind: str) -> Callable[..., Coroutine[Any, Any, Any]]:
    async def method(self: Buffered, *args: Any) -> Any:
        return await self._get(kind, *args)

    method.__name__ = method.__qualname__ = kind
    method.__doc__ = f"The next buffered `{kind}` item with these arguments, else the source's."
    return method


for _kind in (*KINDS, *SHAMIR_KINDS):
    setattr(Buffered, _kind, _buffered_kind(_kind))


def _freeze(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(tuple(a) if isinstance(a, list | tuple) else a for a in args)
