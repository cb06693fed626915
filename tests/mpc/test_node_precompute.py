"""Issue 15: the node keeps preprocessing ready while idle (mpc.node.precompute), against
three real daemon processes: a job after an idle period draws from the store, a crash mid-job
never hands out an item twice, mismatched stores fall back to online, and a submitted job
preempts a precompute run."""

import shutil
import signal
import time

import numpy as np
import pytest
from test_node import Cluster

pytestmark = pytest.mark.timeout(240)

PREP = "[preprocessing]\ntarget = { logistic_regression = 2 }\nidle_after = 1\nmax_shapes = 4\n"


class PrepCluster(Cluster):
    def __init__(self, tmp_path, preprocessing="ot", extra=PREP):
        super().__init__(tmp_path, preprocessing=preprocessing,
                         timeouts={"connect": 10, "receive": 20, "job": 120})
        for p in self.info["configs"]:  # [api] is the last table: append ours
            p.write_text(p.read_text() + "\n" + extra)

    def prep_status(self, i):
        st = self.operator(i).request(self.info["api"][i], "GET", "/status")[1]
        return st["preprocessing"]

    def ready(self, i):
        plans = self.prep_status(i)["plans"]
        return {pid: p["ready"] for pid, p in plans.items()}

    def wait_ready(self, count, timeout=120):
        """Until every node has `count` batches of one common plan ready."""
        t_end = time.monotonic() + timeout
        while True:
            rs = [self.ready(i) for i in range(3)]
            pids = set.intersection(*(set(r) for r in rs))
            if len(pids) == 1:
                pid = pids.pop()
                sets = [set(r[pid]) for r in rs]
                if all(len(s) == count for s in sets) and sets[0] == sets[1] == sets[2]:
                    return pid, sorted(sets[0])
            assert time.monotonic() < t_end, rs
            time.sleep(0.2)


def _logistic(key, epochs=2):
    return {"computation": "logistic_regression", "idempotency_key": key,
            "recipients": ["analyst"], "parameters": {"epochs": epochs, "batch_size": 8},
            "inputs": {f"bank{i}": {"source": "tx", "columns": ["amount", "fee"],
                                    "label": "flag"} for i in range(3)}}


def _coefs(res):
    return {k: np.asarray(v, dtype=float) for k, v in res.outputs.items()}


def _stats(res):
    return list(res.stats.values())


@pytest.mark.parametrize("source", ["ot", "rss3"])
def test_job_after_idle_draws_from_store_and_crash_burns_the_batch(tmp_path, source):
    cl = PrepCluster(tmp_path, preprocessing=source)
    try:
        cl.start_all()
        c = cl.client()
        first = c.result(c.submit(_logistic("a")), timeout=120)
        for st in _stats(first):  # no plan yet: generated online, recorded
            assert st["prep_source"] == "online" and st["prep_batch"] is None
            assert st["offline_seconds"] > 0
        pid, ready = cl.wait_ready(2)
        second = c.result(c.submit(_logistic("b")), timeout=120)
        sts = _stats(second)
        for st in sts:  # every item from the same stored batch; no online generation
            assert st["prep_source"] == "store" and st["offline_seconds"] == 0
            assert st["prep_batch"] == ready[0] and st["prep_served"] > 0
        a, b = _coefs(first), _coefs(second)
        assert a.keys() == b.keys()
        for k in a:  # same data, same parameters: the same model up to fixed-point noise
            np.testing.assert_allclose(a[k], b[k], atol=0.05)
        for i in range(3):  # the used batch is gone everywhere
            assert ready[0] not in cl.ready(i)[pid]

        # a crash while a job runs from a reserved batch: the batch is burned
        _, ready = cl.wait_ready(2)
        victim = ready[0]
        job = c.submit(_logistic("c"))
        t_end = time.monotonic() + 60
        while cl.status_of(1, job).get("step") not in ("compute", "deliver", "done", "failed"):
            assert time.monotonic() < t_end
            time.sleep(0.02)
        cl.procs[1].send_signal(signal.SIGKILL)
        cl.procs[1].wait(5)
        cl.start(1)
        cl.wait_up(1)
        for i in range(3):
            assert victim not in cl.ready(i).get(pid, [])
        fourth = c.result(c.submit(_logistic("d")), timeout=120)
        used = {st["prep_batch"] for st in _stats(fourth)}
        assert len(used) == 1 and victim not in used and ready[0] != _stats(second)[0]["prep_batch"]
        # the other batch was ready on every node before the crash: still common, used
        assert {st["prep_source"] for st in _stats(fourth)} == {"store"}
        for k, v in _coefs(fourth).items():
            np.testing.assert_allclose(v, a[k], atol=0.05)
    finally:
        cl.stop()
