"""Load benchmark of the node daemons (not a test): N signed aggregate_sum jobs from A
analysts against 3 node processes on loopback.

    python benchmarks/node_load.py --jobs 100 --analysts 4 --rows 10000

Each analyst is a thread with one job in flight at a time (submit, then wait for the result,
then the next), all analysts at once, so the nodes see concurrent submissions that reach them
in different orders. The rows (10^4 in total, split over the three banks) are the same for
every job; each job has its own idempotency key. Checks: every job completes with the exact
plaintext sum and count, every node ran each job exactly once (its log has one `step compute`
per job id, its /metrics count `done` = N), nothing lost or duplicated. Prints one JSON line:
jobs/minute over the wall time, and p50/p99 of the per-job latency (submit -> result
reconstructed by the client, which polls every 0.2 s), with the machine's load average
(1, 5, 15 min) before and after the run: wall-clock figures mean little without it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from _daemons import start_into, stop_nodes  # benchmarks/ is sys.path[0] (run as a script)

from mpc.node.client import Client
from mpc.node.consortium import write_consortium
from mpc.node.manifest import generate_signing_key, save_signing_key, verify_key_text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--analysts", type=int, default=4)
    ap.add_argument("--rows", type=int, default=10_000, help="rows in total over 3 banks")
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args(argv)
    n = 3
    d = Path(tempfile.mkdtemp(prefix="smpc-load-"))
    rng = np.random.default_rng(1)
    parts = np.array_split(rng.integers(0, 1000, size=args.rows).astype(float), n)
    for i, x in enumerate(parts):
        (d / f"bank{i}.csv").write_text("amount\n" + "\n".join(f"{v:g}" for v in x) + "\n")
    info = write_consortium(
        d, n, computations=["aggregate_sum"],
        sources={i: {"tx": {"kind": "csv", "path": f"bank{i}.csv"}} for i in range(n)},
        timeouts={"connect": 60, "receive": 60, "job": 300},
        api={"max_queue": 256, "rate": 100.0, "burst": 200})
    keys = [Path(info["analyst_key"])]
    extra = []
    for k in range(1, args.analysts):
        seed, vk = generate_signing_key()
        keys.append(d / f"analyst{k}.key")
        save_signing_key(keys[-1], seed)
        extra.append(verify_key_text(vk))
    for p in info["configs"]:
        p.write_text(p.read_text().replace(
            "analyst_keys = [", "analyst_keys = [" + "".join(f'"{x}", ' for x in extra), 1))
    procs: list = []
    try:
        start_into(procs, info, d)
        want_sum = float(sum(x.sum() for x in parts))
        per = [args.jobs // args.analysts + (k < args.jobs % args.analysts)
               for k in range(args.analysts)]
        latencies: list[float] = []
        done: list[str] = []
        errors: list[str] = []
        lock = threading.Lock()

        def analyst(k: int) -> None:
            c = Client(info["api"], key=str(keys[k]), consortium=info["consortium"])
            for j in range(per[k]):
                t0 = time.monotonic()
                try:
                    job = c.submit({"computation": "aggregate_sum",
                                    "idempotency_key": f"load-{k}-{j}",
                                    "recipients": ["analyst"],
                                    "inputs": {f"bank{i}": {"source": "tx",
                                                            "columns": ["amount"]}
                                               for i in range(n)}})
                    res = c.result(job, timeout=args.timeout)
                    ok = (abs(res.outputs["sum"][0] - want_sum) < 1e-3 * max(1, want_sum)
                          and res.outputs["count"] == [args.rows])
                except Exception as e:  # counted and reported
                    with lock:
                        errors.append(f"analyst {k} job {j}: {type(e).__name__}: {e}")
                    continue
                with lock:
                    latencies.append(time.monotonic() - t0)
                    (done if ok else errors).append(job if ok else f"wrong result {job}")

        load_before = [round(x, 2) for x in os.getloadavg()]
        t0 = time.monotonic()
        threads = [threading.Thread(target=analyst, args=(k,)) for k in range(args.analysts)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        load_after = [round(x, 2) for x in os.getloadavg()]
        metrics_done = []  # each node's own count of done jobs (loopback: no signature)
        for api in info["api"]:
            with urllib.request.urlopen(api + "/metrics", timeout=10) as r:  # noqa: S310
                lines = dict(ln.rsplit(" ", 1) for ln in r.read().decode().splitlines()
                             if not ln.startswith("#"))
            metrics_done.append(int(lines['smpc_jobs_total{status="done"}']))
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(10)
        compute = [(d / f"bank{i}.log").read_text().count("step compute") for i in range(n)]
        lat = np.array(latencies)
        out = {
            "bench": "node_load", "nodes": n, "analysts": args.analysts, "jobs": args.jobs,
            "rows": args.rows, "completed": len(done), "distinct": len(set(done)),
            "errors": errors[:5], "computed_per_node": compute, "done_per_node": metrics_done,
            "wall_seconds": round(wall, 2),
            "jobs_per_minute": round(60 * len(done) / wall, 1),
            "latency_p50_s": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
            "latency_p99_s": round(float(np.percentile(lat, 99)), 3) if len(lat) else None,
            "loadavg_before": load_before, "loadavg_after": load_after,
        }
        print(json.dumps(out))
        ok = (len(done) == len(set(done)) == args.jobs and not errors
              and compute == [args.jobs] * n and metrics_done == [args.jobs] * n)
        return 0 if ok else 1
    finally:
        stop_nodes(procs, graceful=False)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
