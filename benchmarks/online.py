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

    def record(self, coro_fn) -> list:
        """Run coro_fn once for every party while logging the preprocessing it asks for;
        return the per-party request logs (for `prefetch`)."""
        for s in self.sessions:
            s.prep.log = []
        self.run(coro_fn)
        logs = [s.prep.log for s in self.sessions]
        for s in self.sessions:
            s.prep.log = None
        return logs

    def prefetch(self, logs: list) -> None:
        """Fetch, before the timed run, exactly the items a recorded run asked for."""
        self.run(lambda s: s.prep.replay(logs[s.pid]))

    def close(self) -> None:
        self.loop.run_until_complete(close_sessions(self.sessions))
        self.loop.close()
