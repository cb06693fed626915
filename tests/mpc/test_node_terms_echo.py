"""hard4 (issue 16): the runner echoes a digest of the job's public terms for every job, in
both security modes (mpc.node.jobs.agree_terms, called by run_job before the computation).
The agreement views are sent to each peer separately; review3 echoed the derived terms only
in the malicious fraud and DP jobs, so in a semi-honest job a modified node could tell node 0
one min_group_size and node 1 another and the honest nodes ran with different public terms
(on main this job was "done" at every node). Now every honest node fails the job with
agreement.terms_mismatch before any input, nothing is released, and the audit entry names the
code. Three real daemons, semi-honest additive sharing; bank2 runs tests/mpc/cheating_node.py
equivocate."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_node import Cluster, _manifest

from mpc.node.audit import AuditLog
from mpc.node.client import ClientError, JobFailedError

pytestmark = pytest.mark.timeout(180)

CHEAT = Path(__file__).with_name("cheating_node.py")


def _final(cl, i, job, timeout=120):
    """Node i's record of the job once it ended (polled; a busy node's API may time out)."""
    t_end = time.monotonic() + timeout
    while True:
        try:
            st = cl.status_of(i, job)
            if st.get("status") not in ("queued", "running"):
                return st
        except (ClientError, OSError):
            pass
        assert time.monotonic() < t_end, f"node {i} did not end the job"
        time.sleep(0.5)


def test_equivocated_terms_fail_a_semi_honest_job_on_every_honest_node(tmp_path):
    cl = Cluster(tmp_path, timeouts={"connect": 30, "receive": 15, "job": 90})
    for i in range(3):
        if i == 2:
            cl.logs[i] = tmp_path / f"bank{i}.log"
            log = open(cl.logs[i], "a")  # noqa: SIM115
            cl.procs[i] = subprocess.Popen([sys.executable, str(CHEAT), "equivocate",
                                            str(cl.info["configs"][i])], stdout=log,
                                           stderr=subprocess.STDOUT)
        else:
            cl.start(i)
    for i in range(3):
        cl.wait_up(i)
    try:
        c = cl.client()
        job = c.submit(_manifest("equivocate"))
        with pytest.raises((JobFailedError, ClientError)):  # ClientError: a node busy (load)
            c.result(job, timeout=90)
        for i in (0, 1):  # the honest nodes
            st = _final(cl, i, job)
            assert st["code"] == "agreement.terms_mismatch", st
            assert st["status"] in ("refused", "failed"), st
            assert cl.result_of(i, job)[0] == 409  # nothing released
            entry = [x for x in AuditLog(cl.dir / f"bank{i}-state" / "audit.db").entries()
                     if x.get("job_id") == job][-1]
            assert "agreement.terms_mismatch" in entry["reason"], entry
    finally:
        cl.stop()
