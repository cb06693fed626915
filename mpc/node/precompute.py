"""The node keeps preprocessing ready while idle (issue 15).

Offline/online split: correlated randomness (Beaver triples [Beaver91], truncation and
comparison material) does not depend on the inputs, so it can be generated before a job
arrives and stored, as in SPDZ's offline phase (Damgard, Pastro, Smart, Zakarias, CRYPTO
2012, section 1) and MP-SPDZ's stored preprocessing (Keller, CCS 2020, section 3). The
generators are the node's dealer-free sources (ot: Gilboa / IKNP OT; rss3: replicated
sharing [AFLNO16]; dn07: [DN07]); this module only decides *when* they run and *where* the
items go.

Plans. A job's exact sequence of preprocessing requests depends only on public values: the
computation, its parameters, the inputs' shapes, the scheme, the source and n. `PlanSource`
records the sequence of every job that completes; the node keeps it as a *plan* under
plan id = BLAKE2b(computation, scheme, source, n, security, request sequence): every node
of the job computes the same id. A *job key* (the manifest's public body, the agreed DP
terms and k floor, this node's input shape) maps a future job to the plan its last run had.

Precompute runs. When the node has been idle `[preprocessing] idle_after` seconds and a
plan of a computation in `target` has fewer common batches than its target, the worker
runs an internal preprocessing job through the Runner's channel path (TCP: the long-lived
peer listener, or the broker over MQTT; one wait of the connect budget, exactly like an
analyst job). Its channel session id is H(consortium, anchor, k) where anchor is the
session id of the last analyst job every node completed (agreed from every node's nonce) and k counts the precompute runs
that completed since then (a failed or preempted attempt is retried under the same channel
sid, after idle_after: every dial still has a fresh dial nonce and handshake, see
network.tcp_park); each node then sends a fresh nonce and its plans with their ready
batch ids; the session id is BLAKE2b(channel sid, every nonce), the batch id is derived
from it (every node's randomness, every node the same id). The run picks the first plan
(sorted by id) known to every node whose common ready count is below every node's target,
generates its items in order with the session's source, exchanges one "generated" check
round and stores the batch crash-safely (mpc.node.prepstore: authenticated with a key
derived from the node's static key, which is not stored next to the files; mode 0600).
An analyst job submitted meanwhile cancels the run at once (Node.submit): a job never waits
on precomputation. A node that was down during an attempt keeps the same k, so the nodes
meet again when it is back; after MAX_FAILURES failed attempts in a row a node stops until
the next analyst job re-anchors (a rare split, e.g. a run that completed on only some nodes,
costs at most that). Both schemes are supported: Z_2^64 items (ot, rss3) are stored one
word per element, GF(2^127 - 1) items (shamir, dn07) two (see `flatten`). Over MQTT the
run's channel is the runner's MQTT channel under the same channel sid (the broker carries
it; a late node is met within the connect budget as for an analyst job).

Use. The job's data agreement carries each node's plan id and ready batch ids for the job's
key; if all nodes name the same plan, the lowest batch id ready on every node is used:
every node reserves the whole batch durably (`StoredItems.take`, cursor fsynced before any
item is returned), deletes it, and one check round confirms that every node has it;
otherwise the job generates online as before. Batches of that plan not ready on every node
can never become common (ids are unique) and are deleted. `PlanSource` serves the stored
items in order and falls back to the online source at the first request that differs
from the plan, for the rest of the job (never an item twice, never mixed back). A node that
crashes mid-job has already burned the batch (reserved before use); a node whose cursor was
rolled back still cannot reuse a batch: the honest peers deleted theirs, so it is never
common again.

Security: stored items are this party's shares only (as the online ones would be); plans
and batch ids are public (every party sees the same request sequence during a job);
received plan ids, batch ids and counts are validated (AGREEMENT_MALFORMED otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mpc.node import codes
from mpc.node.config import MAX_SHAPES, MAX_TARGET, NodeConfig
from mpc.node.escape import escape
from mpc.node.prepstore import PrepStore, _read_private, _write_atomic
from mpc.node.runutil import JobAbortError
from network.errors import SmpcError
from protocols.errors import StorageIntegrityError
from protocols.preprocessing.base import KINDS, SHAMIR_KINDS, Preprocessing

log = logging.getLogger("smpc.node")

MAX_MSG = 16384
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX24 = re.compile(r"[0-9a-f]{24}")
#: a node stops attempting precompute runs after this many failures in a row (until the
#: next analyst job re-synchronises the anchor)
MAX_FAILURES = 3


def _norm(v: Any) -> Any:
    """JSON-canonical form of request arguments (tuples -> lists, numpy ints -> int)."""
    if isinstance(v, list | tuple):
        return [_norm(x) for x in v]
    if isinstance(v, bool | str) or v is None:
        return v
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        return float(v)
    raise TypeError(f"unsupported preprocessing argument {type(v).__name__}")


def _denorm(v: Any) -> Any:
    return tuple(_denorm(x) for x in v) if isinstance(v, list) else v


def _h(person: bytes, *parts: Any, size: int = 16) -> bytes:
    h = hashlib.blake2b(digest_size=size, person=person)
    for p in parts:
        b = p if isinstance(p, bytes) else json.dumps(p, sort_keys=True, default=str).encode()
        h.update(len(b).to_bytes(8, "little") + b)
    return h.digest()


# ------------------------------------------------------------------ PlanSource ---
class PlanSource(Preprocessing):
    """Records every request; serves a stored batch in plan order, else the online source.

    `stored`: the batch's items as [(kind, normalised args, value)], in plan order. The
    first request that is not the next stored one (kind or arguments differ, or the plan is
    used up) switches to `inner` for the rest of the job and drops the remaining items.
    `online_seconds` is the time spent waiting on `inner` (the job's offline time)."""

    name = "plan"

    def __init__(self, inner: Preprocessing, stored: list[tuple[str, Any, Any]] | None = None,
                 batch: str | None = None):
        self.inner = inner
        self._stored = stored
        self._pos = 0
        self.batch = batch
        self.log: list[tuple[str, Any]] = []
        self.served = 0
        self.online_requests = 0
        self.online_seconds = 0.0
        self.diverged = stored is None

    def supports(self, kind: str) -> bool:
        return self.inner.supports(kind)

    @property
    def source_used(self) -> str:
        if self.served and self.online_requests:
            return "mixed"
        return "store" if self.served else "online"

    async def _get(self, kind: str, args: tuple[Any, ...]) -> Any:
        key = _norm(args)
        self.log.append((kind, key))
        if not self.diverged and self._stored is not None:
            if self._pos < len(self._stored) and self._stored[self._pos][:2] == (kind, key):
                value = self._stored[self._pos][2]
                self._stored[self._pos] = ("", None, None)  # handed out: gone
                self._pos += 1
                self.served += 1
                return value
            self.diverged = True
            log.info("stored batch %s: request %d (%s) differs from the plan; the rest of the "
                     "job generates online", self.batch, self._pos, kind)
            self._stored = None
        self.online_requests += 1
        t = time.perf_counter()
        try:
            return await getattr(self.inner, kind)(*args)
        finally:
            self.online_seconds += time.perf_counter() - t


def _plan_kind(kind: str):
    async def method(self: PlanSource, *args: Any) -> Any:
        return await self._get(kind, args)

    method.__name__ = method.__qualname__ = kind
    return method


for _k in (*KINDS, *SHAMIR_KINDS):
    setattr(PlanSource, _k, _plan_kind(_k))


# ------------------------------------------------------------------ batches ---
#: the stored encodings of an item array, by the layout's type tag: (words per element,
#: numpy dtype). Z_2^64 shares and boolean words are one uint64 word per element (the tag is
#: the dtype's str, as before); GF(2^127 - 1) elements (Mersenne127's structured dtype
#: (lo, hi)) are two words, lo then hi, and must be canonical (< p) when loaded.
_M127_TAG = "m127"


def _m127_dtype() -> np.dtype:
    from protocols.arith._m127_numpy import DT127

    return DT127


def _encodings() -> dict[str, tuple[int, np.dtype]]:
    return {"<u8": (1, np.dtype("<u8")), "<i8": (1, np.dtype("<i8")), _M127_TAG: (2, _m127_dtype())}


def _tag(a: np.ndarray) -> str:
    if a.dtype == _m127_dtype():
        return _M127_TAG
    if a.dtype.kind in "ui" and a.dtype.itemsize == 8:
        return a.dtype.newbyteorder("<").str
    raise TypeError(f"cannot store a {a.dtype} array")


def _words(shape: Any, tag: Any) -> int:
    """Words of one stored array; StorageIntegrityError for a malformed layout entry."""
    enc = _encodings().get(tag) if isinstance(tag, str) else None
    if enc is None or not isinstance(shape, list) \
            or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d for d in shape):
        raise StorageIntegrityError(f"malformed plan layout entry {escape(repr((shape, tag)), 80)}")
    return enc[0] * int(np.prod(shape, dtype=np.int64))


def flatten(values: list[Any]) -> tuple[np.ndarray, list]:
    """One uint64 column of every array of every item, and the layout to cut it again:
    per item [is_tuple, [[shape, type tag], ...]] (tags: see _encodings)."""
    parts, layout = [], []
    for v in values:
        arrs = v if isinstance(v, tuple) else (v,)
        lay = []
        for a in arrs:
            a = np.asarray(a)
            tag = _tag(a)
            words = np.ascontiguousarray(a, dtype=_encodings()[tag][1]).reshape(-1)
            parts.append(words.view(np.uint64).reshape(-1))  # m127: lo, hi per element
            lay.append([list(a.shape), tag])
        layout.append([isinstance(v, tuple), lay])
    flat = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
    return flat.reshape(-1, 1), layout


def unflatten(flat: np.ndarray, layout: list) -> list[Any]:
    """Inverse of flatten. StorageIntegrityError for a layout entry of an unknown type, a
    length that does not match, or a GF(2^127 - 1) element that is not canonical."""
    out, pos = [], 0
    col = np.ascontiguousarray(flat, dtype=np.uint64).reshape(-1)
    try:
        need = sum(_words(shape, tag) for _, lay in layout for shape, tag in lay)
    except (TypeError, ValueError) as e:
        raise StorageIntegrityError("malformed plan layout") from e
    if need != col.shape[0]:
        raise StorageIntegrityError("stored batch does not match its plan's layout")
    for is_tuple, lay in layout:
        arrs = []
        for shape, tag in lay:
            k = _words(shape, tag)
            a = col[pos:pos + k].copy().view(_encodings()[tag][1]).reshape(shape)
            if tag == _M127_TAG:
                from protocols.arith.field import Mersenne127
                from protocols.errors import DomainError

                try:
                    Mersenne127().check(a)
                except DomainError as e:
                    raise StorageIntegrityError(f"stored batch: {e}") from e
            arrs.append(a)
            pos += k
        out.append(tuple(arrs) if is_tuple else arrs[0])
    return out


# ------------------------------------------------------------------ index ---
@dataclass
class PrepRun:
    """What Runner._open_channel / _session need of a run (a precompute run's stand-in)."""

    channel_sid: bytes
    sid: bytes = b""
    nonce: bytes = field(default_factory=lambda: os.urandom(16))
    job_id: str = ""
    record_plan: bool = False  # Runner._session: the plain source, no PlanSource
    dropped: dict[str, int] = field(default_factory=dict)

    def keep_link_stats(self, ch) -> None:
        """Runner._open_channel's failure path: a discarded channel's dropped-record
        counters (as Run.keep_link_stats; logged with the run's failure)."""
        for k, v in (ch.link_stats() if hasattr(ch, "link_stats") else {}).items():
            if k in ("rejected", "duplicates") and isinstance(v, int):
                self.dropped[k] = self.dropped.get(k, 0) + v


class Precompute:
    """One node's plans, stored batches and idle precomputation (see the module doc)."""

    def __init__(self, cfg: NodeConfig, static_key: bytes, fingerprint: str):
        self.cfg = cfg
        self.pc = cfg.precompute
        self.fingerprint = fingerprint
        self.dir = cfg.state_dir / "prep"
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # the store's key: derived from the node's static key (never next to the files)
        self.key = hashlib.blake2b(b"smpc-prepstore-key", key=static_key, digest_size=32).digest()
        self.enabled = bool(self.pc.target) and cfg.transport in ("tcp", "mqtt") \
            and cfg.scheme in ("additive", "shamir")  # Z_2^64 and GF(2^127 - 1): flatten's types
        if self.pc.target and not self.enabled:
            log.warning("[preprocessing] target is set but precompute runs need scheme = "
                        "'additive' or 'shamir'; this node will not precompute")
        self.idx = self._load_index()
        self.running = False
        self.runs = {"stored": 0, "nothing": 0, "failed": 0, "preempted": 0}
        self.failures = 0
        self.satisfied = False
        self.last_busy = time.monotonic()
        self._reconcile()

    # -------------------------------------------------------------- persistence ---
    @property
    def _index_path(self) -> Path:
        return self.dir / "index.json"

    def _load_index(self) -> dict:
        empty = {"plans": {}, "keys": {}, "anchor": "", "k": 0, "seq": 0}
        p = self._index_path
        if not p.exists():
            return empty
        raw = _read_private(p)
        body, tag = raw[:-32], raw[-32:]
        if not hmac.compare_digest(tag, self._mac(body)):
            raise StorageIntegrityError(f"{p}: authentication failed (tampered or foreign)")
        return {**empty, **json.loads(body)}

    def _mac(self, body: bytes) -> bytes:
        return hashlib.blake2b(body, key=self.key, digest_size=32, person=b"smpc-prep-index").digest()

    def _save(self) -> None:
        body = json.dumps(self.idx, sort_keys=True).encode()
        _write_atomic(self._index_path, body + self._mac(body))

    def _store(self, pid: str) -> PrepStore:
        return PrepStore(self.dir, key=self.key, party=self.cfg.index, session=bytes.fromhex(pid),
                         domain=f"{self.cfg.scheme}/{self.cfg.preprocessing}")

    def _burn(self, pid: str, bid: str) -> None:
        """Forget batch `bid` and delete its files (its items are never handed out)."""
        plan = self.idx["plans"].get(pid)
        if plan is not None and bid in plan["ready"]:
            plan["ready"].remove(bid)
            self._save()
        data, cur = self._store(pid).paths(f"batch-{bid}")
        lock = data.with_suffix(".lock")
        for f in (data, cur, lock):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()

    def _reconcile(self) -> None:
        """At start: a batch whose cursor moved (reserved by a job that crashed) or whose
        files are missing or unreadable is burned; files no plan names are deleted."""
        known = set()
        for pid, plan in list(self.idx["plans"].items()):
            st = self._store(pid)
            for bid in list(plan["ready"]):
                data, cur = st.paths(f"batch-{bid}")
                known |= {data.name, cur.name, data.with_suffix(".lock").name}
                ok = False
                with contextlib.suppress(SmpcError, OSError, ValueError, KeyError, TypeError):
                    hdr = _read_header(data)
                    ok = st.read_cursor(cur, bytes.fromhex(hdr["id"])) == 0
                if not ok:
                    log.warning("stored batch %s: reserved by a job that did not finish (or "
                                "unreadable): burned", bid)
                    self._burn(pid, bid)
        for f in self.dir.iterdir():
            if f.name != "index.json" and f.name not in known and not f.name.startswith("index"):
                with contextlib.suppress(OSError):
                    f.unlink()

    # -------------------------------------------------------------- plans ---
    def job_key(self, m, X, extra: dict, dp_terms: Any, k_floor: int) -> str:
        """The public facts that fix a job's request sequence, from this node's view."""
        shapes = {"X": list(X.shape) if X is not None else None,
                  "extra": {k: list(np.shape(v)) for k, v in sorted(extra.items())}}
        return _h(b"smpc-prep-jobkey", {
            "computation": m.computation, "parameters": m.parameters, "inputs": m.inputs,
            "recipients": m.recipients, "dp": dp_terms, "k": k_floor, "shapes": shapes,
            "scheme": self.cfg.scheme, "source": self.cfg.preprocessing, "n": self.cfg.n,
            "index": self.cfg.index, "security": self.cfg.security}).hex()

    def plan_id(self, computation: str, requests: list) -> str:
        return _h(b"smpc-prep-plan", computation, self.cfg.scheme, self.cfg.preprocessing,
                  self.cfg.n, self.cfg.security, requests).hex()

    def record(self, key: str, computation: str, requests: list, anchor: bytes) -> None:
        """A job completed: remember its plan under its key, and re-anchor precompute runs."""
        self.idx["anchor"], self.idx["k"] = anchor.hex(), 0
        self.failures, self.satisfied = 0, False
        self.last_busy = time.monotonic()
        if not requests or not self.enabled or computation not in self.pc.target:
            self._save()
            return
        pid = self.plan_id(computation, requests)
        self.idx["seq"] += 1
        plan = self.idx["plans"].setdefault(pid, {"computation": computation, "requests": requests,
                                                  "layout": None, "ready": []})
        plan["used"] = self.idx["seq"]
        self.idx["keys"][key] = pid
        while len(self.idx["plans"]) > self.pc.max_shapes:  # forget the least recently used
            old = min(self.idx["plans"], key=lambda p: self.idx["plans"][p].get("used", 0))
            for bid in list(self.idx["plans"][old]["ready"]):
                self._burn(old, bid)
            del self.idx["plans"][old]
            self.idx["keys"] = {k: v for k, v in self.idx["keys"].items() if v != old}
        self._save()

    def offer(self, key: str) -> dict:
        """What this node sends in the job's data agreement."""
        pid = self.idx["keys"].get(key)
        plan = self.idx["plans"].get(pid) if pid else None
        if plan is None:
            return {"plan": None, "ready": []}
        return {"plan": pid, "ready": sorted(plan["ready"])[:MAX_TARGET]}

    @staticmethod
    def _check_offer(j: int, v: Any) -> tuple[str | None, set[str]]:
        if v is None:  # a node without the feature: no offer
            return None, set()
        if not isinstance(v, dict):
            raise JobAbortError(codes.AGREEMENT_MALFORMED, f"party {j} sent no preprocessing offer")
        pid, ready = v.get("plan"), v.get("ready")
        if pid is not None and not (isinstance(pid, str) and _HEX32.fullmatch(pid)) \
                or not isinstance(ready, list) or len(ready) > MAX_TARGET \
                or not all(isinstance(b, str) and _HEX24.fullmatch(b) for b in ready):
            raise JobAbortError(codes.AGREEMENT_MALFORMED, f"party {j} sent a malformed "
                                "preprocessing offer")
        return pid, set(ready)

    async def select(self, ch, views: dict[int, dict]) -> tuple[list, str] | None:
        """After the data agreement: the stored batch every node uses (its items in plan
        order, and its id), reserved durably and confirmed by one check round; None
        (generate online) if there is none. Every node decides from the same views."""
        offers = {j: self._check_offer(j, v.get("prep")) for j, v in sorted(views.items())}
        pids = {p for p, _ in offers.values()}
        if len(pids) != 1 or None in pids:
            return None
        pid = pids.pop()
        assert pid is not None
        common = set.intersection(*(r for _, r in offers.values()))
        plan = self.idx["plans"].get(pid)
        for bid in list(plan["ready"] if plan else []):  # never common again: delete
            if bid not in common:
                self._burn(pid, bid)
        if not common:
            return None
        bid = min(common)
        items = None
        try:
            items = self._take(pid, bid)
        except (SmpcError, OSError, ValueError, TypeError, KeyError) as e:
            log.warning("stored batch %s: %s; generating online", bid, escape(e))
        ok = await exchange(ch, self.cfg, "prep-use", {"ok": items is not None, "batch": bid})
        if not all(v.get("ok") is True and v.get("batch") == bid for v in ok.values()):
            log.info("stored batch %s: not usable on every node; generating online", bid)
            return None
        assert items is not None
        return items, bid

    def _take(self, pid: str, bid: str) -> list[tuple[str, Any, Any]]:
        """Reserve the whole batch durably (cursor fsynced first), then forget and delete it:
        from here on its items exist only in this job's memory."""
        plan = self.idx["plans"].get(pid)
        if plan is None or bid not in plan["ready"] or plan["layout"] is None:
            raise StorageIntegrityError(f"batch {bid} is not ready here")
        st = self._store(pid)
        try:
            batch = st.open(f"batch-{bid}")
            try:
                rows = batch.take(batch.remaining)
            finally:
                batch.close()
        finally:
            self._burn(pid, bid)
        values = unflatten(rows, plan["layout"])
        if len(values) != len(plan["requests"]):
            raise StorageIntegrityError("stored batch does not match its plan")
        return [(k, a, v) for (k, a), v in zip(plan["requests"], values, strict=True)]

    # -------------------------------------------------------------- idle runs ---
    def _candidates(self) -> dict[str, dict]:
        """This node's plans it would precompute for, with ready ids and wanted counts."""
        out = {}
        for pid, plan in sorted(self.idx["plans"].items()):
            want = self.pc.target.get(plan["computation"], 0)
            if plan["computation"] in self.cfg.policy.allowed_computations and want > 0:
                out[pid] = {"want": want, "ready": sorted(plan["ready"])[:MAX_TARGET]}
        return out

    def wants_run(self) -> bool:
        """After every analyst job (a new anchor) every node with a target for a known plan
        runs until a run finds nothing to do, even when its own store looks full: the run
        is where the nodes learn which batches are not common (and delete them), so the
        decision to start must not depend on this node's own view of its store."""
        return (self.enabled and not self.satisfied and self.failures < MAX_FAILURES
                and bool(self.idx["anchor"]) and bool(self._candidates()))

    def job_ended(self) -> None:
        """Any analyst job ended (done, failed, requeued): the idle clock restarts and the
        nodes check their stores again (a failed job burned its batch everywhere)."""
        self.last_busy = time.monotonic()
        self.satisfied, self.failures = False, 0

    def idle_left(self) -> float:
        return max(0.0, self.pc.idle_after - (time.monotonic() - self.last_busy))

    def status(self) -> dict:
        plans = {pid: {"computation": p["computation"], "ready": sorted(p["ready"]),
                            "target": self.pc.target.get(p["computation"], 0),
                            "requests": len(p["requests"])}
                 for pid, p in sorted(self.idx["plans"].items())}
        return {"enabled": self.enabled, "running": self.running, "plans": plans,
                "runs": dict(self.runs)}

    async def run_once(self, runner) -> str:
        """One precompute run with every peer (see the module doc). Returns "stored",
        "nothing" or raises (failed / cancelled: preempted)."""
        k = int(self.idx["k"])
        anchor = bytes.fromhex(self.idx["anchor"])
        csid = _h(b"smpc-prep-run", self.cfg.consortium_id, anchor, k)
        r = PrepRun(channel_sid=csid, job_id=f"precompute-{csid.hex()[:12]}")
        ch = s = None
        self.running = True
        try:
            log.info("%s: connect (anchor %s…, run %d)", r.job_id, anchor.hex()[:12], k)
            ch = await runner._open_channel(r, self.cfg.connect_timeout)
            mine = {"fingerprint": self.fingerprint, "nonce": r.nonce.hex(),
                    "plans": self._candidates()}
            views = await exchange(ch, self.cfg, "precompute", mine)
            pid, bid = self._choose(r, views)
            if pid is None:
                log.info("%s: every plan has its target on every node", r.job_id)
                self.satisfied = True
                self.idx["k"] = k + 1
                self._save()
                await ch.close()
                return "nothing"
            plan = self.idx["plans"][pid]
            s = runner._session(ch, r)
            log.info("%s: generating batch %s for %s (%d requests)", r.job_id, bid,
                     escape(plan["computation"], 60), len(plan["requests"]))
            t0 = time.perf_counter()
            values = []
            for kind, args in plan["requests"]:
                values.append(await getattr(s.prep, kind)(*_denorm(args)))
            flat, layout = flatten(values)
            del values
            if plan["layout"] is not None and plan["layout"] != layout:
                raise StorageIntegrityError("generated batch does not match the plan's layout")
            done = await exchange(ch, self.cfg, "precompute-done", {"ok": True, "batch": bid})
            if not all(v.get("ok") is True and v.get("batch") == bid for v in done.values()):
                raise JobAbortError(codes.AGREEMENT_MALFORMED, "a peer did not generate the batch")
            plan["layout"] = layout
            self._store(pid).write(f"batch-{bid}", flat)
            plan["ready"].append(bid)
            self.idx["k"] = k + 1  # the next run gets a new channel session id
            self._save()
            off = getattr(getattr(s.prep, "source", None), "stats", None)  # the source's traffic
            off = off if hasattr(off, "rounds") else s.stats
            log.info("%s: stored batch %s (%d words, %.1f MB, %.2f s, rounds=%d bytes_sent=%d)",
                     r.job_id, bid, flat.shape[0], flat.nbytes / 1e6, time.perf_counter() - t0,
                     off.rounds, off.bytes_sent)
            await ch.close()
            self.failures = 0
            return "stored"
        except BaseException as e:
            from mpc.node.runner import Runner, error_code

            await Runner._abort(s, ch, e if isinstance(e, Exception) else
                                JobAbortError(codes.NODE_SHUTDOWN, "precompute preempted"))
            if isinstance(e, asyncio.CancelledError):
                log.info("%s: preempted (an analyst job arrived or the node stops)", r.job_id)
            else:
                self.failures += 1
                log.warning("%s: failed: %s: %s%s", r.job_id, error_code(e), escape(e),
                            f" (dropped records: {r.dropped})" if any(r.dropped.values()) else "")
            raise
        finally:
            self.running = False
            self.last_busy = time.monotonic()

    def _choose(self, r: PrepRun, views: dict[int, dict]) -> tuple[str | None, str]:
        """Every node computes the same choice from the same views."""
        h = hashlib.blake2b(digest_size=16, person=b"smpc-prep-sess")
        h.update(r.channel_sid)
        per: dict[int, dict[str, tuple[int, set[str]]]] = {}
        for j in sorted(views):
            v = views[j]
            if v.get("fingerprint") != self.fingerprint:
                raise JobAbortError(codes.AGREEMENT_CONSORTIUM_MISMATCH,
                                    f"party {j} has a different consortium configuration")
            nonce, plans = v.get("nonce"), v.get("plans")
            if not (isinstance(nonce, str) and _HEX32.fullmatch(nonce)) \
                    or not isinstance(plans, dict) or len(plans) > MAX_SHAPES:
                raise JobAbortError(codes.AGREEMENT_MALFORMED, f"party {j} sent a malformed offer")
            h.update(bytes.fromhex(nonce))
            per[j] = {}
            for pid, c in plans.items():
                want, ready = (c.get("want"), c.get("ready")) if isinstance(c, dict) else (0, 0)
                if not _HEX32.fullmatch(str(pid)) or not isinstance(want, int) \
                        or isinstance(want, bool) or not 0 <= want <= MAX_TARGET \
                        or not isinstance(ready, list) or len(ready) > MAX_TARGET \
                        or not all(isinstance(b, str) and _HEX24.fullmatch(b) for b in ready):
                    raise JobAbortError(codes.AGREEMENT_MALFORMED,
                                        f"party {j} sent a malformed plan offer")
                per[j][pid] = (want, set(ready))
        r.sid = h.digest()
        bid = _h(b"smpc-prep-batch", r.sid, size=12).hex()
        shared = set.intersection(*(set(p) for p in per.values())) if per else set()
        chosen = None
        for pid in sorted(shared):
            common = set.intersection(*(per[j][pid][1] for j in per))
            for b in list(self.idx["plans"].get(pid, {}).get("ready", [])):
                if b not in common:  # not on every node: never usable
                    self._burn(pid, b)
            if chosen is None and len(common) < min(per[j][pid][0] for j in per):
                chosen = pid
        return chosen, bid


async def exchange(ch, cfg: NodeConfig, what: str, mine: dict) -> dict[int, dict]:
    """Send `mine` to every peer and receive theirs (JSON objects, bounded)."""
    raw = json.dumps(mine, sort_keys=True).encode()
    if len(raw) > MAX_MSG:
        raise JobAbortError(codes.AGREEMENT_MALFORMED, f"{what}: message too large")
    tag = f"agree/{what}"
    for j in range(cfg.n):
        if j != cfg.index:
            await ch.send(j, tag, raw)
    views = {cfg.index: mine}
    for j in range(cfg.n):
        if j != cfg.index:
            got = await ch.recv_bytes(j, tag, max_len=MAX_MSG)
            try:
                v = json.loads(got)
            except ValueError:
                v = None
            if not isinstance(v, dict):
                raise JobAbortError(codes.AGREEMENT_MALFORMED, f"party {j} sent a malformed {what}")
            views[j] = v
    return views


def _read_header(path: Path) -> dict:
    """The (unauthenticated) header of a batch file: only to find its cursor's file id; the
    whole file is authenticated when a job opens it."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) != 12:
            raise StorageIntegrityError(f"{path.name}: truncated")
        hlen = int.from_bytes(head[8:12], "little")
        if hlen > 4096:
            raise StorageIntegrityError(f"{path.name}: bad header")
        return json.loads(f.read(hlen))


__all__ = ["PlanSource", "Precompute", "exchange", "flatten", "unflatten"]
