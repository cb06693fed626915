"""mpc.node.budget: the ledger's composition and crash safety, `smpc budget show`, and
budget exhaustion refusing the next job on every node (three real daemons)."""

import math
import subprocess
import sys

import numpy as np
import pytest

from mpc.node.budget import BudgetExceeded, BudgetLedger, Cost, Spent, epsilon_used, within
from mpc.node.client import SubmissionRejected
from tests.mpc.test_node import DATA, Cluster, _manifest

pytestmark = pytest.mark.timeout(180)


def test_basic_and_zcdp_composition():
    # 3 Laplace jobs at eps 1: basic 3; zCDP rho 1.5 -> eps(1e-6) ~ 10.6: basic wins
    sp = Spent()
    for _ in range(3):
        sp = sp.plus(Cost(1.0, 0.0, 0.5))
    assert epsilon_used(sp, 1e-6) == pytest.approx(3.0)
    # 100 small Gaussian jobs: zCDP is far better than basic
    g = Spent()
    for _ in range(100):
        g = g.plus(Cost(0.1, 1e-9, 0.0004))
    z = 0.04 + 2 * math.sqrt(0.04 * math.log(1 / (1e-6 - 1e-7)))
    assert epsilon_used(g, 1e-6) == pytest.approx(z)
    assert z < 10.0 == pytest.approx(g.epsilon)
    assert within(g, 1.6, 1e-6) and not within(g, 1.4, 1e-6)
    assert not within(Spent(0.1, 2e-6, 0.0, 1), 10.0, 1e-6)  # delta over budget


def test_ledger_persists_and_spends_once_per_job(tmp_path):
    p = tmp_path / "budget.db"
    led = BudgetLedger(p)
    assert led.spend("j1", "a", "tx", Cost(1.0, 0.0, 0.5))
    assert not led.spend("j1", "a", "tx", Cost(1.0, 0.0, 0.5))  # a re-run spends once
    led.spend("j2", "a", "tx", Cost(1.0, 0.0, 0.5))
    led.spend("j3", "b", "tx", Cost(1.0, 0.0, 0.5))
    led.close()
    led = BudgetLedger(p)  # reopened (a restart): the spend is still there
    assert led.spent("a", "tx") == Spent(2.0, 0.0, 1.0, 2)
    led.check("a", "tx", Cost(1.0, 0.0, 0.5), 3.0, 1e-6)
    with pytest.raises(BudgetExceeded) as e:
        led.check("a", "tx", Cost(1.5, 0.0, 1.125), 3.0, 1e-6)
    assert e.value.code == "policy.budget"
    led.check("a", "tx", Cost(5.0, 0.0, 12.5), 3.0, 1e-6, job_id="j1")  # already paid
    led.check("b", "other", Cost(3.0, 0.0, 4.5), 3.0, 1e-6)  # per (analyst, source)
    assert (p.stat().st_mode & 0o777) == 0o600



def test_charge_counts_every_run_and_refuses_atomically(tmp_path):
    """review2: every agreed run of a job spends (a retry draws fresh noise); a run that does
    not fit raises BudgetExceeded and records nothing; per (analyst, source)."""
    led = BudgetLedger(tmp_path / "budget.db")
    c = Cost(1.0, 0.0, 0.5)
    assert [led.charge("j1", "a", "tx", c, 3.0, 1e-6) for _ in range(3)] == [1, 2, 3]
    assert led.spent("a", "tx") == Spent(3.0, 0.0, 1.5, 3) and led.has("j1")
    with pytest.raises(BudgetExceeded):
        led.charge("j1", "a", "tx", c, 3.0, 1e-6)
    with pytest.raises(BudgetExceeded):
        led.charge("j2", "a", "tx", c, 3.0, 1e-6)
    assert led.spent("a", "tx").jobs == 3
    assert led.charge("j1", "b", "tx", c, 3.0, 1e-6) == 1  # another analyst's ledger row
    assert led.charge("j10", "b", "tx", c, 3.0, 1e-6) == 1  # j10 is not a run of j1
    assert led.charge("j1", "b", "tx", c, 3.0, 1e-6) == 2
    assert led.charge("j1", "a", "tx", Cost(0.0, 0.0, 0.0), 3.0, 1e-6) == 4


BOUNDS = "\n[sources.tx.columns.amount]\nbounds = [0, 200]\n[sources.tx.columns.fee]\n" \
         "bounds = [0, 200]\n[sources.tx.columns.flag]\n"


@pytest.fixture
def dp_cluster(tmp_path):
    c = Cluster(tmp_path)
    for cfg in c.info["configs"]:
        text = cfg.read_text()
        text += ("\n[policy.dp]\nepsilon = 1.0\nbudget_epsilon = 2.5\nbudget_delta = 1e-6\n"
                 + BOUNDS)
        cfg.write_text(text)
    c.start_all()
    yield c
    c.stop()


def test_budget_exhaustion_refuses_the_next_job_on_every_node(dp_cluster):
    cl = dp_cluster
    c = cl.client()
    want = np.concatenate(DATA).clip(0, 200).sum(axis=0)
    for k in ("b1", "b2"):
        res = c.result(c.submit(_manifest(k)), timeout=60)
        # noise: discrete Laplace, scale 200 * 3 / 1 per column (eps split over 3 outputs)
        std = res.outputs["noise_std"]
        assert std[0] == pytest.approx(math.sqrt(2) * 600, rel=0.01)
        assert np.all(np.abs(np.asarray(res.outputs["sum"]) - want) < 12 * np.asarray(std[:2]))
        assert res.outputs["epsilon"] == [pytest.approx(1.0)]
    # refused at submission (policy is checked before anything is queued or audited)
    with pytest.raises(SubmissionRejected) as e:
        c.submit(_manifest("b3"))
    assert len(e.value.reasons) == 3 and all(
        r[0] == "policy.budget" for r in e.value.reasons.values()), e.value.reasons
    # a smaller epsilon still fits (2 + 0.5 <= 2.5)
    m = _manifest("b4")
    m["parameters"] = {"epsilon": 0.5}
    c.result(c.submit(m), timeout=60)
    with pytest.raises(SubmissionRejected) as e:
        m2 = _manifest("b5")
        m2["parameters"] = {"epsilon": 0.01}
        c.submit(m2)
    assert len(e.value.reasons) == 3 and all(
        r[0] == "policy.budget" for r in e.value.reasons.values()), e.value.reasons
    cl.stop()
    out = subprocess.run([sys.executable, "-m", "mpc.cli", "budget", "show", "--config",
                          str(cl.info["configs"][1])], capture_output=True, text=True,
                         check=True).stdout
    assert " tx " in out and "2.5" in out and " 3 " in out, out  # 3 jobs, eps 2.5 spent
    import json
    import sqlite3

    for i in range(3):  # the spend is in every node's audit log
        db = sqlite3.connect(cl.dir / f"bank{i}-state" / "audit.db")
        entries = [json.loads(e) for (e,) in db.execute("SELECT entry FROM audit")]
        db.close()
        spent = [e for e in entries if e.get("decision") == "budget"]
        assert len(spent) == 3 and all("epsilon=" in e["reason"] for e in spent), entries


def _train_manifest(key, epsilon=None, store=None):
    p = {"lr": 0.5, "epochs": 2, "batch_size": 16}
    if epsilon is not None:
        p["epsilon"] = epsilon
    if store is not None:
        p["store_model"] = store
    return {"computation": "logistic_regression", "idempotency_key": key,
            "recipients": ["analyst"], "parameters": p,
            "inputs": {f"bank{i}": {"source": "tx", "columns": ["amount", "fee"],
                                    "label": "flag"} for i in range(3)}}


def test_dp_training_spends_the_budget_and_exhaustion_refuses_on_every_node(dp_cluster):
    """Issue 13: trained coefficients with DP noise (protocols.apps.ml.private). The analyst
    asks for epsilon; the spend is in every node's ledger and audit log; a job that would
    exceed the budget is refused at submission by every node; a stored model spends too."""
    cl = dp_cluster
    c = cl.client()
    X = np.concatenate(DATA)
    y = (X[:, 0] > 100).astype(float)
    res = c.result(c.submit(_train_manifest("t1", epsilon=1.0)), timeout=120)
    coef = np.asarray(res.outputs["coef"])
    std = np.asarray(res.outputs["noise_std"])  # per coefficient, then the intercept
    assert res.outputs["epsilon"] == [pytest.approx(1.0)] and len(std) == 3 and np.all(std > 0)
    # bounds [0, 200]: coef = mapped weight / 100, so its noise std is the mapped one / 100;
    # the released coefficients are within 8 standard deviations of the noise-free training
    from protocols.apps.ml.reference import fit_dp_plain

    w = fit_dp_plain(X, y, loss="logistic", bounds=[[0, 200]] * 2, batch_size=16, epochs=2,
                     lr=0.5)
    assert np.allclose(std[:2] * 100, std[0] * 100) and std[2] > std[0]
    assert np.all(np.abs(coef - w[:2] / 100) < 8 * std[:2]), (coef, w, std)
    # 1 + 1 (a stored model: the noise is in the shares, the spend is the same) <= 2.5
    c.result(c.submit(_train_manifest("t2", epsilon=1.0, store="dpm")), timeout=120)
    with pytest.raises(SubmissionRejected) as e:
        c.submit(_train_manifest("t3", epsilon=1.0))
    assert len(e.value.reasons) == 3 and all(
        r[0] == "policy.budget" for r in e.value.reasons.values()), e.value.reasons
    # epsilon above the per-job policy: refused everywhere with policy.epsilon
    with pytest.raises(SubmissionRejected) as e:
        c.submit(_train_manifest("t4", epsilon=5.0))
    assert all(r[0] == "policy.epsilon" for r in e.value.reasons.values()), e.value.reasons
    cl.stop()
    import json
    import sqlite3

    for i in range(3):
        led = BudgetLedger(cl.dir / f"bank{i}-state" / "budget.db")
        assert led.spent(next(iter(led.summary()))[0], "tx").epsilon == pytest.approx(2.0)
        led.close()
        db = sqlite3.connect(cl.dir / f"bank{i}-state" / "audit.db")
        entries = [json.loads(e) for (e,) in db.execute("SELECT entry FROM audit")]
        db.close()
        assert sum(e.get("decision") == "budget" for e in entries) == 2, entries


def test_retries_of_a_job_whose_output_leaked_spend_the_budget(tmp_path):
    """Attack (review2), three real daemons: bank2 is a recipient that keeps its reveal of
    the first output and then drops out (tests/mpc/cheating_node.py takeanddrop), so the
    honest banks fail the job after the noisy output has left. The analyst re-submits the
    failed job (as the daemon allows); each attempt draws fresh noise on the same data, so
    every attempt must spend. Budget 2.5 at epsilon 1: two attempts run and are charged on
    the honest ledgers, the third is refused (policy.budget) before any data is read, and the
    cheater holds two noisy samples, not one per retry."""
    import json

    from mpc.node.client import JobFailedError
    from tests.mpc.test_node_malicious import CHEAT

    cl = Cluster(tmp_path)
    for cfg in cl.info["configs"]:
        cfg.write_text(cfg.read_text() + "\n[policy.dp]\nepsilon = 1.0\nbudget_epsilon = 2.5\n"
                       "budget_delta = 1e-6\n" + BOUNDS)
    cl.start(0), cl.start(1)
    cl.logs[2] = tmp_path / "bank2.log"
    cl.procs[2] = subprocess.Popen([sys.executable, str(CHEAT), "takeanddrop",
                                    str(cl.info["configs"][2])],
                                   stdout=open(cl.logs[2], "a"), stderr=subprocess.STDOUT)  # noqa: SIM115
    try:
        for i in range(3):
            cl.wait_up(i)
        c = cl.client()
        m = _manifest("leak", recipients=("bank2", "bank0", "bank1"))
        codes = []
        for _ in range(3):
            job = c.submit(m)
            with pytest.raises(JobFailedError):
                c.result(job, timeout=60)
            codes.append([cl.status_of(i, job)["code"] for i in (0, 1)])
        loot = (cl.info["configs"][2].parent / "loot.jsonl").read_text().splitlines()
        assert len(loot) == 2, (loot, codes)  # attempt 1 and its one paid retry
        assert all(len(json.loads(x)) == 1 for x in loot)  # the noisy count, each time
        assert codes[2] == ["policy.budget", "policy.budget"], codes
        assert all(c0 != "policy.budget" for c0 in codes[0] + codes[1]), codes
    finally:
        cl.stop()
    for i in (0, 1):
        led = BudgetLedger(cl.dir / f"bank{i}-state" / "budget.db")
        sp = led.spent(next(iter(led.summary()))[0], "tx")
        led.close()
        assert sp.epsilon == pytest.approx(2.0) and sp.jobs == 2, sp
