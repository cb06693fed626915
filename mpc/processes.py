"""run_processes: every party of a joint computation in its own OS process, over real
loopback TCP (Noise KK encrypted) or through the MQTT broker at 127.0.0.1:1883.

This is what the demo and the benchmarks use to measure parties that do not share an
interpreter (no shared GIL, no shared event loop): each party is a `multiprocessing` 'spawn'
child that opens its own channel, runs `job(session, *job_args)`, and sends its result and
its `Stats` back to the parent over a queue.

Setup (TCP): the parent generates one X25519 key pair per party and hands child i its private
key and every public key (pinned). Each child listens on 127.0.0.1 port 0 and reports the
port; the parent sends every child the full address list; the children dial each other
(lower index dials higher) and run the Noise KK handshakes. MQTT: each child connects to the
broker and handshakes with every peer through it.

Preprocessing: `protocols.preprocessing.shared_seed_dealer.InsecureSharedSeedDealer`. Every
process runs an identical `InsecureTrustedDealer` seeded from one shared seed and keeps only
its own shares. Because the parties request the same items in the same order, the processes
agree on every triple without talking. It is INSECURE: every process can derive every
party's shares of every triple (so any party could unmask everything). It exists for
benchmarks and tests of the online phase across processes only; never use it with real
data. (It is still importable from here for older callers.)

Failures: a child whose job raises reports the error; a child that dies (killed, crashed)
is noticed by its exit code; its peers then fail with PeerUnavailableError or
ChannelClosedError (channel deadlines / closed sockets). The parent raises the root cause
(a `PartyProcessError` for a dead child) with `party_errors` attached. Children still running
at the overall deadline are terminated (then killed): no orphan processes.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import queue
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mpc.loop import keep_heap_pages, run_event_loop
from mpc.sessions import new_session, with_source
from network.errors import ChannelClosedError, PeerUnavailableError, SmpcError
from protocols.errors import MaliciousUnsupportedError, ParameterError, SessionAbortedError
from protocols.preprocessing.shared_seed_dealer import InsecureSharedSeedDealer
from protocols.prg import derive_key
from protocols.session import Stats

PROCESS_TRANSPORTS = ("tcp", "mqtt")

#: errors that are consequences of another party's failure, not causes
_CONSEQUENCES = (PeerUnavailableError, SessionAbortedError, ChannelClosedError)


class PartyProcessError(SmpcError):
    """A party's process died (killed, crashed, or exited) without reporting a result."""


class ProcessesTimeoutError(SmpcError):
    """The parties did not all finish within the overall deadline; they were terminated."""


@dataclass
class ProcessRun:
    """What run_processes returns (shaped like mpc.local.LocalRun): one result and one
    Stats per party; `seconds` is the slowest party's job time (setup excluded), and
    `setup_seconds` the time from start until every channel was up."""

    results: list[Any]
    stats: list[Stats]
    seconds: float
    errors: list[BaseException | None] = field(default_factory=list)
    setup_seconds: float = 0.0
    party_seconds: list[float] = field(default_factory=list)


@dataclass
class _Config:
    pid: int
    n: int
    scheme: str
    threshold: int | None
    transport: str
    sid: bytes
    dealer_seed: bytes
    party_seed: bytes | None
    static_key: bytes | None
    public_keys: list[bytes] | None
    timeout: float
    connect_timeout: float
    mqtt_host: str
    mqtt_port: int
    domain_cls: type | None = None
    preprocessing: str = "shared_seed_dealer"
    security: str = "semi-honest"
    cipher: str = "ChaChaPoly"


def _child_main(cfg: _Config, job, job_args: tuple, conn, results) -> None:
    """Entry point of one party's process."""
    keep_heap_pages()
    try:
        out = run_event_loop(_child(cfg, job, job_args, conn))
        results.put(("ok", cfg.pid, out))
    except BaseException as e:  # report everything: the parent decides
        results.put(("error", cfg.pid, _error_record(e)))
    finally:
        conn.close()


def _error_record(e: BaseException) -> tuple[str, str, str]:
    """A child's error as plain strings (type name, message, traceback): nothing but
    strings crosses back, and the parent rebuilds only smpc's own error types."""
    return type(e).__name__, str(e), traceback.format_exc()


def _rebuild_error(record: tuple[str, str, str]) -> BaseException:
    """The child's error as the same smpc error type where it is one, else PartyProcessError
    carrying the child's traceback."""
    import network.errors
    import protocols.errors

    name, message, tb = record
    for module in (network.errors, protocols.errors):
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, SmpcError):
            try:
                return cls(message)
            except TypeError:  # an error type with a different constructor
                break
    return PartyProcessError(f"{name}: {message}\n{tb}")


async def _open_channel(cfg: _Config, conn):
    if cfg.transport == "tcp":
        from network.tcp import TcpChannel

        ch = TcpChannel(
            cfg.pid, cfg.n, session_id=cfg.sid, static_key=cfg.static_key,
            peer_keys=cfg.public_keys, timeout=cfg.timeout, connect_timeout=cfg.connect_timeout,
            cipher=cfg.cipher, accept_ciphers=(cfg.cipher,),
        )
        try:
            addr = await ch.listen("127.0.0.1", 0)
            conn.send(("addr", tuple(addr)))
            addresses = await asyncio.to_thread(conn.recv)
            await ch.connect([tuple(a) for a in addresses])
        except BaseException:
            await ch.close()
            raise
        return ch
    from network.mqtt_mesh import open_mqtt_channel

    conn.send(("addr", None))
    await asyncio.to_thread(conn.recv)  # start together: the parent says go
    return await open_mqtt_channel(
        cfg.pid, cfg.n, session_id=cfg.sid, host=cfg.mqtt_host, port=cfg.mqtt_port,
        static_key=cfg.static_key, peer_keys=cfg.public_keys, timeout=cfg.timeout,
        connect_timeout=cfg.connect_timeout,
    )


async def _child(cfg: _Config, job, job_args: tuple, conn):
    from mpc.local import check_security, default_domain, make_scheme

    dom = cfg.domain_cls() if cfg.domain_cls is not None else None
    dom = check_security(cfg.security, cfg.scheme, cfg.n, cfg.threshold, dom)
    dom = dom if dom is not None else default_domain(cfg.scheme)
    sch = make_scheme(cfg.scheme, dom, cfg.n, cfg.threshold)
    t0 = time.perf_counter()
    ch = await _open_channel(cfg, conn)
    setup = time.perf_counter() - t0
    dealer = InsecureSharedSeedDealer(sch, cfg.dealer_seed, cfg.pid)
    s = new_session(cfg.pid, cfg.n, sch, ch, sid=cfg.sid, seed=cfg.party_seed,
                    security=cfg.security)
    if cfg.preprocessing != "shared_seed_dealer":
        from mpc.local import dealer_free_source

        s = with_source(s, dealer_free_source(cfg.preprocessing, s))
    else:
        s = with_source(s, dealer.view(), guard=False)
    stats = s.stats
    if cfg.security == "malicious" and cfg.scheme == "additive":  # SPDZ2k: MACed items
        from protocols.malicious import spdz2k
        from protocols.malicious.spdz2k_prep import Spdz2kDealer

        if cfg.preprocessing == "ot":  # dealer-free: vOLE MACs, sacrificed OT triples
            from protocols.malicious.spdz2k_ot import Spdz2kOT

            spdz2k.attach(s, Spdz2kOT(s))
        elif cfg.preprocessing != "shared_seed_dealer":
            raise MaliciousUnsupportedError(f"SPDZ2k has no {cfg.preprocessing!r} preprocessing yet")
        else:
            spdz2k.attach(s, Spdz2kDealer.shared_seed(cfg.n, cfg.dealer_seed, cfg.pid))
    try:
        t1 = time.perf_counter()
        result = await job(s, *job_args)
        seconds = time.perf_counter() - t1
    except BaseException as e:
        await s.abort(e)
        raise
    await ch.close()
    return result, stats.as_dict(), seconds, setup


def run_processes(
    n: int,
    job,
    *,
    job_args: Sequence[Any] = (),
    scheme: str = "additive",
    threshold: int | None = None,
    transport: str = "tcp",
    seed: int | None = None,
    timeout: float = 60.0,
    connect_timeout: float = 30.0,
    deadline: float | None = None,
    mqtt_host: str = "127.0.0.1",
    mqtt_port: int = 1883,
    domain=None,
    latency: float = 0.0,
    bandwidth: float | None = None,
    preprocessing: str = "shared_seed_dealer",
    security: str = "semi-honest",
    cipher: str = "auto",
) -> ProcessRun:
    """Run `await job(session, *job_args)` for each of n parties, each in its own process.

    `job` must be a module-level async function (it is pickled by reference into 'spawn'
    children), and `job_args` and its return value must be picklable. transport "tcp"
    (Noise KK over 127.0.0.1, fresh key pairs per run) or "mqtt" (the broker at
    mqtt_host:mqtt_port, end-to-end encrypted). Preprocessing comes from an
    `InsecureSharedSeedDealer` (INSECURE; benchmarks and tests only). `seed` makes the
    dealer and party randomness reproducible; without it, the shared dealer seed is drawn
    from os.urandom per run. `timeout` is every receive's deadline; `deadline` bounds the
    whole run (default: connect_timeout + 4 * timeout), after which all children are
    terminated and ProcessesTimeoutError is raised. `domain` overrides the scheme's default
    domain; it must be constructible without arguments (Ring64, Mersenne61, Mersenne127),
    since each child builds its own (domains hold unpicklable scratch buffers).
    `preprocessing` "dn07", "ot" or "rss3" runs that dealer-free source inside every party
    instead of the shared-seed dealer.
    `latency` (s, one way) and `bandwidth` (B/s per direction of each link) put a delaying,
    rate-limiting proxy (network.wanproxy) in front of every party's listening port, run by
    this (parent) process in a background thread: a simulated WAN over real sockets (tcp only).
    `security` "semi-honest" or "malicious" (as run_local: Shamir only, GF(2^127 - 1) by
    default; additive: SPDZ2k with the shared-seed MACed dealer).
    `cipher` (tcp): the Noise cipher of every link, "ChaChaPoly", "AESGCM" or "auto" (the
    default: AESGCM where this CPU has AES instructions, network.secure.preferred_cipher;
    the parties all run on this machine, so they agree).

    Raises the root cause of a failure: a child's own error, or PartyProcessError for a
    child that died without reporting; `party_errors` (one entry per party) is attached.
    """
    if not isinstance(n, int) or n < 2:
        raise ParameterError(f"run_processes needs n >= 2 parties, got {n!r}")
    if transport not in PROCESS_TRANSPORTS:
        raise ParameterError(f"transport must be one of {PROCESS_TRANSPORTS}, got {transport!r}")
    wan = bool(latency) or bandwidth is not None
    if wan and transport != "tcp":
        raise ParameterError("latency/bandwidth over separate processes need transport='tcp'")
    if not asyncio.iscoroutinefunction(job):
        raise ParameterError("job must be a module-level async function")
    from mpc.local import check_security, default_domain, make_scheme
    from network.keys import generate_keypair
    from network.secure import CIPHERS, preferred_cipher

    if cipher == "auto":
        cipher = preferred_cipher()
    if cipher not in CIPHERS:
        raise ParameterError(f"cipher must be 'auto' or one of {CIPHERS}, got {cipher!r}")
    domain_cls = type(domain) if domain is not None else None
    if domain_cls is not None:
        try:
            domain_cls()
        except TypeError as e:
            raise ParameterError(f"run_processes needs a domain constructible without arguments: {e}") from e
    checked = check_security(security, scheme, n, threshold, domain)
    make_scheme(scheme, checked if checked is not None else default_domain(scheme), n, threshold)
    sid = derive_key(seed, "sid")[:16] if seed is not None else os.urandom(16)
    dealer_seed = derive_key(seed, "dealer") if seed is not None else os.urandom(32)
    party_seed = derive_key(seed, "parties") if seed is not None else None
    pairs = [generate_keypair() for _ in range(n)]
    public_keys = [pk for _, pk in pairs]
    limit = deadline if deadline is not None else connect_timeout + 4 * timeout

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs, conns = [], []
    proxy = _ProxyThread(latency, bandwidth) if wan else None
    try:
        for pid in range(n):
            cfg = _Config(
                pid=pid, n=n, scheme=scheme, threshold=threshold, transport=transport, sid=sid,
                dealer_seed=dealer_seed, party_seed=party_seed, static_key=pairs[pid][0],
                public_keys=public_keys, timeout=timeout, connect_timeout=connect_timeout,
                mqtt_host=mqtt_host, mqtt_port=mqtt_port, domain_cls=domain_cls,
                preprocessing=preprocessing, security=security, cipher=cipher,
            )
            parent_end, child_end = ctx.Pipe()
            p = ctx.Process(
                target=_child_main, args=(cfg, job, tuple(job_args), child_end, results),
                name=f"smpc-party-{pid}", daemon=True,
            )
            p.start()
            child_end.close()
            procs.append(p)
            conns.append(parent_end)
        t_end = time.monotonic() + limit
        outcomes: dict[int, tuple] = {}
        addresses = _gather_addresses(procs, conns, results, outcomes, t_end, connect_timeout)
        if addresses is not None:
            if proxy is not None:
                addresses = proxy.start(addresses)
            for c in conns:
                try:
                    c.send(addresses)
                except OSError:
                    pass  # that child already died; noticed below
            _gather_results(procs, results, outcomes, t_end)
        else:  # a party failed during startup: stop the rest, they never got the go
            for pid in range(n):
                outcomes.setdefault(pid, ("aborted", pid, None))
    finally:
        _reap(procs)
        if proxy is not None:
            proxy.stop()
        for c in conns:
            c.close()
        results.close()
        results.join_thread()
    return _assemble(n, outcomes)


class _ProxyThread:
    """The WAN proxies of a process run, in their own event loop on a daemon thread."""

    def __init__(self, latency: float, bandwidth: float | None):
        self.latency, self.bandwidth = latency, bandwidth
        self.loop: asyncio.AbstractEventLoop | None = None
        self.proxies: list = []
        self.thread = None

    def start(self, addresses):
        import threading

        from network.wanproxy import wan_addresses

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="smpc-wanproxy", daemon=True)
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(
            wan_addresses(addresses, latency=self.latency, bandwidth=self.bandwidth), self.loop
        )
        out, self.proxies = fut.result(timeout=10)
        return out

    def stop(self) -> None:
        if self.loop is None:
            return

        async def close_all():
            for p in self.proxies:
                await p.close()

        try:
            asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
            self.loop.close()


def _gather_addresses(procs, conns, results, outcomes, t_end, connect_timeout):
    addresses: list[Any] = [None] * len(procs)
    got = set()
    t_conn = min(t_end, time.monotonic() + connect_timeout + 60)  # spawn + imports take time
    while len(got) < len(procs):
        if time.monotonic() > t_conn:
            raise ProcessesTimeoutError("parties did not start within the connect deadline")
        for pid, c in enumerate(conns):
            if pid in got:
                continue
            try:
                if c.poll(0.02):
                    _, addresses[pid] = c.recv()
                    got.add(pid)
            except (EOFError, OSError):
                got.add(pid)  # died before reporting: its outcome arrives on the queue
                outcomes.setdefault(pid, ("dead", pid, None))
        _drain(results, outcomes, 0)
        if any(o[0] != "ok" for o in outcomes.values()):
            return None  # a party failed during startup: the others will be terminated
    return addresses


def _drain(results, outcomes, wait: float) -> None:
    try:
        while True:
            kind, pid, payload = results.get(timeout=wait) if wait else results.get_nowait()
            outcomes[pid] = (kind, pid, payload)
            wait = 0
    except queue.Empty:
        pass


def _gather_results(procs, results, outcomes, t_end) -> None:
    dead_since: dict[int, float] = {}
    while True:
        _drain(results, outcomes, 0.05)
        reported = {pid for pid, o in outcomes.items() if o[0] in ("ok", "error")}
        if len(reported) == len(procs):
            return
        now = time.monotonic()
        for pid, p in enumerate(procs):
            if pid not in reported and not p.is_alive():
                # give the queue a moment: a child that exited normally has flushed its result
                first = dead_since.setdefault(pid, now)
                if now - first > 1.0:
                    outcomes[pid] = ("dead", pid, p.exitcode)
        if all(pid in outcomes for pid in range(len(procs))):
            return
        if now > t_end:
            for pid in range(len(procs)):
                outcomes.setdefault(pid, ("timeout", pid, None))
            return


def _reap(procs) -> None:
    for p in procs:
        p.join(timeout=2.0)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=2.0)
        if p.is_alive():
            p.kill()
            p.join(timeout=2.0)


def _assemble(n: int, outcomes: dict[int, tuple]) -> ProcessRun:
    errors: list[BaseException | None] = []
    res, stats, secs, setups = [], [], [], []
    for pid in range(n):
        kind, _, payload = outcomes.get(pid, ("timeout", pid, None))
        if kind == "ok":
            result, st, seconds, setup = payload
            res.append(result)
            stats.append(Stats(**st))
            secs.append(seconds)
            setups.append(setup)
            errors.append(None)
            continue
        res.append(None)
        stats.append(Stats())
        if kind == "error":
            errors.append(_rebuild_error(payload))
        elif kind == "aborted":
            errors.append(SessionAbortedError(f"party {pid} stopped: another party failed at startup"))
        elif kind == "dead":
            errors.append(PartyProcessError(f"party {pid}'s process died (exit code {payload})"))
        else:
            errors.append(ProcessesTimeoutError(f"party {pid} did not finish before the deadline"))
    if any(e is not None for e in errors):
        causes = [e for e in errors if e is not None and not isinstance(e, _CONSEQUENCES)]
        causes.sort(key=lambda e: isinstance(e, ProcessesTimeoutError))  # real causes first
        root = causes[0] if causes else next(e for e in errors if e is not None)
        if isinstance(root, Exception):
            root.party_errors = errors  # type: ignore[attr-defined]
        raise root
    return ProcessRun(res, stats, max(secs), errors, max(setups), secs)


__all__ = [
    "InsecureSharedSeedDealer",
    "PartyProcessError",
    "ProcessRun",
    "ProcessesTimeoutError",
    "run_processes",
]
