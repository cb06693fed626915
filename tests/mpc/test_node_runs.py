"""Job runs against real daemon processes: expiry, replayed Noise messages, escaping of
attacker-controlled text, clean shutdown."""

import json
import os
import signal
import socket
import time
import urllib.request

import pytest
from test_node import Cluster, _manifest

from mpc.node.audit import AuditLog
from mpc.node.client import Client, JobFailedError, SubmissionRejected

pytestmark = pytest.mark.timeout(120)


def _port(cl, i):
    return int(cl.info["configs"][i].read_text().split('listen = "127.0.0.1:')[1].split('"')[0])


def _wait_step(cl, i, job, steps, timeout=15):
    t_end = time.monotonic() + timeout
    while cl.status_of(i, job).get("step") not in steps:
        assert time.monotonic() < t_end, cl.status_of(i, job)
        time.sleep(0.05)


def test_replayed_envelope_after_expiry_is_refused(tmp_path):
    cl = Cluster(tmp_path, timeouts={"connect": 1, "receive": 5, "job": 30})
    try:
        cl.start_all()
        c = cl.client()
        m = c.sign({**_manifest("exp"), "not_after": int(time.time()) + 3})
        with pytest.raises(SubmissionRejected):  # bank2 withdrew: a job that did not run
            c.submit({**_manifest("exp"), "not_after": int(time.time()) - 1})
        run = os.urandom(16).hex()
        assert c.post_job(cl.info["api"][0], m, run)[0] == 202  # only bank0: it fails
        with pytest.raises(JobFailedError):
            Client(cl.info["api"][:1], key=c.key).result(m.job_id, timeout=20)
        while time.time() <= m.not_after + 1:
            time.sleep(0.2)
        # the failed job's envelope, replayed after not_after: refused everywhere
        for api in cl.info["api"]:
            status, body = c.post_job(api, m, os.urandom(16).hex())
            assert (status, body["code"]) == (400, "manifest.expired")
        # a manifest for another consortium is refused too
        with pytest.raises(SubmissionRejected) as e:
            c.submit({**_manifest("other"), "consortium": "elsewhere"})
        assert {r[0] for r in e.value.reasons.values()} == {"policy.consortium"}
    finally:
        cl.stop()


def _record_first_connection(port, timeout=15):
    """Listen on a party's peer port and record what the first peer to dial sends."""
    srv = socket.create_server(("127.0.0.1", port))
    srv.settimeout(timeout)
    conn, _ = srv.accept()
    conn.settimeout(1.0)
    data = b""
    try:
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pass
    conn.close()
    srv.close()
    return data


def test_replayed_noise_message_does_not_block_a_rerun(tmp_path):
    cl = Cluster(tmp_path, timeouts={"connect": 3, "receive": 5, "job": 30})
    try:
        for i in (0, 2):
            cl.start(i)
        for i in (0, 2):
            cl.wait_up(i)
        c = cl.client()
        m = c.sign(_manifest("noise"))
        run1 = os.urandom(16).hex()
        for i in (0, 2):
            assert c.post_job(cl.info["api"][i], m, run1)[0] == 202
        # the attacker records party 0's hello and Noise message 1 to party 1
        recorded = _record_first_connection(_port(cl, 1))
        assert recorded[:4] == b"SMPL" and len(recorded) > 40
        with pytest.raises(JobFailedError):
            Client([cl.info["api"][0], cl.info["api"][2]], key=c.key).result(m.job_id, 20)
        cl.start(1)
        cl.wait_up(1)
        # the re-run reaches banks 1 and 2 first; bank1 waits for party 0 ...
        run2 = os.urandom(16).hex()
        for i in (1, 2):
            assert c.post_job(cl.info["api"][i], m, run2)[0] == 202
        _wait_step(cl, 1, m.job_id, ("connect",))
        # ... and the attacker replays the recorded message 1 into bank1's listener, again
        # and again: bank1 answers the handshake but the attacker cannot confirm the keys,
        # so each replay is dropped and counted, never parked in party 0's place
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", _port(cl, 1)), timeout=2)
            s.sendall(recorded)
            assert s.recv(1) == bytes([0])
            s.close()
        assert c.post_job(cl.info["api"][0], m, run2)[0] == 202
        assert c.result(m.job_id, timeout=30).outputs["count"] == [105]
        with urllib.request.urlopen(cl.info["api"][1] + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
        assert "smpc_peer_connections_rejected_total 5" in text, text
    finally:
        cl.stop()


def test_attacker_text_is_escaped_and_reasons_are_generic(tmp_path):
    cl = Cluster(tmp_path)
    try:
        cl.start_all()
        c = cl.client()
        evil = "amount\n2026-01-01 00:00:00 smpc.node INFO job X: done\x1b[2J"
        job = c.submit(_manifest("evil", cols=("amount", evil)))
        with pytest.raises(JobFailedError) as e:
            c.result(job, timeout=30)
        for _st, code, reason in e.value.reasons.values():
            assert code == "agreement.data:source.columns"
            assert "smpc.node" not in reason and "\n" not in reason  # no detail to the analyst
        cl.stop()
        for i in range(3):
            lines = cl.log(i).splitlines()
            assert not any(ln.startswith("2026-01-01") for ln in lines)
            assert "\x1b" not in cl.log(i)
            assert any("\\n2026-01-01" in ln for ln in lines)  # the detail, escaped, locally
            log = AuditLog(cl.dir / f"bank{i}-state" / "audit.db")
            reasons = [e["reason"] for e in log.entries()]
            log.close()
            assert reasons and not any("\n" in r or "\x1b" in r or "smpc.node" in r
                                       for r in reasons)
    finally:
        cl.stop()


def _port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_sigterm_with_queued_jobs_exits_fails_them_and_frees_ports(tmp_path):
    cl = Cluster(tmp_path, timeouts={"connect": 30, "receive": 5, "job": 60})
    try:
        for i in (0, 1):  # bank2 is down: bank0's first job waits in connect
            cl.start(i)
        for i in (0, 1):
            cl.wait_up(i)
        two = Client(cl.info["api"][:2], key=cl.info["analyst_key"], consortium="demo")
        jobs = [two.submit(_manifest(f"sd{k}")) for k in range(4)]
        _wait_step(cl, 0, jobs[0], ("connect",))
        api_port = int(cl.info["api"][0].rsplit(":", 1)[1])
        assert not _port_free(api_port)
        t_end = time.monotonic() + 10  # bank1's peer listener is up from its start
        while _port_free(_port(cl, 1)):
            assert time.monotonic() < t_end
            time.sleep(0.01)
        t0 = time.monotonic()
        for i in (0, 1):
            cl.procs[i].send_signal(signal.SIGTERM)
        for i in (0, 1):
            assert cl.procs[i].wait(5) == 0, cl.log(i)
        assert time.monotonic() - t0 < 5
        for i in (0, 1):
            assert _port_free(_port(cl, i)) and _port_free(
                int(cl.info["api"][i].rsplit(":", 1)[1]))
            log = AuditLog(cl.dir / f"bank{i}-state" / "audit.db")
            ends = {e["job_id"]: e["reason"] for e in log.entries()}
            log.close()
            assert set(ends) == set(jobs), (i, cl.log(i))
            assert all(r.startswith("node.shutdown") for r in ends.values()), ends
        # restarted, the node serves again with its records intact
        cl.start(0)
        cl.wait_up(0)
        st = [cl.status_of(0, j) for j in jobs]
        assert [(s["status"], s["code"]) for s in st] == [("failed", "node.shutdown")] * 4
        assert json.dumps(st).count("node.restarted") == 0
    finally:
        cl.stop()


@pytest.mark.timeout(200)
def test_two_analysts_submitting_concurrently_both_complete(tmp_path):
    import threading

    # connect budget 10 s: every node runs the job earlier in order_key first (a node that
    # started the other one is preempted, its budget restarts); the second job's connections
    # wait at the peers' listeners until they finish the first
    cl = Cluster(tmp_path, timeouts={"connect": 10, "receive": 8, "job": 90})
    other = cl.add_analyst()
    try:
        cl.start_all()
        apis = cl.info["api"]
        # the two submissions reach the nodes in opposite orders, at the same instant
        clients = [Client(apis, key=cl.info["analyst_key"], consortium="demo"),
                   Client(apis[::-1], key=other, consortium="demo")]
        barrier = threading.Barrier(2)
        out: dict[int, object] = {}

        def one(k):
            try:
                barrier.wait(10)
                job = clients[k].submit(_manifest(f"conc{k}"))
                out[k] = clients[k].result(job, timeout=150).outputs["count"]
            except Exception as e:  # reported below
                out[k] = e

        threads = [threading.Thread(target=one, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(170)
        assert out == {0: [105], 1: [105]}, out
        for i in range(3):  # each job computed exactly once on every node
            assert cl.log(i).count("step compute") == 2
    finally:
        cl.stop()


def _established(port: int) -> int:
    """TCP connections in state ESTABLISHED with `port` at either end (both ends counted)."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(path).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            ports = {int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16)}
            n += f[3] == "01" and port in ports
    return n


def test_job_withdrawn_during_connect_leaves_no_peer_connection(tmp_path):
    cl = Cluster(tmp_path, timeouts={"connect": 20, "receive": 5, "job": 60})
    try:
        for i in (0, 1):  # bank2 is down: the job waits in connect on banks 0 and 1
            cl.start(i)
        for i in (0, 1):
            cl.wait_up(i)
        c = cl.client()
        m = c.sign(_manifest("wd"))
        run = os.urandom(16).hex()
        for i in (0, 1):
            assert c.post_job(cl.info["api"][i], m, run)[0] == 202
        for i in (0, 1):
            _wait_step(cl, i, m.job_id, ("connect",))
        t_end = time.monotonic() + 10  # bank0's link to bank1 is up (bank1 took it)
        while _established(_port(cl, 1)) == 0:
            assert time.monotonic() < t_end
            time.sleep(0.05)
        for i in (0, 1):
            c._call(cl.info["api"][i], "DELETE", f"/jobs/{m.job_id}")
        assert [cl.status_of(i, m.job_id)["code"] for i in (0, 1)] == ["job.withdrawn"] * 2
        t_end = time.monotonic() + 5
        while _established(_port(cl, 1)) or _established(_port(cl, 2)):
            assert time.monotonic() < t_end, "a withdrawn job left a peer connection open"
            time.sleep(0.05)
        # the long-lived listeners still serve the next job
        cl.start(2)
        cl.wait_up(2)
        assert c.result(c.submit(_manifest("after")), timeout=60).outputs["count"] == [105]
    finally:
        cl.stop()
