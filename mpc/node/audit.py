"""The node's audit log: append-only, hash-chained, in SQLite.

One entry per job decision or outcome: job id, manifest hash, decision, peers, rounds, bytes,
outcome, and a free-text reason. Never data values: the writer accepts only the fields below
(numbers, hashes and short strings), not arrays.

Each entry stores h_i = BLAKE2b-256(h_{i-1} || canonical JSON of entry i), with h_0 a fixed
genesis value. `verify` recomputes the chain: an edited, deleted, reordered or inserted row
breaks it at that row. SQLite triggers refuse UPDATE and DELETE through the normal API, so
the log is append-only for the daemon itself; the chain catches anyone who edits the file
directly. (To also catch truncation of the newest entries, export the head hash elsewhere:
`head()` returns it.)
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass

from network.errors import SmpcError

GENESIS = b"\0" * 32
FIELDS = ("job_id", "manifest_hash", "decision", "peers", "rounds", "bytes", "outcome", "reason")
MAX_TEXT = 512


class AuditLogError(SmpcError):
    """The audit log is corrupted (the hash chain does not verify) or an entry is invalid."""


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    head: str
    first_bad: int | None = None
    problem: str = ""


def _canonical(entry: dict) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()


def _chain(prev: bytes, entry: dict) -> bytes:
    return hashlib.blake2b(prev + _canonical(entry), digest_size=32, person=b"smpc-audit-v1").digest()


class AuditLog:
    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        new = not os.path.exists(self.path)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        if new:
            os.chmod(self.path, 0o600)
        self.db.executescript(
            """
            PRAGMA journal_mode=WAL;
            PRAGMA synchronous=FULL;
            CREATE TABLE IF NOT EXISTS audit (
                seq INTEGER PRIMARY KEY, ts REAL NOT NULL, entry TEXT NOT NULL, hash BLOB NOT NULL);
            CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
                BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
            CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
                BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
            """
        )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def head(self) -> str:
        row = self.db.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0] if row else GENESIS).hex()

    def append(self, **fields: object) -> int:
        """Append one entry; returns its sequence number. Only FIELDS are accepted, with
        str, int or list-of-int values (peers)."""
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
            seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
            entry["seq"] = seq
            h = _chain(prev, entry)
            self.db.execute(
                "INSERT INTO audit (seq, ts, entry, hash) VALUES (?, ?, ?, ?)",
                (seq, entry["ts"], _canonical(entry).decode(), h),
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return seq

    def entries(self) -> list[dict]:
        return [json.loads(r[0]) for r in self.db.execute("SELECT entry FROM audit ORDER BY seq")]


def verify(path: str | os.PathLike) -> VerifyResult:
    """Recompute the hash chain of the log at `path`."""
    if not os.path.exists(path):
        return VerifyResult(False, 0, GENESIS.hex(), None, f"{path}: no such audit log")
    try:
        db = sqlite3.connect(f"file:{os.fspath(path)}?mode=ro", uri=True)
        rows = db.execute("SELECT seq, entry, hash FROM audit ORDER BY seq").fetchall()
        db.close()
    except sqlite3.DatabaseError as e:
        return VerifyResult(False, 0, GENESIS.hex(), None, f"not a readable audit log: {e}")
    prev = GENESIS
    for i, (seq, text, h) in enumerate(rows, start=1):
        try:
            entry = json.loads(text)
        except ValueError:
            return VerifyResult(False, i - 1, prev.hex(), seq, f"entry {seq} is not valid JSON")
        if seq != i or entry.get("seq") != seq:
            return VerifyResult(False, i - 1, prev.hex(), i, f"entry {i} missing or out of sequence")
        if _chain(prev, entry) != h:
            return VerifyResult(False, i - 1, prev.hex(), seq, f"entry {seq}: hash chain broken")
        prev = h
    return VerifyResult(True, len(rows), prev.hex())
