"""Issue 16 in the node: consortium.security = "malicious" (Shamir, n = 2t + 1). Three real
daemons; a modified bank2 (tests/mpc/cheating_node.py) adds an error to one share: every
honest node aborts with security.cheating_detected, releases nothing, and records the check
(never values) in its audit log. Without cheating the job releases the model."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_node import DATA, Cluster, FraudCluster, _fraud_manifest

from mpc.node.audit import AuditLog
from mpc.node.client import JobFailedError
from mpc.node.config import NodeConfigError, load_config

pytestmark = pytest.mark.timeout(180)

CHEAT = Path(__file__).with_name("cheating_node.py")


def _mal_cluster(tmp_path, cheat_prefix=None, security=("malicious",) * 3, cls=Cluster, cheater=2):
    cl = cls(tmp_path, scheme="shamir", timeouts={"connect": 40, "receive": 20, "job": 150})
    for i, p in enumerate(cl.info["configs"]):  # the field as an operator writes it
        if security[i] != "semi-honest":
            p.write_text(p.read_text().replace('scheme = "shamir"\n',
                                               f'scheme = "shamir"\nsecurity = "{security[i]}"\n', 1))
    for i in range(3):
        if i == cheater and cheat_prefix is not None:
            log = open(tmp_path / f"bank{i}.log", "a")  # noqa: SIM115
            cl.logs[i] = tmp_path / f"bank{i}.log"
            cl.procs[i] = subprocess.Popen([sys.executable, str(CHEAT), cheat_prefix,
                                            str(cl.info["configs"][i])], stdout=log,
                                           stderr=subprocess.STDOUT)
        else:
            cl.start(i)
    for i in range(3):
        cl.wait_up(i)
    return cl


def _logistic(key):
    return {"computation": "logistic_regression", "idempotency_key": key,
            "recipients": ["analyst", "bank0"],
            "parameters": {"epochs": 1, "batch_size": 35, "feature_scale": [100.0, 100.0],
                           "standardize": False},
            "inputs": {f"bank{i}": {"source": "tx", "columns": ["amount", "fee"],
                                    "label": "flag"} for i in range(3)}}


def _audit(cl, i):
    return list(AuditLog(cl.dir / f"bank{i}-state" / "audit.db").entries())


def test_malicious_job_runs_and_releases(tmp_path):
    cl = _mal_cluster(tmp_path)
    try:
        assert load_config(cl.info["configs"][0]).security == "malicious"
        res = cl.client().result(cl.client().submit(_logistic("ok")), timeout=150)
        coef = np.asarray(res.outputs["coef"])
        assert coef.shape == (2,) and np.all(np.isfinite(coef))
        ok, body = cl.result_of(0, res.job_id)[:2]
        assert ok == 200
    finally:
        cl.stop()


def test_cheating_node_caught_nothing_released_audited(tmp_path):
    """bank2 adds 1 to its share in the first king reduction of the SGD loop (a named step,
    not a message index: robust to the number of products before it): the honest banks abort
    at the verification before the release with security.cheating_detected naming the check;
    no result exists at any node; the audit entries name the check only."""
    cl = _mal_cluster(tmp_path, cheat_prefix="phase:sgd:mking#")
    try:
        c = cl.client()
        job = c.submit(_logistic("cheat"))
        with pytest.raises(JobFailedError) as e:
            c.result(job, timeout=150)
        reasons = e.value.reasons
        for i in (0, 1):  # the honest nodes
            st = cl.status_of(i, job)
            assert st["status"] == "failed" and st["code"] == "security.cheating_detected", st
            assert cl.result_of(i, job)[0] == 409  # nothing released
            entry = [x for x in _audit(cl, i) if x.get("job_id") == job][-1]
            assert entry["outcome"] == "failed"
            assert "security.cheating_detected" in entry["reason"] and "check: mac" in entry["reason"]
            assert str(DATA[i][0, 0]) not in entry["reason"]
        assert any(r[1] == "security.cheating_detected" for r in reasons.values()), reasons
    finally:
        cl.stop()


def test_security_mismatch_refused_with_a_typed_code(tmp_path):
    cl = _mal_cluster(tmp_path, security=("malicious", "malicious", "semi-honest"))
    try:
        c = cl.client()
        job = c.submit(_logistic("mismatch"))
        with pytest.raises(JobFailedError):
            c.result(job, timeout=60)
        for i in range(3):
            assert cl.status_of(i, job)["code"] == "agreement.security_mismatch", cl.status_of(i, job)
    finally:
        cl.stop()


def test_config_field_validated(tmp_path):
    cl = Cluster(tmp_path, scheme="additive")
    p = cl.info["configs"][0]
    p.write_text(p.read_text().replace('scheme = "additive"\n', 'scheme = "additive"\nsecurity = "malicious"\n'))
    assert load_config(p).security == "malicious"  # SPDZ2k (nodespdz: test_node_spdz2k.py)
    p.write_text(p.read_text().replace('security = "malicious"', 'security = "paranoid"'))
    with pytest.raises(NodeConfigError, match="consortium.security"):
        load_config(p)


def test_malicious_fraud_aggregate_and_a_non_onehot_owner(tmp_path):
    """Vertical fraud_aggregate with security = "malicious": exact k-suppressed counts; then
    the owner bank0, modified, inputs the row e_10 + 4096 e_20: every node fails the job
    with input.onehot (the owner named in the local log), nothing is released."""
    cl = _mal_cluster(tmp_path, cls=FraudCluster)
    try:
        c = cl.client()
        res = c.result(c.submit(_fraud_manifest("agg", k_min=12)), timeout=150)
        assert res.outputs["by_group"] == cl.want(12), res.outputs
    finally:
        cl.stop()
    (tmp_path / "bad").mkdir()
    cl = _mal_cluster(tmp_path / "bad", cls=FraudCluster, cheat_prefix="onehot", cheater=0)
    try:
        c = cl.client()
        job = c.submit(_fraud_manifest("agg-bad", k_min=12))
        with pytest.raises(JobFailedError) as e:
            c.result(job, timeout=150)
        assert all(r[1] == "input.onehot" for r in e.value.reasons.values()), e.value.reasons
        for i in range(3):
            assert cl.result_of(i, job)[0] == 409
            assert "party 0's group input is not one-hot" in cl.log(i)
    finally:
        cl.stop()
