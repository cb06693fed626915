"""The node daemon: `smpc node --config bank.toml`.

One process per bank. It serves analysts over a small HTTP API bound to loopback, and runs
accepted jobs with its peers, one job at a time (later submissions queue in arrival order).

A job, step by step (every node runs the same steps; `step` in the status shows progress):

1. submit   POST /jobs with a signed envelope. Malformed or unsigned manifests are refused
            at once (400, `manifest.malformed` / `manifest.signature`); nothing is queued.
            A job id already known with the same manifest hash returns the stored record
            (no re-run; T18); a different manifest under a used idempotency key is
            refused (`idempotency.conflict`). A failed job may be re-submitted to run again.
2. policy   this node's policy decides on its own (mpc.node.policy); no data is read yet.
3. connect  a fresh session with every peer: TCP mesh (Noise KK, pinned keys) or MQTT,
            session id derived from the job id. A peer that is not there within
            timeouts.connect fails the job (`peer.unavailable`).
4. agree    every node sends every other its manifest hash, consortium fingerprint,
            decision and policy.min_group_size over the secure channel. Any mismatch or
            refusal: nothing runs, and every node records the same typed reason
            (`agreement.*`). Aggregates then use k = max(parameters.k_min, every node's
            min_group_size), the same on every node.
5. load     only now each node reads its own source, only the named columns (plus the
            job's extra columns: a vertical job's id column, fraud_aggregate's group key),
            and checks its row limits and the job's data rules; a second agreement round
            shares only ok / code / reason, and for vertical jobs with an id column a digest
            of the sorted ids (rows must be aligned: `agreement.alignment` otherwise).
6. compute  the registered computation (mpc.node.jobs) with dealer-free preprocessing per job
            session: dn07 for Shamir, ot for additive (or the insecure shared-seed dealer,
            only with --insecure).
7. deliver  every output goes to its recipients only: `core.reveal_to` for a party
            recipient; for "analyst", each node seals its own share to the analyst's key
            (X25519 from the signing key) and the client reconstructs. Nodes never see an
            output not addressed to them. (fraud_score's flags are revealed to the querying
            bank inside protocols.fraud.score; that bank is then the only recipient.)

Any error ends the job with a code and reason on this node; the peers see the session end
and record their own reason. A failed job releases nothing. SIGTERM: the running job is
cancelled (`node.shutdown`), recorded, and the daemon exits 0. Each job gets one audit
entry (mpc.node.audit: manifest hash, decision, peers, rounds, bytes, outcome, reason). Logs
carry job id, step, shapes, rounds and bytes, never data values, shares or keys.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import signal
import sqlite3
import time
from typing import Any

import numpy as np

from mpc.loop import run_event_loop
from mpc.node import codes
from mpc.node.anchor import AuditAnchorError, exchange_heads, open_audit
from mpc.node.config import ANALYST, InsecureConfigError, NodeConfig, NodeConfigError
from mpc.node.jobs import REGISTRY, JobContext
from mpc.node.manifest import (
    MAX_MANIFEST_BYTES,
    Manifest,
    ManifestError,
    SignatureError,
    verify_envelope,
)
from network.errors import SmpcError

log = logging.getLogger("smpc.node")

MAX_AGREE_BYTES = 4096


class JobAbortError(SmpcError):
    """This node aborts the running job with a code (mpc.node.codes) that every node reports
    (the client sees it in JobFailedError.reasons)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


#: deprecated name of JobAbortError
JobFailed = JobAbortError


def error_code(e: BaseException) -> str:
    from network.errors import ChannelAuthError, ChannelClosedError, PeerUnavailableError
    from protocols.errors import SessionAbortedError

    code = getattr(e, "code", None)
    if isinstance(code, str):
        return code
    if isinstance(e, PeerUnavailableError | ChannelClosedError | SessionAbortedError):
        return codes.PEER_UNAVAILABLE
    if isinstance(e, ChannelAuthError):
        return codes.PEER_AUTH
    if isinstance(e, TimeoutError):
        return codes.JOB_TIMEOUT
    return codes.job_error(e)


# --------------------------------------------------------------------------- job store ---
class JobStore:
    """The node's job records (SQLite in state_dir): status, reason, sealed results."""

    def __init__(self, path: str):
        new = not os.path.exists(path)
        self.db = sqlite3.connect(path, isolation_level=None)
        if new:
            os.chmod(path, 0o600)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, manifest_hash TEXT, "
            "computation TEXT, envelope TEXT, status TEXT, step TEXT, code TEXT, reason TEXT, "
            "result TEXT, stats TEXT, created REAL, updated REAL)")

    def get(self, job_id: str) -> dict | None:
        cur = self.db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    def put(self, job_id: str, **fields: Any) -> None:
        fields["updated"] = time.time()
        if self.get(job_id) is None:
            fields.setdefault("created", fields["updated"])
            keys = ["job_id", *fields]
            self.db.execute(f"INSERT INTO jobs ({', '.join(keys)}) VALUES "  # noqa: S608
                            f"({', '.join('?' * len(keys))})", [job_id, *fields.values()])
        else:
            sets = ", ".join(f"{k} = ?" for k in fields)
            self.db.execute(f"UPDATE jobs SET {sets} WHERE job_id = ?",  # noqa: S608
                            [*fields.values(), job_id])

    def unfinished(self) -> list[dict]:
        """Jobs left queued or running by a previous process (it crashed or was killed)."""
        cur = self.db.execute("SELECT * FROM jobs WHERE status IN ('queued', 'running')")
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status"))

    def close(self) -> None:
        self.db.close()


def public_record(rec: dict) -> dict:
    """What GET /jobs/<id> shows: status and reasons, never results."""
    return {
        "job_id": rec["job_id"], "status": rec["status"], "step": rec["step"],
        "code": rec["code"], "reason": rec["reason"], "manifest_hash": rec["manifest_hash"],
        "computation": rec["computation"], "stats": json.loads(rec["stats"] or "{}"),
    }


# ------------------------------------------------------------------------------ node ---
class Node:
    def __init__(self, cfg: NodeConfig, *, insecure: bool = False, init: bool = False):
        from network.keys import load_private_key, public_key

        bad = cfg.insecure_options()
        if bad and not insecure:
            raise InsecureConfigError(
                "insecure option(s) enabled: " + "; ".join(bad) + ". Refusing to start; run "
                "with --insecure only for tests and benchmarks")
        if bad:
            for b in bad:
                log.warning("!!! INSECURE: %s. DO NOT USE WITH REAL DATA !!!", b)
        if cfg.preprocessing == "dealer":
            raise NodeConfigError("consortium.preprocessing: 'dealer' needs a dealer node, which the "
                              "daemon does not run yet; use 'ot' (additive) or 'dn07' (shamir)")
        self.cfg = cfg
        self.insecure = insecure
        self.static_key = load_private_key(cfg.key_file)
        self.public_key = public_key(self.static_key)
        mine = cfg.fingerprint(self.public_key)
        self.fingerprint = mine
        cfg.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # issue 14 (audit anchor): chain, signatures and countersigned head checked at start;
        # a missing log is an error unless --init (mpc.node.anchor.open_audit)
        self.audit = open_audit(cfg.state_dir / "audit.db", self.static_key, party=cfg.index,
                                consortium=cfg.consortium_id, init=init,
                                peer_keys={p.index: p.public_key for p in cfg.peers})
        # issue 13 (privacy): the privacy-budget ledger, checked at policy, spent at agreement
        from mpc.node.budget import BudgetLedger

        self.budget = BudgetLedger(cfg.state_dir / "budget.db")
        if cfg.policy.dp is None:
            log.warning("policy.dp is not set: aggregates are released without DP noise")
        self.store = JobStore(str(cfg.state_dir / "jobs.db"))
        self._recover()
        self.queue: asyncio.Queue[Manifest] = asyncio.Queue()
        self.current: str | None = None
        self._job_task: asyncio.Task | None = None
        self._stopping: str | None = None
        self._stop = asyncio.Event()
        self.api_address: tuple[str, int] | None = None

    def _recover(self) -> None:
        """A job this node was running or had queued when its previous process died (kill -9,
        power loss) has no outcome: record it as failed (`node.restarted`), with an audit
        entry, so that a re-submission runs it again instead of returning a record that
        says "running" forever. Nothing of it was released (delivery is the last step and
        its record would say done)."""
        for rec in self.store.unfinished():
            reason = f"the node restarted while the job was {rec['status']}"
            self.store.put(rec["job_id"], status="failed", step="failed", code=codes.NODE_RESTARTED,
                           reason=reason)
            with contextlib.suppress(SmpcError):
                self.audit.append(job_id=rec["job_id"], manifest_hash=rec["manifest_hash"] or "",
                                  decision="unknown", peers=[p.index for p in self.cfg.peers],
                                  rounds=0, bytes=0, outcome="failed",
                                  reason=f"node.restarted: {reason}")
            log.warning("job %s: node.restarted: %s", rec["job_id"], reason)

    # ---------------------------------------------------------------- lifecycle ---
    async def serve(self) -> None:
        """Run until stop(): the API server and the job worker."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop, f"node shutting down ({sig.name})")
        server = await asyncio.start_server(self._http, self.cfg.api_host, self.cfg.api_port,
                                            limit=MAX_MANIFEST_BYTES * 2)
        self.api_address = server.sockets[0].getsockname()[:2]
        log.info("node %s (party %d of %d) ready: api http://%s:%d, peers via %s, scheme %s, "
                 "preprocessing %s", self.cfg.name, self.cfg.index, self.cfg.n,
                 *self.api_address, self.cfg.transport, self.cfg.scheme, self.cfg.preprocessing)
        worker = asyncio.create_task(self._worker())
        try:
            await self._stop.wait()
        finally:
            if self._job_task is not None:
                await cancel_until_done(self._job_task)
            worker.cancel()
            with contextlib.suppress(BaseException):
                await worker
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
            self._fail_queued()
            self.store.close()
            self.budget.close()
            self.audit.close()
            log.info("node %s stopped: %s", self.cfg.name, self._stopping)

    def stop(self, reason: str = "node shutting down") -> None:
        if self._stopping is None:
            self._stopping = reason
            log.warning("%s", reason)
        self._stop.set()

    def _fail_queued(self) -> None:
        while not self.queue.empty():
            m = self.queue.get_nowait()
            self._finish(m, "refused", codes.NODE_SHUTDOWN, self._stopping or "node stopped", {},
                         decision="not_run")

    # ---------------------------------------------------------------- submissions ---
    def submit(self, envelope: Any) -> tuple[int, dict]:
        """Handle one submission; returns (HTTP status, body)."""
        try:
            m = verify_envelope(envelope)
        except SignatureError as e:
            return self._reject(codes.MANIFEST_SIGNATURE, e)
        except ManifestError as e:
            return self._reject(codes.MANIFEST_MALFORMED, e)
        rec = self.store.get(m.job_id)
        if rec is not None:
            if rec["manifest_hash"] != m.hash:
                return 409, {"job_id": m.job_id, "status": "refused",
                             "code": codes.IDEMPOTENCY_CONFLICT,
                             "reason": "this idempotency key was used for a different manifest"}
            if rec["status"] != "failed":
                log.info("job %s: resubmitted, returning the stored record (%s)", m.job_id,
                         rec["status"])
                return 200, public_record(rec)
        if self._stopping:
            return 503, {"code": codes.NODE_SHUTDOWN, "reason": self._stopping}
        self.store.put(m.job_id, manifest_hash=m.hash, computation=m.computation,
                       envelope=json.dumps(m.envelope()), status="queued", step="queued",
                       code=None, reason=None, result=None, stats=None)
        self.queue.put_nowait(m)
        log.info("job %s: queued %s (manifest %s…), %d ahead", m.job_id, m.computation,
                 m.hash[:12], self.queue.qsize() - 1 + (self.current is not None))
        return 202, public_record(self.store.get(m.job_id))

    def _reject(self, code: str, e: Exception) -> tuple[int, dict]:
        log.warning("submission rejected: %s: %s", code, e)
        self.audit.append(job_id="", manifest_hash="", decision="rejected", peers=[], rounds=0,
                          bytes=0, outcome="rejected", reason=f"{code}: {e}"[:500])
        return 400, {"status": "rejected", "code": code, "reason": str(e)}

    # ---------------------------------------------------------------- worker ---
    async def _worker(self) -> None:
        while True:
            m = await self.queue.get()
            self.current = m.job_id
            self._job_task = asyncio.create_task(self._run_job(m))
            try:
                await self._job_task
            except asyncio.CancelledError:
                if self._stopping is None:
                    raise
            finally:
                self.current = None
                self._job_task = None

    def _step(self, m: Manifest, step: str, **info: Any) -> None:
        self.store.put(m.job_id, step=step, status="running")
        extra = " ".join(f"{k}={v}" for k, v in info.items())
        log.info("job %s: step %s %s", m.job_id, step, extra)

    def _finish(self, m: Manifest, status: str, code: str | None, reason: str | None,
                stats: dict, *, decision: str, result: dict | None = None) -> None:
        self.store.put(m.job_id, status=status, step=status, code=code, reason=reason,
                       stats=json.dumps(stats), result=json.dumps(result) if result else None)
        peers = [p.index for p in self.cfg.peers]
        try:
            self.audit.append(
                job_id=m.job_id, manifest_hash=m.hash, decision=decision, peers=peers,
                rounds=int(stats.get("rounds", 0)), bytes=int(stats.get("bytes_sent", 0)),
                outcome=status, reason=(f"{code}: {reason}" if code else "ok")[:500])
        except SmpcError as e:
            log.error("job %s: audit append failed: %s", m.job_id, e)
        if status == "done":
            log.info("job %s: done, rounds=%s bytes_sent=%s seconds=%s", m.job_id,
                     stats.get("rounds"), stats.get("bytes_sent"), stats.get("seconds"))
        else:
            log.warning("job %s: %s: %s: %s", m.job_id, status, code, reason)

    async def _run_job(self, m: Manifest) -> None:
        from mpc.node.models import ModelStore  # issue 13: shared models stay shared
        from mpc.node.policy import PolicyError, agree_dp, check_manifest, dp_request, spend_budget

        t0 = time.perf_counter()
        stats: dict[str, Any] = {}
        decision = "accepted"
        local: tuple[str, str] | None = None
        dp_mine = None
        try:
            check_manifest(m, self.cfg, REGISTRY, self.budget)
            dp_mine = dp_request(m, self.cfg)  # issue 13: this node's DP terms
        except (PolicyError, SmpcError) as e:
            local = (error_code(e), str(e))
            decision = "refused"
            log.warning("job %s: this node refuses: %s: %s", m.job_id, *local)
        ch = None
        s = None
        finished = False  # issue 14: the outcome is recorded before the audit heads exchange
        try:
            async with asyncio.timeout(self.cfg.job_timeout):
                self._step(m, "connect", peers=self.cfg.n - 1, transport=self.cfg.transport)
                ch = await self._open_channel(m)
                self._step(m, "agree")
                views = await self._agree(ch, m, "manifest", {
                    "hash": m.hash, "fingerprint": self.fingerprint,
                    "ok": local is None, "code": local[0] if local else None,
                    "reason": local[1] if local else None,
                    "min_group_size": self.cfg.policy.min_group_size, "dp": dp_mine})
                if local is not None:  # unreachable: _agree raised; kept for clarity
                    raise JobAbortError(*local)
                k_floor = max(_int(v.get("min_group_size")) for v in views.values())
                # issue 13 (privacy): every node agreed; spend the agreed DP terms (no round)
                dp_terms = agree_dp(views)
                spend_budget(m, self.cfg, self.budget, dp_terms)
                if dp_terms is not None and m.inputs.get(self.cfg.name):
                    with contextlib.suppress(SmpcError):
                        self.audit.append(
                            job_id=m.job_id, manifest_hash=m.hash, decision="budget",
                            peers=[], rounds=0, bytes=0, outcome="spent",
                            reason=f"dp {dp_terms['mechanism']} epsilon={dp_terms['epsilon']:g} "
                                   f"delta={dp_terms['delta']:g} source="
                                   f"{m.inputs[self.cfg.name]['source']}"[:500])
                self._step(m, "load")
                X, y, extra, problem = self._load(m)
                views = await self._agree(ch, m, "data", {
                    "hash": m.hash, "fingerprint": self.fingerprint, "ok": problem is None,
                    "code": problem[0] if problem else None,
                    "reason": problem[1] if problem else None,
                    "align": self._align_digest(m, extra)})
                self._check_alignment(views)
                s = self._session(ch, m)
                self._step(m, "compute", computation=m.computation,
                           shape=list(X.shape) if X is not None else None)
                spec = REGISTRY[m.computation]
                ctx = JobContext(s, m, self.cfg.party_names(), X, y,
                                 log=lambda step, **kw: self._step(m, step, **kw),
                                 extra=extra, k_floor=k_floor, dp=dp_terms,
                                 models=ModelStore(self.cfg.state_dir / "models"))
                outputs = await spec.run(ctx)
                self._step(m, "deliver", outputs=sorted(outputs), recipients=m.recipients)
                result = await self._deliver(s, m, outputs)
                stats = {**s.stats.as_dict(), "seconds": round(time.perf_counter() - t0, 4),
                         **{k: v for k, v in ch.link_stats().items() if isinstance(v, int)}}
                self._finish(m, "done", None, None, stats, decision=decision, result=result)
                finished = True
                await self._anchor_audit(ch, m)  # issue 14: countersigned audit heads
            await ch.close()
        except asyncio.CancelledError:
            reason = self._stopping or "job cancelled"
            await self._abort(s, ch, JobAbortError(codes.NODE_SHUTDOWN, reason))
            if finished:
                raise
            stats = self._stats(s, t0)
            self._finish(m, "failed", codes.NODE_SHUTDOWN, reason, stats, decision=decision)
            raise
        except BaseException as e:  # every failure is terminal and recorded; nothing released
            await self._abort(s, ch, e)
            if finished:
                raise
            code = error_code(e)
            reason = str(e) or type(e).__name__
            if isinstance(e, TimeoutError):
                reason = f"job exceeded timeouts.job = {self.cfg.job_timeout:g}s"
            status = "refused" if code.startswith(codes.REFUSED) else "failed"
            self._finish(m, status, code, reason, self._stats(s, t0), decision=decision)
            if not isinstance(e, Exception):
                raise

    async def _anchor_audit(self, ch, m: Manifest) -> None:
        """Issue 14: exchange this job's final audit head with the peers and store their
        countersignatures (mpc.node.anchor). A peer gone or slow only leaves this head
        unanchored until the next job; a peer proving that our log lost a head it
        countersigned stops the node."""
        try:
            res = await exchange_heads(
                ch, self.audit, self.static_key, {p.index: p.public_key for p in self.cfg.peers},
                job_id=m.job_id, timeout=min(self.cfg.receive_timeout, 30.0))
        except AuditAnchorError as e:
            log.critical("job %s: audit.anchor: %s; stopping", m.job_id, e)
            self.stop(f"{codes.AUDIT_ANCHOR}: {e}")
            return
        except (SmpcError, TimeoutError) as e:
            log.warning("job %s: audit head not countersigned: %s", m.job_id, error_code(e))
            return
        for p in res.problems:
            log.warning("job %s: audit anchor: %s", m.job_id, p)
        log.info("job %s: audit head seq %d countersigned by %s", m.job_id, res.seq,
                 list(res.countersigned_by))

    @staticmethod
    def _stats(s, t0: float) -> dict:
        base = s.stats.as_dict() if s is not None else {}
        return {**base, "seconds": round(time.perf_counter() - t0, 4)}

    @staticmethod
    async def _abort(s, ch, e: BaseException) -> None:
        with contextlib.suppress(BaseException):
            if s is not None:
                await s.abort(e if isinstance(e, Exception) else JobAbortError(codes.NODE_SHUTDOWN, ""))
            elif ch is not None:
                await ch.close()

    # ---------------------------------------------------------------- steps ---
    def _sid(self, m: Manifest) -> bytes:
        return hashlib.blake2b(m.job_id.encode(), digest_size=16, person=b"smpc-job-sid").digest()

    async def _open_channel(self, m: Manifest):
        cfg = self.cfg
        peer_keys = {p.index: p.public_key for p in cfg.peers}
        if cfg.transport == "tcp":
            from network.tcp import open_tcp_channel

            return await open_tcp_channel(
                cfg.index, cfg.addresses(), session_id=self._sid(m),
                static_key=None if cfg.plaintext_channels else self.static_key,
                peer_keys=None if cfg.plaintext_channels else peer_keys,
                consortium_id=cfg.consortium_id.encode(),
                insecure_plaintext=cfg.plaintext_channels, timeout=cfg.receive_timeout,
                connect_timeout=cfg.connect_timeout)
        from network.mqtt import open_mqtt_channel

        return await open_mqtt_channel(
            cfg.index, cfg.n, session_id=self._sid(m), host=cfg.broker_host,
            port=cfg.broker_port, static_key=self.static_key, peer_keys=peer_keys,
            consortium_id=cfg.consortium_id.encode(), timeout=cfg.receive_timeout,
            connect_timeout=cfg.connect_timeout,
            username=cfg.broker_username, password=cfg.broker_password())  # issue 14

    async def _agree(self, ch, m: Manifest, what: str, mine: dict) -> dict[int, dict]:
        """Exchange `mine` with every peer; raise the same JobAbortError on every node unless all
        sent ok with the same manifest hash and consortium fingerprint. Returns every
        party's view (party index -> dict)."""
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
            if v.get("fingerprint") != self.fingerprint:
                raise JobAbortError(codes.AGREEMENT_CONSORTIUM_MISMATCH,
                                f"{names[j]} has a different consortium configuration")
            if v.get("hash") != m.hash:
                raise JobAbortError(codes.AGREEMENT_MANIFEST_MISMATCH,
                                f"{names[j]} received a different manifest "
                                f"(hash {str(v.get('hash'))[:12]}…, ours {m.hash[:12]}…)")
        for j in sorted(views):
            v = views[j]
            if not v.get("ok"):
                code = str(v.get("code") or "refused")
                prefix = codes.AGREEMENT_REFUSED if what == "manifest" else codes.AGREEMENT_DATA
                raise JobAbortError(f"{prefix}:{code}", f"{names[j]} refused: {code}: "
                                f"{str(v.get('reason'))[:300]}")
        return views

    def _align_digest(self, m: Manifest, extra: dict) -> str | None:
        """A digest of this party's sorted row ids (vertical jobs with parameters.id_column):
        the parties hold the same ids by assumption, so the digest tells a peer nothing new
        when rows are aligned, and a mismatch stops the job before any computation."""
        col = m.parameters.get("id_column")
        if not col or col not in extra:
            return None
        ids = np.ascontiguousarray(np.sort(extra[col]), dtype=np.float64)
        return hashlib.blake2b(ids.tobytes(), digest_size=16, key=self._sid(m),
                               person=b"smpc-row-ids").hexdigest()

    def _check_alignment(self, views: dict[int, dict]) -> None:
        digests = {j: v.get("align") for j, v in sorted(views.items()) if v.get("align")}
        if len(set(digests.values())) > 1:
            names = self.cfg.party_names()
            raise JobAbortError(codes.AGREEMENT_ALIGNMENT, "the parties' row ids differ (vertical rows "
                            "must be aligned by parameters.id_column): " + ", ".join(
                                f"{names[j]} {d[:8]}" for j, d in digests.items()))

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
            log.warning("job %s: data check failed: %s", m.job_id, error_code(e))
            return None, None, {}, (error_code(e), str(e))
        log.info("job %s: loaded %s rows x %s columns from %s", m.job_id, data.shape[0],
                 data.shape[1], inp["source"])
        return X, y, extra, None

    def _session(self, ch, m: Manifest):
        from mpc.local import make_scheme
        from protocols.preprocessing.buffered import Buffered
        from protocols.prg import CryptoRNG
        from protocols.session import CountingChannel, Session, Stats

        dom = domain_for(self.cfg.scheme)
        sch = make_scheme(self.cfg.scheme, dom, self.cfg.n, self.cfg.t)
        stats = Stats()
        s = Session(pid=self.cfg.index, n=self.cfg.n, domain=dom, scheme=sch,
                    channel=CountingChannel(ch, stats), prep=None,
                    rng=CryptoRNG.from_seed(None, "party", self.cfg.index), stats=stats,
                    sid=self._sid(m))
        prep = self.cfg.preprocessing
        if prep == "dn07":
            from protocols.preprocessing.dn07 import DN07

            source = DN07(s)
        elif prep == "ot":
            from protocols.preprocessing.ot import OTPreprocessing

            source = OTPreprocessing(s)
        else:  # shared_seed_dealer: allowed only with --insecure (checked at start)
            from mpc.processes import InsecureSharedSeedDealer

            source = InsecureSharedSeedDealer(sch, self._sid(m), self.cfg.index).view()
        return dataclasses.replace(s, prep=Buffered(source))

    async def _deliver(self, s, m: Manifest, outputs: dict) -> dict:
        """Reveal each output to its party recipients; seal this node's share of it to the
        analyst. Returns what this node stores (never an output not addressed to it)."""
        from protocols import core
        from protocols.arith.fixedpoint import FixedPoint

        names = self.cfg.party_names()
        result: dict[str, Any] = {"scheme": self.cfg.scheme, "n": self.cfg.n, "t": self.cfg.t,
                                  "pid": self.cfg.index, "computation": m.computation,
                                  "parameters": m.parameters, "outputs": {}}
        for name in sorted(outputs):
            out = outputs[name]
            if out.share is None:  # revealed inside the protocol to the only recipient
                entry = {"f": out.f, "revealed_in_protocol": True}
                if out.revealed is not None:
                    entry["values"] = np.asarray(out.revealed).tolist()
                result["outputs"][name] = entry
                continue
            entry: dict[str, Any] = {"f": out.f, "shape": list(out.share.shape)}
            for r in m.recipients:
                if r == ANALYST:
                    wire = np.asarray(s.domain.to_wire(out.share.data))
                    entry["sealed"] = seal_to_analyst(m.analyst_key,
                                                      np.ascontiguousarray(wire).tobytes())
                    entry["wire_dtype"] = str(wire.dtype)
                    entry["wire_shape"] = list(wire.shape)
                else:
                    got = await core.reveal_to(s.child(f"out/{name}/{r}"), out.share,
                                               names.index(r))
                    if got is not None:
                        entry["values"] = FixedPoint(s.domain, out.f).decode(got).tolist()
            result["outputs"][name] = entry
        return result

    # ---------------------------------------------------------------- HTTP ---
    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await asyncio.wait_for(self._handle(reader), 10)
        except (TimeoutError, ValueError, asyncio.IncompleteReadError, ConnectionError):
            status, body = 400, {"code": codes.HTTP_BAD_REQUEST, "reason": "malformed request"}
        except Exception as e:  # never let one request take the daemon down
            log.error("api: internal error %s", type(e).__name__)
            status, body = 500, {"code": codes.HTTP_INTERNAL, "reason": type(e).__name__}
        data = json.dumps(body).encode()
        head = (f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                "Connection: close\r\n\r\n").encode()
        with contextlib.suppress(ConnectionError):
            writer.write(head + data)
            await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader) -> tuple[int, dict]:
        line = (await reader.readline()).decode("latin-1").split()
        if len(line) != 3:
            raise ValueError("bad request line")
        method, path, _ = line
        length = 0
        while True:
            h = await reader.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
        if length > MAX_MANIFEST_BYTES:
            return 413, {"code": codes.MANIFEST_MALFORMED, "reason": "submission too large"}
        body = await reader.readexactly(length) if length else b""
        parts = [p for p in path.split("/") if p]
        if method == "POST" and parts == ["jobs"]:
            try:
                env = json.loads(body)
            except ValueError:
                return self._reject(codes.MANIFEST_MALFORMED, ManifestError("body is not JSON"))
            return self.submit(env)
        if method == "GET" and parts == ["status"]:
            return 200, {"name": self.cfg.name, "index": self.cfg.index, "n": self.cfg.n,
                         "current_job": self.current, "queued": self.queue.qsize(),
                         "jobs": self.store.counts(), "scheme": self.cfg.scheme,
                         "transport": self.cfg.transport, "stopping": self._stopping,
                         "concurrency": 1}
        if method == "GET" and len(parts) in (2, 3) and parts[0] == "jobs":
            rec = self.store.get(parts[1])
            if rec is None:
                return 404, {"code": codes.JOB_UNKNOWN, "reason": f"no job {parts[1]!r} here"}
            if len(parts) == 2:
                return 200, public_record(rec)
            if parts[2] == "result":
                if rec["status"] != "done":
                    return 409, {**public_record(rec), "reason": rec["reason"] or
                                 f"job is {rec['status']}"}
                return 200, {**public_record(rec), "result": json.loads(rec["result"])}
        return 404, {"code": codes.HTTP_NOT_FOUND, "reason": f"{method} {path}"}


async def cancel_until_done(task: asyncio.Task, *, every: float = 0.2) -> None:
    """Cancel `task` and wait for it, cancelling again while it runs: on Python 3.11
    `asyncio.wait_for` swallows a cancellation that arrives as the awaited future completes
    (CPython gh-86296, fixed in 3.12), and the channels' receive path uses wait_for, so a
    single cancel() during busy traffic can be lost and the job would run on after SIGTERM."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every)
    with contextlib.suppress(BaseException):
        task.result()


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 1


def domain_for(scheme: str):
    """The domain a node computes in: Z_2^64 (additive) or GF(2^127 - 1) (Shamir: room for
    fixed-point products)."""
    if scheme == "additive":
        from protocols.arith.ring import Ring64

        return Ring64()
    from protocols.arith.field import Mersenne127

    return Mersenne127()


def seal_to_analyst(analyst_key: bytes, data: bytes) -> str:
    from nacl.public import SealedBox
    from nacl.signing import VerifyKey

    try:
        pk = VerifyKey(analyst_key).to_curve25519_public_key()
        return base64.b64encode(SealedBox(pk).encrypt(data)).decode()
    except Exception as e:  # PyNaCl raises untyped errors
        raise JobAbortError(codes.DELIVER_SEAL, f"cannot seal the output to the analyst's key: "
                        f"{type(e).__name__}") from None


def run_node(config_path: str, *, insecure: bool = False, init: bool = False) -> int:
    """Entry point of `smpc node`: returns the exit code."""
    from mpc.node.config import load_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s "
                        "%(message)s")
    cfg = load_config(config_path)

    nodes = []

    async def main() -> None:
        nodes.append(Node(cfg, insecure=insecure, init=init))
        await nodes[0].serve()

    run_event_loop(main())
    # issue 14: stopped because the peers proved our audit log lost a head: not a clean exit
    return 3 if (nodes[0]._stopping or "").startswith(codes.AUDIT_ANCHOR) else 0
