"""Issue 16 in the node: aggregate_sum / aggregate_mean with consortium.security =
"malicious" (Shamir, n = 2t + 1), three real daemons. On main these jobs failed with
security.unsupported (core.input refuses a malicious session). Now every bank's sums and
count are range-checked MShares (input_many; its range check is tested in
tests/protocols/test_malicious_input_range.py): exact totals released; a bank that changes
one share of an input is caught with security.cheating_detected on every honest node and
nothing is released."""

import numpy as np
import pytest
from test_node import DATA, Cluster, _manifest
from test_node_malicious import _audit, _mal_cluster

from mpc.node.client import JobFailedError

pytestmark = pytest.mark.timeout(180)


def test_malicious_aggregate_sum_and_mean_release_exact_totals(tmp_path):
    cl = _mal_cluster(tmp_path)
    try:
        c = cl.client()
        want = np.concatenate(DATA).sum(axis=0)
        rows = sum(len(x) for x in DATA)
        res = c.result(c.submit(_manifest("msum")), timeout=120)
        assert np.allclose(res.outputs["sum"], want, atol=1e-2)
        assert res.outputs["count"] == [rows]
        res = c.result(c.submit(_manifest("mmean", computation="aggregate_mean")), timeout=120)
        assert np.allclose(res.outputs["mean"], want / rows, atol=1e-3)
        for i in range(3):
            outcomes = [x.get("outcome") for x in _audit(cl, i) if x.get("job_id") == res.job_id]
            assert "done" in outcomes and "failed" not in outcomes, outcomes
    finally:
        cl.stop()


def test_cheating_share_in_an_aggregate_input_caught_nothing_released(tmp_path):
    """bank2 adds 1 to its share of an input mask rho opened to an owner (the first
    "minput-rho" message it sends): that owner's input is shifted by an error that the MAC
    check catches on every honest node before any release."""
    cl = _mal_cluster(tmp_path, cheat_prefix="minput-rho")
    try:
        c = cl.client()
        job = c.submit(_manifest("mcheat"))
        with pytest.raises(JobFailedError):
            c.result(job, timeout=120)
        for i in (0, 1):  # the honest nodes
            st = cl.status_of(i, job)
            assert st["status"] == "failed" and st["code"] == "security.cheating_detected", st
            assert cl.result_of(i, job)[0] == 409  # nothing released
    finally:
        cl.stop()


def test_malicious_dp_aggregate_from_three_daemons(tmp_path):
    """[policy.dp] on every node of a malicious consortium: the job runs (it failed with
    security.unsupported before), clips to the policy bounds, states the calibrated noise
    (discrete Laplace, scale 200 * 3 / 1 per column in released units, as the semi-honest
    job) and spends its epsilon in every node's ledger."""
    import math

    from test_budget import BOUNDS

    class DPCluster(Cluster):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            for cfg in self.info["configs"]:
                cfg.write_text(cfg.read_text() + "\n[policy.dp]\nepsilon = 1.0\n"
                               "budget_epsilon = 2.5\nbudget_delta = 1e-6\n" + BOUNDS)

    cl = _mal_cluster(tmp_path, cls=DPCluster)
    try:
        c = cl.client()
        res = c.result(c.submit(_manifest("mdp")), timeout=120)
        std = res.outputs["noise_std"]
        assert std[0] == pytest.approx(math.sqrt(2) * 600, rel=0.01)
        want = np.concatenate(DATA).clip(0, 200).sum(axis=0)
        assert np.all(np.abs(np.asarray(res.outputs["sum"]) - want) < 12 * np.asarray(std[:2]))
        assert res.outputs["epsilon"] == [pytest.approx(1.0)]
        for i in range(3):
            assert any(x.get("decision") == "budget" for x in _audit(cl, i))
    finally:
        cl.stop()
