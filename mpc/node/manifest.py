"""Job manifests: what an analyst asks the consortium to compute, signed with Ed25519.

A manifest (TOML or JSON) names a computation from the registry (mpc.node.jobs), its parameters,
which data source and columns each party contributes, who receives the outputs, and an
idempotency key:

    computation = "aggregate_sum"
    consortium = "demo"                  # required: the consortium id it is meant for
    not_after = 1767225600               # required: unix seconds; refused after this time
    idempotency_key = "exposure-2024-q3"
    recipients = ["analyst"]             # "analyst" (the signer) and/or party names
    [parameters]
    [inputs.bank0]
    source = "transactions"              # a source name from that node's config
    columns = ["amount"]
    [inputs.bank1]
    ...

`sign_manifest` adds the analyst's public key (`analyst = "ed25519:<hex>"`) and signs the
canonical hash; the result is the envelope `{"manifest": {...}, "signature": "<hex>"}` that
nodes accept. The hash is BLAKE2b-256 over canonical JSON (sorted keys, no whitespace, UTF-8,
no NaN), so TOML and JSON spellings of one manifest hash alike. The job id is derived from
(analyst key, idempotency key): the same analyst re-submitting the same key gets the stored
outcome (and a different manifest under a used key is refused).

`consortium` binds the manifest to one consortium (a node of another consortium that trusts the
same analyst key refuses it), and `not_after` bounds its life: a node refuses an expired
manifest at submission and again before running it, so a failed job's envelope cannot be
replayed later. `not_after` may be at most MAX_LIFETIME seconds ahead of a node's clock.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from network.errors import SmpcError

VERIFY_PREFIX = "ed25519:"
SIGN_CONTEXT = b"smpc-manifest-v1"
MAX_MANIFEST_BYTES = 64 * 1024
FIELDS = ("computation", "parameters", "inputs", "recipients", "idempotency_key", "analyst",
          "consortium", "not_after")
#: the longest a manifest may stay valid (seconds ahead of the node's clock)
MAX_LIFETIME = 30 * 24 * 3600
#: what Client.sign uses when the manifest names no not_after
DEFAULT_LIFETIME = 3600


class ManifestError(SmpcError):
    """The manifest is malformed: not JSON/TOML, missing or mistyped fields."""


class SignatureError(ManifestError):
    """The manifest is unsigned, or its signature does not verify under the named key."""


def parse_verify_key(text: str) -> bytes:
    """'ed25519:<64 hex>' (prefix optional) -> 32-byte Ed25519 public key."""
    if not isinstance(text, str):
        raise ManifestError(f"analyst key must be text, got {type(text).__name__}")
    t = text.strip()
    if t.startswith(VERIFY_PREFIX):
        t = t[len(VERIFY_PREFIX):]
    try:
        key = bytes.fromhex(t)
    except ValueError:
        raise ManifestError("analyst key is not 64 hex digits") from None
    if len(key) != 32:
        raise ManifestError("analyst key must be 32 bytes")
    return key


def verify_key_text(key: bytes) -> str:
    return VERIFY_PREFIX + key.hex()


def generate_signing_key() -> tuple[bytes, bytes]:
    """A fresh analyst key pair (seed, public key) from the OS CSPRNG."""
    from nacl.signing import SigningKey

    sk = SigningKey.generate()
    return bytes(sk), bytes(sk.verify_key)


def save_signing_key(path: str | os.PathLike, seed: bytes, *, overwrite: bool = False) -> None:
    from network.keys import save_private_key

    save_private_key(path, seed, overwrite=overwrite)  # same file format: hex, mode 0600


def load_signing_key(path: str | os.PathLike) -> bytes:
    from network.keys import load_private_key

    return load_private_key(path)


def canonical(obj: Any) -> bytes:
    def check(v, where):
        if isinstance(v, float) and not math.isfinite(v):
            raise ManifestError(f"{where}: NaN/inf not allowed")
        if isinstance(v, dict):
            for k, x in v.items():
                if not isinstance(k, str):
                    raise ManifestError(f"{where}: keys must be strings")
                check(x, f"{where}.{k}")
        elif isinstance(v, list):
            for i, x in enumerate(v):
                check(x, f"{where}[{i}]")
        elif not isinstance(v, str | int | float | bool | type(None)):
            raise ManifestError(f"{where}: unsupported value type {type(v).__name__}")

    check(obj, "manifest")
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def manifest_hash(manifest: dict) -> str:
    return hashlib.blake2b(canonical(manifest), digest_size=32, person=b"smpc-manifest").hexdigest()


def content_hash(manifest: dict) -> str:
    """The manifest's hash without its expiry: two signings of one request that differ only
    in not_after are the same job (idempotency), while the peers still agree on `hash`."""
    return manifest_hash({k: v for k, v in manifest.items() if k != "not_after"})


def job_id_of(analyst_key: bytes, idempotency_key: str) -> str:
    h = hashlib.blake2b(analyst_key + idempotency_key.encode(), digest_size=12, person=b"smpc-job")
    return h.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """A signed, validated manifest."""

    body: dict
    signature: bytes
    analyst_key: bytes
    hash: str
    job_id: str

    @property
    def computation(self) -> str:
        return self.body["computation"]

    @property
    def parameters(self) -> dict:
        return self.body.get("parameters", {})

    @property
    def inputs(self) -> dict[str, dict]:
        return self.body["inputs"]

    @property
    def recipients(self) -> list[str]:
        return self.body["recipients"]

    @property
    def consortium(self) -> str:
        return self.body["consortium"]

    @property
    def not_after(self) -> int:
        return self.body["not_after"]

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) > self.not_after

    def envelope(self) -> dict:
        return {"manifest": self.body, "signature": self.signature.hex()}


def check_body(body: Any) -> dict:
    """Structural validation of a manifest body; raises ManifestError naming the field."""
    if not isinstance(body, dict):
        raise ManifestError("manifest must be a table/object")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise ManifestError(f"manifest.{unknown[0]}: unknown field")
    for f, typ in (("computation", str), ("idempotency_key", str), ("recipients", list),
                   ("inputs", dict), ("consortium", str), ("not_after", int)):
        if f not in body:
            raise ManifestError(f"manifest.{f}: missing")
        if not isinstance(body[f], typ):
            raise ManifestError(f"manifest.{f}: must be {typ.__name__}")
    if not body["computation"] or not body["idempotency_key"]:
        raise ManifestError("manifest.computation and idempotency_key must not be empty")
    if not body["consortium"]:
        raise ManifestError("manifest.consortium: must not be empty")
    if isinstance(body["not_after"], bool) or body["not_after"] <= 0:
        raise ManifestError("manifest.not_after: must be unix seconds (an integer > 0)")
    if not isinstance(body.get("parameters", {}), dict):
        raise ManifestError("manifest.parameters: must be a table")
    if not body["recipients"] or not all(isinstance(r, str) and r for r in body["recipients"]):
        raise ManifestError("manifest.recipients: must be a non-empty list of names")
    if not body["inputs"]:
        raise ManifestError("manifest.inputs: no party contributes data")
    for party, inp in body["inputs"].items():
        pre = f"manifest.inputs.{party}"
        if not isinstance(inp, dict):
            raise ManifestError(f"{pre}: must be a table")
        if not isinstance(inp.get("source"), str) or not inp["source"]:
            raise ManifestError(f"{pre}.source: missing")
        cols = inp.get("columns", [])
        if not isinstance(cols, list) or not all(isinstance(c, str) and c for c in cols):
            raise ManifestError(f"{pre}.columns: must be a list of column names")
        if "label" in inp and not isinstance(inp["label"], str):
            raise ManifestError(f"{pre}.label: must be a column name")
        if not cols and "label" not in inp:
            raise ManifestError(f"{pre}.columns: names no column")
        extra = sorted(set(inp) - {"source", "columns", "label"})
        if extra:
            raise ManifestError(f"{pre}.{extra[0]}: unknown field")
    canonical(body)
    return body


def load_manifest_file(path: str | os.PathLike) -> dict:
    """Read a manifest (body, or a signed envelope) from TOML or JSON."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ManifestError(f"{p}: {e.strerror}") from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{p}: larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        if p.suffix == ".json":
            return json.loads(data)
        return tomllib.loads(data.decode())
    except (ValueError, UnicodeDecodeError) as e:
        raise ManifestError(f"{p}: cannot parse: {e}") from None


def sign_manifest(body: dict, signing_key: bytes) -> Manifest:
    """Add the signer's public key to the body and sign its hash."""
    from nacl.signing import SigningKey

    try:
        sk = SigningKey(signing_key)
    except Exception as e:  # PyNaCl raises untyped errors
        raise SignatureError(f"bad signing key: {e}") from None
    body = dict(body)
    body["analyst"] = verify_key_text(bytes(sk.verify_key))
    check_body(body)
    h = manifest_hash(body)
    sig = sk.sign(SIGN_CONTEXT + bytes.fromhex(h)).signature
    return Manifest(body, sig, bytes(sk.verify_key), h,
                    job_id_of(bytes(sk.verify_key), body["idempotency_key"]))


def verify_envelope(env: Any) -> Manifest:
    """Parse a submitted envelope and check its signature; raises ManifestError or
    SignatureError (unsigned, bad signature, key missing)."""
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    if not isinstance(env, dict) or "manifest" not in env:
        raise ManifestError("submission must be {\"manifest\": {...}, \"signature\": \"<hex>\"}")
    extra = sorted(set(env) - {"manifest", "signature"})
    if extra:
        raise ManifestError(f"submission.{extra[0]}: unknown field")
    body = check_body(env["manifest"])
    sig_text = env.get("signature")
    if not sig_text:
        raise SignatureError("manifest is not signed")
    if "analyst" not in body:
        raise SignatureError("manifest.analyst: missing (the signer's ed25519 key)")
    key = parse_verify_key(body["analyst"])
    try:
        sig = bytes.fromhex(sig_text) if isinstance(sig_text, str) else b""
    except ValueError:
        sig = b""
    if len(sig) != 64:
        raise SignatureError("signature must be 64 bytes of hex")
    h = manifest_hash(body)
    try:
        VerifyKey(key).verify(SIGN_CONTEXT + bytes.fromhex(h), sig)
    except BadSignatureError:
        raise SignatureError("signature does not verify under manifest.analyst") from None
    except Exception as e:  # malformed key bytes: PyNaCl raises untyped errors
        raise SignatureError(f"cannot verify signature: {e}") from None
    return Manifest(body, sig, key, h, job_id_of(key, body["idempotency_key"]))
