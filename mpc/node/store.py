"""The node's job store: one SQLite table in state_dir/jobs.db (mode 0600).

A record holds the job's status, step, code and reason, the signed envelope, the submitting
analyst's key (who may read it), the attempt number, the stats, and the stored result (sealed
shares for the analyst, values for this bank when it is a recipient). Results are only ever
read through the API's access checks (mpc.node.api)."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import Any

COLUMNS = (("job_id", "TEXT PRIMARY KEY"), ("manifest_hash", "TEXT"), ("computation", "TEXT"),
           ("envelope", "TEXT"), ("status", "TEXT"), ("step", "TEXT"), ("code", "TEXT"),
           ("reason", "TEXT"), ("result", "TEXT"), ("stats", "TEXT"), ("created", "REAL"),
           ("updated", "REAL"), ("analyst", "TEXT"), ("attempt", "INTEGER DEFAULT 0"),
           ("run", "TEXT"))


class JobStore:
    """The node's job records (SQLite in state_dir): status, reason, sealed results."""

    def __init__(self, path: str):
        new = not os.path.exists(path)
        self.db = sqlite3.connect(path, isolation_level=None)
        if new:
            os.chmod(path, 0o600)
        self.db.execute("CREATE TABLE IF NOT EXISTS jobs ("
                        + ", ".join(f"{c} {t}" for c, t in COLUMNS) + ")")
        have = {r[1] for r in self.db.execute("PRAGMA table_info(jobs)")}
        for c, t in COLUMNS:  # a store written by an older version: add the new columns
            if c not in have:
                self.db.execute(f"ALTER TABLE jobs ADD COLUMN {c} {t}")

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
    """What GET /jobs/<id> shows its submitter: status and reasons, never results."""
    return {
        "job_id": rec["job_id"], "status": rec["status"], "step": rec["step"],
        "code": rec["code"], "reason": rec["reason"], "manifest_hash": rec["manifest_hash"],
        "computation": rec["computation"], "attempt": rec.get("attempt") or 0,
        "stats": json.loads(rec["stats"] or "{}"),
    }
