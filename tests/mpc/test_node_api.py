"""The node's API against a stranger on the host (T25), with real daemon processes: every
request signed, results for their recipients only, Host/Origin/JSON checks, replay and skew,
bounded queue and rate limits, policy at submission (nothing queued or audited), and the
loopback rule for node.api parsed as an address."""

import json
import time
import urllib.error
import urllib.request

import pytest
from test_node import Cluster, _manifest

from mpc.node.audit import AuditLog
from mpc.node.client import Client, SubmissionRejected
from mpc.node.config import ConfigError, load_config
from mpc.node.consortium import write_consortium
from mpc.node.manifest import generate_signing_key
from mpc.node.reqauth import sign_request

pytestmark = pytest.mark.timeout(90)


def _raw(url, method="GET", body=None, headers=None):
    """An HTTP request as a stranger would send it: (status, JSON body)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 (loopback)
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _audit_entries(cl, i):
    log = AuditLog(cl.dir / f"bank{i}-state" / "audit.db")
    try:
        return len(log.entries())
    finally:
        log.close()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    other = c.add_analyst()
    c.start_all()
    c.other = other
    yield c
    c.stop()


def test_unauthenticated_and_foreign_reads_are_refused(cluster):
    c = cluster.client()
    job = c.submit(_manifest("read"))
    c.result(job, timeout=60)
    api = cluster.info["api"][0]
    for path in ("/status", f"/jobs/{job}", f"/jobs/{job}/result"):
        status, body = _raw(api + path)
        assert (status, body["code"]) == (401, "auth.missing"), (path, body)
        assert job not in json.dumps(body)
    # another allowed analyst: the job does not exist for them
    other = Client(cluster.info["api"], key=cluster.other, consortium="demo")
    for path in (f"/jobs/{job}", f"/jobs/{job}/result"):
        status, body = other.request(api, "GET", path)
        assert (status, body["code"]) == (404, "job.unknown")
    # an analyst's /status does not name the current job; the operator's does
    assert "current_job" not in c.request(api, "GET", "/status")[1]
    assert "current_job" in cluster.operator(0).request(api, "GET", "/status")[1]
    # the submitter and the operator read it
    assert c.request(api, "GET", f"/jobs/{job}/result")[0] == 200
    assert cluster.result_of(0, job)[0] == 200


def test_host_origin_content_type_replay_and_skew(cluster):
    c = cluster.client()
    api = cluster.info["api"][0]
    port = api.rsplit(":", 1)[1]
    key = c.key
    node = api.split("//", 1)[1]  # the Host the requests are addressed to (signed, v2)
    # DNS rebinding: a signed request under another Host name is refused
    h = sign_request(key, "GET", "/status", node=node)
    assert _raw(api + "/status", headers={**h, "Host": f"rebind.example:{port}"})[1][
        "code"] == "http.host"
    # CSRF: any Origin is refused, and text/plain bodies are refused
    h = sign_request(key, "GET", "/status", node=node)
    assert _raw(api + "/status", headers={**h, "Origin": "http://evil.example"})[1][
        "code"] == "http.origin"
    body = json.dumps({**c.sign(_manifest("csrf")).envelope(), "run": "00" * 16}).encode()
    h = sign_request(key, "POST", "/jobs", body, node=node)
    assert _raw(api + "/jobs", "POST", body, {**h, "Content-Type": "text/plain"}) == (
        415, {"code": "http.content_type", "reason": "POST bodies must be application/json"})
    # a recorded request played again, a stale one, a tampered one
    h = sign_request(key, "GET", "/status", node=node)
    assert _raw(api + "/status", headers=h)[0] == 200
    assert _raw(api + "/status", headers=h)[1]["code"] == "auth.replay"
    h = sign_request(key, "GET", "/status", now=time.time() - 3600, node=node)
    assert _raw(api + "/status", headers=h)[1]["code"] == "auth.skew"
    h = sign_request(key, "GET", "/status", node=node)  # signed for another path
    assert _raw(api + "/jobs/abc", headers=h)[1]["code"] == "auth.signature"
    # an oversized body is refused before it is read
    big = b"{" + b" " * (200 * 1024) + b"}"
    h = sign_request(key, "POST", "/jobs", big, node=node)
    assert _raw(api + "/jobs", "POST", big, {**h, "Content-Type": "application/json"})[0] == 413
    # deeply nested JSON within the size limit is a typed 400, not a 500
    deep = b"[" * 30000 + b"]" * 30000
    h = sign_request(key, "POST", "/jobs", deep, node=node)
    assert _raw(api + "/jobs", "POST", deep, {**h, "Content-Type": "application/json"}) == (
        400, {"code": "manifest.malformed", "reason": "body is not JSON"})


def test_unknown_analyst_refused_at_submit_not_queued_not_audited(cluster):
    c = cluster.client()
    job = c.submit(_manifest("before"))
    c.result(job, timeout=60)
    t_end = time.monotonic() + 20  # the job's audit heads exchange ends just after the result
    while not all(f"job {job}: audit head" in cluster.log(i) for i in range(3)):
        assert time.monotonic() < t_end
        time.sleep(0.05)
    before = [_audit_entries(cluster, i) for i in range(3)]
    stranger, _ = generate_signing_key()
    s = Client(cluster.info["api"], key=stranger, consortium="demo")
    for k in range(5):  # self-signed manifests from a key no policy knows
        with pytest.raises(SubmissionRejected) as e:
            s.submit(_manifest(f"evil{k}"))
        assert {r[0] for r in e.value.reasons.values()} == {"auth.unknown_key"}
    for i, api in enumerate(cluster.info["api"]):
        st = cluster.operator(i).request(api, "GET", "/status")[1]
        assert (st["current_job"], st["queued"]) == (None, 0)
        metrics = urllib.request.urlopen(api + "/metrics", timeout=5).read().decode()
        assert 'smpc_requests_rejected_total{code="auth.unknown_key"} 5' in metrics
        assert 'smpc_jobs_total{status="done"} 1' in metrics
    mid = [_audit_entries(cluster, i) for i in range(3)]
    assert mid == before  # nothing of the stranger was audited
    # an honest job right after runs at once, and adds what the first one added
    assert c.result(c.submit(_manifest("after")), timeout=60).outputs["count"] == [105]
    cluster.stop()
    for i in range(3):
        log = AuditLog(cluster.dir / f"bank{i}-state" / "audit.db")
        entries = log.entries()
        log.close()
        assert not any(e.get("outcome") == "rejected" or "evil" in json.dumps(e)
                       for e in entries)


def test_bounded_queue_and_rate_limit(tmp_path):
    cl = Cluster(tmp_path, timeouts={"connect": 20, "receive": 5, "job": 60},
                 api={"max_queue": 1, "rate": 0.001, "burst": 12})
    try:
        for i in (0, 1):  # bank2 is down: the first job waits in connect
            cl.start(i)
        for i in (0, 1):
            cl.wait_up(i)
        two = Client(cl.info["api"][:2], key=cl.info["analyst_key"], consortium="demo")
        first = two.submit(_manifest("q1"))
        t_end = time.monotonic() + 10
        while cl.status_of(0, first)["step"] != "connect":
            assert time.monotonic() < t_end
            time.sleep(0.05)
        two.submit(_manifest("q2"))  # queued behind it
        with pytest.raises(SubmissionRejected) as e:
            two.submit(_manifest("q3"))
        assert {r[0] for r in e.value.reasons.values()} == {"queue.full"}
        # the analyst's bucket (burst 12, refilled once per 1000 s) runs dry: 429
        codes = [two.request(cl.info["api"][0], "GET", "/status")[1].get("code")
                 for _ in range(12)]
        assert "rate.limited" in codes and codes[0] is None
        # another key has its own bucket
        assert cl.operator(0).request(cl.info["api"][0], "GET", "/status")[0] == 200
    finally:
        cl.stop()


def test_api_loopback_rule_parses_addresses(tmp_path):
    info = write_consortium(tmp_path, 2)
    p = info["configs"][0]
    text = p.read_text()
    port = text.split('api = "127.0.0.1:')[1].split('"')[0]
    for host, ok in (("127.attacker.example", False), ("localhost.attacker.example", False),
                     ("0.0.0.0", False), ("10.0.0.1", False), ("127.0.0.2", True),
                     ("[::1]", True), ("localhost", True)):
        p.write_text(text.replace(f'api = "127.0.0.1:{port}"', f'api = "{host}:{port}"'))
        if ok:
            assert load_config(p).api_host == host
        else:
            with pytest.raises(ConfigError, match="node.api"):
                load_config(p)
    # beyond loopback only with TLS
    p.write_text(text.replace(f'api = "127.0.0.1:{port}"', f'api = "0.0.0.0:{port}"')
                 .replace("[api]", '[api]\ntls_cert = "c.pem"\ntls_key = "k.pem"'))
    cfg = load_config(p)
    assert cfg.api.tls_cert.name == "c.pem"
    # ... and server TLS alone (no pinned client certificates) is an insecure option: the
    # daemon refuses it unless run --insecure
    assert any("api.client_certs" in b for b in cfg.insecure_options())
    p.write_text(text)
    assert not any("api.client_certs" in b for b in load_config(p).insecure_options())


def test_metrics_prometheus_text_and_json_logs(tmp_path):
    cl = Cluster(tmp_path)
    try:
        cl.start(0, "--log-json")
        for i in (1, 2):
            cl.start(i)
        for i in range(3):
            cl.wait_up(i)
        c = cl.client()
        job = c.submit(_manifest("m"))
        c.result(job, timeout=60)
        _raw(cl.info["api"][0] + "/status")  # one unsigned request: refused and counted
        stats = cl.status_of(0, job)["stats"]
        with urllib.request.urlopen(cl.info["api"][0] + "/metrics", timeout=5) as r:
            assert r.headers["Content-Type"].startswith("text/plain")
            text = r.read().decode()
        lines = dict(ln.rsplit(" ", 1) for ln in text.splitlines() if not ln.startswith("#"))
        assert lines['smpc_jobs_total{status="done"}'] == "1"
        assert lines['smpc_jobs_total{status="failed"}'] == "0"
        assert int(lines["smpc_job_rounds_total"]) == stats["rounds"] > 0
        assert int(lines["smpc_job_bytes_sent_total"]) == stats["bytes_sent"] > 0
        assert lines["smpc_queue_length"] == "0" and lines["smpc_job_running"] == "0"
        assert lines['smpc_requests_rejected_total{code="auth.missing"}'] == "1"
        assert job not in text  # counts only
        cl.stop()
        records = [json.loads(ln) for ln in cl.log(0).splitlines() if ln.strip()]
        assert {"time", "level", "logger", "message"} <= set(records[0])
        assert any(f"job {job}: done" in r["message"] for r in records)
    finally:
        cl.stop()


def _self_signed(d):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (d / "api.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "api.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return d / "api.crt", d / "api.pem"


def test_api_over_tls(tmp_path):
    import ssl

    cert, key = _self_signed(tmp_path)
    cl = Cluster(tmp_path, api={"tls_cert": str(cert), "tls_key": str(key)})
    apis = [u.replace("http://", "https://") for u in cl.info["api"]]
    ctx = ssl.create_default_context(cafile=str(cert))
    try:
        for i in range(3):
            cl.start(i)
        for i, api in enumerate(apis):
            t_end = time.monotonic() + 20
            while True:
                try:
                    urllib.request.urlopen(api + "/health", timeout=1, context=ctx)  # noqa: S310
                    break
                except OSError:
                    assert cl.procs[i].poll() is None and time.monotonic() < t_end, cl.log(i)
                    time.sleep(0.1)
        assert "api https://" in cl.log(0)
        with pytest.raises(OSError):  # plain HTTP is not served
            urllib.request.urlopen(cl.info["api"][0] + "/health", timeout=5)  # noqa: S310
        with pytest.raises(OSError):  # nor TLS to an untrusted certificate
            urllib.request.urlopen(apis[0] + "/health", timeout=5)  # noqa: S310
        c = Client(apis, key=cl.info["analyst_key"], tls_ca=cert)
        assert c.result(c.submit(_manifest("tls")), timeout=60).outputs["count"] == [105]
    finally:
        cl.stop()


class _Recorder:
    """A malicious bank's API server: records the signed requests analysts send it and
    answers 202, so that the bank can play them again to another node."""

    def __init__(self):
        import http.server
        import threading

        seen = self.seen = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                seen.append((dict(self.headers), body))
                out = json.dumps({"status": "queued"}).encode()
                self.send_response(202)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_signed_request_replayed_to_another_node_is_refused(cluster):
    """Issue 14: a bank that received an analyst's signed POST /jobs plays it to another
    node within the skew window. The signature binds the node the analyst addressed (its
    Host), so the other node refuses it (401 `auth.node`) and queues nothing; a request signed
    without the binding (smpc-request-v1) is refused with 401 `auth.unbound`."""
    c = cluster.client()
    m = c.sign(_manifest("replayed"))
    run = "ab" * 16
    rec = _Recorder()
    try:
        assert c.post_job(rec.url, m, run)[0] == 202  # the analyst sends it to "bank B"
    finally:
        rec.close()
    (headers, body), = rec.seen
    signed = {k: v for k, v in headers.items() if k.lower().startswith("x-smpc-")}
    api = cluster.info["api"][2]
    # played to node 2 as captured: its Host is bank B's, refused by the Host check
    status, out = _raw(api + "/jobs", "POST", body, {**signed, "Content-Type":
                                                      "application/json",
                                                      "Host": headers["Host"]})
    assert (status, out["code"]) == (421, "http.host")
    # with node 2's own Host (urllib sets it from the URL): the signature names bank B
    status, out = _raw(api + "/jobs", "POST", body, {**signed,
                                                      "Content-Type": "application/json"})
    assert (status, out["code"]) == (401, "auth.node"), out
    assert cluster.status_of(2, m.job_id)["code"] == "job.unknown"  # nothing queued
    # a request signed without the node (the v1 format) is refused as such
    h = sign_request(c.key, "POST", "/jobs", body)
    status, out = _raw(api + "/jobs", "POST", body, {**h, "Content-Type": "application/json"})
    assert (status, out["code"]) == (401, "auth.unbound"), out
    assert cluster.status_of(2, m.job_id)["code"] == "job.unknown"
    metrics = urllib.request.urlopen(api + "/metrics", timeout=5).read().decode()
    assert 'smpc_requests_rejected_total{code="auth.node"} 1' in metrics
    assert 'smpc_requests_rejected_total{code="auth.unbound"} 1' in metrics
    # the analyst's own request to node 2 (signed for it) is accepted, and the job runs
    for node in cluster.info["api"]:
        assert c.post_job(node, m, run)[0] == 202
    assert c.result(m.job_id, timeout=60).outputs["count"] == [105]


def _post_all(client, nodes, m, run):
    return {node: client.post_job(node, m, run) for node in nodes}


def test_one_analyst_cannot_fill_the_queue(tmp_path):
    """Issue 14: analyst A floods signed submissions; with `api.max_queue` = 4 the default
    `api.max_queued_per_analyst` (max(1, max_queue // 4) = 1) lets A hold one waiting job
    (besides its running one) and refuses the rest with 429 `queue.analyst`, so analyst B's
    job still gets in (it got `queue.full` before) and runs once the third bank is up."""
    cl = Cluster(tmp_path, timeouts={"connect": 60, "receive": 8, "job": 90},
                 api={"max_queue": 4})
    b_key = cl.add_analyst()
    try:
        for i in (0, 1):  # bank2 is down: A's first job waits in connect
            cl.start(i)
        for i in (0, 1):
            cl.wait_up(i)
        apis = cl.info["api"]
        a = Client(apis, key=cl.info["analyst_key"], consortium="demo")
        b = Client(apis, key=b_key, consortium="demo")
        accepted, refused = [], []
        for k in range(6):
            m, run = a.sign(_manifest(f"flood{k}")), f"{k:032x}"
            got = _post_all(a, apis[:2], m, run)
            if all(s == 202 for s, _ in got.values()):
                accepted.append((m, run))
            else:
                refused.append({body["code"] for _, body in got.values()})
            if k == 0:  # A's first job is running (connecting) on both nodes
                t_end = time.monotonic() + 10
                while any(cl.status_of(i, m.job_id)["step"] != "connect" for i in (0, 1)):
                    assert time.monotonic() < t_end
                    time.sleep(0.05)
        assert len(accepted) == 2, (len(accepted), refused)
        assert refused == [{"queue.analyst"}] * 4
        mb, run_b = b.sign(_manifest("b-gets-in")), "bb" * 16
        got = _post_all(b, apis[:2], mb, run_b)
        assert all(s == 202 for s, _ in got.values()), got
        for i in (0, 1):
            st = cl.operator(i).request(apis[i], "GET", "/status")[1]
            assert st["queued"] + (st["current_job"] is not None) == 3
            metrics = urllib.request.urlopen(apis[i] + "/metrics", timeout=5).read().decode()
            assert 'smpc_requests_rejected_total{code="queue.analyst"} 4' in metrics
        # bank2 comes up and receives the accepted jobs: all three run, B's included
        cl.start(2)
        cl.wait_up(2)
        m0, run0 = accepted[0]
        assert a.post_job(apis[2], m0, run0)[0] == 202
        t_end = time.monotonic() + 30  # bank2 starts it before it gets the next one
        while cl.status_of(2, m0.job_id)["status"] == "queued":
            assert time.monotonic() < t_end
            time.sleep(0.05)
        m1, run1 = accepted[1]
        assert a.post_job(apis[2], m1, run1)[0] == 202
        assert b.post_job(apis[2], mb, run_b)[0] == 202
        for client, m in ((a, m0), (a, m1), (b, mb)):
            assert client.result(m.job_id, timeout=60).outputs["count"] == [105]
    finally:
        cl.stop()


def test_max_queued_per_analyst_config(tmp_path):
    info = write_consortium(tmp_path, 2)
    p = info["configs"][0]
    text = p.read_text()
    assert load_config(p).api.max_queued_per_analyst == 16  # max_queue 64 // 4
    p.write_text(text.replace("[api]", "[api]\nmax_queue = 2"))
    assert load_config(p).api.max_queued_per_analyst == 1  # at least one
    p.write_text(text.replace("[api]", "[api]\nmax_queued_per_analyst = 5"))
    assert load_config(p).api.max_queued_per_analyst == 5
    for bad in ("0", "-1", '"5"', "true"):
        p.write_text(text.replace("[api]", f"[api]\nmax_queued_per_analyst = {bad}"))
        with pytest.raises(ConfigError, match="api.max_queued_per_analyst"):
            load_config(p)
