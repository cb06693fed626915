"""The `smpc` command line."""

from __future__ import annotations

import argparse
import json
import sys

from network.errors import SmpcError


def _cmd_example(args: argparse.Namespace) -> int:
    import mpc
    from mpc.example import plaintext_total, weighted_sum_job

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


def _cmd_keygen(args: argparse.Namespace) -> int:
    from network.keys import generate_keypair, public_key_text, save_private_key

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
    from mpc.audit import verify

    res = verify(args.log)
    if res.ok:
        print(f"{args.log}: ok, {res.entries} entries, head {res.head}")
        return 0
    print(f"{args.log}: {res.problem} (first bad entry: {res.first_bad})", file=sys.stderr)
    return 1


def _cmd_bench(args: argparse.Namespace) -> int:
    from mpc import bench

    return bench.main(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="smpc", description="secure multi-party computation engine")
    sub = p.add_subparsers(dest="command", required=True)

    ex = sub.add_parser("example", help="run the README example: banks reveal only a weighted total")
    ex.add_argument("--parties", type=int, default=3)
    ex.add_argument("--scheme", choices=["additive", "shamir"], default="additive")
    ex.add_argument("--transport", choices=["memory", "tcp", "mqtt"], default="memory")
    ex.add_argument("--json", action="store_true", help="print one JSON object")
    ex.set_defaults(func=_cmd_example)

    kg = sub.add_parser("keygen", help="create a long-term X25519 key pair for a node")
    kg.add_argument("--out", required=True, help="private key file to write (mode 0600)")
    kg.add_argument("--public-out", help="also write the public key text to this file")
    kg.add_argument("--force", action="store_true", help="overwrite an existing key file")
    kg.set_defaults(func=_cmd_keygen)

    au = sub.add_parser("audit", help="audit log tools")
    ausub = au.add_subparsers(dest="audit_command", required=True)
    av = ausub.add_parser("verify", help="check the hash chain of a node's audit log")
    av.add_argument("log", help="path to the audit log (SQLite)")
    av.set_defaults(func=_cmd_audit_verify)

    try:
        from mpc import bench
    except ImportError:  # the benchmark command is optional until mpc/bench.py lands
        bench = None
    if bench is not None:
        bp = sub.add_parser("bench", help="measure protocols: throughput, rounds, bytes")
        bench.add_arguments(bp)
        bp.set_defaults(func=_cmd_bench)
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
