"""Idle precomputation benchmark of the node daemons (issue 15; not a test): a logistic
regression job over 3 node processes, cold (preprocessing generated during the job) and
then from the store (generated while the nodes were idle).

    python benchmarks/node_precompute.py --rows 10000 --features 10 --epochs 2 --source ot

Runs job A cold (the nodes record its plan), waits until every node has one batch of that
plan ready (`[preprocessing] target = { logistic_regression = 1 }`, idle_after = 1), then
runs job B with the same manifest body and a fresh idempotency key. Prints one JSON line:
per job the wall time (submit -> result reconstructed by the client, which polls every
0.2 s), every node's job seconds and offline_seconds (time spent waiting on the online
preprocessing source), the preprocessing source used and the batch id; the time the idle
precompute took (job A's end -> batch ready) and the batch size on disk per node. Exits 1
unless B drew everything from the store and A and B agree to 0.05 on every coefficient.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _daemons import start_into, stop_nodes  # benchmarks/ is sys.path[0] (run as a script)

from mpc.node.client import Client
from mpc.node.consortium import write_consortium


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000, help="rows in total over 3 banks")
    ap.add_argument("--features", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--source", default="ot", choices=["ot", "rss3", "dn07"],
                    help="dn07: Shamir over GF(2^127 - 1) (scheme = 'shamir')")
    ap.add_argument("--timeout", type=float, default=3600.0)
    args = ap.parse_args(argv)
    n = 3
    d = Path(tempfile.mkdtemp(prefix="smpc-prep-"))
    rng = np.random.default_rng(3)
    X = rng.normal(size=(args.rows, args.features)).round(4)
    w = rng.normal(size=args.features)
    y = (X @ w + rng.normal(scale=0.5, size=args.rows) > 0).astype(int)
    cols = [f"x{j}" for j in range(args.features)]
    for i, idx in enumerate(np.array_split(np.arange(args.rows), n)):
        lines = [",".join([*cols, "y"])] + [",".join([*(f"{v:g}" for v in X[r]), str(y[r])])
                                            for r in idx]
        (d / f"bank{i}.csv").write_text("\n".join(lines) + "\n")
    info = write_consortium(
        d, n, computations=["logistic_regression"], preprocessing=args.source,
        scheme="shamir" if args.source == "dn07" else "additive",
        sources={i: {"tx": {"kind": "csv", "path": f"bank{i}.csv"}} for i in range(n)},
        timeouts={"connect": 60, "receive": 600, "job": args.timeout},
        extra="[preprocessing]\ntarget = { logistic_regression = 1 }\nidle_after = 1\n")
    procs: list = []
    try:
        start_into(procs, info, d)
        c = Client(info["api"], key=info["analyst_key"], consortium=info["consortium"])
        ops = [Client([info["api"][i]], key=info["operator_keys"][i]) for i in range(n)]

        def job(key: str):
            t0 = time.monotonic()
            res = c.result(c.submit({
                "computation": "logistic_regression", "idempotency_key": key,
                "recipients": ["analyst"],
                "parameters": {"epochs": args.epochs, "batch_size": args.batch_size},
                "inputs": {f"bank{i}": {"source": "tx", "columns": cols, "label": "y"}
                           for i in range(n)}}), timeout=args.timeout)
            wall = time.monotonic() - t0
            st = list(res.stats.values())
            return res, {"wall_seconds": round(wall, 2),
                         "job_seconds": [s.get("seconds") for s in st],
                         "offline_seconds": [s.get("offline_seconds") for s in st],
                         "prep_source": sorted({s.get("prep_source") for s in st}),
                         "prep_batch": sorted({str(s.get("prep_batch")) for s in st})}

        load = [os.getloadavg()[0]]
        a, ja = job("cold")
        t0 = time.monotonic()
        while True:
            ready = []
            for i in range(n):
                st = ops[i].request(info["api"][i], "GET", "/status")[1]["preprocessing"]
                ready.append(sum(len(p["ready"]) for p in st["plans"].values()))
            if min(ready) >= 1:
                break
            if time.monotonic() - t0 > args.timeout:
                raise SystemExit("no batch became ready")
            time.sleep(0.5)
        precompute = time.monotonic() - t0
        size = [sum(f.stat().st_size for f in (d / f"bank{i}-state" / "prep").glob("*.prep"))
                for i in range(n)]
        load.append(os.getloadavg()[0])
        b, jb = job("warm")
        load.append(os.getloadavg()[0])
        ok = jb["prep_source"] == ["store"] and all(
            np.allclose(np.asarray(a.outputs[k], float), np.asarray(b.outputs[k], float),
                        atol=0.05) for k in a.outputs)
        print(json.dumps({"bench": "node_precompute", "source": args.source, "rows": args.rows,
                          "features": args.features, "epochs": args.epochs,
                          "batch_size": args.batch_size, "cold": ja, "from_store": jb,
                          "precompute_seconds": round(precompute, 2),
                          "batch_bytes_per_node": size, "load_1min": load, "ok": ok}))
        return 0 if ok else 1
    finally:
        stop_nodes(procs)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
