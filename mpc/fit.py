"""fit_local: train a linear model securely with all parties in this process (analysts,
notebooks, tests). The scikit-learn-like result is the *released* model.

    >>> import mpc
    >>> m = mpc.fit_local("logistic", [(X0, y0), (X1, y1), (X2, y2)], epochs=10)
    >>> m.predict(X_new), m.coef_, m.stats

Each party's data only enters its own party's job; the parties compute over shares
(protocols.apps.ml) and the model is opened at the end (to every party: each party of a local run
is this process anyway).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mpc.local import run_local
from protocols.errors import ConfigError


@dataclass
class FittedModel:
    """The released model: coef_ (d,), intercept_ (float), and how training went.
    stats: {"rounds": [...], "bytes_sent": [...], "messages_sent": [...], "seconds": s,
    "per_party": [Stats.as_dict(), ...]} (one entry per party)."""

    model: str
    coef_: np.ndarray
    intercept_: float
    stats: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) @ self.coef_ + self.intercept_

    def predict(self, X: np.ndarray) -> np.ndarray:
        z = self.decision_function(X)
        if self.model == "logistic":
            return (z > 0).astype(np.int64)
        return z

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(N, 2) class probabilities with the logistic function (logistic models only)."""
        if self.model != "logistic":
            raise AttributeError("predict_proba is defined for model='logistic' only")
        p1 = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - p1, p1])

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Accuracy (logistic) or R^2 (regression), as scikit-learn's `score`."""
        y = np.asarray(y, dtype=np.float64)
        if self.model == "logistic":
            return float((self.predict(X) == y).mean())
        r = y - self.predict(X)
        return float(1.0 - (r @ r) / ((y - y.mean()) @ (y - y.mean())))


async def _job(s, model, parts, partition, hyperparameters):
    from protocols.apps.ml import train

    X, y = parts[s.pid]
    m = await train(s, model, X, y, partition=partition, **hyperparameters)
    coef, intercept = await m.reveal(s)
    return coef, intercept, m.info


def fit_local(
    model: str,
    parts: list[tuple[np.ndarray | None, np.ndarray | None]],
    *,
    partition: str = "horizontal",
    scheme: str = "additive",
    transport: str = "memory",
    seed: int | None = None,
    preprocessing: str = "trusted_dealer",
    security: str = "semi-honest",
    **hyperparameters,
) -> FittedModel:
    """Train `model` ("linear", "ridge", "logistic") on `parts`, one (X_i, y_i) per party,
    securely with len(parts) parties in this process, and return the released model.

    partition "horizontal": each X_i holds rows (same features); "vertical": each X_i holds
    columns of the same aligned rows and exactly one party passes y (None elsewhere).
    scheme "additive" (Z_2^64) or "shamir" (GF(2^127 - 1): fixed point needs the big field;
    threshold (n-1)//2). transport "memory" | "tcp" | "mqtt" (see run_local).
    hyperparameters: see protocols.apps.ml.train. `security="malicious"` is passed to
    run_local; the trainers have no malicious version yet, so it raises
    MaliciousUnsupportedError (never trains semi-honest in its place).
    """
    n = len(parts)
    if n < 2:
        raise ConfigError("fit_local needs at least two parties' parts")
    domain = None
    if scheme == "shamir":
        from protocols.arith.field import Mersenne127

        domain = Mersenne127()
    parts = [(None if X is None else np.asarray(X), None if y is None else np.asarray(y)) for X, y in parts]

    async def job(s):
        return await _job(s, model, parts, partition, hyperparameters)

    run = run_local(n, job, scheme=scheme, transport=transport, seed=seed, domain=domain,
                    preprocessing=preprocessing, security=security)
    coef, intercept, info = run.results[0]
    per = [st.as_dict() for st in run.stats]
    stats = {
        "rounds": [p["rounds"] for p in per],
        "bytes_sent": [p["bytes_sent"] for p in per],
        "messages_sent": [p["messages_sent"] for p in per],
        "seconds": run.seconds,
        "per_party": per,
    }
    return FittedModel(model, np.asarray(coef), float(intercept), stats, dict(info))


__all__ = ["FittedModel", "fit_local"]
