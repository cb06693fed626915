"""The node daemon: `smpc node --config bank.toml`.

One process per bank, composed of three parts:

- the HTTP API (mpc.node.api): signed requests from analysts and operators, Host/Origin
  checks, size and rate limits;
- the job store (mpc.node.store): SQLite records of every accepted job;
- the job runner (mpc.node.runner): one job at a time with the peers, step by step.

Submission (`Node.submit`): the envelope's signature, the request signer (must be the
manifest's analyst), the manifest's consortium and expiry, and this node's policy (analyst
allow-list, computation, recipients, parameters) are all checked before anything is stored,
queued or audited; a refusal answers at once with a code (403 `policy.*`, 400 `manifest.*`).
A job id already known with the same manifest hash returns the stored record (T18); a different
manifest under a used idempotency key is refused (`idempotency.conflict`); a failed job may be
re-submitted and runs again as the next attempt. At most api.max_queue jobs wait (429
`queue.full` beyond), and at most api.max_queued_per_analyst of them are one analyst key's
(429 `queue.analyst`: one analyst flooding cannot lock the others out). Queued jobs run one
at a time in the same order on every node (`runner.order_key`: earliest manifest.not_after,
then job id; no starvation). Over TCP the node keeps one peer listener for its life
(network.tcp_park): a peer's connection for a job waits there until this node starts the job
(see `Node._worker`, `Runner._meet`).

Shutdown (SIGTERM/SIGINT): the running job is cancelled and aborted towards the peers (they end
it with `peer.unavailable`), every queued job is failed with `node.shutdown`, the API listener
and the peer listener are closed, and the process exits 0 within a few seconds. At start,
jobs a killed process left queued or running are recorded as failed (`node.restarted`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections import OrderedDict
from typing import Any

from mpc.loop import keep_heap_pages, run_event_loop
from mpc.node import codes
from mpc.node.anchor import open_audit
from mpc.node.api import Api
from mpc.node.config import InsecureConfigError, NodeConfig, NodeConfigError
from mpc.node.escape import escape
from mpc.node.jobs import REGISTRY
from mpc.node.manifest import (
    MAX_LIFETIME,
    ManifestError,
    SignatureError,
    content_hash,
    verify_envelope,
)
from mpc.node.metrics import Metrics
from mpc.node.runner import (  # noqa: F401  (re-exported: public names of the old module)
    JobAbortError,
    JobFailed,
    Requeue,
    Run,
    Runner,
    cancel_until_done,
    domain_for,
    error_code,
    generic_reason,
    order_key,
    seal_to_analyst,
)
from mpc.node.store import JobStore, public_record
from network.errors import SmpcError

log = logging.getLogger("smpc.node")

#: how long shutdown waits for the aborted job to tell its peers
ABORT_GRACE = 2.0


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
                              "daemon does not run yet; use 'ot' or 'rss3' (additive) or 'dn07' (shamir)")
        self.cfg = cfg
        self.insecure = insecure
        self.static_key = load_private_key(cfg.key_file)
        self.public_key = public_key(self.static_key)
        self.fingerprint = cfg.fingerprint(self.public_key)
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
        self.metrics = Metrics()
        self.runner = Runner(cfg, self.static_key, self.fingerprint, self.store, self.audit,
                             self.metrics, stop=self.stop, budget=self.budget)
        self._recover()
        from mpc.node.precompute import Precompute  # issue 15: stored preprocessing

        self.runner.prep = Precompute(cfg, self.static_key, self.fingerprint)
        self._prep_task: asyncio.Task | None = None
        self.pending: OrderedDict[str, Run] = OrderedDict()  # queued, in arrival order
        self._wake = asyncio.Event()
        self.current: str | None = None
        self._job_task: asyncio.Task | None = None
        self._current_run: Run | None = None
        self._stopping: str | None = None
        self._stop = asyncio.Event()
        self.api = Api(self)
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
        # compile / load the source's kernels before the node says it is ready, not inside
        # its first job (a fresh install's compile outlasted the peers' receive deadline)
        from mpc.local import preload_source

        await asyncio.to_thread(preload_source, self.cfg.preprocessing)
        if self.cfg.security == "malicious" and self.cfg.scheme == "additive":  # SPDZ2k
            from mpc.local import preload_spdz2k

            await asyncio.to_thread(preload_spdz2k)
        await self._start_peer_listener()
        try:
            self.api_address = await self.api.start()
        except BaseException:
            await self._close_peer_listener()
            raise
        log.info("node %s (party %d of %d) ready: api %s://%s:%d, peers via %s, scheme %s, "
                 "preprocessing %s", self.cfg.name, self.cfg.index, self.cfg.n,
                 "https" if self.cfg.api.tls_cert else "http", *self.api_address,
                 self.cfg.transport, self.cfg.scheme, self.cfg.preprocessing)
        worker = asyncio.create_task(self._worker())
        try:
            await self._stop.wait()
        finally:
            self.runner.stopping = self._stopping or "node stopped"
            job = self._job_task
            worker.cancel()  # first: it must not start the next queued job
            with contextlib.suppress(BaseException):
                await worker
            if self._prep_task is not None:
                await cancel_until_done(self._prep_task)
            if job is not None:
                await cancel_until_done(job)
            self._fail_queued()
            await self._close_peer_listener()
            await self.api.close()
            self.store.close()
            self.budget.close()
            self.audit.close()
            log.info("node %s stopped: %s", self.cfg.name, self._stopping)

    async def _start_peer_listener(self) -> None:
        """TCP: one peer listener for the node's life (network.tcp_park), on this node's
        consortium address; the lower-indexed peers' connections for a job wait there until
        this node starts that job, at most timeouts.connect."""
        cfg = self.cfg
        if cfg.transport != "tcp":
            return
        from network.tcp_park import PeerListener

        li = PeerListener(
            cfg.index, cfg.n, static_key=None if cfg.plaintext_channels else self.static_key,
            peer_keys=None if cfg.plaintext_channels else {
                **{p.index: p.public_key for p in cfg.peers}, cfg.index: self.public_key},
            consortium_id=cfg.consortium_id.encode(),
            insecure_plaintext=cfg.plaintext_channels, park_timeout=cfg.connect_timeout,
            handshake_timeout=min(10.0, cfg.connect_timeout), cipher=cfg.cipher)
        await li.start(cfg.host, cfg.port)
        self.runner.listener = li

    async def _close_peer_listener(self) -> None:
        li, self.runner.listener = self.runner.listener, None
        if li is not None:
            await li.close()

    def stop(self, reason: str = "node shutting down") -> None:
        if self._stopping is None:
            self._stopping = reason
            log.warning("%s", reason)
        self._stop.set()

    def _fail_queued(self) -> None:
        while self.pending:
            _, r = self.pending.popitem(last=False)
            self.runner.job_ended(r.m, "failed", codes.NODE_SHUTDOWN, generic_reason("node."),
                                  r.with_dropped({}), decision="not_run", detail=self._stopping)

    # ---------------------------------------------------------------- submissions ---
    def submit(self, envelope: Any, signer: bytes) -> tuple[int, dict]:
        """One signed submission from `signer` (already authenticated by the API); returns
        (HTTP status, body). Nothing is stored, queued or audited unless it is accepted."""
        from mpc.node.policy import PolicyError, check_manifest

        run = envelope.pop("run", None) if isinstance(envelope, dict) else None
        try:
            m = verify_envelope(envelope)
            if not isinstance(run, str) or len(run) != 32:
                raise ManifestError("submission.run: missing (32 hex digits, fresh per "
                                    "submission)")
            run_b = bytes.fromhex(run)
        except SignatureError as e:
            return self._refuse(400, codes.MANIFEST_SIGNATURE, e)
        except (ManifestError, ValueError) as e:
            return self._refuse(400, codes.MANIFEST_MALFORMED, e)
        if signer != m.analyst_key:
            return self._refuse(403, codes.AUTH_MISMATCH, SmpcError(
                "the request is not signed by the manifest's analyst"))
        now = time.time()
        if m.expired(now):
            return self._refuse(400, codes.MANIFEST_EXPIRED, SmpcError("manifest.not_after passed"))
        if m.not_after > now + MAX_LIFETIME:
            return self._refuse(400, codes.MANIFEST_LIFETIME, SmpcError(
                f"manifest.not_after is more than {MAX_LIFETIME}s ahead"))
        try:
            check_manifest(m, self.cfg, REGISTRY, self.budget)
        except (PolicyError, SmpcError) as e:
            return self._refuse(403, error_code(e), e)
        rec = self.store.get(m.job_id)
        attempt = 1
        if rec is not None:
            stored = json.loads(rec["envelope"] or "{}").get("manifest", {})
            if rec["manifest_hash"] != m.hash and content_hash(stored) != content_hash(m.body):
                return 409, {"job_id": m.job_id, "status": "refused",
                             "code": codes.IDEMPOTENCY_CONFLICT,
                             "reason": "this idempotency key was used for a different manifest"}
            if rec["status"] != "failed":
                log.info("job %s: resubmitted, returning the stored record (%s)", m.job_id,
                         rec["status"])
                return 200, public_record(rec)
            attempt = int(rec.get("attempt") or 1) + 1
        if self._stopping:
            return 503, {"code": codes.NODE_SHUTDOWN, "reason": "the node is shutting down"}
        if len(self.pending) + (self.current is not None) > self.cfg.api.max_queue:
            return 429, {"code": codes.QUEUE_FULL, "reason": f"{len(self.pending)} jobs queued; "
                         "retry later", "retry_after": 5}
        share = self.cfg.api.max_queued_per_analyst  # issue 14: no key fills the queue alone
        mine = sum(r.m.analyst_key == m.analyst_key for r in self.pending.values())
        if share is not None and mine >= share:
            return 429, {"code": codes.QUEUE_ANALYST, "reason": f"{mine} of your jobs are "
                         "queued here (api.max_queued_per_analyst); retry when one has run",
                         "retry_after": 5}
        self.store.put(m.job_id, manifest_hash=m.hash, computation=m.computation,
                       envelope=json.dumps(m.envelope()), status="queued", step="queued",
                       code=None, reason=None, result=None, stats=None,
                       analyst=m.analyst_key.hex(), attempt=attempt, run=run)
        self.pending[m.job_id] = Run(m, run_b, attempt)
        self._wake.set()
        if self._prep_task is not None:  # issue 15: a job never waits on precomputation
            self._prep_task.cancel()
        cur = self._current_run
        if cur is not None and cur.meeting and order_key(m) < order_key(cur.m) \
                and self._job_task is not None and not cur.preempted:
            cur.preempted = True  # the earlier job goes first: stop connecting the current one
            self._job_task.cancel()
        log.info("job %s: queued %s (manifest %s…, attempt %d), %d ahead", m.job_id,
                 escape(m.computation, 60), m.hash[:12], attempt,
                 len(self.pending) - 1 + (self.current is not None))
        return 202, public_record(self.store.get(m.job_id))

    def _refuse(self, status: int, code: str, e: Exception) -> tuple[int, dict]:
        """A refused submission: logged (escaped) and counted, not audited, nothing stored."""
        log.warning("submission refused: %s: %s", escape(code, 80), escape(e))
        reason = generic_reason(code) if code.startswith(("policy.", "source.", "job.")) \
            else str(e)[:300]
        return status, {"status": "refused", "code": code, "reason": reason}

    async def withdraw(self, job_id: str) -> tuple[int, dict]:
        """The submitter withdraws a job that is queued here, or still connecting to its
        peers (nothing exchanged yet): `job.withdrawn`."""
        r = self.pending.pop(job_id, None)
        if r is None:
            rec = self.store.get(job_id)
            task, run = self._job_task, self._current_run
            if task is not None and run is not None and run.m.job_id == job_id \
                    and rec["step"] == "connect":
                run.cancel_code = codes.JOB_WITHDRAWN
                await cancel_until_done(task)
                return 200, public_record(self.store.get(job_id))
            return 409, {"code": codes.JOB_NOT_QUEUED, "reason": f"job is {rec['status']}"}
        self.runner.job_ended(r.m, "refused", codes.JOB_WITHDRAWN, "the analyst withdrew the job",
                              r.with_dropped({}), decision="not_run")
        return 200, public_record(self.store.get(job_id))

    def status(self) -> dict:
        return {"name": self.cfg.name, "index": self.cfg.index, "n": self.cfg.n,
                "consortium": self.cfg.consortium_id, "current_job": self.current,
                "queued": len(self.pending), "jobs": self.store.counts(),
                "scheme": self.cfg.scheme, "transport": self.cfg.transport,
                "stopping": self._stopping is not None, "concurrency": 1,
                "preprocessing": self.runner.prep.status()}

    def metrics_text(self) -> str:
        li = self.runner.listener
        return self.metrics.render(queue_length=len(self.pending),
                                   running=int(self.current is not None),
                                   peer_rejected=li.rejected if li is not None else None)

    # ---------------------------------------------------------------- worker ---
    def _next_job(self) -> str:
        """The queued job every node runs next: the first in `order_key` order."""
        return min(self.pending, key=lambda k: order_key(self.pending[k].m))

    async def _worker(self) -> None:
        """Run queued jobs one at a time, the first in `order_key` order first. A job whose
        peers are not all there (Runner._meet raises Requeue: preempted by an earlier job, a
        link lost while connecting, an MQTT round missed) goes back to the queue and the first
        job is picked again after a short random pause: every node follows the same
        rule, so concurrent submissions that reach the nodes in different orders run one after
        the other instead of failing. Its own cancellation is never swallowed: serve()
        cancels this task first, then the running job."""
        while not self._stopping:
            while not self.pending:
                self._wake.clear()
                prep = self.runner.prep
                if prep.wants_run():  # issue 15: idle long enough: precompute
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), prep.idle_left())
                    if not self.pending and not self._stopping and prep.idle_left() <= 0 \
                            and prep.wants_run():
                        await self._precompute(prep)
                    continue
                await self._wake.wait()
            job_id = self._next_job()
            r = self.pending.pop(job_id)
            self.current = job_id
            self._current_run = r
            self._job_task = asyncio.create_task(self.runner.run(r))
            try:
                await asyncio.wait({self._job_task})
            finally:
                self.current = None
                self._current_run = None
                task, self._job_task = self._job_task, None
            self.runner.prep.job_ended()
            if not task.cancelled() and isinstance(task.exception(), Requeue):
                self.pending[job_id] = r
                self._wake.clear()
                with contextlib.suppress(TimeoutError):  # a new job may take the turn
                    pause = 0.05 + 0.2 * int.from_bytes(os.urandom(2), "big") / 65535
                    await asyncio.wait_for(self._wake.wait(), pause)

    async def _precompute(self, prep) -> None:
        """One precompute run (mpc.node.precompute) as a task that a submitted job (or
        shutdown) cancels at once: Node.submit cancels it, and this loop cancels it again
        while a job is queued (a cancellation swallowed by wait_for, gh-86296)."""
        task = self._prep_task = asyncio.create_task(prep.run_once(self.runner))
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=0.2)
                if self.pending or self._stopping:
                    task.cancel()
        except asyncio.CancelledError:
            await cancel_until_done(task)
            raise
        finally:
            self._prep_task = None
        if task.cancelled():
            prep.runs["preempted"] += 1
        elif task.exception() is not None:
            prep.runs["failed"] += 1
        else:
            prep.runs[task.result()] += 1


def run_node(config_path: str, *, insecure: bool = False, init: bool = False,
             log_json: bool = False) -> int:
    """Entry point of `smpc node`: returns the exit code."""
    from mpc.node.config import load_config

    setup_logging(log_json)
    cfg = load_config(config_path)
    keep_heap_pages()  # dealer-free preprocessing churns GBs of arrays (mpc.loop)
    nodes = []

    async def main() -> None:
        nodes.append(Node(cfg, insecure=insecure, init=init))
        await nodes[0].serve()

    run_event_loop(main())
    # issue 14: stopped because the peers proved our audit log lost a head: not a clean exit
    return 3 if (nodes[0]._stopping or "").startswith(codes.AUDIT_ANCHOR) else 0


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (already escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": round(record.created, 3), "level": record.levelname,
               "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(as_json: bool = False) -> None:
    h = logging.StreamHandler()
    h.setFormatter(JsonFormatter() if as_json else logging.Formatter(
        "%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[h])
