"""/metrics aggregates the job channels' dropped-record counters across jobs (issue 14): three
MQTT daemons on the shared broker at 127.0.0.1:1883, a broker client that spoofs records (and
replays real ones) on the topics of this test's jobs only, and the Prometheus counters read
back from every node."""

import asyncio
import hashlib
import os
import threading
import time
import urllib.request

import aiomqtt
import pytest
from test_node import Cluster, _manifest

from network.mqtt import DATA
from network.mqtt_wire import HS1

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(150)]


def _metrics(api):
    with urllib.request.urlopen(api + "/metrics", timeout=5) as r:  # noqa: S310 (loopback)
        text = r.read().decode()
    return dict(ln.rsplit(" ", 1) for ln in text.splitlines() if not ln.startswith("#"))


def _channel_sid(job_id: str, run: bytes) -> str:
    """The job's channel session id (mpc.node.runner.Run.channel_sid), which names its MQTT
    topics smpc/<sid>/<src>/<dst>: the spoofer attacks these topics and no others."""
    return hashlib.blake2b(job_id.encode() + b"\0" + run, digest_size=16,
                           person=b"smpc-job-sid").digest().hex()


class Spoofer:
    """For each genuine record seen on one job's topics: one record forged as party 0 to
    party 1 (fails authentication at node 1), and the genuine record published again (a
    replay: dropped as a duplicate by its receiver). At most `limit` forgeries per channel
    (counted from the last handshake record seen: a connect round that is retried opens a new
    channel), below the links' bound of 64, so the job is attacked but not stopped."""

    def __init__(self, sid: str, limit: int = 20):
        self.base, self.limit = f"smpc/{sid}", limit
        self.forged = self.replayed = self.since_hs = 0
        self.ready, self.stop = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()))

    async def _run(self):
        mine = set()
        async with aiomqtt.Client("127.0.0.1", 1883) as c:
            await c.subscribe(f"{self.base}/#", qos=1)
            self.ready.set()

            async def loop():
                async for m in c.messages:
                    pl = bytes(m.payload)
                    if pl[:1] == bytes([HS1]) and pl not in mine:
                        self.since_hs = 0  # a (new) channel's handshake
                    if pl in mine or self.since_hs >= self.limit:
                        continue
                    junk = bytes([DATA]) + self.forged.to_bytes(8, "little") + os.urandom(48)
                    mine.update((junk, pl))
                    await c.publish(f"{self.base}/0/1", junk, qos=1)
                    await c.publish(str(m.topic), pl, qos=1)
                    self.forged += 1
                    self.since_hs += 1
                    self.replayed += 1

            task = asyncio.create_task(loop())
            while not self.stop.is_set():
                await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)


def test_metrics_sum_dropped_mqtt_records_across_jobs(tmp_path, mqtt_broker):
    cl = Cluster(tmp_path, transport="mqtt", timeouts={"connect": 20, "receive": 8, "job": 60})
    try:
        cl.start_all()
        c = cl.client()
        assert all(_metrics(api)["smpc_transport_records_rejected_total"] == "0"
                   for api in cl.info["api"])
        per_job = []
        for key in ("spoof-a", "spoof-b"):
            m = c.sign(_manifest(key))
            run = os.urandom(16)
            with Spoofer(_channel_sid(m.job_id, run)) as spy:
                for api in cl.info["api"]:
                    status, body = c.post_job(api, m, run.hex())
                    assert status == 202, body
                assert c.result(m.job_id, timeout=90).outputs["count"] == [105]
            assert spy.forged > 0
            per_job.append([b["stats"] for b in c.status(m.job_id).values()])
        for k in ("rejected", "duplicates"):  # the attack was counted in both jobs
            assert all(sum(st[k] for st in job) > 0 for job in per_job), (k, per_job)
        for i, api in enumerate(cl.info["api"]):
            got = _metrics(api)
            assert got['smpc_jobs_total{status="done"}'] == "2"
            # the node's counters are the sum of its two jobs' counters
            assert int(got["smpc_transport_records_rejected_total"]) == \
                sum(job[i]["rejected"] for job in per_job), (i, got, per_job)
            assert int(got["smpc_transport_records_duplicate_total"]) == \
                sum(job[i]["duplicates"] for job in per_job), (i, got, per_job)
        # node 1 received every forgery claiming party 0 on the final channel of each job
        assert all(job[1]["rejected"] > 0 for job in per_job), per_job
    finally:
        cl.stop()


class Garbage:
    """Publishes a garbage record every `every` seconds to nodes 0 and 1 on one job's topics,
    under a sender name that is no party ("x"): each node counts it as dropped before
    authentication (unbounded: such records never fail a link)."""

    def __init__(self, sid: str, every: float = 0.05):
        self.base, self.every, self.sent = f"smpc/{sid}", every, 0
        self.ready, self.stop = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()))

    async def _run(self):
        async with aiomqtt.Client("127.0.0.1", 1883) as c:
            self.ready.set()
            while not self.stop.is_set():
                for dst in (0, 1):
                    await c.publish(f"{self.base}/x/{dst}", os.urandom(40), qos=1)
                self.sent += 1
                await asyncio.sleep(self.every)

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)


def _requeued_rounds(log: str, job_id: str) -> int:
    return log.count(f"job {job_id}: connect round")


def test_metrics_count_records_dropped_in_requeued_connect_rounds(tmp_path, mqtt_broker):
    """Issue 14: over MQTT a job whose peers are not all there goes back to the queue after
    each connect round (Runner._meet raises Requeue). Garbage published on the job's topics
    during those rounds is dropped and counted by the round's channel; those counts reach the
    job's stats and /metrics (they were lost with the discarded channel). The garbage stops
    before the third node comes up, so the round that runs the job sees none of it."""
    cl = Cluster(tmp_path, transport="mqtt", timeouts={"connect": 60, "receive": 8, "job": 90})
    try:
        for i in (0, 1):
            cl.start(i)
        for i in (0, 1):
            cl.wait_up(i)
        c = cl.client()
        c.consortium = "demo"
        m = c.sign(_manifest("requeued"))
        run = os.urandom(16)
        with Garbage(_channel_sid(m.job_id, run)) as g:
            for api in cl.info["api"][:2]:
                status, body = c.post_job(api, m, run.hex())
                assert status == 202, body
            t_end = time.monotonic() + 40  # two rounds requeued on both nodes under garbage
            while min(_requeued_rounds(cl.log(i), m.job_id) for i in (0, 1)) < 2:
                assert time.monotonic() < t_end, [cl.log(i) for i in (0, 1)]
                time.sleep(0.1)
        assert g.sent > 0
        cl.start(2)
        cl.wait_up(2)
        assert c.post_job(cl.info["api"][2], m, run.hex())[0] == 202
        assert c.result(m.job_id, timeout=60).outputs["count"] == [105]
        stats = [b["stats"] for b in c.status(m.job_id).values()]
        for i in (0, 1):  # the garbage of the requeued rounds is in the job's stats
            assert stats[i]["rejected"] > 0, stats
        assert stats[2]["rejected"] == 0, stats  # bank2 joined after the garbage stopped
        for i, api in enumerate(cl.info["api"]):  # ... and in /metrics, the same count
            got = _metrics(api)
            assert got['smpc_jobs_total{status="done"}'] == "1"
            assert int(got["smpc_transport_records_rejected_total"]) == stats[i]["rejected"], (
                i, got, stats)
    finally:
        cl.stop()
