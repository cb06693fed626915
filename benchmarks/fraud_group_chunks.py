"""Peak memory of the vertical semi-honest fraud_aggregate with a large group matrix (hard4,
issue 16): `/usr/bin/time -v python benchmarks/fraud_group_chunks.py N K` runs the job's
computation (mpc.node.jobs.REGISTRY["fraud_aggregate"]) for N owner rows and K groups, the
three parties in one process, and prints rounds, chunks, wall and CPU seconds (all parties);
the peak RSS is /usr/bin/time's "Maximum resident set size"."""

import pathlib
import sys
import tempfile
import time

import numpy as np

import mpc
from mpc.node.consortium import write_consortium
from mpc.node.jobs import REGISTRY, JobContext
from mpc.node.manifest import load_signing_key, sign_manifest

N, K = int(sys.argv[1]), int(sys.argv[2])
d = pathlib.Path(tempfile.mkdtemp())
r = write_consortium(d, 3, sources={i: {"tx": {"kind": "csv", "path": "x.csv"}} for i in range(3)})
key = load_signing_key(r["analyst_key"])
groups = list(range(K))
params = {"owner": "bank0", "coef": [1.0, -0.5, 2.0], "intercept": -0.25, "threshold": 0.5,
          "group_column": "merchant", "groups": groups, "k_min": 5}
m = sign_manifest({"computation": "fraud_aggregate", "idempotency_key": "b", "recipients": ["analyst"],
    "parameters": params, "inputs": {"bank0": {"source": "tx", "columns": ["a", "b"]}, "bank1": {"source": "tx", "columns": ["c"]}},
    "consortium": "demo", "not_after": 4102444800}, key)
rng = np.random.default_rng(1)  # benchmark data only
X0, X1 = rng.normal(size=(N, 2)), rng.normal(size=(N, 1))
g = rng.integers(0, K, size=N).astype(float)
parts, extras = [X0, X1, None], [{"merchant": g}, {}, {}]
async def job(s):
    chunks = []
    ctx = JobContext(s, m, ["bank0", "bank1", "bank2"], parts[s.pid], None, extra=extras[s.pid], k_floor=1,
                     log=lambda step, **kw: chunks.append(kw.get("chunks")) if step == "group" else None)
    outs = await REGISTRY["fraud_aggregate"].run(ctx)
    return s.stats.rounds, chunks, outs["counts"].share.shape
t0, c0 = time.time(), time.process_time()
res = mpc.run_local(3, job).results
print({"N": N, "K": K, "rounds": res[0][0], "chunks": res[0][1], "wall_s": round(time.time() - t0, 1), "cpu_s_all_parties": round(time.process_time() - c0, 1)})
