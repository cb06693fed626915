"""Broker authentication and per-node topic ACLs for a Mosquitto broker (MQTT transport).

The channels already authenticate every record end to end (network.mqtt), so a broker client
that is not a party can only make records be dropped and counted; with broker accounts and
topic ACLs it cannot publish on a node's topics at all. `write_broker_auth` writes:

- ``mosquitto.passwd``: one line per node, ``name:$7$101$<salt>$<hash>``, the format of
  Mosquitto 2's password_file (PBKDF2-HMAC-SHA512, 101 iterations, 12-byte salt, 64-byte hash:
  what `mosquitto_passwd` writes). The passwords are 256-bit random tokens, so the iteration
  count is not what protects them.
- ``mosquitto.acl``: node i (user ``name``) may write only ``{prefix}/+/i/+`` (records from i)
  and read only ``{prefix}/+/+/i`` (records to i); every other topic is denied.
- ``<name>.broker-password`` per node (mode 0600): the password the node reads from
  ``node.broker_password_file`` (never inline in the config).
- ``mosquitto.conf``: a listener with ``allow_anonymous false`` and the two files above.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path

ITERATIONS = 101  # Mosquitto's default for $7$ hashes


def mosquitto_hash(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """The password_file hash Mosquitto 2 checks: $7$<iterations>$<salt b64>$<hash b64>."""
    salt = salt if salt is not None else os.urandom(12)
    dk = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(dk).decode()}"


def acl_text(names: list[str], prefix: str = "smpc") -> str:
    lines = ["# smpc: node i publishes only records from i and reads only records to i"]
    for i, name in enumerate(names):
        lines += ["", f"user {name}", f"topic write {prefix}/+/{i}/+", f"topic read {prefix}/+/+/{i}"]
    return "\n".join(lines) + "\n"


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def write_broker_auth(out: str | os.PathLike, names: list[str], *, port: int = 1883,
                      prefix: str = "smpc") -> dict[str, Path]:
    """Write the password file, ACL file, an example mosquitto.conf and one password file
    per node (names[i] is party i's broker user). Returns their paths."""
    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    entries = []
    for name in names:
        pw = secrets.token_urlsafe(32)
        p = outp / f"{name}.broker-password"
        _write_secret(p, pw + "\n")
        paths[name] = p
        entries.append(f"{name}:{mosquitto_hash(pw)}")
    paths["passwd"] = outp / "mosquitto.passwd"
    _write_secret(paths["passwd"], "\n".join(entries) + "\n")
    paths["acl"] = outp / "mosquitto.acl"
    paths["acl"].write_text(acl_text(names, prefix))
    paths["conf"] = outp / "mosquitto.conf"
    paths["conf"].write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npersistence false\n"
        f"password_file {paths['passwd'].resolve()}\nacl_file {paths['acl'].resolve()}\n")
    return paths
