"""Mutual TLS with pinned client keys for the node API (issue 14).

When a node's API listens beyond loopback it serves HTTPS (`api.tls_cert`, `api.tls_key`).
With `[[api.client_certs]]` it also requires a client certificate in the TLS handshake, and
only the pinned ones:

    [[api.client_certs]]
    owner = "ed25519:..."          # the analyst (policy.analyst_keys) or operator
                                   # (api.operator_keys) key this certificate belongs to
    cert = "alice-tls.crt"         # the self-signed client certificate (smpc keygen --tls-client)
    spki_sha256 = "3f0c..."        # SHA-256 of its SubjectPublicKeyInfo (DER), hex: the pin

Three checks, in this order:

1. TLS handshake (Python's ssl module, OpenSSL): the server asks for a client certificate
   (CERT_REQUIRED) and trusts exactly the listed certificates as anchors. A connection with no
   certificate, or with one that is not listed, fails the handshake: no HTTP is read from it
   (nothing is counted in smpc_requests_total). The stdlib cannot verify by fingerprint alone
   (it has no verify callback), hence `cert` next to the pin; the node refuses to start when
   the file's public key does not hash to `spki_sha256`, so a swapped file is caught.
2. Pin (per request, defence in depth): the peer's leaf certificate public key must hash to a
   listed pin (a certificate merely chaining to a listed one, e.g. issued by it, is refused
   with 403 `auth.client_cert`).
3. Binding: a signed request's key (mpc.node.reqauth) must be the pinned certificate's
   `owner` (403 `auth.cert_owner`), so analyst A's certificate cannot carry analyst B's
   signature: stealing B's signing key is not enough without a pinned certificate of B's,
   and A's certificate does not help.

Client certificates are ECDSA P-256 (what every TLS stack accepts), self-signed, not a CA,
extended key usage clientAuth; the key file is written with mode 0600.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from network.errors import SmpcError


class ClientCertError(SmpcError):
    """A client certificate or key file is missing, malformed or does not match its pin."""


@dataclass(frozen=True)
class ClientCert:
    owner: bytes          # the Ed25519 verify key of the analyst / operator
    cert: Path            # PEM, self-signed
    spki_sha256: str      # hex, lower case


def spki_sha256(cert: bytes) -> str:
    """The pin of a certificate (PEM or DER): SHA-256 of its SubjectPublicKeyInfo, hex."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        c = (x509.load_pem_x509_certificate(cert) if cert.lstrip().startswith(b"-----")
             else x509.load_der_x509_certificate(cert))
    except ValueError as e:
        raise ClientCertError(f"not an X.509 certificate: {e}") from None
    spki = c.public_key().public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def read_pinned(path: Path, pin: str) -> str:
    """Read a pinned certificate file and check that its key hashes to `pin`; returns the PEM
    text (a trust anchor for the handshake). Raises ClientCertError."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ClientCertError(f"{path}: cannot read: {e.strerror}") from None
    got = spki_sha256(data)
    if got != pin.lower():
        raise ClientCertError(f"{path}: its public key hashes to {got}, not the pinned "
                              f"{pin.lower()} (a different certificate?)")
    if not data.lstrip().startswith(b"-----"):
        raise ClientCertError(f"{path}: expected a PEM certificate")
    return data.decode("ascii")


def server_context(cert: Path, key: Path, client_certs: tuple[ClientCert, ...]
                   ) -> ssl.SSLContext:
    """The API's TLS context: our certificate; with client_certs, a client certificate is
    required and only the pinned ones are trusted (TLS 1.2 at least)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_certs:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata="".join(read_pinned(c.cert, c.spki_sha256)
                                                 for c in client_certs))
    return ctx


def peer_pin(transport) -> str | None:
    """The pin of the client certificate on an asyncio transport (None: no TLS / no cert)."""
    if transport is None:
        return None
    so = transport.get_extra_info("ssl_object")
    der = so.getpeercert(binary_form=True) if so is not None else None
    return spki_sha256(der) if der else None


def make_client_cert(cert_out: str | os.PathLike, key_out: str | os.PathLike, *,
                     name: str = "smpc-client", days: int = 365, overwrite: bool = False) -> str:
    """Write a fresh ECDSA P-256 key (PEM, PKCS#8, mode 0600) and a self-signed client
    certificate for it (PEM); returns the pin (spki_sha256) to list in the nodes' configs."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if days < 1:
        raise ClientCertError("--days must be at least 1")
    key = ec.generate_private_key(ec.SECP256R1())  # the OS CSPRNG, through OpenSSL
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    for p in (key_out, cert_out):
        if not overwrite and Path(p).exists():
            raise ClientCertError(f"{p}: exists; refusing to overwrite")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(key_out, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, key_pem)
    finally:
        os.close(fd)
    Path(cert_out).write_bytes(cert_pem)
    return spki_sha256(cert_pem)


def parse_client_certs(items: list, base: Path, known: set[bytes]) -> tuple:
    """[[api.client_certs]]: owner (a known analyst/operator key), cert, spki_sha256; the
    certificate is read and checked against its pin here, so a bad file stops the start."""
    from mpc.node.config import _err, _get, _rel
    from mpc.node.manifest import parse_verify_key

    out, seen = [], set()
    for i, t in enumerate(items):
        where = f"api.client_certs[{i}]."
        if not isinstance(t, dict):
            raise _err(where[:-1], "must be a table (owner, cert, spki_sha256)")
        unknown = sorted(set(t) - {"owner", "cert", "spki_sha256"})
        if unknown:
            raise _err(where + unknown[0], "unknown field")
        try:
            owner = parse_verify_key(_get(t, "owner", where, str))
        except SmpcError as e:
            raise _err(where + "owner", str(e)) from None
        if owner not in known:
            raise _err(where + "owner", "not an analyst (policy.analyst_keys) or operator "
                       "(api.operator_keys) key")
        pin = _get(t, "spki_sha256", where, str).lower()
        if len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
            raise _err(where + "spki_sha256", "must be 64 hex digits (smpc keygen --tls-client "
                       "prints it)")
        if pin in seen:
            raise _err(where + "spki_sha256", "listed twice: a certificate has one owner")
        seen.add(pin)
        path = _rel(base, _get(t, "cert", where, str))
        try:
            read_pinned(path, pin)
        except ClientCertError as e:
            raise _err(where + "cert", str(e)) from None
        out.append(ClientCert(owner, path, pin))
    return tuple(out)
