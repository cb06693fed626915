"""Helpers to time the online phase of a protocol for all parties in one event loop."""

from __future__ import annotations

import asyncio

from mpc.local import close_sessions, open_sessions


class OnlineBench:
    """Sessions for n in-process parties, with preprocessing fetched before each timed run."""

    def __init__(self, n: int, scheme: str, **kw):
        self.loop = asyncio.new_event_loop()
        self.sessions = self.loop.run_until_complete(open_sessions(n, scheme=scheme, seed=1, **kw))

    def run(self, coro_fn):
        """Run coro_fn(session) for every party concurrently; return the results."""
        async def all_parties():
            return await asyncio.gather(*(coro_fn(s) for s in self.sessions))

        return self.loop.run_until_complete(all_parties())

    def close(self) -> None:
        self.loop.run_until_complete(close_sessions(self.sessions))
        self.loop.close()
