"""The privacy-budget ledger: what each (analyst, source) pair has spent on this node.

Every job that releases DP-noised outputs from a source of this node spends the job's
(epsilon, delta) and its zCDP rho (mechanism-exact: the discrete Laplace at epsilon is
epsilon-DP and (epsilon^2 / 2)-zCDP; the discrete Gaussian is rho-zCDP, Canonne, Kamath,
Steinke, NeurIPS 2020). The total is accounted two ways and the better one counts:

    basic composition   sum epsilon_i <= budget_epsilon and sum delta_i <= budget_delta
    zCDP composition    rho = sum rho_i, converted at delta = budget_delta - sum delta_i
                        (Bun and Steinke, TCC 2016, Prop. 1.3):
                        rho + 2 sqrt(rho ln(1/delta)) <= budget_epsilon

A job that would exceed the budget under both is refused (`policy.budget`) when the node
checks the manifest, before any data is read: every node checks its own ledger, and one
refusal stops the job on every node at the agreement step. The spend is written when every
node has agreed, before the computation starts (a job that fails later has still spent: the
conservative choice, since a failure after partial computation may have leaked timing).

Every agreed run of a job spends (`charge`): a re-submission after a failure runs again with
fresh noise on the same data, and the failed attempt may already have released its output
(a recipient bank that took the first output's reveal and then dropped out, a timeout in
delivery), so each attempt is another release. A run that would exceed the budget is
refused at its spend, after the agreement and before any data is read (the manifest check
lets the re-submission of a known job id through, so that a finished job's stored record is
still returned).

Storage: SQLite in the node's state_dir (budget.db, mode 0600), one row per (run, analyst,
source), written in one transaction: the job's first run under its job id, later runs as
"job_id#k".
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from dataclasses import dataclass

from mpc.node import codes
from network.errors import SmpcError


class BudgetExceeded(SmpcError):
    """The job would exceed the privacy budget of an (analyst, source) on this node."""

    code = codes.POLICY_BUDGET


@dataclass(frozen=True)
class Cost:
    epsilon: float
    delta: float
    rho: float


@dataclass(frozen=True)
class Spent:
    epsilon: float = 0.0
    delta: float = 0.0
    rho: float = 0.0
    jobs: int = 0

    def plus(self, c: Cost) -> Spent:
        return Spent(self.epsilon + c.epsilon, self.delta + c.delta, self.rho + c.rho,
                     self.jobs + 1)


def zcdp_epsilon(rho: float, delta: float) -> float:
    """The epsilon of rho-zCDP at delta (Bun and Steinke 2016, Prop. 1.3)."""
    if rho <= 0:
        return 0.0
    if delta <= 0:
        return math.inf
    return rho + 2 * math.sqrt(rho * math.log(1 / delta))


def epsilon_used(sp: Spent, budget_delta: float) -> float:
    """The smaller epsilon of the two accountings, at the ledger's delta."""
    basic = sp.epsilon if sp.delta <= budget_delta else math.inf
    return min(basic, zcdp_epsilon(sp.rho, budget_delta - sp.delta))


def within(sp: Spent, budget_epsilon: float, budget_delta: float) -> bool:
    if sp.delta > budget_delta:
        return False
    return epsilon_used(sp, budget_delta) <= budget_epsilon * (1 + 1e-12)


class BudgetLedger:
    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        new = not os.path.exists(self.path)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        if new:
            os.chmod(self.path, 0o600)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS spend (job_id TEXT, analyst TEXT, source TEXT, "
            "epsilon REAL, delta REAL, rho REAL, at REAL, PRIMARY KEY (job_id, analyst, source))")

    def spent(self, analyst: str, source: str) -> Spent:
        row = self.db.execute(
            "SELECT COALESCE(SUM(epsilon), 0), COALESCE(SUM(delta), 0), COALESCE(SUM(rho), 0), "
            "COUNT(*) FROM spend WHERE analyst = ? AND source = ?", (analyst, source)).fetchone()
        return Spent(float(row[0]), float(row[1]), float(row[2]), int(row[3]))

    def has(self, job_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM spend WHERE job_id = ?", (job_id,)).fetchone() \
            is not None

    def check(self, analyst: str, source: str, cost: Cost, budget_epsilon: float,
              budget_delta: float, *, job_id: str | None = None) -> None:
        """Raise BudgetExceeded if spending `cost` would exceed the budget. A job id already
        recorded passes (a re-submission: a finished job returns its stored record; a re-run
        of a failed one is checked and charged at its spend, `charge`)."""
        if job_id is not None and self.has(job_id):
            return
        after = self.spent(analyst, source).plus(cost)
        if not within(after, budget_epsilon, budget_delta):
            raise BudgetExceeded("the job would exceed this node's privacy budget for this "
                                 "analyst and source")

    def charge(self, job_id: str, analyst: str, source: str, cost: Cost,
               budget_epsilon: float, budget_delta: float) -> int:
        """Record one more run of `job_id` spending `cost`, if it fits the budget (checked
        and written in one transaction); returns the run's number (1 for the first).
        Raises BudgetExceeded (nothing recorded) if it does not fit."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            runs = self.db.execute(
                "SELECT COUNT(*) FROM spend WHERE (job_id = ? OR substr(job_id, 1, ?) = ?) "
                "AND analyst = ? AND source = ?",
                (job_id, len(job_id) + 1, job_id + "#", analyst, source)).fetchone()[0]
            if not within(self.spent(analyst, source).plus(cost), budget_epsilon, budget_delta):
                raise BudgetExceeded("the job would exceed this node's privacy budget for this "
                                     "analyst and source")
            key = job_id if runs == 0 else f"{job_id}#{runs + 1}"
            self.db.execute("INSERT INTO spend VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (key, analyst, source, cost.epsilon, cost.delta, cost.rho, time.time()))
        return int(runs) + 1

    def spend(self, job_id: str, analyst: str, source: str, cost: Cost) -> bool:
        """Record the spend under `job_id` exactly (once per key); True if it was new.
        Nodes charge runs with `charge` (every attempt spends)."""
        with self.db:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO spend VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job_id, analyst, source, cost.epsilon, cost.delta, cost.rho, time.time()))
        return cur.rowcount == 1

    def summary(self) -> list[tuple[str, str, Spent]]:
        rows = self.db.execute("SELECT DISTINCT analyst, source FROM spend ORDER BY 1, 2")
        return [(a, s, self.spent(a, s)) for a, s in rows.fetchall()]

    def close(self) -> None:
        self.db.close()


def show(state_dir: str | os.PathLike, budget_epsilon: float, budget_delta: float) -> str:
    """What `smpc budget show` prints: per (analyst, source) spent and left."""
    path = os.path.join(os.fspath(state_dir), "budget.db")
    if not os.path.exists(path):
        return "no privacy budget spent yet\n"
    led = BudgetLedger(path)
    try:
        lines = [f"{'analyst':<26} {'source':<14} {'jobs':>4} {'eps spent':>10} "
                 f"{'eps left':>9} {'delta spent':>11} {'rho':>8}"]
        for a, s, sp in led.summary():
            used = epsilon_used(sp, budget_delta)
            lines.append(f"{a[:26]:<26} {s[:14]:<14} {sp.jobs:>4} {used:>10.4g} "
                         f"{max(0.0, budget_epsilon - used):>9.4g} {sp.delta:>11.3g} "
                         f"{sp.rho:>8.4g}")
        lines.append(f"(budget per analyst and source: epsilon {budget_epsilon:g}, delta "
                     f"{budget_delta:g}; epsilon spent is the better of basic and zCDP "
                     "composition)")
        return "\n".join(lines) + "\n"
    finally:
        led.close()

