"""The `smpc` command line."""

from __future__ import annotations

import argparse
import json
import sys

from network.errors import SmpcError


def _cmd_example(args: argparse.Namespace) -> int:
    import mpc
    from mpc.cli.example import plaintext_total, weighted_sum_job

    res = mpc.run_local(args.parties, weighted_sum_job, scheme=args.scheme, transport=args.transport)
    total = res.results[0]
    expected = plaintext_total(args.parties)
    out = {
        "parties": args.parties,
        "scheme": args.scheme,
        "transport": args.transport,
        "revealed_total": total,
        "plaintext_total": expected,
        "correct": total == expected and len(set(res.results)) == 1,
        "seconds": round(res.seconds, 4),
        "rounds": res.stats[0].rounds,
        "bytes_per_party": max(st.bytes_sent for st in res.stats),
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.parties} banks ({args.scheme} sharing, {args.transport} transport)")
        print(f"  revealed total   {total}")
        print(f"  plaintext check  {expected}  ({'ok' if out['correct'] else 'MISMATCH'})")
        print(f"  rounds {out['rounds']}, bytes sent per party <= {out['bytes_per_party']}, "
              f"{out['seconds']} s")
    return 0 if out["correct"] else 1


def _cmd_keygen_tls_client(args: argparse.Namespace) -> int:
    """A client certificate for nodes that require mutual TLS (mpc.node.tlspin): the key
    (PEM, mode 0600), the self-signed certificate, and the config lines to pin it."""
    from pathlib import Path

    from mpc.node.tlspin import make_client_cert

    cert_out = args.cert_out or str(Path(args.out).with_suffix(".crt"))
    if Path(cert_out).resolve() == Path(args.out).resolve():
        raise SmpcError("--cert-out must differ from --out (the private key)")
    pin = make_client_cert(cert_out, args.out, name=args.name, days=args.days,
                           overwrite=args.force)
    owner = '"ed25519:..."   # the analyst\'s or operator\'s signing key (public part)'
    if args.owner:
        from nacl.signing import SigningKey

        from mpc.node.manifest import load_signing_key, verify_key_text

        owner = f'"{verify_key_text(bytes(SigningKey(load_signing_key(args.owner)).verify_key))}"'
    print(f"client key written to {args.out} (mode 0600), certificate to {cert_out}")
    print(f"spki_sha256 {pin}")
    print("give the certificate to each node's operator, who adds to its config:")
    print(f"[[api.client_certs]]\nowner = {owner}\ncert = \"{Path(cert_out).name}\"\n"
          f"spki_sha256 = \"{pin}\"")
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    from network.keys import generate_keypair, public_key_text, save_private_key

    if args.tls_client:
        return _cmd_keygen_tls_client(args)
    private, public = generate_keypair()
    save_private_key(args.out, private, overwrite=args.force)
    text = public_key_text(public)
    if args.public_out:
        with open(args.public_out, "w") as f:
            f.write(text + "\n")
    print(f"private key written to {args.out} (mode 0600); public key:")
    print(text)
    return 0


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    from mpc.node.anchor import verify_with_peers

    keys = None
    if args.config:  # pinned keys: this node's (from its key file) and every peer's
        from mpc.node.config import load_config
        from network.keys import load_private_key, public_key

        cfg = load_config(args.config)
        keys = {p.index: p.public_key for p in cfg.peers}
        keys[cfg.index] = public_key(load_private_key(cfg.key_file))
    res = verify_with_peers(args.log, args.peers or [], keys=keys, anchor=args.anchor)
    if res.ok:
        print(f"{args.log}: ok, {res.entries} entries, head {res.head}"
              + (f", consistent with {len(args.peers)} peer log(s)" if args.peers else ""))
        return 0
    print(f"{args.log}: {res.problem} (first bad entry: {res.first_bad})", file=sys.stderr)
    return 1


def _cmd_budget_show(args: argparse.Namespace) -> int:
    from mpc.node.budget import show
    from mpc.node.config import load_config

    cfg = load_config(args.config)
    if cfg.policy.dp is None:
        print(f"{cfg.name}: policy.dp is not set: aggregates are released without DP noise "
              "and no budget is kept")
        return 0
    print(f"{cfg.name}: privacy budget ({cfg.policy.dp.mechanism}, epsilon per job "
          f"<= {cfg.policy.dp.epsilon:g})")
    print(show(cfg.state_dir, cfg.policy.dp.budget_epsilon, cfg.policy.dp.budget_delta), end="")
    return 0


def _cmd_model_hash(args: argparse.Namespace) -> int:
    from mpc.node.manifest import load_manifest_file
    from mpc.node.policy import model_hash

    body = load_manifest_file(args.manifest)
    body = body.get("manifest", body)
    p = body.get("parameters", {})
    if "coef" not in p:
        print(f"{args.manifest}: parameters.coef missing (no public model)", file=sys.stderr)
        return 1
    print(model_hash(p["coef"], p.get("intercept", 0.0), p.get("threshold", 0.5),
                     p.get("proba", True)))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from mpc.bench import run as bench

    return bench.main(args)


#: what `smpc init` writes into every node's [policy.dp]: epsilon 1 per job, 10 in total per
#: analyst and source (pure-DP discrete Laplace)
DEFAULT_DP = {"epsilon": 1.0, "mechanism": "laplace", "budget_epsilon": 10.0,
              "budget_delta": 1e-6}


def _cmd_init(args: argparse.Namespace) -> int:
    from mpc.node.consortium import write_consortium

    if args.broker_auth and args.transport != "mqtt":
        raise SmpcError("--broker-auth applies to --transport mqtt")
    if args.cipher not in (None, "ChaChaPoly") and args.transport != "tcp":
        raise SmpcError("--cipher AESGCM applies to --transport tcp (the MQTT link runs ChaChaPoly)")
    r = write_consortium(args.out, args.parties, scheme=args.scheme, transport=args.transport,
                         consortium_id=args.id, base_port=args.base_port,
                         broker=args.broker, broker_auth=args.broker_auth, min_group_size=10,
                         dp=None if args.no_dp else DEFAULT_DP, cipher=args.cipher)
    print(f"wrote {args.parties} node configs to {args.out}:")
    for c, api in zip(r["configs"], r["api"], strict=True):
        print(f"  {c}   (api {api})")
    print(f"analyst signing key: {r['analyst_key']} (allowed by every node's policy)")
    if args.broker_auth:
        print(f"broker accounts: {args.out}/mosquitto.passwd and mosquitto.acl (run the broker "
              f"with {args.out}/mosquitto.conf); each node's password in <name>.broker-password")
    print(f"start each node with: smpc node --config {r['configs'][0]}")
    return 0


def _cmd_node(args: argparse.Namespace) -> int:
    from mpc.node.daemon import run_node

    return run_node(args.config, insecure=args.insecure, init=args.init,
                    log_json=args.log_json)


def _nodes_arg(args: argparse.Namespace) -> list[str]:
    nodes = [u for n in args.node or [] for u in n.split(",") if u]
    if args.consortium:
        import pathlib
        import tomllib

        from mpc.node.config import load_config

        for p in sorted(pathlib.Path(args.consortium).glob("*.toml")):
            try:
                is_node = "node" in tomllib.loads(p.read_text())
            except (tomllib.TOMLDecodeError, UnicodeDecodeError):
                is_node = False
            if is_node:  # other TOML files there (manifests) are not node configs
                cfg = load_config(p)
                scheme = "https" if cfg.api.tls_cert is not None else "http"
                host = cfg.api_host if ":" not in cfg.api_host else f"[{cfg.api_host.strip('[]')}]"
                nodes.append(f"{scheme}://{host}:{cfg.api_port}")
    if not nodes:
        raise SmpcError("name the nodes with --node URL (repeatable) or --consortium DIR")
    return nodes


def _tls_args(args: argparse.Namespace) -> dict:
    return {"tls_ca": args.tls_ca, "tls_cert": args.tls_cert, "tls_key": args.tls_key}


def _cmd_submit(args: argparse.Namespace) -> int:
    from mpc.node.client import Client

    c = Client(_nodes_arg(args), key=args.key, **_tls_args(args))
    job = c.submit(args.manifest)
    print(job)
    if args.wait:
        res = c.result(job, timeout=args.timeout)
        print(json.dumps({"job_id": job, "outputs": res.outputs}))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from mpc.node.client import Client

    nodes = _nodes_arg(args)
    c = Client(nodes, key=args.key, **_tls_args(args))  # requests are signed: the analyst's or an operator's key
    if args.job:
        out = c.status(args.job)
    else:
        out = {n: c.request(n, "GET", "/status")[1] for n in nodes}
    print(json.dumps(out, indent=None if args.json else 2))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from mpc.cli import demo

    return demo.main(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="smpc", description="secure multi-party computation engine")
    sub = p.add_subparsers(dest="command", required=True)

    ex = sub.add_parser("example", help="run the README example: banks reveal only a weighted total")
    ex.add_argument("--parties", type=int, default=3)
    ex.add_argument("--scheme", choices=["additive", "shamir"], default="additive")
    ex.add_argument("--transport", choices=["memory", "tcp", "mqtt"], default="memory")
    ex.add_argument("--json", action="store_true", help="print one JSON object")
    ex.set_defaults(func=_cmd_example)

    kg = sub.add_parser("keygen", help="create a long-term X25519 key pair for a node "
                        "(or, with --tls-client, a client certificate for mutual TLS)")
    kg.add_argument("--out", required=True, help="private key file to write (mode 0600)")
    kg.add_argument("--public-out", help="also write the public key text to this file")
    kg.add_argument("--force", action="store_true", help="overwrite an existing key file")
    kg.add_argument("--tls-client", action="store_true",
                    help="write an ECDSA P-256 key (PEM) and a self-signed client certificate "
                    "for nodes that pin client certificates ([[api.client_certs]]); prints "
                    "its spki_sha256 pin")
    kg.add_argument("--cert-out", help="with --tls-client: the certificate file (default: "
                    "--out with the suffix .crt)")
    kg.add_argument("--name", default="smpc-client",
                    help="with --tls-client: the certificate's common name")
    kg.add_argument("--days", type=int, default=365, help="with --tls-client: validity")
    kg.add_argument("--owner", help="with --tls-client: the signing key file of the analyst "
                    "or operator the certificate is for (only to print the config lines)")
    kg.set_defaults(func=_cmd_keygen)

    au = sub.add_parser("audit", help="audit log tools")
    ausub = au.add_subparsers(dest="audit_command", required=True)
    av = ausub.add_parser("verify", help="check a node's audit log: hash chain, signatures, "
                          "its anchor and the heads its peers countersigned")
    av.add_argument("log", help="path to the audit log (SQLite)")
    av.add_argument("--peers", nargs="+", metavar="PEER_LOG",
                    help="the peers' audit logs: every head of LOG they witnessed must be in it")
    av.add_argument("--config", help="the node's config: pins every party's public key")
    av.add_argument("--anchor", help="the anchor file (default: audit.anchor beside LOG)")
    av.set_defaults(func=_cmd_audit_verify)

    try:
        from mpc.bench import run as bench
    except ImportError:  # the benchmark command is optional until mpc/bench/run.py lands
        bench = None
    if bench is not None:
        bp = sub.add_parser("bench", help="measure protocols: throughput, rounds, bytes")
        bench.add_arguments(bp)
        bp.set_defaults(func=_cmd_bench)

    it = sub.add_parser("init", help="write a consortium of N node configs with fresh keys")
    it.add_argument("--parties", type=int, default=3)
    it.add_argument("--out", required=True, help="folder to write keys and configs into")
    it.add_argument("--scheme", choices=["additive", "shamir"], default="additive")
    it.add_argument("--transport", choices=["tcp", "mqtt"], default="tcp")
    it.add_argument("--id", default="demo", help="consortium id")
    it.add_argument("--base-port", type=int, help="peer ports base+i, API ports base+100+i "
                    "(default: free ports)")
    it.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="the MQTT broker URL")
    it.add_argument("--cipher", choices=["ChaChaPoly", "AESGCM"], default=None,
                    help="consortium.cipher: the Noise cipher of the TCP peer links (default "
                         "ChaChaPoly; AESGCM is ~3x faster on CPUs with AES-NI)")
    it.add_argument("--broker-auth", action="store_true",
                    help="with --transport mqtt: write a Mosquitto password/ACL file pair and a "
                    "broker password file per node (node.broker_username/_password_file)")
    it.add_argument("--no-dp", action="store_true",
                    help="no [policy.dp]: aggregates released exactly (not recommended)")
    it.set_defaults(func=_cmd_init)

    bu = sub.add_parser("budget", help="privacy-budget ledger of a node")
    busub = bu.add_subparsers(dest="budget_command", required=True)
    bs = busub.add_parser("show", help="what each (analyst, source) has spent and has left")
    bs.add_argument("--config", required=True, help="the node's TOML config")
    bs.set_defaults(func=_cmd_budget_show)

    po = sub.add_parser("policy", help="policy tools for a privacy officer")
    posub = po.add_subparsers(dest="policy_command", required=True)
    mh = posub.add_parser("model-hash", help="the hash to approve for a manifest's scoring "
                          "model (policy.approved_models)")
    mh.add_argument("manifest", help="job manifest (TOML or JSON) with parameters.coef")
    mh.set_defaults(func=_cmd_model_hash)

    nd = sub.add_parser("node", help="run a bank's node daemon")
    nd.add_argument("--config", required=True, help="the node's TOML config")
    nd.add_argument("--insecure", action="store_true",
                    help="allow insecure options in the config (tests/benchmarks only)")
    nd.add_argument("--init", action="store_true",
                    help="create the audit log if there is none (first start of a new node "
                    "only: a missing log is otherwise an error)")
    nd.add_argument("--log-json", action="store_true",
                    help="log one JSON object per line (time, level, logger, message)")
    nd.set_defaults(func=_cmd_node)

    for name, helptext in (("submit", "sign a job manifest and submit it to every node"),
                           ("status", "show node status, or a job's status on every node")):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("--node", action="append", help="a node's API URL (repeatable); "
                        "each request is signed for the URL's host:port, which must be a name "
                        "the node answers to (its api address, loopback, api.allowed_hosts)")
        sp.add_argument("--consortium", help="a folder of node configs (as written by init)")
        sp.add_argument("--tls-ca", help="CA bundle (or the nodes' certificate) for https://")
        sp.add_argument("--tls-cert", help="client certificate for mutual TLS "
                        "(smpc keygen --tls-client)")
        sp.add_argument("--tls-key", help="its private key file (mode 0600)")
        if name == "submit":
            sp.add_argument("manifest", help="job manifest (TOML or JSON)")
            sp.add_argument("--key", required=True, help="the analyst's signing key file")
            sp.add_argument("--wait", action="store_true", help="wait and print the result")
            sp.add_argument("--timeout", type=float, default=300.0)
            sp.set_defaults(func=_cmd_submit)
        else:
            sp.add_argument("job", nargs="?", help="job id (default: node status)")
            sp.add_argument("--key", required=True, help="signing key file: the analyst's "
                            "(its own jobs) or a bank operator's (every job on that node)")
            sp.add_argument("--json", action="store_true", help="one line of JSON")
            sp.set_defaults(func=_cmd_status)

    try:
        from mpc.cli import demo
    except ImportError:
        demo = None
    if demo is not None:
        dm = sub.add_parser("demo", help="3 bank nodes train a fraud model and count flags")
        demo.add_arguments(dm)
        dm.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (SmpcError, OSError) as e:  # user-facing mistakes: one line, no traceback
        print(f"smpc {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
