"""The session a preprocessing source runs its own protocol in (re-exported by dn07, used by
the OT source too)."""

from __future__ import annotations

from protocols.session import CountingChannel, Session, Stats


def offline_session(s: Session, label: str) -> Session:
    """A session for a preprocessing source running over `s`'s channel: its own tag prefix
    (`label/`, so it never collides with the online protocol's tags) and its own Stats (so
    online rounds and bytes are counted apart from the offline ones)."""
    inner = s.channel.inner if isinstance(s.channel, CountingChannel) else s.channel
    stats = Stats()
    return Session(
        pid=s.pid,
        n=s.n,
        domain=s.domain,
        scheme=s.scheme,
        channel=CountingChannel(inner, stats),
        prep=None,
        rng=s.rng.spawn(),
        stats=stats,
        sid=s.sid,
        prefix=f"{s.prefix}{label}/",
    )
