"""`smpc demo`: three banks train a fraud model together without pooling their data.

It creates a temporary consortium (keys, node configs, each bank's share of a synthetic
fraud data set as CSV), starts one `smpc node` process per bank talking over encrypted TCP
on loopback (or MQTT through the broker at 127.0.0.1:1883), and then acts as the analyst:
it signs and submits a logistic-regression training job and a fraud-count aggregate job,
shows progress, reconstructs the outputs sealed to it, and compares the securely trained
model with the same algorithm trained in plaintext on the pooled data (accuracy and AUC on a
held-out test set). Processes and files are cleaned up at the end (--keep keeps the files).

The fraud-count job uses `fraud_aggregate` when the fraud layer is wired into the node
registry, and otherwise `aggregate_sum` over the fraud label and a transaction indicator
(totals over all banks only; the table says which ran).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

FEATURES = ["amount", "velocity", "foreign", "night", "new_device"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--parties", type=int, default=3, help="number of banks (default 3)")
    p.add_argument("--scheme", choices=["additive", "shamir"], default="additive")
    p.add_argument("--transport", choices=["tcp", "mqtt"], default="tcp")
    p.add_argument("--rows", type=int, default=400, help="transactions per bank")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=1, help="seed of the synthetic data")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--preprocessing", choices=["shared_seed_dealer", "secure"],
                   default="shared_seed_dealer",
                   help="shared_seed_dealer (INSECURE, default: the dealer-free sources do not "
                   "yet supply everything training needs) or secure (ot / dn07)")


def synthetic_fraud(n_rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Transactions with 5 features and a fraud label (~10% positives) from a logistic model."""
    X = np.column_stack([
        rng.lognormal(3.5, 1.0, n_rows) / 100.0,       # amount (hundreds)
        rng.poisson(2.0, n_rows).astype(float),         # transactions in the last hour
        rng.binomial(1, 0.15, n_rows).astype(float),    # foreign merchant
        rng.binomial(1, 0.25, n_rows).astype(float),    # at night
        rng.binomial(1, 0.1, n_rows).astype(float),     # new device
    ])
    z = -3.6 + 0.9 * X[:, 0] + 0.45 * X[:, 1] + 1.4 * X[:, 2] + 0.8 * X[:, 3] + 1.6 * X[:, 4]
    y = (rng.random(n_rows) < 1 / (1 + np.exp(-z))).astype(float)
    return X.round(4), y


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    pos, neg = score[y == 1], score[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    allv = np.concatenate([pos, neg])[order]
    i = 0
    while i < len(allv):  # average ranks over ties
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _say(quiet: bool, msg: str) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def _wait_up(api: str, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if proc.poll() is not None:
            raise RuntimeError(f"node exited during startup:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(api + "/status", timeout=1):  # noqa: S310 (loopback)
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"node at {api} did not come up within {timeout:g}s")


def run(args: argparse.Namespace) -> dict:
    from mpc.client import Client
    from mpc.config import write_consortium
    from mpc.jobs import REGISTRY

    quiet = args.json
    rng = np.random.default_rng(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="smpc-demo-"))
    procs: list[subprocess.Popen] = []
    try:
        parts = [synthetic_fraud(args.rows, rng) for _ in range(args.parties)]
        X_test, y_test = synthetic_fraud(2000, rng)
        for i, (X, y) in enumerate(parts):
            rows = [",".join(FEATURES + ["is_fraud", "one"])]
            rows += [",".join(f"{v:g}" for v in (*x, t, 1.0)) for x, t in zip(X, y, strict=True)]
            (tmp / f"bank{i}.csv").write_text("\n".join(rows) + "\n")
        fraud_wired = REGISTRY["fraud_aggregate"].run.__name__ != "_fraud_unwired" and \
            REGISTRY["fraud_aggregate"].available() is None
        info = write_consortium(
            tmp, args.parties, scheme=args.scheme, transport=args.transport,
            consortium_id="demo",
            sources={i: {"transactions": {"kind": "csv", "path": f"bank{i}.csv"}}
                     for i in range(args.parties)},
            computations=["logistic_regression", "aggregate_sum", "fraud_aggregate"],
            timeouts={"connect": 30, "receive": 120, "job": args.timeout},
            preprocessing=None if args.preprocessing == "secure" else args.preprocessing)
        insecure = ["--insecure"] if args.preprocessing != "secure" else []
        if insecure:
            _say(quiet, "WARNING: preprocessing from an INSECURE shared-seed dealer (every node "
                        "can derive every triple): demo only. --preprocessing secure uses "
                        "ot / dn07, which do not yet supply edaBits / GF(2^127-1) bits.")
        _say(quiet, f"consortium of {args.parties} banks in {tmp} ({args.scheme} sharing over "
                    f"{args.transport})")
        for i, cfg in enumerate(info["configs"]):
            log = open(tmp / f"bank{i}.log", "w")  # noqa: SIM115 (closed with the process)
            procs.append(subprocess.Popen([sys.executable, "-m", "mpc.cli", "node", "--config",
                                           str(cfg), *insecure], stdout=log, stderr=subprocess.STDOUT))
        for i, (api, p) in enumerate(zip(info["api"], procs, strict=True)):
            _wait_up(api, p, tmp / f"bank{i}.log")
        _say(quiet, "nodes up: " + ", ".join(info["names"]))
        client = Client(info["api"], key=info["analyst_key"])

        def progress(st: dict) -> None:
            _say(quiet, "  " + "  ".join(f"{b.get('status')}/{b.get('step')}"
                                         for b in st.values()))

        hyper = {"epochs": args.epochs, "batch_size": 64, "lr": 0.5, "shuffle_seed": 0}
        train = {
            "computation": "logistic_regression", "idempotency_key": "demo-train",
            "recipients": ["analyst"], "parameters": hyper,
            "inputs": {n: {"source": "transactions", "columns": FEATURES, "label": "is_fraud"}
                       for n in info["names"]},
        }
        _say(quiet, "submitting logistic_regression (signed by the analyst) ...")
        t0 = time.perf_counter()
        job = client.submit(train)
        res = client.result(job, timeout=args.timeout, progress=progress)
        seconds = time.perf_counter() - t0
        coef = np.asarray(res.outputs["coef"], dtype=float)
        intercept = float(np.asarray(res.outputs["intercept"]).reshape(-1)[0])

        from protocols.ml.reference import fit_sgd_plain

        X_all = np.concatenate([p[0] for p in parts])
        y_all = np.concatenate([p[1] for p in parts])
        pc, pi = fit_sgd_plain(X_all, y_all, loss="logistic", **hyper)
        s_secure = X_test @ coef + intercept
        s_plain = X_test @ np.asarray(pc) + float(pi)
        out = {
            "parties": args.parties, "scheme": args.scheme, "transport": args.transport,
            "rows_per_bank": args.rows, "epochs": args.epochs,
            "preprocessing": args.preprocessing,
            "accuracy_secure": float(np.mean((s_secure > 0) == (y_test == 1))),
            "accuracy_plain": float(np.mean((s_plain > 0) == (y_test == 1))),
            "auc_secure": auc(y_test, s_secure), "auc_plain": auc(y_test, s_plain),
            "max_coef_diff": float(np.max(np.abs(coef - np.asarray(pc)))),
            "seconds": round(seconds, 3),
            "rounds": max(st.get("rounds", 0) for st in res.stats.values()),
            "bytes_per_party": max(st.get("bytes_sent", 0) for st in res.stats.values()),
        }
        _say(quiet, "submitting the fraud-count aggregate ...")
        if fraud_wired:
            agg_name = "fraud_aggregate"
            agg_cols = ["is_fraud"]
        else:
            agg_name = "aggregate_sum"
            agg_cols = ["is_fraud", "one"]
        agg = {"computation": agg_name, "idempotency_key": "demo-aggregate",
               "recipients": ["analyst"],
               "inputs": {n: {"source": "transactions", "columns": agg_cols}
                          for n in info["names"]}}
        ares = client.result(client.submit(agg), timeout=args.timeout, progress=progress)
        sums = np.rint(np.asarray(ares.outputs["sum"])).astype(int).tolist()
        out["aggregate_job"] = agg_name
        out["fraud_cases"] = sums[0]
        out["transactions"] = sums[1] if len(sums) > 1 else int(ares.outputs["count"][0])
        out["fraud_cases_plain"] = int(y_all.sum())
        out["aggregate_rounds"] = max(st.get("rounds", 0) for st in ares.stats.values())
        out["aggregate_bytes_per_party"] = max(st.get("bytes_sent", 0)
                                               for st in ares.stats.values())
        return out
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if args.keep:
            _say(quiet, f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(args: argparse.Namespace) -> int:
    out = run(args)
    if args.json:
        print(json.dumps(out))
        return 0
    print()
    print(f"{out['parties']} banks, {out['scheme']} sharing over {out['transport']}, "
          f"{out['rows_per_bank']} transactions each")
    print(f"{'':28}{'secure':>10}{'plaintext':>12}")
    print(f"{'accuracy (held-out)':28}{out['accuracy_secure']:>10.3f}{out['accuracy_plain']:>12.3f}")
    print(f"{'AUC (held-out)':28}{out['auc_secure']:>10.3f}{out['auc_plain']:>12.3f}")
    print(f"{'training seconds':28}{out['seconds']:>10.2f}")
    print(f"{'rounds':28}{out['rounds']:>10}")
    print(f"{'bytes sent per party':28}{out['bytes_per_party']:>10}")
    print(f"{out['aggregate_job']}: {out['fraud_cases']} fraud cases in "
          f"{out['transactions']} transactions across all banks "
          f"(plaintext check {out['fraud_cases_plain']}; {out['aggregate_rounds']} rounds)")
    return 0
