"""`smpc init`: write a consortium of n nodes (keys, configs, an analyst key, operator keys,
optionally broker accounts) for a demo, a test or a first try."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mpc.node.computations import COMPUTATIONS
from mpc.node.config import NodeConfigError, _parse_broker


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out to outgoing connections (Linux; 32768 elsewhere)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free_port() -> int:
    """A port free now on 127.0.0.1, chosen below the ephemeral range: a port from the
    ephemeral range (what binding port 0 returns) can be given to any outgoing connection
    before the node binds it (a clean-clone CI run lost a daemon to "address already in use"
    that way). Falls back to port 0 when no low port is free."""
    import secrets
    import socket

    low = max(_ephemeral_low(), 10_001)
    for _ in range(64):
        port = 10_000 + secrets.randbelow(low - 10_000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml_str(v: str) -> str:
    return json.dumps(v)  # a JSON string is a valid TOML basic string


def write_consortium(
    out: str | os.PathLike,
    n: int,
    *,
    scheme: str = "additive",
    transport: str = "tcp",
    consortium_id: str = "demo",
    base_port: int | None = None,
    computations: Sequence[str] | None = None,
    sources: dict[int, dict[str, dict]] | None = None,
    timeouts: dict[str, float] | None = None,
    min_group_size: int = 1,
    max_rows: int = 10_000_000,
    extra: str = "",
    preprocessing: str | None = None,
    broker: str = "mqtt://127.0.0.1:1883",
    broker_auth: bool = False,
    dp: dict[str, Any] | None = None,
    api: dict[str, Any] | None = None,
    security: str | None = None,
    cipher: str | None = None,
) -> dict[str, Any]:
    """Write a consortium of n nodes into `out`: per node a key file (0600) and a config
    (bank<i>.toml) with an operator signing key (bank<i>-operator.key, in the node's
    api.operator_keys), plus one analyst signing key (analyst.key) allowed by every policy.
    `api` adds fields to every node's [api] table. `security` ("semi-honest" | "malicious")
    writes consortium.security (absent: the default, semi-honest); `cipher` ("ChaChaPoly" |
    "AESGCM") writes consortium.cipher (absent: the default, ChaChaPoly).
    Ports: base_port + i for peers and base_port + 100 + i for the API (free ports if None).
    With broker_auth, also a Mosquitto password/ACL file pair and one broker password file
    per node (mpc.node.broker_auth), named in each config.
    `dp` (e.g. {"epsilon": 1.0, "budget_epsilon": 10.0}) writes a [policy.dp] table: released
    aggregates then carry DP noise and spend each node's budget.
    Returns {"configs": [...], "analyst_key": path, "api": [...]} for the caller."""
    from mpc.node.manifest import generate_signing_key, save_signing_key, verify_key_text
    from network.keys import generate_keypair, public_key_text, save_private_key

    if n < 2:
        raise NodeConfigError(f"--parties: need at least 2, got {n}")
    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    pairs = [generate_keypair() for _ in range(n)]
    seed, vk = generate_signing_key()
    akey = outp / "analyst.key"
    save_signing_key(akey, seed)
    (outp / "analyst.pub").write_text(verify_key_text(vk) + "\n")
    ports = [base_port + i if base_port else _free_port() for i in range(n)]
    apis = [base_port + 100 + i if base_port else _free_port() for i in range(n)]
    comps = list(computations) if computations is not None else sorted(COMPUTATIONS)
    names = [f"bank{i}" for i in range(n)]
    if broker_auth:  # issue 14: broker accounts and per-node topic ACLs
        from mpc.node.broker_auth import write_broker_auth

        write_broker_auth(outp, names, port=_parse_broker(broker)[1])
    tmo = {"connect": 30, "receive": 60, "job": 600, **(timeouts or {})}
    configs = []
    operators = []
    for i in range(n):
        save_private_key(outp / f"{names[i]}.key", pairs[i][0])
        oseed, ovk = generate_signing_key()
        operators.append(outp / f"{names[i]}-operator.key")
        save_signing_key(operators[-1], oseed)
        lines = [
            "[node]", f"name = {_toml_str(names[i])}", f"index = {i}",
            f"key_file = {_toml_str(names[i] + '.key')}", f'listen = "127.0.0.1:{ports[i]}"',
            f'api = "127.0.0.1:{apis[i]}"', f"state_dir = {_toml_str(names[i] + '-state')}",
            *([f"broker_username = {_toml_str(names[i])}",
               f"broker_password_file = {_toml_str(names[i] + '.broker-password')}"]
              if broker_auth else []), "",
            "[consortium]", f"id = {_toml_str(consortium_id)}", f"scheme = {_toml_str(scheme)}",
            f"transport = {_toml_str(transport)}", f"broker = {_toml_str(broker)}",
            *([f"preprocessing = {_toml_str(preprocessing)}"] if preprocessing else []),
            *([f"security = {_toml_str(security)}"] if security else []),
            *([f"cipher = {_toml_str(cipher)}"] if cipher else []), "",
            "[timeouts]", *(f"{k} = {v}" for k, v in tmo.items()), "",
        ]
        for j in range(n):
            if j != i:
                lines += ["[[peers]]", f"index = {j}", f"name = {_toml_str(names[j])}",
                          f'address = "127.0.0.1:{ports[j]}"',
                          f"public_key = {_toml_str(public_key_text(pairs[j][1]))}", ""]
        for sname, s in (sources or {}).get(i, {}).items():
            lines.append(f"[sources.{sname}]")
            lines += [f"{k} = {_toml_str(str(v))}" for k, v in s.items()]
            lines.append("")
        lines += [
            "[policy]", f"allowed_computations = {json.dumps(comps)}",
            f'allowed_recipients = ["analyst", {", ".join(_toml_str(x) for x in names)}]',
            f"analyst_keys = [{_toml_str(verify_key_text(vk))}]",
            f"min_group_size = {min_group_size}", f"max_rows = {max_rows}", "",
            *(["[policy.dp]", *(f"{k} = {json.dumps(v)}" for k, v in dp.items()), ""]
              if dp else []),
            "[api]", f"operator_keys = [{_toml_str(verify_key_text(ovk))}]",
            *(f"{k} = {json.dumps(v)}" for k, v in (api or {}).items()), "", extra,
        ]
        p = outp / f"{names[i]}.toml"
        p.write_text("\n".join(lines))
        configs.append(p)
        # issue 14: the node's first (empty, signed-chain) audit log, so that `smpc node`
        # starts without --init; a later missing log is an error
        from mpc.node.audit import AuditLog

        state = outp / f"{names[i]}-state"
        state.mkdir(mode=0o700, exist_ok=True)
        if not (state / "audit.db").exists():
            AuditLog.create(state / "audit.db", pairs[i][0], party=i,
                            consortium=consortium_id).close()
    return {"configs": configs, "analyst_key": akey, "operator_keys": operators,
            "consortium": consortium_id,
            "api": [f"http://127.0.0.1:{a}" for a in apis], "names": names}
