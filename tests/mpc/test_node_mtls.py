"""Mutual TLS with pinned client keys for the node API (issue 14, mpc.node.tlspin), against
real daemon processes: only pinned client certificates complete the TLS handshake (nothing
reaches HTTP otherwise), the pin is on the certificate's key, and a certificate pinned for one
analyst cannot carry another key's request signature."""

import datetime
import json
import re
import socket
import ssl
import time
import urllib.error
import urllib.request

import pytest
from test_node import Cluster, _manifest
from test_node_api import _self_signed

from mpc.cli.main import main
from mpc.node.client import Client, ClientError, SubmissionRejected
from mpc.node.config import NodeConfigError, load_config
from network.keys import save_private_key

pytestmark = pytest.mark.timeout(120)


def _keygen(capsys, d, name, owner=None):
    """`smpc keygen --tls-client`: returns (cert, key, pin) and checks the printed lines."""
    key = d / f"{name}-tls.key"
    argv = ["keygen", "--tls-client", "--out", str(key), "--name", name]
    assert main(argv + (["--owner", str(owner)] if owner else [])) == 0
    out = capsys.readouterr().out
    pin = re.search(r"^spki_sha256 ([0-9a-f]{64})$", out, re.M).group(1)
    cert = d / f"{name}-tls.crt"
    assert f'cert = "{cert.name}"' in out and f'spki_sha256 = "{pin}"' in out
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert main(argv) == 2  # never overwrites a key
    capsys.readouterr()
    return cert, key, pin


def _pin_line(owner_vk_text, cert, pin):
    return (f'\n[[api.client_certs]]\nowner = "{owner_vk_text}"\ncert = "{cert.name}"\n'
            f'spki_sha256 = "{pin}"\n')


def _vk_text(seed):
    from nacl.signing import SigningKey

    from mpc.node.manifest import verify_key_text

    return verify_key_text(bytes(SigningKey(seed).verify_key))


def _ctx(server_cert, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=str(server_cert))
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def _get(url, ctx):
    try:
        with urllib.request.urlopen(url, timeout=5, context=ctx) as r:  # noqa: S310
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _requests_total(api, ctx):
    status, text = _get(api + "/metrics", ctx)
    assert status == 200
    lines = dict(ln.rsplit(" ", 1) for ln in text.decode().splitlines() if not ln.startswith("#"))
    return int(lines["smpc_requests_total"])


def _raw_handshake(api, server_cert, cert=None, key=None):
    """TLS to the API and one HTTP request on it: the bytes answered, or the error type."""
    host, port = api.removeprefix("https://").rsplit(":", 1)
    ctx = _ctx(server_cert, cert, key)
    try:
        with socket.create_connection((host, int(port)), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: " + f"{host}:{port}".encode()
                      + b"\r\nConnection: close\r\n\r\n")
            return s.recv(4096)
    except (ssl.SSLError, ConnectionError) as e:
        return type(e).__name__


def _leaf_from(ca_cert, ca_key, d):
    """A client certificate issued by (chaining to) `ca_cert`, with a key of its own."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    ca_sk = serialization.load_pem_private_key(ca_key.read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issued")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(ca_sk, hashes.SHA256()))
    (d / "issued.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "issued.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (d / "issued.key").chmod(0o600)
    return d / "issued.crt", d / "issued.key"


def test_mutual_tls_pinned_client_certificates_end_to_end(tmp_path, capsys):
    from mpc.node.tlspin import spki_sha256

    server_cert, server_key = _self_signed(tmp_path)  # a CA-capable self-signed certificate
    cl = Cluster(tmp_path, api={"tls_cert": str(server_cert), "tls_key": str(server_key)})
    a_key = cl.info["analyst_key"]
    b_seed = cl.add_analyst()
    b_key = tmp_path / "analyst-b.key"
    save_private_key(b_key, b_seed)
    a_cert, a_tls, a_pin = _keygen(capsys, tmp_path, "alice", owner=a_key)
    b_cert, b_tls, b_pin = _keygen(capsys, tmp_path, "bob", owner=b_key)
    m_cert, m_tls, _ = _keygen(capsys, tmp_path, "mallory")  # never pinned
    op_key = cl.info["operator_keys"][0]  # bank0's operator: pinned at bank0 only
    o_cert, o_tls, o_pin = _keygen(capsys, tmp_path, "operator0", owner=op_key)
    ca_pin = spki_sha256(server_cert.read_bytes())  # pinned below, for analyst A, as a CA
    from mpc.node.manifest import load_signing_key

    a_vk = _vk_text(load_signing_key(a_key))
    for p in cl.info["configs"]:
        p.write_text(p.read_text() + _pin_line(a_vk, a_cert, a_pin)
                     + _pin_line(_vk_text(b_seed), b_cert, b_pin)
                     + _pin_line(a_vk, server_cert, ca_pin))
    p0 = cl.info["configs"][0]
    p0.write_text(p0.read_text() + _pin_line(_vk_text(load_signing_key(op_key)), o_cert, o_pin))
    assert len(load_config(p0).api.client_certs) == 4
    apis = [u.replace("http://", "https://") for u in cl.info["api"]]
    a_ctx = _ctx(server_cert, a_cert, a_tls)
    try:
        for i in range(3):
            cl.start(i)
        for i, api in enumerate(apis):
            t_end = time.monotonic() + 20
            while True:
                try:
                    urllib.request.urlopen(api + "/health", timeout=1, context=a_ctx)  # noqa: S310
                    break
                except OSError:
                    assert cl.procs[i].poll() is None and time.monotonic() < t_end, cl.log(i)
                    time.sleep(0.1)
        # the pinned owner's certificate and key: a job runs end to end
        alice = Client(apis, key=a_key, tls_ca=server_cert, tls_cert=a_cert, tls_key=a_tls)
        assert alice.result(alice.submit(_manifest("mtls")), timeout=60).outputs["count"] == [105]
        before = [_requests_total(api, a_ctx) for api in apis]

        # no client certificate, or one that is not pinned: the handshake fails, no HTTP
        for cert, key in ((None, None), (m_cert, m_tls)):
            for api in apis:
                got = _raw_handshake(api, server_cert, cert, key)
                assert not (isinstance(got, bytes) and got.startswith(b"HTTP/")), got
            c = Client(apis, key=a_key, tls_ca=server_cert, tls_cert=cert, tls_key=key)
            with pytest.raises(ClientError, match="unreachable"):
                c.request(apis[0], "GET", "/status")
        with pytest.raises(OSError):  # nor plain HTTP
            urllib.request.urlopen(cl.info["api"][0] + "/health", timeout=5)  # noqa: S310
        # nothing of those reached the HTTP layer: only the /metrics reads are counted
        assert [_requests_total(api, a_ctx) for api in apis] == [b + 1 for b in before]

        # the binding: A's certificate with B's signature, B's with A's: refused at HTTP
        for key, cert, tls in ((b_key, a_cert, a_tls), (a_key, b_cert, b_tls)):
            c = Client(apis, key=key, tls_ca=server_cert, tls_cert=cert, tls_key=tls,
                       consortium="demo")
            status, body = c.request(apis[0], "GET", "/status")
            assert (status, body.get("code")) == (403, "auth.cert_owner"), body
            with pytest.raises(SubmissionRejected) as e:
                c.submit(_manifest("swap"))
            assert [r[0] for r in e.value.reasons.values()] == ["auth.cert_owner"] * 3
        bob = Client(apis, key=b_key, tls_ca=server_cert, tls_cert=b_cert, tls_key=b_tls)
        assert bob.request(apis[1], "GET", "/status")[0] == 200
        assert bob.result(bob.submit(_manifest("bob")), timeout=60).outputs["count"] == [105]

        # an operator's certificate, for the operator's key, at the bank that pinned it
        job = alice.submit(_manifest("mtls"))  # the same manifest: the stored job
        op = Client(apis[:1], key=op_key, tls_ca=server_cert, tls_cert=o_cert, tls_key=o_tls)
        status, body = op.request(apis[0], "GET", f"/jobs/{job}")
        assert (status, body.get("status")) == (200, "done"), body
        op_b = Client(apis[1:2], key=op_key, tls_ca=server_cert, tls_cert=o_cert, tls_key=o_tls)
        with pytest.raises(ClientError, match="unreachable"):  # not pinned at bank1
            op_b.request(apis[1], "GET", "/status")

        # the pin is on the certificate's key: a certificate issued by a pinned (CA) one
        # passes the handshake's chain check, and is refused by its pin
        i_cert, i_key = _leaf_from(server_cert, server_key, tmp_path)
        c = Client(apis, key=a_key, tls_ca=server_cert, tls_cert=i_cert, tls_key=i_key)
        status, body = c.request(apis[0], "GET", "/status")
        assert (status, body.get("code")) == (403, "auth.client_cert"), body
        status, text = _get(apis[0] + "/metrics", a_ctx)
        assert 'smpc_requests_rejected_total{code="auth.cert_owner"} 4' in text.decode()
        assert 'smpc_requests_rejected_total{code="auth.client_cert"} 1' in text.decode()
        assert json.loads(_get(apis[0] + "/health", a_ctx)[1]) == {"status": "ok"}
    finally:
        cl.stop()


def test_client_cert_config_is_checked_at_load(tmp_path, capsys):
    server_cert, server_key = _self_signed(tmp_path)
    cl = Cluster(tmp_path, api={"tls_cert": str(server_cert), "tls_key": str(server_key)})
    p = cl.info["configs"][0]
    good = p.read_text()
    from mpc.node.manifest import load_signing_key

    a_vk = _vk_text(load_signing_key(cl.info["analyst_key"]))
    cert, key, pin = _keygen(capsys, tmp_path, "alice")
    other_cert, _, other_pin = _keygen(capsys, tmp_path, "other")
    stranger = _vk_text(b"\x07" * 32)
    for extra, match in (
            (_pin_line(a_vk, cert, other_pin), r"client_certs\[0\].cert: .*hashes to"),
            (_pin_line(stranger, cert, pin), r"client_certs\[0\].owner: not an analyst"),
            (_pin_line(a_vk, cert, pin[:60]), r"client_certs\[0\].spki_sha256: must be 64"),
            (_pin_line(a_vk, cert, pin) + _pin_line(a_vk, cert, pin), "listed twice"),
            (_pin_line(a_vk, tmp_path / "nope.crt", pin), "cannot read")):
        p.write_text(good + extra)
        with pytest.raises(NodeConfigError, match=match):
            load_config(p)
    # pins without server TLS: refused (client certificates live in the TLS handshake)
    p.write_text(good.replace(f'tls_cert = "{server_cert}"', "")
                 .replace(f'tls_key = "{server_key}"', "") + _pin_line(a_vk, cert, pin))
    with pytest.raises(NodeConfigError, match="api.client_certs: needs api.tls_cert"):
        load_config(p)
    p.write_text(good + _pin_line(a_vk, cert, pin) + _pin_line(a_vk, other_cert, other_pin))
    pins = load_config(p).api.client_certs
    assert [c.spki_sha256 for c in pins] == [pin, other_pin]
    key.chmod(0o644)  # the client refuses a readable private key
    with pytest.raises(ClientError, match="chmod 600"):
        Client(["https://127.0.0.1:1"], key=cl.info["analyst_key"], tls_cert=cert, tls_key=key)


def _host_address():
    """This machine's non-loopback IPv4 address, if it has one."""
    import ipaddress

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))  # no packet is sent: only picks the route
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if ipaddress.ip_address(ip).is_loopback else ip


def _server_cert_for(d, ips):
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smpc node")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]), critical=False)
            .sign(key, hashes.SHA256()))
    (d / "node.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "node.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return d / "node.crt", d / "node.pem"


def test_api_beyond_loopback_with_mutual_tls(tmp_path, capsys):
    """The deployment this is for: every node's API on the host's network address (not
    loopback), HTTPS with pinned client certificates. The analyst's job runs; a client
    without a certificate gets no HTTP at all; /metrics from a non-loopback peer needs an
    operator's signature even with a pinned certificate."""
    from mpc.node.manifest import load_signing_key

    ip = _host_address()
    if ip is None:
        pytest.skip("no non-loopback address on this machine")
    server_cert, server_key = _server_cert_for(tmp_path, ["127.0.0.1", ip])
    cl = Cluster(tmp_path, api={"tls_cert": str(server_cert), "tls_key": str(server_key)})
    a_key = cl.info["analyst_key"]
    a_cert, a_tls, a_pin = _keygen(capsys, tmp_path, "alice", owner=a_key)
    for p in cl.info["configs"]:
        text = p.read_text()
        assert text.count('api = "127.0.0.1:') == 1
        p.write_text(text.replace('api = "127.0.0.1:', f'api = "{ip}:')
                     + _pin_line(_vk_text(load_signing_key(a_key)), a_cert, a_pin))
    apis = [u.replace("http://127.0.0.1:", f"https://{ip}:") for u in cl.info["api"]]
    a_ctx = _ctx(server_cert, a_cert, a_tls)
    try:
        for i in range(3):
            cl.start(i)
        for i, api in enumerate(apis):
            t_end = time.monotonic() + 20
            while True:
                try:
                    urllib.request.urlopen(api + "/health", timeout=1, context=a_ctx)  # noqa: S310
                    break
                except OSError:
                    assert cl.procs[i].poll() is None and time.monotonic() < t_end, cl.log(i)
                    time.sleep(0.1)
        assert f"api https://{ip}:" in cl.log(0)
        for api in apis:
            got = _raw_handshake(api, server_cert)
            assert not (isinstance(got, bytes) and got.startswith(b"HTTP/")), got
        alice = Client(apis, key=a_key, tls_ca=server_cert, tls_cert=a_cert, tls_key=a_tls)
        assert alice.result(alice.submit(_manifest("lan")), timeout=60).outputs["count"] == [105]
        status, body = _get(apis[0] + "/metrics", a_ctx)  # certificate, no signature
        assert (status, json.loads(body)["code"]) == (401, "auth.missing")
        status, body = alice.request(apis[0], "GET", "/metrics")
        assert (status, body.get("code")) == (403, "auth.forbidden")  # an analyst's signature
    finally:
        cl.stop()
