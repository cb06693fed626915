"""`smpc demo`: banks train a fraud model together and count flagged transactions, without
pooling their data.

It creates a temporary consortium (keys, node configs, and each bank's part of the shipped
synthetic fraud data, mpc.datasets.make_fraud, as CSV), starts one `smpc node` process per
bank talking over encrypted TCP on loopback (or MQTT through the broker at 127.0.0.1:1883),
and then acts as the analyst:

1. logistic_regression, vertical partition: every bank holds the same transactions (rows
   aligned by a shared txn_id; each bank writes them in its own order): bank0, the card
   issuer, holds the transaction features and the label, every bank holds how often the
   counterparty was seen there (the cross-bank mule signal). The model is released to the
   analyst only, and compared on held-out transactions with the same algorithm trained in
   float64 on the pooled data (accuracy, AUC).
2. fraud_aggregate on the held-out ("today's") transactions with the released model as a
   public model, which each bank's privacy officer first approves by hash (the demo
   appends `model_hash(...)` to every node's policy.approved_models_file): the number of
   flagged transactions per merchant category, with discrete Laplace noise drawn jointly
   under MPC (every node's [policy.dp], --epsilon per job), released only for categories
   with at least k transactions and at least k flagged ones (k = max(--k-min, every bank's
   policy.min_group_size), decided on the noisy values); shown next to the plaintext count,
   with the noise's standard deviation and the privacy budget left at each bank.

With `--transport mqtt` the demo starts its own Mosquitto (when the `mosquitto` binary is
found) on a free loopback port, with the broker accounts and per-node topic ACLs that
`smpc init --transport mqtt --broker-auth` writes (mpc.node.broker_auth: no anonymous
clients; node i publishes only records from i and reads only records to i). Without the
binary, or with `--broker URL`, it uses that broker (default 127.0.0.1:1883) without accounts
and says so: records stay end-to-end authenticated and encrypted, but any broker client can
publish on the jobs' topics (dropped and counted by the nodes).

Preprocessing is dealer-free by default (OT for additive sharing, DN07 for Shamir);
`--preprocessing shared_seed_dealer` is the explicit insecure option (every node can derive
every triple; the nodes run with --insecure and the output says so). Processes and files
are cleaned up at the end (--keep keeps the files).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from mpc.cli.datasets import CATEGORIES, TXN_FEATURES, make_fraud
from mpc.node.consortium import _free_port

SECURE = {"additive": "ot", "shamir": "dn07"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--parties", type=int, default=3, help="number of banks (default 3)")
    p.add_argument("--scheme", choices=["additive", "shamir"], default="additive")
    p.add_argument("--transport", choices=["tcp", "mqtt"], default="tcp")
    p.add_argument("--broker", help="with --transport mqtt: use this broker (mqtt://host:port) "
                   "without broker accounts, instead of starting a private mosquitto with "
                   "accounts and topic ACLs")
    p.add_argument("--rows", type=int, default=2000, help="training transactions (default 2000)")
    p.add_argument("--score-rows", type=int, default=1500,
                   help="held-out transactions scored and counted (default 1500)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threshold", type=float, default=0.4,
                   help="flag a transaction for review when the model's probability exceeds "
                   "this (default 0.4: with 2%% fraud, on the demo data it flags ~8%% of "
                   "transactions and catches ~94%% of the frauds; at 0.5 the model flags "
                   "almost none and every category is suppressed)")
    p.add_argument("--k-min", type=int, default=5,
                   help="release a category's count only if it has at least this many "
                   "transactions and this many flagged ones (default 5)")
    p.add_argument("--epsilon", type=float, default=1.0,
                   help="differential privacy of the released counts, per job (default 1; "
                   "each bank's total budget is 10x this)")
    p.add_argument("--seed", type=int, default=1, help="seed of the synthetic data")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--preprocessing", choices=["secure", "rss3", "shared_seed_dealer"],
                   default="secure",
                   help="secure (default: dealer-free against any number of corrupt banks, ot "
                   "for additive / dn07 for shamir), rss3 (dealer-free, additive, exactly 3 "
                   "banks, secure while at most one of them is corrupt: much faster) or "
                   "shared_seed_dealer (INSECURE: every node can derive every triple)")


def write_bank_data(folder: Path, data, train: np.ndarray, test: np.ndarray,
                    rng: np.random.Generator) -> None:
    """bank<b>_train.csv / bank<b>_today.csv: bank b's columns of the vertical split, with a
    shared txn_id, each bank in its own row order (the nodes align rows by txn_id)."""
    n = data.n_banks
    for b in range(n):
        if b == 0:
            head = ["txn_id", *TXN_FEATURES, "cp_seen_0", "is_fraud", "merchant"]
            cols = np.column_stack([data.X_txn, data.cp_seen[:, 0], data.y, data.merchant])
        else:
            head = ["txn_id", f"cp_seen_{b}"]
            cols = data.cp_seen[:, b:b + 1]
        for name, rows in (("train", train), ("today", test)):
            order = rng.permutation(rows)
            lines = [",".join(head)]
            lines += [f"{i}," + ",".join(f"{v:.10g}" for v in cols[i]) for i in order]
            (folder / f"bank{b}_{name}.csv").write_text("\n".join(lines) + "\n")


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
            with urllib.request.urlopen(api + "/health", timeout=1):  # noqa: S310 (loopback)
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"node at {api} did not come up within {timeout:g}s")


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
        None)


def start_private_broker(binary: str, folder: Path, timeout: float = 10.0) -> subprocess.Popen:
    """Run mosquitto with the mosquitto.conf that write_broker_auth put in `folder` (its
    password and ACL files); returns once its port accepts connections."""
    conf = folder / "mosquitto.conf"
    text = conf.read_text()
    if os.geteuid() == 0:  # as root mosquitto drops to its own user, which could not read
        conf.write_text(text + "user root\n")  # our 0600 password file
    port = int(text.split("\n", 1)[0].split()[1])  # "listener <port> 127.0.0.1"
    log = open(folder / "mosquitto.log", "w")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited: {(folder / 'mosquitto.log').read_text()[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"mosquitto did not listen on 127.0.0.1:{port} within {timeout:g}s")


def _peak(stats: dict, key: str) -> int:
    return max((st.get(key, 0) for st in stats.values()), default=0)


def run(args: argparse.Namespace) -> dict:
    from mpc.node.client import Client
    from mpc.node.consortium import write_consortium
    from protocols.apps.ml.reference import fit_sgd_plain

    quiet = args.json
    n = args.parties
    if n < 2:
        raise SystemExit("smpc demo: --parties must be at least 2")
    prep = SECURE[args.scheme] if args.preprocessing == "secure" else args.preprocessing
    if prep == "rss3" and (n != 3 or args.scheme != "additive"):
        raise SystemExit("smpc demo: --preprocessing rss3 needs --parties 3 and --scheme additive")
    rng = np.random.default_rng(args.seed)
    data = make_fraud(args.rows + args.score_rows, n_banks=n, seed=args.seed)
    train = np.arange(args.rows)
    test = np.arange(args.rows, args.rows + args.score_rows)
    tmp = Path(tempfile.mkdtemp(prefix="smpc-demo-"))
    procs: list[subprocess.Popen] = []
    broker_proc = None
    broker, broker_auth = "mqtt://127.0.0.1:1883", False
    binary = mosquitto_binary() if args.transport == "mqtt" and not args.broker else None
    if args.broker:
        broker = args.broker
    elif binary is not None:
        broker, broker_auth = f"mqtt://127.0.0.1:{_free_port()}", True
    try:
        write_bank_data(tmp, data, train, test, rng)
        info = write_consortium(
            tmp, n, scheme=args.scheme, transport=args.transport, consortium_id="demo",
            broker=broker, broker_auth=broker_auth,
            sources={b: {s: {"kind": "csv", "path": f"bank{b}_{s}.csv"}
                         for s in ("train", "today")} for b in range(n)},
            computations=["logistic_regression", "fraud_aggregate"],
            timeouts={"connect": 30, "receive": 120, "job": args.timeout}, preprocessing=prep,
            dp={"epsilon": args.epsilon, "mechanism": "laplace",
                "budget_epsilon": 10 * args.epsilon, "budget_delta": 1e-6})
        for cfg in info["configs"]:  # each officer approves scoring models in this file
            cfg.write_text(cfg.read_text().replace(
                "[policy]\n", '[policy]\napproved_models_file = "approved-models-'
                f'{cfg.stem}.txt"\n', 1))
        insecure = ["--insecure"] if prep == "shared_seed_dealer" else []
        if insecure:
            _say(False, "WARNING: preprocessing from an INSECURE shared-seed dealer: every node "
                        "can derive every triple, so the nodes could decrypt each other's "
                        "inputs. Demo/benchmark only; drop --preprocessing for the dealer-free "
                        "default.")
        _say(quiet, f"consortium of {n} banks in {tmp} ({args.scheme} sharing over "
                    f"{args.transport}, preprocessing {prep})")
        if args.transport == "mqtt":
            if broker_auth:
                broker_proc = start_private_broker(binary, tmp)
                _say(quiet, f"private mosquitto at {broker} with broker accounts and per-node "
                            "topic ACLs (no anonymous clients; smpc init --broker-auth files)")
            else:
                why = ("--broker was given" if args.broker else
                       "no mosquitto binary was found to start a private one")
                _say(False, f"NOTE: using the MQTT broker at {broker} WITHOUT broker accounts "
                            f"or topic ACLs ({why}): records are still end-to-end encrypted "
                            "and authenticated, but any client of that broker can publish on "
                            "the jobs' topics (the nodes drop and count such records).")
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

        def inputs(source: str, label: bool) -> dict:
            out = {"bank0": {"source": source, "columns": [*TXN_FEATURES, "cp_seen_0"]}}
            if label:
                out["bank0"]["label"] = "is_fraud"
            for b in range(1, n):
                out[f"bank{b}"] = {"source": source, "columns": [f"cp_seen_{b}"]}
            return out

        hyper = {"epochs": args.epochs, "batch_size": 128, "lr": 0.5, "shuffle_seed": 0}
        train_m = {
            "computation": "logistic_regression", "idempotency_key": "demo-train",
            "recipients": ["analyst"],
            "parameters": {**hyper, "partition": "vertical", "id_column": "txn_id"},
            "inputs": inputs("train", True),
        }
        _say(quiet, f"[1/2] logistic_regression on {args.rows} transactions, features split "
                    f"across {n} banks (signed by the analyst) ...")
        t0 = time.perf_counter()
        res = client.result(client.submit(train_m), timeout=args.timeout, progress=progress)
        seconds = time.perf_counter() - t0
        coef = np.asarray(res.outputs["coef"], dtype=float)
        intercept = float(np.asarray(res.outputs["intercept"]).reshape(-1)[0])

        X = data.vertical_columns()
        pc, pi = fit_sgd_plain(X[train], data.y[train], loss="logistic", **hyper)
        X_test, y_test = X[test], data.y[test]
        s_secure = X_test @ coef + intercept
        s_plain = X_test @ np.asarray(pc) + float(pi)
        out = {
            "parties": n, "scheme": args.scheme, "transport": args.transport,
            **({"broker": broker, "broker_auth": broker_auth} if args.transport == "mqtt"
               else {}),
            "preprocessing": prep, "secure_preprocessing": not insecure,
            "rows": args.rows, "score_rows": args.score_rows, "epochs": args.epochs,
            "accuracy_secure": float(np.mean((s_secure > 0) == (y_test == 1))),
            "accuracy_plain": float(np.mean((s_plain > 0) == (y_test == 1))),
            "auc_secure": auc(y_test, s_secure), "auc_plain": auc(y_test, s_plain),
            "max_coef_diff": float(np.max(np.abs(coef - np.asarray(pc)))),
            "seconds": round(seconds, 3),
            "rounds": _peak(res.stats, "rounds"),
            "bytes_per_party": _peak(res.stats, "bytes_sent"),
        }

        from mpc.node.policy import model_hash

        h = model_hash(coef.tolist(), intercept, args.threshold, True)
        for b in range(n):  # the officers review the released model and approve it
            (tmp / f"approved-models-bank{b}.txt").write_text(h + "\n")
        _say(quiet, f"each bank's privacy officer approves the model (hash {h[:16]}...)")
        groups = list(range(len(CATEGORIES)))
        agg_m = {
            "computation": "fraud_aggregate", "idempotency_key": "demo-aggregate",
            "recipients": ["analyst"],
            "parameters": {"owner": "bank0", "coef": coef.tolist(), "intercept": intercept,
                           "threshold": args.threshold, "group_column": "merchant",
                           "groups": groups, "k_min": args.k_min, "id_column": "txn_id"},
            "inputs": inputs("today", False),
        }
        _say(quiet, f"[2/2] fraud_aggregate: flagged transactions per merchant category among "
                    f"{args.score_rows} new ones (p > {args.threshold:g}, k >= {args.k_min}, "
                    f"epsilon {args.epsilon:g}) ...")
        t0 = time.perf_counter()
        ares = client.result(client.submit(agg_m), timeout=args.timeout, progress=progress)
        a_seconds = time.perf_counter() - t0
        z = X_test @ coef + intercept
        flags = z > np.log(args.threshold / (1 - args.threshold))
        m_test = data.merchant[test]
        sizes = {g: int((m_test == g).sum()) for g in groups}
        k_used = args.k_min  # every demo node has policy.min_group_size 1
        plain = {CATEGORIES[g][0]: int(flags[m_test == g].sum()) for g in groups}
        secure = {CATEGORIES[int(g)][0]: v for g, v in ares.outputs["by_group"].items()}
        std = float(ares.outputs["noise_std"][0])
        out["aggregate"] = {
            "k": k_used, "threshold": args.threshold, "by_group": secure,
            "group_sizes": {CATEGORIES[g][0]: sizes[g] for g in groups},
            "plain": plain, "epsilon": float(ares.outputs["epsilon"][0]), "noise_std": std,
            "plain_flagged": int(flags.sum()), "frauds": int(data.y[test].sum()),
            "frauds_flagged": int((flags & (data.y[test] == 1)).sum()),
            "budget_left": _budget_left(tmp, n, 10 * args.epsilon),
            "within_noise": all(v is None or abs(v - plain[g]) <= 8 * std + 0.5
                                for g, v in secure.items()),
            "seconds": round(a_seconds, 3), "rounds": _peak(ares.stats, "rounds"),
            "bytes_per_party": _peak(ares.stats, "bytes_sent"),
        }
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
        if broker_proc is not None:  # after the nodes: they leave the broker cleanly
            broker_proc.terminate()
            try:
                broker_proc.wait(5)
            except subprocess.TimeoutExpired:
                broker_proc.kill()
                broker_proc.wait(5)
        if args.keep:
            _say(quiet, f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _budget_left(folder: Path, n: int, budget: float) -> dict[str, float]:
    """Epsilon left per bank for this analyst on today's source (the ledger in its state)."""
    from mpc.node.budget import BudgetLedger, epsilon_used

    left = {}
    for b in range(n):
        led = BudgetLedger(folder / f"bank{b}-state" / "budget.db")
        try:
            spent = [sp for _, src, sp in led.summary() if src == "today"]
            used = epsilon_used(spent[0], 1e-6) if spent else 0.0
        finally:
            led.close()
        left[f"bank{b}"] = round(max(0.0, budget - used), 6)
    return left


def main(args: argparse.Namespace) -> int:
    out = run(args)
    if args.json:
        print(json.dumps(out))
        return 0
    a = out["aggregate"]
    print()
    print(f"{out['parties']} banks, {out['scheme']} sharing over {out['transport']}, "
          f"features split across banks (vertical), {out['rows']} training transactions")
    if out["secure_preprocessing"]:
        print(f"preprocessing: {out['preprocessing']} (dealer-free"
              + (", honest majority: secure while at most one bank is corrupt)"
                 if out["preprocessing"] == "rss3" else ")"))
    else:
        print(f"preprocessing: {out['preprocessing']}  !!! INSECURE: every node can derive "
              "every triple; demo only !!!")
    if "broker" in out:
        print(f"broker: {out['broker']} " + ("(private, broker accounts and per-node topic ACLs)"
                                             if out["broker_auth"] else
                                             "(WITHOUT broker accounts or topic ACLs)"))
    print()
    print(f"{'logistic regression':30}{'secure':>10}{'plaintext':>12}")
    print(f"{'accuracy (held-out)':30}{out['accuracy_secure']:>10.3f}{out['accuracy_plain']:>12.3f}")
    print(f"{'AUC (held-out)':30}{out['auc_secure']:>10.3f}{out['auc_plain']:>12.3f}")
    print(f"{'seconds':30}{out['seconds']:>10.2f}")
    print(f"{'rounds':30}{out['rounds']:>10}")
    print(f"{'bytes sent per party':30}{out['bytes_per_party']:>10}")
    print()
    print(f"fraud_aggregate: flagged (p > {a['threshold']:g}) among {out['score_rows']} new "
          f"transactions, released for categories with >= {a['k']} transactions and >= "
          f"{a['k']} flagged (decided on the noisy values)")
    print(f"differential privacy: epsilon {a['epsilon']:g} for this release; each count has "
          f"discrete Laplace noise drawn under MPC, standard deviation {a['noise_std']:.2f}")
    print(f"{'merchant category':20}{'transactions':>14}{'flagged+noise':>15}{'plaintext':>11}")
    for name, v in a["by_group"].items():
        shown = "suppressed" if v is None else str(v)
        print(f"{name:20}{a['group_sizes'][name]:>14}{shown:>15}{a['plain'][name]:>11}")
    if "plain_flagged" in a:
        print(f"(plaintext check: the model flags {a['plain_flagged']} of {out['score_rows']} "
              f"transactions, {a['frauds_flagged']} of the {a['frauds']} frauds among them)")
    if all(v is None for v in a["by_group"].values()):
        print(f"every category is suppressed: none reached {a['k']} flagged transactions "
              "(a higher threshold flags fewer; try --threshold 0.4 or more --score-rows)")
    print(f"{'seconds':20}{a['seconds']:>14.2f}   rounds {a['rounds']}, bytes sent per party "
          f"{a['bytes_per_party']}; released counts "
          f"{'within' if a['within_noise'] else 'OUTSIDE'} 8 noise standard deviations")
    print("privacy budget left for this analyst (epsilon): " + ", ".join(
        f"{b} {v:g}" for b, v in a["budget_left"].items()))
    return 0
