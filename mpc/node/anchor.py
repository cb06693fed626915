"""Anchoring the audit log: countersigned heads in the peers' logs and a local anchor file.

Threat model. The attacker controls one bank's host (or its backups) after the fact and wants
that bank's audit log to say something other than what happened: edit entries, drop the newest
ones, empty the log, delete it, or restore an older copy. Whoever holds the node's key file can
also re-sign a rewritten chain ("rechaining with recomputed hashes"). The attacker does not
control the other banks' hosts (then every log is theirs to forge).

What anchors the log, from strongest to weakest:

1. The peers' logs. At the end of every job (`exchange_heads`, over the job's authenticated
   channel) each node sends every peer its head (seq, hash, signature) after the job's final
   entry; each peer checks the signature against our pinned X25519 key, refuses a head that is
   older than or different from one it witnessed before (a rollback), and appends a `witness`
   entry to ITS OWN signed log before countersigning. A log rewritten, truncated, emptied or
   replaced on our host no longer contains the heads the peers witnessed: `smpc audit verify
   LOG --peers PEER_LOG ...` reports it, and no key on our host can change the peers' logs.
2. Online, at the next job. In the same exchange each peer returns the newest head of ours it
   witnessed, with our own signature and its countersignature; we check that our log still
   holds it. A node whose log was cut or rewritten (even with the anchor file removed too)
   raises AuditAnchorError at its first job after restart, rewrites its anchor file from the
   peers' evidence (so it will not start again on that log), and the daemon stops.
3. The local anchor file (`audit.anchor`, beside the log, mode 0600): the newest head of ours
   with the peers' countersignatures. At start-up the node refuses a log that does not contain
   that head (tail truncation, emptying, rechaining), a countersignature that does not verify
   under the peer's pinned key, and a missing log (unless `--init`, and never while an anchor
   exists). It lives in a separate file, so cutting or replacing the log does not remove it;
   an attacker who deletes both gets past the start-up check, but not past 1 and 2.

Limits. Entries appended after the last exchanged head (a failed job, the witness entries of
the last exchange) are covered by the entry signatures only, until the next successful job
anchors them. A log and anchor restored together from an older backup pass the start-up
check; the first job after it completes before the peers' evidence stops the node (the job's
own outcome is recorded, just on a log that must then be investigated). Nothing local can
stop an attacker on the host from doing anything there; what this guarantees is that the
rewrite cannot go unnoticed by the peers, whose logs must be kept (and offered to the auditor).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from mpc.node import codes
from mpc.node.audit import (
    AuditLog,
    AuditLogError,
    AuditLogMissing,
    VerifyResult,
    entry_message,
    verify,
    xsign,
    xverify,
)

ANCHOR_NAME = "audit.anchor"
HEAD_TAG, COUNTERSIGN_TAG = "audit/head", "audit/countersign"
MAX_MSG = 2048
_CS_CTX = b"smpc-audit-countersign-v1"


class AuditAnchorError(AuditLogError):
    """The log does not hold a head that was countersigned (it was cut or rewritten), or a
    countersignature does not verify."""

    code = codes.AUDIT_ANCHOR


def countersign_message(witness: int, party: int, seq: int, head: bytes) -> bytes:
    """What `witness` signs when it countersigns `party`'s head (seq, head)."""
    return _CS_CTX + struct.pack("<IIQ", witness, party, seq) + head


# ---------------------------------------------------------------------- anchor file ---
def anchor_path(log_path: str | os.PathLike) -> Path:
    return Path(log_path).with_name(ANCHOR_NAME)


def read_anchor(path: str | os.PathLike) -> dict | None:
    try:
        with open(path) as f:
            a = json.load(f)
        return {"party": int(a["party"]), "seq": int(a["seq"]), "head": bytes.fromhex(a["head"]),
                "countersigs": {int(j): bytes.fromhex(s) for j, s in a["countersigs"].items()}}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise AuditAnchorError(f"{path}: unreadable anchor file ({type(e).__name__})") from None


def write_anchor(path: str | os.PathLike, party: int, seq: int, head: bytes,
                 countersigs: dict[int, bytes]) -> None:
    """Replace the anchor atomically (write a 0600 temp file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    body = json.dumps({"party": party, "seq": seq, "head": head.hex(),
                       "countersigs": {str(j): s.hex() for j, s in sorted(countersigs.items())}})
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def check_anchor(res: VerifyResult, anchor: dict, peer_keys: dict[int, bytes] | None) -> None:
    """Raise AuditAnchorError unless every countersignature of `anchor` verifies under the
    pinned peer key (skipped if `peer_keys` is None: no keys known) and the verified log
    `res` holds the anchored head."""
    if anchor["party"] != res.party:
        raise AuditAnchorError(f"the anchor is party {anchor['party']}'s, the log party "
                               f"{res.party}'s")
    if not anchor["countersigs"]:
        raise AuditAnchorError("the anchor carries no countersignature")
    msg_of = lambda j: countersign_message(j, anchor["party"], anchor["seq"], anchor["head"])  # noqa: E731
    for j, sig in sorted(anchor["countersigs"].items()) if peer_keys is not None else ():
        if j not in peer_keys or not xverify(peer_keys[j], msg_of(j), sig):
            raise AuditAnchorError(f"countersignature of party {j} on head seq "
                                   f"{anchor['seq']} does not verify (tampered anchor)")
    if res.entries < anchor["seq"]:
        raise AuditAnchorError(f"the log has {res.entries} entries, shorter than its last "
                               f"countersigned head (seq {anchor['seq']}): truncated")
    if res.hashes.get(anchor["seq"]) != anchor["head"]:
        raise AuditAnchorError(f"entry {anchor['seq']} differs from the countersigned head: "
                               "the log was rewritten")


def open_audit(path: str | os.PathLike, private_key: bytes, *, party: int, consortium: str,
               peer_keys: dict[int, bytes], init: bool = False) -> AuditLog:
    """The daemon's start-up: open the log at `path` after checking its chain, its
    signatures and its anchor. A missing log is AuditLogMissing unless `init` (and no anchor
    exists, which would mean the log was deleted)."""
    from network.keys import public_key

    apath = anchor_path(path)
    anchor = read_anchor(apath)
    if not os.path.exists(path):
        if not init:
            raise AuditLogMissing(f"{path}: no audit log; a deleted log is not a fresh start "
                                  "(run `smpc node --init` only for a new node)")
        if anchor is not None:
            raise AuditAnchorError(f"{path}: no audit log but {apath} anchors seq "
                                   f"{anchor['seq']}: the log was deleted; refusing --init")
        return AuditLog.create(path, private_key, party=party, consortium=consortium)
    res = verify(path, public_key(private_key))
    if not res.ok:
        raise AuditLogError(f"{path}: {res.problem}")
    if res.party != party:
        raise AuditLogError(f"{path}: the log is party {res.party}'s, this node is {party}")
    if anchor is not None:
        check_anchor(res, anchor, peer_keys)
    return AuditLog(path, private_key)


# ------------------------------------------------------------------------- exchange ---
@dataclass(frozen=True)
class ExchangeResult:
    seq: int
    head: str
    countersigned_by: tuple[int, ...]
    problems: tuple[str, ...] = ()


def _parse_head(raw: bytes) -> dict:
    m = json.loads(raw)
    out = {"seq": int(m["seq"]), "head": bytes.fromhex(m["head"]), "sig": bytes.fromhex(m["sig"])}
    seen = m.get("seen")
    out["seen"] = None if seen is None else (int(seen[0]), bytes.fromhex(seen[1]),
                                             bytes.fromhex(seen[2]), bytes.fromhex(seen[3]))
    if out["seq"] < 1 or len(out["head"]) != 32:
        raise ValueError("bad head")
    return out


async def exchange_heads(channel, log: AuditLog, private_key: bytes, peer_keys: dict[int, bytes],
                         *, job_id: str = "", anchor: str | os.PathLike | None = None,
                         timeout: float | None = None) -> ExchangeResult:
    """Exchange and countersign audit heads with every peer over the job's channel; call it
    once at the end of a job, after the job's final entry was appended.

    Rounds: 2 (heads, then countersignatures). Messages: 2*(n-1) sent per party.
    Appends one `witness` entry per peer whose head verified; writes the anchor file (default:
    beside the log) with the countersignatures that verified. Raises AuditAnchorError if a peer
    returned a head of ours (signed by us) that our log no longer holds, after completing the
    exchange; a peer's bad head or countersignature is reported in `problems`, not raised.
    Raises the channel's NetworkError if a peer is gone, TimeoutError after `timeout`.
    """
    me, peers = log.party, sorted(peer_keys)
    seq, head, sig = log.head_record()
    if seq == 0:
        raise AuditLogError("nothing to anchor: the log is empty")
    problems: list[str] = []
    fatal: list[str] = []
    evidence: dict[tuple[int, bytes], dict[int, bytes]] = {}  # heads of ours we lost
    async with asyncio.timeout(timeout):
        for j in peers:
            seen = log.witnessed(j)
            if seen is not None:  # j's head, its signature and our countersignature
                cs = xsign(private_key, countersign_message(me, j, seen[0], seen[1]))
                seen = [seen[0], seen[1].hex(), seen[2].hex(), cs.hex()]
            body = {"seq": seq, "head": head.hex(), "sig": sig.hex(), "seen": seen}
            await channel.send(j, HEAD_TAG, json.dumps(body).encode())
        got: dict[int, bytes] = {}
        for j in peers:
            raw = await channel.recv_bytes(j, HEAD_TAG, max_len=MAX_MSG)
            try:
                h = _parse_head(raw)
            except (ValueError, KeyError, TypeError, IndexError):
                problems.append(f"party {j} sent a malformed head")
                continue
            if h["seen"] is not None:  # our own head as party j witnessed it
                s_seq, s_head, s_sig, s_cs = h["seen"]
                if xverify(log.public_key, entry_message(me, s_seq, s_head), s_sig) and \
                        xverify(peer_keys[j], countersign_message(j, me, s_seq, s_head), s_cs):
                    if log.hash_at(s_seq) != s_head:
                        fatal.append(f"party {j} countersigned our head at seq {s_seq}, which "
                                     "this log no longer holds (cut or rewritten)")
                        evidence.setdefault((s_seq, s_head), {})[j] = s_cs
                else:
                    problems.append(f"party {j} returned a head of ours that we did not sign "
                                    "or it did not countersign")
            if not xverify(peer_keys[j], entry_message(j, h["seq"], h["head"]), h["sig"]):
                problems.append(f"party {j}'s head at seq {h['seq']} is not signed by its key")
                continue
            last = log.witnessed(j)
            if last is not None and (h["seq"] < last[0] or
                                     (h["seq"] == last[0] and h["head"] != last[1])):
                problems.append(f"party {j} presented head seq {h['seq']} after we witnessed "
                                f"seq {last[0]} (its log was rolled back)")
                continue
            log.append(job_id=job_id, decision="witness", peers=[j], outcome="witnessed",
                       witness_party=j, witness_seq=h["seq"], witness_head=h["head"].hex(),
                       witness_sig=h["sig"].hex())
            got[j] = xsign(private_key, countersign_message(me, j, h["seq"], h["head"]))
        for j in peers:
            await channel.send(j, COUNTERSIGN_TAG, got.get(j, b""))
        sigs: dict[int, bytes] = {}
        for j in peers:
            cs = await channel.recv_bytes(j, COUNTERSIGN_TAG, max_len=64)
            if xverify(peer_keys[j], countersign_message(j, me, seq, head), cs):
                sigs[j] = cs
            else:
                problems.append(f"party {j} did not countersign our head"
                                + (" validly" if cs else ""))
    if evidence:  # the anchor becomes the newest head we lost: we will not start on this log
        (e_seq, e_head), e_sigs = max(evidence.items(), key=lambda kv: kv[0][0])
        write_anchor(anchor or anchor_path(log.path), me, e_seq, e_head, e_sigs)
    elif sigs:
        write_anchor(anchor or anchor_path(log.path), me, seq, head, sigs)
    if fatal:
        raise AuditAnchorError("; ".join(fatal))
    return ExchangeResult(seq, head.hex(), tuple(sorted(sigs)), tuple(problems))


# --------------------------------------------------------------- verify with peers ---
def verify_with_peers(path: str | os.PathLike, peer_logs: list[str | os.PathLike], *,
                      keys: dict[int, bytes] | None = None,
                      anchor: str | os.PathLike | None = None) -> VerifyResult:
    """Verify the log at `path`, its anchor file (default: beside it, if present) and every
    head of it that the peers' logs witnessed. `keys` pins party index -> X25519 public key
    (from the consortium config); without it each log is checked against the key it names.
    Returns the first problem found (ok=False) or the log's own VerifyResult."""
    import dataclasses

    keys = keys or {}
    res = verify(path)
    if res.ok and res.party in keys and res.public_key != keys[res.party]:
        res = dataclasses.replace(res, ok=False, problem="the log names another key than the "
                                  "pinned one (log replaced?)")
    if not res.ok:
        return res

    def fail(problem: str, at: int | None = None) -> VerifyResult:
        return dataclasses.replace(res, ok=False, problem=problem, first_bad=at)

    a = read_anchor(anchor or anchor_path(path))
    if a is not None:
        try:
            pinned = {j: k for j, k in keys.items() if j != res.party}
            check_anchor(res, a, pinned or _peer_keys_of(peer_logs) or None)
        except AuditAnchorError as e:
            return fail(f"anchor: {e}", a["seq"])
    for p in peer_logs:
        pr = verify(p)
        if not pr.ok:
            return fail(f"peer log {p}: {pr.problem}")
        if pr.party in keys and pr.public_key != keys[pr.party]:
            return fail(f"peer log {p}: not signed by party {pr.party}'s pinned key")
        for w in pr.witnesses:
            if w.get("witness_party") != res.party or w.get("outcome") != "witnessed":
                continue
            s, h = int(w["witness_seq"]), bytes.fromhex(w["witness_head"])
            if not xverify(res.public_key, entry_message(res.party, s, h),
                           bytes.fromhex(w["witness_sig"])):
                return fail(f"party {pr.party} witnessed a head at seq {s} that this log's key "
                            "did not sign (log replaced?)", s)
            if s > res.entries:
                return fail(f"party {pr.party} countersigned seq {s}, but the log has only "
                            f"{res.entries} entries: truncated", res.entries + 1)
            if res.hashes.get(s) != h:
                return fail(f"entry {s} differs from the head party {pr.party} countersigned: "
                            "rewritten", s)
    return res


def _peer_keys_of(peer_logs: list[str | os.PathLike]) -> dict[int, bytes]:
    out = {}
    for p in peer_logs:
        r = verify(p)
        if r.party is not None:
            out[r.party] = r.public_key
    return out
