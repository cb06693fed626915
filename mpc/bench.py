"""`smpc bench`: time a protocol, count its rounds and bytes, check its result.

One measurement = one (op, size) pair run by `parties` parties: the inputs are shared once,
then `repeat + 1` timed runs (the first is a warm-up and is discarded). Before each timed run
every party fetches the run's preprocessing (timed separately: `offline_seconds`) and the
parties synchronise with a one-element open. A run's time is from the moment the last party
starts until the last one finishes (a one-open barrier leaves up to one latency of skew
between parties, which a per-party timer would count as protocol time; time.monotonic is
system-wide, so this also holds across processes); `seconds` is the median over the repeats. Rounds and bytes are
exact counts from the `Stats` of the online run (the largest over the parties), printed next
to the cost model's prediction (`COST_MODEL`, the docstrings' Rounds and Bytes lines); a
difference sets `cost_model_ok: false`. The last run's output is opened and checked against
the plaintext result computed from the same (public, benchmark-only) inputs; a wrong result
is reported as an error with no time, never as a fast time.

Transports: "memory" in one process (optionally with simulated `latency` and `bandwidth`
per link, see network/memory.py); "tcp" (Noise KK over loopback) and "mqtt" (through the
broker at 127.0.0.1:1883), either all parties in one process or, with `processes=True`, each
party in its own OS process (mpc/processes.py; preprocessing then comes from the INSECURE
shared-seed dealer, fine for timing, never for data). The `network` field says which.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from protocols.errors import ConfigError

#: matmul --size k multiplies (k, MATMUL_D) @ (MATMUL_D, MATMUL_M)
MATMUL_D, MATMUL_M = 10, 10
#: truncate: fixed-point fractional bits and input magnitude
TRUNC_F, TRUNC_BITS = 16, 40
#: the plaintext inputs are drawn from this public seed in every party (benchmarks only)
PUBLIC_SEED = 20240601
#: logistic_regression: features, public hyperparameters (issue 6's workload) and default epochs
LOGREG_D = 10
LOGREG_HP = {"batch_size": 128, "lr": 0.5}
LOGREG_EPOCHS = 2
#: logistic_regression: secure accuracy must be within this of the float64 reference's
ACCURACY_TOL = 0.01
#: fraud_score: flag a transaction when the public model's probability exceeds this
FRAUD_THRESHOLD = 0.5
#: the end-to-end jobs (whole protocols.ml / protocols.fraud calls, not one primitive)
E2E_OPS = ("logistic_regression", "fraud_score")


@dataclass(frozen=True)
class Cost:
    rounds: int
    bytes_per_party: int


def _cost_mul(N, n, e, field=False):
    return Cost(1, 2 * (n - 1) * N * e)  # beaver.mul: d and e opened in one batch


def _cost_matmul(k, n, e, field=False):
    return Cost(1, (n - 1) * (k * MATMUL_D + MATMUL_D * MATMUL_M) * e)  # beaver.matmul


def _cost_inner(N, n, e, field=False):
    return Cost(1, 2 * (n - 1) * N * e)  # beaver.matmul (1 x N) @ (N,): (n-1)(N + N)e


def _cost_open(N, n, e, field=False):
    return Cost(1, (n - 1) * N * e)  # core.open


def _cost_input(N, n, e, field=False):
    return Cost(1, (n - 1) * (8 * 1 + N * e))  # core.input: owner sends shape + shares


def _cost_triples(N, n, e, field=False):
    return Cost(0, 0)  # dealer-generated: no communication


def _cost_truncate(N, n, e, field=False):
    return Cost(1, (n - 1) * N * e)  # truncation.trunc "msb": one open


def _ltz(N, n, e, field):
    """comparison.ltz: Z_2^64 3 rounds, (n-1)*N*40 bytes with ltz_tuples (the trusted
    dealer); 8 rounds, (n-1)*N*152 bytes from edaBits (field == "edabits": dealer-free
    sources); GF(p) (l = 64) 7 rounds, (n-1)*N*251*e bytes (comparison's cost table)."""
    if field == "edabits":
        return Cost(8, (n - 1) * N * 152)
    return Cost(7, (n - 1) * N * 251 * e) if field else Cost(3, (n - 1) * N * 40)


def _cost_compare(N, n, e, field=False):
    return _ltz(N, n, e, field)  # comparison.lt = ltz(x - y)


def _cost_fixed_mul(N, n, e, field=False):
    return Cost(2, 3 * (n - 1) * N * e)  # fixed.mul: Beaver opening + truncation opening


def _cost_sigmoid_piecewise(N, n, e, field=False):
    if not field:  # clip = one ltz_mul on 2N elements: the products ride in its last round
        return Cost(3, (n - 1) * 2 * N * 48)
    c = _ltz(2 * N, n, e, field)  # clip: both comparisons in one batch, then one product
    return Cost(c.rounds + 1, c.bytes_per_party + 4 * (n - 1) * N * e)


def _cost_sigmoid(N, n, e, field=False):
    # nonlinear.sigmoid: 3 comparisons in one batch; then 31 rounds of products: one exact
    # product (2 units of (n-1)*N*e), the degree-6 polynomial (5 fixed products = 15, its
    # truncation 1), 4 squarings (8), mul_public (1), 3 Newton steps (18), trunc (1) and the
    # final product (2): 48 units.  Rounds 39 (Z_2^64) / 38 (GF(p)) as documented.
    c = _ltz(3 * N, n, e, field)
    return Cost(c.rounds + 31, c.bytes_per_party + 48 * (n - 1) * N * e)


def _cost_reciprocal(N, n, e, field=False):
    # nonlinear.reciprocal: 25 comparisons (every power of two of [2^-8, 2^16]) in one batch;
    # then the clipping product (4 units), x*M and its truncation (3), mul_public (1),
    # 3 Newton steps (18), w*M and its truncation (3): 29 units; rounds ltz + 18 (26 / 25).
    c = _ltz(25 * N, n, e, field)
    return Cost(c.rounds + 18, c.bytes_per_party + 29 * (n - 1) * N * e)


def _cost_not_modelled(N, n, e, field=False):
    """End-to-end jobs: protocols.ml documents the rounds of one SGD iteration but only "about
    40" for the secure standardisation before it, and protocols.fraud's Rounds line is not
    exact either; no prediction is made (never one fitted to the measurement)."""
    return None


#: op -> (size, parties, element bytes) -> predicted Cost (None: not modelled); the
#: protocols' documented costs
COST_MODEL: dict[str, Callable[[int, int, int], Cost | None]] = {
    "mul": _cost_mul,
    "matmul": _cost_matmul,
    "inner": _cost_inner,
    "open": _cost_open,
    "input": _cost_input,
    "triples": _cost_triples,
    "truncate": _cost_truncate,
    "fixed_mul": _cost_fixed_mul,
    "compare": _cost_compare,
    "sigmoid_piecewise": _cost_sigmoid_piecewise,
    "sigmoid": _cost_sigmoid,
    "reciprocal": _cost_reciprocal,
    "logistic_regression": _cost_not_modelled,
    "fraud_score": _cost_not_modelled,
}

#: ops on fixed-point values: over Shamir they run on GF(2^127 - 1) (GF(2^61 - 1) leaves
#: too few bits for fixed point, see protocols/truncation.py)
FIXED_OPS = ("fixed_mul", "compare", "sigmoid_piecewise", "sigmoid", "reciprocal")
#: fixed-point fractional bits of the fixed-point ops (protocols.arith.fixedpoint.DEFAULT_F)
FIX_F = 16
#: the documented maximum absolute error of each fixed-point op's decoded result, as a
#: function of the (decoded) input x: fixed.mul 2^-f; sigmoid 2^-f + 1e-4 on all of R;
#: reciprocal 2e-5/x + 2^-f on [2^-8, 2^16); compare and sigmoid_piecewise are exact
ERROR_BOUND = {
    "fixed_mul": lambda x: 2.0**-FIX_F,
    "sigmoid": lambda x: 2.0**-FIX_F + 1e-4,
    "reciprocal": lambda x: 2e-5 / x + 2.0**-FIX_F,
    "sigmoid_piecewise": lambda x: 0.0,
    "compare": lambda x: 0.0,
}
#: the public input intervals the fixed-point ops are measured on
INPUT_RANGE = {
    "fixed_mul": (-100.0, 100.0),  # |x*y| <= 10^4, inside the 2^30 product range
    "compare": (-1000.0, 1000.0),
    "sigmoid_piecewise": (-2.0, 2.0),  # both clipped ends and the linear middle
    "sigmoid": (-20.0, 20.0),  # includes the clipped |x| > 16
    "reciprocal": (2.0**-8, 2.0**16),  # log-uniform
}

#: what "size" and one "op" mean for each workload (ops_per_s = ops / seconds)
OP_DOC = {
    "mul": "Beaver mul of two shared vectors of `size` elements; ops = size",
    "matmul": f"(size x {MATMUL_D}) @ ({MATMUL_D} x {MATMUL_M}) shared matrices; "
    f"ops = size*{MATMUL_D * MATMUL_M} multiplications",
    "inner": "inner product of two shared vectors of `size` elements (one matmul "
    "opening); ops = size multiply-adds",
    "open": "open one shared vector of `size` elements to all; ops = size",
    "input": "party 0 secret-shares a vector of `size` elements; ops = size",
    "triples": "fetch `size` Beaver triples from the --source (offline phase); ops = size",
    "truncate": f"probabilistic truncation by 2^{TRUNC_F} (Z_2^64, additive); ops = size",
    "fixed_mul": "fixed-point product (f = 16) of two shared vectors, truncated; ops = size",
    "compare": "secret x < secret y (comparison.lt) on fixed-point vectors; ops = size",
    "sigmoid_piecewise": "SecureML piecewise-linear sigmoid clip(x + 1/2, 0, 1); ops = size",
    "sigmoid": "smooth sigmoid (exp + Newton reciprocal), error <= 2^-16 + 1e-4; ops = size",
    "reciprocal": "1/x on [2^-8, 2^16) (normalisation + Newton), rel. error 2e-5; ops = size",
    "logistic_regression": f"protocols.ml.train('logistic') on `size` rows x {LOGREG_D} features "
    "(public seed, split horizontally), batch 128, lr 0.5, --epochs, then reveal; correct = "
    "accuracy within 1 pp of the float64 reference; ops = size*epochs rows; end-to-end jobs "
    "are not modelled (predicted_* and cost_model_ok null)",
    "fraud_score": "protocols.fraud.score of `size` make_fraud transactions split vertically, "
    f"public model, flags (p > {FRAUD_THRESHOLD}) and smooth-sigmoid scores to bank 0; correct "
    "= flags equal to plaintext, scores within 2^-16 + 1e-4; ops = size; not modelled",
}
OPS = tuple(COST_MODEL)
#: the single protocols (their cost model is exact)
PRIMITIVE_OPS = tuple(o for o in OPS if o not in E2E_OPS)


def _ops(op: str, size: int, epochs: int = LOGREG_EPOCHS) -> int:
    if op == "logistic_regression":
        return size * epochs
    return size * MATMUL_D * MATMUL_M if op == "matmul" else size


# -- the end-to-end workloads (public benchmark data, the same in every party) ---------------


def logistic_data(N: int, d: int = LOGREG_D) -> tuple[np.ndarray, np.ndarray]:
    """make_classification-like data from PUBLIC_SEED: half of the features informative
    (class means +-0.8 apart per feature), a quarter redundant (linear mixtures of those),
    the rest noise, columns on different scales and offsets, 2% labels flipped."""
    g = np.random.default_rng([PUBLIC_SEED, N, d])  # public benchmark data only
    y = (g.random(N) < 0.5).astype(np.int64)
    k = max(1, d // 2)
    r = min(d - k, max(0, d // 4))
    inf = g.normal(0.0, 1.0, (N, k)) + 0.8 * (2 * y[:, None] - 1)
    red = inf @ g.normal(0.0, 0.5, (k, r))
    noise = g.normal(0.0, 1.0, (N, d - k - r))
    X = np.hstack([inf, red, noise])
    X = X * g.uniform(0.2, 5.0, d) + g.uniform(-3.0, 3.0, d)
    flip = g.random(N) < 0.02
    return X, np.where(flip, 1 - y, y)


def _rows_of(N: int, n: int, pid: int) -> np.ndarray:
    """The rows party `pid` holds (horizontal split, in party order)."""
    return np.array_split(np.arange(N), n)[pid]


def _fraud_model(n: int) -> tuple[np.ndarray, float]:
    """The public fraud model: the float64 reference SGD (smooth sigmoid) on a separately
    seeded make_fraud training set, columns in the vertical parts' order."""
    from mpc.datasets import make_fraud
    from protocols.ml.reference import fit_sgd_plain

    tr = make_fraud(5000, n_banks=n, seed=PUBLIC_SEED + 1)
    return fit_sgd_plain(tr.vertical_columns(), tr.y, loss="logistic", batch_size=128, lr=0.5,
                         epochs=3, sigmoid="smooth")


# -- the job every party runs ------------------------------------------------------------------


class _Prefetch:
    """Preprocessing fetched ahead: `fill(kind, *args)` stores one item; a later request of
    the same kind and arguments gets it, anything else falls through to the source. While
    `recording`, every request is also logged, so the warm-up run tells which items a timed
    run needs (any protocol, without a hand-written list)."""

    def __init__(self, source):
        self.source = source
        self.name = f"prefetch({getattr(source, 'name', '?')})"
        self._q: dict[tuple, deque] = {}
        self.recording = False
        self.log: list[tuple] = []

    async def fill(self, kind: str, *args) -> None:
        item = await getattr(self.source, kind)(*args)
        self._q.setdefault((kind, _freeze(args)), deque()).append(item)

    def __getattr__(self, kind: str):
        fetch = getattr(self.source, kind)

        async def get(*args):
            if self.recording:
                self.log.append((kind, *args))
            q = self._q.get((kind, _freeze(args)))
            return q.popleft() if q else await fetch(*args)

        return get


def _freeze(args) -> tuple:
    return tuple(tuple(a) if isinstance(a, list | tuple) else a for a in args)


def bench_domain(op: str, scheme: str):
    """The domain a measurement runs on: Z_2^64 (additive), GF(2^61 - 1) (Shamir), and
    GF(2^127 - 1) for the fixed-point ops over Shamir."""
    from mpc.local import default_domain

    if scheme == "shamir" and (op in FIXED_OPS or op in E2E_OPS):
        from protocols.arith.field import Mersenne127

        return Mersenne127()
    return default_domain(scheme)


def _uniform(rng, size: int, lo: float, hi: float) -> np.ndarray:
    u = (rng.uint64((size,)) >> np.uint64(11)).astype(np.float64) / 2.0**53
    return lo + (hi - lo) * u


def _fixed_inputs(op: str, size: int, rng) -> tuple[np.ndarray, np.ndarray | None]:
    """Public benchmark inputs of a fixed-point op as int64 fixed-point encodings."""
    lo, hi = INPUT_RANGE[op]
    if op == "reciprocal":
        x = 2.0 ** _uniform(rng, size, np.log2(lo), np.log2(hi) - 1e-9)
    else:
        x = _uniform(rng, size, lo, hi)
    enc = np.rint(x * 2.0**FIX_F).astype(np.int64)
    if op in ("fixed_mul", "compare"):
        y = np.rint(_uniform(rng, size, lo, hi) * 2.0**FIX_F).astype(np.int64)
        if size > 1 and op == "compare":
            y[0] = enc[0]  # include the equal case (x < x is false)
        return enc, y
    if size > 1 and op in ("sigmoid", "sigmoid_piecewise"):
        enc[:2] = [0, np.rint(0.5 * 2.0**FIX_F)]  # edge cases: 0 and the kink at 1/2
    return enc, None


def _plain(D, op: str, size: int):
    from protocols.prg import CryptoRNG

    rng = CryptoRNG.from_seed(PUBLIC_SEED, op, size)
    if op == "matmul":
        return D.random(rng, (size, MATMUL_D)), D.random(rng, (MATMUL_D, MATMUL_M))
    if op == "truncate":
        v = rng.uint64((size,)).astype(np.int64) >> np.int64(64 - TRUNC_BITS)  # signed
        return D.from_int(v), None
    if op in FIXED_OPS:
        x, y = _fixed_inputs(op, size, rng)
        return D.from_int(x), (D.from_int(y) if y is not None else None)
    return D.random(rng, (size,)), D.random(rng, (size,))


async def _run_op(s, op: str, size: int, x, y, px):
    from protocols import beaver, comparison, core, fixed, nonlinear

    if op == "mul":
        return await beaver.mul(s, x, y)
    if op == "matmul":
        return await beaver.matmul(s, x, y)
    if op == "inner":
        from protocols.session import Share

        return await beaver.matmul(s, Share(x.data.reshape(1, -1), s), y)
    if op == "open":
        return (await core.open(s, x))[0]
    if op == "input":
        return await core.input(s, px if s.pid == 0 else None, 0)
    if op == "triples":
        return await s.prep.triples((size,))
    if op == "truncate":
        from protocols.truncation import trunc

        return await trunc(s, x, TRUNC_F)
    if op == "fixed_mul":
        return await fixed.mul(s, x, y, FIX_F)
    if op == "compare":
        return await comparison.lt(s, x, y)
    if op == "sigmoid_piecewise":
        return await nonlinear.sigmoid_piecewise(s, x, FIX_F)
    if op == "sigmoid":
        return await nonlinear.sigmoid(s, x, FIX_F)
    if op == "reciprocal":
        return await nonlinear.reciprocal(s, x, FIX_F)
    raise ConfigError(f"unknown op {op!r}")


async def bench_job(s, op: str, size: int, repeat: int, params: dict | None = None) -> dict:
    """One party's side of a measurement; returns its per-run times and counts.

    Run 0 is the warm-up: it fetches its preprocessing inline and records what it asked
    for; before every timed run the same items are fetched ahead (offline time).
    End-to-end ops take each party's own float data (px: its part, py: the public plaintext
    everything is checked against) and share it inside the timed run, as a real job does."""
    from protocols import core
    from protocols.session import Share

    if op == "truncate" and (s.scheme.kind != "additive" or s.domain.is_field):
        raise ConfigError("bench op 'truncate' is implemented for --scheme additive only")
    params = dict(params or {})
    prep = _Prefetch(s.prep)
    s = dataclasses.replace(s, prep=prep)
    D = s.domain
    if op in E2E_OPS:
        px, py = _e2e_inputs(op, size, s.n, s.pid, params)
        x = y = None
    else:
        px, py = _plain(D, op, size)
        x = await core.input(s, px if s.pid == 0 else None, 0)
        y = await core.input(s, py if s.pid == 1 else None, 1) if py is not None else None

    online, offline, counts, out = [], [], [], None
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        if i > 0:
            for kind, *args in prep.log:
                await prep.fill(kind, *args)
        offline.append(time.perf_counter() - t0)
        await core.open(s, Share(D.zeros((1,)), s))  # barrier: start the timer together
        prep.recording = i == 0 and op != "triples"  # triples: fetching is the workload
        before = s.stats.copy()
        t1 = time.monotonic()  # system-wide on Linux: comparable across party processes
        out = await (_run_e2e(s, op, px, params) if op in E2E_OPS else _run_op(s, op, size, x, y, px))
        online.append((t1, time.monotonic()))
        prep.recording = False
        d = s.stats - before
        counts.append((d.rounds, d.bytes_sent))
    if op in E2E_OPS:
        return {"online": online, "offline": offline, "counts": counts,
                **_check_e2e(s, op, px, py, out, params)}
    correct, max_err = await _check(s, op, px, py, out)
    return {"online": online, "offline": offline, "counts": counts, "correct": correct,
            "max_error": max_err}


def _e2e_inputs(op: str, size: int, n: int, pid: int, params: dict):
    """(this party's data, the public plaintext of the whole workload)."""
    if op == "logistic_regression":
        if size < 4 * n:
            raise ConfigError(f"logistic_regression needs at least 4 rows per party (size >= {4 * n})")
        X, y = logistic_data(size)
        idx = _rows_of(size, n, pid)
        return (X[idx], y[idx]), (X, y)
    from mpc.datasets import make_fraud

    data = make_fraud(size, n_banks=n, seed=PUBLIC_SEED)
    model = _fraud_model(n)
    return (data.vertical()[pid][0], model), (data, model)


def _logreg_hp(params: dict) -> dict:
    return {**LOGREG_HP, "epochs": int(params.get("epochs", LOGREG_EPOCHS))}


async def _run_e2e(s, op: str, px, params: dict):
    if op == "logistic_regression":
        from protocols.ml import train

        Xl, yl = px
        m = await train(s, "logistic", Xl, yl, partition="horizontal", **_logreg_hp(params))
        return await m.reveal(s)
    from protocols import fraud

    Xb, model = px
    return await fraud.score(s, model, Xb, owner=0, threshold=FRAUD_THRESHOLD, reveal_to=0,
                             proba=True, reveal_scores=True, sigmoid="smooth", f=FIX_F)


def _check_e2e(s, op: str, px, py, out, params: dict) -> dict:
    """The end-to-end jobs' checks against plaintext (pure: the outputs are already revealed).

    logistic_regression: the revealed model's accuracy on the training rows against the
    float64 reference (protocols.ml.reference, the same algorithm and data order) trained on
    the same rows; correct if they differ by at most ACCURACY_TOL.
    fraud_score (checked by bank 0, the only party that learns anything; the others report
    None): flags exactly equal to the plaintext computation on the same fixed-point encoding
    (each bank's partial score rounded to 2^-f, so the comparison is exact), and every score
    within the smooth sigmoid's documented 2^-16 + 1e-4 plus the encoding's rounding
    ((n + 1) 2^-(f+1), times the sigmoid's slope 1/4) of the float64 probability."""
    if op == "logistic_regression":
        from protocols.ml.reference import fit_sgd_plain

        X, y = py
        coef, b = out
        cf, bf = fit_sgd_plain(X, y, loss="logistic", **_logreg_hp(params))
        acc = float(((X @ coef + b > 0) == y).mean())
        facc = float(((X @ cf + bf > 0) == y).mean())
        return {"correct": abs(acc - facc) <= ACCURACY_TOL, "max_error": None,
                "extra": {"accuracy": acc, "float_accuracy": facc,
                          "accuracy_diff": acc - facc, "epochs": _logreg_hp(params)["epochs"],
                          "max_coef_diff": float(np.max(np.abs(np.append(coef - cf, b - bf))))}}
    if s.pid != 0:
        return {"correct": None, "max_error": None}
    data, (coef, intercept) = py
    sc = 2.0**FIX_F
    parts = [Xb for Xb, _ in data.vertical()]
    offs = np.cumsum([0] + [p.shape[1] for p in parts])
    partial = [p @ coef[offs[i]:offs[i + 1]] for i, p in enumerate(parts)]
    z_int = sum(np.rint(q * sc).astype(np.int64) for q in partial) + np.int64(np.rint(intercept * sc))
    t = np.log(FRAUD_THRESHOLD / (1 - FRAUD_THRESHOLD))
    want_flags = (z_int > np.int64(np.rint(t * sc))).astype(np.int64)
    z = sum(partial) + intercept
    p = 1.0 / (1.0 + np.exp(-z))
    err = np.abs(out.revealed_scores - p)
    bound = ERROR_BOUND["sigmoid"](z) + (len(parts) + 1) * 2.0 ** -(FIX_F + 1) / 4
    flags = out.revealed_flags
    mism = int((flags != want_flags).sum())
    ok = mism == 0 and bool((err <= bound).all())
    return {"correct": ok, "max_error": float(err.max()),
            "extra": {"flag_mismatches": mism, "flagged": int(flags.sum()),
                      "accuracy": float((flags == data.y).mean()),
                      "float_accuracy": float(((p > FRAUD_THRESHOLD) == data.y).mean())}}


async def _check(s, op, px, py, out) -> tuple[bool, float | None]:
    """(result equals the plaintext computation within the op's documented error, the
    largest absolute error seen for the fixed-point ops)."""
    from protocols import core
    from protocols.session import Share

    D = s.domain
    if op == "open":
        return bool(np.array_equal(out, px)), None
    if op == "triples":
        a, b, c = (Share(v, s) for v in out)
        oa, ob, oc = await core.open(s, a, b, c)
        return bool(np.array_equal(D.mul(oa, ob), oc)), None
    (got,) = await core.open(s, out)
    if op == "mul":
        return bool(np.array_equal(got, D.mul(px, py))), None
    if op == "matmul":
        return bool(np.array_equal(got, D.matmul(px, py))), None
    if op == "inner":
        return bool(np.array_equal(got, D.matmul(px.reshape(1, -1), py))), None
    if op == "input":
        return bool(np.array_equal(got, px)), None
    if op == "truncate":  # floor(x / 2^f) + u, u in {0, 1}
        want = D.to_signed(px) >> np.int64(TRUNC_F)
        diff = D.to_signed(got) - want
        return bool(((diff == 0) | (diff == 1)).all()), None
    if op in FIXED_OPS:
        sc = 2.0**FIX_F
        x = D.to_signed(px).astype(np.float64) / sc
        z = D.to_signed(got).astype(np.float64) / sc
        if op == "compare":
            want = (D.to_signed(px) < D.to_signed(py)).astype(np.float64)
            z = D.to_signed(got).astype(np.float64)  # a 0/1 integer, not fixed point
        elif op == "fixed_mul":
            want = x * (D.to_signed(py).astype(np.float64) / sc)
        elif op == "sigmoid_piecewise":
            want = np.clip(x + 0.5, 0.0, 1.0)
        elif op == "sigmoid":
            want = 1.0 / (1.0 + np.exp(-x))
        else:
            want = 1.0 / x
        err = np.abs(z - want)
        ok = bool((err <= ERROR_BOUND[op](x)).all())
        return ok, float(err.max()) if err.size else 0.0
    return False, None


# -- measuring -------------------------------------------------------------------------------


def _network(transport: str, processes: bool, latency: float, bandwidth: float | None) -> str:
    where = "separate processes" if processes else "one process"
    wan = bool(latency) or bandwidth is not None
    bw = f"{bandwidth:g} B/s" if bandwidth else "unlimited bandwidth"
    if transport == "memory":
        if wan:
            return f"memory, simulated latency {latency:g} s, {bw} per link ({where})"
        return f"memory, no simulated delay ({where})"
    if transport == "tcp":
        if wan:
            return (f"tcp via delaying proxy (network.wanproxy: one-way latency {latency:g} s, "
                    f"{bw} per direction of each link), loopback 127.0.0.1, Noise KK ({where})")
        return f"tcp loopback 127.0.0.1, Noise KK encrypted, no WAN simulation ({where})"
    return f"mqtt via broker 127.0.0.1:1883, end-to-end encrypted, no WAN simulation ({where})"


def measure(
    op: str,
    size: int,
    *,
    parties: int = 3,
    scheme: str = "additive",
    transport: str = "memory",
    processes: bool = False,
    latency: float = 0.0,
    bandwidth: float | None = None,
    repeat: int = 5,
    seed: int | None = None,
    timeout: float = 120.0,
    source: str = "trusted_dealer",
    epochs: int = LOGREG_EPOCHS,
) -> dict:
    """One measurement as the JSON record `smpc bench --json` prints. `source` names the
    preprocessing source (run_local's names); its own traffic is offline and not counted in
    rounds/bytes, which are the online phase's. `epochs`: logistic_regression only."""
    if op not in COST_MODEL:
        raise ConfigError(f"op must be one of {OPS}, got {op!r}")
    if size < 1 or repeat < 1:
        raise ConfigError("size and repeat must be at least 1")
    if processes and transport == "memory":
        raise ConfigError("--processes needs --transport tcp or mqtt")
    if (latency or bandwidth) and transport == "mqtt":
        raise ConfigError("--latency/--bandwidth simulate memory and tcp links, not mqtt")
    if processes and source not in ("trusted_dealer", "dn07", "ot"):
        raise ConfigError("--processes supports --source dn07 or ot (or the shared-seed dealer)")
    if epochs < 1:
        raise ConfigError("epochs must be at least 1")
    args = (op, size, repeat, {"epochs": epochs} if op == "logistic_regression" else {})
    dom = bench_domain(op, scheme)
    if processes:
        from mpc.processes import run_processes

        per_party = run_processes(
            parties, bench_job, job_args=args, scheme=scheme, transport=transport, seed=seed,
            timeout=timeout, domain=dom, latency=latency, bandwidth=bandwidth,
            preprocessing="shared_seed_dealer" if source == "trusted_dealer" else source,
        ).results
    else:
        per_party = asyncio.run(
            _in_process(parties, args, scheme, dom, transport, latency, bandwidth, seed,
                        timeout, source)
        )
    e = dom.elem_bytes
    # a run lasts from the moment the last party starts (the barrier cannot remove a skew of
    # up to one latency between parties) until the last one finishes
    online = [max(p["online"][r][1] for p in per_party) - max(p["online"][r][0] for p in per_party)
              for r in range(1, repeat + 1)]
    offline = [max(p["offline"][r] for p in per_party) for r in range(1, repeat + 1)]
    # exact counts: each party's must be the same in every run
    stable = all(len({tuple(c) for c in p["counts"][1:]}) == 1 for p in per_party)
    rounds = max(p["counts"][-1][0] for p in per_party)
    nbytes = max(p["counts"][-1][1] for p in per_party)
    ring_source = "edabits" if source != "trusted_dealer" else False  # no ltz_tuples there
    pred = COST_MODEL[op](size, parties, e, dom.is_field or ring_source)
    checked = [p["correct"] for p in per_party if p["correct"] is not None]
    correct = bool(checked) and all(checked)  # None: this party learns no output to check
    seconds = statistics.median(online)
    rec = {
        "op": op,
        "size": size,
        "parties": parties,
        "scheme": scheme,
        "domain": str(dom),
        "transport": transport,
        "processes": processes,
        "network": _network(transport, processes, latency, bandwidth),
        "latency": latency,
        "bandwidth": bandwidth,
        "repeat": repeat,
        "source": "insecure_shared_seed_dealer" if processes and source == "trusted_dealer" else source,
        "seconds": seconds if correct else None,
        "ops_per_s": _ops(op, size, epochs) / seconds if correct and seconds > 0 else None,
        "offline_seconds": statistics.median(offline),
        "rounds": rounds,
        "bytes_per_party": nbytes,
        "predicted_rounds": pred.rounds if pred else None,
        "predicted_bytes_per_party": pred.bytes_per_party if pred else None,
        # None: not modelled (end-to-end jobs); the counts must still repeat exactly
        "cost_model_ok": (pred.rounds == rounds and pred.bytes_per_party == nbytes and stable)
        if pred else None,
        "counts_stable": stable,
        "correct": correct,
    }
    for p in per_party:
        rec.update(p.get("extra") or {})
    errs = [p["max_error"] for p in per_party if p.get("max_error") is not None]
    if errs:
        rec["max_abs_error"] = max(errs)
    if not correct:
        rec["error"] = "result does not match the plaintext computation"
    return rec


async def _in_process(n, args, scheme, dom, transport, latency, bandwidth, seed, timeout, source):
    from mpc.local import close_sessions, open_sessions

    wan = transport == "tcp" and (bool(latency) or bandwidth is not None)
    sessions = await open_sessions(
        n, scheme=scheme, domain=dom, transport="memory" if wan else transport, seed=seed,
        latency=0.0 if wan else latency, bandwidth=None if wan else bandwidth,
        timeout=timeout, preprocessing=source,
    )
    proxies = []
    try:
        if wan:  # the same sessions, their channels replaced by TCP through delaying proxies
            sessions, proxies = await _over_wan_tcp(sessions, latency, bandwidth, timeout)
        return await asyncio.gather(*(bench_job(s, *args) for s in sessions))
    finally:
        await close_sessions(sessions)
        for p in proxies:
            await p.close()


async def _over_wan_tcp(sessions, latency, bandwidth, timeout):
    from network.keys import generate_keypair
    from network.tcp import TcpChannel
    from network.wanproxy import wan_addresses
    from protocols.session import CountingChannel

    n = len(sessions)
    pairs = [generate_keypair() for _ in range(n)]
    chans = [
        TcpChannel(i, n, session_id=sessions[0].sid, static_key=pairs[i][0],
                   peer_keys=[pk for _, pk in pairs], timeout=timeout)
        for i in range(n)
    ]
    addresses = [await ch.listen("127.0.0.1", 0) for ch in chans]
    dial, proxies = await wan_addresses(addresses, latency=latency, bandwidth=bandwidth)
    try:
        await asyncio.gather(*(ch.connect(dial) for ch in chans))
    except BaseException:
        for ch in chans:
            await ch.close()
        for p in proxies:
            await p.close()
        raise
    for s in sessions:
        await s.channel.close()  # the unused in-memory channel
    return [dataclasses.replace(s, channel=CountingChannel(chans[s.pid], s.stats))
            for s in sessions], proxies


# -- the command line ---------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--op", nargs="+", choices=OPS, default=["mul"], help="workload(s)")
    p.add_argument("--size", nargs="+", type=int, default=[10_000], help="elements (rows for matmul)")
    p.add_argument("--parties", nargs="+", type=int, default=[3], help="party count(s)")
    p.add_argument("--scheme", choices=["additive", "shamir"], default="additive")
    p.add_argument("--transport", choices=["memory", "tcp", "mqtt"], default="memory")
    p.add_argument("--processes", action="store_true", help="each party in its own OS process")
    p.add_argument("--latency", nargs="+", type=float, default=[0.0],
                   help="simulated one-way latency(s), s (memory; tcp: via a delaying proxy)")
    p.add_argument("--bandwidth", type=float, default=None,
                   help="simulated bytes/s per link (memory; tcp: via the proxy)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs after one warm-up")
    p.add_argument("--epochs", type=int, default=LOGREG_EPOCHS,
                   help="logistic_regression: training epochs")
    p.add_argument("--seed", type=int, default=None, help="reproducible randomness (tests only)")
    p.add_argument("--timeout", type=float, default=120.0, help="receive deadline, s")
    p.add_argument("--json", action="store_true", help="one JSON line per measurement")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="plot throughput vs size, vs parties and time vs latency (matplotlib)")
    p.add_argument("--progress", action="store_true",
                   help="progress bar on stderr even when it is not a terminal")
    p.add_argument("--compare", choices=["mpyc"], default=None,
                   help="run the same workload in MPyC (pip install -e .[compare]) and print the ratio")
    from mpc.local import PREPROCESSING

    p.add_argument("--source", choices=PREPROCESSING, default="trusted_dealer",
                   help="preprocessing source (offline phase), e.g. --op triples --source dn07")


_COLS = ("op", "size", "n", "lat s", "seconds", "ops/s", "offline s", "rounds (model)",
         "bytes/party (model)", "ok")
_CMP_COLS = ("mpyc s", "mpyc ops/s", "smpc/mpyc")


def _row(r: dict, compare: bool) -> list[str]:
    secs = f"{r['seconds']:.4g}" if r["seconds"] is not None else "ERROR"
    ops = f"{r['ops_per_s']:.3g}" if r["ops_per_s"] is not None else "-"
    flag = " !" if r["cost_model_ok"] is False or not r.get("counts_stable", True) else ""

    def pr(k):
        return "-" if r[k] is None else r[k]

    row = [
        r["op"], str(r["size"]), str(r["parties"]), f"{r['latency']:g}", secs, ops,
        f"{r['offline_seconds']:.3g}",
        f"{r['rounds']} ({pr('predicted_rounds')}){flag}",
        f"{r['bytes_per_party']} ({pr('predicted_bytes_per_party')}){flag}",
        "yes" if r["correct"] else "NO",
    ]
    if compare:
        m = r.get("mpyc") or {}
        if m.get("seconds"):
            row += [f"{m['seconds']:.4g}", f"{m['ops_per_s']:.3g}", f"{r['ratio_vs_mpyc']:.3g}x"]
        else:
            row += ["-", "-", m.get("error", "n/a")[:40]]
    return row


class _Progress:
    """A one-line progress bar on stderr: only on a terminal, or when asked for."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled = total, 0, enabled and total > 0
        self.t0 = time.monotonic()

    def show(self, what: str) -> None:
        if not self.enabled:
            return
        width = 24
        fill = int(width * self.done / self.total)
        bar = "#" * fill + "." * (width - fill)
        el = time.monotonic() - self.t0
        sys.stderr.write(f"\r[{bar}] {self.done}/{self.total} {el:5.0f}s  {what[:50]:<50}")
        sys.stderr.flush()

    def step(self, what: str) -> None:
        self.done += 1
        self.show(what)

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def main(args: argparse.Namespace) -> int:
    plan = [(op, size, n, lat) for op in args.op for n in args.parties for lat in args.latency
            for size in args.size]
    bar = _Progress(len(plan), args.progress or sys.stderr.isatty())
    status, recs = 0, []
    try:
        for op, size, n, lat in plan:
            bar.show(f"{op} size {size} n {n}" + (f" latency {lat:g}" if lat else ""))
            rec = measure(
                op, size, parties=n, scheme=args.scheme, transport=args.transport,
                processes=args.processes, latency=lat, bandwidth=args.bandwidth,
                repeat=args.repeat, seed=args.seed, timeout=args.timeout, source=args.source,
                epochs=args.epochs,
            )
            if args.compare == "mpyc":
                from mpc.compare_mpyc import attach_mpyc

                bar.show(f"MPyC {op} size {size} n {n}")
                attach_mpyc(rec, repeat=args.repeat)
            if not rec["correct"] or rec["cost_model_ok"] is False or not rec["counts_stable"]:
                status = 1
            recs.append(rec)
            bar.step(f"{op} size {size} n {n}")
            if args.json:
                print(json.dumps(rec), flush=True)
    finally:
        bar.close()
    if not args.json and recs:
        print_table(recs, compare=args.compare is not None)
    if args.plot:
        plot(recs, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)
    return status


def plot(recs: list[dict], path: str) -> None:
    """Three panels from the run's measurements: throughput against size (one line per op
    and party count), throughput against parties (per op, at its largest size) and online
    time against one-way latency (per op and size). A panel with one x value only says so.
    MPyC's figures (with --compare mpyc) are drawn dashed in the first panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in recs if r["seconds"] is not None]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.5))
    r0 = recs[0] if recs else {"scheme": "?", "transport": "?", "processes": False}
    where = "separate processes" if r0["processes"] else "one process"
    fig.suptitle(f"smpc bench: {r0['scheme']} sharing, {r0['transport']} ({where}); online "
                 "phase, median of repeats", fontsize=11)
    lat0 = min((r["latency"] for r in ok), default=0.0)
    big = {}
    for r in ok:
        big[r["op"]] = max(big.get(r["op"], 0), r["size"])

    def lines(ax, key, xkey, ykey, label, **kw):
        groups: dict = {}
        for r in ok:
            groups.setdefault(key(r), []).append(r)
        drawn = False
        for k, rs in sorted(groups.items()):
            pts = sorted({r[xkey]: ykey(r) for r in rs if ykey(r) is not None}.items())
            if len(pts) < 2:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label(k), **kw)
            drawn = True
        return drawn

    ax = axes[0]  # at the lowest latency of the run
    d1 = lines(ax, lambda r: (r["op"], r["parties"]), "size",
               lambda r: r["ops_per_s"] if r["latency"] == lat0 else None,
               lambda k: f"smpc {k[0]} n={k[1]}")
    lines(ax, lambda r: (r["op"], r["parties"]), "size",
          lambda r: (r.get("mpyc") or {}).get("ops_per_s") if r["latency"] == lat0 else None,
          lambda k: f"MPyC {k[0]} n={k[1]}", linestyle="--")
    ax.set(xscale="log", yscale="log", xlabel="size (elements)", ylabel="ops / s (online)",
           title=f"throughput vs size (latency {lat0:g} s)")
    ax = axes[1]  # largest size of each op, lowest latency
    d2 = lines(ax, lambda r: (r["op"], r["size"]), "parties",
               lambda r: r["ops_per_s"] if r["size"] == big[r["op"]] and r["latency"] == lat0 else None,
               lambda k: f"{k[0]} size {k[1]}")
    ax.set(yscale="log", xlabel="parties", ylabel="ops / s (online)",
           title=f"throughput vs parties (latency {lat0:g} s)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax = axes[2]  # largest size of each op
    d3 = lines(ax, lambda r: (r["op"], r["size"], r["parties"]), "latency",
               lambda r: r["seconds"] if r["size"] == big[r["op"]] else None,
               lambda k: f"{k[0]} size {k[1]} n={k[2]} ({_rounds_of(ok, k[0])} rounds)")
    ax.set(xlabel="one-way latency (s)", ylabel="online seconds (median)", title="time vs latency")
    for ax, drawn, flag in zip(axes, (d1, d2, d3), ("--size", "--parties", "--latency"), strict=True):
        if drawn:
            ax.legend(fontsize=8)
            ax.grid(True, which="both", alpha=0.3)
        else:
            ax.text(0.5, 0.5, f"give {flag} several values\nto draw this panel",
                    ha="center", va="center", transform=ax.transAxes, color="gray")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _rounds_of(recs, op) -> int:
    return next((r["rounds"] for r in recs if r["op"] == op), 0)


def print_table(recs: list[dict], *, compare: bool = False, file=None) -> None:
    file = file or sys.stdout
    r0 = recs[0]
    print(f"{r0['scheme']} sharing; network: {r0['network']}", file=file)
    print(f"median of {r0['repeat']} runs after a warm-up; online time; "
          "(model) = cost-model prediction (- = not modelled), ! = differs", file=file)
    cols = _COLS + (_CMP_COLS if compare else ())
    rows = [_row(r, compare) for r in recs]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip(), file=file)
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip(), file=file)


__all__ = ["COST_MODEL", "E2E_OPS", "OPS", "OP_DOC", "PRIMITIVE_OPS", "Cost", "add_arguments", "bench_job", "main", "measure",
           "plot", "print_table"]
