"""`smpc bench --compare mpyc`: the same workload in MPyC, side by side.

MPyC (https://github.com/lschoe/mpyc, `pip install -e .[compare]`, version 0.11) runs with the
same number of parties as separate OS processes on loopback: this module re-runs itself as an
MPyC program with `-M n -B <free base port>`, so MPyC starts parties 1..n-1 itself (its own
multi-process mode) and this process's child is party 0. Every party writes its timings to a
file; the parent reads them and times each run like `smpc bench` does, from the moment the last
party starts until the last one finishes (time.monotonic is system-wide), median over the
repeats after one warm-up. Before each run the parties synchronise with one opening.

Workloads (the smpc op in brackets), MPyC's defaults otherwise (Shamir over a prime field,
threshold t = (n-1)/2, PRSS for random sharings, plaintext TCP, no preprocessing phase):

* mul [mul]: elementwise product of two secret `SecInt(64)` arrays of `size` elements.
* inner [inner]: inner product of two secret `SecInt(64)` vectors (`x @ y`).
* fixed_mul [fixed_mul]: elementwise product of two `SecFxp(64, 16)` arrays (with MPyC's
  truncation), values in [-100, 100].
* compare [compare]: `x < y` on `SecFxp(64, 16)` arrays, values in [-1000, 1000].
* reciprocal [reciprocal]: `1 / x` on `SecFxp(32, 16)` arrays (MPyC's default type), x in
  [1, 2^10). On `SecFxp(64, 16)` MPyC 0.11 returns wrong values for every element here (0 for
  `1 / x`, values near +-4e28 for `mpc.np_reciprocal`), so the 32-bit type is what it can time.
* logistic_regression [logistic_regression]: SecureML mini-batch SGD in `SecFxp(64, 16)` on
  smpc bench's data, split, batch order, hyperparameters and standardisation (each party
  inputs its local moments), model revealed (see `_logistic`; 1/sd by Newton from a public
  start, as MPyC 0.11 has no secure square root); correct when the accuracy is within 1 pp
  of the float64 reference and the mean and 1/sd are right (`check_stats`).

The inputs are drawn from a public seed (benchmark data only); party 0 secret-shares them
before the timed runs; the last run's result is opened and checked against numpy (exact for
mul, inner and compare, within 2^-14 for fixed_mul, 2^-16 + 10^-3 relative for reciprocal; the inputs
are rounded to multiples of 2^-16 first), and a wrong result is reported as an error with the
number of wrong elements, not as a time.

What differs from smpc's measurement: MPyC has no offline phase (its multiplications reshare
with PRSS in the online round), while smpc's online time excludes the (dealer) preprocessing,
which `offline_seconds` reports; MPyC's channels are plaintext TCP, smpc's are Noise-encrypted.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

#: smpc bench ops with an MPyC counterpart
MPYC_OPS = ("mul", "inner", "fixed_mul", "compare", "reciprocal", "logistic_regression")
#: not bench ops: parts of a workload, checked on their own by the tests
_PART_OPS = ("logistic_stats",)
SEED = 20240601
F = 16


def available() -> bool:
    try:
        import mpyc  # noqa: F401
    except ImportError:
        return False
    return True


def mpyc_version() -> str | None:
    try:
        import mpyc

        return mpyc.__version__
    except ImportError:
        return None


def _free_base_port(n: int) -> int:
    """A base port b with b..b+n-1 free on 127.0.0.1 (checked by binding; a race is
    possible but unlikely and ends in an MPyC connection error, reported as such)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65000:
            continue
        socks = []
        try:
            for i in range(n):
                so = socket.socket()
                socks.append(so)
                so.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for so in socks:
                so.close()
    raise RuntimeError("no free port range for MPyC")


def run_mpyc(op: str, size: int, parties: int, repeat: int = 3, timeout: float = 600.0,
             epochs: int = 1) -> dict:
    """Run one MPyC measurement; returns {seconds, ops_per_s, correct, ...} or {error}.
    `epochs`: logistic_regression only (ops = size * epochs rows, as smpc bench)."""
    if op not in MPYC_OPS + _PART_OPS:
        return {"error": f"no MPyC counterpart for {op}"}
    if not available():
        return {"error": "MPyC not installed (pip install -e .[compare])"}
    with tempfile.TemporaryDirectory(prefix="smpc-mpyc-") as d:
        base = _free_base_port(parties)
        cmd = [sys.executable, os.path.abspath(__file__), "--op", op, "--size", str(size),
               "--repeat", str(repeat), "--epochs", str(epochs), "--result-dir", d, "-M", str(parties), "-B", str(base), "--no-log"]
        env = dict(os.environ, PYTHONPATH="")
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                               cwd=d)
        except subprocess.TimeoutExpired:
            return {"error": f"MPyC run exceeded {timeout:g} s"}
        files = [os.path.join(d, f"party{i}.json") for i in range(parties)]
        deadline = time.monotonic() + (30 if p.returncode == 0 else 0)  # 1..n-1: MPyC's children
        while not all(os.path.exists(f) for f in files) and time.monotonic() < deadline:
            time.sleep(0.05)
        if p.returncode != 0 or not all(os.path.exists(f) for f in files):
            tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
            return {"error": f"MPyC failed (exit {p.returncode}): {' | '.join(tail)}"}
        per = []
        for f in files:
            for _ in range(100):  # written by another process: wait until complete
                try:
                    with open(f) as fh:
                        per.append(json.load(fh))
                    break
                except json.JSONDecodeError:
                    time.sleep(0.05)
    runs = [max(q["runs"][r][1] for q in per) - max(q["runs"][r][0] for q in per)
            for r in range(1, repeat + 1)]
    secs = statistics.median(runs)
    correct = all(q["correct"] for q in per)
    ops = size * epochs if op == "logistic_regression" else size
    out = {
        "engine": f"MPyC {mpyc_version()}",
        "parties": parties,
        "processes": True,
        "network": f"MPyC -M{parties} separate processes, plaintext TCP on localhost",
        "seconds": secs if correct else None,
        "ops_per_s": ops / secs if correct and secs > 0 else None,
        "correct": correct,
        "max_abs_error": per[0].get("max_error"),
        "wrong_elements": per[0].get("wrong"),
        "type": per[0]["type"],
        **per[0].get("extra", {}),
    }
    if not correct:
        out["error"] = (f"MPyC result does not match the plaintext computation "
                        f"({per[0].get('wrong')} of {size} elements)")
    return out


def attach_mpyc(rec: dict, repeat: int = 3, timeout: float = 600.0) -> dict:
    """Add `mpyc` (MPyC's measurement of the same op, size and parties), `ratio_vs_mpyc`
    (smpc ops/s over MPyC ops/s: smpc's online phase only) and `ratio_vs_mpyc_end_to_end`
    (MPyC's seconds over smpc's offline + online seconds) to an `smpc bench` record.
    MPyC has no offline phase (its PRSS randomness is made inside the run), so the end-to-end
    ratio is the fair one for a dealer-free source; with the insecure shared-seed dealer it is
    still the online ratio's lower companion, not a dealer-free result."""
    m = run_mpyc(rec["op"], rec["size"], rec["parties"], repeat=max(1, repeat),
                 epochs=rec.get("epochs", 1), timeout=timeout)
    rec["mpyc"] = m
    if rec.get("ops_per_s") and m.get("ops_per_s"):
        rec["ratio_vs_mpyc"] = rec["ops_per_s"] / m["ops_per_s"]
        total = rec["seconds"] + (rec.get("offline_seconds") or 0.0)
        if total > 0:
            rec["ratio_vs_mpyc_end_to_end"] = m["seconds"] / total
    return rec


# -- the MPyC program (runs as every party; MPyC parses its own flags from argv) ---------------


def _inputs(op: str, size: int):
    import numpy as np

    g = np.random.default_rng(SEED)  # public benchmark data only
    if op in ("mul", "inner"):
        return g.integers(-(2**20), 2**20, size), g.integers(-(2**20), 2**20, size)
    def enc(v):  # exactly representable with F fractional bits, so the check is exact
        return np.rint(v * 2**F) / 2**F

    if op == "fixed_mul":
        return enc(g.uniform(-100, 100, size)), enc(g.uniform(-100, 100, size))
    if op == "compare":
        return enc(g.uniform(-1000, 1000, size)), enc(g.uniform(-1000, 1000, size))
    return enc(g.uniform(1, 2**10, size)), None


def check_result(op: str, X, Y, got) -> tuple[int, float]:
    """(number of wrong elements, largest absolute error) of an MPyC result against numpy
    (pure; exact for mul, inner and compare)."""
    import numpy as np

    got = np.asarray(got, dtype=float)
    if op in ("mul", "inner"):
        want = X * Y if op == "mul" else np.array(int((X.astype(object) * Y.astype(object)).sum()))
        e = np.abs(got - np.asarray(want, dtype=float))
        return int((e != 0).sum()), float(e.max())
    want = {"fixed_mul": lambda: X * Y, "compare": lambda: (X < Y).astype(float),
            "reciprocal": lambda: 1 / X}[op]()
    e = np.abs(got - want)
    bound = {"fixed_mul": 2.0**-14, "compare": 0.0, "reciprocal": 2.0**-F + 1e-3 * np.abs(want)}[op]
    return int((e > bound).sum()), float(e.max())


def _stats(mpc, sec, X):
    """The global mean and 1/sd of X's columns over all parties' rows, as smpc's horizontal
    standardisation (protocols.apps.ml.data.horizontal_stats) computes them: party i inputs
    its local moments sum x / N and sum x^2 / N (float64, then encoded with F bits), their sum
    gives mu and var = E[x^2] - mu^2, and 1/sd = var^-1/2 by Newton's y <- y (3 - var y^2) / 2
    from the public y0 = 2^-4 (MPyC 0.11 has no secure square root; smpc: inv_sqrt + Newton):
    24 steps reach 1/sd for 2^-8 <= var < 768 (convergence needs var y0^2 < 3; from 2^-4 to
    16 the growth is 3/2 per step). Dividing the summed shares by N instead multiplies by
    1/N rounded to 2^-F (at N = 10^4: 7 * 2^-16 = 1.068e-4), which made a variance negative
    and 1/sd diverge."""
    import numpy as np

    from mpc.bench.e2e import _rows_of

    size, d = X.shape
    n = len(mpc.parties)
    own = X[_rows_of(size, n, mpc.pid)]
    local = np.concatenate([own.sum(0) / size, (own * own).sum(0) / size])
    tot = None
    for i in range(n):  # party i inputs its own moments (the others pass placeholders)
        v = mpc.input(sec.array(local if mpc.pid == i else np.zeros(2 * d)), senders=i)
        tot = v if tot is None else tot + v
    mu, ex2 = tot[:d], tot[d:]
    var = ex2 - mu * mu
    istd = sec.array(np.full(d, 2.0**-4))
    for _ in range(24):
        istd = istd * (3 - var * istd * istd) * 0.5
    return mu, istd


def check_stats(X, got) -> tuple[int, float]:
    """(number of wrong values, largest error) of the revealed [mean, 1/sd] of X's columns
    against numpy: a mean is wrong when off by more than 2^-10, a 1/sd when its relative
    error exceeds 2^-8 (pure)."""
    import numpy as np

    d = X.shape[1]
    got = np.asarray(got, dtype=float)
    e_mu = np.abs(got[:d] - X.mean(0))
    e_istd = np.abs(got[d:] * X.std(0) - 1)
    return int((e_mu > 2.0**-10).sum() + (e_istd > 2.0**-8).sum()), float(max(e_mu.max(), e_istd.max()))


async def _logistic_stats(mpc, size: int) -> tuple[list, bool, dict]:
    """The logistic_regression program's standardisation alone (test hook: cheap at sizes
    where the full training takes minutes): [mean, 1/sd] revealed and checked."""
    from mpc.bench.e2e import logistic_data

    sec = mpc.SecFxp(64, F)
    X, _ = logistic_data(size)
    await mpc.output(sec(0))
    t0 = time.monotonic()
    mu, istd = _stats(mpc, sec, X)
    got = await mpc.output(mpc.np_concatenate([mu, istd]))
    runs = [(t0, time.monotonic())] * 2
    bad, err = check_stats(X, got)
    return runs, bad == 0, {"max_error": err, "wrong": bad}


async def _logistic(mpc, size: int, repeat: int, epochs: int) -> tuple[list, bool, dict]:
    """smpc bench's logistic_regression in MPyC SecFxp(64, 16): the same public data (mpc.bench.
    logistic_data), horizontal split (party i inputs its rows), batch order
    (protocols.apps.ml.sgd.batches, shuffle_seed 0), batch 128, lr 0.5, SecureML piecewise sigmoid
    clip(z + 1/2, 0, 1), standardisation with the global mean and 1/sd from the parties' local
    moments (`_stats`: 1/sd by Newton from a public start, as MPyC 0.11 has no secure square
    root), coefficients mapped back to original units and revealed. Correct: accuracy within
    1 pp of the float64 reference (protocols.apps.ml.reference.fit_sgd_plain), and the mean
    and 1/sd (opened after the timed runs) as `check_stats` requires.
    Width: SecFxp(64, 16), smpc's Z_2^64 with f = 16. Enough: the largest value is the
    batch gradient, |Z_B^T e| <= 128 max|Z| < 2^11 (< 2^43 as a 2f-bit product), far inside
    l = 64 and MPyC's 112-bit field; a float64 emulation of this program rounded to 2^-16 at
    every product gives 1/sd within 5e-4 relative and the coefficients within 3e-4 of
    float64 at 10^4 rows x 10 epochs. A wider type would only slow MPyC's comparisons."""
    import numpy as np

    from mpc.bench.e2e import ACCURACY_TOL, LOGREG_HP, _rows_of, logistic_data
    from protocols.apps.ml.reference import fit_sgd_plain
    from protocols.apps.ml.sgd import batches

    sec = mpc.SecFxp(64, F)
    X, y = logistic_data(size)
    n, d = len(mpc.parties), X.shape[1]
    B, lr = LOGREG_HP["batch_size"], LOGREG_HP["lr"]
    sched = batches(size, B, epochs, 0)

    async def train():
        xs, ys = [], []
        for i in range(n):  # party i inputs its own rows (the others pass placeholders)
            idx = _rows_of(size, n, i)
            mine = mpc.pid == i
            xs.append(mpc.input(sec.array(X[idx] if mine else np.zeros((len(idx), d))), senders=i))
            ys.append(mpc.input(sec.array(y[idx].astype(float) if mine else np.zeros(len(idx))), senders=i))
        Xs, ys_ = mpc.np_vstack(xs), mpc.np_concatenate(ys)
        mu, istd = _stats(mpc, sec, X)
        Z = (Xs - mu) * istd
        w, w0 = sec.array(np.zeros(d)), sec.array(np.zeros(1))
        for idx in sched:
            Zb, yb = Z[idx], ys_[idx]
            z = Zb @ w + w0
            p = mpc.np_where(z < -0.5, 0, mpc.np_where(z > 0.5, 1, z + 0.5))
            e = p - yb
            g = mpc.np_transpose(Zb) @ e
            c = lr / len(idx)
            w, w0 = w - g * c, w0 - mpc.np_sum(e) * c
        coef = w * istd
        b = w0 - mpc.np_sum(coef * mu)
        return mpc.np_concatenate([coef, b]), mpc.np_concatenate([mu, istd])

    runs, model, stats = [], None, None
    for _ in range(repeat + 1):
        await mpc.output(sec(0))  # synchronise, as smpc bench's one-element open
        t0 = time.monotonic()
        packed, stats = await train()
        model = np.asarray(await mpc.output(packed), dtype=float)  # revealed, as smpc
        runs.append((t0, time.monotonic()))
    bad_stats, stats_err = check_stats(X, await mpc.output(stats))  # untimed: the check only
    cf, bf = fit_sgd_plain(X, y, loss="logistic", epochs=epochs, **LOGREG_HP)
    acc = float(((X @ model[:-1] + model[-1] > 0) == y).mean())
    facc = float(((X @ cf + bf > 0) == y).mean())
    return runs, abs(acc - facc) <= ACCURACY_TOL and bad_stats == 0, {
        "accuracy": acc, "float_accuracy": facc, "epochs": epochs, "stats_max_error": stats_err,
        "max_coef_diff": float(np.max(np.abs(model - np.append(cf, bf))))}


async def _party(op: str, size: int, repeat: int, out_dir: str, epochs: int = 1) -> None:
    import numpy as np
    from mpyc.runtime import mpc

    await mpc.start()
    if op in ("logistic_regression", "logistic_stats"):
        if op == "logistic_stats":
            runs, correct, checked = await _logistic_stats(mpc, size)
            extra: dict = {}
        else:
            runs, correct, extra = await _logistic(mpc, size, repeat, epochs)
            checked = {"max_error": None, "wrong": None if correct else 1}
        await mpc.shutdown()
        tmp = os.path.join(out_dir, f"party{mpc.pid}.tmp")
        with open(tmp, "w") as fh:
            json.dump({"runs": runs, "correct": correct, **checked, "type": f"SecFxp64:{F}",
                       "extra": extra}, fh)
        os.replace(tmp, os.path.join(out_dir, f"party{mpc.pid}.json"))
        return
    if op in ("mul", "inner"):
        sec = mpc.SecInt(64)
    elif op == "reciprocal":  # SecFxp(64, 16) reciprocals are wrong in MPyC 0.11 (see above)
        sec = mpc.SecFxp(32, F)
    else:
        sec = mpc.SecFxp(64, F)
    X, Y = _inputs(op, size)
    x = mpc.input(sec.array(X), senders=0)
    y = mpc.input(sec.array(Y), senders=0) if Y is not None else None

    def work():
        if op == "mul" or op == "fixed_mul":
            return x * y
        if op == "inner":
            return x @ y
        if op == "compare":
            return x < y
        return 1 / x

    runs, z = [], None
    for _ in range(repeat + 1):
        await mpc.output(sec(0))  # synchronise, as smpc bench's one-element open
        t0 = time.monotonic()
        z = work()
        await mpc.gather(z)  # this party's shares of the result are computed
        runs.append((t0, time.monotonic()))
    got = np.asarray(await mpc.output(z), dtype=float)
    bad, err = check_result(op, X, Y, got)
    correct = bad == 0
    await mpc.shutdown()
    with open(os.path.join(out_dir, f"party{mpc.pid}.tmp"), "w") as fh:
        json.dump({"runs": runs, "correct": correct, "max_error": err, "wrong": bad,
                   "type": f"{type(z).__name__}"}, fh)
    os.replace(os.path.join(out_dir, f"party{mpc.pid}.tmp"), os.path.join(out_dir, f"party{mpc.pid}.json"))


def _main() -> None:
    import argparse
    import asyncio

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]  # no mpc/ shadowing
    from mpyc.runtime import mpc  # parses (and strips) MPyC's own flags

    p = argparse.ArgumentParser()
    p.add_argument("--op", required=True, choices=MPYC_OPS + _PART_OPS)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--result-dir", required=True)
    a = p.parse_args(sys.argv[1:])
    mpc.run(_party(a.op, a.size, a.repeat, a.result_dir, a.epochs))
    del asyncio


if __name__ == "__main__":
    _main()
