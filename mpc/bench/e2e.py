"""The end-to-end workloads of `smpc bench` (logistic_regression, fraud_score): public
benchmark data (the same in every party), each party's part of it, the job, and the check
against the float64 reference."""

from __future__ import annotations

import numpy as np

from mpc.bench.costmodel import ERROR_BOUND, FIX_F
from protocols.errors import ParameterError

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
    from mpc.cli.datasets import make_fraud
    from protocols.apps.ml.reference import fit_sgd_plain

    tr = make_fraud(5000, n_banks=n, seed=PUBLIC_SEED + 1)
    return fit_sgd_plain(tr.vertical_columns(), tr.y, loss="logistic", batch_size=128, lr=0.5,
                         epochs=3, sigmoid="smooth")


# -- the job every party runs ------------------------------------------------------------------


def _e2e_inputs(op: str, size: int, n: int, pid: int, params: dict):
    """(this party's data, the public plaintext of the whole workload)."""
    if op == "logistic_regression":
        if size < 4 * n:
            raise ParameterError(f"logistic_regression needs at least 4 rows per party (size >= {4 * n})")
        X, y = logistic_data(size)
        idx = _rows_of(size, n, pid)
        return (X[idx], y[idx]), (X, y)
    from mpc.cli.datasets import make_fraud

    data = make_fraud(size, n_banks=n, seed=PUBLIC_SEED)
    model = _fraud_model(n)
    return (data.vertical()[pid][0], model), (data, model)


def _logreg_hp(params: dict) -> dict:
    return {**LOGREG_HP, "epochs": int(params.get("epochs", LOGREG_EPOCHS))}


async def _run_e2e(s, op: str, px, params: dict):
    if op == "logistic_regression":
        from protocols.apps.ml import train

        Xl, yl = px
        m = await train(s, "logistic", Xl, yl, partition="horizontal", **_logreg_hp(params))
        return await m.reveal(s)
    from protocols.apps import fraud

    Xb, model = px
    return await fraud.score(s, model, Xb, owner=0, threshold=FRAUD_THRESHOLD, reveal_to=0,
                             proba=True, reveal_scores=True, sigmoid="smooth", f=FIX_F)


def _check_e2e(s, op: str, px, py, out, params: dict) -> dict:
    """The end-to-end jobs' checks against plaintext (pure: the outputs are already revealed).

    logistic_regression: the revealed model's accuracy on the training rows against the
    float64 reference (protocols.apps.ml.reference, the same algorithm and data order) trained on
    the same rows; correct if they differ by at most ACCURACY_TOL.
    fraud_score (checked by bank 0, the only party that learns anything; the others report
    None): flags exactly equal to the plaintext computation on the same fixed-point encoding
    (each bank's partial score rounded to 2^-f, so the comparison is exact), and every score
    within the smooth sigmoid's documented 2^-16 + 1e-4 plus the encoding's rounding
    ((n + 1) 2^-(f+1), times the sigmoid's slope 1/4) of the float64 probability."""
    if op == "logistic_regression":
        from protocols.apps.ml.reference import fit_sgd_plain

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


