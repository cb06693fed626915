"""The job runner: one accepted job, step by step, with this node's peers.

Steps (every node runs the same; `step` in the status shows progress):

connect  a fresh session with every peer: TCP mesh (Noise KK, pinned keys) or MQTT. The
         channel's session id binds the job id and the submission's run nonce (fresh per
         submission, chosen by the analyst and carried in the signed request). Over TCP each
         node dials the higher-indexed peers' long-lived listeners (network.tcp_park), which
         park the authenticated connection until that node starts the job: no windows that
         must overlap. Every dial runs its handshake under a fresh dial nonce and is parked
         only after key confirmation, so a recorded Noise message 1 replayed into a listener
         is dropped and counted and never takes a retry's place. MQTT (no listener) meets in
         connect rounds. A peer that is not there within timeouts.connect fails the job
         (`peer.unavailable`). Queued jobs run in `order_key` order on every node.
agree    every node sends every other its manifest hash, consortium fingerprint, decision, a
         fresh 16-byte nonce, its attempt number and policy.min_group_size. The job's session
         id (message tags, preprocessing) is then BLAKE2b(channel sid, every node's nonce and
         attempt): fresh randomness from every node. Mismatch or refusal: nothing runs; every node records
         the same code (`agreement.*`). Peers learn only codes, never reasons.
load     each node reads its own source (named columns only) and checks its row limits and
         the job's data rules; a second agreement round shares only ok / code, and for
         vertical jobs a digest of the sorted row ids.
compute  every node first echoes a digest of the public terms it derived (k, DP, security:
         mpc.node.jobs.agree_terms, 1 round; a node that sent different views to different
         peers fails the job on every honest node before any input), then the registered
         computation (mpc.node.jobs) with dealer-free preprocessing.
deliver  every output goes to its recipients only (party recipients: core.reveal_to; the
         analyst: this node's share sealed to the analyst's key; SPDZ2k: the masked share,
         its MAC share and the job's MAC key share, which the analyst's Client checks).

Any error ends the job with a code on this node and a generic reason (what the analyst and the
peers see); the details (rows, columns, values' names) stay in this node's log, escaped. A
failed job releases nothing. The end of every job goes through `Runner.job_ended` (store,
audit entry, log): the one place to hook job-end work.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mpc.node import codes
from mpc.node.audit import AuditLog
from mpc.node.codes import generic_reason
from mpc.node.config import ANALYST, NodeConfig
from mpc.node.escape import escape
from mpc.node.jobs import REGISTRY, JobContext, run_job
from mpc.node.manifest import Manifest
from mpc.node.precompute import PlanSource
from mpc.node.runutil import (  # noqa: F401  (re-exported)
    JobAbortError,
    JobFailed,
    cancel_until_done,
    domain_for,
    seal_to_analyst,
)
from mpc.node.store import JobStore
from network.errors import SmpcError

log = logging.getLogger("smpc.node")

MAX_AGREE_BYTES = 4096
#: the longest one connect round waits for the peers (the job's budget is timeouts.connect)
MAX_WINDOW = 4.0


def attach_spdz2k(s, preprocessing: str, sid: bytes) -> None:
    """SPDZ2k on a malicious additive job session (issue 16) [Cramer et al., CRYPTO 2018]:
    `spdz2k.attach` draws this party's MAC key share alpha_i from the session's CSPRNG
    (never sent, zeroed when the session aborts: spdz2k._Ctx.on_abort) and takes its MACed
    items from this party's dealer-free source (`ot`: protocols.malicious.spdz2k_ot, vOLE
    MACs and sacrificed OT triples, over the job's own channel) or, with --insecure only,
    the shared-seed dealer keyed by the job's session id (every alpha_i from that seed:
    tests and benchmarks)."""
    from protocols.malicious import spdz2k

    if preprocessing == "ot":
        from protocols.malicious.spdz2k_ot import Spdz2kOT

        spdz2k.attach(s, Spdz2kOT(s))
    elif preprocessing == "shared_seed_dealer":  # insecure: refused at start without --insecure
        from protocols.malicious.spdz2k_prep import Spdz2kDealer

        spdz2k.attach(s, Spdz2kDealer.shared_seed(s.n, sid, s.pid))
    else:  # the config refuses it (_check_spdz2k): never a silent semi-honest run
        from protocols.errors import MaliciousUnsupportedError

        raise MaliciousUnsupportedError(f"SPDZ2k has no MACed {preprocessing!r} preprocessing")


def error_code(e: BaseException) -> str:
    from network.errors import ChannelAuthError, ChannelClosedError, PeerUnavailableError
    from protocols.errors import SessionAbortedError

    code = getattr(e, "code", None)
    if isinstance(code, str):
        return code
    from network.errors import BrokerRefusedError, BrokerUnavailableError

    if isinstance(e, BrokerRefusedError):  # issue 14: named codes for the broker
        return codes.TRANSPORT_BROKER_REFUSED
    if isinstance(e, BrokerUnavailableError):
        return codes.TRANSPORT_BROKER_UNAVAILABLE
    if isinstance(e, PeerUnavailableError | ChannelClosedError | SessionAbortedError):
        return codes.PEER_UNAVAILABLE
    if isinstance(e, ChannelAuthError):
        return codes.PEER_AUTH
    if isinstance(e, TimeoutError):
        return codes.JOB_TIMEOUT
    return codes.job_error(e)


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 1


@dataclass
class Run:
    """One attempt at a job on this node."""

    m: Manifest
    run: bytes                      # the submission's run nonce (analyst's, signed request)
    attempt: int = 1
    nonce: bytes = field(default_factory=lambda: os.urandom(16))  # this node's randomness
    sid: bytes = b""                # the job session's id once every node's nonce is known
    cancel_code: str | None = None  # why the job task was cancelled (default node.shutdown)
    meeting: bool = False           # connecting: may be preempted (a job earlier in order_key)
    preempted: bool = False         # an earlier job arrived: stop connecting, queue again
    rounds: int = 0                 # connect rounds tried so far (see Runner._meet)
    connect_deadline: float | None = None  # monotonic time the connect budget ends
    stored: Any = None              # issue 15: the agreed stored batch (items, id) for _session
    #: records dropped by this attempt's discarded channels (connect rounds that ended in a
    #: requeue or a failure): added to the job's stats, so /metrics counts them (issue 14)
    dropped: dict[str, int] = field(default_factory=dict)

    def keep_link_stats(self, ch) -> None:
        """Add a discarded channel's dropped-record counters to this attempt's."""
        for k, v in (ch.link_stats() if hasattr(ch, "link_stats") else {}).items():
            if k in ("rejected", "duplicates") and isinstance(v, int):
                self.dropped[k] = self.dropped.get(k, 0) + v

    def with_dropped(self, stats: dict) -> dict:
        """`stats` with this attempt's discarded channels' counters added."""
        return {**stats, **{k: int(stats.get(k, 0) or 0) + v for k, v in self.dropped.items()}}

    def next_window(self, connect_timeout: float) -> float:
        """How long the next connect round may wait for the peers: growing (1 s, 1.6 s,
        2.6 s, up to MAX_WINDOW) with +-20% jitter, so nodes that started their rounds at different times
        soon overlap; never beyond the job's connect budget (timeouts.connect in all)."""
        now = time.monotonic()
        if self.connect_deadline is None:
            self.connect_deadline = now + connect_timeout
        base = min(1.0 * 1.6 ** self.rounds, MAX_WINDOW, connect_timeout)
        self.rounds += 1
        jitter = 0.8 + 0.4 * int.from_bytes(os.urandom(2), "big") / 65535
        return max(0.05, min(base * jitter, self.connect_deadline - now))

    def remaining(self, connect_timeout: float) -> float:
        """What is left of the job's connect budget (timeouts.connect over all tries); the
        TCP transport waits this long at once, its peers' listeners park the connection."""
        now = time.monotonic()
        if self.connect_deadline is None:
            self.connect_deadline = now + connect_timeout
        self.rounds += 1
        return max(0.05, self.connect_deadline - now)

    def budget_left(self) -> bool:
        return self.connect_deadline is not None and time.monotonic() < self.connect_deadline


    @property
    def channel_sid(self) -> bytes:
        return hashlib.blake2b(self.m.job_id.encode() + b"\0" + self.run, digest_size=16,
                               person=b"smpc-job-sid").digest()


def order_key(m: Manifest) -> tuple[int, str]:
    """The order every node runs queued jobs in: earliest manifest.not_after first, then the
    lowest job id (earliest-deadline-first; Liu & Layland 1973). Both come from the signed
    manifest, so every node computes the same order. No starvation: a job is overtaken only
    by jobs whose not_after is earlier than its own, and every job submitted after that
    instant has a later one (a node refuses a manifest past its not_after), so the set of jobs
    that can go before it is finite, however many lower job ids keep arriving."""
    return m.not_after, m.job_id


class Requeue(Exception):  # noqa: N818  (a control-flow signal, not an error)
    """The peers were not all on this job in this connect round (another job, not yet
    submitted there, or between rounds): nothing was exchanged; queue it again."""


class Runner:
    """Runs one job at a time with the peers; records every outcome through job_ended."""

    def __init__(self, cfg: NodeConfig, static_key: bytes, fingerprint: str, store: JobStore,
                 audit: AuditLog, metrics=None, stop=None, budget=None):
        self.cfg = cfg
        self.static_key = static_key
        self.fingerprint = fingerprint
        self.store = store
        self.audit = audit
        self.metrics = metrics
        self.budget = budget  # issue 13: mpc.node.budget.BudgetLedger (None: no DP ledger)
        self.stop = stop  # called with a reason when the audit anchor proves our log was cut
        self.stopping: str | None = None
        #: TCP: the node's long-lived peer listener (network.tcp_park), set by Node.serve
        self.listener: Any = None
        #: issue 15: mpc.node.precompute.Precompute (stored batches, plans), set by Node
        self.prep: Any = None

    # ------------------------------------------------------------------ job end ---
    def job_ended(self, m: Manifest, status: str, code: str | None, reason: str | None,
                  stats: dict, *, decision: str, result: dict | None = None,
                  detail: str | None = None) -> None:
        """Every job's end: store record, one audit entry, one log line. `reason` is what the
        analyst sees (generic); `detail` goes to the local log only (escaped)."""
        self.store.put(m.job_id, status=status, step=status, code=code, reason=reason,
                       stats=json.dumps(stats), result=json.dumps(result) if result else None)
        peers = [p.index for p in self.cfg.peers]
        try:
            self.audit.append(
                job_id=m.job_id, manifest_hash=m.hash, decision=decision, peers=peers,
                rounds=int(stats.get("rounds", 0)), bytes=int(stats.get("bytes_sent", 0)),
                outcome=status, reason=escape(f"{code}: {reason}" if code else "ok", 500))
        except SmpcError as e:
            log.error("job %s: audit append failed: %s", m.job_id, escape(e))
        if self.metrics is not None:
            self.metrics.job_ended(status, stats)
        if status == "done":
            log.info("job %s: done, rounds=%s bytes_sent=%s seconds=%s", m.job_id,
                     stats.get("rounds"), stats.get("bytes_sent"), stats.get("seconds"))
        else:
            log.warning("job %s: %s: %s: %s", m.job_id, status, escape(code),
                        escape(detail or reason))

    def step(self, m: Manifest, step: str, **info: Any) -> None:
        self.store.put(m.job_id, step=step, status="running")
        extra = " ".join(f"{k}={escape(v, 120)}" for k, v in info.items())
        log.info("job %s: step %s %s", m.job_id, step, extra)

    # ------------------------------------------------------------------ run ---
    async def run(self, r: Run) -> None:
        from mpc.node.models import ModelStore, model_binding  # issue 13: shared models stay shared
        from mpc.node.policy import PolicyError, agree_dp, check_manifest, dp_request, spend_budget

        m = r.m
        t0 = time.perf_counter()
        stats: dict[str, Any] = {}
        decision = "accepted"
        local: tuple[str, str] | None = None
        dp_mine = None
        pkey = ""
        try:
            # again: the policy may have been reloaded, the budget spent by another job
            check_manifest(m, self.cfg, REGISTRY, self.budget)
            dp_mine = dp_request(m, self.cfg)  # issue 13: this node's DP terms
            if m.expired():
                raise JobAbortError(codes.MANIFEST_EXPIRED, "manifest.not_after has passed")
        except (PolicyError, SmpcError) as e:
            local = (error_code(e), str(e))
            decision = "refused"
            log.warning("job %s: this node refuses: %s: %s", m.job_id, local[0],
                        escape(local[1]))
        ch = None
        s = None
        finished = False
        try:
            async with asyncio.timeout(self.cfg.job_timeout):
                if r.rounds == 0:
                    self.step(m, "connect", peers=self.cfg.n - 1,
                              transport=self.cfg.transport, attempt=r.attempt)
                ch, views = await self._meet(r, {
                    "hash": m.hash, "fingerprint": self.fingerprint,
                    "ok": local is None, "code": local[0] if local else None,
                    "nonce": r.nonce.hex(), "attempt": r.attempt,
                    "min_group_size": self.cfg.policy.min_group_size,
                    "dp": dp_mine, "security": self.cfg.security})
                k_floor = max(_int(v.get("min_group_size")) for v in views.values())
                # issue 13 (privacy): every node agreed; spend the agreed DP terms (no round)
                dp_terms = agree_dp(views)
                spend_budget(m, self.cfg, self.budget, dp_terms)
                if dp_terms is not None and m.inputs.get(self.cfg.name):
                    with contextlib.suppress(SmpcError):
                        self.audit.append(
                            job_id=m.job_id, manifest_hash=m.hash, decision="budget",
                            peers=[], rounds=0, bytes=0, outcome="spent",
                            reason=escape(f"dp {dp_terms['mechanism']} epsilon="
                                          f"{dp_terms['epsilon']:g} delta={dp_terms['delta']:g} "
                                          f"source={m.inputs[self.cfg.name]['source']}", 500))
                self.step(m, "load")
                X, y, extra, problem = self._load(m)
                data_view = {
                    "hash": m.hash, "fingerprint": self.fingerprint, "ok": problem is None,
                    "code": problem[0] if problem else None,
                    "align": self._align_digest(r, extra)}
                if self.prep is not None:  # issue 15: this node's stored batches for the job
                    pkey = self.prep.job_key(m, X, extra, dp_terms, k_floor)
                    data_view["prep"] = self.prep.offer(pkey)
                views = await self._agree(ch, m, "data", data_view)
                self._check_alignment(views)
                r.stored = await self.prep.select(ch, views) if self.prep is not None else None
                s = self._session(ch, r)
                r.stored = None  # the items now live in the session's PlanSource only
                self.step(m, "compute", computation=m.computation,
                          shape=list(X.shape) if X is not None else None)
                spec = REGISTRY[m.computation]
                ctx = JobContext(s, m, self.cfg.party_names(), X, y,
                                 log=lambda step, **kw: self.step(m, step, **kw),
                                 extra=extra, k_floor=k_floor, dp=dp_terms,
                                 models=ModelStore(self.cfg.state_dir / "models",
                                                   binding=model_binding(self.cfg)))
                outputs = await run_job(spec, ctx)  # the terms echo first (hard4)
                self.step(m, "deliver", outputs=sorted(outputs), recipients=m.recipients)
                result = await self._deliver(s, m, outputs)
                stats = r.with_dropped({
                    **s.stats.as_dict(), "seconds": round(time.perf_counter() - t0, 4),
                    **{k: v for k, v in ch.link_stats().items() if isinstance(v, int)}})
                psrc = getattr(s.prep, "source", None)
                if isinstance(psrc, PlanSource):  # issue 15: where the preprocessing came from
                    stats.update(offline_seconds=round(psrc.online_seconds, 4),
                                 prep_source=psrc.source_used, prep_batch=psrc.batch,
                                 prep_served=psrc.served)
                    off = getattr(psrc.inner, "stats", None)  # the source's own traffic
                    if hasattr(off, "as_dict"):
                        stats.update({f"offline_{k}": v for k, v in off.as_dict().items()
                                      if k in ("rounds", "bytes_sent")})
                self.job_ended(m, "done", None, None, stats, decision=decision, result=result)
                finished = True  # the outcome is recorded before the audit heads exchange
                if self.prep is not None and isinstance(psrc, PlanSource):
                    try:
                        self.prep.record(pkey, m.computation, psrc.log, r.sid)
                    except (SmpcError, OSError, TypeError, ValueError) as e:
                        log.warning("job %s: plan not recorded: %s", m.job_id, escape(e))
                await self._anchor_audit(ch, m)  # issue 14: countersigned audit heads
            await ch.close()
        except Requeue:
            raise
        except asyncio.CancelledError:
            code = r.cancel_code or codes.NODE_SHUTDOWN
            reason = self.stopping or "job cancelled"
            await self._abort(s, ch, JobAbortError(code, reason))
            if finished:
                raise
            if code == codes.NODE_SHUTDOWN:
                self.job_ended(m, "failed", code, generic_reason("node."),
                               r.with_dropped(self._stats(s, t0)), decision=decision,
                               detail=reason)
            else:
                self.job_ended(m, "refused", code, "the analyst withdrew the job",
                               r.with_dropped(self._stats(s, t0)), decision="not_run")
            raise
        except BaseException as e:  # every failure is terminal and recorded; nothing released
            await self._abort(s, ch, e)
            if finished:
                raise
            code = error_code(e)
            detail = str(e) or type(e).__name__
            if isinstance(e, TimeoutError):
                detail = f"job exceeded timeouts.job = {self.cfg.job_timeout:g}s"
            if local is not None and code.startswith(codes.AGREEMENT_REFUSED):
                detail = f"{code} (this node: {local[0]}: {local[1]})"
            reason = detail if code.startswith("agreement.") else generic_reason(code)
            if getattr(e, "check", None):  # issue 16: the failed check's name, never values
                reason = f"{reason} (check: {escape(e.check, 40)})"  # type: ignore[attr-defined]
            status = "refused" if code.startswith(codes.REFUSED) else "failed"
            self.job_ended(m, status, code, reason, r.with_dropped(self._stats(s, t0, ch)),
                           decision=decision, detail=detail)
            if not isinstance(e, Exception):
                raise

    async def _anchor_audit(self, ch, m: Manifest) -> None:
        """Issue 14: exchange this job's final audit head with the peers and store their
        countersignatures (mpc.node.anchor). A peer gone or slow only leaves this head
        unanchored until the next job; a peer proving that our log lost a head it
        countersigned stops the node."""
        from mpc.node.anchor import AuditAnchorError, exchange_heads

        try:
            res = await exchange_heads(
                ch, self.audit, self.static_key, {p.index: p.public_key for p in self.cfg.peers},
                job_id=m.job_id, timeout=min(self.cfg.receive_timeout, 30.0))
        except AuditAnchorError as e:
            log.critical("job %s: audit.anchor: %s; stopping", m.job_id, escape(e))
            if self.stop is not None:
                self.stop(f"{codes.AUDIT_ANCHOR}: {e}")
            return
        except (SmpcError, TimeoutError) as e:
            log.warning("job %s: audit head not countersigned: %s", m.job_id, error_code(e))
            return
        for p in res.problems:
            log.warning("job %s: audit anchor: %s", m.job_id, escape(p))
        log.info("job %s: audit head seq %d countersigned by %s", m.job_id, res.seq,
                 list(res.countersigned_by))

    @staticmethod
    def _stats(s, t0: float, ch=None) -> dict:
        base = s.stats.as_dict() if s is not None else {}
        if ch is not None and hasattr(ch, "link_stats"):  # issue 14: dropped records, metrics
            base.update({k: v for k, v in ch.link_stats().items() if isinstance(v, int)})
        return {**base, "seconds": round(time.perf_counter() - t0, 4)}

    @staticmethod
    async def _abort(s, ch, e: BaseException) -> None:
        """Tell the peers (bounded: a shutdown must not wait on a slow peer) and close."""
        with contextlib.suppress(BaseException):
            async with asyncio.timeout(2.0):
                await Runner._abort_now(s, ch, e)
        with contextlib.suppress(BaseException):
            if ch is not None:
                await ch.close()

    @staticmethod
    async def _abort_now(s, ch, e: BaseException) -> None:
        with contextlib.suppress(BaseException):
            if s is not None:
                await s.abort(e if isinstance(e, Exception) else JobAbortError(codes.NODE_SHUTDOWN, ""))
            elif ch is not None:
                await ch.close()

    # ------------------------------------------------------------------ steps ---
    def _job_sid(self, r: Run, views: dict[int, dict]) -> bytes:
        """BLAKE2b(channel sid = H(job id, run nonce), then per party in index order: its
        fresh 16-byte nonce and its attempt number). Nodes may count attempts differently
        (one was down for a submission), so each node's own count is bound, not compared."""
        h = hashlib.blake2b(digest_size=16, person=b"smpc-job-session")
        h.update(r.channel_sid)
        for j in sorted(views):
            nonce, attempt = views[j].get("nonce"), views[j].get("attempt")
            try:
                raw = bytes.fromhex(nonce) if isinstance(nonce, str) else b""
            except ValueError:
                raw = b""
            if len(raw) != 16:
                raise JobAbortError(codes.AGREEMENT_MALFORMED, f"party {j} sent no nonce")
            if not isinstance(attempt, int) or isinstance(attempt, bool) \
                    or not 1 <= attempt < 1 << 32:
                raise JobAbortError(codes.AGREEMENT_MALFORMED, f"party {j} sent no attempt")
            h.update(raw + attempt.to_bytes(4, "little"))
        return h.digest()

    async def _meet(self, r: Run, mine: dict):
        """Open the job's session with every peer and exchange the manifest agreement. Over
        TCP the connect waits the rest of the job's connect budget (the peers' listeners park
        our connections until they reach this job); over MQTT it waits one connect round's
        window. If the peers are not all there and the budget is not spent, raise Requeue:
        the worker then picks the first queued job in `order_key` order again. A job earlier
        in that order arriving while this one connects ends the attempt at once
        (Node.submit preempts). Every node does the same, so once two jobs are queued
        everywhere all nodes converge on the earlier one and the other runs after it. Once
        the mesh is up every peer is on this job: the agreement then waits the receive
        timeout. Nothing of the job has been exchanged unless every view arrived."""
        from network.errors import NetworkError
        from protocols.errors import SessionAbortedError

        if self.listener is not None:  # TCP: the peers' listeners park our connections
            window = r.remaining(self.cfg.connect_timeout)
        else:  # MQTT (no listener): connect rounds
            window = r.next_window(self.cfg.connect_timeout)
        ch = None
        r.meeting = True
        try:
            ch = await self._open_channel(r, window)
            r.meeting = False  # the mesh is up: every peer is on this job
            self.step(r.m, "agree")
            views = await self._agree(ch, r.m, "manifest", mine)
        except asyncio.CancelledError:
            if not r.preempted:
                raise
            asyncio.current_task().uncancel()
            r.preempted = r.meeting = False
            r.connect_deadline = None  # set aside for an earlier job: its budget starts again
            if ch is not None:
                r.keep_link_stats(ch)
                with contextlib.suppress(BaseException):
                    await ch.close()
            log.info("job %s: connect try %d: an earlier job arrived; queued again",
                     r.m.job_id, r.rounds)
            raise Requeue("preempted") from None
        except (NetworkError, SessionAbortedError, TimeoutError) as e:
            r.meeting = False
            if ch is not None:
                r.keep_link_stats(ch)  # issue 14: this round's dropped records still count
                with contextlib.suppress(BaseException):
                    await ch.close()
            if r.budget_left() and not self.stopping:
                log.info("job %s: connect round %d: peers not all on this job (%s); queued "
                         "again", r.m.job_id, r.rounds, type(e).__name__)
                raise Requeue(str(e)) from None
            raise
        r.sid = self._job_sid(r, views)
        return ch, views

    async def _open_channel(self, r: Run, connect_timeout: float):
        cfg = self.cfg
        peer_keys = {p.index: p.public_key for p in cfg.peers}
        if cfg.transport == "tcp":
            from network.tcp import TcpChannel

            ch = TcpChannel(
                cfg.index, cfg.n, session_id=r.channel_sid,
                static_key=None if cfg.plaintext_channels else self.static_key,
                peer_keys=None if cfg.plaintext_channels else peer_keys,
                consortium_id=cfg.consortium_id.encode(),
                insecure_plaintext=cfg.plaintext_channels, timeout=cfg.receive_timeout,
                connect_timeout=connect_timeout, cipher=cfg.cipher, accept_ciphers=(cfg.cipher,))
            try:  # closed on every path: a job cancelled during connect frees the port
                if self.listener is not None:
                    await ch.connect_via(self.listener, cfg.addresses())
                else:
                    await ch.connect(cfg.addresses())
            except BaseException:
                r.keep_link_stats(ch)
                with contextlib.suppress(BaseException):
                    await ch.close()
                raise
            return ch
        from network.mqtt import MqttChannel

        # as network.mqtt_mesh.open_mqtt_channel, keeping the channel of a connect round
        # that fails: the records it dropped are counted (issue 14)
        mch = MqttChannel(
            cfg.index, cfg.n, session_id=r.channel_sid, host=cfg.broker_host,
            port=cfg.broker_port, static_key=self.static_key, peer_keys=peer_keys,
            consortium_id=cfg.consortium_id.encode(), timeout=cfg.receive_timeout,
            connect_timeout=connect_timeout,
            username=cfg.broker_username, password=cfg.broker_password())  # issue 14
        try:
            await mch.start()
            await mch.handshake()
        except BaseException:
            r.keep_link_stats(mch)
            with contextlib.suppress(BaseException):
                await mch.close()
            raise
        return mch

    async def _agree(self, ch, m: Manifest, what: str, mine: dict) -> dict[int, dict]:
        """Exchange `mine` with every peer; raise the same JobAbortError on every node unless all
        sent ok with the same manifest hash and consortium fingerprint. Peers send codes
        only, never reasons. Returns every party's view (party index -> dict)."""
        raw = json.dumps(mine, sort_keys=True).encode()[:MAX_AGREE_BYTES]
        tag = f"agree/{what}"
        for j in range(self.cfg.n):
            if j != self.cfg.index:
                await ch.send(j, tag, raw)
        views = {self.cfg.index: mine}
        for j in range(self.cfg.n):
            if j != self.cfg.index:
                got = await ch.recv_bytes(j, tag, max_len=MAX_AGREE_BYTES)
                try:
                    views[j] = json.loads(got)
                    assert isinstance(views[j], dict)
                except (ValueError, AssertionError):
                    raise JobAbortError(codes.AGREEMENT_MALFORMED,
                                    f"party {j} sent a malformed {what} agreement") from None
        names = self.cfg.party_names()
        for j in sorted(views):  # same order everywhere: every node reports the same reason
            v = views[j]
            if what == "manifest" and v.get("security", "semi-honest") != self.cfg.security:
                raise JobAbortError(codes.AGREEMENT_SECURITY_MISMATCH,  # issue 16
                                    f"{names[j]} runs security = {escape(v.get('security'), 20)}")
            if v.get("fingerprint") != self.fingerprint:
                raise JobAbortError(codes.AGREEMENT_CONSORTIUM_MISMATCH,
                                f"{names[j]} has a different consortium configuration")
            if v.get("hash") != m.hash:
                raise JobAbortError(codes.AGREEMENT_MANIFEST_MISMATCH,
                                f"{names[j]} received a different manifest")
        for j in sorted(views):
            v = views[j]
            if not v.get("ok"):
                code = escape(v.get("code") or "refused", 80)
                prefix = codes.AGREEMENT_REFUSED if what == "manifest" else codes.AGREEMENT_DATA
                raise JobAbortError(f"{prefix}:{code}", f"{names[j]} refused: {code}")
        return views

    def _align_digest(self, r: Run, extra: dict) -> str | None:
        """A digest of this party's sorted row ids (vertical jobs with parameters.id_column):
        the parties hold the same ids by assumption, so the digest tells a peer nothing new
        when rows are aligned, and a mismatch stops the job before any computation."""
        col = r.m.parameters.get("id_column")
        if not col or col not in extra:
            return None
        ids = np.ascontiguousarray(np.sort(extra[col]), dtype=np.float64)
        return hashlib.blake2b(ids.tobytes(), digest_size=16, key=r.sid,
                               person=b"smpc-row-ids").hexdigest()

    def _check_alignment(self, views: dict[int, dict]) -> None:
        digests = {j: v.get("align") for j, v in sorted(views.items()) if v.get("align")}
        if len(set(digests.values())) > 1:
            raise JobAbortError(codes.AGREEMENT_ALIGNMENT, "the parties' row ids differ (vertical rows "
                            "must be aligned by parameters.id_column)")

    def _load(self, m: Manifest):
        from mpc.node.datasources import load_columns
        from mpc.node.policy import check_rows

        inp = m.inputs.get(self.cfg.name)
        if inp is None:
            return None, None, {}, None
        spec = REGISTRY[m.computation]
        try:
            src = self.cfg.sources[inp["source"]]
            feats = list(inp["columns"])
            label = [inp["label"]] if "label" in inp else []
            extras = [c for c in spec.extras(m, self.cfg.name) if c not in feats + label]
            data = load_columns(src, feats + label + extras, max_rows=self.cfg.policy.max_rows)
            check_rows(data.shape[0], self.cfg)
            idc = m.parameters.get("id_column")
            if idc in extras:  # vertical rows aligned by a shared id: every party sorts by it
                order = np.argsort(data[:, len(feats) + len(label) + extras.index(idc)],
                                   kind="stable")
                data = data[order]
            X = data[:, :len(feats)]
            y = data[:, len(feats)] if label else None
            extra = {c: data[:, len(feats) + len(label) + i] for i, c in enumerate(extras)}
            if spec.check_data is not None:
                spec.check_data(m, self.cfg.name, X, extra)
        except SmpcError as e:
            log.warning("job %s: data check failed: %s: %s", m.job_id, error_code(e),
                        escape(e))
            return None, None, {}, (error_code(e), str(e))
        log.info("job %s: loaded %s rows x %s columns from %s", m.job_id, data.shape[0],
                 data.shape[1], escape(inp["source"], 80))
        return X, y, extra, None

    def _session(self, ch, r):
        """The job's session. Issue 15: unless `r.record_plan` is False (a precompute run),
        the source is wrapped in a PlanSource that records the requests and serves
        `r.stored` (the agreed stored batch: items, batch id) first. Issue 16: a malicious
        additive consortium runs SPDZ2k (`attach_spdz2k`): its MACed items come from the
        session's own source under a key drawn for this job, so nothing is recorded or served
        from a stored batch (the config refuses a [preprocessing] target)."""
        from mpc.local import dealer_free_source, make_scheme
        from mpc.sessions import new_session, with_source

        dom = domain_for(self.cfg.scheme)
        sch = make_scheme(self.cfg.scheme, dom, self.cfg.n, self.cfg.t)
        s = new_session(self.cfg.index, self.cfg.n, sch, ch, sid=r.sid, security=self.cfg.security)
        if self.cfg.preprocessing in ("dn07", "ot", "rss3"):
            src = dealer_free_source(self.cfg.preprocessing, s)
        else:  # shared_seed_dealer: allowed only with --insecure (checked at start)
            from protocols.preprocessing.shared_seed_dealer import InsecureSharedSeedDealer

            src = InsecureSharedSeedDealer(sch, r.sid, self.cfg.index).view()
        spdz2k = self.cfg.security == "malicious" and self.cfg.scheme == "additive"
        if getattr(r, "record_plan", True) and not spdz2k:
            stored = getattr(r, "stored", None)
            src = PlanSource(src, stored[0] if stored else None, stored[1] if stored else None)
        s = with_source(s, src, guard=False)
        if spdz2k:
            attach_spdz2k(s, self.cfg.preprocessing, r.sid)
        return s

    async def _deliver(self, s, m: Manifest, outputs: dict) -> dict:
        """Reveal each output to its party recipients; seal this node's share of it to the
        analyst. Returns what this node stores (never an output not addressed to it).

        SPDZ2k (malicious additive, issue 16): the reveals to parties first (each
        spdz2k.reveal_to, MAC-checked), then every output addressed to the analyst at once
        through spdz2k.output_to_client: this node seals (x_i + 2^k r_i, its MAC share,
        alpha_i) per output, after the job's last check, and the job's MAC key share is
        deleted: the session computes, opens and checks nothing more. The analyst's Client
        checks the MAC itself (mpc.node.client, `OutputIntegrityError`), so a node that
        seals a shifted share is caught. Other sessions seal the value share only (Shamir
        malicious: the analyst checks the 2t+1 shares' consistency)."""
        from mpc.node.checked import is_spdz2k, reveal_fn, share_data, verify_before_release
        from protocols.arith.fixedpoint import FixedPoint

        await verify_before_release(s)  # issue 16: malicious jobs verify before anything leaves
        names = self.cfg.party_names()
        spdz = is_spdz2k(s)
        result: dict[str, Any] = {"scheme": self.cfg.scheme, "n": self.cfg.n, "t": self.cfg.t,
                                  "security": self.cfg.security,
                                  "pid": self.cfg.index, "computation": m.computation,
                                  "parameters": m.parameters, "outputs": {}}
        to_analyst: list[str] = []
        for name in sorted(outputs):
            out = outputs[name]
            if out.share is None:  # revealed inside the protocol to the only recipient
                entry = {"f": out.f, "revealed_in_protocol": True}
                if out.revealed is not None:
                    entry["values"] = np.asarray(out.revealed).tolist()
                result["outputs"][name] = entry
                continue
            entry: dict[str, Any] = {"f": out.f, "shape": list(out.share.shape)}
            for rcp in m.recipients:
                if rcp == ANALYST and spdz:
                    to_analyst.append(name)  # sealed below, after every reveal's check
                elif rcp == ANALYST:
                    wire = np.asarray(s.domain.to_wire(share_data(out.share)))
                    entry["sealed"] = seal_to_analyst(m.analyst_key,
                                                      np.ascontiguousarray(wire).tobytes())
                    entry["wire_dtype"] = str(wire.dtype)
                    entry["wire_shape"] = list(wire.shape)
                else:
                    got = await reveal_fn(out.share)(s.child(f"out/{name}/{rcp}"), out.share,
                                                     names.index(rcp))
                    if got is not None:
                        entry["values"] = FixedPoint(s.domain, out.f).decode(got).tolist()
            result["outputs"][name] = entry
        if to_analyst:
            await self._seal_spdz2k(s, m, outputs, to_analyst, result["outputs"])
        return result

    @staticmethod
    async def _seal_spdz2k(s, m: Manifest, outputs: dict, names: list[str],
                           entries: dict[str, dict]) -> None:
        """SPDZ2k outputs to the analyst, all in one spdz2k.output_to_client call: per
        output one sealed uint64 array of shape (2N + 1, 2) (ring128 limbs, little-endian):
        N masked value shares, N MAC shares, then alpha_i."""
        from protocols.malicious import spdz2k

        for name in names:
            if not isinstance(outputs[name].share, spdz2k.AShare):  # never unMACed
                from protocols.errors import MaliciousUnsupportedError

                raise MaliciousUnsupportedError(f"output {name!r} is not MACed (SPDZ2k)")
        parts, alpha = await spdz2k.output_to_client(s, *(outputs[n].share for n in names))
        for name, (x, mac) in zip(names, parts, strict=True):
            wire = np.concatenate([x.reshape(-1, 2), mac.reshape(-1, 2),
                                   alpha.reshape(1, 2)]).astype("<u8")
            entries[name].update(sealed=seal_to_analyst(m.analyst_key, wire.tobytes()),
                                 wire_dtype="uint64", wire_shape=list(wire.shape), mac="spdz2k")
