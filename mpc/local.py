"""run_local: all parties of a joint computation in one process, for notebooks and tests."""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mpc.sessions import new_session, with_source
from network.errors import ChannelClosedError, PeerUnavailableError, SmpcError
from network.memory import MemoryNetwork
from protocols.arith.domain import Domain
from protocols.arith.ring import Ring64
from protocols.errors import ConfigError, MaliciousUnsupportedError, SessionAbortedError
from protocols.preprocessing import InsecureTrustedDealer
from protocols.prg import CryptoRNG, derive_key
from protocols.session import SECURITY, Session, Stats
from protocols.sharing.schemes import AdditiveScheme, ShamirShares

Job = Callable[[Session], Awaitable[Any]]

SCHEMES = ("additive", "shamir")
TRANSPORTS = ("memory", "tcp", "mqtt")
#: preprocessing sources by name: trusted_dealer (in-process, sees everything: tests and
#: notebooks only), dealer (a dealer node that must not collude with any party; memory only
#: here), dn07 (Shamir, honest majority, dealer-free), ot (additive, any n, dealer-free),
#: rss3 (additive, 3 parties, honest majority, dealer-free: replicated sharing)
PREPROCESSING = ("trusted_dealer", "dealer", "dn07", "ot", "rss3")

#: errors that are consequences of another party's failure, not causes
_CONSEQUENCES = (PeerUnavailableError, SessionAbortedError, ChannelClosedError)


@dataclass
class LocalRun:
    """What run_local returns: one result and one Stats per party, and the wall time."""

    results: list[Any]
    stats: list[Stats]
    seconds: float
    errors: list[BaseException | None] = field(default_factory=list)


def default_domain(scheme: str) -> Domain:
    """Z_2^64 for additive sharing; GF(2^127 - 1) for Shamir, as the node daemon uses: room
    for fixed-point products and 64-bit comparisons (GF(2^61 - 1) leaves 19 bits above the
    40-bit statistical mask), at twice the bytes per element of GF(2^61 - 1) (pass
    `domain=Mersenne61()` for integer-only jobs that want the smaller field)."""
    if scheme == "additive":
        return Ring64()
    from protocols.arith.field import Mersenne127

    return Mersenne127()


def check_security(security: str, scheme: str, n: int, threshold: int | None, domain: Domain | None) -> Domain | None:
    """Validate a security setting against the scheme; returns the domain to use (malicious
    Shamir defaults to GF(2^127 - 1), where one check is sound to about 2^-126).
    Raises ConfigError for an unknown setting and MaliciousUnsupportedError for a
    combination with no maliciously secure protocol yet (Shamir with n != 2t + 1)."""
    if security not in SECURITY:
        raise ConfigError(f"security must be one of {SECURITY}, got {security!r}")
    if security == "semi-honest":
        return domain
    if scheme == "additive":  # SPDZ2k (protocols.malicious.spdz2k) over Z_2^64
        if domain is not None and (domain.is_field or domain.modulus != 1 << 64):
            raise MaliciousUnsupportedError(f"malicious additive sharing (SPDZ2k) needs Z_2^64, got {domain}")
        return domain
    if scheme != "shamir":
        raise MaliciousUnsupportedError(f"security='malicious' has no protocol for scheme={scheme!r}")
    t = (n - 1) // 2 if threshold is None else threshold
    if n != 2 * t + 1:
        raise MaliciousUnsupportedError(
            f"security='malicious' with Shamir needs n = 2t + 1 (got n={n}, t={t})"
        )
    if domain is None:
        from protocols.arith.field import Mersenne127

        return Mersenne127()
    return domain


def make_scheme(scheme: str, domain: Domain, n: int, threshold: int | None):
    if scheme == "additive":
        if threshold is not None:
            raise ConfigError("threshold applies to scheme='shamir' only")
        return AdditiveScheme(domain, n)
    if scheme == "shamir":
        if not domain.is_field:
            raise ConfigError(f"Shamir sharing needs a prime field, got {domain}")
        t = (n - 1) // 2 if threshold is None else threshold
        return ShamirShares(domain, n, t)
    raise ConfigError(f"scheme must be one of {SCHEMES}, got {scheme!r}")


def run_local(
    n: int,
    job: Job,
    *,
    scheme: str = "additive",
    threshold: int | None = None,
    transport: str = "memory",
    seed: int | None = None,
    preprocessing: str = "trusted_dealer",
    domain: Domain | None = None,
    latency: float = 0.0,
    bandwidth: float | None = None,
    timeout: float = 60.0,
    prep_limit: int | None = None,
    security: str = "semi-honest",
) -> LocalRun:
    """Run `job(session)` for all n parties in one event loop and return their results.

    `job` is `async def job(s) -> value`; each party's return value lands in `.results`
    and its communication counters in `.stats`. scheme "additive" shares over Z_2^64 by
    default, "shamir" over GF(2^127 - 1) with threshold t = (n - 1) // 2 unless given;
    `domain` overrides the default. `seed` makes all randomness reproducible (tests only).
    transport "memory" passes arrays between the parties in process (with optional simulated
    `latency` in seconds and `bandwidth` in bytes/s per link); "tcp" runs every party over
    real loopback sockets, and "mqtt" through the broker at 127.0.0.1:1883, both with
    mutually authenticated, encrypted channels (Noise KK, fresh keys per run).
    `preprocessing="trusted_dealer"` is an in-process dealer that knows every triple:
    fine here, where one process holds every party anyway. `prep_limit` caps the elements
    it hands out (then PreprocessingExhausted), for tests of exhaustion.
    `security="malicious"` (Shamir over GF(2^127 - 1) by default, or additive: below) gives every session
    that setting: jobs then use protocols.malicious, and semi-honest-only protocols raise
    MaliciousUnsupportedError. Additive sharing runs SPDZ2k (protocols.malicious.spdz2k) with
    MACed preprocessing from `preprocessing="trusted_dealer"` (in process, insecure) or
    `"ot"` (dealer-free: protocols.malicious.spdz2k_ot); other sources raise it at once.

    If a party's job raises, its session aborts, the other parties fail fast, and
    run_local re-raises the root cause (the first error that is not a consequence of
    another party's failure) with `party_errors` (one entry per party) attached.
    """
    if not isinstance(n, int) or n < 2:
        raise ConfigError(f"run_local needs n >= 2 parties, got {n!r}")
    domain = check_security(security, scheme, n, threshold, domain)
    make_scheme(scheme, domain if domain is not None else default_domain(scheme), n, threshold)
    return asyncio.run(
        _run(
            n, job, scheme=scheme, threshold=threshold, transport=transport, seed=seed,
            domain=domain, latency=latency, bandwidth=bandwidth, timeout=timeout,
            prep_limit=prep_limit, preprocessing=preprocessing, security=security,
        )
    )


async def _channels(n: int, transport: str, sid: bytes, latency, bandwidth, timeout):
    if transport == "memory":
        net = MemoryNetwork(n, latency=latency, bandwidth=bandwidth, timeout=timeout)
        return net.channels
    if latency or bandwidth is not None:
        raise ConfigError("latency and bandwidth simulation applies to transport='memory' only")
    if transport == "tcp":
        from network.tcp import local_tcp_mesh

        return await local_tcp_mesh(n, session_id=sid, timeout=timeout)
    from network.mqtt import local_mqtt_mesh

    return await local_mqtt_mesh(n, session_id=sid, timeout=timeout)


async def open_sessions(
    n: int,
    *,
    scheme: str = "additive",
    threshold: int | None = None,
    transport: str = "memory",
    seed: int | None = None,
    domain: Domain | None = None,
    latency: float = 0.0,
    bandwidth: float | None = None,
    timeout: float = 60.0,
    prep_limit: int | None = None,
    preprocessing: str = "trusted_dealer",
    security: str = "semi-honest",
) -> list[Session]:
    """The n sessions run_local would use, for callers that drive the parties themselves
    (benchmarks separating offline from online time). Each session's `prep` is the named
    source wrapped in `Buffered`, so `await s.prep.fill(...)` fetches ahead of demand.
    Close them with `close_sessions`."""
    if preprocessing not in PREPROCESSING:
        raise ConfigError(f"preprocessing must be one of {PREPROCESSING}, got {preprocessing!r}")
    if not isinstance(n, int) or n < 2:
        raise ConfigError(f"need n >= 2 parties, got {n!r}")
    if transport not in TRANSPORTS:
        raise ConfigError(f"transport must be one of {TRANSPORTS}, got {transport!r}")
    domain = check_security(security, scheme, n, threshold, domain)
    dom = domain if domain is not None else default_domain(scheme)
    sch = make_scheme(scheme, dom, n, threshold)
    if security == "malicious" and scheme == "additive" and preprocessing not in SPDZ2K_SOURCES:
        # refused before any channel is opened (nothing to close on this error)
        raise MaliciousUnsupportedError(
            f"SPDZ2k (malicious additive) has MACed preprocessing from {SPDZ2K_SOURCES} only; "
            f"preprocessing={preprocessing!r} is not implemented"
        )
    sid = derive_key(seed, "sid")[:16] if seed is not None else os.urandom(16)
    channels = await _channels(n, transport, sid, latency, bandwidth, timeout)
    dealer = InsecureTrustedDealer(sch, CryptoRNG.from_seed(seed, "dealer"), limit=prep_limit)
    dealer_net = None
    if preprocessing == "dealer":
        dealer_net = _start_dealer_node(n, sch, seed, transport, timeout)
    sessions = [new_session(pid, n, sch, channels[pid], sid=sid, seed=seed,
                            prep=dealer.for_party(pid), security=security) for pid in range(n)]
    out = [with_source(s, _source(preprocessing, s, dealer, dealer_net)) for s in sessions]
    if security == "malicious" and scheme == "additive":
        _attach_spdz2k(out, seed, preprocessing)
    return out


#: MACed preprocessing for SPDZ2k: trusted_dealer (in-process, insecure) or ot (dealer-free:
#: protocols.malicious.spdz2k_ot, vOLE MACs and sacrificed OT triples)
SPDZ2K_SOURCES = ("trusted_dealer", "ot")


def _attach_spdz2k(sessions, seed, preprocessing: str = "trusted_dealer"):
    """SPDZ2k's MAC key shares and MACed preprocessing: the in-process dealer, or each
    party's own dealer-free OT source (alpha_i stays with its party)."""
    from protocols.malicious import spdz2k

    if preprocessing == "ot":
        from protocols.malicious.spdz2k_ot import Spdz2kOT

        for s in sessions:
            spdz2k.attach(s, Spdz2kOT(s))
        return
    from protocols.malicious.spdz2k_prep import Spdz2kDealer

    dealer = Spdz2kDealer(len(sessions), CryptoRNG.from_seed(seed, "spdz2k-dealer"))
    for s in sessions:
        spdz2k.attach(s, dealer)


def _start_dealer_node(n, sch, seed, transport, timeout):
    """A dealer node as party n of a separate in-process network, serving in the background.
    Returns (network, serving task)."""
    from protocols.preprocessing.dealer_node import DealerNode

    if transport != "memory":
        raise ConfigError("run_local runs the dealer node over transport='memory' only")
    if sch.kind != "additive":
        raise ConfigError("the dealer node supplies additive shares only")
    net = MemoryNetwork(n + 1, timeout=timeout)
    node = DealerNode(net.channel(n), n, sch.domain, CryptoRNG.from_seed(seed, "dealer-node"))
    return net, asyncio.get_running_loop().create_task(node.serve())


def _source(name: str, s: Session, dealer: InsecureTrustedDealer, dealer_net):
    if name == "trusted_dealer":
        return s.prep
    if name in DEALER_FREE:
        return dealer_free_source(name, s)
    from protocols.preprocessing.dealer_node import DealerClient

    net, task = dealer_net
    client = DealerClient(s.pid, s.n, s.domain, net.channel(s.pid), s.n)
    client.serving = task  # the dealer node's task, awaited when the sessions close
    return client


#: sources that need no third party: they run their own protocol over the session's channel
DEALER_FREE = ("dn07", "ot", "rss3")


def dealer_free_source(name: str, s: Session):
    """The named dealer-free source for session s (dn07: Shamir; ot: additive; rss3:
    additive, 3 parties, semi-honest with an honest majority)."""
    if name == "dn07":
        from protocols.preprocessing.dn07 import DN07

        if s.scheme.kind != "shamir":
            raise ConfigError("preprocessing='dn07' needs scheme='shamir' (honest majority)")
        return DN07(s)
    if name == "ot":
        from protocols.preprocessing.ot import OTPreprocessing

        if s.scheme.kind != "additive":
            raise ConfigError("preprocessing='ot' needs scheme='additive'")
        return OTPreprocessing(s)
    if name == "rss3":
        from protocols.preprocessing.rss3 import RSS3Preprocessing

        if s.scheme.kind != "additive" or s.n != 3:
            raise ConfigError("preprocessing='rss3' needs scheme='additive' and exactly 3 parties (honest majority)")
        return RSS3Preprocessing(s)
    raise ConfigError(f"{name!r} is not a dealer-free preprocessing source {DEALER_FREE}")


#: the module of each dealer-free source: importing it compiles (or loads from numba's cache)
#: its kernels
_SOURCE_MODULES = {"dn07": "protocols.preprocessing.dn07", "ot": "protocols.preprocessing.ot",
                   "rss3": "protocols.preprocessing.rss3"}


def preload_source(name: str) -> None:
    """Import the named dealer-free source's module now (no-op for other names). A node calls
    it before it serves: on a fresh install the first import compiles the source's numba
    kernels (~6 s for ot, longer when several nodes share the cores), which inside a job
    would run into the peers' receive deadline."""
    mod = _SOURCE_MODULES.get(name)
    if mod is not None:
        importlib.import_module(mod)


def preload_spdz2k() -> None:
    """Compile (or load from numba's cache) SPDZ2k's kernels now, as preload_source does for a
    source: a node of a malicious additive consortium calls it before it serves. They compile
    on first call, not on import (numba `cache=True`): protocols.arith._r128_jit (products
    and MAC check sums over Z_2^128), protocols.malicious._gf2_jit (the KOS15 check) and the
    OT extension's kernels; each is called once on one element, with the argument types the
    protocols pass."""
    import numpy as np

    from protocols.arith import _r128_jit
    from protocols.malicious._gf2_jit import clmul_sum

    importlib.import_module("protocols.malicious.spdz2k_ot")  # and the OT extension's kernels
    u = np.uint64

    def z(*shape: int) -> np.ndarray:
        return np.zeros(shape, dtype=u)

    _r128_jit.beaver(*(z(1, 2) for _ in range(8)), z(2), True, z(1, 2), z(1, 2))
    _r128_jit.dot2(z(1), z(1, 2), z(1, 2), z(2, 2))
    _r128_jit.matmul(z(1, 1, 2), z(1, 1, 2), z(1, 1, 2))
    clmul_sum(z(1, 2), z(1, 2), z(4))


async def close_sessions(sessions: list[Session]) -> None:
    for s in sessions:
        source = getattr(s.prep, "source", None)
        serving = getattr(source, "serving", None)
        if serving is not None and s.pid == 0:
            try:
                if not s.aborted:
                    await source.close()  # party 0 tells the dealer node to stop
                await asyncio.wait_for(asyncio.shield(serving), 5)
            except (TimeoutError, SmpcError):
                serving.cancel()
        await s.channel.close()


async def _run(n, job, **kw) -> LocalRun:
    sessions = await open_sessions(n, **kw)

    async def one(s: Session):
        try:
            return await job(s)
        except BaseException as e:
            await s.abort(e)
            raise

    t0 = time.perf_counter()
    outcomes = await asyncio.gather(*(one(s) for s in sessions), return_exceptions=True)
    seconds = time.perf_counter() - t0
    await close_sessions(sessions)
    errors = [o if isinstance(o, BaseException) else None for o in outcomes]
    if any(errors):
        causes = [e for e in errors if e is not None and not isinstance(e, _CONSEQUENCES)]
        root = causes[0] if causes else next(e for e in errors if e is not None)
        if isinstance(root, Exception):
            root.party_errors = errors  # type: ignore[attr-defined]
        raise root
    return LocalRun(list(outcomes), [s.stats for s in sessions], seconds, errors)
