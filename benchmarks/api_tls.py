"""Cost of the API's transport security (not a test): signed GET /status requests to one node
daemon on loopback over plain HTTP, server-only TLS, and mutual TLS with a pinned client
certificate (mpc.node.tlspin). Every request opens a new connection (urllib), so the TLS
figures include a full handshake (P-256 certificates, TLS 1.3).

    python benchmarks/api_tls.py --requests 200

Prints one JSON line per mode: median and p99 seconds per request, requests per second.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from mpc.node.client import Client
from mpc.node.consortium import write_consortium
from mpc.node.manifest import load_signing_key, verify_key_text
from mpc.node.tlspin import make_client_cert


def _server_cert(d: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
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


def _run_mode(mode: str, requests: int) -> dict:
    import ssl

    from nacl.signing import SigningKey

    d = Path(tempfile.mkdtemp(prefix=f"smpc-apitls-{mode}-"))
    api: dict = {"rate": 100000.0, "burst": 100000}  # measure the transport, not the limiter
    if mode != "plain":
        cert, key = _server_cert(d)
        api.update(tls_cert=str(cert), tls_key=str(key))
    info = write_consortium(d, 2, api=api)
    akey = info["analyst_key"]
    kw: dict = {}
    if mode != "plain":
        kw["tls_ca"] = d / "api.crt"
    if mode == "mtls":
        pin = make_client_cert(d / "c.crt", d / "c.key")
        owner = verify_key_text(bytes(SigningKey(load_signing_key(akey)).verify_key))
        cfg = info["configs"][0]
        cfg.write_text(cfg.read_text() + f'\n[[api.client_certs]]\nowner = "{owner}"\n'
                       f'cert = "c.crt"\nspki_sha256 = "{pin}"\n')
        kw.update(tls_cert=d / "c.crt", tls_key=d / "c.key")
    url = info["api"][0] if mode == "plain" else info["api"][0].replace("http:", "https:")
    proc = subprocess.Popen([sys.executable, "-m", "mpc.cli", "node", "--config",
                             str(info["configs"][0])], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    try:
        ctx = None
        if mode != "plain":
            ctx = ssl.create_default_context(cafile=str(d / "api.crt"))
            if mode == "mtls":
                ctx.load_cert_chain(d / "c.crt", d / "c.key")
        t_end = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=1, context=ctx)  # noqa: S310
                break
            except OSError:
                if time.monotonic() > t_end or proc.poll() is not None:
                    raise RuntimeError(f"{mode}: node did not come up") from None
                time.sleep(0.1)
        c = Client([url], key=akey, **kw)
        times = []
        for _ in range(requests):
            t0 = time.perf_counter()
            status, _body = c.request(url, "GET", "/status")
            times.append(time.perf_counter() - t0)
            assert status == 200, _body
        times.sort()
        return {"mode": mode, "requests": requests,
                "median_s": round(statistics.median(times), 5),
                "p99_s": round(times[min(len(times) - 1, int(0.99 * len(times)))], 5),
                "per_s": round(requests / sum(times), 1)}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--modes", default="plain,tls,mtls")
    args = ap.parse_args(argv)
    for mode in args.modes.split(","):
        print(json.dumps(_run_mode(mode, args.requests)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
