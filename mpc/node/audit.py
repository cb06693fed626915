"""The node's audit log: append-only, hash-chained, signed with the node's key, in SQLite.

One entry per job decision or outcome: job id, manifest hash, decision, peers, rounds, bytes,
outcome, and a free-text reason; and one `witness` entry per peer head this node countersigned
(mpc.node.anchor). Never data values: the writer accepts only the fields below (numbers, hashes
and short strings), not arrays.

Chain. The log starts with a `meta` row (format version, party index, the node's X25519 public
key, consortium id); h_0 = BLAKE2b-256(canonical meta), and entry i stores
h_i = BLAKE2b-256(h_{i-1} || canonical JSON of entry i). An edited, deleted, reordered or
inserted row breaks the chain at that row; SQLite triggers refuse UPDATE and DELETE through the
normal API, so the log is append-only for the daemon itself.

Signatures. Every entry also stores sig_i = XEdDSA_sk("smpc-audit-entry-v2" | party | i | h_i)
made with the node's X25519 static key (the Noise identity pinned in every peer's config), so
anyone holding the consortium config can check a log, and a peer can check a head we show it
without any extra key to distribute. XEdDSA [Perrin, "The XEdDSA and VXEdDSA Signature
Schemes", Signal, 2016, section 2.3] signs with a Montgomery (X25519) private key and yields a
standard Ed25519 signature under the birationally equivalent Edwards key; we use the `xeddsa`
bindings to libxeddsa and check each signature with libsodium's Ed25519 verify as well.

Signatures alone catch a rewrite by someone who cannot read the key file (a restored or
edited copy, a compromised backup); they do not catch truncation (any prefix of a valid log is
valid) nor a rewrite by someone who holds the key. mpc.node.anchor adds the anchor: each job's
final head is countersigned by the peers and stored in their logs, which is what detects those.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import struct
import time
from dataclasses import dataclass, field

from mpc.node import codes
from network.errors import SmpcError

FORMAT = 2
FIELDS = ("job_id", "manifest_hash", "decision", "peers", "rounds", "bytes", "outcome", "reason",
          "witness_party", "witness_seq", "witness_head", "witness_sig")
MAX_TEXT = 512
_ENTRY_CTX = b"smpc-audit-entry-v2"


class AuditLogError(SmpcError):
    """The audit log is corrupted (chain or signature does not verify), missing, not anchored
    by its countersigned head, or an entry is invalid."""

    code = codes.AUDIT_LOG


class AuditLogMissing(AuditLogError):
    """There is no audit log where one must be (a deleted log is not a fresh start)."""

    code = codes.AUDIT_MISSING


# ----------------------------------------------------------------------- signatures ---
def xsign(private_key: bytes, msg: bytes) -> bytes:
    """XEdDSA signature (64 bytes) of `msg` with an X25519 private key."""
    import xeddsa

    try:
        return bytes(xeddsa.ed25519_priv_sign(xeddsa.priv_force_sign(private_key, False), msg))
    except Exception as e:  # the bindings raise untyped errors
        raise AuditLogError(f"cannot sign: {type(e).__name__}") from None


def xverify(public_key: bytes, msg: bytes, sig: bytes) -> bool:
    """Check an XEdDSA signature against an X25519 public key (libsodium's Ed25519 verify
    under the Edwards form of the key, sign bit 0)."""
    import xeddsa
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    if not isinstance(sig, bytes) or len(sig) != 64 or len(public_key) != 32:
        return False
    try:
        VerifyKey(bytes(xeddsa.curve25519_pub_to_ed25519_pub(public_key, False))).verify(msg, sig)
    except (BadSignatureError, ValueError, TypeError, xeddsa.XEdDSAException):
        return False
    except Exception:  # PyNaCl's RuntimeError on a malformed point
        return False
    return True


def entry_message(party: int, seq: int, h: bytes) -> bytes:
    """What an entry's signature covers: the party, the sequence number and the chain hash."""
    return _ENTRY_CTX + struct.pack("<IQ", party, seq) + h


# ---------------------------------------------------------------------------- chain ---
def _canonical(entry: dict) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()


def _chain(prev: bytes, entry: dict) -> bytes:
    return hashlib.blake2b(prev + _canonical(entry), digest_size=32, person=b"smpc-audit-v2").digest()


def genesis(meta: dict) -> bytes:
    return hashlib.blake2b(_canonical(meta), digest_size=32, person=b"smpc-audit-gen").digest()


_SCHEMA = """
    PRAGMA journal_mode=WAL;
    PRAGMA synchronous=FULL;
    CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS audit (
        seq INTEGER PRIMARY KEY, ts REAL NOT NULL, entry TEXT NOT NULL, hash BLOB NOT NULL,
        sig BLOB NOT NULL);
    CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
    CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
    CREATE TRIGGER IF NOT EXISTS meta_no_update BEFORE UPDATE ON meta
        BEGIN SELECT RAISE(ABORT, 'audit log meta is immutable'); END;
    CREATE TRIGGER IF NOT EXISTS meta_no_delete BEFORE DELETE ON meta
        BEGIN SELECT RAISE(ABORT, 'audit log meta is immutable'); END;
"""


class AuditLog:
    """The writer. `AuditLog(path, private_key)` opens an existing log (AuditLogMissing if
    there is none); `AuditLog.create(...)` starts a new one; `AuditLog(path)` without a key
    opens it read-only (entries(), head())."""

    def __init__(self, path: str | os.PathLike, private_key: bytes | None = None):
        from network.keys import public_key

        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise AuditLogMissing(f"{self.path}: no audit log (a deleted log is not a fresh "
                                  "start; `smpc node --init` creates the first one)")
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self._key = private_key
        try:
            meta = dict(self.db.execute("SELECT k, v FROM meta").fetchall())
            self.meta = json.loads(meta["meta"])
            self.party = int(self.meta["party"])
            self.public_key = bytes.fromhex(self.meta["public_key"])
        except (sqlite3.DatabaseError, KeyError, ValueError, TypeError):
            self.db.close()
            raise AuditLogError(f"{self.path}: not an audit log of format {FORMAT} (no meta "
                                "row)") from None
        if private_key is not None and public_key(private_key) != self.public_key:
            self.db.close()
            raise AuditLogError(f"{self.path}: the log belongs to another key")
        self.genesis = genesis(self.meta)

    @classmethod
    def create(cls, path: str | os.PathLike, private_key: bytes, *, party: int,
               consortium: str = "") -> AuditLog:
        """Start a new, empty log (mode 0600); AuditLogError if a file is already there."""
        from network.keys import public_key

        path = os.fspath(path)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise AuditLogError(f"{path}: exists; refusing to start a new log over it") from None
        db = sqlite3.connect(path, isolation_level=None)
        db.executescript(_SCHEMA)
        meta = {"v": FORMAT, "party": party, "public_key": public_key(private_key).hex(),
                "consortium": consortium, "created": round(time.time(), 3)}
        db.execute("INSERT INTO meta (k, v) VALUES ('meta', ?)", (_canonical(meta).decode(),))
        db.close()
        return cls(path, private_key)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def head(self) -> str:
        return self.head_record()[1].hex()

    def head_record(self) -> tuple[int, bytes, bytes]:
        """(seq, hash, signature) of the newest entry; (0, genesis, b"") if empty."""
        row = self.db.execute("SELECT seq, hash, sig FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1], row[2]) if row else (0, self.genesis, b"")

    def hash_at(self, seq: int) -> bytes | None:
        if seq == 0:
            return self.genesis
        row = self.db.execute("SELECT hash FROM audit WHERE seq = ?", (seq,)).fetchone()
        return row[0] if row else None

    def witnessed(self, party: int) -> tuple[int, bytes, bytes] | None:
        """The newest head of `party` this node countersigned: (seq, hash, their signature)."""
        for (text,) in self.db.execute("SELECT entry FROM audit WHERE entry LIKE "
                                       "'%\"witness_party\":%' ORDER BY seq DESC"):
            e = json.loads(text)
            if e.get("witness_party") == party and e.get("outcome") == "witnessed":
                return e["witness_seq"], bytes.fromhex(e["witness_head"]), \
                    bytes.fromhex(e["witness_sig"])
        return None

    def append(self, **fields: object) -> int:
        """Append one entry; returns its sequence number. Only FIELDS are accepted, with
        str, int or list-of-int values (peers)."""
        if self._key is None:
            raise AuditLogError(f"{self.path}: opened read-only (no key)")
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise AuditLogError(f"audit entry: unknown field(s) {sorted(unknown)}")
        entry: dict[str, object] = {}
        for k, v in fields.items():
            if isinstance(v, bool) or not isinstance(v, str | int | list | type(None)):
                raise AuditLogError(f"audit entry: field {k} must be str, int or list of int")
            if isinstance(v, str) and len(v) > MAX_TEXT:
                raise AuditLogError(f"audit entry: field {k} longer than {MAX_TEXT} characters")
            if isinstance(v, list) and not all(isinstance(i, int) for i in v):
                raise AuditLogError(f"audit entry: field {k} must be a list of party indices")
            entry[k] = v
        entry["ts"] = round(time.time(), 6)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            row = self.db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (row[0] + 1, row[1]) if row else (1, self.genesis)
            entry["seq"] = seq
            h = _chain(prev, entry)
            sig = xsign(self._key, entry_message(self.party, seq, h))
            self.db.execute(
                "INSERT INTO audit (seq, ts, entry, hash, sig) VALUES (?, ?, ?, ?, ?)",
                (seq, entry["ts"], _canonical(entry).decode(), h, sig),
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return seq

    def entries(self) -> list[dict]:
        return [json.loads(r[0]) for r in self.db.execute("SELECT entry FROM audit ORDER BY seq")]


# --------------------------------------------------------------------------- verify ---
@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    head: str
    first_bad: int | None = None
    problem: str = ""
    party: int | None = None
    public_key: bytes = b""
    #: seq -> chain hash of every entry that verified (seq 0 is the genesis)
    hashes: dict[int, bytes] = field(default_factory=dict, repr=False, compare=False)
    #: the witness entries (countersigned peer heads) among the verified entries
    witnesses: list[dict] = field(default_factory=list, repr=False, compare=False)


def verify(path: str | os.PathLike, public_key: bytes | None = None) -> VerifyResult:
    """Recompute the hash chain of the log at `path` and check every entry's signature, with
    `public_key` (the pinned key) if given, else with the key the log names."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return VerifyResult(False, 0, "", None, f"{path}: no such audit log")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        meta = json.loads(dict(db.execute("SELECT k, v FROM meta").fetchall())["meta"])
        rows = db.execute("SELECT seq, entry, hash, sig FROM audit ORDER BY seq").fetchall()
        db.close()
        party, key = int(meta["party"]), bytes.fromhex(meta["public_key"])
    except (sqlite3.DatabaseError, KeyError, ValueError, TypeError) as e:
        return VerifyResult(False, 0, "", None, f"not a readable audit log: {e}")
    prev = genesis(meta)
    base = {"party": party, "public_key": key}
    if public_key is not None and key != public_key:
        return VerifyResult(False, 0, prev.hex(), 0, "the log names another key than the "
                            "pinned one (log replaced?)", **base)
    hashes, witnesses = {0: prev}, []
    problem, at = "", None
    for i, (seq, text, h, sig) in enumerate(rows, start=1):
        try:
            entry = json.loads(text)
        except ValueError:
            problem, at = f"entry {seq} is not valid JSON", seq
            break
        if seq != i or entry.get("seq") != seq:
            problem, at = f"entry {i} missing or out of sequence", i
            break
        if _chain(prev, entry) != h:
            problem, at = f"entry {seq}: hash chain broken", seq
            break
        if not xverify(key, entry_message(party, seq, h), bytes(sig)):
            problem, at = f"entry {seq}: signature does not verify (rewritten without the key?)", seq
            break
        prev = hashes[seq] = h
        if "witness_party" in entry:
            witnesses.append(entry)
    if problem:
        return VerifyResult(False, len(hashes) - 1, prev.hex(), at, problem, **base,
                            hashes=hashes, witnesses=witnesses)
    return VerifyResult(True, len(rows), prev.hex(), **base, hashes=hashes, witnesses=witnesses)
